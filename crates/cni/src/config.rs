//! The network configuration on stdin, parsed and checked once.
//!
//! hostnet-cni's own keys (all optional):
//!
//! - `network`: the hostnet network to attach to (default: `name`);
//! - `driver`: its type when hostnet-cni creates it (default `nat`);
//! - `subnet`, `gateway`: its subnet when created (else hostnetd picks one);
//! - `options`: further HCN network fields for the create (`Policies`,
//!   `Dns`, …), passed through as hostnetd's API takes them;
//! - `socket`: hostnetd's socket (default `HOSTNET_SOCKET` or
//!   `/run/hostnet/hostnet.sock`);
//! - `dns`: the spec's DNS settings for every container.
//!
//! The runtime adds `runtimeConfig` for the capabilities the config
//! declares: `portMappings`, `ips`, `mac`, `dns` (`bandwidth` is refused:
//! hostnet has no rate limits yet; chain the `bandwidth` plugin instead).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{codes, CniError};
use crate::version::Version;

/// A hostnet network type, as the config spells it and HCN does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Driver {
    pub cni: &'static str,
    pub hcn: &'static str,
}

/// The drivers a config may name; hostnetd refuses by name the types it
/// does not implement yet.
pub const DRIVERS: [Driver; 8] = [
    Driver {
        cni: "nat",
        hcn: "NAT",
    },
    Driver {
        cni: "transparent",
        hcn: "Transparent",
    },
    Driver {
        cni: "l2bridge",
        hcn: "L2Bridge",
    },
    Driver {
        cni: "l2tunnel",
        hcn: "L2Tunnel",
    },
    Driver {
        cni: "overlay",
        hcn: "Overlay",
    },
    Driver {
        cni: "internal",
        hcn: "Internal",
    },
    Driver {
        cni: "private",
        hcn: "Private",
    },
    Driver {
        cni: "ics",
        hcn: "ICS",
    },
];

/// A port mapping (`runtimeConfig.portMappings`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    #[serde(default = "tcp")]
    pub protocol: String,
    #[serde(default, rename = "hostIP")]
    pub host_ip: String,
}

fn tcp() -> String {
    "tcp".into()
}

/// The spec's DNS type (config `dns`, result `dns`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Dns {
    #[serde(default)]
    pub nameservers: Vec<String>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub search: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

/// `runtimeConfig.dns` (the `dns` capability).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RuntimeDns {
    #[serde(default)]
    pub servers: Vec<String>,
    #[serde(default)]
    pub searches: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

/// One entry of `cni.dev/valid-attachments` (GC).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRuntime {
    #[serde(default)]
    port_mappings: Vec<PortMapping>,
    #[serde(default)]
    ips: Vec<String>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    dns: Option<RuntimeDns>,
    #[serde(default)]
    bandwidth: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    cni_version: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    plugin_type: Option<String>,
    network: Option<String>,
    driver: Option<String>,
    subnet: Option<String>,
    gateway: Option<String>,
    options: Option<Map<String, Value>>,
    socket: Option<String>,
    dns: Option<Dns>,
    runtime_config: Option<RawRuntime>,
    prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<Attachment>>,
}

/// A checked network configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub version: Version,
    /// The CNI network name: attachments are recorded under it.
    pub name: String,
    /// The hostnet network's name.
    pub network: String,
    /// None: any type will do for an existing network; NAT when creating.
    pub driver: Option<Driver>,
    pub subnet: Option<IpNet>,
    pub gateway: Option<IpAddr>,
    pub options: Map<String, Value>,
    pub socket: Option<String>,
    pub dns: Option<Dns>,
    pub port_mappings: Vec<PortMapping>,
    /// Requested addresses, with their prefix length if given.
    pub ips: Vec<(IpAddr, Option<u8>)>,
    /// Requested MAC, canonical `aa:bb:cc:dd:ee:ff`.
    pub mac: Option<String>,
    pub runtime_dns: Option<RuntimeDns>,
    pub prev_result: Option<Value>,
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// The `cniVersion` of a config without checking the rest (VERSION, and
/// so errors speak the config's version whenever it has one).
pub fn version_of(stdin: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(stdin).ok()?;
    v.get("cniVersion")?.as_str().map(str::to_owned)
}

/// Parses and checks the config.
pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
    let raw: RawConf = serde_json::from_slice(stdin).map_err(|e| {
        let code = match serde_json::from_slice::<Value>(stdin) {
            Ok(_) => codes::INVALID_CONFIG,
            Err(_) => codes::DECODE_FAILURE,
        };
        CniError::new(
            code,
            format!("the network config on stdin is not valid: {e}"),
        )
    })?;
    let version = Version::parse(raw.cni_version.as_deref().ok_or_else(|| {
        invalid("the network config has no cniVersion: add \"cniVersion\": \"1.1.0\"")
    })?)?;
    let name = raw.name.unwrap_or_default();
    if !valid_network_name(&name) {
        return Err(invalid(format!(
            "network name {name:?} is not valid: use letters, digits, '_', '.' and '-', starting with a letter or digit"
        )));
    }
    if raw.plugin_type.is_none() {
        return Err(invalid(
            "the network config has no \"type\": set it to \"hostnet-cni\"",
        ));
    }
    let driver = raw.driver.as_deref().map(driver).transpose()?;
    let subnet = raw
        .subnet
        .as_deref()
        .map(|s| {
            s.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| {
                invalid(format!(
                    "subnet {s:?} is not a prefix: write it like 10.89.0.0/24"
                ))
            })
        })
        .transpose()?;
    let gateway = raw
        .gateway
        .as_deref()
        .map(|g| ip(g, "gateway"))
        .transpose()?;
    if let (Some(g), None) = (gateway, subnet) {
        return Err(invalid(format!(
            "gateway {g} is given without a subnet: add \"subnet\" (the gateway must be inside it)"
        )));
    }
    if let (Some(g), Some(s)) = (gateway, subnet) {
        if !s.contains(&g) {
            return Err(invalid(format!(
                "gateway {g} is outside subnet {s}: pick an address inside it"
            )));
        }
    }
    let runtime = raw.runtime_config.unwrap_or(RawRuntime {
        port_mappings: Vec::new(),
        ips: Vec::new(),
        mac: None,
        dns: None,
        bandwidth: None,
    });
    if runtime.bandwidth.as_ref().is_some_and(|b| !b.is_null()) {
        return Err(CniError::new(
            codes::UNSUPPORTED_FIELD,
            "runtimeConfig.bandwidth: hostnet networks have no rate limits yet; declare the \"bandwidth\" capability on the reference bandwidth plugin chained after hostnet-cni instead",
        ));
    }
    for m in &runtime.port_mappings {
        port_mapping(m)?;
    }
    let ips = runtime
        .ips
        .iter()
        .map(|s| match s.contains('/') {
            true => {
                let net: IpNet = s.parse().map_err(|_| {
                    invalid(format!("runtimeConfig.ips: {s:?} is not an address: write 10.89.0.5 or 10.89.0.5/24"))
                })?;
                Ok((net.addr(), Some(net.prefix_len())))
            }
            false => Ok((ip(s, "runtimeConfig.ips")?, None)),
        })
        .collect::<Result<Vec<_>, CniError>>()?;
    let mac = runtime.mac.as_deref().map(mac).transpose()?;
    Ok(NetConf {
        version,
        network: raw
            .network
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| name.clone()),
        name,
        driver,
        subnet,
        gateway,
        options: raw.options.unwrap_or_default(),
        socket: raw.socket.filter(|s| !s.is_empty()),
        dns: raw.dns,
        port_mappings: runtime.port_mappings,
        ips,
        mac,
        runtime_dns: runtime.dns,
        prev_result: raw.prev_result,
        valid_attachments: raw.valid_attachments,
    })
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(codes::INVALID_CONFIG, msg)
}

/// The spec's network name rule.
pub fn valid_network_name(name: &str) -> bool {
    crate::invocation::valid_container_id(name)
}

fn driver(name: &str) -> Result<Driver, CniError> {
    DRIVERS
        .into_iter()
        .find(|d| d.cni.eq_ignore_ascii_case(name) || d.hcn.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            invalid(format!(
                "driver {name:?} is not a hostnet network driver: use nat, transparent, l2bridge or l2tunnel"
            ))
        })
}

fn ip(s: &str, what: &str) -> Result<IpAddr, CniError> {
    s.parse()
        .map_err(|_| invalid(format!("{what}: {s:?} is not an IP address")))
}

fn port_mapping(m: &PortMapping) -> Result<(), CniError> {
    if m.host_port == 0 || m.container_port == 0 {
        return Err(invalid(format!(
            "runtimeConfig.portMappings: {m:?} has a zero port: give hostPort and containerPort from 1 to 65535"
        )));
    }
    if protocol_number(&m.protocol).is_none() {
        return Err(invalid(format!(
            "runtimeConfig.portMappings: protocol {:?} is not tcp or udp",
            m.protocol
        )));
    }
    if !m.host_ip.is_empty() {
        ip(&m.host_ip, "runtimeConfig.portMappings hostIP")?;
    }
    Ok(())
}

/// The IANA number of `tcp` or `udp` (HCN's `Protocol`).
pub fn protocol_number(p: &str) -> Option<u32> {
    match p.to_ascii_lowercase().as_str() {
        "tcp" | "" => Some(6),
        "udp" => Some(17),
        _ => None,
    }
}

/// `aa:bb:cc:dd:ee:ff` from any of `AA-BB-…`, `aa:bb:…`.
fn mac(s: &str) -> Result<String, CniError> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ok {
        return Err(invalid(format!(
            "runtimeConfig.mac: {s:?} is not a MAC address: write it like c2:11:22:33:44:55"
        )));
    }
    Ok(parts.join(":").to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(v: Value) -> Result<NetConf, CniError> {
        parse(v.to_string().as_bytes())
    }

    fn base() -> Value {
        json!({"cniVersion":"1.1.0","name":"web","type":"hostnet-cni"})
    }

    fn with(extra: Value) -> Value {
        let mut v = base();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    }

    #[test]
    fn a_minimal_config_names_the_network_after_itself() {
        let c = conf(base()).unwrap();
        assert_eq!((c.name.as_str(), c.network.as_str()), ("web", "web"));
        assert_eq!(c.driver, None);
        assert!(c.port_mappings.is_empty() && c.ips.is_empty());
    }

    #[test]
    fn a_full_config() {
        let c = conf(with(json!({
            "network": "hn-web", "driver": "NAT", "subnet": "10.89.0.1/24", "gateway": "10.89.0.1",
            "options": {"Dns": {"ServerList": ["10.0.0.53"]}},
            "socket": "/tmp/s.sock",
            "runtimeConfig": {
                "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                                 {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "198.51.100.2"}],
                "ips": ["10.89.0.5/24"], "mac": "C2-11-22-33-44-55",
                "dns": {"servers": ["10.0.0.53"], "searches": ["example.org"]}
            },
            "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]
        })))
        .unwrap();
        assert_eq!(c.network, "hn-web");
        assert_eq!(c.driver.unwrap().hcn, "NAT");
        assert_eq!(c.subnet.unwrap().to_string(), "10.89.0.0/24");
        assert_eq!(c.port_mappings.len(), 2);
        assert_eq!(c.ips, vec![("10.89.0.5".parse().unwrap(), Some(24))]);
        assert_eq!(c.mac.as_deref(), Some("c2:11:22:33:44:55"));
        assert_eq!(c.runtime_dns.unwrap().searches, vec!["example.org"]);
        assert_eq!(c.valid_attachments.unwrap()[0].container_id, "c1");
    }

    #[test]
    fn malformed_json_is_6_and_bad_values_are_7() {
        assert_eq!(
            parse(b"{\"cniVersion\":").unwrap_err().code,
            codes::DECODE_FAILURE
        );
        let e = conf(with(json!({"name": 5}))).unwrap_err();
        assert_eq!(e.code, codes::INVALID_CONFIG);
        for (extra, mention) in [
            (json!({"driver": "vxlan"}), "\"vxlan\""),
            (json!({"subnet": "10.89.0.0"}), "10.89.0.0"),
            (json!({"gateway": "10.1.0.1"}), "without a subnet"),
            (
                json!({"subnet": "10.89.0.0/24", "gateway": "10.1.0.1"}),
                "outside",
            ),
            (json!({"name": "no/slash"}), "no/slash"),
            (
                json!({"runtimeConfig": {"ips": ["10.89.0.300"]}}),
                "10.89.0.300",
            ),
            (json!({"runtimeConfig": {"mac": "c2:11"}}), "c2:11"),
            (
                json!({"runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 80}]}}),
                "zero port",
            ),
            (
                json!({"runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 80, "protocol": "sctp"}]}}),
                "sctp",
            ),
        ] {
            let e = conf(with(extra.clone())).unwrap_err();
            assert_eq!(e.code, codes::INVALID_CONFIG, "{extra}: {}", e.msg);
            assert!(e.msg.contains(mention), "{extra}: {}", e.msg);
        }
        let mut no_type = base();
        no_type.as_object_mut().unwrap().remove("type");
        assert!(conf(no_type).unwrap_err().msg.contains("\"type\""));
    }

    #[test]
    fn versions_and_bandwidth() {
        let e = conf(with(json!({"cniVersion": "0.2.0"}))).unwrap_err();
        assert_eq!(e.code, codes::INCOMPATIBLE_VERSION);
        let e = conf(with(
            json!({"runtimeConfig": {"bandwidth": {"ingressRate": 1000}}}),
        ))
        .unwrap_err();
        assert_eq!(e.code, codes::UNSUPPORTED_FIELD);
        assert!(e.msg.contains("bandwidth plugin"));
        assert_eq!(
            version_of(br#"{"cniVersion":"0.4.0"}"#).as_deref(),
            Some("0.4.0")
        );
        assert_eq!(version_of(b"nope"), None);
    }
}
