//! HostComputeQuery, the argument of HCN enumerate calls, and its URL form.
//!
//! HCN filters are a JSON object *encoded as a string* inside the query
//! object (`"Filter":"{\"Name\":\"nat\"}"`); on the REST API the whole query
//! travels as `?query=<percent-encoded JSON>`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// HCN schema version, `{"Major":2,"Minor":0}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaVersion {
    /// Major version.
    #[serde(rename = "Major", default)]
    pub major: u32,
    /// Minor version.
    #[serde(rename = "Minor", default)]
    pub minor: u32,
}

impl Default for SchemaVersion {
    /// 2.0, what Go clients send.
    fn default() -> Self {
        SchemaVersion { major: 2, minor: 0 }
    }
}

/// `HostComputeQuery`: `{SchemaVersion, Flags, Filter}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostComputeQuery {
    /// Requested schema version (any value is treated as v2).
    #[serde(rename = "SchemaVersion", default)]
    pub schema_version: SchemaVersion,
    /// 0 None, 1 Detailed.
    #[serde(rename = "Flags", default, skip_serializing_if = "is_zero")]
    pub flags: u32,
    /// A JSON object encoded as a string; empty means "everything".
    #[serde(rename = "Filter", default, skip_serializing_if = "String::is_empty")]
    pub filter: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl HostComputeQuery {
    /// A v2 query whose filter is `filter` (a JSON object such as `{"Name":"nat"}`).
    pub fn with_filter(filter: &Value) -> Self {
        HostComputeQuery {
            filter: filter.to_string(),
            ..Default::default()
        }
    }

    /// The filter decoded back into a JSON object; `None` when empty.
    pub fn filter_value(&self) -> Result<Option<Value>, serde_json::Error> {
        if self.filter.trim().is_empty() {
            Ok(None)
        } else {
            serde_json::from_str(&self.filter).map(Some)
        }
    }

    /// `query=<percent-encoded JSON>`, ready to follow `?`.
    pub fn to_query_string(&self) -> String {
        let json = serde_json::to_string(self).expect("a query always serializes");
        format!("query={}", percent_encode(&json))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filter_is_a_string_inside_the_query() {
        let q = HostComputeQuery::with_filter(&json!({"Name": "nat"}));
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            json!({"SchemaVersion":{"Major":2,"Minor":0},"Filter":"{\"Name\":\"nat\"}"})
        );
        assert_eq!(q.filter_value().unwrap(), Some(json!({"Name": "nat"})));
        assert_eq!(
            q.to_query_string(),
            "query=%7B%22SchemaVersion%22%3A%7B%22Major%22%3A2%2C%22Minor%22%3A0%7D%2C%22Filter%22%3A%22%7B%5C%22Name%5C%22%3A%5C%22nat%5C%22%7D%22%7D"
        );
    }

    #[test]
    fn decodes_what_clients_send() {
        let q: HostComputeQuery = serde_json::from_str(
            r#"{"SchemaVersion":{"Major":1,"Minor":0},"Flags":0,"Filter":""}"#,
        )
        .unwrap();
        assert_eq!(q.schema_version, SchemaVersion { major: 1, minor: 0 });
        assert_eq!(q.filter_value().unwrap(), None);
    }

    #[test]
    fn encoding() {
        assert_eq!(percent_encode("a-Z_0.~"), "a-Z_0.~");
        assert_eq!(percent_encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
