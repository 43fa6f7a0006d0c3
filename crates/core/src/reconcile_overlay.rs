//! Start-up for overlay networks: their router namespaces, which hold all
//! of a network's L2 (VNI bridges, VXLAN devices, its endpoints' ports)
//! and their own tables, are brought back to what the store says.
//!
//! A router that is gone, or whose transit to the host is, is rebuilt
//! whole (its endpoints' veths went with it and are made again). A router
//! that lost a VNI bridge or VXLAN device gets all of them again and its
//! endpoints' ports plugged into the new bridges. Either way its tables
//! are synced with every port's firewall defaults, ACLs and OutBoundNAT
//! elements (kept and patched if they are this version's, else loaded
//! whole), and its remote subnet routes programmed again (each replaces
//! what is there).

use std::collections::HashSet;

use hostnet_dataplane::{apply, teardown, Dataplane, Op};
use hostnet_drivers::overlay::{self, Overlay};
use hostnet_drivers::{bridge, names};
use hostnet_nft::router::TRANSIT_LINK;

use crate::network::network_up;
use crate::object::guid;
use crate::service::{NetworkRec, Service, State};

/// What reconcile left in an overlay network's router.
pub(crate) struct Router {
    /// The router's links after the repair (endpoint ports among them).
    pub links: HashSet<String>,
    /// The VNI bridges were made again: ports still there must join them.
    pub replug: bool,
}

/// The op inside an [`Op::InNetns`], or the op itself.
fn inner(op: &Op) -> &Op {
    match op {
        Op::InNetns { op, .. } => inner(op),
        op => op,
    }
}

/// Whether `op` adds elements to router `o`'s tables.
pub(crate) fn adds_router_elements(o: &Overlay, op: &Op) -> bool {
    matches!(op, Op::AddNetnsElements { netns, .. } if *netns == o.router)
}

/// The elements `ops` add to router `o`'s tables.
fn router_elements(o: &Overlay, ops: Vec<Op>) -> Vec<hostnet_nft::SetElement> {
    ops.into_iter()
        .filter(|op| adds_router_elements(o, op))
        .flat_map(|op| match op {
            Op::AddNetnsElements { elements, .. } => elements,
            _ => Vec::new(),
        })
        .collect()
}

/// The router's links, None if it is gone.
fn router_links(dp: &dyn Dataplane, o: &Overlay) -> Option<HashSet<String>> {
    if !dp.netns_exists(&o.router) {
        return None;
    }
    match dp.in_netns(&o.router).and_then(|r| r.links_with_prefix("")) {
        Ok(links) => Some(links.into_iter().collect()),
        Err(e) => {
            log::warn!("reading the router of overlay network {}: {e}", guid(&o.id));
            None
        }
    }
}

impl Service {
    /// Bring overlay network `net` back (see the module docs). `host_links`:
    /// hostnet's links in the daemon's namespace.
    pub(crate) fn reconcile_overlay(
        &self,
        st: &State,
        net: &NetworkRec,
        o: &Overlay,
        host_links: &HashSet<String>,
    ) -> Router {
        let dp = self.dp.as_ref();
        let ports: Vec<String> = st
            .endpoints
            .iter()
            .filter(|(_, e)| e.network == net.plan.id)
            .map(|(id, _)| names::host_veth(id))
            .collect();
        let transit = overlay::host_links(o)
            .iter()
            .all(|l| host_links.contains(l));
        let found = router_links(dp, o).filter(|r| transit && r.contains(TRANSIT_LINK));
        let up = network_up(net);
        let (ops, replug): (Vec<Op>, bool) =
            match &found {
                None => {
                    log::info!("rebuilding overlay network {}", guid(&o.id));
                    // Its ports first, so their container ends are gone now and
                    // not whenever the kernel frees the old router.
                    let old_ports = ports
                        .iter()
                        .map(|name| overlay::in_router(o, Op::DeleteLink { name: name.clone() }));
                    let down: Vec<Op> = old_ports.chain(overlay::network_down(o)).collect();
                    for e in teardown(dp, &down) {
                        log::warn!("{e}");
                    }
                    let ops = up
                        .into_iter()
                        .filter(|op| !matches!(op, Op::AddElements(_) | Op::LoadNetnsTables { .. }))
                        .collect();
                    (ops, false)
                }
                Some(links) => {
                    let l2 = overlay::router_links(o);
                    let whole = l2.iter().all(|l| links.contains(l));
                    // The VNI bridges (made in the router) and VXLAN devices;
                    // the transit's bridge and veth are the host's.
                    let l2_link = |op: &Op| match op {
                        Op::InNetns { op, .. } => matches!(op.as_ref(), Op::CreateBridge { .. }),
                        op => matches!(op, Op::CreateVxlan { .. }),
                    };
                    let keep = |op: &Op| match inner(op) {
                        Op::Sysctl { .. }
                        | Op::NetnsSysctl { .. }
                        | Op::AddFdb { .. }
                        | Op::AddNeighbour { .. }
                        | Op::AddOnlinkRoute { .. } => true,
                        _ => !whole && l2_link(op),
                    };
                    let mut ops = Vec::new();
                    if !whole {
                        log::info!(
                            "overlay network {}: its VNI bridges and VXLAN devices are made again",
                            guid(&o.id)
                        );
                        // VXLAN devices first: then the bridges hold nothing.
                        ops.extend(l2.iter().rev().filter(|l| links.contains(*l)).map(|name| {
                            overlay::in_router(o, Op::DeleteLink { name: name.clone() })
                        }));
                    }
                    ops.extend(up.into_iter().filter(keep));
                    (ops, !whole)
                }
            };
        // The router's tables with every attached port's firewall defaults
        // and every endpoint's ACLs, in one transaction: an ACL endpoint's
        // walk never lapses, and its tracked connections carry on.
        let mine = || {
            st.endpoints
                .iter()
                .filter(|(_, e)| e.network == net.plan.id)
        };
        let mut elements: Vec<_> = mine()
            .filter(|(_, e)| e.plugged(&st.namespaces) == Some(false))
            .flat_map(|(_, e)| bridge::port_elements(&net.plan, &e.plan, false))
            .collect();
        for (id, e) in mine() {
            match crate::policy::acl_elements(id, e, net) {
                Ok(acl) => elements.extend(acl),
                Err(err) => log::error!("endpoint {}: {err}", guid(id)),
            }
        }
        // And the OutBoundNAT elements of its local endpoints (which
        // `crate::reconcile` then does not add again).
        for (_, e) in mine() {
            elements.extend(router_elements(o, crate::overlay::endpoint_up(net, e)));
        }
        // Its load balancers, and the SourceVIPs it holds for them (their
        // routes once the tables are there).
        let (lb_elements, lb_sources) = crate::load_balancer::router_state(st, o);
        elements.extend(lb_elements);
        // Only the subnets of endpoints with ACLs hand bridged frames to
        // the router's IP hooks (bridges may have been rebuilt, endpoints
        // deleted while the daemon was down).
        let filtered = crate::overlay_acl::filtered_vnis(net, mine().map(|(_, e)| e));
        let after: Vec<Op> = lb_sources
            .into_iter()
            .chain(crate::overlay_acl::filtering(net, &filtered))
            .collect();
        // The router's tables are synced like the host's: kept, and only
        // their difference from the store applied, if they are this
        // version's (`Dataplane::sync_tables`).
        let synced = || {
            apply(dp, &ops)?;
            let router = dp.in_netns(&o.router)?;
            router.sync_tables(&hostnet_nft::router::skeleton(), &elements)?;
            apply(dp, &after)
        };
        if let Err(e) = synced() {
            log::error!("overlay network {}: {e}", guid(&o.id));
        }
        let links = match found {
            None => HashSet::new(),
            Some(links) => {
                // Ports no endpoint owns (a crash between the kernel and the
                // store) go.
                for stale in links
                    .iter()
                    .filter(|l| l.starts_with(names::VETH_PREFIX) && !ports.contains(l))
                {
                    log::info!(
                        "removing stale port {stale} of overlay network {}",
                        guid(&o.id)
                    );
                    let op = overlay::in_router(
                        o,
                        Op::DeleteLink {
                            name: stale.clone(),
                        },
                    );
                    if let Err(e) = dp.execute(&op) {
                        log::warn!("{e}");
                    }
                }
                links
            }
        };
        Router { links, replug }
    }
}
