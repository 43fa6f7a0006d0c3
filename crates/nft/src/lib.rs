//! hostnet's nftables tables.
//!
//! The tables are static: chains and rules never change after the daemon
//! starts, and all per-network and per-endpoint state lives in sets and maps.
//! So per-packet cost does not grow with endpoints or port mappings, and an
//! update is a handful of element changes in one atomic transaction.
//!
//! This crate is pure. It renders the skeleton (plus any initial elements) as
//! `nft -f` text, and encodes elements as the key/data bytes the kernel
//! stores, which the dataplane sends over nfnetlink.

pub mod acl;
pub mod chain;
pub mod counters;
pub mod dsr;
mod element;
pub mod hook;
pub mod l2;
pub mod lb;
pub mod onat;
pub mod preserve_dip;
pub mod router;
mod ruleset;
mod skeleton;
pub mod sync;

pub use element::{Data, Family, NetdevHook, SetElement};
pub use ruleset::*;
pub use skeleton::{Skeleton, COMMENT_PREFIX};
