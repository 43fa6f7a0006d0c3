//! Endpoint ACLs compiled into stratified verdict maps (design:
//! shared/design/policy-model.md §4).
//!
//! The chains are static; every endpoint's rules are elements of shared
//! maps whose keys begin with the endpoint's address
//! (`local . remote . protocol . local port . remote port`, all intervals),
//! so a packet's cost is a few lookups whatever the number of endpoints
//! and rules, and a change touches only its elements.
//!
//! Each ACL group (an endpoint's ACLs and NetworkACLs merged, then up to
//! [`MAX_TIERS`] TierAcls) gets up to [`MAX_STRATA`] strata. In the group's
//! total order, a rule's stratum is 0 when no earlier overlapping rule has
//! another action, else one more than the highest such rule's. A packet
//! tries the strata in turn and the first hit decides: any rule it hits
//! before its first matching rule's stratum has that rule's action (else it
//! would be in a later stratum), so the result is the evaluator's.
//!
//! A stratum is two maps: a hash map for the boxes of the common
//! Kubernetes shape (one local and one remote address, one protocol, one
//! destination port, any source port), looked up in constant time, and an
//! interval map (the kernel's pipapo, whose lookups are linear in its
//! elements) for everything else. A stratum's boxes are disjoint, so a
//! packet hits at most one of the two, and looking them up in turn decides
//! as one map would.
//!
//! Layers run in series as in `hostnet-policy`: out `acl-host` then
//! `acl-switch`; in `acl-switch` then `acl-host`, whose last group is the
//! seed's defaults (the static [`IN_DEFAULTS`] chain; outbound they allow
//! all). An allow ends a layer (`goto` the next one), a block drops, a pass
//! goes to the group's next slot; the end of the walk `return`s to the
//! caller.

use std::collections::HashSet;
use std::fmt::Write;
use std::net::Ipv4Addr;
use std::sync::OnceLock;

use hostnet_policy::{Action, Condition, Direction, LayerName, Port, Proto, Rule};
use ipnet::{IpNet, Ipv4Net};

use crate::ruleset::TABLE;
use crate::{Data, Family, SetElement};

/// Strata per group: the longest chain of overlapping rules with
/// alternating actions a group may have.
pub const MAX_STRATA: usize = 4;
/// TierAcl groups per layer after the plain ACL group.
pub const MAX_TIERS: usize = 3;
const SLOTS: usize = 1 + MAX_TIERS;
/// Boxes (elements) one rule may expand to (the product of its lists).
pub const MAX_BOXES_PER_RULE: usize = 4096;

/// The chain an inbound walk starts at (jump here for traffic to an endpoint).
pub const IN_ENTRY: &str = "acl_in_switch_0";
/// The chain an outbound walk starts at (traffic from an endpoint).
pub const OUT_ENTRY: &str = "acl_out_host_0";
/// The seed's inbound defaults, after both inbound layers.
pub const IN_DEFAULTS: &str = "acl_in_defaults";

/// Why an endpoint's ACLs cannot be compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompileError {
    /// A group needs more strata than there are maps.
    TooDeep { layer: LayerName, group: String },
    /// More TierAcl groups than slots.
    TooManyTiers { layer: LayerName },
    /// A rule's lists multiply to too many elements.
    TooLarge { rule: String },
    /// A rule whose action is not an ACL's.
    NotAnAcl { rule: String },
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompileError::TooDeep { layer, group } => write!(
                f,
                "{layer} group {group} has more than {MAX_STRATA} overlapping rules with alternating actions: simplify the ladder"
            ),
            CompileError::TooManyTiers { layer } => {
                write!(f, "{layer} has more than {MAX_TIERS} TierAcl tiers")
            }
            CompileError::TooLarge { rule } => write!(
                f,
                "rule {rule} expands to more than {MAX_BOXES_PER_RULE} address/port combinations: use fewer, wider prefixes or ranges"
            ),
            CompileError::NotAnAcl { rule } => write!(f, "rule {rule} is not an ACL rule"),
        }
    }
}

fn dir_name(d: Direction) -> &'static str {
    match d {
        Direction::In => "in",
        Direction::Out => "out",
    }
}

fn side_name(l: LayerName) -> &'static str {
    match l {
        LayerName::AclHost => "host",
        _ => "switch",
    }
}

/// The ACL layers in the order a packet in `dir` meets them.
fn layers(dir: Direction) -> [LayerName; 2] {
    match dir {
        Direction::Out => [LayerName::AclHost, LayerName::AclSwitch],
        Direction::In => [LayerName::AclSwitch, LayerName::AclHost],
    }
}

/// Where a walk goes: a chain, or back to the caller (allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    Chain(&'static str),
    Return,
}

/// One static chain: its strata maps, then where it falls through to.
struct ChainSpec {
    name: &'static str,
    dir: Direction,
    /// Per stratum, the interval map.
    sets: Vec<&'static str>,
    /// Per stratum, the hash map of exact boxes ([`Box5::exact_key`]).
    exact: Vec<&'static str>,
    then: Next,
}

/// The name of the chain of `slot` in `layer` for `dir`.
fn chain_name(dir: Direction, layer: LayerName, slot: usize) -> String {
    format!("acl_{}_{}_{slot}", dir_name(dir), side_name(layer))
}

/// Where an allow in layer number `li` of `dir` goes, as a name: the next
/// layer, or the end of the walk.
fn after_layer_name(dir: Direction, li: usize) -> Option<String> {
    layers(dir)
        .get(li + 1)
        .map(|next| chain_name(dir, *next, 0))
}

/// Where a packet no group of layer number `li` decided goes. The seed's
/// defaults are the last group of `acl-host`: inbound they decide there
/// (an allow earlier in `acl-host` skips them); outbound they allow all.
fn after_groups_name(dir: Direction, li: usize) -> Option<String> {
    match (dir, layers(dir)[li]) {
        (Direction::In, LayerName::AclHost) => Some(IN_DEFAULTS.to_string()),
        _ => after_layer_name(dir, li),
    }
}

/// Every static ACL chain, built once (names are `'static` so elements can
/// refer to them).
fn chains() -> &'static [ChainSpec] {
    static CHAINS: OnceLock<Vec<ChainSpec>> = OnceLock::new();
    CHAINS.get_or_init(|| {
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let mut out = Vec::new();
        for dir in [Direction::In, Direction::Out] {
            for (li, layer) in layers(dir).iter().enumerate() {
                for slot in 0..SLOTS {
                    let base = chain_name(dir, *layer, slot);
                    let then = if slot + 1 < SLOTS {
                        Some(chain_name(dir, *layer, slot + 1))
                    } else {
                        after_groups_name(dir, li)
                    };
                    out.push(ChainSpec {
                        name: leak(base.clone()),
                        dir,
                        sets: (0..MAX_STRATA)
                            .map(|k| leak(format!("{base}_s{k}")))
                            .collect(),
                        exact: (0..MAX_STRATA)
                            .map(|k| leak(format!("{base}_s{k}_x")))
                            .collect(),
                        then: then.map_or(Next::Return, |n| Next::Chain(leak(n))),
                    });
                }
            }
        }
        out
    })
}

/// Where an allow in layer number `li` of `dir` goes.
fn after_layer(dir: Direction, li: usize) -> Next {
    match after_layer_name(dir, li) {
        Some(n) => Next::Chain(
            chains()
                .iter()
                .find(|c| c.name == n)
                .expect("every layer has a first chain")
                .name,
        ),
        None => Next::Return,
    }
}

fn spec(dir: Direction, layer: LayerName, slot: usize) -> &'static ChainSpec {
    let name = chain_name(dir, layer, slot);
    chains()
        .iter()
        .find(|c| c.name == name)
        .expect("every (direction, layer, slot) has a chain")
}

/// The static ACL part of `table inet hostnet`: the maps and chains, and
/// the per-endpoint drop counters their defaults use (so this part loads
/// on its own).
pub fn skeleton() -> String {
    let mut s = crate::counters::inet_sets();
    for c in chains() {
        for (set, exact) in c.sets.iter().zip(&c.exact) {
            let _ = writeln!(
                s,
                "\tmap {exact} {{ type ipv4_addr . ipv4_addr . inet_proto . inet_service : verdict; counter; }}"
            );
            let _ = writeln!(
                s,
                "\tmap {set} {{ type ipv4_addr . ipv4_addr . inet_proto . inet_service . inet_service : verdict; flags interval; counter; }}"
            );
        }
    }
    for c in chains() {
        let (key, exact_key) = match c.dir {
            Direction::In => (
                "ip daddr . ip saddr . meta l4proto . th dport . th sport",
                "ip daddr . ip saddr . meta l4proto . th dport",
            ),
            Direction::Out => (
                "ip saddr . ip daddr . meta l4proto . th sport . th dport",
                "ip saddr . ip daddr . meta l4proto . th dport",
            ),
        };
        let _ = writeln!(s, "\tchain {} {{", c.name);
        for (set, exact) in c.sets.iter().zip(&c.exact) {
            let _ = writeln!(s, "\t\tmeta nfproto ipv4 {exact_key} vmap @{exact}");
            let _ = writeln!(s, "\t\tmeta nfproto ipv4 {key} vmap @{set}");
        }
        match c.then {
            Next::Chain(n) => {
                let _ = writeln!(s, "\t\tgoto {n}");
            }
            Next::Return => {
                let _ = writeln!(s, "\t\treturn");
            }
        }
        let _ = writeln!(s, "\t}}");
    }
    let _ = writeln!(
        s,
        "\tchain {IN_DEFAULTS} {{\n\t\tmeta l4proto {{ tcp, udp, icmp, icmpv6, igmp }} return\n\t\t{}\n\t\tdrop\n\t}}",
        crate::counters::count_inbound_drop()
    );
    s
}

/// The elements that program endpoint `addr`'s ACL groups of `port` (the
/// `defaults` group is the static [`IN_DEFAULTS`] chain).
pub fn elements(addr: Ipv4Addr, port: &Port) -> Result<Vec<SetElement>, CompileError> {
    Ok(rule_elements(addr, port)?
        .into_iter()
        .map(|e| e.element)
        .collect())
}

/// Where a rule sits in a [`Port`]: `port.layer(layer).groups()[group]
/// .rules()[rule]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleAt {
    pub layer: LayerName,
    pub group: usize,
    pub rule: usize,
}

/// A compiled element and the rule it came from. One rule may become
/// several disjoint elements; each element belongs to exactly one rule, so
/// its kernel counter adds to that rule's alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleElement {
    pub rule: RuleAt,
    pub element: SetElement,
}

/// [`elements`], each with its rule.
pub fn rule_elements(addr: Ipv4Addr, port: &Port) -> Result<Vec<RuleElement>, CompileError> {
    let mut out = Vec::new();
    for dir in [Direction::In, Direction::Out] {
        for (li, layer) in layers(dir).iter().enumerate() {
            let groups: Vec<_> = port
                .layer(*layer)
                .groups()
                .iter()
                .enumerate()
                .filter(|(_, g)| g.owner != hostnet_policy::lower::DEFAULTS)
                .collect();
            if groups.len() > SLOTS {
                return Err(CompileError::TooManyTiers { layer: *layer });
            }
            for (slot, (gi, group)) in groups.iter().enumerate() {
                let (indices, rules): (Vec<usize>, Vec<&Rule>) = group
                    .rules()
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.direction == dir)
                    .unzip();
                let strata = strata(&rules).ok_or_else(|| CompileError::TooDeep {
                    layer: *layer,
                    group: group.owner.clone(),
                })?;
                let c = spec(dir, *layer, slot);
                let mut placed: Vec<(usize, Box5, Data, usize)> = Vec::new();
                let mut held: [Held; MAX_STRATA] = Default::default();
                for ((rule, k), ri) in rules.iter().zip(strata).zip(indices) {
                    let data = match rule.action {
                        Action::Allow => next_data(after_layer(dir, li)),
                        Action::Block => Data::Drop,
                        Action::Pass => next_data(c.then),
                        _ => {
                            return Err(CompileError::NotAnAcl {
                                rule: rule.id.to_string(),
                            })
                        }
                    };
                    // Overlapping boxes of one stratum share their verdict;
                    // the kernel refuses overlapping interval elements, so
                    // each new box goes in minus what the stratum holds.
                    for b in boxes(addr, &rule.condition, &rule.id.0)? {
                        let pieces = held[k].place(b, dir);
                        placed.extend(pieces.into_iter().map(|p| (k, p, data.clone(), ri)));
                    }
                }
                out.extend(placed.into_iter().map(|(k, b, d, ri)| RuleElement {
                    rule: RuleAt {
                        layer: *layer,
                        group: *gi,
                        rule: ri,
                    },
                    element: b.element(c, k, d),
                }));
            }
        }
    }
    Ok(out)
}

fn next_data(n: Next) -> Data {
    match n {
        Next::Chain(c) => Data::Goto(c),
        Next::Return => Data::Return,
    }
}

/// Each rule's stratum, or None if some rule needs more than [`MAX_STRATA`].
fn strata(rules: &[&Rule]) -> Option<Vec<usize>> {
    let mut out: Vec<usize> = Vec::with_capacity(rules.len());
    for (i, r) in rules.iter().enumerate() {
        let s = rules[..i]
            .iter()
            .zip(&out)
            .filter(|(q, _)| q.action != r.action && q.condition.overlaps(&r.condition))
            .map(|(_, s)| s + 1)
            .max()
            .unwrap_or(0);
        if s >= MAX_STRATA {
            return None;
        }
        out.push(s);
    }
    Some(out)
}

/// The boxes one stratum holds, indexed so that placing a box of the exact
/// shape does not walk every box held (an endpoint's thousands of exact
/// rules would make its compile quadratic).
#[derive(Default)]
struct Held {
    /// Exact boxes by key. Two exact boxes overlap only when their keys
    /// are equal, and then they are the same box.
    exact_keys: HashSet<Vec<u8>>,
    exact: Vec<Box5>,
    /// Every other box.
    ranged: Vec<Box5>,
}

impl Held {
    /// Holds `b` minus what is already held, and returns those pieces
    /// (disjoint from each other and from every box held before).
    fn place(&mut self, b: Box5, dir: Direction) -> Vec<Box5> {
        let minus_all = |pieces: Vec<Box5>, held: &[Box5]| {
            held.iter()
                .fold(pieces, |ps, h| ps.iter().flat_map(|p| p.minus(h)).collect())
        };
        let pieces = match b.exact_key(dir) {
            Some(k) if self.exact_keys.contains(&k) => return Vec::new(),
            Some(_) => vec![b],
            None => minus_all(vec![b], &self.exact),
        };
        let pieces = minus_all(pieces, &self.ranged);
        for p in &pieces {
            match p.exact_key(dir) {
                Some(k) => {
                    self.exact_keys.insert(k);
                    self.exact.push(*p);
                }
                None => self.ranged.push(*p),
            }
        }
        pieces
    }
}

/// One element's key range: per field (local address, remote address,
/// protocol, local port, remote port) an inclusive interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Box5([(u32, u32); 5]);

impl Box5 {
    fn overlaps(&self, other: &Box5) -> bool {
        self.0
            .iter()
            .zip(&other.0)
            .all(|(&(a, b), &(c, d))| a <= d && c <= b)
    }

    /// This box without `other`: up to two pieces per field, disjoint.
    fn minus(&self, other: &Box5) -> Vec<Box5> {
        if !self.overlaps(other) {
            return vec![*self];
        }
        let mut out = Vec::new();
        let mut rest = *self;
        for d in 0..5 {
            let (lo, hi) = other.0[d];
            if rest.0[d].0 < lo {
                let mut piece = rest;
                piece.0[d] = (rest.0[d].0, lo - 1);
                out.push(piece);
                rest.0[d].0 = lo;
            }
            if rest.0[d].1 > hi {
                let mut piece = rest;
                piece.0[d] = (hi + 1, rest.0[d].1);
                out.push(piece);
                rest.0[d].1 = hi;
            }
        }
        out
    }

    /// The hash-map key of a box of the exact shape (one local and one
    /// remote address, one protocol, one destination port, every source
    /// port), in the layout of the exact maps' `local . remote . protocol .
    /// destination port`; None for any other box.
    fn exact_key(&self, dir: Direction) -> Option<Vec<u8>> {
        // Fields 3 and 4 are the local and remote ports; inbound the local
        // port is the destination, outbound the remote one.
        let (dport, sport) = match dir {
            Direction::In => (3, 4),
            Direction::Out => (4, 3),
        };
        let point = |d: usize| self.0[d].0 == self.0[d].1;
        if !(point(0) && point(1) && point(2) && point(dport)) || self.0[sport] != (0, 65535) {
            return None;
        }
        let mut k = Ipv4Addr::from(self.0[0].0).octets().to_vec();
        k.extend_from_slice(&Ipv4Addr::from(self.0[1].0).octets());
        k.extend_from_slice(&[self.0[2].0 as u8, 0, 0, 0]);
        k.extend_from_slice(&crate::ruleset::port(self.0[dport].0 as u16));
        Some(k)
    }

    /// The element of this box in stratum `k` of chain `c`: in the hash map
    /// if it has the exact shape, else in the interval map.
    fn element(&self, c: &ChainSpec, k: usize, data: Data) -> SetElement {
        let verdict = match &data {
            Data::Goto(c) => format!("goto {c}"),
            Data::Drop => "drop".into(),
            Data::Return => "return".into(),
            Data::Value(_) | Data::Device(_) => unreachable!("ACL maps are verdict maps"),
        };
        if let Some(key) = self.exact_key(c.dir) {
            let dport = match c.dir {
                Direction::In => self.0[3].0,
                Direction::Out => self.0[4].0,
            };
            return SetElement {
                family: Family::Inet,
                table: TABLE,
                set: c.exact[k],
                key,
                key_end: None,
                text: format!(
                    "{} . {} . {} . {dport} : {verdict}",
                    Ipv4Addr::from(self.0[0].0),
                    Ipv4Addr::from(self.0[1].0),
                    self.0[2].0
                ),
                data: Some(data),
            };
        }
        let set = c.sets[k];
        let key_of = |end: bool| {
            let v = |d: usize| if end { self.0[d].1 } else { self.0[d].0 };
            let mut k = Ipv4Addr::from(v(0)).octets().to_vec();
            k.extend_from_slice(&Ipv4Addr::from(v(1)).octets());
            k.extend_from_slice(&[v(2) as u8, 0, 0, 0]);
            k.extend_from_slice(&crate::ruleset::port(v(3) as u16));
            k.extend_from_slice(&crate::ruleset::port(v(4) as u16));
            k
        };
        let addr = |(a, b): (u32, u32)| match a == b {
            true => Ipv4Addr::from(a).to_string(),
            false => format!("{}-{}", Ipv4Addr::from(a), Ipv4Addr::from(b)),
        };
        let range = |(a, b): (u32, u32)| format!("{a}-{b}");
        SetElement {
            family: Family::Inet,
            table: TABLE,
            set,
            key: key_of(false),
            key_end: Some(key_of(true)),
            text: format!(
                "{} . {} . {} . {} . {} : {verdict}",
                addr(self.0[0]),
                addr(self.0[1]),
                range(self.0[2]),
                range(self.0[3]),
                range(self.0[4])
            ),
            data: Some(data),
        }
    }
}

/// The boxes a condition covers for endpoint `addr` (none when the rule
/// cannot match this endpoint or its family).
fn boxes(addr: Ipv4Addr, c: &Condition, rule: &str) -> Result<Vec<Box5>, CompileError> {
    let here = IpNet::V4(Ipv4Net::from(addr));
    if let Some(local) = &c.local {
        if !local.iter().any(|p| p.contains(&here)) {
            return Ok(Vec::new());
        }
    }
    let remotes: Vec<(u32, u32)> = match &c.remote {
        None => vec![(0, u32::MAX)],
        Some(v) => v
            .iter()
            .filter_map(|p| match p {
                IpNet::V4(p) => Some((u32::from(p.network()), u32::from(p.broadcast()))),
                IpNet::V6(_) => None,
            })
            .collect(),
    };
    let ports = c.local_ports.is_some() || c.remote_ports.is_some();
    let protos: Vec<(u32, u32)> = match (&c.protocols, ports) {
        (None, false) => vec![(0, 255)],
        (None, true) => vec![(6, 6), (17, 17), (132, 132)],
        (Some(ps), _) => ps
            .iter()
            .filter(|p| !ports || p.has_ports())
            .map(|&Proto(n)| (u32::from(n), u32::from(n)))
            .collect(),
    };
    let ranges = |r: &Option<hostnet_policy::PortRanges>| -> Vec<(u32, u32)> {
        r.as_ref().map_or(vec![(0, 65535)], |r| {
            r.ranges()
                .iter()
                .map(|&(a, b)| (u32::from(a), u32::from(b)))
                .collect()
        })
    };
    let (lports, rports) = (ranges(&c.local_ports), ranges(&c.remote_ports));
    let n = remotes.len() * protos.len() * lports.len() * rports.len();
    if n > MAX_BOXES_PER_RULE {
        return Err(CompileError::TooLarge { rule: rule.into() });
    }
    let local = (u32::from(addr), u32::from(addr));
    let mut out = Vec::with_capacity(n);
    for &remote in &remotes {
        for &proto in &protos {
            for &lp in &lports {
                for &rp in &rports {
                    out.push(Box5([local, remote, proto, lp, rp]));
                }
            }
        }
    }
    Ok(out)
}

/// What the compiled form does with a packet: walks the static chains over
/// `elements` exactly as the kernel would. For tests (the kernel's own
/// answer is checked at tier 1+).
pub fn interpret(elements: &[SetElement], packet: &hostnet_policy::Packet, dir: Direction) -> bool {
    let field = |v: &[u8], i: usize| v[i * 4..i * 4 + 4].to_vec();
    let (local, remote) = match dir {
        Direction::In => (packet.dst, packet.src),
        Direction::Out => (packet.src, packet.dst),
    };
    let (std::net::IpAddr::V4(local), std::net::IpAddr::V4(remote)) = (local, remote) else {
        return true;
    };
    let (lp, rp) = match dir {
        Direction::In => (packet.dst_port, packet.src_port),
        Direction::Out => (packet.src_port, packet.dst_port),
    };
    let mut key = local.octets().to_vec();
    key.extend_from_slice(&remote.octets());
    key.extend_from_slice(&[packet.proto.0, 0, 0, 0]);
    key.extend_from_slice(&crate::ruleset::port(lp.unwrap_or(0)));
    key.extend_from_slice(&crate::ruleset::port(rp.unwrap_or(0)));
    let mut exact_key = key[..12].to_vec();
    exact_key.extend_from_slice(&crate::ruleset::port(packet.dst_port.unwrap_or(0)));
    let hit = |set: &str| {
        elements.iter().find(|e| {
            e.set == set
                && (0..5).all(|i| {
                    let k = field(&key, i);
                    field(&e.key, i) <= k && k <= field(e.key_end.as_ref().expect("interval"), i)
                })
        })
    };
    let exact_hit = |set: &str| elements.iter().find(|e| e.set == set && e.key == exact_key);
    let mut at = match dir {
        Direction::In => IN_ENTRY,
        Direction::Out => OUT_ENTRY,
    };
    loop {
        if at == IN_DEFAULTS {
            return matches!(
                packet.proto,
                Proto::TCP | Proto::UDP | Proto::ICMP | Proto::ICMPV6 | Proto::IGMP
            );
        }
        let c = chains().iter().find(|c| c.name == at).expect("known chain");
        let decided = c
            .exact
            .iter()
            .zip(&c.sets)
            .find_map(|(x, s)| exact_hit(x).or_else(|| hit(s)))
            .map(|e| e.data.clone());
        let next = match decided {
            Some(Some(Data::Drop)) => return false,
            Some(Some(Data::Return)) => return true,
            Some(Some(Data::Goto(n))) => Next::Chain(n),
            Some(_) => unreachable!("ACL maps are verdict maps"),
            None => c.then,
        };
        match next {
            Next::Chain(n) => at = n,
            Next::Return => return true,
        }
    }
}
