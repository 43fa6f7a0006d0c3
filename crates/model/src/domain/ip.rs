//! IP-level building blocks shared by networks and endpoints: address and
//! prefix parsing, routes and DNS settings (reference/hcn-schema.md §4, §7).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{ErrorCode, HcnError};
use crate::wire;

/// Parse an IP address; `what` names the field in the error.
pub(crate) fn parse_ip(s: &str, what: &str, code: ErrorCode) -> Result<IpAddr, HcnError> {
    s.trim().parse().map_err(|_| {
        HcnError::new(
            code,
            format!("{what} {s:?} is not an IP address: give a dotted IPv4 or an IPv6 address"),
        )
    })
}

/// Parse an optional IP address; absent or empty is `None`.
pub(crate) fn parse_opt_ip(
    s: Option<&str>,
    what: &str,
    code: ErrorCode,
) -> Result<Option<IpAddr>, HcnError> {
    match s.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => parse_ip(v, what, code).map(Some),
    }
}

/// Parse a CIDR or a bare address (taken as /32 or /128), keeping host bits.
fn parse_net(s: &str, what: &str, code: ErrorCode) -> Result<IpNet, HcnError> {
    let t = s.trim();
    if let Ok(n) = t.parse::<IpNet>() {
        return Ok(n);
    }
    if let Ok(a) = t.parse::<IpAddr>() {
        return Ok(IpNet::from(a));
    }
    Err(HcnError::new(
        code,
        format!("{what} {s:?} is not a prefix: give a CIDR such as 10.0.0.0/24 or fd00::/64"),
    ))
}

/// Parse a prefix that must not have host bits set (subnets, route destinations).
pub(crate) fn parse_prefix_strict(s: &str, what: &str, code: ErrorCode) -> Result<IpNet, HcnError> {
    let n = parse_net(s, what, code)?;
    if n.trunc() != n {
        return Err(HcnError::new(
            code,
            format!(
                "{what} {s} has host bits set: did you mean {}? give the network address",
                n.trunc()
            ),
        ));
    }
    Ok(n)
}

/// Parse a prefix used for matching (ACL addresses, NAT exceptions): a bare
/// address is a host prefix, host bits are cleared.
pub(crate) fn parse_prefix_loose(s: &str, what: &str, code: ErrorCode) -> Result<IpNet, HcnError> {
    parse_net(s, what, code).map(|n| n.trunc())
}

/// True for the default-route prefixes `0.0.0.0/0` and `::/0`.
pub(crate) fn is_default_route(n: &IpNet) -> bool {
    n.prefix_len() == 0
}

/// A validated route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteSpec {
    /// Destination prefix (no host bits).
    pub destination: IpNet,
    /// Gateway; `None` for an on-link route.
    pub next_hop: Option<IpAddr>,
    /// Metric.
    pub metric: u16,
}

impl RouteSpec {
    /// Validate a wire route. A route with a `NextHop` but no
    /// `DestinationPrefix` is a default route of the next hop's family.
    pub fn from_wire(r: &wire::Route, what: &str, code: ErrorCode) -> Result<Self, HcnError> {
        let next_hop = parse_opt_ip(r.next_hop.as_deref(), &format!("{what}.NextHop"), code)?;
        let destination = match (r.destination_prefix.as_deref().map(str::trim), next_hop) {
            (Some(d), _) if !d.is_empty() => {
                parse_prefix_strict(d, &format!("{what}.DestinationPrefix"), code)?
            }
            (_, Some(IpAddr::V4(_))) => "0.0.0.0/0".parse().expect("literal"),
            (_, Some(IpAddr::V6(_))) => "::/0".parse().expect("literal"),
            (_, None) => {
                return Err(HcnError::new(
                    code,
                    format!(
                        "{what} has neither DestinationPrefix nor NextHop: give at least one, \
                         e.g. {{\"DestinationPrefix\":\"0.0.0.0/0\",\"NextHop\":\"10.0.0.1\"}}"
                    ),
                ))
            }
        };
        if let Some(nh) = next_hop {
            if nh.is_ipv4() != matches!(destination, IpNet::V4(_)) {
                return Err(HcnError::new(
                    code,
                    format!(
                        "{what}.NextHop {nh} and DestinationPrefix {destination} are of different \
                         IP families: use a next hop of the destination's family"
                    ),
                ));
            }
        }
        Ok(RouteSpec {
            destination,
            next_hop,
            metric: r.metric,
        })
    }
}

/// Validated DNS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsSettings {
    /// DNS suffix (`Domain`), if non-empty.
    pub domain: Option<String>,
    /// Search list.
    pub search: Vec<String>,
    /// Name servers.
    pub servers: Vec<IpAddr>,
    /// Resolver options.
    pub options: Vec<String>,
}

impl DnsSettings {
    /// Validate a wire `Dns`; `what` names it in errors (e.g. `"Dns"`).
    pub fn from_wire(d: &wire::Dns, what: &str, code: ErrorCode) -> Result<Self, HcnError> {
        let servers = d
            .server_list
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.trim().is_empty())
            .map(|(i, s)| parse_ip(s, &format!("{what}.ServerList[{i}]"), code))
            .collect::<Result<_, _>>()?;
        Ok(DnsSettings {
            domain: d.domain.clone().filter(|s| !s.is_empty()),
            search: d.search.iter().filter(|s| !s.is_empty()).cloned().collect(),
            servers,
            options: d.options.clone(),
        })
    }

    /// True when nothing is configured.
    pub fn is_empty(&self) -> bool {
        *self == DnsSettings::default()
    }
}
