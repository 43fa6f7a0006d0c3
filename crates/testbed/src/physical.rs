//! The multi-host world (tier 2): a physical L2 segment with two or three
//! hosts, the segment's router, an outside host beyond it, and optionally a
//! DHCP server, all in namespaces this process makes.
//!
//! ```text
//!                          outside (203.0.113.2)
//!                             | eth0   routes 192.0.2.0/24, 198.18.0.0/15 via .1
//!                             |
//!                             | eth1 203.0.113.1/24
//!                          router   ip_forward=1, send_redirects=0 (hairpins)
//!                             | eth0 192.0.2.1/24, 198.18.0.1/24, 198.18.1.1/24
//!                             |      [dnsmasq here after start_dhcp]
//!   switch  ==================sw0 (bridge; ports host1 host2 host3 router ...)==
//!              |                  |                  |
//!         eth0 192.0.2.11    eth0 192.0.2.12    eth0 192.0.2.13     (default via 192.0.2.1)
//!           host1              host2              host3             [hostnetd in each,
//!                                                                    after start_daemons]
//! ```
//!
//! Namespaces are named by [`unique`] (`hnt-<pid>-<n>-<tag>…`). On drop the
//! DHCP server and the daemons go first, then the hosts, the router, the
//! outside and the switch; on panic too. Nothing touches the root network
//! namespace: every link is made with `ip -n` inside a namespace of ours.
//!
//! Sysctls are written inside the namespaces (`sysctl` run there), never
//! outside.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hostnet_api::{Client, Kind};
use serde_json::{json, Value};

pub use crate::container::{id, Container};
use crate::netns::command_in;
use crate::{unique, wait_until, Daemon, Netns};

/// The physical subnet the hosts and the router share.
pub const PHYSICAL_SUBNET: &str = "192.0.2.0/24";
/// The router's address on the physical subnet: the hosts' default gateway.
pub const GATEWAY: &str = "192.0.2.1";
/// Further subnets the router is the gateway of, on the same segment (its
/// addresses there are `.1`), for drivers that route across subnets.
pub const EXTRA_SUBNETS: [&str; 2] = ["198.18.0.0/24", "198.18.1.0/24"];
/// The router's address on its link to the outside.
pub const ROUTER_OUTSIDE: &str = "203.0.113.1";
/// The outside host, beyond the router.
pub const OUTSIDE: &str = "203.0.113.2";
/// The most hosts a physical network has.
pub const MAX_HOSTS: usize = 3;

/// The physical address of host `i` (0-based): 192.0.2.11, .12, .13.
pub fn host_addr(i: usize) -> String {
    format!("192.0.2.{}", 11 + i)
}

/// A physical network of hosts behind a switch, with its router and an
/// outside host. See the module docs for the picture.
pub struct PhysicalNet {
    // Torn down explicitly in `Drop`: DHCP and daemons first; then the
    // fields drop in this order.
    dhcp: Option<Dhcp>,
    pub hosts: Vec<Host>,
    pub router: Netns,
    pub outside: Netns,
    pub switch: Netns,
    stations: usize,
}

/// One host on the physical network: its namespace, its physical address
/// on `eth0`, and its `hostnetd` once started.
pub struct Host {
    daemon: Option<Daemon>,
    pub netns: Netns,
    /// The host's address on the physical subnet (e.g. 192.0.2.11).
    pub addr: String,
}

impl PhysicalNet {
    /// Build the switch, `hosts` hosts (1 to [`MAX_HOSTS`]), the router and
    /// the outside; names are tagged with `tag`. Needs root (call
    /// [`crate::require_privileges`] first).
    pub fn new(tag: &str, hosts: usize) -> Self {
        assert!(
            (1..=MAX_HOSTS).contains(&hosts),
            "a physical network has 1 to {MAX_HOSTS} hosts, not {hosts}"
        );
        let switch = Netns::new(&unique(&format!("{tag}sw")));
        switch.ip(&["link", "add", "sw0", "type", "bridge", "stp_state", "0"]);
        switch.ip(&["link", "set", "sw0", "up"]);
        let router = Netns::new(&unique(&format!("{tag}rtr")));
        let outside = Netns::new(&unique(&format!("{tag}out")));
        // Own everything from here on, so a failure below still cleans up.
        let mut net = PhysicalNet {
            dhcp: None,
            hosts: Vec::new(),
            router,
            outside,
            switch,
            stations: 0,
        };

        // The router: on the switch with the gateway addresses of every
        // subnet it routes, and an uplink to the outside.
        net.plug_into_switch(&net.router, "router");
        net.router
            .ip(&["addr", "add", &format!("{GATEWAY}/24"), "dev", "eth0"]);
        for s in EXTRA_SUBNETS {
            let gw = s.replace(".0/24", ".1/24");
            net.router.ip(&["addr", "add", &gw, "dev", "eth0"]);
        }
        net.router.link(
            "eth1",
            &format!("{ROUTER_OUTSIDE}/24"),
            &net.outside,
            "eth0",
            &format!("{OUTSIDE}/24"),
        );
        sysctl(
            &net.router,
            &[
                "net.ipv4.ip_forward=1",
                // Really route a packet back out of the port it came in on
                // (hairpin), instead of telling the sender to go direct.
                "net.ipv4.conf.all.send_redirects=0",
                "net.ipv4.conf.default.send_redirects=0",
                "net.ipv4.conf.eth0.send_redirects=0",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.eth0.rp_filter=0",
            ],
        );
        for back in ["192.0.2.0/24", "198.18.0.0/15"] {
            net.outside
                .ip(&["route", "add", back, "via", ROUTER_OUTSIDE]);
        }

        for i in 0..hosts {
            let netns = Netns::new(&unique(&format!("{tag}host{}", i + 1)));
            net.plug_into_switch(&netns, &format!("host{}", i + 1));
            let addr = host_addr(i);
            netns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            netns.ip(&["route", "add", "default", "via", GATEWAY]);
            net.hosts.push(Host {
                daemon: None,
                netns,
                addr,
            });
        }
        net
    }

    /// Host `i` (0-based: `host(0)` is host1, 192.0.2.11).
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    /// Start a `hostnetd` in every host with the same extra arguments
    /// (e.g. `["--default-subnet", "10.88.0.0/16"]`); waits until each
    /// answers.
    pub fn start_daemons(&mut self, args: &[&str]) {
        std::thread::scope(|s| {
            let started: Vec<_> = self
                .hosts
                .iter()
                .map(|h| {
                    let path = h.netns.path().to_path_buf();
                    s.spawn(move || Daemon::start(&path, args))
                })
                .collect();
            for (h, t) in self.hosts.iter_mut().zip(started) {
                match t.join() {
                    Ok(d) => h.daemon = Some(d),
                    Err(e) => std::panic::resume_unwind(e),
                }
            }
        });
    }

    /// A new namespace on the switch with an `eth0` that is up and has no
    /// address (a DHCP client, a machine of a later driver's test). The
    /// caller owns it; its link goes with it.
    pub fn plug(&mut self, tag: &str) -> Netns {
        self.stations += 1;
        let ns = Netns::new(&unique(tag));
        self.plug_into_switch(&ns, &format!("st{}", self.stations));
        ns
    }

    /// A veth from `ns` (`eth0`, up) to a port of `sw0` named `port`.
    fn plug_into_switch(&self, ns: &Netns, port: &str) {
        ns.ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            port,
            "netns",
            &self.switch.name,
        ]);
        self.switch
            .ip(&["link", "set", port, "master", "sw0", "up"]);
        ns.ip(&["link", "set", "eth0", "up"]);
    }

    /// Give host `i` (0-based) one more uplink to the switch, `ifname` in
    /// the host (up, no address), for teaming two adapters. Returns the
    /// switch's port for it (`host1-eth1`); setting that port down is
    /// the cable pulled at the switch (the host's end loses carrier). The
    /// host's `eth0` is on port `host1` ([`PhysicalNet::switch_port`]).
    pub fn add_uplink(&self, i: usize, ifname: &str) -> String {
        let host = &self.hosts[i];
        let port = format!("host{}-{ifname}", i + 1);
        host.netns.ip(&[
            "link",
            "add",
            ifname,
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            &self.switch.name,
        ]);
        self.switch
            .ip(&["link", "set", &port, "master", "sw0", "up"]);
        host.netns.ip(&["link", "set", ifname, "up"]);
        port
    }

    /// The switch's port for host `i`'s `ifname` (`eth0`, or one made by
    /// [`PhysicalNet::add_uplink`]).
    pub fn switch_port(&self, i: usize, ifname: &str) -> String {
        match ifname {
            "eth0" => format!("host{}", i + 1),
            other => format!("host{}-{other}", i + 1),
        }
    }

    /// Set a port of the switch up or down (down: the host's end loses
    /// carrier, as when its cable is pulled).
    pub fn set_switch_port(&self, port: &str, up: bool) {
        let state = if up { "up" } else { "down" };
        self.switch.ip(&["link", "set", port, state]);
    }

    /// How many packets the router has forwarded so far (the kernel's
    /// `Ip: ForwDatagrams`), to show that a path really went through it.
    pub fn router_forwarded(&self) -> u64 {
        snmp(&self.router, "Ip:", "ForwDatagrams")
    }

    /// How many ICMP redirects the router has sent (it should send none).
    pub fn router_redirects(&self) -> u64 {
        snmp(&self.router, "IcmpMsg:", "OutType5")
    }

    /// Run `dnsmasq` as a DHCP server (no DNS) in the router, on its
    /// switch-facing interface, handing out `range` ("FIRST,LAST", e.g.
    /// "192.0.2.100,192.0.2.199"). Returns false after printing `skipped:`
    /// when dnsmasq is not installed (Debian `dnsmasq-base`); panics
    /// instead under `HOSTNET_REQUIRE_PRIV=1`. Stopped on drop.
    pub fn start_dhcp(&mut self, test: &str, range: &str) -> bool {
        self.start_dhcp_with(test, range, "1h", &[])
    }

    /// [`PhysicalNet::start_dhcp`] with a lease time (dnsmasq's form:
    /// "1h", "2m"; at least 2 minutes) and further dnsmasq arguments, e.g.
    /// `--dhcp-option=option:T1,3` (renew after 3 s) or
    /// `--dhcp-option=option:dns-server,192.0.2.53`.
    pub fn start_dhcp_with(
        &mut self,
        test: &str,
        range: &str,
        lease: &str,
        extra: &[&str],
    ) -> bool {
        assert!(self.dhcp.is_none(), "DHCP already started");
        let Some(dnsmasq) = find_program("dnsmasq", &["/usr/sbin", "/sbin"]) else {
            missing_tool(
                test,
                "dnsmasq is not installed (Debian package dnsmasq-base)",
            );
            return false;
        };
        self.dhcp = Some(Dhcp::start(
            &dnsmasq,
            &self.router,
            "eth0",
            &format!("{range},{lease}"),
            extra,
        ));
        true
    }

    /// The DHCP server, once started.
    pub fn dhcp(&self) -> &Dhcp {
        self.dhcp.as_ref().expect("start_dhcp first")
    }
}

impl Drop for PhysicalNet {
    fn drop(&mut self) {
        self.dhcp = None;
        for h in &mut self.hosts {
            h.daemon = None;
        }
        // The fields follow in declaration order: hosts, router, outside,
        // switch.
    }
}

impl Host {
    /// The host's namespace path (for `Probe::run`, `Probe::serve`).
    pub fn path(&self) -> &Path {
        self.netns.path()
    }

    /// The host's `hostnetd` (after [`PhysicalNet::start_daemons`]).
    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("start_daemons first")
    }

    /// The router namespace of the host's only overlay network (the
    /// daemon bind-mounts it under its state as `router-<id>`).
    pub fn overlay_router(&self) -> PathBuf {
        std::fs::read_dir(self.daemon().dir.join("state").join("netns"))
            .expect("the daemon's namespaces")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("router-"))
            })
            .expect("a router namespace")
    }

    /// The host's `hostnetd`, to restart it.
    pub fn daemon_mut(&mut self) -> &mut Daemon {
        self.daemon.as_mut().expect("start_daemons first")
    }

    /// How many packets the host has routed (not bridged) so far.
    pub fn forwarded(&self) -> u64 {
        snmp(&self.netns, "Ip:", "ForwDatagrams")
    }

    /// A client of the host's `hostnetd`.
    pub fn client(&self) -> Client {
        self.daemon().client()
    }

    /// ID of one of the host's networks, by name.
    pub fn network(&self, name: &str) -> String {
        let n = self
            .client()
            .find_by_name(Kind::Networks, name)
            .expect("list networks")
            .unwrap_or_else(|| panic!("no network {name} on {}", self.netns.name));
        id(&n)
    }

    /// A container on this host: an HCN namespace with one endpoint of
    /// `network` attached, the endpoint having `policies`.
    pub fn container(&self, network: &str, policies: Value) -> Container {
        self.container_with(network, json!({ "Policies": policies }))
    }

    /// A container like [`Host::container`], its endpoint of `network`
    /// having the further fields of `endpoint` (an object), e.g.
    /// `{"IpConfigurations": [{"IpAddress": "192.0.2.50"}]}` for a static
    /// address, or `{"Policies": [...]}`.
    pub fn container_with(&self, network: &str, endpoint: Value) -> Container {
        Container::create(&self.client(), &self.network(network), endpoint)
    }
}

/// A `dnsmasq` DHCP server (DNS off) in a namespace; killed on drop, with
/// its directory.
pub struct Dhcp {
    child: Child,
    dir: PathBuf,
}

impl Dhcp {
    fn start(dnsmasq: &Path, ns: &Netns, interface: &str, range: &str, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(unique("dhcp"));
        std::fs::create_dir_all(&dir).expect("dhcp dir");
        let leases = dir.join("leases");
        let mut cmd = command_in(ns.path(), dnsmasq);
        cmd.args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=0",
            "--bind-interfaces",
            "--user=root",
            "--group=root",
            "--log-facility=-",
            "--dhcp-authoritative",
        ])
        .arg(format!("--interface={interface}"))
        .arg(format!("--dhcp-range={range}"))
        .args(extra)
        .arg(format!("--dhcp-leasefile={}", leases.display()))
        .arg(format!("--pid-file={}", dir.join("pid").display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("log")).expect("dhcp log"));
        // SAFETY: prctl is async-signal-safe. dnsmasq dies with the thread
        // that started it, so a killed test leaves no server behind.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn dnsmasq");
        let mut d = Dhcp { child, dir };
        // Ready once it holds UDP port 67 (0x0043) in the namespace.
        let up = wait_until(Duration::from_secs(5), || {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("dnsmasq exited with {status}:\n{}", d.log());
            }
            let out = command_in(ns.path(), "cat")
                .arg("/proc/net/udp")
                .output()
                .expect("read /proc/net/udp");
            String::from_utf8_lossy(&out.stdout).lines().any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| a.ends_with(":0043"))
            })
        });
        assert!(up, "dnsmasq did not bind port 67:\n{}", d.log());
        d
    }

    /// The lease file as dnsmasq wrote it (one lease a line: expiry, MAC,
    /// IP, hostname, client id).
    pub fn leases(&self) -> String {
        std::fs::read_to_string(self.dir.join("leases")).unwrap_or_default()
    }

    /// The lease of `mac` ("02:4d:00:00:00:01", any case) in the lease
    /// file: (expiry in Unix seconds, address).
    pub fn lease_of(&self, mac: &str) -> Option<(u64, String)> {
        let mac = mac.to_lowercase().replace('-', ":");
        self.leases().lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && f[1].eq_ignore_ascii_case(&mac))
                .then(|| Some((f[0].parse().ok()?, f[2].to_string())))
                .flatten()
        })
    }

    /// dnsmasq's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for Dhcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `sysctl -qw KEY=VALUE...` inside `ns`.
pub fn sysctl(ns: &Netns, settings: &[&str]) {
    let out = ns.output("sysctl", &[&["-qw"], settings].concat());
    assert!(
        out.status.success(),
        "sysctl {settings:?} in {}: {}",
        ns.name,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One counter of `/proc/net/snmp` as `ns` sees it (0 if absent).
fn snmp(ns: &Netns, table: &str, field: &str) -> u64 {
    let out = ns.output("cat", &["/proc/net/snmp"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with(table)).collect();
    let [names, values, ..] = rows.as_slice() else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == field)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// A program on `PATH` or in one of `extra` directories.
pub fn find_program(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(extra.iter().copied())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// A tool a test needs is missing: `skipped:` (false), or a panic under
/// `HOSTNET_REQUIRE_PRIV=1`, as for missing privileges.
pub fn missing_tool(test: &str, why: &str) {
    if std::env::var("HOSTNET_REQUIRE_PRIV").as_deref() == Ok("1") {
        panic!("{test}: {why} (HOSTNET_REQUIRE_PRIV=1)");
    }
    println!("skipped: {test}: {why}");
}

/// A `busybox` that has the `udhcpc` applet, if any.
pub fn udhcpc() -> Option<PathBuf> {
    let bb = find_program("busybox", &["/bin", "/usr/bin"])?;
    let out = Command::new(&bb).arg("--list").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l == "udhcpc")
        .then_some(bb)
}
