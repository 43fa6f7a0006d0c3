//! What a bridged round trip pays for the endpoint firewall as hostnet
//! hooks it (a base chain per port whose one rule is `goto` the shared
//! rules, `hostnet_nft::hook`) against one base chain listing both ports
//! with the same rules inline (what only Linux 6.16+ can keep up to date),
//! and against no chain at all: a bridge and two veth'd namespaces, 1-byte
//! TCP request/response, the three variants interleaved in one run
//! (docs/benchmarks.md, "Hooking devices"). A measurement, not a test:
//!
//! `cargo test --release -p hostnet-testbed --test hook_cost -- --ignored --nocapture`

use std::time::Duration;

use hostnet_dataplane::linux::LinuxDataplane;
use hostnet_dataplane::{Dataplane, Op};
use hostnet_testbed::traffic::{echo_server, request_response};
use hostnet_testbed::{run_in, unique, Netns};

/// Rounds of the three variants (`HOOK_COST_ROUNDS` overrides), each run
/// half a second: many short interleaved runs, since this shared VM's
/// runs differ by up to 2x.
const ROUNDS: usize = 25;

/// The seed's protocols, as in `hostnet_nft`'s endpoint firewall.
const ALLOWED: &str = "{ tcp, udp, icmp, icmpv6, igmp }";

#[test]
#[ignore = "a measurement: cargo test --release -p hostnet-testbed --test hook_cost -- --ignored --nocapture"]
fn hook_cost() {
    let host = Netns::new(&unique("hkh"));
    let a = Netns::new(&unique("hka"));
    let b = Netns::new(&unique("hkb"));
    host.ip(&["link", "add", "br0", "type", "bridge"]);
    host.ip(&["link", "set", "br0", "up"]);
    for (c, port, addr) in [(&a, "hnvea", "10.7.0.1/24"), (&b, "hnveb", "10.7.0.2/24")] {
        host.ip(&[
            "link", "add", port, "master", "br0", "type", "veth", "peer", "name", "eth0", "netns",
            &c.name,
        ]);
        host.ip(&["link", "set", port, "up"]);
        c.ip(&["addr", "add", addr, "dev", "eth0"]);
        c.ip(&["link", "set", "eth0", "up"]);
    }
    let _echo = echo_server(b.path(), 7000);
    let to = "10.7.0.2:7000".parse().unwrap();
    let ports = [
        hostnet_nft::endpoint_port("hnvea"),
        hostnet_nft::endpoint_port("hnveb"),
    ];
    let list = format!(
        "table netdev bench_list {{\n\tchain ports {{\n\t\ttype filter hook egress devices = {{ hnvea, hnveb }} priority 0; policy accept;\n\t\tmeta l4proto {ALLOWED} accept\n\t\tmeta l4proto != {ALLOWED} drop\n\t}}\n}}\n"
    );
    let none = "table netdev bench_list\ndelete table netdev bench_list\n";
    let mut results: Vec<(&str, Vec<f64>)> = vec![
        ("none", vec![]),
        ("device list", vec![]),
        ("chain per device", vec![]),
    ];
    run_in(host.path(), || {
        let dp = LinuxDataplane::new().unwrap();
        dp.load_tables(&hostnet_nft::tables(&[], dp.hook_design()))
            .unwrap();
        let rounds = std::env::var("HOOK_COST_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(ROUNDS);
        for _ in 0..rounds {
            for (variant, runs) in results.iter_mut() {
                match *variant {
                    "none" => dp.load_tables(none).unwrap(),
                    "device list" => dp.load_tables(&list).unwrap(),
                    _ => {
                        dp.load_tables(none).unwrap();
                        dp.execute(&Op::AddElements(ports.to_vec())).unwrap();
                    }
                }
                runs.push(request_response(a.path(), to, Duration::from_millis(500)));
                if *variant == "chain per device" {
                    dp.execute(&Op::DeleteElements(ports.to_vec())).unwrap();
                }
            }
        }
    });
    let quantile = |v: &[f64], q: f64| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    let (base, base90) = (quantile(&results[0].1, 0.5), quantile(&results[0].1, 0.9));
    for (variant, runs) in &results {
        let (m, p90) = (quantile(runs, 0.5), quantile(runs, 0.9));
        println!(
            "{variant}: round trips/s median {m:.0} ({:.3} of none), p90 {p90:.0} ({:.3} of none)",
            m / base,
            p90 / base90
        );
    }
}
