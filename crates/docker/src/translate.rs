//! Docker's driver requests as HCN objects. Pure.
//!
//! Docker passes `docker network create -o KEY=VALUE` options in
//! `Options["com.docker.network.generic"]`. hostnet reads Windows' shim
//! options (what `docker network create -d nat|transparent|l2bridge` takes
//! on Windows) and its own `type`:
//!
//! | option | HCN |
//! |---|---|
//! | `type` (or `com.docker.network.windowsshim.type`) | network `Type`: nat (default), transparent, l2bridge, l2tunnel |
//! | `com.docker.network.windowsshim.networkname` | network `Name` |
//! | `com.docker.network.windowsshim.hnsid` | use this existing hostnet network; DeleteNetwork leaves it |
//! | `com.docker.network.windowsshim.interface` | `NetAdapterName` policy |
//! | `com.docker.network.windowsshim.dnsservers` | `Dns.ServerList` (comma-separated) |
//! | `com.docker.network.windowsshim.dnssuffix` | `Dns.Domain` |
//! | `com.docker.network.windowsshim.macpool` | `MacPools` (`START-END`) |
//! | `com.docker.network.windowsshim.vlanid` | `VLAN` policy (hostnetd refuses it by name until VLANs exist) |
//!
//! Unknown `windowsshim` options are refused by name: accepting and
//! ignoring one would hide a setting the user asked for.

use ipnet::IpNet;
use serde_json::{json, Map, Value};

/// Docker's key for the `-o` options of a network.
pub const GENERIC: &str = "com.docker.network.generic";
/// Docker's key for an endpoint's published ports.
pub const PORTMAP: &str = "com.docker.network.portmap";
const SHIM: &str = "com.docker.network.windowsshim.";

/// A refused request: its message goes back to Docker as `Err`.
pub type Refusal = String;

/// What CreateNetwork asks of hostnet.
#[derive(Debug, Clone, PartialEq)]
pub enum NetworkPlan {
    /// Create this HCN network; DeleteNetwork deletes it.
    Create(Value),
    /// Use the hostnet network with this ID, made by someone else.
    Existing(String),
}

/// The `-o` options of a CreateNetwork or CreateEndpoint request.
pub fn generic_options(options: &Value) -> Map<String, Value> {
    options
        .get(GENERIC)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The hostnet network for a Docker network: its subnet and gateway from
/// Docker's IPAM (`IPv4Data`), the rest from the options.
pub fn network_plan(
    network_id: &str,
    options: &Value,
    ipv4: &[Value],
) -> Result<NetworkPlan, Refusal> {
    let opts = generic_options(options);
    let mut kind = "NAT".to_string();
    let mut name = format!("docker-{}", short(network_id));
    let mut dns = Map::new();
    let mut policies = Vec::new();
    let mut extra = Map::new();
    for (key, value) in &opts {
        let v = text(value).unwrap_or_default();
        let shim = key.strip_prefix(SHIM);
        match (key.as_str(), shim) {
            ("type", _) | (_, Some("type")) => kind = network_type(&v)?.to_string(),
            (_, Some("hnsid")) => return Ok(NetworkPlan::Existing(v)),
            (_, Some("networkname")) => name = v,
            (_, Some("interface")) => policies
                .push(json!({"Type": "NetAdapterName", "Settings": {"NetworkAdapterName": v}})),
            (_, Some("dnsservers")) => {
                dns.insert(
                    "ServerList".into(),
                    json!(v
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()),
                );
            }
            (_, Some("dnssuffix")) => {
                dns.insert("Domain".into(), json!(v));
            }
            (_, Some("macpool")) => {
                let (start, end) = split_range(&v).ok_or_else(|| {
                    format!("{key}={v} is not a MAC range: write it like 00-15-5D-52-C0-00-00-15-5D-52-CF-FF")
                })?;
                extra.insert(
                    "MacPool".into(),
                    json!({"Ranges": [{"StartMacAddress": start, "EndMacAddress": end}]}),
                );
            }
            (_, Some("vlanid")) => {
                let id: u32 = v
                    .parse()
                    .map_err(|_| format!("{key}={v} is not a VLAN id"))?;
                policies.push(json!({"Type": "VLAN", "Settings": {"IsolationId": id}}));
            }
            (_, Some(other)) => {
                return Err(format!(
                    "option {key} ({other}) is not supported by hostnet: leave it out"
                ))
            }
            // Docker's own options (com.docker.network.bridge.*, …) and
            // other drivers' are not hostnet's to judge.
            _ => {}
        }
    }
    let mut body = json!({
        "SchemaVersion": { "Major": 2, "Minor": 0 },
        "Name": name,
        "Type": kind,
    });
    let subnets: Vec<Value> = ipv4
        .iter()
        .filter_map(|d| {
            let pool = d.get("Pool")?.as_str()?;
            let mut s = json!({ "IpAddressPrefix": pool });
            if let Some(gw) = d.get("Gateway").and_then(Value::as_str) {
                let gw = gw.split('/').next().unwrap_or(gw);
                s["Routes"] = json!([{ "NextHop": gw, "DestinationPrefix": "0.0.0.0/0" }]);
            }
            Some(s)
        })
        .collect();
    if !subnets.is_empty() {
        body["Ipams"] = json!([{ "Type": "Static", "Subnets": subnets }]);
    }
    if !dns.is_empty() {
        body["Dns"] = Value::Object(dns);
    }
    if !policies.is_empty() {
        body["Policies"] = json!(policies);
    }
    body.as_object_mut().expect("object").extend(extra);
    Ok(NetworkPlan::Create(body))
}

fn network_type(v: &str) -> Result<&'static str, Refusal> {
    [
        ("nat", "NAT"),
        ("transparent", "Transparent"),
        ("l2bridge", "L2Bridge"),
        ("l2tunnel", "L2Tunnel"),
    ]
    .into_iter()
    .find(|(k, _)| k.eq_ignore_ascii_case(v))
    .map(|(_, t)| t)
    .ok_or_else(|| {
        format!(
            "type={v} is not a hostnet network type: use nat, transparent, l2bridge or l2tunnel"
        )
    })
}

/// `00-15-5D-00-00-00-00-15-5D-00-00-FF` into its two MACs.
fn split_range(v: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = v.split(['-', ':']).collect();
    (parts.len() == 12).then(|| (parts[..6].join("-"), parts[6..].join("-")))
}

/// The first 12 hex digits of a Docker ID, as `docker ps` shows them.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The hostnet name of a Docker endpoint (and of its namespace object).
pub fn endpoint_name(endpoint_id: &str) -> String {
    format!("docker/{endpoint_id}")
}

/// The HCN endpoint for CreateEndpoint: Docker's IPAM address and MAC if
/// it gave them, its published ports if it passed them already.
pub fn endpoint_body(
    endpoint_id: &str,
    network: &str,
    interface: &Value,
    options: &Value,
) -> Result<Value, Refusal> {
    let mut body = json!({
        "SchemaVersion": { "Major": 2, "Minor": 0 },
        "Name": endpoint_name(endpoint_id),
        "HostComputeNetwork": network,
    });
    if let Some(addr) = interface
        .get("Address")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        let net: IpNet = addr.parse().map_err(|_| {
            format!("Interface.Address {addr:?} is not an address with a prefix length")
        })?;
        body["IpConfigurations"] =
            json!([{ "IpAddress": net.addr().to_string(), "PrefixLength": net.prefix_len() }]);
    }
    if let Some(mac) = interface
        .get("MacAddress")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    {
        body["MacAddress"] = json!(mac.replace(':', "-").to_ascii_uppercase());
    }
    let policies = port_policies(options.get(PORTMAP).unwrap_or(&Value::Null))?;
    if !policies.is_empty() {
        body["Policies"] = json!(policies);
    }
    Ok(body)
}

/// `com.docker.network.portmap` entries as HCN `PortMapping` policies.
/// A range (`HostPortEnd` above `HostPort`) is refused: HCN maps one port.
pub fn port_policies(portmap: &Value) -> Result<Vec<Value>, Refusal> {
    let mut out = Vec::new();
    for p in portmap.as_array().into_iter().flatten() {
        let n = |k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(0);
        let (proto, port, host, end) = (n("Proto"), n("Port"), n("HostPort"), n("HostPortEnd"));
        let protocol = match proto {
            6 | 17 => proto,
            other => {
                return Err(format!(
                    "port mapping {p}: protocol {other} is not TCP (6) or UDP (17)"
                ))
            }
        };
        if host == 0 {
            return Err(format!("port mapping {p}: publish with an explicit host port (-p HOST:{port}); hostnet does not pick one"));
        }
        if end > host {
            return Err(format!("port mapping {p}: host port ranges are not supported: publish one port per mapping"));
        }
        let mut settings =
            json!({ "Protocol": protocol, "InternalPort": port, "ExternalPort": host });
        if let Some(ip) = p
            .get("HostIP")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && *s != "0.0.0.0")
        {
            settings["VIP"] = json!(ip);
        }
        out.push(json!({ "Type": "PortMapping", "Settings": settings }));
    }
    Ok(out)
}

/// hostnet's MAC (`00-15-5D-…`) as Docker writes it (`00:15:5d:…`).
pub fn docker_mac(hcn: &str) -> String {
    hcn.replace('-', ":").to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: &str = "3fa1c0de99887766554433221100aabbccddeeff00112233445566778899aabb";

    #[test]
    fn a_network_from_ipam_and_windowsshim_options() {
        let options = json!({GENERIC: {
            "com.docker.network.windowsshim.networkname": "web",
            "com.docker.network.windowsshim.dnsservers": "10.0.0.53, 10.0.0.54",
            "com.docker.network.windowsshim.dnssuffix": "corp.example",
            "com.docker.network.windowsshim.macpool": "00-15-5D-52-C0-00-00-15-5D-52-CF-FF",
            "com.docker.network.bridge.name": "ignored",
        }});
        let ipv4 = [
            json!({"AddressSpace": "LocalDefault", "Pool": "10.93.0.0/24", "Gateway": "10.93.0.1/24"}),
        ];
        let NetworkPlan::Create(body) = network_plan(NET, &options, &ipv4).unwrap() else {
            panic!("expected a create");
        };
        assert_eq!(
            body,
            json!({"SchemaVersion": {"Major": 2, "Minor": 0}, "Name": "web", "Type": "NAT",
                "Ipams": [{"Type": "Static", "Subnets": [{"IpAddressPrefix": "10.93.0.0/24",
                    "Routes": [{"NextHop": "10.93.0.1", "DestinationPrefix": "0.0.0.0/0"}]}]}],
                "Dns": {"ServerList": ["10.0.0.53", "10.0.0.54"], "Domain": "corp.example"},
                "MacPool": {"Ranges": [{"StartMacAddress": "00-15-5D-52-C0-00", "EndMacAddress": "00-15-5D-52-CF-FF"}]}})
        );
    }

    #[test]
    fn network_types_adapters_and_existing_networks() {
        let plan = |o: Value| network_plan(NET, &json!({GENERIC: o}), &[]);
        let NetworkPlan::Create(b) = plan(
            json!({"type": "transparent", "com.docker.network.windowsshim.interface": "eth1"}),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(b["Type"], "Transparent");
        assert_eq!(b["Name"], "docker-3fa1c0de9988");
        assert_eq!(
            b["Policies"][0],
            json!({"Type": "NetAdapterName", "Settings": {"NetworkAdapterName": "eth1"}})
        );
        assert_eq!(
            plan(json!({"com.docker.network.windowsshim.hnsid": "A1B2"})).unwrap(),
            NetworkPlan::Existing("A1B2".into())
        );
        assert!(plan(json!({"type": "vxlan"}))
            .unwrap_err()
            .contains("vxlan"));
        assert!(
            plan(json!({"com.docker.network.windowsshim.enable_outboundnat": "true"}))
                .unwrap_err()
                .contains("enable_outboundnat")
        );
        assert!(plan(json!({"com.docker.network.windowsshim.macpool": "00-15"})).is_err());
    }

    #[test]
    fn an_endpoint_with_docker_ipam_and_published_ports() {
        let body = endpoint_body(
            "ep1",
            "NET",
            &json!({"Address": "10.93.0.2/24", "AddressIPv6": "", "MacAddress": "02:42:0a:5d:00:02"}),
            &json!({PORTMAP: [{"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8095, "HostPortEnd": 8095}]}),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({"SchemaVersion": {"Major": 2, "Minor": 0}, "Name": "docker/ep1", "HostComputeNetwork": "NET",
                "IpConfigurations": [{"IpAddress": "10.93.0.2", "PrefixLength": 24}],
                "MacAddress": "02-42-0A-5D-00-02",
                "Policies": [{"Type": "PortMapping", "Settings": {"Protocol": 6, "InternalPort": 80, "ExternalPort": 8095}}]})
        );
        let plain = endpoint_body("ep1", "NET", &json!({}), &json!({})).unwrap();
        assert!(plain.get("IpConfigurations").is_none() && plain.get("Policies").is_none());
    }

    #[test]
    fn port_maps_hcn_cannot_take_are_refused() {
        let one = |p: Value| port_policies(&json!([p]));
        assert!(one(json!({"Proto": 132, "Port": 80, "HostPort": 80}))
            .unwrap_err()
            .contains("132"));
        assert!(one(json!({"Proto": 6, "Port": 80, "HostPort": 0}))
            .unwrap_err()
            .contains("explicit host port"));
        assert!(
            one(json!({"Proto": 6, "Port": 80, "HostPort": 80, "HostPortEnd": 90}))
                .unwrap_err()
                .contains("ranges")
        );
        let udp = one(json!({"Proto": 17, "Port": 53, "HostPort": 5353, "HostIP": "198.51.100.2"}))
            .unwrap();
        assert_eq!(udp[0]["Settings"]["VIP"], "198.51.100.2");
        assert_eq!(docker_mac("02-42-0A-5D-00-02"), "02:42:0a:5d:00:02");
    }
}
