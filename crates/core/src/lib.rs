//! The hostnet service.
//!
//! One vocabulary of commands (create, get, list, modify, delete of the five
//! HCN object kinds) over validated domain types, with no HTTP in sight. Each
//! command checks everything it can first, then changes the kernel through a
//! driver plan (undone if a step fails), then commits the store; if the
//! commit fails the kernel change is undone. The store is the truth: on
//! start, [`Service::start`] rebuilds what is missing in the kernel and
//! removes what hostnet owns and no longer knows.

mod adapter;
mod cluster;
mod config;
mod dhcp;
mod dns;
mod endpoint;
mod endpoint_change;
mod flow_cut;
mod ip_sets;
mod load_balancer;
mod namespace;
mod network;
mod network_change;
mod object;
mod overlay;
mod overlay_acl;
mod policy;
mod policy_change;
mod query;
mod reconcile;
mod reconcile_overlay;
mod registry;
mod reprogram;
mod route;
mod sdn_route_change;
mod service;
mod stats;
mod subnet;
mod trace;
mod vlan;

pub use cluster::{OverlayEndpoint, OverlayPublisher};
pub use config::Config;
pub use dns::{DnsEndpoint, DnsNetwork, DnsObserver};
pub use hostnet_dhcp::Settings as DhcpSettings;
pub use object::Kind;
pub use service::Service;
