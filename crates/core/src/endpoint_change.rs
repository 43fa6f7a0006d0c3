//! Endpoint modify, `ResourceType: Policy` (`Add`, `Remove`, `Update`;
//! schema §12): the policy list after the request is checked as a create
//! would check it, the endpoint's elements before and after are compared,
//! and the difference is one kernel transaction (after the changed
//! `SDNRoute`s in the endpoint's namespace, [`crate::sdn_route_change`]),
//! then the store; on any failure nothing changes. Narrowed ACLs then cut the connections they
//! block ([`crate::flow_cut`]).

use hostnet_dataplane::{apply, teardown, Op};
use hostnet_model::domain::{AclRule, EndpointPolicy, RequestType, TierAcl};
use hostnet_model::{wire, ErrorCode, HcnError};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::endpoint::{
    check_mappings_allowed, check_policies_allowed, check_ports, nat_mapping, policies_of,
    EndpointPolicies,
};
use crate::ip_sets::IpSets;
use crate::object::{guid, internal, Kind};
use crate::policy_change::{changed_list, stored_list, Listed};
use crate::reprogram::{owned_elements, Delta};
use crate::sdn_route_change::RouteChange;
use crate::service::{EndpointRec, NetworkRec, Service};

impl Service {
    pub(crate) fn change_endpoint_policies(
        &self,
        id: Uuid,
        given: &str,
        request: RequestType,
        policies: Vec<(EndpointPolicy, wire::Policy)>,
    ) -> Result<Map<String, Value>, HcnError> {
        let mut st = self.lock();
        let ep = st
            .endpoints
            .get(&id)
            .ok_or_else(|| Kind::Endpoint.not_found(given))?;
        let net = st.networks.get(&ep.network).ok_or_else(|| {
            HcnError::new(
                ErrorCode::NetworkNotFound,
                format!("the network of endpoint {} is gone", guid(&id)),
            )
        })?;
        let given: Vec<Listed<EndpointPolicy>> = policies
            .into_iter()
            .map(|(p, w)| {
                Ok((
                    p,
                    serde_json::to_value(w).map_err(|e| internal("echoing a policy", e))?,
                ))
            })
            .collect::<Result<_, HcnError>>()?;
        let current = stored_list(&ep.obj, hostnet_model::domain::parse_endpoint_policy)?;
        let object = format!("endpoint {}", guid(&id));
        let list = changed_list(&current, request, &given, &object)?;
        let before = policies_of(&current.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>())?;
        let after = policies_of(&list.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>())?;
        check_mappings_allowed(net, &after.mappings)?;
        check_policies_allowed(net, &after)?;
        check_ports(&st, &after.mappings, Some(&id))?;
        check_set_refs(net, &after.acls, &after.tiers)?;
        check_encap_kept(&before, &after)?;
        let routes = RouteChange::plan(&st, &id, ep, net, &before, &after)?;

        let changed = changed_endpoint(ep, net, &list, &after, &routes);
        let mut delta = Delta::of(net);
        delta.push(
            owned_elements(&st, &id, ep, net)?,
            owned_elements(&st, &id, &changed, net)?,
        );
        let op = delta.op();
        let siblings = || {
            st.endpoints
                .iter()
                .filter(|(eid, e)| e.network == ep.network && **eid != id)
                .map(|(_, e)| e)
        };
        let filtering = crate::overlay_acl::filtering_changes(
            net,
            &crate::overlay_acl::filtered_vnis(net, siblings().chain([ep])),
            &crate::overlay_acl::filtered_vnis(net, siblings().chain([&changed])),
        );
        let elements_changed = op.is_some();
        // The namespace's routes first; a bridge starts handing frames to
        // the IP hooks before the walk's elements arrive, and stops after
        // they left.
        let ops: Vec<Op> = routes
            .ops
            .into_iter()
            .chain(filtering.iter().filter(|f| turns_on(f)).cloned())
            .chain(op)
            .chain(filtering.iter().filter(|f| !turns_on(f)).cloned())
            .collect();
        // OutBoundNAT, or a route via the host, added on a Transparent
        // network: the host must forward.
        apply(
            self.dp.as_ref(),
            &crate::endpoint::host_forwarding(net, &changed.plan),
        )
        .map_err(|e| internal("turning forwarding on", e))?;
        apply(self.dp.as_ref(), &ops)
            .map_err(|e| internal("programming the endpoint's policies", e))?;
        if let Err(e) = self.save(Kind::Endpoint, &id, &changed.obj) {
            teardown(self.dp.as_ref(), &Op::reverse_plan(&ops));
            return Err(e);
        }
        let out = changed.obj.clone();
        st.endpoints.insert(id, changed);
        if elements_changed {
            self.cut_blocked_flows(&st, &[id]);
        }
        Ok(out)
    }
}

/// Whether `op` turns a bridge's filtering on (crate::overlay_acl).
fn turns_on(op: &Op) -> bool {
    match op {
        Op::InNetns { op, .. } => turns_on(op),
        op => matches!(op, Op::BridgeNfCallIptables { on: true, .. }),
    }
}

/// The endpoint with policy list `list` (checked, sorted into `p`).
fn changed_endpoint(
    ep: &EndpointRec,
    net: &NetworkRec,
    list: &[Listed<EndpointPolicy>],
    p: &EndpointPolicies,
    routes: &RouteChange,
) -> EndpointRec {
    let mut out = ep.clone();
    out.plan.routes = routes.routes_after(&ep.plan.routes);
    let wires: Vec<Value> = list.iter().map(|(_, w)| w.clone()).collect();
    out.obj.insert("Policies".into(), Value::Array(wires));
    out.mappings = p.mappings.clone();
    out.acls = p.acls.clone();
    out.tiers = p.tiers.clone();
    out.plan.port_mappings = p.mappings.iter().map(nat_mapping).collect();
    out.plan.outbound_nat = p.outbound_nat.clone();
    out.plan.acl = crate::policy::walks_acls(&out, net);
    out
}

/// ACLs and TierAcls may name only sets the network has.
pub(crate) fn check_set_refs(
    net: &NetworkRec,
    acls: &[AclRule],
    tiers: &[TierAcl],
) -> Result<(), HcnError> {
    let sets = IpSets::of(&net.spec.policies)?;
    let acl = acls
        .iter()
        .flat_map(|r| r.local_addresses.iter().chain(&r.remote_addresses));
    let tier = tiers
        .iter()
        .flat_map(|t| &t.rules)
        .flat_map(|r| r.local_addresses.iter().chain(&r.remote_addresses));
    sets.check_refs(acl.chain(tier), &guid(&net.plan.id))
}

/// The MTU is the veth's, set when it is made: a modify that changes it
/// is refused rather than half-applied.
fn check_encap_kept(before: &EndpointPolicies, after: &EndpointPolicies) -> Result<(), HcnError> {
    if before.encap_overhead != after.encap_overhead {
        return Err(HcnError::new(
            ErrorCode::RequestUnsupported,
            "changing an endpoint's EncapOverhead (its MTU) is not supported: nothing was changed; re-create the endpoint",
        ));
    }
    Ok(())
}
