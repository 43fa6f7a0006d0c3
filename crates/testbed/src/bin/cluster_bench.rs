//! hostnet-cluster-bench: how fast overlay hosts converge through etcd
//! (cluster mode, docs/cluster.md), and how creates on every host at once
//! fare.
//!
//! ```text
//! sudo target/release/hostnet-cluster-bench [--n 200] [--concurrent 500]
//! ```
//!
//! Three hosts of a [`PhysicalNet`] with a 3-member etcd 3.4 cluster on its
//! switch, `hostnetd --store etcd://…` on each, one overlay network created
//! on host 1 (one /21 subnet, so every host holds 3 × `--concurrent`).
//!
//! 1. Convergence, `--n` times: host 3 has a container sending a UDP
//!    datagram every millisecond to the next address; host 1 has a
//!    namespace with a socket bound on 0.0.0.0 waiting. The endpoint with
//!    that address is created on host 1 (timed from the create's answer)
//!    and attached; the sample ends when the first datagram from host 3
//!    arrives. Host 3's container resolves neighbours every 10 ms (its
//!    `retrans_time_ms`), so ARP retries do not hide the convergence.
//! 2. Concurrency: every host creates `--concurrent` endpoints at once
//!    (4 client threads per host); prints the wall time, the number of
//!    duplicate addresses (must be 0) and how long until every host's FDB
//!    has every other host's endpoints.
//!
//! Everything is in namespaces this process makes; see docs/benchmarks.md.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hostnet_api::{Client, Kind};
use hostnet_testbed::bench_args;
use hostnet_testbed::samples::Samples;
use hostnet_testbed::{id, run_in, wait_until, Container, Daemon, EtcdCluster, PhysicalNet};
use serde_json::json;

const VNI: u32 = 5000;
const PORT: u16 = 9000;

fn daemon(phys: &PhysicalNet, cluster: &EtcdCluster, i: usize) -> Daemon {
    cluster.daemon_on(phys, i, &["--no-default-network"])
}

/// The address of the bench's `i`th convergence sample (10.1.4.0 on).
fn sample_ip(i: usize) -> String {
    format!("10.1.{}.{}", 4 + i / 250, 1 + i % 250)
}

/// FDB entries with a remote PA on host `h`'s VXLAN device.
fn remote_macs(phys: &PhysicalNet, h: usize) -> usize {
    let dev = format!("hnvx{VNI:06x}");
    let out = phys
        .host(h)
        .netns
        .output("bridge", &["fdb", "show", "dev", &dev]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(" dst ") && !l.starts_with("00:00:00:00:00:00"))
        .count()
}

/// One convergence sample: create (and attach) the endpoint `ip` on
/// host 1 while host 3's sender fires at it; the time from the create's
/// answer to the first datagram.
fn converge_once(c1: &Client, net: &str, ip: &str, sender: &Container) -> Duration {
    let ns = c1
        .create(
            Kind::Namespaces,
            &json!({"SchemaVersion": {"Major": 2, "Minor": 0}}),
        )
        .expect("namespace");
    let netns = std::path::PathBuf::from(ns["NetNsPath"].as_str().unwrap());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // The receiver: bound before the endpoint exists.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let netns = &netns;
        let receiver = s.spawn(move || {
            run_in(netns, || {
                let sock = UdpSocket::bind(("0.0.0.0", PORT)).expect("bind");
                sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                ready_tx.send(()).unwrap();
                let mut buf = [0u8; 64];
                sock.recv(&mut buf).ok().map(|_| Instant::now())
            })
        });
        ready_rx.recv().unwrap();
        let target = format!("{ip}:{PORT}");
        let stop = &stop;
        s.spawn(move || {
            run_in(&sender.netns, || {
                let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let _ = sock.send_to(b"x", &target);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        });
        let ep = c1
            .create(
                Kind::Endpoints,
                &json!({"HostComputeNetwork": net, "IpConfigurations": [{"IpAddress": ip}]}),
            )
            .expect("create endpoint");
        let answered = Instant::now();
        c1.attach_endpoint(&id(&ns), &id(&ep)).expect("attach");
        let first = receiver.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        let first = first.unwrap_or_else(|| panic!("no datagram from host 3 reached {ip} in 5 s"));
        first.saturating_duration_since(answered)
    })
}

fn main() {
    let n = bench_args::number("--n", 200);
    let concurrent = bench_args::number("--concurrent", 500);
    let mut phys = PhysicalNet::new("cb", 3);
    let cluster = EtcdCluster::on_switch(&mut phys, 3);
    let daemons: Vec<Daemon> = (0..3).map(|i| daemon(&phys, &cluster, i)).collect();
    let clients: Vec<Client> = daemons.iter().map(Daemon::client).collect();
    let net = clients[0]
        .create(
            Kind::Networks,
            &json!({"Name": "bench", "Type": "Overlay",
                    "Ipams": [{"Type": "Static", "Subnets": [{"IpAddressPrefix": "10.1.0.0/21",
                        "Policies": [{"Type": "VSID", "Settings": {"IsolationId": VNI}}]}]}],
                    "SchemaVersion": {"Major": 2, "Minor": 0}}),
        )
        .expect("overlay network");
    let net_id = id(&net);
    let everywhere = wait_until(Duration::from_secs(10), || {
        clients
            .iter()
            .all(|c| c.get(Kind::Networks, &net_id).is_ok())
    });
    assert!(everywhere, "the network reached every host");

    // 1. Convergence.
    let sender = Container::create(
        &clients[2],
        &net_id,
        json!({"IpConfigurations": [{"IpAddress": "10.1.3.254"}]}),
    );
    let set = sender.netns.to_string_lossy().to_string();
    let sysctl = std::process::Command::new("nsenter")
        .arg(format!("--net={set}"))
        .args(["sysctl", "-qw", "net.ipv4.neigh.eth0.retrans_time_ms=10"])
        .status()
        .expect("sysctl");
    assert!(sysctl.success(), "setting the sender's ARP retransmit time");
    let mut convergence = Samples::default();
    for i in 0..n {
        convergence.push(converge_once(&clients[0], &net_id, &sample_ip(i), &sender));
    }
    println!("convergence, create answered on host 1 -> first datagram from host 3 arrives, {n} endpoints (ms):");
    println!(
        "  p50 {:>6.1}  p90 {:>6.1}  p99 {:>6.1}  max {:>6.1}",
        convergence.pct(50.0),
        convergence.pct(90.0),
        convergence.pct(99.0),
        convergence.max()
    );

    // 2. Every host creates at once.
    let before: Vec<usize> = (0..3).map(|h| remote_macs(&phys, h)).collect();
    let start = Instant::now();
    let addresses: Vec<String> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..3)
            .flat_map(|h| (0..4).map(move |t| (h, t)))
            .map(|(h, t)| {
                let (client, net) = (clients[h].clone(), net_id.clone());
                let count = concurrent / 4 + usize::from(t < concurrent % 4);
                s.spawn(move || {
                    (0..count)
                        .map(|_| {
                            let ep = client
                                .create(Kind::Endpoints, &json!({"HostComputeNetwork": net}))
                                .expect("concurrent create");
                            ep["IpConfigurations"][0]["IpAddress"]
                                .as_str()
                                .unwrap()
                                .to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    let created = start.elapsed();
    let total = addresses.len();
    let mut distinct = addresses.clone();
    distinct.sort();
    distinct.dedup();
    let converged = wait_until(Duration::from_secs(120), || {
        (0..3).all(|h| remote_macs(&phys, h) >= before[h] + 2 * concurrent)
    });
    let all_programmed = start.elapsed();
    println!(
        "3 hosts x {concurrent} endpoints created at once: {total} in {:.2} s ({:.0}/s), {} duplicate addresses; every host programmed the other hosts' {} after {:.2} s{}",
        created.as_secs_f64(),
        total as f64 / created.as_secs_f64(),
        total - distinct.len(),
        2 * concurrent,
        all_programmed.as_secs_f64(),
        if converged { "" } else { " (NOT converged)" }
    );
    drop(sender);
    drop(daemons);
    drop(cluster);
}
