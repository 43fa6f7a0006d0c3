//! hostnet's policy model, after Windows' Virtual Filtering Platform (VFP)
//! and Oxide's OPTE: what is programmed on a switch port, as data.
//!
//! A [`Port`] (an endpoint's vNIC, the host, the uplink) has a fixed stack of
//! [`Layer`]s ([`LayerName::STACK`]). Outbound packets (from the endpoint)
//! walk it top to bottom, inbound ones bottom to top. A layer holds
//! [`Group`]s, the unit of atomic replacement, visited in `order`; a group
//! holds prioritised [`Rule`]s: a [`Condition`] and an [`Action`].
//!
//! HCN policies lower into groups ([`lower`]); [`evaluate`] walks a packet
//! through a port and returns the verdict with a [`Trace`]. The evaluator is
//! the specification the compiled nftables form is held to.
//!
//! **Order inside a group**: rules sort by priority (lower first), then by
//! action, most restrictive first (`Block < Pass < Allow < rewrites`), then
//! by [`RuleId`]. So at equal priority a block wins, and the result never
//! depends on the order rules were added in.
//!
//! **Evaluation of a layer**: groups in `order`; in a group the first rule
//! that matches decides: `Allow` ends the layer, `Block` drops the packet,
//! `Pass` leaves the group for the next one, a rewrite applies and ends the
//! layer. No match in any group: the layer lets the packet through unchanged
//! (`acl-host` always ends in the seed's firewall defaults, which decide).

#[cfg(feature = "arbitrary")]
pub mod arbitrary;
mod condition;
mod eval;
pub mod lb;
pub mod lower;
pub mod lower_egress;
mod packet;
mod port;
mod rule;
mod trace;

pub use condition::{Condition, Mismatch, PortRanges};
pub use eval::{evaluate, Evaluation, Verdict};
pub use packet::{Direction, Packet, Proto};
pub use port::{Group, Layer, LayerName, Port, PortKind};
pub use rule::{Action, Origin, Rule, RuleId};
pub use trace::{Step, Trace};
