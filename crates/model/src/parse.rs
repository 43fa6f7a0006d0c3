//! Decoding request bodies into wire types (reference/hcn-schema.md §2).
//!
//! Every body goes through [`from_json`], which turns serde's errors into
//! `HCN_E_INVALID_JSON` errors with the position serde reports.

use serde::de::DeserializeOwned;

use crate::error::{ErrorCode, HcnError};

/// Decode an HCN JSON document. Unknown keys are ignored; fields of the wrong
/// type, malformed JSON and an empty body are `InvalidJson` errors.
pub fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, HcnError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(HcnError::new(
            ErrorCode::InvalidJson,
            "request body is empty: send the HCN JSON object",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        HcnError::new(
            ErrorCode::InvalidJson,
            format!(
                "request body is not a valid HCN document: {e}: \
                 fix the field (keys are PascalCase as in the HCN schema)"
            ),
        )
    })
}

/// Decode a JSON value embedded in a document (e.g. a modify request's
/// `Settings`) into `T`; `what` names it in the error message.
pub fn from_value<T: DeserializeOwned>(
    value: &serde_json::Value,
    what: &str,
    code: ErrorCode,
) -> Result<T, HcnError> {
    T::deserialize(value)
        .map_err(|e| HcnError::new(code, format!("{what} is not valid: {e}: fix that field")))
}
