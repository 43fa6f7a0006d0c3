//! What an endpoint inherits from its network's stored docker options.
//!
//! On Windows, docker adds `{"Type":"OutBoundNAT","ExceptionList":[…]}` to
//! every endpoint it creates on a network made with `-o enable_outboundnat`.
//! hostnetd keeps the options with the network (`Options`), so `endpoint
//! create` and `run` read them back from the network and do the same.

use crate::shim::{ShimOptions, PREFIX};
use crate::shim_drivers;
use crate::view;
use serde_json::{json, Value};

/// The policies every endpoint of `network` (the object hostnetd returned)
/// gets from the network's `Options`: an `OutBoundNAT` when
/// `enable_outboundnat` is true.
pub fn endpoint_policies(network: &Value) -> Result<Vec<Value>, String> {
    let name = match view::text(network, "Name") {
        "" => view::id(network),
        name => name,
    };
    let options = match network.get("Options") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(format!(
                "network {name} has Options {other}, not an object of strings: recreate the network"
            ))
        }
    };
    // Keys of other namespaces (another driver's, another client's) are not
    // the windowsshim's to judge.
    let pairs = options
        .iter()
        .filter(|(key, _)| key.starts_with(PREFIX) || !key.contains('.'))
        .map(|(key, value)| match value.as_str() {
            Some(value) => Ok((key.as_str(), value)),
            None => Err(format!(
                "network {name} has option {key} = {value}, not a string: recreate the network"
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let in_network = |e: String| format!("network {name}'s stored options: {e}");
    let parsed = ShimOptions::from_pairs(pairs).map_err(in_network)?;
    shim_drivers::check(&parsed, view::network_type(network)).map_err(in_network)?;
    if !parsed.outbound_nat {
        return Ok(Vec::new());
    }
    let mut settings = json!({});
    if !parsed.outbound_nat_exceptions.is_empty() {
        settings["Exceptions"] = json!(parsed.outbound_nat_exceptions);
    }
    Ok(vec![json!({"Type": "OutBoundNAT", "Settings": settings})])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(options: Value) -> Value {
        json!({"ID": "N1", "Name": "l2", "Type": "L2Bridge", "Options": options})
    }

    #[test]
    fn outbound_nat_with_exceptions() {
        let net = network(json!({
            "com.docker.network.windowsshim.interface": "eth0",
            "com.docker.network.windowsshim.enable_outboundnat": "true",
            "com.docker.network.windowsshim.outboundnat_exceptions": "192.0.2.0/24, 10.0.0.1",
        }));
        assert_eq!(
            endpoint_policies(&net).unwrap(),
            [
                json!({"Type": "OutBoundNAT", "Settings": {"Exceptions": ["192.0.2.0/24", "10.0.0.1"]}})
            ]
        );
        let all = network(
            json!({"com.docker.network.windowsshim.enable_outboundnat": "1",
                                 "com.docker.network.driver.overlay.vxlanid_list": "4096"}),
        );
        assert_eq!(
            endpoint_policies(&all).unwrap(),
            [json!({"Type": "OutBoundNAT", "Settings": {}})]
        );
    }

    #[test]
    fn nothing_without_the_option() {
        for options in [
            Value::Null,
            json!({}),
            json!({"com.docker.network.windowsshim.enable_outboundnat": "false"}),
        ] {
            assert_eq!(
                endpoint_policies(&network(options)).unwrap(),
                Vec::<Value>::new()
            );
        }
        assert!(endpoint_policies(&json!({"ID": "N1", "Type": "NAT"}))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn options_the_cli_would_not_have_stored() {
        for (options, ty, needle) in [
            (json!("x"), "L2Bridge", "has Options \"x\", not an object"),
            (json!({"enable_outboundnat": true}), "L2Bridge", "enable_outboundnat = true, not a string"),
            (json!({"enable_outboundnat": "true"}), "NAT", "network l2's stored options: option com.docker.network.windowsshim.enable_outboundnat does not apply to nat networks"),
            (json!({"enable_outboundnat": "true", "outboundnat_exceptions": "nope"}), "L2Bridge", "\"nope\" is not a prefix"),
        ] {
            let mut net = network(options);
            net["Type"] = json!(ty);
            let err = endpoint_policies(&net).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }
}
