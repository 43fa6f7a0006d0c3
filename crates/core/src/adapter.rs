//! Host adapters taken over by Transparent networks.
//!
//! Binding moves the host's addresses and routes off the adapter, so losing
//! track of a binding could cut the host off. The adapter as it was is
//! therefore written to the store (`Meta`, key `adapter:<network ID>`)
//! *before* the kernel is touched, and removed only after the adapter got
//! everything back. On start, a record whose network does not exist (a crash
//! mid-create or mid-delete) is unbound; one whose network exists is bound
//! again if the kernel lost it.

use std::net::IpAddr;

use hostnet_dataplane::{Adapter, AdapterRoute};
use hostnet_model::domain::{Mac, NetworkPolicy, NetworkSpec};
use hostnet_model::{ErrorCode, HcnError};
use hostnet_store::{Collection, Txn};
use ipnet::IpNet;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::object::{guid, internal};
use crate::service::{Service, State};

const KEY_PREFIX: &str = "adapter:";

/// The store key of a network's adapter record.
pub fn key(network: &Uuid) -> String {
    format!("{KEY_PREFIX}{}", guid(network))
}

/// The network a store key belongs to, if it is an adapter record.
pub fn network_of(key: &str) -> Option<Uuid> {
    key.strip_prefix(KEY_PREFIX)
        .and_then(|id| hostnet_model::parse_guid(id).ok())
}

impl Service {
    /// The adapter a Transparent network asks for (its `NetAdapterName`
    /// policy, else the host's default-route interface), checked to exist
    /// and to be free.
    pub(crate) fn free_adapter(&self, st: &State, spec: &NetworkSpec) -> Result<Adapter, HcnError> {
        let named = spec.policies.iter().find_map(|p| match p {
            NetworkPolicy::NetAdapterName(n) => Some(n.clone()),
            _ => None,
        });
        let name = match named {
            Some(n) => n,
            None => self
                .dp
                .default_route_interface()
                .map_err(|e| internal("finding the default route's interface", e))?
                .ok_or_else(|| {
                    HcnError::new(
                        ErrorCode::AdapterNotFound,
                        "the host has no default route to pick an adapter from: name one with a NetAdapterName policy",
                    )
                })?,
        };
        let adapter = self
            .dp
            .adapter(&name)
            .map_err(|e| internal("reading the adapter", e))?
            .ok_or_else(|| {
                HcnError::new(
                    ErrorCode::AdapterNotFound,
                    format!("adapter {name:?} does not exist on this host: name an existing interface in NetAdapterName"),
                )
            })?;
        let taken_by = st
            .networks
            .iter()
            .find(|(_, n)| n.adapter.as_ref().is_some_and(|a| a.name == name));
        if let Some((id, _)) = taken_by {
            return Err(HcnError::new(
                ErrorCode::InvalidNetwork,
                format!(
                    "adapter {name} is already bound to network {}: one adapter serves one network",
                    guid(id)
                ),
            ));
        }
        if let Some(master) = &adapter.master {
            return Err(HcnError::new(
                ErrorCode::InvalidNetwork,
                format!(
                    "adapter {name} is already a port of {master}: free it or name another adapter"
                ),
            ));
        }
        Ok(adapter)
    }

    /// Write (or, with `None`, remove) a network's adapter record.
    pub(crate) fn record_adapter(
        &self,
        network: &Uuid,
        adapter: Option<&Adapter>,
    ) -> Result<(), HcnError> {
        let mut txn = Txn::new();
        match adapter {
            Some(a) => txn.put(
                Collection::Meta,
                &key(network),
                to_json(a).to_string().into_bytes(),
            ),
            None => txn.delete(Collection::Meta, &key(network)),
        };
        self.commit(txn)
    }

    /// Every adapter record in the store.
    pub(crate) fn adapter_records(&self) -> Result<Vec<(Uuid, Adapter)>, HcnError> {
        let all = self
            .store
            .list(Collection::Meta)
            .map_err(|e| internal("reading the store", e))?;
        Ok(all
            .into_iter()
            .filter_map(|(k, v)| {
                let id = network_of(&k)?;
                let a = serde_json::from_slice(&v).ok().and_then(|v| from_json(&v));
                if a.is_none() {
                    log::error!("adapter record {k} is unreadable");
                }
                Some((id, a?))
            })
            .collect())
    }
}

/// A network's subnets must fit the adapter's: a subnet that overlaps one
/// of the host's own subnets must be exactly it (a wider or narrower one
/// would give endpoints and the host different ideas of who is on-link),
/// and its gateway must not be the host's own address.
pub(crate) fn check_subnets_fit(
    adapter: &Adapter,
    subnets: &[crate::subnet::Resolved],
) -> Result<(), HcnError> {
    for s in subnets {
        let subnet = IpNet::V4(s.prefix);
        for own in &adapter.addresses {
            let host_subnet = own.trunc();
            let overlaps =
                subnet.contains(&host_subnet.network()) || host_subnet.contains(&subnet.network());
            if overlaps && host_subnet != subnet {
                return Err(HcnError::new(
                    ErrorCode::InvalidSubnet,
                    format!(
                        "subnet {subnet} does not fit adapter {}, which is on {host_subnet}: use {host_subnet} itself or a subnet that does not overlap it",
                        adapter.name
                    ),
                ));
            }
            if IpAddr::V4(s.gateway) == own.addr() {
                return Err(HcnError::new(
                    ErrorCode::InvalidSubnet,
                    format!(
                        "the gateway of subnet {subnet} is {}, the host's own address on adapter {}: give the physical gateway (or a host endpoint's address) as the default route's NextHop",
                        s.gateway, adapter.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn to_json(a: &Adapter) -> Value {
    json!({
        "Name": a.name,
        "Index": a.index,
        "MacAddress": Mac(a.mac).to_string(),
        "Mtu": a.mtu,
        "Addresses": a.addresses.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "Routes": a.routes.iter().map(|r| json!({
            "DestinationPrefix": r.destination.to_string(),
            "NextHop": r.via.map(|v| v.to_string()),
            "Metric": r.metric,
            "Table": r.table,
            "Proto": r.proto,
            "Scope": r.scope,
            "Source": r.src.map(|s| s.to_string()),
        })).collect::<Vec<_>>(),
    })
}

fn from_json(v: &Value) -> Option<Adapter> {
    let ip = |v: &Value| v.as_str().and_then(|s| s.parse::<IpAddr>().ok());
    let routes = v["Routes"]
        .as_array()?
        .iter()
        .map(|r| {
            Some(AdapterRoute {
                destination: r["DestinationPrefix"].as_str()?.parse::<IpNet>().ok()?,
                via: ip(&r["NextHop"]),
                metric: r["Metric"].as_u64()? as u32,
                table: r["Table"].as_u64()? as u32,
                proto: r["Proto"].as_u64()? as u8,
                scope: r["Scope"].as_u64()? as u8,
                src: ip(&r["Source"]),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Adapter {
        name: v["Name"].as_str()?.to_string(),
        index: v["Index"].as_u64()? as u32,
        mac: v["MacAddress"].as_str()?.parse::<Mac>().ok()?.0,
        mtu: v["Mtu"].as_u64()? as u32,
        addresses: v["Addresses"]
            .as_array()?
            .iter()
            .map(|a| a.as_str()?.parse().ok())
            .collect::<Option<Vec<_>>>()?,
        routes,
        master: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_records_round_trip() {
        let a = Adapter {
            name: "eth0".into(),
            index: 2,
            mac: [2, 0, 0, 0, 0x11, 0x11],
            mtu: 1450,
            addresses: vec![
                "192.0.2.11/24".parse().unwrap(),
                "2001:db8::11/64".parse().unwrap(),
            ],
            routes: vec![AdapterRoute {
                destination: "0.0.0.0/0".parse().unwrap(),
                via: Some("192.0.2.1".parse().unwrap()),
                metric: 0,
                table: 254,
                proto: 3,
                scope: 0,
                src: None,
            }],
            master: None,
        };
        assert_eq!(from_json(&to_json(&a)), Some(a));
        let id = Uuid::new_v4();
        assert_eq!(network_of(&key(&id)), Some(id));
        assert_eq!(network_of("initialized"), None);
    }
}
