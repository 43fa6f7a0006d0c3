//! `Options`: hostnet's extension of the network object, a map of strings.
//!
//! On Windows, docker keeps a network's `-o com.docker.network.windowsshim.*`
//! options in its own store and acts on them at every endpoint create (it
//! adds an `OutBoundNAT` policy when `enable_outboundnat` is set). hostnet's
//! CLI plays docker's part without a store of its own, so the daemon keeps
//! the options with the network, verbatim, and never interprets them.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The network options: option name to value.
pub type NetworkOptions = BTreeMap<String, String>;

/// `deserialize_with` for `Options`: `null` is absent; anything but an
/// object whose values are all strings is refused, naming the culprit.
pub(super) fn string_map<'de, D>(d: D) -> Result<Option<NetworkOptions>, D::Error>
where
    D: Deserializer<'de>,
{
    let shape = "Options must be an object of strings, e.g. \
                 {\"com.docker.network.windowsshim.enable_outboundnat\":\"true\"}";
    match Option::<Value>::deserialize(d)? {
        None => Ok(None),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(key, value)| match value {
                Value::String(s) => Ok((key, s)),
                other => Err(D::Error::custom(format!(
                    "{shape}: the value of {key:?} is {other}; quote it"
                ))),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(other) => Err(D::Error::custom(format!("{shape}, not {other}"))),
    }
}
