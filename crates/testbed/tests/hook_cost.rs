//! What a bridged round trip pays for the endpoint firewall in each of
//! hostnet's hooking designs (`hostnet_nft::hook`): a base chain per port
//! whose one rule is `goto` the shared rules, and one base chain per rule
//! set listing the ports with the same one rule (Linux 6.16+; left out
//! where the kernel cannot), against no chain at all: a bridge and two
//! veth'd namespaces, 1-byte TCP request/response, the variants
//! interleaved in one run (docs/benchmarks.md, "Hooking devices"). A
//! measurement, not a test:
//!
//! `cargo test --release -p hostnet-testbed --test hook_cost -- --ignored --nocapture`

use std::time::Duration;

use hostnet_dataplane::linux::LinuxDataplane;
use hostnet_dataplane::{Dataplane, Op};
use hostnet_nft::hook::HookDesign;
use hostnet_testbed::traffic::{echo_server, request_response};
use hostnet_testbed::{run_in, unique, Netns};

/// Rounds of the three variants (`HOOK_COST_ROUNDS` overrides), each run
/// half a second: many short interleaved runs, since this shared VM's
/// runs differ by up to 2x.
const ROUNDS: usize = 25;

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
    let mut results: Vec<(&str, Option<HookDesign>, Vec<f64>)> = vec![
        ("none", None, vec![]),
        ("device list", Some(HookDesign::DeviceList), vec![]),
        ("chain per device", Some(HookDesign::ChainPerDevice), vec![]),
    ];
    run_in(host.path(), || {
        let kernel = LinuxDataplane::new().unwrap().hook_design();
        if kernel != HookDesign::DeviceList {
            println!(
                "this kernel hooks with {}: no device-list variant",
                kernel.describe()
            );
            results.retain(|(_, design, _)| *design != Some(HookDesign::DeviceList));
        }
        let dp = LinuxDataplane::new().unwrap();
        dp.load_tables(&hostnet_nft::tables(&[], kernel)).unwrap();
        let rounds = std::env::var("HOOK_COST_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(ROUNDS);
        for _ in 0..rounds {
            for (_, design, runs) in results.iter_mut() {
                let hooked = design.map(|d| LinuxDataplane::new().unwrap().with_hook_design(d));
                if let Some(dp) = &hooked {
                    dp.execute(&Op::AddElements(ports.to_vec())).unwrap();
                }
                runs.push(request_response(a.path(), to, Duration::from_millis(500)));
                if let Some(dp) = &hooked {
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
    let (base, base90) = (quantile(&results[0].2, 0.5), quantile(&results[0].2, 0.9));
    for (variant, _, runs) in &results {
        let (m, p90) = (quantile(runs, 0.5), quantile(runs, 0.9));
        println!(
            "{variant}: round trips/s median {m:.0} ({:.3} of none), p90 {p90:.0} ({:.3} of none)",
            m / base,
            p90 / base90
        );
    }
}
