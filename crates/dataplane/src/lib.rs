//! Kernel operations for hostnet.
//!
//! Drivers plan in the vocabulary of [`Op`]; [`apply`] runs a plan against a
//! [`Dataplane`] and undoes what it applied if a step fails, so a failed
//! operation leaves no half-made kernel state. [`Recorder`] is the fake used
//! by the pure layers' tests; [`linux::LinuxDataplane`] is the real thing
//! (rtnetlink and nfnetlink spoken directly, `nft -f` only for whole tables).

mod counters;
mod flow;
mod op;
mod plan;
mod recorder;

pub mod linux;

pub use counters::{ElementCounter, LinkStats, SetRef};
pub use flow::{Flow, FlowTuple};
pub use op::*;
pub use plan::{apply, teardown, Dataplane, DataplaneError, TableSync};
pub use recorder::Recorder;
