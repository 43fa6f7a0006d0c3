//! The evaluator: one packet through one port's stack. It is pure (no
//! state changes) and it is the specification the kernel form is held to.

use std::net::IpAddr;

use crate::packet::{Direction, Packet};
use crate::port::{LayerName, Port};
use crate::rule::{Action, Origin, Rule, RuleId};
use crate::trace::{Step, Trace};

/// The result of a packet's walk through a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Through, as `packet` (after any rewrites).
    Allow { packet: Packet },
    /// Dropped by `rule` in `layer`.
    Block {
        layer: LayerName,
        rule: RuleId,
        priority: u16,
        origin: Origin,
    },
}

/// A verdict and how it was reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    pub verdict: Verdict,
    pub trace: Trace,
}

/// Walk `packet` through `port` in direction `dir`. `host` is the host's
/// address a source NAT without an explicit address rewrites to.
pub fn evaluate(port: &Port, packet: Packet, dir: Direction, host: Option<IpAddr>) -> Evaluation {
    let mut trace = Trace {
        port: port.id.clone(),
        direction: dir,
        epoch: port.epoch(),
        packet,
        steps: Vec::new(),
    };
    let mut pkt = packet;
    let layers: Vec<LayerName> = match dir {
        Direction::Out => LayerName::STACK.to_vec(),
        Direction::In => LayerName::STACK.iter().rev().copied().collect(),
    };
    for name in layers {
        let mut step = Step::new(name, pkt);
        let decided = decide(port, name, &pkt, dir, &mut step);
        match decided {
            None => {}
            Some((owner, rule)) => {
                step.decided(&owner, rule);
                match &rule.action {
                    Action::Block => {
                        trace.steps.push(step);
                        return Evaluation {
                            verdict: Verdict::Block {
                                layer: name,
                                rule: rule.id.clone(),
                                priority: rule.priority,
                                origin: rule.origin.clone(),
                            },
                            trace,
                        };
                    }
                    Action::Dnat { addr, port } => {
                        pkt.dst = *addr;
                        if let Some(p) = port.filter(|_| pkt.dst_port.is_some()) {
                            pkt.dst_port = Some(p);
                        }
                    }
                    // A load balancer without backends drops, as the kernel does.
                    Action::Balance { backends, .. } if backends.is_empty() => {
                        trace.steps.push(step);
                        return Evaluation {
                            verdict: Verdict::Block {
                                layer: name,
                                rule: rule.id.clone(),
                                priority: rule.priority,
                                origin: rule.origin.clone(),
                            },
                            trace,
                        };
                    }
                    Action::Balance {
                        backends,
                        port,
                        affinity,
                        source,
                        ..
                    } => {
                        pkt.dst = crate::lb::representative(&pkt, backends, *affinity);
                        if pkt.dst_port.is_some() {
                            pkt.dst_port = Some(*port);
                        }
                        if let Some(s) = source {
                            pkt.src = *s;
                        }
                    }
                    Action::Snat { addr } => {
                        if let Some(a) = addr.or(host) {
                            pkt.src = a;
                        }
                    }
                    Action::Allow | Action::Pass | Action::Route { .. } => {}
                }
            }
        }
        step.after = pkt;
        trace.steps.push(step);
    }
    Evaluation {
        verdict: Verdict::Allow { packet: pkt },
        trace,
    }
}

/// The rule that decides `layer` for the packet (a `Pass` moves on to the
/// next group and is never the decision), with its group's owner.
fn decide<'p>(
    port: &'p Port,
    name: LayerName,
    pkt: &Packet,
    dir: Direction,
    step: &mut Step,
) -> Option<(String, &'p Rule)> {
    for group in port.layer(name).groups() {
        let hit = group
            .rules()
            .iter()
            .filter(|r| r.direction == dir)
            .find(|r| match r.condition.check(pkt, dir) {
                Ok(()) => true,
                Err(m) => {
                    step.visited
                        .push(format!("{} {} missed on {m}", group.owner, r.id));
                    false
                }
            });
        match hit {
            Some(r) if r.action == Action::Pass => {
                step.visited.push(format!("{} {} pass", group.owner, r.id));
            }
            Some(r) => return Some((group.owner.clone(), r)),
            None => {}
        }
    }
    None
}
