//! hostnet's network drivers: pure planning.
//!
//! A driver turns resolved objects (a network with its gateways, an endpoint
//! with its address, MAC and port mappings) into dataplane [`Op`]s. It does
//! no I/O; the core applies the plans with rollback. [`nat`],
//! [`transparent`] and [`l2bridge`] (L2Bridge and L2Tunnel) exist so far,
//! all on [`bridge`]; the core refuses the other network types.
//!
//! [`Op`]: hostnet_dataplane::Op

pub mod bridge;
pub mod l2bridge;
pub mod names;
pub mod nat;
pub mod overlay;
pub mod team;
pub mod transparent;
pub mod vlan;
