//! Booting the tier-3 guest under qemu (software emulation: this machine
//! cannot run nested KVM) and reading what its console said.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The guest's init prints this, then the test program's exit status.
pub const EXIT_MARKER: &str = "hostnet-tier3: exit ";

/// One boot of the guest.
#[derive(Clone, Debug)]
pub struct Boot {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub memory_mb: u32,
    pub cpus: u32,
    pub timeout: Duration,
    /// Copy the console to stderr as it comes (for watching a run).
    pub echo: bool,
}

/// What the console showed.
#[derive(Debug)]
pub struct Console {
    pub text: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

/// Boots, waits for the guest to power off (or the timeout), returns the
/// console output.
pub fn boot(b: &Boot) -> Result<Console, String> {
    let started = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-nodefaults", "-no-reboot"])
        .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
        .args(["-m", &b.memory_mb.to_string(), "-smp", &b.cpus.to_string()])
        .arg("-kernel")
        .arg(&b.kernel)
        .arg("-initrd")
        .arg(&b.initrd)
        .args(["-append", "console=ttyS0 quiet loglevel=1 panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("qemu-system-x86_64: {e}"))?;
    let text = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().expect("piped");
    let sink = Arc::clone(&text);
    let echo = b.echo;
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            if echo {
                eprint!("{}", String::from_utf8_lossy(&buf[..n]));
            }
            sink.lock().expect("console").extend_from_slice(&buf[..n]);
        }
    });
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(s);
        }
        if started.elapsed() > b.timeout {
            let _ = child.kill();
            let _ = child.wait();
            timed_out = true;
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = reader.join();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let text = String::from_utf8_lossy(&text.lock().expect("console")).replace('\r', "");
    if status.is_some_and(|s| !s.success()) && text.is_empty() {
        return Err(format!("qemu failed: {}", err.trim()));
    }
    Ok(Console {
        text,
        timed_out,
        elapsed: started.elapsed(),
    })
}

/// A test's result as the guest's libtest printed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed,
    Ignored,
}

/// The tests the console reported, and the test program's exit status
/// (None: the guest never got that far).
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    pub tests: Vec<(String, Verdict)>,
    pub exit: Option<i32>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.exit == Some(0) && !self.tests.iter().any(|(_, v)| *v == Verdict::Failed)
    }
}

/// Reads libtest's `test NAME ... ok|FAILED|ignored` lines and the init's
/// exit marker out of the console text.
pub fn report(console: &str) -> Report {
    let mut tests = Vec::new();
    let mut exit = None;
    for line in console.lines() {
        if let Some(code) = line.trim().strip_prefix(EXIT_MARKER) {
            exit = code.trim().parse().ok();
            continue;
        }
        let Some(rest) = line.trim().strip_prefix("test ") else {
            continue;
        };
        let Some((name, verdict)) = rest.rsplit_once(" ... ") else {
            continue;
        };
        let verdict = match verdict.trim() {
            "ok" => Verdict::Passed,
            "FAILED" => Verdict::Failed,
            v if v.starts_with("ignored") => Verdict::Ignored,
            _ => continue,
        };
        tests.push((name.trim().to_string(), verdict));
    }
    Report { tests, exit }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_takes_libtest_lines_and_the_exit_marker() {
        let console = "[    1.2] random kernel line\n\
                       running 2 tests\n\
                       test vlan_trunk ... ok\n\
                       test bond_failover ... FAILED\n\
                       test later ... ignored, not yet\n\
                       test result: FAILED. 1 passed; 1 failed\n\
                       hostnet-tier3: exit 101\n";
        let r = report(console);
        assert_eq!(
            r.tests,
            [
                ("vlan_trunk".to_string(), Verdict::Passed),
                ("bond_failover".to_string(), Verdict::Failed),
                ("later".to_string(), Verdict::Ignored)
            ]
        );
        assert_eq!(r.exit, Some(101));
        assert!(!r.passed());
    }

    #[test]
    fn a_guest_that_never_reported_did_not_pass() {
        let r = report("Kernel panic - not syncing\n");
        assert_eq!(r.exit, None);
        assert!(!r.passed());
        assert!(report("test a ... ok\nhostnet-tier3: exit 0\n").passed());
    }
}
