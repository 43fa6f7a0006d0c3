//! Scenario tests of the policy model: HCN policies (as JSON, through the
//! model's validation) lowered into a port, packets walked through it.

use std::net::IpAddr;

use hostnet_model::domain::{EndpointPolicy, TierAcl};
use hostnet_policy::lower::{self, SourcedAcl};
use hostnet_policy::{
    evaluate, Direction, LayerName, Origin, Packet, Port, PortKind, Proto, Verdict,
};
use serde_json::json;

const EP: &str = "10.0.0.5";
const HOST: &str = "192.0.2.11";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The endpoint policies of an endpoint created with `policies` (HCN JSON).
fn policies(policies: serde_json::Value) -> Vec<EndpointPolicy> {
    let body = json!({
        "HostComputeNetwork": "0A0B0C0D-0000-4000-8000-000000000001",
        "Policies": policies,
    });
    let wire = hostnet_model::from_json(body.to_string().as_bytes()).expect("parse");
    hostnet_model::validate_endpoint(&wire)
        .expect("validate")
        .policies
}

/// An endpoint port with the seed's defaults and the ACLs among `pols`.
fn port(pols: &[EndpointPolicy]) -> Port {
    let mut port = Port::new("ep1", PortKind::Endpoint);
    port.set_group(LayerName::AclHost, lower::firewall_defaults());
    let acls: Vec<SourcedAcl<'_>> = pols
        .iter()
        .filter_map(|p| match p {
            EndpointPolicy::Acl(r) => Some(SourcedAcl {
                rule: r,
                origin: Origin {
                    policy: "ACL".into(),
                    object: "ep1".into(),
                    hcn_id: None,
                },
            }),
            _ => None,
        })
        .collect();
    for (layer, group) in lower::acl_groups(&acls, &|_| None) {
        port.set_group(layer, group);
    }
    port
}

fn inbound(proto: Proto, from: &str, dport: u16) -> Packet {
    Packet::new(proto, ip(from), 40000, ip(EP), dport)
}

fn outbound(proto: Proto, to: &str, dport: u16) -> Packet {
    Packet::new(proto, ip(EP), 40000, ip(to), dport)
}

fn allowed(port: &Port, p: Packet, dir: Direction) -> bool {
    matches!(
        evaluate(port, p, dir, Some(ip(HOST))).verdict,
        Verdict::Allow { .. }
    )
}

fn acl(
    id: &str,
    action: &str,
    dir: &str,
    prio: u16,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut s = json!({ "Id": id, "Action": action, "Direction": dir, "Priority": prio });
    s.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({ "Type": "ACL", "Settings": s })
}

#[test]
fn defaults_allow_the_seeds_protocols_in_and_everything_out() {
    let p = port(&[]);
    assert!(allowed(
        &p,
        inbound(Proto::TCP, "192.0.2.9", 80),
        Direction::In
    ));
    assert!(allowed(
        &p,
        inbound(Proto::ICMP, "192.0.2.9", 0),
        Direction::In
    ));
    assert!(!allowed(
        &p,
        inbound(Proto(47), "192.0.2.9", 0),
        Direction::In
    ));
    assert!(!allowed(
        &p,
        inbound(Proto::SCTP, "192.0.2.9", 9),
        Direction::In
    ));
    assert!(allowed(
        &p,
        outbound(Proto(47), "203.0.113.2", 0),
        Direction::Out
    ));
}

#[test]
fn a_default_deny_ladder_with_allows_above_it() {
    let pols = policies(json!([
        acl(
            "web",
            "Allow",
            "In",
            100,
            json!({ "Protocols": "6", "LocalPorts": "80,443" })
        ),
        acl(
            "dns-from-lan",
            "Allow",
            "In",
            110,
            json!({ "Protocols": "17", "RemoteAddresses": "192.0.2.0/24", "LocalPorts": "53" })
        ),
        acl("deny-in", "Block", "In", 1000, json!({})),
    ]));
    let p = port(&pols);
    assert!(allowed(
        &p,
        inbound(Proto::TCP, "198.51.100.7", 443),
        Direction::In
    ));
    assert!(!allowed(
        &p,
        inbound(Proto::TCP, "198.51.100.7", 22),
        Direction::In
    ));
    assert!(allowed(
        &p,
        inbound(Proto::UDP, "192.0.2.9", 53),
        Direction::In
    ));
    assert!(!allowed(
        &p,
        inbound(Proto::UDP, "198.51.100.7", 53),
        Direction::In
    ));
    // Outbound is untouched by inbound rules.
    assert!(allowed(
        &p,
        outbound(Proto::TCP, "198.51.100.7", 22),
        Direction::Out
    ));
    let e = evaluate(
        &p,
        inbound(Proto::TCP, "198.51.100.7", 22),
        Direction::In,
        None,
    );
    let Verdict::Block {
        layer,
        rule,
        priority,
        ..
    } = &e.verdict
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (*layer, rule.0.as_str(), *priority),
        (LayerName::AclSwitch, "deny-in", 1000)
    );
}

#[test]
fn at_equal_priority_block_wins_whatever_the_order() {
    let allow = acl("a", "Allow", "In", 100, json!({ "Protocols": "6" }));
    let block = acl(
        "b",
        "Block",
        "In",
        100,
        json!({ "LocalPorts": "80", "Protocols": "6" }),
    );
    for list in [json!([allow.clone(), block.clone()]), json!([block, allow])] {
        let p = port(&policies(list));
        assert!(!allowed(
            &p,
            inbound(Proto::TCP, "192.0.2.9", 80),
            Direction::In
        ));
        assert!(allowed(
            &p,
            inbound(Proto::TCP, "192.0.2.9", 81),
            Direction::In
        ));
    }
}

#[test]
fn host_and_switch_acls_are_two_firewalls_in_series() {
    let pols = policies(json!([
        acl(
            "switch-allow",
            "Allow",
            "In",
            100,
            json!({ "Protocols": "6" })
        ),
        acl(
            "host-block",
            "Block",
            "In",
            100,
            json!({ "Protocols": "6", "LocalPorts": "22", "RuleType": "Host" })
        ),
    ]));
    let p = port(&pols);
    let e = evaluate(
        &p,
        inbound(Proto::TCP, "192.0.2.9", 22),
        Direction::In,
        None,
    );
    assert!(
        matches!(
            e.verdict,
            Verdict::Block {
                layer: LayerName::AclHost,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(allowed(
        &p,
        inbound(Proto::TCP, "192.0.2.9", 80),
        Direction::In
    ));
}

#[test]
fn pass_leaves_a_tier_for_the_next() {
    let tiers: Vec<TierAcl> = match policies(json!([
        { "Type": "TierAcl", "Settings": { "Name": "admin", "Direction": "In", "Order": 1, "TierAclRules": [
            { "Id": "admin-pass-web", "TierAclRuleAction": "Pass", "Protocols": "6", "LocalPorts": "80", "Priority": 1 },
            { "Id": "admin-deny", "TierAclRuleAction": "Block", "Priority": 2 } ] } },
        { "Type": "TierAcl", "Settings": { "Name": "app", "Direction": "In", "Order": 2, "TierAclRules": [
            { "Id": "app-allow-web", "TierAclRuleAction": "Allow", "Protocols": "6", "LocalPorts": "80", "Priority": 1 } ] } },
    ]))
    .into_iter()
    .filter_map(|p| match p {
        EndpointPolicy::TierAcl(t) => Some(t),
        _ => None,
    })
    .collect::<Vec<_>>()
    {
        t if t.len() == 2 => t,
        other => panic!("{other:?}"),
    };
    let mut p = port(&[]);
    for g in lower::tier_groups(&tiers, "ep1", &|_| None) {
        p.set_group(LayerName::AclSwitch, g);
    }
    assert!(allowed(
        &p,
        inbound(Proto::TCP, "192.0.2.9", 80),
        Direction::In
    ));
    let e = evaluate(
        &p,
        inbound(Proto::TCP, "192.0.2.9", 81),
        Direction::In,
        None,
    );
    assert!(
        matches!(&e.verdict, Verdict::Block { rule, .. } if rule.0 == "admin-deny"),
        "{e:?}"
    );
}

#[test]
fn outbound_nat_rewrites_all_but_the_exceptions() {
    let mut p = port(&[]);
    p.set_group(
        LayerName::Nat,
        lower::outbound_nat(&["10.0.0.0/8".parse().unwrap()], None, "ep1"),
    );
    let out = evaluate(
        &p,
        outbound(Proto::TCP, "203.0.113.2", 443),
        Direction::Out,
        Some(ip(HOST)),
    );
    assert_eq!(
        out.verdict,
        Verdict::Allow {
            packet: Packet::new(Proto::TCP, ip(HOST), 40000, ip("203.0.113.2"), 443)
        }
    );
    let near = outbound(Proto::TCP, "10.1.2.3", 443);
    let e = evaluate(&p, near, Direction::Out, Some(ip(HOST)));
    assert_eq!(e.verdict, Verdict::Allow { packet: near });
}

#[test]
fn every_change_bumps_the_epoch() {
    let mut p = Port::new("ep1", PortKind::Endpoint);
    assert_eq!(p.epoch(), 0);
    p.set_group(LayerName::AclHost, lower::firewall_defaults());
    p.set_group(LayerName::AclHost, lower::firewall_defaults());
    assert_eq!(p.epoch(), 2);
    assert_eq!(
        p.layer(LayerName::AclHost).groups().len(),
        1,
        "replaced, not added"
    );
    assert!(p.remove_group(LayerName::AclHost, lower::DEFAULTS));
    assert!(!p.remove_group(LayerName::AclHost, lower::DEFAULTS));
    assert_eq!(p.epoch(), 3);
}

#[test]
fn the_trace_text_is_stable() {
    let pols = policies(json!([
        acl(
            "web",
            "Allow",
            "In",
            100,
            json!({ "Protocols": "6", "LocalPorts": "80" })
        ),
        acl("deny-in", "Block", "In", 1000, json!({})),
    ]));
    let p = port(&pols);
    let e = evaluate(
        &p,
        inbound(Proto::TCP, "172.31.255.1", 81),
        Direction::In,
        None,
    );
    let text = e.trace.render(&e.verdict, true);
    let want = "\
trace port ep1 dir in epoch 3
packet tcp 172.31.255.1:40000 -> 10.0.0.5:81
  route       no match: allow
  nat         no match: allow
  lb          no match: allow
  acl-switch  group acl rule deny-in prio 1000 block (ACL Id \"deny-in\")
              acl web missed on local-port
verdict block (acl-switch, rule deny-in, priority 1000, ACL Id \"deny-in\")
";
    assert_eq!(text, want);
}
