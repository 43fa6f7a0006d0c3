//! `HostComputeRoute` objects (SDN routes, schema §11): prefixes an
//! endpoint reaches through a chosen next hop.
//!
//! A route is realised as a route in the endpoint's namespace, via its
//! interface: the container's own FIB sends the prefix to the next hop's
//! MAC, exactly where VFP's route layer would, and the kernel's LPM lookup
//! costs the same whatever the number of routes (docs/api.md, routes).
//! The routes join the endpoint's plan, so attaching (or re-attaching, or
//! rebuilding a lost veth) installs them with the others.
//!
//! Crash safety: a create commits the store before the kernel changes and
//! a delete changes the kernel before the store, so a crash in between
//! always leaves the store holding a superset of the kernel's routes, and
//! [`Service::reconcile_routes`] installs what is missing (adding a route
//! replaces an identical one, so repeating it is harmless).

use hostnet_dataplane::{apply, Op, RouteSpec};
use hostnet_model::domain::RouteObjectSpec;
use hostnet_model::wire::HostComputeRoute;
use hostnet_model::{ErrorCode, HcnError};
use hostnet_policy::lower_egress::SourcedRoute;
use hostnet_policy::Origin;
use hostnet_store::Txn;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::endpoint::next_hop_of;
use crate::object::{bytes, ensure_unique_name, guid, internal, to_object, Kind};
use crate::service::{EndpointRec, Service, State};

/// A route object and what it put in each endpoint's namespace.
pub(crate) struct RouteRec {
    pub obj: Map<String, Value>,
    pub name: String,
    /// Per endpoint, in `HostComputeEndpoints` order: the kernel routes.
    pub applied: Vec<(Uuid, Vec<RouteSpec>)>,
}

impl Service {
    pub(crate) fn create_route(&self, body: &[u8]) -> Result<Map<String, Value>, HcnError> {
        let wire: HostComputeRoute = crate::object::parse_object(body)?;
        let spec = hostnet_model::validate_route(&wire)?;
        let mut st = self.lock();
        ensure_unique_name(
            Kind::Route,
            wire.name.as_deref().unwrap_or_default(),
            st.routes.iter().map(|(id, r)| (id, r.name.as_str())),
        )?;
        if spec.endpoints.is_empty() {
            return Err(HcnError::new(
                ErrorCode::InvalidEndpoint,
                "the route object names no endpoint: give HostComputeEndpoints",
            ));
        }
        let applied = resolve(&st, &spec)?;
        let id = loop {
            let id = Uuid::new_v4();
            if !st.routes.contains_key(&id) {
                break id;
            }
        };
        let mut obj = to_object(&wire);
        obj.insert("ID".into(), json!(guid(&id)));
        obj.insert(
            "HostComputeEndpoints".into(),
            json!(applied.iter().map(|(e, _)| guid(e)).collect::<Vec<_>>()),
        );
        obj.insert("State".into(), json!(1));

        // The store first: a crash before the kernel change leaves a
        // route that reconcile installs, never one nobody knows.
        self.save(Kind::Route, &id, &obj)?;
        let mut ops = forwarding(&st, &applied);
        ops.extend(install_ops(&st, &applied, true));
        if let Err(e) = apply(self.dp.as_ref(), &ops) {
            let mut txn = Txn::new();
            txn.delete(Kind::Route.collection(), &guid(&id));
            if let Err(undo) = self.commit(txn) {
                log::error!(
                    "route {}: {undo} (it stays stored: the next start installs it)",
                    guid(&id)
                );
            }
            return Err(internal(
                "adding the routes in the endpoints' namespaces",
                e,
            ));
        }
        for (ep, routes) in &applied {
            if let Some(rec) = st.endpoints.get_mut(ep) {
                rec.plan.routes.extend(routes.iter().cloned());
            }
        }
        let name = wire.name.clone().unwrap_or_default();
        let out = obj.clone();
        st.routes.insert(id, RouteRec { obj, name, applied });
        Ok(out)
    }

    pub(crate) fn delete_route(&self, id: Uuid, given: &str) -> Result<(), HcnError> {
        let mut st = self.lock();
        let Some(rec) = st.routes.get(&id) else {
            return Err(Kind::Route.not_found(given));
        };
        // The kernel first: a crash before the commit leaves the stored
        // route, which reconcile installs again.
        let ops = install_ops(&st, &rec.applied, false);
        apply(self.dp.as_ref(), &ops)
            .map_err(|e| internal("removing the routes from the endpoints' namespaces", e))?;
        let mut txn = Txn::new();
        txn.delete(Kind::Route.collection(), &guid(&id));
        if let Err(e) = self.commit(txn) {
            let undo: Vec<Op> = Op::reverse_plan(&ops);
            if let Err(u) = apply(self.dp.as_ref(), &undo) {
                log::error!("route {}: {u} (reinstalled at the next start)", guid(&id));
            }
            return Err(e);
        }
        let rec = st.routes.remove(&id).expect("checked above");
        for (ep, routes) in &rec.applied {
            if let Some(e) = st.endpoints.get_mut(ep) {
                forget(e, routes);
            }
        }
        Ok(())
    }

    /// HNS has no route modify (HCS adds an endpoint to a route by delete
    /// and create): E_NOTIMPL, which tells clients to do the same.
    pub(crate) fn modify_route(&self, id: Uuid, given: &str) -> HcnError {
        if !self.lock().routes.contains_key(&id) {
            return Kind::Route.not_found(given);
        }
        HcnError::new(
            ErrorCode::NotImplemented,
            "routes cannot be modified: delete the route and create it again with the new endpoints or routes; nothing was changed",
        )
    }

    /// Reload a stored route object (after the endpoints): its routes join
    /// their endpoints' plans; endpoints that are gone are left out.
    pub(crate) fn load_route(&self, st: &mut State, raw: &[u8]) -> Result<(), HcnError> {
        let wire: HostComputeRoute = hostnet_model::from_json(raw)?;
        let mut spec = hostnet_model::validate_route(&wire)?;
        let obj: Map<String, Value> =
            serde_json::from_slice(raw).map_err(|e| internal("parsing", e))?;
        let id = hostnet_model::parse_guid(obj.get("ID").and_then(Value::as_str).unwrap_or(""))?;
        spec.endpoints.retain(|e| st.endpoints.contains_key(e));
        let applied = resolve(st, &spec)?;
        for (ep, routes) in &applied {
            if let Some(rec) = st.endpoints.get_mut(ep) {
                rec.plan.routes.extend(routes.iter().cloned());
            }
        }
        let name = wire.name.unwrap_or_default();
        st.routes.insert(id, RouteRec { obj, name, applied });
        Ok(())
    }

    /// Install every route object's routes in the namespaces of attached
    /// endpoints (replacing identical ones): what a crash left half-done.
    pub(crate) fn reconcile_routes(&self, st: &State) {
        for (id, rec) in &st.routes {
            for op in install_ops(st, &rec.applied, true) {
                if let Err(e) = apply(self.dp.as_ref(), std::slice::from_ref(&op)) {
                    log::error!("route {}: {e}", guid(id));
                }
            }
        }
    }
}

/// Endpoint `id` leaves every route object it is in (it is being deleted):
/// the changed objects go into `txn`; returns them for [`left_routes`]
/// once the commit succeeded. Its namespace routes go with its veth.
pub(crate) fn leave_routes(
    st: &State,
    id: &Uuid,
    txn: &mut Txn,
) -> Vec<(Uuid, Map<String, Value>)> {
    let mut changed = Vec::new();
    for (rid, rec) in &st.routes {
        if !rec.applied.iter().any(|(e, _)| e == id) {
            continue;
        }
        let mut obj = rec.obj.clone();
        let left: Vec<String> = rec
            .applied
            .iter()
            .filter(|(e, _)| e != id)
            .map(|(e, _)| guid(e))
            .collect();
        obj.insert("HostComputeEndpoints".into(), json!(left));
        txn.put(Kind::Route.collection(), &guid(rid), bytes(&obj));
        changed.push((*rid, obj));
    }
    changed
}

/// Apply what [`leave_routes`] prepared, after its commit.
pub(crate) fn left_routes(st: &mut State, id: &Uuid, changed: Vec<(Uuid, Map<String, Value>)>) {
    for (rid, obj) in changed {
        if let Some(rec) = st.routes.get_mut(&rid) {
            rec.obj = obj;
            rec.applied.retain(|(e, _)| e != id);
        }
    }
}

/// The routes of endpoint `id`'s namespace, each with where it came from
/// (a route object, an `SDNRoute` policy or the endpoint's `Routes`), and
/// its default route: what the trace's `route` layer shows.
pub(crate) fn endpoint_routes(st: &State, id: &Uuid, ep: &EndpointRec) -> Vec<SourcedRoute> {
    let object = guid(id);
    let mut from_objects: Vec<(RouteSpec, String)> = st
        .routes
        .iter()
        .flat_map(|(rid, rec)| {
            rec.applied
                .iter()
                .filter(|(e, _)| e == id)
                .flat_map(move |(_, rs)| rs.iter().map(move |r| (r.clone(), guid(rid))))
        })
        .collect();
    let mut out = Vec::new();
    for r in &ep.plan.routes {
        let origin = match from_objects.iter().position(|(o, _)| o == r) {
            Some(i) => {
                let route = from_objects.remove(i).1;
                Origin {
                    policy: "HostComputeRoute".into(),
                    object: route.clone(),
                    hcn_id: Some(route),
                }
            }
            None => Origin {
                policy: "SDNRoute or Routes".into(),
                object: object.clone(),
                hcn_id: None,
            },
        };
        out.push(SourcedRoute {
            destination: r.destination,
            via: r.via,
            origin,
        });
    }
    if let Some(gw) = ep.plan.gateway {
        let default = match gw {
            std::net::IpAddr::V4(_) => "0.0.0.0/0",
            std::net::IpAddr::V6(_) => "::/0",
        };
        let destination = default.parse().expect("literal prefix");
        if !out.iter().any(|r| r.destination == destination) {
            out.push(SourcedRoute {
                destination,
                via: Some(gw),
                origin: Origin {
                    policy: "default route".into(),
                    object,
                    hcn_id: None,
                },
            });
        }
    }
    out
}

/// Check a route object against the endpoints it names and resolve each
/// route's next hop from each endpoint's subnet; nothing changes here.
fn resolve(st: &State, spec: &RouteObjectSpec) -> Result<Vec<(Uuid, Vec<RouteSpec>)>, HcnError> {
    if spec.routes.is_empty() {
        return Err(HcnError::new(
            ErrorCode::InvalidPolicy,
            "the route object has no routes: give them under Setting (or Routes) as [{\"DestinationPrefix\":\"10.0.0.0/8\",\"NextHop\":\"…\"}]",
        ));
    }
    if let Some(n) = spec.network.filter(|n| !st.networks.contains_key(n)) {
        return Err(HcnError::new(
            ErrorCode::NetworkNotFound,
            format!(
                "HostComputeNetwork {} does not exist: list networks with GET /v2/networks",
                guid(&n)
            ),
        ));
    }
    let mut out: Vec<(Uuid, Vec<RouteSpec>)> = Vec::new();
    for ep_id in &spec.endpoints {
        if out.iter().any(|(e, _)| e == ep_id) {
            continue;
        }
        let ep = st.endpoints.get(ep_id).ok_or_else(|| {
            HcnError::new(
                ErrorCode::EndpointNotFound,
                format!("HostComputeEndpoints: endpoint {} does not exist: create it first or list them with GET /v2/endpoints", guid(ep_id)),
            )
        })?;
        if spec.network.is_some_and(|n| n != ep.network) {
            return Err(HcnError::new(
                ErrorCode::InvalidEndpoint,
                format!("endpoint {} is not on HostComputeNetwork {}: name endpoints of that network, or omit HostComputeNetwork", guid(ep_id), guid(&spec.network.expect("checked"))),
            ));
        }
        if ep
            .namespace
            .and_then(|n| st.namespaces.get(&n))
            .is_some_and(|n| n.host)
        {
            return Err(HcnError::new(
                ErrorCode::InvalidEndpoint,
                format!("endpoint {} is a host endpoint: its routes would be the host's own; name container endpoints", guid(ep_id)),
            ));
        }
        if ep.vm_nic {
            return Err(HcnError::new(
                ErrorCode::InvalidEndpoint,
                format!("endpoint {} is a VM NIC: its routes are the guest's, which hostnet does not reach into; give the guest its routes itself, or name container endpoints", guid(ep_id)),
            ));
        }
        let net = &st.networks[&ep.network];
        let mut routes: Vec<RouteSpec> = Vec::new();
        for r in &spec.routes {
            let via = next_hop_of(net, ep.plan.address, r.destination, r.next_hop, "route")?;
            // Its subnet's connected route and its default route are the
            // endpoint's own: a route replacing them would cut it off.
            let taken = ep
                .plan
                .routes
                .iter()
                .chain(&routes)
                .any(|x| x.destination == r.destination)
                || r.destination == ep.plan.address.trunc()
                || (r.destination.prefix_len() == 0 && ep.plan.gateway.is_some());
            if taken {
                return Err(HcnError::new(
                    ErrorCode::PolicyAlreadyExists,
                    format!("endpoint {} already has a route to {}: delete that route (or SDNRoute) first, or route another prefix", guid(ep_id), r.destination),
                ));
            }
            routes.push(RouteSpec {
                destination: r.destination,
                via: Some(via),
                metric: 0,
            });
        }
        out.push((*ep_id, routes));
    }
    Ok(out)
}

/// Where endpoint `ep`'s routes live: its namespace and interface there;
/// None while it has no namespace of its own (detached, a host endpoint,
/// or a runtime's namespace that is gone): it gets them when attached.
pub(crate) fn route_target(st: &State, ep: &EndpointRec) -> Option<(std::path::PathBuf, String)> {
    let ns = ep.namespace.and_then(|n| st.namespaces.get(&n))?;
    if ns.host || (ns.external && !std::path::Path::new(&ns.path).exists()) {
        return None;
    }
    Some((ns.path.clone(), ep.ifname.clone()))
}

/// Add (or remove) `applied` in the namespaces of the endpoints that are
/// attached to one (a detached endpoint gets them when it is attached).
fn install_ops(st: &State, applied: &[(Uuid, Vec<RouteSpec>)], add: bool) -> Vec<Op> {
    applied
        .iter()
        .filter_map(|(id, routes)| {
            let ep = st.endpoints.get(id)?;
            let (netns, link) = route_target(st, ep)?;
            let routes = routes.clone();
            Some(match add {
                true => Op::AddRoutes {
                    netns,
                    link,
                    routes,
                },
                false => Op::DeleteRoutes {
                    netns,
                    link,
                    routes,
                },
            })
        })
        .collect()
}

/// Forwarding on when a route goes through the host of a bound network
/// (see [`crate::endpoint::host_forwarding`]).
fn forwarding(st: &State, applied: &[(Uuid, Vec<RouteSpec>)]) -> Vec<Op> {
    let mut ops: Vec<Op> = applied
        .iter()
        .filter_map(|(id, routes)| {
            let ep = st.endpoints.get(id)?;
            let net = st.networks.get(&ep.network)?;
            let mut plan = ep.plan.clone();
            plan.routes = routes.clone();
            Some(crate::endpoint::host_forwarding(net, &plan))
        })
        .flatten()
        .collect();
    ops.truncate(1);
    ops
}

/// Take `routes` out of an endpoint's plan (one occurrence each).
fn forget(ep: &mut EndpointRec, routes: &[RouteSpec]) {
    for r in routes {
        if let Some(i) = ep.plan.routes.iter().position(|x| x == r) {
            ep.plan.routes.remove(i);
        }
    }
}
