//! The static skeleton of hostnet's tables and the elements that fill it.
//!
//! `inet hostnet` does NAT and guards routed traffic into NAT networks
//! (stateful, through conntrack); two netdev tables, `hostnet_egress` and
//! `hostnet_ingress`, hook single devices: the host end of every endpoint's veth (the endpoint firewall
//! defaults, on every frame sent into the endpoint: bridged from another
//! port, routed by the host or sent by it), and on L2Bridge/L2Tunnel
//! networks the uplink and the ports that detour (see [`crate::l2`]).
//!
//! Why netdev and not bridge hooks: once a bridge-family base chain exists
//! in a namespace, every frame every bridge there forwards passes it, and
//! `hostnet-bench --paths` showed three such chains cost bridged round
//! trips 7-8% (docs/benchmarks.md). A netdev chain costs only the frames of
//! the devices it is hooked on. Which chain a device's base chain goes to
//! *is* the dispatch: no per-frame map lookup picks the rules. Hooking a
//! device is a [`Data::Device`] element, shared rules untouched.
//!
//! There is no bridge conntrack here (`nf_conntrack_bridge`), and netdev
//! chains cannot read conntrack state, so the endpoint firewall judges
//! frames into Transparent and L2 endpoints by protocol alone. Into a NAT
//! endpoint it judges only bridged frames: what the host routes or sends
//! there (`meta pkttype host`: `ip_forward` takes nothing else, and the
//! host's own frames are born so) the inet table guards with conntrack.
//!
//! Firewall defaults (the seed): outbound allow all; inbound allow TCP, UDP,
//! ICMP, ICMPv6 and IGMP, deny every other protocol.
//!
//! A hooked device is on a base chain whose one rule goes to the shared
//! rules ([`crate::hook`]): one chain per rule set listing its devices
//! where the kernel updates such lists (Linux 6.16+), a chain of its own
//! where it does not (6.1, which neither hooks missing devices nor changes
//! a chain's devices, and deletes a chain with its device).

use std::fmt::Write;
use std::net::IpAddr;

use crate::{Data, Family, NetdevHook, SetElement};

/// Name of hostnet's inet table.
pub const TABLE: &str = "hostnet";
/// hostnet's netdev table of ingress chains (uplinks, ports that detour).
pub const INGRESS_TABLE: &str = "hostnet_ingress";
/// hostnet's netdev table of egress chains (endpoint ports, uplinks).
/// Two netdev tables, one a hook, because the kernel refuses a
/// transaction that hooks one device on two chains of one table (an
/// uplink is hooked both ways, a detouring port too).
pub const EGRESS_TABLE: &str = "hostnet_egress";

/// Bridges of NAT networks (`inet`, type ifname).
pub const NAT_BRIDGES: &str = "nat_bridges";
/// `bridge . bridge` of each NAT network: traffic that stays inside one
/// network. With `br_netfilter` (bridge-nf-call-iptables=1, the default
/// where the module is loaded) even bridged traffic passes the `inet`
/// forward hook, with both interfaces the bridge.
pub const NAT_BRIDGE_PAIRS: &str = "nat_bridge_pairs";
/// IPv4 addresses of NAT endpoints: routed traffic from them is masqueraded.
pub const NAT_SOURCES4: &str = "nat_sources4";
/// IPv6 addresses of NAT endpoints (dual-stack NAT networks): masqueraded
/// to the host's IPv6 address (NAT66, as Docker's ip6tables rules do).
pub const NAT_SOURCES6: &str = "nat_sources6";
/// Port mappings on every local address: `proto . port : addr . port`.
pub const PORTS4: &str = "ports4";
/// Port mappings on one local address: `addr . proto . port : addr . port`.
pub const VIP_PORTS4: &str = "vip_ports4";
/// [`PORTS4`] for IPv6: every local IPv6 address, to an endpoint's IPv6 address.
pub const PORTS6: &str = "ports6";
/// [`VIP_PORTS4`] for IPv6: one local IPv6 address.
pub const VIP_PORTS6: &str = "vip_ports6";
/// IPv4 addresses of endpoints with ACL policies: their traffic walks the
/// compiled ACL chains ([`crate::acl`]), which end in the seed's defaults,
/// statefully; the protocol-only defaults elsewhere leave them alone. A TCP
/// segment to or from them that no tracked connection carries and that
/// is not a SYN is dropped: a connection a narrowed ACL cut (its conntrack
/// entry deleted) must not be picked up again mid-stream as a new one.
pub const ACL_ENDPOINTS4: &str = "acl_endpoints4";
/// [`ACL_ENDPOINTS4`] for dual-stack endpoints' IPv6 addresses: their IPv6
/// walks the IPv6 ACL chains. Neighbour discovery is not judged (as ARP,
/// which never reaches the inet hooks, is not for IPv4).
pub const ACL_ENDPOINTS6: &str = "acl_endpoints6";
/// ICMPv6 neighbour discovery (RFC 4861, hop limit 255: from the link
/// itself), which IPv6 needs as IPv4 needs ARP; ACLs never judge it.
const NEIGHBOUR_DISCOVERY: &str = "icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } ip6 hoplimit 255 accept";
/// IPv4 addresses of endpoints with an `OutBoundNAT` policy (`inet`).
pub const ONAT_SOURCES4: &str = "onat_sources4";
/// `source . destination range` pairs an `OutBoundNAT` leaves alone (both
/// tables: the netdev table decides what detours through the host, the
/// host what it NATs).
pub const ONAT_EXCEPTIONS4: &str = "onat_exceptions4";
/// `source . destination range : address` an `OutBoundNAT` with a
/// `VirtualIP` NATs to that address instead of the host's ([`crate::onat`]).
pub const ONAT_VIPS4: &str = "onat_vips4";
/// The host MAC each L2 uplink's frames leave with: `ifname : ether_addr`.
pub const L2_UPLINK_MACS: &str = "l2_uplink_macs";
/// Endpoints behind an uplink: `uplink . ipv4_addr : ether_addr`.
pub const L2_ENDPOINTS4: &str = "l2_endpoints4";
/// Where an outbound-NAT port's frames detour (the host): `ifname : ether_addr`.
pub const L2_PORT_HOST_MACS: &str = "l2_port_host_macs";
/// The same pairs as a set, `ifname . ether_addr`: frames a port sends to
/// the host's MAC already go to the host.
pub const L2_PORT_TO_HOST: &str = "l2_port_to_host";
/// Where an L2Tunnel port's frames go (the physical gateway): `ifname : ether_addr`.
pub const L2_PORT_GATEWAYS: &str = "l2_port_gateways";

/// The packet mark bit the netdev table sets on an outbound-NAT
/// endpoint's frames that it hands to the host's stack (through the
/// bridge's own MAC, also those sent to a host endpoint: had they crossed
/// the bridge, `br_netfilter` would have tracked them there, unNATed). With
/// `br_netfilter` even bridged frames pass the `inet` NAT hook, with the
/// bridge as both interfaces, exactly like frames the host routes back out
/// of the bridge; the mark tells them apart, so only routed traffic is NATed.
pub const ROUTED_MARK: u32 = 0x0100_0000;

/// Netdev rules chains; the devices whose base chains go to them are
/// [`Data::Device`] elements ([`crate::hook`]).
/// Egress of Transparent and L2 endpoint ports: the endpoint firewall
/// defaults, on every frame (bridged, routed or sent by the host).
pub const ENDPOINT_INBOUND: &str = "endpoint_inbound";
/// Egress of NAT endpoint ports: the firewall defaults on bridged frames;
/// what the host routes or sends into a NAT network the inet table guards,
/// with conntrack, so replies of any protocol pass.
pub const NAT_ENDPOINT_INBOUND: &str = "nat_endpoint_inbound";
/// Ingress of L2 uplinks: frames for the host's MAC get the endpoint's.
pub const FROM_UPLINK: &str = "from_uplink";
/// Egress of L2 uplinks: every frame leaves with the host's MAC, except
/// 802.1Q-tagged ones: those belong to VLAN networks sharing the adapter
/// (their own uplink is their sub-interface; a Transparent one's frames
/// keep their containers' MACs). `from_uplink` matches `ether type ip`
/// and `arp`, which tagged frames are not, so it leaves them alone too.
pub const TO_UPLINK: &str = "to_uplink";
/// Ingress of outbound-NAT ports: detour through the host.
pub const OUTBOUND_NAT_PORTS: &str = "outbound_nat_ports";
/// Ingress of L2Tunnel ports: unicast to the physical gateway.
pub const TUNNEL_PORTS: &str = "tunnel_ports";
/// Ingress of L2Tunnel ports with outbound NAT: NATed to the host, the rest
/// to the gateway.
pub const TUNNEL_OUTBOUND_NAT_PORTS: &str = "tunnel_outbound_nat_ports";

/// Protocols an endpoint accepts unsolicited (seed: TCP, UDP, ICMP, IGMP).
const INBOUND_ALLOWED: &str = "{ tcp, udp, icmp, icmpv6, igmp }";

/// An IP protocol number that can carry a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum L4Proto {
    Tcp,
    Udp,
}

impl L4Proto {
    pub fn number(self) -> u8 {
        match self {
            L4Proto::Tcp => 6,
            L4Proto::Udp => 17,
        }
    }

    pub fn keyword(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
        }
    }
}

/// A published port: traffic to `host_port` (on `host_addr`, or on every
/// local address of `target`'s family) goes to `target:target_port`.
/// `host_addr`, when given, is of `target`'s family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub proto: L4Proto,
    pub host_addr: Option<IpAddr>,
    pub host_port: u16,
    pub target: IpAddr,
    pub target_port: u16,
}

/// The skeleton of hostnet's tables, replacing any previous version
/// atomically, with `elements` already in place. Device elements become
/// their base chains ([`crate::hook`]): on Linux 6.1 only devices that
/// exist can be hooked, so the caller passes only those. `nft -f` runs the
/// whole text as one transaction, so established connections (conntrack)
/// are untouched.
pub fn tables(elements: &[SetElement], hooks: crate::hook::HookDesign) -> String {
    skeleton().with_elements(elements, hooks)
}

/// The skeleton of [`tables`], without elements, fingerprinted
/// ([`crate::Skeleton`]).
pub fn skeleton() -> crate::Skeleton {
    let mut s = String::new();
    // The bridge table is what older versions used: removed on upgrade.
    let all = [
        (Family::Inet, TABLE),
        (Family::Netdev, INGRESS_TABLE),
        (Family::Netdev, EGRESS_TABLE),
        (Family::Netdev, crate::dsr::TABLE),
        (Family::Netdev, crate::preserve_dip::TABLE),
        (Family::Netdev, crate::preserve_dip::REPLY_TABLE),
        (Family::Bridge, TABLE),
    ];
    for (family, table) in all {
        let f = family.keyword();
        // Declare-then-delete makes the delete valid when the table is new.
        let _ = writeln!(s, "table {f} {table}\ndelete table {f} {table}");
    }
    s.push_str(&inet_table());
    s.push_str(&ingress_table());
    s.push_str(&egress_table());
    s.push_str(&crate::dsr::table());
    s.push_str(&crate::preserve_dip::tables());
    let made = all.into_iter().filter(|(f, _)| *f != Family::Bridge);
    crate::Skeleton::new(s, made.collect())
}

/// `elements` as `nft -f` statements: set elements as `add element`,
/// hooked devices as base chains in the design `hooks` ([`crate::hook`]).
pub(crate) fn element_statements(
    elements: &[SetElement],
    hooks: crate::hook::HookDesign,
) -> String {
    let mut s = crate::hook::chains_text(elements, hooks);
    // Regular chains ([`Data::Rules`]) before the elements: map elements `goto` them.
    for e in elements.iter().filter(|e| e.chain_rules().is_some()) {
        s.push_str(&crate::chain::chain_text(e));
    }
    // One statement per set (in chunks), not per element: nft looks the
    // set up in its cache for every statement, a walk over all the table's
    // sets, which made a start-up load with 10,000 LBs seconds slower
    // once the table had a thousand sets.
    let mut by_set: Vec<(SetName, Vec<&str>)> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for e in elements {
        if e.device_hook().is_some() || e.chain_rules().is_some() {
            continue;
        }
        let key = (e.family, e.table, e.set);
        let i = *index.entry(key).or_insert_with(|| {
            by_set.push((key, Vec::new()));
            by_set.len() - 1
        });
        by_set[i].1.push(e.text.as_str());
    }
    for ((family, table, set), texts) in by_set {
        for chunk in texts.chunks(ELEMENTS_PER_STATEMENT) {
            let _ = writeln!(
                s,
                "add element {} {table} {set} {{ {} }}",
                family.keyword(),
                chunk.join(", ")
            );
        }
    }
    s
}

/// A set as `nft` names it: family, table, set.
type SetName = (Family, &'static str, &'static str);

/// How many elements one `add element` statement of a table load carries.
const ELEMENTS_PER_STATEMENT: usize = 4096;

fn inet_table() -> String {
    format!(
        r#"table inet {TABLE} {{
	set {NAT_BRIDGES} {{ type ifname; }}
	set {NAT_BRIDGE_PAIRS} {{ type ifname . ifname; }}
	set {NAT_SOURCES4} {{ type ipv4_addr; }}
	set {NAT_SOURCES6} {{ type ipv6_addr; }}
	map {PORTS4} {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
	map {VIP_PORTS4} {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
	map {PORTS6} {{ type inet_proto . inet_service : ipv6_addr . inet_service; }}
	map {VIP_PORTS6} {{ type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }}
	set {ONAT_SOURCES4} {{ type ipv4_addr; }}
	set {ONAT_EXCEPTIONS4} {{ type ipv4_addr . ipv4_addr; flags interval; }}
	map {ONAT_VIPS4} {{ type ipv4_addr . ipv4_addr : ipv4_addr; flags interval; }}
	set {ACL_ENDPOINTS4} {{ type ipv4_addr; }}
	set {ACL_ENDPOINTS6} {{ type ipv6_addr; }}
{acl}
{lb}
{acl_chains}	chain prerouting {{
		type nat hook prerouting priority dstnat; policy accept;
		jump {lb_prerouting}
		fib daddr type local jump host_ports
	}}
	chain output_nat {{
		type nat hook output priority -100; policy accept;
		jump {lb_output}
		fib daddr type local jump host_ports
	}}
	chain host_ports {{
		meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @{VIP_PORTS4}
		meta nfproto ipv4 dnat ip to meta l4proto . th dport map @{PORTS4}
		meta nfproto ipv6 dnat ip6 to ip6 daddr . meta l4proto . th dport map @{VIP_PORTS6}
		meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @{PORTS6}
	}}
	chain postrouting {{
		type nat hook postrouting priority srcnat; policy accept;
		ct status dnat jump {lb_postrouting}
		ip saddr @{ONAT_SOURCES4} meta mark & {ROUTED_MARK:#010x} != 0 jump outbound_nat
		ct status dnat ip saddr @{NAT_SOURCES4} masquerade
		ct status dnat ip6 saddr @{NAT_SOURCES6} masquerade
		oifname @{NAT_BRIDGES} return
		ip saddr @{ONAT_SOURCES4} ip saddr @{NAT_SOURCES4} goto outbound_nat
		ip saddr @{NAT_SOURCES4} masquerade
		ip6 saddr @{NAT_SOURCES6} masquerade
	}}
	chain outbound_nat {{
		ip saddr . ip daddr @{ONAT_EXCEPTIONS4} return
		snat ip to ip saddr . ip daddr map @{ONAT_VIPS4}
		masquerade
	}}
	chain forward {{
		type filter hook forward priority filter; policy accept;
		oifname @{NAT_BRIDGES} jump into_nat_network
	}}
	chain output {{
		type filter hook output priority filter; policy accept;
		oifname @{NAT_BRIDGES} jump endpoint_inbound
	}}
	chain into_nat_network {{
		ct state established,related accept
		iifname . oifname @{NAT_BRIDGE_PAIRS} goto endpoint_inbound
		ct status dnat goto endpoint_inbound
		{count_drop}
		drop
	}}
	chain endpoint_inbound {{
		ct state established,related accept
		ip daddr @{ACL_ENDPOINTS4} accept
		ip6 daddr @{ACL_ENDPOINTS6} accept
		meta l4proto {INBOUND_ALLOWED} accept
		{count_drop}
		drop
	}}
}}
"#,
        acl = crate::acl::skeleton(),
        acl_chains = acl_base_chains(""),
        lb = crate::lb::skeleton(),
        lb_prerouting = crate::lb::PREROUTING,
        lb_output = crate::lb::OUTPUT,
        lb_postrouting = crate::lb::POSTROUTING,
        count_drop = crate::counters::count_inbound_drop(),
    )
}

/// The base chains that send ACL endpoints' new connections through the
/// compiled walk ([`crate::acl`]): forwarded, sent to them by this
/// namespace, and sent by them to it. The host's inet table has them, and
/// so has an overlay router's ([`crate::router`]), which passes `first`
/// before anything else in each (its untracked traffic is never an ACL
/// endpoint's).
pub(crate) fn acl_base_chains(first: &str) -> String {
    let first = match first {
        "" => String::new(),
        f => format!("\t\t{f}\n"),
    };
    format!(
        r#"	chain acl_forward {{
		type filter hook forward priority filter + 10; policy accept;
{first}		ct state established,related accept
		{NEIGHBOUR_DISCOVERY}
		tcp flags & (fin | syn | rst | ack) != syn ip saddr @{ACL_ENDPOINTS4} drop
		tcp flags & (fin | syn | rst | ack) != syn ip daddr @{ACL_ENDPOINTS4} drop
		tcp flags & (fin | syn | rst | ack) != syn ip6 saddr @{ACL_ENDPOINTS6} drop
		tcp flags & (fin | syn | rst | ack) != syn ip6 daddr @{ACL_ENDPOINTS6} drop
		ip saddr @{ACL_ENDPOINTS4} jump {out_entry}
		ip daddr @{ACL_ENDPOINTS4} jump {in_entry}
		ip6 saddr @{ACL_ENDPOINTS6} jump {out_entry6}
		ip6 daddr @{ACL_ENDPOINTS6} jump {in_entry6}
	}}
	chain acl_output {{
		type filter hook output priority filter + 10; policy accept;
{first}		ct state established,related accept
		{NEIGHBOUR_DISCOVERY}
		tcp flags & (fin | syn | rst | ack) != syn ip daddr @{ACL_ENDPOINTS4} drop
		tcp flags & (fin | syn | rst | ack) != syn ip6 daddr @{ACL_ENDPOINTS6} drop
		ip daddr @{ACL_ENDPOINTS4} jump {in_entry}
		ip6 daddr @{ACL_ENDPOINTS6} jump {in_entry6}
	}}
	chain acl_input {{
		type filter hook input priority filter + 10; policy accept;
{first}		ct state established,related accept
		{NEIGHBOUR_DISCOVERY}
		tcp flags & (fin | syn | rst | ack) != syn ip saddr @{ACL_ENDPOINTS4} drop
		tcp flags & (fin | syn | rst | ack) != syn ip6 saddr @{ACL_ENDPOINTS6} drop
		ip saddr @{ACL_ENDPOINTS4} jump {out_entry}
		ip6 saddr @{ACL_ENDPOINTS6} jump {out_entry6}
	}}
"#,
        out_entry = crate::acl::OUT_ENTRY,
        in_entry = crate::acl::IN_ENTRY,
        out_entry6 = crate::acl::OUT_ENTRY6,
        in_entry6 = crate::acl::IN_ENTRY6,
    )
}

fn ingress_table() -> String {
    format!(
        r#"table netdev {INGRESS_TABLE} {{
	map {L2_ENDPOINTS4} {{ type ifname . ipv4_addr : ether_addr; }}
	map {L2_PORT_HOST_MACS} {{ type ifname : ether_addr; }}
	set {L2_PORT_TO_HOST} {{ type ifname . ether_addr; }}
	map {L2_PORT_GATEWAYS} {{ type ifname : ether_addr; }}
	set {ONAT_EXCEPTIONS4} {{ type ipv4_addr . ipv4_addr; flags interval; }}

	chain {FROM_UPLINK} {{
		meta pkttype != host return
		ether type ip ether daddr set iifname . ip daddr map @{L2_ENDPOINTS4} meta pkttype set other
		ether type arp arp daddr ether set iifname . arp daddr ip map @{L2_ENDPOINTS4} ether daddr set iifname . arp daddr ip map @{L2_ENDPOINTS4} meta pkttype set other
	}}
	chain {OUTBOUND_NAT_PORTS} {{
		jump outbound_nat
	}}
	chain {TUNNEL_PORTS} {{
		jump tunnel
	}}
	chain {TUNNEL_OUTBOUND_NAT_PORTS} {{
		jump outbound_nat
		meta pkttype host return
		jump tunnel
	}}
	chain outbound_nat {{
		meta pkttype != other return
		iifname . ether daddr @{L2_PORT_TO_HOST} meta pkttype set host meta mark set meta mark | {ROUTED_MARK:#010x} return
		ether type ip ip saddr . ip daddr != @{ONAT_EXCEPTIONS4} ether daddr set iifname map @{L2_PORT_HOST_MACS} meta pkttype set host meta mark set meta mark | {ROUTED_MARK:#010x}
	}}
	chain tunnel {{
		ether type ip ether daddr & 01:00:00:00:00:00 == 00:00:00:00:00:00 ether daddr set iifname map @{L2_PORT_GATEWAYS} meta pkttype set other
	}}
}}
"#
    )
}

fn egress_table() -> String {
    let counter_sets = crate::counters::egress_sets();
    let count_drop = crate::counters::count_port_drop();
    let endpoint_inbound = endpoint_inbound_chain();
    format!(
        r#"table netdev {EGRESS_TABLE} {{
	map {L2_UPLINK_MACS} {{ type ifname : ether_addr; }}
{counter_sets}
{endpoint_inbound}
	chain {NAT_ENDPOINT_INBOUND} {{
		meta l4proto {INBOUND_ALLOWED} accept
		meta pkttype host accept
		meta l4proto != {INBOUND_ALLOWED} {count_drop}
		meta l4proto != {INBOUND_ALLOWED} drop
	}}
	chain {TO_UPLINK} {{
		ether type 0x8100 return
		ether saddr set oifname map @{L2_UPLINK_MACS}
		ether type arp arp saddr ether set oifname map @{L2_UPLINK_MACS}
	}}
}}
"#
    )
}

/// The egress chain of Transparent, L2 and Overlay endpoint ports: the
/// firewall defaults, each drop counted against the port. The host's
/// egress table has it, and so does an overlay router's
/// ([`crate::router`]), where overlay endpoints' ports are.
pub(crate) fn endpoint_inbound_chain() -> String {
    let count_drop = crate::counters::count_port_drop();
    format!(
        r#"	chain {ENDPOINT_INBOUND} {{
		meta l4proto {INBOUND_ALLOWED} accept
		meta l4proto != {INBOUND_ALLOWED} {count_drop}
		meta l4proto != {INBOUND_ALLOWED} drop
	}}"#
    )
}

/// The bridge of a NAT network: traffic into it is guarded, traffic
/// within it is the network's own.
pub fn nat_bridge(name: &str) -> Vec<SetElement> {
    let mut pair = ifname(name);
    pair.extend(ifname(name));
    vec![
        SetElement {
            family: Family::Inet,
            table: TABLE,
            set: NAT_BRIDGES,
            key: ifname(name),
            key_end: None,
            data: None,
            text: format!("\"{name}\""),
        },
        SetElement {
            family: Family::Inet,
            table: TABLE,
            set: NAT_BRIDGE_PAIRS,
            key: pair,
            key_end: None,
            data: None,
            text: format!("\"{name}\" . \"{name}\""),
        },
    ]
}

/// An address of an endpoint whose traffic walks its ACLs (each address
/// of a dual-stack endpoint, in the set of its family).
pub fn acl_endpoint(addr: IpAddr) -> SetElement {
    SetElement {
        family: Family::Inet,
        table: TABLE,
        set: match addr {
            IpAddr::V4(_) => ACL_ENDPOINTS4,
            IpAddr::V6(_) => ACL_ENDPOINTS6,
        },
        key: octets(addr),
        key_end: None,
        data: None,
        text: addr.to_string(),
    }
}

/// An address of a NAT endpoint, whose outgoing routed traffic is
/// masqueraded (IPv4 or IPv6, each to the host's address of its family).
pub fn nat_source(addr: IpAddr) -> SetElement {
    SetElement {
        family: Family::Inet,
        table: TABLE,
        set: match addr {
            IpAddr::V4(_) => NAT_SOURCES4,
            IpAddr::V6(_) => NAT_SOURCES6,
        },
        key: octets(addr),
        key_end: None,
        data: None,
        text: addr.to_string(),
    }
}

/// An address in the kernel's layout: 4 or 16 bytes, network order.
pub(crate) fn octets(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The host end of a Transparent or L2 endpoint's veth, under the
/// firewall defaults.
pub fn endpoint_port(name: &str) -> SetElement {
    device(ENDPOINT_INBOUND, NetdevHook::Egress, name)
}

/// The host end of a NAT endpoint's veth, under the firewall defaults for
/// what its bridge forwards (the inet table guards the rest).
pub fn nat_endpoint_port(name: &str) -> SetElement {
    device(NAT_ENDPOINT_INBOUND, NetdevHook::Egress, name)
}

/// `name` as a device of the netdev base chain `chain`.
pub(crate) fn device(chain: &'static str, hook: NetdevHook, name: &str) -> SetElement {
    SetElement {
        family: Family::Netdev,
        table: match hook {
            NetdevHook::Ingress => INGRESS_TABLE,
            NetdevHook::Egress => EGRESS_TABLE,
        },
        set: chain,
        key: ifname(name),
        key_end: None,
        data: Some(Data::Device(hook)),
        text: format!("\"{name}\""),
    }
}

/// A published port, in the maps of its target's family.
pub fn host_port(p: &HostPort) -> SetElement {
    let mut key = Vec::with_capacity(24);
    if let Some(a) = p.host_addr {
        key.extend_from_slice(&octets(a));
    }
    key.extend_from_slice(&[p.proto.number(), 0, 0, 0]);
    key.extend_from_slice(&port(p.host_port));
    let mut data = octets(p.target);
    data.extend_from_slice(&port(p.target_port));
    let target = format!("{} . {}", p.target, p.target_port);
    let v6 = p.target.is_ipv6();
    let (set, text) = match p.host_addr {
        Some(a) => (
            if v6 { VIP_PORTS6 } else { VIP_PORTS4 },
            format!("{a} . {} . {} : {target}", p.proto.keyword(), p.host_port),
        ),
        None => (
            if v6 { PORTS6 } else { PORTS4 },
            format!("{} . {} : {target}", p.proto.keyword(), p.host_port),
        ),
    };
    SetElement {
        family: Family::Inet,
        table: TABLE,
        set,
        key,
        key_end: None,
        data: Some(Data::Value(data)),
        text,
    }
}

/// A port in network byte order, padded to one 32-bit register.
pub(crate) fn port(p: u16) -> [u8; 4] {
    let b = p.to_be_bytes();
    [b[0], b[1], 0, 0]
}

/// An interface name as the kernel compares it: NUL-padded to IFNAMSIZ.
pub(crate) fn ifname(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.resize(16, 0);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn host_port_any_address_layout() {
        let e = host_port(&HostPort {
            proto: L4Proto::Tcp,
            host_addr: None,
            host_port: 8080,
            target: Ipv4Addr::new(10, 0, 0, 2).into(),
            target_port: 80,
        });
        assert_eq!(e.set, PORTS4);
        assert_eq!(e.key, vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(e.data, Some(Data::Value(vec![10, 0, 0, 2, 0, 80, 0, 0])));
        assert_eq!(e.text, "tcp . 8080 : 10.0.0.2 . 80");
    }

    #[test]
    fn host_port_one_address_layout() {
        let e = host_port(&HostPort {
            proto: L4Proto::Udp,
            host_addr: Some(Ipv4Addr::new(192, 0, 2, 1).into()),
            host_port: 53,
            target: Ipv4Addr::new(10, 0, 0, 3).into(),
            target_port: 5353,
        });
        assert_eq!(e.set, VIP_PORTS4);
        assert_eq!(e.key, vec![192, 0, 2, 1, 17, 0, 0, 0, 0, 53, 0, 0]);
        assert_eq!(e.text, "192.0.2.1 . udp . 53 : 10.0.0.3 . 5353");
    }

    #[test]
    fn host_port_ipv6_layout() {
        let target: IpAddr = "fd00:1::2".parse().unwrap();
        let e = host_port(&HostPort {
            proto: L4Proto::Tcp,
            host_addr: None,
            host_port: 8080,
            target,
            target_port: 80,
        });
        assert_eq!(e.set, PORTS6);
        assert_eq!(e.key, vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        let mut data = octets(target);
        data.extend_from_slice(&[0, 80, 0, 0]);
        assert_eq!(e.data, Some(Data::Value(data)));
        assert_eq!(e.text, "tcp . 8080 : fd00:1::2 . 80");
        let vip: IpAddr = "2001:db8::2".parse().unwrap();
        let e = host_port(&HostPort {
            host_addr: Some(vip),
            ..HostPort {
                proto: L4Proto::Udp,
                host_addr: None,
                host_port: 53,
                target,
                target_port: 53,
            }
        });
        assert_eq!(e.set, VIP_PORTS6);
        assert_eq!(e.key.len(), 16 + 4 + 4);
        assert_eq!(e.text, "2001:db8::2 . udp . 53 : fd00:1::2 . 53");
        assert_eq!(nat_source(target).set, NAT_SOURCES6);
    }

    #[test]
    fn ifname_keys_are_padded() {
        let e = endpoint_port("hnve0123");
        assert_eq!(e.key.len(), 16);
        assert_eq!(&e.key[..8], b"hnve0123");
        assert_eq!(e.family, Family::Netdev);
        assert_eq!(e.device_hook(), Some(NetdevHook::Egress));
    }

    #[test]
    fn tables_replace_atomically_and_carry_elements() {
        let mut els = nat_bridge("hnbr1");
        els.push(nat_source(Ipv4Addr::new(10, 0, 0, 2).into()));
        let s = tables(&els, crate::hook::HookDesign::ChainPerDevice);
        assert!(s.starts_with("table inet hostnet\ndelete table inet hostnet\n"));
        assert!(s.contains("add element inet hostnet nat_bridges { \"hnbr1\" }"));
        assert!(s.contains("add element inet hostnet nat_bridge_pairs { \"hnbr1\" . \"hnbr1\" }"));
        assert!(s.contains("add element inet hostnet nat_sources4 { 10.0.0.2 }"));
        assert!(s.contains("table bridge hostnet\ndelete table bridge hostnet\n"));
    }

    /// Each family's ACL endpoints enter their own family's walk, after
    /// neighbour discovery, which no ACL judges (as ARP never reaches the
    /// inet hooks).
    #[test]
    fn both_families_walk_their_acls_and_neighbour_discovery_passes() {
        let s = tables(
            &[
                acl_endpoint(Ipv4Addr::new(10, 0, 0, 2).into()),
                acl_endpoint("fd00::2".parse().unwrap()),
            ],
            crate::hook::HookDesign::ChainPerDevice,
        );
        assert!(s.contains("add element inet hostnet acl_endpoints4 { 10.0.0.2 }"));
        assert!(s.contains("add element inet hostnet acl_endpoints6 { fd00::2 }"));
        let body = |chain: &str| {
            let c = &s[s.find(&format!("chain {chain} {{")).expect("chain")..];
            c[..c.find("\n\t}").expect("end")].to_string()
        };
        for (chain, jumps) in [
            (
                "acl_forward",
                vec![
                    "ip saddr @acl_endpoints4 jump acl_out_host_0",
                    "ip daddr @acl_endpoints4 jump acl_in_switch_0",
                    "ip6 saddr @acl_endpoints6 jump acl6_out_host_0",
                    "ip6 daddr @acl_endpoints6 jump acl6_in_switch_0",
                ],
            ),
            (
                "acl_output",
                vec!["ip6 daddr @acl_endpoints6 jump acl6_in_switch_0"],
            ),
            (
                "acl_input",
                vec!["ip6 saddr @acl_endpoints6 jump acl6_out_host_0"],
            ),
        ] {
            let b = body(chain);
            let nd = b.find("nd-neighbor-solicit").expect("neighbour discovery");
            for j in jumps {
                let at = b.find(j).unwrap_or_else(|| panic!("{chain}: no {j}"));
                assert!(nd < at, "{chain}: neighbour discovery after {j}");
            }
        }
        assert!(body("endpoint_inbound").contains("ip6 daddr @acl_endpoints6 accept"));
    }

    #[test]
    fn each_device_gets_a_base_chain_going_to_the_shared_rules() {
        let ports: Vec<SetElement> = (0..3)
            .map(|i| endpoint_port(&format!("hnve{i:06}")))
            .collect();
        let s = tables(&ports, crate::hook::HookDesign::ChainPerDevice);
        let chains: Vec<&str> = s
            .lines()
            .filter(|l| l.starts_with("add chain netdev hostnet_egress endpoint_inbound/"))
            .collect();
        assert_eq!(chains.len(), 3);
        assert!(chains[1].contains("hook egress device \"hnve000001\" priority 0;"));
        assert!(s.contains(
            "add rule netdev hostnet_egress endpoint_inbound/hnve000002 goto endpoint_inbound\n"
        ));
        assert!(!s.contains("add element netdev"));
        // The shared rules chains are not hooked themselves.
        assert!(!s.contains("devices ="));
    }
}
