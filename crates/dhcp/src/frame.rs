//! Ethernet frames of DHCP and ARP, built and read by hand (pure): the
//! client sends from a MAC and an address no interface of the host has, so
//! it speaks Ethernet itself.

use std::net::Ipv4Addr;

pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];
pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_ARP: u16 = 0x0806;
pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
const UDP: u8 = 17;
const ETH_LEN: usize = 14;
const IP_LEN: usize = 20;
const UDP_LEN: usize = 8;

/// Addresses of one UDP datagram in its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// An Ethernet frame carrying `payload` in IPv4/UDP (no options, TTL 64,
/// both checksums set).
pub fn udp_frame(a: &Udp, payload: &[u8]) -> Vec<u8> {
    let udp_len = UDP_LEN + payload.len();
    let total = IP_LEN + udp_len;
    let mut f = Vec::with_capacity(ETH_LEN + total);
    f.extend_from_slice(&a.dst_mac);
    f.extend_from_slice(&a.src_mac);
    f.extend_from_slice(&ETH_IPV4.to_be_bytes());
    let ip_start = f.len();
    f.extend_from_slice(&[0x45, 0x10]); // version 4, IHL 5; DSCP low delay
    f.extend_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0]); // id, no fragments
    f.extend_from_slice(&[64, UDP, 0, 0]); // TTL, protocol, checksum
    f.extend_from_slice(&a.src.octets());
    f.extend_from_slice(&a.dst.octets());
    let sum = checksum(&[&f[ip_start..ip_start + IP_LEN]]);
    f[ip_start + 10..ip_start + 12].copy_from_slice(&sum.to_be_bytes());
    let udp_start = f.len();
    f.extend_from_slice(&a.src_port.to_be_bytes());
    f.extend_from_slice(&a.dst_port.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&a.src.octets());
    pseudo[4..8].copy_from_slice(&a.dst.octets());
    pseudo[9] = UDP;
    pseudo[10..].copy_from_slice(&(udp_len as u16).to_be_bytes());
    let sum = match checksum(&[&pseudo, &f[udp_start..]]) {
        0 => 0xffff, // 0 means "no checksum" in UDP
        s => s,
    };
    f[udp_start + 6..udp_start + 8].copy_from_slice(&sum.to_be_bytes());
    f
}

/// The addresses and payload of a UDP-in-IPv4 frame to `port`, if it is
/// one (unfragmented, IPv4 header checksum correct).
pub fn parse_udp(frame: &[u8], port: u16) -> Option<(Udp, &[u8])> {
    if frame.len() < ETH_LEN + IP_LEN + UDP_LEN || be16(frame, 12) != ETH_IPV4 {
        return None;
    }
    let ip = &frame[ETH_LEN..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < IP_LEN || ip.len() < ihl + UDP_LEN || ip[9] != UDP {
        return None;
    }
    if be16(ip, 6) & 0x3fff != 0 || checksum(&[&ip[..ihl]]) != 0 {
        return None; // a fragment, or damaged
    }
    let total = usize::from(be16(ip, 2)).min(ip.len());
    let udp = &ip[ihl..total];
    if udp.len() < UDP_LEN || be16(udp, 2) != port {
        return None;
    }
    let len = usize::from(be16(udp, 4)).clamp(UDP_LEN, udp.len());
    let a = Udp {
        dst_mac: mac_at(frame, 0),
        src_mac: mac_at(frame, 6),
        src: addr_at(ip, 12),
        dst: addr_at(ip, 16),
        src_port: be16(udp, 0),
        dst_port: be16(udp, 2),
    };
    Some((a, &udp[UDP_LEN..len]))
}

/// An ARP request asking who has `target`: the asker's MAC and address.
pub fn arp_request_for(frame: &[u8], target: Ipv4Addr) -> Option<([u8; 6], Ipv4Addr)> {
    if frame.len() < ETH_LEN + 28 || be16(frame, 12) != ETH_ARP {
        return None;
    }
    let a = &frame[ETH_LEN..];
    // Ethernet/IPv4, request
    if be16(a, 0) != 1 || be16(a, 2) != ETH_IPV4 || a[4] != 6 || a[5] != 4 || be16(a, 6) != 1 {
        return None;
    }
    (addr_at(a, 24) == target).then(|| (mac_at(a, 8), addr_at(a, 14)))
}

/// The ARP reply "`ip` is at `mac`" to `to_mac`/`to_ip`.
pub fn arp_reply(mac: [u8; 6], ip: Ipv4Addr, to_mac: [u8; 6], to_ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_LEN + 28);
    f.extend_from_slice(&to_mac);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETH_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 2]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&to_mac);
    f.extend_from_slice(&to_ip.octets());
    f
}

/// An ARP announcement (RFC 5227 §2.3): a broadcast request for `ip`
/// from `ip` at `mac`.
pub fn arp_announcement(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut f = arp_reply(mac, ip, BROADCAST_MAC, ip);
    f[14 + 7] = 1; // a request
    f[14 + 18..14 + 24].copy_from_slice(&[0; 6]);
    f
}

/// The Internet checksum (RFC 1071) of the concatenated parts (each of even
/// length but the last).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(*last) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn mac_at(b: &[u8], at: usize) -> [u8; 6] {
    b[at..at + 6].try_into().expect("six bytes")
}

fn addr_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x4d, 0, 0, 0, 1];

    fn addrs() -> Udp {
        Udp {
            src_mac: MAC,
            dst_mac: BROADCAST_MAC,
            src: Ipv4Addr::UNSPECIFIED,
            dst: Ipv4Addr::BROADCAST,
            src_port: CLIENT_PORT,
            dst_port: SERVER_PORT,
        }
    }

    #[test]
    fn udp_frames_round_trip_with_valid_checksums() {
        let f = udp_frame(&addrs(), b"hello");
        assert_eq!(f.len(), 14 + 20 + 8 + 5);
        assert_eq!(checksum(&[&f[14..34]]), 0, "IP header checksum");
        // UDP checksum over the pseudo header verifies to 0.
        let mut pseudo = [0u8; 12];
        pseudo[4..8].copy_from_slice(&[255; 4]);
        pseudo[9] = 17;
        pseudo[10..].copy_from_slice(&13u16.to_be_bytes());
        assert_eq!(checksum(&[&pseudo, &f[34..]]), 0, "UDP checksum");
        let (a, payload) = parse_udp(&f, SERVER_PORT).unwrap();
        assert_eq!(a, addrs());
        assert_eq!(payload, b"hello");
        assert!(parse_udp(&f, CLIENT_PORT).is_none(), "wrong port");
    }

    #[test]
    fn known_checksum() {
        // RFC 1071's example words.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&[&data]), !0xddf2);
        assert_eq!(checksum(&[&[0x01, 0x02, 0x03]]), !0x0402);
    }

    #[test]
    fn damaged_or_other_frames_are_not_udp() {
        let mut f = udp_frame(&addrs(), b"x");
        f[20] ^= 1; // flip a bit of the IP header
        assert!(parse_udp(&f, SERVER_PORT).is_none());
        let mut frag = udp_frame(&addrs(), b"x");
        frag[20] = 0x20; // more fragments
        assert!(parse_udp(&frag, SERVER_PORT).is_none());
        assert!(parse_udp(&[0u8; 20], SERVER_PORT).is_none());
        let arp = arp_reply(
            MAC,
            Ipv4Addr::new(1, 2, 3, 4),
            BROADCAST_MAC,
            Ipv4Addr::BROADCAST,
        );
        assert!(parse_udp(&arp, SERVER_PORT).is_none());
    }

    #[test]
    fn arp_requests_for_our_address_are_recognised() {
        let us = Ipv4Addr::new(192, 0, 2, 100);
        let asker = [2, 0, 0, 0, 0, 9];
        let asker_ip = Ipv4Addr::new(192, 0, 2, 1);
        // A request is a reply with op 1 and a zero target MAC.
        let mut req = arp_reply(asker, asker_ip, BROADCAST_MAC, us);
        req[14 + 7] = 1;
        req[14 + 18..14 + 24].copy_from_slice(&[0; 6]);
        assert_eq!(arp_request_for(&req, us), Some((asker, asker_ip)));
        assert_eq!(arp_request_for(&req, Ipv4Addr::new(192, 0, 2, 101)), None);
        let reply = arp_reply(MAC, us, asker, asker_ip);
        assert_eq!(
            arp_request_for(&reply, us),
            None,
            "replies are not requests"
        );
        assert_eq!(&reply[0..6], &asker);
        assert_eq!(&reply[14 + 8..14 + 14], &MAC);
    }
}
