//! DHCPv4 messages (RFC 2131, 2132) on `dhcproto`: the requests a client
//! sends, and what it reads from the answers (pure).

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Encodable};

use crate::lease::{timers, Lease};

/// BOOTP messages are at least 300 bytes; some servers drop shorter ones.
const MIN_LEN: usize = 300;

/// The requests a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SELECTING: ask for offers.
    Discover,
    /// SELECTING: take `offered` from `server`.
    Select { server: Ipv4Addr, offered: Ipv4Addr },
    /// RENEWING and REBINDING: extend the lease on `ciaddr`.
    Extend { ciaddr: Ipv4Addr },
    /// Give `ciaddr` back to `server`.
    Release { server: Ipv4Addr, ciaddr: Ipv4Addr },
}

const PARAMETERS: [OptionCode; 7] = [
    OptionCode::SubnetMask,
    OptionCode::Router,
    OptionCode::DomainNameServer,
    OptionCode::DomainName,
    OptionCode::AddressLeaseTime,
    OptionCode::Renewal,
    OptionCode::Rebinding,
];

/// The encoded message for `req` from `mac`, transaction `xid`, `secs`
/// seconds into the exchange. Requests without a client address ask for a
/// broadcast answer: the address is not on any interface yet.
pub fn encode(req: Request, mac: [u8; 6], xid: u32, secs: u16) -> Vec<u8> {
    let unspec = Ipv4Addr::UNSPECIFIED;
    let ciaddr = match req {
        Request::Extend { ciaddr } | Request::Release { ciaddr, .. } => ciaddr,
        _ => unspec,
    };
    let mut m = Message::new_with_id(xid, ciaddr, unspec, unspec, unspec, &mac);
    m.set_opcode(Opcode::BootRequest).set_secs(secs);
    if ciaddr.is_unspecified() {
        m.set_flags(Flags::default().set_broadcast());
    }
    let (ty, opts) = match req {
        Request::Discover => (MessageType::Discover, vec![]),
        Request::Select { server, offered } => (
            MessageType::Request,
            vec![
                DhcpOption::RequestedIpAddress(offered),
                DhcpOption::ServerIdentifier(server),
            ],
        ),
        Request::Extend { .. } => (MessageType::Request, vec![]),
        Request::Release { server, .. } => (
            MessageType::Release,
            vec![DhcpOption::ServerIdentifier(server)],
        ),
    };
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(ty));
    let mut client_id = vec![1u8]; // hardware type Ethernet, then the MAC
    client_id.extend_from_slice(&mac);
    o.insert(DhcpOption::ClientIdentifier(client_id));
    for opt in opts {
        o.insert(opt);
    }
    if ty != MessageType::Release {
        o.insert(DhcpOption::MaxMessageSize(1500));
        o.insert(DhcpOption::ParameterRequestList(PARAMETERS.to_vec()));
    }
    let mut out = m.to_vec().expect("a message of known options encodes");
    if out.len() < MIN_LEN {
        out.resize(MIN_LEN, 0);
    }
    out
}

/// A server's answer, as far as a client cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Offer {
        yiaddr: Ipv4Addr,
        server: Ipv4Addr,
    },
    Ack(Box<Acked>),
    Nak {
        server: Option<Ipv4Addr>,
        message: Option<String>,
    },
}

/// What a DHCPACK says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub yiaddr: Ipv4Addr,
    pub server: Option<Ipv4Addr>,
    pub mask: Option<Ipv4Addr>,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub lease_secs: Option<u32>,
    pub t1: Option<u32>,
    pub t2: Option<u32>,
}

/// The answer in `payload` to transaction `xid` of `mac`, if it is one (a
/// BOOTREPLY with that xid and chaddr, of a type a client expects).
pub fn decode_reply(payload: &[u8], mac: [u8; 6], xid: u32) -> Option<Reply> {
    let m = Message::from_bytes(payload).ok()?;
    if m.opcode() != Opcode::BootReply || m.xid() != xid || m.chaddr().get(..6)? != mac {
        return None;
    }
    let o = m.opts();
    let server = match o.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => Some(*s),
        _ => None,
    };
    match o.msg_type()? {
        MessageType::Offer => Some(Reply::Offer {
            yiaddr: m.yiaddr(),
            server: server.unwrap_or_else(|| m.siaddr()),
        }),
        MessageType::Nak => Some(Reply::Nak {
            server,
            message: match o.get(OptionCode::Message) {
                Some(DhcpOption::Message(s)) => Some(s.clone()),
                _ => None,
            },
        }),
        MessageType::Ack => Some(Reply::Ack(Box::new(Acked {
            yiaddr: m.yiaddr(),
            server,
            mask: match o.get(OptionCode::SubnetMask) {
                Some(DhcpOption::SubnetMask(a)) => Some(*a),
                _ => None,
            },
            router: match o.get(OptionCode::Router) {
                Some(DhcpOption::Router(r)) => r.first().copied(),
                _ => None,
            },
            dns: match o.get(OptionCode::DomainNameServer) {
                Some(DhcpOption::DomainNameServer(d)) => d.clone(),
                _ => Vec::new(),
            },
            domain: match o.get(OptionCode::DomainName) {
                Some(DhcpOption::DomainName(d)) => Some(d.trim_end_matches('\0').to_string()),
                _ => None,
            },
            lease_secs: match o.get(OptionCode::AddressLeaseTime) {
                Some(DhcpOption::AddressLeaseTime(t)) => Some(*t),
                _ => None,
            },
            t1: match o.get(OptionCode::Renewal) {
                Some(DhcpOption::Renewal(t)) => Some(*t),
                _ => None,
            },
            t2: match o.get(OptionCode::Rebinding) {
                Some(DhcpOption::Rebinding(t)) => Some(*t),
                _ => None,
            },
        }))),
        _ => None,
    }
}

impl Acked {
    /// The lease this ACK grants, acquired at `acquired` (Unix seconds),
    /// from `fallback_server` if the ACK names none, whose answers came from
    /// `server_mac`. None without a lease time (a DHCPINFORM answer).
    pub fn lease(
        &self,
        acquired: u64,
        fallback_server: Ipv4Addr,
        server_mac: [u8; 6],
    ) -> Option<Lease> {
        let lease_secs = self.lease_secs?;
        let (t1_secs, t2_secs) = timers(lease_secs, self.t1, self.t2);
        Some(Lease {
            address: self.yiaddr,
            prefix_len: self
                .mask
                .map(|m| u32::from(m).leading_ones() as u8)
                .unwrap_or_else(|| classful(self.yiaddr)),
            router: self.router,
            dns: self.dns.clone(),
            domain: self.domain.clone().filter(|d| !d.is_empty()),
            server: self.server.unwrap_or(fallback_server),
            server_mac,
            acquired,
            lease_secs,
            t1_secs,
            t2_secs,
        })
    }
}

/// The prefix length of `a`'s address class, for servers that send no mask
/// (RFC 2132 §3.3 makes the mask optional).
fn classful(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// A server's answer, for tests and for servers written in tests: `reply`
/// of type `ty` to the request `req` (its xid and chaddr) with `yiaddr`
/// and `opts`.
pub fn encode_reply(
    req: &[u8],
    ty: MessageType,
    yiaddr: Ipv4Addr,
    opts: Vec<DhcpOption>,
) -> Option<Vec<u8>> {
    let q = Message::from_bytes(req).ok()?;
    let unspec = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(q.xid(), q.ciaddr(), yiaddr, unspec, unspec, q.chaddr());
    m.set_opcode(Opcode::BootReply).set_flags(q.flags());
    m.opts_mut().insert(DhcpOption::MessageType(ty));
    for o in opts {
        m.opts_mut().insert(o);
    }
    m.to_vec().ok()
}

/// The type and requested options of a client's message (for servers
/// written in tests).
pub fn decode_request(payload: &[u8]) -> Option<(MessageType, Message)> {
    let m = Message::from_bytes(payload).ok()?;
    Some((m.opts().msg_type()?, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x4d, 0, 0, 0, 7];
    const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const OFFERED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

    #[test]
    fn discover_asks_for_a_broadcast_answer_and_the_options() {
        let raw = encode(Request::Discover, MAC, 0x1234, 3);
        assert!(raw.len() >= 300);
        let m = Message::from_bytes(&raw).unwrap();
        assert_eq!(m.xid(), 0x1234);
        assert_eq!(m.secs(), 3);
        assert!(m.flags().broadcast());
        assert_eq!(&m.chaddr()[..6], &MAC);
        assert_eq!(m.opts().msg_type(), Some(MessageType::Discover));
        let Some(DhcpOption::ParameterRequestList(p)) =
            m.opts().get(OptionCode::ParameterRequestList)
        else {
            panic!("no parameter list")
        };
        assert!(p.contains(&OptionCode::Router) && p.contains(&OptionCode::DomainNameServer));
    }

    #[test]
    fn select_names_the_server_and_address() {
        let raw = encode(
            Request::Select {
                server: SERVER,
                offered: OFFERED,
            },
            MAC,
            1,
            0,
        );
        let m = Message::from_bytes(&raw).unwrap();
        assert_eq!(m.opts().msg_type(), Some(MessageType::Request));
        assert!(m.ciaddr().is_unspecified());
        assert_eq!(
            m.opts().get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(SERVER))
        );
        assert_eq!(
            m.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(OFFERED))
        );
    }

    #[test]
    fn renew_and_release_carry_the_client_address() {
        let m =
            Message::from_bytes(&encode(Request::Extend { ciaddr: OFFERED }, MAC, 2, 0)).unwrap();
        assert_eq!(m.ciaddr(), OFFERED);
        assert!(!m.flags().broadcast());
        assert!(!m.opts().contains(OptionCode::ServerIdentifier));
        assert!(!m.opts().contains(OptionCode::RequestedIpAddress));
        let r = Request::Release {
            server: SERVER,
            ciaddr: OFFERED,
        };
        let m = Message::from_bytes(&encode(r, MAC, 3, 0)).unwrap();
        assert_eq!(m.opts().msg_type(), Some(MessageType::Release));
        assert_eq!(m.ciaddr(), OFFERED);
    }

    #[test]
    fn an_ack_becomes_a_lease() {
        let req = encode(Request::Discover, MAC, 9, 0);
        let ack = encode_reply(
            &req,
            MessageType::Ack,
            OFFERED,
            vec![
                DhcpOption::ServerIdentifier(SERVER),
                DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
                DhcpOption::Router(vec![SERVER, Ipv4Addr::new(192, 0, 2, 2)]),
                DhcpOption::DomainNameServer(vec![Ipv4Addr::new(192, 0, 2, 53)]),
                DhcpOption::DomainName("corp.example".into()),
                DhcpOption::AddressLeaseTime(120),
                DhcpOption::Renewal(4),
            ],
        )
        .unwrap();
        let Some(Reply::Ack(a)) = decode_reply(&ack, MAC, 9) else {
            panic!("not an ack")
        };
        let l = a.lease(1000, Ipv4Addr::UNSPECIFIED, [1; 6]).unwrap();
        assert_eq!(l.address, OFFERED);
        assert_eq!(l.prefix_len, 24);
        assert_eq!(l.router, Some(SERVER));
        assert_eq!(l.dns, vec![Ipv4Addr::new(192, 0, 2, 53)]);
        assert_eq!(l.domain.as_deref(), Some("corp.example"));
        assert_eq!(l.server, SERVER);
        assert_eq!((l.lease_secs, l.t1_secs, l.t2_secs), (120, 4, 105));
        assert_eq!(l.renew_at(), 1004);
    }

    #[test]
    fn answers_to_others_are_ignored() {
        let req = encode(Request::Discover, MAC, 9, 0);
        let offer = encode_reply(&req, MessageType::Offer, OFFERED, vec![]).unwrap();
        assert!(decode_reply(&offer, MAC, 9).is_some());
        assert!(decode_reply(&offer, MAC, 10).is_none(), "other xid");
        assert!(
            decode_reply(&offer, [2, 0, 0, 0, 0, 1], 9).is_none(),
            "other chaddr"
        );
        assert!(
            decode_reply(&req, MAC, 9).is_none(),
            "a request, not a reply"
        );
        assert!(decode_reply(b"garbage", MAC, 9).is_none());
    }

    #[test]
    fn nak_and_missing_mask() {
        let req = encode(Request::Discover, MAC, 5, 0);
        let nak = encode_reply(
            &req,
            MessageType::Nak,
            Ipv4Addr::UNSPECIFIED,
            vec![DhcpOption::Message("wrong network".into())],
        )
        .unwrap();
        assert_eq!(
            decode_reply(&nak, MAC, 5),
            Some(Reply::Nak {
                server: None,
                message: Some("wrong network".into())
            })
        );
        let ack = encode_reply(
            &req,
            MessageType::Ack,
            Ipv4Addr::new(10, 1, 2, 3),
            vec![DhcpOption::AddressLeaseTime(60)],
        )
        .unwrap();
        let Some(Reply::Ack(a)) = decode_reply(&ack, MAC, 5) else {
            panic!()
        };
        let l = a.lease(0, SERVER, [1; 6]).unwrap();
        assert_eq!((l.prefix_len, l.server), (8, SERVER));
    }
}
