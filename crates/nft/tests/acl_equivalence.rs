//! The compiled ACL form against the policy evaluator: for generated rule
//! sets and packets over a small universe (so overlaps and ties are common),
//! walking the compiled elements gives the evaluator's verdict.

use std::net::IpAddr;

use hostnet_nft::acl;
use hostnet_policy::arbitrary::{dual_packet, dual_rules, packet, rules, ENDPOINT, ENDPOINT6};
use hostnet_policy::lower::{self, DEFAULTS};
use hostnet_policy::{
    evaluate, Action, Condition, Direction, Group, LayerName, Origin, Packet, Port, PortKind,
    Proto, Rule, RuleId, Verdict,
};
use proptest::prelude::*;

const EP: IpAddr = IpAddr::V4(ENDPOINT);
const EP6: IpAddr = IpAddr::V6(ENDPOINT6);

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

    /// A dual-stack endpoint: rules name IPv4, IPv6 or both families; the
    /// elements of both addresses walked for packets of either family
    /// decide as the evaluator does.
    #[test]
    fn compiled_dual_stack_acls_decide_as_the_evaluator(
        host in dual_rules(5),
        switch in dual_rules(7),
        tier in dual_rules(4),
        packets in prop::collection::vec(dual_packet(), 1..12),
    ) {
        let port = port_of(host, switch, tier);
        let both = acl::elements(EP, &port).and_then(|mut v4| {
            v4.extend(acl::elements(EP6, &port)?);
            Ok(v4)
        });
        let els = match both {
            Ok(e) => e,
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
    let gre = Packet::new(Proto(47), "192.0.2.9".parse().unwrap(), 0, EP, 0);
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
    let to_ep = |sport, dport| Packet::new(Proto::TCP, peer_ip, sport, EP, dport);
    assert!(acl::interpret(&els, &to_ep(40000, 80), Direction::In));
    assert!(acl::interpret(&els, &to_ep(9, 81), Direction::In));
    assert!(!acl::interpret(&els, &to_ep(10, 81), Direction::In));
    assert!(!acl::interpret(&els, &to_ep(40000, 82), Direction::In));
    let from_ep = |dport| Packet::new(Proto::TCP, EP, 40000, peer_ip, dport);
    assert!(acl::interpret(&els, &from_ep(53), Direction::Out));
    assert!(!acl::interpret(&els, &from_ep(54), Direction::Out));
}

fn block_all(direction: Direction) -> Rule {
    Rule {
        id: RuleId(format!("deny-{direction}")),
        direction,
        priority: 1000,
        condition: Condition::any(),
        action: Action::Block,
        origin: Origin::default(),
    }
}

/// The IPv6 walk mirrors IPv4's: its own chains and maps (`acl6_…`), keyed
/// by IPv6 addresses, with the exact shape in the hash maps; ICMPv6 is
/// protocol 58.
#[test]
fn ipv6_rules_go_to_the_ipv6_maps() {
    let peer6: ipnet::IpNet = "2001:db8::9/128".parse().unwrap();
    let web = Rule {
        id: RuleId("web6".into()),
        direction: Direction::In,
        priority: 100,
        condition: Condition::any()
            .protocols([Proto::TCP])
            .remote([peer6])
            .local_ports([(80, 80)]),
        action: Action::Allow,
        origin: Origin::default(),
    };
    let ping = Rule {
        id: RuleId("ping6".into()),
        condition: Condition::any().protocols([Proto::ICMPV6]),
        ..web.clone()
    };
    let port = port_of(vec![], vec![web, ping, block_all(Direction::In)], vec![]);
    let els = acl::elements(EP6, &port).unwrap();
    let set_of = |text: &str| {
        els.iter()
            .find(|e| e.text.contains(text))
            .unwrap_or_else(|| panic!("no element {text} in {els:#?}"))
    };
    let exact = set_of("fd00::5 . 2001:db8::9 . 6 . 80 : goto acl6_in_host_0");
    assert_eq!(exact.set, "acl6_in_switch_0_s0_x");
    assert_eq!(exact.key.len(), 16 + 16 + 4 + 4);
    let icmp =
        set_of("fd00::5 . ::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff . 58-58 . 0-65535 . 0-65535");
    assert_eq!(icmp.set, "acl6_in_switch_0_s0");
    assert_eq!(icmp.key_end.as_ref().unwrap().len(), 16 + 16 + 4 + 4 + 4);
    assert!(els.iter().all(|e| e.set.starts_with("acl6_")), "{els:#?}");
    let from =
        |src: &str, proto, dport| Packet::new(proto, src.parse().unwrap(), 40000, EP6, dport);
    assert!(acl::interpret(
        &els,
        &from("2001:db8::9", Proto::TCP, 80),
        Direction::In
    ));
    assert!(!acl::interpret(
        &els,
        &from("2001:db8::8", Proto::TCP, 80),
        Direction::In
    ));
    assert!(acl::interpret(
        &els,
        &from("2001:db8::8", Proto::ICMPV6, 0),
        Direction::In
    ));
    // ICMP is protocol 1: it says nothing of ICMPv6, and the reverse.
    assert!(!acl::interpret(
        &els,
        &from("2001:db8::8", Proto::ICMP, 0),
        Direction::In
    ));
}

/// A rule's address lists pick its families: IPv6 addresses only, IPv6
/// only; none, both; a list naming both splits by family.
#[test]
fn rules_apply_to_the_families_their_addresses_name() {
    let rule = |id: &str, remote: &[&str]| Rule {
        id: RuleId(id.into()),
        direction: Direction::In,
        priority: 100,
        condition: Condition::any()
            .protocols([Proto::TCP])
            .remote(remote.iter().map(|r| r.parse().unwrap()))
            .local_ports([(80, 80)]),
        action: Action::Allow,
        origin: Origin::default(),
    };
    let only6 = port_of(
        vec![],
        vec![rule("v6", &["2001:db8::/32"]), block_all(Direction::In)],
        vec![],
    );
    let v4 = acl::rule_elements(EP, &only6).unwrap();
    let v6 = acl::rule_elements(EP6, &only6).unwrap();
    let of_rule =
        |els: &[acl::RuleElement], r: usize| els.iter().filter(|e| e.rule.rule == r).count();
    assert_eq!(
        (of_rule(&v4, 0), of_rule(&v6, 0)),
        (0, 1),
        "an IPv6-only rule stays out of IPv4"
    );
    assert_eq!(
        (of_rule(&v4, 1), of_rule(&v6, 1)),
        (1, 1),
        "an address-less rule is in both"
    );
    let mixed = port_of(
        vec![],
        vec![rule(
            "mixed",
            &["192.0.2.0/24", "2001:db8::/32", "198.51.100.0/24"],
        )],
        vec![],
    );
    let v4 = acl::elements(EP, &mixed).unwrap();
    let v6 = acl::elements(EP6, &mixed).unwrap();
    assert_eq!((v4.len(), v6.len()), (2, 1), "{v4:#?} {v6:#?}");
    assert!(v4.iter().all(|e| e.set.starts_with("acl_in_")));
    assert!(v6.iter().all(|e| e.set.starts_with("acl6_in_")));
}
