//! Starting a command inside a Linux network namespace, and relaying signals.
//!
//! `hostnet run` must outlive its command to clean up, so while it runs,
//! SIGINT/SIGTERM/SIGHUP/SIGQUIT do not kill the CLI: a handler records them
//! and relays them to the command. Signals the terminal sends to the whole
//! foreground process group (`si_code == SI_KERNEL`) already reach the
//! command, so those are only recorded, not sent twice.

use std::ffi::{c_void, CString};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};

/// PID of the running command, 0 when none.
static CHILD: AtomicI32 = AtomicI32::new(0);
/// The last signal received, 0 when none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The signals the CLI survives and relays.
const RELAYED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

extern "C" fn on_signal(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut c_void) {
    RECEIVED.store(signal, Ordering::SeqCst);
    let child = CHILD.load(Ordering::SeqCst);
    // SAFETY: the kernel passes a valid siginfo_t with SA_SIGINFO.
    let from_terminal = !info.is_null() && unsafe { (*info).si_code } == libc::SI_KERNEL;
    if child > 0 && !from_terminal {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(child, signal) };
    }
}

/// Installed signal handlers; the previous dispositions come back on drop.
/// One at a time per process (the handler state is global).
pub struct SignalRelay {
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

impl SignalRelay {
    /// Installs the recording/relaying handler for the relayed signals.
    pub fn install() -> io::Result<Self> {
        RECEIVED.store(0, Ordering::SeqCst);
        let mut relay = SignalRelay {
            previous: Vec::new(),
        };
        for signal in RELAYED {
            // SAFETY: plain sigaction calls with zero-initialised structs.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, &action, &mut old) != 0 {
                    return Err(io::Error::last_os_error());
                }
                relay.previous.push((signal, old));
            }
        }
        Ok(relay)
    }

    /// The last signal received since installation, if any.
    pub fn received(&self) -> Option<i32> {
        match RECEIVED.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal),
        }
    }
}

impl Drop for SignalRelay {
    fn drop(&mut self) {
        CHILD.store(0, Ordering::SeqCst);
        for (signal, old) in &self.previous {
            // SAFETY: restores a disposition sigaction returned earlier.
            unsafe { libc::sigaction(*signal, old, std::ptr::null_mut()) };
        }
    }
}

/// Why the command did not run.
#[derive(Debug)]
pub enum StartError {
    /// The namespace's bind mount could not be opened.
    OpenNetns(io::Error),
    /// Fork, `setns` or exec failed.
    Spawn(io::Error),
}

/// Runs `argv` with its network namespace set to the one bind-mounted at
/// `netns`, stdio inherited, and waits for it. Signals go through `relay`.
/// With `resolv_conf`, the command also gets a mount namespace of its own
/// in which that file is bind-mounted over `/etc/resolv.conf` (the host's
/// file is untouched).
pub fn run_in_netns(
    netns: &Path,
    argv: &[String],
    _relay: &SignalRelay,
    resolv_conf: Option<&Path>,
) -> Result<ExitStatus, StartError> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| StartError::Spawn(io::Error::other("no command given")))?;
    let ns = File::open(netns).map_err(StartError::OpenNetns)?;
    let fd = ns.as_raw_fd();
    let mount = match resolv_conf {
        Some(p) => Some((
            CString::new(p.as_os_str().as_bytes()).map_err(|e| StartError::Spawn(e.into()))?,
            CString::new("/etc/resolv.conf").expect("no NUL"),
        )),
        None => None,
    };
    let mut command = Command::new(program);
    command.args(args);
    // SAFETY: the closure only calls setns, unshare and mount, which are
    // async-signal-safe; `ns` and the C strings outlive the spawn, so the
    // descriptor and pointers are valid in the child.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some((source, target)) = &mount {
                private_resolv_conf(source, target)?;
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(StartError::Spawn)?;
    drop(ns);
    wait_relayed(&mut child).map_err(StartError::Spawn)
}

/// Waits for `child`, relaying the signals the installed [`SignalRelay`]
/// receives meanwhile to it.
pub fn wait_relayed(child: &mut Child) -> io::Result<ExitStatus> {
    let pid = child.id() as libc::pid_t;
    CHILD.store(pid, Ordering::SeqCst);
    wait_exited_keep_zombie(pid);
    // The child is still a zombie here, so its PID cannot have been reused by
    // a process a late relayed signal would hit.
    CHILD.store(0, Ordering::SeqCst);
    child.wait()
}

/// In the child before exec: a mount namespace of its own whose mounts do
/// not propagate back to the host's (slave), then `source` bound over
/// `target`.
///
/// # Safety
/// Only async-signal-safe calls: it runs between fork and exec.
unsafe fn private_resolv_conf(source: &CString, target: &CString) -> io::Result<()> {
    if libc::unshare(libc::CLONE_NEWNS) != 0 {
        return Err(io::Error::last_os_error());
    }
    let root = c"/";
    let flags = libc::MS_REC | libc::MS_SLAVE;
    if libc::mount(
        std::ptr::null(),
        root.as_ptr(),
        std::ptr::null(),
        flags,
        std::ptr::null(),
    ) != 0
    {
        return Err(io::Error::last_os_error());
    }
    if libc::mount(
        source.as_ptr(),
        target.as_ptr(),
        std::ptr::null(),
        libc::MS_BIND,
        std::ptr::null(),
    ) != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until `pid` has exited without reaping it (`WNOWAIT`).
fn wait_exited_keep_zombie(pid: libc::pid_t) {
    loop {
        // SAFETY: waitid with a zeroed siginfo_t out-parameter.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// The shell convention: the exit code, or 128 + the signal that killed it.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => (code & 0xff) as u8,
        (None, Some(signal)) => 128u8.saturating_add(signal as u8),
        (None, None) => 1,
    }
}

/// A signal's name for messages (`SIGINT`).
pub fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        other => format!("signal {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGKILL)), 137);
    }

    #[test]
    fn runs_in_the_current_namespace() {
        // Our own namespace is always openable; setns into it needs
        // CAP_SYS_ADMIN, so only check the outcome when we have it.
        let relay = SignalRelay::install().unwrap();
        let argv = ["sh".to_string(), "-c".into(), "exit 7".into()];
        match run_in_netns(Path::new("/proc/self/ns/net"), &argv, &relay, None) {
            Ok(status) => assert_eq!(exit_code(status), 7),
            Err(StartError::Spawn(e)) if e.kind() == io::ErrorKind::PermissionDenied => {
                eprintln!("skipped: setns needs CAP_SYS_ADMIN")
            }
            Err(e) => panic!("{e:?}"),
        }
        let missing = run_in_netns(Path::new("/nonexistent/netns"), &argv, &relay, None);
        assert!(matches!(missing, Err(StartError::OpenNetns(_))));
        let argv = ["/nonexistent/cmd".to_string()];
        let not_found = run_in_netns(Path::new("/proc/self/ns/net"), &argv, &relay, None);
        assert!(matches!(not_found, Err(StartError::Spawn(_))));
        drop(relay);
    }
}
