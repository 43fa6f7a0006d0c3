//! rtnetlink requests: links, addresses and routes.
//!
//! Each function is one request/ack exchange on a `NETLINK_ROUTE` socket, so
//! it acts on the namespace that socket was opened in. Creation requests set
//! `IFF_UP` in the same message (the kernel applies `ifi_flags` right after
//! registering the device), which saves a round trip per link.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;

use ipnet::IpNet;

use super::netlink::{attributes, Message, NetlinkError, Socket};
use crate::{AdapterRoute, RouteSpec};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_EXT_MASK: u16 = 29;
const IFLA_AF_SPEC: u16 = 26;
const IFLA_INET6_ADDR_GEN_MODE: u16 = 8;
const IN6_ADDR_GEN_MODE_NONE: u8 = 1;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFLA_VLAN_ID: u16 = 1;
const IFLA_BOND_MODE: u16 = 1;
const IFLA_BOND_MIIMON: u16 = 3;
const IFLA_BOND_XMIT_HASH_POLICY: u16 = 14;
const IFLA_BOND_TLB_DYNAMIC_LB: u16 = 27;
const BOND_MODE_ACTIVEBACKUP: u8 = 1;
const BOND_MODE_TLB: u8 = 5;
const BOND_XMIT_POLICY_LAYER23: u8 = 2;
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u8 = 0x02;
const IFA_F_DADFAILED: u32 = 0x08;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RT_TABLE_UNSPEC: u8 = 0;
const RT_TABLE_MAIN: u8 = 254;
const RT_TABLE_LOCAL: u8 = 255;
const RTPROT_KERNEL: u8 = 2;
const RTPROT_STATIC: u8 = 4;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_HOST: u8 = 254;
/// In a delete request: match routes of any scope.
const RT_SCOPE_NOWHERE: u8 = 255;
const RTN_UNICAST: u8 = 1;
const RTN_LOCAL: u8 = 2;
/// `rtm_flags`: a cached clone, not a configured route.
const RTM_F_CLONED: u32 = 0x200;

const IFF_UP: u32 = libc::IFF_UP as u32;

const CREATE: u16 = (libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
const ACK: u16 = libc::NLM_F_ACK as u16;
const DUMP: u16 = libc::NLM_F_DUMP as u16;

/// `struct ifinfomsg` (16 bytes).
fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = libc::AF_UNSPEC as u8;
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

fn family(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn octets(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The index of link `name`, or None if there is none.
pub fn index(sock: &mut Socket, name: &str) -> Result<Option<u32>, NetlinkError> {
    let mut msg = Message::new(RTM_GETLINK, ACK);
    msg.header(&ifinfomsg(0, 0, 0))
        .attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
        .attr_str(IFLA_IFNAME, name);
    let mut found = None;
    let result = sock.request(msg, |reply| {
        if reply.kind == RTM_NEWLINK && reply.payload.len() >= 16 {
            let p = reply.payload;
            found = Some(u32::from_ne_bytes([p[4], p[5], p[6], p[7]]));
        }
    });
    match result {
        Ok(()) => Ok(found),
        Err(e) if e.errno == libc::ENODEV => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates bridge `name`, down, with `mtu` and (if given) `mac`.
pub fn create_bridge(
    sock: &mut Socket,
    name: &str,
    mtu: u32,
    mac: Option<[u8; 6]>,
) -> Result<(), NetlinkError> {
    let mut msg = Message::new(RTM_NEWLINK, CREATE);
    msg.header(&ifinfomsg(0, 0, 0))
        .attr_str(IFLA_IFNAME, name)
        .attr_u32(IFLA_MTU, mtu);
    if let Some(mac) = mac {
        msg.attr(IFLA_ADDRESS, &mac);
    }
    msg.begin_nest(IFLA_LINKINFO)
        .attr_str(IFLA_INFO_KIND, "bridge")
        .end_nest();
    sock.request(msg, |_| {})
}

/// Creates 802.1q link `name` on link `parent` (an index), down, with
/// VLAN `id`, `mtu` and `mac`. A kernel without 8021q answers EOPNOTSUPP.
pub fn create_vlan(
    sock: &mut Socket,
    name: &str,
    parent: u32,
    id: u16,
    mtu: u32,
    mac: [u8; 6],
) -> Result<(), NetlinkError> {
    let mut msg = Message::new(RTM_NEWLINK, CREATE);
    msg.header(&ifinfomsg(0, 0, 0))
        .attr_str(IFLA_IFNAME, name)
        .attr_u32(IFLA_LINK, parent)
        .attr_u32(IFLA_MTU, mtu)
        .attr(IFLA_ADDRESS, &mac)
        .begin_nest(IFLA_LINKINFO)
        .attr_str(IFLA_INFO_KIND, "vlan")
        .begin_nest(IFLA_INFO_DATA)
        .attr(IFLA_VLAN_ID, &id.to_ne_bytes())
        .end_nest()
        .end_nest();
    sock.request(msg, |_| {})
}

/// Creates bond `name`, down, with `mode`, carrier polled every
/// `miimon_ms`, `mtu` and `mac`. balance-tlb hashes layer 2+3 (a flow of
/// bridged frames keeps its member; a MAC-only hash would put every
/// container behind one rewritten MAC on one member) and spreads by hash,
/// not by measured load (which starts every flow on the first member and
/// moves flows every 10 s). A kernel without bonding answers EOPNOTSUPP.
pub fn create_bond(
    sock: &mut Socket,
    name: &str,
    mode: crate::BondMode,
    miimon_ms: u32,
    mtu: u32,
    mac: [u8; 6],
) -> Result<(), NetlinkError> {
    let mut msg = Message::new(RTM_NEWLINK, CREATE);
    msg.header(&ifinfomsg(0, 0, 0))
        .attr_str(IFLA_IFNAME, name)
        .attr_u32(IFLA_MTU, mtu)
        .attr(IFLA_ADDRESS, &mac)
        .begin_nest(IFLA_LINKINFO)
        .attr_str(IFLA_INFO_KIND, "bond")
        .begin_nest(IFLA_INFO_DATA)
        .attr_u32(IFLA_BOND_MIIMON, miimon_ms);
    match mode {
        crate::BondMode::ActiveBackup => {
            msg.attr(IFLA_BOND_MODE, &[BOND_MODE_ACTIVEBACKUP]);
        }
        crate::BondMode::BalanceTlb => {
            msg.attr(IFLA_BOND_MODE, &[BOND_MODE_TLB])
                .attr(IFLA_BOND_XMIT_HASH_POLICY, &[BOND_XMIT_POLICY_LAYER23])
                .attr(IFLA_BOND_TLB_DYNAMIC_LB, &[0]);
        }
    }
    msg.end_nest().end_nest();
    sock.request(msg, |_| {})
}

/// Sets link `index` up or down.
pub fn set_state(sock: &mut Socket, index: u32, up: bool) -> Result<(), NetlinkError> {
    let mut msg = Message::new(RTM_NEWLINK, ACK);
    msg.header(&ifinfomsg(index, if up { IFF_UP } else { 0 }, IFF_UP));
    sock.request(msg, |_| {})
}

/// Sets link `index`'s MAC and MTU.
pub fn set_mac_and_mtu(
    sock: &mut Socket,
    index: u32,
    mac: [u8; 6],
    mtu: u32,
) -> Result<(), NetlinkError> {
    let mut msg = Message::new(RTM_NEWLINK, ACK);
    msg.header(&ifinfomsg(index, 0, 0))
        .attr(IFLA_ADDRESS, &mac)
        .attr_u32(IFLA_MTU, mtu);
    sock.request(msg, |_| {})
}

/// What [`create_veth`] makes.
pub struct Veth<'a> {
    pub host_name: &'a str,
    pub master: u32,
    pub mtu: u32,
    pub peer_name: &'a str,
    pub peer_mac: [u8; 6],
    /// An open descriptor of the peer's network namespace.
    pub netns: RawFd,
}

/// Creates a veth pair in one request: the host end enslaved to `master`,
/// the peer born inside `netns` with its name, MAC and MTU; both down, so
/// their IPv6 settings can be made before they come up.
///
/// (The peer could not be brought up in this message anyway: the kernel
/// applies the peer's `ifi_flags` before tying the two ends together, and
/// opening an untied veth fails with ENOTCONN.)
pub fn create_veth(sock: &mut Socket, veth: &Veth<'_>) -> Result<(), NetlinkError> {
    let mut msg = Message::new(RTM_NEWLINK, CREATE);
    msg.header(&ifinfomsg(0, 0, 0))
        .attr_str(IFLA_IFNAME, veth.host_name)
        .attr_u32(IFLA_MTU, veth.mtu)
        .attr_u32(IFLA_MASTER, veth.master)
        .begin_nest(IFLA_LINKINFO)
        .attr_str(IFLA_INFO_KIND, "veth")
        .begin_nest(IFLA_INFO_DATA)
        .begin_nest(VETH_INFO_PEER)
        .header(&ifinfomsg(0, 0, 0))
        .attr_str(IFLA_IFNAME, veth.peer_name)
        .attr(IFLA_ADDRESS, &veth.peer_mac)
        .attr_u32(IFLA_MTU, veth.mtu)
        .attr_u32(IFLA_NET_NS_FD, veth.netns as u32)
        .end_nest()
        .end_nest()
        .end_nest();
    sock.request(msg, |_| {})
}

/// Sets link `index` up.
pub fn set_up(sock: &mut Socket, index: u32) -> Result<(), NetlinkError> {
    let mut msg = Message::new(RTM_NEWLINK, ACK);
    msg.header(&ifinfomsg(index, IFF_UP, IFF_UP));
    sock.request(msg, |_| {})
}

/// Gives link `index` no IPv6 link-local address (`addrgenmode none`).
/// Sent while the link is down: the address is made when it comes up, and
/// the kernel refuses this setting in a creation message.
pub fn disable_ipv6_link_local(sock: &mut Socket, index: u32) -> Result<(), NetlinkError> {
    let mut msg = Message::new(RTM_NEWLINK, ACK);
    msg.header(&ifinfomsg(index, 0, 0))
        .begin_nest(IFLA_AF_SPEC)
        .begin_nest(libc::AF_INET6 as u16)
        .attr(IFLA_INET6_ADDR_GEN_MODE, &[IN6_ADDR_GEN_MODE_NONE])
        .end_nest()
        .end_nest();
    sock.request(msg, |_| {})
}

/// Deletes link `name`; a missing link is not an error.
pub fn delete(sock: &mut Socket, name: &str) -> Result<(), NetlinkError> {
    let mut msg = Message::new(RTM_DELLINK, ACK);
    msg.header(&ifinfomsg(0, 0, 0)).attr_str(IFLA_IFNAME, name);
    match sock.request(msg, |_| {}) {
        Err(e) if e.errno == libc::ENODEV => Ok(()),
        other => other,
    }
}

/// Adds `addr` (with its prefix length) to link `index`. IPv6 addresses
/// skip duplicate address detection: hostnet allocated them, and DAD would
/// keep them tentative (unusable) for a second or more.
pub fn add_address(sock: &mut Socket, index: u32, addr: IpNet) -> Result<(), NetlinkError> {
    sock.request(address_message(RTM_NEWADDR, CREATE, index, addr), |_| {})
}

/// Adds a host's own address that moves from another link: like
/// [`add_address`] (IPv6 without DAD: it was valid already), with the
/// broadcast address it had there, so a move there and back is exact.
pub fn add_moved_address(
    sock: &mut Socket,
    index: u32,
    addr: IpNet,
    broadcast: Option<Ipv4Addr>,
) -> Result<(), NetlinkError> {
    let mut msg = address_message(RTM_NEWADDR, CREATE, index, addr);
    if let Some(b) = broadcast {
        msg.attr(IFA_BROADCAST, &b.octets());
    }
    sock.request(msg, |_| {})
}

/// Deletes `addr` (address and prefix length) from link `index`; the
/// kernel answers EADDRNOTAVAIL if it has no such address there.
pub fn delete_address(sock: &mut Socket, index: u32, addr: IpNet) -> Result<(), NetlinkError> {
    sock.request(address_message(RTM_DELADDR, ACK, index, addr), |_| {})
}

fn address_message(kind: u16, flags: u16, index: u32, addr: IpNet) -> Message {
    let ip = addr.addr();
    let mut hdr = [0u8; 8];
    hdr[0] = family(ip);
    hdr[1] = addr.prefix_len();
    hdr[2] = if ip.is_ipv6() { IFA_F_NODAD } else { 0 };
    hdr[3] = RT_SCOPE_UNIVERSE;
    hdr[4..8].copy_from_slice(&index.to_ne_bytes());
    let mut msg = Message::new(kind, flags);
    msg.header(&hdr);
    // For IPv4, IFA_LOCAL is the address and IFA_ADDRESS the peer (equal on
    // broadcast links). For IPv6 a differing IFA_LOCAL would turn
    // IFA_ADDRESS into a peer address, so send IFA_ADDRESS alone.
    if ip.is_ipv4() {
        msg.attr(IFA_LOCAL, &octets(ip));
    }
    msg.attr(IFA_ADDRESS, &octets(ip));
    msg
}

/// Adds `route` to the main table via link `index`.
pub fn add_route(sock: &mut Socket, index: u32, route: &RouteSpec) -> Result<(), NetlinkError> {
    sock.request(route_message(RTM_NEWROUTE, CREATE, index, route), |_| {})
}

/// Adds `route`, or replaces the route to its destination and metric.
pub fn replace_route(sock: &mut Socket, index: u32, route: &RouteSpec) -> Result<(), NetlinkError> {
    let flags = (libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_REPLACE) as u16;
    sock.request(route_message(RTM_NEWROUTE, flags, index, route), |_| {})
}

/// Deletes `route` (ESRCH when it is not there).
pub fn delete_route(sock: &mut Socket, index: u32, route: &RouteSpec) -> Result<(), NetlinkError> {
    sock.request(route_message(RTM_DELROUTE, ACK, index, route), |_| {})
}

fn route_message(kind: u16, flags: u16, index: u32, route: &RouteSpec) -> Message {
    let dst = route.destination;
    let mut hdr = [0u8; 12];
    hdr[0] = family(dst.addr());
    hdr[1] = dst.prefix_len();
    hdr[4] = RT_TABLE_MAIN;
    hdr[5] = RTPROT_STATIC;
    hdr[6] = if route.via.is_some() {
        RT_SCOPE_UNIVERSE
    } else {
        RT_SCOPE_LINK
    };
    hdr[7] = RTN_UNICAST;
    let mut msg = Message::new(kind, flags);
    msg.header(&hdr);
    if dst.prefix_len() > 0 {
        msg.attr(RTA_DST, &octets(dst.network()));
    }
    if let Some(via) = route.via {
        msg.attr(RTA_GATEWAY, &octets(via));
    }
    msg.attr_u32(RTA_OIF, index);
    if route.metric != 0 {
        msg.attr_u32(RTA_PRIORITY, route.metric);
    }
    msg
}

/// Adds `local ADDR/32 dev lo` to the local table (`index`: loopback's),
/// so the namespace accepts `addr` as its own without holding it as an
/// address. Not exclusive: the route sits beside the kernel's own route of
/// an address `addr` (which has a source and the kernel's protocol), so the
/// address can be removed afterwards without a moment where `addr` is not
/// local. The kernel answers EEXIST if this very route is there.
pub fn add_local_route(sock: &mut Socket, index: u32, addr: Ipv4Addr) -> Result<(), NetlinkError> {
    let flags = (libc::NLM_F_ACK | libc::NLM_F_CREATE) as u16;
    sock.request(
        local_route_message(RTM_NEWROUTE, flags, index, addr),
        |_| {},
    )
}

/// Deletes what [`add_local_route`] added, not the kernel's route of an
/// address (another protocol); ESRCH when it is not there.
pub fn delete_local_route(
    sock: &mut Socket,
    index: u32,
    addr: Ipv4Addr,
) -> Result<(), NetlinkError> {
    sock.request(local_route_message(RTM_DELROUTE, ACK, index, addr), |_| {})
}

fn local_route_message(kind: u16, flags: u16, index: u32, addr: Ipv4Addr) -> Message {
    let mut hdr = [0u8; 12];
    hdr[0] = libc::AF_INET as u8;
    hdr[1] = 32;
    hdr[4] = RT_TABLE_LOCAL;
    hdr[5] = RTPROT_STATIC;
    hdr[6] = RT_SCOPE_HOST;
    hdr[7] = RTN_LOCAL;
    let mut msg = Message::new(kind, flags);
    msg.header(&hdr)
        .attr(RTA_DST, &addr.octets())
        .attr_u32(RTA_OIF, index);
    msg
}

/// Names of all links, from a dump (repeated if the kernel reports that
/// links changed while it was dumping).
pub fn names(sock: &mut Socket) -> Result<Vec<String>, NetlinkError> {
    dump(
        sock,
        || {
            let mut msg = Message::new(RTM_GETLINK, DUMP);
            msg.header(&ifinfomsg(0, 0, 0))
                .attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
            msg
        },
        |kind, p| {
            if kind != RTM_NEWLINK || p.len() < 16 {
                return None;
            }
            let (_, value) = attributes(&p[16..]).find(|(kind, _)| *kind == IFLA_IFNAME)?;
            let text = value.split(|&b| b == 0).next().unwrap_or_default();
            Some(String::from_utf8_lossy(text).into_owned())
        },
    )
}

/// Runs a dump until the kernel reports it consistent (a change during the
/// dump makes it restart), keeping what `parse` makes of each reply.
pub(super) fn dump<T>(
    sock: &mut Socket,
    request: impl Fn() -> Message,
    mut parse: impl FnMut(u16, &[u8]) -> Option<T>,
) -> Result<Vec<T>, NetlinkError> {
    loop {
        let mut found = Vec::new();
        let consistent = sock.dump(request(), |reply| {
            found.extend(parse(reply.kind, reply.payload));
        })?;
        if consistent {
            return Ok(found);
        }
    }
}

/// A dump request of every route in every table.
fn route_dump_request() -> Message {
    let mut msg = Message::new(RTM_GETROUTE, DUMP);
    msg.header(&[libc::AF_UNSPEC as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    msg
}

/// Destinations of the unicast and local routes in every table, default
/// routes left out (they overlap everything).
pub fn route_destinations(sock: &mut Socket) -> Result<Vec<IpNet>, NetlinkError> {
    dump(sock, route_dump_request, route_destination)
}

/// The destination of one RTM_NEWROUTE dump entry, if it is worth reporting.
fn route_destination(kind: u16, p: &[u8]) -> Option<IpNet> {
    if kind != RTM_NEWROUTE || p.len() < 12 || p[1] == 0 || !matches!(p[7], RTN_UNICAST | RTN_LOCAL)
    {
        return None;
    }
    let (_, dst) = attributes(&p[12..]).find(|(kind, _)| *kind == RTA_DST)?;
    let addr = match (i32::from(p[0]), dst.len()) {
        (libc::AF_INET, 4) => IpAddr::from(<[u8; 4]>::try_from(dst).ok()?),
        (libc::AF_INET6, 16) => IpAddr::from(<[u8; 16]>::try_from(dst).ok()?),
        _ => return None,
    };
    IpNet::new(addr, p[1]).ok()
}

/// A link as the kernel describes it.
#[derive(Debug, Clone)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// Hardware address (empty for links without one).
    pub mac: Vec<u8>,
    pub mtu: u32,
    /// Index of the link this one is enslaved to.
    pub master: Option<u32>,
    /// `IFF_UP`.
    pub up: bool,
}

/// Which link to ask about.
pub enum LinkRef<'a> {
    Name(&'a str),
    Index(u32),
}

/// Link `which`, or None if there is none.
pub fn info(sock: &mut Socket, which: LinkRef<'_>) -> Result<Option<LinkInfo>, NetlinkError> {
    let index = match which {
        LinkRef::Index(i) => i,
        LinkRef::Name(_) => 0,
    };
    let mut msg = Message::new(RTM_GETLINK, ACK);
    msg.header(&ifinfomsg(index, 0, 0))
        .attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    if let LinkRef::Name(name) = which {
        msg.attr_str(IFLA_IFNAME, name);
    }
    let mut found = None;
    let result = sock.request(msg, |reply| {
        if reply.kind == RTM_NEWLINK {
            found = parse_link(reply.payload);
        }
    });
    match result {
        Ok(()) => Ok(found),
        Err(e) if e.errno == libc::ENODEV => Ok(None),
        Err(e) => Err(e),
    }
}

fn parse_link(p: &[u8]) -> Option<LinkInfo> {
    let mut link = LinkInfo {
        index: u32::from_ne_bytes(p.get(4..8)?.try_into().ok()?),
        name: String::new(),
        mac: Vec::new(),
        mtu: 0,
        master: None,
        up: u32::from_ne_bytes(p.get(8..12)?.try_into().ok()?) & IFF_UP != 0,
    };
    for (kind, value) in attributes(p.get(16..)?) {
        match kind {
            IFLA_IFNAME => {
                let text = value.split(|&b| b == 0).next().unwrap_or_default();
                link.name = String::from_utf8_lossy(text).into_owned();
            }
            IFLA_ADDRESS => link.mac = value.to_vec(),
            IFLA_MTU => link.mtu = u32_of(value)?,
            IFLA_MASTER => link.master = Some(u32_of(value)?).filter(|&m| m != 0),
            _ => {}
        }
    }
    Some(link)
}

/// An address as the kernel describes it.
#[derive(Debug, Clone)]
pub struct AddressInfo {
    pub index: u32,
    /// The local address with its prefix length.
    pub net: IpNet,
    /// `IFA_F_*`.
    pub flags: u32,
    /// The IPv4 broadcast address, if the address has one.
    pub broadcast: Option<Ipv4Addr>,
}

impl AddressInfo {
    /// Duplicate address detection found the address in use elsewhere.
    pub fn dad_failed(&self) -> bool {
        self.flags & IFA_F_DADFAILED != 0
    }
}

/// Every IPv4 and IPv6 address of every link, in the kernel's order.
pub fn addresses(sock: &mut Socket) -> Result<Vec<AddressInfo>, NetlinkError> {
    dump(
        sock,
        || {
            let mut msg = Message::new(RTM_GETADDR, DUMP);
            msg.header(&[libc::AF_UNSPEC as u8, 0, 0, 0, 0, 0, 0, 0]);
            msg
        },
        |kind, p| (kind == RTM_NEWADDR).then(|| parse_address(p)).flatten(),
    )
}

fn parse_address(p: &[u8]) -> Option<AddressInfo> {
    let hdr = p.get(..8)?;
    let (mut local, mut address, mut flags) = (None, None, u32::from(hdr[2]));
    let mut broadcast = None;
    for (kind, value) in attributes(&p[8..]) {
        match kind {
            IFA_LOCAL => local = ip_of(hdr[0], value),
            IFA_ADDRESS => address = ip_of(hdr[0], value),
            IFA_FLAGS => flags = u32_of(value)?,
            IFA_BROADCAST => {
                broadcast = match ip_of(hdr[0], value) {
                    Some(IpAddr::V4(b)) => Some(b),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    // IFA_LOCAL is the link's own address when both are present (IPv4
    // always; IPv6 only for point-to-point addresses).
    let ip = local.or(address)?;
    Some(AddressInfo {
        index: u32::from_ne_bytes(hdr[4..8].try_into().ok()?),
        net: IpNet::new(ip, hdr[1]).ok()?,
        flags,
        broadcast,
    })
}

/// A route as the kernel describes it.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    pub destination: IpNet,
    pub table: u32,
    pub proto: u8,
    pub scope: u8,
    /// `RTN_*`.
    pub kind: u8,
    /// Output link; for a multipath route, that of its first next hop.
    pub oif: Option<u32>,
    pub multipath: bool,
    pub gateway: Option<IpAddr>,
    pub metric: u32,
    pub src: Option<IpAddr>,
    /// `RTM_F_*`.
    pub flags: u32,
}

impl RouteInfo {
    pub fn in_main_table(&self) -> bool {
        self.table == u32::from(RT_TABLE_MAIN)
    }

    pub fn is_unicast(&self) -> bool {
        self.kind == RTN_UNICAST && self.flags & RTM_F_CLONED == 0
    }

    /// Made by the kernel for an address (connected and prefix routes).
    pub fn by_kernel(&self) -> bool {
        self.proto == RTPROT_KERNEL
    }
}

/// Every route in every table, in the kernel's order.
pub fn routes(sock: &mut Socket) -> Result<Vec<RouteInfo>, NetlinkError> {
    dump(sock, route_dump_request, |kind, p| {
        (kind == RTM_NEWROUTE).then(|| parse_route(p)).flatten()
    })
}

fn parse_route(p: &[u8]) -> Option<RouteInfo> {
    let hdr = p.get(..12)?;
    let family = hdr[0];
    let unspecified = match i32::from(family) {
        libc::AF_INET => IpAddr::from([0u8; 4]),
        libc::AF_INET6 => IpAddr::from([0u8; 16]),
        _ => return None,
    };
    let mut route = RouteInfo {
        destination: IpNet::new(unspecified, hdr[1]).ok()?,
        table: u32::from(hdr[4]),
        proto: hdr[5],
        scope: hdr[6],
        kind: hdr[7],
        oif: None,
        multipath: false,
        gateway: None,
        metric: 0,
        src: None,
        flags: u32::from_ne_bytes(hdr[8..12].try_into().ok()?),
    };
    for (kind, value) in attributes(&p[12..]) {
        match kind {
            RTA_DST => route.destination = IpNet::new(ip_of(family, value)?, hdr[1]).ok()?,
            RTA_OIF => route.oif = Some(u32_of(value)?),
            RTA_GATEWAY => route.gateway = ip_of(family, value),
            RTA_PRIORITY => route.metric = u32_of(value)?,
            RTA_PREFSRC => route.src = ip_of(family, value),
            RTA_TABLE => route.table = u32_of(value)?,
            RTA_MULTIPATH => {
                // struct rtnexthop: len u16, flags u8, hops u8, ifindex i32.
                route.multipath = true;
                route.oif = value.get(4..8).and_then(u32_of);
            }
            _ => {}
        }
    }
    Some(route)
}

/// Enslaves link `index` to `master`, or releases it when `master` is 0.
pub fn set_master(sock: &mut Socket, index: u32, master: u32) -> Result<(), NetlinkError> {
    let mut msg = Message::new(RTM_NEWLINK, ACK);
    msg.header(&ifinfomsg(index, 0, 0))
        .attr_u32(IFLA_MASTER, master);
    sock.request(msg, |_| {})
}

/// `IFLA_BR_NF_CALL_IPTABLES` (linux/if_link.h).
const IFLA_BR_NF_CALL_IPTABLES: u16 = 36;

/// Turns bridge `index`'s own `nf_call_iptables` on or off (IPv4 frames it
/// forwards pass the IP hooks through `br_netfilter`).
pub fn set_bridge_nf_call_iptables(
    sock: &mut Socket,
    index: u32,
    on: bool,
) -> Result<(), NetlinkError> {
    let mut msg = Message::new(RTM_NEWLINK, ACK);
    msg.header(&ifinfomsg(index, 0, 0))
        .begin_nest(IFLA_LINKINFO)
        .attr_str(IFLA_INFO_KIND, "bridge")
        .begin_nest(IFLA_INFO_DATA)
        .attr(IFLA_BR_NF_CALL_IPTABLES, &[u8::from(on)])
        .end_nest()
        .end_nest();
    sock.request(msg, |_| {})
}

/// Sets link `index`'s MTU.
pub fn set_mtu(sock: &mut Socket, index: u32, mtu: u32) -> Result<(), NetlinkError> {
    let mut msg = Message::new(RTM_NEWLINK, ACK);
    msg.header(&ifinfomsg(index, 0, 0)).attr_u32(IFLA_MTU, mtu);
    sock.request(msg, |_| {})
}

/// Adds (`add`) or deletes a host's route via link `index`. Adding an
/// existing route fails with EEXIST, deleting a missing one with ESRCH. A
/// delete matches the route whatever its protocol and scope.
pub fn change_adapter_route(
    sock: &mut Socket,
    add: bool,
    index: u32,
    route: &AdapterRoute,
) -> Result<(), NetlinkError> {
    let dst = route.destination;
    let mut hdr = [0u8; 12];
    hdr[0] = family(dst.addr());
    hdr[1] = dst.prefix_len();
    hdr[4] = u8::try_from(route.table).unwrap_or(RT_TABLE_UNSPEC);
    hdr[5] = if add { route.proto } else { 0 };
    hdr[6] = if add { route.scope } else { RT_SCOPE_NOWHERE };
    hdr[7] = RTN_UNICAST;
    let mut msg = if add {
        Message::new(RTM_NEWROUTE, CREATE)
    } else {
        Message::new(RTM_DELROUTE, ACK)
    };
    msg.header(&hdr);
    if route.table > 255 {
        msg.attr_u32(RTA_TABLE, route.table);
    }
    if dst.prefix_len() > 0 {
        msg.attr(RTA_DST, &octets(dst.network()));
    }
    if let Some(via) = route.via {
        msg.attr(RTA_GATEWAY, &octets(via));
    }
    msg.attr_u32(RTA_OIF, index);
    if route.metric != 0 {
        msg.attr_u32(RTA_PRIORITY, route.metric);
    }
    if let Some(src) = route.src {
        msg.attr(RTA_PREFSRC, &octets(src));
    }
    sock.request(msg, |_| {})
}

fn u32_of(value: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(value.get(..4)?.try_into().ok()?))
}

fn ip_of(family: u8, value: &[u8]) -> Option<IpAddr> {
    match (i32::from(family), value.len()) {
        (libc::AF_INET, 4) => Some(IpAddr::from(<[u8; 4]>::try_from(value).ok()?)),
        (libc::AF_INET6, 16) => Some(IpAddr::from(<[u8; 16]>::try_from(value).ok()?)),
        _ => None,
    }
}

const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// `NUD_INCOMPLETE | NUD_FAILED | NUD_NOARP`: no usable link-layer address.
const NUD_UNUSABLE: u16 = 0x01 | 0x20 | 0x40;

/// The link-layer address the kernel has for IPv4 neighbour `addr` on link
/// `index`, if it has a usable one.
pub fn neighbour(
    sock: &mut Socket,
    index: u32,
    addr: Ipv4Addr,
) -> Result<Option<[u8; 6]>, NetlinkError> {
    let found = dump(
        sock,
        || {
            let mut msg = Message::new(RTM_GETNEIGH, DUMP);
            // struct ndmsg: family, pad×3, ifindex, state, flags, type
            msg.header(&[libc::AF_INET as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            msg
        },
        |kind, p| {
            if kind != RTM_NEWNEIGH || p.len() < 12 {
                return None;
            }
            let ifindex = u32::from_ne_bytes(p[4..8].try_into().ok()?);
            let state = u16::from_ne_bytes(p[8..10].try_into().ok()?);
            if ifindex != index || state & NUD_UNUSABLE != 0 {
                return None;
            }
            let mut dst = None;
            let mut mac = None;
            for (k, v) in attributes(&p[12..]) {
                match k {
                    NDA_DST => dst = <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from),
                    NDA_LLADDR => mac = <[u8; 6]>::try_from(v).ok(),
                    _ => {}
                }
            }
            (dst == Some(addr)).then_some(mac).flatten()
        },
    )?;
    Ok(found.into_iter().next())
}
