//! Lowering HCN policies into groups (reference/hcn-schema.md §8; design:
//! shared/design/policy-model.md §3).
//!
//! | HCN | group |
//! |---|---|
//! | seed firewall defaults | `acl-host` / `defaults`, visited last: in allows TCP, UDP, ICMP, ICMPv6, IGMP and blocks the rest; out allows all |
//! | `ACL` with `RuleType: Host` | `acl-host` / `acl` |
//! | `ACL` (`Switch`, the default) and `NetworkACL` | `acl-switch` / `acl`, merged so priorities compare across them |
//! | `TierAcl` | `acl-switch` / `tier/<name>`, in `Order`; `Pass` goes to the next tier |
//! | `OutBoundNAT` | `nat` / `outbound-nat`: exceptions are higher-priority allows, then a source NAT to `VirtualIP` or the host's address |

use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use hostnet_model::domain::{
    AclAction, AclRule, AddressMatch, PortRange, RuleType, TierAcl, TierAclRule,
};
use ipnet::IpNet;

use crate::condition::Condition;
use crate::packet::{Direction, Proto};
use crate::port::{Group, LayerName};
use crate::rule::{Action, Origin, Rule, RuleId};

/// The owner of the defaults group.
pub const DEFAULTS: &str = "defaults";
/// The owner of the ACL group in `acl-host` and `acl-switch`.
pub const ACL: &str = "acl";
/// The owner of the OutBoundNAT group.
pub const OUTBOUND_NAT: &str = "outbound-nat";

/// Where ACL groups sit: before the defaults, tiers after the plain ACLs.
const ACL_ORDER: u32 = 0;
const TIER_ORDER_BASE: u32 = 1000;

/// Protocols an endpoint accepts unsolicited (the seed's defaults).
const INBOUND_ALLOWED: [Proto; 5] = [
    Proto::TCP,
    Proto::UDP,
    Proto::ICMP,
    Proto::ICMPV6,
    Proto::IGMP,
];

/// The seed's firewall defaults, the last group of `acl-host`.
pub fn firewall_defaults() -> Group {
    let origin = Origin {
        policy: "firewall defaults".into(),
        ..Origin::default()
    };
    let rule = |id: &str, direction, priority, condition, action| Rule {
        id: RuleId(id.into()),
        direction,
        priority,
        condition,
        action,
        origin: origin.clone(),
    };
    Group::new(
        DEFAULTS,
        u32::MAX,
        vec![
            rule(
                "defaults:in-allow",
                Direction::In,
                0,
                Condition::any().protocols(INBOUND_ALLOWED),
                Action::Allow,
            ),
            rule(
                "defaults:in-block",
                Direction::In,
                1,
                Condition::any(),
                Action::Block,
            ),
            rule(
                "defaults:out-allow",
                Direction::Out,
                0,
                Condition::any(),
                Action::Allow,
            ),
        ],
    )
}

/// An ACL with where it came from (`ACL` of an endpoint, `NetworkACL` of
/// its network), ready to lower.
#[derive(Clone, Debug)]
pub struct SourcedAcl<'a> {
    pub rule: &'a AclRule,
    pub origin: Origin,
}

/// The `acl` groups an endpoint's ACLs and its network's NetworkACLs lower
/// into: one for `acl-host` (RuleType Host), one for `acl-switch`. `sets`
/// resolves a SetPolicy `Id` to its prefixes; an unknown one matches nothing.
pub fn acl_groups(
    acls: &[SourcedAcl<'_>],
    sets: &dyn Fn(&str) -> Option<Vec<IpNet>>,
) -> [(LayerName, Group); 2] {
    let mut host = Vec::new();
    let mut switch = Vec::new();
    for a in acls {
        let r = a.rule;
        let rule = lower_rule(
            &AclFields::of(r),
            r.direction.into(),
            a.origin.clone(),
            sets,
        );
        match r.rule_type {
            RuleType::Host => host.push(rule),
            RuleType::Switch => switch.push(rule),
        }
    }
    [
        (LayerName::AclHost, Group::new(ACL, ACL_ORDER, host)),
        (LayerName::AclSwitch, Group::new(ACL, ACL_ORDER, switch)),
    ]
}

/// One group per `TierAcl`, in `acl-switch`, visited by `Order` after the
/// plain ACLs.
pub fn tier_groups(
    tiers: &[TierAcl],
    object: &str,
    sets: &dyn Fn(&str) -> Option<Vec<IpNet>>,
) -> Vec<Group> {
    tiers
        .iter()
        .map(|t| {
            let origin = Origin {
                policy: "TierAcl".into(),
                object: object.into(),
                hcn_id: None,
            };
            let rules = t
                .rules
                .iter()
                .map(|r| {
                    lower_rule(
                        &AclFields::of_tier(r),
                        t.direction.into(),
                        origin.clone(),
                        sets,
                    )
                })
                .collect();
            Group::new(
                format!("tier/{}", t.name),
                TIER_ORDER_BASE + u32::from(t.order),
                rules,
            )
        })
        .collect()
}

/// `OutBoundNAT` of an endpoint: traffic out to anything but `exceptions`
/// leaves with `virtual_ip`, or the host's address.
pub fn outbound_nat(exceptions: &[IpNet], virtual_ip: Option<IpAddr>, object: &str) -> Group {
    let origin = Origin {
        policy: "OutBoundNAT".into(),
        object: object.into(),
        hcn_id: None,
    };
    let mut rules = Vec::new();
    if !exceptions.is_empty() {
        rules.push(Rule {
            id: RuleId("outbound-nat:exceptions".into()),
            direction: Direction::Out,
            priority: 0,
            condition: Condition::any().remote(exceptions.iter().copied()),
            action: Action::Allow,
            origin: origin.clone(),
        });
    }
    rules.push(Rule {
        id: RuleId("outbound-nat:snat".into()),
        direction: Direction::Out,
        priority: 1,
        condition: Condition::any(),
        action: Action::Snat { addr: virtual_ip },
        origin,
    });
    Group::new(OUTBOUND_NAT, 0, rules)
}

/// What ACL and TierAcl rules share, borrowed from either.
#[derive(Debug)]
struct AclFields<'a> {
    id: Option<&'a str>,
    protocols: &'a [u8],
    local: &'a [AddressMatch],
    remote: &'a [AddressMatch],
    local_ports: &'a [PortRange],
    remote_ports: &'a [PortRange],
    action: AclAction,
    priority: u16,
}

impl<'a> AclFields<'a> {
    fn of(r: &'a AclRule) -> Self {
        AclFields {
            id: r.id.as_deref(),
            protocols: &r.protocols,
            local: &r.local_addresses,
            remote: &r.remote_addresses,
            local_ports: &r.local_ports,
            remote_ports: &r.remote_ports,
            action: r.action,
            priority: r.priority,
        }
    }

    fn of_tier(r: &'a TierAclRule) -> Self {
        AclFields {
            id: r.id.as_deref(),
            protocols: &r.protocols,
            local: &r.local_addresses,
            remote: &r.remote_addresses,
            local_ports: &r.local_ports,
            remote_ports: &r.remote_ports,
            action: r.action,
            priority: r.priority,
        }
    }
}

/// One ACL rule of the model; `origin` gets the rule's own `Id`.
fn lower_rule(
    f: &AclFields<'_>,
    direction: Direction,
    origin: Origin,
    sets: &dyn Fn(&str) -> Option<Vec<IpNet>>,
) -> Rule {
    Rule {
        id: rule_id(f.id, f),
        direction,
        priority: f.priority,
        condition: condition(
            f.protocols,
            f.local,
            f.remote,
            f.local_ports,
            f.remote_ports,
            sets,
        ),
        action: action(f.action),
        origin: Origin {
            hcn_id: f.id.map(str::to_string),
            ..origin
        },
    }
}

fn action(a: AclAction) -> Action {
    match a {
        AclAction::Allow => Action::Allow,
        AclAction::Block => Action::Block,
        AclAction::Pass => Action::Pass,
    }
}

fn condition(
    protocols: &[u8],
    local: &[AddressMatch],
    remote: &[AddressMatch],
    local_ports: &[PortRange],
    remote_ports: &[PortRange],
    sets: &dyn Fn(&str) -> Option<Vec<IpNet>>,
) -> Condition {
    let c = Condition::any()
        .protocols(protocols.iter().map(|&p| Proto(p)))
        .local_ports(local_ports.iter().map(|r| (r.start, r.end)))
        .remote_ports(remote_ports.iter().map(|r| (r.start, r.end)));
    let resolve = |list: &[AddressMatch]| -> Option<Vec<IpNet>> {
        let mut out = Vec::new();
        for m in list {
            match m {
                AddressMatch::Prefix(p) => out.push(*p),
                AddressMatch::SetId(id) => out.extend(sets(id).unwrap_or_default()),
            }
        }
        Some(out)
    };
    // An empty list is "any"; a list whose sets resolved to nothing matches
    // nothing, and must stay that way rather than widen to "any".
    let mut c = c.local(resolve(local).unwrap_or_default());
    if !local.is_empty() && c.local.is_none() {
        c.local = Some(Vec::new());
    }
    let mut c = c.remote(resolve(remote).unwrap_or_default());
    if !remote.is_empty() && c.remote.is_none() {
        c.remote = Some(Vec::new());
    }
    c
}

/// The HCN `Id`, else a name derived from the rule's content, so the same
/// rule gets the same ID after any restart.
fn rule_id(given: Option<&str>, content: &impl std::fmt::Debug) -> RuleId {
    match given {
        Some(id) if !id.is_empty() => RuleId(id.into()),
        _ => {
            let mut h = Fnv(0xcbf2_9ce4_8422_2325);
            format!("{content:?}").hash(&mut h);
            RuleId(format!("acl:{:012x}", h.0 & 0xffff_ffff_ffff))
        }
    }
}

/// FNV-1a: stable across runs and Rust versions, unlike `DefaultHasher`.
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }
}
