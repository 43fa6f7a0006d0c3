//! Packet trace (issue 5): one packet walked through an endpoint's port
//! (see `crate::policy`).

use std::net::IpAddr;

use hostnet_model::{ErrorCode, HcnError};
use hostnet_policy::{evaluate, Direction, Packet, Proto, Verdict};
use serde_json::{json, Value};

use crate::object::{guid, Kind};
use crate::service::{EndpointRec, NetworkRec, Service};

impl Service {
    /// Walk a packet through endpoint `id`'s policies.
    pub fn trace_endpoint(&self, id: &str, body: &[u8]) -> Result<Value, HcnError> {
        let uuid = crate::service::parse_id(Kind::Endpoint, id)?;
        let req = hostnet_model::domain::validate_trace(body)?;
        let st = self.lock();
        let ep = st
            .endpoints
            .get(&uuid)
            .ok_or_else(|| Kind::Endpoint.not_found(id))?;
        let net = st
            .networks
            .get(&ep.network)
            .ok_or_else(|| Kind::Network.not_found(&guid(&ep.network)))?;
        let dir = Direction::from(req.direction);
        let (src, sport, dst, dport) = packet_ends(req.source, req.destination, ep)?;
        let proto = Proto(req.protocol);
        let packet = Packet::new(proto, src, sport, dst, dport);
        let mut port = crate::policy::endpoint_port(&uuid, ep, net);
        for group in crate::load_balancer::client_groups(&st, &self.node_port_addresses()) {
            port.set_group(hostnet_policy::LayerName::Lb, group);
        }
        let routes = crate::route::endpoint_routes(&st, &uuid, ep);
        port.set_group(
            hostnet_policy::LayerName::Route,
            hostnet_policy::lower_egress::route_group(&routes),
        );
        let e = evaluate(&port, packet, dir, host_address(net));
        let (verdict, after) = match &e.verdict {
            Verdict::Allow { packet } => ("Allow", Some(packet.to_string())),
            Verdict::Block { .. } => ("Block", None),
        };
        Ok(json!({
            "Endpoint": guid(&uuid),
            "Verdict": verdict,
            "Packet": packet.to_string(),
            "PacketAfter": after,
            "Epoch": port.epoch(),
            "Text": e.trace.render(&e.verdict, req.verbose),
        }))
    }
}

impl Service {
    /// The addresses a container reaches the host's node ports on: every
    /// address of the host but loopback ones (a container's own loopback
    /// is its own) and IPv6 link-local ones (its own link's, not routed).
    /// Empty when the kernel cannot say: the trace then shows no node
    /// ports rather than failing.
    fn node_port_addresses(&self) -> Vec<IpAddr> {
        match self.dp.local_addresses() {
            Ok(all) => all
                .into_iter()
                .filter(|a| match a {
                    IpAddr::V4(a) => !a.is_loopback(),
                    IpAddr::V6(a) => !a.is_loopback() && !a.is_unicast_link_local(),
                })
                .collect(),
            Err(e) => {
                log::warn!("trace without node ports: {e}");
                Vec::new()
            }
        }
    }
}

/// The packet's source and destination. A side left out is the
/// endpoint's own, in the family of the other side (a dual-stack endpoint
/// has one of each); both sides must be of one family.
fn packet_ends(
    source: Option<(IpAddr, u16)>,
    destination: Option<(IpAddr, u16)>,
    ep: &EndpointRec,
) -> Result<(IpAddr, u16, IpAddr, u16), HcnError> {
    let given = source.or(destination).map(|(a, _)| a);
    let own_addr = match given {
        Some(IpAddr::V6(_)) => ep.plan.address6.map(|a| a.addr()).ok_or_else(|| {
            HcnError::new(
                ErrorCode::InvalidIp,
                "the packet is IPv6, and the endpoint has no IPv6 address: give IPv4 addresses",
            )
        })?,
        _ => ep.plan.address.addr(),
    };
    let own = (own_addr, 40000);
    let (src, sport) = source.unwrap_or(own);
    let (dst, dport) = destination.unwrap_or(own);
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(HcnError::new(
            ErrorCode::InvalidIp,
            format!("Source {src} and Destination {dst} are of different IP families: give both IPv4 or both IPv6"),
        ));
    }
    Ok((src, sport, dst, dport))
}

/// The host's address a source NAT of this endpoint rewrites to: on a
/// bound adapter its address. A NAT network masquerades to whichever
/// interface the host routes out of, so there the trace says
/// `snat host-address` and keeps the source.
fn host_address(net: &NetworkRec) -> Option<IpAddr> {
    net.adapter
        .iter()
        .flat_map(|a| &a.addresses)
        .map(|a| a.addr())
        .find(IpAddr::is_ipv4)
}
