//! hostnet-cni-bench: CNI ADD and DEL through hostnet-cni, side by side in
//! the same run with the reference chain bridge + host-local + portmap
//! (Debian's containernetworking-plugins), each container with one port
//! mapping; and a flow through a published port of each.
//!
//! ```text
//! sudo target/release/hostnet-cni-bench [--n 100,1000] [--json] [--no-traffic]
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
//! Everything lives in `hnt-<pid>-…` namespaces owned by drop guards;
//! `hostnet-testbed sweep` removes what a killed run leaves. What the
//! numbers mean and today's values: docs/benchmarks.md.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hostnet_testbed::cni::{Chain, CniCall, CniOutput, REFERENCE_PLUGINS};
use hostnet_testbed::samples::{round, Samples};
use hostnet_testbed::traffic::Proc;
use hostnet_testbed::{unique, wait_until, workspace_binary, Daemon, Netns, Uplink, HOST};
use serde_json::{json, Value};

const FIRST_PORT: u16 = 20000;
const HOSTNET_SUBNET: &str = "10.80.0.0/16";
const REFERENCE_SUBNET: &str = "10.81.0.0/16";

struct Args {
    ns: Vec<usize>,
    json: bool,
    traffic: bool,
    /// Diagnosis: hostnet alone (the reference rows stay empty).
    reference: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        ns: vec![100, 1000],
        json: false,
        traffic: true,
        reference: true,
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
            _ => usage(),
        }
    }
    a
}

fn usage() -> ! {
    eprintln!("usage: hostnet-cni-bench [--n 100,1000] [--json] [--no-traffic] [--no-reference]");
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
}

impl Side {
    fn new(name: &'static str) -> Side {
        Side {
            name,
            add: Samples::default(),
            del: Samples::default(),
            gbps: None,
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
        })
    }
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

fn run(n: usize, traffic: bool, with_reference: bool) -> (Side, Side) {
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
    let mut containers: Vec<(String, Netns, Value, Netns, Value)> = Vec::with_capacity(n);
    progress(&format!("N={n}: ADD, alternating hostnet and reference"));
    for i in 0..n {
        let cid = format!("cb{i}");
        let port = FIRST_PORT + i as u16;
        let hns = Netns::new(&unique(&format!("cb-h{i}")));
        let rns = Netns::new(&unique(&format!("cb-r{i}")));
        let t = Instant::now();
        let hres = must(h_rt.add(&cid, hns.path(), port), "hostnet ADD");
        h.add.push(t.elapsed());
        let mut rres = Value::Null;
        if with_reference {
            let t = Instant::now();
            rres = must(r_rt.add(&cid, rns.path(), port), "reference ADD");
            r.add.push(t.elapsed());
        }
        containers.push((cid, hns, hres, rns, rres));
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
    (h, r)
}

fn main() {
    let args = parse_args();
    if !Path::new(REFERENCE_PLUGINS).join("portmap").exists() {
        eprintln!("hostnet-cni-bench: the reference plugins are missing (apt-get install containernetworking-plugins)");
        std::process::exit(1);
    }
    let mut runs = Vec::new();
    for &n in &args.ns {
        let (h, r) = run(n, args.traffic, args.reference);
        runs.push((n, h, r));
    }
    if args.json {
        let doc: Vec<Value> = runs
            .iter()
            .map(|(n, h, r)| {
                json!({"n": n, h.name: h.to_json(), r.name: r.to_json(),
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
    for (n, h, r) in &runs {
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
}
