//! Named network namespaces made with `ip netns`, removed on drop.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Run `ip ARGS`; panic with its stderr if it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace the test owns.
pub struct Netns {
    pub name: String,
    path: PathBuf,
}

impl Netns {
    /// `ip netns add NAME` with loopback up.
    pub fn new(name: &str) -> Self {
        ip(&["netns", "add", name]);
        let ns = Netns {
            name: name.to_string(),
            path: Path::new("/run/netns").join(name),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `ip -n NAME ARGS`: netlink inside the namespace, nothing outside.
    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full);
    }

    /// A command that will run inside this namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        command_in(&self.path, program)
    }

    /// Run a command inside and collect its output.
    pub fn output(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"))
    }

    /// Join two namespaces with a veth pair, addressed, both ends up.
    pub fn link(&self, my_if: &str, my_addr: &str, peer: &Netns, peer_if: &str, peer_addr: &str) {
        self.ip(&[
            "link", "add", my_if, "type", "veth", "peer", "name", peer_if, "netns", &peer.name,
        ]);
        self.ip(&["addr", "add", my_addr, "dev", my_if]);
        self.ip(&["link", "set", my_if, "up"]);
        peer.ip(&["addr", "add", peer_addr, "dev", peer_if]);
        peer.ip(&["link", "set", peer_if, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A command that `setns`es into the network namespace at `path` before
/// it runs (only the network namespace: mounts stay shared, so namespaces
/// bind-mounted by a daemon are visible to it).
pub fn command_in(path: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut cmd = Command::new(program);
    // SAFETY: setns is async-signal-safe; the fd stays open until spawn
    // returns because `file` is moved into the closure.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Runs `f` on a thread that has entered the network namespace at `path`
/// (only that thread: the test's own stays where it is), and returns what
/// it returns. Sockets `f` opens, and threads it starts, live in there.
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> T {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    std::thread::scope(|s| {
        s.spawn(move || {
            // SAFETY: setns on this thread with a valid namespace fd.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                panic!(
                    "setns {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                );
            }
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}
