//! hostnet-cni-bench: CNI ADD and DEL through hostnet-cni, side by side in
//! the same run with the reference chain bridge + host-local + portmap
//! (Debian's containernetworking-plugins), each container with one port
//! mapping; and a flow through a published port of each.
//!
//! ```text
//! sudo target/release/hostnet-cni-bench [--n 100,1000] [--json] [--no-traffic] [--no-reference] [--no-twin]
//! ```
//!
//! For each N, two worlds like the NAT tests' (a host namespace joined to an
//! outside namespace): one runs the release hostnetd, the other only the
//! reference plugins. Container i gets a fresh `ip netns` namespace in each
//! (made before the clock starts), then ADD in hostnet's world and ADD in
//! the reference world, alternately, so both see the same machine at the
//! same time; likewise DEL. A runtime's ADD is what is timed: for hostnet
//! one execution of hostnet-cni, for the reference chain bridge then portmap
//! with the first's result as `prevResult`, as libcni runs a conflist.
//! To tell the kernel's growth with N from hostnet's, it also reads
//! hostnetd's CPU time per ADD and times a kernel twin ([`KernelTwin`]:
//! the same links by hand, no daemon) alongside.
//! Everything lives in `hnt-<pid>-…` namespaces owned by drop guards;
//! `hostnet-testbed sweep` removes what a killed run leaves. What the
//! numbers mean and today's values: docs/benchmarks.md.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hostnet_testbed::cni::{Chain, CniCall, CniOutput, REFERENCE_PLUGINS};
use hostnet_testbed::process_cpu::CpuTime;
use hostnet_testbed::samples::{round, Samples};
use hostnet_testbed::traffic::Proc;
use hostnet_testbed::{unique, wait_until, workspace_binary, Daemon, Netns, Uplink, HOST};
use serde_json::{json, Value};

const FIRST_PORT: u16 = 20000;
const HOSTNET_SUBNET: &str = "10.80.0.0/16";
const REFERENCE_SUBNET: &str = "10.81.0.0/16";
const TWIN_BRIDGE: &str = "cbtwin0";

struct Args {
    ns: Vec<usize>,
    json: bool,
    traffic: bool,
    /// Diagnosis: hostnet alone (the reference rows stay empty).
    reference: bool,
    /// The kernel twin ([`KernelTwin`]).
    twin: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        ns: vec![100, 1000],
        json: false,
        traffic: true,
        reference: true,
        twin: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--n" => {
                a.ns = it
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|s| s.trim().parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--json" => a.json = true,
            "--no-traffic" => a.traffic = false,
            "--no-reference" => a.reference = false,
            "--no-twin" => a.twin = false,
            _ => usage(),
        }
    }
    a
}

fn usage() -> ! {
    eprintln!(
        "usage: hostnet-cni-bench [--n 100,1000] [--json] [--no-traffic] [--no-reference] [--no-twin]"
    );
    std::process::exit(2)
}

fn progress(msg: &str) {
    eprintln!("hostnet-cni-bench: {msg}");
}

/// One side of the comparison.
struct Side {
    name: &'static str,
    add: Samples,
    del: Samples,
    gbps: Option<f64>,
    /// hostnetd's CPU time per ADD over the first and the last tenth.
    daemon_cpu: Option<[CpuTime; 2]>,
}

impl Side {
    fn new(name: &'static str) -> Side {
        Side {
            name,
            add: Samples::default(),
            del: Samples::default(),
            gbps: None,
            daemon_cpu: None,
        }
    }

    fn to_json(&self) -> Value {
        let n = self.add.len();
        let tenth = (n / 10).max(1).min(n);
        json!({
            "add": self.add.to_json(),
            "add_first_tenth": self.add.slice(0, tenth).to_json(),
            "add_last_tenth": self.add.slice(n - tenth, n).to_json(),
            "del": self.del.to_json(),
            "published_port_gbit_s": self.gbps.map(round),
            "daemon_cpu_ms_per_add": self.daemon_cpu.map(|[first, last]| json!({
                "first_tenth": cpu_json(first), "last_tenth": cpu_json(last),
            })),
        })
    }
}

fn cpu_json(c: CpuTime) -> Value {
    json!({"user": round(c.user * 1e3), "system": round(c.system * 1e3)})
}

/// The kernel twin: in a namespace of its own, the links hostnetd makes
/// for a NAT endpoint, built by hand with `ip`, no daemon: a bridge like
/// hostnet's (fixed MAC, gateway address, no IPv6 link-local), and per
/// container a veth whose peer is born in the container's namespace as
/// `eth0` and whose host end is a bridge port, both up, the address and
/// default route inside. What grows here with N is the kernel's cost of a
/// bridge with N ports among N namespaces, whoever asks. (Not twinned: the
/// port's netdev chain. `nft -f` lists every chain of the table before it
/// adds one, a cost of its own that hostnet's netlink batch does not pay;
/// `hostnet-dataplane`'s `attach_cost` measures that batch instead.) Each
/// ADD is two processes (`ip -batch` in each namespace), timed, with
/// their CPU time; starting them costs the same at any N.
struct KernelTwin {
    host: Netns,
    add: Samples,
    /// CPU seconds of each ADD's processes, kernel work included.
    cpu: Samples,
}

fn feed(mut cmd: Command, input: &str) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{input}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl KernelTwin {
    fn new() -> KernelTwin {
        let host = Netns::new(&unique("cb-twin"));
        feed(
            ip_batch(&host),
            &format!(
                "link add {TWIN_BRIDGE} mtu 1500 address 02:42:0a:52:00:01 type bridge\n\
                 link set {TWIN_BRIDGE} addrgenmode none\n\
                 addr add 10.82.0.1/16 dev {TWIN_BRIDGE}\n\
                 link set {TWIN_BRIDGE} up\n"
            ),
        );
        KernelTwin {
            host,
            add: Samples::default(),
            cpu: Samples::default(),
        }
    }

    fn add(&mut self, i: usize, container: &Netns) {
        let port = format!("cbt{i}");
        let addr = format!("10.82.{}.{}/16", (i + 2) / 256, (i + 2) % 256);
        let (t, cpu) = (Instant::now(), CpuTime::of_children());
        feed(
            ip_batch(&self.host),
            &format!(
                "link add {port} mtu 1500 master {TWIN_BRIDGE} type veth peer name eth0 netns {}\n\
                 link set {port} addrgenmode none\n\
                 link set {port} up\n",
                container.name
            ),
        );
        feed(
            ip_batch(container),
            &format!(
                "link set eth0 addrgenmode none\n\
                 addr add {addr} dev eth0\n\
                 link set eth0 up\n\
                 route add default via 10.82.0.1\n"
            ),
        );
        self.add.push(t.elapsed());
        self.cpu.0.push((CpuTime::of_children() - cpu).total());
    }

    /// p50 (ms) of the first and of the last tenth, wall and CPU.
    fn tenths(&self) -> [f64; 4] {
        let n = self.add.len();
        let tenth = (n / 10).max(1).min(n);
        [
            self.add.slice(0, tenth).pct(50.0),
            self.add.slice(n - tenth, n).pct(50.0),
            self.cpu.slice(0, tenth).pct(50.0),
            self.cpu.slice(n - tenth, n).pct(50.0),
        ]
    }

    fn to_json(&self) -> Value {
        let [first, last, first_cpu, last_cpu] = self.tenths();
        json!({
            "add": self.add.to_json(),
            "add_first_tenth_p50_ms": round(first), "add_last_tenth_p50_ms": round(last),
            "cpu_first_tenth_p50_ms": round(first_cpu), "cpu_last_tenth_p50_ms": round(last_cpu),
        })
    }
}

/// `ip -batch -` inside `ns`, entered by `setns` alone: `ip -n` would
/// also copy the mount namespace, whose thousands of `ip netns` mounts
/// cost more the more containers there are (a cost no runtime's ADD has).
fn ip_batch(ns: &Netns) -> Command {
    let mut cmd = ns.command("ip");
    cmd.args(["-batch", "-"]);
    cmd
}

/// A world with its runtime: how to ADD and DEL one container there.
trait Runtime {
    fn outside(&self) -> &Netns;
    fn add(&self, cid: &str, ns: &Path, port: u16) -> CniOutput;
    fn del(&self, cid: &str, ns: &Path, port: u16, cached: &Value) -> CniOutput;
}

struct HostnetWorld {
    // Drop order: the daemon before its host.
    daemon: Daemon,
    uplink: Uplink,
    plugin: PathBuf,
}

fn hostnet_conf(socket: &Path, port: u16) -> Value {
    json!({
        "cniVersion": "1.0.0", "name": "cnibench", "type": "hostnet-cni",
        "network": "cnibench", "driver": "nat", "subnet": HOSTNET_SUBNET,
        "socket": socket,
        "runtimeConfig": {"portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]},
    })
}

impl Runtime for HostnetWorld {
    fn outside(&self) -> &Netns {
        &self.uplink.outside
    }
    fn add(&self, cid: &str, ns: &Path, port: u16) -> CniOutput {
        let call = CniCall {
            command: "ADD",
            container_id: cid,
            netns: Some(ns),
            ifname: "eth0",
        };
        hostnet_testbed::cni::exec_plugin(
            self.uplink.host.path(),
            &self.plugin,
            &call,
            &hostnet_conf(&self.daemon.socket, port),
        )
    }
    fn del(&self, cid: &str, ns: &Path, port: u16, cached: &Value) -> CniOutput {
        let call = CniCall {
            command: "DEL",
            container_id: cid,
            netns: Some(ns),
            ifname: "eth0",
        };
        let mut conf = hostnet_conf(&self.daemon.socket, port);
        conf["prevResult"] = cached.clone();
        hostnet_testbed::cni::exec_plugin(self.uplink.host.path(), &self.plugin, &call, &conf)
    }
}

struct ReferenceWorld {
    uplink: Uplink,
    data: PathBuf,
}

impl ReferenceWorld {
    fn chain(&self, port: u16) -> Chain<'_> {
        Chain {
            host: self.uplink.host.path(),
            dirs: vec![PathBuf::from(REFERENCE_PLUGINS)],
            conflist: json!({
                "cniVersion": "1.0.0", "name": "cniref",
                "plugins": [
                    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
                     "ipam": {"type": "host-local", "ranges": [[{"subnet": REFERENCE_SUBNET}]],
                              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": self.data}},
                    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
                ],
            }),
            runtime: json!({"portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]}),
        }
    }
}

impl Drop for ReferenceWorld {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

impl Runtime for ReferenceWorld {
    fn outside(&self) -> &Netns {
        &self.uplink.outside
    }
    fn add(&self, cid: &str, ns: &Path, port: u16) -> CniOutput {
        self.chain(port).add(&CniCall {
            command: "ADD",
            container_id: cid,
            netns: Some(ns),
            ifname: "eth0",
        })
    }
    fn del(&self, cid: &str, ns: &Path, port: u16, cached: &Value) -> CniOutput {
        let call = CniCall {
            command: "DEL",
            container_id: cid,
            netns: Some(ns),
            ifname: "eth0",
        };
        self.chain(port).with_cached(&call, Some(cached))
    }
}

fn must(out: CniOutput, what: &str) -> Value {
    assert!(out.success(), "{what}: {}{}", out.stdout, out.stderr);
    out.doc
}

/// One TCP flow from the outside through published port FIRST_PORT into
/// container 0 (iperf3 on port 80 there), 3 seconds; None without iperf3.
fn published_port_gbps(rt: &dyn Runtime, container: &Netns) -> Option<f64> {
    let _server = Proc(
        container
            .command("iperf3")
            .args(["-s", "-1", "-p", "80"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?,
    );
    let up = wait_until(Duration::from_secs(5), || {
        let out = container.output("ss", &["-ltnH", "sport = :80"]);
        !out.stdout.is_empty()
    });
    assert!(up, "iperf3 did not start in the container");
    let port = FIRST_PORT.to_string();
    let out = rt.outside().output(
        "timeout",
        &["20", "iperf3", "-c", HOST, "-p", &port, "-t", "3", "-J"],
    );
    let doc: Value = serde_json::from_slice(&out.stdout).ok()?;
    doc["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 1e9)
}

fn run(n: usize, args: &Args) -> (Side, Side, Option<KernelTwin>) {
    let (traffic, with_reference) = (args.traffic, args.reference);
    progress(&format!("N={n}: building both worlds"));
    let uplink = Uplink::new("cb-h");
    let daemon = Daemon::start(uplink.host.path(), &["--no-default-network"]);
    let hostnet = HostnetWorld {
        daemon,
        uplink,
        plugin: workspace_binary("hostnet-cni"),
    };
    let data = std::env::temp_dir().join(unique("cb-ref-data"));
    std::fs::create_dir_all(&data).expect("host-local data dir");
    let reference = ReferenceWorld {
        uplink: Uplink::new("cb-r"),
        data,
    };
    let worlds: [(&dyn Runtime, Side); 2] = [
        (&hostnet, Side::new("hostnet")),
        (&reference, Side::new("reference")),
    ];
    let [(h_rt, mut h), (r_rt, mut r)] = worlds;
    let mut twin = args.twin.then(KernelTwin::new);
    let mut twin_containers = Vec::new();
    let daemon_pid = hostnet.daemon.pid().expect("hostnetd runs");
    let tenth = (n / 10).max(1).min(n);
    let mut daemon_cpu = Vec::new();
    let mut containers: Vec<(String, Netns, Value, Netns, Value)> = Vec::with_capacity(n);
    progress(&format!(
        "N={n}: ADD, alternating hostnet, reference and kernel twin"
    ));
    for i in 0..n {
        let cid = format!("cb{i}");
        let port = FIRST_PORT + i as u16;
        let hns = Netns::new(&unique(&format!("cb-h{i}")));
        let rns = Netns::new(&unique(&format!("cb-r{i}")));
        if [0, tenth, n - tenth].contains(&i) {
            daemon_cpu.push(CpuTime::of_process(daemon_pid));
        }
        let t = Instant::now();
        let hres = must(h_rt.add(&cid, hns.path(), port), "hostnet ADD");
        h.add.push(t.elapsed());
        if let Some(twin) = twin.as_mut() {
            let tns = Netns::new(&unique(&format!("cb-t{i}")));
            twin.add(i, &tns);
            twin_containers.push(tns);
        }
        let mut rres = Value::Null;
        if with_reference {
            let t = Instant::now();
            rres = must(r_rt.add(&cid, rns.path(), port), "reference ADD");
            r.add.push(t.elapsed());
        }
        containers.push((cid, hns, hres, rns, rres));
    }
    daemon_cpu.push(CpuTime::of_process(daemon_pid));
    if let [start, first_end, last_start, end] = daemon_cpu[..] {
        let per_add = |c: CpuTime| CpuTime {
            user: c.user / tenth as f64,
            system: c.system / tenth as f64,
        };
        h.daemon_cpu = Some([per_add(first_end - start), per_add(end - last_start)]);
    }
    if traffic {
        progress(&format!("N={n}: a flow through each one's published port"));
        let (_, hns, _, rns, _) = &containers[0];
        h.gbps = published_port_gbps(h_rt, hns);
        if with_reference {
            r.gbps = published_port_gbps(r_rt, rns);
        }
    }
    progress(&format!("N={n}: DEL"));
    for (i, (cid, hns, hres, rns, rres)) in
        containers.drain(..).enumerate().rev().collect::<Vec<_>>()
    {
        let port = FIRST_PORT + i as u16;
        let t = Instant::now();
        must(h_rt.del(&cid, hns.path(), port, &hres), "hostnet DEL");
        h.del.push(t.elapsed());
        if with_reference {
            let t = Instant::now();
            must(r_rt.del(&cid, rns.path(), port, &rres), "reference DEL");
            r.del.push(t.elapsed());
        }
    }
    drop(twin_containers);
    (h, r, twin)
}

fn main() {
    let args = parse_args();
    if !Path::new(REFERENCE_PLUGINS).join("portmap").exists() {
        eprintln!("hostnet-cni-bench: the reference plugins are missing (apt-get install containernetworking-plugins)");
        std::process::exit(1);
    }
    let mut runs = Vec::new();
    for &n in &args.ns {
        let (h, r, twin) = run(n, &args);
        runs.push((n, h, r, twin));
    }
    if args.json {
        let doc: Vec<Value> = runs
            .iter()
            .map(|(n, h, r, twin)| {
                json!({"n": n, h.name: h.to_json(), r.name: r.to_json(),
                    "kernel_twin": twin.as_ref().map(KernelTwin::to_json),
                    "add_p50_ratio_hostnet_over_reference": round(h.add.pct(50.0) / r.add.pct(50.0)),
                    "del_p50_ratio_hostnet_over_reference": round(h.del.pct(50.0) / r.del.pct(50.0))})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
        return;
    }
    println!("CNI ADD and DEL, one port mapping each (ms; ratio = hostnet / reference)");
    println!(
        "{:>5}  {:<10} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12} {:>9}",
        "N",
        "",
        "ADD p50",
        "ADD p99",
        "DEL p50",
        "DEL p99",
        "ADD 1st 10%",
        "ADD last 10%",
        "Gbit/s"
    );
    for (n, h, r, _) in &runs {
        for s in [h, r] {
            let tenth = (n / 10).max(1);
            println!(
                "{:>5}  {:<10} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>12.2} {:>12.2} {:>9}",
                n,
                s.name,
                s.add.pct(50.0),
                s.add.pct(99.0),
                s.del.pct(50.0),
                s.del.pct(99.0),
                s.add.slice(0, tenth).pct(50.0),
                s.add.slice(n - tenth, *n).pct(50.0),
                s.gbps.map_or("-".into(), |g| format!("{g:.1}"))
            );
        }
        println!(
            "{:>5}  {:<10} {:>9.3} {:>9} {:>9.3}",
            n,
            "ratio",
            h.add.pct(50.0) / r.add.pct(50.0),
            "",
            h.del.pct(50.0) / r.del.pct(50.0)
        );
    }
    println!();
    println!("What grows with N (ms; p50 of the first and of the last tenth of the ADDs)");
    println!(
        "{:>5}  {:<34} {:>9} {:>9} {:>9}",
        "N", "", "1st 10%", "last 10%", "growth"
    );
    for (n, h, _, twin) in &runs {
        let tenth = (n / 10).max(1);
        let row = |what: &str, first: f64, last: f64| {
            println!(
                "{:>5}  {:<34} {:>9.2} {:>9.2} {:>+9.2}",
                n,
                what,
                first,
                last,
                last - first
            )
        };
        row(
            "hostnet ADD, wall",
            h.add.slice(0, tenth).pct(50.0),
            h.add.slice(n - tenth, *n).pct(50.0),
        );
        if let Some([first, last]) = h.daemon_cpu {
            // Means per ADD over each tenth (from hostnetd's clock ticks).
            row("  hostnetd CPU, user", first.user * 1e3, last.user * 1e3);
            row(
                "  hostnetd CPU, system",
                first.system * 1e3,
                last.system * 1e3,
            );
        }
        if let Some(twin) = twin {
            let [first, last, first_cpu, last_cpu] = twin.tenths();
            row("kernel twin (ip, no daemon), wall", first, last);
            row("  its CPU, kernel work included", first_cpu, last_cpu);
        }
    }
}
