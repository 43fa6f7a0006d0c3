//! Driving `hostnet-probe` (the traffic tool) inside namespaces.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::netns::command_in;

/// A probe server running in a namespace; killed on drop.
pub struct Probe {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Probe {
    /// Where the probe binary is (built with the test crate).
    pub fn binary() -> PathBuf {
        crate::workspace_binary("hostnet-probe")
    }

    /// Start `hostnet-probe ARGS` in `netns` and wait for its `ready` line.
    pub fn serve(netns: &Path, args: &[&str]) -> Self {
        let mut child = command_in(netns, Self::binary())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn probe");
        let out = child.stdout.take().expect("stdout");
        let rx = lines_of(out);
        let probe = Probe { child, lines: rx };
        let first = probe.next_line();
        assert_eq!(
            first.as_deref(),
            Some("ready"),
            "probe {args:?} did not start"
        );
        probe
    }

    /// The next line the server printed, waiting up to 5 s.
    pub fn next_line(&self) -> Option<String> {
        self.lines
            .recv_timeout(std::time::Duration::from_secs(5))
            .ok()
    }

    /// The lines the server has printed so far, without waiting.
    pub fn drain(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Run a one-shot probe client in `netns`; returns (success, stdout).
    pub fn run(netns: &Path, args: &[&str]) -> (bool, String) {
        let out = command_in(netns, Self::binary())
            .args(args)
            .output()
            .expect("run probe");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    }

    /// A plain command in `netns` (for `ip`, `nft` inspection).
    pub fn command(netns: &Path, program: &str) -> Command {
        command_in(netns, program)
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A long-lived TCP connection driven line by line (`tcp-session`), to
/// show that a connection survives something.
pub struct Session {
    child: Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Session {
    /// Connect from `netns` to `to` and keep the connection open.
    pub fn open(netns: &Path, to: &str) -> Self {
        Self::spawn(netns, &["tcp-session", to])
    }

    /// A `tcp-push` server in `netns`, listening at `at`: once a client
    /// connects, each [`Session::say`] is sent by the server first.
    pub fn push_server(netns: &Path, at: &str) -> Self {
        Self::spawn(netns, &["tcp-push", at])
    }

    fn spawn(netns: &Path, args: &[&str]) -> Self {
        let to = args.join(" ");
        let mut child = command_in(netns, Probe::binary())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn session");
        let stdin = child.stdin.take().expect("stdin");
        let out = child.stdout.take().expect("stdout");
        let rx = lines_of(out);
        let s = Session {
            child,
            stdin,
            lines: rx,
        };
        let first = s.lines.recv_timeout(std::time::Duration::from_secs(5));
        assert_eq!(
            first.as_deref(),
            Ok("ready"),
            "session to {to} did not connect"
        );
        s
    }

    /// Send a line and return the echoed line ("" if none came).
    pub fn say(&mut self, line: &str) -> String {
        use std::io::Write;
        let _ = writeln!(self.stdin, "{line}");
        let _ = self.stdin.flush();
        self.lines
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap_or_default()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines a child prints, read on a thread so a test can wait for the
/// next one with a deadline.
fn lines_of(out: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
