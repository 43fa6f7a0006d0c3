//! Networks: create, modify, delete.

use hostnet_dataplane::{apply, teardown, Op};
use hostnet_drivers::{bridge, l2bridge, names, nat, transparent};
use hostnet_ipam::{MacPool, SubnetPool};
use hostnet_model::domain::{NetworkKind, NetworkPolicy, NetworkSpec};
use hostnet_model::wire::{HostComputeNetwork, ModifyRequest};
use hostnet_model::{ErrorCode, HcnError};
use hostnet_store::Txn;
use ipnet::IpNet;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::object::{bytes, ensure_unique_name, guid, internal, to_object, Kind};
use crate::service::{NetworkRec, Service, State};
use crate::subnet::{self, Resolved};

impl Service {
    pub(crate) fn create_network(&self, body: &[u8]) -> Result<Map<String, Value>, HcnError> {
        let wire: HostComputeNetwork = crate::object::parse_object(body)?;
        let spec = hostnet_model::validate_network(&wire)?;
        let mut st = self.lock();
        self.create_network_locked(&mut st, &wire, spec, None)
    }

    /// Creates a network; `shared_id` is the ID of a cluster-wide overlay
    /// network another host defined (crate::cluster), which this host
    /// instantiates under the same ID, without claiming it again.
    pub(crate) fn create_network_locked(
        &self,
        st: &mut State,
        wire: &HostComputeNetwork,
        spec: NetworkSpec,
        shared_id: Option<Uuid>,
    ) -> Result<Map<String, Value>, HcnError> {
        check_supported(&spec)?;
        let vlan = crate::vlan::of_network(&spec)?;
        crate::network_change::check_acl_policies(&spec.policies, &spec.name)?;
        ensure_unique_name(
            Kind::Network,
            &spec.name,
            st.networks.iter().map(|(id, n)| (id, n.name.as_str())),
        )?;
        let id = shared_id.unwrap_or_else(|| new_network_id(st));
        let binding = match spec.kind.binds_adapter() {
            true => Some(self.free_adapter(st, &id, &spec, vlan)?),
            false => None,
        };
        let overlay = spec.kind == NetworkKind::Overlay;
        if overlay {
            crate::overlay::check_network(st, &spec)?;
        }
        // An overlay network's subnets live in its own router namespace:
        // they may overlap another network's.
        let taken: Vec<IpNet> = st
            .networks
            .values()
            .filter(|_| !overlay)
            .flat_map(|n| n.pools.iter().map(|p| p.prefix()))
            .collect();
        let dhcp = crate::dhcp::is_dhcp(&spec);
        let host_routes = if spec.subnets.is_empty() && !dhcp {
            self.dp
                .routed_prefixes()
                .map_err(|e| internal("reading host routes", e))?
        } else {
            Vec::new()
        };
        let subnets = match dhcp {
            true => Vec::new(),
            false => subnet::resolve(&spec, &taken, &host_routes)?,
        };
        if let Some(b) = &binding {
            crate::adapter::check_subnets_fit(&b.uplink, &subnets)?;
        }
        let mut obj = to_object(wire);
        fill_network(&mut obj, &id, &subnets, spec.kind);
        if let Some((b, t)) = binding.as_ref().and_then(|b| Some((b, b.team.as_ref()?))) {
            obj.insert("Team".into(), crate::adapter::team_json(t, &b.uplink.name));
        }
        if dhcp {
            obj.insert("Ipams".into(), json!([{ "Type": "Dhcp" }]));
        }
        let identity = match overlay {
            true => Some(crate::overlay::host_identity(self.dp.as_ref(), &spec)?),
            false => None,
        };
        crate::overlay::remote_routes(&spec.policies)?;
        let mut rec = network_rec(id, obj, spec, &subnets, self.config.mtu, binding);
        if let Some((identity, underlay_mtu)) = identity {
            let transit = crate::overlay::free_transit(st)?;
            let o = crate::overlay::plan(
                id,
                &rec.spec,
                &subnets,
                identity,
                underlay_mtu,
                transit,
                &self.config.netns_dir,
            );
            crate::overlay::check_routes(&o, &crate::overlay::remote_routes(&rec.spec.policies)?)?;
            crate::overlay::fill_network(&mut rec.obj, &o);
            set_overlay(&mut rec, o);
        }

        // An adapter's binding is recorded before the kernel changes, so a
        // crash can never lose the host's addresses (see `adapter`).
        if let Some(b) = rec.binding() {
            self.record_adapter(&id, Some(&b))?;
        }
        let bound = rec.adapter.is_some();
        let forget_adapter = |svc: &Service| {
            if bound {
                let _ = svc.record_adapter(&id, None);
            }
        };
        if let Err(e) = apply(self.dp.as_ref(), &network_up(&rec)) {
            forget_adapter(self);
            return Err(kernel_error("creating the network's bridge", e));
        }
        if rec.kind == NetworkKind::L2Tunnel {
            if let Err(e) = self.find_tunnel_gateway(&mut rec) {
                teardown(self.dp.as_ref(), &network_down(&rec));
                forget_adapter(self);
                return Err(e);
            }
        }
        let mut txn = Txn::new();
        txn.put(Kind::Network.collection(), &guid(&id), bytes(&rec.obj));
        if shared_id.is_none() && overlay && self.shares_overlays() {
            crate::cluster::stage_shared_network(&mut txn, &rec);
        }
        if let Err(e) = self.store.commit(txn) {
            teardown(self.dp.as_ref(), &network_down(&rec));
            forget_adapter(self);
            return Err(crate::cluster::network_commit_error(self.store.as_ref(), e));
        }
        let out = rec.obj.clone();
        st.networks.insert(id, rec);
        Ok(out)
    }

    pub(crate) fn delete_network(&self, id: Uuid, given: &str) -> Result<(), HcnError> {
        let mut st = self.lock();
        if !st.networks.contains_key(&id) {
            return Err(Kind::Network.not_found(given));
        }
        let users: Vec<String> = st
            .endpoints
            .iter()
            .filter(|(_, e)| e.network == id)
            .map(|(eid, _)| guid(eid))
            .collect();
        if !users.is_empty() {
            return Err(HcnError::new(
                ErrorCode::EntityHasReferences,
                format!(
                    "network {} still has {} endpoint(s) ({}): delete them first",
                    guid(&id),
                    users.len(),
                    users.join(", ")
                ),
            ));
        }
        crate::cluster::check_no_remote_users(&st, &id)?;
        let overlay = st.networks[&id].overlay.is_some();
        if let Some(lb) = overlay
            .then(|| crate::load_balancer::pinned_to(&st, id))
            .flatten()
        {
            return Err(HcnError::new(
                ErrorCode::EntityHasReferences,
                format!(
                    "network {} still has load balancer {} (programmed in its router): delete it first",
                    guid(&id),
                    guid(&lb)
                ),
            ));
        }
        let rec = &st.networks[&id];
        if rec.adapter.is_some() {
            // Give the host its addresses back first; if that fails the
            // network stays, whole, and the error says why.
            apply(self.dp.as_ref(), &network_down(rec))
                .map_err(|e| internal("giving the adapter back its addresses", e))?;
        }
        let mut txn = Txn::new();
        txn.delete(Kind::Network.collection(), &guid(&id));
        if rec.adapter.is_some() {
            txn.delete(hostnet_store::Collection::Meta, &crate::adapter::key(&id));
        }
        if rec.overlay.is_some() && self.shares_overlays() {
            crate::cluster::stage_unshared_network(&mut txn, rec);
        }
        self.commit(txn)?;
        if rec.adapter.is_none() {
            for e in teardown(self.dp.as_ref(), &network_down(rec)) {
                log::warn!("network {}: {e} (left for the next reconcile)", guid(&id));
            }
        }
        st.networks.remove(&id);
        Ok(())
    }

    pub(crate) fn modify_network(
        &self,
        id: Uuid,
        given: &str,
        req: &ModifyRequest,
    ) -> Result<Map<String, Value>, HcnError> {
        let change = hostnet_model::parse_network_change(req)?;
        let mut st = self.lock();
        let rec = st
            .networks
            .get_mut(&id)
            .ok_or_else(|| Kind::Network.not_found(given))?;
        match change {
            hostnet_model::domain::NetworkChange::Dns(dns) => {
                let mut obj = rec.obj.clone();
                obj.insert("Dns".into(), req.settings.clone());
                self.save(Kind::Network, &id, &obj)?;
                rec.obj = obj;
                rec.spec.dns = dns;
                Ok(rec.obj.clone())
            }
            hostnet_model::domain::NetworkChange::Policies { request, policies } => {
                self.change_network_policies(&mut st, id, request, policies)
            }
            hostnet_model::domain::NetworkChange::Subnets { .. } => Err(HcnError::new(
                ErrorCode::RequestUnsupported,
                "changing a network's subnets is not supported yet: create a new network",
            )),
        }
    }
}

/// Give a network record its overlay plan: endpoints join their subnet's
/// bridge in the router namespace, with the overlay's MTU.
pub(crate) fn set_overlay(rec: &mut NetworkRec, o: hostnet_drivers::overlay::Overlay) {
    rec.plan.mtu = o.mtu;
    rec.plan.port_netns = Some(o.router.clone());
    rec.plan.gateways.clear();
    rec.plan.subnet_bridges = o
        .segments
        .iter()
        .map(|s| {
            (
                IpNet::V4(s.gateway.trunc()),
                hostnet_drivers::overlay::vni_bridge(s.vni),
            )
        })
        .collect();
    rec.overlay = Some(o);
}

/// What the drivers implement; everything else is refused by name.
fn check_supported(spec: &NetworkSpec) -> Result<(), HcnError> {
    let kind = spec.kind;
    let overlay = kind == NetworkKind::Overlay;
    if !matches!(kind, NetworkKind::Nat) && !kind.binds_adapter() && !overlay {
        return Err(HcnError::new(
            ErrorCode::RequestUnsupported,
            format!("network type {kind} is not supported yet: NAT, Transparent, L2Bridge, L2Tunnel and Overlay networks can be created"),
        ));
    }
    let l2 = matches!(kind, NetworkKind::L2Bridge | NetworkKind::L2Tunnel);
    // HostRoute asks that the host and its endpoints reach each other; the
    // host's stack is a port of every bridge here, so that always holds.
    let allowed = |p: &NetworkPolicy| match p {
        NetworkPolicy::NetAdapterName { .. } => kind.binds_adapter(),
        NetworkPolicy::HostRoute => true,
        // The gateway DNS proxy: on NAT networks unless Enable is false,
        // on Overlay networks when Enable is true (crate::dns).
        NetworkPolicy::AutomaticDns(_) => kind == NetworkKind::Nat || overlay,
        // Merged into every endpoint's ACLs (crate::network_change).
        NetworkPolicy::NetworkAcl(_) | NetworkPolicy::SetPolicy { .. } => true,
        // The overlay's own (crate::overlay).
        NetworkPolicy::ProviderAddress(_)
        | NetworkPolicy::DrMacAddress(_)
        | NetworkPolicy::VxlanPort(_)
        | NetworkPolicy::RemoteSubnetRoute { .. } => overlay,
        _ => false,
    };
    if let Some(p) = spec.policies.iter().find(|p| !allowed(p)) {
        return Err(HcnError::new(
            ErrorCode::InvalidPolicyType,
            format!(
                "network policy {} is not supported on {kind} networks yet: remove it",
                p.type_name()
            ),
        ));
    }
    // VLANs are crate::vlan's to judge; a VSID is an overlay's VNI.
    let foreign_vsid = |s: &&hostnet_model::domain::SubnetSpec| {
        !overlay
            && s.policies
                .iter()
                .any(|p| matches!(p, hostnet_model::domain::SubnetPolicy::Vsid(_)))
    };
    if let Some(s) = spec.subnets.iter().find(foreign_vsid) {
        return Err(HcnError::new(
            ErrorCode::InvalidPolicyType,
            format!(
                "VSID subnet policies are not supported on {kind} networks yet (a VSID is an Overlay network's VXLAN identifier; a VLAN is the VLAN policy): remove it from subnet {}",
                s.prefix
            ),
        ));
    }
    if l2 && spec.subnets.is_empty() {
        return Err(HcnError::new(
            ErrorCode::InvalidSubnet,
            format!("{kind} networks need their subnets in Ipams (the host's subnet or a custom one, with its gateway as the default route's NextHop)"),
        ));
    }
    if spec.flags.0 != 0 {
        return Err(HcnError::new(
            ErrorCode::RequestUnsupported,
            format!(
                "network Flags {} are not supported yet: send Flags 0",
                spec.flags.0
            ),
        ));
    }
    Ok(())
}

/// The kernel plan that builds a network.
pub(crate) fn network_up(rec: &NetworkRec) -> Vec<Op> {
    if let Some(o) = &rec.overlay {
        let mut ops = hostnet_drivers::overlay::network_up(o);
        for r in crate::overlay::remote_routes(&rec.spec.policies).unwrap_or_default() {
            ops.extend(hostnet_drivers::overlay::remote_route_up(o, &r));
        }
        return ops;
    }
    let (vlan, team) = (rec.vlan.as_ref(), rec.team.as_ref());
    match (&rec.adapter, rec.plan.l2.is_some()) {
        (Some(a), true) => l2bridge::network_up(&rec.plan.id, a, vlan, team),
        (Some(a), false) => transparent::network_up(&rec.plan.id, a, vlan, team),
        (None, _) => nat::network_up(&rec.plan),
    }
}

/// The kernel plan that removes a network.
pub(crate) fn network_down(rec: &NetworkRec) -> Vec<Op> {
    if let Some(o) = &rec.overlay {
        return hostnet_drivers::overlay::network_down(o);
    }
    let (vlan, team) = (rec.vlan.as_ref(), rec.team.as_ref());
    match (&rec.adapter, rec.plan.l2.is_some()) {
        (Some(a), true) => l2bridge::network_down(&rec.plan.id, a, vlan, team),
        (Some(a), false) => transparent::network_down(&rec.plan.id, a, vlan, team),
        (None, _) => nat::network_down(&rec.plan.id),
    }
}

/// A failed kernel plan as the client sees it: a kernel that cannot do
/// what the network needs (no 802.1q, say) is the host's limit, not a
/// fault; anything else is unexpected.
fn kernel_error(what: &str, e: hostnet_dataplane::DataplaneError) -> HcnError {
    match e.unsupported {
        true => HcnError::new(
            ErrorCode::RequestUnsupported,
            format!("this host's kernel cannot make this network: {e}"),
        ),
        false => internal(what, e),
    }
}

/// Hostnet's key in a network object for the L2Tunnel gateway's MAC,
/// kept so a restarted daemon steers frames exactly as before.
pub(crate) const GATEWAY_MAC_KEY: &str = "GatewayMacAddress";

impl Service {
    /// Learn the MAC of an L2Tunnel network's gateway (the first subnet's),
    /// where every frame of its endpoints goes.
    fn find_tunnel_gateway(&self, rec: &mut NetworkRec) -> Result<(), HcnError> {
        let gateway = rec.pools.iter().find_map(|p| match p.gateway() {
            Some(std::net::IpAddr::V4(g)) => Some(g),
            _ => None,
        });
        let Some(gateway) = gateway else {
            return Err(HcnError::new(
                ErrorCode::InvalidSubnet,
                "an L2Tunnel network needs a gateway: give its subnet a default route (NextHop)",
            ));
        };
        let bridge = names::bridge(&rec.plan.id);
        let mac = self
            .dp
            .neighbour_mac(&bridge, gateway)
            .map_err(|e| internal("asking for the gateway's MAC", e))?
            .ok_or_else(|| {
                HcnError::new(
                    ErrorCode::InvalidNetwork,
                    format!("the gateway {gateway} did not answer ARP on the adapter: an L2Tunnel network sends everything through it, so it must be reachable; check the subnet's NextHop"),
                )
            })?;
        if let Some(l2) = rec.plan.l2.as_mut() {
            l2.gateway_mac = Some(mac);
        }
        rec.obj.insert(
            GATEWAY_MAC_KEY.into(),
            json!(hostnet_model::domain::Mac(mac).to_string()),
        );
        Ok(())
    }
}

/// A fresh network ID whose bridge name no other network has.
fn new_network_id(st: &State) -> Uuid {
    loop {
        let id = Uuid::new_v4();
        let name = names::bridge(&id);
        if !st.networks.keys().any(|k| names::bridge(k) == name) {
            return id;
        }
    }
}

/// The service-filled fields of a network: ID, canonical type, and its
/// subnets with their default routes.
fn fill_network(obj: &mut Map<String, Value>, id: &Uuid, subnets: &[Resolved], kind: NetworkKind) {
    obj.insert("ID".into(), json!(guid(id)));
    obj.insert("Type".into(), json!(kind.to_string()));
    let given = obj
        .get("Ipams")
        .and_then(|v| v.as_array())
        .is_some_and(|a| !a.is_empty());
    if !given {
        let subs: Vec<Value> = subnets
            .iter()
            .map(|s| json!({ "IpAddressPrefix": s.prefix.to_string() }))
            .collect();
        obj.insert(
            "Ipams".into(),
            json!([{ "Type": "Static", "Subnets": subs }]),
        );
    }
    // Every subnet states its gateway as a default route (what clients read).
    let mut next = subnets.iter();
    if let Some(ipams) = obj.get_mut("Ipams").and_then(|v| v.as_array_mut()) {
        for ipam in ipams {
            let Some(subs) = ipam.get_mut("Subnets").and_then(|v| v.as_array_mut()) else {
                continue;
            };
            for sub in subs {
                let Some(r) = next.next() else { return };
                let routes = sub
                    .as_object_mut()
                    .expect("subnets are objects")
                    .entry("Routes")
                    .or_insert_with(|| json!([]));
                let default = default_route_of(r.gateway);
                let has_default = routes.as_array().is_some_and(|a| {
                    a.iter().any(|x| {
                        x.get("DestinationPrefix").and_then(|d| d.as_str()) == Some(default)
                    })
                });
                if !has_default {
                    if let Some(a) = routes.as_array_mut() {
                        a.push(json!({ "NextHop": r.gateway.to_string(), "DestinationPrefix": default }));
                    }
                }
            }
        }
    }
}

/// The default route's `DestinationPrefix` for a gateway's family.
pub(crate) fn default_route_of(gateway: std::net::IpAddr) -> &'static str {
    match gateway {
        std::net::IpAddr::V4(_) => "0.0.0.0/0",
        std::net::IpAddr::V6(_) => "::/0",
    }
}

/// The in-memory record of a network whose subnets are resolved. A
/// Transparent network's pools never hand out the host's own addresses, and
/// its bridge and ports take the adapter's MTU.
pub(crate) fn network_rec(
    id: Uuid,
    obj: Map<String, Value>,
    spec: NetworkSpec,
    subnets: &[Resolved],
    mtu: u32,
    binding: Option<crate::adapter::Binding>,
) -> NetworkRec {
    let (adapter, vlan, team) = match binding {
        Some(b) => (Some(b.uplink), b.vlan, b.team),
        None => (None, None, None),
    };
    let gateways = match adapter {
        Some(_) => Vec::new(),
        None => subnets
            .iter()
            .map(|s| IpNet::new(s.gateway, s.prefix.prefix_len()).expect("prefix length is valid"))
            .collect(),
    };
    let l2 = match (spec.kind, &adapter) {
        (NetworkKind::L2Bridge | NetworkKind::L2Tunnel, Some(a)) => Some(bridge::L2 {
            uplink: a.name.clone(),
            host_mac: a.mac,
            gateway_mac: obj
                .get(GATEWAY_MAC_KEY)
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse::<hostnet_model::domain::Mac>().ok())
                .map(|m| m.0),
        }),
        _ => None,
    };
    let plan = bridge::Network {
        id,
        gateways,
        mtu: adapter.as_ref().map_or(mtu, |a| a.mtu),
        l2,
        nat: spec.kind == NetworkKind::Nat,
        bound_mac: adapter.as_ref().map(|a| a.mac),
        subnet_bridges: Vec::new(),
        port_netns: None,
    };
    let mut pools: Vec<SubnetPool> = subnets
        .iter()
        .map(|s| SubnetPool::new(s.prefix, Some(s.gateway)))
        .collect();
    for own in adapter.iter().flat_map(|a| &a.addresses) {
        if let Some(pool) = pools.iter_mut().find(|p| p.contains(own.addr())) {
            let _ = pool.reserve(own.addr());
        }
    }
    let macs = MacPool::new(spec.mac_pool.map(|r| (r.start.0, r.end.0)));
    NetworkRec {
        name: spec.name.clone(),
        kind: spec.kind,
        obj,
        spec,
        adapter,
        vlan,
        team,
        plan,
        overlay: None,
        pools,
        macs,
    }
}
