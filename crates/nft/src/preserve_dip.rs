//! `EnablePreserveDip` (port mapping flag 8): the backend receives a load
//! balanced connection with the VIP, not its own address, as destination
//! (docs/load-balancers.md#preserve-dip).
//!
//! The load balancer's NAT stays as it is: the pick chain DNATs to the
//! backend, so routing, the backend choice, conntrack and the reply's
//! un-DNAT are the ordinary ones. Only on the wire into the backend is
//! the destination the VIP again, and out of it the source the backend:
//!
//! - the pick chain sets [`PRESERVE_DIP_MARK`] in the connection's mark
//!   (through the frontend's element of the marks map, `lb.rs`);
//! - an inet post-routing filter chain copies the connection's original
//!   destination (the VIP) into the packet mark, through a map of the
//!   PreserveDip VIPs (netdev chains cannot read conntrack: the kernel
//!   refuses `ct` expressions there);
//! - on the egress of the backends' ports (host veths), a netdev chain
//!   sets the destination from the packet mark (`mark : VIP` map): after
//!   routing and neighbour resolution, so the frame still goes to the
//!   backend's MAC; the backend holds the VIP on its loopback;
//! - on the ingress of those ports, before the bridge and conntrack see
//!   it, a reply from `VIP . proto . target port` gets the backend's
//!   address back as source (`port . VIP . proto . port : backend`), so
//!   conntrack matches it to the connection and un-DNATs it as usual.
//!
//! Per packet that is one mark test for every packet the host sends or
//! forwards, and one map lookup on the backends' ports: nothing grows
//! with the number of load balancers or backends. Payload rewrites of
//! `ip daddr`/`ip saddr` fix the IP and L4 (pseudo-header) checksums.

use std::net::Ipv4Addr;

use crate::ruleset::{ifname, port, TABLE as INET_TABLE};
use crate::{Data, Family, NetdevHook, SetElement};

/// hostnet's netdev tables for PreserveDip, egress and ingress: their own,
/// so hooking a backend's port never clashes with the chains of
/// `hostnet_ingress`/`_egress` or `hostnet_dsr` that may hook the same
/// device (each port's base chains are its own, [`crate::hook`]).
pub const TABLE: &str = "hostnet_pdip";
/// See [`TABLE`].
pub const REPLY_TABLE: &str = "hostnet_pdip_replies";
/// The conntrack mark bit of a connection to a PreserveDip frontend, on
/// top of `lb::VIP_MARK | port` (bit 16, clear in both LB mark prefixes).
pub const PRESERVE_DIP_MARK: u32 = 0x0001_0000;
/// Egress of the backends' ports: the destination back to the VIP.
pub const TO_BACKENDS: &str = "pdip_to_backends";
/// Ingress of the backends' ports: the replies' source back to the backend.
pub const FROM_BACKENDS: &str = "pdip_from_backends";
/// inet: `VIP : packet mark`, for post-routing.
const INET_VIPS: &str = "lb_pdip_vips4";
/// netdev: `packet mark : VIP`, on the backends' egress.
const MARK_VIPS: &str = "pdip_vips4";
/// netdev: `port . VIP . proto . target port : backend`.
const REPLIES: &str = "pdip_replies4";

/// The inet table's part: the map and the post-routing chain that copies
/// a PreserveDip connection's VIP into its packets' mark.
pub fn inet_skeleton() -> String {
    let pdip = crate::lb::VIP_MARK | PRESERVE_DIP_MARK;
    format!(
        r#"	map {INET_VIPS} {{ type ipv4_addr : mark; }}
	chain lb_preserve_dip {{
		type filter hook postrouting priority srcnat + 10; policy accept;
		ct mark & 0xffff0000 == {pdip:#010x} meta mark set ct original ip daddr map @{INET_VIPS}
	}}
"#
    )
}

/// The netdev tables; each backend's port gets base chains of its own
/// that go to these rules ([`crate::hook`]).
pub fn tables() -> String {
    format!(
        r#"table netdev {TABLE} {{
	map {MARK_VIPS} {{ type mark : ipv4_addr; }}
	chain {TO_BACKENDS} {{
		ether type ip ip daddr set meta mark map @{MARK_VIPS}
	}}
}}
table netdev {REPLY_TABLE} {{
	map {REPLIES} {{ type ifname . ipv4_addr . inet_proto . inet_service : ipv4_addr; }}
	chain {FROM_BACKENDS} {{
		ether type ip ip saddr set iifname . ip saddr . meta l4proto . th sport map @{REPLIES}
	}}
}}
"#
    )
}

/// The packet mark that stands for `vip`: its address bytes as the mark
/// register holds them (no allocation, the same at every start).
fn mark_of(vip: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(vip.octets())
}

/// A PreserveDip VIP: its mark both ways (shared by every LB that has it).
pub fn vip(vip: Ipv4Addr) -> Vec<SetElement> {
    let mark = mark_of(vip);
    vec![
        SetElement {
            family: Family::Inet,
            table: INET_TABLE,
            set: INET_VIPS,
            key: vip.octets().to_vec(),
            key_end: None,
            data: Some(Data::Value(vip.octets().to_vec())),
            text: format!("{vip} : {mark:#010x}"),
        },
        SetElement {
            family: Family::Netdev,
            table: TABLE,
            set: MARK_VIPS,
            key: vip.octets().to_vec(),
            key_end: None,
            data: Some(Data::Value(vip.octets().to_vec())),
            text: format!("{mark:#010x} : {vip}"),
        },
    ]
}

/// A backend's port (its host veth), hooked both ways.
pub fn backend_port(name: &str) -> Vec<SetElement> {
    [
        (TABLE, TO_BACKENDS, NetdevHook::Egress),
        (REPLY_TABLE, FROM_BACKENDS, NetdevHook::Ingress),
    ]
    .into_iter()
    .map(|(table, chain, hook)| SetElement {
        family: Family::Netdev,
        table,
        set: chain,
        key: ifname(name),
        key_end: None,
        data: Some(Data::Device(hook)),
        text: format!("\"{name}\""),
    })
    .collect()
}

/// What a backend's reply to a PreserveDip connection looks like: from
/// `vip`, `proto`, `target_port`, out of port `port_name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reply {
    pub port_name: String,
    pub vip: Ipv4Addr,
    pub proto: u8,
    pub target_port: u16,
    pub backend: Ipv4Addr,
}

/// The element that gives such a reply the backend's address as source.
pub fn reply(r: &Reply) -> SetElement {
    let mut key = ifname(&r.port_name);
    key.extend_from_slice(&r.vip.octets());
    key.extend_from_slice(&[r.proto, 0, 0, 0]);
    key.extend_from_slice(&port(r.target_port));
    SetElement {
        family: Family::Netdev,
        table: REPLY_TABLE,
        set: REPLIES,
        key,
        key_end: None,
        data: Some(Data::Value(r.backend.octets().to_vec())),
        text: format!(
            "\"{}\" . {} . {} . {} : {}",
            r.port_name, r.vip, r.proto, r.target_port, r.backend
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vip_maps_to_its_own_bytes_both_ways() {
        let els = vip(Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!(els[0].set, INET_VIPS);
        assert_eq!(els[0].key, vec![10, 96, 0, 10]);
        assert_eq!(els[0].data, Some(Data::Value(vec![10, 96, 0, 10])));
        let mark = u32::from_ne_bytes([10, 96, 0, 10]);
        assert_eq!(els[0].text, format!("10.96.0.10 : {mark:#010x}"));
        assert_eq!(els[1].text, format!("{mark:#010x} : 10.96.0.10"));
        assert_eq!(els[1].table, TABLE);
    }

    #[test]
    fn a_backend_port_is_hooked_both_ways_and_replies_are_keyed_by_it() {
        let hooks: Vec<_> = backend_port("hnve1")
            .iter()
            .map(|e| (e.set, e.device_hook()))
            .collect();
        assert_eq!(
            hooks,
            [
                (TO_BACKENDS, Some(NetdevHook::Egress)),
                (FROM_BACKENDS, Some(NetdevHook::Ingress))
            ]
        );
        let e = reply(&Reply {
            port_name: "hnve1".into(),
            vip: Ipv4Addr::new(10, 96, 0, 10),
            proto: 6,
            target_port: 8080,
            backend: Ipv4Addr::new(10, 88, 0, 2),
        });
        assert_eq!(e.key.len(), 16 + 4 + 4 + 4);
        assert_eq!(&e.key[16..], &[10, 96, 0, 10, 6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(e.text, "\"hnve1\" . 10.96.0.10 . 6 . 8080 : 10.88.0.2");
        assert!(tables().contains("ip daddr set meta mark map @pdip_vips4"));
        assert!(inet_skeleton().contains("ct mark & 0xffff0000 == 0x4c430000"));
    }
}
