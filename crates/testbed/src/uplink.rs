//! The two-namespace world of the NAT tests and the benchmark: a "host"
//! joined by a veth uplink to an "outside" that stands for the internet.
//!
//! ```text
//!  outside (198.51.100.1, 203.0.113.1 on lo) --up0-- host (198.51.100.2, default via outside)
//! ```
//!
//! [`Uplink::add_ipv6`] gives both the same in IPv6, from the documentation
//! range (2001:db8::/32), for the dual-stack tests.

use crate::{unique, Netns};

/// The host's address on the uplink.
pub const HOST: &str = "198.51.100.2";
/// The outside's address on the uplink.
pub const OUTSIDE: &str = "198.51.100.1";
/// An address only reachable through the host's default route.
pub const INTERNET: &str = "203.0.113.1";

/// The host's IPv6 address on the uplink ([`Uplink::add_ipv6`]).
pub const HOST6: &str = "2001:db8:100::2";
/// The outside's IPv6 address on the uplink.
pub const OUTSIDE6: &str = "2001:db8:100::1";
/// An IPv6 address only reachable through the host's IPv6 default route.
pub const INTERNET6: &str = "2001:db8:ffff::1";

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

    /// IPv6 on the uplink too: [`HOST6`] and [`OUTSIDE6`] (without DAD, so
    /// they are usable at once), the host's IPv6 default route via the
    /// outside, and [`INTERNET6`] on the outside's loopback.
    pub fn add_ipv6(&self) {
        let sides = [(&self.host, HOST6), (&self.outside, OUTSIDE6)];
        for (ns, addr) in sides {
            ns.ip(&["addr", "add", &format!("{addr}/64"), "dev", "up0", "nodad"]);
        }
        self.host
            .ip(&["-6", "route", "add", "default", "via", OUTSIDE6]);
        self.outside
            .ip(&["addr", "add", &format!("{INTERNET6}/128"), "dev", "lo"]);
    }
}
