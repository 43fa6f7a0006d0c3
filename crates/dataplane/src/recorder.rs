//! A recording fake of the dataplane for tests of the pure layers.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::{Adapter, Dataplane, DataplaneError, ElementCounter, Flow, LinkStats, Op, SetRef};

/// Records every op; fails the op whose 0-based index equals `fail_at`.
/// Reports the adapters and default route it was given (ops do not change
/// them).
#[derive(Default)]
pub struct Recorder {
    pub ops: Mutex<Vec<Op>>,
    pub tables: Mutex<Vec<String>>,
    pub fail_at: Mutex<Option<usize>>,
    /// What [`Dataplane::adapter`] reports, by name.
    pub adapters: Mutex<BTreeMap<String, Adapter>>,
    /// What [`Dataplane::default_route_interface`] reports.
    pub default_route: Mutex<Option<String>>,
    /// What [`Dataplane::neighbour_mac`] reports, by address.
    pub neighbours: Mutex<BTreeMap<std::net::Ipv4Addr, [u8; 6]>>,
    /// What [`Dataplane::set_counters`] reports, by set (none: empty).
    pub counters: Mutex<BTreeMap<SetRef, Vec<ElementCounter>>>,
    /// What [`Dataplane::link_stats`] reports, by link name.
    pub links: Mutex<BTreeMap<String, LinkStats>>,
    /// The conntrack table [`Dataplane::flows_of`] reads and
    /// [`Dataplane::delete_flows`] deletes from.
    pub flows: Mutex<Vec<Flow>>,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make the `n`-th op from now on fail.
    pub fn fail_after(&self, n: usize) {
        let done = self.ops.lock().unwrap().len();
        *self.fail_at.lock().unwrap() = Some(done + n);
    }

    pub fn take(&self) -> Vec<Op> {
        std::mem::take(&mut *self.ops.lock().unwrap())
    }

    /// Makes [`Dataplane::adapter`] report `adapter` under its name.
    pub fn set_adapter(&self, adapter: Adapter) {
        self.adapters
            .lock()
            .unwrap()
            .insert(adapter.name.clone(), adapter);
    }

    /// Makes [`Dataplane::default_route_interface`] report `name`.
    pub fn set_default_route(&self, name: Option<&str>) {
        *self.default_route.lock().unwrap() = name.map(str::to_string);
    }
}

impl Dataplane for Recorder {
    fn execute(&self, op: &Op) -> Result<(), DataplaneError> {
        let mut ops = self.ops.lock().unwrap();
        if Some(ops.len()) == *self.fail_at.lock().unwrap() {
            *self.fail_at.lock().unwrap() = None;
            ops.push(op.clone());
            return Err(DataplaneError::new("recorder", "injected failure"));
        }
        ops.push(op.clone());
        Ok(())
    }

    fn load_tables(&self, script: &str) -> Result<(), DataplaneError> {
        self.tables.lock().unwrap().push(script.to_string());
        Ok(())
    }

    fn links_with_prefix(&self, _prefix: &str) -> Result<Vec<String>, DataplaneError> {
        Ok(Vec::new())
    }

    fn adapter(&self, name: &str) -> Result<Option<Adapter>, DataplaneError> {
        Ok(self.adapters.lock().unwrap().get(name).cloned())
    }

    fn address_owner(&self, addr: std::net::IpAddr) -> Result<Option<Adapter>, DataplaneError> {
        Ok(self
            .adapters
            .lock()
            .unwrap()
            .values()
            .find(|a| a.addresses.iter().any(|n| n.addr() == addr))
            .cloned())
    }

    fn local_addresses(&self) -> Result<Vec<std::net::IpAddr>, DataplaneError> {
        Ok(self
            .adapters
            .lock()
            .unwrap()
            .values()
            .flat_map(|a| a.addresses.iter().map(|n| n.addr()))
            .collect())
    }

    fn default_route_interface(&self) -> Result<Option<String>, DataplaneError> {
        Ok(self.default_route.lock().unwrap().clone())
    }

    /// Another namespace holds nothing the recorder was told of.
    fn in_netns(&self, _path: &std::path::Path) -> Result<Box<dyn Dataplane>, DataplaneError> {
        Ok(Box::new(Recorder::new()))
    }

    fn vxlan_entries(&self, _link: &str) -> Result<crate::VxlanEntries, DataplaneError> {
        Ok(crate::VxlanEntries::default())
    }

    fn neighbour_mac(
        &self,
        _link: &str,
        addr: std::net::Ipv4Addr,
    ) -> Result<Option<[u8; 6]>, DataplaneError> {
        Ok(self.neighbours.lock().unwrap().get(&addr).copied())
    }

    fn set_counters(&self, set: SetRef) -> Result<Vec<ElementCounter>, DataplaneError> {
        Ok(self
            .counters
            .lock()
            .unwrap()
            .get(&set)
            .cloned()
            .unwrap_or_default())
    }

    fn link_stats(&self, name: &str) -> Result<Option<LinkStats>, DataplaneError> {
        Ok(self.links.lock().unwrap().get(name).copied())
    }

    fn flows_of(&self, addrs: &[std::net::IpAddr]) -> Result<Vec<Flow>, DataplaneError> {
        let flows = self.flows.lock().unwrap();
        Ok(flows
            .iter()
            .filter(|f| f.involves(addrs))
            .cloned()
            .collect())
    }

    fn delete_flows(&self, gone: &[Flow]) -> Result<(), DataplaneError> {
        self.flows.lock().unwrap().retain(|f| !gone.contains(f));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_adapters_it_was_given() {
        let rec = Recorder::new();
        assert_eq!(rec.adapter("eth0").unwrap(), None);
        assert_eq!(rec.default_route_interface().unwrap(), None);
        let eth0 = Adapter {
            name: "eth0".into(),
            index: 2,
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
            addresses: vec!["192.0.2.11/24".parse().unwrap()],
            routes: vec![],
            master: None,
            up: true,
        };
        rec.set_adapter(eth0.clone());
        rec.set_default_route(Some("eth0"));
        let shared = std::sync::Arc::new(rec);
        assert_eq!(shared.adapter("eth0").unwrap(), Some(eth0));
        assert_eq!(
            shared.default_route_interface().unwrap().as_deref(),
            Some("eth0")
        );
    }
}
