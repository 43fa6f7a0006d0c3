//! The object kinds of the REST API and their paths.
//!
//! One enum keeps the daemon's routes, the client's URLs and the CLI's
//! wording in step.

use std::fmt;
use std::str::FromStr;

/// An HCN object kind, one collection under `/v2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `HostComputeNetwork`
    Networks,
    /// `HostComputeEndpoint`
    Endpoints,
    /// `HostComputeNamespace`
    Namespaces,
    /// `HostComputeLoadBalancer`
    LoadBalancers,
    /// `HostComputeRoute` (SDN route)
    Routes,
}

impl Kind {
    /// Every kind, in dependency order (networks first).
    pub const ALL: [Kind; 5] = [
        Kind::Networks,
        Kind::Endpoints,
        Kind::Namespaces,
        Kind::LoadBalancers,
        Kind::Routes,
    ];

    /// The collection's path segment: `networks`, `endpoints`, …
    pub fn path(self) -> &'static str {
        match self {
            Kind::Networks => "networks",
            Kind::Endpoints => "endpoints",
            Kind::Namespaces => "namespaces",
            Kind::LoadBalancers => "loadbalancers",
            Kind::Routes => "routes",
        }
    }

    /// The singular name used in messages: `network`, `load balancer`, …
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Networks => "network",
            Kind::Endpoints => "endpoint",
            Kind::Namespaces => "namespace",
            Kind::LoadBalancers => "load balancer",
            Kind::Routes => "route",
        }
    }

    /// `/v2/<kind>`: the collection URL (POST, GET list).
    pub fn collection_url(self) -> String {
        format!("{}/{}", crate::API_PREFIX, self.path())
    }

    /// `/v2/<kind>/<id>` with the id percent-encoded (GET, PATCH, DELETE).
    pub fn object_url(self, id: &str) -> String {
        format!(
            "{}/{}/{}",
            crate::API_PREFIX,
            self.path(),
            crate::percent_encode(id)
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.singular())
    }
}

/// A string that names no [`Kind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown object kind {0:?} (expected networks, endpoints, namespaces, loadbalancers or routes)"
)]
pub struct ParseKindError(pub String);

impl FromStr for Kind {
    type Err = ParseKindError;

    /// Accepts the path segment, the singular, and the HCN type name, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let lower = lower.strip_prefix("hostcompute").unwrap_or(&lower);
        Ok(match lower {
            "networks" | "network" => Kind::Networks,
            "endpoints" | "endpoint" => Kind::Endpoints,
            "namespaces" | "namespace" => Kind::Namespaces,
            "loadbalancers" | "loadbalancer" | "load balancer" | "lb" => Kind::LoadBalancers,
            "routes" | "route" => Kind::Routes,
            _ => return Err(ParseKindError(s.to_string())),
        })
    }
}

/// Whether `s` is a GUID in HCN form (8-4-4-4-12 hex digits, any case, no braces).
pub fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(kind.path().parse::<Kind>().unwrap(), kind);
            assert_eq!(kind.singular().parse::<Kind>().unwrap(), kind);
        }
        assert_eq!(
            "HostComputeLoadBalancer".parse::<Kind>().unwrap(),
            Kind::LoadBalancers
        );
        assert!("switch".parse::<Kind>().is_err());
        assert_eq!(Kind::LoadBalancers.to_string(), "load balancer");
        assert_eq!(Kind::Networks.collection_url(), "/v2/networks");
        assert_eq!(
            Kind::Endpoints.object_url("A1B2C3D4-0000-0000-0000-000000000001"),
            "/v2/endpoints/A1B2C3D4-0000-0000-0000-000000000001"
        );
        assert_eq!(Kind::Networks.object_url("a b/c"), "/v2/networks/a%20b%2Fc");
    }

    #[test]
    fn guids() {
        assert!(is_guid("A1B2C3D4-0000-4000-8000-00000000000f"));
        assert!(!is_guid("{A1B2C3D4-0000-4000-8000-00000000000f}"));
        assert!(!is_guid("A1B2C3D4-0000-4000-8000-00000000000g"));
        assert!(!is_guid("nat"));
        assert!(!is_guid("A1B2C3D4000040008000000000000000"));
    }
}
