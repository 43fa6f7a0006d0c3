//! The operations a driver may ask of the kernel.

use std::net::IpAddr;
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
    /// Delete a link in the daemon's namespace. Missing is not an error.
    DeleteLink { name: String },
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
    /// Add elements to hostnet's sets and maps, all in one nfnetlink
    /// transaction. Adding an element that exists is an error.
    AddElements(Vec<SetElement>),
    /// Delete elements, all in one transaction. Missing elements are skipped.
    DeleteElements(Vec<SetElement>),
    /// Write a sysctl of the daemon's namespace, e.g.
    /// `net/ipv4/ip_forward` = `1`. Not undone.
    Sysctl { key: String, value: String },
}

impl Op {
    /// The op that reverses this one, if it has one.
    pub fn undo(&self) -> Option<Op> {
        match self {
            Op::CreateBridge { name, .. } => Some(Op::DeleteLink { name: name.clone() }),
            Op::CreateVeth { host_name, .. } => Some(Op::DeleteLink {
                name: host_name.clone(),
            }),
            Op::CreateNetns { path } => Some(Op::DeleteNetns { path: path.clone() }),
            Op::AddElements(e) => Some(Op::DeleteElements(e.clone())),
            Op::DeleteLink { .. }
            | Op::DeleteNetns { .. }
            | Op::DeleteElements(_)
            | Op::Sysctl { .. } => None,
        }
    }
}
