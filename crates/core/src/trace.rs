//! Packet trace (issue 5): an endpoint's policies as the model sees them
//! (`hostnet-policy`), and one packet walked through them.

use std::net::IpAddr;

use hostnet_model::{ErrorCode, HcnError};
use hostnet_policy::{
    evaluate, lower, Direction, LayerName, Packet, Port, PortKind, Proto, Verdict,
};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::object::{guid, Kind};
use crate::service::{EndpointRec, NetworkRec, Service};

/// The body of `POST /v2/endpoints/{id}/trace`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceRequest {
    /// `In` (towards the endpoint) or `Out`.
    #[serde(rename = "Direction")]
    direction: String,
    /// `tcp`, `udp`, `icmp`, `sctp`, or an IP protocol number.
    #[serde(rename = "Protocol")]
    protocol: String,
    /// `IP[:PORT]`; the endpoint's address when it is the sender.
    #[serde(rename = "Source", default)]
    source: Option<String>,
    /// `IP[:PORT]`; the endpoint's address when it is the receiver.
    #[serde(rename = "Destination", default)]
    destination: Option<String>,
    /// List every rule visited, not just the deciding ones.
    #[serde(rename = "Verbose", default)]
    verbose: bool,
}

impl Service {
    /// Walk a packet through endpoint `id`'s policies.
    pub fn trace_endpoint(&self, id: &str, body: &[u8]) -> Result<Value, HcnError> {
        let uuid = crate::service::parse_id(Kind::Endpoint, id)?;
        let req: TraceRequest = serde_json::from_slice(body).map_err(|e| {
            HcnError::new(
                ErrorCode::InvalidJson,
                format!("trace request: {e}: send {{\"Direction\":\"In\"|\"Out\",\"Protocol\":\"tcp\",\"Source\":\"IP[:PORT]\",\"Destination\":\"IP[:PORT]\"}}"),
            )
        })?;
        let st = self.lock();
        let ep = st
            .endpoints
            .get(&uuid)
            .ok_or_else(|| Kind::Endpoint.not_found(id))?;
        let net = st
            .networks
            .get(&ep.network)
            .ok_or_else(|| Kind::Network.not_found(&guid(&ep.network)))?;
        let dir = match req.direction.to_ascii_lowercase().as_str() {
            "in" => Direction::In,
            "out" => Direction::Out,
            other => return Err(bad(format!("Direction {other:?}: use In or Out"))),
        };
        let proto = protocol(&req.protocol)?;
        let own = ep.plan.address.addr();
        let side =
            |given: &Option<String>, mine: bool, what: &str| -> Result<(IpAddr, u16), HcnError> {
                match given {
                    Some(s) => endpoint_of(s, what),
                    None if mine => Ok((own, 40000)),
                    None => Err(bad(format!("{what} is required: give IP[:PORT]"))),
                }
            };
        let (src, sport) = side(&req.source, dir == Direction::Out, "Source")?;
        let (dst, dport) = side(&req.destination, dir == Direction::In, "Destination")?;
        let packet = Packet::new(proto, src, sport, dst, dport);
        let port = endpoint_port(&uuid, ep, net);
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

/// An endpoint's port as the model sees it: its ACLs, the seed's firewall
/// defaults, and its source NAT (a NAT network's masquerade, except within the
/// network; an L2 endpoint's OutBoundNAT).
pub(crate) fn endpoint_port(id: &Uuid, ep: &EndpointRec, net: &NetworkRec) -> Port {
    let object = guid(id);
    let mut port = Port::new(object.clone(), PortKind::Endpoint);
    port.set_group(LayerName::AclHost, lower::firewall_defaults());
    let acls: Vec<lower::SourcedAcl<'_>> = ep
        .acls
        .iter()
        .map(|rule| lower::SourcedAcl {
            rule,
            origin: hostnet_policy::Origin {
                policy: "ACL".into(),
                object: object.clone(),
                hcn_id: None,
            },
        })
        .collect();
    if !acls.is_empty() {
        for (layer, group) in lower::acl_groups(&acls, &|_| None) {
            port.set_group(layer, group);
        }
    }
    let exceptions: Option<Vec<IpNet>> = match (&ep.plan.outbound_nat, net.kind) {
        (Some(ex), _) => Some(ex.iter().map(|&p| IpNet::V4(p)).collect()),
        (None, hostnet_model::domain::NetworkKind::Nat) => {
            Some(net.pools.iter().map(|p| p.prefix()).collect())
        }
        (None, _) => None,
    };
    if let Some(ex) = exceptions {
        port.set_group(LayerName::Nat, lower::outbound_nat(&ex, None, &object));
    }
    port
}

/// The elements that make the kernel walk an endpoint's ACLs (none when it
/// has none): its compiled groups, and its address among the ACL endpoints.
pub(crate) fn acl_elements(
    id: &Uuid,
    ep: &EndpointRec,
    net: &NetworkRec,
) -> Result<Vec<hostnet_nft::SetElement>, HcnError> {
    let IpAddr::V4(addr) = ep.plan.address.addr() else {
        return Ok(Vec::new());
    };
    if ep.acls.is_empty() {
        return Ok(Vec::new());
    }
    let port = endpoint_port(id, ep, net);
    let mut els = hostnet_nft::acl::elements(addr, &port).map_err(|e| {
        HcnError::new(
            ErrorCode::InvalidPolicy,
            format!("the endpoint's ACLs cannot be programmed: {e}"),
        )
    })?;
    els.push(hostnet_nft::acl_endpoint(addr));
    Ok(els)
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

fn protocol(s: &str) -> Result<Proto, HcnError> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "tcp" => Proto::TCP,
        "udp" => Proto::UDP,
        "icmp" => Proto::ICMP,
        "icmpv6" => Proto::ICMPV6,
        "sctp" => Proto::SCTP,
        "igmp" => Proto::IGMP,
        n => Proto(n.parse().map_err(|_| {
            bad(format!(
                "Protocol {s:?}: use tcp, udp, icmp, sctp or an IP protocol number"
            ))
        })?),
    })
}

fn endpoint_of(s: &str, what: &str) -> Result<(IpAddr, u16), HcnError> {
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok((a, 0));
    }
    s.parse::<std::net::SocketAddr>()
        .map(|sa| (sa.ip(), sa.port()))
        .map_err(|_| bad(format!("{what} {s:?} is not IP or IP:PORT ([IPv6]:PORT)")))
}

fn bad(msg: String) -> HcnError {
    HcnError::new(ErrorCode::InvalidJson, msg)
}
