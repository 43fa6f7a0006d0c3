//! Conntrack over ctnetlink: list IPv4 and IPv6 entries, delete chosen ones.
//!
//! The list is a dump of the namespace's whole table, filtered here (the
//! kernel's dump filters cannot select by address on every kernel); a
//! delete names an entry by its original tuple exactly as the dump gave it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::netlink::{attributes, Message, NetlinkError, Reply, Socket};
use crate::{Flow, FlowTuple};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const NLA_F_NESTED: u16 = 1 << 15;
/// A dump the kernel interrupted is asked again, this many times at most.
const DUMP_ATTEMPTS: usize = 5;

/// The header of a message about entries of `family` (`AF_INET`, `AF_INET6`).
fn nfgenmsg(family: i32) -> [u8; 4] {
    [family as u8, 0, 0, 0]
}

fn family_of(addr: IpAddr) -> i32 {
    match addr {
        IpAddr::V4(_) => libc::AF_INET,
        IpAddr::V6(_) => libc::AF_INET6,
    }
}

/// Every entry of the socket's namespace that involves one of `addrs`: one
/// dump per family `addrs` has.
pub fn flows_of(sock: &mut Socket, addrs: &[IpAddr]) -> Result<Vec<Flow>, NetlinkError> {
    let mut out = Vec::new();
    for family in [libc::AF_INET, libc::AF_INET6] {
        if addrs.iter().any(|a| family_of(*a) == family) {
            out.extend(flows_of_family(sock, family, addrs)?);
        }
    }
    Ok(out)
}

fn flows_of_family(
    sock: &mut Socket,
    family: i32,
    addrs: &[IpAddr],
) -> Result<Vec<Flow>, NetlinkError> {
    for _ in 0..DUMP_ATTEMPTS {
        let mut out = Vec::new();
        let mut msg = Message::new(
            (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET,
            libc::NLM_F_DUMP as u16,
        );
        msg.header(&nfgenmsg(family));
        let complete = sock.dump(msg, |reply| {
            if let Some(f) = parse(reply).filter(|f| f.involves(addrs)) {
                out.push(f);
            }
        })?;
        if complete {
            return Ok(out);
        }
    }
    Err(NetlinkError::local(std::io::Error::other(
        "the conntrack dump kept being interrupted",
    )))
}

/// Deletes `flows`; an entry that is gone already is skipped.
pub fn delete(sock: &mut Socket, flows: &[Flow]) -> Result<(), NetlinkError> {
    for f in flows {
        let mut msg = Message::new(
            (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE,
            libc::NLM_F_ACK as u16,
        );
        msg.header(&nfgenmsg(family_of(f.original.src)))
            .attr(CTA_TUPLE_ORIG | NLA_F_NESTED, &f.key);
        if f.zone != 0 {
            msg.attr(CTA_ZONE, &f.zone.to_be_bytes());
        }
        match sock.request(msg, |_| {}) {
            Err(e) if e.errno == libc::ENOENT => {}
            other => other?,
        }
    }
    Ok(())
}

/// One dumped entry, if it is complete.
fn parse(reply: &Reply<'_>) -> Option<Flow> {
    let attrs = reply.payload.get(4..)?;
    let (mut original, mut reply_tuple, mut key, mut zone) = (None, None, None, 0);
    for (kind, value) in attributes(attrs) {
        match kind {
            CTA_TUPLE_ORIG => {
                original = tuple(value);
                key = Some(value.to_vec());
            }
            CTA_TUPLE_REPLY => reply_tuple = tuple(value),
            CTA_ZONE if value.len() >= 2 => zone = u16::from_be_bytes([value[0], value[1]]),
            _ => {}
        }
    }
    let (proto, original) = original?;
    let (_, reply_tuple) = reply_tuple?;
    Some(Flow {
        proto,
        original,
        reply: reply_tuple,
        zone,
        key: key?,
    })
}

fn tuple(data: &[u8]) -> Option<(u8, FlowTuple)> {
    let (mut src, mut dst, mut proto) = (None, None, None);
    let (mut sport, mut dport) = (None, None);
    for (kind, value) in attributes(data) {
        match kind {
            CTA_TUPLE_IP => {
                for (k, v) in attributes(value) {
                    let v4 = || {
                        <[u8; 4]>::try_from(v)
                            .ok()
                            .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
                    };
                    let v6 = || {
                        <[u8; 16]>::try_from(v)
                            .ok()
                            .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
                    };
                    match k {
                        CTA_IP_V4_SRC => src = v4(),
                        CTA_IP_V4_DST => dst = v4(),
                        CTA_IP_V6_SRC => src = v6(),
                        CTA_IP_V6_DST => dst = v6(),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (k, v) in attributes(value) {
                    let port = <[u8; 2]>::try_from(v).ok().map(u16::from_be_bytes);
                    match k {
                        CTA_PROTO_NUM => proto = v.first().copied(),
                        CTA_PROTO_SRC_PORT => sport = port,
                        CTA_PROTO_DST_PORT => dport = port,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some((
        proto?,
        FlowTuple {
            src: src?,
            dst: dst?,
            sport,
            dport,
        },
    ))
}
