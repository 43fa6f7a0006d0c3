//! ACL rules: endpoint `ACL`, network `NetworkACL` and endpoint `TierAcl`
//! policies (reference/hcn-schema.md §8, §8.2).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use super::ip::parse_prefix_loose;
use super::policy::{decode, invalid, required, string_or_number};
use crate::error::{ErrorCode, HcnError};
use crate::wire;

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclAction {
    /// Let the packet through.
    Allow,
    /// Drop the packet.
    Block,
    /// Stop evaluating this tier and continue with the next (2.10).
    Pass,
}

/// Traffic direction relative to the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Towards the endpoint.
    In,
    /// From the endpoint.
    Out,
}

/// Where the rule is enforced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RuleType {
    /// Host firewall (WFP).
    Host,
    /// Virtual switch (VFP); the default.
    #[default]
    Switch,
}

/// One entry of `LocalAddresses` / `RemoteAddresses`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AddressMatch {
    /// An address or CIDR (a bare address is /32 or /128).
    Prefix(IpNet),
    /// The `Id` of a `SetPolicy` (Azure NPM).
    SetId(String),
}

/// An inclusive port range; a single port has `start == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port.
    pub start: u16,
    /// Last port.
    pub end: u16,
}

/// A validated ACL rule. Empty lists mean "any".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRule {
    /// Rule id (`Id`), used by Calico/NPM to find their rules.
    pub id: Option<String>,
    /// IANA protocol numbers; empty = any.
    pub protocols: Vec<u8>,
    /// Action.
    pub action: AclAction,
    /// Direction.
    pub direction: Direction,
    /// Endpoint-side addresses.
    pub local_addresses: Vec<AddressMatch>,
    /// Peer addresses.
    pub remote_addresses: Vec<AddressMatch>,
    /// Endpoint-side ports.
    pub local_ports: Vec<PortRange>,
    /// Peer ports.
    pub remote_ports: Vec<PortRange>,
    /// Enforcement point (default `Switch`).
    pub rule_type: RuleType,
    /// Lower is evaluated first.
    pub priority: u16,
}

/// A validated `TierAcl` policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierAcl {
    /// Tier name.
    pub name: String,
    /// Direction of the tier.
    pub direction: Direction,
    /// Tier order.
    pub order: u16,
    /// Rules of the tier.
    pub rules: Vec<TierAclRule>,
}

/// One rule of a `TierAcl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierAclRule {
    /// Rule id.
    pub id: Option<String>,
    /// IANA protocol numbers; empty = any.
    pub protocols: Vec<u8>,
    /// `TierAclRuleAction`.
    pub action: AclAction,
    /// Endpoint-side addresses.
    pub local_addresses: Vec<AddressMatch>,
    /// Peer addresses.
    pub remote_addresses: Vec<AddressMatch>,
    /// Endpoint-side ports.
    pub local_ports: Vec<PortRange>,
    /// Peer ports.
    pub remote_ports: Vec<PortRange>,
    /// Lower is evaluated first.
    pub priority: u16,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AclSettings {
    id: Option<String>,
    #[serde(deserialize_with = "string_or_number")]
    protocols: Option<String>,
    action: Option<String>,
    direction: Option<String>,
    local_addresses: Option<String>,
    remote_addresses: Option<String>,
    local_ports: Option<String>,
    remote_ports: Option<String>,
    rule_type: Option<String>,
    priority: u16,
}

/// The match fields shared by ACL and TierAcl rules.
struct Matches {
    protocols: Vec<u8>,
    local_addresses: Vec<AddressMatch>,
    remote_addresses: Vec<AddressMatch>,
    local_ports: Vec<PortRange>,
    remote_ports: Vec<PortRange>,
}

impl Matches {
    fn parse(
        ty: &str,
        protocols: Option<&str>,
        addrs: [Option<&str>; 2],
        ports: [Option<&str>; 2],
    ) -> Result<Self, HcnError> {
        Ok(Matches {
            protocols: parse_protocols(protocols.unwrap_or(""), ty)?,
            local_addresses: parse_addresses(addrs[0].unwrap_or(""), ty, "LocalAddresses")?,
            remote_addresses: parse_addresses(addrs[1].unwrap_or(""), ty, "RemoteAddresses")?,
            local_ports: parse_ports(ports[0].unwrap_or(""), ty, "LocalPorts")?,
            remote_ports: parse_ports(ports[1].unwrap_or(""), ty, "RemotePorts")?,
        })
    }
}

/// Parse the settings of an `ACL` / `NetworkACL` policy.
pub(crate) fn parse_acl(p: &wire::Policy, ty: &str) -> Result<AclRule, HcnError> {
    let s: AclSettings = decode(p, ty)?;
    let m = Matches::parse(
        ty,
        s.protocols.as_deref(),
        [s.local_addresses.as_deref(), s.remote_addresses.as_deref()],
        [s.local_ports.as_deref(), s.remote_ports.as_deref()],
    )?;
    let action = required(s.action.as_deref(), ty, "Action", "Allow, Block or Pass")?;
    let direction = required(s.direction.as_deref(), ty, "Direction", "In or Out")?;
    let rule_type = match s.rule_type.as_deref().map(str::trim) {
        None | Some("") => RuleType::Switch,
        Some(r) if r.eq_ignore_ascii_case("Switch") => RuleType::Switch,
        Some(r) if r.eq_ignore_ascii_case("Host") => RuleType::Host,
        Some(r) => {
            return Err(invalid(
                ty,
                format!("Settings.RuleType {r:?} is unknown: use Switch or Host"),
            ))
        }
    };
    Ok(AclRule {
        id: s.id.filter(|i| !i.is_empty()),
        protocols: m.protocols,
        action: parse_action(action, ty, "Action")?,
        direction: parse_direction(direction, ty, "Direction")?,
        local_addresses: m.local_addresses,
        remote_addresses: m.remote_addresses,
        local_ports: m.local_ports,
        remote_ports: m.remote_ports,
        rule_type,
        priority: s.priority,
    })
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct TierAclSettings {
    name: String,
    direction: Option<String>,
    order: u16,
    tier_acl_rules: Vec<TierAclRuleSettings>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct TierAclRuleSettings {
    id: Option<String>,
    #[serde(deserialize_with = "string_or_number")]
    protocols: Option<String>,
    tier_acl_rule_action: Option<String>,
    local_addresses: Option<String>,
    remote_addresses: Option<String>,
    local_ports: Option<String>,
    remote_ports: Option<String>,
    priority: u16,
}

/// Parse the settings of a `TierAcl` policy.
pub(crate) fn parse_tier_acl(p: &wire::Policy, ty: &str) -> Result<TierAcl, HcnError> {
    let s: TierAclSettings = decode(p, ty)?;
    let direction = required(s.direction.as_deref(), ty, "Direction", "In or Out")?;
    let rules = s
        .tier_acl_rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let rty = format!("{ty} TierAclRules[{i}]");
            let m = Matches::parse(
                &rty,
                r.protocols.as_deref(),
                [r.local_addresses.as_deref(), r.remote_addresses.as_deref()],
                [r.local_ports.as_deref(), r.remote_ports.as_deref()],
            )?;
            let action = required(
                r.tier_acl_rule_action.as_deref(),
                &rty,
                "TierAclRuleAction",
                "Allow, Block or Pass",
            )?;
            Ok(TierAclRule {
                id: r.id.clone().filter(|i| !i.is_empty()),
                protocols: m.protocols,
                action: parse_action(action, &rty, "TierAclRuleAction")?,
                local_addresses: m.local_addresses,
                remote_addresses: m.remote_addresses,
                local_ports: m.local_ports,
                remote_ports: m.remote_ports,
                priority: r.priority,
            })
        })
        .collect::<Result<_, HcnError>>()?;
    Ok(TierAcl {
        name: s.name,
        direction: parse_direction(direction, ty, "Direction")?,
        order: s.order,
        rules,
    })
}

fn parse_action(s: &str, ty: &str, field: &str) -> Result<AclAction, HcnError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "allow" => Ok(AclAction::Allow),
        "block" => Ok(AclAction::Block),
        "pass" => Ok(AclAction::Pass),
        _ => Err(invalid(
            ty,
            format!("Settings.{field} {s:?} is unknown: use Allow, Block or Pass"),
        )),
    }
}

fn parse_direction(s: &str, ty: &str, field: &str) -> Result<Direction, HcnError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "in" => Ok(Direction::In),
        "out" => Ok(Direction::Out),
        _ => Err(invalid(
            ty,
            format!("Settings.{field} {s:?} is unknown: use In or Out"),
        )),
    }
}

/// Items of a comma-separated list, trimmed, empties skipped.
fn items(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|i| !i.is_empty())
}

/// `"6,17"` → `[6, 17]`; `"256"` (anywhere) or empty → any (`[]`).
pub(crate) fn parse_protocols(s: &str, ty: &str) -> Result<Vec<u8>, HcnError> {
    let mut out = Vec::new();
    for item in items(s) {
        let n: u16 = match item.to_ascii_lowercase().as_str() {
            "any" => 256,
            "icmp" => 1,
            "tcp" => 6,
            "udp" => 17,
            "icmpv6" => 58,
            _ => item.parse().ok().filter(|n| *n <= 256).ok_or_else(|| {
                invalid(
                    ty,
                    format!(
                        "Settings.Protocols item {item:?} is not a protocol: give IANA numbers \
                         0-255 separated by commas, or 256 for any"
                    ),
                )
            })?,
        };
        match u8::try_from(n) {
            Ok(p) if !out.contains(&p) => out.push(p),
            Ok(_) => {}
            Err(_) => return Ok(Vec::new()),
        }
    }
    Ok(out)
}

/// Comma list of addresses, CIDRs or SetPolicy ids.
pub(crate) fn parse_addresses(
    s: &str,
    ty: &str,
    field: &str,
) -> Result<Vec<AddressMatch>, HcnError> {
    items(s)
        .map(|item| {
            let looks_like_address = item.parse::<IpAddr>().is_ok()
                || item
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == '/')
                || (item.contains(':')
                    && item
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '/' || c == '.'));
            if looks_like_address {
                parse_prefix_loose(
                    item,
                    &format!("Settings.{field} item"),
                    ErrorCode::InvalidPolicy,
                )
                .map(AddressMatch::Prefix)
                .map_err(|e| e.context(format!("{ty} policy")))
            } else {
                Ok(AddressMatch::SetId(item.to_string()))
            }
        })
        .collect()
}

/// Comma list of ports and `a-b` ranges.
pub(crate) fn parse_ports(s: &str, ty: &str, field: &str) -> Result<Vec<PortRange>, HcnError> {
    items(s)
        .map(|item| {
            let bad = || {
                invalid(
                    ty,
                    format!(
                        "Settings.{field} item {item:?} is not a port or range: give ports \
                         (0-65535) or ranges a-b with a <= b, separated by commas"
                    ),
                )
            };
            let (a, b) = item.split_once('-').unwrap_or((item, item));
            let start: u16 = a.trim().parse().map_err(|_| bad())?;
            let end: u16 = b.trim().parse().map_err(|_| bad())?;
            if start > end {
                return Err(bad());
            }
            Ok(PortRange { start, end })
        })
        .collect()
}
