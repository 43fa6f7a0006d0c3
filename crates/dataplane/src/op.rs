//! The operations a driver may ask of the kernel.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use hostnet_nft::SetElement;
use ipnet::IpNet;

/// A route inside an endpoint's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    pub destination: IpNet,
    /// None: the destination is on-link.
    pub via: Option<IpAddr>,
    pub metric: u32,
}

/// Addresses a namespace accepts as its own through local routes (see
/// [`Op::AddLocalRoutes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalRoutes {
    pub netns: PathBuf,
    pub addresses: Vec<Ipv4Addr>,
}

/// A host adapter (a physical or virtual link of the daemon's namespace) as
/// the kernel reports it: what a network bound to it must carry over to
/// its bridge so the host keeps its connectivity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adapter {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
    /// IPv4 addresses and IPv6 addresses other than link-local
    /// (fe80::/10), with their prefix lengths, in the kernel's order.
    pub addresses: Vec<IpNet>,
    /// Main-table unicast routes out of this link, except the ones the
    /// kernel makes itself for addresses (proto kernel), which come back
    /// when the addresses are added elsewhere.
    pub routes: Vec<AdapterRoute>,
    /// The link this one is enslaved to (a bridge), if any.
    pub master: Option<String>,
    /// Administratively up (`IFF_UP`): a team member is given back in
    /// the state it was found in.
    pub up: bool,
}

/// A route of a host adapter, with what it takes to re-create it on
/// another link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterRoute {
    pub destination: IpNet,
    /// None: the destination is on-link.
    pub via: Option<IpAddr>,
    pub metric: u32,
    /// Routing table (254 is main).
    pub table: u32,
    /// Who made the route (`RTPROT_*`: 3 boot, 4 static, 16 dhcp, 9 ra ...).
    pub proto: u8,
    /// `RT_SCOPE_*`: 0 universe, 253 link.
    pub scope: u8,
    /// Preferred source address.
    pub src: Option<IpAddr>,
}

/// How a bond spreads frames over its members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BondMode {
    /// One member carries everything; another takes over when its carrier
    /// goes. Works with any switch.
    ActiveBackup,
    /// Outgoing flows are spread over the members by a layer 2+3 hash;
    /// incoming frames arrive on the active member only, so the switch
    /// needs no configuration either.
    BalanceTlb,
}

impl BondMode {
    /// The kernel's name of the mode (`ip link ... type bond mode NAME`).
    pub fn kernel_name(self) -> &'static str {
        match self {
            BondMode::ActiveBackup => "active-backup",
            BondMode::BalanceTlb => "balance-tlb",
        }
    }

    /// The mode with that kernel name.
    pub fn from_kernel_name(name: &str) -> Option<Self> {
        [BondMode::ActiveBackup, BondMode::BalanceTlb]
            .into_iter()
            .find(|m| m.kernel_name() == name)
    }
}

/// How often a bond polls its members' carrier: a member whose carrier
/// goes is out of service within this many milliseconds.
pub const BOND_MIIMON_MS: u32 = 50;

/// A bond member as it was before it joined: what giving it back restores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BondMember {
    pub name: String,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub up: bool,
}

/// One kernel change. Each creating op has an inverse ([`Op::undo`]) so a
/// failed plan can be rolled back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A bridge in the daemon's namespace, up, holding `addresses`
    /// (the gateways, with their prefix lengths).
    CreateBridge {
        name: String,
        mtu: u32,
        mac: Option<[u8; 6]>,
        addresses: Vec<IpNet>,
        /// Whether the link carries IPv6. When false it gets no IPv6
        /// link-local address: on an IPv4-only network that address only
        /// makes DAD, MLD and router-solicitation noise, which a bridge
        /// floods to every port (N² packets while N endpoints come up).
        ipv6: bool,
    },
    /// An 802.1q sub-interface `name` of link `parent` in the daemon's
    /// namespace: VLAN `id`, with `mtu` and `mac` (the parent's), no IPv6
    /// link-local address (it is a bridge port, not a host interface), up.
    /// Frames sent through it leave `parent` tagged with `id`; tagged
    /// frames arriving on `parent` come out of it untagged.
    CreateVlan {
        name: String,
        parent: String,
        id: u16,
        mtu: u32,
        mac: [u8; 6],
    },
    /// Delete a link in the daemon's namespace. Missing is not an error.
    DeleteLink { name: String },
    /// A bond `name` in the daemon's namespace, with no members yet: `mode`,
    /// carrier polled every [`BOND_MIIMON_MS`], `mtu` and `mac` (the first
    /// member's), no IPv6 link-local address (it is a bridge port), up. A
    /// kernel without bonding answers with an unsupported error before
    /// anything is made.
    CreateBond {
        name: String,
        mode: BondMode,
        mtu: u32,
        mac: [u8; 6],
    },
    /// Enslave `members` to bond `bond`: each is set down (the kernel
    /// enslaves only down links) and given to the bond, which brings it up
    /// with the bond's MTU (and, active-backup, its MAC). Members already
    /// in the bond are skipped, so repeating the op (reconcile) is
    /// harmless. If one fails, those enslaved are released as
    /// [`Op::ReleaseFromBond`] would.
    EnslaveToBond {
        bond: String,
        members: Vec<BondMember>,
    },
    /// Give `members` back as they were before [`Op::EnslaveToBond`]:
    /// released from `bond` if they are in it, then their MAC, MTU and
    /// up/down state as recorded. A missing bond or member is skipped (the
    /// rest are still given back).
    ReleaseFromBond {
        bond: String,
        members: Vec<BondMember>,
    },
    /// A new network namespace bind-mounted at `path` (its loopback up).
    CreateNetns { path: PathBuf },
    /// Unmount and remove a namespace made by `CreateNetns`. Missing is not an error.
    DeleteNetns { path: PathBuf },
    /// A veth pair: `host_name` in the daemon's namespace enslaved to
    /// `bridge` and up; its peer created directly inside the namespace at
    /// `netns`, named `peer_name`, with `peer_mac`, `mtu`, `addresses`,
    /// up, and `routes` installed.
    CreateVeth {
        host_name: String,
        bridge: String,
        mtu: u32,
        netns: PathBuf,
        peer_name: String,
        peer_mac: [u8; 6],
        addresses: Vec<IpNet>,
        routes: Vec<RouteSpec>,
        /// As for [`Op::CreateBridge`], for both ends.
        ipv6: bool,
    },
    /// A persistent tap `name` in the daemon's namespace, enslaved to
    /// `bridge`, with `mtu`, up: a VM NIC's port on the switch. A VM monitor
    /// opens it by name; until then it has no carrier.
    CreateTap {
        name: String,
        bridge: String,
        mtu: u32,
    },
    /// Add elements to hostnet's sets and maps, all in one nfnetlink
    /// transaction. Adding an element that exists is an error.
    AddElements(Vec<SetElement>),
    /// Delete elements, all in one transaction. Missing elements are skipped.
    DeleteElements(Vec<SetElement>),
    /// Delete `delete` and add `add` in ONE nfnetlink transaction (deletes
    /// first): the kernel applies all of it or none, so a changed policy
    /// never shows a mix of old and new elements, nor a gap between them.
    /// Missing elements to delete are skipped (as in `DeleteElements`);
    /// an element to add that exists fails the whole transaction.
    ReplaceElements {
        delete: Vec<SetElement>,
        add: Vec<SetElement>,
    },
    /// Write a sysctl of the daemon's namespace, e.g.
    /// `net/ipv4/ip_forward` = `1`. Not undone.
    Sysctl { key: String, value: String },
    /// Enslave `link` to the bridge `master`, or release it from whatever
    /// it is enslaved to when `master` is None. `previous` is the master it
    /// had before (from [`Adapter::master`]), so the op can be undone.
    /// Both links must exist.
    SetMaster {
        link: String,
        master: Option<String>,
        previous: Option<String>,
    },
    /// Move a host adapter's addresses and routes (from [`Adapter`]) from
    /// link `from` to link `to`: delete the routes from `from`, delete the
    /// addresses, add them to `to` (IPv6 without DAD: they were valid
    /// already), then add the routes there. Addresses and routes already
    /// moved are skipped, so repeating the op (reconcile) is harmless. If a
    /// step fails, what was moved is put back before the error returns.
    /// Both links must exist; `to` must be up.
    MoveAddresses {
        from: String,
        to: String,
        addresses: Vec<IpNet>,
        routes: Vec<AdapterRoute>,
    },
    /// Give `link` one more address (already there: nothing to do).
    AddAddress { link: String, address: IpNet },
    /// Take an address off `link` (not there: nothing to do).
    DeleteAddress { link: String, address: IpNet },
    /// Make each namespace accept its addresses as its own without
    /// holding them as addresses: a `local ADDR/32 dev lo` route each in
    /// its local table ("AnyIP"), e.g. DSR and PreserveDip VIPs on their
    /// backends. Sockets bound to the wildcard get the connection with the
    /// address as their local one, as with an address on loopback, but
    /// adding one is a FIB insert instead of a walk of the device's address
    /// list. One thread visits every namespace (a change touches all the
    /// backends of an LB). Routes already there are kept; a `/32` address
    /// on loopback for one of them (how earlier versions did it) is removed
    /// once its route is in. If a route cannot be added, the op's routes
    /// are removed again.
    AddLocalRoutes(Vec<LocalRoutes>),
    /// Undo [`Op::AddLocalRoutes`] (also a `/32` loopback address an earlier
    /// version left for one of them); missing routes, and missing
    /// namespaces, are nothing to do.
    DeleteLocalRoutes(Vec<LocalRoutes>),
    /// Routes via `link` in the namespace at `netns` (an endpoint's
    /// interface), each added or replaced, so repeating the op
    /// (reconcile) is harmless. If one fails, those added are removed.
    AddRoutes {
        netns: PathBuf,
        link: String,
        routes: Vec<RouteSpec>,
    },
    /// Remove routes that [`Op::AddRoutes`] made; missing ones (and a
    /// missing namespace or link) are skipped.
    DeleteRoutes {
        netns: PathBuf,
        link: String,
        routes: Vec<RouteSpec>,
    },
    /// A VXLAN device, up and enslaved to `bridge`: VNI `vni`, UDP source
    /// `local` (the host's provider address) and destination `port`, MAC
    /// learning off (every remote MAC is a static FDB entry) and ARP proxy
    /// on (it answers ARP from its own neighbour entries, so no request
    /// crosses the underlay). It is created from the daemon's namespace
    /// and born in the one at `netns` (None: the daemon's), where `bridge`
    /// is: its UDP socket and underlay routing stay the daemon's (the
    /// kernel keeps a VXLAN device's sockets in the namespace that asked
    /// for it).
    CreateVxlan {
        name: String,
        vni: u32,
        local: Ipv4Addr,
        port: u16,
        mtu: u32,
        bridge: String,
        netns: Option<PathBuf>,
    },
    /// A static forwarding entry on a VXLAN device: frames for `mac` go to
    /// the host at `remote`. Replaces an entry for `mac`, so repeating it
    /// (reconcile) is harmless.
    AddFdb {
        link: String,
        mac: [u8; 6],
        remote: Ipv4Addr,
    },
    /// Remove what [`Op::AddFdb`] made; missing is not an error.
    DeleteFdb {
        link: String,
        mac: [u8; 6],
        remote: Ipv4Addr,
    },
    /// A permanent neighbour entry `ip` → `mac` on `link` of the namespace
    /// at `netns` (None: the daemon's). Replaces an entry for `ip`.
    AddNeighbour {
        netns: Option<PathBuf>,
        link: String,
        ip: Ipv4Addr,
        mac: [u8; 6],
    },
    /// Remove what [`Op::AddNeighbour`] made; missing (entry, link or
    /// namespace) is not an error.
    DeleteNeighbour {
        netns: Option<PathBuf>,
        link: String,
        ip: Ipv4Addr,
        mac: [u8; 6],
    },
    /// A route in the namespace at `netns`: `destination` via `via` out of
    /// `link`, `onlink` (the gateway is on the link even though no address
    /// of the link covers it: a remote host's subnet). Replaces a route to
    /// `destination`.
    AddOnlinkRoute {
        netns: PathBuf,
        link: String,
        destination: IpNet,
        via: Ipv4Addr,
    },
    /// Remove what [`Op::AddOnlinkRoute`] made; missing is not an error.
    DeleteOnlinkRoute {
        netns: PathBuf,
        link: String,
        destination: IpNet,
        via: Ipv4Addr,
    },
    /// Write a sysctl of the namespace at `netns`. Not undone (the
    /// namespace goes with its settings). A `net/bridge/` key the kernel
    /// lacks there (no `br_netfilter`) is nothing to do.
    NetnsSysctl {
        netns: PathBuf,
        key: String,
        value: String,
    },
    /// Load an nftables script (`nft -f`) in the namespace at `netns`. Not
    /// undone: the namespace's deletion takes its tables.
    LoadNetnsTables { netns: PathBuf, script: String },
    /// [`Op::AddElements`] in the namespace at `netns`.
    AddNetnsElements {
        netns: PathBuf,
        elements: Vec<SetElement>,
    },
    /// [`Op::DeleteElements`] in the namespace at `netns` (a missing
    /// namespace: nothing to do).
    DeleteNetnsElements {
        netns: PathBuf,
        elements: Vec<SetElement>,
    },
    /// Whether IPv4 frames bridge `bridge` forwards pass the IP hooks
    /// (`br_netfilter`, the bridge's own `nf_call_iptables`, which it ORs
    /// with the namespace's `bridge-nf-call-iptables`): an overlay router
    /// turns it on for the VNI bridges of endpoints with ACLs only, so
    /// their bridged frames meet the ACL walk and conntrack and the other
    /// subnets' frames pay nothing. A missing bridge is nothing to do when
    /// turning it off.
    BridgeNfCallIptables { bridge: String, on: bool },
    /// `op` carried out in the namespace at `netns` instead of the
    /// daemon's, as the dataplane would there: links, tables and entries
    /// of an overlay network's router. A removal in a namespace that is
    /// gone is nothing to do (its links and tables went with it).
    InNetns { netns: PathBuf, op: Box<Op> },
}

impl Op {
    /// Whether the op only takes something away (so a namespace that is
    /// gone leaves it nothing to do).
    pub fn is_removal(&self) -> bool {
        match self {
            Op::InNetns { op, .. } => op.is_removal(),
            Op::DeleteLink { .. }
            | Op::DeleteNetns { .. }
            | Op::DeleteElements(_)
            | Op::DeleteAddress { .. }
            | Op::DeleteLocalRoutes(_)
            | Op::DeleteRoutes { .. }
            | Op::DeleteFdb { .. }
            | Op::DeleteNeighbour { .. }
            | Op::DeleteOnlinkRoute { .. }
            | Op::DeleteNetnsElements { .. } => true,
            _ => false,
        }
    }

    /// The ops that take `plan` back, last first: the "down" that mirrors
    /// an "up" plan (ops without an inverse are left out).
    pub fn reverse_plan(plan: &[Op]) -> Vec<Op> {
        plan.iter().rev().filter_map(Op::undo).collect()
    }

    /// The op that reverses this one, if it has one.
    pub fn undo(&self) -> Option<Op> {
        match self {
            Op::CreateBridge { name, .. } => Some(Op::DeleteLink { name: name.clone() }),
            Op::CreateVeth { host_name, .. } => Some(Op::DeleteLink {
                name: host_name.clone(),
            }),
            Op::CreateTap { name, .. } => Some(Op::DeleteLink { name: name.clone() }),
            Op::CreateNetns { path } => Some(Op::DeleteNetns { path: path.clone() }),
            Op::AddElements(e) => Some(Op::DeleteElements(e.clone())),
            Op::ReplaceElements { delete, add } => Some(Op::ReplaceElements {
                delete: add.clone(),
                add: delete.clone(),
            }),
            Op::SetMaster {
                link,
                master,
                previous,
            } => Some(Op::SetMaster {
                link: link.clone(),
                master: previous.clone(),
                previous: master.clone(),
            }),
            Op::MoveAddresses {
                from,
                to,
                addresses,
                routes,
            } => Some(Op::MoveAddresses {
                from: to.clone(),
                to: from.clone(),
                addresses: addresses.clone(),
                routes: routes.clone(),
            }),
            Op::AddAddress { link, address } => Some(Op::DeleteAddress {
                link: link.clone(),
                address: *address,
            }),
            Op::AddLocalRoutes(routes) => Some(Op::DeleteLocalRoutes(routes.clone())),
            Op::AddRoutes {
                netns,
                link,
                routes,
            } => Some(Op::DeleteRoutes {
                netns: netns.clone(),
                link: link.clone(),
                routes: routes.clone(),
            }),
            Op::DeleteRoutes {
                netns,
                link,
                routes,
            } => Some(Op::AddRoutes {
                netns: netns.clone(),
                link: link.clone(),
                routes: routes.clone(),
            }),
            Op::CreateVlan { name, .. } => Some(Op::DeleteLink { name: name.clone() }),
            Op::CreateBond { name, .. } => Some(Op::DeleteLink { name: name.clone() }),
            Op::EnslaveToBond { bond, members } => Some(Op::ReleaseFromBond {
                bond: bond.clone(),
                members: members.clone(),
            }),
            Op::ReleaseFromBond { bond, members } => Some(Op::EnslaveToBond {
                bond: bond.clone(),
                members: members.clone(),
            }),
            Op::CreateVxlan { name, netns, .. } => {
                let delete = Op::DeleteLink { name: name.clone() };
                Some(match netns {
                    Some(netns) => Op::InNetns {
                        netns: netns.clone(),
                        op: Box::new(delete),
                    },
                    None => delete,
                })
            }
            Op::BridgeNfCallIptables { bridge, on } => Some(Op::BridgeNfCallIptables {
                bridge: bridge.clone(),
                on: !on,
            }),
            Op::InNetns { netns, op } => op.undo().map(|undo| Op::InNetns {
                netns: netns.clone(),
                op: Box::new(undo),
            }),
            Op::AddFdb { link, mac, remote } => Some(Op::DeleteFdb {
                link: link.clone(),
                mac: *mac,
                remote: *remote,
            }),
            Op::AddNeighbour {
                netns,
                link,
                ip,
                mac,
            } => Some(Op::DeleteNeighbour {
                netns: netns.clone(),
                link: link.clone(),
                ip: *ip,
                mac: *mac,
            }),
            Op::AddOnlinkRoute {
                netns,
                link,
                destination,
                via,
            } => Some(Op::DeleteOnlinkRoute {
                netns: netns.clone(),
                link: link.clone(),
                destination: *destination,
                via: *via,
            }),
            Op::AddNetnsElements { netns, elements } => Some(Op::DeleteNetnsElements {
                netns: netns.clone(),
                elements: elements.clone(),
            }),
            // Remote state is put back exactly when a change that removed
            // it fails (network modify of a RemoteSubnetRoute).
            Op::DeleteFdb { link, mac, remote } => Some(Op::AddFdb {
                link: link.clone(),
                mac: *mac,
                remote: *remote,
            }),
            Op::DeleteNeighbour {
                netns,
                link,
                ip,
                mac,
            } => Some(Op::AddNeighbour {
                netns: netns.clone(),
                link: link.clone(),
                ip: *ip,
                mac: *mac,
            }),
            Op::DeleteOnlinkRoute {
                netns,
                link,
                destination,
                via,
            } => Some(Op::AddOnlinkRoute {
                netns: netns.clone(),
                link: link.clone(),
                destination: *destination,
                via: *via,
            }),
            Op::DeleteLink { .. }
            | Op::NetnsSysctl { .. }
            | Op::LoadNetnsTables { .. }
            | Op::DeleteNetnsElements { .. }
            | Op::DeleteAddress { .. }
            | Op::DeleteLocalRoutes(_)
            | Op::DeleteNetns { .. }
            | Op::DeleteElements(_)
            | Op::Sysctl { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_ops_undo_to_their_reverse() {
        let enslave = Op::SetMaster {
            link: "eth0".into(),
            master: Some("hnbr0".into()),
            previous: None,
        };
        let release = enslave.undo().unwrap();
        assert_eq!(
            release,
            Op::SetMaster {
                link: "eth0".into(),
                master: None,
                previous: Some("hnbr0".into()),
            }
        );
        assert_eq!(release.undo(), Some(enslave));

        let route = AdapterRoute {
            destination: "0.0.0.0/0".parse().unwrap(),
            via: Some("192.0.2.1".parse().unwrap()),
            metric: 0,
            table: 254,
            proto: 3,
            scope: 0,
            src: None,
        };
        let there = Op::MoveAddresses {
            from: "eth0".into(),
            to: "hnbr0".into(),
            addresses: vec!["192.0.2.11/24".parse().unwrap()],
            routes: vec![route.clone()],
        };
        let back = there.undo().unwrap();
        assert_eq!(
            back,
            Op::MoveAddresses {
                from: "hnbr0".into(),
                to: "eth0".into(),
                addresses: vec!["192.0.2.11/24".parse().unwrap()],
                routes: vec![route],
            }
        );
        assert_eq!(back.undo(), Some(there));
    }

    #[test]
    fn a_vlan_link_is_undone_by_deleting_it() {
        let vlan = Op::CreateVlan {
            name: "hnq00112".into(),
            parent: "eth0".into(),
            id: 11,
            mtu: 1500,
            mac: [2, 0, 0, 0, 0, 1],
        };
        assert_eq!(
            vlan.undo(),
            Some(Op::DeleteLink {
                name: "hnq00112".into()
            })
        );
    }

    #[test]
    fn an_op_in_a_namespace_undoes_there() {
        let netns = PathBuf::from("/run/r");
        let fdb = Op::AddFdb {
            link: "hnvx000001".into(),
            mac: [2, 0, 0, 0, 0, 1],
            remote: "192.0.2.12".parse().unwrap(),
        };
        let there = Op::InNetns {
            netns: netns.clone(),
            op: Box::new(fdb.clone()),
        };
        let undo = there.undo().unwrap();
        assert!(undo.is_removal());
        assert_eq!(
            undo,
            Op::InNetns {
                netns: netns.clone(),
                op: Box::new(fdb.undo().unwrap())
            }
        );
        let vx = Op::CreateVxlan {
            name: "hnvx000001".into(),
            vni: 1,
            local: "192.0.2.11".parse().unwrap(),
            port: 4789,
            mtu: 1450,
            bridge: "hnvb000001".into(),
            netns: Some(netns.clone()),
        };
        assert_eq!(
            vx.undo(),
            Some(Op::InNetns {
                netns,
                op: Box::new(Op::DeleteLink {
                    name: "hnvx000001".into()
                })
            })
        );
    }
}

/// The static state of a VXLAN device as the kernel has it: FDB entries
/// `(MAC, remote)` and permanent neighbours `(IP, MAC)`
/// ([`crate::Dataplane::vxlan_entries`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VxlanEntries {
    pub fdb: Vec<([u8; 6], Ipv4Addr)>,
    pub neighbours: Vec<(Ipv4Addr, [u8; 6])>,
}
