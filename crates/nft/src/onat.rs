//! `OutBoundNAT` of one endpoint, on any driver, as elements of the static
//! tables (schema §8.1; docs/policy.md, the `nat` layer).
//!
//! An endpoint may carry several OutBoundNAT policies, each with
//! `Exceptions` (destinations it leaves alone), `Destinations` (when given,
//! the only ones it NATs) and `VirtualIP` (the address it NATs to; the
//! host's otherwise). [`resolve`] is the meaning, for one destination; the
//! kernel gets the same answer for every destination from a partition of
//! the address space into ranges, each with its outcome, keyed by
//! `source . destination range`: not NATed ([`ONAT_EXCEPTIONS4`]), NATed
//! to an address ([`ONAT_VIPS4`]), or masqueraded to the host (no element,
//! the chain's last rule). So a packet costs two lookups whatever the
//! number of endpoints, policies or prefixes, and a change is elements.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::ruleset::{INGRESS_TABLE, ONAT_EXCEPTIONS4, ONAT_SOURCES4, ONAT_VIPS4, TABLE};
use crate::{Data, Family, SetElement};

/// One `OutBoundNAT` policy, IPv4.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnatPolicy {
    /// Destinations this policy never NATs; final (no later policy NATs them).
    pub exceptions: Vec<Ipv4Net>,
    /// When non-empty, the only destinations this policy NATs.
    pub destinations: Vec<Ipv4Net>,
    /// The address to NAT to; the host's (masquerade) when None.
    pub virtual_ip: Option<Ipv4Addr>,
}

/// Where a destination's traffic is NATed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnatTo {
    /// The host's address on the way out (masquerade).
    Host,
    /// A given address (`VirtualIP`).
    Address(Ipv4Addr),
}

/// An endpoint's outbound NAT: its policies, and what happens to a
/// destination none of them decides (`fallback`: a NAT network's endpoint
/// is masqueraded anyway; on the other drivers it keeps its address).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundNat {
    pub policies: Vec<OnatPolicy>,
    pub fallback: Option<SnatTo>,
}

impl OutboundNat {
    /// The policies in the order they decide: those with `Destinations`
    /// first (the more specific: the loopback-DSR idiom NATs the pod's own
    /// address that the general policy's exceptions list), then the rest,
    /// each group in the order given.
    pub fn ordered(&self) -> Vec<&OnatPolicy> {
        let (specific, general): (Vec<_>, Vec<_>) = self
            .policies
            .iter()
            .partition(|p| !p.destinations.is_empty());
        specific.into_iter().chain(general).collect()
    }
}

/// A NAT network's endpoint: what its policies leave is masqueraded, as
/// every NAT endpoint is.
pub fn masquerade_the_rest(policies: &[OnatPolicy]) -> OutboundNat {
    OutboundNat {
        policies: policies.to_vec(),
        fallback: Some(SnatTo::Host),
    }
}

/// An endpoint on the physical network (Transparent, L2): what its
/// policies leave keeps its own address.
pub fn keep_the_rest(policies: &[OnatPolicy]) -> OutboundNat {
    OutboundNat {
        policies: policies.to_vec(),
        fallback: None,
    }
}

/// What happens to traffic to `d`: the first policy (in
/// [`OutboundNat::ordered`]) that names `d` decides: an exception keeps the
/// source, a destination (or any, for a policy without `Destinations`) is
/// NATed; none: the fallback.
pub fn resolve(nat: &OutboundNat, d: Ipv4Addr) -> Option<SnatTo> {
    for p in nat.ordered() {
        if p.exceptions.iter().any(|e| e.contains(&d)) {
            return None;
        }
        if p.destinations.is_empty() || p.destinations.iter().any(|n| n.contains(&d)) {
            return Some(p.virtual_ip.map_or(SnatTo::Host, SnatTo::Address));
        }
    }
    nat.fallback
}

/// The address space cut into inclusive ranges `(first, last, outcome)`,
/// adjacent ranges of one outcome merged: every prefix of every policy
/// starts or ends a range, so the outcome is constant inside each.
pub fn partition(nat: &OutboundNat) -> Vec<(Ipv4Addr, Ipv4Addr, Option<SnatTo>)> {
    let mut cuts: Vec<u64> = vec![0, 1 << 32];
    for p in &nat.policies {
        for n in p.exceptions.iter().chain(&p.destinations) {
            cuts.push(u64::from(u32::from(n.network())));
            cuts.push(u64::from(u32::from(n.broadcast())) + 1);
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut out: Vec<(Ipv4Addr, Ipv4Addr, Option<SnatTo>)> = Vec::new();
    for w in cuts.windows(2) {
        let (first, last) = (w[0] as u32, (w[1] - 1) as u32);
        let outcome = resolve(nat, Ipv4Addr::from(first));
        match out.last_mut() {
            Some((_, end, o)) if *o == outcome => *end = Ipv4Addr::from(last),
            _ => out.push((Ipv4Addr::from(first), Ipv4Addr::from(last), outcome)),
        }
    }
    out
}

/// The elements of `source`'s outbound NAT. `detour`: the endpoint's
/// frames reach the host's stack only by the netdev detour (Transparent,
/// L2Bridge, L2Tunnel), which needs the ranges it must not detour too.
pub fn elements(source: Ipv4Addr, nat: &OutboundNat, detour: bool) -> Vec<SetElement> {
    let mut out = vec![SetElement {
        family: Family::Inet,
        table: TABLE,
        set: ONAT_SOURCES4,
        key: source.octets().to_vec(),
        key_end: None,
        data: None,
        text: source.to_string(),
    }];
    let parts = partition(nat);
    let tables: &[(Family, &'static str)] = if detour {
        &[(Family::Inet, TABLE), (Family::Netdev, INGRESS_TABLE)]
    } else {
        &[(Family::Inet, TABLE)]
    };
    for &(family, table) in tables {
        for (first, last, _) in parts.iter().filter(|(.., o)| o.is_none()) {
            out.push(range(
                family,
                table,
                ONAT_EXCEPTIONS4,
                source,
                *first,
                *last,
                None,
            ));
        }
    }
    for (first, last, o) in &parts {
        if let Some(SnatTo::Address(a)) = o {
            out.push(range(
                Family::Inet,
                TABLE,
                ONAT_VIPS4,
                source,
                *first,
                *last,
                Some(*a),
            ));
        }
    }
    out
}

/// `source . first-last` (`: to`), an element of an interval set or map.
fn range(
    family: Family,
    table: &'static str,
    set: &'static str,
    source: Ipv4Addr,
    first: Ipv4Addr,
    last: Ipv4Addr,
    to: Option<Ipv4Addr>,
) -> SetElement {
    let mut key = source.octets().to_vec();
    key.extend_from_slice(&first.octets());
    let mut key_end = source.octets().to_vec();
    key_end.extend_from_slice(&last.octets());
    let span = match Ipv4Net::new(
        first,
        32 - (u32::from(last) - u32::from(first)).count_ones() as u8,
    ) {
        Ok(n) if n.network() == first && n.broadcast() == last => n.to_string(),
        _ => format!("{first}-{last}"),
    };
    let text = match to {
        Some(a) => format!("{source} . {span} : {a}"),
        None => format!("{source} . {span}"),
    };
    SetElement {
        family,
        table,
        set,
        key,
        key_end: Some(key_end),
        data: to.map(|a| Data::Value(a.octets().to_vec())),
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn exceptions_keep_the_source_and_the_rest_is_masqueraded() {
        let nat = OutboundNat {
            policies: vec![OnatPolicy {
                exceptions: vec![net("10.0.0.0/8")],
                ..OnatPolicy::default()
            }],
            fallback: None,
        };
        assert_eq!(resolve(&nat, ip("10.1.2.3")), None);
        assert_eq!(resolve(&nat, ip("203.0.113.1")), Some(SnatTo::Host));
        let els = elements(ip("192.0.2.50"), &nat, true);
        let texts: Vec<_> = els.iter().map(|e| (e.family, e.text.as_str())).collect();
        assert_eq!(
            texts,
            [
                (Family::Inet, "192.0.2.50"),
                (Family::Inet, "192.0.2.50 . 10.0.0.0/8"),
                (Family::Netdev, "192.0.2.50 . 10.0.0.0/8"),
            ]
        );
        assert_eq!(els[1].key_end, Some(vec![192, 0, 2, 50, 10, 255, 255, 255]));
    }

    #[test]
    fn destinations_alone_nat_only_them() {
        let nat = OutboundNat {
            policies: vec![OnatPolicy {
                destinations: vec![net("203.0.113.7/32")],
                virtual_ip: Some(ip("192.0.2.200")),
                ..OnatPolicy::default()
            }],
            fallback: None,
        };
        let els = elements(ip("10.0.0.2"), &nat, false);
        let texts: Vec<_> = els.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "10.0.0.2",
                "10.0.0.2 . 0.0.0.0-203.0.113.6",
                "10.0.0.2 . 203.0.113.8-255.255.255.255",
                "10.0.0.2 . 203.0.113.7/32 : 192.0.2.200",
            ]
        );
        assert_eq!(els[3].data, Some(Data::Value(vec![192, 0, 2, 200])));
    }

    #[test]
    fn a_specific_policy_wins_over_a_general_exception() {
        // Loopback DSR: the pod's own address is NATed although the
        // general policy excepts the whole cluster CIDR; a NAT network's
        // endpoint falls back to masquerade.
        let nat = OutboundNat {
            policies: vec![
                OnatPolicy {
                    exceptions: vec![net("10.0.0.0/8")],
                    ..OnatPolicy::default()
                },
                OnatPolicy {
                    destinations: vec![net("10.0.0.2/32")],
                    ..OnatPolicy::default()
                },
            ],
            fallback: Some(SnatTo::Host),
        };
        assert_eq!(resolve(&nat, ip("10.0.0.2")), Some(SnatTo::Host));
        assert_eq!(resolve(&nat, ip("10.0.0.3")), None);
        assert_eq!(resolve(&nat, ip("8.8.8.8")), Some(SnatTo::Host));
        let parts = partition(&nat);
        assert_eq!(parts.len(), 5, "{parts:?}");
        let nat_fallback_only = OutboundNat {
            policies: Vec::new(),
            fallback: Some(SnatTo::Host),
        };
        assert_eq!(elements(ip("10.0.0.2"), &nat_fallback_only, false).len(), 1);
    }

    #[test]
    fn partition_agrees_with_resolve_everywhere_it_cuts() {
        let nat = OutboundNat {
            policies: vec![
                OnatPolicy {
                    exceptions: vec![net("10.0.0.0/8"), net("10.1.0.0/16"), net("0.0.0.0/1")],
                    ..OnatPolicy::default()
                },
                OnatPolicy {
                    destinations: vec![net("10.1.2.0/24"), net("192.0.2.0/24")],
                    exceptions: vec![net("10.1.2.128/25")],
                    virtual_ip: Some(ip("198.51.100.9")),
                },
            ],
            fallback: None,
        };
        let parts = partition(&nat);
        assert_eq!(parts.first().unwrap().0, ip("0.0.0.0"));
        assert_eq!(parts.last().unwrap().1, ip("255.255.255.255"));
        for w in parts.windows(2) {
            assert_eq!(u32::from(w[0].1) + 1, u32::from(w[1].0), "contiguous");
            assert_ne!(w[0].2, w[1].2, "merged");
        }
        for (first, last, o) in &parts {
            for a in [*first, *last] {
                assert_eq!(resolve(&nat, a), *o, "{a}");
            }
        }
    }
}
