//! The table of an overlay network's router namespace.
//!
//! Each Overlay network routes in a namespace of its own (see
//! docs/drivers/overlay.md), so two networks may use the same subnets. Its
//! only way out is the `transit` link to the host, and only for endpoints
//! with an `OutBoundNAT` policy: they are NATed here to the router's
//! transit address, which the host masquerades as it does a NAT network's
//! endpoint. The sets have the names and layout of the host's table, so
//! [`crate::onat::elements`] programs both. Only what crosses the transit
//! is tracked: routing between the overlay's subnets needs no conntrack.
//!
//! The router also holds the network's VNI bridges and its endpoints'
//! ports, so the endpoint firewall defaults live here too: the same
//! netdev egress chain and per-port drop counters as the host's
//! ([`crate::endpoint_port`], [`crate::counters::port_drops`] program
//! both).
//!
//! Endpoints with ACLs walk the same compiled chains and maps as on the
//! host ([`crate::acl`]; one router per network, so its address-keyed maps
//! never see another network's addresses). Their traffic, and only
//! theirs, is tracked: the raw chains leave addresses in
//! `acl_endpoints4` to conntrack, and the VNI bridges of their subnets
//! hand bridged frames to the IP hooks (`Op::BridgeNfCallIptables`).

use crate::{
    SetElement, ACL_ENDPOINTS4, ACL_ENDPOINTS6, EGRESS_TABLE, ONAT_EXCEPTIONS4, ONAT_SOURCES4,
    ONAT_VIPS4, TABLE,
};

/// The router's link to the host.
pub const TRANSIT_LINK: &str = "transit";

/// The router's tables as `nft -f` text, replacing any previous version
/// in one transaction, with `elements` (OutBoundNAT sets, endpoint ports)
/// already in place.
pub fn tables(elements: &[SetElement]) -> String {
    skeleton().with_elements(elements)
}

/// The skeleton of [`tables`], without elements, fingerprinted
/// ([`crate::Skeleton`]).
pub fn skeleton() -> crate::Skeleton {
    let mut s = inet_table();
    s.push_str(&egress_table());
    let tables = vec![
        (crate::Family::Inet, TABLE),
        (crate::Family::Netdev, EGRESS_TABLE),
    ];
    crate::Skeleton::new(s, tables)
}

/// The endpoint ports' firewall defaults (see [`crate::ENDPOINT_INBOUND`]).
fn egress_table() -> String {
    format!(
        "table netdev {EGRESS_TABLE} {{}}
delete table netdev {EGRESS_TABLE}
table netdev {EGRESS_TABLE} {{
{counters}{chain}
}}
",
        counters = crate::counters::egress_sets(),
        chain = crate::ruleset::endpoint_inbound_chain(),
    )
}

fn inet_table() -> String {
    format!(
        "table inet {TABLE} {{}}
delete table inet {TABLE}
table inet {TABLE} {{
	set {ONAT_SOURCES4} {{ type ipv4_addr; }}
	set {ONAT_EXCEPTIONS4} {{ type ipv4_addr . ipv4_addr; flags interval; }}
	map {ONAT_VIPS4} {{ type ipv4_addr . ipv4_addr : ipv4_addr; flags interval; }}
	chain prerouting {{
		type filter hook prerouting priority raw; policy accept;
		ip saddr @{ACL_ENDPOINTS4} return
		ip daddr @{ACL_ENDPOINTS4} return
		iifname != \"{TRANSIT_LINK}\" fib daddr oifname != \"{TRANSIT_LINK}\" notrack
	}}
	chain output {{
		type filter hook output priority raw; policy accept;
		ip daddr @{ACL_ENDPOINTS4} return
		oifname != \"{TRANSIT_LINK}\" notrack
	}}
	chain forward {{
		type filter hook forward priority filter; policy accept;
		oifname \"{TRANSIT_LINK}\" ip saddr != @{ONAT_SOURCES4} drop
		oifname \"{TRANSIT_LINK}\" ip saddr . ip daddr @{ONAT_EXCEPTIONS4} drop
		oifname \"{TRANSIT_LINK}\" accept
		iifname \"{TRANSIT_LINK}\" ct state established,related accept
		iifname \"{TRANSIT_LINK}\" drop
	}}
	chain postrouting {{
		type nat hook postrouting priority srcnat; policy accept;
		oifname \"{TRANSIT_LINK}\" goto outbound_nat
	}}
	chain outbound_nat {{
		snat ip to ip saddr . ip daddr map @{ONAT_VIPS4}
		masquerade
	}}
{acl}}}
",
        acl = acl_part(),
    )
}

/// The ACL walk of the router's endpoints: the host's maps and chains
/// (overlay addresses are IPv4; the IPv6 half stays empty).
fn acl_part() -> String {
    format!(
        "\tset {ACL_ENDPOINTS4} {{ type ipv4_addr; }}\n\tset {ACL_ENDPOINTS6} {{ type ipv6_addr; }}\n{}{}",
        crate::acl::skeleton(),
        crate::ruleset::acl_base_chains("ct state untracked accept"),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_outbound_nat_endpoints_leave_and_nothing_enters_unasked() {
        let t = super::tables(&[]);
        assert!(t.contains("oifname \"transit\" ip saddr != @onat_sources4 drop"));
        assert!(t.contains("iifname \"transit\" drop"));
        assert!(t.contains("iifname != \"transit\" fib daddr oifname != \"transit\" notrack"));
        // What the router itself sends into the overlay (IGMP reports of
        // its bridges) is not tracked either.
        assert!(t.contains("oifname != \"transit\" notrack"));
        assert!(t.starts_with("table inet hostnet {}\ndelete table inet hostnet\n"));
    }

    #[test]
    fn acl_endpoints_are_tracked_and_walk_the_compiled_acls() {
        let addr = std::net::Ipv4Addr::new(10, 0, 1, 2).into();
        let t = super::tables(&[crate::acl_endpoint(addr)]);
        // Their traffic skips the notrack rules, both ways.
        let pre = t.find("ip saddr @acl_endpoints4 return").unwrap();
        assert!(pre < t.find("fib daddr oifname != \"transit\" notrack").unwrap());
        assert!(t.contains("ip daddr @acl_endpoints4 return\n\t\toifname != \"transit\" notrack"));
        // The host's walk, entered from the router's base chains; the rest
        // (untracked) leaves them at once.
        assert!(t.contains(&crate::acl::skeleton()));
        assert!(t.contains(
            "chain acl_forward {\n\t\ttype filter hook forward priority filter + 10; policy accept;\n\t\tct state untracked accept\n"
        ));
        assert!(t.contains("ip daddr @acl_endpoints4 jump acl_in_switch_0"));
        assert!(t.contains("add element inet hostnet acl_endpoints4 { 10.0.1.2 }"));
    }

    #[test]
    fn endpoint_ports_get_the_firewall_defaults_in_the_router() {
        let port = crate::endpoint_port("hnve0123");
        let t = super::tables(&[port, crate::counters::port_drops("hnve0123")]);
        let comment = super::skeleton().comment();
        assert!(t.contains(&format!(
            "table netdev hostnet_egress {{\n\tcomment \"{comment}\"\n\tset port_drops"
        )));
        assert!(t.contains("oifname @port_drops drop"));
        assert!(t.contains(
            "add chain netdev hostnet_egress endpoint_inbound/hnve0123 { type filter hook egress device \"hnve0123\""
        ));
        assert!(t.contains(
            "add rule netdev hostnet_egress endpoint_inbound/hnve0123 goto endpoint_inbound"
        ));
        assert!(t.contains("add element netdev hostnet_egress port_drops { \"hnve0123\" }"));
    }
}
