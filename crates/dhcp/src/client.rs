//! The client: DORA, renew, rebind and release over any [`Link`], with
//! retransmission and backoff; ARP for the leased address is answered while
//! an exchange waits, because the server's unicast answers are addressed to
//! an address no interface holds until the endpoint is attached.

use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::frame::{self, Udp, BROADCAST_MAC, CLIENT_PORT, SERVER_PORT};
use crate::lease::Lease;
use crate::message::{self, Reply, Request};

/// A way to send and receive Ethernet frames (a raw socket, or a fake).
pub trait Link {
    /// Send one frame.
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;
    /// The next frame received before `deadline`; None once it passed.
    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Vec<u8>>>;
}

/// How long a client waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long one operation (acquire, renew, rebind) may take in all.
    pub timeout: Duration,
    /// The first retransmission comes after this; each next one after twice
    /// the wait before.
    pub first_retry: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timeout: Duration::from_secs(10),
            first_retry: Duration::from_secs(1),
        }
    }
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no DHCP server answered the {what} of {mac} within {secs:.1} s ({tries} tries)")]
    NoAnswer {
        what: &'static str,
        mac: String,
        secs: f64,
        tries: u32,
    },
    #[error("DHCP server {server} refused the {what} of {mac}: {message}")]
    Refused {
        what: &'static str,
        mac: String,
        server: String,
        message: String,
    },
    #[error("DHCP server {server} gave an unusable answer: {why}")]
    Unusable { server: Ipv4Addr, why: String },
    #[error("DHCP socket: {0}")]
    Io(#[from] io::Error),
}

/// A DHCP client for one MAC address.
pub struct Client<L> {
    link: L,
    mac: [u8; 6],
    settings: Settings,
}

/// Where a request goes and what it is sent from.
struct Route {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    dst_mac: [u8; 6],
}

impl Route {
    fn broadcast(src: Ipv4Addr) -> Self {
        Route {
            src,
            dst: Ipv4Addr::BROADCAST,
            dst_mac: BROADCAST_MAC,
        }
    }
}

/// A reply with where it came from.
struct Answer {
    reply: Reply,
    src_mac: [u8; 6],
    src: Ipv4Addr,
}

impl<L: Link> Client<L> {
    pub fn new(link: L, mac: [u8; 6], settings: Settings) -> Self {
        Client {
            link,
            mac,
            settings,
        }
    }

    /// DISCOVER, OFFER, REQUEST, ACK: a new lease.
    pub fn acquire(&mut self) -> Result<Lease, Error> {
        let deadline = Instant::now() + self.settings.timeout;
        let acquired = unix_now();
        let offer = self.exchange(
            "DHCPDISCOVER",
            Request::Discover,
            Route::broadcast(Ipv4Addr::UNSPECIFIED),
            None,
            deadline,
            |r| matches!(r, Reply::Offer { .. }),
        )?;
        let Reply::Offer { yiaddr, server } = offer.reply else {
            unreachable!("accepted only offers")
        };
        let server = if server.is_unspecified() {
            offer.src
        } else {
            server
        };
        let ack = self.exchange(
            "DHCPREQUEST",
            Request::Select {
                server,
                offered: yiaddr,
            },
            Route::broadcast(Ipv4Addr::UNSPECIFIED),
            None,
            deadline,
            |r| match r {
                Reply::Ack(a) => a.server.is_none_or(|s| s == server),
                Reply::Nak { server: s, .. } => s.is_none_or(|s| s == server),
                _ => false,
            },
        )?;
        let lease = self.lease_from(ack, "DHCPREQUEST", server, Some(yiaddr), acquired)?;
        // Announce the address (RFC 5227 §2.3), so neighbours that probed
        // it while it was offered (a server's ping check) forget their
        // failed lookup and the switch learns the MAC.
        self.link
            .send(&frame::arp_announcement(self.mac, lease.address))?;
        Ok(lease)
    }

    /// RENEWING: extend `lease` with the server that gave it (unicast).
    pub fn renew(&mut self, lease: &Lease) -> Result<Lease, Error> {
        let route = Route {
            src: lease.address,
            dst: lease.server,
            dst_mac: lease.server_mac,
        };
        self.extend("renewal", lease, route)
    }

    /// REBINDING: extend `lease` with any server (broadcast).
    pub fn rebind(&mut self, lease: &Lease) -> Result<Lease, Error> {
        self.extend("rebinding", lease, Route::broadcast(lease.address))
    }

    /// Give the address back (DHCPRELEASE; the server does not answer).
    pub fn release(&mut self, lease: &Lease) -> Result<(), Error> {
        let req = Request::Release {
            server: lease.server,
            ciaddr: lease.address,
        };
        let route = Route {
            src: lease.address,
            dst: lease.server,
            dst_mac: lease.server_mac,
        };
        let frame = self.frame(req, &route, new_xid(), 0);
        self.link.send(&frame)?;
        Ok(())
    }

    fn extend(&mut self, what: &'static str, lease: &Lease, route: Route) -> Result<Lease, Error> {
        let deadline = Instant::now() + self.settings.timeout;
        let acquired = unix_now();
        let ack = self.exchange(
            what,
            Request::Extend {
                ciaddr: lease.address,
            },
            route,
            Some(lease.address),
            deadline,
            |r| matches!(r, Reply::Ack(_) | Reply::Nak { .. }),
        )?;
        self.lease_from(ack, what, lease.server, Some(lease.address), acquired)
    }

    /// The lease an ACK grants, or why there is none.
    fn lease_from(
        &self,
        ans: Answer,
        what: &'static str,
        server: Ipv4Addr,
        expected: Option<Ipv4Addr>,
        acquired: u64,
    ) -> Result<Lease, Error> {
        match ans.reply {
            Reply::Ack(a) => {
                let lease =
                    a.lease(acquired, server, ans.src_mac)
                        .ok_or_else(|| Error::Unusable {
                            server,
                            why: "the DHCPACK has no lease time".into(),
                        })?;
                if expected.is_some_and(|e| e != lease.address) {
                    return Err(Error::Unusable {
                        server,
                        why: format!(
                            "it acknowledged {} instead of {}",
                            lease.address,
                            expected.unwrap_or(Ipv4Addr::UNSPECIFIED)
                        ),
                    });
                }
                Ok(lease)
            }
            Reply::Nak { server: s, message } => Err(Error::Refused {
                what,
                mac: mac_string(self.mac),
                server: s.unwrap_or(ans.src).to_string(),
                message: message.unwrap_or_else(|| "DHCPNAK".into()),
            }),
            Reply::Offer { .. } => unreachable!("offers are not accepted here"),
        }
    }

    /// Send `req` until an accepted answer comes or `deadline` passes,
    /// waiting `first_retry`, then twice as long each time, in between.
    fn exchange(
        &mut self,
        what: &'static str,
        req: Request,
        route: Route,
        arp_for: Option<Ipv4Addr>,
        deadline: Instant,
        accept: impl Fn(&Reply) -> bool,
    ) -> Result<Answer, Error> {
        let start = Instant::now();
        let xid = new_xid();
        let mut wait = self.settings.first_retry.max(Duration::from_millis(10));
        let mut tries = 0;
        loop {
            let secs = start.elapsed().as_secs().min(u64::from(u16::MAX)) as u16;
            self.link.send(&self.frame(req, &route, xid, secs))?;
            tries += 1;
            let next = (Instant::now() + wait).min(deadline);
            while let Some(f) = self.link.recv(next)? {
                if let Some(ip) = arp_for {
                    if let Some((asker, asker_ip)) = frame::arp_request_for(&f, ip) {
                        self.link
                            .send(&frame::arp_reply(self.mac, ip, asker, asker_ip))?;
                        continue;
                    }
                }
                let Some((udp, payload)) = frame::parse_udp(&f, CLIENT_PORT) else {
                    continue;
                };
                if udp.src_port != SERVER_PORT {
                    continue;
                }
                match message::decode_reply(payload, self.mac, xid) {
                    Some(reply) if accept(&reply) => {
                        return Ok(Answer {
                            reply,
                            src_mac: udp.src_mac,
                            src: udp.src,
                        })
                    }
                    _ => continue,
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::NoAnswer {
                    what,
                    mac: mac_string(self.mac),
                    secs: start.elapsed().as_secs_f64(),
                    tries,
                });
            }
            wait *= 2;
        }
    }

    fn frame(&self, req: Request, route: &Route, xid: u32, secs: u16) -> Vec<u8> {
        let payload = message::encode(req, self.mac, xid, secs);
        let addrs = Udp {
            src_mac: self.mac,
            dst_mac: route.dst_mac,
            src: route.src,
            dst: route.dst,
            src_port: CLIENT_PORT,
            dst_port: SERVER_PORT,
        };
        frame::udp_frame(&addrs, &payload)
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A random transaction ID.
fn new_xid() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: getrandom writes at most the given length into the buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != 4 {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        return t ^ std::process::id().rotate_left(16);
    }
    u32::from_ne_bytes(b)
}

/// `02:4d:00:00:00:01`.
pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use dhcproto::v4::{DhcpOption, MessageType};

    use super::*;

    const MAC: [u8; 6] = [0x02, 0x4d, 0, 0, 0, 7];
    const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
    const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

    /// A link to a server written as a function from a sent frame to the
    /// frames it makes arrive; it records what was sent.
    struct Fake<F> {
        server: F,
        queue: VecDeque<Vec<u8>>,
        sent: Vec<Vec<u8>>,
    }

    impl<F: FnMut(&[u8]) -> Vec<Vec<u8>>> Link for &mut Fake<F> {
        fn send(&mut self, frame: &[u8]) -> io::Result<()> {
            self.sent.push(frame.to_vec());
            let replies = (self.server)(frame);
            self.queue.extend(replies);
            Ok(())
        }
        fn recv(&mut self, deadline: Instant) -> io::Result<Option<Vec<u8>>> {
            if let Some(f) = self.queue.pop_front() {
                return Ok(Some(f));
            }
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            Ok(None)
        }
    }

    fn fake<F: FnMut(&[u8]) -> Vec<Vec<u8>>>(server: F) -> Fake<F> {
        Fake {
            server,
            queue: VecDeque::new(),
            sent: Vec::new(),
        }
    }

    fn quick() -> Settings {
        Settings {
            timeout: Duration::from_millis(400),
            first_retry: Duration::from_millis(50),
        }
    }

    /// The DHCP message in a frame the client sent.
    fn request(f: &[u8]) -> Option<(Udp, MessageType, Vec<u8>)> {
        let (udp, payload) = frame::parse_udp(f, SERVER_PORT)?;
        let (ty, _) = message::decode_request(payload)?;
        Some((udp, ty, payload.to_vec()))
    }

    /// A server frame answering `req`.
    fn answer(req: &[u8], ty: MessageType, yiaddr: Ipv4Addr, opts: Vec<DhcpOption>) -> Vec<u8> {
        let payload = message::encode_reply(req, ty, yiaddr, opts).unwrap();
        let addrs = Udp {
            src_mac: SERVER_MAC,
            dst_mac: BROADCAST_MAC,
            src: SERVER,
            dst: Ipv4Addr::BROADCAST,
            src_port: SERVER_PORT,
            dst_port: CLIENT_PORT,
        };
        frame::udp_frame(&addrs, &payload)
    }

    fn lease_opts() -> Vec<DhcpOption> {
        vec![
            DhcpOption::ServerIdentifier(SERVER),
            DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
            DhcpOption::Router(vec![SERVER]),
            DhcpOption::DomainNameServer(vec![Ipv4Addr::new(192, 0, 2, 53)]),
            DhcpOption::AddressLeaseTime(120),
            DhcpOption::Renewal(4),
        ]
    }

    /// A server that offers and acknowledges ADDR, and NAKs `Extend`s when
    /// `nak_extend`.
    fn server(nak_extend: bool) -> impl FnMut(&[u8]) -> Vec<Vec<u8>> {
        move |f| {
            let Some((_, ty, req)) = request(f) else {
                return vec![];
            };
            let ciaddr = dhcproto::v4::Message::from_bytes(&req).unwrap().ciaddr();
            match ty {
                MessageType::Discover => {
                    vec![answer(&req, MessageType::Offer, ADDR, lease_opts())]
                }
                MessageType::Request if nak_extend && !ciaddr.is_unspecified() => {
                    vec![answer(
                        &req,
                        MessageType::Nak,
                        Ipv4Addr::UNSPECIFIED,
                        vec![DhcpOption::Message("lease unknown".into())],
                    )]
                }
                MessageType::Request => vec![answer(&req, MessageType::Ack, ADDR, lease_opts())],
                _ => vec![],
            }
        }
    }

    use dhcproto::Decodable;

    #[test]
    fn dora_gets_a_lease_with_the_servers_options() {
        let mut link = fake(server(false));
        let before = unix_now();
        let lease = Client::new(&mut link, MAC, quick()).acquire().unwrap();
        assert_eq!(lease.address, ADDR);
        assert_eq!(lease.prefix_len, 24);
        assert_eq!(lease.router, Some(SERVER));
        assert_eq!(lease.dns, vec![Ipv4Addr::new(192, 0, 2, 53)]);
        assert_eq!(lease.server, SERVER);
        assert_eq!(lease.server_mac, SERVER_MAC);
        assert!(lease.acquired >= before);
        assert_eq!(lease.t1_secs, 4);
        // DISCOVER then REQUEST, both broadcast from 0.0.0.0 with our MAC.
        let kinds: Vec<MessageType> = link.sent[..2]
            .iter()
            .map(|f| request(f).unwrap().1)
            .collect();
        assert_eq!(kinds, [MessageType::Discover, MessageType::Request]);
        // Then an ARP announcement of the address.
        assert_eq!(link.sent.len(), 3);
        assert_eq!(
            frame::arp_request_for(&link.sent[2], ADDR),
            Some((MAC, ADDR))
        );
        for f in &link.sent[..2] {
            let (udp, _, _) = request(f).unwrap();
            assert_eq!(udp.src_mac, MAC);
            assert_eq!(udp.dst_mac, BROADCAST_MAC);
            assert_eq!(udp.src, Ipv4Addr::UNSPECIFIED);
        }
    }

    #[test]
    fn answers_to_other_transactions_are_ignored_and_requests_retried() {
        let mut n = 0;
        let mut link = fake(move |f: &[u8]| {
            let Some((_, MessageType::Discover, req)) = request(f) else {
                return vec![];
            };
            n += 1;
            let mut other = req.clone();
            other[4] ^= 0xff; // another xid
            let mut replies = vec![answer(&other, MessageType::Offer, ADDR, lease_opts())];
            if n < 3 {
                return replies; // the server "loses" the first two
            }
            replies.push(answer(&req, MessageType::Offer, ADDR, lease_opts()));
            replies
        });
        let err = Client::new(&mut link, MAC, quick()).acquire().unwrap_err();
        // Offered on the third DISCOVER, but nobody acknowledges.
        assert!(
            matches!(
                err,
                Error::NoAnswer {
                    what: "DHCPREQUEST",
                    ..
                }
            ),
            "{err}"
        );
        let discovers = link
            .sent
            .iter()
            .filter(|f| request(f).unwrap().1 == MessageType::Discover)
            .count();
        assert_eq!(discovers, 3);
    }

    #[test]
    fn silence_is_a_clear_error_after_backoff() {
        let mut link = fake(|_: &[u8]| vec![]);
        let start = Instant::now();
        let err = Client::new(&mut link, MAC, quick()).acquire().unwrap_err();
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(400) && took < Duration::from_secs(2));
        let Error::NoAnswer { what, tries, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(*what, "DHCPDISCOVER");
        // 50 + 100 + 200 ms, then the deadline: 4 tries, not one every 50 ms.
        assert_eq!(*tries, 4);
        assert!(err.to_string().contains("02:4d:00:00:00:07"), "{err}");
    }

    #[test]
    fn renew_unicasts_to_the_server_and_answers_arp() {
        let mut link = fake(server(false));
        let lease = Client::new(&mut link, MAC, quick()).acquire().unwrap();
        // A server that first asks who has the address (as a kernel does
        // before a unicast to ciaddr), then acknowledges.
        let mut link = fake(|f: &[u8]| {
            if let Some((_, MessageType::Request, req)) = request(f) {
                let mut who = frame::arp_reply(SERVER_MAC, SERVER, BROADCAST_MAC, ADDR);
                who[14 + 7] = 1;
                return vec![who, answer(&req, MessageType::Ack, ADDR, lease_opts())];
            }
            vec![]
        });
        let renewed = Client::new(&mut link, MAC, quick()).renew(&lease).unwrap();
        assert_eq!(renewed.address, ADDR);
        let (udp, _, req) = request(&link.sent[0]).unwrap();
        assert_eq!((udp.src, udp.dst, udp.dst_mac), (ADDR, SERVER, SERVER_MAC));
        let m = dhcproto::v4::Message::from_bytes(&req).unwrap();
        assert_eq!(m.ciaddr(), ADDR);
        // The ARP answer: ADDR is at our MAC.
        let arp = &link.sent[1];
        assert_eq!(u16::from_be_bytes([arp[12], arp[13]]), frame::ETH_ARP);
        assert_eq!(&arp[14 + 8..14 + 14], &MAC);
        assert_eq!(&arp[0..6], &SERVER_MAC);
    }

    #[test]
    fn rebind_broadcasts_and_a_nak_is_refusal() {
        let mut link = fake(server(false));
        let lease = Client::new(&mut link, MAC, quick()).acquire().unwrap();
        let mut link = fake(server(true));
        let err = Client::new(&mut link, MAC, quick())
            .rebind(&lease)
            .unwrap_err();
        assert!(matches!(err, Error::Refused { .. }), "{err}");
        assert!(err.to_string().contains("lease unknown"), "{err}");
        let (udp, _, _) = request(&link.sent[0]).unwrap();
        assert_eq!((udp.src, udp.dst), (ADDR, Ipv4Addr::BROADCAST));
    }

    #[test]
    fn release_goes_to_the_server() {
        let mut link = fake(server(false));
        let lease = Client::new(&mut link, MAC, quick()).acquire().unwrap();
        let mut link = fake(|_: &[u8]| vec![]);
        Client::new(&mut link, MAC, quick())
            .release(&lease)
            .unwrap();
        assert_eq!(link.sent.len(), 1);
        let (udp, ty, _) = request(&link.sent[0]).unwrap();
        assert_eq!(ty, MessageType::Release);
        assert_eq!((udp.dst, udp.dst_mac), (SERVER, SERVER_MAC));
    }

    #[test]
    fn an_ack_for_another_address_is_unusable() {
        let mut link = fake(server(false));
        let mut lease = Client::new(&mut link, MAC, quick()).acquire().unwrap();
        lease.address = Ipv4Addr::new(192, 0, 2, 200);
        let mut link = fake(server(false));
        let err = Client::new(&mut link, MAC, quick())
            .renew(&lease)
            .unwrap_err();
        assert!(matches!(err, Error::Unusable { .. }), "{err}");
    }
}
