//! Queries and filters (reference/hcn-schema.md §3).

use serde_json::Value;
use uuid::Uuid;

use super::guid::parse_guid;
use crate::error::{ErrorCode, HcnError};
use crate::wire;

/// A validated enumerate/query filter: the AND of the present keys. Empty
/// matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `ID`.
    pub id: Option<Uuid>,
    /// `Name` (exact).
    pub name: Option<String>,
    /// `VirtualNetwork` or `VirtualNetworkName`: the endpoint's network, by ID or name.
    pub network: Option<String>,
}

impl Filter {
    /// True when the filter matches everything.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }
}

/// Validate a query's `Filter`.
pub fn parse_query(q: &wire::HostComputeQuery) -> Result<Filter, HcnError> {
    parse_filter_json(q.filter.as_deref().unwrap_or(""))
}

/// Parse a filter document (`{"Name":"cbr0"}`); empty text is the empty filter.
/// Keys are matched case-insensitively; values must be strings; an unknown key
/// is `RequestUnsupported` (ignoring it would return objects the client did not
/// ask for).
pub fn parse_filter_json(s: &str) -> Result<Filter, HcnError> {
    if s.trim().is_empty() {
        return Ok(Filter::default());
    }
    let v: Value = serde_json::from_str(s).map_err(|e| {
        HcnError::new(
            ErrorCode::InvalidJson,
            format!("Filter is not JSON: {e}: give a JSON object such as {{\"Name\":\"cbr0\"}}"),
        )
    })?;
    let obj = match v {
        Value::Object(o) => o,
        Value::Null => return Ok(Filter::default()),
        other => {
            return Err(HcnError::new(
                ErrorCode::InvalidJson,
                format!(
                "Filter {other} is not an object: give a JSON object such as {{\"Name\":\"cbr0\"}}"
            ),
            ))
        }
    };
    let mut f = Filter::default();
    for (key, value) in &obj {
        let text = match value {
            Value::String(t) => t.clone(),
            other => {
                return Err(HcnError::new(
                    ErrorCode::InvalidJson,
                    format!("Filter.{key} is {other}: give a string"),
                ))
            }
        };
        match key.to_ascii_lowercase().as_str() {
            "id" => f.id = Some(parse_guid(&text).map_err(|e| e.context("Filter.ID"))?),
            "name" => f.name = Some(text),
            "virtualnetwork" | "virtualnetworkname" => {
                if f.network.is_none() {
                    f.network = Some(text);
                }
            }
            _ => {
                return Err(HcnError::new(
                    ErrorCode::RequestUnsupported,
                    format!(
                        "Filter key {key:?} is not supported: filter on ID, Name, VirtualNetwork \
                         or VirtualNetworkName"
                    ),
                ))
            }
        }
    }
    Ok(f)
}
