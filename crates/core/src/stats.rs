//! An endpoint's counters (issue 5 item 7): HNS v1's endpoint statistics
//! (`BytesReceived`, `PacketsSent`, `DroppedPacketsIncoming`, …) and the
//! packets and bytes each of its ACL rules matched.
//!
//! Everything comes from the kernel: rx/tx from the host side of the
//! endpoint's veth (`IFLA_STATS64`, directions swapped: what the host side
//! receives, the endpoint sent), rule counts from the counters of the
//! rule's compiled map elements (one rule may be several elements), drops
//! from the block rules, the per-endpoint drop counters of the firewall
//! defaults (`hostnet_nft::counters`) and the link's own drops. The
//! service lock is held only to copy the endpoint; the reads happen after,
//! and change nothing.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use hostnet_dataplane::{Dataplane, DataplaneError, ElementCounter, LinkStats, SetRef};
use hostnet_drivers::names;
use hostnet_model::HcnError;
use hostnet_nft::acl::{RuleAt, RuleElement};
use hostnet_nft::{counters, Family};
use hostnet_policy::{lower, Action, Direction, LayerName, Port};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::object::{guid, internal, Kind};
use crate::service::{parse_id, Service};

/// What the counters are read for, copied under the lock.
struct Snapshot {
    id: Uuid,
    port: Port,
    addr: Option<Ipv4Addr>,
    /// A dual-stack endpoint's IPv6 address: its inet drops count apart.
    addr6: Option<IpAddr>,
    /// The host side of its veth, when attached to a container namespace.
    veth: Option<String>,
    /// Where that veth, its port's counters and its ACLs' are when not in
    /// the daemon's namespace (an overlay router).
    port_netns: Option<std::path::PathBuf>,
    /// The namespace it is attached to (HNS's `InstanceId`).
    instance: Option<Uuid>,
}

/// One ACL rule's counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RuleCount {
    pub at: RuleAt,
    pub packets: u64,
    pub bytes: u64,
}

/// Packets and bytes of one counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Count {
    pub packets: u64,
    pub bytes: u64,
}

/// The kernel's counters for one endpoint, before they are added up.
#[derive(Debug, Default)]
pub(crate) struct Reading {
    pub link: Option<LinkStats>,
    pub rules: Vec<RuleCount>,
    /// The defaults' (and a NAT network's isolation's) drops in the inet table.
    pub inbound_drops: Count,
    /// The defaults' drops on the endpoint's port (netdev egress).
    pub port_drops: Count,
}

impl Service {
    /// `GET /v2/endpoints/{id}/stats`: endpoint `id`'s counters.
    pub fn endpoint_stats(&self, id: &str) -> Result<Value, HcnError> {
        let uuid = parse_id(Kind::Endpoint, id)?;
        let snap = {
            let st = self.lock();
            let ep = st
                .endpoints
                .get(&uuid)
                .ok_or_else(|| Kind::Endpoint.not_found(id))?;
            let net = st
                .networks
                .get(&ep.network)
                .ok_or_else(|| Kind::Network.not_found(&guid(&ep.network)))?;
            let host = ep.plugged(&st.namespaces);
            Snapshot {
                id: uuid,
                port: crate::policy::endpoint_port(&uuid, ep, net),
                addr: match ep.plan.address.addr() {
                    IpAddr::V4(a) => Some(a),
                    IpAddr::V6(_) => None,
                },
                addr6: ep.plan.address6.map(|a| a.addr()),
                veth: (host == Some(false)).then(|| names::host_veth(&uuid)),
                port_netns: net.plan.port_netns.clone(),
                instance: ep.namespace,
            }
        };
        let reading = read(self.dp.as_ref(), &snap)
            .map_err(|e| internal("reading the endpoint's counters", e))?;
        Ok(render(&snap, &reading))
    }
}

/// Reads what the kernel counted for `snap`'s endpoint.
fn read(dp: &dyn Dataplane, snap: &Snapshot) -> Result<Reading, DataplaneError> {
    let mut reading = Reading::default();
    let there;
    let dp = match &snap.port_netns {
        Some(netns) => {
            there = dp.in_netns(netns)?;
            there.as_ref()
        }
        None => dp,
    };
    if let Some(veth) = &snap.veth {
        reading.link = dp.link_stats(veth)?;
        let port = counters::port_drops(veth);
        reading.port_drops = one(dp, port.family, port.table, port.set, &port.key)?;
    }
    let Some(addr) = snap.addr else {
        return Ok(reading);
    };
    let drops = counters::inbound_drops(addr.into());
    reading.inbound_drops = one(dp, drops.family, drops.table, drops.set, &drops.key)?;
    if let Some(addr6) = snap.addr6 {
        let drops = counters::inbound_drops(addr6);
        let six = one(dp, drops.family, drops.table, drops.set, &drops.key)?;
        reading.inbound_drops.packets += six.packets;
        reading.inbound_drops.bytes += six.bytes;
    }
    // The same compilation that programmed the endpoint says which
    // elements are its rules' (of both families: a rule's count adds its
    // IPv4 and IPv6 packets).
    let mut tagged = Vec::new();
    for a in std::iter::once(IpAddr::V4(addr)).chain(snap.addr6) {
        tagged.extend(
            hostnet_nft::acl::rule_elements(a, &snap.port)
                .map_err(|e| DataplaneError::new("compile the endpoint's ACLs", e.to_string()))?,
        );
    }
    let mut dumped = BTreeMap::new();
    for t in &tagged {
        let set = SetRef {
            family: t.element.family,
            table: t.element.table,
            set: t.element.set,
        };
        if let std::collections::btree_map::Entry::Vacant(slot) = dumped.entry(set) {
            slot.insert(dp.set_counters(set)?);
        }
    }
    reading.rules = rule_counts(&tagged, &dumped);
    Ok(reading)
}

/// The counter of the element with `key` in a set without intervals
/// (zero when the element is not there: nothing counted yet).
fn one(
    dp: &dyn Dataplane,
    family: Family,
    table: &'static str,
    set: &'static str,
    key: &[u8],
) -> Result<Count, DataplaneError> {
    let all = dp.set_counters(SetRef { family, table, set })?;
    Ok(all
        .iter()
        .find(|c| c.key == key)
        .map_or_else(Count::default, |c| Count {
            packets: c.packets,
            bytes: c.bytes,
        }))
}

/// Each rule's counts: the sum over its elements found in `dumped`.
pub(crate) fn rule_counts(
    tagged: &[RuleElement],
    dumped: &BTreeMap<SetRef, Vec<ElementCounter>>,
) -> Vec<RuleCount> {
    let mut sums: BTreeMap<RuleAt, Count> = BTreeMap::new();
    for t in tagged {
        let e = &t.element;
        let set = SetRef {
            family: e.family,
            table: e.table,
            set: e.set,
        };
        let sum = sums.entry(t.rule).or_default();
        let hit = dumped.get(&set).and_then(|all| {
            all.iter()
                .find(|c| c.key == e.key && c.key_end == e.key_end)
        });
        if let Some(c) = hit {
            sum.packets += c.packets;
            sum.bytes += c.bytes;
        }
    }
    sums.into_iter()
        .map(|(at, c)| RuleCount {
            at,
            packets: c.packets,
            bytes: c.bytes,
        })
        .collect()
}

/// The answer: HNS's endpoint statistics, plus `Rules` (hostnet's).
fn render(snap: &Snapshot, reading: &Reading) -> Value {
    let link = reading.link.unwrap_or_default();
    let mut rules = Vec::new();
    let (mut blocked_in, mut blocked_out) = (0, 0);
    for layer in [LayerName::AclHost, LayerName::AclSwitch] {
        for (gi, group) in snap.port.layer(layer).groups().iter().enumerate() {
            if group.owner == lower::DEFAULTS {
                continue;
            }
            for (ri, rule) in group.rules().iter().enumerate() {
                let at = RuleAt {
                    layer,
                    group: gi,
                    rule: ri,
                };
                let c = reading
                    .rules
                    .iter()
                    .find(|r| r.at == at)
                    .map_or((0, 0), |r| (r.packets, r.bytes));
                if rule.action == Action::Block {
                    match rule.direction {
                        Direction::In => blocked_in += c.0,
                        Direction::Out => blocked_out += c.0,
                    }
                }
                rules.push(json!({
                    "Id": rule.id.0,
                    "Layer": layer.as_str(),
                    "Group": group.owner,
                    "Direction": match rule.direction {
                        Direction::In => "In",
                        Direction::Out => "Out",
                    },
                    "Action": action_name(&rule.action),
                    "Priority": rule.priority,
                    "Packets": c.0,
                    "Bytes": c.1,
                }));
            }
        }
    }
    json!({
        "EndpointId": guid(&snap.id),
        "InstanceId": snap.instance.as_ref().map(guid).unwrap_or_default(),
        // The host side's tx is what the endpoint received, and back.
        "PacketsReceived": link.tx_packets,
        "BytesReceived": link.tx_bytes,
        "PacketsSent": link.rx_packets,
        "BytesSent": link.rx_bytes,
        "DroppedPacketsIncoming": blocked_in
            + reading.inbound_drops.packets
            + reading.port_drops.packets
            + link.tx_dropped,
        "DroppedPacketsOutgoing": blocked_out + link.rx_dropped,
        "Rules": rules,
    })
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::Allow => "Allow",
        Action::Block => "Block",
        Action::Pass => "Pass",
        Action::Dnat { .. } => "Dnat",
        Action::Snat { .. } => "Snat",
        Action::Route { .. } => "Route",
        Action::Balance { .. } => "Balance",
    }
}
