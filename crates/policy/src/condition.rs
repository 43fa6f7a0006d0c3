//! Conditions: what a rule matches, as a canonical box (per field a union,
//! AND across fields). A field that is `None` matches anything.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::packet::{Direction, Packet, Proto};

/// Inclusive port ranges, sorted and merged (adjacent ranges joined).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortRanges(Vec<(u16, u16)>);

impl PortRanges {
    /// Canonical form of `ranges` (each `(first, last)`, in any order).
    pub fn new(ranges: impl IntoIterator<Item = (u16, u16)>) -> Self {
        let mut v: Vec<(u16, u16)> = ranges
            .into_iter()
            .map(|(a, b)| (a.min(b), a.max(b)))
            .collect();
        v.sort_unstable();
        let mut out: Vec<(u16, u16)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        PortRanges(out)
    }

    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }

    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|&(a, b)| a <= port && port <= b)
    }

    fn overlaps(&self, other: &PortRanges) -> bool {
        self.0
            .iter()
            .any(|&(a, b)| other.0.iter().any(|&(c, d)| a <= d && c <= b))
    }

    fn covers(&self, other: &PortRanges) -> bool {
        other
            .0
            .iter()
            .all(|&(c, d)| self.0.iter().any(|&(a, b)| a <= c && d <= b))
    }
}

impl fmt::Display for PortRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        write!(f, "{{{}}}", parts.join(", "))
    }
}

/// What a rule matches. Local and remote are the endpoint's side and the
/// peer's: inbound, local is the destination.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Condition {
    pub protocols: Option<BTreeSet<Proto>>,
    pub local: Option<Vec<IpNet>>,
    pub remote: Option<Vec<IpNet>>,
    pub local_ports: Option<PortRanges>,
    pub remote_ports: Option<PortRanges>,
}

/// The first field of a condition a packet failed, for traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    Protocol,
    LocalAddress,
    RemoteAddress,
    LocalPort,
    RemotePort,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mismatch::Protocol => "protocol",
            Mismatch::LocalAddress => "local-address",
            Mismatch::RemoteAddress => "remote-address",
            Mismatch::LocalPort => "local-port",
            Mismatch::RemotePort => "remote-port",
        })
    }
}

/// Prefixes truncated, sorted, without any another one covers.
fn canonical(prefixes: impl IntoIterator<Item = IpNet>) -> Vec<IpNet> {
    let mut all: Vec<IpNet> = prefixes.into_iter().map(|p| p.trunc()).collect();
    all.sort_by_key(|p| (p.prefix_len(), *p));
    all.dedup();
    let mut out: Vec<IpNet> = Vec::new();
    for p in all {
        if !out.iter().any(|q| q.contains(&p)) {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn prefixes_overlap(a: &[IpNet], b: &[IpNet]) -> bool {
    a.iter()
        .any(|p| b.iter().any(|q| p.contains(q) || q.contains(p)))
}

fn prefixes_cover(a: &[IpNet], b: &[IpNet]) -> bool {
    b.iter().all(|q| a.iter().any(|p| p.contains(q)))
}

fn field_overlaps<T>(a: &Option<T>, b: &Option<T>, f: impl Fn(&T, &T) -> bool) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => f(a, b),
        _ => true,
    }
}

fn field_covers<T>(a: &Option<T>, b: &Option<T>, f: impl Fn(&T, &T) -> bool) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => f(a, b),
    }
}

impl Condition {
    /// Matches every packet.
    pub fn any() -> Self {
        Condition::default()
    }

    /// Only these protocols (an empty list is taken as any, as HCN does).
    pub fn protocols(mut self, protos: impl IntoIterator<Item = Proto>) -> Self {
        let set: BTreeSet<Proto> = protos.into_iter().collect();
        self.protocols = (!set.is_empty()).then_some(set);
        self
    }

    /// Only these endpoint-side prefixes (empty: any).
    pub fn local(mut self, prefixes: impl IntoIterator<Item = IpNet>) -> Self {
        let v = canonical(prefixes);
        self.local = (!v.is_empty()).then_some(v);
        self
    }

    /// Only these peer prefixes (empty: any).
    pub fn remote(mut self, prefixes: impl IntoIterator<Item = IpNet>) -> Self {
        let v = canonical(prefixes);
        self.remote = (!v.is_empty()).then_some(v);
        self
    }

    /// Only these endpoint-side ports (empty: any). Ports imply a protocol
    /// that carries them.
    pub fn local_ports(mut self, ranges: impl IntoIterator<Item = (u16, u16)>) -> Self {
        let r = PortRanges::new(ranges);
        self.local_ports = (!r.0.is_empty()).then_some(r);
        self
    }

    /// Only these peer ports (empty: any).
    pub fn remote_ports(mut self, ranges: impl IntoIterator<Item = (u16, u16)>) -> Self {
        let r = PortRanges::new(ranges);
        self.remote_ports = (!r.0.is_empty()).then_some(r);
        self
    }

    fn has_ports(&self) -> bool {
        self.local_ports.is_some() || self.remote_ports.is_some()
    }

    /// Whether `p`, crossing in direction `dir`, matches; else the first
    /// field that failed.
    pub fn check(&self, p: &Packet, dir: Direction) -> Result<(), Mismatch> {
        if let Some(ps) = &self.protocols {
            if !ps.contains(&p.proto) {
                return Err(Mismatch::Protocol);
            }
        }
        if self.has_ports() && !p.proto.has_ports() {
            return Err(Mismatch::Protocol);
        }
        let (local, local_port) = p.local(dir);
        let (remote, remote_port) = p.remote(dir);
        let within = |set: &Option<Vec<IpNet>>, a: IpAddr| {
            set.as_ref()
                .is_none_or(|v| v.iter().any(|n| n.contains(&a)))
        };
        if !within(&self.local, local) {
            return Err(Mismatch::LocalAddress);
        }
        if !within(&self.remote, remote) {
            return Err(Mismatch::RemoteAddress);
        }
        let port_in = |set: &Option<PortRanges>, port: Option<u16>| match (set, port) {
            (None, _) => true,
            (Some(r), Some(port)) => r.contains(port),
            (Some(_), None) => false,
        };
        if !port_in(&self.local_ports, local_port) {
            return Err(Mismatch::LocalPort);
        }
        if !port_in(&self.remote_ports, remote_port) {
            return Err(Mismatch::RemotePort);
        }
        Ok(())
    }

    /// Whether some packet matches both conditions (exact).
    pub fn overlaps(&self, other: &Condition) -> bool {
        let protos = match (&self.protocols, &other.protocols) {
            (Some(a), Some(b)) => a.intersection(b).copied().collect::<Vec<_>>(),
            (Some(a), None) | (None, Some(a)) => a.iter().copied().collect(),
            (None, None) => vec![Proto::TCP, Proto::ICMP],
        };
        let needs_ports = self.has_ports() || other.has_ports();
        if protos.is_empty() || (needs_ports && !protos.iter().any(|p| p.has_ports())) {
            return false;
        }
        field_overlaps(&self.local, &other.local, |a, b| prefixes_overlap(a, b))
            && field_overlaps(&self.remote, &other.remote, |a, b| prefixes_overlap(a, b))
            && field_overlaps(&self.local_ports, &other.local_ports, PortRanges::overlaps)
            && field_overlaps(
                &self.remote_ports,
                &other.remote_ports,
                PortRanges::overlaps,
            )
    }

    /// Whether every packet `other` matches, this one matches too (exact
    /// for canonical conditions).
    pub fn contains(&self, other: &Condition) -> bool {
        if self.has_ports() && !other.has_ports() {
            // `other` also matches portless packets of its protocols, unless
            // it only has protocols that carry ports... which still have
            // port values outside `self`'s ranges.
            return false;
        }
        field_covers(&self.protocols, &other.protocols, |a, b| b.is_subset(a))
            && field_covers(&self.local, &other.local, |a, b| prefixes_cover(a, b))
            && field_covers(&self.remote, &other.remote, |a, b| prefixes_cover(a, b))
            && field_covers(&self.local_ports, &other.local_ports, PortRanges::covers)
            && field_covers(&self.remote_ports, &other.remote_ports, PortRanges::covers)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(ps) = &self.protocols {
            let v: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
            parts.push(format!("proto {{{}}}", v.join(", ")));
        }
        let nets = |v: &[IpNet]| {
            v.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(v) = &self.local {
            parts.push(format!("local {{{}}}", nets(v)));
        }
        if let Some(v) = &self.remote {
            parts.push(format!("remote {{{}}}", nets(v)));
        }
        if let Some(r) = &self.local_ports {
            parts.push(format!("local-port {r}"));
        }
        if let Some(r) = &self.remote_ports {
            parts.push(format!("remote-port {r}"));
        }
        if parts.is_empty() {
            f.write_str("any")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn tcp(src: &str, sport: u16, dst: &str, dport: u16) -> Packet {
        Packet::new(
            Proto::TCP,
            src.parse().unwrap(),
            sport,
            dst.parse().unwrap(),
            dport,
        )
    }

    #[test]
    fn ports_merge_and_sort() {
        let r = PortRanges::new([(80, 80), (81, 90), (443, 443), (85, 100)]);
        assert_eq!(r.ranges(), &[(80, 100), (443, 443)]);
        assert_eq!(r.to_string(), "{80-100, 443}");
    }

    #[test]
    fn local_and_remote_follow_the_direction() {
        let c = Condition::any()
            .local([n("10.0.0.5/32")])
            .local_ports([(80, 80)]);
        let p = tcp("192.0.2.9", 40000, "10.0.0.5", 80);
        assert_eq!(c.check(&p, Direction::In), Ok(()));
        assert_eq!(c.check(&p, Direction::Out), Err(Mismatch::LocalAddress));
    }

    #[test]
    fn ports_never_match_portless_protocols() {
        let c = Condition::any().remote_ports([(0, 65535)]);
        let icmp = Packet::new(
            Proto::ICMP,
            "10.0.0.1".parse().unwrap(),
            0,
            "10.0.0.2".parse().unwrap(),
            0,
        );
        assert_eq!(c.check(&icmp, Direction::Out), Err(Mismatch::Protocol));
        let icmp_only = Condition::any().protocols([Proto::ICMP]);
        assert!(!c.overlaps(&icmp_only));
    }

    #[test]
    fn overlap_and_containment_are_exact() {
        let wide = Condition::any().remote([n("10.0.0.0/8")]);
        let narrow = Condition::any()
            .protocols([Proto::TCP])
            .remote([n("10.1.0.0/16")])
            .local_ports([(80, 80)]);
        let other = Condition::any().remote([n("192.168.0.0/16")]);
        assert!(wide.overlaps(&narrow) && narrow.overlaps(&wide));
        assert!(wide.contains(&narrow) && !narrow.contains(&wide));
        assert!(!wide.overlaps(&other));
        assert!(Condition::any().contains(&narrow));
    }

    #[test]
    fn covered_prefixes_are_dropped() {
        let c = Condition::any().remote([n("10.1.2.3/16"), n("10.0.0.0/8"), n("192.0.2.0/24")]);
        assert_eq!(c.remote, Some(vec![n("10.0.0.0/8"), n("192.0.2.0/24")]));
    }
}
