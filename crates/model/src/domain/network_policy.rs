//! Network policies (reference/hcn-schema.md §5): `{Type, Settings}` on a
//! `HostComputeNetwork`, validated into [`NetworkPolicy`].

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use uuid::Uuid;

use super::acl::{parse_acl, AclRule};
use super::endpoint_policy::Protocol;
use super::guid::parse_guid;
use super::ip::{parse_ip, parse_opt_ip, parse_prefix_loose, parse_prefix_strict};
use super::mac::Mac;
use super::policy::{decode, invalid, match_type, parse_port, required, string_or_number};
use crate::error::{ErrorCode, HcnError};
use crate::wire;

/// Canonical network policy type names (§5).
pub const NETWORK_POLICY_TYPES: &[&str] = &[
    "SourceMacAddress",
    "NetAdapterName",
    "VSwitchExtension",
    "DrMacAddress",
    "AutomaticDNS",
    "InterfaceConstraint",
    "ProviderAddress",
    "RemoteSubnetRoute",
    "VxlanPort",
    "HostRoute",
    "SetPolicy",
    "L4Proxy",
    "LayerConstraint",
    "NetworkACL",
    "NeighborDiscovery",
];

/// A validated network policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkPolicy {
    /// `SourceMacAddress{SourceMacAddress}`.
    SourceMacAddress(Mac),
    /// `NetAdapterName{NetworkAdapterName}`: bind to a host NIC, or to a
    /// team of them (a comma list, as Windows' docker sends a SET team).
    /// `TeamingMode` is hostnet's extension: how a team spreads frames
    /// (the core checks the value; None is the default).
    NetAdapterName {
        name: String,
        teaming_mode: Option<String>,
    },
    /// `VSwitchExtension{ExtensionID, Enable}`.
    VSwitchExtension {
        /// Extension GUID.
        extension_id: Uuid,
        /// Enabled?
        enable: bool,
    },
    /// `DrMacAddress{Address}`: distributed router MAC (Overlay output).
    DrMacAddress(Mac),
    /// `AutomaticDNS{Enable}`.
    AutomaticDns(bool),
    /// `InterfaceConstraint{…}`.
    InterfaceConstraint(InterfaceConstraint),
    /// `ProviderAddress{ProviderAddress}`: host underlay address (Overlay output).
    ProviderAddress(IpAddr),
    /// `RemoteSubnetRoute{DestinationPrefix, IsolationId, ProviderAddress, DistributedRouterMacAddress}`.
    RemoteSubnetRoute {
        /// Remote pod subnet.
        destination: IpNet,
        /// VSID / VNI.
        isolation_id: u32,
        /// Underlay address of the host owning the subnet.
        provider_address: IpAddr,
        /// The remote host's distributed router MAC.
        dr_mac: Option<Mac>,
    },
    /// `VxlanPort{Port}`.
    VxlanPort(u16),
    /// `HostRoute{}`.
    HostRoute,
    /// `SetPolicy{Id, Name, PolicyType, Values}` (Azure NPM IP sets).
    SetPolicy {
        /// Set id (referenced from ACL address lists).
        id: String,
        /// Set name.
        name: String,
        /// The members, by `PolicyType`.
        members: SetMembers,
    },
    /// `L4Proxy{…}`.
    L4Proxy(L4Proxy),
    /// `LayerConstraint{LayerId}`.
    LayerConstraint(Uuid),
    /// `NetworkACL{…}` (same settings as an endpoint ACL).
    NetworkAcl(AclRule),
    /// `NeighborDiscovery{TargetIpPrefix, SenderIpAddress, SenderMacAddress}`.
    NeighborDiscovery {
        /// Addresses to answer for.
        target_prefix: IpNet,
        /// Sender address.
        sender_ip: IpAddr,
        /// Sender MAC.
        sender_mac: Mac,
    },
}

impl NetworkPolicy {
    /// The canonical HCN `Type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            NetworkPolicy::SourceMacAddress(_) => "SourceMacAddress",
            NetworkPolicy::NetAdapterName { .. } => "NetAdapterName",
            NetworkPolicy::VSwitchExtension { .. } => "VSwitchExtension",
            NetworkPolicy::DrMacAddress(_) => "DrMacAddress",
            NetworkPolicy::AutomaticDns(_) => "AutomaticDNS",
            NetworkPolicy::InterfaceConstraint(_) => "InterfaceConstraint",
            NetworkPolicy::ProviderAddress(_) => "ProviderAddress",
            NetworkPolicy::RemoteSubnetRoute { .. } => "RemoteSubnetRoute",
            NetworkPolicy::VxlanPort(_) => "VxlanPort",
            NetworkPolicy::HostRoute => "HostRoute",
            NetworkPolicy::SetPolicy { .. } => "SetPolicy",
            NetworkPolicy::L4Proxy(_) => "L4Proxy",
            NetworkPolicy::LayerConstraint(_) => "LayerConstraint",
            NetworkPolicy::NetworkAcl(_) => "NetworkACL",
            NetworkPolicy::NeighborDiscovery { .. } => "NeighborDiscovery",
        }
    }
}

/// A `SetPolicy`'s members, by its `PolicyType`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SetMembers {
    /// `IPSET`: addresses and CIDRs (an address is its /32 or /128).
    Addresses(Vec<IpNet>),
    /// `NESTEDIPSET`: the Ids of other sets of the network.
    Sets(Vec<String>),
}

/// `InterfaceConstraint` settings (network and endpoint).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceConstraint {
    /// Interface GUID.
    pub interface_guid: Option<Uuid>,
    /// Interface LUID.
    pub interface_luid: Option<u64>,
    /// Interface index.
    pub interface_index: Option<u32>,
    /// Media type.
    pub interface_media_type: Option<u32>,
    /// Alias (name).
    pub interface_alias: Option<String>,
    /// Description.
    pub interface_description: Option<String>,
}

/// `L4Proxy` settings (network and endpoint). Both key spellings of the
/// **\[conflict\]** note are accepted (`Exceptions`/`ExceptionList`,
/// `OutboundNAT`/`OutboundNat`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L4Proxy {
    /// Proxy address.
    pub ip: Option<IpAddr>,
    /// Proxy port.
    pub port: Option<u16>,
    /// Protocol to redirect.
    pub protocol: Option<Protocol>,
    /// Destinations not redirected.
    pub exceptions: Vec<IpNet>,
    /// `Destination`, verbatim (its format is not published).
    pub destination: Option<String>,
    /// `OutboundNAT`.
    pub outbound_nat: bool,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct InterfaceConstraintSettings {
    interface_guid: Option<String>,
    interface_luid: Option<u64>,
    interface_index: Option<u32>,
    interface_media_type: Option<u32>,
    interface_alias: Option<String>,
    interface_description: Option<String>,
}

pub(crate) fn parse_interface_constraint(
    p: &wire::Policy,
    ty: &str,
) -> Result<InterfaceConstraint, HcnError> {
    let s: InterfaceConstraintSettings = decode(p, ty)?;
    let interface_guid = match s.interface_guid.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(g) => Some(
            parse_guid(g).map_err(|e| e.context(format!("{ty} policy: Settings.InterfaceGuid")))?,
        ),
    };
    Ok(InterfaceConstraint {
        interface_guid,
        interface_luid: s.interface_luid,
        interface_index: s.interface_index,
        interface_media_type: s.interface_media_type,
        interface_alias: s.interface_alias.filter(|a| !a.is_empty()),
        interface_description: s.interface_description.filter(|a| !a.is_empty()),
    })
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct L4ProxySettings {
    #[serde(rename = "IP")]
    ip: Option<String>,
    #[serde(rename = "Port", deserialize_with = "string_or_number")]
    port: Option<String>,
    #[serde(rename = "Protocol", deserialize_with = "crate::wire::flags::protocol")]
    protocol: u32,
    #[serde(rename = "Exceptions", alias = "ExceptionList")]
    exceptions: Option<Vec<String>>,
    #[serde(rename = "Destination")]
    destination: Option<String>,
    #[serde(rename = "OutboundNAT", alias = "OutboundNat")]
    outbound_nat: bool,
}

pub(crate) fn parse_l4_proxy(p: &wire::Policy, ty: &str) -> Result<L4Proxy, HcnError> {
    let s: L4ProxySettings = decode(p, ty)?;
    let code = ErrorCode::InvalidPolicy;
    let protocol = match s.protocol {
        0 => None,
        n => Some(Protocol::from_number(n).ok_or_else(|| {
            invalid(
                ty,
                format!("Settings.Protocol {n} is not a protocol: give 1-255 (6 TCP, 17 UDP)"),
            )
        })?),
    };
    Ok(L4Proxy {
        ip: parse_opt_ip(s.ip.as_deref(), &format!("{ty} policy: Settings.IP"), code)?,
        port: parse_port(s.port.as_deref(), ty, "Port")?,
        protocol,
        exceptions: s
            .exceptions
            .unwrap_or_default()
            .iter()
            .filter(|e| !e.trim().is_empty())
            .map(|e| parse_prefix_loose(e, &format!("{ty} policy: Settings.Exceptions item"), code))
            .collect::<Result<_, _>>()?,
        destination: s.destination.filter(|d| !d.is_empty()),
        outbound_nat: s.outbound_nat,
    })
}

/// Parse a `Settings` MAC field.
pub(crate) fn parse_mac(s: &str, ty: &str, field: &str) -> Result<Mac, HcnError> {
    s.parse()
        .map_err(|e| invalid(ty, format!("Settings.{field}: {e}")))
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct NetworkPolicySettings {
    // One flat struct for the simple policy types; each arm reads its own keys.
    source_mac_address: Option<String>,
    network_adapter_name: Option<String>,
    teaming_mode: Option<String>,
    #[serde(rename = "ExtensionID")]
    extension_id: Option<String>,
    enable: Option<bool>,
    address: Option<String>,
    provider_address: Option<String>,
    destination_prefix: Option<String>,
    isolation_id: Option<u32>,
    distributed_router_mac_address: Option<String>,
    port: Option<u16>,
    id: Option<String>,
    name: Option<String>,
    policy_type: Option<String>,
    #[serde(deserialize_with = "string_list")]
    values: Option<Vec<String>>,
    layer_id: Option<String>,
    target_ip_prefix: Option<String>,
    sender_ip_address: Option<String>,
    sender_mac_address: Option<String>,
}

/// `SetPolicy.Values`: a comma-separated string (or, leniently, an array).
fn string_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        V(Vec<String>),
    }
    Ok(Option::<Either>::deserialize(d)?.map(|e| match e {
        Either::S(s) => s
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
            .collect(),
        Either::V(v) => v,
    }))
}

/// Validate one network policy. Unknown `Type` is `InvalidPolicyType`, bad
/// settings are `InvalidPolicy`.
pub fn parse_network_policy(p: &wire::Policy) -> Result<NetworkPolicy, HcnError> {
    // Docker's v1 network-level VLAN and VSID are subnet policies in v2.
    let given = p.policy_type.trim();
    if ["VLAN", "VSID"]
        .iter()
        .any(|t| t.eq_ignore_ascii_case(given))
    {
        return Err(HcnError::new(
            ErrorCode::InvalidPolicyType,
            format!(
                "{given} is a subnet policy in HCN v2, not a network policy: give each subnet {{\"Type\":\"{given}\",\"Settings\":{{\"IsolationId\":N}}}} in its Policies"
            ),
        ));
    }
    let ty = match_type(&p.policy_type, NETWORK_POLICY_TYPES, "network")?;
    let code = ErrorCode::InvalidPolicy;
    let field = |f: &str| format!("{ty} policy: Settings.{f}");
    match ty {
        "InterfaceConstraint" => {
            return parse_interface_constraint(p, ty).map(NetworkPolicy::InterfaceConstraint)
        }
        "L4Proxy" => return parse_l4_proxy(p, ty).map(NetworkPolicy::L4Proxy),
        "NetworkACL" => return parse_acl(p, ty).map(NetworkPolicy::NetworkAcl),
        "HostRoute" => return Ok(NetworkPolicy::HostRoute),
        _ => {}
    }
    let s: NetworkPolicySettings = decode(p, ty)?;
    Ok(match ty {
        "SourceMacAddress" => {
            let m = required(
                s.source_mac_address,
                ty,
                "SourceMacAddress",
                "a MAC address",
            )?;
            NetworkPolicy::SourceMacAddress(parse_mac(&m, ty, "SourceMacAddress")?)
        }
        "NetAdapterName" => {
            let n = required(
                s.network_adapter_name.filter(|n| !n.trim().is_empty()),
                ty,
                "NetworkAdapterName",
                "the host interface name, e.g. eth0",
            )?;
            NetworkPolicy::NetAdapterName {
                name: n,
                teaming_mode: s.teaming_mode,
            }
        }
        "VSwitchExtension" => {
            let id = required(s.extension_id, ty, "ExtensionID", "the extension GUID")?;
            NetworkPolicy::VSwitchExtension {
                extension_id: parse_guid(&id).map_err(|e| e.context(field("ExtensionID")))?,
                enable: s.enable.unwrap_or(false),
            }
        }
        "DrMacAddress" => {
            let m = required(s.address, ty, "Address", "a MAC address")?;
            NetworkPolicy::DrMacAddress(parse_mac(&m, ty, "Address")?)
        }
        "AutomaticDNS" => NetworkPolicy::AutomaticDns(s.enable.unwrap_or(false)),
        "ProviderAddress" => {
            let a = required(
                s.provider_address,
                ty,
                "ProviderAddress",
                "the host underlay IP",
            )?;
            NetworkPolicy::ProviderAddress(parse_ip(&a, &field("ProviderAddress"), code)?)
        }
        "RemoteSubnetRoute" => {
            let d = required(
                s.destination_prefix,
                ty,
                "DestinationPrefix",
                "the remote subnet CIDR",
            )?;
            let pa = required(
                s.provider_address,
                ty,
                "ProviderAddress",
                "the remote host's IP",
            )?;
            let dr_mac = match s.distributed_router_mac_address.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(m) => Some(parse_mac(m, ty, "DistributedRouterMacAddress")?),
            };
            NetworkPolicy::RemoteSubnetRoute {
                destination: parse_prefix_strict(&d, &field("DestinationPrefix"), code)?,
                isolation_id: s.isolation_id.unwrap_or(0),
                provider_address: parse_ip(&pa, &field("ProviderAddress"), code)?,
                dr_mac,
            }
        }
        "VxlanPort" => {
            let port = required(
                s.port.filter(|p| *p != 0),
                ty,
                "Port",
                "a UDP port such as 4789",
            )?;
            NetworkPolicy::VxlanPort(port)
        }
        "SetPolicy" => {
            let id = required(s.id.filter(|i| !i.is_empty()), ty, "Id", "the set id")?;
            let values = s.values.unwrap_or_default();
            let members = match s.policy_type.as_deref().map(str::trim) {
                Some(k) if k.eq_ignore_ascii_case("IPSET") => SetMembers::Addresses(
                    values
                        .iter()
                        .map(|v| set_address(&id, v))
                        .collect::<Result<_, _>>()?,
                ),
                Some(k) if k.eq_ignore_ascii_case("NESTEDIPSET") => SetMembers::Sets(values),
                other => {
                    return Err(invalid(
                        ty,
                        format!(
                            "Settings.PolicyType {other:?} is unknown: use IPSET or NESTEDIPSET"
                        ),
                    ))
                }
            };
            NetworkPolicy::SetPolicy {
                id,
                name: s.name.unwrap_or_default(),
                members,
            }
        }
        "LayerConstraint" => {
            let id = required(s.layer_id, ty, "LayerId", "the layer GUID")?;
            NetworkPolicy::LayerConstraint(
                parse_guid(&id).map_err(|e| e.context(field("LayerId")))?,
            )
        }
        "NeighborDiscovery" => {
            let t = required(s.target_ip_prefix, ty, "TargetIpPrefix", "a CIDR")?;
            let ip = required(s.sender_ip_address, ty, "SenderIpAddress", "an IP address")?;
            let mac = required(
                s.sender_mac_address,
                ty,
                "SenderMacAddress",
                "a MAC address",
            )?;
            NetworkPolicy::NeighborDiscovery {
                target_prefix: parse_prefix_loose(&t, &field("TargetIpPrefix"), code)?,
                sender_ip: parse_ip(&ip, &field("SenderIpAddress"), code)?,
                sender_mac: parse_mac(&mac, ty, "SenderMacAddress")?,
            }
        }
        _ => unreachable!("every network policy type is handled"),
    })
}

/// One `IPSET` value: an address or a CIDR (host bits dropped).
fn set_address(id: &str, v: &str) -> Result<IpNet, HcnError> {
    let v = v.trim();
    v.parse::<IpNet>()
        .map(|p| p.trunc())
        .or_else(|_| v.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            HcnError::new(
                ErrorCode::InvalidPolicy,
                format!(
                    "SetPolicy {id:?}: value {v:?} is not an address or CIDR: an IPSET holds addresses and CIDRs (a NESTEDIPSET holds set Ids)"
                ),
            )
        })
}
