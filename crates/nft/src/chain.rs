//! Regular chains whose rules are data, carried as [`SetElement`]s with
//! [`Data::Rules`] so that they are made, replaced and deleted in the same
//! transaction as the elements that use them.
//!
//! The one kind of rule such a chain needs beyond `goto`/`return` is a
//! verdict-map lookup keyed by a concatenation of packet fields, each
//! possibly ANDed with a mask (`ip daddr . ip saddr & 255.255.0.0 . meta
//! l4proto . th dport & 65280 . th sport & 0 vmap @m`): the kernel loads
//! each field into consecutive 32-bit registers, masks it in place and
//! looks the registers up as one key. Both nft text (for loading whole
//! tables) and the netlink expressions (crates/dataplane) are derived from
//! this one description.
//!
//! [`SetElement`]: crate::SetElement
//! [`Data::Rules`]: crate::Data::Rules

use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::{Data, SetElement};

/// Where one field of a lookup key comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// The IPv4 (`v6` false) or IPv6 source or destination address.
    Addr { v6: bool, dst: bool },
    /// `meta l4proto`.
    L4proto,
    /// `th sport` / `th dport`.
    Port { dst: bool },
}

/// `NFT_PAYLOAD_NETWORK_HEADER`.
pub const PAYLOAD_NETWORK: u32 = 1;
/// `NFT_PAYLOAD_TRANSPORT_HEADER`.
pub const PAYLOAD_TRANSPORT: u32 = 2;

impl KeySource {
    /// Bytes the field loads (a key field is padded to 4-byte registers).
    pub fn bytes(self) -> usize {
        match self {
            KeySource::Addr { v6: false, .. } => 4,
            KeySource::Addr { v6: true, .. } => 16,
            KeySource::L4proto => 1,
            KeySource::Port { .. } => 2,
        }
    }

    /// The payload base and offset it is loaded from; None for `meta`.
    pub fn payload(self) -> Option<(u32, u32)> {
        match self {
            KeySource::Addr { v6: false, dst } => Some((PAYLOAD_NETWORK, 12 + 4 * dst as u32)),
            KeySource::Addr { v6: true, dst } => Some((PAYLOAD_NETWORK, 8 + 16 * dst as u32)),
            KeySource::Port { dst } => Some((PAYLOAD_TRANSPORT, 2 * dst as u32)),
            KeySource::L4proto => None,
        }
    }

    fn text(self) -> &'static str {
        match self {
            KeySource::Addr {
                v6: false,
                dst: false,
            } => "ip saddr",
            KeySource::Addr {
                v6: false,
                dst: true,
            } => "ip daddr",
            KeySource::Addr {
                v6: true,
                dst: false,
            } => "ip6 saddr",
            KeySource::Addr {
                v6: true,
                dst: true,
            } => "ip6 daddr",
            KeySource::L4proto => "meta l4proto",
            KeySource::Port { dst: false } => "th sport",
            KeySource::Port { dst: true } => "th dport",
        }
    }

    /// A mask in nft's syntax for this field's type.
    fn mask_text(self, mask: &[u8]) -> String {
        match self {
            KeySource::Addr { v6: false, .. } => {
                Ipv4Addr::from(<[u8; 4]>::try_from(mask).expect("4 bytes")).to_string()
            }
            KeySource::Addr { v6: true, .. } => {
                Ipv6Addr::from(<[u8; 16]>::try_from(mask).expect("16 bytes")).to_string()
            }
            KeySource::L4proto | KeySource::Port { .. } => mask
                .iter()
                .fold(0u32, |n, b| (n << 8) | u32::from(*b))
                .to_string(),
        }
    }
}

/// One field of a lookup key: its source, ANDed with `mask` (network byte
/// order, the field's length) unless None.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyField {
    pub source: KeySource,
    pub mask: Option<Vec<u8>>,
}

/// One rule of a [`Data::Rules`] chain.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ChainRule {
    /// `meta nfproto NFPROTO KEY vmap @MAP` (`nfproto` is `NFPROTO_IPV4`
    /// 2 or `NFPROTO_IPV6` 10: the key's addresses are of that family).
    Lookup {
        nfproto: u8,
        key: Vec<KeyField>,
        map: &'static str,
    },
    Goto(&'static str),
    Return,
}

impl ChainRule {
    /// The rule in nft syntax.
    pub fn text(&self) -> String {
        match self {
            ChainRule::Lookup { nfproto, key, map } => {
                let family = if *nfproto == 10 { "ipv6" } else { "ipv4" };
                let fields: Vec<String> = key
                    .iter()
                    .map(|f| match &f.mask {
                        None => f.source.text().to_string(),
                        Some(m) => format!("{} & {}", f.source.text(), f.source.mask_text(m)),
                    })
                    .collect();
                format!("meta nfproto {family} {} vmap @{map}", fields.join(" . "))
            }
            ChainRule::Goto(c) => format!("goto {c}"),
            ChainRule::Return => "return".into(),
        }
    }
}

/// `nft -f` text making the chain of a [`Data::Rules`] element and its
/// rules (replacing any it had).
pub fn chain_text(e: &SetElement) -> String {
    let Some(Data::Rules(rules)) = &e.data else {
        panic!("not a chain element: {}", e.text)
    };
    let (f, t, c) = (e.family.keyword(), e.table, e.set);
    let mut s = format!("add chain {f} {t} {c}\nflush chain {f} {t} {c}\n");
    for r in rules {
        let _ = writeln!(s, "add rule {f} {t} {c} {}", r.text());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_lookup_reads_as_nft_writes_it() {
        let r = ChainRule::Lookup {
            nfproto: 2,
            key: vec![
                KeyField {
                    source: KeySource::Addr {
                        v6: false,
                        dst: true,
                    },
                    mask: None,
                },
                KeyField {
                    source: KeySource::Addr {
                        v6: false,
                        dst: false,
                    },
                    mask: Some(vec![255, 255, 0, 0]),
                },
                KeyField {
                    source: KeySource::L4proto,
                    mask: Some(vec![0]),
                },
                KeyField {
                    source: KeySource::Port { dst: true },
                    mask: Some(vec![0xff, 0]),
                },
            ],
            map: "m",
        };
        assert_eq!(
            r.text(),
            "meta nfproto ipv4 ip daddr . ip saddr & 255.255.0.0 . meta l4proto & 0 . th dport & 65280 vmap @m"
        );
        assert_eq!(
            KeySource::Addr {
                v6: true,
                dst: false
            }
            .payload(),
            Some((PAYLOAD_NETWORK, 8))
        );
        assert_eq!(
            KeySource::Port { dst: true }.payload(),
            Some((PAYLOAD_TRANSPORT, 2))
        );
    }
}
