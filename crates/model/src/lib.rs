//! hostnet-model: the HCN v2 JSON schema as Rust types, and its validation.
//!
//! Two layers, following "wire types are faithful, domain types are strict"
//! (the architecture page, design/architecture.md):
//!
//! * [`wire`]: serde types that match the HCN schema key for key
//!   (reference/hcn-schema.md §3–§12). They accept everything real clients send
//!   and serialise to documents that are valid inputs again.
//! * [`domain`]: strict, validated values (`IpNet`, [`domain::Mac`], enums) built
//!   from wire types by the `validate_*` / `parse_*` functions. Nothing after
//!   this boundary re-parses strings.
//!
//! Errors are [`HcnError`]s carrying an HCN [`ErrorCode`] (§13).

pub mod domain;
pub mod error;
pub mod parse;
pub mod wire;

pub use domain::{
    format_guid, parse_endpoint_change, parse_endpoint_policy, parse_filter_json, parse_guid,
    parse_namespace_change, parse_network_change, parse_network_policy, parse_query,
    validate_endpoint, validate_load_balancer, validate_namespace, validate_network,
    validate_route, validate_subnet,
};
pub use error::{ErrorCode, HcnError};
pub use parse::from_json;

#[cfg(test)]
mod tests;
