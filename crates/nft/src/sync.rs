//! The difference between the elements the kernel holds and those the
//! store wants: what a restart that keeps the tables must change (as
//! kube-proxy's nftables mode syncs partially).
//!
//! Elements are the same when family, table, set and key (and an interval
//! element's last key) are; a map element whose data differs is deleted
//! and added again in the same transaction. Elements both sides hold are
//! left alone, so their counters (ACL rules', drops') carry on.

use std::collections::{HashMap, HashSet};

use crate::{Family, SetElement};

/// What identifies an element in its set.
type Identity<'a> = (Family, &'a str, &'a str, &'a [u8], Option<&'a [u8]>);

/// An element's identity. An interval element whose range is one key is
/// the same whether it was sent with its last key or without (nft sends
/// it, hostnet's netlink code does not; the kernel keeps what it got).
fn identity(e: &SetElement) -> Identity<'_> {
    let end = e.key_end.as_deref().filter(|end| *end != e.key.as_slice());
    (e.family, e.table, e.set, &e.key, end)
}

fn is_rules(e: &SetElement) -> bool {
    matches!(e.data, Some(crate::Data::Rules(_)))
}

/// What makes the kernel's elements the wanted ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Present and not wanted (or wanted with other data).
    pub delete: Vec<SetElement>,
    /// Wanted and not present (or present with other data).
    pub add: Vec<SetElement>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.add.is_empty()
    }
}

/// The changes turning `present` into `wanted`. A wanted element listed
/// twice is added once.
pub fn diff(present: &[SetElement], wanted: &[SetElement]) -> Diff {
    let have: HashMap<Identity<'_>, &SetElement> =
        present.iter().map(|e| (identity(e), e)).collect();
    let mut out = Diff::default();
    let mut kept: HashSet<Identity<'_>> = HashSet::with_capacity(wanted.len());
    for w in wanted {
        let id = identity(w);
        if !kept.insert(id) {
            continue;
        }
        match have.get(&id) {
            // A rules chain's rules are not read back: it is programmed
            // again, flushed and refilled in place (its users stay).
            Some(p) if is_rules(p) && is_rules(w) => out.add.push(w.clone()),
            Some(p) if p.data == w.data => {}
            Some(p) => {
                out.delete.push((*p).clone());
                out.add.push(w.clone());
            }
            None => out.add.push(w.clone()),
        }
    }
    out.delete.extend(
        present
            .iter()
            .filter(|p| !kept.contains(&identity(p)))
            .cloned(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Data;

    fn el(set: &'static str, key: u8, data: Option<u8>) -> SetElement {
        SetElement {
            family: Family::Inet,
            table: crate::TABLE,
            set,
            key: vec![10, 0, 0, key],
            key_end: None,
            data: data.map(|d| Data::Value(vec![d])),
            text: String::new(),
        }
    }

    #[test]
    fn only_the_difference_is_changed() {
        let present = vec![
            el("a", 1, None),
            el("a", 2, None),
            el("m", 1, Some(1)),
            el("m", 2, Some(1)),
        ];
        let wanted = vec![
            el("a", 1, None),
            el("a", 3, None),
            el("m", 1, Some(1)),
            el("m", 2, Some(2)),
        ];
        let d = diff(&present, &wanted);
        assert_eq!(d.add, vec![el("a", 3, None), el("m", 2, Some(2))]);
        let mut deleted = d.delete.clone();
        deleted.sort_by_key(|e| (e.set, e.key.clone()));
        assert_eq!(deleted, vec![el("a", 2, None), el("m", 2, Some(1))]);
    }

    #[test]
    fn the_same_key_in_another_set_or_table_is_another_element() {
        let mut other_table = el("a", 1, None);
        other_table.table = crate::EGRESS_TABLE;
        let d = diff(
            &[el("a", 1, None), other_table.clone()],
            &[el("b", 1, None), other_table],
        );
        assert_eq!(d.add, vec![el("b", 1, None)]);
        assert_eq!(d.delete, vec![el("a", 1, None)]);
    }

    #[test]
    fn a_one_key_range_matches_the_key_alone_and_duplicates_add_once() {
        let mut ranged = el("r", 1, None);
        ranged.key_end = Some(ranged.key.clone());
        let d = diff(&[ranged], &[el("r", 1, None), el("r", 1, None)]);
        assert!(d.is_empty(), "{d:?}");
        let mut wider = el("r", 1, None);
        wider.key_end = Some(vec![10, 0, 0, 9]);
        let d = diff(&[el("r", 1, None)], &[wider.clone()]);
        assert_eq!((d.delete, d.add), (vec![el("r", 1, None)], vec![wider]));
    }

    #[test]
    fn a_kept_rules_chain_is_programmed_again_in_place() {
        let chain = |rules: Vec<crate::chain::ChainRule>| SetElement {
            data: Some(Data::Rules(rules)),
            ..el("acl_in/10.0.0.1", 1, None)
        };
        let wanted = chain(vec![crate::chain::ChainRule::Return]);
        let d = diff(&[chain(Vec::new())], std::slice::from_ref(&wanted));
        assert_eq!((d.delete, d.add), (vec![], vec![wanted]));
        let d = diff(&[chain(Vec::new())], &[]);
        assert_eq!(d.delete, vec![chain(Vec::new())], "unwanted: deleted");
    }

    #[test]
    fn hooked_devices_diff_like_elements() {
        let port = |n: &str| crate::endpoint_port(n);
        let d = diff(
            &[port("hnve1"), port("hnve2")],
            &[port("hnve2"), port("hnve3")],
        );
        assert_eq!(
            (d.delete, d.add),
            (vec![port("hnve1")], vec![port("hnve3")])
        );
    }
}
