//! Deserializers for numeric flags and enums (reference/hcn-schema.md §2 "Enums").
//!
//! Clients send `Flags`, `DistributionType` and port-mapping `Protocol` as
//! numbers, and responses must be numbers too, so the wire fields are plain
//! integers. On input these functions also accept the documented names, in any
//! case, and `|`/`,`-separated combinations of them (`"EnableDnsProxy|EnableIov"`).
//! `null` reads as 0.

use std::fmt;

use serde::de::{self, Deserializer, Unexpected, Visitor};

/// A table of names and their values for one flag or enum type.
pub type Names = &'static [(&'static str, u32)];

/// `NetworkFlags` (§4.2), with the SDN spellings as aliases.
pub const NETWORK_FLAGS: Names = &[
    ("None", 0),
    ("EnableDnsProxy", 1),
    ("EnableDns", 1),
    ("EnableDhcpServer", 2),
    ("EnableDhcp", 2),
    ("EnableMirroring", 4),
    ("EnableNonPersistent", 8),
    ("DisableHostPort", 1024),
    ("EnableIov", 8192),
];
/// `EndpointFlags` (§7), with the SDN spellings as aliases.
pub const ENDPOINT_FLAGS: Names = &[
    ("None", 0),
    ("RemoteEndpoint", 1),
    ("DisableInterComputeCommunication", 2),
    ("DisableIcc", 2),
    ("EnableMirroring", 4),
    ("EnableLowInterfaceMetric", 8),
    ("EnableLowMetric", 8),
    ("OverrideDnsServerOrder", 16),
    ("EnableDhcp", 32),
];
/// `NatFlags` (§8.3).
pub const NAT_FLAGS: Names = &[
    ("None", 0),
    ("LocalRoutedVip", 1),
    ("IPv6", 2),
    ("ExternalPortReserved", 4),
];
/// `LoadBalancerFlags` (§10).
pub const LOAD_BALANCER_FLAGS: Names = &[
    ("None", 0),
    ("EnableDirectServerReturn", 1),
    ("DSR", 1),
    ("IPv6", 2),
];
/// Load balancer `PortMappings[].Flags` (§10).
pub const LB_PORT_MAPPING_FLAGS: Names = &[
    ("None", 0),
    ("EnableInternalLoadBalancer", 1),
    ("ILB", 1),
    ("LocalRoutedVip", 2),
    ("UseMux", 4),
    ("EnablePreserveDip", 8),
    ("VipExternalIp", 16),
];
/// Load balancer `DistributionType` (§10).
pub const DISTRIBUTION: Names = &[("None", 0), ("SourceIPProtocol", 1), ("SourceIP", 2)];
/// IANA protocol numbers accepted by name (§8, §10).
pub const PROTOCOLS: Names = &[
    ("ICMP", 1),
    ("TCP", 6),
    ("UDP", 17),
    ("ICMPv6", 58),
    ("SCTP", 132),
];
/// `Subnet.Flags` (§4).
pub const SUBNET_FLAGS: Names = &[("None", 0), ("DoNotReserveGatewayAddress", 1)];
/// `IpSubnet.Flags` (§4).
pub const IP_SUBNET_FLAGS: Names = &[
    ("None", 0),
    ("EnableBroadcast", 1),
    ("ReserveNetworkAddress", 2),
];
/// `HostComputeQuery.Flags` (§3).
pub const QUERY_FLAGS: Names = &[("None", 0), ("Detailed", 1)];
/// Iov `InterruptModeration` (§8).
pub const INTERRUPT_MODERATION: Names = &[
    ("Default", 0),
    ("Adaptive", 1),
    ("Off", 2),
    ("Low", 100),
    ("Medium", 200),
    ("High", 300),
];

/// Look up a name (case-insensitive), a decimal number, or a `|`/`,`-separated
/// combination of them; `None` if any part is unknown.
pub fn parse_named(s: &str, names: Names) -> Option<u32> {
    let mut value = 0u32;
    for part in s.split(['|', ',']).map(str::trim) {
        if part.is_empty() {
            continue;
        }
        value |= match part.parse::<u32>() {
            Ok(n) => n,
            Err(_) => names
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(part))
                .map(|&(_, v)| v)?,
        };
    }
    Some(value)
}

struct NamedVisitor {
    what: &'static str,
    names: Names,
}

impl<'de> Visitor<'de> for NamedVisitor {
    type Value = u32;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a {} number or name", self.what)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
        u32::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u32, E> {
        u32::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u32, E> {
        parse_named(v, self.names).ok_or_else(|| {
            let valid: Vec<&str> = self.names.iter().map(|(n, _)| *n).collect();
            E::custom(format!(
                "unknown {} {v:?}: use a number or one of {}",
                self.what,
                valid.join(", ")
            ))
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<u32, E> {
        Ok(0)
    }

    fn visit_none<E: de::Error>(self) -> Result<u32, E> {
        Ok(0)
    }
}

/// Deserialize a number or a name from `names`.
pub fn deserialize_named<'de, D: Deserializer<'de>>(
    d: D,
    what: &'static str,
    names: Names,
) -> Result<u32, D::Error> {
    d.deserialize_any(NamedVisitor { what, names })
}

macro_rules! named_fn {
    ($($(#[$doc:meta])* $fn_name:ident => $what:literal, $names:ident;)*) => {$(
        $(#[$doc])*
        pub fn $fn_name<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
            deserialize_named(d, $what, $names)
        }
    )*};
}

named_fn! {
    /// `deserialize_with` for network `Flags`.
    network => "NetworkFlags", NETWORK_FLAGS;
    /// `deserialize_with` for endpoint `Flags`.
    endpoint => "EndpointFlags", ENDPOINT_FLAGS;
    /// `deserialize_with` for NAT `Flags` (PortMapping, OutBoundNAT).
    nat => "NatFlags", NAT_FLAGS;
    /// `deserialize_with` for load balancer `Flags`.
    load_balancer => "LoadBalancerFlags", LOAD_BALANCER_FLAGS;
    /// `deserialize_with` for load balancer port mapping `Flags`.
    lb_port_mapping => "LoadBalancerPortMappingFlags", LB_PORT_MAPPING_FLAGS;
    /// `deserialize_with` for `DistributionType`.
    distribution => "DistributionType", DISTRIBUTION;
    /// `deserialize_with` for a numeric `Protocol`.
    protocol => "Protocol", PROTOCOLS;
    /// `deserialize_with` for subnet `Flags`.
    subnet => "SubnetFlags", SUBNET_FLAGS;
    /// `deserialize_with` for IP subnet `Flags`.
    ip_subnet => "IpSubnetFlags", IP_SUBNET_FLAGS;
    /// `deserialize_with` for query `Flags`.
    query => "HostComputeQueryFlags", QUERY_FLAGS;
    /// `deserialize_with` for Iov `InterruptModeration`.
    interrupt_moderation => "InterruptModeration", INTERRUPT_MODERATION;
}

/// `skip_serializing_if` helper for zero numbers.
pub fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// `skip_serializing_if` helper for `false`.
pub fn is_false(v: &bool) -> bool {
    !*v
}
