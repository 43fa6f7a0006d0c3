//! A real DNS server for the tests: `dnsmasq` (DNS only, no DHCP, no
//! recursion) in a namespace, answering a test zone from a hosts file.
//! Killed on drop, and with the test thread that started it.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::netns::command_in;
use crate::physical::{find_program, missing_tool};
use crate::{unique, wait_until, Netns};

/// dnsmasq serving `hosts` (address, name) on `listen`:53 in a namespace.
pub struct UpstreamDns {
    child: Child,
    dir: PathBuf,
    /// The address it answers on.
    pub listen: String,
}

impl UpstreamDns {
    /// Start it; `None` after `skipped:` when dnsmasq is missing (a panic
    /// under `HOSTNET_REQUIRE_PRIV=1`). Names not in `hosts` get NXDOMAIN
    /// for the zone `test.` (TTL `ttl` seconds on every answer).
    pub fn start(
        test: &str,
        ns: &Netns,
        listen: &str,
        hosts: &[(String, String)],
        ttl: u32,
    ) -> Option<Self> {
        let Some(dnsmasq) = find_program("dnsmasq", &["/usr/sbin", "/sbin"]) else {
            missing_tool(
                test,
                "dnsmasq is not installed (Debian package dnsmasq-base)",
            );
            return None;
        };
        let dir = std::env::temp_dir().join(unique("dns"));
        std::fs::create_dir_all(&dir).expect("dns dir");
        let hosts_file = dir.join("hosts");
        let text: String = hosts.iter().map(|(a, n)| format!("{a} {n}\n")).collect();
        std::fs::write(&hosts_file, text).expect("hosts file");
        let mut cmd = command_in(ns.path(), dnsmasq);
        cmd.args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=53",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--user=root",
            "--group=root",
            "--log-facility=-",
            "--log-queries",
            "--local=/test/",
            "--edns-packet-max=1232",
        ])
        .arg(format!("--listen-address={listen}"))
        .arg(format!("--local-ttl={ttl}"))
        .arg(format!("--addn-hosts={}", hosts_file.display()))
        .arg(format!("--pid-file={}", dir.join("pid").display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("log")).expect("dns log"));
        // SAFETY: prctl is async-signal-safe; dnsmasq dies with the thread
        // that started it, so a killed test leaves no server behind.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn dnsmasq");
        let mut d = UpstreamDns {
            child,
            dir,
            listen: listen.to_string(),
        };
        let server = format!("{listen}:53");
        let up = wait_until(Duration::from_secs(5), || {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("dnsmasq exited with {status}:\n{}", d.log());
            }
            let out = command_in(ns.path(), crate::Probe::binary())
                .args(["dns", &server, "ready.probe.test", "A"])
                .output()
                .expect("probe");
            out.status.success()
        });
        assert!(up, "dnsmasq did not answer on {server}:\n{}", d.log());
        Some(d)
    }

    /// Stop answering without closing the socket (SIGSTOP): queries time out.
    pub fn freeze(&self) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGSTOP) };
    }

    /// How many queries for `name` it logged.
    pub fn queries_for(&self, name: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("query[") && l.contains(&format!(" {name} from")))
            .count()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for UpstreamDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
