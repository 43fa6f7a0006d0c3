//! Load balancers on Overlay networks (docs/load-balancers.md#on-overlay-networks).
//!
//! An overlay's containers reach a VIP through their gateway, the
//! network's router namespace, so the router load balances: its table has
//! the host table's maps and pick chains (`hostnet_nft::router`), and the
//! same [`hostnet_nft::lb::elements`] program them there. Backends are
//! local or remote endpoints of the network; every connection leaves
//! from the LB's SourceVIP, an address of the network that the router
//! holds (a local route: it answers ARP for it and takes packets to it),
//! so a backend's replies, from this host or over VXLAN from another,
//! come back to this router, whose conntrack undoes the NAT. The
//! SourceVIP is what kube-proxy makes for `--source-vip`: an endpoint of
//! the node's subnet that is never attached.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use hostnet_dataplane::{LocalRoutes, Op};
use hostnet_drivers::overlay::Overlay;
use hostnet_model::domain::LoadBalancerSpec;
use hostnet_model::{ErrorCode, HcnError};
use hostnet_nft::lb::Reach;
use hostnet_nft::SetElement;
use uuid::Uuid;

use crate::object::guid;
use crate::reprogram::Delta;
use crate::service::{NetworkRec, State};

/// The network an LB is on: the one it names, else its first backend's.
pub(super) fn network_of(st: &State, spec: &LoadBalancerSpec) -> Option<Uuid> {
    spec.network.or_else(|| {
        spec.endpoints
            .iter()
            .find_map(|e| Some(st.endpoints.get(e)?.network))
    })
}

/// The overlay network an LB is programmed in, None for the host's table.
pub(super) fn overlay_of<'a>(st: &'a State, spec: &LoadBalancerSpec) -> Option<&'a Overlay> {
    st.networks.get(&network_of(st, spec)?)?.overlay.as_ref()
}

/// An LB on an overlay network stays there when its backends go: its
/// network is pinned at create (or kept from the LB it replaces), as if
/// the document had named it.
pub(super) fn pin_network(
    st: &State,
    mut spec: LoadBalancerSpec,
    old: Option<&LoadBalancerSpec>,
) -> LoadBalancerSpec {
    if spec.network.is_none() {
        spec.network = old
            .and_then(|o| o.network)
            .filter(|n| st.networks.get(n).is_some_and(|n| n.overlay.is_some()))
            .or_else(|| overlay_of(st, &spec).and(network_of(st, &spec)));
    }
    spec
}

/// What an LB on overlay network `net` must be: VIP frontends outside the
/// network's subnets, no DSR or PreserveDip, and a SourceVIP that is an
/// endpoint of the network the router can hold.
pub(super) fn check(st: &State, spec: &LoadBalancerSpec, net: &NetworkRec) -> Result<(), HcnError> {
    let Some(o) = &net.overlay else {
        return Ok(());
    };
    let unsupported = |m: String| Err(HcnError::new(ErrorCode::RequestUnsupported, m));
    let name = &net.name;
    if spec.flags & 1 != 0 {
        return unsupported(format!("EnableDirectServerReturn is not supported on Overlay network {name}: its backends may be on other hosts; remove the flag"));
    }
    if super::preserve_dip::is_preserve_dip(spec) {
        return unsupported(format!(
            "EnablePreserveDip is not supported on Overlay network {name}: remove the flag"
        ));
    }
    if spec.frontend_vips.is_empty() {
        return unsupported(format!("a load balancer on Overlay network {name} needs FrontendVIPs: node ports would be on the host's addresses, and the host does not route into the overlay; give the service's VIP"));
    }
    for vip in &spec.frontend_vips {
        let inside = |s: &&hostnet_drivers::overlay::Segment| match vip {
            IpAddr::V4(v) => s.gateway.trunc().contains(v),
            IpAddr::V6(_) => false,
        };
        if let Some(s) = o.segments.iter().find(inside) {
            return unsupported(format!("FrontendVIP {vip} is inside subnet {} of Overlay network {name}: containers reach such an address directly, never through the router that load balances; give a VIP outside the network's subnets (a service range)", s.gateway.trunc()));
        }
    }
    let Some(source) = spec.source_vip else {
        return unsupported(format!("a load balancer on Overlay network {name} needs a SourceVIP: connections to its backends leave from it so that the replies, from this host's backends or over VXLAN from another host's, come back to this host, which undoes the NAT; create an endpoint on the network (not attached, as kube-proxy does for --source-vip) and give its address"));
    };
    let holder = st
        .endpoints
        .values()
        .find(|e| e.network == net.plan.id && e.plan.address.addr() == source);
    let Some(holder) = holder else {
        return unsupported(format!("SourceVIP {source} is not the address of an endpoint of Overlay network {name}: create an endpoint with it on the network (not attached, as kube-proxy does for --source-vip) first"));
    };
    if crate::overlay::remote_peer(net, holder).is_some() {
        return unsupported(format!("SourceVIP {source} is a remote endpoint's, another host's: give an address of an endpoint of this host"));
    }
    if holder.namespace.is_some() || holder.vm_nic {
        return unsupported(format!("SourceVIP {source} is the address of an attached endpoint: this host's router takes it over for the load balancers' replies; give the address of an endpoint that is not attached"));
    }
    Ok(())
}

/// An LB's elements in its router: its VIP frontends, reached from the
/// overlay's containers (the router's only clients).
pub(super) fn elements(st: &State, spec: &LoadBalancerSpec) -> Vec<SetElement> {
    super::program::frontends(st, spec)
        .into_iter()
        .flat_map(|mut f| {
            f.reach = Reach {
                guests: true,
                ..Reach::default()
            };
            hostnet_nft::lb::elements(&f)
        })
        .collect()
}

fn source4(spec: &LoadBalancerSpec) -> Option<Ipv4Addr> {
    match spec.source_vip {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    }
}

/// Whether an LB other than `except` on network `net` has SourceVIP `a`
/// (stops at the first: kube-proxy gives every LB the same one).
fn source_in_use(st: &State, net: Uuid, a: Ipv4Addr, except: &Uuid) -> bool {
    st.load_balancers.iter().any(|(id, lb)| {
        id != except && source4(&lb.spec) == Some(a) && lb.spec.network == Some(net)
    })
}

/// Per router: elements before and after, SourceVIPs it takes and leaves.
#[derive(Default)]
struct RouterChange {
    before: Vec<SetElement>,
    after: Vec<SetElement>,
    take: BTreeSet<Ipv4Addr>,
    leave: BTreeSet<Ipv4Addr>,
}

/// The router changes of LBs going from `old` to `new` (each `(id,
/// spec)`; None: no LB), in one plan per router: SourceVIPs taken first,
/// then one element transaction, then SourceVIPs no LB needs left.
#[derive(Default)]
pub(super) struct Change {
    routers: BTreeMap<PathBuf, RouterChange>,
}

impl Change {
    /// Add LB `id`'s change from `old` to `new`.
    pub(super) fn push(
        &mut self,
        st: &State,
        id: &Uuid,
        old: Option<&LoadBalancerSpec>,
        new: Option<&LoadBalancerSpec>,
    ) {
        let old = old.and_then(|s| Some((s, overlay_of(st, s)?)));
        let new = new.and_then(|s| Some((s, overlay_of(st, s)?)));
        if let Some((s, o)) = old {
            let r = self.routers.entry(o.router.clone()).or_default();
            r.before.extend(elements(st, s));
            let kept = new.is_some_and(|(n, no)| no.id == o.id && source4(n) == source4(s));
            if let Some(a) = source4(s).filter(|&a| !kept && !source_in_use(st, o.id, a, id)) {
                r.leave.insert(a);
            }
        }
        if let Some((s, o)) = new {
            let r = self.routers.entry(o.router.clone()).or_default();
            r.after.extend(elements(st, s));
            let held = old.is_some_and(|(p, po)| po.id == o.id && source4(p) == source4(s));
            if let Some(a) = source4(s).filter(|&a| !held && !source_in_use(st, o.id, a, id)) {
                r.take.insert(a);
            }
        }
    }

    /// The plan, empty when no LB is on an overlay network.
    pub(super) fn ops(self) -> (Vec<Op>, Vec<Op>) {
        let (mut first, mut later) = (Vec::new(), Vec::new());
        for (netns, r) in self.routers {
            let routes = |a: &BTreeSet<Ipv4Addr>| {
                vec![LocalRoutes {
                    netns: netns.clone(),
                    addresses: a.iter().copied().collect(),
                }]
            };
            let mut before = r.before;
            before.extend(r.leave.iter().map(|&a| hostnet_nft::router::lb_source(a)));
            let mut after = r.after;
            after.extend(r.take.iter().map(|&a| hostnet_nft::router::lb_source(a)));
            if !r.take.is_empty() {
                first.push(Op::AddLocalRoutes(routes(&r.take)));
            }
            let mut delta = Delta::default();
            delta.push(before, after);
            if let Some(op) = delta.op() {
                first.push(Op::InNetns {
                    netns: netns.clone(),
                    op: Box::new(op),
                });
            }
            if !r.leave.is_empty() {
                later.push(Op::DeleteLocalRoutes(routes(&r.leave)));
            }
        }
        (first, later)
    }
}

/// What overlay network `o`'s router holds for its LBs, for the start-up
/// load: their elements (with the SourceVIPs') and the SourceVIPs' local
/// routes.
pub(crate) fn router_state(st: &State, o: &Overlay) -> (Vec<SetElement>, Vec<Op>) {
    let mut els = Vec::new();
    let mut sources = BTreeSet::new();
    for (_, lb) in st.load_balancers.iter() {
        if lb.spec.network != Some(o.id) {
            continue;
        }
        els.extend(elements(st, &lb.spec));
        sources.extend(source4(&lb.spec));
    }
    els.extend(sources.iter().map(|&a| hostnet_nft::router::lb_source(a)));
    let ops = match sources.is_empty() {
        true => Vec::new(),
        false => vec![Op::AddLocalRoutes(vec![LocalRoutes {
            netns: o.router.clone(),
            addresses: sources.into_iter().collect(),
        }])],
    };
    (els, ops)
}

/// Name an overlay LB's network in its stored object (pinned, see
/// [`pin_network`]).
pub(super) fn name_network(
    obj: &mut serde_json::Map<String, serde_json::Value>,
    spec: &LoadBalancerSpec,
) {
    if let Some(net) = spec.network {
        obj.entry("HostComputeNetwork")
            .or_insert_with(|| serde_json::json!(guid(&net)));
    }
}

/// An LB on overlay network `net` whose SourceVIP is `addr`: the router
/// holds that address, so its endpoint cannot be attached meanwhile.
pub(crate) fn holding_source_vip(st: &State, net: Uuid, addr: IpAddr) -> Option<Uuid> {
    st.load_balancers
        .iter()
        .find(|(_, lb)| lb.spec.network == Some(net) && lb.spec.source_vip == Some(addr))
        .map(|(id, _)| *id)
}

/// An LB pinned to network `net` (see [`pin_network`]; ask only of an
/// overlay network: others' LBs may name theirs without being pinned).
pub(crate) fn pinned_to(st: &State, net: Uuid) -> Option<Uuid> {
    st.load_balancers
        .iter()
        .find(|(_, lb)| lb.spec.network == Some(net))
        .map(|(id, _)| *id)
}
