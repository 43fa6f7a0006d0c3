//! Address allocation for hostnet networks: IPs from a subnet, MACs per network.
//!
//! HNS hands every endpoint an IP address (unless the caller gives one) and a
//! MAC address. The rules live here, free of I/O, so the core can rebuild a
//! pool from stored endpoints at start-up and test the rules in isolation:
//!
//! * the gateway and, for IPv4, the network and broadcast addresses are never
//!   handed out (for IPv6, the subnet-router anycast address, `prefix::`);
//! * allocation continues after the last address handed out, wrapping around
//!   once, so a just-freed address is not given to the next endpoint while
//!   stale ARP/neighbour entries or conntrack state may still point at it.
//!
//! Both pools keep their taken values as a set of disjoint ranges, so
//! allocate, reserve and release are O(log r), r being the number of runs of
//! consecutive taken values (1 for a pool filled sequentially), whatever the
//! prefix size: a /16 with 60k addresses in use or an IPv6 /64 alike.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an address could not be reserved or allocated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// A static IP that is not in the network's subnet.
    #[error("{ip} is outside subnet {subnet}")]
    OutsideSubnet {
        /// The requested address.
        ip: IpAddr,
        /// The network's subnet.
        subnet: IpNet,
    },
    /// A static IP already given to another endpoint.
    #[error("{ip} is already in use")]
    InUse {
        /// The requested address.
        ip: IpAddr,
    },
    /// A static IP that is never handed out.
    #[error("{ip} is reserved: it is the {why}")]
    Reserved {
        /// The requested address.
        ip: IpAddr,
        /// Which reserved address it is: "network address", "broadcast address", "gateway", ...
        why: &'static str,
    },
    /// Every usable address of the subnet is in use.
    #[error("no free address left in subnet {subnet}")]
    Exhausted {
        /// The network's subnet.
        subnet: IpNet,
    },
    /// Every MAC address of the network's MAC pool is in use.
    #[error("no free MAC address left in the network's MAC pool")]
    MacExhausted,
    /// A user-given MAC already given to another endpoint.
    #[error("MAC address {mac} is already in use")]
    MacInUse {
        /// The requested MAC, as `00-15-5D-00-00-01`.
        mac: String,
    },
}

/// A set of `u128` values stored as disjoint, non-adjacent inclusive runs
/// `start -> end`.
#[derive(Debug, Clone, Default)]
struct RunSet {
    runs: BTreeMap<u128, u128>,
}

impl RunSet {
    /// The run containing `v`, as `(start, end)`.
    fn run_of(&self, v: u128) -> Option<(u128, u128)> {
        let (&start, &end) = self.runs.range(..=v).next_back()?;
        (end >= v).then_some((start, end))
    }

    fn contains(&self, v: u128) -> bool {
        self.run_of(v).is_some()
    }

    /// The lowest value `>= v` not in the set, if one fits in a `u128`.
    fn first_absent_from(&self, v: u128) -> Option<u128> {
        match self.run_of(v) {
            // Runs are never adjacent, so the value after a run is absent.
            Some((_, end)) => end.checked_add(1),
            None => Some(v),
        }
    }

    /// Adds `v`; false if it was already present.
    fn insert(&mut self, v: u128) -> bool {
        if self.contains(v) {
            return false;
        }
        let mut start = v;
        let mut end = v;
        if let Some(prev) = v.checked_sub(1).and_then(|p| self.run_of(p)) {
            start = prev.0;
        }
        if let Some(next_end) = v.checked_add(1).and_then(|n| self.runs.remove(&n)) {
            end = next_end;
        }
        self.runs.insert(start, end);
        true
    }

    /// Removes `v`; false if it was absent.
    fn remove(&mut self, v: u128) -> bool {
        let Some((start, end)) = self.run_of(v) else {
            return false;
        };
        self.runs.remove(&start);
        if start < v {
            self.runs.insert(start, v - 1);
        }
        if v < end {
            self.runs.insert(v + 1, end);
        }
        true
    }
}

/// Takes the lowest value of `first..=last` absent from `taken`, searching from
/// just after `cursor` and wrapping around once; records it and moves the cursor.
fn take_next(
    taken: &mut RunSet,
    cursor: &mut Option<u128>,
    first: u128,
    last: u128,
) -> Option<u128> {
    let start = match cursor.and_then(|c| c.checked_add(1)) {
        Some(s) if (first..=last).contains(&s) => s,
        _ => first,
    };
    let free = [start, first]
        .into_iter()
        .filter_map(|from| taken.first_absent_from(from))
        .find(|&v| v <= last)?;
    taken.insert(free);
    *cursor = Some(free);
    Some(free)
}

fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a).into(),
        IpAddr::V6(a) => a.into(),
    }
}

/// The first and last address of `prefix`, as numbers.
fn bounds(prefix: IpNet) -> (u128, u128) {
    (ip_to_u128(prefix.network()), ip_to_u128(prefix.broadcast()))
}

/// The addresses of `prefix` that are never handed out regardless of the
/// gateway: IPv4 network and broadcast (except in /31 and /32, RFC 3021) and
/// the IPv6 subnet-router anycast address (except in /127 and /128, RFC 6164).
fn structural_reserved(prefix: IpNet) -> Vec<(u128, &'static str)> {
    let (first, last) = bounds(prefix);
    match prefix {
        IpNet::V4(p) if p.prefix_len() < 31 => {
            vec![(first, "network address"), (last, "broadcast address")]
        }
        IpNet::V6(p) if p.prefix_len() < 127 => vec![(first, "subnet-router anycast address")],
        _ => Vec::new(),
    }
}

/// The first usable host address of a prefix: the default gateway when none is given.
///
/// `None` when the prefix has room for fewer than two hosts (a /32 or /128),
/// where a gateway would leave no address for an endpoint.
pub fn default_gateway(prefix: IpNet) -> Option<IpAddr> {
    let (first, last) = bounds(prefix);
    let reserved = structural_reserved(prefix);
    let gateway = if reserved.iter().any(|&(v, _)| v == first) {
        first + 1
    } else {
        first
    };
    // At least one more usable address must follow the gateway.
    let next = gateway.checked_add(1).filter(|&n| n <= last)?;
    let host_after = (next..=last).any(|v| !reserved.iter().any(|&(r, _)| r == v));
    host_after.then(|| SubnetPool::from_u128(prefix, gateway))
}

/// Addresses of one subnet: which are taken. The gateway and (IPv4) network and
/// broadcast addresses are reserved.
///
/// Every operation is O(log r), r being the number of runs of consecutive
/// taken addresses (see the crate docs).
#[derive(Debug, Clone)]
pub struct SubnetPool {
    prefix: IpNet,
    gateway: Option<IpAddr>,
    /// Addresses in use plus the reserved ones that lie inside the prefix.
    taken: RunSet,
    /// The reserved addresses inside the prefix and why.
    reserved: Vec<(u128, &'static str)>,
    in_use: usize,
    /// The last address handed out by `allocate`.
    cursor: Option<u128>,
}

impl SubnetPool {
    /// A pool for `prefix` with nothing in use. A gateway outside the prefix
    /// (an off-link gateway) reserves nothing.
    pub fn new(prefix: IpNet, gateway: Option<IpAddr>) -> Self {
        let mut reserved = structural_reserved(prefix);
        if let Some(gw) = gateway.filter(|&gw| prefix.contains(&gw)) {
            let gw = ip_to_u128(gw);
            if !reserved.iter().any(|&(v, _)| v == gw) {
                reserved.push((gw, "gateway"));
            }
        }
        let mut taken = RunSet::default();
        for &(v, _) in &reserved {
            taken.insert(v);
        }
        Self {
            prefix,
            gateway,
            taken,
            reserved,
            in_use: 0,
            cursor: None,
        }
    }

    /// The subnet, as given to [`SubnetPool::new`].
    pub fn prefix(&self) -> IpNet {
        self.prefix
    }

    /// The gateway, as given to [`SubnetPool::new`].
    pub fn gateway(&self) -> Option<IpAddr> {
        self.gateway
    }

    /// Whether `ip` lies in the subnet (reserved addresses included).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.prefix.contains(&ip)
    }

    /// Marks a static IP as in use: it must be inside the subnet, not reserved
    /// and not already in use.
    pub fn reserve(&mut self, ip: IpAddr) -> Result<(), IpamError> {
        if !self.contains(ip) {
            return Err(IpamError::OutsideSubnet {
                ip,
                subnet: self.prefix,
            });
        }
        let v = ip_to_u128(ip);
        if let Some(&(_, why)) = self.reserved.iter().find(|&&(r, _)| r == v) {
            return Err(IpamError::Reserved { ip, why });
        }
        if !self.taken.insert(v) {
            return Err(IpamError::InUse { ip });
        }
        self.in_use += 1;
        Ok(())
    }

    /// Hands out the lowest free address after the last one handed out,
    /// wrapping around once, so freed addresses are not reused immediately.
    /// On [`IpamError::Exhausted`] nothing changes.
    pub fn allocate(&mut self) -> Result<IpAddr, IpamError> {
        let (first, last) = bounds(self.prefix);
        let v = take_next(&mut self.taken, &mut self.cursor, first, last).ok_or(
            IpamError::Exhausted {
                subnet: self.prefix,
            },
        )?;
        self.in_use += 1;
        Ok(Self::from_u128(self.prefix, v))
    }

    /// Makes the next [`SubnetPool::allocate`] look from the address at
    /// `offset` (modulo the subnet's size) on. Hosts sharing one subnet
    /// (cluster mode) that collided on an address move apart this way
    /// instead of walking on in step and colliding again.
    pub fn move_cursor(&mut self, offset: u128) {
        let (first, last) = bounds(self.prefix);
        let size = last - first + 1;
        self.cursor = Some(first + offset % size);
    }

    /// Returns `ip` to the pool; false if it was not in use (or is reserved).
    pub fn release(&mut self, ip: IpAddr) -> bool {
        if !self.contains(ip) {
            return false;
        }
        let v = ip_to_u128(ip);
        if self.reserved.iter().any(|&(r, _)| r == v) || !self.taken.remove(v) {
            return false;
        }
        self.in_use -= 1;
        true
    }

    /// How many addresses are in use (reserved ones not counted).
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    fn from_u128(prefix: IpNet, v: u128) -> IpAddr {
        match prefix {
            // Values of an IPv4 prefix always fit in 32 bits.
            IpNet::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
            IpNet::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
        }
    }
}

/// Prefix of MACs derived from an IPv4 address: locally administered, "N" for hostnet.
const MAC_PREFIX_V4: [u8; 2] = [0x02, 0x4E];
/// Prefix of MACs derived from the low 32 bits of an IPv6 address.
const MAC_PREFIX_V6: [u8; 2] = [0x02, 0x4F];
/// Prefix of the fallback MACs, when neither a range nor a usable derived MAC exists.
const MAC_PREFIX_FALLBACK: [u8; 2] = [0x02, 0x4D];

fn mac_to_u128(mac: [u8; 6]) -> u128 {
    mac.iter().fold(0, |acc, &b| acc << 8 | u128::from(b))
}

fn u128_to_mac(v: u128) -> [u8; 6] {
    let b = v.to_be_bytes();
    [b[10], b[11], b[12], b[13], b[14], b[15]]
}

fn mac_to_string(mac: [u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02X}")).collect();
    parts.join("-")
}

fn prefixed_mac(prefix: [u8; 2], low: [u8; 4]) -> [u8; 6] {
    [prefix[0], prefix[1], low[0], low[1], low[2], low[3]]
}

/// MAC addresses of one network.
///
/// With a range (the HCN network's MacPool) MACs come from the range in order,
/// like IPs. Without one they are derived from the endpoint's IP, like
/// docker's `02:42:` scheme, so they are unique within a subnet and stable
/// across endpoint re-creation.
#[derive(Debug, Clone)]
pub struct MacPool {
    /// Inclusive bounds of the configured range; empty if start > end.
    range: Option<(u128, u128)>,
    taken: RunSet,
    /// The last MAC handed out from the range (or the fallback range).
    cursor: Option<u128>,
}

impl MacPool {
    /// A pool allocating from `range` (inclusive), or deriving MACs from IPs
    /// when `None`. An inverted range is empty.
    pub fn new(range: Option<([u8; 6], [u8; 6])>) -> Self {
        Self {
            range: range.map(|(a, b)| (mac_to_u128(a), mac_to_u128(b))),
            taken: RunSet::default(),
            cursor: None,
        }
    }

    /// With a range (HCN MacPool): lowest free MAC of the range after the
    /// cursor, wrapping around once. Without one: derived from the IPv4 address
    /// as 02-4E-a-b-c-d ("N" for hostnet, locally administered, unique per
    /// subnet like docker's 02:42 scheme); for IPv6-only, from the low 32 bits of
    /// the address with a 02-4F prefix. If there is no address, or the derived
    /// MAC is already taken (a user-given MAC, or two IPv6 addresses with the
    /// same low 32 bits), the next free MAC of 02-4D-00-00-00-00 ..
    /// 02-4D-FF-FF-FF-FF.
    pub fn allocate(&mut self, ip: Option<IpAddr>) -> Result<[u8; 6], IpamError> {
        if let Some((first, last)) = self.range {
            return take_next(&mut self.taken, &mut self.cursor, first, last)
                .map(u128_to_mac)
                .ok_or(IpamError::MacExhausted);
        }
        let derived = match ip {
            Some(IpAddr::V4(a)) => Some(prefixed_mac(MAC_PREFIX_V4, a.octets())),
            Some(IpAddr::V6(a)) => {
                let o = a.octets();
                Some(prefixed_mac(MAC_PREFIX_V6, [o[12], o[13], o[14], o[15]]))
            }
            None => None,
        };
        if let Some(mac) = derived {
            if self.taken.insert(mac_to_u128(mac)) {
                return Ok(mac);
            }
        }
        let first = mac_to_u128(prefixed_mac(MAC_PREFIX_FALLBACK, [0; 4]));
        let last = mac_to_u128(prefixed_mac(MAC_PREFIX_FALLBACK, [0xFF; 4]));
        take_next(&mut self.taken, &mut self.cursor, first, last)
            .map(u128_to_mac)
            .ok_or(IpamError::MacExhausted)
    }

    /// Marks a user-given MAC as in use; it need not lie in the range.
    pub fn reserve(&mut self, mac: [u8; 6]) -> Result<(), IpamError> {
        if self.taken.insert(mac_to_u128(mac)) {
            Ok(())
        } else {
            Err(IpamError::MacInUse {
                mac: mac_to_string(mac),
            })
        }
    }

    /// Returns `mac` to the pool; releasing a free MAC does nothing.
    pub fn release(&mut self, mac: [u8; 6]) {
        self.taken.remove(mac_to_u128(mac));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn pool(prefix: &str) -> SubnetPool {
        let prefix = net(prefix);
        SubnetPool::new(prefix, default_gateway(prefix))
    }

    #[test]
    fn default_gateways() {
        let gw = |p: &str| default_gateway(net(p));
        assert_eq!(gw("10.0.0.0/24"), Some(ip("10.0.0.1")));
        assert_eq!(gw("10.0.0.77/24"), Some(ip("10.0.0.1")));
        assert_eq!(gw("10.0.0.0/30"), Some(ip("10.0.0.1")));
        assert_eq!(gw("10.0.0.0/31"), Some(ip("10.0.0.0")));
        assert_eq!(gw("10.0.0.1/32"), None);
        assert_eq!(gw("fd00::/64"), Some(ip("fd00::1")));
        assert_eq!(gw("fd00::/127"), Some(ip("fd00::")));
        assert_eq!(gw("fd00::1/128"), None);
        assert_eq!(gw("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"), None);
        assert_eq!(gw("::/0"), Some(ip("::1")));
    }

    #[test]
    fn static_reservation_rules() {
        let mut p = pool("10.0.0.0/24");
        assert_eq!(p.gateway(), Some(ip("10.0.0.1")));
        assert_eq!(p.prefix(), net("10.0.0.0/24"));
        assert!(p.contains(ip("10.0.0.255")));
        assert!(!p.contains(ip("10.0.1.0")));
        assert!(!p.contains(ip("fd00::1")));

        let outside = p.reserve(ip("10.0.1.5")).unwrap_err();
        assert_eq!(
            outside,
            IpamError::OutsideSubnet {
                ip: ip("10.0.1.5"),
                subnet: net("10.0.0.0/24")
            }
        );
        assert!(outside.to_string().contains("outside subnet 10.0.0.0/24"));
        assert!(matches!(
            p.reserve(ip("fd00::5")),
            Err(IpamError::OutsideSubnet { .. })
        ));
        for (addr, why) in [
            ("10.0.0.0", "network address"),
            ("10.0.0.255", "broadcast address"),
            ("10.0.0.1", "gateway"),
        ] {
            assert_eq!(
                p.reserve(ip(addr)),
                Err(IpamError::Reserved { ip: ip(addr), why })
            );
            assert!(!p.release(ip(addr)));
        }
        p.reserve(ip("10.0.0.10")).unwrap();
        assert_eq!(
            p.reserve(ip("10.0.0.10")),
            Err(IpamError::InUse {
                ip: ip("10.0.0.10")
            })
        );
        assert_eq!(p.in_use(), 1);
        assert!(p.release(ip("10.0.0.10")));
        assert!(!p.release(ip("10.0.0.10")));
        assert!(!p.release(ip("192.168.0.1")));
        assert_eq!(p.in_use(), 0);
    }

    #[test]
    fn off_link_or_missing_gateway_reserves_nothing_extra() {
        let mut p = SubnetPool::new(net("10.0.0.0/29"), None);
        assert_eq!(p.allocate(), Ok(ip("10.0.0.1")));
        let mut p = SubnetPool::new(net("10.0.0.0/29"), Some(ip("192.168.1.1")));
        assert_eq!(p.allocate(), Ok(ip("10.0.0.1")));
        // A gateway in the middle of the subnet is skipped.
        let mut p = SubnetPool::new(net("10.0.0.0/29"), Some(ip("10.0.0.2")));
        assert_eq!(p.allocate(), Ok(ip("10.0.0.1")));
        assert_eq!(p.allocate(), Ok(ip("10.0.0.3")));
    }

    #[test]
    fn sequential_allocation_skips_static_ips() {
        let mut p = pool("172.20.0.0/16");
        p.reserve(ip("172.20.0.4")).unwrap();
        let got: Vec<_> = (0..4).map(|_| p.allocate().unwrap()).collect();
        assert_eq!(
            got,
            ["172.20.0.2", "172.20.0.3", "172.20.0.5", "172.20.0.6"].map(ip)
        );
        assert_eq!(p.in_use(), 5);
    }

    #[test]
    fn slash_30_exhaustion() {
        let mut p = pool("10.1.0.0/30");
        assert_eq!(p.allocate(), Ok(ip("10.1.0.2")));
        let exhausted = IpamError::Exhausted {
            subnet: net("10.1.0.0/30"),
        };
        assert_eq!(p.allocate(), Err(exhausted.clone()));
        assert_eq!(p.allocate(), Err(exhausted));
        assert_eq!(p.in_use(), 1);
        assert!(p.release(ip("10.1.0.2")));
        assert_eq!(p.allocate(), Ok(ip("10.1.0.2")));
    }

    #[test]
    fn freed_addresses_are_reused_only_after_wrapping() {
        let mut p = pool("10.0.0.0/29"); // hosts .2 .. .6 after the gateway
        let all: Vec<_> = (0..5).map(|_| p.allocate().unwrap()).collect();
        assert_eq!(all.last(), Some(&ip("10.0.0.6")));
        assert!(p.release(ip("10.0.0.3")));
        assert!(p.release(ip("10.0.0.5")));
        assert_eq!(p.allocate(), Ok(ip("10.0.0.3")));
        assert_eq!(p.allocate(), Ok(ip("10.0.0.5")));
        assert!(p.allocate().is_err());

        // Free the oldest address but keep the latest: the next one still moves forward.
        let mut p = pool("10.0.0.0/29");
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        assert!(p.release(a));
        assert_eq!(p.allocate(), Ok(ip("10.0.0.4")));
        assert!(p.release(b));
        assert_eq!(p.allocate(), Ok(ip("10.0.0.5")));
    }

    #[test]
    fn tiny_prefixes() {
        let mut p = SubnetPool::new(net("10.0.0.0/31"), None);
        assert_eq!(p.allocate(), Ok(ip("10.0.0.0")));
        assert_eq!(p.allocate(), Ok(ip("10.0.0.1")));
        assert!(p.allocate().is_err());
        let mut p = SubnetPool::new(net("10.0.0.9/32"), None);
        assert_eq!(p.allocate(), Ok(ip("10.0.0.9")));
        assert!(p.allocate().is_err());
        let mut p = SubnetPool::new(net("::/0"), Some(ip("::1")));
        p.reserve(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
            .unwrap();
        assert_eq!(p.allocate(), Ok(ip("::2")));
    }

    #[test]
    fn ipv6_slash_64() {
        let mut p = pool("fd00:1:2:3::/64");
        assert_eq!(p.gateway(), Some(ip("fd00:1:2:3::1")));
        assert_eq!(
            p.reserve(ip("fd00:1:2:3::")),
            Err(IpamError::Reserved {
                ip: ip("fd00:1:2:3::"),
                why: "subnet-router anycast address"
            })
        );
        assert_eq!(p.allocate(), Ok(ip("fd00:1:2:3::2")));
        p.reserve(ip("fd00:1:2:3:ffff:ffff:ffff:fffe")).unwrap();
        p.reserve(ip("fd00:1:2:3:ffff:ffff:ffff:ffff")).unwrap(); // no broadcast in IPv6
        assert_eq!(p.allocate(), Ok(ip("fd00:1:2:3::3")));
        assert_eq!(p.in_use(), 4);
    }

    #[test]
    fn ipv6_wraps_at_the_end_of_the_prefix() {
        let mut p = SubnetPool::new(net("fd00::/126"), None); // ::1 ::2 ::3
        assert_eq!(p.allocate(), Ok(ip("fd00::1")));
        assert_eq!(p.allocate(), Ok(ip("fd00::2")));
        assert_eq!(p.allocate(), Ok(ip("fd00::3")));
        assert!(p.release(ip("fd00::1")));
        assert_eq!(p.allocate(), Ok(ip("fd00::1")));
        assert!(matches!(p.allocate(), Err(IpamError::Exhausted { .. })));
    }

    #[test]
    fn fills_a_slash_16() {
        let mut p = pool("10.99.0.0/16");
        let n = 65536 - 3; // minus network, broadcast, gateway
        for _ in 0..n {
            p.allocate().unwrap();
        }
        assert_eq!(p.in_use(), n);
        assert!(p.allocate().is_err());
        assert!(p.release(ip("10.99.128.7")));
        assert_eq!(p.allocate(), Ok(ip("10.99.128.7")));
    }

    /// A small deterministic generator (xorshift64*), so the test needs no crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn random_ops(prefix: &str, gateway: Option<&str>, seed: u64) {
        let prefix = net(prefix);
        let gateway = gateway.map(ip);
        let mut p = SubnetPool::new(prefix, gateway);
        let hosts: Vec<IpAddr> = prefix.hosts().collect();
        let usable: HashSet<IpAddr> = hosts
            .iter()
            .copied()
            .filter(|&h| Some(h) != gateway && h != prefix.network())
            .collect();
        let mut used: HashSet<IpAddr> = HashSet::new();
        let mut rng = Rng(seed);
        for _ in 0..5000 {
            match rng.below(10) {
                0..=4 => match p.allocate() {
                    Ok(a) => {
                        assert!(usable.contains(&a), "{a} is reserved or outside");
                        assert!(used.insert(a), "{a} handed out twice");
                    }
                    Err(e) => {
                        assert_eq!(e, IpamError::Exhausted { subnet: prefix });
                        assert_eq!(used.len(), usable.len());
                    }
                },
                5..=6 => {
                    let a = hosts[rng.below(hosts.len())];
                    let expect_ok = usable.contains(&a) && !used.contains(&a);
                    assert_eq!(p.reserve(a).is_ok(), expect_ok, "reserve {a}");
                    if expect_ok {
                        used.insert(a);
                    }
                }
                _ => {
                    let a = hosts[rng.below(hosts.len())];
                    assert_eq!(p.release(a), used.remove(&a), "release {a}");
                }
            }
            assert_eq!(p.in_use(), used.len());
        }
    }

    #[test]
    fn random_operations_never_hand_out_reserved_or_used() {
        random_ops("192.168.7.0/27", Some("192.168.7.1"), 0x5eed);
        random_ops("192.168.7.0/27", Some("192.168.7.17"), 42);
        random_ops("fd00::/123", Some("fd00::1"), 7);
    }

    #[test]
    fn mac_range_allocation_and_exhaustion() {
        let start = [0x00, 0x15, 0x5D, 0x00, 0x00, 0xFE];
        let end = [0x00, 0x15, 0x5D, 0x00, 0x01, 0x01];
        let mut m = MacPool::new(Some((start, end)));
        m.reserve([0x00, 0x15, 0x5D, 0x00, 0x00, 0xFF]).unwrap();
        assert_eq!(m.allocate(None), Ok(start));
        assert_eq!(
            m.allocate(Some(ip("10.0.0.2"))),
            Ok([0, 0x15, 0x5D, 0, 1, 0])
        );
        assert_eq!(m.allocate(None), Ok(end));
        assert_eq!(m.allocate(None), Err(IpamError::MacExhausted));
        m.release(start);
        assert_eq!(m.allocate(None), Ok(start));
        assert_eq!(m.allocate(None), Err(IpamError::MacExhausted));

        let mut empty = MacPool::new(Some((end, start)));
        assert_eq!(empty.allocate(None), Err(IpamError::MacExhausted));
    }

    #[test]
    fn derived_macs() {
        let mut m = MacPool::new(None);
        assert_eq!(
            m.allocate(Some(ip("10.0.0.5"))),
            Ok([0x02, 0x4E, 10, 0, 0, 5])
        );
        assert_eq!(
            m.allocate(Some(ip("fd00::a:b0c:d0e"))),
            Ok([0x02, 0x4F, 0x0b, 0x0c, 0x0d, 0x0e])
        );
        // Taken derived MACs and address-less endpoints fall back to 02-4D-...
        assert_eq!(
            m.allocate(Some(ip("10.0.0.5"))),
            Ok([0x02, 0x4D, 0, 0, 0, 0])
        );
        assert_eq!(m.allocate(None), Ok([0x02, 0x4D, 0, 0, 0, 1]));
        m.release([0x02, 0x4E, 10, 0, 0, 5]);
        assert_eq!(
            m.allocate(Some(ip("10.0.0.5"))),
            Ok([0x02, 0x4E, 10, 0, 0, 5])
        );
    }

    #[test]
    fn user_macs() {
        let mut m = MacPool::new(None);
        m.reserve([0x02, 0x4E, 10, 0, 0, 6]).unwrap();
        let err = m.reserve([0x02, 0x4E, 10, 0, 0, 6]).unwrap_err();
        assert_eq!(
            err,
            IpamError::MacInUse {
                mac: "02-4E-0A-00-00-06".into()
            }
        );
        assert!(err.to_string().contains("02-4E-0A-00-00-06"));
        assert_ne!(
            m.allocate(Some(ip("10.0.0.6"))),
            Ok([0x02, 0x4E, 10, 0, 0, 6])
        );
        m.release([0x02, 0x4E, 10, 0, 0, 6]);
        m.reserve([0x02, 0x4E, 10, 0, 0, 6]).unwrap();
    }

    #[test]
    fn run_set() {
        let mut s = RunSet::default();
        for v in [5, 7, 6, 1, 3, 2] {
            assert!(s.insert(v));
        }
        assert!(!s.insert(6));
        assert_eq!(s.runs.len(), 2);
        assert_eq!(s.first_absent_from(1), Some(4));
        assert_eq!(s.first_absent_from(4), Some(4));
        assert_eq!(s.first_absent_from(6), Some(8));
        assert!(s.remove(6));
        assert!(!s.remove(6));
        assert_eq!(s.runs.len(), 3);
        assert_eq!(s.first_absent_from(5), Some(6));
        assert!(s.insert(u128::MAX));
        assert_eq!(s.first_absent_from(u128::MAX), None);
    }

    #[test]
    fn move_cursor_continues_from_the_given_offset() {
        let mut pool = SubnetPool::new("10.0.0.0/24".parse().unwrap(), None);
        pool.move_cursor(100);
        assert_eq!(
            pool.allocate().unwrap(),
            "10.0.0.101".parse::<IpAddr>().unwrap()
        );
        pool.move_cursor(256 + 254);
        // Past the last free address it wraps to the first.
        assert_eq!(
            pool.allocate().unwrap(),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }
}
