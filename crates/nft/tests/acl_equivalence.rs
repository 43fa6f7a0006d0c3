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
        [
            "acl_in_switch_0/10.0.0.5",
            "acl_in_switch_0_ep",
            "acl_in_switch_0_m0",
            "acl_in_switch_0_m1"
        ]
    );
    // The endpoint's chain: stratum 0's shape (TCP port 80 from anyone),
    // then stratum 1's (everything), then the next slot.
    let chain = els.iter().find(|e| e.chain_rules().is_some()).unwrap();
    assert_eq!(
        chain.text,
        "meta nfproto ipv4 ip daddr . ip saddr & 0.0.0.0 . meta l4proto . th dport . th sport & 0 vmap @acl_in_switch_0_m0; \
         meta nfproto ipv4 ip daddr . ip saddr & 0.0.0.0 . meta l4proto & 0 . th dport & 0 . th sport & 0 vmap @acl_in_switch_0_m1; \
         goto acl_in_switch_1"
    );
    let dispatch = els.iter().find(|e| e.set == "acl_in_switch_0_ep").unwrap();
    assert_eq!(dispatch.text, "10.0.0.5 : goto acl_in_switch_0/10.0.0.5");
    assert_eq!(
        els.iter().position(|e| e.chain_rules().is_some()),
        Some(0),
        "the chain comes before the element that goes to it"
    );
}

/// Prefixes and unaligned port ranges go to shape maps as aligned blocks,
/// one map per (stratum, shape), whatever the number of rules; a box of
/// too many blocks (two wide ranges) stays in the interval map. Both
/// decide packets as the evaluator does.
#[test]
fn ranges_split_into_shapes_and_wide_boxes_stay_intervals() {
    let rule = |id: &str, priority, condition: Condition, action| Rule {
        id: RuleId(id.into()),
        direction: Direction::In,
        priority,
        condition,
        action,
        origin: Origin::default(),
    };
    let tcp = || Condition::any().protocols([Proto::TCP]);
    let mut rules: Vec<Rule> = (0..200u16)
        .map(|i| {
            let net: ipnet::IpNet = format!("198.18.{}.0/24", i).parse().unwrap();
            rule(
                &format!("r{i}"),
                100,
                tcp().remote([net]).local_ports([(1000 + i, 1000 + i + 20)]),
                Action::Allow,
            )
        })
        .collect();
    rules.push(rule(
        "wide",
        100,
        tcp()
            .remote(["192.0.2.0/24".parse().unwrap()])
            .local_ports([(1, 65534)])
            .remote_ports([(1, 65534)]),
        Action::Allow,
    ));
    rules.push(rule("deny", 1000, Condition::any(), Action::Block));
    let port = port_of(vec![], rules, vec![]);
    let els = acl::rule_elements(EP, &port).unwrap();
    let wide = els
        .iter()
        .filter(|e| e.rule.rule == 200)
        .collect::<Vec<_>>();
    assert_eq!(wide.len(), 1, "one interval element");
    assert_eq!(wide[0].element.set, "acl_in_switch_0_s0");
    let of_r7 = els.iter().filter(|e| e.rule.rule == 7).count();
    assert!(of_r7 > 1, "a range of 21 ports is several blocks: {of_r7}");
    let maps: std::collections::BTreeSet<&str> = els.iter().map(|e| e.element.set).collect();
    assert!(
        maps.len() <= acl::SHAPE_MAPS + 2,
        "shapes, not rules, make maps: {maps:?}"
    );
    let all = acl::elements(EP, &port).unwrap();
    let from =
        |src: &str, sport, dport| Packet::new(Proto::TCP, src.parse().unwrap(), sport, EP, dport);
    for (p, want) in [
        (from("198.18.7.9", 40000, 1007), true),
        (from("198.18.7.9", 40000, 1027), true),
        (from("198.18.7.9", 40000, 1028), false),
        (from("198.18.7.9", 40000, 1006), false),
        (from("198.18.8.9", 40000, 1007), false),
        (from("192.0.2.1", 7, 7), true),
        (from("192.0.2.1", 65535, 7), false),
        (from("203.0.113.1", 40000, 1007), false),
    ] {
        let evaluated = matches!(
            evaluate(&port, p, Direction::In, None).verdict,
            Verdict::Allow { .. }
        );
        assert_eq!(evaluated, want, "{p}");
        assert_eq!(acl::interpret(&all, &p, Direction::In), want, "{p}");
    }
}

/// The Kubernetes shape (one peer, one protocol, one destination port, any
/// source port) is one shape of a stratum's hash maps in both directions;
/// a range or a fixed source port makes other shapes. All decide packets
/// alike.
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
    let exact_in = set_of("192.0.2.9 . 6 . 80 . 0 :");
    assert!(exact_in.starts_with("acl_in_switch_0_m"), "{exact_in}");
    assert!(set_of("192.0.2.9 . 6 . 0 . 53 :").starts_with("acl_out_switch_0_m"));
    // 443-444 is two blocks (443, 444) of the exact shape.
    assert_eq!(set_of("192.0.2.9 . 6 . 443 . 0 :"), exact_in);
    assert_eq!(set_of("192.0.2.9 . 6 . 444 . 0 :"), exact_in);
    assert_ne!(
        set_of("192.0.2.9 . 6 . 81 . 9 :"),
        exact_in,
        "another shape"
    );
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
    let exact = set_of("fd00::5 . 2001:db8::9 . 6 . 80 . 0 : goto acl6_in_host_0");
    assert!(exact.set.starts_with("acl6_in_switch_0_m"), "{}", exact.set);
    assert_eq!(exact.key.len(), 16 + 16 + 4 + 4 + 4);
    let icmp = set_of("fd00::5 . :: . 58 . 0 . 0 : goto acl6_in_host_0");
    assert!(icmp.set.starts_with("acl6_in_switch_0_m"), "{}", icmp.set);
    assert_ne!(icmp.set, exact.set, "another shape");
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
    let v4 = acl::rule_elements(EP, &mixed).unwrap();
    let v6 = acl::rule_elements(EP6, &mixed).unwrap();
    assert_eq!((v4.len(), v6.len()), (2, 1), "{v4:#?} {v6:#?}");
    assert!(v4.iter().all(|e| e.element.set.starts_with("acl_in_")));
    assert!(v6.iter().all(|e| e.element.set.starts_with("acl6_in_")));
    let walk6 = acl::elements(EP6, &mixed).unwrap();
    assert!(
        walk6.iter().all(|e| e.set.starts_with("acl6_in_")),
        "{walk6:#?}"
    );
}

/// More (stratum, shape) pairs than shape maps: the most common shapes
/// get maps, the rarest stay in the interval map, and the walk still
/// decides as the evaluator does, for packets of every shape.
#[test]
fn shapes_beyond_the_maps_stay_in_the_interval_map() {
    let rule = |net: String, ports: (u16, u16)| Rule {
        id: RuleId(format!("{net} {ports:?}")),
        direction: Direction::In,
        priority: 100,
        condition: Condition::any()
            .protocols([Proto::TCP])
            .remote([net.parse().unwrap()])
            .local_ports([ports]),
        action: Action::Allow,
        origin: Origin::default(),
    };
    // Prefix lengths 8 to 31, each to one port and to an aligned pair: 48
    // shapes, the /24s to one port most common.
    let mut rules: Vec<Rule> = (0..24u8)
        .flat_map(|i| {
            let net = format!("{}.0.0.0/{}", 20 + i, 8 + i);
            [rule(net.clone(), (80, 80)), rule(net, (82, 83))]
        })
        .collect();
    rules.extend((0..10u8).map(|i| rule(format!("100.{i}.0.0/24"), (80, 80))));
    rules.push(block_all(Direction::In));
    let port = port_of(vec![], rules, vec![]);
    let els = acl::elements(EP, &port).unwrap();
    let shape_maps: std::collections::BTreeSet<&str> = els
        .iter()
        .map(|e| e.set)
        .filter(|s| s.starts_with("acl_in_switch_0_m"))
        .collect();
    assert_eq!(shape_maps.len(), acl::SHAPE_MAPS);
    let interval = els
        .iter()
        .filter(|e| e.set.starts_with("acl_in_switch_0_s"))
        .count();
    assert_eq!(interval, 48 + 1 - acl::SHAPE_MAPS, "the rarest shapes");
    assert!(
        els.iter()
            .any(|e| e.set.starts_with("acl_in_switch_0_m") && e.text.contains("100.7.0.0")),
        "the /24s, the most common shape, have a map"
    );
    let peers = (0..24u8)
        .map(|i| format!("{}.0.0.1", 20 + i))
        .chain((0..10u8).map(|i| format!("100.{i}.0.1")));
    for peer in peers {
        let pair = !peer.starts_with("100.");
        for (dport, want) in [(80, true), (81, false), (82, pair), (83, pair), (84, false)] {
            let p = Packet::new(Proto::TCP, peer.parse().unwrap(), 40000, EP, dport);
            let evaluated = matches!(
                evaluate(&port, p, Direction::In, None).verdict,
                Verdict::Allow { .. }
            );
            assert_eq!(evaluated, want, "{p}");
            assert_eq!(acl::interpret(&els, &p, Direction::In), want, "{p}");
        }
    }
}
