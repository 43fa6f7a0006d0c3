//! Endpoints and namespaces by ID, indexed by name (namespaces also by the
//! netns they name, endpoints by the host ports they publish), so what a
//! create or an attach checks against every other object (no other of
//! that name; how many NICs that netns holds already; who publishes that
//! port) costs the same with 10 objects or 1000. Scanning them all made
//! each CNI ADD slower the more containers the host had
//! (docs/benchmarks.md, "Where hostnet-cni's ADD time goes").

use std::collections::btree_map;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use uuid::Uuid;

/// What a record is indexed by. All are fixed while the record is in the
/// registry: [`Registry::get_mut`] hands out records whose name, netns and
/// host ports must stay (a change is a new record, [`Registry::insert`]ed).
pub(crate) trait Indexed {
    fn name(&self) -> &str;
    /// The netns a namespace is; None for other records.
    fn netns(&self) -> Option<&Path> {
        None
    }
    /// The (IP protocol, host port) pairs an endpoint publishes.
    fn host_ports(&self) -> Vec<(u8, u16)> {
        Vec::new()
    }
}

/// Records by ID (iterated in ID order, as a `BTreeMap`), with indexes.
pub(crate) struct Registry<T> {
    by_id: BTreeMap<Uuid, T>,
    /// Non-empty names; several IDs only if a store holds duplicates.
    by_name: HashMap<String, Vec<Uuid>>,
    by_netns: HashMap<PathBuf, Vec<Uuid>>,
    by_host_port: HashMap<(u8, u16), Vec<Uuid>>,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            by_id: BTreeMap::new(),
            by_name: HashMap::new(),
            by_netns: HashMap::new(),
            by_host_port: HashMap::new(),
        }
    }
}

fn unlink<K: std::hash::Hash + Eq>(index: &mut HashMap<K, Vec<Uuid>>, key: &K, id: &Uuid) {
    if let Some(ids) = index.get_mut(key) {
        ids.retain(|i| i != id);
        if ids.is_empty() {
            index.remove(key);
        }
    }
}

impl<T: Indexed> Registry<T> {
    pub fn insert(&mut self, id: Uuid, rec: T) -> Option<T> {
        let old = self.remove(&id);
        if !rec.name().is_empty() {
            self.by_name
                .entry(rec.name().to_string())
                .or_default()
                .push(id);
        }
        if let Some(path) = rec.netns() {
            self.by_netns
                .entry(path.to_path_buf())
                .or_default()
                .push(id);
        }
        for port in rec.host_ports() {
            let ids = self.by_host_port.entry(port).or_default();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        self.by_id.insert(id, rec);
        old
    }

    pub fn remove(&mut self, id: &Uuid) -> Option<T> {
        let rec = self.by_id.remove(id)?;
        unlink(&mut self.by_name, &rec.name().to_string(), id);
        if let Some(path) = rec.netns() {
            unlink(&mut self.by_netns, &path.to_path_buf(), id);
        }
        for port in rec.host_ports() {
            unlink(&mut self.by_host_port, &port, id);
        }
        Some(rec)
    }

    /// The records named `name` (none for the empty name, which many
    /// objects may have), as (ID, name) pairs.
    pub fn named<'a>(&'a self, name: &str) -> impl Iterator<Item = (&'a Uuid, &'a str)> {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get_key_value(id))
            .map(|(id, rec)| (id, rec.name()))
    }

    /// The records that publish host port `port` of IP protocol `proto`,
    /// in ID order.
    pub fn publishing(&self, proto: u8, port: u16) -> Vec<(&Uuid, &T)> {
        let mut found: Vec<(&Uuid, &T)> = self
            .by_host_port
            .get(&(proto, port))
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get_key_value(id))
            .collect();
        found.sort_by_key(|(id, _)| **id);
        found
    }

    /// The records whose netns is `path` (paths compared component by
    /// component, as `Path`'s `==` does).
    pub fn in_netns<'a>(&'a self, path: &Path) -> impl Iterator<Item = &'a T> {
        self.by_netns
            .get(path)
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id))
    }
}

impl<T> Registry<T> {
    pub fn get(&self, id: &Uuid) -> Option<&T> {
        self.by_id.get(id)
    }

    /// The record, to change anything but its name and netns.
    pub fn get_mut(&mut self, id: &Uuid) -> Option<&mut T> {
        self.by_id.get_mut(id)
    }

    pub fn contains_key(&self, id: &Uuid) -> bool {
        self.by_id.contains_key(id)
    }

    pub fn iter(&self) -> btree_map::Iter<'_, Uuid, T> {
        self.by_id.iter()
    }

    /// The records whose IDs are in `ids`, in ID order.
    pub fn range(&self, ids: std::ops::RangeInclusive<Uuid>) -> btree_map::Range<'_, Uuid, T> {
        self.by_id.range(ids)
    }

    pub fn keys(&self) -> btree_map::Keys<'_, Uuid, T> {
        self.by_id.keys()
    }

    pub fn values(&self) -> btree_map::Values<'_, Uuid, T> {
        self.by_id.values()
    }

    /// Every record, to change anything but its name and netns.
    pub fn values_mut(&mut self) -> btree_map::ValuesMut<'_, Uuid, T> {
        self.by_id.values_mut()
    }
}

impl<T> std::ops::Index<&Uuid> for Registry<T> {
    type Output = T;
    fn index(&self, id: &Uuid) -> &T {
        &self.by_id[id]
    }
}

impl<'a, T> IntoIterator for &'a Registry<T> {
    type Item = (&'a Uuid, &'a T);
    type IntoIter = btree_map::Iter<'a, Uuid, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.by_id.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rec(&'static str, Option<&'static str>);

    impl Indexed for Rec {
        fn name(&self) -> &str {
            self.0
        }
        fn netns(&self) -> Option<&Path> {
            self.1.map(Path::new)
        }
        fn host_ports(&self) -> Vec<(u8, u16)> {
            match self.0 {
                "web" => vec![(6, 80), (6, 80), (17, 53)],
                "db" => vec![(6, 5432)],
                _ => Vec::new(),
            }
        }
    }

    fn publishers(r: &Registry<Rec>, proto: u8, port: u16) -> Vec<Uuid> {
        r.publishing(proto, port)
            .iter()
            .map(|(id, _)| **id)
            .collect()
    }

    fn ids(r: &Registry<Rec>, name: &str) -> Vec<Uuid> {
        r.named(name).map(|(id, _)| *id).collect()
    }

    #[test]
    fn indexes_follow_inserts_replacements_and_removals() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let mut r = Registry::default();
        r.insert(a, Rec("web", Some("/run/netns/x")));
        r.insert(b, Rec("", Some("/run/netns/x")));
        r.insert(c, Rec("", None));
        assert_eq!(ids(&r, "web"), vec![a]);
        assert!(ids(&r, "").is_empty(), "unnamed records are not indexed");
        assert_eq!(publishers(&r, 6, 80), vec![a], "listed once per record");
        assert_eq!(publishers(&r, 17, 53), vec![a]);
        assert_eq!(r.in_netns(Path::new("/run/netns/x")).count(), 2);

        // Replacing a record re-indexes it.
        r.insert(a, Rec("db", Some("/run/netns/y")));
        assert!(ids(&r, "web").is_empty());
        assert_eq!(ids(&r, "db"), vec![a]);
        assert!(publishers(&r, 6, 80).is_empty());
        assert_eq!(publishers(&r, 6, 5432), vec![a]);
        assert_eq!(r.in_netns(Path::new("/run/netns/x")).count(), 1);
        assert_eq!(r.in_netns(Path::new("/run/netns/y")).count(), 1);

        r.remove(&a);
        r.remove(&b);
        assert!(ids(&r, "db").is_empty());
        assert_eq!(r.in_netns(Path::new("/run/netns/x")).count(), 0);
        assert!(r.by_name.is_empty() && r.by_netns.is_empty() && r.by_host_port.is_empty());
        assert_eq!(r.iter().count(), 1);
    }
}
