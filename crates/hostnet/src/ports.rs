//! `-p [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]` and HCN PortMapping policies.
//!
//! The same spelling as `docker run -p`, so users carry their habits over;
//! it becomes an HCN v2 `PortMapping` endpoint policy (numeric protocol, as
//! every HCN client sends), and is rendered back the way `docker ps` shows it.

use serde_json::{json, Value};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// IANA protocol number of TCP.
const TCP: u64 = 6;
/// IANA protocol number of UDP.
const UDP: u64 = 17;
/// PortMapping `Flags` bit for an IPv6 mapping (HCN NatFlags).
const NAT_FLAG_IPV6: u64 = 2;

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
}

impl Protocol {
    /// The IANA number HCN expects.
    pub fn number(self) -> u64 {
        match self {
            Protocol::Tcp => TCP,
            Protocol::Udp => UDP,
        }
    }
}

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// Host address to listen on (`VIP`); all addresses when `None`.
    pub host_ip: Option<IpAddr>,
    /// Port on the host (`ExternalPort`).
    pub host_port: u16,
    /// Port in the container (`InternalPort`).
    pub container_port: u16,
    /// Transport protocol.
    pub protocol: Protocol,
}

impl PortSpec {
    /// The HCN v2 `PortMapping` endpoint policy.
    pub fn to_policy(&self) -> Value {
        let mut settings = json!({
            "Protocol": self.protocol.number(),
            "InternalPort": self.container_port,
            "ExternalPort": self.host_port,
        });
        if let Some(ip) = self.host_ip {
            settings["VIP"] = json!(ip.to_string());
            if ip.is_ipv6() {
                settings["Flags"] = json!(NAT_FLAG_IPV6);
            }
        }
        json!({ "Type": "PortMapping", "Settings": settings })
    }
}

fn parse_port(s: &str, what: &str, spec: &str) -> Result<u16, String> {
    if s.contains('-') {
        return Err(format!(
            "invalid port mapping {spec:?}: port ranges are not supported"
        ));
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!(
            "invalid port mapping {spec:?}: {what} port {s:?} must be a number from 1 to 65535"
        )),
        Ok(port) => Ok(port),
    }
}

impl FromStr for PortSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let (addr_ports, protocol) = match spec.rsplit_once('/') {
            Some((rest, proto)) => {
                let protocol = match proto.to_ascii_lowercase().as_str() {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    _ => {
                        return Err(format!(
                        "invalid port mapping {spec:?}: protocol must be tcp or udp, not {proto:?}"
                    ))
                    }
                };
                (rest, protocol)
            }
            None => (spec, Protocol::Tcp),
        };
        // From the right: CONTAINERPORT, HOSTPORT, then whatever is left is the
        // host address (which may itself contain colons when it is IPv6).
        let mut parts = addr_ports.rsplitn(3, ':');
        let container = parts.next().unwrap_or_default();
        let Some(host) = parts.next() else {
            return Err(format!(
                "invalid port mapping {spec:?}: expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]"
            ));
        };
        let host_ip = match parts.next() {
            None | Some("") => None,
            Some(ip) => {
                let bare = ip
                    .strip_prefix('[')
                    .and_then(|i| i.strip_suffix(']'))
                    .unwrap_or(ip);
                Some(bare.parse::<IpAddr>().map_err(|_| {
                    format!("invalid port mapping {spec:?}: {ip:?} is not an IP address")
                })?)
            }
        };
        Ok(PortSpec {
            host_ip,
            host_port: parse_port(host, "host", spec)?,
            container_port: parse_port(container, "container", spec)?,
            protocol,
        })
    }
}

/// One PortMapping as `docker ps` shows it: `0.0.0.0:8080->80/tcp`.
struct Shown<'a>(&'a Value);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let flags = s.get("Flags").and_then(Value::as_u64).unwrap_or(0);
        let vip = s
            .get("VIP")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty());
        match vip {
            Some(ip) if ip.contains(':') => write!(f, "[{ip}]")?,
            Some(ip) => f.write_str(ip)?,
            None if flags & NAT_FLAG_IPV6 != 0 => f.write_str("[::]")?,
            None => f.write_str("0.0.0.0")?,
        }
        let port = |key: &str| s.get(key).map(|v| v.to_string()).unwrap_or_default();
        write!(f, ":{}->{}/", port("ExternalPort"), port("InternalPort"))?;
        match s.get("Protocol") {
            Some(Value::Number(n)) if n.as_u64() == Some(TCP) => f.write_str("tcp"),
            Some(Value::Number(n)) if n.as_u64() == Some(UDP) => f.write_str("udp"),
            Some(Value::Number(n)) => write!(f, "{n}"),
            Some(Value::String(p)) => f.write_str(&p.to_ascii_lowercase()),
            _ => f.write_str("tcp"),
        }
    }
}

/// The PortMapping policies among `policies`, rendered like `docker ps`.
pub fn describe_port_mappings(policies: Option<&Value>) -> Vec<String> {
    let Some(Value::Array(policies)) = policies else {
        return Vec::new();
    };
    policies
        .iter()
        .filter(|p| {
            p.get("Type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("PortMapping"))
        })
        .filter_map(|p| p.get("Settings"))
        .map(|s| Shown(s).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<PortSpec, String> {
        s.parse()
    }

    #[test]
    fn forms() {
        assert_eq!(
            parse("8080:80").unwrap(),
            PortSpec {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp
            }
        );
        let udp = parse("127.0.0.1:5353:53/UDP").unwrap();
        assert_eq!(udp.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(udp.protocol, Protocol::Udp);
        assert_eq!(
            parse("[::1]:8080:80/tcp").unwrap().host_ip,
            Some("::1".parse().unwrap())
        );
        assert_eq!(
            parse("::1:8080:80").unwrap().host_ip,
            Some("::1".parse().unwrap())
        );
        assert_eq!(parse(":8080:80").unwrap().host_ip, None);
    }

    #[test]
    fn errors() {
        for (spec, needle) in [
            ("80", "expected [HOSTIP:]HOSTPORT:CONTAINERPORT"),
            ("8080:80/sctp", "protocol must be tcp or udp"),
            ("8080:0", "container port \"0\""),
            ("70000:80", "host port \"70000\""),
            ("x:80", "host port \"x\""),
            ("8080-8081:80", "ranges are not supported"),
            ("myhost:8080:80", "\"myhost\" is not an IP address"),
            ("1.2.3.4:8080:", "container port \"\""),
        ] {
            let err = parse(spec).unwrap_err();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn policies() {
        assert_eq!(
            parse("8080:80").unwrap().to_policy(),
            json!({"Type":"PortMapping","Settings":{"Protocol":6,"InternalPort":80,"ExternalPort":8080}})
        );
        assert_eq!(
            parse("10.0.0.1:53:53/udp").unwrap().to_policy(),
            json!({"Type":"PortMapping","Settings":{"Protocol":17,"InternalPort":53,"ExternalPort":53,"VIP":"10.0.0.1"}})
        );
        assert_eq!(
            parse("[::1]:8080:80").unwrap().to_policy()["Settings"]["Flags"],
            2
        );
    }

    #[test]
    fn rendering() {
        let policies = json!([
            {"Type":"OutBoundNAT","Settings":{}},
            {"Type":"PortMapping","Settings":{"Protocol":6,"InternalPort":80,"ExternalPort":8080}},
            {"Type":"portmapping","Settings":{"Protocol":17,"InternalPort":53,"ExternalPort":5353,"VIP":"10.0.0.1"}},
            {"Type":"PortMapping","Settings":{"Protocol":6,"InternalPort":80,"ExternalPort":8443,"VIP":"::1","Flags":2}},
            {"Type":"PortMapping","Settings":{"Protocol":132,"InternalPort":9,"ExternalPort":9,"Flags":2}},
        ]);
        assert_eq!(
            describe_port_mappings(Some(&policies)),
            [
                "0.0.0.0:8080->80/tcp",
                "10.0.0.1:5353->53/udp",
                "[::1]:8443->80/tcp",
                "[::]:9->9/132"
            ]
        );
        assert!(describe_port_mappings(None).is_empty());
    }
}
