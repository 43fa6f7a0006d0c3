//! The guest's network configuration, taken from its endpoint (the HCN
//! document hostnetd returned) and handed to the guest's `/init` on the
//! kernel command line as `hostnet.*` parameters.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

/// What the guest's `/init` gives its NIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestNet {
    /// The endpoint's MAC, `aa:bb:cc:dd:ee:ff` (qemu's and Linux's spelling).
    pub mac: String,
    /// The endpoint's addresses with their prefix lengths, in its
    /// `IpConfigurations` order (IPv4 first on a dual-stack network).
    pub addresses: Vec<IpNet>,
    /// Routes: destination and next hop (None: on-link). A default route
    /// is one of them.
    pub routes: Vec<(IpNet, Option<IpAddr>)>,
    /// The port's MTU (hostnetd's `TapMtu`), if it says.
    pub mtu: Option<u32>,
}

impl GuestNet {
    /// From an endpoint document: `MacAddress`, every `IpConfigurations`
    /// entry, `Routes` and `TapMtu`.
    pub fn from_endpoint(ep: &Value) -> Result<Self, String> {
        let mac = ep["MacAddress"]
            .as_str()
            .ok_or("the endpoint has no MacAddress")?;
        let mac = mac.replace('-', ":").to_ascii_lowercase();
        if mac.split(':').count() != 6
            || !mac
                .split(':')
                .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(format!("the endpoint's MacAddress {mac} is not a MAC"));
        }
        let mut addresses = Vec::new();
        for (i, cfg) in ep["IpConfigurations"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let ip: IpAddr = cfg["IpAddress"]
                .as_str()
                .ok_or(format!(
                    "the endpoint's IpConfigurations[{i}] has no IpAddress"
                ))?
                .parse()
                .map_err(|e| format!("the endpoint's IpConfigurations[{i}].IpAddress: {e}"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = cfg["PrefixLength"].as_u64().unwrap_or(max as u64) as u8;
            addresses.push(
                IpNet::new(ip, prefix).map_err(|e| {
                    format!("the endpoint's IpConfigurations[{i}].PrefixLength: {e}")
                })?,
            );
        }
        let ip = addresses
            .first()
            .ok_or("the endpoint has no IpConfigurations")?
            .addr();
        let mut routes = Vec::new();
        for (i, r) in ep["Routes"].as_array().into_iter().flatten().enumerate() {
            let destination: IpNet = r["DestinationPrefix"]
                .as_str()
                .unwrap_or(if ip.is_ipv4() { "0.0.0.0/0" } else { "::/0" })
                .parse()
                .map_err(|e| format!("the endpoint's Routes[{i}].DestinationPrefix: {e}"))?;
            let via = match r["NextHop"].as_str().map(str::trim) {
                None | Some("") => None,
                Some(h) => Some(
                    h.parse()
                        .map_err(|e| format!("the endpoint's Routes[{i}].NextHop: {e}"))?,
                ),
            };
            routes.push((destination, via));
        }
        let mtu = ep["TapMtu"].as_u64().map(|m| m as u32);
        Ok(Self {
            mac,
            addresses,
            routes,
            mtu,
        })
    }

    /// The kernel command-line parameters `/init` reads: `hostnet.mac`,
    /// one `hostnet.addr` per address, `hostnet.mtu` and one `hostnet.route=DEST@VIA` (VIA
    /// empty when on-link) per route, more specific routes first so a
    /// gateway's own subnet route exists before routes through it.
    pub fn kernel_args(&self) -> Vec<String> {
        let mut args = vec![format!("hostnet.mac={}", self.mac)];
        args.extend(self.addresses.iter().map(|a| format!("hostnet.addr={a}")));
        if let Some(mtu) = self.mtu {
            args.push(format!("hostnet.mtu={mtu}"));
        }
        let mut routes = self.routes.clone();
        routes.sort_by_key(|(d, via)| (via.is_some(), std::cmp::Reverse(d.prefix_len())));
        for (dest, via) in routes {
            let via = via.map(|v| v.to_string()).unwrap_or_default();
            args.push(format!("hostnet.route={dest}@{via}"));
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_endpoint_gives_mac_address_and_routes_on_the_command_line() {
        let ep = json!({
            "MacAddress": "00-15-5D-3A-00-05",
            "IpConfigurations": [{ "IpAddress": "10.88.0.5", "PrefixLength": 16 }],
            "TapMtu": 1450,
            "Routes": [
                { "NextHop": "10.88.0.1", "DestinationPrefix": "0.0.0.0/0" },
                { "DestinationPrefix": "192.0.2.0/24" },
                { "NextHop": "10.88.0.9", "DestinationPrefix": "198.18.0.0/15" }
            ]
        });
        let g = GuestNet::from_endpoint(&ep).unwrap();
        assert_eq!(
            g.kernel_args(),
            [
                "hostnet.mac=00:15:5d:3a:00:05",
                "hostnet.addr=10.88.0.5/16",
                "hostnet.mtu=1450",
                "hostnet.route=192.0.2.0/24@",
                "hostnet.route=198.18.0.0/15@10.88.0.9",
                "hostnet.route=0.0.0.0/0@10.88.0.1",
            ]
        );
    }

    #[test]
    fn a_dual_stack_endpoint_gives_both_addresses_and_both_default_routes() {
        let ep = json!({
            "MacAddress": "00-15-5D-3A-00-05",
            "IpConfigurations": [
                { "IpAddress": "10.88.0.5", "PrefixLength": 16 },
                { "IpAddress": "fd00:77::5", "PrefixLength": 64 }
            ],
            "Routes": [
                { "NextHop": "10.88.0.1", "DestinationPrefix": "0.0.0.0/0" },
                { "NextHop": "fd00:77::1", "DestinationPrefix": "::/0" }
            ]
        });
        let args = GuestNet::from_endpoint(&ep).unwrap().kernel_args();
        assert_eq!(
            args[1..],
            [
                "hostnet.addr=10.88.0.5/16",
                "hostnet.addr=fd00:77::5/64",
                "hostnet.route=0.0.0.0/0@10.88.0.1",
                "hostnet.route=::/0@fd00:77::1",
            ]
        );
    }

    #[test]
    fn an_endpoint_without_address_or_mac_is_an_error() {
        let e = GuestNet::from_endpoint(&json!({ "MacAddress": "00-15-5D-3A-00-05" })).unwrap_err();
        assert!(e.contains("IpConfigurations"), "{e}");
        let e = GuestNet::from_endpoint(&json!({ "MacAddress": "zz" })).unwrap_err();
        assert!(e.contains("not a MAC"), "{e}");
    }
}
