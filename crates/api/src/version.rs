//! The version document of `GET /v2/version`.
//!
//! Windows clients gate features on the HNS version (15.5 and later turns
//! every feature on), so the daemon reports an HNS-compatible Major/Minor next
//! to its own semver and the features it implements.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `{"Major":15,"Minor":5,"Version":"0.1.0","Features":{…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// HNS-compatible major version.
    #[serde(rename = "Major")]
    pub major: u32,
    /// HNS-compatible minor version.
    #[serde(rename = "Minor")]
    pub minor: u32,
    /// hostnetd's own semver.
    #[serde(rename = "Version", default)]
    pub version: String,
    /// Feature name → supported (an object of bools).
    #[serde(rename = "Features", default)]
    pub features: Value,
}

impl VersionInfo {
    /// Names of the features reported as `true`, in the order of the JSON map.
    pub fn enabled_features(&self) -> Vec<&str> {
        match &self.features {
            Value::Object(map) => map
                .iter()
                .filter(|(_, v)| v.as_bool() == Some(true))
                .map(|(k, _)| k.as_str())
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_form() {
        let v: VersionInfo = serde_json::from_value(json!({
            "Major": 15, "Minor": 5, "Version": "0.1.0",
            "Features": {"DSR": true, "L4Proxy": false, "SetPolicy": true}
        }))
        .unwrap();
        assert_eq!((v.major, v.minor), (15, 5));
        assert_eq!(v.enabled_features().len(), 2);
        let back = serde_json::to_value(&v).unwrap();
        assert_eq!(back["Major"], 15);
        assert_eq!(back["Version"], "0.1.0");
    }
}
