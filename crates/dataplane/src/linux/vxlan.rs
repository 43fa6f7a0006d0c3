//! rtnetlink requests of the overlay: VXLAN links, their static forwarding
//! (FDB) entries, permanent neighbour entries and on-link routes.
//!
//! Like [`super::link`], each function is one request/ack exchange on a
//! `NETLINK_ROUTE` socket, acting on that socket's namespace.

use std::net::Ipv4Addr;

use ipnet::IpNet;

use super::netlink::{attributes, Message, NetlinkError, Socket};

const RTM_NEWLINK: u16 = 16;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_NEWNEIGH: u16 = 28;
const RTM_DELNEIGH: u16 = 29;
const RTM_GETNEIGH: u16 = 30;
const DUMP: u16 = libc::NLM_F_DUMP as u16;

const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_VXLAN_ID: u16 = 1;
const IFLA_VXLAN_LOCAL: u16 = 4;
const IFLA_VXLAN_LEARNING: u16 = 7;
const IFLA_VXLAN_PROXY: u16 = 11;
const IFLA_VXLAN_PORT: u16 = 15;

const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NUD_PERMANENT: u16 = 0x80;
/// The entry belongs to the device itself (the VXLAN FDB), not to the
/// bridge above it.
const NTF_SELF: u8 = 0x02;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_STATIC: u8 = 4;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const RTNH_F_ONLINK: u32 = 4;

const IFF_UP: u32 = libc::IFF_UP as u32;
const CREATE: u16 = (libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
const REPLACE: u16 = (libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_REPLACE) as u16;
const ACK: u16 = libc::NLM_F_ACK as u16;

/// What [`create`] makes.
pub struct Vxlan<'a> {
    pub name: &'a str,
    pub vni: u32,
    pub local: Ipv4Addr,
    pub port: u16,
    pub mtu: u32,
    /// Index of the bridge it joins (in the namespace it is born in).
    pub master: u32,
    /// The namespace it is born in (None: the socket's). The socket's
    /// namespace keeps its UDP socket and underlay routing either way.
    pub netns: Option<std::os::fd::RawFd>,
}

/// Creates a VXLAN link, up, enslaved to its bridge, learning off and ARP
/// proxy on, in one request.
pub fn create(sock: &mut Socket, v: &Vxlan<'_>) -> Result<(), NetlinkError> {
    let mut msg = Message::new(RTM_NEWLINK, CREATE);
    let mut ifi = [0u8; 16];
    ifi[8..12].copy_from_slice(&IFF_UP.to_ne_bytes());
    ifi[12..16].copy_from_slice(&IFF_UP.to_ne_bytes());
    msg.header(&ifi)
        .attr_str(IFLA_IFNAME, v.name)
        .attr_u32(IFLA_MTU, v.mtu)
        .attr_u32(IFLA_MASTER, v.master);
    if let Some(fd) = v.netns {
        msg.attr_u32(IFLA_NET_NS_FD, fd as u32);
    }
    msg.begin_nest(IFLA_LINKINFO)
        .attr_str(IFLA_INFO_KIND, "vxlan")
        .begin_nest(IFLA_INFO_DATA)
        .attr_u32(IFLA_VXLAN_ID, v.vni)
        .attr(IFLA_VXLAN_LOCAL, &v.local.octets())
        .attr(IFLA_VXLAN_PORT, &v.port.to_be_bytes())
        .attr(IFLA_VXLAN_LEARNING, &[0])
        .attr(IFLA_VXLAN_PROXY, &[1])
        .end_nest()
        .end_nest();
    sock.request(msg, |_| {})
}

/// `struct ndmsg`: family, pad×3, ifindex, state, flags, type.
fn ndmsg(family: u8, index: u32, flags: u8) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0] = family;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h[8..10].copy_from_slice(&NUD_PERMANENT.to_ne_bytes());
    h[10] = flags;
    h
}

/// Adds (or replaces) the FDB entry `mac` → `remote` on VXLAN link `index`.
pub fn add_fdb(
    sock: &mut Socket,
    index: u32,
    mac: [u8; 6],
    remote: Ipv4Addr,
) -> Result<(), NetlinkError> {
    sock.request(
        fdb_message(RTM_NEWNEIGH, REPLACE, index, mac, remote),
        |_| {},
    )
}

/// Deletes an FDB entry; a missing one is not an error.
pub fn delete_fdb(
    sock: &mut Socket,
    index: u32,
    mac: [u8; 6],
    remote: Ipv4Addr,
) -> Result<(), NetlinkError> {
    missing_is_fine(sock.request(fdb_message(RTM_DELNEIGH, ACK, index, mac, remote), |_| {}))
}

fn fdb_message(kind: u16, flags: u16, index: u32, mac: [u8; 6], remote: Ipv4Addr) -> Message {
    let mut msg = Message::new(kind, flags);
    msg.header(&ndmsg(libc::AF_BRIDGE as u8, index, NTF_SELF))
        .attr(NDA_LLADDR, &mac)
        .attr(NDA_DST, &remote.octets());
    msg
}

/// Adds (or replaces) the permanent neighbour `ip` → `mac` on link `index`.
pub fn add_neighbour(
    sock: &mut Socket,
    index: u32,
    ip: Ipv4Addr,
    mac: [u8; 6],
) -> Result<(), NetlinkError> {
    let mut msg = Message::new(RTM_NEWNEIGH, REPLACE);
    msg.header(&ndmsg(libc::AF_INET as u8, index, 0))
        .attr(NDA_DST, &ip.octets())
        .attr(NDA_LLADDR, &mac);
    sock.request(msg, |_| {})
}

/// Deletes the neighbour `ip` on link `index`; a missing one is not an error.
pub fn delete_neighbour(sock: &mut Socket, index: u32, ip: Ipv4Addr) -> Result<(), NetlinkError> {
    let mut msg = Message::new(RTM_DELNEIGH, ACK);
    msg.header(&ndmsg(libc::AF_INET as u8, index, 0))
        .attr(NDA_DST, &ip.octets());
    missing_is_fine(sock.request(msg, |_| {}))
}

/// Adds (or replaces) `destination` via `via` out of link `index`, onlink.
pub fn add_onlink_route(
    sock: &mut Socket,
    index: u32,
    destination: IpNet,
    via: Ipv4Addr,
) -> Result<(), NetlinkError> {
    sock.request(
        route_message(RTM_NEWROUTE, REPLACE, index, destination, via),
        |_| {},
    )
}

/// Deletes what [`add_onlink_route`] made; a missing route is not an error.
pub fn delete_onlink_route(
    sock: &mut Socket,
    index: u32,
    destination: IpNet,
    via: Ipv4Addr,
) -> Result<(), NetlinkError> {
    match sock.request(
        route_message(RTM_DELROUTE, ACK, index, destination, via),
        |_| {},
    ) {
        Err(e) if e.errno == libc::ESRCH => Ok(()),
        other => other,
    }
}

fn route_message(kind: u16, flags: u16, index: u32, dst: IpNet, via: Ipv4Addr) -> Message {
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope,
    // type, flags (u32).
    let mut hdr = [0u8; 12];
    hdr[0] = libc::AF_INET as u8;
    hdr[1] = dst.prefix_len();
    hdr[4] = RT_TABLE_MAIN;
    hdr[5] = RTPROT_STATIC;
    hdr[6] = RT_SCOPE_UNIVERSE;
    hdr[7] = RTN_UNICAST;
    hdr[8..12].copy_from_slice(&RTNH_F_ONLINK.to_ne_bytes());
    let mut msg = Message::new(kind, flags);
    msg.header(&hdr);
    if let IpNet::V4(d) = dst {
        if d.prefix_len() > 0 {
            msg.attr(RTA_DST, &d.network().octets());
        }
    }
    msg.attr(RTA_GATEWAY, &via.octets())
        .attr_u32(RTA_OIF, index);
    msg
}

fn missing_is_fine(r: Result<(), NetlinkError>) -> Result<(), NetlinkError> {
    match r {
        Err(e) if e.errno == libc::ENOENT || e.errno == libc::ENODEV => Ok(()),
        other => other,
    }
}

/// What one entry of a neighbour dump (`AF_BRIDGE`: the FDB, `AF_INET`:
/// ARP) says, for the entries of link `index`: its state, flags, and its
/// `NDA_DST` and `NDA_LLADDR`.
fn dumped_entry(kind: u16, p: &[u8], index: u32) -> Option<(u16, u8, Vec<u8>, Vec<u8>)> {
    if kind != RTM_NEWNEIGH || p.len() < 12 {
        return None;
    }
    if u32::from_ne_bytes(p[4..8].try_into().ok()?) != index {
        return None;
    }
    let state = u16::from_ne_bytes(p[8..10].try_into().ok()?);
    let (mut dst, mut mac) = (Vec::new(), Vec::new());
    for (k, v) in attributes(&p[12..]) {
        match k {
            NDA_DST => dst = v.to_vec(),
            NDA_LLADDR => mac = v.to_vec(),
            _ => {}
        }
    }
    Some((state, p[10], dst, mac))
}

fn neighbour_dump(family: u8) -> Message {
    let mut msg = Message::new(RTM_GETNEIGH, DUMP);
    msg.header(&[family, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    msg
}

/// The static FDB entries `mac` → remote of VXLAN link `index` (the
/// device's own entries, NTF_SELF, with an IPv4 destination).
pub fn fdb_remotes(
    sock: &mut Socket,
    index: u32,
) -> Result<Vec<([u8; 6], Ipv4Addr)>, NetlinkError> {
    super::link::dump(
        sock,
        || neighbour_dump(libc::AF_BRIDGE as u8),
        |kind, p| {
            let (_, flags, dst, mac) = dumped_entry(kind, p, index)?;
            if flags & NTF_SELF == 0 {
                return None;
            }
            let dst = <[u8; 4]>::try_from(dst.as_slice()).ok()?;
            Some((
                <[u8; 6]>::try_from(mac.as_slice()).ok()?,
                Ipv4Addr::from(dst),
            ))
        },
    )
}

/// The permanent IPv4 neighbours `ip` → `mac` of link `index`.
pub fn permanent_neighbours(
    sock: &mut Socket,
    index: u32,
) -> Result<Vec<(Ipv4Addr, [u8; 6])>, NetlinkError> {
    super::link::dump(
        sock,
        || neighbour_dump(libc::AF_INET as u8),
        |kind, p| {
            let (state, _, dst, mac) = dumped_entry(kind, p, index)?;
            if state & NUD_PERMANENT == 0 {
                return None;
            }
            let dst = <[u8; 4]>::try_from(dst.as_slice()).ok()?;
            Some((
                Ipv4Addr::from(dst),
                <[u8; 6]>::try_from(mac.as_slice()).ok()?,
            ))
        },
    )
}
