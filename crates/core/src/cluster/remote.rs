//! Other hosts' endpoints on shared overlay networks, as this host's
//! kernel knows them: a static FDB entry and neighbours per endpoint
//! (`hostnet_drivers::overlay::remote_peer_up`). Derived from the
//! cluster's watch and never written back to the store; an endpoint
//! arriving before its network is kept and programmed when the network is
//! instantiated.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use hostnet_dataplane::{apply, teardown, Op};
use hostnet_drivers::overlay::{
    in_router, remote_peer_down, remote_peer_up, vni_bridge, vxlan, RemotePeer,
};
use hostnet_model::{ErrorCode, HcnError};
use uuid::Uuid;

use super::OverlayEndpoint;
use crate::dns::DnsEndpoint;
use crate::object::guid;
use crate::service::{NetworkRec, Service, State};

/// One remote endpoint: its host, what it is, and what is programmed.
struct RemoteRec {
    host: String,
    endpoint: OverlayEndpoint,
    programmed: Option<RemotePeer>,
}

/// Every remote endpoint this host knows, by endpoint ID.
#[derive(Default)]
pub(crate) struct RemoteEndpoints {
    by_id: BTreeMap<Uuid, RemoteRec>,
}

impl RemoteEndpoints {
    /// Forget what was programmed on a network that is gone (its VXLAN
    /// devices took the entries with them); the records stay.
    pub(crate) fn unprogram_network(&mut self, network: &Uuid) {
        for rec in self.by_id.values_mut() {
            if rec.endpoint.network == *network {
                rec.programmed = None;
            }
        }
    }

    /// Each programmed remote endpoint as the DNS proxy knows it, with its
    /// network: one that is not programmed (its network is not here, its
    /// address clashes) is not reachable, so it is not named either.
    pub(crate) fn dns_entries(&self) -> impl Iterator<Item = (Uuid, (Uuid, DnsEndpoint))> + '_ {
        self.by_id
            .iter()
            .filter_map(|(id, rec)| Some((*id, dns_of(rec)?)))
    }

    /// One remote endpoint as [`RemoteEndpoints::dns_entries`] gives it.
    pub(crate) fn dns_entry(&self, id: &Uuid) -> Option<(Uuid, DnsEndpoint)> {
        dns_of(self.by_id.get(id)?)
    }

    /// How many endpoints each other host has on `network`.
    fn hosts_on(&self, network: &Uuid) -> BTreeMap<&str, usize> {
        let mut hosts = BTreeMap::new();
        for rec in self.by_id.values() {
            if rec.endpoint.network == *network {
                *hosts.entry(rec.host.as_str()).or_default() += 1;
            }
        }
        hosts
    }
}

fn dns_of(rec: &RemoteRec) -> Option<(Uuid, DnsEndpoint)> {
    rec.programmed?;
    Some((
        rec.endpoint.network,
        DnsEndpoint {
            name: rec.endpoint.name.clone(),
            address: IpAddr::V4(rec.endpoint.ip),
            address6: None,
            domain: None,
        },
    ))
}

/// A network another host still has endpoints on cannot be deleted: its
/// containers would lose their network under them.
pub(crate) fn check_no_remote_users(st: &State, network: &Uuid) -> Result<(), HcnError> {
    let hosts = st.remote_endpoints.hosts_on(network);
    if hosts.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = hosts.iter().map(|(h, n)| format!("{h}: {n}")).collect();
    Err(HcnError::new(
        ErrorCode::EntityHasReferences,
        format!(
            "network {} still has endpoints on other hosts of the cluster ({}): delete them there first",
            guid(network),
            list.join(", ")
        ),
    ))
}

impl Service {
    /// Another host's endpoint exists (from the cluster's watch): program
    /// it, or replace it if it changed. Idempotent.
    pub fn remote_endpoint_up(&self, host: &str, endpoint: OverlayEndpoint) {
        let mut st = self.lock();
        let id = endpoint.endpoint;
        if let Some(old) = st.remote_endpoints.by_id.get(&id) {
            if old.endpoint == endpoint && old.host == host {
                return;
            }
            self.unprogram_remote(&mut st, &id);
        }
        st.remote_endpoints.by_id.insert(
            id,
            RemoteRec {
                host: host.to_string(),
                endpoint,
                programmed: None,
            },
        );
        self.program_remote(&mut st, &id);
        self.tell_endpoint(&st, &id);
    }

    /// Another host's endpoint is gone (deleted, or its host's lease
    /// expired): remove its entries. A no-op for an unknown ID.
    pub fn remote_endpoint_down(&self, id: Uuid) {
        let mut st = self.lock();
        self.unprogram_remote(&mut st, &id);
        st.remote_endpoints.by_id.remove(&id);
        self.tell_endpoint(&st, &id);
    }

    /// The remote endpoints known, for a full resync against the cluster.
    pub fn remote_endpoint_ids(&self) -> Vec<Uuid> {
        self.lock().remote_endpoints.by_id.keys().copied().collect()
    }

    /// Program the known remote endpoints of a network just instantiated.
    pub(crate) fn program_remote_endpoints_of(&self, st: &mut State, network: Uuid) {
        let ids: Vec<Uuid> = st
            .remote_endpoints
            .by_id
            .iter()
            .filter(|(_, r)| r.endpoint.network == network)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.program_remote(st, &id);
        }
    }

    /// Program one remote endpoint if its network is here; its address is
    /// reserved in the local pool, so this host never hands it out.
    fn program_remote(&self, st: &mut State, id: &Uuid) {
        let Some(rec) = st.remote_endpoints.by_id.get_mut(id) else {
            return;
        };
        let ep = rec.endpoint.clone();
        let Some(net) = st.networks.get_mut(&ep.network) else {
            return;
        };
        let Some(o) = net.overlay.as_ref() else {
            return;
        };
        let Some(vni) = o
            .segments
            .iter()
            .find(|s| s.gateway.trunc().contains(&ep.ip))
            .map(|s| s.vni)
        else {
            log::warn!(
                "remote endpoint {} ({}) is in no subnet of network {}: ignored",
                guid(id),
                ep.ip,
                guid(&ep.network)
            );
            return;
        };
        let held_here = st
            .endpoints
            .values()
            .any(|e| e.network == ep.network && e.plan.address.addr() == IpAddr::V4(ep.ip));
        if held_here {
            log::error!(
                "remote endpoint {} of host {} has {}, which an endpoint of this host holds: not programmed",
                guid(id),
                rec.host,
                ep.ip
            );
            return;
        }
        let peer = RemotePeer {
            vni,
            ip: ep.ip,
            mac: ep.mac,
            pa: ep.pa,
        };
        if let Err(e) = apply(self.dp.as_ref(), &remote_peer_up(o, &peer)) {
            log::error!(
                "programming remote endpoint {} ({} on {}): {e}",
                guid(id),
                ep.ip,
                rec.host
            );
            return;
        }
        for pool in net
            .pools
            .iter_mut()
            .filter(|p| p.contains(IpAddr::V4(ep.ip)))
        {
            let _ = pool.reserve(IpAddr::V4(ep.ip));
        }
        rec.programmed = Some(peer);
    }

    /// Remove one remote endpoint's entries and give its address back to
    /// the local pool.
    fn unprogram_remote(&self, st: &mut State, id: &Uuid) {
        let Some(rec) = st.remote_endpoints.by_id.get_mut(id) else {
            return;
        };
        let Some(peer) = rec.programmed.take() else {
            return;
        };
        let network = rec.endpoint.network;
        let Some(net) = st.networks.get_mut(&network) else {
            return;
        };
        if let Some(o) = net.overlay.as_ref() {
            for e in teardown(self.dp.as_ref(), &remote_peer_down(o, &peer)) {
                log::warn!("removing remote endpoint {}: {e}", guid(id));
            }
        }
        let held_here = st
            .endpoints
            .values()
            .any(|e| e.network == network && e.plan.address.addr() == IpAddr::V4(peer.ip));
        if !held_here {
            for pool in net.pools.iter_mut() {
                if pool.release(IpAddr::V4(peer.ip)) {
                    break;
                }
            }
        }
    }
}

/// What should be on one VNI's VXLAN device: the MACs sent to a remote
/// host (API-fed remote endpoints, remote subnet routes' DR MACs, the
/// watch's peers) and the addresses with a permanent neighbour.
fn wanted_on(
    st: &State,
    id: &Uuid,
    net: &NetworkRec,
    vni: u32,
) -> (BTreeSet<[u8; 6]>, BTreeSet<Ipv4Addr>) {
    let mut peers: Vec<RemotePeer> = st
        .endpoints
        .values()
        .filter(|e| e.network == *id)
        .filter_map(|e| crate::overlay::remote_peer(net, e))
        .collect();
    peers.extend(
        st.remote_endpoints
            .by_id
            .values()
            .filter(|r| r.endpoint.network == *id)
            .filter_map(|r| r.programmed),
    );
    peers.retain(|p| p.vni == vni);
    let mut macs: BTreeSet<[u8; 6]> = peers.iter().map(|p| p.mac).collect();
    let routes = crate::overlay::remote_routes(&net.spec.policies).unwrap_or_default();
    macs.extend(routes.iter().filter(|r| r.vni == vni).map(|r| r.dr_mac));
    (macs, peers.iter().map(|p| p.ip).collect())
}

impl Service {
    /// Remove the peers a previous run programmed that are gone now (their
    /// endpoint or host went while this daemon was down): FDB entries and
    /// neighbours on every overlay VXLAN device (and the router's bridge),
    /// in each network's router namespace, that no remote endpoint, remote
    /// route or watch peer accounts for.
    /// Call after a full resync from the cluster.
    pub fn prune_stale_peers(&self) {
        let st = self.lock();
        let mut ops = Vec::new();
        for (id, net) in &st.networks {
            let Some(o) = net.overlay.as_ref() else {
                continue;
            };
            let router = match self.dp.in_netns(&o.router) {
                Ok(router) => router,
                Err(e) => {
                    log::warn!("reading the peers of network {}: {e}", guid(id));
                    continue;
                }
            };
            for s in &o.segments {
                let link = vxlan(s.vni);
                let found = match router.vxlan_entries(&link) {
                    Ok(found) => found,
                    Err(e) => {
                        log::warn!("reading the peers of {link}: {e}");
                        continue;
                    }
                };
                let (macs, ips) = wanted_on(&st, id, net, s.vni);
                for (mac, remote) in found.fdb.into_iter().filter(|(m, _)| !macs.contains(m)) {
                    ops.push(in_router(
                        o,
                        Op::DeleteFdb {
                            link: link.clone(),
                            mac,
                            remote,
                        },
                    ));
                }
                for (ip, mac) in found
                    .neighbours
                    .into_iter()
                    .filter(|(ip, _)| !ips.contains(ip))
                {
                    ops.push(Op::DeleteNeighbour {
                        netns: Some(o.router.clone()),
                        link: vni_bridge(s.vni),
                        ip,
                        mac,
                    });
                    ops.push(Op::DeleteNeighbour {
                        netns: Some(o.router.clone()),
                        link: link.clone(),
                        ip,
                        mac,
                    });
                }
            }
        }
        if !ops.is_empty() {
            log::info!(
                "removing {} stale overlay peer entries a previous run left",
                ops.len()
            );
        }
        for e in teardown(self.dp.as_ref(), &ops) {
            log::warn!("removing a stale overlay peer: {e}");
        }
    }
}
