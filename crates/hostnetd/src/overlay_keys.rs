//! Where cluster mode keeps shared overlay state in etcd, and the JSON of
//! a published endpoint (pure: keys and values in, meanings out).
//!
//! ```text
//! <prefix>/cluster/overlay_networks/<network ID>              shared definition (the core's store)
//! <prefix>/cluster/overlay_vnis/<vni>, overlay_names/<name>   claims (the core's store)
//! <prefix>/cluster/overlay_endpoints/<network ID>/<endpoint>  a published endpoint, under its host's lease
//! ```

use std::net::Ipv4Addr;

use hostnet_core::OverlayEndpoint;
use hostnet_model::domain::Mac;
use hostnet_model::{format_guid, parse_guid};
use serde_json::{json, Value};
use uuid::Uuid;

/// Everything the overlay watch follows: networks and endpoints (and the
/// claims, which it ignores) share this prefix, so one watch sees them in
/// one revision order.
pub fn watch_prefix(prefix: &str) -> String {
    format!("{prefix}/cluster/overlay_")
}

fn networks_prefix(prefix: &str) -> String {
    format!("{prefix}/cluster/overlay_networks/")
}

fn endpoints_prefix(prefix: &str) -> String {
    format!("{prefix}/cluster/overlay_endpoints/")
}

/// The key a local endpoint is published at.
pub fn endpoint_key(prefix: &str, network: &Uuid, endpoint: &Uuid) -> Vec<u8> {
    format!(
        "{}{}/{}",
        endpoints_prefix(prefix),
        format_guid(network),
        format_guid(endpoint)
    )
    .into_bytes()
}

/// A published endpoint's value: what other hosts program, whose it is,
/// and its name (for the network's DNS proxies; a record without `Name`,
/// from an older host, is an endpoint without a name).
pub fn endpoint_record(host_id: &str, ep: &OverlayEndpoint) -> Vec<u8> {
    let v = json!({
        "HostId": host_id,
        "HostComputeNetwork": format_guid(&ep.network),
        "ID": format_guid(&ep.endpoint),
        "IpAddress": ep.ip.to_string(),
        "MacAddress": Mac(ep.mac).to_string(),
        "ProviderAddress": ep.pa.to_string(),
        "Name": ep.name,
    });
    serde_json::to_vec(&v).expect("JSON serializes")
}

/// What a key under [`watch_prefix`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    Network(Uuid),
    Endpoint(Uuid),
    /// A claim or anything else: not followed.
    Other,
}

/// The meaning of a key.
pub fn entry(prefix: &str, key: &[u8]) -> Entry {
    let Ok(key) = std::str::from_utf8(key) else {
        return Entry::Other;
    };
    if let Some(id) = key.strip_prefix(&networks_prefix(prefix)) {
        return parse_guid(id).map_or(Entry::Other, Entry::Network);
    }
    if let Some(rest) = key.strip_prefix(&endpoints_prefix(prefix)) {
        let ep = rest.split_once('/').map(|(_, ep)| ep).unwrap_or("");
        return parse_guid(ep).map_or(Entry::Other, Entry::Endpoint);
    }
    Entry::Other
}

/// A published endpoint's host and description; None if malformed.
pub fn parse_endpoint_record(value: &[u8]) -> Option<(String, OverlayEndpoint)> {
    let v: Value = serde_json::from_slice(value).ok()?;
    let text = |f: &str| v.get(f).and_then(Value::as_str);
    let ep = OverlayEndpoint {
        network: parse_guid(text("HostComputeNetwork")?).ok()?,
        endpoint: parse_guid(text("ID")?).ok()?,
        ip: text("IpAddress")?.parse::<Ipv4Addr>().ok()?,
        mac: text("MacAddress")?.parse::<Mac>().ok()?.0,
        pa: text("ProviderAddress")?.parse::<Ipv4Addr>().ok()?,
        name: text("Name").unwrap_or_default().to_string(),
    };
    Some((text("HostId")?.to_string(), ep))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> OverlayEndpoint {
        OverlayEndpoint {
            network: Uuid::from_u128(1),
            endpoint: Uuid::from_u128(2),
            ip: Ipv4Addr::new(10, 0, 1, 5),
            mac: [0x00, 0x15, 0x5d, 10, 0, 1],
            pa: Ipv4Addr::new(192, 0, 2, 11),
            name: "web".into(),
        }
    }

    #[test]
    fn endpoint_record_round_trips() {
        let ep = sample();
        let got = parse_endpoint_record(&endpoint_record("host1", &ep));
        assert_eq!(got, Some(("host1".to_string(), ep.clone())));
        assert_eq!(parse_endpoint_record(b"{\"HostId\":\"h\"}"), None);
        // An older host's record has no name: still an endpoint.
        let mut old: Value = serde_json::from_slice(&endpoint_record("host1", &ep)).unwrap();
        old.as_object_mut().unwrap().remove("Name");
        let (_, parsed) = parse_endpoint_record(&serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(parsed.name, "");
        assert_eq!(parsed.ip, ep.ip);
    }

    #[test]
    fn keys_name_networks_endpoints_and_nothing_else() {
        let p = "/hostnet/v1";
        let ep = sample();
        let key = endpoint_key(p, &ep.network, &ep.endpoint);
        assert!(key.starts_with(watch_prefix(p).as_bytes()));
        assert_eq!(entry(p, &key), Entry::Endpoint(ep.endpoint));
        let net = format!("{p}/cluster/overlay_networks/{}", format_guid(&ep.network));
        assert_eq!(entry(p, net.as_bytes()), Entry::Network(ep.network));
        assert_eq!(
            entry(p, b"/hostnet/v1/cluster/overlay_vnis/4096"),
            Entry::Other
        );
        assert_eq!(
            entry(p, b"/hostnet/v1/cluster/overlay_endpoints/x"),
            Entry::Other
        );
    }
}
