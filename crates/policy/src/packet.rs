//! The packet the model reasons about: the fields rules can match and
//! rewrite, seen from one port.

use std::fmt;
use std::net::IpAddr;

/// Which way a packet crosses a port, seen from the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Towards the endpoint.
    In,
    /// From the endpoint.
    Out,
}

/// HCN's direction (of an ACL, a trace request) is the model's.
impl From<hostnet_model::domain::Direction> for Direction {
    fn from(d: hostnet_model::domain::Direction) -> Self {
        match d {
            hostnet_model::domain::Direction::In => Direction::In,
            hostnet_model::domain::Direction::Out => Direction::Out,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::In => "in",
            Direction::Out => "out",
        })
    }
}

/// An IP protocol number, with names for the common ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Proto(pub u8);

impl Proto {
    pub const ICMP: Proto = Proto(1);
    pub const IGMP: Proto = Proto(2);
    pub const TCP: Proto = Proto(6);
    pub const UDP: Proto = Proto(17);
    pub const ICMPV6: Proto = Proto(58);
    pub const SCTP: Proto = Proto(132);

    /// Whether the protocol carries ports.
    pub fn has_ports(self) -> bool {
        matches!(self, Proto::TCP | Proto::UDP | Proto::SCTP)
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Proto::ICMP => f.write_str("icmp"),
            Proto::IGMP => f.write_str("igmp"),
            Proto::TCP => f.write_str("tcp"),
            Proto::UDP => f.write_str("udp"),
            Proto::ICMPV6 => f.write_str("icmpv6"),
            Proto::SCTP => f.write_str("sctp"),
            Proto(n) => write!(f, "proto-{n}"),
        }
    }
}

/// The matchable header fields of one packet. Ports are present exactly
/// when the protocol carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Packet {
    pub proto: Proto,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
}

impl Packet {
    /// A TCP/UDP/SCTP packet, or another protocol's (ports dropped).
    pub fn new(proto: Proto, src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16) -> Self {
        let ports = proto.has_ports();
        Packet {
            proto,
            src,
            dst,
            src_port: ports.then_some(src_port),
            dst_port: ports.then_some(dst_port),
        }
    }

    /// The endpoint's side of the packet: its destination when inbound.
    pub fn local(&self, dir: Direction) -> (IpAddr, Option<u16>) {
        match dir {
            Direction::In => (self.dst, self.dst_port),
            Direction::Out => (self.src, self.src_port),
        }
    }

    /// The peer's side of the packet.
    pub fn remote(&self, dir: Direction) -> (IpAddr, Option<u16>) {
        match dir {
            Direction::In => (self.src, self.src_port),
            Direction::Out => (self.dst, self.dst_port),
        }
    }
}

impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |f: &mut fmt::Formatter<'_>, a: IpAddr, p: Option<u16>| match (a, p) {
            (IpAddr::V6(a), Some(p)) => write!(f, "[{a}]:{p}"),
            (a, Some(p)) => write!(f, "{a}:{p}"),
            (a, None) => write!(f, "{a}"),
        };
        write!(f, "{} ", self.proto)?;
        side(f, self.src, self.src_port)?;
        f.write_str(" -> ")?;
        side(f, self.dst, self.dst_port)
    }
}
