//! HCN v2 wire types: serde structs that match the schema key for key.
//!
//! Implements reference/hcn-schema.md §2 (conventions), §3 (query), §4 (network),
//! §7 (endpoint), §9 (namespace), §10 (load balancer), §11 (route) and §12
//! (modify requests). Every field is optional or defaulted and empty values are
//! omitted on output; unknown keys are ignored; fields of the wrong type fail.
//! Policy `Settings` are kept verbatim so that outputs echo inputs exactly.
//! Numeric flags and enums are numbers on output and numbers or names on
//! input (see [`flags`]). Serialising any of these types and decoding the
//! result with [`crate::from_json`] gives the same value back.

pub mod flags;
mod options;

pub use options::NetworkOptions;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use flags::{is_false, is_zero};

/// Read `null` as the type's default (Go clients emit `null` for nil slices).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Defines an HCN object: the base fields every object may carry (§2 "Base
/// fields") followed by the object's own fields.
macro_rules! hcn_object {
    ($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        pub struct $name {
            /// Object GUID (filled by the service).
            #[serde(rename = "ID", default, skip_serializing_if = "Option::is_none")]
            pub id: Option<String>,
            /// Object name; clients look objects up by it.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub name: Option<String>,
            /// Owner string (opaque).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub owner: Option<String>,
            /// Object version (opaque).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub version: Option<u64>,
            /// Free-form additional parameters (e.g. `{"ICSFlags":n}`), kept verbatim.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub additional_params: Option<Value>,
            /// Health record, kept verbatim (HCS sends `{"Extra":{}}`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub health: Option<Value>,
            /// Schema version; any value is treated as v2.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub schema_version: Option<SchemaVersion>,
            /// Telemetry, kept verbatim.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub telemetry: Option<Value>,
            /// Object state (filled by the service).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub state: Option<u16>,
            $($body)*
        }
    };
}

/// `{"Major":2,"Minor":0}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SchemaVersion {
    /// Major version.
    #[serde(default)]
    pub major: u32,
    /// Minor version.
    #[serde(default)]
    pub minor: u32,
}

impl SchemaVersion {
    /// `{"Major":2,"Minor":0}`, what the service reports.
    pub const V2: SchemaVersion = SchemaVersion { major: 2, minor: 0 };
}

/// A policy `{Type, Settings}` of a network, subnet or endpoint (§5, §6, §8).
/// `Settings` are kept verbatim; `domain::parse_*_policy` interprets them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Policy type name, e.g. `"PortMapping"` (matched case-insensitively).
    #[serde(rename = "Type")]
    pub policy_type: String,
    /// Type-specific settings object, verbatim.
    #[serde(rename = "Settings", default, skip_serializing_if = "Value::is_null")]
    pub settings: Value,
}

impl Policy {
    /// A policy of type `policy_type` with `settings`.
    pub fn new(policy_type: impl Into<String>, settings: Value) -> Self {
        Policy {
            policy_type: policy_type.into(),
            settings,
        }
    }
}

/// A route `{NextHop, DestinationPrefix, Metric}` of a subnet or endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Route {
    /// Gateway address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<String>,
    /// Destination CIDR; `0.0.0.0/0` / `::/0` is the default route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_prefix: Option<String>,
    /// Route metric.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub metric: u16,
}

/// One MAC range of a pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MacRange {
    /// First MAC of the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_mac_address: Option<String>,
    /// Last MAC of the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_mac_address: Option<String>,
}

/// `MacPool{Ranges}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MacPool {
    /// The ranges.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ranges: Vec<MacRange>,
}

impl MacPool {
    /// True when there is nothing to emit.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// `Dns{Domain, Search, ServerList, Options}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Dns {
    /// DNS suffix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search list.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub search: Vec<String>,
    /// Name server addresses.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub server_list: Vec<String>,
    /// resolv.conf-style options.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub options: Vec<String>,
}

impl Dns {
    /// True when there is nothing to emit.
    pub fn is_empty(&self) -> bool {
        self.domain.is_none()
            && self.search.is_empty()
            && self.server_list.is_empty()
            && self.options.is_empty()
    }
}

/// `IpSubnet` (§4): a sub-range of a subnet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpSubnet {
    /// IP subnet GUID.
    #[serde(rename = "ID", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// CIDR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address_prefix: Option<String>,
    /// `IpSubnetFlags`: 1 EnableBroadcast, 2 ReserveNetworkAddress.
    #[serde(
        default,
        deserialize_with = "flags::ip_subnet",
        skip_serializing_if = "is_zero"
    )]
    pub flags: u32,
    /// Policies, verbatim.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub policies: Vec<Policy>,
}

/// `Subnet` (§4).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Subnet {
    /// Subnet GUID.
    #[serde(rename = "ID", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// CIDR, e.g. `"172.31.0.0/16"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address_prefix: Option<String>,
    /// Subnet policies (`VLAN`, `VSID`; §6).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub policies: Vec<Policy>,
    /// Routes; the default route's `NextHop` is the gateway.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub routes: Vec<Route>,
    /// IP sub-ranges.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ip_subnets: Vec<IpSubnet>,
    /// `SubnetFlags`: 1 DoNotReserveGatewayAddress.
    #[serde(
        default,
        deserialize_with = "flags::subnet",
        skip_serializing_if = "is_zero"
    )]
    pub flags: u32,
}

/// `Ipam{Type, Subnets}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    /// `Static` or `Dhcp`; may be absent.
    #[serde(rename = "Type", default, skip_serializing_if = "Option::is_none")]
    pub ipam_type: Option<String>,
    /// The subnets.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub subnets: Vec<Subnet>,
}

hcn_object! {
    /// `HostComputeNetwork` (§4).
    pub struct HostComputeNetwork {
        /// Network mode (`NAT`, `Transparent`, …; case-insensitive; absent = NAT).
        #[serde(rename = "Type", default, skip_serializing_if = "Option::is_none")]
        pub network_type: Option<String>,
        /// Network policies (§5).
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
        pub policies: Vec<Policy>,
        /// MAC pool.
        #[serde(default, skip_serializing_if = "MacPool::is_empty")]
        pub mac_pool: MacPool,
        /// DNS settings.
        #[serde(default, skip_serializing_if = "Dns::is_empty")]
        pub dns: Dns,
        /// IPAM blocks.
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
        pub ipams: Vec<Ipam>,
        /// `NetworkFlags` (§4.2).
        #[serde(default, deserialize_with = "flags::network", skip_serializing_if = "is_zero")]
        pub flags: u32,
        /// SDN's IPv6 switch.
        #[serde(rename = "IPv6", default, skip_serializing_if = "Option::is_none")]
        pub ipv6: Option<bool>,
        /// hostnet extension: docker's `-o` options, kept verbatim ([`options`]).
        #[serde(default, deserialize_with = "options::string_map", skip_serializing_if = "Option::is_none")]
        pub options: Option<NetworkOptions>,
    }
}

/// `IpConfig{IpAddress, PrefixLength, IpSubnetId}` of an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpConfig {
    /// The address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// Prefix length of the subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_length: Option<u8>,
    /// IP subnet GUID (2.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_subnet_id: Option<String>,
}

hcn_object! {
    /// `HostComputeEndpoint` (§7).
    pub struct HostComputeEndpoint {
        /// The network GUID (required on create).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub host_compute_network: Option<String>,
        /// The namespace GUID (set by namespace attach).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub host_compute_namespace: Option<String>,
        /// Endpoint policies (§8).
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
        pub policies: Vec<Policy>,
        /// Addresses (allocated by the service when omitted).
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
        pub ip_configurations: Vec<IpConfig>,
        /// DNS settings.
        #[serde(default, skip_serializing_if = "Dns::is_empty")]
        pub dns: Dns,
        /// Routes (default gateways).
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
        pub routes: Vec<Route>,
        /// MAC address (allocated by the service when omitted).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub mac_address: Option<String>,
        /// `EndpointFlags` (§7).
        #[serde(default, deserialize_with = "flags::endpoint", skip_serializing_if = "is_zero")]
        pub flags: u32,
        /// v1's spelling of `Flags` bit 1 (RemoteEndpoint), which docker's
        /// overlay driver and older kube-proxy send.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub is_remote_endpoint: bool,
        /// hostnet extension: the endpoint is a VM's NIC. Its switch port
        /// is a tap (opened by a VM monitor by name) instead of a veth
        /// into a namespace. HCN has no field for it: HCS adds a VM's port
        /// with a separate `Port` request (`VmEndpointRequest`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub vm_nic: bool,
    }
}

/// A namespace resource `{Type, Data}`; `Type` is `Endpoint` or `Container`,
/// `Data` is `{"Id":"<guid>"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamespaceResource {
    /// `Endpoint` or `Container`.
    #[serde(rename = "Type")]
    pub resource_type: String,
    /// `{"Id": …}`, verbatim.
    #[serde(rename = "Data", default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

hcn_object! {
    /// `HostComputeNamespace` (§9), plus hostnet's `NetNsPath` output.
    pub struct HostComputeNamespace {
        /// Compartment id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub namespace_id: Option<u32>,
        /// Namespace GUID (DOC).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub namespace_guid: Option<String>,
        /// `Host`, `HostDefault`, `Guest` or `GuestDefault`.
        #[serde(rename = "Type", default, skip_serializing_if = "Option::is_none")]
        pub namespace_type: Option<String>,
        /// Attached endpoints and containers (output).
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
        pub resources: Vec<NamespaceResource>,
        /// SDN only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub create_with_compartment: Option<bool>,
        /// hostnet: path of the Linux netns (output; as input, an existing
        /// namespace to use instead of a new one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub net_ns_path: Option<String>,
    }
}

/// Load balancer port mapping (§10).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoadBalancerPortMapping {
    /// IANA protocol number.
    #[serde(
        default,
        deserialize_with = "flags::protocol",
        skip_serializing_if = "is_zero"
    )]
    pub protocol: u32,
    /// Backend (target) port.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub internal_port: u16,
    /// Frontend (service / node) port.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub external_port: u16,
    /// 0 None, 1 SourceIPProtocol, 2 SourceIP.
    #[serde(
        default,
        deserialize_with = "flags::distribution",
        skip_serializing_if = "is_zero"
    )]
    pub distribution_type: u32,
    /// Port mapping flags.
    #[serde(
        default,
        deserialize_with = "flags::lb_port_mapping",
        skip_serializing_if = "is_zero"
    )]
    pub flags: u32,
}

hcn_object! {
    /// `HostComputeLoadBalancer` (§10).
    pub struct HostComputeLoadBalancer {
        /// Backend endpoint GUIDs.
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
        pub host_compute_endpoints: Vec<String>,
        /// SNAT source address for traffic to backends.
        #[serde(rename = "SourceVIP", default, skip_serializing_if = "Option::is_none")]
        pub source_vip: Option<String>,
        /// Service addresses (absent for NodePort).
        #[serde(rename = "FrontendVIPs", default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
        pub frontend_vips: Vec<String>,
        /// Port mappings (kube-proxy sends exactly one).
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
        pub port_mappings: Vec<LoadBalancerPortMapping>,
        /// `LoadBalancerFlags`: 1 DSR, 2 IPv6.
        #[serde(default, deserialize_with = "flags::load_balancer", skip_serializing_if = "is_zero")]
        pub flags: u32,
        /// Network GUID (DOC 2.5).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub host_compute_network: Option<String>,
    }
}

/// One SDN route `{DestinationPrefix, NextHop, NeedEncap, AutomaticEndpointMonitor}` (§11).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SdnRouteSetting {
    /// Destination CIDR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_prefix: Option<String>,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<String>,
    /// Send through the switch path.
    #[serde(default, skip_serializing_if = "is_false")]
    pub need_encap: bool,
    /// DOC/SDN only.
    #[serde(default, skip_serializing_if = "is_false")]
    pub automatic_endpoint_monitor: bool,
}

hcn_object! {
    /// `HostComputeRoute` (§11). The routes arrive under `Setting` (HCS) or
    /// `Routes` (DOC, SDN); whichever was received is echoed.
    pub struct HostComputeRoute {
        /// Endpoint GUIDs the route applies to.
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
        pub host_compute_endpoints: Vec<String>,
        /// Routes, HCS spelling.
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
        pub setting: Vec<SdnRouteSetting>,
        /// Routes, DOC/SDN spelling.
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
        pub routes: Vec<SdnRouteSetting>,
        /// Network GUID (DOC 2.5).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub host_compute_network: Option<String>,
    }
}

/// `ModifySettingRequest{ResourceUri?, RequestType, ResourceType, Settings}` (§12).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyRequest {
    /// Optional resource path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_uri: Option<String>,
    /// `Add`, `Remove`, `Update`, `Refresh` or `Reset`.
    #[serde(default)]
    pub request_type: String,
    /// What is modified (`Policy`, `DNS`, `Subnet`, `Endpoint`, …).
    #[serde(default)]
    pub resource_type: String,
    /// Resource-specific settings, verbatim.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub settings: Value,
}

/// `HostComputeQuery{SchemaVersion, Flags, Filter}` (§3). `Filter` is a JSON
/// object encoded as a string; a plain object is accepted too and kept as its
/// string encoding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostComputeQuery {
    /// Requested schema version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<SchemaVersion>,
    /// 0 None, 1 Detailed.
    #[serde(
        default,
        deserialize_with = "flags::query",
        skip_serializing_if = "is_zero"
    )]
    pub flags: u32,
    /// Filter document, as a JSON string.
    #[serde(
        default,
        deserialize_with = "filter_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub filter: Option<String>,
}

/// Accept `Filter` as a string or as an object (stored as its JSON text).
fn filter_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v @ Value::Object(_)) => Ok(Some(v.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "invalid type for Filter: {other}, expected a JSON object or a string holding one"
        ))),
    }
}
