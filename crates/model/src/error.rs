//! HCN error codes and the error type every fallible function returns.
//!
//! Implements reference/hcn-schema.md §13: the HRESULTs clients test for and the
//! `HCN_E_*` facility table. Messages carried by [`HcnError`] say what was wrong
//! and what to do about it.

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $name:literal, $text:literal; )*) => {
        /// An HRESULT the service can return (§13.2, §13.3).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The HRESULT as an unsigned 32-bit number (what `ErrorCode` carries on the wire).
            pub fn code(self) -> u32 {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The Windows symbolic name, e.g. `"HCN_E_PORT_ALREADY_EXISTS"`.
            pub fn name(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)* }
            }

            /// The generic Windows text for the code (flannel and docker match some literally).
            pub fn description(self) -> &'static str {
                match self { $(ErrorCode::$variant => $text,)* }
            }

            /// The code for an HRESULT, if it is one hostnet knows.
            pub fn from_code(code: u32) -> Option<Self> {
                match code { $($code => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

error_codes! {
    /// `HRESULT_FROM_WIN32(ERROR_NOT_FOUND)`: the object does not exist.
    NotFound = 0x8007_0490, "ERROR_NOT_FOUND", "Element not found.";
    /// The network was not found.
    NetworkNotFound = 0x803B_0001, "HCN_E_NETWORK_NOT_FOUND", "The network was not found.";
    /// The endpoint was not found.
    EndpointNotFound = 0x803B_0002, "HCN_E_ENDPOINT_NOT_FOUND", "The endpoint was not found.";
    /// The host adapter was not found.
    AdapterNotFound = 0x803B_0006, "HCN_E_ADAPTER_NOT_FOUND", "The adapter was not found.";
    /// The switch port was not found.
    PortNotFound = 0x803B_0007, "HCN_E_PORT_NOT_FOUND", "The port was not found.";
    /// The policy was not found.
    PolicyNotFound = 0x803B_0008, "HCN_E_POLICY_NOT_FOUND", "The policy was not found.";
    /// The network settings are invalid.
    InvalidNetwork = 0x803B_000A, "HCN_E_INVALID_NETWORK", "The network is invalid.";
    /// The network type is unknown or unsupported.
    InvalidNetworkType = 0x803B_000B, "HCN_E_INVALID_NETWORK_TYPE", "The network type is invalid.";
    /// The endpoint settings are invalid.
    InvalidEndpoint = 0x803B_000C, "HCN_E_INVALID_ENDPOINT", "The endpoint is invalid.";
    /// A policy's settings are invalid.
    InvalidPolicy = 0x803B_000D, "HCN_E_INVALID_POLICY", "The policy is invalid.";
    /// A policy `Type` is unknown.
    InvalidPolicyType = 0x803B_000E, "HCN_E_INVALID_POLICY_TYPE", "The policy type is invalid.";
    /// A request a remote endpoint cannot take (or only a remote one can).
    InvalidRemoteEndpointOperation = 0x803B_000F, "HCN_E_INVALID_REMOTE_ENDPOINT_OPERATION", "The operation is invalid for a remote endpoint.";
    /// A network with this name already exists.
    NetworkAlreadyExists = 0x803B_0010, "HCN_E_NETWORK_ALREADY_EXISTS", "A network with this name already exists.";
    /// The policy already exists.
    PolicyAlreadyExists = 0x803B_0012, "HCN_E_POLICY_ALREADY_EXISTS", "The policy already exists.";
    /// The port (e.g. a host port of a port mapping) is already in use.
    PortAlreadyExists = 0x803B_0013, "HCN_E_PORT_ALREADY_EXISTS", "The port already exists.";
    /// The endpoint is already attached.
    EndpointAlreadyAttached = 0x803B_0014, "HCN_E_ENDPOINT_ALREADY_ATTACHED", "This endpoint is already attached to the switch.";
    /// The request is not supported.
    RequestUnsupported = 0x803B_0015, "HCN_E_REQUEST_UNSUPPORTED", "The request is not supported.";
    /// Port mappings are not supported on this network type.
    MappingNotSupported = 0x803B_0016, "HCN_E_MAPPING_NOT_SUPPORTED", "The port mapping is not supported on this network type.";
    /// A GUID could not be parsed.
    GuidConversionFailure = 0x803B_0019, "HCN_E_GUID_CONVERSION_FAILURE", "Failed to convert the string to a GUID.";
    /// The service cannot make changes right now: its state store (cluster
    /// mode's etcd) is unavailable. What exists keeps working.
    DegradedOperation = 0x803B_0017, "HCN_E_DEGRADED_OPERATION", "The operation cannot be performed while the service is degraded.";
    /// The JSON document is malformed or has fields of the wrong type.
    InvalidJson = 0x803B_001B, "HCN_E_INVALID_JSON", "The JSON document is invalid.";
    /// An IP address is invalid or not in any subnet of the network.
    InvalidIp = 0x803B_001E, "HCN_E_INVALID_IP", "The IP address is invalid.";
    /// The endpoint is already in a namespace.
    EndpointNamespaceAlreadyExists = 0x803B_002B, "HCN_E_ENDPOINT_NAMESPACE_ALREADY_EXISTS", "The endpoint is already attached to a namespace.";
    /// The object is still referenced by others.
    EntityHasReferences = 0x803B_002C, "HCN_E_ENTITY_HAS_REFERENCES", "The entity is still referenced.";
    /// An internal port is missing or zero.
    InvalidInternalPort = 0x803B_002D, "HCN_E_INVALID_INTERNAL_PORT", "The internal port must exist and cannot be zero.";
    /// Attaching to the namespace failed.
    NamespaceAttachFailed = 0x803B_002E, "HCN_E_NAMESPACE_ATTACH_FAILED", "Failed to attach to the namespace.";
    /// An address is invalid or reserved.
    AddrInvalidOrReserved = 0x803B_002F, "HCN_E_ADDR_INVALID_OR_RESERVED", "An address provided is invalid or reserved.";
    /// A prefix is invalid.
    InvalidPrefix = 0x803B_0030, "HCN_E_INVALID_PREFIX", "The prefix is invalid.";
    /// A subnet is invalid.
    InvalidSubnet = 0x803B_0032, "HCN_E_INVALID_SUBNET", "The subnet is invalid.";
    /// The endpoint is not attached.
    EndpointNotAttached = 0x803B_0034, "HCN_E_ENDPOINT_NOT_ATTACHED", "The endpoint is not attached.";
    /// `E_NOTIMPL`: the operation is not implemented (kube-proxy falls back on it).
    NotImplemented = 0x8000_4001, "E_NOTIMPL", "Not implemented.";
    /// `HRESULT_FROM_WIN32(ERROR_NO_MORE_ITEMS)`: a pool (IPs, MACs, ports) is exhausted.
    PoolExhausted = 0x8007_0103, "ERROR_NO_MORE_ITEMS", "No more data is available.";
    /// `E_UNEXPECTED`: an internal failure.
    Unexpected = 0x8000_FFFF, "E_UNEXPECTED", "Catastrophic failure.";
    /// `HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS)`: a non-network object with this name or ID exists.
    AlreadyExists = 0x8007_00B7, "ERROR_ALREADY_EXISTS", "Cannot create a file when that file already exists.";
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (0x{:08X})", self.name(), self.code())
    }
}

/// An HCN error: a code and a message that says what was wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HcnError {
    /// The HRESULT reported to the client.
    pub code: ErrorCode,
    /// Human-readable explanation, naming the offending field and the fix.
    pub message: String,
}

impl HcnError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        HcnError {
            code,
            message: message.into(),
        }
    }

    /// The same error with `prefix: ` prepended to the message (e.g. a field path).
    pub fn context(mut self, prefix: impl std::fmt::Display) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }
}
