//! Reading counters: a `GETSETELEM` dump of one set's elements with their
//! counters, and a link's `IFLA_STATS64`. Both are reads; they take the
//! dataplane's sockets for the length of one dump and change nothing.

use super::netlink::{attributes, Message, NetlinkError, Socket};
use super::nf_tables_abi::*;
use crate::{ElementCounter, LinkStats, SetRef};

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const IFLA_IFNAME: u16 = 3;
const IFLA_STATS64: u16 = 23;

/// The elements of `set` with their counters, read in one dump (again if
/// the set changed during it, as the kernel then flags the dump).
pub fn set_counters(sock: &mut Socket, set: SetRef) -> Result<Vec<ElementCounter>, NetlinkError> {
    loop {
        let mut found = Vec::new();
        let mut msg = Message::new(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM,
            libc::NLM_F_DUMP as u16,
        );
        msg.header(&[set.family.nfproto(), 0, 0, 0])
            .attr_str(NFTA_SET_ELEM_LIST_TABLE, set.table)
            .attr_str(NFTA_SET_ELEM_LIST_SET, set.set);
        let consistent = sock.dump(msg, |reply| {
            if reply.kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM {
                found.extend(parse_elements(reply.payload));
            }
        })?;
        if consistent {
            return Ok(found);
        }
    }
}

/// The elements of one `NEWSETELEM` dump part (after its nfgenmsg).
pub(crate) fn parse_elements(payload: &[u8]) -> Vec<ElementCounter> {
    let Some(attrs) = payload.get(4..) else {
        return Vec::new();
    };
    attributes(attrs)
        .filter(|(kind, _)| *kind == NFTA_SET_ELEM_LIST_ELEMENTS)
        .flat_map(|(_, list)| attributes(list))
        .filter(|(kind, _)| *kind == NFTA_LIST_ELEM)
        .map(|(_, elem)| parse_element(elem))
        .collect()
}

fn parse_element(elem: &[u8]) -> ElementCounter {
    let mut out = ElementCounter::default();
    let value = |nest: &[u8]| {
        attributes(nest)
            .find(|(k, _)| *k == NFTA_DATA_VALUE)
            .map(|(_, v)| v.to_vec())
    };
    for (kind, v) in attributes(elem) {
        match kind {
            NFTA_SET_ELEM_KEY => out.key = value(v).unwrap_or_default(),
            NFTA_SET_ELEM_KEY_END => out.key_end = value(v),
            NFTA_SET_ELEM_EXPR => add_counter(&mut out, v),
            NFTA_SET_ELEM_EXPRESSIONS => {
                for (_, expr) in attributes(v).filter(|(k, _)| *k == NFTA_LIST_ELEM) {
                    add_counter(&mut out, expr);
                }
            }
            _ => {}
        }
    }
    out
}

/// Adds what a `counter` expression holds; other expressions are ignored.
fn add_counter(out: &mut ElementCounter, expr: &[u8]) {
    let is_counter = attributes(expr)
        .any(|(k, v)| k == NFTA_EXPR_NAME && v.split(|&b| b == 0).next() == Some(b"counter"));
    if !is_counter {
        return;
    }
    let be64 = |v: &[u8]| v.try_into().map(u64::from_be_bytes).unwrap_or(0);
    for (_, data) in attributes(expr).filter(|(k, _)| *k == NFTA_EXPR_DATA) {
        for (k, v) in attributes(data) {
            match k {
                NFTA_COUNTER_BYTES => out.bytes += be64(v),
                NFTA_COUNTER_PACKETS => out.packets += be64(v),
                _ => {}
            }
        }
    }
}

/// Link `name`'s statistics, or None if there is no such link.
pub fn link_stats(sock: &mut Socket, name: &str) -> Result<Option<LinkStats>, NetlinkError> {
    let mut msg = Message::new(RTM_GETLINK, libc::NLM_F_ACK as u16);
    msg.header(&[0u8; 16]).attr_str(IFLA_IFNAME, name);
    let mut found = None;
    let result = sock.request(msg, |reply| {
        if reply.kind == RTM_NEWLINK {
            found = reply.payload.get(16..).and_then(parse_stats64);
        }
    });
    match result {
        Ok(()) => Ok(found),
        Err(e) if e.errno == libc::ENODEV => Ok(None),
        Err(e) => Err(e),
    }
}

/// `struct rtnl_link_stats64`'s first eight fields (native-endian u64s).
pub(crate) fn parse_stats64(attrs: &[u8]) -> Option<LinkStats> {
    let (_, v) = attributes(attrs).find(|(k, _)| *k == IFLA_STATS64)?;
    let field = |i: usize| -> Option<u64> {
        Some(u64::from_ne_bytes(
            v.get(i * 8..i * 8 + 8)?.try_into().ok()?,
        ))
    };
    Some(LinkStats {
        rx_packets: field(0)?,
        tx_packets: field(1)?,
        rx_bytes: field(2)?,
        tx_bytes: field(3)?,
        rx_dropped: field(6)?,
        tx_dropped: field(7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `NEWSETELEM` payload as the kernel writes one: an interval element
    /// with a counter.
    fn dumped(key: &[u8], key_end: &[u8], packets: u64, bytes: u64) -> Vec<u8> {
        let mut msg = Message::new(0, 0);
        msg.header(&[1, 0, 0, 0])
            .attr_str(NFTA_SET_ELEM_LIST_TABLE, "hostnet")
            .begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS)
            .begin_nest(NFTA_LIST_ELEM)
            .begin_nest(NFTA_SET_ELEM_KEY)
            .attr(NFTA_DATA_VALUE, key)
            .end_nest()
            .begin_nest(NFTA_SET_ELEM_KEY_END)
            .attr(NFTA_DATA_VALUE, key_end)
            .end_nest()
            .begin_nest(NFTA_SET_ELEM_EXPR)
            .attr_str(NFTA_EXPR_NAME, "counter")
            .begin_nest(NFTA_EXPR_DATA)
            .attr(NFTA_COUNTER_BYTES, &bytes.to_be_bytes())
            .attr(NFTA_COUNTER_PACKETS, &packets.to_be_bytes())
            .end_nest()
            .end_nest()
            .end_nest()
            .end_nest();
        msg.finish(1)[16..].to_vec()
    }

    #[test]
    fn element_counters_are_read_with_their_keys() {
        let els = parse_elements(&dumped(&[10, 0, 0, 2], &[10, 0, 0, 9], 7, 700));
        assert_eq!(
            els,
            vec![ElementCounter {
                key: vec![10, 0, 0, 2],
                key_end: Some(vec![10, 0, 0, 9]),
                packets: 7,
                bytes: 700,
            }]
        );
    }

    #[test]
    fn link_stats_take_the_first_fields_of_stats64() {
        let mut v = Vec::new();
        for i in 1..=8u64 {
            v.extend_from_slice(&i.to_ne_bytes());
        }
        let mut msg = Message::new(0, 0);
        msg.attr(IFLA_STATS64, &v);
        let s = parse_stats64(&msg.finish(1)[16..]).unwrap();
        assert_eq!(
            (s.rx_packets, s.tx_packets, s.rx_bytes, s.tx_bytes),
            (1, 2, 3, 4)
        );
        assert_eq!((s.rx_dropped, s.tx_dropped), (7, 8));
    }
}
