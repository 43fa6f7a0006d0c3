//! Namespaces: a Linux netns per HostComputeNamespace, and endpoint attach
//! and detach (schema §9).

use hostnet_dataplane::{apply, teardown, Op};
use std::path::PathBuf;

use hostnet_drivers::{bridge, names};
use hostnet_model::domain::{NamespaceChange, NamespaceKind};
use hostnet_model::wire::{HostComputeNamespace, ModifyRequest};
use hostnet_model::{ErrorCode, HcnError};
use hostnet_store::Txn;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::endpoint::remove_resource;
use crate::object::{bytes, ensure_unique_name, guid, internal, to_object, Kind};
use crate::service::{EndpointRec, NamespaceRec, Service, State, HOST_NETNS};

impl Service {
    pub(crate) fn create_namespace(&self, body: &[u8]) -> Result<Map<String, Value>, HcnError> {
        let wire: HostComputeNamespace = crate::object::parse_object(body)?;
        let spec = hostnet_model::validate_namespace(&wire)?;
        let mut st = self.lock();
        ensure_unique_name(Kind::Namespace, &spec.name, st.namespaces.named(&spec.name))?;
        let id = Uuid::new_v4();
        // The host's default namespace is the host's own: endpoints
        // attached to it are host endpoints (a host vNIC on the switch).
        let host = spec.kind == NamespaceKind::HostDefault;
        let other_host = || st.namespaces.iter().find(|(_, n)| n.host);
        if let Some((other, _)) = host.then(other_host).flatten() {
            return Err(HcnError::new(
                ErrorCode::AlreadyExists,
                format!(
                    "the host's default namespace exists already as {}: attach host endpoints to it",
                    guid(other)
                ),
            ));
        }
        let external = spec.netns_path.is_some();
        let path = match (host, &spec.netns_path) {
            (true, _) => PathBuf::from(HOST_NETNS),
            (false, Some(given)) => self.external_netns(given)?,
            (false, None) => self.config.netns_dir.join(guid(&id)),
        };
        let mut obj = to_object(&wire);
        obj.insert("ID".into(), json!(guid(&id)));
        obj.entry("Type").or_insert_with(|| json!("Host"));
        obj.insert("Resources".into(), json!([]));
        obj.insert("NetNsPath".into(), json!(path.display().to_string()));

        let create = match host || external {
            true => Vec::new(),
            false => vec![Op::CreateNetns { path: path.clone() }],
        };
        apply(self.dp.as_ref(), &create)
            .map_err(|e| internal("creating the network namespace", e))?;
        let mut txn = Txn::new();
        txn.put(Kind::Namespace.collection(), &guid(&id), bytes(&obj));
        if let Err(e) = self.commit(txn) {
            teardown(self.dp.as_ref(), &Op::reverse_plan(&create));
            return Err(e);
        }
        st.namespaces.insert(
            id,
            NamespaceRec {
                obj: obj.clone(),
                name: spec.name,
                path,
                endpoints: Vec::new(),
                host,
                external,
            },
        );
        Ok(obj)
    }

    /// Checks a runtime's namespace given as `NetNsPath`: a mounted network
    /// namespace outside hostnet's own directory (whose namespaces hostnet
    /// makes, and removes when stale).
    fn external_netns(&self, given: &std::path::Path) -> Result<PathBuf, HcnError> {
        if given.starts_with(&self.config.netns_dir) {
            return Err(HcnError::new(
                ErrorCode::InvalidJson,
                format!(
                    "NetNsPath {} is in hostnet's own namespace directory {}: leave NetNsPath out to get a new namespace",
                    given.display(),
                    self.config.netns_dir.display()
                ),
            ));
        }
        if !self.dp.netns_exists(given) {
            return Err(HcnError::new(
                ErrorCode::NotFound,
                format!(
                    "NetNsPath {} is not a network namespace: give a mounted one (/run/netns/NAME, /proc/PID/ns/net) or leave NetNsPath out",
                    given.display()
                ),
            ));
        }
        Ok(given.to_path_buf())
    }

    pub(crate) fn delete_namespace(&self, id: Uuid, given: &str) -> Result<(), HcnError> {
        let mut st = self.lock();
        let Some(ns) = st.namespaces.get(&id) else {
            return Err(Kind::Namespace.not_found(given));
        };
        if !ns.endpoints.is_empty() {
            let ids: Vec<String> = ns.endpoints.iter().map(guid).collect();
            return Err(HcnError::new(
                ErrorCode::EntityHasReferences,
                format!(
                    "namespace {} still holds endpoint(s) {}: detach or delete them first",
                    guid(&id),
                    ids.join(", ")
                ),
            ));
        }
        let mut txn = Txn::new();
        txn.delete(Kind::Namespace.collection(), &guid(&id));
        self.commit(txn)?;
        let ns = st.namespaces.remove(&id).expect("checked above");
        if ns.host || ns.external {
            return Ok(());
        }
        for e in teardown(self.dp.as_ref(), &[Op::DeleteNetns { path: ns.path }]) {
            log::warn!("namespace {}: {e} (left for the next reconcile)", guid(&id));
        }
        Ok(())
    }

    pub(crate) fn modify_namespace(
        &self,
        id: Uuid,
        given: &str,
        req: &ModifyRequest,
    ) -> Result<Map<String, Value>, HcnError> {
        match hostnet_model::parse_namespace_change(req)? {
            NamespaceChange::AddEndpoint(ep) => {
                let ifname = interface_name(&req.settings)?;
                self.attach(id, given, ep, ifname.as_deref())
            }
            NamespaceChange::RemoveEndpoint(ep) => self.detach(id, given, ep),
            NamespaceChange::AddContainer(_) | NamespaceChange::RemoveContainer(_) => {
                Err(HcnError::new(
                    ErrorCode::RequestUnsupported,
                    "container resources of namespaces are not supported: attach endpoints (ResourceType Endpoint)",
                ))
            }
        }
    }

    fn attach(
        &self,
        ns_id: Uuid,
        given: &str,
        ep_id: Uuid,
        ifname: Option<&str>,
    ) -> Result<Map<String, Value>, HcnError> {
        let mut st = self.lock();
        let scope = crate::load_balancer::SharedScope::Endpoint(&ep_id);
        let dsr = crate::load_balancer::DsrShared::of(&st, None, None, scope);
        let (ns, ep) = namespace_and_endpoint(&st, ns_id, given, ep_id)?;
        if crate::overlay::remote_peer(&st.networks[&ep.network], ep).is_some() {
            return Err(HcnError::new(
                ErrorCode::InvalidRemoteEndpointOperation,
                format!("endpoint {} is a remote endpoint (it lives on another host): attach a local endpoint instead", guid(&ep_id)),
            ));
        }
        // (Only overlay LBs have their SourceVIP held: no scan elsewhere.)
        let overlay = st.networks[&ep.network].overlay.is_some();
        if let Some(lb) = overlay
            .then(|| {
                crate::load_balancer::holding_source_vip(&st, ep.network, ep.plan.address.addr())
            })
            .flatten()
        {
            return Err(HcnError::new(
                ErrorCode::InvalidEndpoint,
                format!("endpoint {} has the SourceVIP of load balancer {} on its Overlay network, which this host's router holds for the replies: attach another endpoint, or delete the load balancer first", guid(&ep_id), guid(&lb)),
            ));
        }
        if ep.vm_nic {
            return Err(HcnError::new(
                ErrorCode::EndpointAlreadyAttached,
                format!(
                    "endpoint {} is a VM NIC: its tap {} is its port on the switch, for a VM to open; create an endpoint without VmNic to attach to a namespace",
                    guid(&ep_id),
                    names::host_veth(&ep_id)
                ),
            ));
        }
        // A host endpoint is the host's address on the network's bridge.
        let ifname = match (ifname, ns.host) {
            (_, true) => names::bridge(&ep.network),
            (Some(n), false) => n.to_string(),
            (None, false) => crate::endpoint::DEFAULT_IFNAME.to_string(),
        };
        let ifname = ifname.as_str();
        if let Some(current) = ep.namespace {
            return Err(HcnError::new(
                ErrorCode::EndpointNamespaceAlreadyExists,
                format!(
                    "endpoint {} is already attached to namespace {}: detach it first",
                    guid(&ep_id),
                    guid(&current)
                ),
            ));
        }
        let net = &st.networks[&ep.network];
        // Runtimes may register one netns once per interface (CNI): count
        // every endpoint already in that netns, so routes get their own metric.
        let nic_index: usize = st
            .namespaces
            .in_netns(&ns.path)
            .map(|n| n.endpoints.len())
            .sum();
        let plug = bridge::Plug {
            netns: &ns.path,
            ifname,
            nic_index: nic_index as u32,
            host: ns.host,
        };
        let ops = bridge::endpoint_attach(&net.plan, &ep.plan, plug);
        apply(self.dp.as_ref(), &ops).map_err(|e| {
            HcnError::new(
                ErrorCode::NamespaceAttachFailed,
                format!("attaching endpoint {} failed: {e}", guid(&ep_id)),
            )
        })?;

        let mut ep_obj = ep.obj.clone();
        ep_obj.insert("HostComputeNamespace".into(), json!(guid(&ns_id)));
        ep_obj.insert("InterfaceName".into(), json!(ifname));
        ep_obj.insert("State".into(), json!(2));
        let mut ns_obj = ns.obj.clone();
        if let Some(list) = ns_obj
            .entry("Resources")
            .or_insert_with(|| json!([]))
            .as_array_mut()
        {
            list.push(json!({ "Type": "Endpoint", "Data": { "Id": guid(&ep_id) } }));
        }
        let mut txn = Txn::new();
        txn.put(Kind::Endpoint.collection(), &guid(&ep_id), bytes(&ep_obj));
        txn.put(Kind::Namespace.collection(), &guid(&ns_id), bytes(&ns_obj));
        if let Err(e) = self.commit(txn) {
            teardown(
                self.dp.as_ref(),
                &bridge::endpoint_detach(&net.plan, &ep.plan, ns.host),
            );
            return Err(e);
        }
        let ep = st.endpoints.get_mut(&ep_id).expect("checked");
        ep.obj = ep_obj;
        ep.namespace = Some(ns_id);
        ep.ifname = ifname.to_string();
        let ns = st.namespaces.get_mut(&ns_id).expect("checked");
        ns.obj = ns_obj;
        ns.endpoints.push(ep_id);
        let out = ns.obj.clone();
        // Client ports and backends' VIPs of DSR load balancers follow.
        dsr.follow(&st, self.dp.as_ref(), scope);
        Ok(out)
    }

    fn detach(
        &self,
        ns_id: Uuid,
        given: &str,
        ep_id: Uuid,
    ) -> Result<Map<String, Value>, HcnError> {
        let mut st = self.lock();
        let scope = crate::load_balancer::SharedScope::Endpoint(&ep_id);
        let dsr = crate::load_balancer::DsrShared::of(&st, None, None, scope);
        let (ns, ep) = namespace_and_endpoint(&st, ns_id, given, ep_id)?;
        if ep.namespace != Some(ns_id) {
            return Err(HcnError::new(
                ErrorCode::EndpointNotAttached,
                format!(
                    "endpoint {} is not attached to namespace {}",
                    guid(&ep_id),
                    guid(&ns_id)
                ),
            ));
        }
        let mut ep_obj = ep.obj.clone();
        ep_obj.remove("HostComputeNamespace");
        ep_obj.remove("InterfaceName");
        ep_obj.insert("State".into(), json!(1));
        let mut ns_obj = ns.obj.clone();
        remove_resource(&mut ns_obj, &ep_id);
        let mut txn = Txn::new();
        txn.put(Kind::Endpoint.collection(), &guid(&ep_id), bytes(&ep_obj));
        txn.put(Kind::Namespace.collection(), &guid(&ns_id), bytes(&ns_obj));
        self.commit(txn)?;
        let net = &st.networks[&ep.network];
        for e in teardown(
            self.dp.as_ref(),
            &bridge::endpoint_detach(&net.plan, &ep.plan, ns.host),
        ) {
            log::warn!(
                "detaching endpoint {}: {e} (left for the next reconcile)",
                guid(&ep_id)
            );
        }
        let ep = st.endpoints.get_mut(&ep_id).expect("checked");
        ep.obj = ep_obj;
        ep.namespace = None;
        let ns = st.namespaces.get_mut(&ns_id).expect("checked");
        ns.obj = ns_obj;
        ns.endpoints.retain(|e| *e != ep_id);
        let out = ns.obj.clone();
        // Client ports and backends' VIPs of DSR load balancers follow.
        dsr.follow(&st, self.dp.as_ref(), scope);
        Ok(out)
    }
}

/// The namespace and endpoint a modify request names.
fn namespace_and_endpoint<'a>(
    st: &'a State,
    ns_id: Uuid,
    given: &str,
    ep_id: Uuid,
) -> Result<(&'a NamespaceRec, &'a EndpointRec), HcnError> {
    let ns = st
        .namespaces
        .get(&ns_id)
        .ok_or_else(|| Kind::Namespace.not_found(given))?;
    let ep = st.endpoints.get(&ep_id).ok_or_else(|| {
        HcnError::new(
            ErrorCode::EndpointNotFound,
            format!("endpoint {} does not exist: create it first", guid(&ep_id)),
        )
    })?;
    Ok((ns, ep))
}

/// The interface name inside the namespace: hostnet's `InterfaceName`
/// setting of the attach request (what CNI_IFNAME becomes), if given.
fn interface_name(settings: &Value) -> Result<Option<String>, HcnError> {
    let Some(v) = settings.get("InterfaceName") else {
        return Ok(None);
    };
    match v.as_str() {
        Some(s)
            if !s.is_empty()
                && s.len() <= 15
                && s.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':') =>
        {
            Ok(Some(s.to_string()))
        }
        _ => Err(HcnError::new(
            ErrorCode::InvalidJson,
            format!("InterfaceName {v} is not a Linux interface name: use 1-15 printable characters without '/' or ':'"),
        )),
    }
}
