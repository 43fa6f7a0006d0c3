//! Endpoint policies (reference/hcn-schema.md §8, §8.1, §8.3): `{Type, Settings}`
//! on a `HostComputeEndpoint`, validated into [`EndpointPolicy`].

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use super::acl::{parse_acl, parse_tier_acl, AclRule, TierAcl};
use super::ip::{parse_ip, parse_opt_ip, parse_prefix_loose, parse_prefix_strict};
use super::network_policy::{
    parse_interface_constraint, parse_l4_proxy, InterfaceConstraint, L4Proxy,
};
use super::policy::{decode, invalid, match_type, parse_port, required, string_or_number};
use crate::error::{ErrorCode, HcnError};
use crate::wire;

/// Canonical endpoint policy type names (§8).
pub const ENDPOINT_POLICY_TYPES: &[&str] = &[
    "PortMapping",
    "ACL",
    "QOS",
    "L2Driver",
    "OutBoundNAT",
    "SDNRoute",
    "L4Proxy",
    "L4WFPPROXY",
    "ProviderAddress",
    "PortName",
    "EncapOverhead",
    "InterfaceConstraint",
    "Iov",
    "TierAcl",
    "VLAN",
    "InterfaceParameters",
    "Encryption",
];

/// An IP protocol of a port mapping or load balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// 6.
    Tcp,
    /// 17.
    Udp,
    /// Any other IANA number 1–255 (e.g. 132 SCTP).
    Other(u8),
}

impl Protocol {
    /// The protocol for an IANA number; `None` for 0 and values above 255.
    pub fn from_number(n: u32) -> Option<Self> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            1..=255 => Some(Protocol::Other(n as u8)),
            _ => None,
        }
    }

    /// The IANA number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Other(n) => n,
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = HcnError;

    /// `"tcp"`, `"UDP"`, `"sctp"` or a number.
    fn from_str(s: &str) -> Result<Self, HcnError> {
        wire::flags::parse_named(s, wire::flags::PROTOCOLS)
            .and_then(Protocol::from_number)
            .ok_or_else(|| {
                HcnError::new(
                    ErrorCode::InvalidPolicy,
                    format!("{s:?} is not a protocol: give TCP, UDP or an IANA number 1-255"),
                )
            })
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Tcp => f.write_str("TCP"),
            Protocol::Udp => f.write_str("UDP"),
            Protocol::Other(n) => write!(f, "{n}"),
        }
    }
}

/// `NatFlags` (§8.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NatFlags(pub u32);

impl NatFlags {
    /// Also reachable from the host itself.
    pub const LOCAL_ROUTED_VIP: u32 = 1;
    /// IPv6 mapping.
    pub const IPV6: u32 = 2;
    /// The host port is reserved by the caller.
    pub const EXTERNAL_PORT_RESERVED: u32 = 4;

    /// True when every bit of `bits` is set.
    pub fn contains(self, bits: u32) -> bool {
        self.0 & bits == bits
    }
}

/// A validated `PortMapping`: inbound DNAT host:external → endpoint:internal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// Protocol (never 0).
    pub protocol: Protocol,
    /// Endpoint port (non-zero).
    pub internal_port: u16,
    /// Host port (non-zero).
    pub external_port: u16,
    /// Restrict to one host address.
    pub vip: Option<IpAddr>,
    /// NAT flags.
    pub flags: NatFlags,
}

/// A validated `OutBoundNAT` (§8.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundNat {
    /// SNAT to this address instead of the host's.
    pub virtual_ip: Option<IpAddr>,
    /// Destinations not NATed.
    pub exceptions: Vec<IpNet>,
    /// When non-empty, only these destinations are NATed.
    pub destinations: Vec<IpNet>,
    /// NAT flags (2 = IPv6).
    pub flags: NatFlags,
    /// HCS `MaxPortPoolUsage`.
    pub max_port_pool_usage: Option<u16>,
}

/// A validated endpoint policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointPolicy {
    /// `PortMapping`.
    PortMapping(PortMapping),
    /// `ACL`.
    Acl(AclRule),
    /// `QOS{MaximumOutgoingBandwidthInBytes}`.
    Qos {
        /// Egress limit in bytes per second.
        max_bytes_per_sec: u64,
    },
    /// `L2Driver` (no published schema; settings verbatim).
    L2Driver(Value),
    /// `OutBoundNAT`.
    OutboundNat(OutboundNat),
    /// `SDNRoute{DestinationPrefix, NextHop, NeedEncap}`.
    SdnRoute {
        /// Destination prefix.
        destination: IpNet,
        /// Gateway.
        next_hop: Option<IpAddr>,
        /// Route through the switch path.
        need_encap: bool,
    },
    /// `L4Proxy`.
    L4Proxy(L4Proxy),
    /// `L4WFPPROXY` (settings verbatim; proxy ports checked).
    L4WfpProxy(Value),
    /// `ProviderAddress{ProviderAddress}`: underlay address of the endpoint's host.
    ProviderAddress(IpAddr),
    /// `PortName{Name}`.
    PortName(String),
    /// `EncapOverhead{Overhead}`.
    EncapOverhead(u16),
    /// `InterfaceConstraint`.
    InterfaceConstraint(InterfaceConstraint),
    /// `Iov{IovOffloadWeight, QueuePairsRequested, InterruptModeration}`.
    Iov {
        /// Offload weight.
        offload_weight: u32,
        /// Queue pairs requested.
        queue_pairs: u32,
        /// Interrupt moderation (0 Default, 1 Adaptive, 2 Off, 100 Low, 200 Medium, 300 High).
        interrupt_moderation: u32,
    },
    /// `TierAcl`.
    TierAcl(TierAcl),
    /// `VLAN{IsolationId}` (1–4094).
    Vlan(u32),
    /// `InterfaceParameters{Mtu}`.
    InterfaceParameters {
        /// MTU.
        mtu: u32,
    },
    /// `Encryption` (settings verbatim).
    Encryption(Value),
}

impl EndpointPolicy {
    /// The canonical HCN `Type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            EndpointPolicy::PortMapping(_) => "PortMapping",
            EndpointPolicy::Acl(_) => "ACL",
            EndpointPolicy::Qos { .. } => "QOS",
            EndpointPolicy::L2Driver(_) => "L2Driver",
            EndpointPolicy::OutboundNat(_) => "OutBoundNAT",
            EndpointPolicy::SdnRoute { .. } => "SDNRoute",
            EndpointPolicy::L4Proxy(_) => "L4Proxy",
            EndpointPolicy::L4WfpProxy(_) => "L4WFPPROXY",
            EndpointPolicy::ProviderAddress(_) => "ProviderAddress",
            EndpointPolicy::PortName(_) => "PortName",
            EndpointPolicy::EncapOverhead(_) => "EncapOverhead",
            EndpointPolicy::InterfaceConstraint(_) => "InterfaceConstraint",
            EndpointPolicy::Iov { .. } => "Iov",
            EndpointPolicy::TierAcl(_) => "TierAcl",
            EndpointPolicy::Vlan(_) => "VLAN",
            EndpointPolicy::InterfaceParameters { .. } => "InterfaceParameters",
            EndpointPolicy::Encryption(_) => "Encryption",
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct PortMappingSettings {
    #[serde(rename = "Protocol", deserialize_with = "wire::flags::protocol")]
    protocol: u32,
    #[serde(rename = "InternalPort")]
    internal_port: u16,
    #[serde(rename = "ExternalPort")]
    external_port: u16,
    #[serde(rename = "VIP")]
    vip: Option<String>,
    #[serde(rename = "Flags", deserialize_with = "wire::flags::nat")]
    flags: u32,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct OutboundNatSettings {
    #[serde(rename = "VirtualIP", alias = "VIP")]
    virtual_ip: Option<String>,
    #[serde(rename = "Exceptions", alias = "ExceptionList")]
    exceptions: Option<Vec<String>>,
    #[serde(rename = "Destinations")]
    destinations: Option<Vec<String>>,
    #[serde(rename = "Flags", deserialize_with = "wire::flags::nat")]
    flags: u32,
    #[serde(rename = "MaxPortPoolUsage")]
    max_port_pool_usage: Option<u16>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct EndpointPolicySettings {
    // One flat struct for the simple policy types; each arm reads its own keys.
    maximum_outgoing_bandwidth_in_bytes: Option<u64>,
    destination_prefix: Option<String>,
    next_hop: Option<String>,
    need_encap: bool,
    // v1's `PA` policy names its one setting `PA` (docker's overlay driver).
    #[serde(alias = "PA")]
    provider_address: Option<String>,
    name: Option<String>,
    overhead: Option<u16>,
    iov_offload_weight: u32,
    queue_pairs_requested: u32,
    #[serde(deserialize_with = "wire::flags::interrupt_moderation")]
    interrupt_moderation: u32,
    isolation_id: Option<u32>,
    mtu: Option<u32>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct L4WfpProxySettings {
    #[serde(deserialize_with = "string_or_number")]
    inbound_proxy_port: Option<String>,
    #[serde(deserialize_with = "string_or_number")]
    outbound_proxy_port: Option<String>,
}

fn parse_nets(items: Option<Vec<String>>, what: &str) -> Result<Vec<IpNet>, HcnError> {
    items
        .unwrap_or_default()
        .iter()
        .filter(|e| !e.trim().is_empty())
        .map(|e| parse_prefix_loose(e, what, ErrorCode::InvalidPolicy))
        .collect()
}

/// Validate one endpoint policy. Unknown `Type` is `InvalidPolicyType`, bad
/// settings are `InvalidPolicy` (`InvalidInternalPort` for a zero internal port).
pub fn parse_endpoint_policy(p: &wire::Policy) -> Result<EndpointPolicy, HcnError> {
    // v1's `PA` (docker's overlay driver) is v2's `ProviderAddress`; its
    // setting `PA` is read as `ProviderAddress` too.
    let ty = match p.policy_type.trim().eq_ignore_ascii_case("PA") {
        true => "ProviderAddress",
        false => match_type(&p.policy_type, ENDPOINT_POLICY_TYPES, "endpoint")?,
    };
    let code = ErrorCode::InvalidPolicy;
    let field = |f: &str| format!("{ty} policy: Settings.{f}");
    Ok(match ty {
        "PortMapping" => {
            let s: PortMappingSettings = decode(p, ty)?;
            let protocol = Protocol::from_number(s.protocol).ok_or_else(|| {
                invalid(
                    ty,
                    format!(
                        "Settings.Protocol {} is not a protocol: give 6 (TCP), 17 (UDP) or another \
                         IANA number 1-255",
                        s.protocol
                    ),
                )
            })?;
            if s.internal_port == 0 {
                return Err(HcnError::new(
                    ErrorCode::InvalidInternalPort,
                    "PortMapping policy: Settings.InternalPort is missing or 0: give the \
                     endpoint's port (1-65535)",
                ));
            }
            if s.external_port == 0 {
                return Err(invalid(
                    ty,
                    "Settings.ExternalPort is missing or 0: give the host port (1-65535)",
                ));
            }
            EndpointPolicy::PortMapping(PortMapping {
                protocol,
                internal_port: s.internal_port,
                external_port: s.external_port,
                vip: parse_opt_ip(s.vip.as_deref(), &field("VIP"), code)?,
                flags: NatFlags(s.flags),
            })
        }
        "ACL" => EndpointPolicy::Acl(parse_acl(p, ty)?),
        "OutBoundNAT" => {
            let s: OutboundNatSettings = decode(p, ty)?;
            EndpointPolicy::OutboundNat(OutboundNat {
                virtual_ip: parse_opt_ip(s.virtual_ip.as_deref(), &field("VirtualIP"), code)?,
                exceptions: parse_nets(s.exceptions, &field("Exceptions item"))?,
                destinations: parse_nets(s.destinations, &field("Destinations item"))?,
                flags: NatFlags(s.flags),
                max_port_pool_usage: s.max_port_pool_usage,
            })
        }
        "L2Driver" => EndpointPolicy::L2Driver(p.settings.clone()),
        "Encryption" => EndpointPolicy::Encryption(p.settings.clone()),
        "L4Proxy" => EndpointPolicy::L4Proxy(parse_l4_proxy(p, ty)?),
        "L4WFPPROXY" => {
            let s: L4WfpProxySettings = decode(p, ty)?;
            parse_port(s.inbound_proxy_port.as_deref(), ty, "InboundProxyPort")?;
            parse_port(s.outbound_proxy_port.as_deref(), ty, "OutboundProxyPort")?;
            EndpointPolicy::L4WfpProxy(p.settings.clone())
        }
        "InterfaceConstraint" => {
            EndpointPolicy::InterfaceConstraint(parse_interface_constraint(p, ty)?)
        }
        "TierAcl" => EndpointPolicy::TierAcl(parse_tier_acl(p, ty)?),
        _ => {
            let s: EndpointPolicySettings = decode(p, ty)?;
            match ty {
                "QOS" => EndpointPolicy::Qos {
                    max_bytes_per_sec: required(
                        s.maximum_outgoing_bandwidth_in_bytes,
                        ty,
                        "MaximumOutgoingBandwidthInBytes",
                        "the egress limit in bytes per second",
                    )?,
                },
                "SDNRoute" => {
                    let d = required(s.destination_prefix, ty, "DestinationPrefix", "a CIDR")?;
                    let destination = parse_prefix_strict(&d, &field("DestinationPrefix"), code)?;
                    let next_hop = parse_opt_ip(s.next_hop.as_deref(), &field("NextHop"), code)?;
                    EndpointPolicy::SdnRoute {
                        destination,
                        next_hop,
                        need_encap: s.need_encap,
                    }
                }
                "ProviderAddress" => {
                    let a = required(
                        s.provider_address,
                        ty,
                        "ProviderAddress",
                        "the host underlay IP",
                    )?;
                    EndpointPolicy::ProviderAddress(parse_ip(&a, &field("ProviderAddress"), code)?)
                }
                "PortName" => EndpointPolicy::PortName(required(
                    s.name.filter(|n| !n.is_empty()),
                    ty,
                    "Name",
                    "the port name",
                )?),
                "EncapOverhead" => EndpointPolicy::EncapOverhead(required(
                    s.overhead,
                    ty,
                    "Overhead",
                    "the encapsulation overhead in bytes",
                )?),
                "Iov" => EndpointPolicy::Iov {
                    offload_weight: s.iov_offload_weight,
                    queue_pairs: s.queue_pairs_requested,
                    interrupt_moderation: s.interrupt_moderation,
                },
                "VLAN" => {
                    let id = required(s.isolation_id, ty, "IsolationId", "a VLAN id 1-4094")?;
                    if !(1..=4094).contains(&id) {
                        return Err(invalid(
                            ty,
                            format!("Settings.IsolationId {id} is not a VLAN id: give 1-4094"),
                        ));
                    }
                    EndpointPolicy::Vlan(id)
                }
                "InterfaceParameters" => EndpointPolicy::InterfaceParameters {
                    mtu: required(s.mtu.filter(|m| *m != 0), ty, "Mtu", "the MTU, e.g. 1450")?,
                },
                _ => unreachable!("every endpoint policy type is handled"),
            }
        }
    })
}
