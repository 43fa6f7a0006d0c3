//! The compiled ACL form against the policy evaluator: for generated rule
//! sets and packets over a small universe (so overlaps and ties are common),
//! walking the compiled elements gives the evaluator's verdict.

use std::net::{IpAddr, Ipv4Addr};

use hostnet_nft::acl;
use hostnet_policy::arbitrary::{packet, rules, ENDPOINT};
use hostnet_policy::lower::{self, DEFAULTS};
use hostnet_policy::{
    evaluate, Action, Condition, Direction, Group, LayerName, Origin, Packet, Port, PortKind,
    Proto, Rule, RuleId, Verdict,
};
use proptest::prelude::*;

const EP: Ipv4Addr = ENDPOINT;

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

/// The Kubernetes shape (one peer, one protocol, one destination port, any
/// source port) goes to a stratum's hash map in both directions; a prefix,
/// a range or a fixed source port keeps a rule in the interval map. Both
/// decide packets alike.
#[test]
fn exact_rules_go_to_the_hash_maps() {
    let rule = |id: &str, direction, condition: Condition| Rule {
        id: RuleId(id.into()),
        direction,
        priority: 100,
        condition,
        action: Action::Allow,
        origin: Origin::default(),
    };
    let peer: ipnet::IpNet = "192.0.2.9/32".parse().unwrap();
    let tcp = || Condition::any().protocols([Proto::TCP]).remote([peer]);
    let port = port_of(
        vec![],
        vec![
            rule("in-exact", Direction::In, tcp().local_ports([(80, 80)])),
            rule("out-exact", Direction::Out, tcp().remote_ports([(53, 53)])),
            rule("in-range", Direction::In, tcp().local_ports([(443, 444)])),
            rule(
                "in-sport",
                Direction::In,
                tcp().local_ports([(81, 81)]).remote_ports([(9, 9)]),
            ),
            Rule {
                priority: 1000,
                action: Action::Block,
                ..rule("deny-in", Direction::In, Condition::any())
            },
            Rule {
                priority: 1000,
                action: Action::Block,
                ..rule("deny-out", Direction::Out, Condition::any())
            },
        ],
        vec![],
    );
    let els = acl::elements(EP, &port).unwrap();
    let set_of = |text: &str| {
        els.iter()
            .find(|e| e.text.contains(text))
            .unwrap_or_else(|| panic!("no element {text}"))
            .set
    };
    assert_eq!(set_of("192.0.2.9 . 6 . 80 :"), "acl_in_switch_0_s0_x");
    assert_eq!(set_of("192.0.2.9 . 6 . 53 :"), "acl_out_switch_0_s0_x");
    assert_eq!(set_of("443-444"), "acl_in_switch_0_s0");
    assert_eq!(set_of("81-81 . 9-9"), "acl_in_switch_0_s0");
    let peer_ip = IpAddr::V4("192.0.2.9".parse().unwrap());
    let to_ep = |sport, dport| Packet::new(Proto::TCP, peer_ip, sport, IpAddr::V4(EP), dport);
    assert!(acl::interpret(&els, &to_ep(40000, 80), Direction::In));
    assert!(acl::interpret(&els, &to_ep(9, 81), Direction::In));
    assert!(!acl::interpret(&els, &to_ep(10, 81), Direction::In));
    assert!(!acl::interpret(&els, &to_ep(40000, 82), Direction::In));
    let from_ep = |dport| Packet::new(Proto::TCP, IpAddr::V4(EP), 40000, peer_ip, dport);
    assert!(acl::interpret(&els, &from_ep(53), Direction::Out));
    assert!(!acl::interpret(&els, &from_ep(54), Direction::Out));
}
