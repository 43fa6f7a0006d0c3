//! Real etcd servers (Debian's `etcd-server`, 3.4) for cluster-mode tests:
//! one member on a namespace's loopback, or a cluster of members each in
//! its own namespace on a [`PhysicalNet`]'s switch. Members are killed and
//! their data directories removed on drop; a member dies with the thread
//! that started it (`PR_SET_PDEATHSIG`), so a killed test leaves none.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::netns::command_in;
use crate::physical::{find_program, missing_tool};
use crate::{unique, wait_until, Netns, PhysicalNet};

/// Where Debian installs the server.
const ETCD: &str = "/usr/bin/etcd";

/// The first member's address on a physical network (then .22, .23).
const FIRST_MEMBER: u8 = 21;

/// An etcd cluster of one or more members.
pub struct EtcdCluster {
    members: Vec<Member>,
    dir: PathBuf,
    tls: Option<Pki>,
}

/// A throwaway CA with a server certificate (for 127.0.0.1) and a client
/// certificate, made with the `openssl` command in the cluster's directory.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    fn make(dir: &Path) -> Self {
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("run openssl (apt-get install openssl)");
            assert!(
                out.status.success(),
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=hostnet-test-ca",
                ],
            ]
            .concat(),
        );
        for (name, ext) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
            ),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            std::fs::write(dir.join(format!("{name}.ext")), ext).expect("ext file");
            let (key, csr, pem, extfile) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
                format!("{name}.ext"),
            );
            openssl(
                &[
                    &["req"][..],
                    &ec,
                    &[
                        "-keyout",
                        &key,
                        "-out",
                        &csr,
                        "-subj",
                        &format!("/CN={name}"),
                    ],
                ]
                .concat(),
            );
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "1",
                "-extfile",
                &extfile,
            ]);
        }
        Pki {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        }
    }
}

struct Member {
    name: String,
    netns: Netns,
    addr: String,
    child: Option<Child>,
}

/// The etcd server, if installed; otherwise `skipped:` (or a panic under
/// `HOSTNET_REQUIRE_PRIV=1`) and None.
pub fn etcd_server(test: &str) -> Option<PathBuf> {
    let found = find_program("etcd", &["/usr/bin"]).filter(|p| p.is_file());
    if found.is_none() {
        missing_tool(test, "etcd is not installed (apt-get install etcd-server)");
    }
    found
}

impl EtcdCluster {
    /// One member on the loopback of a namespace of its own, at
    /// 127.0.0.1:2379 there; clients run in that namespace ([`crate::run_in`]).
    pub fn single(tag: &str) -> Self {
        let netns = Netns::new(&unique(&format!("{tag}etcd")));
        Self::start(vec![(netns, "127.0.0.1".to_string())], false)
    }

    /// Like [`EtcdCluster::single`], but clients must speak TLS
    /// (`https://127.0.0.1:2379`) with a certificate of the cluster's CA
    /// ([`EtcdCluster::pki`]).
    pub fn single_tls(tag: &str) -> Self {
        let netns = Netns::new(&unique(&format!("{tag}etcd")));
        Self::start(vec![(netns, "127.0.0.1".to_string())], true)
    }

    /// The TLS files of a TLS cluster.
    pub fn pki(&self) -> Option<&Pki> {
        self.tls.as_ref()
    }

    /// `n` members, each in a namespace plugged into `phys`'s switch at
    /// 192.0.2.21, .22, …: every host of `phys` reaches them directly.
    pub fn on_switch(phys: &mut PhysicalNet, n: usize) -> Self {
        let members = (0..n)
            .map(|i| {
                let netns = phys.plug(&format!("etcd{}", i + 1));
                let addr = format!("192.0.2.{}", usize::from(FIRST_MEMBER) + i);
                netns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
                (netns, addr)
            })
            .collect();
        Self::start(members, false)
    }

    fn start(spots: Vec<(Netns, String)>, tls: bool) -> Self {
        let dir = std::env::temp_dir().join(unique("etcd"));
        std::fs::create_dir_all(&dir).expect("etcd dir");
        let tls = tls.then(|| Pki::make(&dir));
        let members = spots
            .into_iter()
            .enumerate()
            .map(|(i, (netns, addr))| Member {
                name: format!("m{}", i + 1),
                netns,
                addr,
                child: None,
            })
            .collect();
        let mut cluster = EtcdCluster { members, dir, tls };
        for i in 0..cluster.members.len() {
            cluster.spawn(i);
        }
        for i in 0..cluster.members.len() {
            cluster.wait_healthy(i);
        }
        cluster
    }

    /// The client URLs, as `hostnetd --store` takes them.
    pub fn endpoints(&self) -> String {
        let list: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}:2379", m.addr))
            .collect();
        let scheme = if self.tls.is_some() { "https" } else { "etcd" };
        format!("{scheme}://{}", list.join(","))
    }

    /// `hostnetd` on host `i` of `phys` as a member of this cluster (host
    /// ID `host<i+1>`), with `extra` arguments.
    pub fn daemon_on(&self, phys: &PhysicalNet, i: usize, extra: &[&str]) -> crate::Daemon {
        let host_id = format!("host{}", i + 1);
        let store = self.endpoints();
        let mut args = vec!["--store", &store, "--host-id", &host_id];
        args.extend_from_slice(extra);
        crate::Daemon::start(phys.host(i).netns.path(), &args)
    }

    /// The namespace of member `i` (0-based).
    pub fn netns(&self, i: usize) -> &Path {
        self.members[i].netns.path()
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are none (never: a cluster has a member).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// `kill -9` member `i` and wait for it to be gone.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start member `i` again on its data directory; waits until it
    /// answers as healthy (for a cluster, that needs a quorum up).
    pub fn restart(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} is running");
        self.spawn(i);
        self.wait_healthy(i);
    }

    /// Start every stopped member again (together: a cluster needs a
    /// quorum before any member is healthy) and wait until all are.
    pub fn restart_all(&mut self) {
        let stopped: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].child.is_none())
            .collect();
        for &i in &stopped {
            self.spawn(i);
        }
        for i in stopped {
            self.wait_healthy(i);
        }
    }

    /// The member that leads the cluster now (asked of the first running
    /// member that answers etcd's status call).
    pub fn leader(&self) -> usize {
        for m in self.members.iter().filter(|m| m.child.is_some()) {
            let addr = format!("{}:2379", m.addr);
            let Some(status) = crate::run_in(m.netns.path(), || {
                post(&addr, "/v3/maintenance/status", "{}")
            }) else {
                continue;
            };
            let field = |name: &str| -> Option<String> {
                let at = status.find(&format!("\"{name}\":\""))? + name.len() + 4;
                Some(status[at..].split('"').next()?.to_string())
            };
            let (Some(leader), Some(me)) = (field("leader"), field("member_id")) else {
                continue;
            };
            // Ask the leader itself if this is not it.
            if leader == me {
                return self
                    .members
                    .iter()
                    .position(|x| x.addr == m.addr)
                    .expect("member");
            }
            for (i, other) in self
                .members
                .iter()
                .enumerate()
                .filter(|(_, o)| o.child.is_some())
            {
                let addr = format!("{}:2379", other.addr);
                let theirs = crate::run_in(other.netns.path(), || {
                    post(&addr, "/v3/maintenance/status", "{}")
                });
                if theirs.is_some_and(|s| s.contains(&format!("\"member_id\":\"{leader}\""))) {
                    return i;
                }
            }
        }
        panic!("no etcd member knows a leader");
    }

    /// Member `i`'s log.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.log", self.members[i].name)))
            .unwrap_or_default()
    }

    fn spawn(&mut self, i: usize) {
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://{}:2380", m.name, m.addr))
            .collect();
        let token = self
            .dir
            .file_name()
            .expect("dir name")
            .to_string_lossy()
            .to_string();
        let m = &self.members[i];
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://{}:2379", m.addr);
        let peer = format!("http://{}:2380", m.addr);
        let log = std::fs::File::create(self.dir.join(format!("{}.log", m.name))).expect("log");
        let mut cmd = command_in(m.netns.path(), ETCD);
        cmd.args(["--name", &m.name])
            .arg("--data-dir")
            .arg(self.dir.join(&m.name))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &initial.join(",")])
            .args([
                "--initial-cluster-token",
                &token,
                "--initial-cluster-state",
                "new",
            ])
            // Fail over in about a second rather than etcd's default five.
            .args(["--heartbeat-interval", "100", "--election-timeout", "600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(pki) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&pki.server_cert)
                .arg("--key-file")
                .arg(&pki.server_key)
                .arg("--trusted-ca-file")
                .arg(&pki.ca)
                .arg("--client-cert-auth")
                // /health in plain HTTP, for the harness.
                .args(["--listen-metrics-urls", &format!("http://{}:2381", m.addr)]);
        }
        // SAFETY: prctl is async-signal-safe. The member dies with the
        // thread that started it, so a killed test leaves no server behind.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn etcd");
        self.members[i].child = Some(child);
    }

    fn wait_healthy(&mut self, i: usize) {
        let path = self.members[i].netns.path().to_path_buf();
        let port = if self.tls.is_some() { 2381 } else { 2379 };
        let addr = format!("{}:{port}", self.members[i].addr);
        let healthy = wait_until(Duration::from_secs(20), || {
            if let Some(Ok(Some(status))) = self.members[i].child.as_mut().map(|c| c.try_wait()) {
                panic!("etcd member {i} exited with {status}:\n{}", self.log(i));
            }
            let addr = addr.clone();
            crate::run_in(&path, move || health(&addr))
        });
        assert!(healthy, "etcd member {i} is not healthy:\n{}", self.log(i));
    }
}

/// The body of a JSON POST to a member's gateway, if it answers 200.
fn post(addr: &str, path: &str, body: &str) -> Option<String> {
    let mut s =
        std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_millis(500))
            .ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .starts_with("HTTP/1.1 200")
        .then(|| answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()))?
}

/// Whether the member at `addr` says it is healthy (has a leader).
fn health(addr: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect_timeout(
        &addr.parse().expect("member address"),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
