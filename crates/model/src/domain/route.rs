//! SDN route objects (reference/hcn-schema.md §11) and [`validate_route`].

use std::net::IpAddr;

use ipnet::IpNet;
use uuid::Uuid;

use super::guid::parse_guid;
use super::ip::{parse_opt_ip, parse_prefix_strict};
use crate::error::{ErrorCode, HcnError};
use crate::wire;

/// One validated SDN route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SdnRouteSpec {
    /// Destination prefix.
    pub destination: IpNet,
    /// Gateway.
    pub next_hop: Option<IpAddr>,
    /// Send through the switch path.
    pub need_encap: bool,
}

/// A validated `HostComputeRoute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteObjectSpec {
    /// Endpoints the routes apply to.
    pub endpoints: Vec<Uuid>,
    /// Routes from `Setting` and `Routes`.
    pub routes: Vec<SdnRouteSpec>,
    /// Network, if given.
    pub network: Option<Uuid>,
}

/// Validate a route object. Routes may come under `Setting` or `Routes`.
pub fn validate_route(w: &wire::HostComputeRoute) -> Result<RouteObjectSpec, HcnError> {
    let code = ErrorCode::InvalidPrefix;
    let endpoints = w
        .host_compute_endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| {
            parse_guid(e).map_err(|err| err.context(format!("HostComputeEndpoints[{i}]")))
        })
        .collect::<Result<_, _>>()?;
    let key = if w.setting.is_empty() {
        "Routes"
    } else {
        "Setting"
    };
    let routes = w
        .setting
        .iter()
        .chain(&w.routes)
        .enumerate()
        .map(|(i, r)| {
            let what = format!("{key}[{i}]");
            let dest = r.destination_prefix.as_deref().unwrap_or("");
            if dest.trim().is_empty() {
                return Err(HcnError::new(
                    code,
                    format!("{what}.DestinationPrefix is missing: give a CIDR"),
                ));
            }
            let destination =
                parse_prefix_strict(dest, &format!("{what}.DestinationPrefix"), code)?;
            let next_hop = parse_opt_ip(r.next_hop.as_deref(), &format!("{what}.NextHop"), code)?;
            Ok(SdnRouteSpec {
                destination,
                next_hop,
                need_encap: r.need_encap,
            })
        })
        .collect::<Result<_, _>>()?;
    let network = match w.host_compute_network.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(n) => Some(parse_guid(n).map_err(|e| e.context("HostComputeNetwork"))?),
    };
    Ok(RouteObjectSpec {
        endpoints,
        routes,
        network,
    })
}
