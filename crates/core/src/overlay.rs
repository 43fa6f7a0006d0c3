//! Overlay networks in the core: the host's identity on the underlay,
//! validation, and the remote state (remote endpoints, remote subnet
//! routes) a control plane programs. The kernel plans are
//! `hostnet_drivers::overlay`'s; see docs/drivers/overlay.md.
//!
//! [`remote_peer`] and [`remote_routes`] turn stored objects into the
//! driver's `RemotePeer` and `RemoteRoute`; a cluster-store watcher can
//! build those values directly and apply the same driver plans.

use std::net::{IpAddr, Ipv4Addr};

use hostnet_dataplane::Dataplane;
use hostnet_drivers::overlay::{
    HostIdentity, Overlay, RemotePeer, RemoteRoute, Segment, DEFAULT_ENCAP_OVERHEAD, DEFAULT_VNI,
    DEFAULT_VXLAN_PORT,
};
use hostnet_model::domain::{
    EndpointFlags, EndpointPolicy, Mac, NetworkKind, NetworkPolicy, NetworkSpec, SubnetPolicy,
};
use hostnet_model::{ErrorCode, HcnError};
use ipnet::Ipv4Net;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::object::{guid, internal};
use crate::service::{EndpointRec, NetworkRec, State};
use crate::subnet::Resolved;

/// Hostnet's key in an overlay network object for its transit /31.
pub(crate) const TRANSIT_KEY: &str = "OverlayTransit";
/// Transit /31s come from 169.254.0.0/17 (clear of 169.254.169.254).
const TRANSIT_BASE: u32 = u32::from_be_bytes([169, 254, 0, 0]);
const TRANSIT_SLOTS: u32 = 1 << 14;

/// This host's identity on an overlay network: the `ProviderAddress`
/// given (it must be one of the host's addresses), else the first IPv4
/// address of the default route's adapter; the `DrMacAddress` given, else
/// one derived from the PA. Also returns the underlay MTU (the PA's link).
/// The one place both are decided.
pub(crate) fn host_identity(
    dp: &dyn Dataplane,
    spec: &NetworkSpec,
) -> Result<(HostIdentity, u32), HcnError> {
    let given = spec.policies.iter().find_map(|p| match p {
        NetworkPolicy::ProviderAddress(a) => Some(*a),
        _ => None,
    });
    let (pa, adapter) = match given {
        Some(IpAddr::V6(a)) => {
            return Err(HcnError::new(
                ErrorCode::InvalidPolicy,
                format!("ProviderAddress {a} is IPv6: the overlay underlay is IPv4; give one of the host's IPv4 addresses"),
            ))
        }
        Some(IpAddr::V4(pa)) => {
            let owner = dp
                .address_owner(pa.into())
                .map_err(|e| internal("looking up the provider address", e))?
                .ok_or_else(|| {
                    HcnError::new(
                        ErrorCode::InvalidPolicy,
                        format!("ProviderAddress {pa} is not an address of this host: give one of its own (VXLAN packets leave from it), or omit the policy to use the default route's adapter"),
                    )
                })?;
            (pa, owner)
        }
        None => {
            let name = dp
                .default_route_interface()
                .map_err(|e| internal("looking up the default route", e))?
                .ok_or_else(|| {
                    HcnError::new(
                        ErrorCode::AdapterNotFound,
                        "this host has no IPv4 default route to take the overlay's provider address from: give a ProviderAddress policy",
                    )
                })?;
            let adapter = dp
                .adapter(&name)
                .map_err(|e| internal("reading the default route's adapter", e))?
                .ok_or_else(|| HcnError::new(ErrorCode::AdapterNotFound, format!("adapter {name} vanished: try again")))?;
            let pa = adapter
                .addresses
                .iter()
                .find_map(|a| match a.addr() {
                    IpAddr::V4(v) => Some(v),
                    _ => None,
                })
                .ok_or_else(|| {
                    HcnError::new(
                        ErrorCode::AdapterNotFound,
                        format!("adapter {name} (the default route's) has no IPv4 address: give a ProviderAddress policy"),
                    )
                })?;
            (pa, adapter)
        }
    };
    let dr_mac = dr_mac_of(spec).unwrap_or_else(|| HostIdentity::default_dr_mac(pa));
    Ok((HostIdentity { pa, dr_mac }, adapter.mtu))
}

fn dr_mac_of(spec: &NetworkSpec) -> Option<[u8; 6]> {
    spec.policies.iter().find_map(|p| match p {
        NetworkPolicy::DrMacAddress(m) => Some(m.0),
        _ => None,
    })
}

/// The VNI of each subnet: its `VSID`, else 4096 (Windows' default).
fn vnis(spec: &NetworkSpec) -> Vec<u32> {
    spec.subnets
        .iter()
        .map(|s| {
            s.policies
                .iter()
                .find_map(|p| match p {
                    SubnetPolicy::Vsid(v) => Some(*v),
                    _ => None,
                })
                .unwrap_or(DEFAULT_VNI)
        })
        .collect()
}

/// The checks an overlay network takes at create: subnets given, VNIs
/// valid and free on this host, a VXLAN port.
pub(crate) fn check_network(st: &State, spec: &NetworkSpec) -> Result<(), HcnError> {
    if spec.subnets.is_empty() {
        return Err(HcnError::new(
            ErrorCode::InvalidSubnet,
            "Overlay networks need their subnets in Ipams, each with a VSID policy (its VNI; 4096 when omitted)",
        ));
    }
    let ours = vnis(spec);
    for (i, v) in ours.iter().enumerate() {
        if *v == 0 || *v > 0xFF_FFFF {
            return Err(HcnError::new(
                ErrorCode::InvalidPolicy,
                format!("VSID {v} is not a VXLAN network identifier: give 1-16777215 (Windows' default is 4096)"),
            ));
        }
        if ours[..i].contains(v) {
            return Err(HcnError::new(
                ErrorCode::InvalidPolicy,
                format!("VSID {v} is given to two subnets of this network: give each subnet its own VNI"),
            ));
        }
        if let Some((id, other)) = st.networks.iter().find(|(_, n)| {
            n.overlay
                .as_ref()
                .is_some_and(|o| o.segments.iter().any(|s| s.vni == *v))
        }) {
            return Err(HcnError::new(
                ErrorCode::InvalidPolicy,
                format!(
                    "VSID {v} is already used by overlay network {} ({:?}): give this network another VNI",
                    guid(id),
                    other.name
                ),
            ));
        }
    }
    if let Some(NetworkPolicy::VxlanPort(0)) = spec
        .policies
        .iter()
        .find(|p| matches!(p, NetworkPolicy::VxlanPort(_)))
    {
        return Err(HcnError::new(
            ErrorCode::InvalidPolicy,
            "VxlanPort 0 is not a UDP port: give 1-65535 (default 4789)",
        ));
    }
    for p in &spec.policies {
        if let NetworkPolicy::RemoteSubnetRoute { isolation_id, .. } = p {
            check_route_vni(&ours, *isolation_id)?;
        }
    }
    Ok(())
}

fn check_route_vni(vnis: &[u32], vni: u32) -> Result<(), HcnError> {
    match vnis.contains(&vni) {
        true => Ok(()),
        false => Err(HcnError::new(
            ErrorCode::InvalidPolicy,
            format!("RemoteSubnetRoute IsolationId {vni} is not a VSID of this network ({vnis:?}): give the VNI of one of its subnets"),
        )),
    }
}

/// A free transit /31 for a new overlay network.
pub(crate) fn free_transit(st: &State) -> Result<Ipv4Net, HcnError> {
    let used: Vec<Ipv4Net> = st
        .networks
        .values()
        .filter_map(|n| n.overlay.as_ref().map(|o| o.transit))
        .collect();
    (0..TRANSIT_SLOTS)
        .map(|i| Ipv4Net::new(Ipv4Addr::from(TRANSIT_BASE + 2 * i), 31).expect("a /31"))
        .find(|t| !used.contains(t))
        .ok_or_else(|| {
            HcnError::new(
                ErrorCode::PoolExhausted,
                "every transit link of 169.254.0.0/17 is taken: delete an overlay network",
            )
        })
}

/// The driver's view of an overlay network.
pub(crate) fn plan(
    id: Uuid,
    spec: &NetworkSpec,
    subnets: &[Resolved],
    identity: HostIdentity,
    underlay_mtu: u32,
    transit: Ipv4Net,
    netns_dir: &std::path::Path,
) -> Overlay {
    // The network's bridges and legs carry the default overhead; an
    // endpoint's EncapOverhead can only lower its own MTU below that.
    let overhead = DEFAULT_ENCAP_OVERHEAD;
    let port = spec
        .policies
        .iter()
        .find_map(|p| match p {
            NetworkPolicy::VxlanPort(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(DEFAULT_VXLAN_PORT);
    Overlay {
        id,
        // Overlay subnets are IPv4 (crate::subnet refuses others).
        segments: subnets
            .iter()
            .filter_map(Resolved::v4)
            .zip(vnis(spec))
            .map(|((prefix, gateway), vni)| Segment {
                vni,
                gateway: Ipv4Net::new(gateway, prefix.prefix_len()).expect("valid"),
            })
            .collect(),
        port,
        host: identity,
        mtu: underlay_mtu.saturating_sub(overhead),
        transit,
        router: netns_dir.join(format!("router-{}", guid(&id))),
    }
}

/// What GET shows on an overlay network besides what was given: this
/// host's `ProviderAddress` and `DrMacAddress` (flannel and kube-proxy
/// read them), and hostnet's transit /31.
pub(crate) fn fill_network(obj: &mut Map<String, Value>, o: &Overlay) {
    let policies = obj
        .entry("Policies")
        .or_insert_with(|| json!([]))
        .as_array_mut();
    if let Some(list) = policies {
        let has = |list: &[Value], t: &str| {
            list.iter().any(|p| {
                p.get("Type")
                    .and_then(Value::as_str)
                    .is_some_and(|x| x.eq_ignore_ascii_case(t))
            })
        };
        if !has(list, "ProviderAddress") {
            list.push(json!({"Type": "ProviderAddress", "Settings": {"ProviderAddress": o.host.pa.to_string()}}));
        }
        if !has(list, "DrMacAddress") {
            list.push(json!({"Type": "DrMacAddress", "Settings": {"Address": Mac(o.host.dr_mac).to_string()}}));
        }
    }
    obj.insert(TRANSIT_KEY.into(), json!(o.transit.to_string()));
}

/// A stored overlay network's plan: its identity and transit are in the
/// object (filled at create), so a restart rebuilds exactly the same.
pub(crate) fn stored_plan(
    rec: &NetworkRec,
    subnets: &[Resolved],
    underlay_mtu: u32,
    netns_dir: &std::path::Path,
) -> Result<Overlay, HcnError> {
    let bad = |m: &str| HcnError::new(ErrorCode::InvalidNetwork, m.to_string());
    let pa = rec
        .spec
        .policies
        .iter()
        .find_map(|p| match p {
            NetworkPolicy::ProviderAddress(IpAddr::V4(a)) => Some(*a),
            _ => None,
        })
        .ok_or_else(|| bad("its ProviderAddress is missing"))?;
    let dr_mac = dr_mac_of(&rec.spec).ok_or_else(|| bad("its DrMacAddress is missing"))?;
    let transit = rec
        .obj
        .get(TRANSIT_KEY)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("its transit link is missing"))?;
    let id = rec.plan.id;
    Ok(plan(
        id,
        &rec.spec,
        subnets,
        HostIdentity { pa, dr_mac },
        underlay_mtu,
        transit,
        netns_dir,
    ))
}

/// The `RemoteSubnetRoute` that covers a remote endpoint's address outside
/// the network's subnets (flannel gives each host a subnet of its own, and
/// kube-proxy makes a remote endpoint for each pod of the others'): the
/// router reaches it through that route. None for an address of a subnet,
/// or one no route covers.
pub(crate) fn route_beyond_subnets(net: &NetworkRec, ip: IpAddr) -> Option<RemoteRoute> {
    let IpAddr::V4(v4) = ip else {
        return None;
    };
    net.overlay.as_ref()?;
    if net.pools.iter().any(|p| p.contains(ip)) {
        return None;
    }
    remote_routes(&net.spec.policies)
        .ok()?
        .into_iter()
        .find(|r| r.prefix.contains(&v4))
}

/// The network's `RemoteSubnetRoute`s as the driver takes them.
pub(crate) fn remote_routes(policies: &[NetworkPolicy]) -> Result<Vec<RemoteRoute>, HcnError> {
    policies
        .iter()
        .filter_map(|p| match p {
            NetworkPolicy::RemoteSubnetRoute {
                destination,
                isolation_id,
                provider_address,
                dr_mac,
            } => Some((destination, isolation_id, provider_address, dr_mac)),
            _ => None,
        })
        .map(|(d, vni, pa, mac)| {
            let invalid = |m: String| HcnError::new(ErrorCode::InvalidPolicy, m);
            let ipnet::IpNet::V4(prefix) = d else {
                return Err(invalid(format!("RemoteSubnetRoute {d} is IPv6: the overlay is IPv4")));
            };
            let IpAddr::V4(pa) = pa else {
                return Err(invalid(format!("RemoteSubnetRoute {d}: ProviderAddress {pa} is IPv6: give the remote host's IPv4 underlay address")));
            };
            let mac = mac.ok_or_else(|| invalid(format!("RemoteSubnetRoute {d}: DistributedRouterMacAddress is empty: give the remote host's DrMacAddress (its network's GET shows it)")))?;
            Ok(RemoteRoute {
                prefix: *prefix,
                vni: *vni,
                dr_mac: mac.0,
                pa: *pa,
            })
        })
        .collect()
}

/// The checks a network's remote subnet routes take against its plan:
/// each on a VNI of the network, none overlapping one of its subnets or
/// another route (they share the router's one table).
pub(crate) fn check_routes(o: &Overlay, routes: &[RemoteRoute]) -> Result<(), HcnError> {
    let invalid = |m: String| Err(HcnError::new(ErrorCode::InvalidPolicy, m));
    let vnis: Vec<u32> = o.segments.iter().map(|s| s.vni).collect();
    for (i, r) in routes.iter().enumerate() {
        check_route_vni(&vnis, r.vni)?;
        if let Some(s) = o
            .segments
            .iter()
            .find(|s| overlaps(&s.gateway.trunc(), &r.prefix))
        {
            return invalid(format!(
                "RemoteSubnetRoute {} overlaps this network's subnet {}: give the remote host's own subnet",
                r.prefix,
                s.gateway.trunc()
            ));
        }
        if let Some(other) = routes[..i].iter().find(|q| overlaps(&q.prefix, &r.prefix)) {
            return invalid(format!(
                "RemoteSubnetRoute {} overlaps RemoteSubnetRoute {} of this network: give each remote subnet once (Update replaces a route with the same DestinationPrefix)",
                r.prefix, other.prefix
            ));
        }
    }
    Ok(())
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The kernel changes that take the network's remote subnet routes from
/// those of `before` to those of `after` (policy lists): only the routes
/// that differ, removals first; a remote host's FDB entry stays while
/// another route still goes to it. Checks `after`'s routes first.
pub(crate) fn route_changes(
    o: &Overlay,
    before: &[NetworkPolicy],
    after: &[NetworkPolicy],
) -> Result<Vec<hostnet_dataplane::Op>, HcnError> {
    use hostnet_drivers::overlay::{remote_route_down, remote_route_up};
    let (old, new) = (remote_routes(before)?, remote_routes(after)?);
    check_routes(o, &new)?;
    let same_host =
        |a: &RemoteRoute, b: &RemoteRoute| (a.vni, a.dr_mac, a.pa) == (b.vni, b.dr_mac, b.pa);
    let mut ops = Vec::new();
    for r in old.iter().filter(|r| !new.contains(r)) {
        let keep_fdb = new.iter().any(|q| same_host(q, r));
        ops.extend(remote_route_down(o, r, keep_fdb));
    }
    for r in new.iter().filter(|r| !old.contains(r)) {
        ops.extend(remote_route_up(o, r));
    }
    Ok(ops)
}

/// The smallest MTU an endpoint's `EncapOverhead` may leave (IPv4's
/// minimum datagram every host must take).
const MIN_ENDPOINT_MTU: u32 = 576;

/// `EncapOverhead` belongs to Overlay endpoints and must leave room for
/// VXLAN's headers: less than 50 bytes would make packets the underlay
/// cannot carry.
pub(crate) fn check_encap_overhead(
    net: &NetworkRec,
    overhead: Option<u16>,
) -> Result<(), HcnError> {
    let Some(o) = overhead else {
        return Ok(());
    };
    let Some(ov) = &net.overlay else {
        return Err(HcnError::new(
            ErrorCode::InvalidPolicyType,
            format!("EncapOverhead belongs to Overlay endpoints (the bytes VXLAN adds); network {} is {}: remove it", guid(&net.plan.id), net.kind),
        ));
    };
    let underlay = ov.mtu + DEFAULT_ENCAP_OVERHEAD;
    if u32::from(o) < DEFAULT_ENCAP_OVERHEAD {
        return Err(HcnError::new(
            ErrorCode::InvalidPolicy,
            format!("EncapOverhead {o} is less than VXLAN's {DEFAULT_ENCAP_OVERHEAD} bytes: the endpoint's packets would not fit the {underlay}-byte underlay; give {DEFAULT_ENCAP_OVERHEAD} or more"),
        ));
    }
    if underlay.saturating_sub(u32::from(o)) < MIN_ENDPOINT_MTU {
        return Err(HcnError::new(
            ErrorCode::InvalidPolicy,
            format!("EncapOverhead {o} leaves an MTU below {MIN_ENDPOINT_MTU} on the {underlay}-byte underlay: give at most {}", underlay - MIN_ENDPOINT_MTU),
        ));
    }
    Ok(())
}

/// An overlay endpoint's own MTU when its `EncapOverhead` asks for one
/// (checked by [`check_encap_overhead`]): the underlay's minus it.
pub(crate) fn endpoint_mtu(net: &NetworkRec, overhead: Option<u16>) -> Option<u32> {
    let ov = net.overlay.as_ref()?;
    let underlay = ov.mtu + DEFAULT_ENCAP_OVERHEAD;
    overhead.map(|o| underlay.saturating_sub(u32::from(o)))
}

/// Whether an endpoint document asks for a remote endpoint.
pub(crate) fn is_remote(flags: EndpointFlags) -> bool {
    flags.contains(EndpointFlags::REMOTE_ENDPOINT)
}

/// The provider address of a remote endpoint's policies.
pub(crate) fn provider_address(policies: &[EndpointPolicy]) -> Option<IpAddr> {
    policies.iter().find_map(|p| match p {
        EndpointPolicy::ProviderAddress(a) => Some(*a),
        _ => None,
    })
}

/// The checks a remote endpoint takes: an overlay network, a PA, an
/// address of one of the network's subnets, a MAC.
pub(crate) fn check_remote(
    net: &NetworkRec,
    spec: &hostnet_model::domain::EndpointSpec,
) -> Result<Ipv4Addr, HcnError> {
    let code = ErrorCode::InvalidRemoteEndpointOperation;
    if net.kind != NetworkKind::Overlay {
        return Err(HcnError::new(
            code,
            format!("remote endpoints (Flags 1, IsRemoteEndpoint) belong to Overlay networks; network {} is {}: create it on an Overlay network", guid(&net.plan.id), net.kind),
        ));
    }
    let pa = match provider_address(&spec.policies) {
        Some(IpAddr::V4(pa)) => pa,
        Some(IpAddr::V6(pa)) => {
            return Err(HcnError::new(
                ErrorCode::InvalidPolicy,
                format!("ProviderAddress {pa} is IPv6: give the remote host's IPv4 underlay address"),
            ))
        }
        None => {
            return Err(HcnError::new(
                code,
                "a remote endpoint needs a ProviderAddress policy (v1: PA) naming the underlay address of its host",
            ))
        }
    };
    if spec.ip_configs.len() != 1 || spec.mac.is_none() {
        return Err(HcnError::new(
            code,
            "a remote endpoint needs its address (one IpConfigurations entry) and its MacAddress, as its own host assigned them",
        ));
    }
    Ok(pa)
}

/// Whether a stored endpoint is another host's (`Flags: 1`, or v1's
/// `IsRemoteEndpoint`): two field reads, no policy parsed.
pub(crate) fn stored_remote(ep: &EndpointRec) -> bool {
    let flags = ep.obj.get("Flags").and_then(Value::as_u64).unwrap_or(0);
    let v1 = ep.obj.get("IsRemoteEndpoint").and_then(Value::as_bool) == Some(true);
    flags & u64::from(EndpointFlags::REMOTE_ENDPOINT) != 0 || v1
}

/// A stored remote endpoint as the driver programs it; None for a local one.
pub(crate) fn remote_peer(net: &NetworkRec, ep: &EndpointRec) -> Option<RemotePeer> {
    let o = net.overlay.as_ref()?;
    if !stored_remote(ep) {
        return None;
    }
    let pa = ep
        .obj
        .get("Policies")
        .and_then(Value::as_array)?
        .iter()
        .filter_map(|p| serde_json::from_value::<hostnet_model::wire::Policy>(p.clone()).ok())
        .filter_map(|p| hostnet_model::domain::parse_endpoint_policy(&p).ok())
        .find_map(|p| match p {
            EndpointPolicy::ProviderAddress(IpAddr::V4(a)) => Some(a),
            _ => None,
        })?;
    let IpAddr::V4(ip) = ep.plan.address.addr() else {
        return None;
    };
    let vni = match o.segments.iter().find(|s| s.gateway.trunc().contains(&ip)) {
        Some(s) => s.vni,
        None => route_beyond_subnets(net, IpAddr::V4(ip))?.vni,
    };
    Some(RemotePeer {
        vni,
        ip,
        mac: ep.plan.mac,
        pa,
    })
}

/// What an endpoint of an overlay network programs besides its port: a
/// remote endpoint its peer entries, a local one its `OutBoundNAT` in the
/// router. Empty off overlay networks.
pub(crate) fn endpoint_up(net: &NetworkRec, ep: &EndpointRec) -> Vec<hostnet_dataplane::Op> {
    let Some(o) = &net.overlay else {
        return Vec::new();
    };
    if let Some(peer) = remote_peer(net, ep) {
        return hostnet_drivers::overlay::remote_peer_up(o, &peer);
    }
    match ep.plan.address.addr() {
        IpAddr::V4(a) => {
            hostnet_drivers::overlay::endpoint_up(o, a, ep.plan.outbound_nat.as_deref())
        }
        IpAddr::V6(_) => Vec::new(),
    }
}

/// Undo [`endpoint_up`].
pub(crate) fn endpoint_down(net: &NetworkRec, ep: &EndpointRec) -> Vec<hostnet_dataplane::Op> {
    let mut ops: Vec<_> = endpoint_up(net, ep)
        .iter()
        .filter_map(hostnet_dataplane::Op::undo)
        .collect();
    ops.reverse();
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostnet_dataplane::Op;

    fn overlay() -> Overlay {
        let pa = "192.0.2.11".parse().unwrap();
        Overlay {
            id: Uuid::from_u128(1),
            segments: vec![Segment {
                vni: 4096,
                gateway: "10.244.1.1/24".parse().unwrap(),
            }],
            port: 4789,
            host: HostIdentity {
                pa,
                dr_mac: HostIdentity::default_dr_mac(pa),
            },
            mtu: 1450,
            transit: "169.254.0.0/31".parse().unwrap(),
            router: "/run/r".into(),
        }
    }

    fn route(prefix: &str, pa: &str) -> NetworkPolicy {
        NetworkPolicy::RemoteSubnetRoute {
            destination: prefix.parse().unwrap(),
            isolation_id: 4096,
            provider_address: pa.parse().unwrap(),
            dr_mac: Some(Mac([2, 0x11, 192, 0, 2, 12])),
        }
    }

    #[test]
    fn a_route_change_touches_only_the_routes_that_differ() {
        let o = overlay();
        let (r2, r3) = (
            route("10.244.2.0/24", "192.0.2.12"),
            route("10.244.3.0/24", "192.0.2.12"),
        );
        let added =
            route_changes(&o, std::slice::from_ref(&r2), &[r2.clone(), r3.clone()]).unwrap();
        assert_eq!(added.len(), 3, "one FDB entry, neighbour and route");
        let deletes_fdb = |op: &Op| matches!(op, Op::InNetns { op, .. } if matches!(op.as_ref(), Op::DeleteFdb { .. }));
        assert!(!added.iter().any(deletes_fdb));
        // The same host still has a route: its FDB entry stays.
        let removed = route_changes(&o, &[r2.clone(), r3], std::slice::from_ref(&r2)).unwrap();
        assert_eq!(removed.len(), 2);
        assert!(!removed.iter().any(deletes_fdb));
        let last = route_changes(&o, &[r2], &[]).unwrap();
        assert!(last.iter().any(deletes_fdb));
    }

    #[test]
    fn routes_must_not_overlap_the_network_or_each_other() {
        let o = overlay();
        let local = route("10.244.1.0/25", "192.0.2.12");
        let err = route_changes(&o, &[], &[local]).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidPolicy);
        assert!(err.message.contains("overlaps this network's subnet"));
        let a = route("10.244.0.0/16", "192.0.2.12");
        let b = route("10.244.2.0/24", "192.0.2.13");
        assert!(route_changes(&o, &[], &[a, b]).is_err());
    }
}
