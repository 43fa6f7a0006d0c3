//! Load balancers (schema §10): create, modify (whole-document replace),
//! delete, and leaving an LB's backend set when an endpoint is deleted.
//!
//! An LB is kernel state only as elements of the static maps of
//! `hostnet_nft::lb`; every change is the difference of its elements
//! before and after, in one nfnetlink transaction
//! ([`Op::ReplaceElements`]), so a change costs O(its own size) and no
//! packet sees half of it. [`check`] validates a document against the
//! state; [`program`] turns LBs into elements and model groups. See
//! docs/load-balancers.md.

mod check;
mod dsr;
mod overlay;
mod preserve_dip;
mod program;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hostnet_dataplane::{apply, teardown, Op};
use hostnet_model::domain::LoadBalancerSpec;
use hostnet_model::wire::HostComputeLoadBalancer;
use hostnet_model::HcnError;
use hostnet_store::Txn;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::object::{bytes, guid, internal, Kind};
use crate::service::{Service, State};

use crate::reprogram::Delta;
pub(crate) use check::port_owner;
use check::{check, frontend_keys, parse, unwrap_modify, FrontendKey};
pub(crate) use dsr::{Scope as SharedScope, Shared as DsrShared};
use program::lb_elements;

pub(crate) use overlay::{holding_source_vip, pinned_to, router_state};
pub(crate) use program::{all_elements, client_groups, dsr_local_routes, BackendRemoval};

/// The IPv4 frontend VIPs of `spec`: what DSR and PreserveDip, which are
/// IPv4 only, work with.
fn frontend_vips4(spec: &LoadBalancerSpec) -> impl Iterator<Item = std::net::Ipv4Addr> + '_ {
    spec.frontend_vips.iter().filter_map(|a| match a {
        std::net::IpAddr::V4(a) => Some(*a),
        std::net::IpAddr::V6(_) => None,
    })
}

/// A load balancer as stored and as programmed.
pub(crate) struct LoadBalancerRec {
    pub obj: Map<String, Value>,
    pub spec: LoadBalancerSpec,
}

/// The load balancers, with an index of their frontends, so checking a
/// new one for conflicts costs O(its frontends), not O(all LBs).
#[derive(Default)]
pub(crate) struct LoadBalancers {
    by_id: BTreeMap<Uuid, LoadBalancerRec>,
    by_frontend: HashMap<FrontendKey, Uuid>,
    /// The LBs with direct server return or PreserveDip, whose shared
    /// state ([`dsr::Shared`]) every change recomputes: only these.
    shared: BTreeSet<Uuid>,
    /// Those of `shared` by frontend VIP, so a change finds the LBs it
    /// shares state with in O(them), not O(all of `shared`).
    shared_by_vip: HashMap<std::net::IpAddr, BTreeSet<Uuid>>,
    /// Those of `shared` with direct server return (they share the
    /// client ports).
    dsr: BTreeSet<Uuid>,
}

impl LoadBalancers {
    pub fn get(&self, id: &Uuid) -> Option<&LoadBalancerRec> {
        self.by_id.get(id)
    }

    pub fn contains_key(&self, id: &Uuid) -> bool {
        self.by_id.contains_key(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Uuid, &LoadBalancerRec)> {
        self.by_id.iter()
    }

    /// Add or replace an LB (its frontends must be free: [`check`]).
    pub fn insert(&mut self, id: Uuid, rec: LoadBalancerRec) {
        self.remove(&id);
        for k in frontend_keys(&rec.spec) {
            self.by_frontend.insert(k, id);
        }
        if dsr::is_dsr(&rec.spec) || preserve_dip::is_preserve_dip(&rec.spec) {
            self.shared.insert(id);
            for vip in &rec.spec.frontend_vips {
                self.shared_by_vip.entry(*vip).or_default().insert(id);
            }
            if dsr::is_dsr(&rec.spec) {
                self.dsr.insert(id);
            }
        }
        self.by_id.insert(id, rec);
    }

    pub fn remove(&mut self, id: &Uuid) -> Option<LoadBalancerRec> {
        let rec = self.by_id.remove(id)?;
        for k in frontend_keys(&rec.spec) {
            self.by_frontend.remove(&k);
        }
        if self.shared.remove(id) {
            for vip in &rec.spec.frontend_vips {
                if let Some(ids) = self.shared_by_vip.get_mut(vip) {
                    ids.remove(id);
                    if ids.is_empty() {
                        self.shared_by_vip.remove(vip);
                    }
                }
            }
            self.dsr.remove(id);
        }
        Some(rec)
    }

    /// The LBs with direct server return or PreserveDip.
    fn shared(&self) -> impl Iterator<Item = (&Uuid, &LoadBalancerRec)> {
        self.shared
            .iter()
            .filter_map(|id| Some((id, self.by_id.get(id)?)))
    }

    /// The DSR and PreserveDip LBs with one of `vips` as a frontend, and
    /// every DSR LB too when `all_dsr` says so.
    fn shared_with<'a>(
        &self,
        vips: impl IntoIterator<Item = &'a std::net::IpAddr>,
        all_dsr: bool,
    ) -> BTreeSet<Uuid> {
        let mut out: BTreeSet<Uuid> = vips
            .into_iter()
            .filter_map(|v| self.shared_by_vip.get(v))
            .flatten()
            .copied()
            .collect();
        if all_dsr {
            out.extend(&self.dsr);
        }
        out
    }

    fn owner(&self, key: &FrontendKey) -> Option<&Uuid> {
        self.by_frontend.get(key)
    }
}

impl Service {
    pub(crate) fn create_load_balancer(&self, body: &[u8]) -> Result<Map<String, Value>, HcnError> {
        let (wire, spec) = parse(body)?;
        let mut st = self.lock();
        let spec = overlay::pin_network(&st, spec, None);
        check(&st, &spec, None)?;
        let id = loop {
            let id = Uuid::new_v4();
            if !st.load_balancers.contains_key(&id) {
                break id;
            }
        };
        let obj = stored_object(&wire, &spec, &id);
        let rec = LoadBalancerRec { obj, spec };
        let op = Op::AddElements(lb_elements(&st, &rec.spec));
        let ops = with_shared(&st, &id, Some(&rec.spec), op);
        self.program_then_commit(&ops, "programming the load balancer", || {
            let mut txn = Txn::new();
            txn.put(Kind::LoadBalancer.collection(), &guid(&id), bytes(&rec.obj));
            self.commit(txn)
        })?;
        let out = rec.obj.clone();
        st.load_balancers.insert(id, rec);
        Ok(out)
    }

    /// `HcnModifyLoadBalancer`: the body is a whole LB document (HCS), or
    /// one wrapped in a ModifySettingRequest's `Settings` (SDN); either
    /// replaces the LB.
    pub(crate) fn modify_load_balancer(
        &self,
        id: Uuid,
        given: &str,
        body: &[u8],
    ) -> Result<Map<String, Value>, HcnError> {
        let doc = unwrap_modify(body)?;
        let (wire, spec) = parse(&doc)?;
        let mut st = self.lock();
        let Some(old) = st.load_balancers.get(&id) else {
            return Err(Kind::LoadBalancer.not_found(given));
        };
        let spec = overlay::pin_network(&st, spec, Some(&old.spec));
        check(&st, &spec, Some(&id))?;
        let obj = stored_object(&wire, &spec, &id);
        let op = Delta::replace(lb_elements(&st, &old.spec), lb_elements(&st, &spec));
        let ops = with_shared(&st, &id, Some(&spec), op);
        self.program_then_commit(&ops, "reprogramming the load balancer", || {
            self.save(Kind::LoadBalancer, &id, &obj)
        })?;
        let out = obj.clone();
        st.load_balancers.insert(id, LoadBalancerRec { obj, spec });
        Ok(out)
    }

    pub(crate) fn delete_load_balancer(&self, id: Uuid, given: &str) -> Result<(), HcnError> {
        let mut st = self.lock();
        let Some(rec) = st.load_balancers.get(&id) else {
            return Err(Kind::LoadBalancer.not_found(given));
        };
        let op = Delta::replace(lb_elements(&st, &rec.spec), Vec::new());
        let ops = with_shared(&st, &id, None, op);
        self.program_then_commit(&ops, "removing the load balancer", || {
            let mut txn = Txn::new();
            txn.delete(Kind::LoadBalancer.collection(), &guid(&id));
            self.commit(txn)
        })?;
        st.load_balancers.remove(&id);
        Ok(())
    }

    /// Run `ops` (undone if one fails), then `commit`; if the commit
    /// fails, undo them all, so nothing is left half made.
    fn program_then_commit(
        &self,
        ops: &[Op],
        what: &str,
        commit: impl FnOnce() -> Result<(), HcnError>,
    ) -> Result<(), HcnError> {
        apply(self.dp.as_ref(), ops).map_err(|e| internal(what, e))?;
        if let Err(e) = commit() {
            let undo: Vec<Op> = Op::reverse_plan(ops);
            teardown(self.dp.as_ref(), &undo);
            return Err(e);
        }
        Ok(())
    }

    /// Read the stored load balancers (after the endpoints: backends are
    /// resolved when programmed). One that no longer validates is skipped.
    pub(crate) fn load_load_balancers(&self, st: &mut State) -> Result<(), HcnError> {
        let stored = self
            .store
            .list(Kind::LoadBalancer.collection())
            .map_err(|e| internal("reading the store", e))?;
        for (key, raw) in stored {
            let loaded = parse(&raw).and_then(|(_, spec)| {
                let obj: Map<String, Value> =
                    serde_json::from_slice(&raw).map_err(|e| internal("parsing", e))?;
                let id = obj.get("ID").and_then(Value::as_str).unwrap_or_default();
                Ok((
                    hostnet_model::parse_guid(id)?,
                    LoadBalancerRec { obj, spec },
                ))
            });
            match loaded {
                Ok((id, rec)) => {
                    st.load_balancers.insert(id, rec);
                }
                Err(e) => log::error!("stored load balancer {key} is unusable, skipped: {e}"),
            }
        }
        Ok(())
    }
}

pub(super) fn endpoint_list(spec: &LoadBalancerSpec) -> Value {
    json!(spec.endpoints.iter().map(guid).collect::<Vec<_>>())
}

/// The object as stored and answered: the document as received (so
/// kube-proxy finds its fields), endpoint IDs in hostnet's spelling, the
/// service-filled `ID`.
fn stored_object(
    wire: &HostComputeLoadBalancer,
    spec: &LoadBalancerSpec,
    id: &Uuid,
) -> Map<String, Value> {
    let mut obj = crate::object::to_object(wire);
    obj.insert("ID".into(), json!(guid(id)));
    if !spec.endpoints.is_empty() {
        obj.insert("HostComputeEndpoints".into(), endpoint_list(spec));
    }
    obj.insert("State".into(), json!(1));
    overlay::name_network(&mut obj, spec);
    obj
}

/// An LB's element change with the shared DSR state's change around it:
/// VIPs onto backends and client ports hooked first, the rest after.
fn with_shared(st: &State, id: &Uuid, spec: Option<&LoadBalancerSpec>, op: Op) -> Vec<Op> {
    let old = st.load_balancers.get(id).map(|lb| &lb.spec);
    let scope = dsr::Scope::Lb(old, spec);
    let before = dsr::Shared::of(st, None, None, scope);
    let after = dsr::Shared::of(st, Some((id, spec)), None, scope);
    let (mut ops, later) = before.ops_to(&after);
    let empty = match &op {
        Op::AddElements(add) => add.is_empty(),
        Op::ReplaceElements { delete, add } => delete.is_empty() && add.is_empty(),
        _ => false,
    };
    if !empty {
        ops.push(op);
    }
    // An overlay network's LB is its router's.
    let mut routers = overlay::Change::default();
    routers.push(st, id, old, spec);
    let (first, last) = routers.ops();
    ops.extend(first);
    ops.extend(last);
    ops.extend(later);
    ops
}
