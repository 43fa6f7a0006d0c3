//! The Overlay driver: VXLAN between hosts, a distributed router per
//! network.
//!
//! Each network has a router namespace of its own holding all of its L2:
//! per subnet (one VNI each) a bridge `hnvb<vni>` that carries the
//! subnet's gateway with the host's DR MAC, the VXLAN device `hnvx<vni>`
//! on it (learning off, ARP proxy on; created from the host namespace, so
//! its UDP socket and underlay routing stay the host's) and the local
//! endpoints' ports. A packet between subnets is routed once, in the
//! sending host's router, bridge to bridge, and leaves on the destination
//! subnet's VNI: the path a VXLAN setup built by hand takes. Two networks
//! with the same subnets never meet: their routes, conntrack and tables
//! live in different namespaces, and the host sees none of their frames.
//! The router's only way out is a transit veth to the host (`hnbr<id>` on
//! the host side, a NAT-network bridge), for endpoints with `OutBoundNAT`
//! ([`hostnet_nft::router`]).
//!
//! Remote state is linear in what the control plane tells: one FDB and two
//! neighbour entries per remote endpoint ([`remote_peer_up`]), one FDB
//! entry, one neighbour and one route per remote host's subnet
//! ([`remote_route_up`]); nothing is learnt or flooded.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use hostnet_dataplane::{Op, RouteSpec};
use hostnet_nft::{self as nft, onat::OnatPolicy, SetElement};
use ipnet::{IpNet, Ipv4Net};
use uuid::Uuid;

use crate::names;

/// VXLAN's IANA port, Windows' default `VxlanPort`.
pub const DEFAULT_VXLAN_PORT: u16 = 4789;
/// Windows' default VSID when a subnet gives none.
pub const DEFAULT_VNI: u32 = 4096;
/// Outer IPv4 + UDP + VXLAN + inner Ethernet headers: Windows' default
/// `EncapOverhead`.
pub const DEFAULT_ENCAP_OVERHEAD: u32 = 50;
/// The transit link's MTU (plain routing to the host, no encapsulation).
const TRANSIT_MTU: u32 = 1500;

/// What identifies this host on an overlay: the underlay address its
/// VXLAN packets leave from (Windows' provider address, PA) and the MAC
/// of its distributed router. Peers need both to reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostIdentity {
    pub pa: Ipv4Addr,
    pub dr_mac: [u8; 6],
}

impl HostIdentity {
    /// The default DR MAC: locally administered, from the PA, so every
    /// host's differs and a restart keeps it.
    pub fn default_dr_mac(pa: Ipv4Addr) -> [u8; 6] {
        let o = pa.octets();
        [0x02, 0x11, o[0], o[1], o[2], o[3]]
    }
}

/// One subnet of an overlay network: its VNI and gateway (with the
/// subnet's prefix length).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vni: u32,
    pub gateway: Ipv4Net,
}

/// An overlay network as the driver needs it, resolved and validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overlay {
    pub id: Uuid,
    pub segments: Vec<Segment>,
    pub port: u16,
    pub host: HostIdentity,
    /// The endpoints' MTU: the underlay's minus the encapsulation.
    pub mtu: u32,
    /// The transit /31: the host's end is the first address, the router's
    /// the second.
    pub transit: Ipv4Net,
    /// Where the router namespace is bind-mounted.
    pub router: PathBuf,
}

/// An endpoint on another host: program one of these per remote endpoint
/// (from the API, or later from a cluster store's watch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemotePeer {
    pub vni: u32,
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    pub pa: Ipv4Addr,
}

/// A subnet behind another host's router (`RemoteSubnetRoute`): one per
/// remote host and subnet, whatever its number of endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteRoute {
    pub prefix: Ipv4Net,
    pub vni: u32,
    pub dr_mac: [u8; 6],
    pub pa: Ipv4Addr,
}

impl RemoteRoute {
    /// The next hop the router's route names: the prefix's network
    /// address, on-link (flannel's choice), bound to the remote DR MAC.
    pub fn next_hop(&self) -> Ipv4Addr {
        self.prefix.network()
    }
}

/// The bridge of a VNI, in the router namespace: the router's interface
/// on the subnet (it holds the gateway) and its endpoints' switch.
pub fn vni_bridge(vni: u32) -> String {
    format!("hnvb{vni:06x}")
}

/// The VXLAN device of a VNI, in the router namespace on its bridge.
pub fn vxlan(vni: u32) -> String {
    format!("hnvx{vni:06x}")
}

/// The host end of the router's transit veth.
fn transit_host(id: &Uuid) -> String {
    format!("hnvt{}", &id.simple().to_string()[..8])
}

/// Every link the network owns in the host's namespace: the transit.
pub fn host_links(o: &Overlay) -> Vec<String> {
    vec![names::bridge(&o.id), transit_host(&o.id)]
}

/// The links the network makes in its router namespace (besides the
/// transit's end and its endpoints' ports): each VNI's bridge and VXLAN.
pub fn router_links(o: &Overlay) -> Vec<String> {
    o.segments
        .iter()
        .flat_map(|s| [vni_bridge(s.vni), vxlan(s.vni)])
        .collect()
}

/// `op` carried out in the network's router namespace.
pub fn in_router(o: &Overlay, op: Op) -> Op {
    Op::InNetns {
        netns: o.router.clone(),
        op: Box::new(op),
    }
}

fn transit_router(o: &Overlay) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(o.transit.network()) + 1)
}

/// The host's elements for the transit: its bridge guarded as a NAT
/// network's, the router's transit address masqueraded.
pub fn host_elements(o: &Overlay) -> Vec<SetElement> {
    let mut els = nft::nat_bridge(&names::bridge(&o.id));
    els.push(nft::nat_source(transit_router(o).into()));
    els
}

/// Build the network: the router namespace with its tables and transit,
/// then per subnet its bridge and VXLAN device there.
pub fn network_up(o: &Overlay) -> Vec<Op> {
    let router = o.router.clone();
    let sysctl = |key: &str| Op::NetnsSysctl {
        netns: router.clone(),
        key: key.into(),
        value: if key.ends_with("forward") { "1" } else { "0" }.into(),
    };
    let transit_bridge = names::bridge(&o.id);
    let mut ops = vec![
        Op::Sysctl {
            key: "net/ipv4/ip_forward".into(),
            value: "1".into(),
        },
        Op::CreateNetns {
            path: router.clone(),
        },
        sysctl("net/ipv4/ip_forward"),
        // Routing back out of the leg a packet came in on is normal here
        // (remote subnet routes share the VNI): no redirects.
        sysctl("net/ipv4/conf/all/send_redirects"),
        sysctl("net/ipv4/conf/default/send_redirects"),
        // With br_netfilter every frame the VNI bridges forward would also
        // pass the router's IP hooks (and conntrack): bridged overlay
        // traffic is the endpoints' own, judged on their ports.
        sysctl("net/bridge/bridge-nf-call-iptables"),
        sysctl("net/bridge/bridge-nf-call-ip6tables"),
        sysctl("net/bridge/bridge-nf-call-arptables"),
        Op::LoadNetnsTables {
            netns: router.clone(),
            // No devices yet, so no design to choose.
            script: nft::router::tables(&[], nft::hook::HookDesign::ChainPerDevice),
        },
        Op::CreateBridge {
            name: transit_bridge.clone(),
            mtu: TRANSIT_MTU,
            mac: Some(names::bridge_mac(&o.id)),
            addresses: vec![IpNet::V4(
                Ipv4Net::new(o.transit.network(), 31).expect("a /31"),
            )],
            ipv6: false,
        },
        Op::CreateVeth {
            host_name: transit_host(&o.id),
            bridge: transit_bridge,
            mtu: TRANSIT_MTU,
            netns: router.clone(),
            peer_name: nft::router::TRANSIT_LINK.into(),
            peer_mac: transit_mac(&o.id),
            addresses: vec![IpNet::V4(
                Ipv4Net::new(transit_router(o), 31).expect("a /31"),
            )],
            routes: vec![RouteSpec {
                destination: "0.0.0.0/0".parse().expect("literal"),
                via: Some(o.transit.network().into()),
                metric: 0,
            }],
            ipv6: false,
        },
        Op::AddElements(host_elements(o)),
    ];
    for s in &o.segments {
        ops.extend(segment_up(o, s));
    }
    ops
}

fn transit_mac(id: &Uuid) -> [u8; 6] {
    let b = id.as_bytes();
    [0x06, b[11], b[12], b[13], b[14], b[15]]
}

fn segment_up(o: &Overlay, s: &Segment) -> Vec<Op> {
    let bridge = vni_bridge(s.vni);
    vec![
        in_router(
            o,
            Op::CreateBridge {
                name: bridge.clone(),
                mtu: o.mtu,
                mac: Some(o.host.dr_mac),
                addresses: vec![IpNet::V4(s.gateway)],
                ipv6: false,
            },
        ),
        Op::CreateVxlan {
            name: vxlan(s.vni),
            vni: s.vni,
            local: o.host.pa,
            port: o.port,
            mtu: o.mtu,
            bridge,
            netns: Some(o.router.clone()),
        },
    ]
}

/// Remove the network: the host's elements, the VXLAN devices (their UDP
/// sockets close now, not whenever the kernel frees the namespace), the
/// router namespace with the rest of its links, then the transit.
pub fn network_down(o: &Overlay) -> Vec<Op> {
    let mut ops = vec![Op::DeleteElements(host_elements(o))];
    ops.extend(
        o.segments
            .iter()
            .map(|s| in_router(o, Op::DeleteLink { name: vxlan(s.vni) })),
    );
    ops.push(Op::DeleteNetns {
        path: o.router.clone(),
    });
    ops.extend(
        host_links(o)
            .into_iter()
            .rev()
            .map(|name| Op::DeleteLink { name }),
    );
    ops
}

/// Program one remote endpoint: frames for its MAC go to its host's PA,
/// and both the VXLAN device (answering local containers' ARP) and the
/// router know its MAC, so nothing floods.
pub fn remote_peer_up(o: &Overlay, p: &RemotePeer) -> Vec<Op> {
    vec![
        in_router(
            o,
            Op::AddFdb {
                link: vxlan(p.vni),
                mac: p.mac,
                remote: p.pa,
            },
        ),
        Op::AddNeighbour {
            netns: Some(o.router.clone()),
            link: vxlan(p.vni),
            ip: p.ip,
            mac: p.mac,
        },
        Op::AddNeighbour {
            netns: Some(o.router.clone()),
            link: vni_bridge(p.vni),
            ip: p.ip,
            mac: p.mac,
        },
    ]
}

/// Undo [`remote_peer_up`].
pub fn remote_peer_down(o: &Overlay, p: &RemotePeer) -> Vec<Op> {
    let mut ops: Vec<Op> = remote_peer_up(o, p).iter().filter_map(Op::undo).collect();
    ops.reverse();
    ops
}

/// Program one remote host's subnet: a route through the VNI's bridge to
/// a next hop bound to the remote DR MAC, which the VXLAN device sends to
/// the remote PA.
pub fn remote_route_up(o: &Overlay, r: &RemoteRoute) -> Vec<Op> {
    vec![
        in_router(
            o,
            Op::AddFdb {
                link: vxlan(r.vni),
                mac: r.dr_mac,
                remote: r.pa,
            },
        ),
        Op::AddNeighbour {
            netns: Some(o.router.clone()),
            link: vni_bridge(r.vni),
            ip: r.next_hop(),
            mac: r.dr_mac,
        },
        Op::AddOnlinkRoute {
            netns: o.router.clone(),
            link: vni_bridge(r.vni),
            destination: IpNet::V4(r.prefix),
            via: r.next_hop(),
        },
    ]
}

/// Whether `op` is a (possibly namespaced) FDB entry's addition.
fn adds_fdb(op: &Op) -> bool {
    match op {
        Op::InNetns { op, .. } => adds_fdb(op),
        op => matches!(op, Op::AddFdb { .. }),
    }
}

/// Undo [`remote_route_up`]. `keep_fdb`: another route still goes to the
/// same DR MAC and PA, so its FDB entry stays.
pub fn remote_route_down(o: &Overlay, r: &RemoteRoute, keep_fdb: bool) -> Vec<Op> {
    let mut ops: Vec<Op> = remote_route_up(o, r)
        .iter()
        .filter(|op| !(keep_fdb && adds_fdb(op)))
        .filter_map(Op::undo)
        .collect();
    ops.reverse();
    ops
}

/// A local endpoint's elements in the router's table: its `OutBoundNAT`,
/// without which it has no way out.
pub fn endpoint_router_elements(addr: Ipv4Addr, onat: Option<&[OnatPolicy]>) -> Vec<SetElement> {
    match onat {
        Some(p) => nft::onat::elements(addr, &nft::onat::masquerade_the_rest(p), false),
        None => Vec::new(),
    }
}

/// Program a local endpoint at creation (before it is plugged in).
pub fn endpoint_up(o: &Overlay, addr: Ipv4Addr, onat: Option<&[OnatPolicy]>) -> Vec<Op> {
    let elements = endpoint_router_elements(addr, onat);
    match elements.is_empty() {
        true => Vec::new(),
        false => vec![Op::AddNetnsElements {
            netns: o.router.clone(),
            elements,
        }],
    }
}

/// Undo [`endpoint_up`].
pub fn endpoint_down(o: &Overlay, addr: Ipv4Addr, onat: Option<&[OnatPolicy]>) -> Vec<Op> {
    endpoint_up(o, addr, onat)
        .iter()
        .filter_map(Op::undo)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay() -> Overlay {
        Overlay {
            id: Uuid::from_u128(0x12345678_0000_4000_8000_000000000001),
            segments: vec![
                Segment {
                    vni: 4096,
                    gateway: "10.0.1.1/24".parse().unwrap(),
                },
                Segment {
                    vni: 4097,
                    gateway: "10.0.2.1/24".parse().unwrap(),
                },
            ],
            port: 4789,
            host: HostIdentity {
                pa: "192.0.2.11".parse().unwrap(),
                dr_mac: HostIdentity::default_dr_mac("192.0.2.11".parse().unwrap()),
            },
            mtu: 1450,
            transit: "169.254.0.0/31".parse().unwrap(),
            router: "/run/r".into(),
        }
    }

    #[test]
    fn each_subnet_gets_a_gateway_bridge_and_a_vxlan_in_the_router() {
        let o = overlay();
        let ops = network_up(&o);
        let vx: Vec<_> = ops
            .iter()
            .filter_map(|op| match op {
                Op::CreateVxlan {
                    name,
                    vni,
                    local,
                    port,
                    mtu,
                    bridge,
                    netns,
                } => Some((
                    name.as_str(),
                    *vni,
                    *local,
                    *port,
                    *mtu,
                    bridge.as_str(),
                    netns.clone(),
                )),
                _ => None,
            })
            .collect();
        let pa: Ipv4Addr = "192.0.2.11".parse().unwrap();
        let r = Some(o.router.clone());
        assert_eq!(
            vx,
            [
                ("hnvx001000", 4096, pa, 4789, 1450, "hnvb001000", r.clone()),
                ("hnvx001001", 4097, pa, 4789, 1450, "hnvb001001", r)
            ]
        );
        let bridges: Vec<_> = ops
            .iter()
            .filter_map(|op| match op {
                Op::InNetns { netns, op } if netns == &o.router => match op.as_ref() {
                    Op::CreateBridge {
                        name,
                        mac,
                        addresses,
                        mtu,
                        ..
                    } => Some((name.as_str(), *mac, addresses[0].to_string(), *mtu)),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        let dr = Some([0x02, 0x11, 192, 0, 2, 11]);
        assert_eq!(
            bridges,
            [
                ("hnvb001000", dr, "10.0.1.1/24".to_string(), 1450),
                ("hnvb001001", dr, "10.0.2.1/24".to_string(), 1450)
            ]
        );
        // Nothing of the overlay's L2 is made in the host namespace.
        assert!(!ops
            .iter()
            .any(|op| matches!(op, Op::CreateBridge { name, .. } if name.starts_with("hnvb"))));
        // The router exists before anything is put in it, bridges before
        // the VXLAN devices that join them.
        let at = |f: &dyn Fn(&Op) -> bool| ops.iter().position(f).unwrap();
        let ns = at(&|op| matches!(op, Op::CreateNetns { .. }));
        let first_in = at(&|op| matches!(op, Op::NetnsSysctl { .. }));
        assert!(ns < first_in);
        let bridge = at(&|op| matches!(op, Op::InNetns { .. }));
        let vxlan = at(&|op| matches!(op, Op::CreateVxlan { .. }));
        assert!(bridge < vxlan);
    }

    #[test]
    fn deleting_removes_the_vxlan_devices_before_the_router() {
        let o = overlay();
        let ops = network_down(&o);
        let vx = ops
            .iter()
            .position(|op| {
                op == &in_router(
                    &o,
                    Op::DeleteLink {
                        name: "hnvx001000".into(),
                    },
                )
            })
            .unwrap();
        let ns = ops
            .iter()
            .position(|op| matches!(op, Op::DeleteNetns { .. }))
            .unwrap();
        assert!(vx < ns);
    }

    #[test]
    fn a_remote_peer_is_one_fdb_entry_and_two_neighbours_and_undoes_exactly() {
        let o = overlay();
        let p = RemotePeer {
            vni: 4097,
            ip: "10.0.2.7".parse().unwrap(),
            mac: [2, 0, 0, 0, 0, 7],
            pa: "192.0.2.12".parse().unwrap(),
        };
        let up = remote_peer_up(&o, &p);
        assert_eq!(
            up[0],
            in_router(
                &o,
                Op::AddFdb {
                    link: "hnvx001001".into(),
                    mac: p.mac,
                    remote: p.pa
                }
            )
        );
        assert_eq!(up.len(), 3);
        let down = remote_peer_down(&o, &p);
        assert_eq!(down.len(), 3);
        assert_eq!(down[2], up[0].undo().unwrap());
    }

    #[test]
    fn a_remote_subnet_is_a_route_to_its_dr_mac_at_its_pa() {
        let o = overlay();
        let r = RemoteRoute {
            prefix: "10.244.2.0/24".parse().unwrap(),
            vni: 4096,
            dr_mac: [2, 0x11, 192, 0, 2, 12],
            pa: "192.0.2.12".parse().unwrap(),
        };
        let up = remote_route_up(&o, &r);
        assert!(up.contains(&Op::AddOnlinkRoute {
            netns: "/run/r".into(),
            link: "hnvb001000".into(),
            destination: "10.244.2.0/24".parse().unwrap(),
            via: "10.244.2.0".parse().unwrap(),
        }));
        assert!(up.contains(&in_router(
            &o,
            Op::AddFdb {
                link: "hnvx001000".into(),
                mac: r.dr_mac,
                remote: r.pa
            }
        )));
        let kept = remote_route_down(&o, &r, true);
        assert_eq!(kept.len(), 2, "the FDB entry another route uses stays");
    }

    #[test]
    fn endpoints_without_outbound_nat_put_nothing_in_the_router() {
        let o = overlay();
        let a: Ipv4Addr = "10.0.1.2".parse().unwrap();
        assert!(endpoint_up(&o, a, None).is_empty());
        let p = [OnatPolicy {
            exceptions: vec!["10.0.0.0/8".parse().unwrap()],
            destinations: vec![],
            virtual_ip: None,
        }];
        let ops = endpoint_up(&o, a, Some(&p));
        assert!(
            matches!(&ops[0], Op::AddNetnsElements { netns, elements } if netns == &o.router && !elements.is_empty())
        );
    }
}
