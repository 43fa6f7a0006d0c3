//! The differential test of issue 5 for load balancers: generated sets of
//! frontends, compiled to hostnet's nftables maps and loaded into a real
//! kernel, rewrite real packets as the policy evaluator says: the same
//! frontend or none, a destination among its backends at its target port,
//! the SourceVIP as source when it has one, and one backend for every
//! connection of a client when it has source affinity.
//!
//! The evaluator shows one *representative* backend (the kernel's pick is
//! random or hashed with a per-boot seed), so the kernel's backend is
//! checked to be one of the frontend's. Clients reach frontends from
//! outside here (not from a bridge), so frontends not reachable from
//! outside must leave packets alone. Node ports are not in the model (see
//! docs/policy.md) and not generated.

mod crafted;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crafted::{capture, collect, craft, raw_sender, send, World};
use hostnet_dataplane::linux::{run_in_netns, LinuxDataplane};
use hostnet_dataplane::{Dataplane, Op};
use hostnet_nft::lb::{self, Frontend, Pick, Reach};
use hostnet_policy::{evaluate, Direction, LayerName, Packet, Port, PortKind, Proto, Verdict};
use hostnet_testbed::require_privileges;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const VIPS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 96, 0, 10), Ipv4Addr::new(10, 96, 0, 11)];
/// In the VIPs' prefix, but no frontend's.
const NOT_A_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 12);
const SOURCE_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 100);
/// The sources packets come from, all in the client's namespace.
const CLIENTS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 0, 0, 5),
    Ipv4Addr::new(10, 0, 0, 7),
    Ipv4Addr::new(10, 0, 0, 9),
];
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// Backend `i` of a pool routed to the peer.
fn backend(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, (i / 250) as u8, (1 + i % 250) as u8)
}

fn frontend() -> impl Strategy<Value = Frontend> {
    (
        (0..VIPS.len(), prop_oneof![Just(6u8), Just(17)]),
        (
            prop_oneof![Just(80u16), Just(443)],
            prop_oneof![Just(8080u16), Just(80)],
        ),
        prop_oneof![
            Just(Pick::Random),
            Just(Pick::SourceIp),
            Just(Pick::SourceIpProtocol)
        ],
        (any::<bool>(), any::<bool>(), any::<bool>()),
        // A few backends (hash-map slots), or more than lb::MAX_SLOTS
        // (bucket ranges of the interval map).
        (
            prop_oneof![4 => 1..=5usize, 1 => Just(lb::MAX_SLOTS + 6)],
            0..100usize,
        ),
    )
        .prop_map(
            |((v, proto), (port, target_port), pick, (snat, outside, preserve_dip), (n, first))| {
                Frontend {
                    family: lb::IpFamily::V4,
                    vip: Some(IpAddr::V4(VIPS[v])),
                    proto,
                    port,
                    target_port,
                    pick,
                    reach: Reach {
                        guests: true,
                        outside,
                        host: false,
                    },
                    source_vip: snat.then_some(IpAddr::V4(SOURCE_VIP)),
                    backends: (first..first + n).map(|i| IpAddr::V4(backend(i))).collect(),
                    // Marks the connection; the VIP comes back only on a
                    // backend's port, which this test does not have.
                    preserve_dip,
                }
            },
        )
}

/// Up to four frontends, no two on one VIP, protocol and port (the core
/// refuses that).
fn frontends() -> impl Strategy<Value = Vec<Frontend>> {
    prop::collection::vec(frontend(), 0..5).prop_map(|mut v| {
        let mut taken = BTreeSet::new();
        v.retain(|f| taken.insert((f.vip, f.proto, f.port)));
        v
    })
}

/// A packet from one of the clients to a VIP (or not), source port left 0
/// (each packet gets its own, so no two share a conntrack entry).
fn packet() -> impl Strategy<Value = Packet> {
    (
        0..CLIENTS.len(),
        prop_oneof![Just(Proto::TCP), Just(Proto::UDP)],
        prop_oneof![Just(VIPS[0]), Just(VIPS[1]), Just(NOT_A_VIP)],
        prop_oneof![Just(80u16), Just(443), Just(53)],
    )
        .prop_map(|(c, proto, dst, dport)| {
            Packet::new(proto, IpAddr::V4(CLIENTS[c]), 0, IpAddr::V4(dst), dport)
        })
}

/// The client's `lb` layer as the evaluator sees it: the frontends it
/// reaches from where it is (outside).
fn client_port(fronts: &[Frontend]) -> Port {
    let mut port = Port::new("client", PortKind::Endpoint);
    for (i, f) in fronts.iter().enumerate().filter(|(_, f)| f.reach.outside) {
        let model = hostnet_policy::lb::Frontend {
            vip: f.vip.expect("VIP frontends only"),
            proto: f.proto,
            port: f.port,
            target_port: f.target_port,
            backends: f.backends.clone(),
            affinity: f.pick != Pick::Random,
            source_vip: f.source_vip,
            preserve_dip: f.preserve_dip,
        };
        port.set_group(
            LayerName::Lb,
            hostnet_policy::lb::group(&format!("lb{i}"), &[model]),
        );
    }
    port
}

/// The host's ruleset: the load balancers' maps and chains, entered from
/// the NAT hooks as hostnet's table enters them.
fn host_tables() -> String {
    format!(
        "table inet hostnet {{\n{}\tchain nat_prerouting {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tjump {}\n\t}}\n\tchain nat_postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tjump {}\n\t}}\n}}\n",
        lb::skeleton(),
        lb::PREROUTING,
        lb::POSTROUTING
    )
}

fn v4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => unreachable!("the universe is IPv4"),
    }
}

#[test]
fn compiled_load_balancers_rewrite_real_packets_as_the_evaluator() {
    if !require_privileges("compiled_load_balancers_rewrite_real_packets_as_the_evaluator") {
        return;
    }
    let w = World::new("lbk", &CLIENTS, &[PEER], &["10.1.0.0/16", "10.96.0.0/16"]);
    let dp = run_in_netns(w.host.path(), LinuxDataplane::new)
        .expect("enter host")
        .expect("dataplane");
    dp.load_tables(&host_tables()).expect("load the LB tables");
    let from_client = raw_sender(&w.ep);
    let at_peer = capture(&w.peer);
    let marker = std::cell::Cell::new(0u64);

    let mut runner = TestRunner::new(Config {
        // HOSTNET_LB_CASES=N runs more (each case takes about 70 ms).
        cases: std::env::var("HOSTNET_LB_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(48),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (frontends(), prop::collection::vec(packet(), 1..12));
    let result = runner.run(&strategy, |(fronts, packets)| {
        let els: Vec<_> = fronts.iter().flat_map(lb::elements).collect();
        dp.execute(&Op::AddElements(els.clone()))
            .map_err(|e| TestCaseError::fail(format!("programming: {e}")))?;
        let mut sent = BTreeMap::new();
        for p in packets {
            marker.set(marker.get() + 1);
            let m = marker.get();
            let p = Packet::new(p.proto, p.src, 1024 + m as u16, p.dst, p.dst_port.unwrap());
            send(&from_client, &craft(&p, m), v4(p.dst));
            sent.insert(m, p);
        }
        let [seen]: [Vec<_>; 1] = collect(&[&at_peer], Duration::from_millis(60))
            .try_into()
            .unwrap();
        dp.execute(&Op::DeleteElements(els))
            .map_err(|e| TestCaseError::fail(format!("unprogramming: {e}")))?;
        let seen: BTreeMap<u64, _> = seen.into_iter().map(|s| (s.marker, s)).collect();

        let port = client_port(&fronts);
        // Per affinity frontend and client: the backends its packets got.
        let mut sticky: BTreeMap<(usize, Ipv4Addr), BTreeSet<Ipv4Addr>> = BTreeMap::new();
        for (m, p) in sent {
            let e = evaluate(&port, p, Direction::Out, None);
            let Verdict::Allow { packet: want } = e.verdict else {
                return Err(TestCaseError::fail(format!("{p}: the evaluator blocks it")));
            };
            let trace = || e.trace.render(&e.verdict, true);
            let Some(got) = seen.get(&m) else {
                return Err(TestCaseError::fail(format!("{p}: the kernel dropped it; the evaluator says\n{}", trace())));
            };
            let dport = got.ports.map(|(_, d)| d);
            if want.dst == p.dst {
                if (got.src, got.dst, dport) != (v4(p.src), v4(p.dst), p.dst_port) {
                    return Err(TestCaseError::fail(format!(
                        "{p}: the kernel rewrote it to {got:?}; the evaluator leaves it\n{}",
                        trace()
                    )));
                }
                continue;
            }
            let (i, f) = fronts
                .iter()
                .enumerate()
                .find(|(_, f)| f.vip == Some(p.dst) && f.proto == p.proto.0 && Some(f.port) == p.dst_port)
                .expect("the evaluator rewrote it: a frontend matched");
            let ok = f.backends.contains(&IpAddr::V4(got.dst))
                && dport == Some(f.target_port)
                && got.src == v4(want.src)
                && want.dst_port == Some(f.target_port);
            if !ok {
                return Err(TestCaseError::fail(format!(
                    "{p}: the kernel sent {got:?}; the evaluator says one of {} backends at port {}, from {}\n{}",
                    f.backends.len(),
                    f.target_port,
                    want.src,
                    trace()
                )));
            }
            if f.pick != Pick::Random {
                sticky.entry((i, v4(p.src))).or_default().insert(got.dst);
            }
        }
        if let Some(((i, client), b)) = sticky.iter().find(|(_, b)| b.len() > 1) {
            return Err(TestCaseError::fail(format!(
                "frontend {:?} has source affinity, yet client {client} got backends {b:?}",
                fronts[*i]
            )));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let maps = &lb::MAPS4;
    for map in [
        maps.vip_slots,
        maps.vip_backends,
        maps.vip_marks,
        maps.vip_snat,
    ] {
        let out = w
            .host
            .output("nft", &["list", "map", "inet", "hostnet", map]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains("elements"),
            "elements left after delete:\n{text}"
        );
    }
}
