//! The HCN error envelope, the HCN result codes and how they map to HTTP.
//!
//! Windows clients branch on `ErrorCode` (not-found on delete, port already
//! exists, E_NOTIMPL fallbacks), so the daemon must return the exact HRESULT in
//! an HCN `ErrorRecord`; the HTTP status is a courtesy for plain HTTP tools.
//! Both ends use [`http_status`] so they agree on it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::path::PathBuf;

/// HCN's error result document: `{"Success":false,"Error":"…","ErrorCode":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// Always `false` in an error.
    #[serde(rename = "Success", default)]
    pub success: bool,
    /// Human-readable message (HNS appends a trailing space; clients trim).
    #[serde(rename = "Error", default)]
    pub error: String,
    /// The HRESULT, e.g. `0x803B0013`; serialized as a decimal number.
    #[serde(rename = "ErrorCode", default)]
    pub error_code: u32,
}

impl ErrorRecord {
    /// A failed result with `code` and `message`.
    pub fn new(error_code: u32, message: impl Into<String>) -> Self {
        ErrorRecord {
            success: false,
            error: message.into(),
            error_code,
        }
    }

    /// The HTTP status for this record ([`http_status`] of its code).
    pub fn http_status(&self) -> u16 {
        http_status(self.error_code)
    }
}

macro_rules! hresults {
    ($($(#[$doc:meta])* $name:ident = $value:expr,)*) => {
        /// HRESULTs hostnet returns, named as in Windows
        /// (`winerror.h`, DOC `HCNHResult.md`).
        pub mod codes {
            $($(#[$doc])* #[allow(missing_docs)] pub const $name: u32 = $value;)*
        }
        const NAMES: &[(u32, &str)] = &[$(($value, stringify!($name)),)*];
    };
}

hresults! {
    /// Not implemented (kube-proxy falls back to delete + create on LB modify).
    E_NOTIMPL = 0x8000_4001,
    /// Catastrophic failure: an internal error.
    E_UNEXPECTED = 0x8000_FFFF,
    /// `HRESULT_FROM_WIN32(ERROR_INVALID_PARAMETER)`.
    E_INVALIDARG = 0x8007_0057,
    /// `HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS)`.
    ERROR_ALREADY_EXISTS = 0x8007_00B7,
    /// `HRESULT_FROM_WIN32(ERROR_NO_MORE_ITEMS)`: an address or MAC pool is exhausted.
    ERROR_NO_MORE_ITEMS = 0x8007_0103,
    /// `HRESULT_FROM_WIN32(ERROR_NOT_FOUND)` "Element not found.": the generic v2 not-found.
    ERROR_NOT_FOUND = 0x8007_0490,
    HCN_E_NETWORK_NOT_FOUND = 0x803B_0001,
    HCN_E_ENDPOINT_NOT_FOUND = 0x803B_0002,
    HCN_E_LAYER_NOT_FOUND = 0x803B_0003,
    HCN_E_SWITCH_NOT_FOUND = 0x803B_0004,
    HCN_E_SUBNET_NOT_FOUND = 0x803B_0005,
    HCN_E_ADAPTER_NOT_FOUND = 0x803B_0006,
    HCN_E_PORT_NOT_FOUND = 0x803B_0007,
    HCN_E_POLICY_NOT_FOUND = 0x803B_0008,
    HCN_E_VFP_PORTSETTING_NOT_FOUND = 0x803B_0009,
    HCN_E_INVALID_NETWORK = 0x803B_000A,
    HCN_E_INVALID_NETWORK_TYPE = 0x803B_000B,
    HCN_E_INVALID_ENDPOINT = 0x803B_000C,
    HCN_E_INVALID_POLICY = 0x803B_000D,
    HCN_E_INVALID_POLICY_TYPE = 0x803B_000E,
    HCN_E_INVALID_REMOTE_ENDPOINT_OPERATION = 0x803B_000F,
    HCN_E_NETWORK_ALREADY_EXISTS = 0x803B_0010,
    HCN_E_LAYER_ALREADY_EXISTS = 0x803B_0011,
    HCN_E_POLICY_ALREADY_EXISTS = 0x803B_0012,
    HCN_E_PORT_ALREADY_EXISTS = 0x803B_0013,
    HCN_E_ENDPOINT_ALREADY_ATTACHED = 0x803B_0014,
    HCN_E_REQUEST_UNSUPPORTED = 0x803B_0015,
    HCN_E_MAPPING_NOT_SUPPORTED = 0x803B_0016,
    HCN_E_DEGRADED_OPERATION = 0x803B_0017,
    HCN_E_SHARED_SWITCH_MODIFICATION = 0x803B_0018,
    HCN_E_GUID_CONVERSION_FAILURE = 0x803B_0019,
    HCN_E_REGKEY_FAILURE = 0x803B_001A,
    HCN_E_INVALID_JSON = 0x803B_001B,
    HCN_E_INVALID_JSON_REFERENCE = 0x803B_001C,
    HCN_E_ENDPOINT_SHARING_DISABLED = 0x803B_001D,
    HCN_E_INVALID_IP = 0x803B_001E,
    HCN_E_SWITCH_EXTENSION_NOT_FOUND = 0x803B_001F,
    HCN_E_MANAGER_STOPPED = 0x803B_0020,
    HCN_E_ICS_DISABLED = 0x803B_002A,
    HCN_E_ENDPOINT_NAMESPACE_ALREADY_EXISTS = 0x803B_002B,
    HCN_E_ENTITY_HAS_REFERENCES = 0x803B_002C,
    HCN_E_INVALID_INTERNAL_PORT = 0x803B_002D,
    HCN_E_NAMESPACE_ATTACH_FAILED = 0x803B_002E,
    HCN_E_ADDR_INVALID_OR_RESERVED = 0x803B_002F,
    HCN_E_INVALID_PREFIX = 0x803B_0030,
    HCN_E_OBJECT_USED_AFTER_UNLOAD = 0x803B_0031,
    HCN_E_INVALID_SUBNET = 0x803B_0032,
    HCN_E_INVALID_IP_SUBNET = 0x803B_0033,
    HCN_E_ENDPOINT_NOT_ATTACHED = 0x803B_0034,
    HCN_E_ENDPOINT_NOT_LOCAL = 0x803B_0035,
    HCN_E_INTERFACEPARAMETERS_ALREADY_APPLIED = 0x803B_0036,
    HCN_E_VFP_NOT_ALLOWED = 0x803B_0037,
}

/// The symbolic name of an HRESULT hostnet knows, e.g. `HCN_E_PORT_ALREADY_EXISTS`.
pub fn code_name(error_code: u32) -> Option<&'static str> {
    NAMES
        .iter()
        .find(|(code, _)| *code == error_code)
        .map(|(_, name)| *name)
}

/// The HTTP status that fits an HCN result code.
///
/// Not-found codes give 404, already-exists and conflicts (including "entity
/// has references" and an exhausted pool) 409, unsupported requests 501,
/// `E_UNEXPECTED` 500, a degraded service (its store unavailable: retry
/// later) 503; anything else is the caller's mistake, 400.
pub fn http_status(error_code: u32) -> u16 {
    use codes::*;
    match error_code {
        ERROR_NOT_FOUND
        | HCN_E_NETWORK_NOT_FOUND
        | HCN_E_ENDPOINT_NOT_FOUND
        | HCN_E_SUBNET_NOT_FOUND
        | HCN_E_ADAPTER_NOT_FOUND
        | HCN_E_PORT_NOT_FOUND
        | HCN_E_POLICY_NOT_FOUND => 404,
        HCN_E_NETWORK_ALREADY_EXISTS
        | HCN_E_POLICY_ALREADY_EXISTS
        | HCN_E_PORT_ALREADY_EXISTS
        | HCN_E_ENDPOINT_ALREADY_ATTACHED
        | HCN_E_ENDPOINT_NAMESPACE_ALREADY_EXISTS
        | HCN_E_ENTITY_HAS_REFERENCES
        | ERROR_ALREADY_EXISTS
        | ERROR_NO_MORE_ITEMS => 409,
        E_NOTIMPL | HCN_E_REQUEST_UNSUPPORTED => 501,
        HCN_E_DEGRADED_OPERATION => 503,
        E_UNEXPECTED => 500,
        _ => 400,
    }
}

/// Why a call to `hostnetd` failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The daemon answered with an HCN error.
    #[error("{}", HcnMessage(record, *status))]
    Hcn {
        /// HTTP status of the answer.
        status: u16,
        /// The error document.
        record: ErrorRecord,
    },
    /// The socket could not be connected.
    #[error(
        "cannot reach hostnetd at {}: {source}; is the daemon running? (set --socket or HOSTNET_SOCKET)",
        socket.display()
    )]
    Connect {
        /// The socket path tried.
        socket: PathBuf,
        /// The connect error.
        #[source]
        source: io::Error,
    },
    /// Reading or writing the connection failed (including a timeout).
    #[error("talking to hostnetd: {0}")]
    Io(#[from] io::Error),
    /// The answer was not HTTP, not JSON, or not the expected shape.
    #[error("unexpected answer from hostnetd: {0}")]
    BadResponse(String),
}

impl ApiError {
    /// The HCN code if the daemon returned an error record.
    pub fn error_code(&self) -> Option<u32> {
        match self {
            ApiError::Hcn { record, .. } => Some(record.error_code),
            _ => None,
        }
    }

    /// Whether the daemon said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            ApiError::Hcn { status, record } => {
                *status == 404 || http_status(record.error_code) == 404
            }
            _ => false,
        }
    }
}

/// Renders `<message> (HCN 0x803B0013 HCN_E_PORT_ALREADY_EXISTS)` on one line.
struct HcnMessage<'a>(&'a ErrorRecord, u16);

impl fmt::Display for HcnMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let HcnMessage(record, status) = self;
        let message = record
            .error
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if message.is_empty() {
            write!(f, "hostnetd failed with HTTP {status}")?;
        } else {
            f.write_str(&message)?;
        }
        write!(f, " (HCN 0x{:08X}", record.error_code)?;
        if let Some(name) = code_name(record.error_code) {
            write!(f, " {name}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::codes::*;
    use super::*;

    #[test]
    fn statuses() {
        for code in [
            ERROR_NOT_FOUND,
            0x803B_0001,
            0x803B_0002,
            0x803B_0005,
            0x803B_0006,
            0x803B_0007,
            0x803B_0008,
        ] {
            assert_eq!(http_status(code), 404, "{code:#x}");
        }
        for code in [
            0x803B_0010,
            0x803B_0012,
            0x803B_0013,
            0x803B_0014,
            0x803B_002B,
            0x803B_002C,
            0x8007_00B7,
            0x8007_0103,
        ] {
            assert_eq!(http_status(code), 409, "{code:#x}");
        }
        assert_eq!(http_status(0x8000_4001), 501);
        assert_eq!(http_status(0x803B_0015), 501);
        assert_eq!(http_status(0x8000_FFFF), 500);
        for code in [
            HCN_E_INVALID_JSON,
            HCN_E_INVALID_POLICY,
            HCN_E_INVALID_POLICY_TYPE,
            HCN_E_INVALID_NETWORK_TYPE,
            HCN_E_INVALID_IP,
            HCN_E_INVALID_SUBNET,
            HCN_E_INVALID_PREFIX,
            HCN_E_ADDR_INVALID_OR_RESERVED,
            E_INVALIDARG,
            0,
        ] {
            assert_eq!(http_status(code), 400, "{code:#x}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(code_name(0x803B_0013), Some("HCN_E_PORT_ALREADY_EXISTS"));
        assert_eq!(code_name(0x8007_0490), Some("ERROR_NOT_FOUND"));
        assert_eq!(code_name(0x1234), None);
        // Every name is unique and every code listed once.
        let mut seen = std::collections::HashSet::new();
        assert!(NAMES.iter().all(|(code, _)| seen.insert(*code)));
    }

    #[test]
    fn record_wire_form() {
        let record: ErrorRecord = serde_json::from_str(
            r#"{"Success":false,"Error":"An address provided is invalid or reserved. ","ErrorCode":2151350319}"#,
        )
        .unwrap();
        assert_eq!(record.error_code, HCN_E_ADDR_INVALID_OR_RESERVED);
        let json =
            serde_json::to_value(ErrorRecord::new(ERROR_NOT_FOUND, "Element not found.")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"Success":false,"Error":"Element not found.","ErrorCode":2147943568u32})
        );
    }

    #[test]
    fn display_is_one_line() {
        let err = ApiError::Hcn {
            status: 409,
            record: ErrorRecord::new(
                HCN_E_PORT_ALREADY_EXISTS,
                "host port 8080/tcp is already mapped\n by endpoint X ",
            ),
        };
        assert_eq!(
            err.to_string(),
            "host port 8080/tcp is already mapped by endpoint X (HCN 0x803B0013 HCN_E_PORT_ALREADY_EXISTS)"
        );
        assert!(err.to_string().lines().count() == 1);
        let unknown = ApiError::Hcn {
            status: 400,
            record: ErrorRecord::new(0x8000_1234, ""),
        };
        assert_eq!(
            unknown.to_string(),
            "hostnetd failed with HTTP 400 (HCN 0x80001234)"
        );
        let connect = ApiError::Connect {
            socket: "/run/x.sock".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert!(connect
            .to_string()
            .starts_with("cannot reach hostnetd at /run/x.sock: "));
        assert!(connect
            .to_string()
            .ends_with("; is the daemon running? (set --socket or HOSTNET_SOCKET)"));
    }

    #[test]
    fn not_found() {
        let err = ApiError::Hcn {
            status: 404,
            record: ErrorRecord::new(ERROR_NOT_FOUND, "Element not found."),
        };
        assert!(err.is_not_found());
        assert_eq!(err.error_code(), Some(ERROR_NOT_FOUND));
        assert!(!ApiError::BadResponse("x".into()).is_not_found());
    }
}
