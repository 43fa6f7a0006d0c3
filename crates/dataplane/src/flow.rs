//! Tracked connections (conntrack entries), as the daemon needs them to
//! cut the ones a narrowed policy no longer allows.

use std::net::IpAddr;

/// One direction of a tracked connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowTuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Ports of TCP, UDP, SCTP, DCCP and UDP-Lite; None for other protocols.
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

/// A conntrack entry (IPv4 or IPv6): its original direction (as its first packet
/// arrived, before NAT) and its reply direction (after NAT, reversed).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    pub proto: u8,
    pub original: FlowTuple,
    pub reply: FlowTuple,
    pub zone: u16,
    /// The original tuple as the kernel reported it (ICMP id, type and
    /// code included), so a delete names exactly this entry.
    pub key: Vec<u8>,
}

impl Flow {
    /// Whether one of `addrs` is one of the connection's ends, before or
    /// after NAT.
    pub fn involves(&self, addrs: &[IpAddr]) -> bool {
        [self.original, self.reply]
            .iter()
            .any(|t| addrs.contains(&t.src) || addrs.contains(&t.dst))
    }
}
