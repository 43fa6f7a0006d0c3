//! ADD's result, rendered in the format of each CNI version.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{json, Map, Value};

use crate::config::Dns;
use crate::version::Version;

/// An interface the attachment made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    /// The container's netns path; None for the host side.
    pub sandbox: Option<String>,
}

/// An address given to one of the interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    pub interface: Option<usize>,
}

/// A route inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    pub priority: Option<u32>,
}

/// The result of ADD (and the `prevResult` CHECK and DEL get back).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

impl CniResult {
    /// The result document in `version`'s format.
    pub fn to_json(&self, version: Version) -> Value {
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| {
                let mut o = Map::new();
                o.insert("name".into(), json!(i.name));
                if let Some(mac) = &i.mac {
                    o.insert("mac".into(), json!(mac));
                }
                if let (Some(mtu), true) = (i.mtu, version.has_mtu_and_priority()) {
                    o.insert("mtu".into(), json!(mtu));
                }
                if let Some(sandbox) = &i.sandbox {
                    o.insert("sandbox".into(), json!(sandbox));
                }
                Value::Object(o)
            })
            .collect();
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut o = Map::new();
                if version.ip_has_version_field() {
                    let family = if ip.address.addr().is_ipv4() {
                        "4"
                    } else {
                        "6"
                    };
                    o.insert("version".into(), json!(family));
                }
                o.insert("address".into(), json!(ip.address.to_string()));
                if let Some(gw) = ip.gateway {
                    o.insert("gateway".into(), json!(gw.to_string()));
                }
                if let Some(i) = ip.interface {
                    o.insert("interface".into(), json!(i));
                }
                Value::Object(o)
            })
            .collect();
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| {
                let mut o = Map::new();
                o.insert("dst".into(), json!(r.dst.to_string()));
                if let Some(gw) = r.gw {
                    o.insert("gw".into(), json!(gw.to_string()));
                }
                if let (Some(p), true) = (r.priority, version.has_mtu_and_priority()) {
                    o.insert("priority".into(), json!(p));
                }
                Value::Object(o)
            })
            .collect();
        let mut doc = json!({
            "cniVersion": version.as_str(),
            "interfaces": interfaces,
            "ips": ips,
            "routes": routes,
        });
        let dns = dns_json(&self.dns);
        if !dns.as_object().is_some_and(Map::is_empty) {
            doc["dns"] = dns;
        }
        doc
    }
}

fn dns_json(d: &Dns) -> Value {
    let mut o = Map::new();
    if !d.nameservers.is_empty() {
        o.insert("nameservers".into(), json!(d.nameservers));
    }
    if let Some(domain) = d.domain.as_ref().filter(|s| !s.is_empty()) {
        o.insert("domain".into(), json!(domain));
    }
    if !d.search.is_empty() {
        o.insert("search".into(), json!(d.search));
    }
    if !d.options.is_empty() {
        o.insert("options".into(), json!(d.options));
    }
    Value::Object(o)
}

/// What CHECK compares from a `prevResult` of any version: the addresses
/// and the MAC of the container interface `ifname` (a chained `tuning`
/// may have changed it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrevResult {
    pub addresses: Vec<IpNet>,
    pub mac: Option<String>,
}

/// Reads a `prevResult`; fields it lacks stay empty.
pub fn prev_result(v: &Value, ifname: &str) -> PrevResult {
    let addresses = v["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str()?.parse().ok())
        .collect();
    let mac = v["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["name"] == ifname && i.get("sandbox").is_some_and(|s| s.as_str() != Some("")))
        .and_then(|i| i["mac"].as_str())
        .map(str::to_ascii_lowercase);
    PrevResult { addresses, mac }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "hnve0123456789".into(),
                    mac: None,
                    mtu: Some(1500),
                    sandbox: None,
                },
                Interface {
                    name: "eth0".into(),
                    mac: Some("00:15:5d:00:00:02".into()),
                    mtu: Some(1500),
                    sandbox: Some("/run/netns/c1".into()),
                },
            ],
            ips: vec![IpConfig {
                address: "10.89.0.2/24".parse().unwrap(),
                gateway: Some("10.89.0.1".parse().unwrap()),
                interface: Some(1),
            }],
            routes: vec![Route {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: Some("10.89.0.1".parse().unwrap()),
                priority: Some(10),
            }],
            dns: Dns {
                nameservers: vec!["10.0.0.53".into()],
                ..Dns::default()
            },
        }
    }

    #[test]
    fn before_1_0_ips_carry_their_family() {
        for v in [Version::V0_3_1, Version::V0_4_0] {
            let doc = sample().to_json(v);
            assert_eq!(doc["cniVersion"], v.as_str());
            assert_eq!(
                doc["ips"][0],
                json!({"version":"4","address":"10.89.0.2/24","gateway":"10.89.0.1","interface":1})
            );
            assert!(doc["interfaces"][1].get("mtu").is_none());
            assert_eq!(
                doc["routes"][0],
                json!({"dst":"0.0.0.0/0","gw":"10.89.0.1"})
            );
        }
    }

    #[test]
    fn from_1_0_ips_have_no_version_and_1_1_adds_mtu_and_priority() {
        let doc = sample().to_json(Version::V1_0_0);
        assert_eq!(
            doc["ips"][0],
            json!({"address":"10.89.0.2/24","gateway":"10.89.0.1","interface":1})
        );
        assert!(doc["interfaces"][0].get("mtu").is_none());
        let doc = sample().to_json(Version::V1_1_0);
        assert_eq!(
            doc["interfaces"],
            json!([{"name":"hnve0123456789","mtu":1500},
                   {"name":"eth0","mac":"00:15:5d:00:00:02","mtu":1500,"sandbox":"/run/netns/c1"}])
        );
        assert_eq!(doc["routes"][0]["priority"], 10);
        assert_eq!(doc["dns"], json!({"nameservers":["10.0.0.53"]}));
    }

    #[test]
    fn empty_dns_is_left_out() {
        let mut r = sample();
        r.dns = Dns::default();
        assert!(r.to_json(Version::V1_1_0).get("dns").is_none());
    }

    #[test]
    fn prev_results_of_every_version_are_read() {
        for v in crate::version::Version::ALL {
            let p = prev_result(&sample().to_json(v), "eth0");
            assert_eq!(p.addresses, vec!["10.89.0.2/24".parse::<IpNet>().unwrap()]);
            assert_eq!(p.mac.as_deref(), Some("00:15:5d:00:00:02"));
        }
        assert_eq!(prev_result(&json!({}), "eth0"), PrevResult::default());
    }
}
