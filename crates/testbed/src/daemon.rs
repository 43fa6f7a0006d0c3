//! A `hostnetd` running inside a test host namespace, with its own state
//! directory and socket; killed on drop and its namespaces unmounted.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use hostnet_api::Client;

use crate::netns::command_in;
use crate::{unique, wait_until, workspace_binary};

/// A daemon under test.
pub struct Daemon {
    child: Option<Child>,
    netns: PathBuf,
    pub dir: PathBuf,
    pub socket: PathBuf,
    extra: Vec<String>,
}

impl Daemon {
    /// Start `hostnetd` in the namespace at `netns` with extra arguments
    /// (e.g. `--default-subnet 10.88.0.0/16`); waits until it answers.
    pub fn start(netns: &Path, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(unique("state"));
        std::fs::create_dir_all(&dir).expect("state dir");
        let mut d = Daemon {
            child: None,
            netns: netns.to_path_buf(),
            socket: dir.join("hostnet.sock"),
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("hostnetd.log"))
            .expect("log file");
        let child = command_in(&self.netns, workspace_binary("hostnetd"))
            .arg("--socket")
            .arg(&self.socket)
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .args(&self.extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn hostnetd");
        self.child = Some(child);
        let client = self.client();
        // Under qemu's TCG (the tier-3 guest) everything runs many times
        // slower: the first `nft -f` alone autoloads a dozen modules.
        let limit = match crate::tier3::in_guest() {
            true => Duration::from_secs(120),
            false => Duration::from_secs(20),
        };
        let up = wait_until(limit, || {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("hostnetd exited with {status}:\n{}", self.log());
                }
            }
            client.version().is_ok()
        });
        assert!(up, "hostnetd did not answer in time:\n{}", self.log());
    }

    /// The running hostnetd's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// A client of this daemon's API.
    pub fn client(&self) -> Client {
        Client::new(&self.socket)
    }

    /// The `hostnet` CLI aimed at this daemon (its socket given, the
    /// environment's ignored), to be run by the caller.
    pub fn cli(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(workspace_binary("hostnet"));
        cmd.arg("--socket").arg(&self.socket).args(args);
        cmd.env_remove("HOSTNET_SOCKET");
        cmd
    }

    /// [`Daemon::cli`] run to the end: (exit code, stdout, stderr).
    pub fn run_cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cli(args).output().expect("run hostnet");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("hostnetd.log")).unwrap_or_default()
    }

    /// Stop with SIGTERM (graceful) and start again on the same state.
    pub fn restart(&mut self) {
        self.stop(libc::SIGTERM);
        self.spawn();
    }

    /// SIGTERM, run `meanwhile` (to change kernel state while no daemon
    /// runs), then start again on the same state.
    pub fn restart_with(&mut self, meanwhile: impl FnOnce()) {
        self.stop(libc::SIGTERM);
        meanwhile();
        self.spawn();
    }

    /// SIGKILL, then start again on the same state.
    pub fn kill9_and_restart(&mut self) {
        self.stop(libc::SIGKILL);
        self.spawn();
    }

    /// SIGKILL, run `meanwhile` (to break kernel state behind the
    /// daemon's back), then start again on the same state.
    pub fn kill9_and_restart_with(&mut self, meanwhile: impl FnOnce()) {
        self.stop(libc::SIGKILL);
        meanwhile();
        self.spawn();
    }

    fn stop(&mut self, signal: i32) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill on our own child's pid.
            unsafe { libc::kill(c.id() as i32, signal) };
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(libc::SIGKILL);
        unmount_below(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Unmount every mount point below `dir` (the namespaces the daemon
/// bind-mounted), deepest first.
pub fn unmount_below(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let c = std::ffi::CString::new(p).expect("path");
        // SAFETY: umount2 with a valid C string.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}
