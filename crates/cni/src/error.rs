//! CNI errors: the spec's codes and hostnet's, and how hostnetd's answers
//! become them.

use hostnet_api::{code_name, codes as hcn, ApiError};
use serde_json::{json, Value};

/// Error codes: 1-99 are the spec's, 100 and up hostnet-cni's own.
pub mod codes {
    /// The config's `cniVersion` is not one hostnet-cni speaks.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// A field hostnet-cni does not support (e.g. `runtimeConfig.bandwidth`).
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// The container (its network namespace) does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// A CNI_* environment variable is missing or invalid.
    pub const INVALID_ENVIRONMENT: u32 = 4;
    /// Reading stdin, or hostnetd's answer, failed.
    pub const IO_FAILURE: u32 = 5;
    /// The config on stdin is not JSON.
    pub const DECODE_FAILURE: u32 = 6;
    /// The config, or what hostnetd made of it, is invalid.
    pub const INVALID_CONFIG: u32 = 7;
    /// Transient: hostnetd is not reachable or timed out; retry.
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: hostnetd is not reachable, ADD cannot work.
    pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
    /// hostnetd refused the request; `details` has its HCN code.
    pub const HOSTNETD_REFUSED: u32 = 100;
    /// CNI_IFNAME exists already in the container's namespace.
    pub const INTERFACE_EXISTS: u32 = 101;
    /// CHECK found the kernel or hostnetd not matching the attachment.
    pub const CHECK_FAILED: u32 = 102;
}

/// A CNI error result: `{"cniVersion","code","msg","details"}` on stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The error document for `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> Value {
        let mut v = json!({ "cniVersion": cni_version, "code": self.code, "msg": self.msg });
        if !self.details.is_empty() {
            v["details"] = json!(self.details);
        }
        v
    }

    /// hostnetd's failure while doing `what` (e.g. "creating the endpoint").
    pub fn from_api(what: &str, e: &ApiError) -> CniError {
        match e {
            ApiError::Connect { socket, source } => CniError::new(
                codes::TRY_AGAIN_LATER,
                format!(
                    "{what}: hostnetd is not reachable at {} ({source}): start hostnetd, or point \"socket\" in the network config at its socket, then retry",
                    socket.display()
                ),
            ),
            ApiError::Io(source) => CniError::new(
                codes::TRY_AGAIN_LATER,
                format!("{what}: talking to hostnetd failed ({source}): retry when it answers again"),
            ),
            ApiError::BadResponse(m) => CniError::new(
                codes::IO_FAILURE,
                format!("{what}: hostnetd answered something unexpected: {m}"),
            ),
            ApiError::Hcn { record, .. } => {
                let name = code_name(record.error_code).unwrap_or("unknown HRESULT");
                let details = format!("HCN {:#010X} {name}", record.error_code);
                let msg = format!("{what}: {}", record.error.trim());
                CniError::new(cni_code_of(record.error_code), msg).with_details(details)
            }
        }
    }
}

/// The CNI code for an HCN error code.
fn cni_code_of(hresult: u32) -> u32 {
    match hresult {
        hcn::HCN_E_INVALID_JSON
        | hcn::HCN_E_INVALID_SUBNET
        | hcn::HCN_E_INVALID_NETWORK
        | hcn::HCN_E_INVALID_NETWORK_TYPE
        | hcn::HCN_E_INVALID_POLICY
        | hcn::HCN_E_INVALID_POLICY_TYPE
        | hcn::HCN_E_REQUEST_UNSUPPORTED
        | hcn::HCN_E_MAPPING_NOT_SUPPORTED
        | hcn::HCN_E_INVALID_IP
        | hcn::HCN_E_INVALID_PREFIX
        | hcn::HCN_E_ADAPTER_NOT_FOUND
        | hcn::HCN_E_ADDR_INVALID_OR_RESERVED
        | hcn::HCN_E_PORT_ALREADY_EXISTS => codes::INVALID_CONFIG,
        hcn::HCN_E_MANAGER_STOPPED => codes::TRY_AGAIN_LATER,
        _ => codes::HOSTNETD_REFUSED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostnet_api::ErrorRecord;

    #[test]
    fn renders_the_spec_error_document() {
        let e = CniError::new(codes::INVALID_CONFIG, "bad subnet").with_details("x");
        assert_eq!(
            e.to_json("1.0.0"),
            json!({"cniVersion":"1.0.0","code":7,"msg":"bad subnet","details":"x"})
        );
        let e = CniError::new(codes::TRY_AGAIN_LATER, "later");
        assert!(e.to_json("0.4.0").get("details").is_none());
    }

    #[test]
    fn an_unreachable_daemon_is_try_again_later() {
        let e = ApiError::Connect {
            socket: "/run/hostnet/hostnet.sock".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let c = CniError::from_api("ADD", &e);
        assert_eq!(c.code, codes::TRY_AGAIN_LATER);
        assert!(c.msg.contains("/run/hostnet/hostnet.sock") && c.msg.contains("start hostnetd"));
    }

    #[test]
    fn hcn_codes_map_to_cni_codes() {
        let hcn_err = |code| ApiError::Hcn {
            status: 400,
            record: ErrorRecord::new(code, "the daemon's words "),
        };
        let c = CniError::from_api("creating the endpoint", &hcn_err(hcn::HCN_E_INVALID_IP));
        assert_eq!(c.code, codes::INVALID_CONFIG);
        assert_eq!(c.msg, "creating the endpoint: the daemon's words");
        assert_eq!(c.details, "HCN 0x803B001E HCN_E_INVALID_IP");
        let c = CniError::from_api("x", &hcn_err(hcn::E_UNEXPECTED));
        assert_eq!(c.code, codes::HOSTNETD_REFUSED);
        let c = CniError::from_api("x", &hcn_err(hcn::HCN_E_MANAGER_STOPPED));
        assert_eq!(c.code, codes::TRY_AGAIN_LATER);
    }
}
