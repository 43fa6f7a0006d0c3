//! Docker's `-o com.docker.network.windowsshim.*` network options.
//!
//! Scripts written for `docker network create` on Windows pass these; we
//! accept the same keys (also without the prefix) and map them onto the HCN v2
//! network document instead of docker's v1 one. Options whose effect hostnet
//! does not implement are refused by name rather than silently ignored.

use crate::addr::{check_mac, parse_ip};

/// The key prefix docker uses.
pub const PREFIX: &str = "com.docker.network.windowsshim.";

/// Keys that are mapped onto the network document.
const SUPPORTED: [&str; 8] = [
    "networkname",
    "interface",
    "vlanid",
    "vsid",
    "dnssuffix",
    "dnsservers",
    "macpool",
    "disable_gatewaydns",
];

/// Docker keys that hostnet knows but does not implement yet.
const NOT_YET: [&str; 6] = [
    "hnsid",
    "enable_outboundnat",
    "outboundnat_exceptions",
    "hnsowned",
    "routingdomain",
    "sourcemac",
];

/// The options of one `network create`, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShimOptions {
    /// `networkname`: the HCN network name.
    pub network_name: Option<String>,
    /// `interface`: host adapter to bind (NetAdapterName policy).
    pub interface: Option<String>,
    /// `vlanid`: VLAN policy on every subnet.
    pub vlan_id: Option<u32>,
    /// `vsid`: VSID policy on every subnet.
    pub vsid: Option<u32>,
    /// `dnssuffix`: `Dns.Domain`.
    pub dns_suffix: Option<String>,
    /// `dnsservers`: `Dns.ServerList`.
    pub dns_servers: Vec<String>,
    /// `macpool`: `MacPool.Ranges` as (start, end).
    pub mac_pool: Vec<(String, String)>,
    /// `disable_gatewaydns`: no DNS proxy on the NAT gateway, and the
    /// gateway left out of endpoints' servers (policy `AutomaticDNS`
    /// with `Enable: false`).
    pub disable_gateway_dns: bool,
}

fn valid_keys() -> String {
    SUPPORTED
        .iter()
        .map(|k| format!("{PREFIX}{k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_u32(key: &str, value: &str) -> Result<u32, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("option {PREFIX}{key}: {value:?} is not a number"))
}

impl ShimOptions {
    /// Parses `KEY=VALUE` strings; a later key overrides an earlier one.
    pub fn parse(options: &[String]) -> Result<Self, String> {
        let mut parsed = ShimOptions::default();
        for option in options {
            let (key, value) = option
                .split_once('=')
                .ok_or_else(|| format!("invalid option {option:?}: expected KEY=VALUE"))?;
            let short = key.trim().strip_prefix(PREFIX).unwrap_or(key.trim());
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
        }
        Ok(parsed)
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
            "dnssuffix" => self.dns_suffix = Some(non_empty(value)?),
            "disable_gatewaydns" => {
                self.disable_gateway_dns = match value.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => {
                        return Err(format!(
                            "option {PREFIX}disable_gatewaydns: {value:?} is not true or false"
                        ))
                    }
                }
            }
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
    }

    #[test]
    fn refusals() {
        for (opt, needle) in [
            (
                "com.docker.network.windowsshim.hnsid=x",
                "option com.docker.network.windowsshim.hnsid is not supported yet",
            ),
            (
                "com.docker.network.windowsshim.enable_outboundnat=true",
                "enable_outboundnat is not supported yet",
            ),
            ("outboundnat_exceptions=10.0.0.0/8", "not supported yet"),
            ("disable_gatewaydns=maybe", "\"maybe\" is not true or false"),
            ("com.docker.network.windowsshim.bogus=1", "unknown network option \"com.docker.network.windowsshim.bogus\"; valid options are com.docker.network.windowsshim.networkname, "),
            ("novalue", "expected KEY=VALUE"),
            ("vlanid=abc", "\"abc\" is not a number"),
            ("vlanid=4095", "outside 1-4094"),
            ("macpool=00-15-5D-00-00-00,00-15-5D-00-0F-FF,00-15-5D-00-10-00", "got 3 addresses"),
            ("macpool=00-15-5D-00-00-00,nope", "invalid com.docker.network.windowsshim.macpool entry \"nope\""),
            ("dnsservers=10.0.0.1,dns.example", "\"dns.example\": not an IP address"),
            ("networkname=", "needs a value"),
        ] {
            let err = parse(&[opt]).unwrap_err();
            assert!(err.contains(needle), "{opt}: {err}");
        }
    }
}
