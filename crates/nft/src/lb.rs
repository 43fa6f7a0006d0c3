//! Load balancers as elements of static maps (docs/load-balancers.md).
//!
//! A packet's cost does not depend on the number of load balancers: the
//! first packet of a connection costs one verdict-map lookup keyed
//! `daddr . l4proto . dport` (or `l4proto . dport` on the host's own
//! addresses, NodePort-style), which sends it to a static *pick* chain
//! (distribution × VIP or node port × number of backends); the pick chain
//! hashes (`numgen random`, or `jhash` of the source address for affinity)
//! to a slot, `mod N`, and DNATs through one hash-map lookup keyed by the
//! frontend and the slot: N elements for N backends. Over [`MAX_SLOTS`]
//! backends the hash is `mod 65536` and each backend owns a range of
//! buckets in an interval map. Conntrack keeps a connection on its
//! backend: only a connection's first packet passes a nat chain.
//!
//! Which dispatch map an LB's frontend is in says who reaches it: from
//! containers (packets arriving on a hostnet bridge), from outside (any
//! other interface), from the host itself (the output hook). Creating,
//! changing or deleting an LB is a handful of element changes; no chain
//! or rule is ever made or removed.
//!
//! IPv6 frontends have maps of their own (`…6`, keyed by `ipv6_addr`)
//! and share the pick chains: each pick chain has an IPv4 and an IPv6
//! rule for its marks and its DNAT, guarded by `meta nfproto`, so a
//! packet still costs the same lookups whatever its family.

use std::fmt::Write;
use std::net::IpAddr;
use std::sync::OnceLock;

pub use crate::acl::IpFamily;
use crate::ruleset::{port, TABLE};
use crate::{Data, Family, SetElement};

/// Number of buckets a frontend's backends share in the interval map.
pub const BUCKETS: u32 = 65536;

/// Frontends with up to this many backends pick through a hash map of
/// slots, one per backend (`numgen random mod N` in a static chain for N):
/// a change of a hash map costs O(the elements changed). Larger ones use
/// the interval map of bucket ranges, whose kernel form (pipapo) copies
/// itself on each transaction, so a change there costs O(all its elements).
pub const MAX_SLOTS: usize = 64;

/// The conntrack mark of a connection to a VIP frontend with a SourceVIP
/// is this | its port, of one to a node port `NODE_MARK` | its port: the
/// post-routing NAT hook sees the DNATed packet, and nft cannot key a
/// lookup by the original port (`ct original proto-dst` has no fixed
/// type), so the pick chain leaves the frontend's port in the mark.
pub const VIP_MARK: u32 = 0x4c42_0000;
/// See [`VIP_MARK`].
pub const NODE_MARK: u32 = 0x4e50_0000;

/// How a frontend chooses a backend for a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pick {
    /// `numgen random`: per connection.
    Random,
    /// `jhash ip saddr`: every connection of one client to the same
    /// backend while the backend set is unchanged (DistributionType 2).
    SourceIp,
    /// `jhash ip saddr . meta l4proto` (DistributionType 1).
    SourceIpProtocol,
}

impl Pick {
    /// The hash over all buckets, for packets of `family`.
    fn hash(self, family: IpFamily) -> String {
        let ip = nft_keyword(family);
        match self {
            Pick::Random => "numgen random mod 65536".into(),
            Pick::SourceIp => format!("jhash {ip} saddr mod 65536"),
            Pick::SourceIpProtocol => format!("jhash {ip} saddr . meta l4proto mod 65536"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Pick::Random => "random",
            Pick::SourceIp => "source",
            Pick::SourceIpProtocol => "source_proto",
        }
    }

    /// The same hash taken modulo `n`: a slot of the hash map.
    fn slot_hash(self, family: IpFamily, n: usize) -> String {
        let hash = self.hash(family);
        format!("{} mod {n}", &hash[..hash.len() - " mod 65536".len()])
    }

    const ALL: [Pick; 3] = [Pick::Random, Pick::SourceIp, Pick::SourceIpProtocol];
}

/// Who reaches a frontend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Reach {
    /// Containers: packets that arrive on a hostnet bridge.
    pub guests: bool,
    /// Everything else the host routes (other interfaces).
    pub outside: bool,
    /// Processes of the host itself.
    pub host: bool,
}

/// One frontend of a load balancer, with its backends: what the kernel
/// holds for it. Its addresses (VIP, SourceVIP, backends) are all of
/// `family`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Frontend {
    /// IPv4, or IPv6 (an LB with the IPv6 flag): which maps it is in.
    pub family: IpFamily,
    /// The VIP; None: every local address of the host of `family` (NodePort).
    pub vip: Option<IpAddr>,
    /// IP protocol number (6, 17 or 132).
    pub proto: u8,
    pub port: u16,
    /// The backends' port.
    pub target_port: u16,
    pub pick: Pick,
    pub reach: Reach,
    /// Source address of connections to the backends (SourceVIP).
    pub source_vip: Option<IpAddr>,
    /// Backend addresses, in the order given (bucket ranges follow it).
    pub backends: Vec<IpAddr>,
    /// EnablePreserveDip: the backends receive the VIP as destination
    /// ([`crate::preserve_dip`]); VIP frontends only.
    pub preserve_dip: bool,
}

/// The maps of one IP family (names end in `4` or `6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Maps {
    /// `vip . proto . port : kind`, for who reaches a VIP: guests,
    /// outside, host.
    pub vip_reach: [&'static str; 3],
    /// `proto . port : kind`, for who reaches a node port.
    pub node_reach: [&'static str; 3],
    /// `vip . proto . port . bucket : backend . port` (interval).
    pub vip_backends: &'static str,
    /// `proto . port . bucket : backend . port` (interval).
    pub node_backends: &'static str,
    /// `vip . proto . port . slot : backend . port` (hash).
    pub vip_slots: &'static str,
    /// `proto . port . slot : backend . port` (hash).
    pub node_slots: &'static str,
    /// `vip . proto . port : ct mark`, for frontends with a SourceVIP.
    pub vip_marks: &'static str,
    /// `proto . port : ct mark`, for node ports with a SourceVIP.
    pub node_marks: &'static str,
    /// `vip . proto . ct mark : source`.
    pub vip_snat: &'static str,
    /// `proto . ct mark : source`.
    pub node_snat: &'static str,
}

/// The IPv4 frontends' maps.
pub const MAPS4: Maps = Maps {
    vip_reach: ["lb_vip_guests4", "lb_vip_outside4", "lb_vip_host4"],
    node_reach: ["lb_node_guests4", "lb_node_outside4", "lb_node_host4"],
    vip_backends: "lb_vip_backends4",
    node_backends: "lb_node_backends4",
    vip_slots: "lb_vip_slots4",
    node_slots: "lb_node_slots4",
    vip_marks: "lb_vip_marks4",
    node_marks: "lb_node_marks4",
    vip_snat: "lb_vip_snat4",
    node_snat: "lb_node_snat4",
};

/// The IPv6 frontends' maps: the same shapes keyed by `ipv6_addr`.
pub const MAPS6: Maps = Maps {
    vip_reach: ["lb_vip_guests6", "lb_vip_outside6", "lb_vip_host6"],
    node_reach: ["lb_node_guests6", "lb_node_outside6", "lb_node_host6"],
    vip_backends: "lb_vip_backends6",
    node_backends: "lb_node_backends6",
    vip_slots: "lb_vip_slots6",
    node_slots: "lb_node_slots6",
    vip_marks: "lb_vip_marks6",
    node_marks: "lb_node_marks6",
    vip_snat: "lb_vip_snat6",
    node_snat: "lb_node_snat6",
};

impl Maps {
    /// The maps of `family`.
    pub fn of(family: IpFamily) -> &'static Maps {
        match family {
            IpFamily::V4 => &MAPS4,
            IpFamily::V6 => &MAPS6,
        }
    }

    /// Every map of a family, for listing them.
    pub fn all(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self.vip_reach.into_iter().chain(self.node_reach).collect();
        v.extend([
            self.vip_backends,
            self.node_backends,
            self.vip_slots,
            self.node_slots,
            self.vip_marks,
            self.node_marks,
            self.vip_snat,
            self.node_snat,
        ]);
        v
    }
}

/// `ip` or `ip6`: the header keyword of `family`.
fn nft_keyword(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "ip",
        IpFamily::V6 => "ip6",
    }
}

/// `ipv4` or `ipv6`: the `meta nfproto` of `family`.
fn nfproto(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "ipv4",
        IpFamily::V6 => "ipv6",
    }
}

/// The nft type of an address of `family`.
fn addr_type(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "ipv4_addr",
        IpFamily::V6 => "ipv6_addr",
    }
}

/// An address in the kernel's layout (network order, 4 or 16 bytes).
fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The chain the pre-routing NAT hook jumps to first.
pub const PREROUTING: &str = "lb_prerouting";
/// The chain the output NAT hook jumps to first.
pub const OUTPUT: &str = "lb_from_host";
/// The chain the post-routing NAT hook jumps to for DNATed connections.
pub const POSTROUTING: &str = "lb_source_vip";

/// Bridges hostnet makes are named `hnbr…` (hostnet-drivers `names`).
const BRIDGE_GLOB: &str = "hnbr*";

/// The frontend maps hold a *kind*, not a verdict: the kernel validates
/// every `goto` element of a table's verdict maps on each transaction that
/// adds one, so a frontend map of verdicts made each LB's create cost
/// O(all LBs) (1.5 ms more per create at 10,000). A kind is the conntrack
/// mark the dispatch rule sets, and one static map of kinds, [`PICKS`],
/// sends it to its pick chain; `KIND_BASE` alone means no backend (drop).
pub const KIND_BASE: u32 = 0x4b44_0000;
/// `kind : verdict`: the static dispatch from a frontend's kind to its
/// pick chain.
pub const PICKS: &str = "lb_picks";

/// Index of a pick chain among all of them (see [`pick_chain`]).
fn pick_index(node: bool, pick: Pick, slots: Option<usize>) -> usize {
    let pick_index = Pick::ALL.iter().position(|p| *p == pick).expect("listed");
    (usize::from(node) * Pick::ALL.len() + pick_index) * (MAX_SLOTS + 1) + slots.unwrap_or(0)
}

/// The kind of a frontend: its pick chain's index past [`KIND_BASE`].
fn pick_kind(node: bool, pick: Pick, slots: Option<usize>) -> u32 {
    KIND_BASE + 1 + pick_index(node, pick, slots) as u32
}

/// Every pick chain: (node, pick, slots).
fn all_picks() -> impl Iterator<Item = (bool, Pick, Option<usize>)> {
    [false, true].into_iter().flat_map(|node| {
        Pick::ALL.into_iter().flat_map(move |pick| {
            std::iter::once(None)
                .chain((1..=MAX_SLOTS).map(Some))
                .map(move |slots| (node, pick, slots))
        })
    })
}

/// The kind that sends a frontend to the pick chain named `chain` (for
/// reading the frontend maps).
pub fn kind_of_chain(chain: &str) -> Option<u32> {
    all_picks()
        .find(|&(node, pick, slots)| pick_chain(node, pick, slots) == chain)
        .map(|(node, pick, slots)| pick_kind(node, pick, slots))
}

/// The pick chain names: `lb_{vip,node}_{random,source,source_proto}`
/// (the bucket ranges of the interval map), with `_N` for the chains of
/// frontends with N backends (the slots of the hash map).
fn pick_chain(node: bool, pick: Pick, slots: Option<usize>) -> &'static str {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let mut v = Vec::new();
        for node in [false, true] {
            for pick in Pick::ALL {
                for n in 0..=MAX_SLOTS {
                    let kind = if node { "node" } else { "vip" };
                    let base = format!("lb_{kind}_{}", pick.name());
                    v.push(match n {
                        0 => base,
                        n => format!("{base}_{n}"),
                    });
                }
            }
        }
        v
    });
    names[pick_index(node, pick, slots)].as_str()
}

/// The keys a frontend's packet is looked up by: (VIP, node port), for
/// `family`.
fn keys(family: IpFamily) -> (String, &'static str) {
    let ip = nft_keyword(family);
    (
        format!("{ip} daddr . meta l4proto . th dport"),
        "meta l4proto . th dport",
    )
}

/// The maps of one family.
fn family_maps(s: &mut String, family: IpFamily) {
    let m = Maps::of(family);
    let (vip_key, node_key) = keys(family);
    let (ip, addr) = (nft_keyword(family), addr_type(family));
    for map in m.vip_reach {
        let _ = writeln!(
            s,
            "\tmap {map} {{ type {addr} . inet_proto . inet_service : mark; }}"
        );
    }
    for map in m.node_reach {
        let _ = writeln!(
            s,
            "\tmap {map} {{ type inet_proto . inet_service : mark; }}"
        );
    }
    let value = format!("{ip} daddr . th dport");
    let _ = writeln!(
        s,
        "\tmap {} {{ typeof {vip_key} . numgen random mod 65536 : {value}; flags interval; }}",
        m.vip_backends
    );
    let _ = writeln!(
        s,
        "\tmap {} {{ typeof {node_key} . numgen random mod 65536 : {value}; flags interval; }}",
        m.node_backends
    );
    let _ = writeln!(
        s,
        "\tmap {} {{ typeof {vip_key} . numgen random mod {MAX_SLOTS} : {value}; }}",
        m.vip_slots
    );
    let _ = writeln!(
        s,
        "\tmap {} {{ typeof {node_key} . numgen random mod {MAX_SLOTS} : {value}; }}",
        m.node_slots
    );
    let _ = writeln!(s, "\tmap {} {{ typeof {vip_key} : ct mark; }}", m.vip_marks);
    let _ = writeln!(
        s,
        "\tmap {} {{ typeof {node_key} : ct mark; }}",
        m.node_marks
    );
    let _ = writeln!(
        s,
        "\tmap {} {{ typeof ct original {ip} daddr . meta l4proto . ct mark : {ip} saddr; }}",
        m.vip_snat
    );
    let _ = writeln!(
        s,
        "\tmap {} {{ typeof meta l4proto . ct mark : {ip} saddr; }}",
        m.node_snat
    );
}

/// A pick chain's rules for one family: the SourceVIP mark, then the DNAT.
fn pick_rules(s: &mut String, family: IpFamily, node: bool, pick: Pick, slots: Option<usize>) {
    let m = Maps::of(family);
    let (vip_key, node_key) = keys(family);
    let (ip, proto) = (nft_keyword(family), nfproto(family));
    let (key, marks) = match node {
        false => (vip_key.as_str(), m.vip_marks),
        true => (node_key, m.node_marks),
    };
    let (hash, map) = match (slots, node) {
        (None, false) => (pick.hash(family), m.vip_backends),
        (None, true) => (pick.hash(family), m.node_backends),
        (Some(n), false) => (pick.slot_hash(family, n), m.vip_slots),
        (Some(n), true) => (pick.slot_hash(family, n), m.node_slots),
    };
    let _ = write!(
        s,
        "\t\tmeta nfproto {proto} ct mark set {key} map @{marks}\n\
         \t\tmeta nfproto {proto} meta l4proto {{ tcp, udp, sctp }} dnat {ip} to {key} . {hash} map @{map}\n"
    );
}

/// The dispatch rules of one family for one reach (0 guests, 1 outside,
/// 2 host): the VIP lookup, then the node port one on local addresses.
fn dispatch_rules(s: &mut String, family: IpFamily, reach: usize) {
    let m = Maps::of(family);
    let (vip_key, node_key) = keys(family);
    let proto = nfproto(family);
    let _ = write!(
        s,
        "\t\tmeta nfproto {proto} ct mark set {vip_key} map @{vip} ct mark vmap @{PICKS}\n\
         \t\tmeta nfproto {proto} fib daddr type local ct mark set {node_key} map @{node} ct mark vmap @{PICKS}\n",
        vip = m.vip_reach[reach],
        node = m.node_reach[reach],
    );
}

/// The frontend, slot, bucket, mark and SNAT maps of both families, the
/// static pick chains and their dispatch map [`PICKS`]: what every table
/// that load balances holds (the host's, and an overlay router's:
/// [`crate::router`]), whose entry chains then differ.
pub fn maps_and_picks() -> String {
    let mut s = String::new();
    for family in IpFamily::ALL {
        family_maps(&mut s, family);
    }
    for (node, pick, slots) in all_picks() {
        let _ = writeln!(
            s,
            "\tchain {} {{\n\t\tct mark set 0",
            pick_chain(node, pick, slots)
        );
        for family in IpFamily::ALL {
            pick_rules(&mut s, family, node, pick, slots);
        }
        s.push_str("\t}\n");
    }
    // The kinds, after the chains they go to, before the rules using them.
    let picks: Vec<String> = std::iter::once(format!("{KIND_BASE:#010x} : drop"))
        .chain(all_picks().map(|(node, pick, slots)| {
            format!(
                "{:#010x} : goto {}",
                pick_kind(node, pick, slots),
                pick_chain(node, pick, slots)
            )
        }))
        .collect();
    let _ = writeln!(
        s,
        "\tmap {PICKS} {{ type mark : verdict; elements = {{ {} }}; }}",
        picks.join(", ")
    );
    s
}

/// The load balancers' maps and chains, inside `table inet hostnet`.
pub fn skeleton() -> String {
    let mut s = maps_and_picks();
    let _ = write!(
        s,
        r#"	chain {PREROUTING} {{
		meta mark & {steered:#010x} != 0 return
		iifname "{BRIDGE_GLOB}" goto lb_from_guests
		goto lb_from_outside
	}}
"#,
        steered = crate::dsr::STEERED_MARK,
    );
    for (reach, chain) in ["lb_from_guests", "lb_from_outside", OUTPUT]
        .into_iter()
        .enumerate()
    {
        let _ = writeln!(s, "\tchain {chain} {{");
        for family in IpFamily::ALL {
            dispatch_rules(&mut s, family, reach);
        }
        s.push_str("\t}\n");
    }
    let _ = writeln!(s, "\tchain {POSTROUTING} {{");
    for family in IpFamily::ALL {
        let m = Maps::of(family);
        let (ip, proto) = (nft_keyword(family), nfproto(family));
        let _ = write!(
            s,
            "\t\tmeta nfproto {proto} ct mark & 0xfffe0000 == {VIP_MARK:#010x} snat {ip} to ct original {ip} daddr . meta l4proto . ct mark map @{vip_snat}\n\
             \t\tmeta nfproto {proto} ct mark & 0xffff0000 == {NODE_MARK:#010x} snat {ip} to meta l4proto . ct mark map @{node_snat}\n",
            vip_snat = m.vip_snat,
            node_snat = m.node_snat,
        );
    }
    s.push_str("\t}\n");
    s.push_str(&crate::preserve_dip::inet_skeleton());
    s
}

/// Every element a frontend owns. An LB's change is the difference of
/// its elements before and after, in one transaction.
pub fn elements(f: &Frontend) -> Vec<SetElement> {
    let node = f.vip.is_none();
    let m = Maps::of(f.family);
    debug_assert!(
        f.vip
            .iter()
            .chain(&f.source_vip)
            .chain(&f.backends)
            .all(|a| IpFamily::of(*a) == f.family),
        "a frontend's addresses are all of its family: {f:?}"
    );
    let mut frontend_key = Vec::with_capacity(24);
    if let Some(vip) = f.vip {
        frontend_key.extend_from_slice(&addr_bytes(vip));
    }
    frontend_key.extend_from_slice(&[f.proto, 0, 0, 0]);
    frontend_key.extend_from_slice(&port(f.port));
    let frontend_text = match f.vip {
        Some(vip) => format!("{vip} . {} . {}", proto_keyword(f.proto), f.port),
        None => format!("{} . {}", proto_keyword(f.proto), f.port),
    };

    let mut out = Vec::new();
    let maps = match node {
        false => m.vip_reach,
        true => m.node_reach,
    };
    // No backend: new connections to the frontend are dropped rather
    // than routed on to the VIP as if there were no service.
    let n = f.backends.len();
    let slotted = (1..=MAX_SLOTS).contains(&n);
    let kind = match n {
        0 => KIND_BASE,
        n => pick_kind(node, f.pick, slotted.then_some(n)),
    };
    let data = Data::Value(kind.to_ne_bytes().to_vec());
    let kind_text = format!("{kind:#010x}");
    let reached = [f.reach.guests, f.reach.outside, f.reach.host];
    for (map, _) in maps.iter().zip(reached).filter(|(_, r)| *r) {
        out.push(element(
            map,
            frontend_key.clone(),
            None,
            Some(data.clone()),
            format!("{frontend_text} : {kind_text}"),
        ));
    }
    let backend_value = |backend: IpAddr| {
        let mut value = addr_bytes(backend);
        value.extend_from_slice(&port(f.target_port));
        Data::Value(value)
    };
    if slotted {
        let slots_map = if node { m.node_slots } else { m.vip_slots };
        for (i, backend) in f.backends.iter().enumerate() {
            // The slot is the hash's register as is: host-endian.
            let mut key = frontend_key.clone();
            key.extend_from_slice(&(i as u32).to_ne_bytes());
            out.push(element(
                slots_map,
                key,
                None,
                Some(backend_value(*backend)),
                format!("{frontend_text} . {i} : {backend} . {}", f.target_port),
            ));
        }
    }
    let ranges = if slotted {
        Vec::new()
    } else {
        bucket_ranges(n)
    };
    let backends_map = if node {
        m.node_backends
    } else {
        m.vip_backends
    };
    for (i, (first, last)) in ranges.into_iter().enumerate() {
        let backend = f.backends[i];
        let mut key = frontend_key.clone();
        key.extend_from_slice(&first.to_be_bytes());
        let mut key_end = frontend_key.clone();
        key_end.extend_from_slice(&last.to_be_bytes());
        out.push(element(
            backends_map,
            key,
            Some(key_end),
            Some(backend_value(backend)),
            format!(
                "{frontend_text} . {first}-{last} : {backend} . {}",
                f.target_port
            ),
        ));
    }
    let preserve_dip = f.preserve_dip && !node;
    if f.source_vip.is_some() || preserve_dip {
        let pdip = if preserve_dip {
            crate::preserve_dip::PRESERVE_DIP_MARK
        } else {
            0
        };
        let mark = if node { NODE_MARK } else { VIP_MARK } | pdip | u32::from(f.port);
        // A mark is host-endian, in keys and data alike.
        let marks = if node { m.node_marks } else { m.vip_marks };
        out.push(element(
            marks,
            frontend_key.clone(),
            None,
            Some(Data::Value(mark.to_ne_bytes().to_vec())),
            format!("{frontend_text} : {mark:#010x}"),
        ));
        let Some(src) = f.source_vip else {
            return out;
        };
        let snat = if node { m.node_snat } else { m.vip_snat };
        let mut key = frontend_key[..frontend_key.len() - 4].to_vec();
        key.extend_from_slice(&mark.to_ne_bytes());
        let snat_text = match f.vip {
            Some(vip) => format!("{vip} . {} . {mark:#010x}", proto_keyword(f.proto)),
            None => format!("{} . {mark:#010x}", proto_keyword(f.proto)),
        };
        out.push(element(
            snat,
            key,
            None,
            Some(Data::Value(addr_bytes(src))),
            format!("{snat_text} : {src}"),
        ));
    }
    out
}

/// Backend `i` of `n` owns buckets `ranges[i]` (inclusive): contiguous,
/// together all of them, sizes differing by at most one.
pub fn bucket_ranges(n: usize) -> Vec<(u32, u32)> {
    let n = n as u64;
    let total = u64::from(BUCKETS);
    (0..n)
        .map(|i| {
            let first = i * total / n;
            let next = (i + 1) * total / n;
            (first as u32, (next - 1) as u32)
        })
        .collect()
}

/// The backend a bucket goes to (the evaluator's view of the map).
pub fn backend_of_bucket(n: usize, bucket: u32) -> Option<usize> {
    bucket_ranges(n)
        .iter()
        .position(|&(first, last)| (first..=last).contains(&bucket))
}

fn proto_keyword(proto: u8) -> String {
    match proto {
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        n => n.to_string(),
    }
}

fn element(
    set: &'static str,
    key: Vec<u8>,
    key_end: Option<Vec<u8>>,
    data: Option<Data>,
    text: String,
) -> SetElement {
    SetElement {
        family: Family::Inet,
        table: TABLE,
        set,
        key,
        key_end,
        data,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn cluster_ip(backends: &[[u8; 4]]) -> Frontend {
        Frontend {
            family: IpFamily::V4,
            vip: Some(Ipv4Addr::new(10, 96, 0, 10).into()),
            proto: 6,
            port: 80,
            target_port: 8080,
            pick: Pick::Random,
            reach: Reach {
                guests: true,
                outside: true,
                host: false,
            },
            source_vip: None,
            backends: backends.iter().map(|&b| Ipv4Addr::from(b).into()).collect(),
            preserve_dip: false,
        }
    }

    #[test]
    fn buckets_are_shared_evenly_and_cover_everything() {
        for n in 1..40 {
            let r = bucket_ranges(n);
            assert_eq!(r.len(), n);
            assert_eq!(r[0].0, 0);
            assert_eq!(r[n - 1].1, BUCKETS - 1);
            for w in r.windows(2) {
                assert_eq!(w[0].1 + 1, w[1].0, "contiguous");
            }
            let sizes: Vec<u32> = r.iter().map(|(a, b)| b - a + 1).collect();
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "{n}: {sizes:?}");
        }
        assert_eq!(backend_of_bucket(3, 0), Some(0));
        assert_eq!(backend_of_bucket(3, 65535), Some(2));
        assert_eq!(backend_of_bucket(0, 7), None);
    }

    #[test]
    fn a_cluster_ip_is_one_dispatch_per_reach_and_one_slot_per_backend() {
        let els = elements(&cluster_ip(&[[10, 88, 0, 2], [10, 88, 0, 3]]));
        let sets: Vec<&str> = els.iter().map(|e| e.set).collect();
        assert_eq!(
            sets,
            [
                MAPS4.vip_reach[0],
                MAPS4.vip_reach[1],
                MAPS4.vip_slots,
                MAPS4.vip_slots
            ],
            "not reachable from the host without LocalRoutedVip"
        );
        assert_eq!(els[0].key, vec![10, 96, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0]);
        assert_eq!(
            els[0].data,
            Some(Data::Value(
                kind_of_chain("lb_vip_random_2")
                    .unwrap()
                    .to_ne_bytes()
                    .to_vec()
            ))
        );
        let kind = kind_of_chain("lb_vip_random_2").unwrap();
        assert_eq!(els[0].text, format!("10.96.0.10 . tcp . 80 : {kind:#010x}"));
        assert!(skeleton().contains(&format!("{kind:#010x} : goto lb_vip_random_2")));
        let mut key = vec![10, 96, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0];
        key.extend_from_slice(&1u32.to_ne_bytes());
        assert_eq!(els[3].key, key);
        assert_eq!(els[3].key_end, None);
        assert_eq!(
            els[3].data,
            Some(Data::Value(vec![10, 88, 0, 3, 0x1f, 0x90, 0, 0]))
        );
        assert_eq!(els[3].text, "10.96.0.10 . tcp . 80 . 1 : 10.88.0.3 . 8080");
        let skeleton = skeleton();
        assert!(skeleton.contains("chain lb_vip_random_2 {"));
        assert!(skeleton.contains(
            "dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 2 map @lb_vip_slots4"
        ));
        assert!(skeleton.contains(
            "dnat ip to meta l4proto . th dport . jhash ip saddr . meta l4proto mod 64 map @lb_node_slots4"
        ));
    }

    #[test]
    fn more_backends_than_slots_share_bucket_ranges() {
        let backends: Vec<[u8; 4]> = (0..=MAX_SLOTS as u8).map(|i| [10, 88, 1, i]).collect();
        let els = elements(&cluster_ip(&backends));
        assert_eq!(
            els[0].data,
            Some(Data::Value(
                kind_of_chain("lb_vip_random")
                    .unwrap()
                    .to_ne_bytes()
                    .to_vec()
            ))
        );
        let ranges: Vec<&SetElement> = els.iter().filter(|e| e.set == MAPS4.vip_backends).collect();
        assert_eq!(ranges.len(), MAX_SLOTS + 1);
        assert!(els.iter().all(|e| e.set != MAPS4.vip_slots));
        let b = ranges[1];
        assert_eq!(
            b.key,
            vec![10, 96, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0, 0, 0, 0x03, 0xf0]
        );
        assert_eq!(
            b.key_end.as_deref(),
            Some(&[10, 96, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0, 0, 0, 0x07, 0xdf][..])
        );
        assert_eq!(
            b.data,
            Some(Data::Value(vec![10, 88, 1, 1, 0x1f, 0x90, 0, 0]))
        );
        assert_eq!(
            b.text,
            "10.96.0.10 . tcp . 80 . 1008-2015 : 10.88.1.1 . 8080"
        );
    }

    #[test]
    fn a_node_port_is_keyed_without_address_and_marks_the_connection() {
        let mut f = cluster_ip(&[[10, 88, 0, 2]]);
        f.vip = None;
        f.proto = 17;
        f.pick = Pick::SourceIp;
        f.reach.host = true;
        f.source_vip = Some(Ipv4Addr::new(10, 88, 0, 1).into());
        let els = elements(&f);
        let sets: Vec<&str> = els.iter().map(|e| e.set).collect();
        assert_eq!(
            sets,
            [
                MAPS4.node_reach[0],
                MAPS4.node_reach[1],
                MAPS4.node_reach[2],
                MAPS4.node_slots,
                MAPS4.node_marks,
                MAPS4.node_snat
            ]
        );
        assert_eq!(els[0].key, vec![17, 0, 0, 0, 0, 80, 0, 0]);
        assert_eq!(
            els[0].data,
            Some(Data::Value(
                kind_of_chain("lb_node_source_1")
                    .unwrap()
                    .to_ne_bytes()
                    .to_vec()
            ))
        );
        assert_eq!(els[3].text, "udp . 80 . 0 : 10.88.0.2 . 8080");
        assert_eq!(els[4].text, "udp . 80 : 0x4e500050");
        assert_eq!(
            els[4].data,
            Some(Data::Value(0x4e50_0050u32.to_ne_bytes().to_vec()))
        );
        assert_eq!(els[5].text, "udp . 0x4e500050 : 10.88.0.1");
        let mut key = vec![17, 0, 0, 0];
        key.extend_from_slice(&0x4e50_0050u32.to_ne_bytes());
        assert_eq!(els[5].key, key);
        assert_eq!(els[5].data, Some(Data::Value(vec![10, 88, 0, 1])));
    }

    #[test]
    fn preserve_dip_marks_the_connection_and_keeps_source_vip_apart() {
        let mut f = cluster_ip(&[[10, 88, 0, 2]]);
        f.preserve_dip = true;
        let els = elements(&f);
        let marks: Vec<&SetElement> = els.iter().filter(|e| e.set == MAPS4.vip_marks).collect();
        assert_eq!(marks.len(), 1);
        assert_eq!(marks[0].text, "10.96.0.10 . tcp . 80 : 0x4c430050");
        assert!(
            els.iter().all(|e| e.set != MAPS4.vip_snat),
            "no SourceVIP, no SNAT"
        );
        f.source_vip = Some(Ipv4Addr::new(10, 88, 0, 1).into());
        let els = elements(&f);
        let snat = els.iter().find(|e| e.set == MAPS4.vip_snat).expect("SNAT");
        assert_eq!(snat.text, "10.96.0.10 . tcp . 0x4c430050 : 10.88.0.1");
        // The SNAT rule takes both marks.
        assert!(skeleton().contains("ct mark & 0xfffe0000 == 0x4c420000 snat"));
    }

    #[test]
    fn no_backend_drops_instead_of_routing_to_the_vip() {
        let els = elements(&cluster_ip(&[]));
        assert_eq!(els.len(), 2);
        let drop = Some(Data::Value(KIND_BASE.to_ne_bytes().to_vec()));
        assert!(els.iter().all(|e| e.data == drop));
        assert!(els[0].text.ends_with(": 0x4b440000"));
        assert!(skeleton().contains("0x4b440000 : drop"));
    }

    #[test]
    fn ilb_reaches_only_guests() {
        let mut f = cluster_ip(&[[10, 88, 0, 2]]);
        f.reach = Reach {
            guests: true,
            outside: false,
            host: false,
        };
        let sets: Vec<&str> = elements(&f).iter().map(|e| e.set).collect();
        assert_eq!(sets, [MAPS4.vip_reach[0], MAPS4.vip_slots]);
    }

    fn cluster_ip6(backends: &[&str]) -> Frontend {
        Frontend {
            family: IpFamily::V6,
            vip: Some("fd00:96::10".parse().unwrap()),
            backends: backends.iter().map(|b| b.parse().unwrap()).collect(),
            ..cluster_ip(&[])
        }
    }

    #[test]
    fn an_ipv6_frontend_has_maps_of_its_own_keyed_by_16_byte_addresses() {
        let mut f = cluster_ip6(&["fd00:77::2", "fd00:77::3"]);
        f.source_vip = Some("fd00:77::1".parse().unwrap());
        let els = elements(&f);
        let sets: Vec<&str> = els.iter().map(|e| e.set).collect();
        assert_eq!(
            sets,
            [
                "lb_vip_guests6",
                "lb_vip_outside6",
                "lb_vip_slots6",
                "lb_vip_slots6",
                "lb_vip_marks6",
                "lb_vip_snat6"
            ]
        );
        let vip = Ipv6Addr::new(0xfd00, 0x96, 0, 0, 0, 0, 0, 0x10).octets();
        let mut key = vip.to_vec();
        key.extend_from_slice(&[6, 0, 0, 0, 0, 80, 0, 0]);
        assert_eq!(els[0].key, key);
        let kind = kind_of_chain("lb_vip_random_2").unwrap();
        assert_eq!(
            els[0].data,
            Some(Data::Value(kind.to_ne_bytes().to_vec())),
            "the pick chains are shared with IPv4"
        );
        assert_eq!(
            els[0].text,
            format!("fd00:96::10 . tcp . 80 : {kind:#010x}")
        );
        let mut slot = key.clone();
        slot.extend_from_slice(&1u32.to_ne_bytes());
        assert_eq!(els[3].key, slot);
        let mut value = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 3)
            .octets()
            .to_vec();
        value.extend_from_slice(&[0x1f, 0x90, 0, 0]);
        assert_eq!(els[3].data, Some(Data::Value(value)));
        assert_eq!(
            els[3].text,
            "fd00:96::10 . tcp . 80 . 1 : fd00:77::3 . 8080"
        );
        assert_eq!(els[4].text, "fd00:96::10 . tcp . 80 : 0x4c420050");
        let mut snat_key = vip.to_vec();
        snat_key.extend_from_slice(&[6, 0, 0, 0]);
        snat_key.extend_from_slice(&0x4c42_0050u32.to_ne_bytes());
        assert_eq!(els[5].key, snat_key);
        assert_eq!(els[5].text, "fd00:96::10 . tcp . 0x4c420050 : fd00:77::1");
        assert_eq!(
            els[5].data,
            Some(Data::Value(
                Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1)
                    .octets()
                    .to_vec()
            ))
        );
    }

    #[test]
    fn ipv6_node_ports_and_bucket_ranges_use_the_ipv6_maps() {
        let mut f = cluster_ip6(&["fd00:77::2"]);
        f.vip = None;
        f.reach.host = true;
        let sets: Vec<&str> = elements(&f).iter().map(|e| e.set).collect();
        assert_eq!(
            sets,
            [
                "lb_node_guests6",
                "lb_node_outside6",
                "lb_node_host6",
                "lb_node_slots6"
            ]
        );
        assert_eq!(elements(&f)[0].key, vec![6, 0, 0, 0, 0, 80, 0, 0]);
        let many: Vec<String> = (0..=MAX_SLOTS)
            .map(|i| format!("fd00:77::{:x}", i + 2))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let els = elements(&cluster_ip6(&many));
        let ranges: Vec<&SetElement> = els.iter().filter(|e| e.set == MAPS6.vip_backends).collect();
        assert_eq!(ranges.len(), MAX_SLOTS + 1);
        assert_eq!(ranges[1].key.len(), 16 + 4 + 4 + 4);
        assert_eq!(&ranges[1].key[24..], &1008u32.to_be_bytes());
        assert_eq!(
            &ranges[1].key_end.as_ref().unwrap()[24..],
            &2015u32.to_be_bytes()
        );
        assert_eq!(
            ranges[1].text,
            "fd00:96::10 . tcp . 80 . 1008-2015 : fd00:77::3 . 8080"
        );
    }

    #[test]
    fn each_rule_of_the_shared_chains_is_for_one_family() {
        let s = skeleton();
        for family_rule in [
            "meta nfproto ipv6 meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport . jhash ip6 saddr mod 3 map @lb_vip_slots6",
            "meta nfproto ipv4 meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport . jhash ip saddr mod 3 map @lb_vip_slots4",
            "meta nfproto ipv6 meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport . jhash ip6 saddr . meta l4proto mod 65536 map @lb_node_backends6",
            "meta nfproto ipv6 ct mark set meta l4proto . th dport map @lb_node_marks6",
            "meta nfproto ipv4 fib daddr type local ct mark set meta l4proto . th dport map @lb_node_guests4 ct mark vmap @lb_picks",
            "meta nfproto ipv6 fib daddr type local ct mark set meta l4proto . th dport map @lb_node_host6 ct mark vmap @lb_picks",
            "meta nfproto ipv6 ct mark set ip6 daddr . meta l4proto . th dport map @lb_vip_outside6 ct mark vmap @lb_picks",
            "meta nfproto ipv6 ct mark & 0xfffe0000 == 0x4c420000 snat ip6 to ct original ip6 daddr . meta l4proto . ct mark map @lb_vip_snat6",
            "meta nfproto ipv6 ct mark & 0xffff0000 == 0x4e500000 snat ip6 to meta l4proto . ct mark map @lb_node_snat6",
            "map lb_vip_guests6 { type ipv6_addr . inet_proto . inet_service : mark; }",
            "map lb_vip_slots6 { typeof ip6 daddr . meta l4proto . th dport . numgen random mod 64 : ip6 daddr . th dport; }",
        ] {
            assert!(s.contains(family_rule), "{family_rule}");
        }
        // Every chain rule that reads or rewrites an address names its family.
        for line in s.lines().map(str::trim) {
            let addresses = line.contains("daddr")
                || line.contains("saddr")
                || line.contains("dnat")
                || line.contains("snat");
            if addresses
                && !line.starts_with("map ")
                && line.contains("lb_")
                && !line.contains("pdip")
            {
                assert!(line.starts_with("meta nfproto ipv"), "{line}");
            }
        }
    }
}
