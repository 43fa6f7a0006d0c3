//! Host adapters taken over by Transparent networks.
//!
//! Binding moves the host's addresses and routes off the adapter, so losing
//! track of a binding could cut the host off. The adapter as it was is
//! therefore written to the store (`Meta`, key `adapter:<network ID>`)
//! *before* the kernel is touched, and removed only after the adapter got
//! everything back. On start, a record whose network does not exist (a crash
//! mid-create or mid-delete) is unbound; one whose network exists is bound
//! again if the kernel lost it.
//!
//! A network with a VLAN binds its VLAN's sub-interface instead (see
//! `hostnet_drivers::vlan`): the record then holds that uplink (no
//! addresses: the host's stay on the adapter) and the VLAN, under `Vlan`.
//!
//! A network that teams adapters (`NetworkAdapterName` "eth1,eth2") binds
//! a bond of them (see `hostnet_drivers::team`): the record holds the bond
//! as uplink and, under `Team`, every member as it was (addresses, routes,
//! MAC, MTU, up/down), which is what giving them back restores.

use std::net::IpAddr;

use hostnet_dataplane::{Adapter, AdapterRoute, BondMode};
use hostnet_drivers::{names, team::Team, vlan::Vlan};
use hostnet_model::domain::{Mac, NetworkPolicy, NetworkSpec};
use hostnet_model::{ErrorCode, HcnError};
use hostnet_store::{Collection, Txn};
use ipnet::IpNet;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::object::{guid, internal};
use crate::service::{Service, State};

const KEY_PREFIX: &str = "adapter:";

/// What a bound network took: its uplink, the port of its bridge facing
/// the wire (the adapter as it was, or a VLAN's sub-interface), and the
/// VLAN if it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Binding {
    pub uplink: Adapter,
    pub vlan: Option<Vlan>,
    /// The members when the uplink is a team's bond.
    pub team: Option<Team>,
}

impl Binding {
    /// The host adapter this binding uses (the trunk, with a VLAN; the
    /// bond, with a team).
    pub fn adapter_name(&self) -> &str {
        self.vlan
            .as_ref()
            .map_or(self.uplink.name.as_str(), |v| v.parent.as_str())
    }

    /// Every host adapter this binding uses: a team's members, else
    /// [`Binding::adapter_name`].
    pub fn adapter_names(&self) -> Vec<&str> {
        match &self.team {
            Some(t) => t.member_names().collect(),
            None => vec![self.adapter_name()],
        }
    }
}

/// The teaming modes, by the name `TeamingMode` gives them (the kernel's).
const TEAMING_MODES: [BondMode; 2] = [BondMode::ActiveBackup, BondMode::BalanceTlb];

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
    /// and to be free: untagged, no other network may have it; on a VLAN,
    /// no other network may have that VLAN of it (an untagged network and
    /// other VLANs may).
    pub(crate) fn free_adapter(
        &self,
        st: &State,
        network: &Uuid,
        spec: &NetworkSpec,
        vlan: Option<u16>,
    ) -> Result<Binding, HcnError> {
        let named = spec.policies.iter().find_map(|p| match p {
            NetworkPolicy::NetAdapterName { name, teaming_mode } => {
                Some((name.clone(), teaming_mode.clone()))
            }
            _ => None,
        });
        if let Some((list, mode)) = &named {
            let members: Vec<&str> = list
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect();
            if members.len() > 1 || mode.is_some() {
                return self.free_team(st, network, &members, mode.as_deref(), vlan);
            }
        }
        let name = match named {
            Some((n, _)) => n.trim().to_string(),
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
        if let Some(id) = teamed_by(st, &name) {
            return Err(HcnError::new(
                ErrorCode::InvalidNetwork,
                format!(
                    "adapter {name} is a member of network {}'s team: free it (delete that network) or name another adapter",
                    guid(&id)
                ),
            ));
        }
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
        let taken_by = st.networks.iter().find(|(_, n)| {
            n.binding()
                .is_some_and(|b| b.adapter_name() == name && b.vlan.as_ref().map(|v| v.id) == vlan)
        });
        if let Some((id, _)) = taken_by {
            let message = match vlan {
                None => format!(
                    "adapter {name} is already bound to network {} (untagged): one adapter serves one untagged network; give this network a VLAN or name another adapter",
                    guid(id)
                ),
                Some(v) => format!(
                    "VLAN {v} of adapter {name} is already network {}'s: one VLAN of an adapter serves one network; choose another VLAN or adapter",
                    guid(id)
                ),
            };
            return Err(HcnError::new(ErrorCode::InvalidNetwork, message));
        }
        // A VLAN's sub-interface receives its tagged frames even when the
        // adapter is a port of an untagged network's bridge (the kernel
        // hands them to it before the bridge sees them).
        let ours = |m: &str| m.starts_with(names::BRIDGE_PREFIX) && vlan.is_some();
        if let Some(master) = adapter.master.as_deref().filter(|m| !ours(m)) {
            return Err(HcnError::new(
                ErrorCode::InvalidNetwork,
                format!(
                    "adapter {name} is already a port of {master}: free it or name another adapter"
                ),
            ));
        }
        Ok(match vlan {
            None => Binding {
                uplink: adapter,
                vlan: None,
                team: None,
            },
            Some(id) => {
                let v = Vlan {
                    parent: adapter.name.clone(),
                    parent_index: adapter.index,
                    id,
                };
                Binding {
                    uplink: v.uplink(&adapter),
                    vlan: Some(v),
                    team: None,
                }
            }
        })
    }

    /// The team a network asks for: at least two adapters, each existing,
    /// named once, and free (no other network uses it in any way, and it
    /// is no other link's port); the mode one of [`TEAMING_MODES`].
    fn free_team(
        &self,
        st: &State,
        network: &Uuid,
        members: &[&str],
        mode: Option<&str>,
        vlan: Option<u16>,
    ) -> Result<Binding, HcnError> {
        let mode = match mode.map(str::trim) {
            None => BondMode::ActiveBackup,
            Some(m) => BondMode::from_kernel_name(m).ok_or_else(|| {
                let valid: Vec<&str> = TEAMING_MODES.iter().map(|m| m.kernel_name()).collect();
                HcnError::new(
                    ErrorCode::InvalidPolicy,
                    format!(
                        "TeamingMode {m:?} is not a teaming mode: give one of {} (default active-backup)",
                        valid.join(", ")
                    ),
                )
            })?,
        };
        if members.len() < 2 {
            return Err(HcnError::new(
                ErrorCode::InvalidPolicy,
                format!(
                    "TeamingMode applies to a team, and NetworkAdapterName {:?} names one adapter: name two or more, comma-separated (eth1,eth2), or drop TeamingMode",
                    members.join(",")
                ),
            ));
        }
        if let Some(v) = vlan {
            return Err(HcnError::new(
                ErrorCode::RequestUnsupported,
                format!(
                    "VLAN {v} on a team of adapters ({}) is not supported yet: give the network one adapter for its VLAN, or drop the VLAN policy to team",
                    members.join(",")
                ),
            ));
        }
        let mut adapters: Vec<Adapter> = Vec::new();
        for (i, name) in members.iter().enumerate() {
            if members[..i].contains(name) {
                return Err(HcnError::new(
                    ErrorCode::InvalidPolicy,
                    format!(
                        "adapter {name} is named twice in NetworkAdapterName {:?}: name each team member once",
                        members.join(",")
                    ),
                ));
            }
            let adapter = self
                .dp
                .adapter(name)
                .map_err(|e| internal("reading the adapter", e))?
                .ok_or_else(|| {
                    HcnError::new(
                        ErrorCode::AdapterNotFound,
                        format!("team member {name:?} does not exist on this host: name existing interfaces in NetworkAdapterName"),
                    )
                })?;
            let user = st.networks.iter().find(|(_, n)| {
                n.binding()
                    .is_some_and(|b| b.adapter_names().contains(name))
            });
            if let Some((id, _)) = user {
                return Err(HcnError::new(
                    ErrorCode::InvalidNetwork,
                    format!(
                        "team member {name} is already network {}'s adapter: a team member serves its team only; delete that network or name another adapter",
                        guid(id)
                    ),
                ));
            }
            if let Some(master) = &adapter.master {
                return Err(HcnError::new(
                    ErrorCode::InvalidNetwork,
                    format!(
                        "team member {name} is already a port of {master}: free it or name another adapter"
                    ),
                ));
            }
            adapters.push(adapter);
        }
        let team = Team {
            mode,
            members: adapters,
        };
        Ok(Binding {
            uplink: team.uplink(network),
            vlan: None,
            team: Some(team),
        })
    }

    /// Write (or, with `None`, remove) a network's adapter record.
    pub(crate) fn record_adapter(
        &self,
        network: &Uuid,
        binding: Option<&Binding>,
    ) -> Result<(), HcnError> {
        let mut txn = Txn::new();
        match binding {
            Some(b) => txn.put(
                Collection::Meta,
                &key(network),
                binding_json(b).to_string().into_bytes(),
            ),
            None => txn.delete(Collection::Meta, &key(network)),
        };
        self.commit(txn)
    }

    /// Every adapter record in the store.
    pub(crate) fn adapter_records(&self) -> Result<Vec<(Uuid, Binding)>, HcnError> {
        let all = self
            .store
            .list(Collection::Meta)
            .map_err(|e| internal("reading the store", e))?;
        Ok(all
            .into_iter()
            .filter_map(|(k, v)| {
                let id = network_of(&k)?;
                let a = serde_json::from_slice(&v)
                    .ok()
                    .and_then(|v| binding_from_json(&v));
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
        let subnet = s.prefix;
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
            if s.gateway == own.addr() {
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

/// The team as `hostnet network inspect` shows it (hostnet's `Team` key
/// of the network object).
pub(crate) fn team_json(t: &Team, bond: &str) -> Value {
    json!({
        "Bond": bond,
        "Mode": t.mode.kernel_name(),
        "Members": t.member_names().collect::<Vec<_>>(),
    })
}

fn binding_json(b: &Binding) -> Value {
    let mut v = to_json(&b.uplink);
    if let Some(t) = &b.team {
        v["Team"] = json!({
            "Mode": t.mode.kernel_name(),
            "Members": t.members.iter().map(to_json).collect::<Vec<_>>(),
        });
    }
    if let Some(vlan) = &b.vlan {
        v["Vlan"] = json!({
            "Parent": vlan.parent,
            "ParentIndex": vlan.parent_index,
            "Id": vlan.id,
        });
    }
    v
}

fn binding_from_json(v: &Value) -> Option<Binding> {
    let vlan = match v.get("Vlan") {
        None | Some(Value::Null) => None,
        Some(vl) => Some(Vlan {
            parent: vl["Parent"].as_str()?.to_string(),
            parent_index: vl["ParentIndex"].as_u64()?.try_into().ok()?,
            id: vl["Id"].as_u64()?.try_into().ok()?,
        }),
    };
    let team = match v.get("Team") {
        None | Some(Value::Null) => None,
        Some(t) => Some(Team {
            mode: BondMode::from_kernel_name(t["Mode"].as_str()?)?,
            members: t["Members"]
                .as_array()?
                .iter()
                .map(from_json)
                .collect::<Option<Vec<_>>>()?,
        }),
    };
    Some(Binding {
        uplink: from_json(v)?,
        vlan,
        team,
    })
}

fn to_json(a: &Adapter) -> Value {
    json!({
        "Name": a.name,
        "Index": a.index,
        "MacAddress": Mac(a.mac).to_string(),
        "Mtu": a.mtu,
        "Up": a.up,
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
        // Records from before teaming did not say: their adapters were up.
        up: v["Up"].as_bool().unwrap_or(true),
    })
}

/// The network whose team has adapter `name`, if one has.
fn teamed_by(st: &State, name: &str) -> Option<Uuid> {
    st.networks
        .iter()
        .find(|(_, n)| {
            n.team
                .as_ref()
                .is_some_and(|t| t.member_names().any(|m| m == name))
        })
        .map(|(id, _)| *id)
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
            up: true,
        };
        assert_eq!(from_json(&to_json(&a)), Some(a.clone()));
        let untagged = Binding {
            uplink: a.clone(),
            vlan: None,
            team: None,
        };
        assert_eq!(binding_from_json(&binding_json(&untagged)), Some(untagged));
        let v = Vlan {
            parent: "eth0".into(),
            parent_index: 2,
            id: 4094,
        };
        let tagged = Binding {
            uplink: v.uplink(&a),
            vlan: Some(v),
            team: None,
        };
        assert_eq!(tagged.adapter_name(), "eth0");
        assert_eq!(binding_from_json(&binding_json(&tagged)), Some(tagged));
        let eth2 = Adapter {
            name: "eth2".into(),
            up: false,
            addresses: Vec::new(),
            routes: Vec::new(),
            ..a.clone()
        };
        let team = Team {
            mode: BondMode::BalanceTlb,
            members: vec![a.clone(), eth2],
        };
        let id = Uuid::new_v4();
        let teamed = Binding {
            uplink: team.uplink(&id),
            vlan: None,
            team: Some(team),
        };
        assert_eq!(teamed.adapter_names(), ["eth0", "eth2"]);
        assert_eq!(binding_from_json(&binding_json(&teamed)), Some(teamed));
        assert_eq!(network_of(&key(&id)), Some(id));
        assert_eq!(network_of("initialized"), None);
    }
}
