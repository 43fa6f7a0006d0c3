//! Load balancers (reference/hcn-schema.md §10): port mappings, distribution
//! and [`validate_load_balancer`].

use std::net::IpAddr;

use uuid::Uuid;

use super::endpoint_policy::Protocol;
use super::guid::parse_guid;
use super::ip::{parse_ip, parse_opt_ip};
use crate::error::{ErrorCode, HcnError};
use crate::wire;

/// `DistributionType`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Distribution {
    /// 0: per connection.
    #[default]
    None,
    /// 1: by source IP and protocol.
    SourceIpProtocol,
    /// 2: by source IP (session affinity).
    SourceIp,
}

impl Distribution {
    /// The distribution for its wire number.
    pub fn from_number(n: u32) -> Option<Self> {
        match n {
            0 => Some(Distribution::None),
            1 => Some(Distribution::SourceIpProtocol),
            2 => Some(Distribution::SourceIp),
            _ => None,
        }
    }

    /// The wire number.
    pub fn number(self) -> u32 {
        self as u32
    }
}

/// A validated load balancer port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LbPortMapping {
    /// Protocol.
    pub protocol: Protocol,
    /// Backend (target) port, non-zero.
    pub internal_port: u16,
    /// Frontend port, non-zero.
    pub external_port: u16,
    /// Distribution.
    pub distribution: Distribution,
    /// Port mapping flags (1 ILB, 2 LocalRoutedVip, 4 UseMux, 8 PreserveDip, 16 VipExternalIp).
    pub flags: u32,
}

/// A validated load balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerSpec {
    /// Backend endpoints.
    pub endpoints: Vec<Uuid>,
    /// SNAT source for traffic to backends.
    pub source_vip: Option<IpAddr>,
    /// Service addresses; empty = host addresses (NodePort).
    pub frontend_vips: Vec<IpAddr>,
    /// Port mappings.
    pub port_mappings: Vec<LbPortMapping>,
    /// `LoadBalancerFlags` (1 DSR, 2 IPv6).
    pub flags: u32,
    /// Network, if given.
    pub network: Option<Uuid>,
}

/// Validate a load balancer document (create, or full replacement on modify).
pub fn validate_load_balancer(
    w: &wire::HostComputeLoadBalancer,
) -> Result<LoadBalancerSpec, HcnError> {
    let code = ErrorCode::InvalidPolicy;
    let endpoints = w
        .host_compute_endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| {
            parse_guid(e).map_err(|err| err.context(format!("HostComputeEndpoints[{i}]")))
        })
        .collect::<Result<_, _>>()?;
    let frontend_vips = w
        .frontend_vips
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(i, v)| parse_ip(v, &format!("FrontendVIPs[{i}]"), ErrorCode::InvalidIp))
        .collect::<Result<_, _>>()?;
    let port_mappings = w
        .port_mappings
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let what = format!("PortMappings[{i}]");
            let protocol = Protocol::from_number(m.protocol).ok_or_else(|| {
                HcnError::new(
                    code,
                    format!(
                        "{what}.Protocol {} is not a protocol: give 6 (TCP), 17 (UDP) or 132 (SCTP)",
                        m.protocol
                    ),
                )
            })?;
            if m.internal_port == 0 {
                return Err(HcnError::new(
                    ErrorCode::InvalidInternalPort,
                    format!("{what}.InternalPort is missing or 0: give the backend port"),
                ));
            }
            if m.external_port == 0 {
                return Err(HcnError::new(
                    code,
                    format!("{what}.ExternalPort is missing or 0: give the frontend port"),
                ));
            }
            let distribution = Distribution::from_number(m.distribution_type).ok_or_else(|| {
                HcnError::new(
                    code,
                    format!(
                        "{what}.DistributionType {} is unknown: use 0 (None), 1 (SourceIPProtocol) \
                         or 2 (SourceIP)",
                        m.distribution_type
                    ),
                )
            })?;
            Ok(LbPortMapping {
                protocol,
                internal_port: m.internal_port,
                external_port: m.external_port,
                distribution,
                flags: m.flags,
            })
        })
        .collect::<Result<_, _>>()?;
    let network = match w.host_compute_network.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(n) => Some(parse_guid(n).map_err(|e| e.context("HostComputeNetwork"))?),
    };
    Ok(LoadBalancerSpec {
        endpoints,
        source_vip: parse_opt_ip(w.source_vip.as_deref(), "SourceVIP", ErrorCode::InvalidIp)?,
        frontend_vips,
        port_mappings,
        flags: w.flags,
        network,
    })
}
