//! Per-endpoint drop counters (issue 5 item 7).
//!
//! The firewall's drop rules (the seed's defaults, a NAT network's
//! isolation) are shared by every endpoint, so a rule's own counter cannot
//! say whose packets it dropped. Instead each drop rule first looks the
//! packet's endpoint up in a set declared with `counter`: every element
//! (one per attached endpoint) carries its own packet and byte counter,
//! which the kernel bumps on a hit. The lookup is a hash probe paid only
//! by packets being dropped, so allowed traffic costs what it did and the
//! cost never grows with the number of endpoints.
//!
//! The ACL verdict maps ([`crate::acl`]) are declared with `counter` too,
//! so every compiled element counts the packets that hit it.

use std::net::IpAddr;

use crate::ruleset::{ifname, EGRESS_TABLE, TABLE};
use crate::{Family, SetElement};

/// Addresses of attached endpoints (`inet`, with counters): packets to
/// them that the inet table drops (the seed's inbound defaults, with or
/// without ACLs, and a NAT network's isolation) count here.
pub const INBOUND_DROPS4: &str = "inbound_drops4";
/// [`INBOUND_DROPS4`] for a dual-stack endpoint's IPv6 address.
pub const INBOUND_DROPS6: &str = "inbound_drops6";
/// Host-side veths of attached endpoints (`netdev` egress table, with
/// counters): frames the port's firewall defaults drop count here.
pub const PORT_DROPS: &str = "port_drops";

/// The declaration of [`INBOUND_DROPS4`] in `table inet hostnet` (part of
/// [`crate::acl::skeleton`], whose defaults chain uses it).
pub(crate) fn inet_sets() -> String {
    format!(
        "\tset {INBOUND_DROPS4} {{ type ipv4_addr; counter; }}\n\tset {INBOUND_DROPS6} {{ type ipv6_addr; counter; }}\n"
    )
}

/// The declaration of [`PORT_DROPS`] in the egress table.
pub(crate) fn egress_sets() -> String {
    format!("\tset {PORT_DROPS} {{ type ifname; counter; }}\n")
}

/// The statement an inet drop rule begins with: count the drop against the
/// endpoint the packet was for (no element: the following plain `drop`).
pub(crate) fn count_inbound_drop() -> String {
    format!("ip daddr @{INBOUND_DROPS4} drop\n\t\tip6 daddr @{INBOUND_DROPS6} drop")
}

/// The same for a netdev egress chain, by the port the frame leaves on.
pub(crate) fn count_port_drop() -> String {
    format!("oifname @{PORT_DROPS} drop")
}

/// Endpoint `addr`'s counter of inbound drops in the inet table (each of
/// a dual-stack endpoint's addresses has one).
pub fn inbound_drops(addr: IpAddr) -> SetElement {
    SetElement {
        family: Family::Inet,
        table: TABLE,
        set: match addr {
            IpAddr::V4(_) => INBOUND_DROPS4,
            IpAddr::V6(_) => INBOUND_DROPS6,
        },
        key: crate::ruleset::octets(addr),
        key_end: None,
        data: None,
        text: addr.to_string(),
    }
}

/// The counter of frames the firewall defaults drop on port `name` (an
/// endpoint's host-side veth).
pub fn port_drops(name: &str) -> SetElement {
    SetElement {
        family: Family::Netdev,
        table: EGRESS_TABLE,
        set: PORT_DROPS,
        key: ifname(name),
        key_end: None,
        data: None,
        text: format!("\"{name}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_counters_are_keyed_by_the_endpoint() {
        let a = inbound_drops(std::net::Ipv4Addr::new(10, 0, 0, 2).into());
        assert_eq!(a.key, vec![10, 0, 0, 2]);
        assert_eq!(
            (a.family, a.table, a.set),
            (Family::Inet, TABLE, INBOUND_DROPS4)
        );
        let six = inbound_drops("fd00::2".parse().unwrap());
        assert_eq!((six.set, six.key.len()), (INBOUND_DROPS6, 16));
        let p = port_drops("hnve0123456789");
        assert_eq!(p.key.len(), 16);
        assert_eq!(p.table, EGRESS_TABLE);
        assert_eq!(p.device_hook(), None, "a set element, not a chain device");
    }

    #[test]
    fn every_drop_is_counted_before_it_is_dropped() {
        let s = crate::tables(&[], crate::hook::HookDesign::ChainPerDevice);
        assert!(s.contains("set inbound_drops4 { type ipv4_addr; counter; }"));
        assert!(s.contains("set inbound_drops6 { type ipv6_addr; counter; }"));
        assert!(s.contains("set port_drops { type ifname; counter; }"));
        for chain in [
            "endpoint_inbound",
            "into_nat_network",
            crate::acl::IN_DEFAULTS,
        ] {
            let body = chain_body(&s, "table inet hostnet", chain);
            assert!(
                body.contains(
                    "ip daddr @inbound_drops4 drop\n\t\tip6 daddr @inbound_drops6 drop\n\t\tdrop"
                ),
                "{chain}: {body}"
            );
        }
        for chain in [crate::ENDPOINT_INBOUND, crate::NAT_ENDPOINT_INBOUND] {
            let body = chain_body(&s, "table netdev hostnet_egress", chain);
            assert!(body.contains("oifname @port_drops drop"), "{chain}: {body}");
            assert!(body.ends_with("drop"), "{chain}: {body}");
        }
    }

    fn chain_body<'a>(s: &'a str, table: &str, chain: &str) -> &'a str {
        let t = &s[s.find(&format!("{table} {{")).expect("table")..];
        let c = &t[t.find(&format!("chain {chain} {{")).expect("chain")..];
        &c[..c.find("\n\t}").expect("end")]
    }
}
