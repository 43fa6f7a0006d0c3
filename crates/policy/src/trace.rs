//! Traces: how an evaluation went, layer by layer, in a stable text form
//! (no timestamps, no hash order; one line per layer; the last line starts
//! with `verdict`).

use std::fmt::{self, Write};

use crate::eval::Verdict;
use crate::packet::{Direction, Packet};
use crate::port::LayerName;
use crate::rule::Rule;

/// One layer's part of a walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub layer: LayerName,
    /// `group rule prio action`, when a rule decided.
    pub decision: Option<String>,
    /// Rules looked at before the decision, and why they did not match
    /// (shown with `--verbose`).
    pub visited: Vec<String>,
    pub before: Packet,
    pub after: Packet,
}

impl Step {
    pub(crate) fn new(layer: LayerName, packet: Packet) -> Self {
        Step {
            layer,
            decision: None,
            visited: Vec::new(),
            before: packet,
            after: packet,
        }
    }

    pub(crate) fn decided(&mut self, owner: &str, rule: &Rule) {
        let mut s = format!(
            "group {owner} rule {} prio {} {}",
            rule.id, rule.priority, rule.action
        );
        if rule.origin.hcn_id.is_some() || !rule.origin.policy.is_empty() {
            let _ = write!(s, " ({}", rule.origin.policy);
            if let Some(id) = &rule.origin.hcn_id {
                let _ = write!(s, " Id {id:?}");
            }
            s.push(')');
        }
        self.decision = Some(s);
    }
}

/// A whole walk through one port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    pub port: String,
    pub direction: Direction,
    pub epoch: u64,
    pub packet: Packet,
    pub steps: Vec<Step>,
}

impl Trace {
    /// The stable text form, with each rule visited when `verbose`, ending
    /// in the verdict's line.
    pub fn render(&self, verdict: &Verdict, verbose: bool) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "trace port {} dir {} epoch {}",
            self.port, self.direction, self.epoch
        );
        let _ = writeln!(s, "packet {}", self.packet);
        for step in &self.steps {
            let what = step.decision.as_deref().unwrap_or("no match: allow");
            let _ = write!(s, "  {:<11} {what}", step.layer.as_str());
            if step.after != step.before {
                let _ = write!(s, " => {}", step.after);
            }
            s.push('\n');
            if verbose {
                for v in &step.visited {
                    let _ = writeln!(s, "  {:<11} {v}", "");
                }
            }
        }
        let _ = writeln!(s, "{}", VerdictLine(verdict));
        s
    }
}

struct VerdictLine<'a>(&'a Verdict);

impl fmt::Display for VerdictLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Verdict::Allow { packet } => write!(f, "verdict allow {packet}"),
            Verdict::Block {
                layer,
                rule,
                priority,
                origin,
            } => {
                write!(
                    f,
                    "verdict block ({layer}, rule {rule}, priority {priority}"
                )?;
                if !origin.policy.is_empty() {
                    write!(f, ", {}", origin.policy)?;
                }
                if let Some(id) = &origin.hcn_id {
                    write!(f, " Id {id:?}")?;
                }
                f.write_str(")")
            }
        }
    }
}
