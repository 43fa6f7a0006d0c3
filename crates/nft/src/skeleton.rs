//! A version of hostnet's table skeleton, fingerprinted, so a restart can
//! tell whether the kernel's tables are this version's and keep them.
//!
//! Loading the skeleton with every element through `nft -f` costs seconds
//! with 10,000 load balancers (nft's parser dominates). When the kernel
//! still holds tables made from the same skeleton text (a daemon restart,
//! not a reboot or an upgrade), only their elements can differ from what
//! the store wants, and the difference is one element transaction
//! ([`crate::sync`]). Each table carries the fingerprint of the skeleton's
//! text as its comment (userdata, Linux 5.10+, nft 0.9.7+), which the
//! daemon reads back over netlink.

use std::fmt::Write;

use crate::{Family, SetElement};

/// What a table's comment says before the fingerprint.
pub const COMMENT_PREFIX: &str = "hostnet skeleton ";

/// One version of a set of tables: the `nft -f` text replacing them with
/// empty ones, and the fingerprint each of them carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skeleton {
    /// Replaces the tables atomically, each with its comment.
    pub script: String,
    /// A hash of the skeleton's text without the comments.
    pub fingerprint: String,
    /// The tables the script makes (and that must all carry the
    /// fingerprint for the kernel's copy to be reused).
    pub tables: Vec<(Family, &'static str)>,
    /// Sets whose elements the skeleton itself declares (`elements =`,
    /// as `lb_picks`): `family table set`. Part of the skeleton, never of
    /// the store's elements, so a sync leaves them alone.
    pub filled: Vec<String>,
    /// The chains the skeleton declares: `family table chain`. Any other
    /// regular chain in its tables is an element's ([`crate::Data::Rules`]).
    pub chains: Vec<String>,
}

impl Skeleton {
    /// `text` made into a fingerprinted skeleton: every `table F NAME {`
    /// line of `tables` gets the comment as its first statement.
    pub(crate) fn new(text: String, tables: Vec<(Family, &'static str)>) -> Self {
        let fingerprint = fingerprint(&text);
        let comment = format!("\tcomment \"{COMMENT_PREFIX}{fingerprint}\"\n");
        let openers: Vec<String> = tables
            .iter()
            .map(|(f, t)| format!("table {} {t} {{", f.keyword()))
            .collect();
        let mut script = String::with_capacity(text.len() + comment.len() * tables.len());
        let mut filled = Vec::new();
        let mut chains = Vec::new();
        let mut table = String::new();
        for line in text.split_inclusive('\n') {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[..] {
                ["table", family, name, "{"] => table = format!("{family} {name}"),
                ["chain", name, "{", ..] => chains.push(format!("{table} {name}")),
                ["set" | "map", name, ..] if line.contains("elements = {") => {
                    filled.push(format!("{table} {name}"))
                }
                _ => {}
            }
            script.push_str(line);
            if openers.iter().any(|o| line.trim_end() == o) {
                script.push_str(&comment);
            }
        }
        Self {
            script,
            fingerprint,
            tables,
            filled,
            chains,
        }
    }

    /// Whether the skeleton declares chain `chain` of `table`.
    pub fn declares_chain(&self, family: Family, table: &str, chain: &str) -> bool {
        let name = format!("{} {table} {chain}", family.keyword());
        self.chains.contains(&name)
    }

    /// Whether the skeleton declares the elements of `set` itself.
    pub fn fills(&self, family: Family, table: &str, set: &str) -> bool {
        let name = format!("{} {table} {set}", family.keyword());
        self.filled.contains(&name)
    }

    /// The comment each table carries.
    pub fn comment(&self) -> String {
        format!("{COMMENT_PREFIX}{}", self.fingerprint)
    }

    /// The script with `elements` in place, devices hooked in design
    /// `hooks`: one `nft -f` transaction.
    pub fn with_elements(&self, elements: &[SetElement], hooks: crate::hook::HookDesign) -> String {
        let mut s = self.script.clone();
        s.push_str(&crate::ruleset::element_statements(elements, hooks));
        s
    }
}

/// FNV-1a (64 bits) of `text`, in hex: stable across builds and Rust
/// versions, unlike std's hasher; a collision only costs a wrong reuse of
/// tables whose text differs, which 64 bits make negligible.
fn fingerprint(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut s = String::with_capacity(16);
    let _ = write!(s, "{h:016x}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_carries_the_fingerprint_of_the_text() {
        let sk = crate::skeleton();
        assert_eq!(sk.fingerprint.len(), 16);
        assert_eq!(sk.tables.len(), 6);
        for (f, t) in &sk.tables {
            let opener = format!(
                "table {} {t} {{\n\tcomment \"{}\"\n",
                f.keyword(),
                sk.comment()
            );
            assert!(sk.script.contains(&opener), "{opener}");
        }
        assert_eq!(
            sk.script.matches("\tcomment \"hostnet skeleton ").count(),
            6
        );
        assert_eq!(
            sk.filled,
            vec![format!("inet hostnet {}", crate::lb::PICKS)]
        );
        assert!(sk.fills(Family::Inet, crate::TABLE, crate::lb::PICKS));
        assert!(!sk.fills(Family::Inet, crate::TABLE, crate::NAT_SOURCES4));
        assert!(sk.declares_chain(Family::Inet, crate::TABLE, "postrouting"));
        assert!(sk.declares_chain(Family::Netdev, crate::EGRESS_TABLE, crate::ENDPOINT_INBOUND));
        assert!(!sk.declares_chain(Family::Inet, crate::TABLE, "acl_ep_10.0.0.2"));
        // The same text gives the same fingerprint, another text another.
        assert_eq!(crate::skeleton(), sk);
        let other = Skeleton::new(format!("{}#\n", sk.script), sk.tables.clone());
        assert_ne!(other.fingerprint, sk.fingerprint);
    }

    #[test]
    fn the_router_skeleton_is_fingerprinted_too() {
        let sk = crate::router::skeleton();
        assert_eq!(sk.tables.len(), 2);
        assert_eq!(sk.script.matches(&sk.comment()).count(), 2);
        assert_ne!(sk.fingerprint, crate::skeleton().fingerprint);
    }
}
