//! Namespaces (reference/hcn-schema.md §9): kinds and [`validate_namespace`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{ErrorCode, HcnError};
use crate::wire;

/// Namespace `Type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum NamespaceKind {
    /// `Host` (the default).
    #[default]
    Host,
    /// `HostDefault`.
    HostDefault,
    /// `Guest`.
    Guest,
    /// `GuestDefault`.
    GuestDefault,
}

impl NamespaceKind {
    /// The canonical HCN spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NamespaceKind::Host => "Host",
            NamespaceKind::HostDefault => "HostDefault",
            NamespaceKind::Guest => "Guest",
            NamespaceKind::GuestDefault => "GuestDefault",
        }
    }
}

impl FromStr for NamespaceKind {
    type Err = HcnError;

    /// Case-insensitive; empty is `Host`.
    fn from_str(s: &str) -> Result<Self, HcnError> {
        let t = s.trim();
        if t.is_empty() {
            return Ok(NamespaceKind::Host);
        }
        [
            NamespaceKind::Host,
            NamespaceKind::HostDefault,
            NamespaceKind::Guest,
            NamespaceKind::GuestDefault,
        ]
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(t))
        .ok_or_else(|| {
            HcnError::new(
                ErrorCode::InvalidJson,
                format!("Type {t:?} is not a namespace type: use Host, HostDefault, Guest or GuestDefault"),
            )
        })
    }
}

impl fmt::Display for NamespaceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceSpec {
    /// Name (may be empty).
    pub name: String,
    /// Kind.
    pub kind: NamespaceKind,
    /// Compartment id, if given.
    pub namespace_id: Option<u32>,
    /// hostnet's `NetNsPath` in a create: an existing Linux network
    /// namespace made by someone else (a container runtime, CNI_NETNS) to
    /// use instead of a new one. None: hostnet makes its own.
    pub netns_path: Option<PathBuf>,
}

/// Validate a namespace create document.
pub fn validate_namespace(w: &wire::HostComputeNamespace) -> Result<NamespaceSpec, HcnError> {
    let kind: NamespaceKind = w.namespace_type.as_deref().unwrap_or("").parse()?;
    let netns_path = match w.net_ns_path.as_deref() {
        // The host's own namespace is always the daemon's: there the
        // field is output only (an echoed answer is a valid create).
        None => None,
        Some(_) if kind != NamespaceKind::Host => None,
        Some(p) if p.starts_with('/') && !p.contains('\0') && !p.split('/').any(|c| c == "..") => {
            Some(PathBuf::from(p))
        }
        Some(p) => {
            return Err(HcnError::new(
                ErrorCode::InvalidJson,
                format!("NetNsPath {p:?} is not an absolute path: give the network namespace's file, e.g. /run/netns/NAME or /proc/PID/ns/net"),
            ))
        }
    };
    Ok(NamespaceSpec {
        name: w.name.clone().unwrap_or_default(),
        kind,
        namespace_id: w.namespace_id,
        netns_path,
    })
}
