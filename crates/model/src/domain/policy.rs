//! Shared machinery for `{Type, Settings}` policies (reference/hcn-schema.md
//! §5, §6, §8): case-insensitive type matching, settings decoding and the
//! wording of policy errors.

use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{ErrorCode, HcnError};
use crate::wire;

/// Find the canonical spelling of `policy_type` in `valid`, case-insensitively;
/// otherwise `InvalidPolicyType` naming the type and listing the valid ones.
pub(crate) fn match_type(
    policy_type: &str,
    valid: &'static [&'static str],
    kind: &str,
) -> Result<&'static str, HcnError> {
    let t = policy_type.trim();
    valid
        .iter()
        .find(|v| v.eq_ignore_ascii_case(t))
        .copied()
        .ok_or_else(|| {
            HcnError::new(
                ErrorCode::InvalidPolicyType,
                format!(
                    "{t:?} is not a known {kind} policy type: use one of {}",
                    valid.join(", ")
                ),
            )
        })
}

/// Decode a policy's `Settings` into `T`; absent settings decode as `T::default()`.
pub(crate) fn decode<T: DeserializeOwned + Default>(
    p: &wire::Policy,
    ty: &str,
) -> Result<T, HcnError> {
    if p.settings.is_null() {
        return Ok(T::default());
    }
    T::deserialize(&p.settings).map_err(|e| {
        invalid(
            ty,
            format!("Settings are not valid: {e}: fix that field (keys are PascalCase)"),
        )
    })
}

/// An `InvalidPolicy` error about a policy of type `ty`.
pub(crate) fn invalid(ty: &str, msg: impl std::fmt::Display) -> HcnError {
    HcnError::new(ErrorCode::InvalidPolicy, format!("{ty} policy: {msg}"))
}

/// A required settings field, or `InvalidPolicy` saying it is missing.
pub(crate) fn required<T>(v: Option<T>, ty: &str, field: &str, hint: &str) -> Result<T, HcnError> {
    v.ok_or_else(|| invalid(ty, format!("Settings.{field} is missing: give {hint}")))
}

/// Deserialize a field that clients send either as a string or as a number
/// (e.g. L4Proxy `Port`, ACL `Protocols`), keeping its text.
pub(crate) fn string_or_number<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "invalid type: {other}, expected a string or a number"
        ))),
    }
}

/// Parse an optional port given as text; empty is `None`.
pub(crate) fn parse_port(s: Option<&str>, ty: &str, field: &str) -> Result<Option<u16>, HcnError> {
    match s.map(str::trim) {
        None | Some("") => Ok(None),
        Some(p) => p.parse().map(Some).map_err(|_| {
            invalid(
                ty,
                format!("Settings.{field} {p:?} is not a port: give a number from 0 to 65535"),
            )
        }),
    }
}
