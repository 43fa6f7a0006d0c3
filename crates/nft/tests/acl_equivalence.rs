//! The compiled ACL form against the policy evaluator: for generated rule
//! sets and packets over a small universe (so overlaps and ties are common),
//! walking the compiled elements gives the evaluator's verdict.

use std::net::{IpAddr, Ipv4Addr};

use hostnet_nft::acl;
use hostnet_policy::lower::{self, DEFAULTS};
use hostnet_policy::{
    evaluate, Action, Condition, Direction, Group, LayerName, Origin, Packet, Port, PortKind,
    Proto, Rule, RuleId, Verdict,
};
use ipnet::IpNet;
use proptest::prelude::*;

const EP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

fn universe_prefix() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        Just("10.0.0.0/29".parse().unwrap()),
        Just("10.0.0.4/30".parse().unwrap()),
        Just("10.0.0.1/32".parse().unwrap()),
        Just("10.0.0.5/32".parse().unwrap()),
        Just("192.0.2.0/24".parse().unwrap()),
    ]
}

fn proto() -> impl Strategy<Value = Proto> {
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

fn condition() -> impl Strategy<Value = Condition> {
    (
        prop::collection::vec(proto(), 0..2),
        prop::collection::vec(universe_prefix(), 0..2),
        prop::collection::vec(universe_prefix(), 0..2),
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

fn rule(i: usize) -> impl Strategy<Value = Rule> {
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

fn rules(max: usize) -> impl Strategy<Value = Vec<Rule>> {
    (0..max).prop_flat_map(|n| (0..n).map(rule).collect::<Vec<_>>())
}

fn packet() -> impl Strategy<Value = (Packet, Direction)> {
    let peer = prop_oneof![
        Just(Ipv4Addr::new(10, 0, 0, 1)),
        Just(Ipv4Addr::new(10, 0, 0, 6)),
        Just(Ipv4Addr::new(192, 0, 2, 9)),
        Just(Ipv4Addr::new(198, 51, 100, 1)),
    ];
    let port = prop_oneof![Just(53u16), Just(80), Just(81), Just(443), Just(40000)];
    (
        proto(),
        peer,
        port.clone(),
        port,
        prop_oneof![Just(Direction::In), Just(Direction::Out)],
    )
        .prop_map(|(p, peer, lp, rp, dir)| {
            let (src, sp, dst, dp) = match dir {
                Direction::In => (peer, rp, EP, lp),
                Direction::Out => (EP, lp, peer, rp),
            };
            (
                Packet::new(p, IpAddr::V4(src), sp, IpAddr::V4(dst), dp),
                dir,
            )
        })
}

fn port_of(host: Vec<Rule>, switch: Vec<Rule>, tier: Vec<Rule>) -> Port {
    let mut port = Port::new("ep", PortKind::Endpoint);
    port.set_group(LayerName::AclHost, lower::firewall_defaults());
    port.set_group(LayerName::AclHost, Group::new("acl", 0, host));
    port.set_group(LayerName::AclSwitch, Group::new("acl", 0, switch));
    port.set_group(LayerName::AclSwitch, Group::new("tier/t", 1000, tier));
    port
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn compiled_acls_decide_as_the_evaluator(
        host in rules(5),
        switch in rules(7),
        tier in rules(4),
        packets in prop::collection::vec(packet(), 1..12),
    ) {
        let port = port_of(host, switch, tier);
        let els = match acl::elements(EP, &port) {
            Ok(e) => e,
            // Too deep a ladder is refused, not miscompiled.
            Err(acl::CompileError::TooDeep { .. }) => return Ok(()),
            Err(e) => panic!("{e}"),
        };
        for (p, dir) in packets {
            let want = matches!(evaluate(&port, p, dir, None).verdict, Verdict::Allow { .. });
            let got = acl::interpret(&els, &p, dir);
            prop_assert_eq!(got, want, "{} {}", dir, p);
        }
    }
}

#[test]
fn the_defaults_alone_need_no_elements() {
    let mut port = Port::new("ep", PortKind::Endpoint);
    port.set_group(LayerName::AclHost, lower::firewall_defaults());
    assert!(port
        .layer(LayerName::AclHost)
        .groups()
        .iter()
        .any(|g| g.owner == DEFAULTS));
    let els = acl::elements(EP, &port).unwrap();
    assert!(els.is_empty());
    let gre = Packet::new(
        Proto(47),
        "192.0.2.9".parse().unwrap(),
        0,
        IpAddr::V4(EP),
        0,
    );
    assert!(!acl::interpret(&els, &gre, Direction::In));
    assert!(acl::interpret(&els, &gre, Direction::Out));
}

#[test]
fn a_ladder_needs_two_strata() {
    let allow = Rule {
        id: RuleId("web".into()),
        direction: Direction::In,
        priority: 100,
        condition: Condition::any()
            .protocols([Proto::TCP])
            .local_ports([(80, 80)]),
        action: Action::Allow,
        origin: Origin::default(),
    };
    let deny = Rule {
        id: RuleId("deny".into()),
        priority: 1000,
        condition: Condition::any(),
        action: Action::Block,
        ..allow.clone()
    };
    let port = port_of(vec![], vec![allow, deny], vec![]);
    let els = acl::elements(EP, &port).unwrap();
    let sets: std::collections::BTreeSet<&str> = els.iter().map(|e| e.set).collect();
    assert_eq!(
        sets.into_iter().collect::<Vec<_>>(),
        ["acl_in_switch_0_s0", "acl_in_switch_0_s1"]
    );
}
