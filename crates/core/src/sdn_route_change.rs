//! Changing an endpoint's `SDNRoute`s by endpoint modify (schema §12).
//!
//! An `SDNRoute` is a route in the endpoint's own namespace (see
//! [`crate::route`]): a modify that changes them removes the routes that
//! went and adds the new ones there, one op per route, in the same op list
//! as the endpoint's element changes, so a failure anywhere takes every
//! done step back (the old routes stay). New routes are checked as a
//! create checks them (next hop on the endpoint's subnet, not its own
//! address, the right family), and as a route object is: a prefix the
//! endpoint already routes some other way is refused, since two owners of
//! one kernel route would take it away from each other.

use hostnet_dataplane::{Op, RouteSpec};
use hostnet_model::{ErrorCode, HcnError};
use uuid::Uuid;

use crate::endpoint::{sdn_routes, EndpointPolicies};
use crate::object::guid;
use crate::service::{EndpointRec, NetworkRec, State};

/// What a modify does to an endpoint's `SDNRoute`s.
#[derive(Debug, Default)]
pub(crate) struct RouteChange {
    /// Routes that go (as the endpoint's plan holds them).
    pub removed: Vec<RouteSpec>,
    /// Routes that come.
    pub added: Vec<RouteSpec>,
    /// The kernel ops: deletes first (a prefix may come back with another
    /// next hop), one route per op so a rollback restores exactly those
    /// done. Empty while the endpoint has no namespace of its own (it gets
    /// its routes when attached).
    pub ops: Vec<Op>,
}

impl RouteChange {
    /// The routes `before` and `after` give endpoint `id`, checked; nothing
    /// changes here.
    pub(crate) fn plan(
        st: &State,
        id: &Uuid,
        ep: &EndpointRec,
        net: &NetworkRec,
        before: &EndpointPolicies,
        after: &EndpointPolicies,
    ) -> Result<Self, HcnError> {
        let old = sdn_routes(net, ep.plan.address, before)?;
        let new = sdn_routes(net, ep.plan.address, after)?;
        let removed = minus(&old, &new);
        let added = minus(&new, &old);
        if removed.is_empty() && added.is_empty() {
            return Ok(Self::default());
        }
        // Routes the endpoint has from elsewhere: its `Routes`, route objects.
        let others = minus(&ep.plan.routes, &old);
        for r in &added {
            let taken = others.iter().any(|x| x.destination == r.destination)
                || new
                    .iter()
                    .filter(|x| x.destination == r.destination)
                    .count()
                    > 1
                || r.destination == ep.plan.address.trunc()
                || (r.destination.prefix_len() == 0 && ep.plan.gateway.is_some());
            if taken {
                return Err(HcnError::new(
                    ErrorCode::PolicyAlreadyExists,
                    format!(
                        "endpoint {} already has a route to {} (its subnet or default route, its Routes, a route object or another SDNRoute): nothing was changed; give each prefix one SDNRoute, delete the other route first, or route another prefix",
                        guid(id),
                        r.destination
                    ),
                ));
            }
        }
        let ops = match crate::route::route_target(st, ep) {
            Some((netns, link)) => {
                let one = |r: &RouteSpec| (netns.clone(), link.clone(), vec![r.clone()]);
                removed
                    .iter()
                    .map(one)
                    .map(|(netns, link, routes)| Op::DeleteRoutes {
                        netns,
                        link,
                        routes,
                    })
                    .chain(
                        added
                            .iter()
                            .map(one)
                            .map(|(netns, link, routes)| Op::AddRoutes {
                                netns,
                                link,
                                routes,
                            }),
                    )
                    .collect()
            }
            None => Vec::new(),
        };
        Ok(Self {
            removed,
            added,
            ops,
        })
    }

    /// The endpoint's route list after the change.
    pub(crate) fn routes_after(&self, routes: &[RouteSpec]) -> Vec<RouteSpec> {
        let mut out = minus(routes, &self.removed);
        out.extend(self.added.iter().cloned());
        out
    }
}

/// `a` without one occurrence of each route of `b`.
fn minus(a: &[RouteSpec], b: &[RouteSpec]) -> Vec<RouteSpec> {
    let mut out = a.to_vec();
    for r in b {
        if let Some(i) = out.iter().position(|x| x == r) {
            out.remove(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(d: &str, via: &str) -> RouteSpec {
        RouteSpec {
            destination: d.parse().unwrap(),
            via: Some(via.parse().unwrap()),
            metric: 0,
        }
    }

    #[test]
    fn minus_takes_one_occurrence_per_route() {
        let a = [
            r("192.0.2.0/24", "10.0.0.2"),
            r("192.0.2.0/24", "10.0.0.2"),
            r("198.51.100.0/24", "10.0.0.3"),
        ];
        let b = [
            r("192.0.2.0/24", "10.0.0.2"),
            r("198.51.100.0/24", "10.0.0.9"),
        ];
        assert_eq!(
            minus(&a, &b),
            vec![
                r("192.0.2.0/24", "10.0.0.2"),
                r("198.51.100.0/24", "10.0.0.3")
            ]
        );
    }
}
