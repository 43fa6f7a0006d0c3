//! hostnet-policy-bench: the policy platform's targets (issue 5, item 10).
//!
//! ```text
//! sudo target/release/hostnet-policy-bench [--rules 0,1000,10000] [--lbs 0,1000,10000]
//!     [--onat 0,2000] [--programming 10000] [--backends 10] [--runs 3] [--json]
//!     [--lbs6 0,1000,10000] [--no-datapath] [--no-programming] [--preserve-dip] [--ipv6]
//!     [--overlay 0,1000,10000]
//! ```
//!
//! What the numbers mean and today's values: docs/benchmarks.md.
//!
//! It builds the world of the NAT tests (a host namespace running the
//! release `hostnetd`, an outside namespace on an uplink) and a client
//! container and a control server container on the `nat` network, then:
//!
//! * **ACL ladder**: for each N of `--rules`, a server container whose
//!   endpoint carries N ACL rules (a default-deny ladder: the flow's allow,
//!   N-3 allows for other sources and ports, a block below them); one TCP
//!   flow's throughput (iperf3) and new-connection rate from the client,
//!   each run paired with the same measurement to the control server (no
//!   ACLs) just before it. The same ladder "the iptables way": N rules in
//!   one linear chain (first rule: established and related accepted, as
//!   iptables rule sets do), built by hand in a table of its own in the
//!   same host, on the flow to the control server.
//! * **Load-balancer ladder**: with N of `--lbs` load balancers present
//!   (10 backends each), the flow through one more load balancer's VIP
//!   (one backend); against it kube-proxy's iptables shape, N DNAT rules in
//!   one linear nat chain, the flow's rule last. And the same flow through
//!   a VIP with `EnablePreserveDip` against the plain VIP (its control).
//! * **IPv6 load-balancer ladder**: the same on a dual-stack network, with
//!   N of `--lbs6` IPv6 load balancers (`Flags` 2) present: the flow
//!   through one more IPv6 VIP against the server's own IPv6 address.
//! * **OutBoundNAT ladder**: a flow to the outside from an endpoint with
//!   `OutBoundNAT` while N more such endpoints (5 exceptions each) exist,
//!   against a plain container's masqueraded flow.
//! * **Programming**: `--programming` load balancers with `--backends`
//!   backends each created through the API (total time), the p50/p99 of
//!   creating and deleting one with all of them present, and a restart of
//!   `hostnetd` with all of them: time until it answers (it programs the
//!   kernel from its store before it serves), with a TCP connection through
//!   a VIP open across the restart. With `--ipv6` the same with IPv6 load
//!   balancers (`Flags` 2) on a dual-stack network.
//!
//! * **Overlay ladder** (`--overlay`): the same flow on an Overlay network,
//!   through a VIP its router load balances, with N LBs (remote-endpoint
//!   backends, a SourceVIP) present, against the flow straight to the
//!   server; creates timed on the way up, churn and a restart at the top.
//!
//! Load balancer parts are skipped, saying so, when the daemon answers that
//! it has no load balancers.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hostnet_api::{Client, Kind};
use hostnet_testbed::samples::{median, round, Samples};
use hostnet_testbed::traffic::{connection_rate, echo_server, iperf_client, iperf_server, Proc};
use hostnet_testbed::{id, require_privileges, Container, Daemon, Session, Uplink, OUTSIDE};
use serde_json::{json, Value};

/// Subnet of the `nat` network.
const SUBNET: &str = "10.80.0.0/16";
/// Frontend VIPs of the load balancers present (10.96.0.0/12 as Kubernetes).
const VIP_BASE: u32 = u32::from_be_bytes([10, 96, 0, 0]);
/// The measured load balancer's VIP, outside the others' range.
const MEASURED_VIP: &str = "10.95.0.1";
/// The same load balancer with EnablePreserveDip (port mapping flag 8).
const PRESERVE_DIP_VIP: &str = "10.95.0.2";
/// The dual-stack network of the IPv6 ladder.
const DUAL_SUBNETS: [&str; 2] = ["10.81.0.0/16", "fd00:80::/64"];
/// Frontend VIPs of the IPv6 load balancers present.
const VIP6_BASE: u128 = 0xfd00_0096 << 96;
/// The measured IPv6 load balancer's VIP, outside the others' range.
const MEASURED_VIP6: &str = "fd00:95::1";
const ECHO_PORT: u16 = 80;
const IPERF_PORT: u16 = 5201;
const IPERF_SECONDS: u32 = 3;
const RATE_TIME: Duration = Duration::from_secs(1);
/// Create/delete samples taken with all load balancers present.
const CHURN_SAMPLES: usize = 200;

struct Args {
    rules: Vec<usize>,
    /// The ACL ladder with prefixes and port ranges (`--interval-rules`).
    interval_rules: Vec<usize>,
    lbs: Vec<usize>,
    lbs6: Vec<usize>,
    onat: Vec<usize>,
    programming: usize,
    backends: usize,
    runs: usize,
    json: bool,
    datapath: bool,
    /// Port mapping flags of the programming part's LBs (`--preserve-dip`: 8).
    lb_flags: u32,
    /// The programming part's LBs are IPv6 (`--ipv6`).
    ipv6: bool,
    /// `--overlay 0,1000,10000`: the overlay ladder's rungs (none: skipped).
    overlay: Vec<usize>,
}

fn usage() -> ! {
    eprintln!(
        "usage: hostnet-policy-bench [--rules 0,1000,10000] [--interval-rules 0,1000,10000] [--lbs 0,1000,10000] \
         [--lbs6 0,1000,10000] [--onat 0,2000] [--programming 10000] [--backends 10] [--runs 3] [--json] [--no-datapath] [--preserve-dip] [--ipv6] \
         [--no-programming] [--overlay 0,1000,10000]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        rules: vec![0, 1000, 10000],
        interval_rules: vec![0, 1000, 10000],
        lbs: vec![0, 1000, 10000],
        lbs6: vec![0, 1000, 10000],
        onat: vec![0, 2000],
        programming: 10000,
        backends: 10,
        runs: 3,
        json: false,
        datapath: true,
        lb_flags: 0,
        ipv6: false,
        overlay: Vec::new(),
    };
    let list = |v: Option<String>| -> Vec<usize> {
        v.unwrap_or_else(|| usage())
            .split(',')
            .filter(|x| !x.trim().is_empty())
            .map(|x| x.trim().parse().unwrap_or_else(|_| usage()))
            .collect()
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--rules" => a.rules = list(it.next()),
            "--interval-rules" => a.interval_rules = list(it.next()),
            "--lbs" => a.lbs = list(it.next()),
            "--lbs6" => a.lbs6 = list(it.next()),
            "--onat" => a.onat = list(it.next()),
            "--programming" => a.programming = list(it.next())[0],
            "--backends" => a.backends = list(it.next())[0].max(1),
            "--runs" => a.runs = list(it.next())[0].max(1),
            "--json" => a.json = true,
            "--no-datapath" => a.datapath = false,
            "--no-programming" => a.programming = 0,
            "--preserve-dip" => a.lb_flags = 8,
            "--ipv6" => a.ipv6 = true,
            "--overlay" => a.overlay = list(it.next()),
            _ => usage(),
        }
    }
    a
}

fn progress(msg: &str) {
    eprintln!("hostnet-policy-bench: {msg}");
}

/// The world: the daemon (dropped first), its host and the outside, a
/// client and a control server container on `nat`.
struct World {
    daemon: Daemon,
    uplink: Uplink,
    net: String,
    client: Container,
    control: Server,
}

/// A server container: an echo server on 80 and iperf3 on 5201.
struct Server {
    container: Container,
    _echo: Proc,
    _iperf: Proc,
}

impl Server {
    fn new(c: &Client, net: &str, policies: Vec<Value>) -> Server {
        let container = Container::create(c, net, json!({ "Policies": policies }));
        Server {
            _echo: echo_server(&container.netns, ECHO_PORT),
            _iperf: iperf_server(&container.netns, IPERF_PORT),
            container,
        }
    }

    fn remove(self, c: &Client) {
        let Server { container, .. } = self;
        c.delete(Kind::Endpoints, &container.ep_id)
            .expect("delete endpoint");
        c.delete(Kind::Namespaces, &container.ns_id)
            .expect("delete namespace");
    }
}

impl World {
    fn new() -> World {
        let uplink = Uplink::new("pbench-");
        let daemon = Daemon::start(uplink.host.path(), &["--default-subnet", SUBNET]);
        let c = daemon.client();
        let net = id(&c
            .find_by_name(Kind::Networks, "nat")
            .expect("list networks")
            .expect("no network nat"));
        let client = Container::create(&c, &net, json!({}));
        let control = Server::new(&c, &net, Vec::new());
        World {
            daemon,
            uplink,
            net,
            client,
            control,
        }
    }

    fn api(&self) -> Client {
        self.daemon
            .client()
            .with_timeout(Some(Duration::from_secs(120)))
    }

    /// Load (or with `None` delete) a table of the host namespace by hand.
    fn nft(&self, script: &str) {
        let mut child = self
            .uplink
            .host
            .command("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn nft");
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), script.as_bytes())
            .expect("write nft script");
        drop(child.stdin.take());
        assert!(child.wait().expect("nft").success(), "nft -f failed");
    }
}

/// One measurement: Gbit/s of one flow and new connections per second.
#[derive(Clone, Copy)]
struct Flow {
    gbps: f64,
    conns: f64,
}

fn measure(from: &Path, to: &str) -> Flow {
    let addr: SocketAddr = match to.contains(':') {
        true => format!("[{to}]:{ECHO_PORT}"),
        false => format!("{to}:{ECHO_PORT}"),
    }
    .parse()
    .expect("addr");
    Flow {
        gbps: iperf_client(from, to, IPERF_PORT, IPERF_SECONDS),
        conns: connection_rate(from, addr, RATE_TIME),
    }
}

/// One rung of a ladder: `runs` pairs (control, subject).
struct Rung {
    ladder: &'static str,
    n: usize,
    pairs: Vec<(Flow, Flow)>,
}

impl Rung {
    fn take(
        ladder: &'static str,
        n: usize,
        runs: usize,
        mut pair: impl FnMut() -> (Flow, Flow),
    ) -> Rung {
        progress(&format!("{ladder}: N={n}"));
        Rung {
            ladder,
            n,
            pairs: (0..runs).map(|_| pair()).collect(),
        }
    }

    fn ratios(&self, f: impl Fn(&Flow) -> f64) -> f64 {
        median(
            &self
                .pairs
                .iter()
                .map(|(ctl, x)| f(x) / f(ctl))
                .collect::<Vec<_>>(),
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "ladder": self.ladder,
            "n": self.n,
            "gbps_median": round(median(&self.pairs.iter().map(|p| p.1.gbps).collect::<Vec<_>>())),
            "conns_per_second_median": median(&self.pairs.iter().map(|p| p.1.conns).collect::<Vec<_>>()).round(),
            "gbps_vs_control": round(self.ratios(|f| f.gbps)),
            "conns_vs_control": round(self.ratios(|f| f.conns)),
        })
    }
}

// ---------------------------------------------------------------- ACL ladder

fn acl(id: String, action: &str, dir: &str, prio: u32, extra: Value) -> Value {
    let mut s = json!({ "Id": id, "Action": action, "Direction": dir, "Priority": prio });
    s.as_object_mut()
        .expect("object")
        .extend(extra.as_object().expect("object").clone());
    json!({ "Type": "ACL", "Settings": s })
}

/// A default-deny ladder of `n` rules (none for 0) that lets the bench's
/// flow in: its allow, `n - 3` allows of other sources and ports, outbound
/// allowed, every other inbound packet blocked.
fn acl_ladder(n: usize) -> Vec<Value> {
    acl_ladder_of(n, |i| {
        let src = std::net::Ipv4Addr::from(u32::from_be_bytes([198, 18, 0, 0]) + i as u32);
        json!({ "Protocols": "6", "LocalPorts": (10000 + i % 20000).to_string(), "RemoteAddresses": format!("{src}/32") })
    })
}

/// The ladder with interval-shaped noise: rule `i` allows a prefix of
/// its own (/27 to /30, disjoint from the others' in 100.64.0.0/10) to an
/// unaligned range of 1 to 23 ports, so its boxes are several aligned
/// blocks of about twenty shapes in all.
fn interval_acl_ladder(n: usize) -> Vec<Value> {
    acl_ladder_of(n, |i| {
        let base = u32::from_be_bytes([100, 64, 0, 0]) + 32 * i as u32;
        let len = 27 + i % 4;
        let first = 10000 + (i % 50) * 7;
        json!({
            "Protocols": "6",
            "LocalPorts": format!("{first}-{}", first + i % 23),
            "RemoteAddresses": format!("{}/{len}", std::net::Ipv4Addr::from(base)),
        })
    })
}

/// A default-deny ladder of `n` rules whose `n - 3` others are `noise(i)`.
fn acl_ladder_of(n: usize, noise: impl Fn(usize) -> Value) -> Vec<Value> {
    if n == 0 {
        return Vec::new();
    }
    let mut v = vec![
        acl(
            "flow".into(),
            "Allow",
            "In",
            100,
            json!({ "Protocols": "6", "LocalPorts": format!("{ECHO_PORT},{IPERF_PORT}"), "RemoteAddresses": SUBNET }),
        ),
        acl("out".into(), "Allow", "Out", 100, json!({})),
        acl("deny".into(), "Block", "In", 4000, json!({})),
    ];
    for i in 0..n.saturating_sub(3) {
        v.push(acl(
            format!("noise-{i}"),
            "Allow",
            "In",
            200 + (i % 1000) as u32,
            noise(i),
        ));
    }
    v.truncate(n);
    v
}

/// The same rules as one linear chain, the way iptables evaluates them:
/// every new connection's first packet tries each rule in turn.
fn linear_acl_table(n: usize, server: &str) -> String {
    let mut s = String::from(
        "table inet hnt_linear {\n chain forward {\n  type filter hook forward priority filter - 20; policy accept;\n  ct state established,related accept\n",
    );
    for i in 0..n.saturating_sub(1) {
        let src = std::net::Ipv4Addr::from(u32::from_be_bytes([198, 18, 0, 0]) + i as u32);
        s.push_str(&format!(
            "  ip saddr {src} ip daddr {server} tcp dport {} accept\n",
            10000 + i % 20000
        ));
    }
    s.push_str(&format!(
        "  ip daddr {server} tcp dport {{ {ECHO_PORT}, {IPERF_PORT} }} accept\n }}\n}}\n"
    ));
    s
}

/// The interval-shaped ladder's rungs (no iptables twin: the exact
/// ladder's is the comparison).
fn interval_acl_rungs(w: &World, rules: &[usize], runs: usize) -> Vec<Rung> {
    let c = w.api();
    let from = w.client.netns.clone();
    let ctl = w.control.container.ip.clone();
    let mut out = Vec::new();
    for &n in rules {
        let t = Instant::now();
        let server = Server::new(&c, &w.net, interval_acl_ladder(n));
        progress(&format!(
            "acl: endpoint with {n} interval-shaped rules created in {:.0} ms",
            t.elapsed().as_secs_f64() * 1e3
        ));
        let ip = server.container.ip.clone();
        out.push(Rung::take(
            "hostnet ACL rules (prefixes, ranges)",
            n,
            runs,
            || (measure(&from, &ctl), measure(&from, &ip)),
        ));
        server.remove(&c);
    }
    out
}

fn acl_ladder_rungs(w: &World, rules: &[usize], runs: usize) -> Vec<Rung> {
    let c = w.api();
    let mut out = Vec::new();
    let from = w.client.netns.clone();
    let ctl = w.control.container.ip.clone();
    for &n in rules {
        let t = Instant::now();
        let server = Server::new(&c, &w.net, acl_ladder(n));
        progress(&format!(
            "acl: endpoint with {n} rules created in {:.0} ms",
            t.elapsed().as_secs_f64() * 1e3
        ));
        let ip = server.container.ip.clone();
        out.push(Rung::take("hostnet ACL rules", n, runs, || {
            (measure(&from, &ctl), measure(&from, &ip))
        }));
        server.remove(&c);
    }
    for &n in rules.iter().filter(|&&n| n > 0) {
        let table = linear_acl_table(n, &ctl);
        out.push(Rung::take("linear chain (iptables way)", n, runs, || {
            let base = measure(&from, &ctl);
            w.nft(&table);
            let x = measure(&from, &ctl);
            w.nft("delete table inet hnt_linear\n");
            (base, x)
        }));
    }
    out
}

// ------------------------------------------------------- OutBoundNAT ladder

fn outbound_nat(exceptions: &[String]) -> Value {
    json!({ "Type": "OutBoundNAT", "Settings": { "Exceptions": exceptions } })
}

/// A connection's first packet to the outside from an endpoint with
/// `OutBoundNAT` walks two interval lookups of every endpoint's exception
/// ranges; with N more such endpoints of 5 exceptions each present,
/// against a plain (masqueraded) container's flow to the same server.
fn onat_ladder_rungs(w: &World, ladder: &[usize], runs: usize) -> Vec<Rung> {
    let c = w.api();
    let outside = w.uplink.outside.path();
    let _echo = echo_server(outside, ECHO_PORT);
    let _iperf = iperf_server(outside, IPERF_PORT);
    let subject = Container::create(
        &c,
        &w.net,
        json!({ "Policies": [outbound_nat(&["203.0.113.0/24".to_string()])] }),
    );
    let from_ctl = w.client.netns.clone();
    let mut others: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for &n in ladder {
        while others.len() < n {
            let i = others.len();
            let ex: Vec<String> = (0..5)
                .map(|k| format!("10.{}.{}.0/24", 100 + k, i % 250))
                .collect();
            let body = json!({ "HostComputeNetwork": w.net, "Policies": [outbound_nat(&ex)] });
            others.push(id(&c
                .create(Kind::Endpoints, &body)
                .expect("create endpoint")));
        }
        out.push(Rung::take("hostnet OutBoundNAT endpoints", n, runs, || {
            (
                measure(&from_ctl, OUTSIDE),
                measure(&subject.netns, OUTSIDE),
            )
        }));
    }
    for e in &others {
        c.delete(Kind::Endpoints, e).expect("delete endpoint");
    }
    c.delete(Kind::Endpoints, &subject.ep_id)
        .expect("delete endpoint");
    c.delete(Kind::Namespaces, &subject.ns_id)
        .expect("delete namespace");
    out
}

// ------------------------------------------------------ load balancer ladder

fn vip(i: usize) -> String {
    std::net::Ipv4Addr::from(VIP_BASE + 1 + i as u32).to_string()
}

fn vip6(i: usize) -> String {
    std::net::Ipv6Addr::from(VIP6_BASE + 1 + i as u128).to_string()
}

fn load_balancer(vip: &str, backends: &[String], flags: u32) -> Value {
    json!({
        "SchemaVersion": { "Major": 2, "Minor": 0 },
        "HostComputeEndpoints": backends,
        "FrontendVIPs": [vip],
        "PortMappings": [{ "Protocol": 6, "InternalPort": ECHO_PORT, "ExternalPort": ECHO_PORT, "Flags": flags }],
    })
}

/// [`load_balancer`], an IPv6 one (`Flags` 2) with `ipv6`.
fn load_balancer_of(vip: &str, backends: &[String], flags: u32, ipv6: bool) -> Value {
    let mut doc = load_balancer(vip, backends, flags);
    if ipv6 {
        doc["Flags"] = json!(2);
    }
    doc
}

/// A dual-stack network and a client container on it, for IPv6 flows:
/// (network ID, client).
fn dual_stack_site(c: &Client, name: &str) -> (String, Container) {
    let subnets: Vec<Value> = DUAL_SUBNETS
        .iter()
        .map(|s| json!({ "IpAddressPrefix": s }))
        .collect();
    let net = id(&c
        .create(
            Kind::Networks,
            &json!({ "Name": name, "Type": "nat", "Ipams": [{ "Type": "Static", "Subnets": subnets }] }),
        )
        .expect("dual-stack network"));
    let client = Container::create(c, &net, json!({}));
    (net, client)
}

fn remove_site(c: &Client, net: &str, client: Container) {
    c.delete(Kind::Endpoints, &client.ep_id)
        .expect("delete endpoint");
    c.delete(Kind::Namespaces, &client.ns_id)
        .expect("delete namespace");
    c.delete(Kind::Networks, net).expect("delete network");
}

/// Whether this daemon has load balancers: a create of one the daemon
/// refuses as unsupported (501) says no.
fn has_load_balancers(c: &Client, backend: &str) -> bool {
    match c.create(
        Kind::LoadBalancers,
        &load_balancer("10.94.0.1", std::slice::from_ref(&backend.to_string()), 0),
    ) {
        Ok(lb) => {
            c.delete(Kind::LoadBalancers, &id(&lb))
                .expect("delete probe LB");
            true
        }
        Err(e) => {
            progress(&format!("skipped: load balancers: {e}"));
            false
        }
    }
}

/// Create load balancers `from..to` over `backends` (IPv6 ones, `Flags`
/// 2, with `ipv6`); their IDs and each create's latency.
fn create_lbs(
    c: &Client,
    from: usize,
    to: usize,
    backends: &[String],
    flags: u32,
    ipv6: bool,
) -> (Vec<String>, Samples) {
    let mut took = Samples::default();
    let ids = (from..to)
        .map(|i| {
            let doc = match ipv6 {
                false => load_balancer(&vip(i), backends, flags),
                true => load_balancer_of(&vip6(i), backends, flags, true),
            };
            let t = Instant::now();
            let lb = c.create(Kind::LoadBalancers, &doc).expect("create LB");
            took.push(t.elapsed());
            id(&lb)
        })
        .collect();
    (ids, took)
}

/// kube-proxy's iptables shape: one nat chain, a DNAT rule per service,
/// tried in turn by every new connection; the measured service's last.
fn linear_nat_table(n: usize, backend: &str) -> String {
    let mut s = String::from(
        "table ip hnt_linear_nat {\n chain prerouting {\n  type nat hook prerouting priority dstnat - 20; policy accept;\n",
    );
    for i in 0..n {
        s.push_str(&format!(
            "  ip daddr {} tcp dport {ECHO_PORT} dnat to {backend}\n",
            vip(i)
        ));
    }
    s.push_str(&format!(
        "  ip daddr {MEASURED_VIP} tcp dport {{ {ECHO_PORT}, {IPERF_PORT} }} dnat to {backend}\n }}\n}}\n"
    ));
    s
}

fn lb_ladder_rungs(w: &World, lbs: &[usize], backends: usize, runs: usize) -> Vec<Rung> {
    let c = w.api();
    let from = w.client.netns.clone();
    let ctl = w.control.container.ip.clone();
    let server = Server::new(&c, &w.net, Vec::new());
    if !has_load_balancers(&c, &server.container.ep_id) {
        server.remove(&c);
        return Vec::new();
    }
    let pool = backend_pool(w, &w.net, backends);
    // The measured LB: both ports of the flow to the one server; and the
    // same with PreserveDip on a VIP of its own.
    let measured: Vec<String> = [(MEASURED_VIP, 0), (PRESERVE_DIP_VIP, 8)]
        .iter()
        .flat_map(|&(vip, flags)| [(vip, flags, ECHO_PORT), (vip, flags, IPERF_PORT)])
        .map(|(vip, flags, port)| {
            let mut doc = load_balancer(vip, std::slice::from_ref(&server.container.ep_id), 0);
            doc["PortMappings"] = json!([{ "Protocol": 6, "InternalPort": port, "ExternalPort": port, "Flags": flags }]);
            id(&c
                .create(Kind::LoadBalancers, &doc)
                .expect("create measured LB"))
        })
        .collect();
    let mut out = Vec::new();
    let mut present: Vec<String> = Vec::new();
    for &n in lbs {
        let (more, _) = create_lbs(&c, present.len(), n.max(present.len()), &pool.ids, 0, false);
        present.extend(more);
        out.push(Rung::take("hostnet load balancers", n, runs, || {
            (measure(&from, &ctl), measure(&from, MEASURED_VIP))
        }));
    }
    // PreserveDip's own cost: its VIP against the plain one, same server.
    out.push(Rung::take(
        "PreserveDip VIP vs the same LB without",
        present.len(),
        runs,
        || {
            (
                measure(&from, MEASURED_VIP),
                measure(&from, PRESERVE_DIP_VIP),
            )
        },
    ));
    for lb in present.iter().chain(&measured) {
        c.delete(Kind::LoadBalancers, lb).expect("delete LB");
    }
    for &n in lbs.iter().filter(|&&n| n > 0) {
        // Every new connection of the namespace walks this chain, the
        // control's too: the control runs before the chain is loaded.
        let table = linear_nat_table(n, &server.container.ip);
        out.push(Rung::take(
            "linear nat chain (iptables way)",
            n,
            runs,
            || {
                let base = measure(&from, &ctl);
                w.nft(&table);
                let x = measure(&from, MEASURED_VIP);
                w.nft("delete table ip hnt_linear_nat\n");
                (base, x)
            },
        ));
    }
    pool.remove(&c);
    server.remove(&c);
    out
}

/// The IPv6 ladder: IPv6 load balancers present on a dual-stack network,
/// the flow through one more IPv6 VIP against the server's own IPv6
/// address (no LB), each from an IPv6 client on that network.
fn lb6_ladder_rungs(w: &World, lbs: &[usize], backends: usize, runs: usize) -> Vec<Rung> {
    if lbs.is_empty() {
        return Vec::new();
    }
    let c = w.api();
    let (net, client) = dual_stack_site(&c, "bench6");
    let control = Server::new(&c, &net, Vec::new());
    let server = Server::new(&c, &net, Vec::new());
    let ipv6_of = |x: &Container| -> String {
        let ep = c.get(Kind::Endpoints, &x.ep_id).expect("endpoint");
        ep["IpConfigurations"][1]["IpAddress"]
            .as_str()
            .expect("an IPv6 address")
            .to_string()
    };
    let ctl6 = ipv6_of(&control.container);
    let measured: Vec<String> = [ECHO_PORT, IPERF_PORT]
        .iter()
        .map(|&port| {
            let mut doc = load_balancer_of(
                MEASURED_VIP6,
                std::slice::from_ref(&server.container.ep_id),
                0,
                true,
            );
            doc["PortMappings"][0]["InternalPort"] = json!(port);
            doc["PortMappings"][0]["ExternalPort"] = json!(port);
            id(&c
                .create(Kind::LoadBalancers, &doc)
                .expect("create measured IPv6 LB"))
        })
        .collect();
    let pool = backend_pool(w, &net, backends);
    let mut out = Vec::new();
    let mut present: Vec<String> = Vec::new();
    for &n in lbs {
        let (more, _) = create_lbs(&c, present.len(), n.max(present.len()), &pool.ids, 0, true);
        present.extend(more);
        out.push(Rung::take("hostnet IPv6 load balancers", n, runs, || {
            (
                measure(&client.netns, &ctl6),
                measure(&client.netns, MEASURED_VIP6),
            )
        }));
    }
    for lb in present.iter().chain(&measured) {
        c.delete(Kind::LoadBalancers, lb).expect("delete LB");
    }
    pool.remove(&c);
    server.remove(&c);
    control.remove(&c);
    remove_site(&c, &net, client);
    out
}

/// Backend endpoints for the load balancers present (containers with no
/// servers: the bench's flows never reach them).
struct Pool {
    containers: Vec<Container>,
    ids: Vec<String>,
}

fn backend_pool(w: &World, net: &str, n: usize) -> Pool {
    let c = w.api();
    let containers: Vec<Container> = (0..n)
        .map(|_| Container::create(&c, net, json!({})))
        .collect();
    let ids = containers.iter().map(|x| x.ep_id.clone()).collect();
    Pool { containers, ids }
}

impl Pool {
    fn remove(self, c: &Client) {
        for x in self.containers {
            c.delete(Kind::Endpoints, &x.ep_id)
                .expect("delete endpoint");
            c.delete(Kind::Namespaces, &x.ns_id)
                .expect("delete namespace");
        }
    }
}

// ------------------------------------------------------------ overlay ladder

/// The overlay ladder's network: one subnet, its router load balances.
const OVERLAY_SUBNET: &str = "10.70.0.0/16";
/// The overlay LBs' backends: remote endpoints (kube-proxy's shape: most
/// of a service's backends are other hosts'), on a host that never answers.
const OVERLAY_PEER_PA: &str = "192.0.2.200";

/// What `--overlay` measured: the rungs, each N's creates (p50/p99 of
/// the creates that brought the LBs to N), churn with all present, and a
/// restart with all present.
struct OverlayLadder {
    rungs: Vec<Rung>,
    creates: Vec<(usize, Samples)>,
    create_one: Samples,
    delete_one: Samples,
    restart: Duration,
    connection_kept: bool,
}

/// Load balancers on an Overlay network (docs/load-balancers.md#on-overlay-networks):
/// with N of `ladder` LBs present (`backends` remote endpoints each, a
/// SourceVIP), one flow from an overlay container through one more LB's
/// VIP to an overlay server, against the same flow straight to the server
/// (the control: bridged, no router); the ratio at N against the ratio
/// at 0 is the LBs' cost per packet. Creates are timed on the way up.
fn overlay_ladder(w: &mut World, ladder: &[usize], backends: usize, runs: usize) -> OverlayLadder {
    let c = w.api();
    let net = id(&c
        .create(
            Kind::Networks,
            &json!({"Name": "ov", "Type": "Overlay",
                "Ipams": [{"Type": "Static", "Subnets": [{"IpAddressPrefix": OVERLAY_SUBNET,
                    "Policies": [{"Type": "VSID", "Settings": {"IsolationId": 4100}}]}]}],
                "SchemaVersion": {"Major": 2, "Minor": 0}}),
        )
        .expect("create overlay network"));
    let client = Container::create(&c, &net, json!({}));
    let server = Server::new(&c, &net, Vec::new());
    let source = c
        .create(Kind::Endpoints, &json!({"HostComputeNetwork": net}))
        .expect("SourceVIP endpoint");
    let source_ip = source["IpConfigurations"][0]["IpAddress"]
        .as_str()
        .expect("SourceVIP address")
        .to_string();
    let remotes: Vec<String> = (0..backends)
        .map(|i| {
            id(&c
                .create(
                    Kind::Endpoints,
                    &json!({"HostComputeNetwork": net, "Flags": 1,
                        "IpConfigurations": [{"IpAddress": format!("10.70.200.{}", i + 1)}],
                        "MacAddress": format!("02-00-0a-46-c8-{:02x}", i + 1),
                        "Policies": [{"Type": "ProviderAddress", "Settings": {"ProviderAddress": OVERLAY_PEER_PA}}]}),
                )
                .expect("remote endpoint"))
        })
        .collect();
    let measured: Vec<String> = [ECHO_PORT, IPERF_PORT]
        .iter()
        .map(|&port| {
            let mut doc = load_balancer(
                MEASURED_VIP,
                std::slice::from_ref(&server.container.ep_id),
                0,
            );
            doc["PortMappings"] =
                json!([{ "Protocol": 6, "InternalPort": port, "ExternalPort": port }]);
            doc["SourceVIP"] = json!(source_ip);
            id(&c
                .create(Kind::LoadBalancers, &doc)
                .expect("create measured overlay LB"))
        })
        .collect();
    let from = client.netns.clone();
    let direct = server.container.ip.clone();
    let (mut rungs, mut creates) = (Vec::new(), Vec::new());
    let mut present: Vec<String> = Vec::new();
    for &n in ladder {
        let (more, took) = create_overlay_lbs(
            &c,
            present.len(),
            n.max(present.len()),
            &remotes,
            &source_ip,
        );
        present.extend(more);
        creates.push((n, took));
        rungs.push(Rung::take(
            "overlay LB (vs straight to the server)",
            n,
            runs,
            || (measure(&from, &direct), measure(&from, MEASURED_VIP)),
        ));
    }
    let (mut create_one, mut delete_one) = (Samples::default(), Samples::default());
    for i in 0..CHURN_SAMPLES.min(present.len()) {
        let mut doc = load_balancer(&vip(present.len() + CHURN_SAMPLES + i), &remotes, 0);
        doc["SourceVIP"] = json!(source_ip);
        let t = Instant::now();
        let lb = id(&c.create(Kind::LoadBalancers, &doc).expect("create LB"));
        create_one.push(t.elapsed());
        let victim = present.swap_remove(i * 7919 % present.len());
        let t = Instant::now();
        c.delete(Kind::LoadBalancers, &victim).expect("delete LB");
        delete_one.push(t.elapsed());
        present.push(lb);
    }
    let mut session = Session::open(&from, &format!("{MEASURED_VIP}:{ECHO_PORT}"));
    assert_eq!(
        session.say("before"),
        "before",
        "echo through the overlay VIP"
    );
    progress(&format!(
        "overlay: restarting hostnetd with {} LBs",
        present.len()
    ));
    let t = Instant::now();
    w.daemon.restart();
    let restart = t.elapsed();
    let connection_kept = session.say("after") == "after";
    drop(session);
    let c = w.api();
    for lb in present.iter().chain(&measured) {
        c.delete(Kind::LoadBalancers, lb).expect("delete LB");
    }
    for ep in remotes.iter().chain([&id(&source)]) {
        c.delete(Kind::Endpoints, ep).expect("delete endpoint");
    }
    c.delete(Kind::Endpoints, &client.ep_id)
        .expect("delete endpoint");
    c.delete(Kind::Namespaces, &client.ns_id)
        .expect("delete namespace");
    server.remove(&c);
    c.delete(Kind::Networks, &net)
        .expect("delete overlay network");
    OverlayLadder {
        rungs,
        creates,
        create_one,
        delete_one,
        restart,
        connection_kept,
    }
}

/// Create overlay load balancers `from..to` over `backends`, from
/// `source_vip`; their IDs and each create's latency.
fn create_overlay_lbs(
    c: &Client,
    from: usize,
    to: usize,
    backends: &[String],
    source_vip: &str,
) -> (Vec<String>, Samples) {
    let mut took = Samples::default();
    let ids = (from..to)
        .map(|i| {
            let mut doc = load_balancer(&vip(i), backends, 0);
            doc["SourceVIP"] = json!(source_vip);
            let t = Instant::now();
            let lb = c.create(Kind::LoadBalancers, &doc).expect("create LB");
            took.push(t.elapsed());
            id(&lb)
        })
        .collect();
    (ids, took)
}

impl OverlayLadder {
    fn to_json(&self) -> Value {
        json!({
            "creates": self.creates.iter().map(|(n, t)| json!({"up_to": n, "create": t.to_json()})).collect::<Vec<_>>(),
            "create_one_with_all_present": self.create_one.to_json(),
            "delete_one_with_all_present": self.delete_one.to_json(),
            "restart_until_serving_seconds": round(self.restart.as_secs_f64()),
            "connection_through_vip_kept_across_restart": self.connection_kept,
        })
    }
}

// --------------------------------------------------------------- programming

struct Programming {
    n: usize,
    backends: usize,
    create_all: Duration,
    /// Creates of the first and the last tenth while all were created.
    first_tenth: Samples,
    last_tenth: Samples,
    create_one: Samples,
    delete_one: Samples,
    /// Restart with the kernel's tables kept (only their difference
    /// from the store applied).
    restart: Duration,
    /// Restart after one of hostnet's tables went (as after a reboot or
    /// an upgrade): the skeleton and every element loaded by `nft -f`,
    /// which every restart did before the tables were kept.
    restart_whole: Duration,
    connection_kept: bool,
}

impl Programming {
    fn to_json(&self) -> Value {
        json!({
            "load_balancers": self.n,
            "backends_each": self.backends,
            "create_all_seconds": round(self.create_all.as_secs_f64()),
            "create_first_tenth": self.first_tenth.to_json(),
            "create_last_tenth": self.last_tenth.to_json(),
            "create_one_with_all_present": self.create_one.to_json(),
            "delete_one_with_all_present": self.delete_one.to_json(),
            "restart_until_serving_seconds": round(self.restart.as_secs_f64()),
            "restart_loading_whole_tables_until_serving_seconds": round(self.restart_whole.as_secs_f64()),
            "connection_through_vip_kept_across_restart": self.connection_kept,
        })
    }
}

/// `flags`: the port mapping flags of every LB made (8: PreserveDip);
/// `ipv6`: IPv6 LBs on a dual-stack network.
fn programming(
    w: &mut World,
    n: usize,
    backends: usize,
    flags: u32,
    ipv6: bool,
) -> Option<Programming> {
    let c = w.api();
    let site = ipv6.then(|| dual_stack_site(&c, "bench6p"));
    let net = site.as_ref().map_or(w.net.clone(), |(net, _)| net.clone());
    let client_netns = site
        .as_ref()
        .map_or(w.client.netns.clone(), |(_, client)| client.netns.clone());
    let (vip_of, kept_vip, kept_at): (fn(usize) -> String, &str, String) = match ipv6 {
        false => (vip, MEASURED_VIP, format!("{MEASURED_VIP}:{ECHO_PORT}")),
        true => (
            vip6,
            MEASURED_VIP6,
            format!("[{MEASURED_VIP6}]:{ECHO_PORT}"),
        ),
    };
    let server = Server::new(&c, &net, Vec::new());
    if !has_load_balancers(&c, &server.container.ep_id) {
        server.remove(&c);
        return None;
    }
    let pool = backend_pool(w, &net, backends);
    progress(&format!(
        "programming: creating {n} load balancers with {backends} backends each"
    ));
    let t = Instant::now();
    let (mut ids, each) = create_lbs(&c, 0, n, &pool.ids, flags, ipv6);
    let create_all = t.elapsed();
    let tenth = (n / 10).max(1);
    let (first_tenth, last_tenth) = (each.slice(0, tenth), each.slice(n - tenth, n));
    progress(&format!(
        "programming: {n} created in {:.2} s",
        create_all.as_secs_f64()
    ));
    let (mut create_one, mut delete_one) = (Samples::default(), Samples::default());
    for i in 0..CHURN_SAMPLES {
        let t = Instant::now();
        let lb = c
            .create(
                Kind::LoadBalancers,
                &load_balancer_of(&vip_of(n + i), &pool.ids, flags, ipv6),
            )
            .expect("create LB");
        create_one.push(t.elapsed());
        let victim = ids.swap_remove(i * 7919 % ids.len());
        let t = Instant::now();
        c.delete(Kind::LoadBalancers, &victim).expect("delete LB");
        delete_one.push(t.elapsed());
        ids.push(id(&lb));
    }
    // A connection through a VIP (the server's own LB), open across the restart.
    let kept_lb = id(&c
        .create(
            Kind::LoadBalancers,
            &load_balancer_of(
                kept_vip,
                std::slice::from_ref(&server.container.ep_id),
                flags,
                ipv6,
            ),
        )
        .expect("create LB"));
    let mut session = Session::open(&client_netns, &kept_at);
    assert_eq!(session.say("before"), "before", "echo through the VIP");
    // Timed from the old daemon's exit to the new one answering, which
    // is after it programmed everything.
    progress("programming: restarting hostnetd");
    let mut t = Instant::now();
    w.daemon.restart_with(|| t = Instant::now());
    let restart = t.elapsed();
    let mut connection_kept = session.say("after") == "after";
    progress("programming: restarting hostnetd, one of its tables gone");
    let host = w.uplink.host.path().to_path_buf();
    w.daemon.restart_with(|| {
        let deleted = hostnet_testbed::run_in(&host, || {
            std::process::Command::new("nft")
                .args(["delete", "table", "netdev", "hostnet_dsr"])
                .status()
                .expect("run nft")
        });
        assert!(deleted.success(), "delete table netdev hostnet_dsr");
        t = Instant::now();
    });
    let restart_whole = t.elapsed();
    connection_kept &= session.say("after whole") == "after whole";
    progress(&format!(
        "programming: restart {:.2} s (tables kept), {:.2} s (loaded whole), connection kept: {connection_kept}",
        restart.as_secs_f64(),
        restart_whole.as_secs_f64()
    ));
    drop(session);
    let c = w.api();
    for lb in ids.iter().chain([&kept_lb]) {
        c.delete(Kind::LoadBalancers, lb).expect("delete LB");
    }
    pool.remove(&c);
    server.remove(&c);
    if let Some((net, client)) = site {
        remove_site(&c, &net, client);
    }
    Some(Programming {
        n,
        backends,
        create_all,
        first_tenth,
        last_tenth,
        create_one,
        delete_one,
        restart,
        restart_whole,
        connection_kept,
    })
}

// ---------------------------------------------------------------------- main

fn main() {
    if !require_privileges("hostnet-policy-bench") {
        std::process::exit(1);
    }
    let args = parse_args();
    let mut w = World::new();
    let mut rungs = Vec::new();
    if args.datapath {
        rungs.extend(acl_ladder_rungs(&w, &args.rules, args.runs));
        rungs.extend(interval_acl_rungs(&w, &args.interval_rules, args.runs));
        rungs.extend(lb_ladder_rungs(&w, &args.lbs, args.backends, args.runs));
        rungs.extend(lb6_ladder_rungs(&w, &args.lbs6, args.backends, args.runs));
        rungs.extend(onat_ladder_rungs(&w, &args.onat, args.runs));
    }
    let mut overlay = (!args.overlay.is_empty())
        .then(|| overlay_ladder(&mut w, &args.overlay, args.backends, args.runs));
    if let Some(o) = &mut overlay {
        rungs.append(&mut o.rungs);
    }
    let prog = (args.programming > 0)
        .then(|| {
            programming(
                &mut w,
                args.programming,
                args.backends,
                args.lb_flags,
                args.ipv6,
            )
        })
        .flatten();
    let report = json!({
        "ladders": rungs.iter().map(Rung::to_json).collect::<Vec<_>>(),
        "programming": prog.as_ref().map(Programming::to_json),
        "overlay": overlay.as_ref().map(OverlayLadder::to_json),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
        return;
    }
    println!(
        "{:<32} {:>6} {:>8} {:>10} {:>10} {:>10}",
        "ladder", "N", "Gbit/s", "vs ctl", "conn/s", "vs ctl"
    );
    for r in &rungs {
        let j = r.to_json();
        println!(
            "{:<32} {:>6} {:>8.2} {:>10.3} {:>10.0} {:>10.3}",
            r.ladder,
            r.n,
            j["gbps_median"].as_f64().unwrap_or(f64::NAN),
            r.ratios(|f| f.gbps),
            j["conns_per_second_median"].as_f64().unwrap_or(f64::NAN),
            r.ratios(|f| f.conns),
        );
    }
    if let Some(o) = &overlay {
        for (n, took) in &o.creates {
            println!(
                "overlay: creates up to {n} LBs: p50 {:.2} ms p99 {:.2} ms",
                took.pct(50.0),
                took.pct(99.0)
            );
        }
        println!(
            "overlay: with all present create one p50 {:.2} ms p99 {:.2} ms, delete one p50 {:.2} ms p99 {:.2} ms; restart until serving {:.2} s, connection kept: {}",
            o.create_one.pct(50.0), o.create_one.pct(99.0), o.delete_one.pct(50.0), o.delete_one.pct(99.0),
            o.restart.as_secs_f64(), o.connection_kept
        );
    }
    if let Some(p) = prog {
        println!(
            "programming: {} LBs x {} backends created in {:.2} s (p50 {:.2} ms for the first tenth, {:.2} ms for the last); with all present create one p50 {:.2} ms p99 {:.2} ms, delete one p50 {:.2} ms p99 {:.2} ms; restart until serving {:.2} s (tables kept; {:.2} s loading them whole), connection kept: {}",
            p.n, p.backends, p.create_all.as_secs_f64(), p.first_tenth.pct(50.0), p.last_tenth.pct(50.0), p.create_one.pct(50.0), p.create_one.pct(99.0),
            p.delete_one.pct(50.0), p.delete_one.pct(99.0), p.restart.as_secs_f64(), p.restart_whole.as_secs_f64(), p.connection_kept
        );
    }
}
