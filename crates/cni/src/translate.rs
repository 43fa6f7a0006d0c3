//! Between CNI and HCN: the network, namespace and endpoint hostnetd is
//! asked for, and the result an endpoint makes. Pure.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{json, Value};

use crate::config::{protocol_number, Dns, NetConf};
use crate::error::{codes, CniError};
use crate::result::{CniResult, Interface, IpConfig, Route};

/// The name of an attachment's hostnet endpoint and namespace:
/// `cni/<network name>/<container id>/<ifname>`. The CNI network name keeps
/// two configs on one hostnet network apart (GC is per config).
pub fn attachment_name(conf_name: &str, container_id: &str, ifname: &str) -> String {
    format!("{}{container_id}/{ifname}", attachment_prefix(conf_name))
}

/// What every attachment name of a config starts with.
pub fn attachment_prefix(conf_name: &str) -> String {
    format!("cni/{conf_name}/")
}

/// (container id, ifname) of an attachment name of `conf_name`.
pub fn parse_attachment_name<'a>(conf_name: &str, name: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = name.strip_prefix(&attachment_prefix(conf_name))?;
    let (cid, ifname) = rest.split_once('/')?;
    (!cid.is_empty() && !ifname.is_empty() && !ifname.contains('/')).then_some((cid, ifname))
}

/// The HCN network hostnet-cni creates when the config's network does not
/// exist yet: its driver (NAT by default), subnet and gateway, and the
/// `options` passed through (they cannot override these).
pub fn network_body(conf: &NetConf) -> Value {
    let mut body = json!({
        "SchemaVersion": { "Major": 2, "Minor": 0 },
        "Name": conf.network,
        "Type": conf.driver.map_or("NAT", |d| d.hcn),
    });
    if let Some(subnet) = conf.subnet {
        let mut s = json!({ "IpAddressPrefix": subnet.to_string() });
        if let Some(gw) = conf.gateway {
            let default = if gw.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
            s["Routes"] = json!([{ "NextHop": gw.to_string(), "DestinationPrefix": default }]);
        }
        body["Ipams"] = json!([{ "Type": "Static", "Subnets": [s] }]);
    }
    let obj = body.as_object_mut().expect("an object");
    for (k, v) in &conf.options {
        obj.entry(k.clone()).or_insert_with(|| v.clone());
    }
    body
}

/// The HCN namespace for an attachment: the runtime's netns, by path.
pub fn namespace_body(name: &str, netns: &str) -> Value {
    json!({
        "SchemaVersion": { "Major": 2, "Minor": 0 },
        "Name": name,
        "Type": "Host",
        "NetNsPath": netns,
    })
}

/// The HCN endpoint for an attachment, with the runtime's capabilities:
/// port mappings, a requested address and MAC, DNS.
pub fn endpoint_body(conf: &NetConf, network_id: &str, name: &str) -> Result<Value, CniError> {
    let mut body = json!({
        "SchemaVersion": { "Major": 2, "Minor": 0 },
        "Name": name,
        "HostComputeNetwork": network_id,
    });
    if !conf.port_mappings.is_empty() {
        let policies: Vec<Value> = conf
            .port_mappings
            .iter()
            .map(|m| {
                let mut settings = json!({
                    "Protocol": protocol_number(&m.protocol).unwrap_or(6),
                    "InternalPort": m.container_port,
                    "ExternalPort": m.host_port,
                });
                if !m.host_ip.is_empty() {
                    settings["VIP"] = json!(m.host_ip);
                }
                json!({ "Type": "PortMapping", "Settings": settings })
            })
            .collect();
        body["Policies"] = json!(policies);
    }
    // One address per IP family: a dual-stack NAT network's endpoint
    // takes an IPv4 and an IPv6 one.
    let v4 = conf.ips.iter().filter(|(a, _)| a.is_ipv4()).count();
    if v4 > 1 || conf.ips.len() - v4 > 1 {
        return Err(CniError::new(
            codes::INVALID_CONFIG,
            format!(
                "runtimeConfig.ips asks for {} addresses: a hostnet endpoint has one address per IP family (an IPv6 one only on a dual-stack network); ask for one of each at most",
                conf.ips.len()
            ),
        ));
    }
    if !conf.ips.is_empty() {
        let configs: Vec<Value> = conf
            .ips
            .iter()
            .map(|(addr, prefix)| {
                let mut ip = json!({ "IpAddress": addr.to_string() });
                if let Some(p) = prefix {
                    ip["PrefixLength"] = json!(p);
                }
                ip
            })
            .collect();
        body["IpConfigurations"] = json!(configs);
    }
    if let Some(mac) = &conf.mac {
        body["MacAddress"] = json!(mac.replace(':', "-").to_ascii_uppercase());
    }
    if let Some(dns) = endpoint_dns(conf) {
        body["Dns"] = dns;
    }
    Ok(body)
}

/// The runtime's DNS (capability `dns`) wins over the config's `dns`.
fn endpoint_dns(conf: &NetConf) -> Option<Value> {
    let mut dns = serde_json::Map::new();
    if let Some(rt) = &conf.runtime_dns {
        if !rt.servers.is_empty() {
            dns.insert("ServerList".into(), json!(rt.servers));
        }
        if !rt.searches.is_empty() {
            dns.insert("Search".into(), json!(rt.searches));
        }
        if !rt.options.is_empty() {
            dns.insert("Options".into(), json!(rt.options));
        }
    }
    if let Some(d) = &conf.dns {
        let mut put = |k: &str, v: Value, empty: bool| {
            if !empty {
                dns.entry(k.to_string()).or_insert(v);
            }
        };
        put("ServerList", json!(d.nameservers), d.nameservers.is_empty());
        put("Search", json!(d.search), d.search.is_empty());
        put("Options", json!(d.options), d.options.is_empty());
        if let Some(domain) = &d.domain {
            put("Domain", json!(domain), domain.is_empty());
        }
    }
    (!dns.is_empty()).then_some(Value::Object(dns))
}

/// hostnet's MAC spelling (`00-15-5D-…`) in CNI's (`00:15:5d:…`).
pub fn cni_mac(hcn: &str) -> String {
    hcn.replace('-', ":").to_ascii_lowercase()
}

/// The result of an attachment: the host end (no sandbox, so chained
/// plugins such as `bandwidth` find it) and the container end, the
/// endpoint's address, routes and DNS.
pub fn result_of(
    endpoint: &Value,
    host_ifname: &str,
    ifname: &str,
    netns: &str,
    mtu: Option<u32>,
) -> CniResult {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let routes: Vec<Route> = endpoint["Routes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some(Route {
                dst: r["DestinationPrefix"].as_str()?.parse().ok()?,
                gw: r["NextHop"].as_str().and_then(|g| g.parse().ok()),
                priority: r["Metric"].as_u64().filter(|m| *m > 0).map(|m| m as u32),
            })
        })
        .collect();
    let gateway_for = |addr: &IpAddr| -> Option<IpAddr> {
        routes
            .iter()
            .filter(|r| r.dst.prefix_len() == 0)
            .filter_map(|r| r.gw)
            .find(|g| g.is_ipv4() == addr.is_ipv4())
    };
    let ips = endpoint["IpConfigurations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let addr: IpAddr = c["IpAddress"].as_str()?.parse().ok()?;
            let prefix =
                c["PrefixLength"]
                    .as_u64()
                    .unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
            Some(IpConfig {
                address: IpNet::new(addr, prefix as u8).ok()?,
                gateway: gateway_for(&addr),
                interface: Some(1),
            })
        })
        .collect();
    let dns = &endpoint["Dns"];
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    CniResult {
        interfaces: vec![
            Interface {
                name: host_ifname.to_string(),
                mac: None,
                mtu,
                sandbox: None,
            },
            Interface {
                name: ifname.to_string(),
                mac: text(&endpoint["MacAddress"]).map(|m| cni_mac(&m)),
                mtu,
                sandbox: Some(netns.to_string()),
            },
        ],
        ips,
        routes,
        dns: Dns {
            nameservers: list(&dns["ServerList"]),
            domain: text(&dns["Domain"]).filter(|d| !d.is_empty()),
            search: list(&dns["Search"]),
            options: list(&dns["Options"]),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::Version;

    fn conf(extra: Value) -> NetConf {
        let mut v = json!({"cniVersion":"1.0.0","name":"web","type":"hostnet-cni"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        crate::config::parse(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn attachment_names_round_trip() {
        let n = attachment_name("web", "c0ffee", "eth0");
        assert_eq!(n, "cni/web/c0ffee/eth0");
        assert_eq!(parse_attachment_name("web", &n), Some(("c0ffee", "eth0")));
        assert_eq!(parse_attachment_name("web2", &n), None);
        assert_eq!(parse_attachment_name("web", "cni/web/c0ffee"), None);
        assert_eq!(parse_attachment_name("web", "nat-c1"), None);
    }

    #[test]
    fn the_network_created_on_first_use() {
        let c = conf(
            json!({"network":"hn","driver":"nat","subnet":"10.89.0.0/24","gateway":"10.89.0.1",
            "options":{"Name":"ignored","Dns":{"ServerList":["10.0.0.53"]}}}),
        );
        assert_eq!(
            network_body(&c),
            json!({"SchemaVersion":{"Major":2,"Minor":0},"Name":"hn","Type":"NAT",
                "Ipams":[{"Type":"Static","Subnets":[{"IpAddressPrefix":"10.89.0.0/24",
                    "Routes":[{"NextHop":"10.89.0.1","DestinationPrefix":"0.0.0.0/0"}]}]}],
                "Dns":{"ServerList":["10.0.0.53"]}})
        );
        let bare = network_body(&conf(json!({})));
        assert_eq!(bare["Type"], "NAT");
        assert!(bare.get("Ipams").is_none());
    }

    #[test]
    fn runtime_capabilities_become_endpoint_fields() {
        let c = conf(json!({
            "dns": {"nameservers": ["10.0.0.1"], "domain": "corp", "search": ["a"]},
            "runtimeConfig": {
                "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                                 {"hostPort": 53, "containerPort": 5353, "protocol": "udp", "hostIP": "198.51.100.2"}],
                "ips": ["10.89.0.9/24"], "mac": "c2:11:22:33:44:55",
                "dns": {"servers": ["10.0.0.53"]}
            }
        }));
        let body = endpoint_body(&c, "NET-ID", "cni/web/c1/eth0").unwrap();
        assert_eq!(
            body,
            json!({"SchemaVersion":{"Major":2,"Minor":0},"Name":"cni/web/c1/eth0","HostComputeNetwork":"NET-ID",
                "Policies":[
                    {"Type":"PortMapping","Settings":{"Protocol":6,"InternalPort":80,"ExternalPort":8080}},
                    {"Type":"PortMapping","Settings":{"Protocol":17,"InternalPort":5353,"ExternalPort":53,"VIP":"198.51.100.2"}}],
                "IpConfigurations":[{"IpAddress":"10.89.0.9","PrefixLength":24}],
                "MacAddress":"C2-11-22-33-44-55",
                "Dns":{"ServerList":["10.0.0.53"],"Search":["a"],"Domain":"corp"}})
        );
        let two = conf(json!({"runtimeConfig": {"ips": ["10.89.0.9", "10.89.0.10"]}}));
        assert_eq!(
            endpoint_body(&two, "N", "n").unwrap_err().code,
            codes::INVALID_CONFIG
        );
        let dual = conf(json!({"runtimeConfig": {"ips": ["10.89.0.9", "fd00:89::9/64"]}}));
        assert_eq!(
            endpoint_body(&dual, "N", "n").unwrap()["IpConfigurations"],
            json!([{"IpAddress":"10.89.0.9"}, {"IpAddress":"fd00:89::9","PrefixLength":64}])
        );
        let plain = endpoint_body(&conf(json!({})), "N", "n").unwrap();
        assert_eq!(plain.as_object().unwrap().len(), 3);
    }

    #[test]
    fn an_endpoint_becomes_a_result() {
        let ep = json!({"ID":"X","MacAddress":"00-15-5D-00-00-02",
            "IpConfigurations":[{"IpAddress":"10.89.0.2","PrefixLength":24}],
            "Routes":[{"DestinationPrefix":"0.0.0.0/0","NextHop":"10.89.0.1"}],
            "Dns":{"ServerList":["10.0.0.53"],"Search":["corp"]}});
        let r = result_of(&ep, "hnve0123456789", "eth0", "/run/netns/c1", Some(1500));
        assert_eq!(
            r.to_json(Version::V1_0_0),
            json!({"cniVersion":"1.0.0",
                "interfaces":[{"name":"hnve0123456789"},
                              {"name":"eth0","mac":"00:15:5d:00:00:02","sandbox":"/run/netns/c1"}],
                "ips":[{"address":"10.89.0.2/24","gateway":"10.89.0.1","interface":1}],
                "routes":[{"dst":"0.0.0.0/0","gw":"10.89.0.1"}],
                "dns":{"nameservers":["10.0.0.53"],"search":["corp"]}})
        );
    }
}
