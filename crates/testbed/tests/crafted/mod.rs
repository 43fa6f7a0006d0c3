//! The kernel side of the differential tests: whole IPv4 packets crafted in
//! one namespace, forwarded by a "host" namespace holding the rules under
//! test, and captured as they arrive in another.
//!
//! ```text
//!  ep (its addresses) --veth-- host (forwards; the rules under test) --veth-- peer (its addresses,
//!                                                                              and prefixes routed to it)
//! ```
//!
//! Receivers drop everything at their input hook (but IPv6 neighbour
//! discovery, which IPv6 needs as IPv4 needs ARP), so no reply ever makes
//! a flow established; each packet carries a marker (its last 8 bytes)
//! that tells it apart in the capture. [`World::add_ipv6`] gives the same
//! world IPv6 addresses and routes, for `craft`ed IPv6 packets.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use hostnet_dataplane::linux::run_in_netns;
use hostnet_policy::{Packet, Proto};
use hostnet_testbed::{unique, Netns};

/// The three namespaces, linked and routed.
pub struct World {
    pub host: Netns,
    pub ep: Netns,
    pub peer: Netns,
}

pub fn sysctl(ns: &Netns, kv: &str) {
    let out = ns.output("sysctl", &["-qw", kv]);
    assert!(out.status.success(), "sysctl {kv}: {out:?}");
}

/// `nft -f -` of `script` in `ns`.
pub fn nft(ns: &Netns, script: &str) {
    use std::io::Write;
    let mut child = ns
        .command("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run nft");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "nft -f: {script}");
}

impl World {
    /// `ep` holds `ep_addrs` (the first on its link), `peer` holds
    /// `peer_addrs`; the host routes both sides' addresses and `via_peer`
    /// (prefixes) to the peer.
    pub fn new(
        tag: &str,
        ep_addrs: &[Ipv4Addr],
        peer_addrs: &[Ipv4Addr],
        via_peer: &[&str],
    ) -> Self {
        let w = World {
            host: Netns::new(&unique(&format!("{tag}host"))),
            ep: Netns::new(&unique(&format!("{tag}ep"))),
            peer: Netns::new(&unique(&format!("{tag}peer"))),
        };
        w.host.link(
            "h-ep",
            "169.254.1.1/32",
            &w.ep,
            "eth0",
            &format!("{}/32", ep_addrs[0]),
        );
        w.host.link(
            "h-peer",
            "169.254.2.1/32",
            &w.peer,
            "eth0",
            &format!("{}/32", peer_addrs[0]),
        );
        for (ns, more) in [(&w.ep, &ep_addrs[1..]), (&w.peer, &peer_addrs[1..])] {
            for a in more {
                ns.ip(&["addr", "add", &format!("{a}/32"), "dev", "eth0"]);
            }
        }
        for (ns, gw) in [(&w.ep, "169.254.1.1"), (&w.peer, "169.254.2.1")] {
            ns.ip(&["route", "add", gw, "dev", "eth0"]);
            ns.ip(&["route", "add", "default", "via", gw, "dev", "eth0"]);
        }
        for a in ep_addrs {
            w.host
                .ip(&["route", "add", &format!("{a}/32"), "dev", "h-ep"]);
        }
        for a in peer_addrs {
            w.host
                .ip(&["route", "add", &format!("{a}/32"), "dev", "h-peer"]);
        }
        let via = peer_addrs[0].to_string();
        for prefix in via_peer {
            w.host
                .ip(&["route", "add", prefix, "via", &via, "dev", "h-peer"]);
        }
        sysctl(&w.host, "net.ipv4.ip_forward=1");
        for ns in [&w.host, &w.ep, &w.peer] {
            sysctl(ns, "net.ipv4.conf.all.rp_filter=0");
            sysctl(ns, "net.ipv4.conf.default.rp_filter=0");
        }
        // Receivers answer nothing: every probe stays a new flow.
        for ns in [&w.ep, &w.peer] {
            nft(
                ns,
                "table inet quiet {\n\tchain input {\n\t\ttype filter hook input priority 0; policy drop;\n\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n\t}\n}\n",
            );
        }
        w
    }

    /// The same shape in IPv6: `ep` holds `ep_addrs`, `peer` holds
    /// `peer_addrs`, the host routes both and `via_peer` to the peer's
    /// first address and forwards IPv6. Returns once no address of the
    /// three namespaces waits for duplicate address detection (the host
    /// sends no neighbour solicitation from a tentative link-local).
    pub fn add_ipv6(&self, ep_addrs: &[Ipv6Addr], peer_addrs: &[Ipv6Addr], via_peer: &[&str]) {
        const HOST_EP: &str = "fd00:a9fe:1::1";
        const HOST_PEER: &str = "fd00:a9fe:2::1";
        sysctl(&self.host, "net.ipv6.conf.all.forwarding=1");
        for (ns, dev, addr) in [
            (&self.host, "h-ep", HOST_EP),
            (&self.host, "h-peer", HOST_PEER),
        ] {
            ns.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{addr}/128"),
                "dev",
                dev,
                "nodad",
            ]);
        }
        for (ns, addrs, gw) in [
            (&self.ep, ep_addrs, HOST_EP),
            (&self.peer, peer_addrs, HOST_PEER),
        ] {
            for a in addrs {
                ns.ip(&[
                    "-6",
                    "addr",
                    "add",
                    &format!("{a}/128"),
                    "dev",
                    "eth0",
                    "nodad",
                ]);
            }
            ns.ip(&["-6", "route", "add", gw, "dev", "eth0"]);
            ns.ip(&["-6", "route", "add", "default", "via", gw, "dev", "eth0"]);
        }
        for (addrs, dev) in [(ep_addrs, "h-ep"), (peer_addrs, "h-peer")] {
            for a in addrs {
                self.host
                    .ip(&["-6", "route", "add", &format!("{a}/128"), "dev", dev]);
            }
        }
        let via = peer_addrs[0].to_string();
        for prefix in via_peer {
            self.host
                .ip(&["-6", "route", "add", prefix, "via", &via, "dev", "h-peer"]);
        }
        let settled = hostnet_testbed::wait_until(Duration::from_secs(10), || {
            [&self.host, &self.ep, &self.peer].iter().all(|ns| {
                let out = ns.output("ip", &["-6", "addr", "show", "tentative"]);
                out.stdout.is_empty()
            })
        });
        assert!(settled, "IPv6 addresses still tentative");
    }
}

fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The whole IPv4 packet for `p` (a TCP SYN, a UDP datagram, an ICMP echo
/// request, or a bare header of another protocol), carrying `marker` in its
/// payload; an IPv6 one ([`craft6`]) when `p` is IPv6.
pub fn craft(p: &Packet, marker: u64) -> Vec<u8> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (p.src, p.dst) else {
        return craft6(p, marker);
    };
    let mut l4 = match p.proto {
        Proto::TCP => {
            let mut h = vec![0u8; 20];
            h[0..2].copy_from_slice(&p.src_port.unwrap().to_be_bytes());
            h[2..4].copy_from_slice(&p.dst_port.unwrap().to_be_bytes());
            h[4..8].copy_from_slice(&(marker as u32).to_be_bytes());
            h[12] = 5 << 4;
            h[13] = 0x02; // SYN
            h[14..16].copy_from_slice(&64240u16.to_be_bytes());
            h
        }
        Proto::UDP => {
            let mut h = vec![0u8; 8];
            h[0..2].copy_from_slice(&p.src_port.unwrap().to_be_bytes());
            h[2..4].copy_from_slice(&p.dst_port.unwrap().to_be_bytes());
            h
        }
        Proto::ICMP => vec![8, 0, 0, 0, (marker >> 8) as u8, marker as u8, 0, 1],
        _ => Vec::new(),
    };
    l4.extend_from_slice(&marker.to_be_bytes());
    let len = l4.len();
    match p.proto {
        Proto::TCP | Proto::UDP => {
            if p.proto == Proto::UDP {
                l4[4..6].copy_from_slice(&(len as u16).to_be_bytes());
            }
            let mut pseudo: u32 = 0;
            for w in [src.octets(), dst.octets()] {
                pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]))
                    + u32::from(u16::from_be_bytes([w[2], w[3]]));
            }
            pseudo += u32::from(p.proto.0) + len as u32;
            let at = if p.proto == Proto::TCP { 16 } else { 6 };
            let sum = checksum(&l4, pseudo);
            l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        }
        Proto::ICMP => {
            let sum = checksum(&l4, 0);
            l4[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        _ => {}
    }
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, p.proto.0, 0, 0];
    ip[2..4].copy_from_slice(&((20 + len) as u16).to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = checksum(&ip, 0);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&l4);
    ip
}

/// The TCP SYN or UDP datagram of `p` (IPv6), carrying `marker`.
pub fn craft6(p: &Packet, marker: u64) -> Vec<u8> {
    let (IpAddr::V6(src), IpAddr::V6(dst)) = (p.src, p.dst) else {
        unreachable!("both sides IPv6")
    };
    let mut l4 = match p.proto {
        Proto::TCP => {
            let mut h = vec![0u8; 20];
            h[4..8].copy_from_slice(&(marker as u32).to_be_bytes());
            h[12] = 5 << 4;
            h[13] = 0x02; // SYN
            h[14..16].copy_from_slice(&64240u16.to_be_bytes());
            h
        }
        Proto::UDP => vec![0u8; 8],
        other => unreachable!("TCP and UDP only, not {other:?}"),
    };
    l4[0..2].copy_from_slice(&p.src_port.unwrap().to_be_bytes());
    l4[2..4].copy_from_slice(&p.dst_port.unwrap().to_be_bytes());
    l4.extend_from_slice(&marker.to_be_bytes());
    let len = l4.len();
    if p.proto == Proto::UDP {
        l4[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    }
    // The pseudo-header: addresses, upper-layer length, next header.
    let mut pseudo: u32 = 0;
    for w in src.octets().chunks(2).chain(dst.octets().chunks(2)) {
        pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    pseudo += len as u32 + u32::from(p.proto.0);
    let at = if p.proto == Proto::TCP { 16 } else { 6 };
    let sum = checksum(&l4, pseudo);
    l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(len as u16).to_be_bytes());
    ip.extend_from_slice(&[p.proto.0, 64]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(&l4);
    ip
}

/// A raw socket of `ns` that sends whole IPv4 packets (any source).
pub fn raw_sender(ns: &Netns) -> OwnedFd {
    run_in_netns(ns.path(), || {
        // SAFETY: plain socket(2); the descriptor is owned below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        // SAFETY: fd is a fresh descriptor we own.
        unsafe { OwnedFd::from_raw_fd(fd) }
    })
    .expect("enter namespace")
}

/// A raw socket of `ns` that sends whole IPv6 packets (IPPROTO_RAW
/// implies the header is included, any source).
pub fn raw_sender6(ns: &Netns) -> OwnedFd {
    run_in_netns(ns.path(), || {
        // SAFETY: plain socket(2); the descriptor is owned below.
        let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        // SAFETY: fd is a fresh descriptor we own.
        unsafe { OwnedFd::from_raw_fd(fd) }
    })
    .expect("enter namespace")
}

/// A packet socket on `eth0` of `ns`, receiving IPv4 payloads.
pub fn capture(ns: &Netns) -> OwnedFd {
    capture_of(ns, libc::ETH_P_IP)
}

/// A packet socket on `eth0` of `ns`, receiving IPv6 payloads.
pub fn capture6(ns: &Netns) -> OwnedFd {
    capture_of(ns, libc::ETH_P_IPV6)
}

fn capture_of(ns: &Netns, ethertype: i32) -> OwnedFd {
    run_in_netns(ns.path(), || {
        let proto = (ethertype as u16).to_be();
        // SAFETY: plain socket(2); the descriptor is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK,
                i32::from(proto),
            )
        };
        assert!(
            fd >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = std::ffi::CString::new("eth0").unwrap();
        // SAFETY: a NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        // SAFETY: sockaddr_ll is plain data; zero is a valid start.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = proto;
        sa.sll_ifindex = index as i32;
        // SAFETY: sa is a valid sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        fd
    })
    .expect("enter namespace")
}

/// Sends `pkt` (a whole IPv4 packet) from `fd` toward `dst`.
pub fn send(fd: &OwnedFd, pkt: &[u8], dst: Ipv4Addr) {
    // SAFETY: sockaddr_in is plain data.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as u16;
    sa.sin_addr.s_addr = u32::from_ne_bytes(dst.octets());
    // SAFETY: pkt and sa are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    assert_eq!(
        n as usize,
        pkt.len(),
        "sendto: {}",
        std::io::Error::last_os_error()
    );
}

/// Sends `pkt` (a whole IPv6 packet) from `fd` toward `dst`.
pub fn send6(fd: &OwnedFd, pkt: &[u8], dst: Ipv6Addr) {
    // SAFETY: sockaddr_in6 is plain data.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as u16;
    sa.sin6_addr.s6_addr = dst.octets();
    // SAFETY: pkt and sa are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            (&sa as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as u32,
        )
    };
    assert_eq!(
        n as usize,
        pkt.len(),
        "sendto: {}",
        std::io::Error::last_os_error()
    );
}

/// A captured IPv6 packet (TCP or UDP): addresses, ports, marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub proto: u8,
    pub ports: (u16, u16),
    pub marker: u64,
}

/// What the IPv6 capture `fd` sees within `window` (TCP and UDP only:
/// neighbour discovery passes too).
pub fn collect6(fd: &OwnedFd, window: Duration) -> Vec<Seen6> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        loop {
            // SAFETY: buf is valid for its length.
            let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 40 + 8 + 8 {
                break;
            }
            let p = &buf[..n as usize];
            if !matches!(p[6], 6 | 17) {
                continue;
            }
            let addr = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&p[at..at + 16]).unwrap());
            seen.push(Seen6 {
                src: addr(8),
                dst: addr(24),
                proto: p[6],
                ports: (
                    u16::from_be_bytes([p[40], p[41]]),
                    u16::from_be_bytes([p[42], p[43]]),
                ),
                marker: u64::from_be_bytes(p[p.len() - 8..].try_into().unwrap()),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    seen
}

/// A captured packet: its addresses, ports (TCP and UDP) and marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub ports: Option<(u16, u16)>,
    pub marker: u64,
}

/// Every packet `fd` holds now.
pub fn drain(fd: &OwnedFd) -> Vec<Seen> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 28 {
            return out;
        }
        let p = &buf[..n as usize];
        let l4 = &p[usize::from(p[0] & 0x0f) * 4..];
        let proto = p[9];
        out.push(Seen {
            src: Ipv4Addr::new(p[12], p[13], p[14], p[15]),
            dst: Ipv4Addr::new(p[16], p[17], p[18], p[19]),
            proto,
            ports: matches!(proto, 6 | 17).then(|| {
                (
                    u16::from_be_bytes([l4[0], l4[1]]),
                    u16::from_be_bytes([l4[2], l4[3]]),
                )
            }),
            marker: u64::from_be_bytes(p[p.len() - 8..].try_into().unwrap()),
        });
    }
}

/// What each of `captures` sees within `window` (the kernel forwards in
/// well under a millisecond; the window bounds the wait for a packet that
/// never comes). A capture sees its namespace's own outgoing packets too.
pub fn collect(captures: &[&OwnedFd], window: Duration) -> Vec<Vec<Seen>> {
    let mut seen = vec![Vec::new(); captures.len()];
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        for (fd, got) in captures.iter().zip(&mut seen) {
            got.extend(drain(fd));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    seen
}
