//! hostnet's REST API as seen from both ends.
//!
//! `hostnetd` serves the HCN v2 JSON schema over HTTP/1.1 on a Unix socket;
//! the `hostnet` CLI, the CNI plugin and the tests talk to it. This crate holds
//! what both sides must agree on (paths, the HCN error envelope and the HTTP
//! status for each HCN code, the version document, the query format) and a
//! small blocking client. The client deliberately has no async runtime and no
//! HTTP crate: a CNI plugin runs once per container and must start fast, and
//! the protocol subset we speak (one request per connection) is tiny.
//!
//! Request and response bodies are `serde_json::Value`: the daemon validates
//! the schema (crate `hostnet-model`), clients pass HCN documents through.

mod client;
mod error;
mod http;
mod kind;
mod listen;
mod query;
mod version;

pub use client::Client;
pub use error::{code_name, codes, http_status, ApiError, ErrorRecord};
pub use http::Response;
pub use kind::{is_guid, Kind, ParseKindError};
pub use listen::bind_socket;
pub use query::{percent_encode, HostComputeQuery, SchemaVersion};
pub use version::VersionInfo;

/// Where `hostnetd` listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/hostnet/hostnet.sock";

/// Environment variable naming the socket; overrides [`DEFAULT_SOCKET`].
pub const SOCKET_ENV: &str = "HOSTNET_SOCKET";

/// Prefix of every route: the HCN v2 schema.
pub const API_PREFIX: &str = "/v2";

/// `Result` with this crate's error.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;
