//! The body of hostnet's `POST /v2/endpoints/{id}/trace` (a hostnet
//! extension), validated: which way, which protocol, which ends.

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

use super::acl::Direction;
use crate::error::{ErrorCode, HcnError};

/// A validated trace request. An absent side is the endpoint's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSpec {
    pub direction: Direction,
    /// IANA protocol number.
    pub protocol: u8,
    /// `IP` and port (0 when not given).
    pub source: Option<(IpAddr, u16)>,
    pub destination: Option<(IpAddr, u16)>,
    /// List every rule visited, not just the deciding ones.
    pub verbose: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(rename = "Direction")]
    direction: String,
    #[serde(rename = "Protocol")]
    protocol: String,
    #[serde(rename = "Source", default)]
    source: Option<String>,
    #[serde(rename = "Destination", default)]
    destination: Option<String>,
    #[serde(rename = "Verbose", default)]
    verbose: bool,
}

/// Parses and checks a trace request; the side the endpoint is on may be
/// left out, the other is required.
pub fn validate_trace(body: &[u8]) -> Result<TraceSpec, HcnError> {
    let w: Wire = serde_json::from_slice(body).map_err(|e| {
        bad(format!("trace request: {e}: send {{\"Direction\":\"In\"|\"Out\",\"Protocol\":\"tcp\",\"Source\":\"IP[:PORT]\",\"Destination\":\"IP[:PORT]\"}}"))
    })?;
    let direction = match w.direction.to_ascii_lowercase().as_str() {
        "in" => Direction::In,
        "out" => Direction::Out,
        other => return Err(bad(format!("Direction {other:?}: use In or Out"))),
    };
    let protocol = match w.protocol.to_ascii_lowercase().as_str() {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "icmpv6" => 58,
        "sctp" => 132,
        "igmp" => 2,
        n => n.parse().map_err(|_| {
            bad(format!(
                "Protocol {:?}: use tcp, udp, icmp, sctp or an IP protocol number",
                w.protocol
            ))
        })?,
    };
    let side = |given: Option<String>, required: bool, what: &str| match given {
        Some(s) => endpoint_of(&s, what).map(Some),
        None if required => Err(bad(format!("{what} is required: give IP[:PORT]"))),
        None => Ok(None),
    };
    Ok(TraceSpec {
        direction,
        protocol,
        source: side(w.source, direction == Direction::In, "Source")?,
        destination: side(w.destination, direction == Direction::Out, "Destination")?,
        verbose: w.verbose,
    })
}

fn endpoint_of(s: &str, what: &str) -> Result<(IpAddr, u16), HcnError> {
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok((a, 0));
    }
    s.parse::<SocketAddr>()
        .map(|sa| (sa.ip(), sa.port()))
        .map_err(|_| bad(format!("{what} {s:?} is not IP or IP:PORT ([IPv6]:PORT)")))
}

fn bad(msg: String) -> HcnError {
    HcnError::new(ErrorCode::InvalidJson, msg)
}
