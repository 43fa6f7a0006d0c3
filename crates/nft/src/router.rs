//! The table of an overlay network's router namespace.
//!
//! Each Overlay network routes in a namespace of its own (see
//! docs/drivers/overlay.md), so two networks may use the same subnets. Its
//! only way out is the `transit` link to the host, and only for endpoints
//! with an `OutBoundNAT` policy: they are NATed here to the router's
//! transit address, which the host masquerades as it does a NAT network's
//! endpoint. The sets have the names and layout of the host's table, so
//! [`crate::onat::elements`] programs both. Only what crosses the transit
//! is tracked: routing between the overlay's subnets needs no conntrack,
//! and skipping it is most of what the router's hop costs (see
//! docs/benchmarks.md, "Overlay").

use crate::{ONAT_EXCEPTIONS4, ONAT_SOURCES4, ONAT_VIPS4, TABLE};

/// The router's link to the host.
pub const TRANSIT_LINK: &str = "transit";

/// The whole table as `nft -f` text, replacing any previous version.
pub fn tables() -> String {
    format!(
        "table inet {TABLE} {{}}
delete table inet {TABLE}
table inet {TABLE} {{
	set {ONAT_SOURCES4} {{ type ipv4_addr; }}
	set {ONAT_EXCEPTIONS4} {{ type ipv4_addr . ipv4_addr; flags interval; }}
	map {ONAT_VIPS4} {{ type ipv4_addr . ipv4_addr : ipv4_addr; flags interval; }}
	chain prerouting {{
		type filter hook prerouting priority raw; policy accept;
		iifname != \"{TRANSIT_LINK}\" fib daddr oifname != \"{TRANSIT_LINK}\" notrack
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
}}
"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_outbound_nat_endpoints_leave_and_nothing_enters_unasked() {
        let t = super::tables();
        assert!(t.contains("oifname \"transit\" ip saddr != @onat_sources4 drop"));
        assert!(t.contains("iifname \"transit\" drop"));
        assert!(t.contains("iifname != \"transit\" fib daddr oifname != \"transit\" notrack"));
        assert!(t.starts_with("table inet hostnet {}\ndelete table inet hostnet\n"));
    }
}
