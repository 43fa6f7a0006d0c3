//! Reprogramming endpoints after a policy change: every element each
//! endpoint owns before and after, and the difference as ONE kernel
//! transaction (`Op::ReplaceElements`), so a change is atomic and touches
//! only the elements that change.

use std::collections::HashSet;

use hostnet_dataplane::Op;
use hostnet_drivers::bridge;
use hostnet_model::HcnError;
use hostnet_nft::SetElement;
use uuid::Uuid;

use crate::endpoint::endpoint_elements;
use crate::service::{EndpointRec, NetworkRec, State};

/// Every element endpoint `id` owns in the tables of its network's
/// namespace ([`Delta::of`]): its driver's, its compiled ACLs, and while
/// plugged in, its port's. An overlay endpoint's are all in its router:
/// its OutBoundNAT, ACLs and port (a port whose ACLs come or go loses or
/// regains the protocol-only defaults the walk replaces).
pub(crate) fn owned_elements(
    st: &State,
    id: &Uuid,
    ep: &EndpointRec,
    net: &NetworkRec,
) -> Result<Vec<SetElement>, HcnError> {
    let mut els = endpoint_elements(net, &ep.plan);
    els.extend(crate::policy::acl_elements(id, ep, net)?);
    if net.overlay.is_some() && !crate::overlay::stored_remote(ep) {
        if let std::net::IpAddr::V4(a) = ep.plan.address.addr() {
            els.extend(hostnet_drivers::overlay::endpoint_router_elements(
                a,
                ep.plan.outbound_nat.as_deref(),
            ));
        }
    }
    if let Some(host) = ep.plugged(&st.namespaces) {
        els.extend(bridge::port_elements(&net.plan, &ep.plan, host));
    }
    Ok(els)
}

/// The elements to delete and to add for a set of endpoint changes, in
/// the tables of one namespace.
#[derive(Debug, Default)]
pub(crate) struct Delta {
    pub delete: Vec<SetElement>,
    pub add: Vec<SetElement>,
    /// None: the daemon's; else an overlay router's.
    pub netns: Option<std::path::PathBuf>,
}

impl Delta {
    /// A delta of the elements of `net`'s endpoints ([`owned_elements`]).
    pub(crate) fn of(net: &NetworkRec) -> Self {
        Delta {
            netns: crate::overlay_acl::acl_netns(net),
            ..Delta::default()
        }
    }

    /// Adds one endpoint's change from `before` to `after` (elements in
    /// both stay untouched in the kernel).
    pub(crate) fn push(&mut self, before: Vec<SetElement>, after: Vec<SetElement>) {
        let old: HashSet<&SetElement> = before.iter().collect();
        let new: HashSet<&SetElement> = after.iter().collect();
        self.delete
            .extend(before.iter().filter(|e| !new.contains(e)).cloned());
        self.add
            .extend(after.iter().filter(|e| !old.contains(e)).cloned());
    }

    /// The change from `before` to `after` as one transaction (empty when
    /// nothing differs).
    pub(crate) fn replace(before: Vec<SetElement>, after: Vec<SetElement>) -> Op {
        let mut d = Delta::default();
        d.push(before, after);
        Op::ReplaceElements {
            delete: d.delete,
            add: d.add,
        }
    }

    /// The one transaction, or None when nothing changes.
    pub(crate) fn op(self) -> Option<Op> {
        if self.delete.is_empty() && self.add.is_empty() {
            return None;
        }
        let op = Op::ReplaceElements {
            delete: self.delete,
            add: self.add,
        };
        Some(match self.netns {
            None => op,
            Some(netns) => Op::InNetns {
                netns,
                op: Box::new(op),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(n: u8) -> SetElement {
        hostnet_nft::acl_endpoint(std::net::Ipv4Addr::new(10, 0, 0, n).into())
    }

    #[test]
    fn only_what_differs_is_touched() {
        let mut d = Delta::default();
        d.push(vec![el(1), el(2)], vec![el(2), el(3)]);
        assert_eq!(d.delete, vec![el(1)]);
        assert_eq!(d.add, vec![el(3)]);
        let mut same = Delta::default();
        same.push(vec![el(1)], vec![el(1)]);
        assert!(same.op().is_none());
    }

    #[test]
    fn a_change_touches_only_what_differs() {
        let e = |set: &'static str, text: &str| SetElement {
            family: hostnet_nft::Family::Inet,
            table: "hostnet",
            set,
            key: vec![],
            key_end: None,
            data: None,
            text: text.into(),
        };
        let op = Delta::replace(
            vec![e("a", "1"), e("b", "2")],
            vec![e("a", "1"), e("b", "3")],
        );
        assert_eq!(
            op,
            Op::ReplaceElements {
                delete: vec![e("b", "2")],
                add: vec![e("b", "3")]
            }
        );
    }
}
