//! Lowering what decides an endpoint's outgoing traffic past the ACLs:
//! its `OutBoundNAT` policies (the `nat` layer) and its routes (`SDNRoute`
//! policies and `HostComputeRoute` objects, the `route` layer).
//!
//! | HCN | group |
//! |---|---|
//! | a NAT network's own subnets | `nat` / `local`: allow (bridged, never NATed) |
//! | each `OutBoundNAT`, those with `Destinations` first | `nat` / `outbound-nat/<n>`: its exceptions allow (final), then a source NAT of its destinations (or of any) to `VirtualIP` or the host's address |
//! | a NAT network's masquerade | `nat` / `masquerade`: source NAT of the rest to the host's address |
//! | `SDNRoute`, `HostComputeRoute` | `route` / `routes`: one rule per route, the longest prefix first |

use std::net::IpAddr;

use hostnet_model::domain::OutboundNat;
use ipnet::IpNet;

use crate::condition::Condition;
use crate::packet::Direction;
use crate::port::Group;
use crate::rule::{Action, Origin, Rule, RuleId};

/// The owner of the route group.
pub const ROUTES: &str = "routes";

/// The `nat` groups of an endpoint: `local` prefixes are never NATed,
/// then `policies` in the order they decide (the caller orders them: those
/// with `Destinations` first), then, if `masquerade_rest`, everything
/// else is NATed to the host's address.
pub fn outbound_nat_groups(
    local: &[IpNet],
    policies: &[&OutboundNat],
    masquerade_rest: bool,
    object: &str,
) -> Vec<Group> {
    let origin = |policy: &str| Origin {
        policy: policy.into(),
        object: object.into(),
        hcn_id: None,
    };
    let out_rule = |id: String, priority, condition, action, origin| Rule {
        id: RuleId(id),
        direction: Direction::Out,
        priority,
        condition,
        action,
        origin,
    };
    let mut groups = Vec::new();
    if !local.is_empty() {
        let rule = out_rule(
            "local:allow".into(),
            0,
            Condition::any().remote(local.iter().copied()),
            Action::Allow,
            origin("NAT network"),
        );
        groups.push(Group::new("local", 0, vec![rule]));
    }
    for (n, p) in policies.iter().enumerate() {
        let mut rules = Vec::new();
        if !p.exceptions.is_empty() {
            rules.push(out_rule(
                format!("outbound-nat/{n}:exceptions"),
                0,
                Condition::any().remote(p.exceptions.iter().copied()),
                Action::Allow,
                origin("OutBoundNAT"),
            ));
        }
        let to = if p.destinations.is_empty() {
            Condition::any()
        } else {
            Condition::any().remote(p.destinations.iter().copied())
        };
        rules.push(out_rule(
            format!("outbound-nat/{n}:snat"),
            1,
            to,
            Action::Snat { addr: p.virtual_ip },
            origin("OutBoundNAT"),
        ));
        groups.push(Group::new(format!("outbound-nat/{n}"), 1 + n as u32, rules));
    }
    if masquerade_rest {
        let rule = out_rule(
            "masquerade:snat".into(),
            0,
            Condition::any(),
            Action::Snat { addr: None },
            origin("NAT network"),
        );
        groups.push(Group::new("masquerade", u32::MAX, vec![rule]));
    }
    groups
}

/// One route of an endpoint, with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcedRoute {
    pub destination: IpNet,
    /// None: on-link.
    pub via: Option<IpAddr>,
    pub origin: Origin,
}

/// The `route` group: a rule per route, ordered as the kernel's lookup is
/// (longest prefix first: priority 128 minus the prefix length).
pub fn route_group(routes: &[SourcedRoute]) -> Group {
    let rules = routes
        .iter()
        .map(|r| Rule {
            id: RuleId(format!("route:{}", r.destination)),
            direction: Direction::Out,
            priority: 128 - u16::from(r.destination.prefix_len()),
            condition: Condition::any().remote([r.destination]),
            action: Action::Route { via: r.via },
            origin: r.origin.clone(),
        })
        .collect();
    Group::new(ROUTES, 0, rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{evaluate, LayerName, Packet, Port, PortKind, Proto, Verdict};

    fn out(port: &Port, dst: &str) -> (Option<IpAddr>, String) {
        let p = Packet::new(
            Proto::TCP,
            "10.0.0.2".parse().unwrap(),
            40000,
            dst.parse().unwrap(),
            80,
        );
        let e = evaluate(port, p, Direction::Out, Some("192.0.2.11".parse().unwrap()));
        let Verdict::Allow { packet } = e.verdict else {
            panic!("blocked")
        };
        let text = e.trace.render(&e.verdict, false);
        (Some(packet.src), text)
    }

    #[test]
    fn specific_policy_then_exceptions_then_masquerade() {
        let general = OutboundNat {
            exceptions: vec!["10.0.0.0/8".parse().unwrap()],
            ..OutboundNat::default()
        };
        let vip = OutboundNat {
            virtual_ip: Some("198.51.100.9".parse().unwrap()),
            destinations: vec!["10.9.0.0/16".parse().unwrap()],
            ..OutboundNat::default()
        };
        let mut port = Port::new("ep", PortKind::Endpoint);
        for g in outbound_nat_groups(
            &["10.0.0.0/24".parse().unwrap()],
            &[&vip, &general],
            true,
            "ep",
        ) {
            port.set_group(LayerName::Nat, g);
        }
        let src = |d| out(&port, d).0.unwrap().to_string();
        assert_eq!(src("10.0.0.9"), "10.0.0.2", "local");
        assert_eq!(src("10.9.1.1"), "198.51.100.9", "virtual IP");
        assert_eq!(src("10.1.1.1"), "10.0.0.2", "exception");
        assert_eq!(
            src("203.0.113.1"),
            "192.0.2.11",
            "first general policy NATs the rest"
        );
    }

    #[test]
    fn the_longest_prefix_routes() {
        let route = |d: &str, v: &str| SourcedRoute {
            destination: d.parse().unwrap(),
            via: Some(v.parse().unwrap()),
            origin: Origin::default(),
        };
        let mut port = Port::new("ep", PortKind::Endpoint);
        port.set_group(
            LayerName::Route,
            route_group(&[
                route("10.0.0.0/8", "10.0.0.1"),
                route("10.1.0.0/16", "10.0.0.7"),
            ]),
        );
        assert!(out(&port, "10.1.2.3").1.contains("route via 10.0.0.7"));
        assert!(out(&port, "10.2.2.3").1.contains("route via 10.0.0.1"));
    }
}
