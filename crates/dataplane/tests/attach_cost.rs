//! What attaching one more endpoint costs the kernel as a NAT network's
//! bridge fills up, and which bridge settings change that: a measurement,
//! not a check (docs/benchmarks.md, "Where hostnet-cni's ADD time goes").
//!
//! ```sh
//! cargo test --release -p hostnet-dataplane --test attach_cost -- --ignored --nocapture
//! ```
//!
//! Several worlds, each a scratch "host" namespace with hostnet's tables
//! and one NAT bridge made as hostnetd makes it, differ in one setting
//! each: the port hooked in the design this kernel allows, or with a
//! base chain per port, or not at all. Endpoint i gets a fresh namespace in every world (not timed); then
//! each world attaches it in turn, each op measured in this thread's CPU
//! time (load on a shared machine does not count; the kernel's work for a
//! netlink request does, it runs in the sender's context): `CreateVeth`
//! (the veth into the endpoint's namespace, the bridge port, address,
//! default route) and the port's `AddElements` (its netdev chain and drop
//! counter). The worlds alternate, so they see the machine in the same
//! state; what differs between the first and the last hundred is what
//! grows with the bridge's ports and the netdev chains. Namespaces live under a `hostnet-dp-*` temporary
//! directory and are removed on drop (see tests/linux.rs for sweeping a
//! killed run).

use std::path::{Path, PathBuf};

use hostnet_dataplane::linux::{create_netns, delete_netns, run_in_netns, LinuxDataplane};
use hostnet_dataplane::{Dataplane, Op, RouteSpec};
use hostnet_nft::hook::HookDesign;
use ipnet::IpNet;

const N: usize = 1000;
const BRIDGE: &str = "hnbrcost";
const MTU: u32 = 1500;

/// One world's difference from how hostnetd makes a NAT network.
#[derive(Clone, Copy, PartialEq)]
enum Variant {
    /// As hostnetd makes it, hooking ports in the design this kernel
    /// allows (one chain per rule set listing its ports on Linux 6.16+).
    Hostnet,
    /// A base chain per port, the design of kernels that cannot do better
    /// (an earlier run also tried the bridge's MTU set by the user and
    /// snooping off: no difference, docs/benchmarks.md).
    ChainPerPort,
    /// No port hooked (the firewall defaults left out).
    NoHook,
}

impl Variant {
    fn name(self) -> String {
        match self {
            Variant::Hostnet => format!(
                "as hostnetd ({})",
                match LinuxDataplane::new().expect("dataplane").hook_design() {
                    HookDesign::ChainPerDevice => "chain per port",
                    HookDesign::DeviceList => "device lists",
                }
            ),
            Variant::ChainPerPort => "a base chain per port".into(),
            Variant::NoHook => "no port hooked".into(),
        }
    }
}

struct World {
    variant: Variant,
    host: PathBuf,
    dp: LinuxDataplane,
    veth_us: Vec<f64>,
    hook_us: Vec<f64>,
}

impl World {
    fn new(dir: &Path, variant: Variant) -> World {
        let host = dir.join(format!("host{}", variant as u8));
        create_netns(&host).expect("host namespace");
        let dp = run_in_netns(&host, LinuxDataplane::new)
            .expect("enter host namespace")
            .expect("dataplane");
        let dp = match variant {
            Variant::ChainPerPort => dp.with_hook_design(HookDesign::ChainPerDevice),
            Variant::Hostnet | Variant::NoHook => dp,
        };
        dp.load_tables(&hostnet_nft::tables(&[], dp.hook_design()))
            .expect("tables");
        dp.execute(&Op::CreateBridge {
            name: BRIDGE.into(),
            mtu: MTU,
            mac: Some([0x02, 0, 0, 0, 0, 0x01]),
            addresses: vec!["10.88.0.1/16".parse().unwrap()],
            ipv6: false,
        })
        .expect("bridge");
        dp.execute(&Op::AddElements(hostnet_nft::nat_bridge(BRIDGE)))
            .expect("bridge elements");
        World {
            variant,
            host,
            dp,
            veth_us: Vec::with_capacity(N),
            hook_us: Vec::with_capacity(N),
        }
    }

    fn attach(&mut self, i: usize, netns: &Path) {
        let host_name = format!("hnc{i}");
        let address: IpNet = format!("10.88.{}.{}/16", (i + 2) / 256, (i + 2) % 256)
            .parse()
            .unwrap();
        let t = cpu_us();
        self.dp
            .execute(&Op::CreateVeth {
                host_name: host_name.clone(),
                bridge: BRIDGE.into(),
                mtu: MTU,
                netns: netns.to_path_buf(),
                peer_name: "eth0".into(),
                peer_mac: [0x02, 0x42, 0, 0, (i / 256) as u8, (i % 256) as u8],
                addresses: vec![address],
                routes: vec![RouteSpec {
                    destination: "0.0.0.0/0".parse().unwrap(),
                    via: Some("10.88.0.1".parse().unwrap()),
                    metric: 0,
                }],
                ipv6: false,
            })
            .expect("veth");
        self.veth_us.push(cpu_us() - t);
        if self.variant != Variant::NoHook {
            let t = cpu_us();
            self.dp
                .execute(&Op::AddElements(vec![
                    hostnet_nft::nat_endpoint_port(&host_name),
                    hostnet_nft::counters::port_drops(&host_name),
                ]))
                .expect("port elements");
            self.hook_us.push(cpu_us() - t);
        }
    }
}

/// This thread's CPU time in µs: the kernel does rtnetlink and nfnetlink
/// requests in the sender's context, so this counts their work but not
/// the time other processes on a busy machine take the CPU away.
fn cpu_us() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e6 + ts.tv_nsec as f64 / 1e3
}

fn p50(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// "first 100 p50 → last 100 p50 µs (growth)".
fn growth(v: &[f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let (first, last) = (p50(&v[..100]), p50(&v[v.len() - 100..]));
    format!("{first:7.0} → {last:7.0} µs ({:+.0})", last - first)
}

#[test]
#[ignore = "a measurement: cargo test --release -p hostnet-dataplane --test attach_cost -- --ignored --nocapture"]
fn attach_cost() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("attach_cost needs root");
    }
    let dir = tempfile::Builder::new()
        .prefix("hostnet-dp-")
        .tempdir()
        .expect("temporary directory");
    let variants = [Variant::Hostnet, Variant::ChainPerPort, Variant::NoHook];
    let mut worlds: Vec<World> = variants
        .iter()
        .map(|&v| World::new(dir.path(), v))
        .collect();
    let mut endpoints = Vec::new();
    for i in 0..N {
        for w in &mut worlds {
            let ns = dir.path().join(format!("ep{}-{i}", w.variant as u8));
            create_netns(&ns).expect("endpoint namespace");
            w.attach(i, &ns);
            endpoints.push(ns);
        }
    }
    println!("attach one endpoint, CPU time, p50 of the first and of the last hundred of {N}:");
    for w in &worlds {
        println!(
            "  {:<30} CreateVeth {}   port elements {}",
            w.variant.name(),
            growth(&w.veth_us),
            growth(&w.hook_us)
        );
    }
    for ns in endpoints.iter().chain(worlds.iter().map(|w| &w.host)) {
        if let Err(e) = delete_netns(ns) {
            eprintln!("cleanup {}: {e}", ns.display());
        }
    }
}
