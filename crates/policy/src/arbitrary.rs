//! Proptest strategies over a small universe (one endpoint, 10.0.0.5; a few
//! prefixes around it; ports {53, 80, 81, 443} and ranges, unaligned and
//! wide, around them; TCP, UDP, ICMP, GRE), so
//! overlaps and ties between generated rules are common. The `dual_`
//! strategies add the endpoint's IPv6 address (fd00::5) and IPv6 peers,
//! prefixes and ICMPv6, for dual-stack endpoints.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

/// A dual-stack endpoint's IPv6 address.
pub const ENDPOINT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 5);
/// The IPv6 peers of dual-stack packets.
pub const PEERS6: [Ipv6Addr; 3] = [
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 6),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9),
];

fn prefix() -> impl Strategy<Value = IpNet> + Clone {
    prop_oneof![
        Just("10.0.0.0/29".parse().unwrap()),
        Just("10.0.0.4/30".parse().unwrap()),
        Just("10.0.0.1/32".parse().unwrap()),
        Just("10.0.0.5/32".parse().unwrap()),
        Just("10.0.0.6/31".parse().unwrap()),
        Just("10.0.0.0/8".parse().unwrap()),
        Just("192.0.2.0/24".parse().unwrap()),
    ]
}

pub fn proto() -> impl Strategy<Value = Proto> + Clone {
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
        Just((80, 80)),
        // Unaligned and wide: many aligned blocks each, so compiled rules
        // span several shapes (and two together overflow the shape maps'
        // per-box budget).
        Just((79, 444)),
        Just((1, 65534)),
        Just((1024, 65535)),
    ]
}

/// [`prefix`] or one of the IPv6 universe's.
fn dual_prefix() -> impl Strategy<Value = IpNet> + Clone {
    prop_oneof![
        prefix(),
        Just("fd00::/125".parse().unwrap()),
        Just("fd00::5/128".parse().unwrap()),
        Just("fd00::1/128".parse().unwrap()),
        Just("2001:db8::/32".parse().unwrap()),
    ]
}

fn dual_proto() -> impl Strategy<Value = Proto> + Clone {
    prop_oneof![proto(), Just(Proto::ICMPV6)]
}

pub fn condition() -> impl Strategy<Value = Condition> {
    condition_over(proto(), prefix(), 2)
}

fn condition_over(
    proto: impl Strategy<Value = Proto> + Clone,
    prefix: impl Strategy<Value = IpNet> + Clone,
    max_prefixes: usize,
) -> impl Strategy<Value = Condition> {
    (
        prop::collection::vec(proto, 0..2),
        // Lists of up to `max_prefixes - 1`: two can mix the families.
        prop::collection::vec(prefix.clone(), 0..max_prefixes),
        prop::collection::vec(prefix, 0..max_prefixes),
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
    rule_with(i, condition())
}

/// A rule whose address lists may name either family or both.
pub fn dual_rule(i: usize) -> impl Strategy<Value = Rule> {
    rule_with(i, condition_over(dual_proto(), dual_prefix(), 3))
}

fn rule_with(i: usize, condition: impl Strategy<Value = Condition>) -> impl Strategy<Value = Rule> {
    (
        prop_oneof![Just(Direction::In), Just(Direction::Out)],
        prop_oneof![Just(100u16), Just(200), Just(300)],
        condition,
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

/// Up to `max - 1` [`dual_rule`]s.
pub fn dual_rules(max: usize) -> impl Strategy<Value = Vec<Rule>> {
    (0..max).prop_flat_map(|n| (0..n).map(dual_rule).collect::<Vec<_>>())
}

/// A packet to or from [`ENDPOINT`], and its direction.
pub fn packet() -> impl Strategy<Value = (Packet, Direction)> {
    packet_between(
        proto(),
        IpAddr::V4(ENDPOINT),
        PEERS.map(IpAddr::V4).to_vec(),
    )
}

/// A packet to or from the dual-stack endpoint: IPv4 as [`packet`], or
/// IPv6 between [`ENDPOINT6`] and [`PEERS6`].
pub fn dual_packet() -> impl Strategy<Value = (Packet, Direction)> {
    prop_oneof![
        packet_between(
            dual_proto(),
            IpAddr::V4(ENDPOINT),
            PEERS.map(IpAddr::V4).to_vec()
        ),
        packet_between(
            dual_proto(),
            IpAddr::V6(ENDPOINT6),
            PEERS6.map(IpAddr::V6).to_vec()
        ),
    ]
}

fn packet_between(
    proto: impl Strategy<Value = Proto>,
    endpoint: IpAddr,
    peers: Vec<IpAddr>,
) -> impl Strategy<Value = (Packet, Direction)> {
    let port = prop_oneof![
        Just(53u16),
        Just(80),
        Just(81),
        Just(443),
        Just(40000),
        Just(79),
        Just(444),
        Just(65535)
    ];
    (
        proto,
        prop::sample::select(peers),
        port.clone(),
        port,
        prop_oneof![Just(Direction::In), Just(Direction::Out)],
    )
        .prop_map(move |(p, peer, lp, rp, dir)| {
            let (src, sp, dst, dp) = match dir {
                Direction::In => (peer, rp, endpoint, lp),
                Direction::Out => (endpoint, lp, peer, rp),
            };
            (Packet::new(p, src, sp, dst, dp), dir)
        })
}
