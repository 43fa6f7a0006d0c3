//! Cluster mode's overlay sharing (docs/cluster.md, "Overlay networks
//! across hosts"): what the core offers the daemon's cluster threads.
//!
//! - An overlay network created on one host is cluster-wide: its shared
//!   definition and claims on its VNIs and name go into the same store
//!   transaction as the host's own record ([`shared_network`]); the other
//!   hosts instantiate it under the same ID when their watch sees it.
//! - Each host's local endpoints on overlay networks are handed to an
//!   [`OverlayPublisher`] (hostnetd puts them in etcd under the host's
//!   lease), and other hosts' endpoints come back through
//!   [`Service::remote_endpoint_up`] as kernel peers ([`remote`]).
//!
//! The core never talks to etcd for this beyond its `Store`; watching and
//! leases are the daemon's.

mod remote;
mod shared_network;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use uuid::Uuid;

use crate::object::Kind;
use crate::service::{EndpointRec, NetworkRec, Service};

pub(crate) use remote::{check_no_remote_users, RemoteEndpoints};
pub(crate) use shared_network::{
    network_commit_error, stage_shared_network, stage_unshared_network,
};

/// One endpoint of an overlay network as other hosts need it to reach it:
/// what `RemotePeer` programs, plus its IDs and its name (for the
/// network's DNS proxy; empty when the endpoint has none, or when an
/// older host published it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlayEndpoint {
    pub network: Uuid,
    pub endpoint: Uuid,
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    /// The provider address of the host it lives on.
    pub pa: Ipv4Addr,
    pub name: String,
}

/// Where the core hands this host's overlay endpoints (cluster mode). Its
/// calls are made with the service lock held: they must not block.
pub trait OverlayPublisher: Send + Sync {
    /// A local endpoint exists (created now, or found at start).
    fn publish(&self, endpoint: OverlayEndpoint);
    /// A local endpoint is gone.
    fn withdraw(&self, network: Uuid, endpoint: Uuid);
}

/// A local endpoint of an overlay network as published; None for any
/// other endpoint (other drivers, remote endpoints given through the API).
fn local_overlay_endpoint(
    id: &Uuid,
    net: &NetworkRec,
    ep: &EndpointRec,
) -> Option<OverlayEndpoint> {
    let o = net.overlay.as_ref()?;
    if crate::overlay::remote_peer(net, ep).is_some() {
        return None;
    }
    let IpAddr::V4(ip) = ep.plan.address.addr() else {
        return None;
    };
    Some(OverlayEndpoint {
        network: ep.network,
        endpoint: *id,
        ip,
        mac: ep.plan.mac,
        pa: o.host.pa,
        name: ep.name.clone(),
    })
}

impl Service {
    /// Cluster mode: overlay networks are cluster-wide and local overlay
    /// endpoints are published through `publisher`, starting with every
    /// one that exists now. Set once, before the API serves.
    pub fn share_overlays(&self, publisher: Arc<dyn OverlayPublisher>) {
        if self.overlay_publisher.set(publisher.clone()).is_err() {
            return;
        }
        let st = self.lock();
        for (id, ep) in &st.endpoints {
            if let Some(net) = st.networks.get(&ep.network) {
                if let Some(published) = local_overlay_endpoint(id, net, ep) {
                    publisher.publish(published);
                }
            }
        }
    }

    /// Whether overlay networks are cluster-wide (cluster mode).
    pub(crate) fn shares_overlays(&self) -> bool {
        self.overlay_publisher.get().is_some()
    }

    /// After a create: publish the object if it is a local overlay endpoint.
    pub(crate) fn notify_overlay_publisher(&self, kind: Kind, id: &Uuid) {
        let Some(publisher) = self.overlay_publisher.get() else {
            return;
        };
        if kind != Kind::Endpoint {
            return;
        }
        let st = self.lock();
        let Some(ep) = st.endpoints.get(id) else {
            return;
        };
        if let Some(published) = st
            .networks
            .get(&ep.network)
            .and_then(|net| local_overlay_endpoint(id, net, ep))
        {
            publisher.publish(published);
        }
    }

    /// After an endpoint's delete: withdraw what was published of it (a
    /// no-op for endpoints that never were).
    pub(crate) fn withdraw_overlay_endpoint(&self, network: Uuid, endpoint: Uuid) {
        if let Some(publisher) = self.overlay_publisher.get() {
            publisher.withdraw(network, endpoint);
        }
    }
}

/// After losing an address to another host's claim: the next pick starts
/// at a random place of that subnet, so hosts creating at the same time
/// stop walking the pool in step (which made one lose every time).
pub(crate) fn scatter_after_collision(net: &mut NetworkRec, lost: IpAddr) {
    if let Some(pool) = net.pools.iter_mut().find(|p| p.contains(lost)) {
        pool.move_cursor(Uuid::new_v4().as_u128());
    }
}
