//! GUID parsing and formatting (reference/hcn-schema.md §2 "GUIDs").

use uuid::Uuid;

use crate::error::{ErrorCode, HcnError};

/// Parse an 8-4-4-4-12 GUID in any case, with or without braces.
/// Anything else is `GuidConversionFailure`.
pub fn parse_guid(s: &str) -> Result<Uuid, HcnError> {
    let t = s.trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(t);
    if inner.len() == 36 {
        if let Ok(u) = Uuid::try_parse(inner) {
            return Ok(u);
        }
    }
    Err(HcnError::new(
        ErrorCode::GuidConversionFailure,
        format!(
            "{s:?} is not a GUID: give 8-4-4-4-12 hex digits such as \
             0E1C4F24-8C4B-4B0C-9D4E-7A57E5C4C3B1"
        ),
    ))
}

/// Format a GUID as HNS outputs it: upper-case 8-4-4-4-12, no braces.
pub fn format_guid(u: &Uuid) -> String {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    u.hyphenated().encode_upper(&mut buf).to_string()
}
