//! `tcpdump` writing every frame of one link of a namespace to a file, so a
//! test can assert on what crossed a wire (a switch port, a trunk).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{unique, wait_until, Probe};

/// A running capture; [`Capture::stop`] ends it and gives the frames.
pub struct Capture {
    child: Child,
    file: Option<Pcap>,
}

/// A capture file, removed on drop.
struct Pcap(PathBuf);

impl Drop for Pcap {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Capture {
    /// Starts `tcpdump -i link` inside the namespace at `netns`; returns
    /// once it is listening.
    pub fn start(netns: &Path, link: &str) -> Self {
        let file = Pcap(std::env::temp_dir().join(format!("{}.pcap", unique("wire"))));
        let mut child = Probe::command(netns, "tcpdump")
            // Immediate mode: frames reach the file as they come, not a
            // ring-buffer block at a time (up to a second later), which
            // SIGINT may drop.
            .args(["-i", link, "-n", "-U", "--immediate-mode", "-w"])
            .arg(&file.0)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump (Debian package tcpdump)");
        let mut err = std::io::BufReader::new(child.stderr.take().expect("piped"));
        let mut line = String::new();
        err.read_line(&mut line).expect("tcpdump stderr");
        assert!(line.contains("listening"), "tcpdump: {line}");
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        Capture {
            child,
            file: Some(file),
        }
    }

    /// Whether a frame matching `filter` has been written, within a
    /// deadline. Call it for the frames a test asserts on before
    /// [`Capture::stop`]: what is still in tcpdump's ring buffer at SIGINT
    /// is lost, and under emulation (tier 3) that can be all of it.
    pub fn saw(&self, filter: &str) -> bool {
        let file = &self.file.as_ref().expect("running").0;
        wait_until(Duration::from_secs(10), || {
            Command::new("tcpdump")
                .args(["-n", "-r"])
                .arg(file)
                .arg(filter)
                .output()
                .is_ok_and(|o| !o.stdout.is_empty())
        })
    }

    /// How many frames matching `filter` have been written so far.
    pub fn count(&self, filter: &str) -> usize {
        let file = &self.file.as_ref().expect("running").0;
        Command::new("tcpdump")
            .args(["-n", "-r"])
            .arg(file)
            .arg(filter)
            .output()
            .map_or(0, |o| o.stdout.iter().filter(|&&b| b == b'\n').count())
    }

    /// Stops capturing; the file is complete afterwards.
    pub fn stop(mut self) -> Captured {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        Captured(self.file.take().expect("once"))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The frames of a stopped capture.
pub struct Captured(Pcap);

impl Captured {
    /// The frames matching a pcap `filter`, one line each (`tcpdump -n`).
    pub fn frames(&self, filter: &str) -> Vec<String> {
        self.read(&["-n"], filter)
    }

    /// The same with their link-level headers (`tcpdump -e`: source and
    /// destination MAC first, then 802.1Q tags). `vlan` in a filter shifts
    /// the offsets of what follows it: write it first to match tagged
    /// frames' contents, last to test untagged ones.
    pub fn frames_with_macs(&self, filter: &str) -> Vec<String> {
        self.read(&["-e", "-n", "-t"], filter)
    }

    fn read(&self, flags: &[&str], filter: &str) -> Vec<String> {
        let out = Command::new("tcpdump")
            .args(flags)
            .arg("-r")
            .arg(&self.0 .0)
            .arg(filter)
            .output()
            .expect("tcpdump -r");
        assert!(
            out.status.success(),
            "tcpdump -r {filter}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}
