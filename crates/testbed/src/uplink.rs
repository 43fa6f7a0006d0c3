//! The two-namespace world of the NAT tests and the benchmark: a "host"
//! joined by a veth uplink to an "outside" that stands for the internet.
//!
//! ```text
//!  outside (198.51.100.1, 203.0.113.1 on lo) --up0-- host (198.51.100.2, default via outside)
//! ```

use crate::{unique, Netns};

/// The host's address on the uplink.
pub const HOST: &str = "198.51.100.2";
/// The outside's address on the uplink.
pub const OUTSIDE: &str = "198.51.100.1";
/// An address only reachable through the host's default route.
pub const INTERNET: &str = "203.0.113.1";

/// A host namespace and the outside namespace it routes through.
pub struct Uplink {
    pub host: Netns,
    pub outside: Netns,
}

impl Uplink {
    /// Make both namespaces (names tagged with `tag`) and the uplink.
    pub fn new(tag: &str) -> Self {
        let host = Netns::new(&unique(&format!("{tag}host")));
        let outside = Netns::new(&unique(&format!("{tag}out")));
        host.link(
            "up0",
            &format!("{HOST}/24"),
            &outside,
            "up0",
            &format!("{OUTSIDE}/24"),
        );
        host.ip(&["route", "add", "default", "via", OUTSIDE]);
        outside.ip(&["addr", "add", &format!("{INTERNET}/32"), "dev", "lo"]);
        Uplink { host, outside }
    }
}
