//! Start-up: load the store, make the kernel match it, and create the
//! default network the first time.
//!
//! Crash safety rests on this: a command changes the kernel, then commits
//! the store, undoing the kernel change if the commit fails. A crash in
//! between leaves kernel state the store does not know, which is removed
//! here; whatever the store knows and the kernel lacks is rebuilt. Links
//! that already exist are left alone, and the tables change in one
//! transaction, so containers' connections survive a restart: tables of
//! this version (their skeleton's fingerprint) get only the elements that
//! differ from the store, keeping the rest and their counters; others are
//! replaced whole.

use std::collections::{HashMap, HashSet};

use hostnet_dataplane::{apply, teardown, Op, TableSync};
use hostnet_drivers::{bridge, names, transparent};
use hostnet_model::domain::NetworkKind;
use hostnet_model::wire::{HostComputeEndpoint, HostComputeNamespace, HostComputeNetwork};
use hostnet_model::{ErrorCode, HcnError};
use hostnet_nft::SetElement;
use hostnet_store::{Collection, Txn};
use ipnet::IpNet;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::adapter::Binding;
use crate::config::DEFAULT_NETWORK_NAME;
use crate::endpoint::{
    endpoint_elements, endpoint_policies, plan, sdn_routes, Addresses, DEFAULT_IFNAME,
};
use crate::network::{network_rec, network_up};
use crate::object::{guid, internal};
use crate::service::{EndpointRec, NamespaceRec, NetworkRec, Service};
use crate::subnet::{self, Resolved};

const INITIALIZED: &str = "initialized";

/// A stored endpoint's addresses (its `IpConfigurations`: the IPv4 one
/// first, on a dual-stack network also its IPv6 one), taken again from
/// the network's pools.
fn loaded_addresses(
    net: &mut NetworkRec,
    spec: &hostnet_model::domain::EndpointSpec,
    key: &str,
) -> Result<Addresses, HcnError> {
    let mut take = |address: std::net::IpAddr| {
        if crate::overlay::is_remote(spec.flags)
            && crate::overlay::route_beyond_subnets(net, address).is_some()
        {
            let own = IpNet::new(address, 32).expect("valid");
            return Ok::<_, HcnError>((own, None));
        }
        let pool = net
            .pools
            .iter_mut()
            .find(|p| p.contains(address))
            .ok_or_else(|| {
                HcnError::new(ErrorCode::InvalidIp, "its address is outside the network")
            })?;
        let holds_gateway = pool.gateway() == Some(address);
        if let (Err(e), false) = (pool.reserve(address), holds_gateway) {
            log::warn!("endpoint {key}: {e}");
        }
        let prefixed = IpNet::new(address, pool.prefix().prefix_len()).expect("valid");
        Ok::<_, HcnError>((prefixed, pool.gateway().filter(|_| !holds_gateway)))
    };
    let first = spec
        .ip_configs
        .first()
        .ok_or_else(|| HcnError::new(ErrorCode::InvalidEndpoint, "it has no address"))?;
    let (address, gateway) = take(first.address)?;
    let mut out = Addresses::single(address, gateway);
    if let Some(c) = spec.ip_configs.iter().skip(1).find(|c| c.address.is_ipv6()) {
        let (a, g) = take(c.address)?;
        (out.address6, out.gateway6) = (Some(a), g);
    }
    Ok(out)
}

impl Service {
    /// Read every stored object into memory.
    pub(crate) fn load(&self) -> Result<(), HcnError> {
        let mut st = self.lock();
        let adapters: HashMap<Uuid, Binding> = self.adapter_records()?.into_iter().collect();
        let leases = self.lease_records()?;
        for (key, raw) in self.list_store(Collection::Networks)? {
            match self.load_network(&raw, &adapters) {
                Ok((id, rec)) => {
                    st.networks.insert(id, rec);
                }
                Err(e) => log::error!("stored network {key} is unusable, skipped: {e}"),
            }
        }
        for (key, raw) in self.list_store(Collection::Endpoints)? {
            let loaded = load_endpoint(&raw).and_then(|(id, spec, obj)| {
                let net = st.networks.get_mut(&spec.network).ok_or_else(|| {
                    HcnError::new(ErrorCode::NetworkNotFound, "its network is gone")
                })?;
                let taken = if net.is_dhcp() {
                    let (address, gateway) = crate::dhcp::loaded_address(leases.get(&id), &spec)?;
                    Addresses::single(address, gateway)
                } else {
                    loaded_addresses(net, &spec, &key)?
                };
                let address = taken.address;
                let mac = spec
                    .mac
                    .map(|m| m.0)
                    .ok_or_else(|| HcnError::new(ErrorCode::InvalidEndpoint, "it has no MAC"))?;
                if let Err(e) = net.macs.reserve(mac) {
                    log::warn!("endpoint {key}: {e}");
                }
                let policies = endpoint_policies(&spec)?;
                let mappings = policies.mappings.clone();
                let sdn = sdn_routes(net, address, &policies)?;
                let ifname = obj
                    .get("InterfaceName")
                    .and_then(|v| v.as_str())
                    .unwrap_or(DEFAULT_IFNAME)
                    .to_string();
                Ok((
                    id,
                    EndpointRec {
                        name: spec.name.clone(),
                        network: spec.network,
                        plan: plan(&id, &taken, mac, &spec, &policies, sdn),
                        mappings,
                        acls: policies.acls.clone(),
                        tiers: policies.tiers.clone(),
                        namespace: spec.namespace,
                        ifname,
                        vm_nic: spec.vm_nic,
                        obj,
                    },
                ))
                .map(|(id, mut rec)| {
                    rec.plan.acl = crate::policy::walks_acls(&rec, net);
                    rec.plan.mtu = crate::overlay::endpoint_mtu(net, policies.encap_overhead);
                    if rec.vm_nic {
                        crate::endpoint::fill_vm_nic(&mut rec.obj, &id, net, &rec.plan);
                    }
                    (id, rec)
                })
            });
            match loaded {
                Ok((id, rec)) => {
                    st.endpoints.insert(id, rec);
                }
                Err(e) => log::error!("stored endpoint {key} is unusable, skipped: {e}"),
            }
        }
        for (key, raw) in self.list_store(Collection::Namespaces)? {
            let loaded = hostnet_model::from_json::<HostComputeNamespace>(&raw).and_then(|w| {
                // Stored, NetNsPath is output: where the namespace is.
                let w = HostComputeNamespace {
                    net_ns_path: None,
                    ..w
                };
                let spec = hostnet_model::validate_namespace(&w)?;
                let obj = crate::object::to_object(
                    &serde_json::from_slice::<Value>(&raw).unwrap_or_default(),
                );
                let id = id_of(&obj)?;
                Ok((id, spec, obj))
            });
            match loaded {
                Ok((id, spec, obj)) => {
                    let path = obj
                        .get("NetNsPath")
                        .and_then(|v| v.as_str())
                        .map(Into::into)
                        .unwrap_or_else(|| self.config.netns_dir.join(guid(&id)));
                    let endpoints = st
                        .endpoints
                        .iter()
                        .filter(|(_, e)| e.namespace == Some(id))
                        .map(|(eid, _)| *eid)
                        .collect();
                    let host = spec.kind == hostnet_model::domain::NamespaceKind::HostDefault;
                    // Not one hostnet made: a runtime's, given at create.
                    let external = !host && !path.starts_with(&self.config.netns_dir);
                    st.namespaces.insert(
                        id,
                        NamespaceRec {
                            obj,
                            name: spec.name,
                            path,
                            endpoints,
                            host,
                            external,
                        },
                    );
                }
                Err(e) => log::error!("stored namespace {key} is unusable, skipped: {e}"),
            }
        }
        for (key, raw) in self.list_store(Collection::Routes)? {
            if let Err(e) = self.load_route(&mut st, &raw) {
                log::error!("stored route {key} is unusable, skipped: {e}");
            }
        }
        self.hold_loaded_leases(&st, leases);
        self.load_load_balancers(&mut st)?;
        // An endpoint whose namespace is gone is detached.
        let known: HashSet<Uuid> = st.namespaces.keys().copied().collect();
        for ep in st.endpoints.values_mut() {
            if ep.namespace.is_some_and(|n| !known.contains(&n)) {
                ep.namespace = None;
            }
        }
        Ok(())
    }

    fn list_store(&self, c: Collection) -> Result<Vec<(String, Vec<u8>)>, HcnError> {
        self.store
            .list(c)
            .map_err(|e| internal("reading the store", e))
    }

    fn load_network(
        &self,
        raw: &[u8],
        adapters: &HashMap<Uuid, Binding>,
    ) -> Result<(Uuid, crate::service::NetworkRec), HcnError> {
        let wire: HostComputeNetwork = hostnet_model::from_json(raw)?;
        let spec = hostnet_model::validate_network(&wire)?;
        let obj: Map<String, Value> =
            serde_json::from_slice(raw).map_err(|e| internal("parsing", e))?;
        let id = id_of(&obj)?;
        let subnets: Vec<Resolved> = match crate::dhcp::is_dhcp(&spec) {
            true => Vec::new(),
            false => subnet::resolve(&spec, &[], &[])?,
        };
        let adapter = match spec.kind.binds_adapter() {
            true => Some(adapters.get(&id).cloned().ok_or_else(|| {
                HcnError::new(ErrorCode::InvalidNetwork, "its adapter record is missing")
            })?),
            false => None,
        };
        let mut rec = network_rec(id, obj, spec, &subnets, self.config.mtu, adapter);
        if rec.kind == NetworkKind::Overlay {
            let pa = rec.spec.policies.iter().find_map(|p| match p {
                hostnet_model::domain::NetworkPolicy::ProviderAddress(a) => Some(*a),
                _ => None,
            });
            // The underlay's MTU as it is now (1500 if the PA is gone: the
            // network stays, and says so when its packets cannot leave).
            let underlay_mtu = pa
                .and_then(|a| self.dp.address_owner(a).ok().flatten())
                .map_or(1500, |a| a.mtu);
            let o =
                crate::overlay::stored_plan(&rec, &subnets, underlay_mtu, &self.config.netns_dir)?;
            crate::network::set_overlay(&mut rec, o);
        }
        Ok((id, rec))
    }

    /// Make the kernel match the store.
    pub(crate) fn reconcile(&self) -> Result<(), HcnError> {
        let st = self.lock();
        let dp = self.dp.as_ref();

        let mut elements = Vec::new();
        for net in st.networks.values() {
            if net.kind == NetworkKind::Nat {
                elements.extend(hostnet_nft::nat_bridge(&names::bridge(&net.plan.id)));
            }
            if let Some(l2) = &net.plan.l2 {
                elements.extend(hostnet_nft::l2::uplink(&l2.uplink, l2.host_mac));
            }
            if let Some(o) = &net.overlay {
                elements.extend(hostnet_drivers::overlay::host_elements(o));
            }
        }
        for (id, ep) in &st.endpoints {
            let Some(net) = st.networks.get(&ep.network) else {
                continue;
            };
            elements.extend(endpoint_elements(net, &ep.plan));
            // An overlay's ACLs and ports are its router's
            // (crate::reconcile_overlay).
            match crate::policy::acl_elements(id, ep, net) {
                Ok(_) if net.plan.port_netns.is_some() => {}
                Ok(acl) => elements.extend(acl),
                Err(e) => log::error!("endpoint {}: {e}", guid(id)),
            }
            if let (Some(host), None) = (ep.plugged(&st.namespaces), &net.plan.port_netns) {
                elements.extend(bridge::port_elements(&net.plan, &ep.plan, host));
            }
        }
        elements.extend(crate::load_balancer::all_elements(&st));
        // Linux 6.1 hooks only devices that exist: the others (a veth
        // rebuilt below, a device gone while hostnetd was down) are hooked
        // once the links are back (`hostnet_nft::hook`).
        let (unhooked, elements) = absent_devices(dp, elements)?;
        let bridged = "ACLs do not judge traffic between endpoints of one bridge";
        match dp.bridge_netfilter() {
            Ok(true) => {}
            Ok(false) => log::warn!("bridge-nf-call-iptables or -ip6tables is 0: {bridged}"),
            Err(e) => log::warn!("{e}: {bridged}"),
        }
        // Tables this version made (a restart) keep what is right and get
        // only the difference; others are loaded whole (see
        // `Dataplane::sync_tables`).
        let started = std::time::Instant::now();
        match dp.sync_tables(&hostnet_nft::skeleton(), &elements) {
            Ok(TableSync::Loaded) => log::info!(
                "loaded the nftables tables with {} elements in {} ms",
                elements.len(),
                started.elapsed().as_millis()
            ),
            Ok(TableSync::Patched { deleted, added }) => log::info!(
                "kept the nftables tables: {deleted} elements deleted, {added} added, of {}, in {} ms",
                elements.len(),
                started.elapsed().as_millis()
            ),
            Err(e) => return Err(internal("loading the nftables tables", e)),
        }

        // Adapters bound for networks the store no longer has (a crash in
        // the middle of a create or delete) get their addresses back.
        for (id, b) in self.adapter_records()? {
            if !st.networks.contains_key(&id) {
                log::info!("giving adapter {} back its addresses", b.adapter_name());
                for e in teardown(
                    dp,
                    &transparent::network_down(&id, &b.uplink, b.vlan.as_ref(), b.team.as_ref()),
                ) {
                    log::warn!("{e}");
                }
                self.record_adapter(&id, None)?;
            }
        }

        let links: HashSet<String> = dp
            .links_with_prefix(names::LINK_PREFIX)
            .map_err(|e| internal("listing links", e))?
            .into_iter()
            .collect();
        let mut wanted = HashSet::new();
        // Overlay networks' routers, which hold their endpoints' ports.
        let mut routers = HashMap::new();
        for net in st.networks.values() {
            if let Some(o) = &net.overlay {
                routers.insert(net.plan.id, self.reconcile_overlay(&st, net, o, &links));
                wanted.extend(hostnet_drivers::overlay::host_links(o));
                continue;
            }
            let name = names::bridge(&net.plan.id);
            let up = network_up(net);
            // A VLAN's sub-interface is the network's own link: adopted if
            // it is there, made again if the kernel lost it.
            let sub = net.vlan.as_ref().and(net.adapter.as_ref()).map(|u| &u.name);
            let sub_lost = sub.is_some_and(|s| !links.contains(s));
            // So is a team's bond; its members are enslaved again if they
            // left it (enslaving skips those still in it).
            let bond = net.team.as_ref().and(net.adapter.as_ref()).map(|u| &u.name);
            let bond_lost = bond.is_some_and(|b| !links.contains(b));
            let ops: Vec<Op> = if !links.contains(&name) {
                log::info!("rebuilding bridge {name} of network {}", guid(&net.plan.id));
                up.into_iter()
                    .filter(|op| match op {
                        Op::AddElements(_) => false,
                        Op::CreateVlan { .. } => sub_lost,
                        Op::CreateBond { .. } => bond_lost,
                        _ => true,
                    })
                    .collect()
            } else {
                // The bridge is there: make sure forwarding is on (NAT) or
                // the adapter is still bound (Transparent); both idempotent.
                up.into_iter()
                    .filter(|op| match op {
                        Op::Sysctl { .. }
                        | Op::SetMaster { .. }
                        | Op::MoveAddresses { .. }
                        | Op::EnslaveToBond { .. } => true,
                        Op::CreateVlan { .. } => sub_lost,
                        Op::CreateBond { .. } => bond_lost,
                        _ => false,
                    })
                    .collect()
            };
            apply(dp, &ops).map_err(|e| internal("rebuilding a network", e))?;
            wanted.insert(name);
            wanted.extend(sub.cloned());
            wanted.extend(bond.cloned());
        }
        for ep in st.endpoints.values() {
            if let Some(net) = st.networks.get(&ep.network) {
                apply(dp, &crate::endpoint::host_forwarding(net, &ep.plan))
                    .map_err(|e| internal("turning forwarding on", e))?;
                // Remote peers (replacing entries); the router's elements
                // are in its synced tables already
                // (`crate::reconcile_overlay`).
                let mut up = crate::overlay::endpoint_up(net, ep);
                if let Some(o) = &net.overlay {
                    up.retain(|op| !crate::reconcile_overlay::adds_router_elements(o, op));
                }
                if let Err(e) = apply(dp, &up) {
                    log::error!("overlay endpoint of network {}: {e}", guid(&ep.network));
                }
            }
        }
        for (id, ns) in st.namespaces.iter().filter(|(_, n)| !n.host) {
            if ns.external {
                if !dp.netns_exists(&ns.path) {
                    // Its owner removed it (and the veths with it): the
                    // owner's delete will clean up the objects.
                    log::warn!(
                        "namespace {}: {} is gone; its endpoints have no link until they are deleted",
                        guid(id),
                        ns.path.display()
                    );
                }
                continue;
            }
            if !dp.netns_exists(&ns.path) {
                log::info!("rebuilding namespace {}", guid(id));
                apply(
                    dp,
                    &[Op::CreateNetns {
                        path: ns.path.clone(),
                    }],
                )
                .map_err(|e| internal("rebuilding a namespace", e))?;
            }
        }
        for (id, ep) in &st.endpoints {
            let ports = KernelPorts {
                links: &links,
                routers: &routers,
            };
            if ep.vm_nic {
                if let Some(net) = st.networks.get(&ep.network) {
                    let plug = || bridge::vm_nic_plug(&net.plan, &ep.plan);
                    wanted.extend(restore_port(dp, &ports, id, ep, net, plug));
                }
                continue;
            }
            let Some(ns) = ep.namespace.and_then(|n| st.namespaces.get(&n)) else {
                continue;
            };
            if ns.host {
                // A host endpoint is an address on the bridge.
                let net = &st.networks[&ep.network];
                let plug = bridge::Plug {
                    netns: &ns.path,
                    ifname: &ep.ifname,
                    nic_index: 0,
                    host: true,
                };
                if let Err(e) = apply(dp, &bridge::endpoint_attach(&net.plan, &ep.plan, plug)) {
                    log::error!("endpoint {}: {e}", guid(id));
                }
                continue;
            }
            if ns.external && !dp.netns_exists(&ns.path) {
                continue;
            }
            let net = &st.networks[&ep.network];
            let plug = || {
                let plug = bridge::Plug {
                    netns: &ns.path,
                    ifname: &ep.ifname,
                    nic_index: ns.endpoints.iter().position(|e| e == id).unwrap_or(0) as u32,
                    host: ns.host,
                };
                bridge::endpoint_attach(&net.plan, &ep.plan, plug)
            };
            wanted.extend(restore_port(dp, &ports, id, ep, net, plug));
        }
        self.hook_rebuilt_devices(unhooked)?;
        // DSR and PreserveDip VIPs' local routes in backends' namespaces,
        // now that namespaces are back (also replacing the loopback
        // addresses an earlier version made for them).
        let started = std::time::Instant::now();
        for e in teardown(dp, &crate::load_balancer::dsr_local_routes(&st)) {
            log::warn!("{e}");
        }
        log::info!(
            "VIPs' local routes in backends' namespaces programmed in {} ms",
            started.elapsed().as_millis()
        );
        self.reconcile_routes(&st);
        // What hostnet owns and no longer knows: veths first, then bridges.
        let mut stale: Vec<&String> = links.iter().filter(|l| !wanted.contains(*l)).collect();
        stale.sort_by_key(|l| !l.starts_with(names::VETH_PREFIX));
        for name in stale {
            log::info!("removing stale link {name}");
            if let Err(e) = dp.execute(&Op::DeleteLink { name: name.clone() }) {
                log::warn!("{e}");
            }
        }
        let known: HashSet<_> = st
            .namespaces
            .values()
            .map(|n| n.path.clone())
            .chain(
                st.networks
                    .values()
                    .filter_map(|n| n.overlay.as_ref().map(|o| o.router.clone())),
            )
            .collect();
        for path in dp.netns_in(&self.config.netns_dir) {
            if !known.contains(&path) {
                log::info!("removing stale namespace {}", path.display());
                if let Err(e) = dp.execute(&Op::DeleteNetns { path }) {
                    log::warn!("{e}");
                }
            }
        }
        Ok(())
    }

    /// Hooks the devices of `unhooked` that exist now (veths just
    /// rebuilt); the rest stay unhooked, and say so.
    fn hook_rebuilt_devices(&self, unhooked: Vec<SetElement>) -> Result<(), HcnError> {
        let (missing, back) = absent_devices(self.dp.as_ref(), unhooked)?;
        for e in &missing {
            log::warn!(
                "device {} is missing: not hooked on {} {}",
                hostnet_nft::hook::device(e),
                e.table,
                e.set
            );
        }
        if !back.is_empty() {
            apply(self.dp.as_ref(), &[Op::AddElements(back)])
                .map_err(|e| internal("hooking rebuilt devices", e))?;
        }
        Ok(())
    }

    /// At first start, create the NAT network `nat`.
    pub(crate) fn ensure_default_network(&self) -> Result<(), HcnError> {
        let initialized = self
            .store
            .get(Collection::Meta, INITIALIZED)
            .map_err(|e| internal("reading the store", e))?
            .is_some();
        if initialized {
            return Ok(());
        }
        if self.config.default_network {
            let mut body = json!({ "Name": DEFAULT_NETWORK_NAME, "Type": "NAT" });
            if let Some(prefix) = self.config.default_subnet {
                body["Ipams"] = json!([{ "Type": "Static", "Subnets": [{ "IpAddressPrefix": prefix.to_string() }] }]);
            }
            let raw = serde_json::to_vec(&body).expect("literal");
            let wire: HostComputeNetwork = hostnet_model::from_json(&raw)?;
            let spec = hostnet_model::validate_network(&wire)?;
            let mut st = self.lock();
            if !st.networks.values().any(|n| n.name == DEFAULT_NETWORK_NAME) {
                let obj = self.create_network_locked(&mut st, &wire, spec, None)?;
                log::info!(
                    "created the default NAT network {DEFAULT_NETWORK_NAME} ({})",
                    obj.get("ID").and_then(|v| v.as_str()).unwrap_or_default()
                );
            }
        }
        let mut txn = Txn::new();
        txn.put(Collection::Meta, INITIALIZED, b"1".to_vec());
        self.commit(txn)
    }
}

/// Whether `op` adds set elements (or chain devices), in whichever namespace.
fn adds_elements(op: &Op) -> bool {
    match op {
        Op::InNetns { op, .. } => adds_elements(op),
        op => matches!(op, Op::AddElements(_)),
    }
}

/// The endpoint ports the kernel has: the host's links, and each overlay
/// router's (which also says whether its bridges were rebuilt).
struct KernelPorts<'a> {
    links: &'a HashSet<String>,
    routers: &'a HashMap<Uuid, crate::reconcile_overlay::Router>,
}

/// Brings an endpoint's port (a veth, or a VM NIC's tap) back: rebuilt
/// with `plug`'s ops if the kernel lost it (less their elements, which are
/// in the tables loaded already; a VM that had its tap open lost its link
/// and must be restarted), or plugged into its rebuilt bridge. Returns the
/// port's name when it is a link of the host namespace (to keep).
fn restore_port(
    dp: &dyn hostnet_dataplane::Dataplane,
    ports: &KernelPorts<'_>,
    id: &Uuid,
    ep: &EndpointRec,
    net: &NetworkRec,
    plug: impl FnOnce() -> Vec<Op>,
) -> Option<String> {
    let name = names::host_veth(id);
    let router = ports.routers.get(&ep.network);
    let (present, replug) = match router {
        Some(r) => (r.links.contains(&name), r.replug),
        None => (ports.links.contains(&name), false),
    };
    if !present {
        let what = if ep.vm_nic {
            "tap of VM NIC"
        } else {
            "veth of"
        };
        log::info!("rebuilding the {what} endpoint {}", guid(id));
        let ops: Vec<Op> = plug().into_iter().filter(|op| !adds_elements(op)).collect();
        if let Err(e) = apply(dp, &ops) {
            log::error!("endpoint {}: {e}", guid(id));
        }
    } else if replug {
        replug_port(dp, id, ep, net);
    }
    router.is_none().then_some(name)
}

/// Enslaves an endpoint's port (veth or tap) that survived to its
/// network's rebuilt bridge.
fn replug_port(
    dp: &dyn hostnet_dataplane::Dataplane,
    id: &Uuid,
    ep: &EndpointRec,
    net: &NetworkRec,
) {
    let bridge = net.plan.bridge_for(ep.plan.address.addr());
    log::info!("plugging endpoint {} into the rebuilt {bridge}", guid(id));
    let plug = Op::SetMaster {
        link: names::host_veth(id),
        master: Some(bridge),
        previous: None,
    };
    let plug = match &net.plan.port_netns {
        Some(netns) => Op::InNetns {
            netns: netns.clone(),
            op: Box::new(plug),
        },
        None => plug,
    };
    if let Err(e) = apply(dp, &[plug]) {
        log::error!("endpoint {}: {e}", guid(id));
    }
}

fn load_endpoint(
    raw: &[u8],
) -> Result<
    (
        Uuid,
        hostnet_model::domain::EndpointSpec,
        Map<String, Value>,
    ),
    HcnError,
> {
    let wire: HostComputeEndpoint = hostnet_model::from_json(raw)?;
    let spec = hostnet_model::validate_endpoint(&wire)?;
    let obj: Map<String, Value> =
        serde_json::from_slice(raw).map_err(|e| internal("parsing", e))?;
    Ok((id_of(&obj)?, spec, obj))
}

fn id_of(obj: &Map<String, Value>) -> Result<Uuid, HcnError> {
    let id = obj.get("ID").and_then(|v| v.as_str()).unwrap_or_default();
    hostnet_model::parse_guid(id)
}

/// Splits `elements` into the device elements whose device does not exist
/// (first) and everything else.
fn absent_devices(
    dp: &dyn hostnet_dataplane::Dataplane,
    elements: Vec<SetElement>,
) -> Result<(Vec<SetElement>, Vec<SetElement>), HcnError> {
    if !elements.iter().any(|e| e.device_hook().is_some()) {
        return Ok((Vec::new(), elements));
    }
    let links: HashSet<String> = dp
        .links_with_prefix("")
        .map_err(|e| internal("listing links", e))?
        .into_iter()
        .collect();
    Ok(elements
        .into_iter()
        .partition(|e| e.device_hook().is_some() && !links.contains(&hostnet_nft::hook::device(e))))
}
