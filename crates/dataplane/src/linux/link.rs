//! rtnetlink requests: links, addresses and routes.
//!
//! Each function is one request/ack exchange on a `NETLINK_ROUTE` socket, so
//! it acts on the namespace that socket was opened in. Creation requests set
//! `IFF_UP` in the same message (the kernel applies `ifi_flags` right after
//! registering the device), which saves a round trip per link.

use std::net::IpAddr;
use std::os::fd::RawFd;

use ipnet::IpNet;

use super::netlink::{attributes, Message, NetlinkError, Socket};
use crate::RouteSpec;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
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
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_F_NODAD: u8 = 0x02;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_STATIC: u8 = 4;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;
const RTN_LOCAL: u8 = 2;

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
    let ip = addr.addr();
    let mut hdr = [0u8; 8];
    hdr[0] = family(ip);
    hdr[1] = addr.prefix_len();
    hdr[2] = if ip.is_ipv6() { IFA_F_NODAD } else { 0 };
    hdr[3] = RT_SCOPE_UNIVERSE;
    hdr[4..8].copy_from_slice(&index.to_ne_bytes());
    let mut msg = Message::new(RTM_NEWADDR, CREATE);
    msg.header(&hdr);
    // For IPv4, IFA_LOCAL is the address and IFA_ADDRESS the peer (equal on
    // broadcast links). For IPv6 a differing IFA_LOCAL would turn
    // IFA_ADDRESS into a peer address, so send IFA_ADDRESS alone.
    if ip.is_ipv4() {
        msg.attr(IFA_LOCAL, &octets(ip));
    }
    msg.attr(IFA_ADDRESS, &octets(ip));
    sock.request(msg, |_| {})
}

/// Adds `route` to the main table via link `index`.
pub fn add_route(sock: &mut Socket, index: u32, route: &RouteSpec) -> Result<(), NetlinkError> {
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
    let mut msg = Message::new(RTM_NEWROUTE, CREATE);
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
    sock.request(msg, |_| {})
}

/// Names of all links, from a dump (repeated if the kernel reports that
/// links changed while it was dumping).
pub fn names(sock: &mut Socket) -> Result<Vec<String>, NetlinkError> {
    loop {
        let mut msg = Message::new(RTM_GETLINK, DUMP);
        msg.header(&ifinfomsg(0, 0, 0))
            .attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
        let mut names = Vec::new();
        let consistent = sock.dump(msg, |reply| {
            if reply.kind != RTM_NEWLINK || reply.payload.len() < 16 {
                return;
            }
            let name = attributes(&reply.payload[16..]).find(|(kind, _)| *kind == IFLA_IFNAME);
            if let Some((_, value)) = name {
                let text = value.split(|&b| b == 0).next().unwrap_or_default();
                names.push(String::from_utf8_lossy(text).into_owned());
            }
        })?;
        if consistent {
            return Ok(names);
        }
    }
}

/// Destinations of the unicast and local routes in every table, default
/// routes left out (they overlap everything).
pub fn route_destinations(sock: &mut Socket) -> Result<Vec<IpNet>, NetlinkError> {
    loop {
        let mut msg = Message::new(RTM_GETROUTE, DUMP);
        msg.header(&[libc::AF_UNSPEC as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut found = Vec::new();
        let consistent = sock.dump(msg, |reply| {
            if let Some(net) = route_destination(reply.kind, reply.payload) {
                found.push(net);
            }
        })?;
        if consistent {
            return Ok(found);
        }
    }
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
