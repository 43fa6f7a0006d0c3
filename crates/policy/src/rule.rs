//! Rules: a condition, an action and a priority, with where they came from.

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;

use crate::condition::Condition;
use crate::packet::Direction;

/// A rule's identity: the HCN `Id` when the policy has one, else a name
/// the lowering derives from the rule's content (stable across restarts).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(pub String);

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a matching rule does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// End this layer; go on to the next.
    Allow,
    /// Drop the packet.
    Block,
    /// Leave this group; the next group of the layer decides.
    Pass,
    /// Rewrite the destination (a published port: host port to endpoint).
    Dnat { addr: IpAddr, port: Option<u16> },
    /// Rewrite the source to `addr`, or to the host's address on the way
    /// out when None (masquerade).
    Snat { addr: Option<IpAddr> },
    /// Rewrite the destination to one of `backends`, at `port` (a load
    /// balancer, [`crate::lb`]): per connection, or by the source address
    /// when `affinity`; and the source to `source` if given (SourceVIP). No
    /// backend: the packet is dropped. `preserve_dip` (EnablePreserveDip):
    /// the backend's port gives the packet the VIP back as destination
    /// (after routing, so the host's view, and the evaluator's packet,
    /// stays the backend's address).
    Balance {
        backends: Vec<IpAddr>,
        port: u16,
        affinity: bool,
        source: Option<IpAddr>,
        preserve_dip: bool,
    },
    /// Send the packet to next hop `via` (None: the destination is on-link);
    /// nothing in the packet changes.
    Route { via: Option<IpAddr> },
}

impl Action {
    /// Rank at equal priority: the most restrictive first.
    fn rank(&self) -> u8 {
        match self {
            Action::Block => 0,
            Action::Pass => 1,
            Action::Allow => 2,
            Action::Dnat { .. }
            | Action::Snat { .. }
            | Action::Route { .. }
            | Action::Balance { .. } => 3,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Allow => f.write_str("allow"),
            Action::Block => f.write_str("block"),
            Action::Pass => f.write_str("pass"),
            Action::Dnat {
                addr,
                port: Some(p),
            } => write!(f, "dnat {addr}:{p}"),
            Action::Dnat { addr, port: None } => write!(f, "dnat {addr}"),
            Action::Snat { addr: Some(a) } => write!(f, "snat {a}"),
            Action::Snat { addr: None } => f.write_str("snat host-address"),
            Action::Route { via: Some(v) } => write!(f, "route via {v}"),
            Action::Route { via: None } => f.write_str("route on-link"),
            Action::Balance {
                backends,
                port,
                affinity,
                source,
                preserve_dip,
            } => {
                write!(
                    f,
                    "balance to one of {} backends port {port} {}",
                    backends.len(),
                    if *affinity {
                        "by source address"
                    } else {
                        "per connection"
                    }
                )?;
                if let Some(s) = source {
                    write!(f, " source {s}")?;
                }
                match preserve_dip {
                    true => f.write_str(" delivered to the VIP (preserve DIP)"),
                    false => Ok(()),
                }
            }
        }
    }
}

/// Where a rule came from: the HCN policy type, the object it belongs to,
/// and the policy's own `Id`, for traces and counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Origin {
    pub policy: String,
    pub object: String,
    pub hcn_id: Option<String>,
}

/// One rule. Rules of a group are kept in [`Rule::order`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    pub id: RuleId,
    pub direction: Direction,
    /// Lower is evaluated first.
    pub priority: u16,
    pub condition: Condition,
    pub action: Action,
    pub origin: Origin,
}

impl Rule {
    /// The total order of rules in a group: priority, then the most
    /// restrictive action, then the ID. Insertion order never matters.
    pub fn order(a: &Rule, b: &Rule) -> Ordering {
        (a.priority, a.action.rank(), &a.id).cmp(&(b.priority, b.action.rank(), &b.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, priority: u16, action: Action) -> Rule {
        Rule {
            id: RuleId(id.into()),
            direction: Direction::In,
            priority,
            condition: Condition::any(),
            action,
            origin: Origin::default(),
        }
    }

    #[test]
    fn equal_priority_puts_block_first_then_id() {
        let mut v = [
            rule("a", 100, Action::Allow),
            rule("z", 100, Action::Block),
            rule("b", 100, Action::Allow),
            rule("c", 50, Action::Allow),
        ];
        v.sort_by(Rule::order);
        let ids: Vec<&str> = v.iter().map(|r| r.id.0.as_str()).collect();
        assert_eq!(ids, ["c", "z", "a", "b"]);
    }
}
