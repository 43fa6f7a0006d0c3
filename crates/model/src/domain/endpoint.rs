//! Endpoints (reference/hcn-schema.md §7): flags, IP configurations and
//! [`validate_endpoint`].

use std::net::IpAddr;

use uuid::Uuid;

use super::endpoint_policy::{parse_endpoint_policy, EndpointPolicy};
use super::guid::parse_guid;
use super::ip::{parse_ip, DnsSettings, RouteSpec};
use super::mac::Mac;
use crate::error::{ErrorCode, HcnError};
use crate::wire;

/// `EndpointFlags` (§7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct EndpointFlags(pub u32);

impl EndpointFlags {
    /// A pod on another host (kube-proxy overlay backends).
    pub const REMOTE_ENDPOINT: u32 = 1;
    /// No traffic between endpoints of the network.
    pub const DISABLE_ICC: u32 = 2;
    /// Mirroring.
    pub const ENABLE_MIRRORING: u32 = 4;
    /// Low interface metric.
    pub const ENABLE_LOW_METRIC: u32 = 8;
    /// Endpoint DNS servers first.
    pub const OVERRIDE_DNS_ORDER: u32 = 16;
    /// DHCP.
    pub const ENABLE_DHCP: u32 = 32;

    /// True when every bit of `bits` is set.
    pub fn contains(self, bits: u32) -> bool {
        self.0 & bits == bits
    }
}

/// A requested address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpConfigSpec {
    /// The address (membership in a subnet is checked by the core).
    pub address: IpAddr,
    /// Prefix length, if given (0 is treated as absent).
    pub prefix_len: Option<u8>,
}

/// A validated endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    /// Name (may be empty).
    pub name: String,
    /// The network.
    pub network: Uuid,
    /// Requested addresses; empty = allocate.
    pub ip_configs: Vec<IpConfigSpec>,
    /// Requested MAC; `None` = allocate.
    pub mac: Option<Mac>,
    /// DNS settings.
    pub dns: DnsSettings,
    /// Routes.
    pub routes: Vec<RouteSpec>,
    /// Flags.
    pub flags: EndpointFlags,
    /// Policies.
    pub policies: Vec<EndpointPolicy>,
    /// Namespace given on input (normally set by attach).
    pub namespace: Option<Uuid>,
    /// A VM's NIC (hostnet's `VmNic`): a tap port, never in a namespace.
    pub vm_nic: bool,
}

/// Validate an endpoint create document. `HostComputeNetwork` is required.
pub fn validate_endpoint(w: &wire::HostComputeEndpoint) -> Result<EndpointSpec, HcnError> {
    let code = ErrorCode::InvalidEndpoint;
    let network =
        match w.host_compute_network.as_deref().map(str::trim) {
            None | Some("") => return Err(HcnError::new(
                code,
                "HostComputeNetwork is missing: give the ID of the network the endpoint belongs to",
            )),
            Some(n) => parse_guid(n).map_err(|e| e.context("HostComputeNetwork"))?,
        };
    let namespace = match w.host_compute_namespace.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(n) => Some(parse_guid(n).map_err(|e| e.context("HostComputeNamespace"))?),
    };
    let ip_configs = w
        .ip_configurations
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let what = format!("IpConfigurations[{i}].IpAddress");
            let addr = c.ip_address.as_deref().unwrap_or("");
            if addr.trim().is_empty() {
                return Err(HcnError::new(
                    ErrorCode::InvalidIp,
                    format!("{what} is missing: give an address, or omit IpConfigurations to have one allocated"),
                ));
            }
            let address = parse_ip(addr, &what, ErrorCode::InvalidIp)?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            let prefix_len = c.prefix_length.filter(|p| *p != 0);
            if let Some(p) = prefix_len.filter(|p| *p > max) {
                return Err(HcnError::new(
                    ErrorCode::InvalidPrefix,
                    format!("IpConfigurations[{i}].PrefixLength {p} is too long for {address}: give 1-{max}"),
                ));
            }
            Ok(IpConfigSpec { address, prefix_len })
        })
        .collect::<Result<_, _>>()?;
    let mac = match w.mac_address.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(m) => Some(
            m.parse::<Mac>()
                .map_err(|e| HcnError::new(code, format!("MacAddress: {e}")))?,
        ),
    };
    let routes = w
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| RouteSpec::from_wire(r, &format!("Routes[{i}]"), code))
        .collect::<Result<_, _>>()?;
    let policies = w
        .policies
        .iter()
        .enumerate()
        .map(|(i, p)| parse_endpoint_policy(p).map_err(|e| e.context(format!("Policies[{i}]"))))
        .collect::<Result<_, _>>()?;
    let flags = EndpointFlags(match w.is_remote_endpoint {
        true => w.flags | EndpointFlags::REMOTE_ENDPOINT,
        false => w.flags,
    });
    if w.vm_nic && flags.contains(EndpointFlags::REMOTE_ENDPOINT) {
        return Err(HcnError::new(
            code,
            "VmNic and RemoteEndpoint exclude each other: a VM's NIC is a port on this host; drop one of them",
        ));
    }
    if w.vm_nic && namespace.is_some() {
        return Err(HcnError::new(
            code,
            "VmNic and HostComputeNamespace exclude each other: a VM's NIC is a tap for a VM, not an interface in a namespace; drop one of them",
        ));
    }
    Ok(EndpointSpec {
        name: w.name.clone().unwrap_or_default(),
        network,
        ip_configs,
        mac,
        dns: DnsSettings::from_wire(&w.dns, "Dns", code)?,
        routes,
        flags,
        policies,
        namespace,
        vm_nic: w.vm_nic,
    })
}
