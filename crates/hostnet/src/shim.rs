//! Docker's `-o com.docker.network.windowsshim.*` network options.
//!
//! Scripts written for `docker network create` on Windows pass these; we
//! accept the same keys (also without the prefix) and map them onto the HCN v2
//! network document instead of docker's v1 one. Options whose effect hostnet
//! does not implement are refused by name rather than silently ignored.
//!
//! The same parser reads the options back from a network's stored `Options`
//! (see [`crate::inherited`]): docker acts on some of them at every endpoint
//! create, and so does the CLI.

use crate::addr::{check_mac, parse_ip};
use crate::error::with_hcn_code;
use hostnet_api::codes::HCN_E_INVALID_POLICY;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The key prefix docker uses.
pub const PREFIX: &str = "com.docker.network.windowsshim.";
/// The prefix of docker's overlay driver options (`vxlanid_list`).
pub const OVERLAY_PREFIX: &str = "com.docker.network.driver.overlay.";
/// The prefix of hostnet's own options (`teaming_mode`), which docker's
/// namespaces have no key for.
pub const HOSTNET_PREFIX: &str = "hostnet.";

/// Keys that hostnet acts on.
const SUPPORTED: [&str; 12] = [
    "networkname",
    "interface",
    "vlanid",
    "vsid",
    "dnssuffix",
    "dnsservers",
    "macpool",
    "enable_outboundnat",
    "outboundnat_exceptions",
    "disable_gatewaydns",
    "vxlanid_list",
    "teaming_mode",
];

/// Docker's full key for a short one: the overlay driver's own options
/// keep their namespace, the rest are windowsshim's.
pub fn full_key(short: &str) -> String {
    match short {
        "vxlanid_list" => format!("{OVERLAY_PREFIX}{short}"),
        "teaming_mode" => format!("{HOSTNET_PREFIX}{short}"),
        _ => format!("{PREFIX}{short}"),
    }
}

/// The largest VXLAN network identifier (24 bits).
const MAX_VNI: u32 = 0xFF_FFFF;

/// Docker keys that hostnet knows but does not implement yet.
const NOT_YET: [&str; 4] = ["hnsid", "hnsowned", "routingdomain", "sourcemac"];

/// The options of one `network create`, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShimOptions {
    /// `networkname`: the HCN network name.
    pub network_name: Option<String>,
    /// `interface`: host adapter to bind (NetAdapterName policy); a comma
    /// list teams them.
    pub interface: Option<String>,
    /// hostnet's `teaming_mode`: how a team of adapters spreads frames
    /// (the policy's `TeamingMode`; hostnetd checks the value).
    pub teaming_mode: Option<String>,
    /// `vlanid`: VLAN policy on every subnet.
    pub vlan_id: Option<u32>,
    /// `vsid`: VSID policy on every subnet.
    pub vsid: Option<u32>,
    /// Docker overlay's `vxlanid_list`: one VNI per subnet, in order.
    pub vxlan_ids: Vec<u32>,
    /// `dnssuffix`: `Dns.Domain`.
    pub dns_suffix: Option<String>,
    /// `dnsservers`: `Dns.ServerList`.
    pub dns_servers: Vec<String>,
    /// `macpool`: `MacPool.Ranges` as (start, end).
    pub mac_pool: Vec<(String, String)>,
    /// `enable_outboundnat`: every endpoint gets an `OutBoundNAT` policy.
    pub outbound_nat: bool,
    /// `outboundnat_exceptions`: destinations that endpoint policy leaves
    /// alone (prefixes or addresses, as given).
    pub outbound_nat_exceptions: Vec<String>,
    /// Every option given, by short key, with its value as given (a later
    /// key overrides an earlier one).
    pub given: BTreeMap<String, String>,
    /// `disable_gatewaydns`: no DNS proxy on the NAT gateway, and the
    /// gateway left out of endpoints' servers (policy `AutomaticDNS`
    /// with `Enable: false`).
    pub disable_gateway_dns: bool,
}

fn valid_keys() -> String {
    SUPPORTED
        .iter()
        .map(|k| full_key(k))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_u32(key: &str, value: &str) -> Result<u32, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("option {PREFIX}{key}: {value:?} is not a number"))
}

/// Go's `strconv.ParseBool`, which docker uses for boolean options.
fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(with_hcn_code(
            format!("option {PREFIX}{key}: {value:?} is not a boolean: give true or false"),
            HCN_E_INVALID_POLICY,
        )),
    }
}

/// One `outboundnat_exceptions` entry: an IPv4 prefix or address.
fn check_exception(entry: &str) -> Result<String, String> {
    let bad = |why: &str| {
        with_hcn_code(
            format!("option {PREFIX}outboundnat_exceptions: {entry:?} {why}"),
            HCN_E_INVALID_POLICY,
        )
    };
    let ip =
        match (entry.parse::<IpNet>(), entry.parse::<IpAddr>()) {
            (Ok(net), _) => net.addr(),
            (_, Ok(ip)) => ip,
            _ => return Err(bad(
                "is not a prefix or address: give IPv4 CIDRs such as 10.0.0.0/8, comma-separated",
            )),
        };
    if ip.is_ipv6() {
        return Err(bad(
            "is IPv6: outbound NAT here is IPv4 (endpoints' IPv6 traffic is never NATed)",
        ));
    }
    Ok(entry.to_string())
}

/// One `vxlanid_list` entry: a VXLAN ID, 1-16777215.
fn check_vni(id: &str) -> Result<u32, String> {
    match id.parse::<u32>() {
        Ok(v) if (1..=MAX_VNI).contains(&v) => Ok(v),
        _ => Err(with_hcn_code(
            format!(
                "option {}: {id:?} is not a VXLAN ID: give numbers 1-{MAX_VNI}, one per --subnet, comma-separated",
                full_key("vxlanid_list")
            ),
            HCN_E_INVALID_POLICY,
        )),
    }
}

impl ShimOptions {
    /// Parses `KEY=VALUE` strings; a later key overrides an earlier one.
    pub fn parse(options: &[String]) -> Result<Self, String> {
        let pairs = options
            .iter()
            .map(|option| {
                option
                    .split_once('=')
                    .ok_or_else(|| format!("invalid option {option:?}: expected KEY=VALUE"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_pairs(pairs)
    }

    /// Parses (key, value) pairs, such as a network's stored `Options`.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        let mut parsed = ShimOptions::default();
        for (key, value) in pairs {
            let key = key.trim();
            let short = key
                .strip_prefix(PREFIX)
                .or_else(|| key.strip_prefix(OVERLAY_PREFIX))
                .or_else(|| key.strip_prefix(HOSTNET_PREFIX))
                .unwrap_or(key);
            if NOT_YET.contains(&short) {
                return Err(format!("option {PREFIX}{short} is not supported yet"));
            }
            parsed.set(short, value).map_err(|e| {
                if e.is_empty() {
                    format!(
                        "unknown network option {key:?}; valid options are {}",
                        valid_keys()
                    )
                } else {
                    e
                }
            })?;
            parsed.given.insert(short.to_string(), value.to_string());
        }
        if parsed.teaming_mode.is_some()
            && !parsed.interface.as_deref().is_some_and(|i| i.contains(','))
        {
            return Err(with_hcn_code(
                format!(
                    "option {} applies to a team: give {PREFIX}interface two or more adapters, comma-separated (eth1,eth2)",
                    full_key("teaming_mode")
                ),
                HCN_E_INVALID_POLICY,
            ));
        }
        if parsed.given.contains_key("outboundnat_exceptions") && !parsed.outbound_nat {
            return Err(with_hcn_code(
                format!(
                    "option {PREFIX}outboundnat_exceptions only applies with \
                     {PREFIX}enable_outboundnat=true: add that option or drop the exceptions"
                ),
                HCN_E_INVALID_POLICY,
            ));
        }
        Ok(parsed)
    }

    /// The options to keep with the network: every one given, under
    /// docker's full key.
    pub fn stored(&self) -> BTreeMap<String, String> {
        self.given
            .iter()
            .map(|(key, value)| (full_key(key), value.clone()))
            .collect()
    }

    /// Sets one option; an empty error means "unknown key".
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let non_empty = |value: &str| {
            let value = value.trim();
            if value.is_empty() {
                Err(format!("option {PREFIX}{key} needs a value"))
            } else {
                Ok(value.to_string())
            }
        };
        match key {
            "networkname" => self.network_name = Some(non_empty(value)?),
            "interface" => self.interface = Some(non_empty(value)?),
            "teaming_mode" => self.teaming_mode = Some(non_empty(value)?),
            "vlanid" => {
                let vlan = parse_u32(key, value)?;
                if !(1..=4094).contains(&vlan) {
                    return Err(format!(
                        "option {PREFIX}vlanid: VLAN {vlan} is outside 1-4094"
                    ));
                }
                self.vlan_id = Some(vlan);
            }
            "vsid" => self.vsid = Some(parse_u32(key, value)?),
            "vxlanid_list" => {
                self.vxlan_ids = list(value).map(check_vni).collect::<Result<_, _>>()?;
                if self.vxlan_ids.is_empty() {
                    return Err(format!("option {} needs a value", full_key(key)));
                }
            }
            "dnssuffix" => self.dns_suffix = Some(non_empty(value)?),
            "disable_gatewaydns" => self.disable_gateway_dns = parse_bool(key, value)?,
            "dnsservers" => {
                self.dns_servers = list(value)
                    .map(|s| {
                        parse_ip(&format!("{PREFIX}dnsservers entry"), s).map(|ip| ip.to_string())
                    })
                    .collect::<Result<_, _>>()?;
            }
            "macpool" => {
                let macs: Vec<&str> = list(value).collect();
                if macs.is_empty() || macs.len() % 2 != 0 {
                    return Err(format!(
                        "option {PREFIX}macpool needs start,end pairs of MAC addresses (got {} addresses)",
                        macs.len()
                    ));
                }
                let what = format!("{PREFIX}macpool entry");
                self.mac_pool = macs
                    .chunks(2)
                    .map(|pair| {
                        Ok((
                            check_mac(&what, pair[0])?.to_string(),
                            check_mac(&what, pair[1])?.to_string(),
                        ))
                    })
                    .collect::<Result<_, String>>()?;
            }
            "enable_outboundnat" => self.outbound_nat = parse_bool(key, value)?,
            "outboundnat_exceptions" => {
                self.outbound_nat_exceptions =
                    list(value).map(check_exception).collect::<Result<_, _>>()?;
            }
            _ => return Err(String::new()),
        }
        Ok(())
    }
}

/// Comma-separated items, trimmed, empty ones dropped.
fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(options: &[&str]) -> Result<ShimOptions, String> {
        ShimOptions::parse(&options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn all_supported_keys() {
        let o = parse(&[
            "com.docker.network.windowsshim.networkname=ext",
            "com.docker.network.windowsshim.interface=eth1",
            "com.docker.network.windowsshim.vlanid=11",
            "vsid=5000",
            "com.docker.network.windowsshim.dnssuffix=corp.example",
            "com.docker.network.windowsshim.dnsservers=10.0.0.53, 10.0.0.54",
            "com.docker.network.windowsshim.macpool=00-15-5D-00-00-00,00-15-5D-00-0F-FF",
            "enable_outboundnat=true",
            "com.docker.network.windowsshim.outboundnat_exceptions=192.0.2.0/24, 10.1.2.3,",
        ])
        .unwrap();
        assert_eq!(o.network_name.as_deref(), Some("ext"));
        assert_eq!(o.interface.as_deref(), Some("eth1"));
        assert_eq!((o.vlan_id, o.vsid), (Some(11), Some(5000)));
        assert_eq!(o.dns_suffix.as_deref(), Some("corp.example"));
        assert_eq!(o.dns_servers, ["10.0.0.53", "10.0.0.54"]);
        assert!(!o.disable_gateway_dns);
        assert!(
            parse(&["disable_gatewaydns=True"])
                .unwrap()
                .disable_gateway_dns
        );
        assert_eq!(
            o.mac_pool,
            [("00-15-5D-00-00-00".into(), "00-15-5D-00-0F-FF".into())]
        );
        assert!(o.outbound_nat);
        assert_eq!(o.outbound_nat_exceptions, ["192.0.2.0/24", "10.1.2.3"]);
        // Kept under docker's full keys, values as given.
        let stored = o.stored();
        assert_eq!(stored.len(), 9);
        assert_eq!(stored[&format!("{PREFIX}vsid")], "5000");
        assert_eq!(
            stored[&format!("{PREFIX}outboundnat_exceptions")],
            "192.0.2.0/24, 10.1.2.3,"
        );
    }

    #[test]
    fn vxlanid_list_keeps_the_overlay_drivers_key() {
        for given in [
            "com.docker.network.driver.overlay.vxlanid_list=4100, 4101",
            "vxlanid_list=4100,4101",
        ] {
            let o = parse(&[given]).unwrap();
            assert_eq!(o.vxlan_ids, [4100, 4101]);
            assert!(o
                .stored()
                .contains_key("com.docker.network.driver.overlay.vxlanid_list"));
        }
        for bad in ["vxlanid_list=0", "vxlanid_list=16777216", "vxlanid_list=a"] {
            let err = parse(&[bad]).unwrap_err();
            assert!(err.contains("is not a VXLAN ID"), "{bad}: {err}");
            assert!(err.ends_with("(HCN 0x803B000D HCN_E_INVALID_POLICY)"));
        }
        assert!(parse(&["vxlanid_list=,"])
            .unwrap_err()
            .contains("needs a value"));
    }

    #[test]
    fn booleans_as_docker_reads_them() {
        for (value, want) in [("true", true), ("1", true), ("T", true), ("False", false)] {
            let o = parse(&[&format!("enable_outboundnat={value}")]).unwrap();
            assert_eq!(o.outbound_nat, want, "{value}");
        }
        // The later key wins, also over the prefixed spelling.
        let o = parse(&[
            "com.docker.network.windowsshim.enable_outboundnat=true",
            "enable_outboundnat=false",
        ])
        .unwrap();
        assert!(!o.outbound_nat);
        assert_eq!(o.stored().len(), 1);
    }

    #[test]
    fn stored_options_read_back() {
        let o = ShimOptions::from_pairs([
            ("com.docker.network.windowsshim.enable_outboundnat", "true"),
            ("outboundnat_exceptions", "10.0.0.0/8"),
        ])
        .unwrap();
        assert!(o.outbound_nat);
        assert_eq!(o.outbound_nat_exceptions, ["10.0.0.0/8"]);
    }

    #[test]
    fn refusals() {
        for (opt, needle) in [
            (
                "com.docker.network.windowsshim.hnsid=x",
                "option com.docker.network.windowsshim.hnsid is not supported yet",
            ),
            ("disable_gatewaydns=maybe", "\"maybe\" is not a boolean"),
            ("com.docker.network.windowsshim.bogus=1", "unknown network option \"com.docker.network.windowsshim.bogus\"; valid options are com.docker.network.windowsshim.networkname, "),
            ("novalue", "expected KEY=VALUE"),
            ("vlanid=abc", "\"abc\" is not a number"),
            ("vlanid=4095", "outside 1-4094"),
            ("macpool=00-15-5D-00-00-00,00-15-5D-00-0F-FF,00-15-5D-00-10-00", "got 3 addresses"),
            ("macpool=00-15-5D-00-00-00,nope", "invalid com.docker.network.windowsshim.macpool entry \"nope\""),
            ("dnsservers=10.0.0.1,dns.example", "\"dns.example\": not an IP address"),
            ("networkname=", "needs a value"),
            ("enable_outboundnat=yes", "\"yes\" is not a boolean: give true or false (HCN 0x803B000D HCN_E_INVALID_POLICY)"),
        ] {
            let err = parse(&[opt]).unwrap_err();
            assert!(err.contains(needle), "{opt}: {err}");
        }
    }

    #[test]
    fn exceptions_refusals() {
        for (opts, needle) in [
            (
                &[
                    "enable_outboundnat=true",
                    "outboundnat_exceptions=10.0.0.0/33",
                ][..],
                "\"10.0.0.0/33\" is not a prefix or address",
            ),
            (
                &[
                    "enable_outboundnat=true",
                    "outboundnat_exceptions=10.0.0.0/8,corp",
                ],
                "\"corp\" is not a prefix or address",
            ),
            (
                &["enable_outboundnat=true", "outboundnat_exceptions=fd00::/8"],
                "\"fd00::/8\" is IPv6",
            ),
            (
                &["outboundnat_exceptions=10.0.0.0/8"],
                "only applies with com.docker.network.windowsshim.enable_outboundnat=true",
            ),
            (
                &[
                    "outboundnat_exceptions=10.0.0.0/8",
                    "enable_outboundnat=false",
                ],
                "only applies with",
            ),
        ] {
            let err = parse(opts).unwrap_err();
            assert!(err.contains(needle), "{opts:?}: {err}");
            assert!(
                err.ends_with("(HCN 0x803B000D HCN_E_INVALID_POLICY)"),
                "{err}"
            );
        }
    }
}
