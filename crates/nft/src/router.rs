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

use std::net::Ipv4Addr;

use crate::{
    SetElement, ACL_ENDPOINTS4, ACL_ENDPOINTS6, EGRESS_TABLE, ONAT_EXCEPTIONS4, ONAT_SOURCES4,
    ONAT_VIPS4, TABLE,
};

/// The router's link to the host.
pub const TRANSIT_LINK: &str = "transit";

/// The router's tables as `nft -f` text, replacing any previous version
/// in one transaction, with `elements` (OutBoundNAT sets, endpoint ports)
/// already in place.
pub fn tables(elements: &[SetElement], hooks: crate::hook::HookDesign) -> String {
    skeleton().with_elements(elements, hooks)
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
	set {LB_SOURCES} {{ type ipv4_addr; }}
	chain prerouting {{
		type filter hook prerouting priority raw; policy accept;
		ip daddr @{LB_SOURCES} accept
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
{acl}{lb}}}
",
        acl = acl_part(),
        lb = lb_chains(),
    )
}

/// The set of SourceVIPs the router holds for its load balancers: replies
/// to them come back over the overlay, and must be tracked (not
/// `notrack`ed as other overlay traffic is) for conntrack to un-NAT them.
pub const LB_SOURCES: &str = "lb_router_sources4";

/// Load balancers on the overlay (docs/load-balancers.md#on-overlay-networks):
/// the host table's maps and pick chains ([`crate::lb::maps_and_picks`],
/// so [`crate::lb::elements`] programs both), entered from the overlay's
/// bridges, with every connection SNATed to its SourceVIP. Kept in chains
/// of their own. IPv4 only (overlay addresses are IPv4).
fn lb_chains() -> String {
    use crate::lb::{MAPS4, PICKS, VIP_MARK};
    format!(
        "{maps}\tchain lb_router_prerouting {{
		type nat hook prerouting priority dstnat; policy accept;
		iifname != \"{TRANSIT_LINK}\" meta nfproto ipv4 ct mark set ip daddr . meta l4proto . th dport map @{guests} ct mark vmap @{PICKS}
	}}
	chain lb_router_postrouting {{
		type nat hook postrouting priority srcnat - 10; policy accept;
		meta nfproto ipv4 ct mark & 0xfffe0000 == {VIP_MARK:#010x} snat ip to ct original ip daddr . meta l4proto . ct mark map @{snat}
	}}
",
        maps = crate::lb::maps_and_picks(),
        guests = MAPS4.vip_reach[0],
        snat = MAPS4.vip_snat,
    )
}

/// The element that has the router track replies to `source_vip`.
pub fn lb_source(source_vip: Ipv4Addr) -> SetElement {
    SetElement {
        family: crate::Family::Inet,
        table: TABLE,
        set: LB_SOURCES,
        key: source_vip.octets().to_vec(),
        key_end: None,
        data: None,
        text: source_vip.to_string(),
    }
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
        let t = super::tables(&[], crate::hook::HookDesign::ChainPerDevice);
        assert!(t.contains("oifname \"transit\" ip saddr != @onat_sources4 drop"));
        assert!(t.contains("iifname \"transit\" drop"));
        assert!(t.contains("iifname != \"transit\" fib daddr oifname != \"transit\" notrack"));
        // What the router itself sends into the overlay (IGMP reports of
        // its bridges) is not tracked either.
        assert!(t.contains("oifname != \"transit\" notrack"));
        assert!(t.starts_with("table inet hostnet {}\ndelete table inet hostnet\n"));
    }

    #[test]
    fn load_balancers_enter_from_the_overlay_and_leave_from_their_source_vip() {
        let ip = |a: [u8; 4]| std::net::IpAddr::from(a);
        let vip = crate::lb::Frontend {
            family: crate::acl::IpFamily::V4,
            vip: Some(ip([10, 96, 0, 10])),
            proto: 6,
            port: 80,
            target_port: 8080,
            pick: crate::lb::Pick::Random,
            reach: crate::lb::Reach {
                guests: true,
                ..Default::default()
            },
            source_vip: Some(ip([10, 0, 1, 2])),
            backends: vec![ip([10, 0, 1, 11])],
            preserve_dip: false,
        };
        let mut els = crate::lb::elements(&vip);
        els.push(super::lb_source(std::net::Ipv4Addr::new(10, 0, 1, 2)));
        let t = super::tables(&els, crate::hook::HookDesign::ChainPerDevice);
        // Replies to a SourceVIP skip the raw notrack, before it.
        let accept = t.find("ip daddr @lb_router_sources4 accept").unwrap();
        assert!(accept < t.find("fib daddr oifname != \"transit\" notrack").unwrap());
        assert!(t.contains("chain lb_vip_random_1 {"));
        assert!(t.contains(
            "iifname != \"transit\" meta nfproto ipv4 ct mark set ip daddr . meta l4proto . th dport map @lb_vip_guests4 ct mark vmap @lb_picks"
        ));
        assert!(t.contains(
            "snat ip to ct original ip daddr . meta l4proto . ct mark map @lb_vip_snat4"
        ));
        assert!(t.contains("add element inet hostnet lb_vip_guests4 { 10.96.0.10 . tcp . 80 :"));
        assert!(t.contains("add element inet hostnet lb_router_sources4 { 10.0.1.2 }"));
        // The host's entry chains are not the router's.
        assert!(!t.contains("lb_from_outside"));
    }

    #[test]
    fn acl_endpoints_are_tracked_and_walk_the_compiled_acls() {
        let addr = std::net::Ipv4Addr::new(10, 0, 1, 2).into();
        let t = super::tables(
            &[crate::acl_endpoint(addr)],
            crate::hook::HookDesign::ChainPerDevice,
        );
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
        let t = super::tables(
            &[port, crate::counters::port_drops("hnve0123")],
            crate::hook::HookDesign::ChainPerDevice,
        );
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
