//! Daemon settings the service needs.

use std::path::PathBuf;

use ipnet::Ipv4Net;

/// How the service is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where namespaces are bind-mounted (`<state dir>/netns`).
    pub netns_dir: PathBuf,
    /// Create the NAT network `nat` at first start.
    pub default_network: bool,
    /// Its subnet; `None` picks a private /16 that no host route uses.
    pub default_subnet: Option<Ipv4Net>,
    /// MTU of bridges and endpoints.
    pub mtu: u32,
}

/// Name of the default NAT network, as on Windows.
pub const DEFAULT_NETWORK_NAME: &str = "nat";
