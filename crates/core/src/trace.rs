//! Packet trace (issue 5): one packet walked through an endpoint's port
//! (see `crate::policy`).

use std::net::IpAddr;

use hostnet_model::{ErrorCode, HcnError};
use hostnet_policy::{evaluate, Direction, Packet, Proto, Verdict};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::object::{guid, Kind};
use crate::service::{NetworkRec, Service};

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
        let port = crate::policy::endpoint_port(&uuid, ep, net);
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
