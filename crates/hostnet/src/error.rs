//! The CLI's failure: one message line and an exit status.

use hostnet_api::ApiError;
use std::fmt;

/// A failed command: printed as `hostnet: <message>`, then exit with `exit_code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// One line, without the `hostnet: ` prefix.
    pub message: String,
    /// Process exit status (1 for ordinary failures, 125 for `run` set-up).
    pub exit_code: u8,
}

impl CliError {
    /// A failure with exit status 1.
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            exit_code: 1,
        }
    }

    /// The same failure with another exit status.
    pub fn with_exit(mut self, exit_code: u8) -> Self {
        self.exit_code = exit_code;
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ApiError> for CliError {
    fn from(e: ApiError) -> Self {
        CliError::new(e.to_string())
    }
}

impl From<String> for CliError {
    fn from(message: String) -> Self {
        CliError::new(message)
    }
}

/// A refusal the CLI makes itself, before calling hostnetd, with the HCN
/// code hostnetd gives for the same mistake, in the form `ApiError` prints:
/// `message (HCN 0x803B000E HCN_E_INVALID_POLICY_TYPE)`.
pub fn with_hcn_code(message: impl fmt::Display, code: u32) -> String {
    match hostnet_api::code_name(code) {
        Some(name) => format!("{message} (HCN 0x{code:08X} {name})"),
        None => format!("{message} (HCN 0x{code:08X})"),
    }
}
