//! What every driver shares: a Linux bridge per network, and per endpoint a
//! veth pair whose host end is a port of that bridge and whose peer is born
//! inside the endpoint's namespace, with the endpoint firewall defaults (and
//! on L2 networks the port's detours, see [`hostnet_nft::l2`]) on the port.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use hostnet_dataplane::{Op, RouteSpec};
use hostnet_nft::l2::Detour;
use hostnet_nft::onat::OnatPolicy;
use hostnet_nft::{self as nft, L4Proto, SetElement};
use ipnet::IpNet;
use uuid::Uuid;

use crate::names;

/// A bridged network as a driver needs it: resolved and validated.
#[derive(Clone, Debug)]
pub struct Network {
    pub id: Uuid,
    /// Gateway addresses with the subnet's prefix length (e.g. 172.31.0.1/16).
    pub gateways: Vec<IpNet>,
    pub mtu: u32,
    /// How an L2Bridge or L2Tunnel network meets the wire; None otherwise.
    pub l2: Option<L2>,
    /// A NAT network: the host's inet table guards what it routes or sends
    /// into the network, so its ports' firewall judges bridged frames only.
    pub nat: bool,
    /// The host's MAC on the bridge of a network bound to an adapter
    /// (Transparent, L2): where an outbound-NAT port's frames detour so the
    /// host routes and NATs them. None on NAT networks (the host routes
    /// everything already).
    pub bound_mac: Option<[u8; 6]>,
    /// Overlay: the bridge of each subnet (its VNI's); endpoints join the
    /// one of their address. Empty: every endpoint joins the network's.
    pub subnet_bridges: Vec<(IpNet, String)>,
    /// The namespace holding the network's bridges and so its endpoints'
    /// ports and their firewall (an overlay's router); None: the daemon's.
    pub port_netns: Option<PathBuf>,
}

impl Network {
    /// The bridge an endpoint with address `addr` joins.
    pub fn bridge_for(&self, addr: IpAddr) -> String {
        self.subnet_bridges
            .iter()
            .find(|(p, _)| p.contains(&addr))
            .map_or_else(|| names::bridge(&self.id), |(_, b)| b.clone())
    }
}

/// The wire side of an L2Bridge or L2Tunnel network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L2 {
    /// The host adapter that is the bridge's uplink port.
    pub uplink: String,
    /// The host's MAC: every frame on the wire carries it.
    pub host_mac: [u8; 6],
    /// L2Tunnel: the physical gateway's MAC, where every unicast frame of
    /// an endpoint goes. None on L2Bridge.
    pub gateway_mac: Option<[u8; 6]>,
}

/// A published port of an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortMapping {
    pub proto: L4Proto,
    /// The one host address it is published on (its family decides the
    /// mapping's); None: every host address.
    pub host_addr: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub families: Families,
}

/// The host address families a port mapping is published on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Families {
    /// IPv4, and IPv6 too when the endpoint has an IPv6 address (as
    /// Docker publishes a port without a host IP).
    Both,
    /// An IPv4 host address was given (`0.0.0.0` included).
    Ipv4,
    /// HCN's IPv6 flag, or an IPv6 host address (`::` included).
    Ipv6,
}

impl PortMapping {
    /// Whether the mapping is published on IPv4.
    pub fn on_ipv4(&self) -> bool {
        self.families != Families::Ipv6
    }

    /// Whether the mapping is published on IPv6 (given the endpoint has an
    /// IPv6 address).
    pub fn on_ipv6(&self) -> bool {
        self.families != Families::Ipv4
    }
}

/// An endpoint as the driver needs it: its address, MAC and mappings fixed.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub id: Uuid,
    /// The endpoint's address with its subnet's prefix length (on a
    /// dual-stack network the IPv4 one).
    pub address: IpNet,
    /// A dual-stack NAT endpoint's IPv6 address, with its subnet's prefix
    /// length; None on single-stack networks.
    pub address6: Option<IpNet>,
    pub mac: [u8; 6],
    pub gateway: Option<IpAddr>,
    /// The IPv6 default route's next hop (the network's IPv6 gateway).
    pub gateway6: Option<IpAddr>,
    pub routes: Vec<RouteSpec>,
    pub port_mappings: Vec<PortMapping>,
    /// `OutBoundNAT` policies, as given ([`hostnet_nft::onat`] orders
    /// them); None without one.
    pub outbound_nat: Option<Vec<OnatPolicy>>,
    /// The endpoint has ACLs: its traffic walks the compiled ACL chains of
    /// the inet table, which end in the seed's defaults (statefully), so
    /// its port takes no protocol-only defaults.
    pub acl: bool,
    /// The endpoint's own MTU, below its network's (an overlay endpoint's
    /// `EncapOverhead`); None: the network's.
    pub mtu: Option<u32>,
}

impl Endpoint {
    /// Its addresses: the (IPv4) address, and the IPv6 one if dual-stack.
    pub fn addresses(&self) -> impl Iterator<Item = IpNet> {
        std::iter::once(self.address).chain(self.address6)
    }
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
    /// A host endpoint: the namespace is the host's own, and the host is
    /// already on the switch (the bridge is its interface there), so the
    /// endpoint is its address on the bridge: no veth, no routes.
    pub host: bool,
}

/// Plug an endpoint into a namespace: its veth, then its firewall defaults.
pub fn endpoint_attach(net: &Network, ep: &Endpoint, plug: Plug<'_>) -> Vec<Op> {
    if plug.host {
        return ep
            .addresses()
            .map(|address| Op::AddAddress {
                link: names::bridge(&net.id),
                address,
            })
            .collect();
    }
    let host_name = names::host_veth(&ep.id);
    let mut routes = ep.routes.clone();
    for gw in ep.gateway.into_iter().chain(ep.gateway6) {
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
    let addresses: Vec<IpNet> = std::iter::once(ep.address).chain(ep.address6).collect();
    let ops = vec![
        Op::CreateVeth {
            host_name: host_name.clone(),
            bridge: net.bridge_for(ep.address.addr()),
            mtu: ep.mtu.unwrap_or(net.mtu),
            netns: plug.netns.to_path_buf(),
            peer_name: plug.ifname.to_string(),
            peer_mac: ep.mac,
            ipv6: addresses.iter().any(|a| a.addr().is_ipv6()),
            addresses,
            routes,
        },
        Op::AddElements(port_elements(net, ep, plug.host)),
    ];
    in_port_netns(net, ops)
}

/// Plug a VM's NIC in: a persistent tap on the bridge, then the same port
/// elements (firewall defaults, drop counters, detours) as a veth's. The
/// tap takes the name the endpoint's host veth would have, so everything
/// that addresses an endpoint's port by name (ACL and counter chains,
/// statistics, unplugging with [`endpoint_detach`]) finds it unchanged.
pub fn vm_nic_plug(net: &Network, ep: &Endpoint) -> Vec<Op> {
    let ops = vec![
        Op::CreateTap {
            name: names::host_veth(&ep.id),
            bridge: net.bridge_for(ep.address.addr()),
            mtu: ep.mtu.unwrap_or(net.mtu),
        },
        Op::AddElements(port_elements(net, ep, false)),
    ];
    in_port_netns(net, ops)
}

/// `ops` where the network's ports are: in its port namespace, if any.
fn in_port_netns(net: &Network, ops: Vec<Op>) -> Vec<Op> {
    match &net.port_netns {
        None => ops,
        Some(netns) => ops
            .into_iter()
            .map(|op| Op::InNetns {
                netns: netns.clone(),
                op: Box::new(op),
            })
            .collect(),
    }
}

/// Unplug an endpoint (`host`: a host endpoint): its port's elements
/// first, then the link.
pub fn endpoint_detach(net: &Network, ep: &Endpoint, host: bool) -> Vec<Op> {
    if host {
        return ep
            .addresses()
            .map(|address| Op::DeleteAddress {
                link: names::bridge(&net.id),
                address,
            })
            .collect();
    }
    let ops = vec![
        Op::DeleteElements(port_elements(net, ep, host)),
        Op::DeleteLink {
            name: names::host_veth(&ep.id),
        },
    ];
    in_port_netns(net, ops)
}

/// The elements of an endpoint's port: the firewall defaults, its drop
/// counters, and on L2 networks its detour (outbound NAT through the host,
/// L2Tunnel through the gateway); a host endpoint has no port.
pub fn port_elements(net: &Network, ep: &Endpoint, host: bool) -> Vec<SetElement> {
    if host {
        return Vec::new();
    }
    let host_name = names::host_veth(&ep.id);
    let port = if net.nat {
        nft::nat_endpoint_port(&host_name)
    } else {
        nft::endpoint_port(&host_name)
    };
    let mut els = if ep.acl { Vec::new() } else { vec![port] };
    els.extend(drop_counters(
        ep,
        net.subnet_bridges.is_empty() || net.port_netns.is_some(),
    ));
    let nat = ep.outbound_nat.is_some() && ep.address.addr().is_ipv4();
    let host_mac = net
        .l2
        .as_ref()
        .map(|l2| l2.host_mac)
        .or(net.bound_mac)
        .filter(|_| nat);
    let gateway_mac = net.l2.as_ref().and_then(|l2| l2.gateway_mac);
    let detour = match (host_mac, gateway_mac) {
        (None, None) => None,
        (Some(host_mac), None) => Some(Detour::OutboundNat { host_mac }),
        (None, Some(gateway_mac)) => Some(Detour::Tunnel { gateway_mac }),
        (Some(host_mac), Some(gateway_mac)) => Some(Detour::TunnelOutboundNat {
            host_mac,
            gateway_mac,
        }),
    };
    els.extend(
        detour
            .map(|d| nft::l2::port(&host_name, d))
            .unwrap_or_default(),
    );
    els
}

/// An attached endpoint's drop counters (`hostnet_nft::counters`): they
/// do not depend on its ACLs, so changing those leaves them counting.
/// `by_address`: false where addresses may repeat in the tables' namespace
/// (the host's, for overlay networks with the same subnet); an overlay's
/// ports are in its own router, whose tables see its addresses only.
fn drop_counters(ep: &Endpoint, by_address: bool) -> Vec<SetElement> {
    let mut els = vec![nft::counters::port_drops(&names::host_veth(&ep.id))];
    if by_address && ep.address.addr().is_ipv4() {
        els.extend(
            ep.addresses()
                .map(|a| nft::counters::inbound_drops(a.addr())),
        );
    }
    els
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An endpoint with one published port, for the drivers' tests.
    pub(crate) fn endpoint() -> Endpoint {
        Endpoint {
            id: Uuid::from_u128(0xabcdef01_2345_4000_8000_000000000001),
            address: "172.31.0.2/16".parse().unwrap(),
            address6: None,
            mac: [2, 0x4e, 172, 31, 0, 2],
            gateway: Some("172.31.0.1".parse().unwrap()),
            gateway6: None,
            routes: vec![],
            port_mappings: vec![PortMapping {
                proto: L4Proto::Tcp,
                host_addr: None,
                host_port: 8080,
                container_port: 80,
                families: Families::Both,
            }],
            outbound_nat: None,
            acl: false,
            mtu: None,
        }
    }

    #[test]
    fn attach_adds_default_route_via_gateway() {
        let net = Network {
            id: Uuid::from_u128(0x12345678_0000_4000_8000_000000000000),
            gateways: vec!["172.31.0.1/16".parse().unwrap()],
            mtu: 1500,
            l2: None,
            nat: true,
            bound_mac: None,
            subnet_bridges: vec![],
            port_netns: None,
        };
        let plug = Plug {
            netns: Path::new("/x"),
            ifname: "eth1",
            nic_index: 1,
            host: false,
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

        let dual = Endpoint {
            address6: Some("fd00:31::2/64".parse().unwrap()),
            gateway6: Some("fd00:31::1".parse().unwrap()),
            ..endpoint()
        };
        let ops = endpoint_attach(&net, &dual, plug);
        let Op::CreateVeth {
            routes,
            addresses,
            ipv6,
            ..
        } = &ops[0]
        else {
            panic!("{ops:?}")
        };
        assert!(ipv6, "a dual-stack endpoint's link carries IPv6");
        assert_eq!(addresses.len(), 2);
        let defaults: Vec<String> = routes
            .iter()
            .map(|r| format!("{} via {}", r.destination, r.via.unwrap()))
            .collect();
        assert_eq!(
            defaults,
            ["0.0.0.0/0 via 172.31.0.1", "::/0 via fd00:31::1"]
        );
    }

    #[test]
    fn a_vm_nic_is_a_tap_with_the_ports_elements_and_unplugs_like_a_veth() {
        let net = Network {
            id: Uuid::from_u128(0x12345678_0000_4000_8000_000000000000),
            gateways: vec!["172.31.0.1/16".parse().unwrap()],
            mtu: 1450,
            l2: None,
            nat: true,
            bound_mac: None,
            subnet_bridges: vec![],
            port_netns: None,
        };
        let ep = endpoint();
        let ops = vm_nic_plug(&net, &ep);
        assert_eq!(
            ops[0],
            Op::CreateTap {
                name: "hnveabcdef0123".into(),
                bridge: "hnbr12345678".into(),
                mtu: 1450,
            }
        );
        assert_eq!(ops[1], Op::AddElements(port_elements(&net, &ep, false)));
        let unplug = endpoint_detach(&net, &ep, false);
        assert_eq!(ops[1].undo(), Some(unplug[0].clone()));
        assert_eq!(ops[0].undo(), Some(unplug[1].clone()));
    }
}
