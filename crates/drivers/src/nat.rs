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

pub use crate::bridge::{Endpoint, Families, Network, PortMapping};
use crate::names;

/// Create the network: forwarding on (IPv6 too on a dual-stack network),
/// the bridge with its gateways, and the bridge under NAT-network guard.
pub fn network_up(net: &Network) -> Vec<Op> {
    let bridge = names::bridge(&net.id);
    let dual_stack = net.gateways.iter().any(|g| g.addr().is_ipv6());
    let mut ops = vec![Op::Sysctl {
        key: "net/ipv4/ip_forward".into(),
        value: "1".into(),
    }];
    if dual_stack {
        // As Docker with --ipv6: the host routes for its containers. (A
        // host that takes its own IPv6 route from router advertisements
        // needs accept_ra=2 on its uplink then: docs/drivers.md.)
        ops.push(Op::Sysctl {
            key: "net/ipv6/conf/all/forwarding".into(),
            value: "1".into(),
        });
    }
    ops.extend([
        Op::CreateBridge {
            name: bridge.clone(),
            mtu: net.mtu,
            mac: Some(names::bridge_mac(&net.id)),
            addresses: net.gateways.clone(),
            ipv6: dual_stack,
        },
        Op::AddElements(nft::nat_bridge(&bridge)),
    ]);
    ops
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
/// addresses (IPv4: or its `OutBoundNAT`, which decides first), and its
/// published ports, on each family it has.
pub fn endpoint_elements(ep: &Endpoint) -> Vec<SetElement> {
    let IpAddr::V4(addr) = ep.address.addr() else {
        return Vec::new();
    };
    let addr6 = ep.address6.map(|a| a.addr());
    let mut els = vec![nft::nat_source(addr.into())];
    els.extend(addr6.map(nft::nat_source));
    if let Some(p) = &ep.outbound_nat {
        els.extend(nft::onat::elements(
            addr,
            &nft::onat::masquerade_the_rest(p),
            false,
        ));
    }
    for m in &ep.port_mappings {
        let targets = [
            Some(IpAddr::V4(addr)).filter(|_| m.on_ipv4()),
            addr6.filter(|_| m.on_ipv6()),
        ];
        els.extend(targets.into_iter().flatten().map(|target| {
            nft::host_port(&HostPort {
                proto: m.proto,
                host_addr: m.host_addr,
                host_port: m.host_port,
                target,
                target_port: m.container_port,
            })
        }));
    }
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

    #[test]
    fn dual_stack_masquerades_and_publishes_both_families() {
        let mut ep = endpoint();
        ep.address6 = Some("fd00:31::2/64".parse().unwrap());
        let v6_only = PortMapping {
            host_port: 9090,
            families: Families::Ipv6,
            ..ep.port_mappings[0]
        };
        let v4_vip = PortMapping {
            host_port: 7070,
            host_addr: Some("192.0.2.1".parse().unwrap()),
            families: Families::Ipv4,
            ..ep.port_mappings[0]
        };
        ep.port_mappings.extend([v6_only, v4_vip]);
        let texts: Vec<String> = endpoint_elements(&ep)
            .into_iter()
            .map(|e| format!("{}: {}", e.set, e.text))
            .collect();
        assert_eq!(
            texts,
            [
                "nat_sources4: 172.31.0.2",
                "nat_sources6: fd00:31::2",
                "ports4: tcp . 8080 : 172.31.0.2 . 80",
                "ports6: tcp . 8080 : fd00:31::2 . 80",
                "ports6: tcp . 9090 : fd00:31::2 . 80",
                "vip_ports4: 192.0.2.1 . tcp . 7070 : 172.31.0.2 . 80",
            ]
        );
    }
}
