//! hostnet's gateway DNS proxy.
//!
//! Each NAT network gets a resolver on its gateway address (UDP and TCP port
//! 53), each Overlay network with `AutomaticDNS` one on every subnet's
//! gateway inside its router namespace. It answers A, AAAA and PTR for the names of that network's endpoints
//! (`NAME` and `NAME.DOMAIN`), only to that network's endpoints, and forwards
//! every other question to the host's upstream resolvers (from
//! `/etc/resolv.conf`, reloaded when it changes) with timeouts, retries across
//! upstreams, TCP after a truncated answer, and a cache that honours TTLs.
//!
//! The DNS wire format is hickory-proto's; the name table ([`zone`]), the
//! answer logic ([`answer`]), the cache ([`cache`]) and resolv.conf parsing
//! ([`resolv`]) are pure and unit-tested; [`forward`] and [`server`] do the
//! I/O on tokio.

pub mod answer;
pub mod cache;
pub mod forward;
pub mod resolv;
pub mod server;
pub mod zone;

pub use server::{Proxy, ProxySettings};
pub use zone::{Host, Zone};
