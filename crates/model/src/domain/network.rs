//! Networks (reference/hcn-schema.md §4, §4.1, §4.2, §6): network kinds, flags,
//! subnets with their policies, and [`validate_network`].

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::Deserialize;

use super::ip::{is_default_route, parse_prefix_strict, DnsSettings, RouteSpec};
use super::mac::{Mac, MacRange};
use super::network_policy::{parse_network_policy, NetworkPolicy};
use super::policy::{decode, invalid, match_type, required};
use crate::error::{ErrorCode, HcnError};
use crate::wire;

/// Network mode (`Type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum NetworkKind {
    /// `NAT` (the default).
    #[default]
    Nat,
    /// `ICS`.
    Ics,
    /// `Transparent`.
    Transparent,
    /// `L2Bridge`.
    L2Bridge,
    /// `L2Tunnel`.
    L2Tunnel,
    /// `Overlay`.
    Overlay,
    /// `Private`.
    Private,
    /// `Internal`.
    Internal,
    /// `Mirrored` (2.4).
    Mirrored,
    /// `Infiniband` (2.4).
    Infiniband,
    /// `ConstrainedICS` (2.10).
    ConstrainedIcs,
    /// `Layered` (SDN).
    Layered,
}

impl NetworkKind {
    /// Every kind, in declaration order.
    pub const ALL: [NetworkKind; 12] = [
        NetworkKind::Nat,
        NetworkKind::Ics,
        NetworkKind::Transparent,
        NetworkKind::L2Bridge,
        NetworkKind::L2Tunnel,
        NetworkKind::Overlay,
        NetworkKind::Private,
        NetworkKind::Internal,
        NetworkKind::Mirrored,
        NetworkKind::Infiniband,
        NetworkKind::ConstrainedIcs,
        NetworkKind::Layered,
    ];

    /// Whether the network takes over a host adapter (Transparent, L2Bridge,
    /// L2Tunnel: their endpoints are on the physical network).
    pub fn binds_adapter(self) -> bool {
        matches!(
            self,
            NetworkKind::Transparent | NetworkKind::L2Bridge | NetworkKind::L2Tunnel
        )
    }

    /// The canonical HCN spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkKind::Nat => "NAT",
            NetworkKind::Ics => "ICS",
            NetworkKind::Transparent => "Transparent",
            NetworkKind::L2Bridge => "L2Bridge",
            NetworkKind::L2Tunnel => "L2Tunnel",
            NetworkKind::Overlay => "Overlay",
            NetworkKind::Private => "Private",
            NetworkKind::Internal => "Internal",
            NetworkKind::Mirrored => "Mirrored",
            NetworkKind::Infiniband => "Infiniband",
            NetworkKind::ConstrainedIcs => "ConstrainedICS",
            NetworkKind::Layered => "Layered",
        }
    }
}

impl FromStr for NetworkKind {
    type Err = HcnError;

    /// Case-insensitive; empty is `Nat`. Unknown is `InvalidNetworkType`.
    fn from_str(s: &str) -> Result<Self, HcnError> {
        let t = s.trim();
        if t.is_empty() {
            return Ok(NetworkKind::Nat);
        }
        NetworkKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| {
                let valid: Vec<_> = NetworkKind::ALL.iter().map(|k| k.as_str()).collect();
                HcnError::new(
                    ErrorCode::InvalidNetworkType,
                    format!(
                        "Type {t:?} is not a network type: use one of {}",
                        valid.join(", ")
                    ),
                )
            })
    }
}

impl fmt::Display for NetworkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `NetworkFlags` (§4.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NetworkFlags(pub u32);

impl NetworkFlags {
    /// DNS proxy for endpoints.
    pub const ENABLE_DNS_PROXY: u32 = 1;
    /// DHCP server for endpoints.
    pub const ENABLE_DHCP_SERVER: u32 = 2;
    /// Mirroring.
    pub const ENABLE_MIRRORING: u32 = 4;
    /// Not persisted across service restart / reboot.
    pub const ENABLE_NON_PERSISTENT: u32 = 8;
    /// No host port (vNIC) on the switch.
    pub const DISABLE_HOST_PORT: u32 = 1024;
    /// SR-IOV.
    pub const ENABLE_IOV: u32 = 8192;

    /// True when every bit of `bits` is set.
    pub fn contains(self, bits: u32) -> bool {
        self.0 & bits == bits
    }
}

/// A subnet policy (§6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubnetPolicy {
    /// `VLAN{IsolationId}`, 1–4094.
    Vlan(u32),
    /// `VSID{IsolationId}`, the overlay VNI (24 bits).
    Vsid(u32),
}

/// A validated subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetSpec {
    /// The prefix (no host bits).
    pub prefix: IpNet,
    /// Gateway: `NextHop` of the default route, if any.
    pub gateway: Option<IpAddr>,
    /// All routes, the default route included.
    pub routes: Vec<RouteSpec>,
    /// Subnet policies.
    pub policies: Vec<SubnetPolicy>,
    /// `SubnetFlags` (1 DoNotReserveGatewayAddress).
    pub flags: u32,
}

/// A validated network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Name (may be empty).
    pub name: String,
    /// Mode.
    pub kind: NetworkKind,
    /// Subnets of all IPAM blocks, in order.
    pub subnets: Vec<SubnetSpec>,
    /// MAC pool.
    pub mac_pool: Option<MacRange>,
    /// DNS settings.
    pub dns: DnsSettings,
    /// Flags.
    pub flags: NetworkFlags,
    /// Network policies.
    pub policies: Vec<NetworkPolicy>,
}

const SUBNET_POLICY_TYPES: &[&str] = &["VLAN", "VSID"];

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct IsolationSettings {
    isolation_id: Option<u32>,
}

fn parse_subnet_policy(p: &wire::Policy) -> Result<SubnetPolicy, HcnError> {
    let ty = match_type(&p.policy_type, SUBNET_POLICY_TYPES, "subnet")?;
    let s: IsolationSettings = decode(p, ty)?;
    let id = required(s.isolation_id, ty, "IsolationId", "the isolation id")?;
    match ty {
        "VLAN" if (1..=4094).contains(&id) => Ok(SubnetPolicy::Vlan(id)),
        "VLAN" => Err(invalid(
            ty,
            format!("Settings.IsolationId {id} is not a VLAN id: give 1-4094"),
        )),
        _ if id <= 0xFF_FFFF => Ok(SubnetPolicy::Vsid(id)),
        _ => Err(invalid(
            ty,
            format!("Settings.IsolationId {id} is not a VSID: give 0-16777215"),
        )),
    }
}

fn subnet_in(s: &wire::Subnet, what: &str) -> Result<SubnetSpec, HcnError> {
    let code = ErrorCode::InvalidSubnet;
    let prefix_str = s
        .ip_address_prefix
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| {
            HcnError::new(
                code,
                format!("{what}.IpAddressPrefix is missing: give a CIDR such as 10.0.0.0/24"),
            )
        })?;
    let prefix = parse_prefix_strict(prefix_str, &format!("{what}.IpAddressPrefix"), code)?;
    let routes = s
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| RouteSpec::from_wire(r, &format!("{what}.Routes[{i}]"), code))
        .collect::<Result<Vec<_>, _>>()?;
    let gateway = routes
        .iter()
        .find(|r| is_default_route(&r.destination) && r.next_hop.is_some())
        .and_then(|r| r.next_hop);
    if let Some(gw) = gateway {
        if !prefix.contains(&gw) {
            return Err(HcnError::new(
                code,
                format!(
                    "{what}: gateway {gw} (default route NextHop) is outside {prefix}: \
                     give a gateway inside the subnet"
                ),
            ));
        }
        if let IpNet::V4(p4) = prefix {
            if p4.prefix_len() < 31 && (gw == p4.network() || gw == p4.broadcast()) {
                return Err(HcnError::new(
                    ErrorCode::AddrInvalidOrReserved,
                    format!(
                        "{what}: gateway {gw} is the network or broadcast address of {prefix}: \
                         give a host address such as {}",
                        p4.hosts()
                            .next()
                            .map_or_else(String::new, |h| h.to_string())
                    ),
                ));
            }
        }
    }
    let policies = s
        .policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            parse_subnet_policy(p).map_err(|e| e.context(format!("{what}.Policies[{i}]")))
        })
        .collect::<Result<_, _>>()?;
    Ok(SubnetSpec {
        prefix,
        gateway,
        routes,
        policies,
        flags: s.flags,
    })
}

/// Validate one subnet: prefix without host bits, gateway inside it and not
/// its network/broadcast address, routes and `VLAN`/`VSID` policies.
pub fn validate_subnet(s: &wire::Subnet) -> Result<SubnetSpec, HcnError> {
    subnet_in(s, "Subnet")
}

/// `InvalidSubnet` if any two subnets overlap.
pub(crate) fn check_overlaps(subnets: &[SubnetSpec]) -> Result<(), HcnError> {
    for (i, a) in subnets.iter().enumerate() {
        for b in &subnets[i + 1..] {
            if a.prefix.contains(&b.prefix.network()) || b.prefix.contains(&a.prefix.network()) {
                return Err(HcnError::new(
                    ErrorCode::InvalidSubnet,
                    format!(
                        "subnets {} and {} overlap: give each subnet of a network its own range",
                        a.prefix, b.prefix
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn parse_mac_field(s: Option<&str>, what: &str) -> Result<Mac, HcnError> {
    let s = s.unwrap_or("");
    s.parse()
        .map_err(|e| HcnError::new(ErrorCode::InvalidNetwork, format!("{what}: {e}")))
}

/// Validate a network create document.
pub fn validate_network(w: &wire::HostComputeNetwork) -> Result<NetworkSpec, HcnError> {
    let kind: NetworkKind = w.network_type.as_deref().unwrap_or("").parse()?;
    let mut subnets = Vec::new();
    for (i, ipam) in w.ipams.iter().enumerate() {
        if let Some(t) = ipam.ipam_type.as_deref().map(str::trim) {
            if !(t.is_empty() || t.eq_ignore_ascii_case("Static") || t.eq_ignore_ascii_case("Dhcp"))
            {
                return Err(HcnError::new(
                    ErrorCode::InvalidNetwork,
                    format!("Ipams[{i}].Type {t:?} is unknown: use Static or Dhcp"),
                ));
            }
        }
        for (j, s) in ipam.subnets.iter().enumerate() {
            subnets.push(subnet_in(s, &format!("Ipams[{i}].Subnets[{j}]"))?);
        }
    }
    check_overlaps(&subnets)?;
    let mac_pool = match w.mac_pool.ranges.as_slice() {
        [] => None,
        [r] => Some(MacRange::new(
            parse_mac_field(
                r.start_mac_address.as_deref(),
                "MacPool.Ranges[0].StartMacAddress",
            )?,
            parse_mac_field(
                r.end_mac_address.as_deref(),
                "MacPool.Ranges[0].EndMacAddress",
            )?,
        )?),
        _ => {
            return Err(HcnError::new(
                ErrorCode::RequestUnsupported,
                "MacPool has more than one range: hostnet supports one range per network; \
                 give a single covering range",
            ))
        }
    };
    let dns = DnsSettings::from_wire(&w.dns, "Dns", ErrorCode::InvalidNetwork)?;
    let policies = w
        .policies
        .iter()
        .enumerate()
        .map(|(i, p)| parse_network_policy(p).map_err(|e| e.context(format!("Policies[{i}]"))))
        .collect::<Result<_, _>>()?;
    Ok(NetworkSpec {
        name: w.name.clone().unwrap_or_default(),
        kind,
        subnets,
        mac_pool,
        dns,
        flags: NetworkFlags(w.flags),
        policies,
    })
}
