//! Hand-made SCTP packets (RFC 9260) for tests on a kernel without SCTP
//! sockets: raw IPPROTO_SCTP sockets still send them, and conntrack and
//! nftables handle SCTP, so an INIT and its INIT ACK are enough to show a
//! load balancer's handling of an association's first two packets.

/// The initiate tag of [`init`]: an INIT ACK answering it carries it as
/// its verification tag.
pub const INIT_TAG: u32 = 0x1122_3344;
/// The initiate tag of [`init_ack`].
const ACK_TAG: u32 = 0x5566_7788;

/// An INIT from `sport` to `dport` (verification tag 0, as RFC 9260 asks).
pub fn init(sport: u16, dport: u16) -> Vec<u8> {
    let mut chunk = vec![1, 0, 0, 20];
    chunk.extend_from_slice(&INIT_TAG.to_be_bytes());
    chunk.extend_from_slice(&65536u32.to_be_bytes()); // a_rwnd
    chunk.extend_from_slice(&1u16.to_be_bytes()); // outbound streams
    chunk.extend_from_slice(&1u16.to_be_bytes()); // inbound streams
    chunk.extend_from_slice(&1u32.to_be_bytes()); // initial TSN
    packet(sport, dport, 0, &chunk)
}

/// The INIT ACK answering [`init`], with a 4-byte state cookie.
pub fn init_ack(sport: u16, dport: u16) -> Vec<u8> {
    let mut chunk = vec![2, 0, 0, 28];
    chunk.extend_from_slice(&ACK_TAG.to_be_bytes());
    chunk.extend_from_slice(&65536u32.to_be_bytes());
    chunk.extend_from_slice(&1u16.to_be_bytes());
    chunk.extend_from_slice(&1u16.to_be_bytes());
    chunk.extend_from_slice(&1u32.to_be_bytes());
    chunk.extend_from_slice(&[0, 7, 0, 8, 0xc0, 0x0c, 0x1e, 0x5a]); // State Cookie
    packet(sport, dport, INIT_TAG, &chunk)
}

/// Common header and one chunk, with the CRC32c checksum filled in.
fn packet(sport: u16, dport: u16, vtag: u32, chunk: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + chunk.len());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&vtag.to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    p.extend_from_slice(chunk);
    // The CRC goes on the wire least significant byte first (as Linux's
    // `sctp_compute_cksum` stores it).
    let crc = crc32c(&p);
    p[8..12].copy_from_slice(&crc.to_le_bytes());
    p
}

/// CRC-32C (Castagnoli), bit by bit: the packets are a few dozen bytes.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82F6_3B78 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn an_init_and_its_ack_are_tagged_and_checksummed() {
        let p = init(5000, 80);
        assert_eq!(p.len(), 32);
        assert_eq!(&p[..8], &[0x13, 0x88, 0, 80, 0, 0, 0, 0]);
        let mut zeroed = p.clone();
        zeroed[8..12].fill(0);
        assert_eq!(&p[8..12], &crc32c(&zeroed).to_le_bytes());
        let a = init_ack(80, 5000);
        assert_eq!(&a[4..8], &INIT_TAG.to_be_bytes());
        assert_eq!(a[12], 2);
        assert_eq!(a.len(), 40);
    }
}
