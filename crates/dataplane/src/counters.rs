//! What the kernel counts: set elements' counters and links' statistics
//! (issue 5 item 7). Reading them changes nothing.

use hostnet_nft::Family;

/// A named set or map of one of hostnet's tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetRef {
    pub family: Family,
    pub table: &'static str,
    pub set: &'static str,
}

/// One element of a set declared with `counter`, as the kernel dumps it:
/// the key (and an interval element's last key) in the same byte layout
/// as [`hostnet_nft::SetElement`], and what its counter has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElementCounter {
    pub key: Vec<u8>,
    pub key_end: Option<Vec<u8>>,
    pub packets: u64,
    pub bytes: u64,
}

/// A link's statistics (`IFLA_STATS64`), from the link's own point of
/// view: `rx` is what it received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}
