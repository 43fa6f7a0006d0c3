//! Network modify, `ResourceType: Policy`: `NetworkACL` and `SetPolicy`
//! (`Add`, `Remove`, `Update` as for endpoints, schema §12; a SetPolicy's
//! slot is its `Id`). The network's endpoints are reprogrammed in ONE
//! kernel transaction holding only the elements that change, then the
//! store; on any failure nothing changes. On an Overlay network,
//! `RemoteSubnetRoute` too: only the routes that differ are added or
//! removed in the router (flannel adds one per remote host as it learns
//! of it). Other network policy types are fixed at create: a modify that
//! changes them is refused by name.

use hostnet_dataplane::{apply, teardown, Op};
use hostnet_model::domain::{NetworkPolicy, RequestType};
use hostnet_model::{wire, ErrorCode, HcnError};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::endpoint_change::check_set_refs;
use crate::ip_sets::IpSets;
use crate::object::{guid, internal, Kind};
use crate::policy_change::{changed_list, stored_list, Listed};
use crate::reprogram::{owned_elements, Delta};
use crate::service::{Service, State};

/// Whether modify may change policies of this type on this network.
fn changeable(p: &NetworkPolicy, overlay: bool) -> bool {
    match p {
        NetworkPolicy::NetworkAcl(_) | NetworkPolicy::SetPolicy { .. } => true,
        NetworkPolicy::RemoteSubnetRoute { .. } => overlay,
        _ => false,
    }
}

/// The checks a network's ACL policies need, at create and modify: the
/// sets are well formed and every set a NetworkACL names exists.
pub(crate) fn check_acl_policies(
    policies: &[NetworkPolicy],
    network: &str,
) -> Result<(), HcnError> {
    let sets = IpSets::of(policies)?;
    let named = policies.iter().flat_map(|p| match p {
        NetworkPolicy::NetworkAcl(r) => r
            .local_addresses
            .iter()
            .chain(&r.remote_addresses)
            .collect(),
        _ => Vec::new(),
    });
    sets.check_refs(named, network)
}

impl Service {
    pub(crate) fn change_network_policies(
        &self,
        st: &mut State,
        id: Uuid,
        request: RequestType,
        policies: Vec<(NetworkPolicy, wire::Policy)>,
    ) -> Result<Map<String, Value>, HcnError> {
        let net = st.networks.get(&id).expect("checked by the caller");
        let name = guid(&id);
        let given: Vec<Listed<NetworkPolicy>> = policies
            .into_iter()
            .map(|(p, w)| {
                Ok((
                    p,
                    serde_json::to_value(w).map_err(|e| internal("echoing a policy", e))?,
                ))
            })
            .collect::<Result<_, HcnError>>()?;
        let overlay = net.overlay.is_some();
        if let Some((p, _)) = given.iter().find(|(p, _)| !changeable(p, overlay)) {
            return Err(HcnError::new(
                ErrorCode::InvalidPolicyType,
                format!(
                    "network policy {} cannot be changed by modify: nothing was changed; modify takes NetworkACL and SetPolicy (and RemoteSubnetRoute on Overlay networks)",
                    p.type_name()
                ),
            ));
        }
        let current = stored_list(&net.obj, hostnet_model::domain::parse_network_policy)?;
        let list = changed_list(&current, request, &given, &format!("network {name}"))?;
        let domain: Vec<NetworkPolicy> = list.iter().map(|(p, _)| p.clone()).collect();
        check_acl_policies(&domain, &name)?;
        let route_ops = match &net.overlay {
            Some(o) => crate::overlay::route_changes(o, &net.spec.policies, &domain)?,
            None => Vec::new(),
        };

        let mut changed = net.clone();
        changed.spec.policies = domain;
        changed.obj.insert(
            "Policies".into(),
            Value::Array(list.iter().map(|(_, w)| w.clone()).collect()),
        );
        let users: Vec<Uuid> = st
            .endpoints
            .iter()
            .filter(|(_, e)| e.network == id)
            .map(|(eid, _)| *eid)
            .collect();
        let mut delta = Delta::of(net);
        let mut endpoints = Vec::with_capacity(users.len());
        for eid in &users {
            let ep = &st.endpoints[eid];
            let in_endpoint = |e: HcnError| {
                HcnError::new(e.code, format!("endpoint {}: {}", guid(eid), e.message))
            };
            check_set_refs(&changed, &ep.acls, &ep.tiers).map_err(in_endpoint)?;
            let mut after = ep.clone();
            after.plan.acl = crate::policy::walks_acls(&after, &changed);
            delta.push(
                owned_elements(st, eid, ep, net)?,
                owned_elements(st, eid, &after, &changed).map_err(in_endpoint)?,
            );
            endpoints.push((*eid, after));
        }
        let elements = delta.op();
        let acl_changed = elements.is_some();
        let before = st.endpoints.values().filter(|e| e.network == id);
        let filtering = crate::overlay_acl::filtering_changes(
            net,
            &crate::overlay_acl::filtered_vnis(net, before),
            &crate::overlay_acl::filtered_vnis(&changed, endpoints.iter().map(|(_, e)| e)),
        );
        let ops: Vec<Op> = route_ops
            .into_iter()
            .chain(filtering)
            .chain(elements)
            .collect();
        apply(self.dp.as_ref(), &ops)
            .map_err(|e| internal("programming the network and its endpoints", e))?;
        if let Err(e) = self.save(Kind::Network, &id, &changed.obj) {
            let undo: Vec<Op> = Op::reverse_plan(&ops);
            teardown(self.dp.as_ref(), &undo);
            return Err(e);
        }
        let out = changed.obj.clone();
        st.networks.insert(id, changed);
        for (eid, ep) in endpoints {
            st.endpoints.insert(eid, ep);
        }
        if acl_changed {
            self.cut_blocked_flows(st, &users);
        }
        Ok(out)
    }
}
