//! Endpoints: create (address, MAC, published ports), modify, delete.

use std::net::IpAddr;

use hostnet_dataplane::{apply, teardown, Op, RouteSpec};
use hostnet_drivers::{bridge, l2bridge, names, nat, transparent};
use hostnet_ipam::IpamError;
use hostnet_model::domain::{
    EndpointPolicy, EndpointSpec, IpConfigSpec, Mac, NatFlags, NetworkKind, OutboundNat,
    PortMapping, Protocol,
};
use hostnet_model::wire::{HostComputeEndpoint, ModifyRequest};
use hostnet_model::{ErrorCode, HcnError};
use hostnet_nft::onat::OnatPolicy;
use hostnet_nft::{L4Proto, SetElement};
use hostnet_store::{Collection, StoreError, Txn};
use ipnet::{IpNet, Ipv4Net};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::object::{bytes, ensure_unique_name, guid, internal, to_object, Kind};
use crate::service::{EndpointRec, NetworkRec, Service, State};

/// Interface name of an endpoint inside its namespace, unless named.
pub(crate) const DEFAULT_IFNAME: &str = "eth0";

/// How many addresses a create tries when hosts sharing a store (cluster
/// mode) claimed the ones it picked first.
const CLAIM_ATTEMPTS: usize = 16;

/// The store key of an address claim: one holder per address and network,
/// across every host sharing the store.
pub(crate) fn claim_key(network: &Uuid, address: IpAddr) -> String {
    format!("{}/{address}", guid(network))
}

impl Service {
    pub(crate) fn create_endpoint(&self, body: &[u8]) -> Result<Map<String, Value>, HcnError> {
        for _ in 0..CLAIM_ATTEMPTS {
            if let Some(obj) = self.try_create_endpoint(body)? {
                return Ok(obj);
            }
        }
        Err(HcnError::new(
            ErrorCode::PoolExhausted,
            format!("{CLAIM_ATTEMPTS} addresses in a row were claimed by other hosts at the same time: retry the create"),
        ))
    }

    /// One attempt; None when the address it picked from the pool turned out
    /// to be claimed by another host (it stays reserved here, so the next
    /// attempt picks another).
    fn try_create_endpoint(&self, body: &[u8]) -> Result<Option<Map<String, Value>>, HcnError> {
        let wire: HostComputeEndpoint = crate::object::parse_object(body)?;
        let spec = hostnet_model::validate_endpoint(&wire)?;
        let policies = endpoint_policies(&spec)?;
        let mappings = policies.mappings.clone();
        let mut st = self.lock();
        let net_id = spec.network;
        if !st.networks.contains_key(&net_id) {
            return Err(HcnError::new(
                ErrorCode::NetworkNotFound,
                format!(
                    "HostComputeNetwork {} does not exist: create the network first or list them with GET /v2/networks",
                    guid(&net_id)
                ),
            ));
        }
        ensure_unique_name(Kind::Endpoint, &spec.name, st.endpoints.named(&spec.name))?;
        check_mappings_allowed(&st.networks[&net_id], &mappings)?;
        check_policies_allowed(&st.networks[&net_id], &policies)?;
        if crate::overlay::is_remote(spec.flags) {
            crate::overlay::check_remote(&st.networks[&net_id], &spec)?;
        }
        crate::endpoint_change::check_set_refs(
            &st.networks[&net_id],
            &policies.acls,
            &policies.tiers,
        )?;
        check_ports(&st, &mappings, None)?;
        if spec.vm_nic && st.networks[&net_id].is_dhcp() {
            return Err(HcnError::new(
                ErrorCode::RequestUnsupported,
                format!(
                    "network {} takes its addresses from DHCP, which hostnet runs inside a namespace; a VM NIC has none: use a network with a subnet of its own (NAT, L2Bridge, Overlay...) for VmNic endpoints",
                    guid(&net_id)
                ),
            ));
        }
        if st.networks[&net_id].is_dhcp() {
            return self
                .create_dhcp_endpoint(st, &wire, &spec, &policies)
                .map(Some);
        }

        let id = new_endpoint_id(&st);
        let st = &mut *st;
        // Only a request for a gateway's address looks at who holds it.
        let gateway_taken = match spec.ip_configs.as_slice() {
            [cfg] if is_gateway(&st.networks[&net_id], cfg.address) => st
                .endpoints
                .values()
                .any(|e| e.network == net_id && e.plan.address.addr() == cfg.address),
            _ => false,
        };
        let net = st.networks.get_mut(&net_id).expect("checked above");
        check_next_hops(net, &spec)?;
        let taken = take_addresses(net, &spec, gateway_taken)?;
        let address = taken.address;
        let mac = match take_mac(net, &spec, address.addr()) {
            Ok(m) => m,
            Err(e) => {
                release_addresses(net, &taken);
                return Err(e);
            }
        };
        let sdn = match sdn_routes(net, address, &policies) {
            Ok(r) => r,
            Err(e) => {
                release_addresses(net, &taken);
                net.macs.release(mac);
                return Err(e);
            }
        };
        let mut obj = to_object(&wire);
        fill_endpoint(&mut obj, &id, &net_id, &taken, mac, net);
        let rec = EndpointRec {
            obj,
            name: spec.name.clone(),
            network: net_id,
            plan: plan(&id, &taken, mac, &spec, &policies, sdn),
            mappings,
            acls: policies.acls.clone(),
            tiers: policies.tiers.clone(),
            namespace: None,
            ifname: DEFAULT_IFNAME.into(),
            vm_nic: spec.vm_nic,
        };
        let mut rec = rec;
        rec.plan.acl = crate::policy::walks_acls(&rec, net);
        rec.plan.mtu = crate::overlay::endpoint_mtu(net, policies.encap_overhead);
        if rec.vm_nic {
            fill_vm_nic(&mut rec.obj, &id, net, &rec.plan);
        }

        let undo_alloc = |net: &mut NetworkRec| {
            release_addresses(net, &taken);
            net.macs.release(mac);
        };
        let mut elements = endpoint_elements(net, &rec.plan);
        let acl = match crate::policy::acl_elements(&id, &rec, net) {
            Ok(acl) => acl,
            Err(e) => {
                undo_alloc(net);
                return Err(e);
            }
        };
        // An overlay endpoint's ACLs are its router's (crate::overlay_acl).
        let router_acl = match crate::overlay_acl::acl_netns(net) {
            None => {
                elements.extend(acl);
                Vec::new()
            }
            Some(_) => crate::overlay_acl::router_elements(net, acl),
        };
        let siblings = || st.endpoints.values().filter(|e| e.network == net_id);
        let filtering = crate::overlay_acl::filtering_changes(
            net,
            &crate::overlay_acl::filtered_vnis(net, siblings()),
            &crate::overlay_acl::filtered_vnis(net, siblings().chain([&rec])),
        );
        let mut create = host_forwarding(net, &rec.plan);
        create.push(Op::AddElements(elements.clone()));
        create.extend(crate::overlay::endpoint_up(net, &rec));
        create.extend(router_acl.iter().cloned());
        create.extend(filtering.iter().cloned());
        if rec.vm_nic {
            create.extend(bridge::vm_nic_plug(&net.plan, &rec.plan));
        }
        if let Err(e) = apply(self.dp.as_ref(), &create) {
            undo_alloc(net);
            return Err(internal("programming the endpoint", e));
        }
        let mut txn = Txn::new();
        txn.put(Kind::Endpoint.collection(), &guid(&id), bytes(&rec.obj));
        let claim = claim_key(&net_id, address.addr());
        for a in taken.all() {
            txn.claim(
                Collection::AddressClaims,
                &claim_key(&net_id, a.addr()),
                guid(&id).into_bytes(),
            );
        }
        if let Err(e) = self.store.commit(txn) {
            let mut undo = Vec::new();
            if rec.vm_nic {
                undo.extend(bridge::endpoint_detach(&net.plan, &rec.plan, false));
            }
            undo.extend(Op::reverse_plan(&filtering));
            undo.extend(Op::reverse_plan(&router_acl));
            undo.extend(crate::overlay::endpoint_down(net, &rec));
            undo.push(Op::DeleteElements(elements));
            teardown(self.dp.as_ref(), &undo);
            let requested = !spec.ip_configs.is_empty();
            match e {
                StoreError::Conflict { .. } if !requested => {
                    net.macs.release(mac);
                    for a in taken.all() {
                        crate::cluster::scatter_after_collision(net, a.addr());
                    }
                    log::info!("address {claim} is claimed by another host; picking another");
                    return Ok(None);
                }
                StoreError::Conflict { .. } => {
                    undo_alloc(net);
                    return Err(HcnError::new(
                        ErrorCode::AddrInvalidOrReserved,
                        format!(
                            "address {} of network {} is held by an endpoint on another host: choose another address, or let hostnet pick one",
                            address.addr(),
                            guid(&net_id)
                        ),
                    ));
                }
                e => {
                    undo_alloc(net);
                    return Err(crate::object::store_failure("saving to the store", e));
                }
            }
        }
        let out = rec.obj.clone();
        st.endpoints.insert(id, rec);
        Ok(Some(out))
    }

    pub(crate) fn delete_endpoint(&self, id: Uuid, given: &str) -> Result<(), HcnError> {
        let mut st = self.lock();
        let Some(ep) = st.endpoints.get(&id) else {
            return Err(Kind::Endpoint.not_found(given));
        };
        let mut txn = Txn::new();
        txn.delete(Kind::Endpoint.collection(), &guid(&id));
        for a in ep.plan.addresses() {
            txn.delete(Collection::AddressClaims, &claim_key(&ep.network, a.addr()));
        }
        // It leaves every load balancer's backends in the same transaction.
        let lbs = crate::load_balancer::BackendRemoval::plan(&st, &id);
        lbs.stage(&mut txn);
        let lease = self.take_lease(&id);
        txn.delete(hostnet_store::Collection::Meta, &crate::dhcp::key(&id));
        // Deleting an attached endpoint detaches it first (runtimes tear
        // down in either order).
        let ns_update = ep.namespace.and_then(|ns_id| {
            st.namespaces.get(&ns_id).map(|ns| {
                let mut obj = ns.obj.clone();
                remove_resource(&mut obj, &id);
                txn.put(Kind::Namespace.collection(), &guid(&ns_id), bytes(&obj));
                (ns_id, obj)
            })
        });
        let routes_left = crate::route::leave_routes(&st, &id, &mut txn);
        if let Err(e) = self.commit(txn) {
            if let Some(l) = lease {
                self.keep_lease(id, l);
            }
            return Err(e);
        }
        crate::route::left_routes(&mut st, &id, routes_left);
        if let Some(l) = lease {
            self.release_lease(l);
        }

        lbs.finish(&mut st, self.dp.as_ref());
        let ep = st.endpoints.remove(&id).expect("checked above");
        let mut ops = Vec::new();
        if let Some(net) = st.networks.get(&ep.network) {
            if let Some(ns) = ep.namespace {
                let host = st.namespaces.get(&ns).is_some_and(|n| n.host);
                ops.extend(bridge::endpoint_detach(&net.plan, &ep.plan, host));
            }
            if ep.vm_nic {
                ops.extend(bridge::endpoint_detach(&net.plan, &ep.plan, false));
            }
            let mut els = endpoint_elements(net, &ep.plan);
            let acl = crate::policy::acl_elements(&id, &ep, net).unwrap_or_default();
            match crate::overlay_acl::acl_netns(net) {
                None => els.extend(acl),
                Some(_) => {
                    let siblings = || st.endpoints.values().filter(|e| e.network == ep.network);
                    ops.extend(Op::reverse_plan(&crate::overlay_acl::router_elements(
                        net, acl,
                    )));
                    ops.extend(crate::overlay_acl::filtering_changes(
                        net,
                        &crate::overlay_acl::filtered_vnis(net, siblings().chain([&ep])),
                        &crate::overlay_acl::filtered_vnis(net, siblings()),
                    ));
                }
            }
            ops.push(Op::DeleteElements(els));
            ops.extend(crate::overlay::endpoint_down(net, &ep));
        }
        for e in teardown(self.dp.as_ref(), &ops) {
            log::warn!("endpoint {}: {e} (left for the next reconcile)", guid(&id));
        }
        if let Some((ns_id, obj)) = ns_update {
            if let Some(ns) = st.namespaces.get_mut(&ns_id) {
                ns.obj = obj;
                ns.endpoints.retain(|e| *e != id);
            }
        }
        if let Some(net) = st.networks.get_mut(&ep.network) {
            for a in ep.plan.addresses() {
                release_address(net, a.addr());
            }
            net.macs.release(ep.plan.mac);
        }
        Ok(())
    }

    pub(crate) fn modify_endpoint(
        &self,
        id: Uuid,
        given: &str,
        req: &ModifyRequest,
    ) -> Result<Map<String, Value>, HcnError> {
        let hostnet_model::domain::EndpointChange::Policies { request, policies } =
            hostnet_model::parse_endpoint_change(req)?;
        self.change_endpoint_policies(id, given, request, policies)
    }
}

/// The set elements an endpoint owns from its creation on: masquerade and
/// published ports on NAT networks, its MAC behind the uplink on L2
/// networks, and its outbound NAT on every driver.
pub(crate) fn endpoint_elements(net: &NetworkRec, ep: &bridge::Endpoint) -> Vec<SetElement> {
    match (net.kind, &net.plan.l2) {
        (NetworkKind::Nat, _) => nat::endpoint_elements(ep),
        // The overlay's are in its router's table (crate::overlay).
        (NetworkKind::Overlay, _) => Vec::new(),
        (_, Some(l2)) => l2bridge::endpoint_elements(l2, ep),
        _ => transparent::endpoint_elements(ep),
    }
}

/// Forwarding on in the host's namespace when an endpoint of a bound
/// network sends traffic for the host to route: its outbound NAT detours
/// there, or one of its routes goes via the host's address. L2 networks
/// have it from their creation; a Transparent network only once one of
/// its endpoints needs it.
pub(crate) fn host_forwarding(net: &NetworkRec, ep: &bridge::Endpoint) -> Vec<Op> {
    let host_hop = |r: &RouteSpec| {
        r.via.is_some_and(|v| {
            net.adapter
                .iter()
                .flat_map(|a| &a.addresses)
                .any(|a| a.addr() == v)
        })
    };
    let transparent = net.adapter.is_some() && net.plan.l2.is_none();
    match transparent && (ep.outbound_nat.is_some() || ep.routes.iter().any(host_hop)) {
        true => vec![Op::Sysctl {
            key: "net/ipv4/ip_forward".into(),
            value: "1".into(),
        }],
        false => Vec::new(),
    }
}

/// An endpoint's policies, sorted by what they do.
#[derive(Clone, Debug, Default)]
pub(crate) struct EndpointPolicies {
    pub mappings: Vec<PortMapping>,
    /// `OutBoundNAT` policies (IPv4), in the order given; None without one.
    pub outbound_nat: Option<Vec<OnatPolicy>>,
    /// `SDNRoute`s: destination and next hop (None: through the host).
    pub sdn_routes: Vec<(IpNet, Option<IpAddr>)>,
    /// `ACL`s (IPv4 rules are enforced; the endpoint is IPv4).
    pub acls: Vec<hostnet_model::domain::AclRule>,
    /// `TierAcl`s, after the ACLs in `acl-switch`.
    pub tiers: Vec<hostnet_model::domain::TierAcl>,
    /// `EncapOverhead` (Overlay endpoints): the bytes the encapsulation
    /// takes from the underlay's MTU.
    pub encap_overhead: Option<u16>,
    /// `VLAN`: accepted only as the network's own (crate::vlan).
    pub vlan: Option<u32>,
}

/// The policies an endpoint takes; any other type is refused by name.
pub(crate) fn endpoint_policies(spec: &EndpointSpec) -> Result<EndpointPolicies, HcnError> {
    policies_of(&spec.policies)
}

/// [`endpoint_policies`] of a policy list.
pub(crate) fn policies_of(policies: &[EndpointPolicy]) -> Result<EndpointPolicies, HcnError> {
    let mut out = EndpointPolicies::default();
    for p in policies {
        match p {
            EndpointPolicy::PortMapping(_) => out.mappings.push(port_mapping(p)?),
            EndpointPolicy::Acl(rule) => out.acls.push(rule.clone()),
            EndpointPolicy::TierAcl(tier) => {
                if out.tiers.iter().any(|t| t.name == tier.name) {
                    return Err(HcnError::new(
                        ErrorCode::InvalidPolicy,
                        format!("TierAcl {:?} is given twice: give each tier its own Name", tier.name),
                    ));
                }
                out.tiers.push(tier.clone());
            }
            EndpointPolicy::OutboundNat(n) => out
                .outbound_nat
                .get_or_insert_with(Vec::new)
                .push(onat_policy(n)?),
            EndpointPolicy::SdnRoute {
                destination,
                next_hop,
                ..
            } => out.sdn_routes.push((*destination, *next_hop)),
            // A remote endpoint's host (crate::overlay); Docker also sends
            // it on local overlay endpoints, where it says nothing new.
            EndpointPolicy::ProviderAddress(_) => {}
            EndpointPolicy::EncapOverhead(o) => {
                if out.encap_overhead.replace(*o).is_some() {
                    return Err(HcnError::new(
                        ErrorCode::InvalidPolicy,
                        "EncapOverhead is given twice: give it once",
                    ));
                }
            }
            EndpointPolicy::Vlan(id) => {
                if out.vlan.replace(*id).is_some() {
                    return Err(HcnError::new(
                        ErrorCode::InvalidPolicy,
                        "VLAN is given twice: give it once",
                    ));
                }
            }
            other => {
                return Err(HcnError::new(
                    ErrorCode::InvalidPolicyType,
                    format!(
                        "endpoint policy {} is not supported yet: remove it (supported: PortMapping, ACL, TierAcl, OutBoundNAT, SDNRoute, VLAN (its network's), and on Overlay endpoints EncapOverhead and ProviderAddress)",
                        other.type_name()
                    ),
                ))
            }
        }
    }
    Ok(out)
}

/// One `OutBoundNAT` as the kernel takes it: IPv4 throughout (endpoints
/// here are IPv4).
fn onat_policy(n: &OutboundNat) -> Result<OnatPolicy, HcnError> {
    if n.flags.0 & NatFlags::IPV6 != 0 {
        return Err(HcnError::new(
            ErrorCode::RequestUnsupported,
            "IPv6 OutBoundNAT (Flags 2) is not supported: endpoints here are IPv4; remove the policy",
        ));
    }
    let v4 = |list: &[IpNet], what: &str| -> Result<Vec<Ipv4Net>, HcnError> {
        list.iter()
            .map(|p| match p {
                IpNet::V4(v4) => Ok(v4.trunc()),
                IpNet::V6(_) => Err(HcnError::new(
                    ErrorCode::InvalidPolicy,
                    format!("OutBoundNAT {what} {p} is IPv6: endpoints here are IPv4, remove it"),
                )),
            })
            .collect()
    };
    let virtual_ip = match n.virtual_ip {
        None => None,
        Some(IpAddr::V4(a)) if !a.is_unspecified() && !a.is_broadcast() && !a.is_multicast() => {
            Some(a)
        }
        Some(a) => {
            return Err(HcnError::new(
                ErrorCode::InvalidPolicy,
                format!("OutBoundNAT VirtualIP {a} cannot be a source address: give a unicast IPv4 address (or omit it for the host's)"),
            ))
        }
    };
    Ok(OnatPolicy {
        exceptions: v4(&n.exceptions, "exception")?,
        destinations: v4(&n.destinations, "destination")?,
        virtual_ip,
    })
}

/// The policies only some networks take: `EncapOverhead` (Overlay) and
/// `VLAN` (its network's own).
pub(crate) fn check_policies_allowed(
    net: &NetworkRec,
    p: &EndpointPolicies,
) -> Result<(), HcnError> {
    crate::overlay::check_encap_overhead(net, p.encap_overhead)?;
    crate::vlan::check_endpoint(net, p.vlan)
}

/// The routes `SDNRoute`s add in the endpoint's namespace. Without a
/// NextHop the route goes through the host: its address on the endpoint's
/// subnet.
pub(crate) fn sdn_routes(
    net: &NetworkRec,
    address: IpNet,
    p: &EndpointPolicies,
) -> Result<Vec<RouteSpec>, HcnError> {
    p.sdn_routes
        .iter()
        .map(|&(destination, next_hop)| {
            let via = next_hop_of(net, address, destination, next_hop, "SDNRoute")?;
            Ok(RouteSpec {
                destination,
                via: Some(via),
                metric: 0,
            })
        })
        .collect()
}

/// The next hop of a route of the endpoint at `address`: `given`, which
/// must be on the endpoint's subnet (the kernel could not reach it
/// otherwise), or the host's address there (a NAT network's gateway, the
/// host's address on a bound adapter, an Overlay network's router: the
/// router encapsulates what it routes to other hosts, so an `SDNRoute`
/// with `NeedEncap` and no `NextHop` goes through it).
pub(crate) fn next_hop_of(
    net: &NetworkRec,
    address: IpNet,
    destination: IpNet,
    given: Option<IpAddr>,
    what: &str,
) -> Result<IpAddr, HcnError> {
    let subnet = address.trunc();
    if destination.addr().is_ipv4() != address.addr().is_ipv4() {
        return Err(HcnError::new(
            ErrorCode::InvalidPrefix,
            format!("{what} to {destination}: the endpoint's address {} is of another IP family: give an IPv4 prefix", address.addr()),
        ));
    }
    let router = net
        .overlay
        .iter()
        .flat_map(|o| &o.segments)
        .map(|s| IpAddr::V4(s.gateway.addr()));
    let host = net
        .adapter
        .iter()
        .flat_map(|a| &a.addresses)
        .chain(&net.plan.gateways)
        .map(|a| a.addr())
        .chain(router)
        .find(|a| subnet.contains(a));
    match given.or(host) {
        Some(v) if v == address.addr() => Err(HcnError::new(
            ErrorCode::InvalidIp,
            format!("{what} to {destination}: NextHop {v} is the endpoint's own address: give a neighbour on {subnet}"),
        )),
        Some(v) if subnet.contains(&v) && v != subnet.network() && v != subnet.broadcast() => Ok(v),
        Some(v) => Err(HcnError::new(
            ErrorCode::InvalidIp,
            format!("{what} to {destination}: NextHop {v} is not reachable from the endpoint's subnet {subnet}: give a next hop inside it"),
        )),
        None => Err(HcnError::new(
            ErrorCode::InvalidPolicy,
            format!("{what} to {destination} has no NextHop and the host has no address on subnet {subnet}: give NextHop"),
        )),
    }
}

/// Port mappings exist only on NAT networks (HCN_E_MAPPING_NOT_SUPPORTED).
/// An L2 endpoint answers on its own address; a host port DNATed to it
/// would see replies leave for the gateway directly, past the host's NAT.
pub(crate) fn check_mappings_allowed(
    net: &NetworkRec,
    mappings: &[PortMapping],
) -> Result<(), HcnError> {
    if net.kind != NetworkKind::Nat && !mappings.is_empty() {
        return Err(HcnError::new(
            ErrorCode::MappingNotSupported,
            format!(
                "{} networks take no PortMapping: their endpoints are on the physical network and reachable directly",
                net.kind
            ),
        ));
    }
    check_ipv6_mappings(net, mappings)
}

fn port_mapping(p: &EndpointPolicy) -> Result<PortMapping, HcnError> {
    let EndpointPolicy::PortMapping(m) = p else {
        return Err(HcnError::new(
            ErrorCode::InvalidPolicyType,
            format!(
                "endpoint policy {} is not supported on NAT networks yet: remove it (supported: PortMapping)",
                p.type_name()
            ),
        ));
    };
    if !matches!(m.protocol, Protocol::Tcp | Protocol::Udp) {
        return Err(HcnError::new(
            ErrorCode::InvalidPolicy,
            format!(
                "PortMapping Protocol {:?} is not supported: use 6 (TCP) or 17 (UDP)",
                m.protocol
            ),
        ));
    }
    if m.flags.0 & NatFlags::IPV6 != 0 && matches!(m.vip, Some(IpAddr::V4(_))) {
        return Err(HcnError::new(
            ErrorCode::InvalidPolicy,
            format!(
                "PortMapping has the IPv6 flag and an IPv4 VirtualIP {}: give an IPv6 VirtualIP or drop the flag",
                m.vip.expect("matched")
            ),
        ));
    }
    Ok(*m)
}

/// Whether a mapping asks for IPv6 only (HCN's IPv6 flag, or an IPv6 VIP).
pub(crate) fn is_ipv6_mapping(m: &PortMapping) -> bool {
    m.flags.0 & NatFlags::IPV6 != 0 || matches!(m.vip, Some(IpAddr::V6(_)))
}

/// IPv6 mappings need the endpoint's IPv6 address: a dual-stack NAT
/// network's endpoint.
pub(crate) fn check_ipv6_mappings(
    net: &NetworkRec,
    mappings: &[PortMapping],
) -> Result<(), HcnError> {
    match mappings.iter().find(|m| is_ipv6_mapping(m)) {
        Some(m) if !net.is_dual_stack() => Err(HcnError::new(
            ErrorCode::MappingNotSupported,
            format!(
                "PortMapping of host port {} is IPv6 (Flags 2 or an IPv6 VirtualIP), but network {} has no IPv6 subnet: publish it on IPv4, or create a dual-stack NAT network",
                m.external_port,
                net.name
            ),
        )),
        _ => Ok(()),
    }
}

pub(crate) fn nat_mapping(m: &PortMapping) -> nat::PortMapping {
    nat::PortMapping {
        proto: if m.protocol == Protocol::Udp {
            L4Proto::Udp
        } else {
            L4Proto::Tcp
        },
        host_addr: m.vip.filter(|a| !a.is_unspecified()),
        host_port: m.external_port,
        container_port: m.internal_port,
        families: match m.vip {
            _ if is_ipv6_mapping(m) => nat::Families::Ipv6,
            Some(IpAddr::V4(_)) => nat::Families::Ipv4,
            _ => nat::Families::Both,
        },
    }
}

/// Refuse a host port (protocol, port, address) that another endpoint, or
/// an earlier mapping of the same request, already publishes.
pub(crate) fn check_ports(
    st: &State,
    new: &[PortMapping],
    except: Option<&Uuid>,
) -> Result<(), HcnError> {
    let clash = |a: &PortMapping, b: &PortMapping| {
        a.protocol == b.protocol
            && a.external_port == b.external_port
            && (a.vip.is_none() || b.vip.is_none() || a.vip == b.vip)
    };
    for (i, m) in new.iter().enumerate() {
        let owner = publisher(st, m.protocol.number(), m.external_port, m.vip, except)
            .map(|id| format!("endpoint {}", guid(&id)))
            .or_else(|| {
                new[..i]
                    .iter()
                    .any(|x| clash(x, m))
                    .then(|| "this request".to_string())
            })
            .or_else(|| crate::load_balancer::port_owner(st, m));
        if let Some(owner) = owner {
            let proto = if m.protocol == Protocol::Udp {
                "UDP"
            } else {
                "TCP"
            };
            let addr = m
                .vip
                .map(|a| a.to_string())
                .unwrap_or_else(|| "0.0.0.0".into());
            return Err(HcnError::new(
                ErrorCode::PortAlreadyExists,
                format!(
                    "{proto} host port {addr}:{} is already mapped by {owner}: choose another ExternalPort",
                    m.external_port
                ),
            ));
        }
    }
    Ok(())
}

/// The endpoint (other than `except`) that publishes host port `port` of
/// protocol `proto` on `vip`, or on every address when either side has no
/// VIP (a node port, a mapping without `VirtualIP`).
pub(crate) fn publisher(
    st: &State,
    proto: u8,
    port: u16,
    vip: Option<std::net::IpAddr>,
    except: Option<&Uuid>,
) -> Option<Uuid> {
    st.endpoints
        .publishing(proto, port)
        .into_iter()
        .filter(|(id, _)| Some(*id) != except)
        .find(|(_, e)| {
            e.mappings.iter().any(|x| {
                x.protocol.number() == proto
                    && x.external_port == port
                    && (x.vip.is_none() || vip.is_none() || x.vip == vip)
            })
        })
        .map(|(id, _)| *id)
}

/// A fresh endpoint ID whose veth name no other endpoint has.
pub(crate) fn new_endpoint_id(st: &State) -> Uuid {
    loop {
        let id = Uuid::new_v4();
        if st
            .endpoints
            .range(names::same_host_veth(&id))
            .next()
            .is_none()
        {
            return id;
        }
    }
}

/// An endpoint's addresses, each with its subnet's prefix length, and the
/// gateways of their subnets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Addresses {
    /// IPv4 (on NAT networks and every other but an IPv6 DHCP one, none).
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
    /// The IPv6 address on a dual-stack NAT network.
    pub address6: Option<IpNet>,
    pub gateway6: Option<IpAddr>,
}

impl Addresses {
    /// Single-stack: one address and its gateway.
    pub(crate) fn single(address: IpNet, gateway: Option<IpAddr>) -> Self {
        Addresses {
            address,
            gateway,
            address6: None,
            gateway6: None,
        }
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = IpNet> {
        std::iter::once(self.address).chain(self.address6)
    }
}

/// The endpoint's addresses: one per family the network has (its IPv4
/// subnets, and a dual-stack NAT network's IPv6 one), each static and
/// checked or allocated. Nothing stays taken when it fails.
fn take_addresses(
    net: &mut NetworkRec,
    spec: &EndpointSpec,
    gateway_taken: bool,
) -> Result<Addresses, HcnError> {
    let (v6, v4): (Vec<&IpConfigSpec>, Vec<&IpConfigSpec>) =
        spec.ip_configs.iter().partition(|c| c.address.is_ipv6());
    let dual = net.is_dual_stack();
    if let (false, Some(c)) = (dual, v6.first()) {
        let subnets: Vec<String> = net.pools.iter().map(|p| p.prefix().to_string()).collect();
        return Err(HcnError::new(
            ErrorCode::InvalidIp,
            format!(
                "IpAddress {} is IPv6, and network {} has no IPv6 subnet ({}): give an IPv4 address, or create a dual-stack NAT network with an IPv6 subnet",
                c.address,
                guid(&spec.network),
                subnets.join(", ")
            ),
        ));
    }
    if v4.len() > 1 || v6.len() > 1 {
        let per_family = if dual {
            "one IPv4 and one IPv6"
        } else {
            "one (IPv4)"
        };
        return Err(HcnError::new(
            ErrorCode::InvalidEndpoint,
            format!("an endpoint takes one IpConfiguration per IP family ({per_family}): remove the others"),
        ));
    }
    let (address, gateway) = take_address(net, spec, v4.first().copied(), gateway_taken, false)?;
    let mut out = Addresses::single(address, gateway);
    if dual {
        match take_address(net, spec, v6.first().copied(), false, true) {
            Ok((a, g)) => (out.address6, out.gateway6) = (Some(a), g),
            Err(e) => {
                release_address(net, address.addr());
                return Err(e);
            }
        }
    }
    Ok(out)
}

/// One address of the endpoint from the network's pools of one family
/// (`v6`): `cfg`'s (checked), or allocated; with its subnet's prefix
/// length, and the subnet's gateway.
fn take_address(
    net: &mut NetworkRec,
    spec: &EndpointSpec,
    cfg: Option<&IpConfigSpec>,
    gateway_taken: bool,
    v6: bool,
) -> Result<(IpNet, Option<IpAddr>), HcnError> {
    let net_name = guid(&spec.network);
    // On an L2 network with a custom subnet, the gateway is the host
    // endpoint the user creates with the gateway's address (the pools keep
    // it from every other endpoint).
    if let Some(cfg) = cfg {
        if is_gateway(net, cfg.address) && !gateway_taken {
            let pool = net
                .pools
                .iter()
                .find(|p| p.contains(cfg.address))
                .expect("gateway of a pool");
            let len = pool.prefix().prefix_len();
            return Ok((IpNet::new(cfg.address, len).expect("valid"), None));
        }
    }
    // Another host's endpoint in that host's own subnet (flannel): no pool
    // of this network holds it, a RemoteSubnetRoute reaches it.
    if let Some(cfg) = cfg.filter(|_| crate::overlay::is_remote(spec.flags)) {
        if crate::overlay::route_beyond_subnets(net, cfg.address).is_some() {
            return Ok((IpNet::new(cfg.address, 32).expect("valid"), None));
        }
    }
    let mut pools = net
        .pools
        .iter_mut()
        .filter(|p| p.prefix().addr().is_ipv6() == v6);
    match cfg {
        None => {
            let mut last = None;
            for pool in pools {
                match pool.allocate() {
                    Ok(ip) => {
                        let prefix = IpNet::new(ip, pool.prefix().prefix_len()).expect("valid");
                        return Ok((prefix, pool.gateway()));
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(HcnError::new(
                ErrorCode::PoolExhausted,
                format!(
                    "network {net_name} has no free {} address ({}): delete endpoints or use a larger subnet",
                    if v6 { "IPv6" } else { "IPv4" },
                    last.map(|e| e.to_string()).unwrap_or_default()
                ),
            ))
        }
        Some(cfg) => {
            let ip = cfg.address;
            let remote = crate::overlay::is_remote(spec.flags);
            let Some(pool) = pools.find(|p| p.contains(ip)) else {
                let subnets: Vec<String> =
                    net.pools.iter().map(|p| p.prefix().to_string()).collect();
                let or_route = match remote {
                    true => {
                        ", or for another host's subnet add a RemoteSubnetRoute covering it first"
                    }
                    false => "",
                };
                return Err(HcnError::new(
                    ErrorCode::InvalidIp,
                    format!(
                        "IpAddress {ip} is not in any subnet of network {net_name} ({}): choose an address inside it{or_route}",
                        subnets.join(", ")
                    ),
                ));
            };
            let len = pool.prefix().prefix_len();
            if let Some(given) = cfg.prefix_len.filter(|l| *l != len) {
                return Err(HcnError::new(
                    ErrorCode::InvalidPrefix,
                    format!("PrefixLength {given} does not match subnet {} (/{len}): omit it or give {len}", pool.prefix()),
                ));
            }
            pool.reserve(ip).map_err(|e| match e {
                IpamError::InUse { .. } => HcnError::new(
                    ErrorCode::AddrInvalidOrReserved,
                    format!("IpAddress {ip} is already in use on network {net_name}: choose another or omit IpConfigurations"),
                ),
                other => HcnError::new(
                    ErrorCode::AddrInvalidOrReserved,
                    format!("IpAddress {ip} cannot be used: {other}; choose another"),
                ),
            })?;
            Ok((IpNet::new(ip, len).expect("valid"), pool.gateway()))
        }
    }
}

/// Whether `ip` is the gateway of one of an L2 network's subnets (which a
/// host endpoint may hold).
pub(crate) fn is_gateway(net: &NetworkRec, ip: IpAddr) -> bool {
    net.plan.l2.is_some() && net.pools.iter().any(|p| p.gateway() == Some(ip))
}

/// Every route's next hop must be on the network, or the kernel would
/// refuse the route at attach time.
fn check_next_hops(net: &NetworkRec, spec: &EndpointSpec) -> Result<(), HcnError> {
    for (i, r) in spec.routes.iter().enumerate() {
        if let Some(hop) = r
            .next_hop
            .filter(|h| !net.pools.iter().any(|p| p.contains(*h)))
        {
            return Err(HcnError::new(
                ErrorCode::InvalidIp,
                format!(
                    "Routes[{i}].NextHop {hop} is not on the network's subnets: give a next hop inside them (or omit Routes for the gateway)"
                ),
            ));
        }
    }
    Ok(())
}

fn release_addresses(net: &mut NetworkRec, taken: &Addresses) {
    for a in taken.all() {
        release_address(net, a.addr());
    }
}

fn release_address(net: &mut NetworkRec, ip: IpAddr) {
    for pool in net.pools.iter_mut() {
        if pool.release(ip) {
            return;
        }
    }
}

fn take_mac(net: &mut NetworkRec, spec: &EndpointSpec, ip: IpAddr) -> Result<[u8; 6], HcnError> {
    match spec.mac {
        Some(mac) => net.macs.reserve(mac.0).map(|_| mac.0).map_err(|_| {
            HcnError::new(
                ErrorCode::AddrInvalidOrReserved,
                format!(
                    "MacAddress {mac} is already in use on this network: choose another or omit it"
                ),
            )
        }),
        None => net.macs.allocate(Some(ip)).map_err(|e| {
            HcnError::new(
                ErrorCode::PoolExhausted,
                format!("no MAC address is left in the network's MacPool ({e}): widen the MacPool"),
            )
        }),
    }
}

/// The service-filled fields of an endpoint.
/// The service-filled fields of an endpoint: as Windows shows a
/// dual-stack endpoint, an `IpConfigurations` entry and a default route
/// (`0.0.0.0/0`, `::/0`) per family.
pub(crate) fn fill_endpoint(
    obj: &mut Map<String, Value>,
    id: &Uuid,
    net_id: &Uuid,
    taken: &Addresses,
    mac: [u8; 6],
    net: &NetworkRec,
) {
    obj.insert("ID".into(), json!(guid(id)));
    obj.insert("HostComputeNetwork".into(), json!(guid(net_id)));
    obj.remove("HostComputeNamespace");
    let configs: Vec<Value> = taken
        .all()
        .map(|a| json!({ "IpAddress": a.addr().to_string(), "PrefixLength": a.prefix_len() }))
        .collect();
    obj.insert("IpConfigurations".into(), json!(configs));
    obj.insert("MacAddress".into(), json!(Mac(mac).to_string()));
    let no_routes = obj
        .get("Routes")
        .and_then(|v| v.as_array())
        .is_none_or(|a| a.is_empty());
    let defaults: Vec<Value> = [taken.gateway, taken.gateway6]
        .into_iter()
        .flatten()
        .map(|gw| json!({ "NextHop": gw.to_string(), "DestinationPrefix": crate::network::default_route_of(gw) }))
        .collect();
    if no_routes && !defaults.is_empty() {
        obj.insert("Routes".into(), json!(defaults));
    }
    if let Some(dns) = crate::dns::endpoint_dns(obj, net, taken.address.addr()) {
        obj.insert("Dns".into(), dns);
    }
    obj.insert("State".into(), json!(1));
}

/// The output fields of a VM NIC: its tap (`InterfaceName`), the network
/// namespace the tap is in (`TapNetNsPath`), which a VM monitor must run
/// in to open the tap by name (the daemon's own, or an overlay network's
/// router namespace), and the MTU the guest must give its NIC (`TapMtu`:
/// a veth's peer gets it from hostnetd, a guest only from this). The
/// daemon's namespace is named by its process ID, so the fields are
/// refreshed when the endpoint is loaded after a restart.
pub(crate) fn fill_vm_nic(
    obj: &mut Map<String, Value>,
    id: &Uuid,
    net: &NetworkRec,
    ep: &bridge::Endpoint,
) {
    let netns = match &net.plan.port_netns {
        Some(router) => router.display().to_string(),
        None => format!("/proc/{}/ns/net", std::process::id()),
    };
    obj.insert("InterfaceName".into(), json!(names::host_veth(id)));
    obj.insert("TapNetNsPath".into(), json!(netns));
    obj.insert("TapMtu".into(), json!(ep.mtu.unwrap_or(net.plan.mtu)));
}

/// The driver's view of an endpoint.
pub(crate) fn plan(
    id: &Uuid,
    taken: &Addresses,
    mac: [u8; 6],
    spec: &EndpointSpec,
    policies: &EndpointPolicies,
    sdn_routes: Vec<RouteSpec>,
) -> bridge::Endpoint {
    let mut routes: Vec<RouteSpec> = spec
        .routes
        .iter()
        .filter(|r| r.destination.prefix_len() != 0)
        .map(|r| RouteSpec {
            destination: r.destination,
            via: r.next_hop,
            metric: r.metric.into(),
        })
        .collect();
    routes.extend(sdn_routes);
    bridge::Endpoint {
        id: *id,
        address: taken.address,
        address6: taken.address6,
        mac,
        gateway: taken.gateway,
        gateway6: taken.gateway6,
        routes,
        port_mappings: policies.mappings.iter().map(nat_mapping).collect(),
        outbound_nat: policies.outbound_nat.clone(),
        acl: !policies.acls.is_empty(),
        mtu: None,
    }
}

/// Drop an endpoint from a namespace's `Resources`.
pub(crate) fn remove_resource(ns: &mut Map<String, Value>, ep: &Uuid) {
    let id = guid(ep);
    if let Some(list) = ns.get_mut("Resources").and_then(|v| v.as_array_mut()) {
        list.retain(|r| {
            let rid = r
                .get("Data")
                .and_then(|d| d.get("Id").or_else(|| d.get("ID")))
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            !rid.eq_ignore_ascii_case(&id)
        });
    }
}
