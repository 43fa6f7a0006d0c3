//! Load balancers (schema §10): create, modify (whole-document replace),
//! delete, and leaving an LB's backend set when an endpoint is deleted.
//!
//! An LB is kernel state only as elements of the static maps of
//! `hostnet_nft::lb`; every change is the difference of its elements
//! before and after, in one nfnetlink transaction
//! ([`Op::ReplaceElements`]), so a change costs O(its own size) and no
//! packet sees half of it. See docs/load-balancers.md.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use hostnet_dataplane::{apply, teardown, Op};
use hostnet_model::domain::{Distribution, LoadBalancerSpec};
use hostnet_model::wire::HostComputeLoadBalancer;
use hostnet_model::{ErrorCode, HcnError};
use hostnet_nft::lb::{Frontend, Pick, Reach};
use hostnet_nft::SetElement;
use hostnet_store::Txn;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::object::{bytes, guid, internal, Kind};
use crate::service::{Service, State};

/// `LoadBalancerFlags` bits.
const LB_DSR: u32 = 1;
const LB_IPV6: u32 = 2;
/// Port mapping flag bits.
const PM_ILB: u32 = 1;
const PM_LOCAL_ROUTED_VIP: u32 = 2;
const PM_PRESERVE_DIP: u32 = 8;

/// A load balancer as stored and as programmed.
pub(crate) struct LoadBalancerRec {
    pub obj: Map<String, Value>,
    pub spec: LoadBalancerSpec,
}

/// (VIP, or None for a node port; protocol; frontend port).
type FrontendKey = (Option<IpAddr>, u8, u16);

/// The load balancers, with an index of their frontends, so checking a
/// new one for conflicts costs O(its frontends), not O(all LBs).
#[derive(Default)]
pub(crate) struct LoadBalancers {
    by_id: BTreeMap<Uuid, LoadBalancerRec>,
    by_frontend: HashMap<FrontendKey, Uuid>,
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
        self.by_id.insert(id, rec);
    }

    pub fn remove(&mut self, id: &Uuid) -> Option<LoadBalancerRec> {
        let rec = self.by_id.remove(id)?;
        for k in frontend_keys(&rec.spec) {
            self.by_frontend.remove(&k);
        }
        Some(rec)
    }

    fn owner(&self, key: &FrontendKey) -> Option<&Uuid> {
        self.by_frontend.get(key)
    }
}

impl Service {
    pub(crate) fn create_load_balancer(&self, body: &[u8]) -> Result<Map<String, Value>, HcnError> {
        let (wire, spec) = parse(body)?;
        let mut st = self.lock();
        check(&st, &spec, None)?;
        let id = loop {
            let id = Uuid::new_v4();
            if !st.load_balancers.contains_key(&id) {
                break id;
            }
        };
        let obj = stored_object(&wire, &spec, &id);
        let rec = LoadBalancerRec { obj, spec };
        let elements = lb_elements(&st, &rec.spec);
        let op = Op::AddElements(elements);
        apply(self.dp.as_ref(), std::slice::from_ref(&op))
            .map_err(|e| internal("programming the load balancer", e))?;
        let mut txn = Txn::new();
        txn.put(Kind::LoadBalancer.collection(), &guid(&id), bytes(&rec.obj));
        if let Err(e) = self.commit(txn) {
            teardown(self.dp.as_ref(), &op.undo().into_iter().collect::<Vec<_>>());
            return Err(e);
        }
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
        check(&st, &spec, Some(&id))?;
        let obj = stored_object(&wire, &spec, &id);
        let op = replace_op(lb_elements(&st, &old.spec), lb_elements(&st, &spec));
        apply(self.dp.as_ref(), std::slice::from_ref(&op))
            .map_err(|e| internal("reprogramming the load balancer", e))?;
        if let Err(e) = self.save(Kind::LoadBalancer, &id, &obj) {
            teardown(self.dp.as_ref(), &op.undo().into_iter().collect::<Vec<_>>());
            return Err(e);
        }
        let out = obj.clone();
        st.load_balancers.insert(id, LoadBalancerRec { obj, spec });
        Ok(out)
    }

    pub(crate) fn delete_load_balancer(&self, id: Uuid, given: &str) -> Result<(), HcnError> {
        let mut st = self.lock();
        let Some(rec) = st.load_balancers.get(&id) else {
            return Err(Kind::LoadBalancer.not_found(given));
        };
        let op = Op::DeleteElements(lb_elements(&st, &rec.spec));
        apply(self.dp.as_ref(), std::slice::from_ref(&op))
            .map_err(|e| internal("removing the load balancer", e))?;
        let mut txn = Txn::new();
        txn.delete(Kind::LoadBalancer.collection(), &guid(&id));
        if let Err(e) = self.commit(txn) {
            if let Op::DeleteElements(els) = op {
                teardown(self.dp.as_ref(), &[Op::AddElements(els)]);
            }
            return Err(e);
        }
        st.load_balancers.remove(&id);
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

/// The `lb` layer of a container's port, for trace: a group per load
/// balancer with a rule per VIP frontend (containers reach every frontend;
/// node ports are on host addresses the model does not know). Built from
/// the same [`frontends`] as the kernel elements.
pub(crate) fn client_groups(st: &State) -> Vec<hostnet_policy::Group> {
    st.load_balancers
        .iter()
        .map(|(id, lb)| {
            let fronts: Vec<hostnet_policy::lb::Frontend> = frontends(st, &lb.spec)
                .into_iter()
                .filter_map(|f| {
                    Some(hostnet_policy::lb::Frontend {
                        vip: IpAddr::V4(f.vip?),
                        proto: f.proto,
                        port: f.port,
                        target_port: f.target_port,
                        backends: f.backends.iter().map(|&b| IpAddr::V4(b)).collect(),
                        affinity: f.pick != Pick::Random,
                    })
                })
                .collect();
            hostnet_policy::lb::group(&guid(id), &fronts)
        })
        .collect()
}

/// Every element of every load balancer, for the start-up load.
pub(crate) fn all_elements(st: &State) -> Vec<SetElement> {
    st.load_balancers
        .iter()
        .map(|(_, lb)| lb)
        .flat_map(|lb| lb_elements(st, &lb.spec))
        .collect()
}

/// What deleting endpoint `ep` does to the load balancers that have it as
/// a backend: their new stored objects (for the endpoint's delete
/// transaction) and one kernel change, computed while `ep` is still known.
pub(crate) struct BackendRemoval {
    updates: Vec<(Uuid, Map<String, Value>, LoadBalancerSpec)>,
    op: Op,
}

impl BackendRemoval {
    pub(crate) fn plan(st: &State, ep: &Uuid) -> BackendRemoval {
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut updates = Vec::new();
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
            updates.push((*id, obj, spec));
        }
        BackendRemoval {
            updates,
            op: replace_op(before, after),
        }
    }

    /// The new LB objects go into the endpoint's delete transaction.
    pub(crate) fn stage(&self, txn: &mut Txn) {
        for (id, obj, _) in &self.updates {
            txn.put(Kind::LoadBalancer.collection(), &guid(id), bytes(obj));
        }
    }

    /// After the commit: the kernel and memory follow.
    pub(crate) fn finish(self, st: &mut State, dp: &dyn hostnet_dataplane::Dataplane) {
        if self.updates.is_empty() {
            return;
        }
        for e in teardown(dp, &[self.op]) {
            log::warn!("load balancer backends: {e} (left for the next reconcile)");
        }
        for (id, obj, spec) in self.updates {
            if st.load_balancers.contains_key(&id) {
                st.load_balancers.insert(id, LoadBalancerRec { obj, spec });
            }
        }
    }
}

/// One transaction from `before` to `after`, touching only what differs.
fn replace_op(before: Vec<SetElement>, after: Vec<SetElement>) -> Op {
    let old: BTreeSet<String> = before.iter().map(element_id).collect();
    let new: BTreeSet<String> = after.iter().map(element_id).collect();
    Op::ReplaceElements {
        delete: before
            .into_iter()
            .filter(|e| !new.contains(&element_id(e)))
            .collect(),
        add: after
            .into_iter()
            .filter(|e| !old.contains(&element_id(e)))
            .collect(),
    }
}

/// An element's identity including its data: one whose data changes is
/// deleted and added again.
fn element_id(e: &SetElement) -> String {
    format!("{} {}", e.set, e.text)
}

/// Parse and validate an LB document, refusing what hostnet cannot do.
fn parse(body: &[u8]) -> Result<(HostComputeLoadBalancer, LoadBalancerSpec), HcnError> {
    let wire: HostComputeLoadBalancer = crate::object::parse_object(body)?;
    let spec = hostnet_model::validate_load_balancer(&wire)?;
    check_supported(&spec)?;
    Ok((wire, spec))
}

/// The body of a modify: a ModifySettingRequest's `Settings` when the body
/// is one (it has `Settings` and a `RequestType` or `ResourceType`), else
/// the body itself.
fn unwrap_modify(body: &[u8]) -> Result<Vec<u8>, HcnError> {
    let v: Value = hostnet_model::from_json(body)?;
    let wrapped = v
        .get("Settings")
        .filter(|s| s.is_object())
        .filter(|_| v.get("RequestType").is_some() || v.get("ResourceType").is_some());
    match (wrapped, v.get("RequestType").and_then(Value::as_str)) {
        (Some(_), Some(t)) if !t.eq_ignore_ascii_case("Update") => Err(HcnError::new(
            ErrorCode::RequestUnsupported,
            format!(
                "load balancer modify RequestType {t:?} is not supported: send RequestType \"Update\" with the whole load balancer in Settings (or the document alone)"
            ),
        )),
        (Some(s), _) => Ok(serde_json::to_vec(s).expect("a JSON value serializes")),
        (None, _) => Ok(body.to_vec()),
    }
}

/// What the IPv4 data path does not do is refused by name.
fn check_supported(spec: &LoadBalancerSpec) -> Result<(), HcnError> {
    let unsupported = |m: String| HcnError::new(ErrorCode::RequestUnsupported, m);
    if spec.flags & LB_IPV6 != 0 {
        return Err(unsupported(
            "LoadBalancerFlags IPv6 (2) is not supported: hostnet's load balancers are IPv4 only; remove the flag and give IPv4 FrontendVIPs".into(),
        ));
    }
    if spec.flags & LB_DSR != 0 {
        return Err(unsupported(
            "LoadBalancerFlags EnableDirectServerReturn (1) is not supported yet (see docs/load-balancers.md): remove the flag".into(),
        ));
    }
    if spec.flags & !(LB_DSR | LB_IPV6) != 0 {
        return Err(HcnError::new(
            ErrorCode::InvalidPolicy,
            format!(
                "LoadBalancerFlags {:#x} has unknown bits: use 0, 1 (DSR) or 2 (IPv6)",
                spec.flags
            ),
        ));
    }
    let v6 = spec
        .frontend_vips
        .iter()
        .chain(spec.source_vip.iter())
        .find(|a| a.is_ipv6());
    if let Some(a) = v6 {
        return Err(unsupported(format!(
            "address {a} is IPv6: hostnet's load balancers are IPv4 only; give IPv4 FrontendVIPs and SourceVIP"
        )));
    }
    if spec.port_mappings.is_empty() {
        return Err(HcnError::new(
            ErrorCode::InvalidPolicy,
            "a load balancer needs PortMappings: give one {Protocol, InternalPort, ExternalPort}",
        ));
    }
    for (i, m) in spec.port_mappings.iter().enumerate() {
        if !matches!(m.protocol.number(), 6 | 17 | 132) {
            return Err(HcnError::new(
                ErrorCode::InvalidPolicy,
                format!(
                    "PortMappings[{i}].Protocol {} cannot be load balanced: give 6 (TCP), 17 (UDP) or 132 (SCTP)",
                    m.protocol.number()
                ),
            ));
        }
        if m.flags & PM_PRESERVE_DIP != 0 {
            return Err(unsupported(format!(
                "PortMappings[{i}].Flags EnablePreserveDip (8) is not supported yet (see docs/load-balancers.md): remove the flag"
            )));
        }
    }
    let mut seen = BTreeSet::new();
    if let Some(dup) = spec.endpoints.iter().find(|e| !seen.insert(**e)) {
        return Err(HcnError::new(
            ErrorCode::InvalidPolicy,
            format!(
                "HostComputeEndpoints lists {} twice: list each backend once",
                guid(dup)
            ),
        ));
    }
    Ok(())
}

/// References and conflicts, against the state (`except`: the LB being
/// replaced).
fn check(st: &State, spec: &LoadBalancerSpec, except: Option<&Uuid>) -> Result<(), HcnError> {
    if let Some(net) = spec.network {
        if !st.networks.contains_key(&net) {
            return Err(HcnError::new(
                ErrorCode::NetworkNotFound,
                format!(
                    "HostComputeNetwork {} does not exist: give an existing network or omit it",
                    guid(&net)
                ),
            ));
        }
    }
    let mut network = spec.network;
    for (i, ep) in spec.endpoints.iter().enumerate() {
        let Some(rec) = st.endpoints.get(ep) else {
            return Err(HcnError::new(
                ErrorCode::EndpointNotFound,
                format!(
                    "HostComputeEndpoints[{i}] {} is not an endpoint of this host (hostnet has no remote endpoints): create it first or remove it",
                    guid(ep)
                ),
            ));
        };
        match network {
            None => network = Some(rec.network),
            Some(n) if n != rec.network => {
                return Err(HcnError::new(
                    ErrorCode::InvalidEndpoint,
                    format!(
                        "HostComputeEndpoints[{i}] {} is on network {}, not on the load balancer's network {}: give backends of one network",
                        guid(ep),
                        guid(&rec.network),
                        guid(&n)
                    ),
                ));
            }
            Some(_) => {}
        }
        if !rec.plan.address.addr().is_ipv4() {
            return Err(HcnError::new(
                ErrorCode::InvalidEndpoint,
                format!(
                    "HostComputeEndpoints[{i}] {} has no IPv4 address: load balancers are IPv4 only",
                    guid(ep)
                ),
            ));
        }
    }
    let mine = frontend_keys(spec);
    let taken = mine.iter().find_map(|k| {
        let owner = st.load_balancers.owner(k)?;
        (Some(owner) != except).then_some((owner, k))
    });
    if let Some((id, k)) = taken {
        return Err(HcnError::new(
            ErrorCode::PortAlreadyExists,
            format!(
                "{} is already load balanced by {} {}: choose another VIP or ExternalPort, or modify that load balancer",
                describe_key(k),
                Kind::LoadBalancer.noun(),
                guid(id)
            ),
        ));
    }
    // A node port takes the port on every host address, as a published
    // port of an endpoint does.
    for k in mine.iter().filter(|k| k.0.is_none()) {
        let owner = st.endpoints.iter().find(|(_, e)| {
            e.mappings
                .iter()
                .any(|m| m.protocol.number() == k.1 && m.external_port == k.2)
        });
        if let Some((ep, _)) = owner {
            return Err(HcnError::new(
                ErrorCode::PortAlreadyExists,
                format!(
                    "{} is already a published port of endpoint {}: choose another ExternalPort",
                    describe_key(k),
                    guid(ep)
                ),
            ));
        }
    }
    Ok(())
}

/// The load balancer whose frontend takes the host port an endpoint's
/// `PortMapping` asks for (a node port takes it on every address), named
/// for the error.
pub(crate) fn port_owner(st: &State, m: &hostnet_model::domain::PortMapping) -> Option<String> {
    let (proto, port) = (m.protocol.number(), m.external_port);
    // A VIP is not a host address: only the same VIP clashes.
    let owner = st.load_balancers.owner(&(None, proto, port)).or_else(|| {
        m.vip
            .and_then(|v| st.load_balancers.owner(&(Some(v), proto, port)))
    })?;
    Some(format!("{} {}", Kind::LoadBalancer.noun(), guid(owner)))
}

/// (VIP or None for a node port, protocol, frontend port) of each frontend.
fn frontend_keys(spec: &LoadBalancerSpec) -> BTreeSet<FrontendKey> {
    let vips: Vec<Option<IpAddr>> = match spec.frontend_vips.is_empty() {
        true => vec![None],
        false => spec.frontend_vips.iter().copied().map(Some).collect(),
    };
    vips.iter()
        .flat_map(|v| {
            spec.port_mappings
                .iter()
                .map(move |m| (*v, m.protocol.number(), m.external_port))
        })
        .collect()
}

fn describe_key(k: &(Option<IpAddr>, u8, u16)) -> String {
    let proto = match k.1 {
        6 => "TCP".to_string(),
        17 => "UDP".to_string(),
        132 => "SCTP".to_string(),
        n => format!("protocol {n}"),
    };
    match k.0 {
        Some(vip) => format!("{proto} {vip}:{}", k.2),
        None => format!("{proto} node port {}", k.2),
    }
}

/// The frontends an LB programs: each VIP (or the host's addresses) times
/// each port mapping, with the backends' current addresses.
pub(crate) fn frontends(st: &State, spec: &LoadBalancerSpec) -> Vec<Frontend> {
    let backends: Vec<Ipv4Addr> = spec
        .endpoints
        .iter()
        .filter_map(|e| st.endpoints.get(e))
        .filter_map(|e| match e.plan.address.addr() {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
        .collect();
    let source_vip = match spec.source_vip {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    };
    let vips: Vec<Option<Ipv4Addr>> = match spec.frontend_vips.is_empty() {
        true => vec![None],
        false => spec
            .frontend_vips
            .iter()
            .filter_map(|v| match v {
                IpAddr::V4(a) => Some(Some(*a)),
                IpAddr::V6(_) => None,
            })
            .collect(),
    };
    let mut out = Vec::new();
    for vip in vips {
        for m in &spec.port_mappings {
            out.push(Frontend {
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

fn lb_elements(st: &State, spec: &LoadBalancerSpec) -> Vec<SetElement> {
    frontends(st, spec)
        .iter()
        .flat_map(hostnet_nft::lb::elements)
        .collect()
}

fn endpoint_list(spec: &LoadBalancerSpec) -> Value {
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
    obj
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostnet_model::domain::Protocol;

    fn spec(body: &str) -> Result<LoadBalancerSpec, HcnError> {
        parse(body.as_bytes()).map(|(_, s)| s)
    }

    #[test]
    fn unsupported_flags_are_refused_by_name() {
        let pm = r#""PortMappings":[{"Protocol":6,"InternalPort":80,"ExternalPort":80}]"#;
        for (flags, word) in [(2, "IPv6"), (1, "DirectServerReturn"), (4, "unknown")] {
            let e = spec(&format!(r#"{{{pm},"Flags":{flags}}}"#)).unwrap_err();
            assert!(e.to_string().contains(word), "{e}");
        }
        let e = spec(
            r#"{"PortMappings":[{"Protocol":6,"InternalPort":80,"ExternalPort":80,"Flags":8}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::RequestUnsupported);
        let e = spec(r#"{"FrontendVIPs":["fd00::1"],"PortMappings":[{"Protocol":6,"InternalPort":80,"ExternalPort":80}]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("IPv4 only"), "{e}");
        let e = spec(r#"{"PortMappings":[{"Protocol":1,"InternalPort":80,"ExternalPort":80}]}"#)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidPolicy);
        let e = spec(r#"{"HostComputeEndpoints":[]}"#).unwrap_err();
        assert!(e.to_string().contains("PortMappings"), "{e}");
    }

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

    #[test]
    fn modify_takes_the_document_or_a_wrapped_one() {
        let doc = br#"{"PortMappings":[]}"#;
        assert_eq!(unwrap_modify(doc).unwrap(), doc.to_vec());
        let wrapped = br#"{"RequestType":"Update","ResourceType":"LoadBalancer","Settings":{"FrontendVIPs":["10.96.0.1"]}}"#;
        assert_eq!(
            unwrap_modify(wrapped).unwrap(),
            br#"{"FrontendVIPs":["10.96.0.1"]}"#.to_vec()
        );
        let add = br#"{"RequestType":"Add","Settings":{}}"#;
        assert_eq!(
            unwrap_modify(add).unwrap_err().code,
            ErrorCode::RequestUnsupported
        );
    }

    #[test]
    fn a_change_touches_only_what_differs() {
        let e = |set: &'static str, text: &str| SetElement {
            family: hostnet_nft::Family::Inet,
            table: "hostnet",
            set,
            key: vec![],
            key_end: None,
            data: None,
            text: text.into(),
        };
        let op = replace_op(
            vec![e("a", "1"), e("b", "2")],
            vec![e("a", "1"), e("b", "3")],
        );
        assert_eq!(
            op,
            Op::ReplaceElements {
                delete: vec![e("b", "2")],
                add: vec![e("b", "3")]
            }
        );
    }

    #[test]
    fn protocol_numbers_are_the_models() {
        assert_eq!(Protocol::Other(132).number(), 132);
    }
}
