//! Reading display fields out of HCN objects (as JSON) for tables.
//!
//! The CLI does not depend on the daemon's typed model: it shows whatever the
//! daemon returns, tolerating missing fields and either key case for the few
//! keys HCN itself spells inconsistently (`Id`/`ID` in namespace resources).

use serde_json::Value;

/// Length of IDs in tables, as docker shows them.
pub const SHORT_ID: usize = 12;

/// A string field, or "" when absent.
pub fn text<'a>(object: &'a Value, key: &str) -> &'a str {
    object.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The object's `ID`.
pub fn id(object: &Value) -> &str {
    text(object, "ID")
}

/// The first 12 characters of an ID, case kept.
pub fn short_id(id: &str) -> String {
    id.chars().take(SHORT_ID).collect()
}

fn array<'a>(object: &'a Value, key: &str) -> &'a [Value] {
    object
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn get_ci<'a>(object: &'a Value, key: &str) -> Option<&'a Value> {
    object
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// A network's `Type`; HNS omits it for NAT networks.
pub fn network_type(network: &Value) -> &str {
    match text(network, "Type") {
        "" => "NAT",
        t => t,
    }
}

fn network_subnet_objects(network: &Value) -> impl Iterator<Item = &Value> {
    array(network, "Ipams")
        .iter()
        .flat_map(|ipam| array(ipam, "Subnets"))
}

/// Every subnet prefix of a network.
pub fn network_subnets(network: &Value) -> Vec<String> {
    network_subnet_objects(network)
        .map(|s| text(s, "IpAddressPrefix").to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Every gateway (subnet route `NextHop`) of a network.
pub fn network_gateways(network: &Value) -> Vec<String> {
    let mut gateways: Vec<String> = Vec::new();
    for route in network_subnet_objects(network).flat_map(|s| array(s, "Routes")) {
        let hop = text(route, "NextHop");
        if !hop.is_empty() && !gateways.iter().any(|g| g == hop) {
            gateways.push(hop.to_string());
        }
    }
    gateways
}

/// An endpoint's addresses, with `/PrefixLength` when known.
pub fn endpoint_ips(endpoint: &Value) -> Vec<String> {
    array(endpoint, "IpConfigurations")
        .iter()
        .filter_map(|c| {
            let ip = text(c, "IpAddress");
            if ip.is_empty() {
                return None;
            }
            Some(match c.get("PrefixLength").and_then(Value::as_u64) {
                Some(len) => format!("{ip}/{len}"),
                None => ip.to_string(),
            })
        })
        .collect()
}

/// The endpoint IDs listed in a namespace's `Resources`.
pub fn namespace_endpoints(namespace: &Value) -> Vec<String> {
    array(namespace, "Resources")
        .iter()
        .filter(|r| text(r, "Type").eq_ignore_ascii_case("Endpoint"))
        .filter_map(|r| get_ci(r.get("Data")?, "Id")?.as_str())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn network_fields() {
        let n = json!({
            "ID": "A1B2C3D4-0000-4000-8000-000000000001",
            "Ipams": [{"Type":"Static","Subnets":[
                {"IpAddressPrefix":"10.0.0.0/24","Routes":[{"NextHop":"10.0.0.1","DestinationPrefix":"0.0.0.0/0"}]},
                {"IpAddressPrefix":"fd00::/64"}
            ]}]
        });
        assert_eq!(network_type(&n), "NAT");
        assert_eq!(network_subnets(&n), ["10.0.0.0/24", "fd00::/64"]);
        assert_eq!(network_gateways(&n), ["10.0.0.1"]);
        assert_eq!(short_id(id(&n)), "A1B2C3D4-000");
    }

    #[test]
    fn endpoint_and_namespace_fields() {
        let e = json!({"IpConfigurations":[{"IpAddress":"10.0.0.2","PrefixLength":24},{"IpAddress":"fd00::2"}]});
        assert_eq!(endpoint_ips(&e), ["10.0.0.2/24", "fd00::2"]);
        let ns = json!({"Resources":[
            {"Type":"Endpoint","Data":{"Id":"E1"}},
            {"Type":"Container","Data":{"Id":"C1"}},
            {"Type":"endpoint","Data":{"ID":"E2"}}
        ]});
        assert_eq!(namespace_endpoints(&ns), ["E1", "E2"]);
        assert!(namespace_endpoints(&json!({})).is_empty());
    }
}
