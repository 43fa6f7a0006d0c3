//! Overlay networks shared by the hosts of a cluster: the definition every
//! host instantiates, the claims that keep VNIs and names unique
//! cluster-wide, and joining or leaving a network another host defined.

use hostnet_dataplane::teardown;
use hostnet_model::wire::HostComputeNetwork;
use hostnet_model::{ErrorCode, HcnError};
use hostnet_store::{Collection, Store, StoreError, Txn};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::object::{bytes, guid, Kind};
use crate::service::{NetworkRec, Service};

/// Policies that describe one host, not the network: each host fills in
/// its own.
const PER_HOST_POLICIES: [&str; 2] = ["ProviderAddress", "DrMacAddress"];

/// The network's definition as every host shares it: the stored HCN JSON
/// without this host's identity (`ProviderAddress`, `DrMacAddress`) and
/// transit link.
pub(crate) fn shared_definition(obj: &Map<String, Value>) -> Map<String, Value> {
    let mut shared = obj.clone();
    shared.remove(crate::overlay::TRANSIT_KEY);
    if let Some(list) = shared.get_mut("Policies").and_then(Value::as_array_mut) {
        list.retain(|p| {
            let t = p.get("Type").and_then(Value::as_str).unwrap_or("");
            !PER_HOST_POLICIES.iter().any(|x| x.eq_ignore_ascii_case(t))
        });
    }
    shared
}

/// Stage a new overlay network's shared definition and its claims (each
/// VNI, the name) into the transaction that stores it: a VNI or name
/// another network holds fails the whole create.
pub(crate) fn stage_shared_network(txn: &mut Txn, rec: &NetworkRec) {
    let id = guid(&rec.plan.id);
    txn.put(
        Collection::OverlayNetworks,
        &id,
        bytes(&shared_definition(&rec.obj)),
    );
    for s in rec.overlay.iter().flat_map(|o| &o.segments) {
        txn.claim(
            Collection::OverlayVnis,
            &s.vni.to_string(),
            id.clone().into_bytes(),
        );
    }
    if !rec.name.is_empty() {
        txn.claim(Collection::OverlayNames, &rec.name, id.into_bytes());
    }
}

/// Stage the removal of a network's definition and claims (deleting it on
/// any host deletes it for the cluster).
pub(crate) fn stage_unshared_network(txn: &mut Txn, rec: &NetworkRec) {
    txn.delete(Collection::OverlayNetworks, &guid(&rec.plan.id));
    for s in rec.overlay.iter().flat_map(|o| &o.segments) {
        txn.delete(Collection::OverlayVnis, &s.vni.to_string());
    }
    if !rec.name.is_empty() {
        txn.delete(Collection::OverlayNames, &rec.name);
    }
}

/// The error of a network create whose commit failed: a lost claim names
/// the network holding the VNI or name.
pub(crate) fn network_commit_error(store: &dyn Store, e: StoreError) -> HcnError {
    let holder = |c: Collection, key: &str| {
        store
            .get(c, key)
            .ok()
            .flatten()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_else(|| "(just deleted)".into())
    };
    match e {
        StoreError::Conflict {
            collection: Collection::OverlayVnis,
            key,
        } => HcnError::new(
            ErrorCode::InvalidPolicy,
            format!(
                "VSID {key} is already used by overlay network {} in the cluster (another host created it): give this network another VNI",
                holder(Collection::OverlayVnis, &key)
            ),
        ),
        StoreError::Conflict {
            collection: Collection::OverlayNames,
            key,
        } => HcnError::new(
            ErrorCode::NetworkAlreadyExists,
            format!(
                "an overlay network named {key:?} already exists in the cluster (ID {}; another host created it): choose another name or use that network",
                holder(Collection::OverlayNames, &key)
            ),
        ),
        e => crate::object::store_failure("saving to the store", e),
    }
}

impl Service {
    /// Instantiate an overlay network another host defined, under its ID
    /// and with this host's identity; Ok(false) when this host has it
    /// already. Remote endpoints already known on it are programmed.
    pub fn join_shared_network(&self, id: Uuid, definition: &[u8]) -> Result<bool, HcnError> {
        let wire: HostComputeNetwork = crate::object::parse_object(definition)?;
        let spec = hostnet_model::validate_network(&wire)?;
        let mut st = self.lock();
        if st.networks.contains_key(&id) {
            return Ok(false);
        }
        self.create_network_locked(&mut st, &wire, spec, Some(id))?;
        self.program_remote_endpoints_of(&mut st, id);
        drop(st);
        self.notify_dns(Kind::Network, &id);
        Ok(true)
    }

    /// Remove this host's instance of a shared overlay network whose
    /// definition is gone; Ok(false) when there is nothing to remove, when
    /// `confirm` finds the definition still in the store, or when local
    /// endpoints still use it (the instance stays, with a warning, until
    /// they are deleted and the network is deleted here).
    pub fn leave_shared_network(&self, id: Uuid, confirm: bool) -> Result<bool, HcnError> {
        if confirm {
            let present = self
                .store
                .get(Collection::OverlayNetworks, &guid(&id))
                .map_err(|e| crate::object::store_failure("reading the store", e))?;
            if present.is_some() {
                return Ok(false);
            }
        }
        let mut st = self.lock();
        let Some(rec) = st.networks.get(&id) else {
            return Ok(false);
        };
        if rec.overlay.is_none() {
            return Ok(false);
        }
        let users = st.endpoints.values().filter(|e| e.network == id).count();
        if users > 0 {
            log::warn!(
                "overlay network {} was deleted in the cluster but {users} endpoint(s) here still use it: keeping it on this host until they are deleted (then delete the network here)",
                guid(&id)
            );
            return Ok(false);
        }
        let mut txn = Txn::new();
        txn.delete(Kind::Network.collection(), &guid(&id));
        self.commit(txn)?;
        for e in teardown(self.dp.as_ref(), &crate::network::network_down(rec)) {
            log::warn!("network {}: {e} (left for the next reconcile)", guid(&id));
        }
        st.networks.remove(&id);
        st.remote_endpoints.unprogram_network(&id);
        drop(st);
        self.notify_dns(Kind::Network, &id);
        Ok(true)
    }

    /// The IDs of this host's overlay networks (in cluster mode, all
    /// shared), for a full resync against the cluster's definitions.
    pub fn overlay_network_ids(&self) -> Vec<Uuid> {
        let st = self.lock();
        st.networks
            .iter()
            .filter(|(_, n)| n.overlay.is_some())
            .map(|(id, _)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shared_definition_drops_this_hosts_identity_only() {
        let obj = json!({
            "ID": "X", "Name": "ov", "Type": "Overlay",
            "Policies": [
                {"Type": "ProviderAddress", "Settings": {"ProviderAddress": "192.0.2.11"}},
                {"Type": "drmacaddress", "Settings": {"Address": "02-11-c0-00-02-0b"}},
                {"Type": "VxlanPort", "Settings": {"Port": 4790}}
            ],
            "OverlayTransit": "169.254.0.0/31"
        });
        let shared = shared_definition(obj.as_object().unwrap());
        assert_eq!(
            Value::Object(shared),
            json!({"ID": "X", "Name": "ov", "Type": "Overlay",
                   "Policies": [{"Type": "VxlanPort", "Settings": {"Port": 4790}}]})
        );
    }
}
