//! The NAT driver (Windows' default `nat` network, WinNAT on Linux).
//!
//! A network is a bridge holding the gateway address; an endpoint is a veth
//! pair whose peer is born in the endpoint's namespace. Its routed traffic
//! is masqueraded to the outside, published ports are DNATed to it, and the
//! endpoint firewall defaults guard it: all of that is elements of the
//! static tables in `hostnet-nft`, so nothing here writes a rule.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use hostnet_dataplane::{Op, RouteSpec};
use hostnet_nft::{self as nft, HostPort, L4Proto, SetElement};
use ipnet::IpNet;
use uuid::Uuid;

use crate::names;

/// A NAT network as the driver needs it: resolved and validated.
#[derive(Clone, Debug)]
pub struct Network {
    pub id: Uuid,
    /// Gateway addresses with the subnet's prefix length (e.g. 172.31.0.1/16).
    pub gateways: Vec<IpNet>,
    pub mtu: u32,
}

/// A published port of an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortMapping {
    pub proto: L4Proto,
    pub host_addr: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
}

/// An endpoint as the driver needs it: its address, MAC and mappings fixed.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub id: Uuid,
    /// The endpoint's address with its subnet's prefix length.
    pub address: IpNet,
    pub mac: [u8; 6],
    pub gateway: Option<IpAddr>,
    pub routes: Vec<RouteSpec>,
    pub port_mappings: Vec<PortMapping>,
}

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
            mac: None,
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
/// address and its published ports.
pub fn endpoint_elements(ep: &Endpoint) -> Vec<SetElement> {
    let IpAddr::V4(addr) = ep.address.addr() else {
        return Vec::new();
    };
    let mut els = vec![nft::nat_source(addr)];
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

/// Where an endpoint is plugged in: the namespace, the interface name
/// inside it, and how many endpoints the namespace already holds (each
/// further NIC's default route gets a higher metric, as HNS gives each
/// NIC its own interface metric, so the routes do not collide).
#[derive(Clone, Copy, Debug)]
pub struct Plug<'a> {
    pub netns: &'a Path,
    pub ifname: &'a str,
    pub nic_index: u32,
}

/// Plug an endpoint into a namespace: its veth, then its firewall defaults.
pub fn endpoint_attach(net: &Network, ep: &Endpoint, plug: Plug<'_>) -> Vec<Op> {
    let host_name = names::host_veth(&ep.id);
    let mut routes = ep.routes.clone();
    if let Some(gw) = ep.gateway {
        let default = match gw {
            IpAddr::V4(_) => "0.0.0.0/0",
            IpAddr::V6(_) => "::/0",
        };
        let destination: IpNet = default.parse().expect("literal prefix");
        if !routes.iter().any(|r| r.destination == destination) {
            routes.push(RouteSpec {
                destination,
                via: Some(gw),
                metric: plug.nic_index * 100,
            });
        }
    }
    vec![
        Op::CreateVeth {
            host_name: host_name.clone(),
            bridge: names::bridge(&net.id),
            mtu: net.mtu,
            netns: plug.netns.to_path_buf(),
            peer_name: plug.ifname.to_string(),
            peer_mac: ep.mac,
            addresses: vec![ep.address],
            routes,
            ipv6: ep.address.addr().is_ipv6(),
        },
        Op::AddElements(vec![nft::endpoint_port(&host_name)]),
    ]
}

/// Unplug an endpoint: firewall element first, then the link.
pub fn endpoint_detach(ep_id: &Uuid) -> Vec<Op> {
    let host_name = names::host_veth(ep_id);
    vec![
        Op::DeleteElements(vec![nft::endpoint_port(&host_name)]),
        Op::DeleteLink { name: host_name },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint {
            id: Uuid::from_u128(0xabcdef01_2345_4000_8000_000000000001),
            address: "172.31.0.2/16".parse().unwrap(),
            mac: [2, 0x4e, 172, 31, 0, 2],
            gateway: Some("172.31.0.1".parse().unwrap()),
            routes: vec![],
            port_mappings: vec![PortMapping {
                proto: L4Proto::Tcp,
                host_addr: None,
                host_port: 8080,
                container_port: 80,
            }],
        }
    }

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
    fn attach_adds_default_route_via_gateway() {
        let net = Network {
            id: Uuid::from_u128(0x12345678_0000_4000_8000_000000000000),
            gateways: vec!["172.31.0.1/16".parse().unwrap()],
            mtu: 1500,
        };
        let plug = Plug {
            netns: Path::new("/x"),
            ifname: "eth1",
            nic_index: 1,
        };
        let ops = endpoint_attach(&net, &endpoint(), plug);
        let Op::CreateVeth {
            routes,
            bridge,
            host_name,
            ..
        } = &ops[0]
        else {
            panic!("{ops:?}")
        };
        assert_eq!(bridge, "hnbr12345678");
        assert_eq!(host_name, "hnveabcdef0123");
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].destination.to_string(), "0.0.0.0/0");
        assert_eq!(
            routes[0].metric, 100,
            "a second NIC's default route must not collide"
        );
    }
}
