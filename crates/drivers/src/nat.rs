//! The NAT driver (Windows' default `nat` network, WinNAT on Linux).
//!
//! A network is a bridge holding the gateway address; an endpoint is a veth
//! pair whose peer is born in the endpoint's namespace. Its routed traffic
//! is masqueraded to the outside, published ports are DNATed to it, and the
//! endpoint firewall defaults guard it: all of that is elements of the
//! static tables in `hostnet-nft`, so nothing here writes a rule.

use std::net::IpAddr;

use hostnet_dataplane::Op;
use hostnet_nft::{self as nft, HostPort, SetElement};
use uuid::Uuid;

pub use crate::bridge::{Endpoint, Network, PortMapping};
use crate::names;

/// Create the network: forwarding on, the bridge with its gateways, and the
/// bridge under NAT-network guard.
pub fn network_up(net: &Network) -> Vec<Op> {
    let bridge = names::bridge(&net.id);
    vec![
        Op::Sysctl {
            key: "net/ipv4/ip_forward".into(),
            value: "1".into(),
        },
        Op::CreateBridge {
            name: bridge.clone(),
            mtu: net.mtu,
            mac: Some(names::bridge_mac(&net.id)),
            addresses: net.gateways.clone(),
            ipv6: net.gateways.iter().any(|g| g.addr().is_ipv6()),
        },
        Op::AddElements(nft::nat_bridge(&bridge)),
    ]
}

/// Remove the network: rules before links.
pub fn network_down(net_id: &Uuid) -> Vec<Op> {
    let bridge = names::bridge(net_id);
    vec![
        Op::DeleteElements(nft::nat_bridge(&bridge)),
        Op::DeleteLink { name: bridge },
    ]
}

/// The elements an endpoint owns from its creation: masquerade of its
/// address (or its `OutBoundNAT`, which decides first), and its published
/// ports.
pub fn endpoint_elements(ep: &Endpoint) -> Vec<SetElement> {
    let IpAddr::V4(addr) = ep.address.addr() else {
        return Vec::new();
    };
    let mut els = vec![nft::nat_source(addr)];
    if let Some(p) = &ep.outbound_nat {
        els.extend(nft::onat::elements(
            addr,
            &nft::onat::masquerade_the_rest(p),
            false,
        ));
    }
    els.extend(ep.port_mappings.iter().map(|m| {
        nft::host_port(&HostPort {
            proto: m.proto,
            host_addr: m.host_addr,
            host_port: m.host_port,
            target: addr,
            target_port: m.container_port,
        })
    }));
    els
}

/// Program an endpoint at creation (before it has a namespace).
pub fn endpoint_create(ep: &Endpoint) -> Vec<Op> {
    vec![Op::AddElements(endpoint_elements(ep))]
}

/// Remove what [`endpoint_create`] made.
pub fn endpoint_delete(ep: &Endpoint) -> Vec<Op> {
    vec![Op::DeleteElements(endpoint_elements(ep))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::tests::endpoint;

    #[test]
    fn create_programs_masquerade_and_ports() {
        let ops = endpoint_create(&endpoint());
        let Op::AddElements(els) = &ops[0] else {
            panic!("{ops:?}")
        };
        let texts: Vec<_> = els.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["172.31.0.2", "tcp . 8080 : 172.31.0.2 . 80"]);
        assert_eq!(endpoint_delete(&endpoint())[0].undo(), None);
    }
}
