//! hostnet-bench: endpoint churn, daemon memory and datapath cost of
//! hostnet's NAT network, side by side with the CNI reference plugins.
//!
//! ```text
//! sudo target/release/hostnet-bench [--n 100,1000] [--json] [--cni N] [--no-traffic] [--ipv6-off]
//! sudo target/release/hostnet-bench --paths [--json] [--runs N] [--rr-only] [--twin-firewall] [--no-br-netfilter]
//! ```
//!
//! What the numbers mean and today's values: docs/benchmarks.md.
//!
//! For each N it builds the world of the NAT tests (a host namespace running
//! the release `hostnetd`, an outside namespace on an uplink), then through
//! the real API client over the socket:
//!
//! * creates N containers: POST namespace, POST endpoint on `nat` with one
//!   TCP port mapping (80 -> 20000+i), PATCH namespace (attach), each call
//!   timed;
//! * reads `hostnetd`'s peak (`VmHWM`) and current (`VmRSS`) memory;
//! * counts what the bridge flooded to an idle container while the others
//!   were created, and splits the CPU time of the create and delete loops;
//! * for the largest N, measures one TCP flow through the published port
//!   (iperf3, outside -> host:20000 -> container 0) and a 2-byte TCP
//!   request/response rate (paired with runs over a bare-veth control
//!   path), with 10 endpoints present, with N present right after creation
//!   and again once the new links are quiet, and with 10 present again while
//!   deleting (A-B-A, to see drift);
//! * deletes them: DELETE endpoint (detaches it), DELETE namespace.
//!
//! Then it runs the same create/delete loop for `--cni` containers (default
//! 100) with the CNI reference plugins (bridge + host-local, portmap,
//! firewall) executed inside a host namespace of their own.
//!
//! `--paths` instead measures each driver's data path (Transparent: same
//! host, to the outside through the router, to the other host; NAT: same
//! host, masqueraded to the outside) on a two-host [`PhysicalNet`], each as
//! a ratio to its twin built by hand with `ip` and `nft` on the same switch
//! in the same run (see "Data path per driver" in docs/benchmarks.md).
//!
//! Everything lives in namespaces this process makes (`hnt-<pid>-…-bench-…`),
//! owned by drop guards; Ctrl-C unwinds through them too. After a SIGKILL,
//! `hostnet-testbed sweep` removes the leftovers.

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hostnet_api::Kind;
use hostnet_testbed::physical::{sysctl, Host, GATEWAY, OUTSIDE as OUTSIDE_ADDR, PHYSICAL_SUBNET};
use hostnet_testbed::samples::{combine, median, round, Samples};
use hostnet_testbed::traffic::{self, echo_server, iperf_server, request_response};
use hostnet_testbed::{
    inspect, unique, wait_until, Daemon, Netns, PhysicalNet, Probe, Uplink, HOST, OUTSIDE,
};
use serde_json::{json, Value};

/// Subnet of the `nat` network: room for 65k endpoints.
const SUBNET: &str = "10.80.0.0/16";
/// Subnet of the CNI bridge (its own host namespace, so no overlap matters).
const CNI_SUBNET: &str = "10.90.0.0/16";
const CNI_DIR: &str = "/usr/lib/cni";
const FIRST_PORT: u16 = 20000;
/// Endpoints present at the "few endpoints" traffic measurement.
const FEW: usize = 10;
/// Repetitions of each traffic measurement (the median is reported).
const RUNS: usize = 3;
const IPERF_SECONDS: u32 = 3;
const RR_TIME: Duration = Duration::from_secs(1);
/// Longest wait for the links' start-up chatter to stop after creation.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Unwind (dropping every guard) if Ctrl-C or SIGTERM arrived.
fn check_interrupt() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        panic!("interrupted: cleaning up");
    }
}

fn progress(msg: &str) {
    eprintln!("[hostnet-bench] {msg}");
}

struct Args {
    ns: Vec<usize>,
    json: bool,
    cni: usize,
    traffic: bool,
    ipv6_off: bool,
    paths: bool,
    path_opts: PathOpts,
}

/// How `--paths` measures.
#[derive(Clone, Copy)]
struct PathOpts {
    /// Runs per side and metric (`--runs`).
    runs: usize,
    /// iperf3 too (`--rr-only` turns it off: it decides nothing on a busy VM).
    iperf: bool,
    /// Experiment `--twin-firewall`: the hand-built ports get hostnet's
    /// endpoint firewall rule, by hand.
    twin_firewall: bool,
    /// Experiment `--no-br-netfilter`: `bridge-nf-call-iptables=0` in every
    /// host namespace of both sides, so bridged IPv4 skips the hosts' inet
    /// hooks and conntrack (see docs/benchmarks.md).
    no_br_netfilter: bool,
    /// `--only DRIVER`: measure that driver's paths only (e.g. overlay).
    only: Option<&'static str>,
    /// Experiment `--router-conntrack`: measure the routed overlay path a
    /// second time with the routers tracking every packet (their
    /// `notrack` chain deleted), to see what that costs.
    router_conntrack: bool,
    /// Experiment `--router-br-netfilter`: measure both overlay paths a
    /// second time with `bridge-nf-call-iptables` (and ip6/arp) back at 1
    /// in the routers, so what their VNI bridges forward passes the
    /// routers' IP hooks, to see what hostnet saves by turning it off.
    router_br_netfilter: bool,
    /// Experiment `--overlay-acl`: both overlay paths again with a
    /// default-deny ladder (TCP in allowed) on A, B and C, so both hosts'
    /// routers filter the subnets' bridges and track the flows; then again
    /// without ACLs and with the routers' ACL rules (base chains, notrack
    /// exemptions) deleted, to see what paths without ACLs pay for them.
    overlay_acl: bool,
}

impl PathOpts {
    /// Whether `--only` lets `driver`'s paths run.
    fn wants(&self, driver: &str) -> bool {
        self.only.is_none_or(|d| d.eq_ignore_ascii_case(driver))
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: hostnet-bench [--n 100,1000] [--json] [--cni N (0: skip)] [--no-traffic] [--ipv6-off]\n\
         \x20      hostnet-bench --paths [--json] [--twin-bridge-filter]\n\
         Must run as root. Builds the world in network namespaces it creates and removes.\n\
         --paths: the data path of each driver (NAT, Transparent, L2Bridge, L2Tunnel, Overlay) on a\n\
         3-host net, each path as a ratio to the same path built by hand (veth, bridge, VXLAN), in one\n\
         run; --only DRIVER measures one driver's paths. --router-conntrack (experiment): the routed\n\
         overlay path again with its routers tracking every packet; --router-br-netfilter\n\
         (experiment): both overlay paths again with br_netfilter on in the routers; --overlay-acl\n\
         (experiment): both overlay paths with ACL ladders on their endpoints, and without the\n\
         routers' ACL rules.\n\
         --runs N: runs per side (default 3); --rr-only: skip iperf3. --twin-firewall (experiment):\n\
         the hand-built container ports get hostnet's endpoint firewall rule, to see what it costs.\n\
         --ipv6-off (an experiment): turn IPv6 off in the host namespace and in each container's\n\
         namespace before its link is made, to measure what the links' IPv6 start-up chatter costs."
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        ns: vec![100, 1000],
        json: false,
        cni: 100,
        traffic: true,
        ipv6_off: false,
        paths: false,
        path_opts: PathOpts {
            runs: 3,
            iperf: true,
            twin_firewall: false,
            no_br_netfilter: false,
            only: None,
            router_conntrack: false,
            router_br_netfilter: false,
            overlay_acl: false,
        },
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--n" => {
                let v = it.next().unwrap_or_else(|| usage());
                args.ns = v
                    .split(',')
                    .map(|s| s.trim().parse().unwrap_or_else(|_| usage()))
                    .collect();
                if args.ns.iter().any(|&n| n == 0 || n > 40000) {
                    usage();
                }
            }
            "--json" => args.json = true,
            "--cni" => {
                args.cni = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--no-traffic" => args.traffic = false,
            "--ipv6-off" => args.ipv6_off = true,
            "--paths" => args.paths = true,
            "--twin-firewall" => args.path_opts.twin_firewall = true,
            "--rr-only" => args.path_opts.iperf = false,
            "--no-br-netfilter" => args.path_opts.no_br_netfilter = true,
            "--router-conntrack" => args.path_opts.router_conntrack = true,
            "--router-br-netfilter" => args.path_opts.router_br_netfilter = true,
            "--overlay-acl" => args.path_opts.overlay_acl = true,
            "--only" => {
                let d = it.next().unwrap_or_else(|| usage());
                args.path_opts.only = Some(Box::leak(d.into_boxed_str()));
            }
            "--runs" => {
                args.path_opts.runs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| (1..=50).contains(&n))
                    .unwrap_or_else(|| usage())
            }
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    args
}

fn main() {
    let args = parse_args();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "hostnet-bench: must run as root (it creates network namespaces, veths and \
             nftables tables inside them); try `sudo {}`",
            std::env::args().collect::<Vec<_>>().join(" ")
        );
        std::process::exit(1);
    }
    for tool in ["ip", "nft"] {
        if Command::new(tool).arg("-V").output().is_err() {
            eprintln!("hostnet-bench: `{tool}` is not installed");
            std::process::exit(1);
        }
    }
    // SAFETY: installing an async-signal-safe handler (an atomic store).
    unsafe {
        let handler: extern "C" fn(libc::c_int) = on_signal;
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
    let iperf = Command::new("iperf3").arg("--version").output().is_ok();
    if args.paths {
        if !iperf {
            eprintln!("hostnet-bench --paths: iperf3 is not installed (apt-get install -y iperf3)");
            std::process::exit(1);
        }
        let report = bench_paths(args.path_opts);
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&report.to_json()).expect("json")
            );
        } else {
            report.print();
        }
        return;
    }
    let traffic_n = if args.traffic {
        args.ns.iter().copied().max()
    } else {
        None
    };
    let mut notes = Vec::new();
    if args.traffic && !iperf {
        notes.push("iperf3 is not installed (apt-get install -y iperf3): no throughput".into());
    }

    let started = Instant::now();
    let control = traffic_n.map(|_| Control::new());
    let mut results = Vec::new();
    for &n in &args.ns {
        let ctl = control.as_ref().filter(|_| traffic_n == Some(n));
        results.push(bench_hostnet(n, ctl, iperf, args.ipv6_off));
    }
    drop(control);
    let cni = if args.cni == 0 {
        None
    } else if !Path::new(CNI_DIR).join("bridge").exists() {
        notes.push(format!(
            "CNI reference plugins not found in {CNI_DIR} \
             (apt-get install -y containernetworking-plugins): no comparison"
        ));
        None
    } else {
        Some(bench_cni(args.cni))
    };
    let total = started.elapsed();
    if args.ipv6_off {
        notes.push(
            "experiment --ipv6-off: IPv6 was turned off in the host namespace and in each \
             container's namespace (between namespace create and endpoint create, untimed) \
             by the bench, not by hostnet"
                .into(),
        );
    }

    let report = Report {
        results,
        cni,
        notes,
        total,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).expect("json")
        );
    } else {
        report.print();
    }
}

// ------------------------------------------------------------------ processes

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The pid of the `hostnetd` serving `socket` (the `Daemon` guard keeps its
/// child private, so find it by its unique socket path in /proc).
fn daemon_pid(socket: &Path) -> Option<u32> {
    let want = socket.as_os_str().as_encoded_bytes();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let mut argv = cmdline.split(|&b| b == 0);
        let is_daemon = argv
            .next()
            .is_some_and(|a0| a0.ends_with(b"/hostnetd") || a0 == b"hostnetd");
        if is_daemon && argv.any(|a| a == want) {
            return Some(pid);
        }
    }
    None
}

/// (VmHWM, VmRSS) of a process, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Machine-wide CPU time (from the first line of /proc/stat) and one
/// process's, in clock ticks, to split a phase's CPU use.
#[derive(Clone, Copy)]
struct CpuMark {
    /// user+nice, system, irq+softirq, idle+iowait, steal.
    machine: [u64; 5],
    /// utime + stime of the process.
    process: u64,
    at: Instant,
}

impl CpuMark {
    fn now(pid: u32) -> CpuMark {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let f: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let g = |i: usize| f.get(i).copied().unwrap_or(0);
        let own = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which may hold spaces): utime is
        // the 14th field of the line, the 12th after ") ".
        let after = own.rsplit_once(") ").map(|x| x.1).unwrap_or_default();
        let t: Vec<u64> = after
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        CpuMark {
            machine: [g(0) + g(1), g(2), g(5) + g(6), g(3) + g(4), g(7)],
            process: t.get(11).copied().unwrap_or(0) + t.get(12).copied().unwrap_or(0),
            at: Instant::now(),
        }
    }
}

/// How a phase used the machine's CPUs.
#[derive(Clone, Copy, Default)]
struct CpuSplit {
    /// Shares of all CPUs' time: user, system, irq+softirq, idle, steal.
    shares: [f64; 5],
    /// hostnetd's CPU seconds over the phase's wall seconds.
    daemon_secs: f64,
    wall_secs: f64,
}

impl CpuSplit {
    fn between(a: &CpuMark, b: &CpuMark) -> CpuSplit {
        let d: Vec<f64> = (0..5)
            .map(|i| b.machine[i].saturating_sub(a.machine[i]) as f64)
            .collect();
        let total: f64 = d.iter().sum::<f64>().max(1.0);
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        CpuSplit {
            shares: [
                d[0] / total,
                d[1] / total,
                d[2] / total,
                d[3] / total,
                d[4] / total,
            ],
            daemon_secs: b.process.saturating_sub(a.process) as f64 / hz,
            wall_secs: (b.at - a.at).as_secs_f64(),
        }
    }

    fn to_json(self) -> Value {
        json!({
            "user": round(self.shares[0]), "system": round(self.shares[1]),
            "irq_softirq": round(self.shares[2]), "idle": round(self.shares[3]),
            "steal": round(self.shares[4]),
            "hostnetd_cpu_seconds": round(self.daemon_secs),
            "wall_seconds": round(self.wall_secs),
        })
    }

    fn describe(self) -> String {
        let p = |x: f64| x * 100.0;
        format!(
            "user {:.0}%, system {:.0}%, softirq {:.0}%, idle {:.0}%; hostnetd {:.1} CPU s in {:.1} s",
            p(self.shares[0]),
            p(self.shares[1]),
            p(self.shares[2]),
            p(self.shares[3]),
            self.daemon_secs,
            self.wall_secs
        )
    }
}

// -------------------------------------------------------------------- hostnet

/// The world of the NAT tests; drop order: the daemon before the hosts.
struct World {
    daemon: Daemon,
    _host: Netns,
    outside: Netns,
}

impl World {
    fn new(ipv6_off: bool) -> World {
        let Uplink { host, outside } = Uplink::new("bench-");
        if ipv6_off {
            disable_ipv6(host.path(), &["all", "default"]);
        }
        let daemon = Daemon::start(host.path(), &["--default-subnet", SUBNET]);
        World {
            daemon,
            _host: host,
            outside,
        }
    }
}

struct Container {
    ns_id: String,
    ep_id: String,
    netns: PathBuf,
}

fn id(v: &Value) -> String {
    v["ID"].as_str().expect("ID in answer").to_string()
}

#[derive(Default)]
struct Traffic {
    /// When: "few", "N fresh", "N settled", "few again".
    label: String,
    /// Endpoints present.
    endpoints: usize,
    /// Gbit/s of each iperf3 run.
    gbps: Vec<f64>,
    /// Request/response round trips per second of each run.
    rr: Vec<f64>,
    /// Request/response over the control path, each run just before its pair.
    ctl_rr: Vec<f64>,
}

/// Each run relative to its control run.
fn normalized(v: &[f64], ctl: &[f64]) -> Vec<f64> {
    v.iter().zip(ctl).map(|(x, c)| x / c).collect()
}

impl Traffic {
    fn rr_vs_control(&self) -> Vec<f64> {
        normalized(&self.rr, &self.ctl_rr)
    }
}

impl Traffic {
    fn to_json(&self) -> Value {
        json!({
            "when": self.label,
            "endpoints": self.endpoints,
            "gbps_runs": self.gbps.iter().map(|x| round(*x)).collect::<Vec<_>>(),
            "gbps_median": round(median(&self.gbps)),
            "rr_per_second_runs": self.rr.iter().map(|x| x.round()).collect::<Vec<_>>(),
            "rr_per_second_median": median(&self.rr).round(),
            "control_rr_per_second_runs": self.ctl_rr.iter().map(|x| x.round()).collect::<Vec<_>>(),
        })
    }
}

struct HostnetResult {
    n: usize,
    ns_create: Samples,
    ep_create: Samples,
    attach: Samples,
    ep_delete: Samples,
    ns_delete: Samples,
    /// Wall time of the create loop, traffic pauses excluded.
    create_wall: f64,
    delete_wall: f64,
    rss_start: f64,
    hwm: f64,
    rss_full: f64,
    rss_end: f64,
    /// Few endpoints, N right after creation, N once quiet, few again
    /// (while deleting).
    traffic: Vec<Traffic>,
    mapping_checked: bool,
    /// Packets container 1 received while the other N-2 were created
    /// (it sends nothing itself: this is what the bridge flooded to it).
    flood_rx: Option<u64>,
    /// Seconds from the end of creation until container 1 received < 3
    /// packets in a second.
    settle_secs: Option<f64>,
    /// CPU use while creating (after the few-endpoint traffic pause) and
    /// while deleting (until the few-again pause).
    cpu_create: CpuSplit,
    cpu_delete: CpuSplit,
}

impl HostnetResult {
    fn create_attach(&self) -> Samples {
        combine(&[&self.ep_create, &self.attach])
    }

    /// create+attach of the first and the last tenth of the endpoints.
    fn create_attach_tenths(&self) -> (Samples, Samples) {
        let all = self.create_attach().0;
        let tenth = (all.len() / 10).max(1);
        (
            Samples(all[..tenth].to_vec()),
            Samples(all[all.len() - tenth..].to_vec()),
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "n": self.n,
            "namespace_create": self.ns_create.to_json(),
            "endpoint_create": self.ep_create.to_json(),
            "attach": self.attach.to_json(),
            "create_attach": self.create_attach().to_json(),
            "create_attach_first_tenth": self.create_attach_tenths().0.to_json(),
            "create_attach_last_tenth": self.create_attach_tenths().1.to_json(),
            "flooded_packets_per_container": self.flood_rx,
            "settle_seconds": self.settle_secs.map(round),
            "cpu_while_creating": self.cpu_create.to_json(),
            "cpu_while_deleting": self.cpu_delete.to_json(),
            "containers_per_second_wall": round(self.n as f64 / self.create_wall),
            "endpoint_delete": self.ep_delete.to_json(),
            "namespace_delete": self.ns_delete.to_json(),
            "teardowns_per_second_wall": round(self.n as f64 / self.delete_wall),
            "hostnetd_rss_mib": {
                "at_start": round(self.rss_start),
                "peak_vmhwm": round(self.hwm),
                "with_n_endpoints": round(self.rss_full),
                "after_delete": round(self.rss_end),
            },
            "last_mapping_answered": self.mapping_checked,
            "traffic": self.traffic.iter().map(Traffic::to_json).collect::<Vec<_>>(),
        })
    }
}

fn bench_hostnet(
    n: usize,
    control: Option<&Control>,
    iperf: bool,
    ipv6_off: bool,
) -> HostnetResult {
    let traffic = control.is_some();
    progress(&format!("hostnet: N={n}: starting the world"));
    let w = World::new(ipv6_off);
    let c = w.daemon.client();
    let pid = daemon_pid(&w.daemon.socket).expect("hostnetd pid not found in /proc");
    let net = id(&c
        .find_by_name(Kind::Networks, "nat")
        .expect("list networks")
        .expect("no network nat"));
    let mut r = HostnetResult {
        n,
        ns_create: Samples::default(),
        ep_create: Samples::default(),
        attach: Samples::default(),
        ep_delete: Samples::default(),
        ns_delete: Samples::default(),
        create_wall: 0.0,
        delete_wall: 0.0,
        rss_start: memory(pid).1,
        hwm: 0.0,
        rss_full: 0.0,
        rss_end: 0.0,
        traffic: Vec::new(),
        mapping_checked: false,
        flood_rx: None,
        settle_secs: None,
        cpu_create: CpuSplit::default(),
        cpu_delete: CpuSplit::default(),
    };

    let few = FEW.min(n);
    let mut containers: Vec<Container> = Vec::with_capacity(n);
    let mut paused = Duration::ZERO;
    let loop_start = Instant::now();
    let mut mark = CpuMark::now(pid);
    for i in 0..n {
        check_interrupt();
        let t0 = Instant::now();
        let ns = c
            .create(
                Kind::Namespaces,
                &json!({ "SchemaVersion": { "Major": 2, "Minor": 0 } }),
            )
            .expect("create namespace");
        let mut t1 = Instant::now();
        r.ns_create.push(t1 - t0);
        if ipv6_off {
            let path = Path::new(ns["NetNsPath"].as_str().expect("NetNsPath"));
            disable_ipv6(path, &["default"]);
            t1 = Instant::now();
        }
        let port = FIRST_PORT + i as u16;
        let ep = c
            .create(
                Kind::Endpoints,
                &json!({
                    "HostComputeNetwork": net,
                    "Policies": [{ "Type": "PortMapping", "Settings": {
                        "Protocol": 6, "InternalPort": 80, "ExternalPort": port } }],
                }),
            )
            .expect("create endpoint");
        let t2 = Instant::now();
        c.attach_endpoint(&id(&ns), &id(&ep)).expect("attach");
        let t3 = Instant::now();
        r.ep_create.push(t2 - t1);
        r.attach.push(t3 - t2);
        containers.push(Container {
            ns_id: id(&ns),
            ep_id: id(&ep),
            netns: PathBuf::from(ns["NetNsPath"].as_str().expect("NetNsPath")),
        });
        if traffic && i + 1 == few && n > few {
            let p = Instant::now();
            progress(&format!("hostnet: N={n}: traffic with {few} endpoints"));
            r.traffic.push(measure(
                &w,
                control.expect("control"),
                &containers[0],
                "few",
                few,
                iperf,
            ));
            paused += p.elapsed();
            mark = CpuMark::now(pid);
        }
    }
    r.cpu_create = CpuSplit::between(&mark, &CpuMark::now(pid));
    let created = Instant::now();
    r.create_wall = (loop_start.elapsed() - paused).as_secs_f64();
    progress(&format!(
        "hostnet: N={n}: created in {:.1} s",
        r.create_wall
    ));

    // The last container's published port answers from outside.
    if let Some(last) = containers.last() {
        let _srv = Probe::serve(&last.netns, &["tcp-serve", "0.0.0.0:80"]);
        let port = FIRST_PORT + (n - 1) as u16;
        let (ok, said) = Probe::run(w.outside.path(), &["tcp-get", &format!("{HOST}:{port}")]);
        r.mapping_checked = ok && said.starts_with(&format!("peer {OUTSIDE}:"));
        assert!(
            r.mapping_checked,
            "the last endpoint's port mapping {port} did not answer: {said}"
        );
    }
    // Container 1 only listens: what it received is the bridge's flooding
    // of the other containers' start-up packets (IPv6 DAD, MLD, RS).
    let quiet = containers.get(1).map(|c| c.netns.clone());
    r.flood_rx = quiet.as_deref().map(|ns| rx_packets(ns, "eth0"));
    if traffic && n > few {
        progress(&format!("hostnet: N={n}: traffic with {n} endpoints"));
        r.traffic.push(measure(
            &w,
            control.expect("control"),
            &containers[0],
            "N fresh",
            n,
            iperf,
        ));
    }
    if let Some(ns) = &quiet {
        progress(&format!(
            "hostnet: N={n}: waiting for the links to go quiet"
        ));
        let mut last = rx_packets(ns, "eth0");
        let settled = wait_until(SETTLE_LIMIT, || {
            std::thread::sleep(Duration::from_secs(1));
            check_interrupt();
            let now = rx_packets(ns, "eth0");
            let calm = now - last < 3;
            last = now;
            calm
        });
        if settled {
            r.settle_secs = Some(created.elapsed().as_secs_f64());
        }
    }
    if traffic && n > few {
        progress(&format!("hostnet: N={n}: traffic with {n} quiet endpoints"));
        r.traffic.push(measure(
            &w,
            control.expect("control"),
            &containers[0],
            "N settled",
            n,
            iperf,
        ));
    }
    (r.hwm, r.rss_full) = memory(pid);

    // Delete in reverse, so container 0 (the traffic server) goes last and
    // the "few endpoints" measurement can be repeated on the way down.
    let mut paused = Duration::ZERO;
    let loop_start = Instant::now();
    let mark = CpuMark::now(pid);
    while let Some(ct) = containers.pop() {
        check_interrupt();
        let t0 = Instant::now();
        c.delete(Kind::Endpoints, &ct.ep_id)
            .expect("delete endpoint");
        let t1 = Instant::now();
        c.delete(Kind::Namespaces, &ct.ns_id)
            .expect("delete namespace");
        let t2 = Instant::now();
        r.ep_delete.push(t1 - t0);
        r.ns_delete.push(t2 - t1);
        if traffic && containers.len() == few && n > few {
            r.cpu_delete = CpuSplit::between(&mark, &CpuMark::now(pid));
            let p = Instant::now();
            progress(&format!(
                "hostnet: N={n}: traffic with {few} endpoints again"
            ));
            r.traffic.push(measure(
                &w,
                control.expect("control"),
                &containers[0],
                "few again",
                few,
                iperf,
            ));
            paused += p.elapsed();
        }
    }
    r.delete_wall = (loop_start.elapsed() - paused).as_secs_f64();
    if r.cpu_delete.wall_secs == 0.0 {
        r.cpu_delete = CpuSplit::between(&mark, &CpuMark::now(pid));
    }
    r.rss_end = memory(pid).1;
    r.hwm = r.hwm.max(memory(pid).0);
    progress(&format!(
        "hostnet: N={n}: deleted in {:.1} s; cleaning up",
        r.delete_wall
    ));
    drop(w);
    r
}

/// A control path: two namespaces joined by a bare veth. Each hostnet
/// request/response run is paired with a run over it, back to back, and
/// also reported relative to it, to take out the VM's drift between
/// measurements a minute apart. (Pairing iperf3 runs did not help: their
/// run-to-run spread of 10-30% is not shared between back-to-back runs.)
struct Control {
    client: Netns,
    server: Netns,
}

const CONTROL_SERVER: &str = "10.99.0.2";

impl Control {
    fn new() -> Control {
        let client = Netns::new(&unique("bench-ctl-client"));
        let server = Netns::new(&unique("bench-ctl-server"));
        client.link(
            "c0",
            "10.99.0.1/24",
            &server,
            "c0",
            &format!("{CONTROL_SERVER}/24"),
        );
        Control { client, server }
    }
}

/// One TCP flow (iperf3) and a request/response rate from the outside
/// namespace to container 0 through its published port, each
/// request/response run paired with one over the control path.
fn measure(
    w: &World,
    ctl: &Control,
    ct: &Container,
    label: &str,
    endpoints: usize,
    iperf: bool,
) -> Traffic {
    let mut t = Traffic {
        label: label.to_string(),
        endpoints,
        ..Traffic::default()
    };
    if iperf {
        let _server = iperf_server(&ct.netns, 80);
        for _ in 0..RUNS {
            check_interrupt();
            t.gbps
                .push(iperf_client(w.outside.path(), HOST, FIRST_PORT));
        }
    }
    let _echo = echo_server(&ct.netns, 80);
    let _control = echo_server(ctl.server.path(), 80);
    let to: SocketAddr = format!("{HOST}:{FIRST_PORT}").parse().expect("addr");
    let ctl_to: SocketAddr = format!("{CONTROL_SERVER}:80").parse().expect("addr");
    for _ in 0..RUNS {
        check_interrupt();
        t.ctl_rr
            .push(request_response(ctl.client.path(), ctl_to, RR_TIME));
        t.rr.push(request_response(w.outside.path(), to, RR_TIME));
    }
    t
}

/// Gbit/s of one `iperf3 -c HOST -p PORT -t 3` from `netns`, client on CPU 0.
fn iperf_client(netns: &Path, host: &str, port: u16) -> f64 {
    traffic::iperf_client(netns, host, port, IPERF_SECONDS)
}

/// Write 1 to net.ipv6.conf.<which>.disable_ipv6 of the namespace at
/// `netns`, from a thread moved into it (/proc/sys/net follows the
/// writing thread's namespace). Only for the --ipv6-off experiment.
fn disable_ipv6(netns: &Path, which: &[&str]) {
    let f = File::open(netns).expect("open netns");
    let paths: Vec<String> = which
        .iter()
        .map(|w| format!("/proc/sys/net/ipv6/conf/{w}/disable_ipv6"))
        .collect();
    std::thread::spawn(move || {
        // SAFETY: setns on a valid fd; only this thread changes namespace.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            panic!("setns: {}", std::io::Error::last_os_error());
        }
        for p in paths {
            std::fs::write(&p, "1").unwrap_or_else(|e| panic!("{p}: {e}"));
        }
    })
    .join()
    .expect("disable_ipv6 thread");
}

/// Packets received by interface `ifname` of the namespace at `netns`, read
/// from /proc/thread-self/net/dev on a thread moved into it.
fn rx_packets(netns: &Path, ifname: &str) -> u64 {
    let f = File::open(netns).expect("open netns");
    let want = format!("{ifname}:");
    std::thread::spawn(move || {
        // SAFETY: setns on a valid fd; only this thread changes namespace.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            panic!("setns: {}", std::io::Error::last_os_error());
        }
        let dev = std::fs::read_to_string("/proc/thread-self/net/dev").expect("net/dev");
        dev.lines()
            .find_map(|l| l.trim_start().strip_prefix(want.as_str()))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .expect("interface in net/dev")
    })
    .join()
    .expect("rx_packets thread")
}

// ------------------------------------------------------------------------ CNI

struct CniResult {
    n: usize,
    ns_create: Samples,
    bridge_add: Samples,
    portmap_add: Samples,
    firewall_add: Samples,
    firewall_del: Samples,
    portmap_del: Samples,
    bridge_del: Samples,
    ns_delete: Samples,
}

impl CniResult {
    /// bridge + host-local, then portmap: what `create+attach` is compared to.
    fn add(&self) -> Samples {
        combine(&[&self.bridge_add, &self.portmap_add])
    }
    fn add_fw(&self) -> Samples {
        combine(&[&self.bridge_add, &self.portmap_add, &self.firewall_add])
    }
    fn del(&self) -> Samples {
        combine(&[&self.portmap_del, &self.bridge_del])
    }
    fn del_fw(&self) -> Samples {
        combine(&[&self.firewall_del, &self.portmap_del, &self.bridge_del])
    }

    fn to_json(&self) -> Value {
        json!({
            "n": self.n,
            "namespace_create_ip_netns_add": self.ns_create.to_json(),
            "bridge_add": self.bridge_add.to_json(),
            "portmap_add": self.portmap_add.to_json(),
            "firewall_add": self.firewall_add.to_json(),
            "add_bridge_portmap": self.add().to_json(),
            "add_bridge_portmap_firewall": self.add_fw().to_json(),
            "firewall_del": self.firewall_del.to_json(),
            "portmap_del": self.portmap_del.to_json(),
            "bridge_del": self.bridge_del.to_json(),
            "del_portmap_bridge": self.del().to_json(),
            "del_firewall_portmap_bridge": self.del_fw().to_json(),
            "namespace_delete_ip_netns_del": self.ns_delete.to_json(),
        })
    }
}

/// Execute one CNI plugin inside `host`; its JSON result (Null for none).
fn cni(host: &Netns, plugin: &str, command: &str, cid: &str, netns: &Path, conf: &Value) -> Value {
    let mut child = host
        .command(Path::new(CNI_DIR).join(plugin))
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", cid)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", CNI_DIR)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{plugin}: {e}"));
    let conf = serde_json::to_vec(conf).expect("conf");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&conf)
        .expect("write conf");
    let out = child.wait_with_output().expect("plugin output");
    assert!(
        out.status.success(),
        "CNI {plugin} {command} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn bench_cni(n: usize) -> CniResult {
    progress(&format!(
        "CNI: N={n}: bridge + host-local, portmap, firewall"
    ));
    let host = Netns::new(&unique("bench-cnihost"));
    let data = TempDir(std::env::temp_dir().join(unique("bench-cni")));
    std::fs::create_dir_all(&data.0).expect("cni data dir");
    let name = "hnbench";
    let bridge = json!({
        "cniVersion": "1.0.0", "name": name, "type": "bridge", "bridge": "cni0",
        "isGateway": true, "ipMasq": true, "hairpinMode": true,
        "ipam": { "type": "host-local", "ranges": [[{ "subnet": CNI_SUBNET }]],
                  "routes": [{ "dst": "0.0.0.0/0" }], "dataDir": data.0 },
    });
    let portmap = |port: u16, prev: &Value| {
        json!({
            "cniVersion": "1.0.0", "name": name, "type": "portmap",
            "capabilities": { "portMappings": true }, "snat": true,
            "runtimeConfig": { "portMappings": [
                { "hostPort": port, "containerPort": 80, "protocol": "tcp" }] },
            "prevResult": prev,
        })
    };
    let firewall = |prev: &Value| {
        json!({ "cniVersion": "1.0.0", "name": name, "type": "firewall",
                "backend": "iptables", "prevResult": prev })
    };
    let mut r = CniResult {
        n,
        ns_create: Samples::default(),
        bridge_add: Samples::default(),
        portmap_add: Samples::default(),
        firewall_add: Samples::default(),
        firewall_del: Samples::default(),
        portmap_del: Samples::default(),
        bridge_del: Samples::default(),
        ns_delete: Samples::default(),
    };
    let mut containers: Vec<(Netns, String, u16, Value)> = Vec::with_capacity(n);
    for i in 0..n {
        check_interrupt();
        let t0 = Instant::now();
        let ns = Netns::new(&unique(&format!("bench-cni{i}")));
        let t1 = Instant::now();
        let cid = format!("hnbench{i}");
        let port = FIRST_PORT + i as u16;
        let res = cni(&host, "bridge", "ADD", &cid, ns.path(), &bridge);
        let t2 = Instant::now();
        let res = cni(
            &host,
            "portmap",
            "ADD",
            &cid,
            ns.path(),
            &portmap(port, &res),
        );
        let t3 = Instant::now();
        let res = cni(&host, "firewall", "ADD", &cid, ns.path(), &firewall(&res));
        let t4 = Instant::now();
        r.ns_create.push(t1 - t0);
        r.bridge_add.push(t2 - t1);
        r.portmap_add.push(t3 - t2);
        r.firewall_add.push(t4 - t3);
        containers.push((ns, cid, port, res));
    }
    progress(&format!("CNI: N={n}: deleting"));
    while let Some((ns, cid, port, res)) = containers.pop() {
        check_interrupt();
        let t0 = Instant::now();
        let mut fw = firewall(&res);
        cni(&host, "firewall", "DEL", &cid, ns.path(), &fw);
        let t1 = Instant::now();
        cni(
            &host,
            "portmap",
            "DEL",
            &cid,
            ns.path(),
            &portmap(port, &res),
        );
        let t2 = Instant::now();
        fw = bridge.clone();
        fw["prevResult"] = res;
        cni(&host, "bridge", "DEL", &cid, ns.path(), &fw);
        let t3 = Instant::now();
        drop(ns);
        let t4 = Instant::now();
        r.firewall_del.push(t1 - t0);
        r.portmap_del.push(t2 - t1);
        r.bridge_del.push(t3 - t2);
        r.ns_delete.push(t4 - t3);
    }
    drop(host);
    drop(data);
    r
}

// --------------------------------------------------------------------- report

struct Report {
    results: Vec<HostnetResult>,
    cni: Option<CniResult>,
    notes: Vec<String>,
    total: Duration,
}

/// Medians of one traffic metric at the four points, and the ratios of the
/// N-endpoint points to the mean of the two few-endpoint points.
struct Ratio {
    few: f64,
    fresh: f64,
    settled: f64,
    few_again: f64,
}

impl Ratio {
    fn of(traffic: &[Traffic], f: impl Fn(&Traffic) -> Vec<f64>) -> Option<Ratio> {
        match traffic {
            [a, b, c, d] if !f(a).is_empty() => Some(Ratio {
                few: median(&f(a)),
                fresh: median(&f(b)),
                settled: median(&f(c)),
                few_again: median(&f(d)),
            }),
            _ => None,
        }
    }
    fn base(&self) -> f64 {
        (self.few + self.few_again) / 2.0
    }
    fn settled_ratio(&self) -> f64 {
        self.settled / self.base()
    }
    fn fresh_ratio(&self) -> f64 {
        self.fresh / self.base()
    }
    fn scaled(&self, k: f64) -> Ratio {
        Ratio {
            few: self.few * k,
            fresh: self.fresh * k,
            settled: self.settled * k,
            few_again: self.few_again * k,
        }
    }
    fn to_json(&self) -> Value {
        json!({ "few": round(self.few), "n_fresh": round(self.fresh),
                "n_settled": round(self.settled), "few_again": round(self.few_again),
                "ratio_settled": round(self.settled_ratio()),
                "ratio_fresh": round(self.fresh_ratio()) })
    }
}

impl Report {
    fn traffic(&self) -> Option<&HostnetResult> {
        self.results.iter().find(|r| r.traffic.len() == 4)
    }

    /// (target, value, met) for each target the run could check.
    fn targets(&self) -> Vec<(String, String, bool)> {
        let mut t = Vec::new();
        if let Some(r) = self
            .results
            .iter()
            .filter(|r| r.n >= 1000)
            .max_by_key(|r| r.n)
        {
            let p50 = r.create_attach().pct(50.0);
            t.push((
                format!("create+attach p50 < 10 ms at N={}", r.n),
                format!("{p50:.2} ms"),
                p50 < 10.0,
            ));
            t.push((
                format!("hostnetd peak RSS < 50 MB at N={}", r.n),
                format!("{:.1} MiB", r.hwm),
                r.hwm * 1.048576 < 50.0,
            ));
        }
        if let Some(r) = self.traffic() {
            if let Some(g) = Ratio::of(&r.traffic, |t| t.gbps.clone()) {
                t.push((
                    format!("throughput at N={} >= 0.95 x at {FEW} (quiet)", r.n),
                    format!("{:.3}", g.settled_ratio()),
                    g.settled_ratio() >= 0.95,
                ));
                t.push((
                    format!("throughput at N={} >= 0.95 x at {FEW} (fresh)", r.n),
                    format!("{:.3}", g.fresh_ratio()),
                    g.fresh_ratio() >= 0.95,
                ));
            }
            if let Some(g) = Ratio::of(&r.traffic, Traffic::rr_vs_control) {
                t.push((
                    format!("req/resp at N={} >= 0.95 x at {FEW} (quiet)", r.n),
                    format!("{:.3}", g.settled_ratio()),
                    g.settled_ratio() >= 0.95,
                ));
            }
        }
        t
    }

    fn to_json(&self) -> Value {
        let traffic = self.traffic().map(|r| {
            json!({
                "n": r.n,
                "gbps": Ratio::of(&r.traffic, |t| t.gbps.clone()).map(|g| g.to_json()),
                "rr_per_second": Ratio::of(&r.traffic, |t| t.rr.clone()).map(|g| g.to_json()),
                "control_rr_per_second": Ratio::of(&r.traffic, |t| t.ctl_rr.clone()).map(|g| g.to_json()),
                "rr_vs_control": Ratio::of(&r.traffic, Traffic::rr_vs_control).map(|g| g.to_json()),
            })
        });
        let comparison = self.cni.as_ref().and_then(|c| {
            let h = self.results.iter().find(|r| r.n == c.n)?;
            Some(json!({
                "n": c.n,
                "create_p50_ratio_hostnet_over_cni": round(h.create_attach().pct(50.0) / c.add().pct(50.0)),
                "create_p50_ratio_hostnet_over_cni_with_firewall": round(h.create_attach().pct(50.0) / c.add_fw().pct(50.0)),
                "delete_p50_ratio_hostnet_over_cni": round(h.ep_delete.pct(50.0) / c.del().pct(50.0)),
                "delete_p50_ratio_hostnet_over_cni_with_firewall": round(h.ep_delete.pct(50.0) / c.del_fw().pct(50.0)),
            }))
        });
        json!({
            "hostnet": self.results.iter().map(HostnetResult::to_json).collect::<Vec<_>>(),
            "traffic": traffic,
            "cni": self.cni.as_ref().map(CniResult::to_json),
            "comparison": comparison,
            "targets": self.targets().iter().map(|(t, v, ok)| json!({"target": t, "value": v, "met": ok})).collect::<Vec<_>>(),
            "notes": self.notes,
            "total_seconds": round(self.total.as_secs_f64()),
        })
    }

    fn print(&self) {
        let line = |name: &str, s: &Samples| {
            println!(
                "  {name:<34} {:>8.2} {:>8.2} {:>8.2} {:>9.0}",
                s.pct(50.0),
                s.pct(99.0),
                s.max(),
                s.rate()
            );
        };
        let header = || {
            println!(
                "  {:<34} {:>8} {:>8} {:>8} {:>9}",
                "operation (ms)", "p50", "p99", "max", "per s"
            )
        };
        for r in &self.results {
            println!("hostnet, N = {} endpoints (one TCP port mapping each)", r.n);
            header();
            line("namespace create (POST)", &r.ns_create);
            line("endpoint create (POST)", &r.ep_create);
            line("attach (PATCH namespace)", &r.attach);
            line("create+attach", &r.create_attach());
            let (first, last) = r.create_attach_tenths();
            line("  first tenth of the endpoints", &first);
            line("  last tenth of the endpoints", &last);
            line("endpoint delete (DELETE, detaches)", &r.ep_delete);
            line("namespace delete (DELETE)", &r.ns_delete);
            println!(
                "  containers/s, wall: create {:.0}, delete {:.0}",
                r.n as f64 / r.create_wall,
                r.n as f64 / r.delete_wall
            );
            println!("  CPU while creating: {}", r.cpu_create.describe());
            println!("  CPU while deleting: {}", r.cpu_delete.describe());
            if let Some(f) = r.flood_rx {
                println!(
                    "  packets flooded to an idle container while the others were created: {f}{}",
                    r.settle_secs
                        .map(|s| format!("; quiet by {s:.0} s after the last creation"))
                        .unwrap_or_else(|| format!(
                            "; still not quiet after {} s",
                            SETTLE_LIMIT.as_secs()
                        ))
                );
            }
            println!(
                "  hostnetd memory (MiB): start {:.1}, peak VmHWM {:.1}, VmRSS at N {:.1}, after delete {:.1}",
                r.rss_start, r.hwm, r.rss_full, r.rss_end
            );
            println!();
        }
        if let Some(r) = self.traffic() {
            println!(
                "one TCP flow outside -> {HOST}:{FIRST_PORT} -> container 0 (median of {RUNS})"
            );
            println!(
                "  {:<22} {:>8} {:>9} {:>9} {:>8} {:>9} {:>9}",
                "",
                format!("{FEW} eps"),
                format!("{} fresh", r.n),
                format!("{} quiet", r.n),
                format!("{FEW} again"),
                "ratio qt",
                "ratio fr"
            );
            let row = |name: &str, g: Option<Ratio>| {
                if let Some(g) = g {
                    println!(
                        "  {name:<22} {:>8.2} {:>9.2} {:>9.2} {:>8.2} {:>9.3} {:>9.3}",
                        g.few,
                        g.fresh,
                        g.settled,
                        g.few_again,
                        g.settled_ratio(),
                        g.fresh_ratio()
                    );
                }
            };
            row("iperf3 Gbit/s", Ratio::of(&r.traffic, |t| t.gbps.clone()));
            row(
                "2-byte req/resp k/s",
                Ratio::of(&r.traffic, |t| t.rr.clone()).map(|g| g.scaled(1e-3)),
            );
            row(
                "  control (bare veth)",
                Ratio::of(&r.traffic, |t| t.ctl_rr.clone()).map(|g| g.scaled(1e-3)),
            );
            row(
                "  hostnet / control",
                Ratio::of(&r.traffic, Traffic::rr_vs_control),
            );
            for t in &r.traffic {
                println!(
                    "  runs, {:<10} Gbit/s {:?}, req/resp/s {:?} (control {:?})",
                    t.label,
                    t.gbps.iter().map(|x| round(*x)).collect::<Vec<_>>(),
                    t.rr.iter().map(|x| x.round()).collect::<Vec<_>>(),
                    t.ctl_rr.iter().map(|x| x.round()).collect::<Vec<_>>()
                );
            }
            println!(
                "  ratio = at N / mean(at {FEW}, at {FEW} again); fresh: right after creation, \
                 quiet: once the links' start-up chatter stopped;\n  \
                 each req/resp run is paired with a control run just before it"
            );
            println!();
        }
        if let Some(c) = &self.cni {
            println!("CNI reference plugins, N = {} containers", c.n);
            header();
            line("ip netns add", &c.ns_create);
            line("bridge+host-local ADD", &c.bridge_add);
            line("portmap ADD", &c.portmap_add);
            line("firewall ADD", &c.firewall_add);
            line("ADD bridge+portmap", &c.add());
            line("ADD bridge+portmap+firewall", &c.add_fw());
            line("DEL portmap+bridge", &c.del());
            line("DEL firewall+portmap+bridge", &c.del_fw());
            line("ip netns del", &c.ns_delete);
            if let Some(h) = self.results.iter().find(|r| r.n == c.n) {
                let (ha, hd) = (h.create_attach().pct(50.0), h.ep_delete.pct(50.0));
                println!(
                    "  hostnet/CNI p50: create {:.3} ({:.3} with firewall), delete {:.3} ({:.3} with firewall)",
                    ha / c.add().pct(50.0),
                    ha / c.add_fw().pct(50.0),
                    hd / c.del().pct(50.0),
                    hd / c.del_fw().pct(50.0)
                );
            }
            println!();
        }
        let targets = self.targets();
        if !targets.is_empty() {
            println!("targets");
            for (t, v, ok) in targets {
                println!(
                    "  {:<44} {:>12}  {}",
                    t,
                    v,
                    if ok { "met" } else { "MISSED" }
                );
            }
            println!();
        }
        for n in &self.notes {
            println!("note: {n}");
        }
        println!("total time {:.0} s", self.total.as_secs_f64());
    }
}

// ------------------------------------------------- data path per driver (--paths)

/// Repetitions of each measurement of a path, on each side (the median is
/// reported).
const PATH_IPERF_SECONDS: u32 = 2;
const PATH_RR_TIME: Duration = Duration::from_secs(1);
/// The NAT network of every `hostnetd`, and of the hand-built NAT twin.
const PATH_NAT_SUBNET: &str = "10.88.0.0/16";
/// Port of the iperf3 servers (the echo servers listen on 80).
const IPERF_PORT: u16 = 5201;
/// Port of the `tcp-serve` probe that shows which source address arrived.
const PEER_PORT: u16 = 81;
/// The hostnet Transparent network's name.
const TRANSPARENT: &str = "t1";
/// Static addresses of hostnet's Transparent containers: A and B on host 1,
/// D on host 2 (as in the Transparent matrix tests).
const T_A: &str = "192.0.2.50";
const T_B: &str = "192.0.2.51";
const T_D: &str = "192.0.2.60";
/// The hand-built twins: two hosts on the same switch, and their containers.
const TWIN_HOSTS: [&str; 2] = ["192.0.2.21", "192.0.2.22"];
const TWIN_A: &str = "192.0.2.70";
const TWIN_B: &str = "192.0.2.71";
const TWIN_D: &str = "192.0.2.80";
/// L2Bridge/L2Tunnel endpoints on host 3 (one network at a time).
const L2_NET: &str = "l2";
const L2_A: &str = "192.0.2.52";
const L2_B: &str = "192.0.2.53";
/// Twin of the L2Tunnel hairpin on twin host 2: /32 addresses, the
/// gateway on-link, so even the neighbour is reached through the router.
const TWIN_HP_A: &str = "192.0.2.81";
const TWIN_HP_B: &str = "192.0.2.82";
const TWIN_NAT_GW: &str = "10.88.0.1";
const TWIN_N1: &str = "10.88.0.2";
const TWIN_N2: &str = "10.88.0.3";
/// A path is within target if hostnet reaches this fraction of its twin.
const PATH_TARGET: f64 = 0.95;
/// The Overlay paths' network and containers (hostnet's, then the twin's).
const OVERLAY_NET: &str = "ov";
const OV_A: &str = "10.0.1.10";
const OV_B: &str = "10.0.1.20";
const OV_C: &str = "10.0.2.30";
const TWIN_OV_A: &str = "10.0.1.70";
const TWIN_OV_B: &str = "10.0.1.80";
/// The routed twin's A (host 1, first subnet) and C (host 2, second).
const TWIN_RT_A: &str = "10.3.1.70";
const TWIN_RT_C: &str = "10.3.2.90";

/// One end of a path: a namespace and the address others reach it at.
#[derive(Clone)]
struct End {
    netns: PathBuf,
    ip: String,
}

/// One path, built twice: by hostnet and by hand.
#[derive(Clone)]
struct PathSpec {
    driver: &'static str,
    name: &'static str,
    /// hostnet's source and destination; what the destination sees as the
    /// source address.
    h: (End, End, String),
    /// The twin's.
    t: (End, End, String),
}

struct PathResult {
    driver: &'static str,
    name: &'static str,
    h_gbps: Vec<f64>,
    t_gbps: Vec<f64>,
    h_rr: Vec<f64>,
    t_rr: Vec<f64>,
    /// Source addresses the destination saw (hostnet, twin).
    peers: (String, String),
}

impl PathResult {
    fn gbps_ratio(&self) -> f64 {
        median(&self.h_gbps) / median(&self.t_gbps)
    }
    fn rr_ratio(&self) -> f64 {
        median(&self.h_rr) / median(&self.t_rr)
    }
    /// Best run against best run: on a machine others load, the fastest
    /// run is the one least disturbed, so this ratio is the steadier one.
    fn rr_best_ratio(&self) -> f64 {
        let best = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
        best(&self.h_rr) / best(&self.t_rr)
    }
    fn to_json(&self) -> Value {
        let runs = |v: &[f64], k: f64| v.iter().map(|x| round(x * k)).collect::<Vec<_>>();
        json!({
            "driver": self.driver,
            "path": self.name,
            "source_seen_by_destination": { "hostnet": self.peers.0, "hand_built": self.peers.1 },
            "iperf3_gbps": {
                "hostnet": round(median(&self.h_gbps)),
                "hand_built": round(median(&self.t_gbps)),
                "ratio": round(self.gbps_ratio()),
                "target_met": self.gbps_ratio() >= PATH_TARGET,
                "hostnet_runs": runs(&self.h_gbps, 1.0),
                "hand_built_runs": runs(&self.t_gbps, 1.0),
            },
            "rr_per_second": {
                "hostnet": median(&self.h_rr).round(),
                "hand_built": median(&self.t_rr).round(),
                "ratio": round(self.rr_ratio()),
                "best_run_ratio": round(self.rr_best_ratio()),
                "target_met": self.rr_ratio() >= PATH_TARGET,
                "hostnet_runs": runs(&self.h_rr, 1.0),
                "hand_built_runs": runs(&self.t_rr, 1.0),
            },
        })
    }
}

struct PathsReport {
    paths: Vec<PathResult>,
    opts: PathOpts,
    total: Duration,
}

impl PathsReport {
    fn to_json(&self) -> Value {
        json!({
            "world": "PhysicalNet, 3 hosts, release hostnetd per host",
            "iperf3_seconds": PATH_IPERF_SECONDS,
            "rr_seconds": PATH_RR_TIME.as_secs_f64(),
            "runs": self.opts.runs,
            "target_ratio": PATH_TARGET,
            "twin_has_hostnet_firewall": self.opts.twin_firewall,
            "bridge_nf_call_iptables_off": self.opts.no_br_netfilter,
            "paths": self.paths.iter().map(PathResult::to_json).collect::<Vec<_>>(),
            "total_seconds": round(self.total.as_secs_f64()),
        })
    }

    fn print(&self) {
        println!(
            "data path per driver: hostnet vs the same path built by hand (veth + bridge, \
             nft masquerade for NAT), median of {}, alternating",
            self.opts.runs
        );
        println!(
            "  {:<12} {:<34} {:<18} {:>9} {:>10} {:>7}  target",
            "driver", "path", "metric", "hostnet", "by hand", "ratio"
        );
        let met = |r: f64| {
            if r >= PATH_TARGET {
                "met"
            } else {
                "MISSED"
            }
        };
        for p in &self.paths {
            let (hg, tg) = (median(&p.h_gbps), median(&p.t_gbps));
            let (hr, tr) = (median(&p.h_rr), median(&p.t_rr));
            let driver = if p.h_gbps.is_empty() { p.driver } else { "" };
            let name = if p.h_gbps.is_empty() { p.name } else { "" };
            if !p.h_gbps.is_empty() {
                println!(
                    "  {:<12} {:<34} {:<18} {:>9.2} {:>10.2} {:>7.3}  {}",
                    p.driver,
                    p.name,
                    "iperf3 Gbit/s",
                    hg,
                    tg,
                    p.gbps_ratio(),
                    met(p.gbps_ratio())
                );
            }
            println!(
                "  {:<12} {:<34} {:<18} {:>9.1} {:>10.1} {:>7.3}  {} (best runs: {:.3})",
                driver,
                name,
                "2-byte req/resp k/s",
                hr / 1e3,
                tr / 1e3,
                p.rr_ratio(),
                met(p.rr_ratio()),
                p.rr_best_ratio()
            );
        }
        println!();
        for p in &self.paths {
            println!(
                "  runs {} {}: Gbit/s hostnet {:?} by hand {:?}; req/resp/s hostnet {:?} by hand {:?}; \
                 source seen: hostnet {}, by hand {}",
                p.driver,
                p.name,
                p.h_gbps.iter().map(|x| round(*x)).collect::<Vec<_>>(),
                p.t_gbps.iter().map(|x| round(*x)).collect::<Vec<_>>(),
                p.h_rr.iter().map(|x| x.round()).collect::<Vec<_>>(),
                p.t_rr.iter().map(|x| x.round()).collect::<Vec<_>>(),
                p.peers.0,
                p.peers.1
            );
        }
        println!(
            "  ratio = hostnet median / hand-built median; target: ratio >= {PATH_TARGET}; \
             iperf3 -t {PATH_IPERF_SECONDS} single stream, client CPU 0, server CPU 1; \
             req/resp: 2 bytes each way over one TCP connection, both ends on CPU 0, {} s",
            PATH_RR_TIME.as_secs_f64()
        );
        if self.opts.no_br_netfilter {
            println!(
                "note: experiment --no-br-netfilter: bridge-nf-call-iptables=0 in every host \
                 namespace of both sides"
            );
        }
        if self.opts.twin_firewall {
            println!(
                "note: experiment --twin-firewall: the hand-built container ports carry \
                 hostnet's endpoint firewall rule too"
            );
        }
        println!("total time {:.0} s", self.total.as_secs_f64());
    }
}

/// The hand-built twin of hostnet's world, on the same switch, router and
/// outside: two twin hosts, each a plain bridge `br0` holding its `eth0`
/// (as hostnet's Transparent bridge holds the host's), with plain
/// namespaces on veths into it; on twin host 1 a second bridge `natbr` with
/// two namespaces behind one nft masquerade rule. Dropped before the
/// physical network (the field order of `PathsWorld`).
struct Twin {
    a: Netns,
    b: Netns,
    d: Netns,
    hp_a: Netns,
    hp_b: Netns,
    n1: Netns,
    n2: Netns,
    hosts: Vec<Netns>,
}

impl Twin {
    fn new(phys: &mut PhysicalNet, firewall: bool) -> Twin {
        let mut hosts = Vec::new();
        for (i, addr) in TWIN_HOSTS.iter().enumerate() {
            let h = phys.plug(&format!("bp-twinhost{}", i + 1));
            h.ip(&["link", "add", "br0", "type", "bridge", "stp_state", "0"]);
            h.ip(&["link", "set", "eth0", "master", "br0"]);
            h.ip(&["link", "set", "br0", "up"]);
            h.ip(&["addr", "add", &format!("{addr}/24"), "dev", "br0"]);
            h.ip(&["route", "add", "default", "via", GATEWAY]);
            hosts.push(h);
        }
        let a = twin_container(&hosts[0], "br0", "ta", &format!("{TWIN_A}/24"), GATEWAY);
        let b = twin_container(&hosts[0], "br0", "tb", &format!("{TWIN_B}/24"), GATEWAY);
        let d = twin_container(&hosts[1], "br0", "td", &format!("{TWIN_D}/24"), GATEWAY);
        let hairpin = |port: &str, addr: &str| {
            twin_container(&hosts[1], "br0", port, &format!("{addr}/32"), GATEWAY)
        };
        let hp_a = hairpin("thpa", TWIN_HP_A);
        let hp_b = hairpin("thpb", TWIN_HP_B);
        let h1 = &hosts[0];
        h1.ip(&["link", "add", "natbr", "type", "bridge", "stp_state", "0"]);
        h1.ip(&["addr", "add", &format!("{TWIN_NAT_GW}/16"), "dev", "natbr"]);
        h1.ip(&["link", "set", "natbr", "up"]);
        let n1 = twin_container(h1, "natbr", "tn1", &format!("{TWIN_N1}/16"), TWIN_NAT_GW);
        let n2 = twin_container(h1, "natbr", "tn2", &format!("{TWIN_N2}/16"), TWIN_NAT_GW);
        sysctl(h1, &["net.ipv4.ip_forward=1"]);
        let out = h1.output(
            "nft",
            &[&format!(
                "add table ip twin; \
                 add chain ip twin postrouting {{ type nat hook postrouting priority srcnat; }}; \
                 add rule ip twin postrouting ip saddr {PATH_NAT_SUBNET} oifname != \"natbr\" masquerade"
            )],
        );
        assert!(
            out.status.success(),
            "nft in the twin host: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if firewall {
            // The experiment: hostnet's endpoint firewall (netdev egress
            // on each container port), by hand.
            for (h, ports) in hosts
                .iter()
                .zip([r#""ta", "tb", "tn1", "tn2""#, r#""td", "thpa", "thpb""#])
            {
                let out = h.output(
                    "nft",
                    &[&format!(
                        "add table netdev twin_fw; \
                         add chain netdev twin_fw ports {{ type filter hook egress devices = {{ {ports} }} priority 0; }}; \
                         add rule netdev twin_fw ports meta l4proto != {{ icmp, igmp, tcp, udp, icmpv6 }} drop"
                    )],
                );
                assert!(
                    out.status.success(),
                    "nft firewall in the twin host: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        Twin {
            a,
            b,
            d,
            hp_a,
            hp_b,
            n1,
            n2,
            hosts,
        }
    }
}

impl Twin {
    /// The MAC rewriting of L2Bridge/L2Tunnel, by hand, on both twin hosts'
    /// `eth0`: frames leave with the host's MAC (ARP sender too), frames
    /// for the host's MAC get back the container's, looked up by IP in one
    /// anonymous map. A netdev table of its own, `twin_l2`; `on: false`
    /// removes it.
    fn l2_rewrite(&self, on: bool) {
        let containers: [&[(&Netns, &str)]; 2] = [
            &[(&self.a, TWIN_A), (&self.b, TWIN_B)],
            &[
                (&self.d, TWIN_D),
                (&self.hp_a, TWIN_HP_A),
                (&self.hp_b, TWIN_HP_B),
            ],
        ];
        for (h, cs) in self.hosts.iter().zip(containers) {
            let script = if on {
                let host_mac = inspect::mac(h.path(), "eth0");
                let map = cs
                    .iter()
                    .map(|(ns, ip)| format!("{ip} : {}", inspect::mac(ns.path(), "eth0")))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "table netdev twin_l2 {{\n\
                     chain in {{ type filter hook ingress device \"eth0\" priority 0;\n\
                       meta pkttype != host return\n\
                       ether type ip ether daddr set ip daddr map {{ {map} }} meta pkttype set other\n\
                       ether type arp arp daddr ether set arp daddr ip map {{ {map} }} ether daddr set arp daddr ip map {{ {map} }} meta pkttype set other\n\
                     }}\n\
                     chain out {{ type filter hook egress device \"eth0\" priority 0;\n\
                       ether saddr set {host_mac}\n\
                       ether type arp arp saddr ether set {host_mac}\n\
                     }}\n}}\n"
                )
            } else {
                "delete table netdev twin_l2\n".to_string()
            };
            let out = h.output("nft", &[&script]);
            assert!(
                out.status.success(),
                "nft twin_l2 in the twin host: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// A plain namespace with `eth0` (`addr`, default via `gw`) on a veth whose
/// other end, `port`, is a port of `bridge` in `host`.
fn twin_container(host: &Netns, bridge: &str, port: &str, addr: &str, gw: &str) -> Netns {
    let ns = Netns::new(&unique(&format!("bp-twin{port}")));
    host.ip(&[
        "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
    ]);
    host.ip(&["link", "set", port, "master", bridge, "up"]);
    ns.ip(&["addr", "add", addr, "dev", "eth0"]);
    ns.ip(&["link", "set", "eth0", "up"]);
    if addr.ends_with("/32") {
        ns.ip(&["route", "add", gw, "dev", "eth0"]);
    }
    ns.ip(&["route", "add", "default", "via", gw]);
    ns
}

/// hostnet's world and the twin; drop order: the twin, the servers, then
/// the physical network (daemons first, then the hosts).
struct PathsWorld {
    twin: Twin,
    phys: PhysicalNet,
}

/// The hostnet endpoints of the paths.
struct HostnetEnds {
    a: End,
    b: End,
    d: End,
    n1: End,
    n2: End,
    host1: String,
}

fn build_paths_world(twin_firewall: bool) -> (PathsWorld, HostnetEnds) {
    let mut phys = PhysicalNet::new("bp-", 3);
    progress("paths: starting hostnetd on 3 hosts");
    phys.start_daemons(&["--default-subnet", PATH_NAT_SUBNET]);
    for h in &phys.hosts[..2] {
        h.client()
            .create(
                Kind::Networks,
                &json!({
                    "Name": TRANSPARENT,
                    "Type": "Transparent",
                    "Ipams": [{ "Subnets": [{ "IpAddressPrefix": PHYSICAL_SUBNET,
                        "Routes": [{ "NextHop": GATEWAY, "DestinationPrefix": "0.0.0.0/0" }] }] }],
                    "Policies": [{ "Type": "NetAdapterName",
                                   "Settings": { "NetworkAdapterName": "eth0" } }],
                }),
            )
            .unwrap_or_else(|e| panic!("create a Transparent network on {}: {e}", h.addr));
    }
    let at = |host: usize, ip: &str| {
        let c = phys.host(host).container_with(
            TRANSPARENT,
            json!({ "IpConfigurations": [{ "IpAddress": ip }] }),
        );
        assert_eq!(c.ip, ip, "the endpoint did not get its static address");
        End {
            netns: c.netns,
            ip: c.ip,
        }
    };
    let nat = || {
        let c = phys.host(0).container("nat", json!([]));
        End {
            netns: c.netns,
            ip: c.ip,
        }
    };
    let ends = HostnetEnds {
        a: at(0, T_A),
        b: at(0, T_B),
        d: at(1, T_D),
        n1: nat(),
        n2: nat(),
        host1: phys.host(0).addr.clone(),
    };
    progress("paths: building the hand-built twin");
    let twin = Twin::new(&mut phys, twin_firewall);
    (PathsWorld { twin, phys }, ends)
}

fn bench_paths(opts: PathOpts) -> PathsReport {
    let started = Instant::now();
    let (w, h) = build_paths_world(opts.twin_firewall);
    if opts.no_br_netfilter {
        let off = [
            "net.bridge.bridge-nf-call-iptables=0",
            "net.bridge.bridge-nf-call-ip6tables=0",
        ];
        for ns in w.phys.hosts.iter().map(|h| &h.netns).chain(&w.twin.hosts) {
            sysctl(ns, &off);
        }
    }
    let end = |ns: &Netns, ip: &str| End {
        netns: ns.path().to_path_buf(),
        ip: ip.to_string(),
    };
    let outside = end(&w.phys.outside, OUTSIDE_ADDR);
    let t = &w.twin;
    let specs = [
        PathSpec {
            driver: "Transparent",
            name: "A -> B (same host)",
            h: (h.a.clone(), h.b.clone(), T_A.into()),
            t: (end(&t.a, TWIN_A), end(&t.b, TWIN_B), TWIN_A.into()),
        },
        PathSpec {
            driver: "Transparent",
            name: "A -> outside (via router)",
            h: (h.a.clone(), outside.clone(), T_A.into()),
            t: (end(&t.a, TWIN_A), outside.clone(), TWIN_A.into()),
        },
        PathSpec {
            driver: "Transparent",
            name: "A -> D (other host)",
            h: (h.a.clone(), h.d.clone(), T_A.into()),
            t: (end(&t.a, TWIN_A), end(&t.d, TWIN_D), TWIN_A.into()),
        },
        PathSpec {
            driver: "NAT",
            name: "C1 -> C2 (same host)",
            h: (h.n1.clone(), h.n2.clone(), h.n1.ip.clone()),
            t: (end(&t.n1, TWIN_N1), end(&t.n2, TWIN_N2), TWIN_N1.into()),
        },
        PathSpec {
            driver: "NAT",
            name: "C1 -> outside (masqueraded)",
            h: (h.n1.clone(), outside.clone(), h.host1.clone()),
            t: (end(&t.n1, TWIN_N1), outside.clone(), TWIN_HOSTS[0].into()),
        },
    ];
    let mut results = Vec::new();
    for s in specs.iter().filter(|s| opts.wants(s.driver)) {
        check_interrupt();
        progress(&format!("paths: {} {}", s.driver, s.name));
        results.push(measure_path(s, opts));
    }
    if opts.wants("Overlay") {
        results.extend(overlay_paths(&w, opts));
    }
    // L2Bridge, then L2Tunnel, on host 3's adapter (one binding at a time).
    let twin_a = end(&t.a, TWIN_A);
    let l2 = opts.wants("L2Bridge") || opts.wants("L2Tunnel");
    if l2 {
        t.l2_rewrite(true);
    }
    // The router learnt the twin containers' own MACs on the Transparent
    // paths; from now on the wire must carry the twin host's.
    w.phys.router.ip(&["neigh", "flush", "all"]);
    for kind in ["L2Bridge", "L2Tunnel"]
        .into_iter()
        .filter(|k| opts.wants(k))
    {
        let (net, (a, a_ep, a_ns), (b, b_ep, b_ns)) = l2_network(w.phys.host(2), kind);
        let same_host = if kind == "L2Bridge" {
            PathSpec {
                driver: "L2Bridge",
                name: "A -> B (same host)",
                h: (a.clone(), b.clone(), L2_A.into()),
                t: (twin_a.clone(), end(&t.b, TWIN_B), TWIN_A.into()),
            }
        } else {
            PathSpec {
                driver: "L2Tunnel",
                name: "A -> B (hairpin via router)",
                h: (a.clone(), b.clone(), L2_A.into()),
                t: (
                    end(&t.hp_a, TWIN_HP_A),
                    end(&t.hp_b, TWIN_HP_B),
                    TWIN_HP_A.into(),
                ),
            }
        };
        let out = PathSpec {
            driver: if kind == "L2Bridge" {
                "L2Bridge"
            } else {
                "L2Tunnel"
            },
            name: "A -> outside (via router)",
            h: (a.clone(), outside.clone(), L2_A.into()),
            t: (twin_a.clone(), outside.clone(), TWIN_A.into()),
        };
        for s in [&same_host, &out] {
            check_interrupt();
            progress(&format!("paths: {} {}", s.driver, s.name));
            results.push(measure_path(s, opts));
        }
        // Both sides put their host's MAC on the wire, not the container's.
        let router = w.phys.router.path();
        for (ip, host) in [(L2_A, w.phys.host(2).path()), (TWIN_A, t.hosts[0].path())] {
            assert_eq!(
                inspect::neighbour(router, ip),
                Some(inspect::mac(host, "eth0")),
                "{kind}: the router did not learn {ip} at its host's MAC"
            );
        }
        remove_l2_network(w.phys.host(2), &net, &[(a_ep, a_ns), (b_ep, b_ns)]);
    }
    if l2 {
        t.l2_rewrite(false);
    }
    progress("paths: cleaning up");
    drop(w);
    PathsReport {
        paths: results,
        opts,
        total: started.elapsed(),
    }
}

/// Overlay: the same network (10.0.1.0/24 on VNI 4100, 10.0.2.0/24 on
/// 4101) on hosts 1 and 2, A on host 1, B (same subnet) and C (the other)
/// on host 2, each host told of the other's containers. Same subnet is
/// compared with the plainest VXLAN by hand in the same two host
/// namespaces ([`hand_vxlan`]), so both sides pay the same for what the
/// hosts carry anyway (their conntrack, the Transparent bridge the PA sits
/// on); cross subnet with a routed VXLAN by hand ([`hand_routed_vxlan`]).
fn overlay_paths(w: &PathsWorld, opts: PathOpts) -> Vec<PathResult> {
    let hosts = [w.phys.host(0), w.phys.host(1)];
    let subnet = |prefix: &str, vni: u32| {
        json!({"IpAddressPrefix": prefix,
               "Policies": [{"Type": "VSID", "Settings": {"IsolationId": vni}}]})
    };
    for h in hosts {
        h.client()
            .create(
                Kind::Networks,
                &json!({"Name": OVERLAY_NET, "Type": "Overlay",
                    "Ipams": [{"Type": "Static", "Subnets": [
                        subnet("10.0.1.0/24", 4100), subnet("10.0.2.0/24", 4101)]}]}),
            )
            .unwrap_or_else(|e| panic!("create an Overlay network on {}: {e}", h.addr));
    }
    let at = |h: &Host, ip: &str| {
        let c = h.container_with(
            OVERLAY_NET,
            json!({"IpConfigurations": [{"IpAddress": ip}]}),
        );
        let mac =
            h.client().get(Kind::Endpoints, &c.ep_id).expect("endpoint")["MacAddress"].clone();
        (c, mac)
    };
    let (a, b, c) = (at(hosts[0], OV_A), at(hosts[1], OV_B), at(hosts[1], OV_C));
    let remote = |on: &Host, (ct, mac): &(hostnet_testbed::Container, Value), of: &Host| {
        on.client()
            .create(
                Kind::Endpoints,
                &json!({"HostComputeNetwork": on.network(OVERLAY_NET), "Flags": 1,
                    "IpConfigurations": [{"IpAddress": ct.ip}], "MacAddress": mac,
                    "Policies": [{"Type": "ProviderAddress", "Settings": {"ProviderAddress": of.addr}}]}),
            )
            .expect("remote endpoint");
    };
    remote(hosts[0], &b, hosts[1]);
    remote(hosts[0], &c, hosts[1]);
    remote(hosts[1], &a, hosts[0]);
    let end = |(ct, _): &(hostnet_testbed::Container, Value)| End {
        netns: ct.netns.clone(),
        ip: ct.ip.clone(),
    };
    let (ta, tb) = hand_vxlan(hosts);
    let twin = |ns: &Netns, ip: &str| End {
        netns: ns.path().to_path_buf(),
        ip: ip.to_string(),
    };
    let t = (
        twin(&ta, TWIN_OV_A),
        twin(&tb, TWIN_OV_B),
        TWIN_OV_A.to_string(),
    );
    let routed = hand_routed_vxlan(hosts);
    let specs = [
        PathSpec {
            driver: "Overlay",
            name: "A -> B (same subnet, other host)",
            h: (end(&a), end(&b), OV_A.into()),
            t,
        },
        PathSpec {
            driver: "Overlay",
            name: "A -> C (other subnet, other host; routed)",
            h: (end(&a), end(&c), OV_A.into()),
            t: (
                twin(&routed.a, TWIN_RT_A),
                twin(&routed.c, TWIN_RT_C),
                TWIN_RT_A.to_string(),
            ),
        },
    ];
    let mut results: Vec<PathResult> = specs
        .iter()
        .map(|s| {
            check_interrupt();
            progress(&format!("paths: {} {}", s.driver, s.name));
            measure_path(s, opts)
        })
        .collect();
    if opts.router_br_netfilter {
        for h in hosts {
            let router = h.overlay_router();
            for key in ["iptables", "ip6tables", "arptables"] {
                let out = Probe::command(&router, "sysctl")
                    .args(["-qw", &format!("net.bridge.bridge-nf-call-{key}=1")])
                    .output()
                    .expect("sysctl");
                assert!(out.status.success(), "sysctl in the router");
            }
        }
        for s in &specs {
            let s = PathSpec {
                name: if s.name.starts_with("A -> B") {
                    "A -> B (br_netfilter on in the routers, experiment)"
                } else {
                    "A -> C (br_netfilter on in the routers, experiment)"
                },
                ..s.clone()
            };
            progress(&format!("paths: {} {}", s.driver, s.name));
            results.push(measure_path(&s, opts));
        }
    }
    if opts.overlay_acl {
        let ends = [(hosts[0], &a.0), (hosts[1], &b.0), (hosts[1], &c.0)];
        let acl = |action: &str, prio: u32, proto: Option<&str>| {
            let mut s = json!({"Id": format!("{action}-in"), "Action": action,
                "Direction": "In", "Priority": prio});
            if let Some(p) = proto {
                s["Protocols"] = json!(p);
            }
            json!({"Type": "ACL", "Settings": s})
        };
        let set_acls = |policies: Value| {
            for (h, ct) in ends {
                h.client()
                    .modify(
                        Kind::Endpoints,
                        &ct.ep_id,
                        &json!({"ResourceType": "Policy", "RequestType": "Update",
                            "Settings": {"Policies": policies.clone()}}),
                    )
                    .expect("ACLs on an overlay endpoint");
            }
        };
        set_acls(json!([
            acl("Allow", 100, Some("6")),
            acl("Block", 1000, None)
        ]));
        for s in &specs {
            let s = PathSpec {
                name: if s.name.starts_with("A -> B") {
                    "A -> B (ACL ladders on A and B, experiment)"
                } else {
                    "A -> C (ACL ladders on A and C, experiment)"
                },
                ..s.clone()
            };
            progress(&format!("paths: {} {}", s.driver, s.name));
            results.push(measure_path(&s, opts));
        }
        set_acls(json!([]));
        for h in hosts {
            strip_router_acl_rules(&h.overlay_router());
        }
        for s in &specs {
            let s = PathSpec {
                name: if s.name.starts_with("A -> B") {
                    "A -> B (routers without their ACL rules, experiment)"
                } else {
                    "A -> C (routers without their ACL rules, experiment)"
                },
                ..s.clone()
            };
            progress(&format!("paths: {} {}", s.driver, s.name));
            results.push(measure_path(&s, opts));
        }
    }
    if opts.router_conntrack {
        for h in hosts {
            let router = h.overlay_router();
            let out = Probe::command(&router, "nft")
                .args(["delete", "chain", "inet", "hostnet", "prerouting"])
                .output()
                .expect("nft");
            assert!(
                out.status.success(),
                "nft in the router: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let s = PathSpec {
            name: "A -> C (routed; routers track all, experiment)",
            ..specs[1].clone()
        };
        progress(&format!("paths: {} {}", s.driver, s.name));
        results.push(measure_path(&s, opts));
    }
    results
}

/// Deletes what an overlay router's table has for ACL endpoints (its ACL
/// base chains and the rules that keep their traffic from `notrack`), as
/// the router was before overlay endpoints took ACLs.
fn strip_router_acl_rules(router: &std::path::Path) {
    let nft = |args: &[&str]| {
        let out = Probe::command(router, "nft")
            .args(args)
            .output()
            .expect("nft");
        assert!(
            out.status.success(),
            "nft {args:?} in the router: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    for chain in ["acl_forward", "acl_input", "acl_output"] {
        nft(&["delete", "chain", "inet", "hostnet", chain]);
    }
    for chain in ["prerouting", "output"] {
        let listed = nft(&["-a", "list", "chain", "inet", "hostnet", chain]);
        for line in listed
            .lines()
            .filter(|l| l.contains("@acl_endpoints4 return"))
        {
            let handle = line.rsplit("handle ").next().expect("a handle").trim();
            nft(&["delete", "rule", "inet", "hostnet", chain, "handle", handle]);
        }
    }
}

/// A VXLAN path by hand between two hosts: in each, a bridge with a VXLAN
/// device (VNI 42, the hosts' addresses as `local` and `remote`, learning
/// off; it shares hostnet's UDP 4789 socket) and a container on a veth,
/// MTU 1450 everywhere as hostnet's. The links go with the hosts, the
/// containers with the returned namespaces.
fn hand_vxlan(hosts: [&Host; 2]) -> (Netns, Netns) {
    for (h, remote) in [(hosts[0], hosts[1]), (hosts[1], hosts[0])] {
        let ns = &h.netns;
        ns.ip(&[
            "link",
            "add",
            "tvx42",
            "type",
            "vxlan",
            "id",
            "42",
            "local",
            &h.addr,
            "remote",
            &remote.addr,
            "dstport",
            "4789",
            "nolearning",
        ]);
        ns.ip(&["link", "add", "tvxbr", "type", "bridge", "stp_state", "0"]);
        ns.ip(&[
            "link", "set", "tvx42", "master", "tvxbr", "mtu", "1450", "up",
        ]);
        ns.ip(&["link", "set", "tvxbr", "up"]);
    }
    let container = |h: &Host, port: &str, ip: &str| {
        let ns = twin_container(&h.netns, "tvxbr", port, &format!("{ip}/24"), "10.0.1.1");
        h.netns.ip(&["link", "set", port, "mtu", "1450"]);
        ns.ip(&["link", "set", "eth0", "mtu", "1450"]);
        ns
    };
    (
        container(hosts[0], "tova", TWIN_OV_A),
        container(hosts[1], "tovb", TWIN_OV_B),
    )
}

/// The routed twin: per host a router namespace holding two bridges with
/// the gateways 10.3.1.1/24 and 10.3.2.1/24 (one MAC per host, like a DR
/// MAC) and a VXLAN device on each (VNIs 44 and 45), created from the host
/// namespace (the UDP socket stays the host's), learning off, ARP proxy
/// on, static FDB entries and neighbours for the other host's container:
/// hostnet's overlay layout done by hand with `ip`. A on host 1 in the
/// first subnet, C on host 2 in the second; a packet A -> C is routed once
/// in host 1's router and leaves on VNI 45, the reply likewise on host 2.
struct RoutedTwin {
    a: Netns,
    c: Netns,
    _routers: [Netns; 2],
}

fn hand_routed_vxlan(hosts: [&Host; 2]) -> RoutedTwin {
    let router_mac = |i: usize| format!("02:33:00:00:00:0{}", i + 1);
    let (a_mac, c_mac) = ("02:33:00:00:01:70", "02:33:00:00:02:90");
    let routers = [0, 1].map(|i| {
        let h = hosts[i];
        let r = Netns::new(&unique(&format!("bp-twinr{i}")));
        must(
            r.output("sysctl", &["-qw", "net.ipv4.ip_forward=1"]),
            "sysctl",
        );
        for (n, vni, gw) in [(1, "44", "10.3.1.1/24"), (2, "45", "10.3.2.1/24")] {
            let (br, vx) = (format!("trb{n}"), format!("trx{n}"));
            r.ip(&["link", "add", &br, "type", "bridge", "stp_state", "0"]);
            r.ip(&[
                "link",
                "set",
                &br,
                "address",
                &router_mac(i),
                "mtu",
                "1450",
                "up",
            ]);
            r.ip(&["addr", "add", gw, "dev", &br]);
            h.netns.ip(&[
                "link",
                "add",
                &vx,
                "netns",
                &r.name,
                "type",
                "vxlan",
                "id",
                vni,
                "local",
                &h.addr,
                "dstport",
                "4789",
                "nolearning",
                "proxy",
            ]);
            r.ip(&["link", "set", &vx, "master", &br, "mtu", "1450", "up"]);
        }
        r
    });
    let container = |i: usize, bridge: &str, port: &str, ip: &str, gw: &str, mac: &str| {
        let ns = twin_container(&routers[i], bridge, port, &format!("{ip}/24"), gw);
        routers[i].ip(&["link", "set", port, "mtu", "1450"]);
        ns.ip(&["link", "set", "eth0", "mtu", "1450", "address", mac]);
        ns
    };
    let a = container(0, "trb1", "trva", TWIN_RT_A, "10.3.1.1", a_mac);
    let c = container(1, "trb2", "trvc", TWIN_RT_C, "10.3.2.1", c_mac);
    // Each router knows the other host's container: FDB to its PA, the
    // neighbour on the router's bridge and on the VXLAN device (its ARP
    // proxy answers).
    for (i, (ip, mac, n)) in [(0, (TWIN_RT_C, c_mac, 2)), (1, (TWIN_RT_A, a_mac, 1))] {
        let r = &routers[i];
        let (br, vx) = (format!("trb{n}"), format!("trx{n}"));
        let other = &hosts[1 - i].addr;
        must(
            r.output(
                "bridge",
                &[
                    "fdb",
                    "add",
                    mac,
                    "dev",
                    &vx,
                    "dst",
                    other,
                    "self",
                    "permanent",
                ],
            ),
            "bridge fdb add",
        );
        for dev in [&br, &vx] {
            r.ip(&[
                "neigh",
                "replace",
                ip,
                "lladdr",
                mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ]);
        }
    }
    RoutedTwin {
        a,
        c,
        _routers: routers,
    }
}

/// Panics with what `what` said when it failed.
fn must(out: std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An L2Bridge or L2Tunnel network on `host`'s eth0 with containers A and B;
/// returns the network's ID and the two ends (endpoint IDs kept for removal).
fn l2_network(host: &Host, kind: &str) -> (String, (End, String, String), (End, String, String)) {
    let c = host.client();
    let net = c
        .create(
            Kind::Networks,
            &json!({
                "Name": L2_NET,
                "Type": kind,
                "Ipams": [{ "Subnets": [{ "IpAddressPrefix": PHYSICAL_SUBNET,
                    "Routes": [{ "NextHop": GATEWAY, "DestinationPrefix": "0.0.0.0/0" }] }] }],
                "Policies": [{ "Type": "NetAdapterName",
                               "Settings": { "NetworkAdapterName": "eth0" } }],
            }),
        )
        .unwrap_or_else(|e| panic!("create an {kind} network on {}: {e}", host.addr));
    let at = |ip: &str| {
        let ct = host.container_with(L2_NET, json!({ "IpConfigurations": [{ "IpAddress": ip }] }));
        assert_eq!(ct.ip, ip, "the endpoint did not get its static address");
        (
            End {
                netns: ct.netns,
                ip: ct.ip,
            },
            ct.ep_id,
            ct.ns_id,
        )
    };
    (id(&net), at(L2_A), at(L2_B))
}

/// Deletes the endpoints, their namespaces and the network, so the adapter
/// is free for the next one.
fn remove_l2_network(host: &Host, net: &str, containers: &[(String, String)]) {
    let c = host.client();
    for (ep, ns) in containers {
        c.delete(Kind::Endpoints, ep).expect("delete endpoint");
        c.delete(Kind::Namespaces, ns).expect("delete namespace");
    }
    c.delete(Kind::Networks, net)
        .expect("delete the L2 network");
}

/// The source address a `tcp-serve` probe in `dst` sees from `src`.
fn seen_source(src: &End, dst: &End) -> String {
    let _srv = Probe::serve(&dst.netns, &["tcp-serve", &format!("0.0.0.0:{PEER_PORT}")]);
    let (ok, said) = Probe::run(&src.netns, &["tcp-get", &format!("{}:{PEER_PORT}", dst.ip)]);
    assert!(
        ok,
        "no TCP from {} to {}:{PEER_PORT}: {said}",
        src.ip, dst.ip
    );
    said.trim()
        .strip_prefix("peer ")
        .and_then(|p| p.rsplit_once(':'))
        .map(|(ip, _)| ip.to_string())
        .unwrap_or(said)
}

/// Both sides of one path, alternating hostnet and twin run by run.
fn measure_path(s: &PathSpec, opts: PathOpts) -> PathResult {
    let check = |(src, dst, want): &(End, End, String), who: &str| {
        let seen = seen_source(src, dst);
        assert_eq!(
            &seen, want,
            "{} {} ({who}): the destination saw source {seen}, not {want}",
            s.driver, s.name
        );
        seen
    };
    let peers = (check(&s.h, "hostnet"), check(&s.t, "by hand"));
    let mut r = PathResult {
        driver: s.driver,
        name: s.name,
        h_gbps: Vec::new(),
        t_gbps: Vec::new(),
        h_rr: Vec::new(),
        t_rr: Vec::new(),
        peers,
    };
    {
        // One server per destination (the outside is one namespace for
        // both sides: its server takes the two sides in turn).
        let _hs = iperf_server(&s.h.1.netns, IPERF_PORT);
        let _ts = (s.t.1.netns != s.h.1.netns).then(|| iperf_server(&s.t.1.netns, IPERF_PORT));
        let run = |side: &(End, End, String)| {
            traffic::iperf_client(&side.0.netns, &side.1.ip, IPERF_PORT, PATH_IPERF_SECONDS)
        };
        for _ in 0..if opts.iperf { opts.runs } else { 0 } {
            check_interrupt();
            r.h_gbps.push(run(&s.h));
            r.t_gbps.push(run(&s.t));
        }
    }
    let _he = echo_server(&s.h.1.netns, 80);
    let _te = (s.t.1.netns != s.h.1.netns).then(|| echo_server(&s.t.1.netns, 80));
    let addr = |side: &(End, End, String)| -> SocketAddr {
        format!("{}:80", side.1.ip).parse().expect("addr")
    };
    for _ in 0..opts.runs {
        check_interrupt();
        r.h_rr
            .push(request_response(&s.h.0.netns, addr(&s.h), PATH_RR_TIME));
        r.t_rr
            .push(request_response(&s.t.0.netns, addr(&s.t), PATH_RR_TIME));
    }
    r
}
