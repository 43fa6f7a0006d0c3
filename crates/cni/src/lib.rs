//! hostnet-cni: the CNI plugin (spec 1.1, and 0.3.1, 0.4.0, 1.0.0) that
//! attaches containers to hostnet networks through hostnetd's API.
//!
//! The CNI types ([`version`], [`config`], [`invocation`], [`result`],
//! [`error`]) and the CNI-to-HCN [`translate`]ion are pure; [`plugin`]
//! talks to hostnetd and [`kernel`] reads links for ADD's and CHECK's
//! checks. See docs/cni.md.

pub mod config;
pub mod error;
pub mod invocation;
pub mod kernel;
pub mod plugin;
pub mod result;
pub mod translate;
pub mod version;
