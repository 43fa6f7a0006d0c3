//! Load balancers as kernel elements and as the policy model's `lb`
//! groups, both from one list of frontends; and the one transaction from
//! an LB's elements before to after.

use std::net::IpAddr;

use hostnet_dataplane::{teardown, Op};
use hostnet_model::domain::{Distribution, LoadBalancerSpec};
use hostnet_nft::lb::{Frontend, IpFamily, Pick, Reach};
use hostnet_nft::SetElement;
use hostnet_store::Txn;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{endpoint_list, LoadBalancerRec};
use crate::object::{bytes, guid, Kind};
use crate::reprogram::Delta;
use crate::service::State;

/// Port mapping flag bits that say who reaches a frontend.
const PM_ILB: u32 = 1;
const PM_LOCAL_ROUTED_VIP: u32 = 2;
use super::preserve_dip::FLAG as PM_PRESERVE_DIP;

/// The `lb` layer of a container's port, for trace: a group per load
/// balancer with a rule per VIP frontend, and per node port one rule for
/// each of `host_addresses` of its family (containers reach every
/// frontend). Built from the same [`frontends`] as the kernel elements.
pub(crate) fn client_groups(st: &State, host_addresses: &[IpAddr]) -> Vec<hostnet_policy::Group> {
    st.load_balancers
        .iter()
        // An overlay's LBs are its router's, which trace does not model.
        .filter(|(_, lb)| super::overlay::overlay_of(st, &lb.spec).is_none())
        .map(|(id, lb)| {
            let fronts: Vec<hostnet_policy::lb::Frontend> = frontends(st, &lb.spec)
                .into_iter()
                .flat_map(|f| {
                    let vips: Vec<IpAddr> = match f.vip {
                        Some(vip) => vec![vip],
                        None => host_addresses
                            .iter()
                            .copied()
                            .filter(|a| IpFamily::of(*a) == f.family)
                            .collect(),
                    };
                    vips.into_iter()
                        .map(move |vip| hostnet_policy::lb::Frontend {
                            vip,
                            proto: f.proto,
                            port: f.port,
                            target_port: f.target_port,
                            backends: f.backends.clone(),
                            affinity: f.pick != Pick::Random,
                            source_vip: f.source_vip,
                            preserve_dip: f.preserve_dip,
                        })
                })
                .collect();
            hostnet_policy::lb::group(&guid(id), &fronts)
        })
        .collect()
}

/// Every element of every load balancer, for the start-up load.
pub(crate) fn all_elements(st: &State) -> Vec<SetElement> {
    let mut out: Vec<SetElement> = st
        .load_balancers
        .iter()
        .map(|(_, lb)| lb)
        .flat_map(|lb| lb_elements(st, &lb.spec))
        .collect();
    out.extend(super::dsr::Shared::all(st).0);
    out
}

/// The DSR and PreserveDip VIPs' local routes in backends' namespaces, for
/// the start-up reconcile (once the namespaces are back).
pub(crate) fn dsr_local_routes(st: &State) -> Vec<Op> {
    super::dsr::Shared::all(st).1
}

/// What deleting endpoint `ep` does to the load balancers that have it as
/// a backend: their new stored objects (for the endpoint's delete
/// transaction) and one kernel change, computed while `ep` is still known.
pub(crate) struct BackendRemoval {
    updates: Vec<(Uuid, Map<String, Value>, LoadBalancerSpec)>,
    /// The LBs' element change, with the DSR ports and VIPs it leaves.
    ops: Vec<Op>,
}

impl BackendRemoval {
    pub(crate) fn plan(st: &State, ep: &Uuid) -> BackendRemoval {
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut updates = Vec::new();
        let mut routers = super::overlay::Change::default();
        for (id, lb) in st.load_balancers.iter() {
            if !lb.spec.endpoints.contains(ep) {
                continue;
            }
            let mut spec = lb.spec.clone();
            spec.endpoints.retain(|e| e != ep);
            let mut obj = lb.obj.clone();
            obj.insert("HostComputeEndpoints".into(), endpoint_list(&spec));
            before.extend(lb_elements(st, &lb.spec));
            // Computed with `ep` still present, but it is no longer listed.
            after.extend(lb_elements(st, &spec));
            routers.push(st, id, Some(&lb.spec), Some(&spec));
            updates.push((*id, obj, spec));
        }
        let scope = super::dsr::Scope::Endpoint(ep);
        let shared = super::dsr::Shared::of(st, None, None, scope);
        let (mut ops, later) = shared.ops_to(&super::dsr::Shared::of(st, None, Some(ep), scope));
        let op = Delta::replace(before, after);
        if !matches!(&op, Op::ReplaceElements { delete, add } if delete.is_empty() && add.is_empty())
        {
            ops.push(op);
        }
        let (first, last) = routers.ops();
        ops.extend(first);
        ops.extend(last);
        ops.extend(later);
        BackendRemoval { updates, ops }
    }

    /// The new LB objects go into the endpoint's delete transaction.
    pub(crate) fn stage(&self, txn: &mut Txn) {
        for (id, obj, _) in &self.updates {
            txn.put(Kind::LoadBalancer.collection(), &guid(id), bytes(obj));
        }
    }

    /// After the commit: the kernel and memory follow.
    pub(crate) fn finish(self, st: &mut State, dp: &dyn hostnet_dataplane::Dataplane) {
        for e in teardown(dp, &self.ops) {
            log::warn!("load balancer backends: {e} (left for the next reconcile)");
        }
        for (id, obj, spec) in self.updates {
            if st.load_balancers.contains_key(&id) {
                st.load_balancers.insert(id, LoadBalancerRec { obj, spec });
            }
        }
    }
}

/// The frontends an LB programs: each VIP (or the host's addresses) times
/// each port mapping, with the backends' current addresses of the LB's
/// family (an IPv6 LB's backends are their endpoints' IPv6 addresses).
pub(super) fn frontends(st: &State, spec: &LoadBalancerSpec) -> Vec<Frontend> {
    let family = match super::check::is_ipv6(spec) {
        true => IpFamily::V6,
        false => IpFamily::V4,
    };
    let of_family = |a: &IpAddr| IpFamily::of(*a) == family;
    let backends: Vec<IpAddr> = spec
        .endpoints
        .iter()
        .filter_map(|e| st.endpoints.get(e))
        .filter_map(|e| match family {
            IpFamily::V4 => Some(e.plan.address.addr()),
            IpFamily::V6 => e.plan.address6.map(|a| a.addr()),
        })
        .filter(of_family)
        .collect();
    let source_vip = spec.source_vip.filter(of_family);
    let vips: Vec<Option<IpAddr>> = match spec.frontend_vips.is_empty() {
        true => vec![None],
        false => spec
            .frontend_vips
            .iter()
            .copied()
            .filter(of_family)
            .map(Some)
            .collect(),
    };
    let mut out = Vec::new();
    for vip in vips {
        for m in &spec.port_mappings {
            out.push(Frontend {
                family,
                vip,
                proto: m.protocol.number(),
                port: m.external_port,
                target_port: m.internal_port,
                pick: match m.distribution {
                    Distribution::None => Pick::Random,
                    Distribution::SourceIp => Pick::SourceIp,
                    Distribution::SourceIpProtocol => Pick::SourceIpProtocol,
                },
                reach: reach(m.flags),
                source_vip,
                backends: backends.clone(),
                preserve_dip: m.flags & PM_PRESERVE_DIP != 0,
            });
        }
    }
    out
}

/// Who reaches a frontend: containers always; the outside unless it is an
/// internal LB (ILB); the host only with LocalRoutedVip.
fn reach(flags: u32) -> Reach {
    Reach {
        guests: true,
        outside: flags & PM_ILB == 0,
        host: flags & PM_LOCAL_ROUTED_VIP != 0,
    }
}

/// An LB's elements in the host's table (none for an overlay network's:
/// they are its router's, [`super::overlay`]).
pub(super) fn lb_elements(st: &State, spec: &LoadBalancerSpec) -> Vec<SetElement> {
    if super::overlay::overlay_of(st, spec).is_some() {
        return Vec::new();
    }
    let mut out: Vec<SetElement> = frontends(st, spec)
        .iter()
        .flat_map(hostnet_nft::lb::elements)
        .collect();
    out.extend(super::dsr::elements(st, spec));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_decide_who_reaches_a_frontend() {
        assert_eq!(
            reach(0),
            Reach {
                guests: true,
                outside: true,
                host: false
            }
        );
        assert!(!reach(PM_ILB).outside);
        assert!(reach(PM_LOCAL_ROUTED_VIP | 16).host);
    }
}
