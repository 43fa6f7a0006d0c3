//! ACLs on overlay endpoints (docs/drivers/overlay.md "ACLs"). They are
//! lowered and compiled exactly as on every other driver
//! ([`crate::policy::acl_elements`]), but programmed in the network's
//! router namespace, where its endpoints' ports and VNI bridges are: the
//! router's inet table has the same maps and chains as the host's
//! ([`hostnet_nft::router`]), and its maps are the network's alone, so
//! addresses that repeat across overlay networks never meet.
//!
//! The router keeps conntrack off for bridged traffic (it would cost every
//! overlay frame). An endpoint with ACLs needs state, so the VNI bridge of
//! its subnet hands IPv4 frames to the IP hooks (the bridge's own
//! `nf_call_iptables`), and its address leaves the router's `notrack`
//! rules: only subnets with such endpoints pay for `br_netfilter`, and only
//! their traffic is tracked.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

use hostnet_dataplane::Op;
use hostnet_drivers::overlay::{self, Overlay};

use crate::service::{EndpointRec, NetworkRec};

/// The namespace whose tables hold an endpoint's ACL elements: its overlay
/// network's router, or None for the daemon's own.
pub(crate) fn acl_netns(net: &NetworkRec) -> Option<PathBuf> {
    net.overlay.as_ref().map(|o| o.router.clone())
}

/// The VNI of the subnet of local endpoint `ep`, when it walks ACLs (a
/// remote endpoint never does here: its own host judges its traffic).
fn filtered_vni(net: &NetworkRec, o: &Overlay, ep: &EndpointRec) -> Option<u32> {
    if ep.network != net.plan.id || !crate::policy::walks_acls(ep, net) {
        return None;
    }
    let IpAddr::V4(ip) = ep.plan.address.addr() else {
        return None;
    };
    o.segments
        .iter()
        .find(|s| s.gateway.trunc().contains(&ip))
        .map(|s| s.vni)
}

/// The VNIs whose bridges must hand frames to the IP hooks when
/// `endpoints` are the network's endpoints.
pub(crate) fn filtered_vnis<'a>(
    net: &NetworkRec,
    endpoints: impl IntoIterator<Item = &'a EndpointRec>,
) -> BTreeSet<u32> {
    let Some(o) = &net.overlay else {
        return BTreeSet::new();
    };
    endpoints
        .into_iter()
        .filter_map(|ep| filtered_vni(net, o, ep))
        .collect()
}

/// The ops that take the router's bridges from filtering `before` to
/// `after` (each undoes to its opposite, so a failed plan rolls back).
pub(crate) fn filtering_changes(
    net: &NetworkRec,
    before: &BTreeSet<u32>,
    after: &BTreeSet<u32>,
) -> Vec<Op> {
    let Some(o) = &net.overlay else {
        return Vec::new();
    };
    let set = |vni: u32, on: bool| {
        overlay::in_router(
            o,
            Op::BridgeNfCallIptables {
                bridge: overlay::vni_bridge(vni),
                on,
            },
        )
    };
    let on = after.difference(before).map(|&v| set(v, true));
    let off = before.difference(after).map(|&v| set(v, false));
    on.chain(off).collect()
}

/// Every bridge of the router set as `filtered` says, whatever it was
/// (start-up: the bridges may have been rebuilt, endpoints may have gone).
pub(crate) fn filtering(net: &NetworkRec, filtered: &BTreeSet<u32>) -> Vec<Op> {
    let Some(o) = &net.overlay else {
        return Vec::new();
    };
    o.segments
        .iter()
        .map(|s| {
            overlay::in_router(
                o,
                Op::BridgeNfCallIptables {
                    bridge: overlay::vni_bridge(s.vni),
                    on: filtered.contains(&s.vni),
                },
            )
        })
        .collect()
}

/// The ACL elements `elements` added in (`add`) or removed from the
/// router of `net` (none when empty).
pub(crate) fn router_elements(net: &NetworkRec, elements: Vec<hostnet_nft::SetElement>) -> Vec<Op> {
    match (acl_netns(net), elements.is_empty()) {
        (Some(netns), false) => vec![Op::AddNetnsElements { netns, elements }],
        _ => Vec::new(),
    }
}
