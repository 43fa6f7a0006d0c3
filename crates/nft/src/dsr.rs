//! Direct server return (LoadBalancerFlags 1) for containers on the
//! backends' bridge (docs/load-balancers.md).
//!
//! A client's frame to a DSR VIP leaves its veth addressed to the gateway
//! (the bridge's MAC). On the veth's ingress, before the bridge sees it,
//! this table looks the VIP, protocol and port up, picks a backend by a
//! hash of the flow (`jhash` of source address and port, or of the source
//! address alone for affinity) and rewrites the destination MAC to the
//! backend's: the bridge then delivers the packet unchanged, the client as
//! source and the VIP as destination, to a backend holding the VIP on its
//! loopback, whose reply goes straight back to the client over the bridge.
//! No NAT, no conntrack on the host's side of the flow: the pick is
//! stateless, so it must be the same for every packet of a flow, which a
//! hash of the flow is (and a change of the backends may move open flows).
//!
//! The steered frame still passes the `inet` hooks (`br_netfilter`); it
//! carries [`STEERED_MARK`] so the load balancers' NAT leaves it alone.

use std::fmt::Write;
use std::net::Ipv4Addr;
use std::sync::OnceLock;

use crate::ruleset::port;
use crate::{Data, Family, NetdevHook, SetElement};

/// hostnet's netdev table for DSR: a table of its own, because the kernel
/// refuses to hook one device on two chains of one table, and L2 ports are
/// on `hostnet_ingress` chains already.
pub const TABLE: &str = "hostnet_dsr";
/// The rules of the clients' ports, each hooked at ingress on a base
/// chain of its own ([`crate::hook`]).
pub const PORTS: &str = "dsr_ports";
/// `vip . proto . port : goto dsr_{flow,source}_N`.
const FRONTENDS: &str = "dsr_frontends4";
/// `vip . proto . port . slot : ether_addr`.
const SLOTS: &str = "dsr_slots4";
/// The packet mark bit of a steered frame.
pub const STEERED_MARK: u32 = 0x0200_0000;
/// The most backends a DSR frontend takes (one static chain per count).
pub const MAX_BACKENDS: usize = 64;

/// A DSR frontend: its VIP, protocol and port, and its backends' MACs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Frontend {
    pub vip: Ipv4Addr,
    pub proto: u8,
    pub port: u16,
    pub backends: Vec<[u8; 6]>,
    /// Pick by the source address alone (DistributionType 1, 2).
    pub affinity: bool,
}

fn pick_chain(affinity: bool, n: usize) -> &'static str {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        ["flow", "source"]
            .iter()
            .flat_map(|k| (1..=MAX_BACKENDS).map(move |n| format!("dsr_{k}_{n}")))
            .collect()
    });
    names[usize::from(affinity) * MAX_BACKENDS + n - 1].as_str()
}

/// The table; ports are hooked as they are added.
pub fn table() -> String {
    let key = "ip daddr . meta l4proto . th dport";
    let mut s = format!(
        r#"table netdev {TABLE} {{
	map {FRONTENDS} {{ type ipv4_addr . inet_proto . inet_service : verdict; }}
	map {SLOTS} {{ typeof {key} . numgen random mod {MAX_BACKENDS} : ether daddr; }}
	chain {PORTS} {{
		ether type ip {key} vmap @{FRONTENDS}
	}}
"#
    );
    for affinity in [false, true] {
        let hash = if affinity {
            "jhash ip saddr"
        } else {
            "jhash ip saddr . th sport"
        };
        for n in 1..=MAX_BACKENDS {
            let _ = write!(
                s,
                "\tchain {} {{\n\t\tether daddr set {key} . {hash} mod {n} map @{SLOTS} meta mark set meta mark | {STEERED_MARK:#010x}\n\t}}\n",
                pick_chain(affinity, n)
            );
        }
    }
    s.push_str("}\n");
    s
}

/// A client's port (its host veth), hooked on [`PORTS`].
pub fn client_port(name: &str) -> SetElement {
    SetElement {
        family: Family::Netdev,
        table: TABLE,
        set: PORTS,
        key: crate::ruleset::ifname(name),
        key_end: None,
        data: Some(Data::Device(NetdevHook::Ingress)),
        text: format!("\"{name}\""),
    }
}

/// A frontend's elements: its dispatch and one slot per backend. Without
/// backends it has none (the NAT path decides).
pub fn elements(f: &Frontend) -> Vec<SetElement> {
    let n = f.backends.len();
    if n == 0 || n > MAX_BACKENDS {
        return Vec::new();
    }
    let mut key = f.vip.octets().to_vec();
    key.extend_from_slice(&[f.proto, 0, 0, 0]);
    key.extend_from_slice(&port(f.port));
    let text = format!("{} . {} . {}", f.vip, f.proto, f.port);
    let chain = pick_chain(f.affinity, n);
    let mut out = vec![element(
        FRONTENDS,
        key.clone(),
        Data::Goto(chain),
        format!("{text} : goto {chain}"),
    )];
    for (i, mac) in f.backends.iter().enumerate() {
        let mut slot = key.clone();
        // The hash's register as is: host-endian.
        slot.extend_from_slice(&(i as u32).to_ne_bytes());
        let value = mac.to_vec();
        let m = mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        out.push(element(
            SLOTS,
            slot,
            Data::Value(value),
            format!("{text} . {i} : {m}"),
        ));
    }
    out
}

fn element(set: &'static str, key: Vec<u8>, data: Data, text: String) -> SetElement {
    SetElement {
        family: Family::Netdev,
        table: TABLE,
        set,
        key,
        key_end: None,
        data: Some(data),
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frontend_is_a_dispatch_and_a_mac_per_backend() {
        let f = Frontend {
            vip: Ipv4Addr::new(10, 96, 0, 10),
            proto: 6,
            port: 80,
            backends: vec![[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]],
            affinity: false,
        };
        let els = elements(&f);
        assert_eq!(els.len(), 3);
        assert_eq!(els[0].data, Some(Data::Goto("dsr_flow_2")));
        assert_eq!(els[0].text, "10.96.0.10 . 6 . 80 : goto dsr_flow_2");
        assert_eq!(els[2].text, "10.96.0.10 . 6 . 80 . 1 : 02:00:00:00:00:02");
        assert_eq!(els[2].data, Some(Data::Value(vec![2, 0, 0, 0, 0, 2])));
        assert_eq!(els[2].table, TABLE);
        let f = Frontend {
            affinity: true,
            backends: vec![],
            ..f
        };
        assert!(elements(&f).is_empty());
        let t = table();
        assert!(t.contains("chain dsr_source_64 {\n\t\tether daddr set ip daddr . meta l4proto . th dport . jhash ip saddr mod 64 map @dsr_slots4 meta mark set meta mark | 0x02000000"));
        assert_eq!(
            client_port("hnve1").device_hook(),
            Some(NetdevHook::Ingress)
        );
    }
}
