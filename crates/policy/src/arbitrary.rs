//! Proptest strategies over a small universe (one endpoint, 10.0.0.5; a few
//! prefixes around it; ports {53, 80, 81, 443}; TCP, UDP, ICMP, GRE), so
//! overlaps and ties between generated rules are common.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use proptest::prelude::*;

use crate::{Action, Condition, Direction, Origin, Packet, Proto, Rule, RuleId};

/// The endpoint every generated packet is to or from.
pub const ENDPOINT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
/// The peers generated packets come from or go to.
pub const PEERS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(10, 0, 0, 1),
    Ipv4Addr::new(10, 0, 0, 6),
    Ipv4Addr::new(192, 0, 2, 9),
    Ipv4Addr::new(198, 51, 100, 1),
];

fn prefix() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        Just("10.0.0.0/29".parse().unwrap()),
        Just("10.0.0.4/30".parse().unwrap()),
        Just("10.0.0.1/32".parse().unwrap()),
        Just("10.0.0.5/32".parse().unwrap()),
        Just("192.0.2.0/24".parse().unwrap()),
    ]
}

pub fn proto() -> impl Strategy<Value = Proto> {
    prop_oneof![
        Just(Proto::TCP),
        Just(Proto::UDP),
        Just(Proto::ICMP),
        Just(Proto(47))
    ]
}

fn port_range() -> impl Strategy<Value = (u16, u16)> {
    prop_oneof![
        Just((53, 53)),
        Just((80, 81)),
        Just((443, 443)),
        Just((80, 80))
    ]
}

pub fn condition() -> impl Strategy<Value = Condition> {
    (
        prop::collection::vec(proto(), 0..2),
        prop::collection::vec(prefix(), 0..2),
        prop::collection::vec(prefix(), 0..2),
        prop::collection::vec(port_range(), 0..2),
        prop::collection::vec(port_range(), 0..2),
    )
        .prop_map(|(ps, local, remote, lp, rp)| {
            Condition::any()
                .protocols(ps)
                .local(local)
                .remote(remote)
                .local_ports(lp)
                .remote_ports(rp)
        })
}

/// An ACL rule (allow, block or pass) named `r<i>`.
pub fn rule(i: usize) -> impl Strategy<Value = Rule> {
    (
        prop_oneof![Just(Direction::In), Just(Direction::Out)],
        prop_oneof![Just(100u16), Just(200), Just(300)],
        condition(),
        prop_oneof![Just(Action::Allow), Just(Action::Block), Just(Action::Pass)],
    )
        .prop_map(move |(direction, priority, condition, action)| Rule {
            id: RuleId(format!("r{i}")),
            direction,
            priority,
            condition,
            action,
            origin: Origin::default(),
        })
}

/// Up to `max - 1` ACL rules.
pub fn rules(max: usize) -> impl Strategy<Value = Vec<Rule>> {
    (0..max).prop_flat_map(|n| (0..n).map(rule).collect::<Vec<_>>())
}

/// A packet to or from [`ENDPOINT`], and its direction.
pub fn packet() -> impl Strategy<Value = (Packet, Direction)> {
    let port = prop_oneof![Just(53u16), Just(80), Just(81), Just(443), Just(40000)];
    (
        proto(),
        prop::sample::select(PEERS.to_vec()),
        port.clone(),
        port,
        prop_oneof![Just(Direction::In), Just(Direction::Out)],
    )
        .prop_map(|(p, peer, lp, rp, dir)| {
            let (src, sp, dst, dp) = match dir {
                Direction::In => (peer, rp, ENDPOINT, lp),
                Direction::Out => (ENDPOINT, lp, peer, rp),
            };
            (
                Packet::new(p, IpAddr::V4(src), sp, IpAddr::V4(dst), dp),
                dir,
            )
        })
}
