//! The HCN v2 network document built from `network create` arguments.
//!
//! Kept apart from the command so the mapping (subnets, gateways as default
//! routes, docker's windowsshim options) is unit-tested without a daemon.
//! Every option given is also kept with the network as `Options` (a hostnet
//! extension), so that endpoint creates can act on them as docker does.

use crate::addr::parse_ip;
use crate::error::with_hcn_code;
use crate::shim::{full_key, ShimOptions, PREFIX};
use crate::shim_drivers;
use hostnet_api::codes::HCN_E_INVALID_POLICY;
use ipnet::IpNet;
use serde_json::{json, Map, Value};

/// What `hostnet network create` was given.
#[derive(Debug, Clone, Default)]
pub struct NetworkArgs {
    /// Positional NAME (the `networkname` option overrides it).
    pub name: Option<String>,
    /// `-d`: the HCN network type as given (`nat`, `l2bridge`, …).
    pub driver: String,
    /// `--subnet` CIDRs.
    pub subnets: Vec<String>,
    /// `--gateway` addresses; each goes to the subnet that contains it.
    pub gateways: Vec<String>,
    /// `-o KEY=VALUE` options.
    pub options: Vec<String>,
    /// `--ipv6`: dual stack asked for; an IPv6 `--subnet` must be given.
    pub ipv6: bool,
}

/// Builds the `POST /v2/networks` body.
pub fn network_body(args: &NetworkArgs) -> Result<Value, String> {
    let options = ShimOptions::parse(&args.options)?;
    let name = options
        .network_name
        .clone()
        .or_else(|| args.name.clone())
        .ok_or_else(|| {
            format!("a network name is required (NAME, or -o {PREFIX}networkname=NAME)")
        })?;
    let driver = args.driver.trim();
    if driver.is_empty() {
        return Err("the driver (-d) must not be empty".into());
    }
    shim_drivers::check(&options, driver)?;

    let mut body = json!({
        "Name": name,
        "Type": driver,
        "SchemaVersion": {"Major": 2, "Minor": 0},
    });
    let has_ipv6_subnet = args
        .subnets
        .iter()
        .any(|s| s.trim().parse::<IpNet>().is_ok_and(|p| p.addr().is_ipv6()));
    if args.ipv6 && !has_ipv6_subnet {
        return Err("--ipv6 needs an IPv6 --subnet (such as fd00:1::/64) next to the IPv4 one: hostnet does not pick IPv6 subnets".into());
    }
    let subnets = subnets(args, &options)?;
    if !subnets.is_empty() {
        body["Ipams"] = json!([{"Type": "Static", "Subnets": subnets}]);
    }
    let mut policies = Vec::new();
    if let Some(adapter) = &options.interface {
        let mut settings = json!({"NetworkAdapterName": adapter});
        if let Some(mode) = &options.teaming_mode {
            settings["TeamingMode"] = json!(mode);
        }
        policies.push(json!({"Type": "NetAdapterName", "Settings": settings}));
    }
    if options.disable_gateway_dns {
        policies.push(json!({"Type": "AutomaticDNS", "Settings": {"Enable": false}}));
    } else if driver.eq_ignore_ascii_case("overlay") {
        // Off by default on Overlay networks; docker's overlay driver asks
        // for the gateway's DNS proxy, so its CLI does too.
        policies.push(json!({"Type": "AutomaticDNS", "Settings": {"Enable": true}}));
    }
    if !policies.is_empty() {
        body["Policies"] = json!(policies);
    }
    let mut dns = Map::new();
    if let Some(suffix) = &options.dns_suffix {
        dns.insert("Domain".into(), json!(suffix));
    }
    if !options.dns_servers.is_empty() {
        dns.insert("ServerList".into(), json!(options.dns_servers));
    }
    if !dns.is_empty() {
        body["Dns"] = Value::Object(dns);
    }
    if !options.mac_pool.is_empty() {
        let ranges: Vec<Value> = options
            .mac_pool
            .iter()
            .map(|(start, end)| json!({"StartMacAddress": start, "EndMacAddress": end}))
            .collect();
        body["MacPool"] = json!({ "Ranges": ranges });
    }
    if !options.given.is_empty() {
        body["Options"] = json!(options.stored());
    }
    Ok(body)
}

/// The `Subnets` array: prefixes, default routes to the gateways and the
/// VLAN/VSID subnet policies.
fn subnets(args: &NetworkArgs, options: &ShimOptions) -> Result<Vec<Value>, String> {
    let nets: Vec<IpNet> = args
        .subnets
        .iter()
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|_| format!("invalid --subnet {s:?}: expected a CIDR such as 10.0.0.0/24"))
        })
        .collect::<Result<_, _>>()?;

    let mut gateways: Vec<Option<String>> = vec![None; nets.len()];
    for gw in &args.gateways {
        let ip = parse_ip("--gateway", gw)?;
        let Some(index) = nets.iter().position(|n| n.contains(&ip)) else {
            return Err(if nets.is_empty() {
                format!("--gateway {gw} needs a --subnet that contains it")
            } else {
                format!("--gateway {gw} is not in any --subnet")
            });
        };
        if gateways[index].is_some() {
            return Err(format!(
                "more than one --gateway for subnet {}",
                args.subnets[index].trim()
            ));
        }
        gateways[index] = Some(ip.to_string());
    }

    let mut policies = Vec::new();
    for (key, kind, id) in [
        ("vlanid", "VLAN", options.vlan_id),
        ("vsid", "VSID", options.vsid),
    ] {
        if let Some(id) = id {
            if nets.is_empty() {
                return Err(format!(
                    "option {PREFIX}{key} needs at least one --subnet (HCN sets it per subnet)"
                ));
            }
            policies.push(json!({"Type": kind, "Settings": {"IsolationId": id}}));
        }
    }
    let vnis = vxlan_ids(options, nets.len())?;

    Ok(nets
        .iter()
        .zip(&args.subnets)
        .zip(gateways)
        .enumerate()
        .map(|(i, ((net, given), gateway))| {
            let mut subnet = json!({ "IpAddressPrefix": given.trim() });
            if let Some(gateway) = gateway {
                let default = match net {
                    IpNet::V4(_) => "0.0.0.0/0",
                    IpNet::V6(_) => "::/0",
                };
                subnet["Routes"] = json!([{"NextHop": gateway, "DestinationPrefix": default}]);
            }
            let mut policies = policies.clone();
            if let Some(vni) = vnis.get(i) {
                policies.push(json!({"Type": "VSID", "Settings": {"IsolationId": vni}}));
            }
            if !policies.is_empty() {
                subnet["Policies"] = json!(policies);
            }
            subnet
        })
        .collect())
}

/// Docker overlay's `vxlanid_list`: exactly one VNI per `--subnet`, in
/// order (HCN's VSID is per subnet), and not together with `vsid`.
fn vxlan_ids(options: &ShimOptions, subnets: usize) -> Result<Vec<u32>, String> {
    let ids = &options.vxlan_ids;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let key = full_key("vxlanid_list");
    if options.vsid.is_some() {
        return Err(with_hcn_code(
            format!("options {PREFIX}vsid and {key} both give the subnets' VNI: give one of them"),
            HCN_E_INVALID_POLICY,
        ));
    }
    if ids.len() != subnets {
        return Err(with_hcn_code(
            format!(
                "option {key} gives {} VXLAN IDs for {subnets} --subnet: give one per subnet, in order",
                ids.len()
            ),
            HCN_E_INVALID_POLICY,
        ));
    }
    Ok(ids.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: &str, driver: &str) -> NetworkArgs {
        NetworkArgs {
            name: Some(name.into()),
            driver: driver.into(),
            ..Default::default()
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn minimal() {
        assert_eq!(
            network_body(&args("nat1", "nat")).unwrap(),
            json!({"Name":"nat1","Type":"nat","SchemaVersion":{"Major":2,"Minor":0}})
        );
    }

    #[test]
    fn ipv6_needs_an_ipv6_subnet() {
        let mut a = args("d", "nat");
        a.ipv6 = true;
        a.subnets = strings(&["10.1.0.0/24"]);
        assert!(network_body(&a).unwrap_err().contains("IPv6 --subnet"));
        a.subnets = strings(&["10.1.0.0/24", "fd00:1::/64"]);
        let body = network_body(&a).unwrap();
        assert_eq!(
            body["Ipams"][0]["Subnets"][1]["IpAddressPrefix"],
            "fd00:1::/64"
        );
    }

    #[test]
    fn subnets_and_gateways() {
        let mut a = args("dual", "l2bridge");
        a.subnets = strings(&["10.1.0.0/24", "fd00:1::/64", "10.2.0.0/24"]);
        a.gateways = strings(&["fd00:1::1", "10.1.0.1"]);
        assert_eq!(
            network_body(&a).unwrap()["Ipams"],
            json!([{"Type":"Static","Subnets":[
                {"IpAddressPrefix":"10.1.0.0/24","Routes":[{"NextHop":"10.1.0.1","DestinationPrefix":"0.0.0.0/0"}]},
                {"IpAddressPrefix":"fd00:1::/64","Routes":[{"NextHop":"fd00:1::1","DestinationPrefix":"::/0"}]},
                {"IpAddressPrefix":"10.2.0.0/24"},
            ]}])
        );
    }

    #[test]
    fn vxlanid_list_gives_each_subnet_its_vni() {
        let mut a = args("ov", "overlay");
        a.subnets = strings(&["10.0.1.0/24", "10.0.2.0/24"]);
        a.options = strings(&["com.docker.network.driver.overlay.vxlanid_list=4100,4101"]);
        let body = network_body(&a).unwrap();
        let subnets = &body["Ipams"][0]["Subnets"];
        assert_eq!(
            subnets[0]["Policies"],
            json!([{"Type":"VSID","Settings":{"IsolationId":4100}}])
        );
        assert_eq!(subnets[1]["Policies"][0]["Settings"]["IsolationId"], 4101);
        assert_eq!(
            body["Options"]["com.docker.network.driver.overlay.vxlanid_list"],
            "4100,4101"
        );
        assert_eq!(
            body["Policies"],
            json!([{"Type":"AutomaticDNS","Settings":{"Enable":true}}]),
            "the overlay's gateway DNS proxy, as docker's overlay driver asks"
        );
        a.options = strings(&["vxlanid_list=4100"]);
        let err = network_body(&a).unwrap_err();
        assert!(err.contains("gives 1 VXLAN IDs for 2 --subnet"), "{err}");
        a.options = strings(&["vxlanid_list=4100,4101", "vsid=7"]);
        assert!(network_body(&a).unwrap_err().contains("give one of them"));
        a.driver = "l2bridge".into();
        a.options = strings(&["vxlanid_list=4100,4101"]);
        let err = network_body(&a).unwrap_err();
        assert!(err.contains("does not apply to l2bridge"), "{err}");
        assert!(
            err.contains("com.docker.network.driver.overlay.vxlanid_list"),
            "{err}"
        );
    }

    #[test]
    fn shim_options_map_to_v2() {
        let mut a = args("ignored", "l2bridge");
        a.subnets = strings(&["192.168.50.0/24"]);
        a.gateways = strings(&["192.168.50.1"]);
        a.options = strings(&[
            "com.docker.network.windowsshim.networkname=ext",
            "com.docker.network.windowsshim.interface=Ethernet 2",
            "com.docker.network.windowsshim.vlanid=11",
            "com.docker.network.windowsshim.vsid=4097",
            "com.docker.network.windowsshim.dnssuffix=corp.example",
            "com.docker.network.windowsshim.dnsservers=10.0.0.53,10.0.0.54",
            "com.docker.network.windowsshim.macpool=00-15-5D-00-00-00,00-15-5D-00-0F-FF,00-15-5D-01-00-00,00-15-5D-01-0F-FF",
        ]);
        assert_eq!(
            network_body(&a).unwrap(),
            json!({
                "Name": "ext",
                "Type": "l2bridge",
                "SchemaVersion": {"Major":2,"Minor":0},
                "Ipams": [{"Type":"Static","Subnets":[{
                    "IpAddressPrefix": "192.168.50.0/24",
                    "Routes": [{"NextHop":"192.168.50.1","DestinationPrefix":"0.0.0.0/0"}],
                    "Policies": [
                        {"Type":"VLAN","Settings":{"IsolationId":11}},
                        {"Type":"VSID","Settings":{"IsolationId":4097}},
                    ],
                }]}],
                "Policies": [{"Type":"NetAdapterName","Settings":{"NetworkAdapterName":"Ethernet 2"}}],
                "Dns": {"Domain":"corp.example","ServerList":["10.0.0.53","10.0.0.54"]},
                "MacPool": {"Ranges":[
                    {"StartMacAddress":"00-15-5D-00-00-00","EndMacAddress":"00-15-5D-00-0F-FF"},
                    {"StartMacAddress":"00-15-5D-01-00-00","EndMacAddress":"00-15-5D-01-0F-FF"},
                ]},
                "Options": {
                    "com.docker.network.windowsshim.networkname": "ext",
                    "com.docker.network.windowsshim.interface": "Ethernet 2",
                    "com.docker.network.windowsshim.vlanid": "11",
                    "com.docker.network.windowsshim.vsid": "4097",
                    "com.docker.network.windowsshim.dnssuffix": "corp.example",
                    "com.docker.network.windowsshim.dnsservers": "10.0.0.53,10.0.0.54",
                    "com.docker.network.windowsshim.macpool": "00-15-5D-00-00-00,00-15-5D-00-0F-FF,00-15-5D-01-00-00,00-15-5D-01-0F-FF",
                },
            })
        );
    }

    #[test]
    fn a_comma_list_of_interfaces_is_a_team_with_its_mode() {
        let mut a = args("team", "transparent");
        a.options = strings(&[
            "com.docker.network.windowsshim.interface=eth1,eth2",
            "hostnet.teaming_mode=balance-tlb",
        ]);
        let body = network_body(&a).unwrap();
        assert_eq!(
            body["Policies"],
            json!([{"Type":"NetAdapterName","Settings":{"NetworkAdapterName":"eth1,eth2","TeamingMode":"balance-tlb"}}])
        );
        assert_eq!(body["Options"]["hostnet.teaming_mode"], "balance-tlb");
        a.options = strings(&["interface=eth1", "teaming_mode=active-backup"]);
        let e = network_body(&a).unwrap_err();
        assert!(e.contains("hostnet.teaming_mode applies to a team"), "{e}");
        a.driver = "nat".into();
        a.options = strings(&["interface=eth1,eth2", "teaming_mode=active-backup"]);
        let e = network_body(&a).unwrap_err();
        assert!(e.contains("does not apply to nat networks"), "{e}");
    }

    #[test]
    fn outbound_nat_is_kept_for_the_endpoints() {
        let mut a = args("l2", "L2Bridge");
        a.subnets = strings(&["192.0.2.0/24"]);
        a.options = strings(&[
            "com.docker.network.windowsshim.interface=eth0",
            "enable_outboundnat=true",
            "outboundnat_exceptions=192.0.2.0/24",
        ]);
        let body = network_body(&a).unwrap();
        assert_eq!(
            body["Options"],
            json!({
                "com.docker.network.windowsshim.interface": "eth0",
                "com.docker.network.windowsshim.enable_outboundnat": "true",
                "com.docker.network.windowsshim.outboundnat_exceptions": "192.0.2.0/24",
            })
        );
        // The network itself takes no OutBoundNAT: it is an endpoint policy.
        assert_eq!(
            body["Policies"],
            json!([{"Type":"NetAdapterName","Settings":{"NetworkAdapterName":"eth0"}}])
        );
        assert!(network_body(&args("n", "nat"))
            .unwrap()
            .get("Options")
            .is_none());
    }

    #[test]
    fn options_of_other_drivers_are_refused() {
        for (driver, option, needle) in [
            (
                "nat",
                "enable_outboundnat=true",
                "enable_outboundnat does not apply to nat networks",
            ),
            (
                "Transparent",
                "enable_outboundnat=true",
                "does not apply to transparent networks",
            ),
            (
                "NAT",
                "com.docker.network.windowsshim.interface=eth0",
                "interface does not apply to nat networks",
            ),
            ("nat", "vlanid=5", "vlanid does not apply to nat"),
        ] {
            let mut a = args("n", driver);
            a.subnets = strings(&["10.0.0.0/24"]);
            a.options = strings(&[option]);
            let err = network_body(&a).unwrap_err();
            assert!(err.contains(needle), "{err}");
            assert!(
                err.ends_with("(HCN 0x803B000E HCN_E_INVALID_POLICY_TYPE)"),
                "{err}"
            );
        }
    }

    #[test]
    fn name_from_option_only() {
        let mut a = args("x", "nat");
        a.name = None;
        assert!(network_body(&a)
            .unwrap_err()
            .contains("a network name is required"));
        a.options = strings(&["com.docker.network.windowsshim.networkname=n"]);
        assert_eq!(network_body(&a).unwrap()["Name"], "n");
    }

    #[test]
    fn errors() {
        /// (subnets, gateways, options, expected error fragment)
        type Case = (
            &'static [&'static str],
            &'static [&'static str],
            &'static [&'static str],
            &'static str,
        );
        let cases: [Case; 6] = [
            (
                &["10.0.0.0/33"],
                &[],
                &[],
                "invalid --subnet \"10.0.0.0/33\"",
            ),
            (&[], &["10.0.0.1"], &[], "needs a --subnet that contains it"),
            (
                &["10.0.0.0/24"],
                &["10.9.0.1"],
                &[],
                "--gateway 10.9.0.1 is not in any --subnet",
            ),
            (
                &["10.0.0.0/24"],
                &["10.0.0.1", "10.0.0.2"],
                &[],
                "more than one --gateway",
            ),
            (&[], &[], &["vlanid=5"], "needs at least one --subnet"),
            (&["10.0.0.0/24"], &["gw"], &[], "invalid --gateway \"gw\""),
        ];
        for (subnets, gateways, options, needle) in cases {
            let mut a = args("n", "transparent");
            a.subnets = strings(subnets);
            a.gateways = strings(gateways);
            a.options = strings(options);
            let err = network_body(&a).unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let mut a = args("n", " ");
        assert!(network_body(&a).unwrap_err().contains("driver"));
        a.driver = "nat".into();
        a.options = strings(&["hnsid=abc"]);
        assert!(network_body(&a).unwrap_err().contains("not supported yet"));
    }
}
