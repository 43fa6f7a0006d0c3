//! The differential test of issue 5: generated ACL rule sets, compiled to
//! hostnet's nftables maps and loaded into a real kernel, decide real
//! packets exactly as the policy evaluator says.
//!
//! ```text
//!  ep (10.0.0.5/32) --veth-- host (forwards; ACL maps and chains) --veth-- peer (10.0.0.1, 10.0.0.6,
//!                                                                          192.0.2.9, 198.51.100.1)
//! ```
//!
//! Every generated packet is crafted whole (raw IP) in the sender's
//! namespace and looked for with a packet socket on the receiver's link;
//! receivers drop everything at their input hook, so no reply ever makes a
//! flow established and every packet is judged as a new one.

mod crafted;

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use crafted::{capture, collect, craft, raw_sender, send, World};
use hostnet_dataplane::linux::{run_in_netns, LinuxDataplane};
use hostnet_dataplane::{Dataplane, Op};
use hostnet_nft::acl;
use hostnet_policy::arbitrary::{packet, rules, ENDPOINT, PEERS};
use hostnet_policy::{evaluate, lower, Direction, Group, LayerName, Port, PortKind, Verdict};
use hostnet_testbed::require_privileges;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// The host's ruleset: the ACL maps and chains, entered from forward.
/// Probes are not tracked: the walk must decide each one on its own (GRE,
/// say, is tracked by addresses alone, so an allowed probe out would make
/// every later one in a reply). That replies of allowed flows pass is the
/// daemon's tests' business.
fn host_tables() -> String {
    format!(
        "table inet hostnet {{\n{}\tchain raw {{\n\t\ttype filter hook prerouting priority raw; policy accept;\n\t\tnotrack\n\t}}\n\tchain forward {{\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tct state established,related accept\n\t\tip saddr {ENDPOINT} jump {}\n\t\tip daddr {ENDPOINT} jump {}\n\t}}\n}}\n",
        acl::skeleton(),
        acl::OUT_ENTRY,
        acl::IN_ENTRY
    )
}

#[test]
fn compiled_acls_decide_real_packets_as_the_evaluator() {
    if !require_privileges("compiled_acls_decide_real_packets_as_the_evaluator") {
        return;
    }
    let w = World::new("acl", &[ENDPOINT], &PEERS, &[]);
    let dp = run_in_netns(w.host.path(), LinuxDataplane::new)
        .expect("enter host")
        .expect("dataplane");
    dp.load_tables(&host_tables()).expect("load the ACL tables");
    let (from_ep, from_peer) = (raw_sender(&w.ep), raw_sender(&w.peer));
    let (at_ep, at_peer) = (capture(&w.ep), capture(&w.peer));
    let marker = std::cell::Cell::new(0u64);

    let mut runner = TestRunner::new(Config {
        // HOSTNET_ACL_CASES=N runs more (each case takes about 70 ms).
        cases: std::env::var("HOSTNET_ACL_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(48),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        rules(5),
        rules(7),
        proptest::collection::vec(packet(), 1..10),
    );
    let result = runner.run(&strategy, |(host_rules, switch_rules, packets)| {
        let mut port = Port::new("ep", PortKind::Endpoint);
        port.set_group(LayerName::AclHost, lower::firewall_defaults());
        port.set_group(LayerName::AclHost, Group::new("acl", 0, host_rules));
        port.set_group(LayerName::AclSwitch, Group::new("acl", 0, switch_rules));
        let Ok(els) = acl::elements(ENDPOINT.into(), &port) else {
            return Ok(());
        };
        dp.execute(&Op::AddElements(els.clone()))
            .map_err(|e| TestCaseError::fail(format!("programming: {e}")))?;
        let mut sent = Vec::new();
        for (p, dir) in &packets {
            marker.set(marker.get() + 1);
            let marker = marker.get();
            let (fd, dst) = match dir {
                Direction::In => (&from_peer, p.dst),
                Direction::Out => (&from_ep, p.dst),
            };
            let IpAddr::V4(dst) = dst else { unreachable!() };
            send(fd, &craft(p, marker), dst);
            sent.push((marker, *p, *dir));
        }
        // A packet counts where it was going: at the endpoint if to it, at
        // the peer if from it (not the senders' own outgoing copies).
        let [at_ep, at_peer]: [Vec<_>; 2] = collect(&[&at_ep, &at_peer], Duration::from_millis(60))
            .try_into()
            .unwrap();
        let seen: HashSet<u64> = (at_ep.iter().filter(|s| s.dst == ENDPOINT))
            .chain(at_peer.iter().filter(|s| s.dst != ENDPOINT))
            .map(|s| s.marker)
            .collect();
        dp.execute(&Op::DeleteElements(els))
            .map_err(|e| TestCaseError::fail(format!("unprogramming: {e}")))?;
        let left = w.host.output("nft", &["list", "table", "inet", "hostnet"]);
        let left = String::from_utf8_lossy(&left.stdout);
        if left.contains("elements") {
            return Err(TestCaseError::fail(format!(
                "elements left after delete:\n{left}"
            )));
        }
        for (m, p, dir) in sent {
            let e = evaluate(&port, p, dir, None);
            let want = matches!(e.verdict, Verdict::Allow { .. });
            let got = seen.contains(&m);
            if got != want {
                return Err(TestCaseError::fail(format!(
                    "{dir} {p}: the kernel {} it, the evaluator says\n{}",
                    if got { "passed" } else { "dropped" },
                    e.trace.render(&e.verdict, true)
                )));
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
