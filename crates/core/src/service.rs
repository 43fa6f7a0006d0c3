//! The service object: state, locking and dispatch by kind.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use hostnet_dataplane::Adapter;
use hostnet_dataplane::Dataplane;
use hostnet_drivers::bridge;
use hostnet_ipam::{MacPool, SubnetPool};
use hostnet_model::domain::{NetworkKind, NetworkSpec, PortMapping};
use hostnet_model::{ErrorCode, HcnError};
use hostnet_store::{Store, Txn};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::object::{bytes, Kind};
use crate::registry::{Indexed, Registry};
use crate::Config;

/// A network and the address pools of its subnets.
#[derive(Clone)]
pub(crate) struct NetworkRec {
    pub obj: Map<String, Value>,
    pub name: String,
    pub spec: NetworkSpec,
    pub kind: NetworkKind,
    /// The uplink a bound network (Transparent, L2Bridge, L2Tunnel) took
    /// over: the host adapter as it was before, or its VLAN's sub-interface.
    pub adapter: Option<Adapter>,
    /// The VLAN of a bound network on one (its uplink is then the
    /// sub-interface).
    pub vlan: Option<hostnet_drivers::vlan::Vlan>,
    /// The adapters a teamed network took (its uplink is then their bond).
    pub team: Option<hostnet_drivers::team::Team>,
    pub plan: bridge::Network,
    /// An Overlay network's plan (docs/drivers/overlay.md); None otherwise.
    pub overlay: Option<hostnet_drivers::overlay::Overlay>,
    pub pools: Vec<SubnetPool>,
    pub macs: MacPool,
}

impl NetworkRec {
    /// A NAT network with an IPv6 subnet next to its IPv4 ones: its
    /// endpoints get an address of each family.
    pub(crate) fn is_dual_stack(&self) -> bool {
        self.pools.iter().any(|p| p.prefix().addr().is_ipv6())
    }

    /// What a bound network took (None: it binds no adapter).
    pub(crate) fn binding(&self) -> Option<crate::adapter::Binding> {
        self.adapter.as_ref().map(|uplink| crate::adapter::Binding {
            uplink: uplink.clone(),
            vlan: self.vlan.clone(),
            team: self.team.clone(),
        })
    }
}

/// An endpoint, resolved: its address, MAC and mappings are fixed.
#[derive(Clone)]
pub(crate) struct EndpointRec {
    pub obj: Map<String, Value>,
    pub name: String,
    pub network: Uuid,
    pub plan: bridge::Endpoint,
    pub mappings: Vec<PortMapping>,
    /// The endpoint's `ACL` policies, as validated.
    pub acls: Vec<hostnet_model::domain::AclRule>,
    /// The endpoint's `TierAcl` policies, as validated.
    pub tiers: Vec<hostnet_model::domain::TierAcl>,
    pub namespace: Option<Uuid>,
    pub ifname: String,
    /// A VM's NIC (`VmNic`): its port is a tap, made with the endpoint,
    /// and it is never attached to a namespace.
    pub vm_nic: bool,
}

impl EndpointRec {
    /// Whether the endpoint has a port on its network's switch, and if so
    /// whether it is a host endpoint's (an address on the bridge, no port
    /// elements): a veth while attached to a namespace, a VM NIC's tap
    /// always, nothing while detached.
    pub(crate) fn plugged(&self, namespaces: &Registry<NamespaceRec>) -> Option<bool> {
        if self.vm_nic {
            return Some(false);
        }
        self.namespace
            .and_then(|n| namespaces.get(&n))
            .map(|n| n.host)
    }
}

/// A namespace: a netns bind-mounted at `path`, or the host's own
/// (`HostDefault`), whose endpoints are host endpoints.
pub(crate) struct NamespaceRec {
    pub obj: Map<String, Value>,
    pub name: String,
    pub path: PathBuf,
    pub endpoints: Vec<Uuid>,
    pub host: bool,
    /// Someone else's netns (a container runtime's, given as `NetNsPath`):
    /// hostnet neither makes nor removes it, and does not bring it back.
    pub external: bool,
}

impl Indexed for EndpointRec {
    fn name(&self) -> &str {
        &self.name
    }
    fn host_ports(&self) -> Vec<(u8, u16)> {
        self.mappings
            .iter()
            .map(|m| (m.protocol.number(), m.external_port))
            .collect()
    }
}

impl Indexed for NamespaceRec {
    fn name(&self) -> &str {
        &self.name
    }
    fn netns(&self) -> Option<&std::path::Path> {
        Some(&self.path)
    }
}

/// Where the daemon finds its own (the host's) network namespace.
pub(crate) const HOST_NETNS: &str = "/proc/self/ns/net";

#[derive(Default)]
pub(crate) struct State {
    pub networks: BTreeMap<Uuid, NetworkRec>,
    pub endpoints: Registry<EndpointRec>,
    pub namespaces: Registry<NamespaceRec>,
    pub load_balancers: crate::load_balancer::LoadBalancers,
    pub routes: BTreeMap<Uuid, crate::route::RouteRec>,
    /// Cluster mode: other hosts' endpoints on overlay networks, from the
    /// cluster's watch (derived state, never stored by this host).
    pub remote_endpoints: crate::cluster::RemoteEndpoints,
}

/// hostnet's service: the single writer of kernel and store state.
///
/// One lock serialises every change, so concurrent creates never hand out
/// one address or port twice; kernel plans are short (milliseconds).
pub struct Service {
    pub(crate) state: Mutex<State>,
    pub(crate) store: Box<dyn Store>,
    pub(crate) dp: Box<dyn Dataplane>,
    pub(crate) config: Config,
    /// Leases of endpoints on DHCP networks, renewed by their own thread.
    pub(crate) leases: Arc<crate::dhcp::Leases>,
    /// Told the names on each network after every change (the DNS proxy).
    pub(crate) dns_observer: Mutex<Option<Arc<dyn crate::DnsObserver>>>,
    /// What the observer was last told, to tell it deltas.
    pub(crate) dns_told: Mutex<crate::dns::Told>,
    /// Cluster mode: where local overlay endpoints are published; set, it
    /// also makes overlay networks cluster-wide (crate::cluster).
    pub(crate) overlay_publisher: std::sync::OnceLock<Arc<dyn crate::OverlayPublisher>>,
}

impl Service {
    /// Load the store, make the kernel match it, and create the default
    /// network on first start.
    pub fn start(
        config: Config,
        store: Box<dyn Store>,
        dp: Box<dyn Dataplane>,
    ) -> Result<Self, HcnError> {
        let svc = Service {
            state: Mutex::new(State::default()),
            store,
            dp,
            config,
            leases: Arc::default(),
            dns_observer: Mutex::new(None),
            dns_told: Mutex::default(),
            overlay_publisher: std::sync::OnceLock::new(),
        };
        let started = std::time::Instant::now();
        svc.load()?;
        log::info!("store loaded in {} ms", started.elapsed().as_millis());
        svc.reconcile()?;
        log::info!(
            "kernel reconciled, {} ms after start",
            started.elapsed().as_millis()
        );
        svc.ensure_default_network()?;
        Ok(svc)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn commit(&self, txn: Txn) -> Result<(), HcnError> {
        self.store
            .commit(txn)
            .map_err(|e| crate::object::store_failure("saving to the store", e))
    }

    /// Create an object from its HCN JSON; returns the stored object.
    pub fn create(&self, kind: Kind, body: &[u8]) -> Result<Value, HcnError> {
        let obj = match kind {
            Kind::Network => self.create_network(body)?,
            Kind::Endpoint => self.create_endpoint(body)?,
            Kind::Namespace => self.create_namespace(body)?,
            Kind::LoadBalancer => self.create_load_balancer(body)?,
            Kind::Route => self.create_route(body)?,
        };
        if let Some(id) = obj.get("ID").and_then(Value::as_str) {
            if let Ok(uuid) = hostnet_model::parse_guid(id) {
                self.notify_dns(kind, &uuid);
                self.notify_overlay_publisher(kind, &uuid);
            }
        }
        Ok(Value::Object(obj))
    }

    /// One object by ID.
    pub fn get(&self, kind: Kind, id: &str) -> Result<Value, HcnError> {
        let uuid = parse_id(kind, id)?;
        let st = self.lock();
        let obj = match kind {
            Kind::Network => st.networks.get(&uuid).map(|r| &r.obj),
            Kind::Endpoint => st.endpoints.get(&uuid).map(|r| &r.obj),
            Kind::Namespace => st.namespaces.get(&uuid).map(|r| &r.obj),
            Kind::LoadBalancer => st.load_balancers.get(&uuid).map(|r| &r.obj),
            Kind::Route => st.routes.get(&uuid).map(|r| &r.obj),
        };
        obj.map(|o| Value::Object(o.clone()))
            .ok_or_else(|| kind.not_found(id))
    }

    /// Apply an HCN modify request.
    pub fn modify(&self, kind: Kind, id: &str, body: &[u8]) -> Result<Value, HcnError> {
        let uuid = parse_id(kind, id)?;
        if kind == Kind::LoadBalancer {
            // A whole document, not a ModifySettingRequest (schema §10).
            return self.modify_load_balancer(uuid, id, body).map(Value::Object);
        }
        let req: hostnet_model::wire::ModifyRequest = crate::object::parse_object(body)?;
        let obj = match kind {
            Kind::Namespace => self.modify_namespace(uuid, id, &req)?,
            Kind::Network => self.modify_network(uuid, id, &req)?,
            Kind::Endpoint => self.modify_endpoint(uuid, id, &req)?,
            Kind::Route => return Err(self.modify_route(uuid, id)),
            Kind::LoadBalancer => return Err(kind.not_found(id)),
        };
        self.notify_dns(kind, &uuid);
        Ok(Value::Object(obj))
    }

    /// Delete an object and its kernel state.
    pub fn delete(&self, kind: Kind, id: &str) -> Result<(), HcnError> {
        let uuid = parse_id(kind, id)?;
        let network_of_endpoint = match kind {
            Kind::Endpoint => self.lock().endpoints.get(&uuid).map(|e| e.network),
            _ => None,
        };
        match kind {
            Kind::Network => self.delete_network(uuid, id),
            Kind::Endpoint => self.delete_endpoint(uuid, id),
            Kind::Namespace => self.delete_namespace(uuid, id),
            Kind::LoadBalancer => self.delete_load_balancer(uuid, id),
            Kind::Route => self.delete_route(uuid, id),
        }?;
        self.notify_dns(kind, &uuid);
        if let Some(network) = network_of_endpoint {
            self.withdraw_overlay_endpoint(network, uuid);
        }
        Ok(())
    }

    /// The HNS-style version and what this hostnet implements.
    pub fn version(&self) -> Value {
        serde_json::json!({
            "Major": 15,
            "Minor": 5,
            "Version": env!("CARGO_PKG_VERSION"),
            "Features": {
                "Api": { "V1": false, "V2": true },
                "NetworkTypes": ["NAT", "Transparent", "L2Bridge", "L2Tunnel", "Overlay"],
                "EndpointPolicies": ["PortMapping", "ACL", "TierAcl", "OutBoundNAT", "SDNRoute", "VLAN"],
                "SubnetPolicies": ["VLAN", "VSID"],
                "NetworkPolicies": ["NetAdapterName", "HostRoute", "AutomaticDNS", "NetworkACL", "SetPolicy", "ProviderAddress", "DrMacAddress", "VxlanPort", "RemoteSubnetRoute"],
                "PolicyModify": { "Endpoint": ["Add", "Remove", "Update"], "Network": ["Add", "Remove", "Update"] },
                "NamespaceAttach": true,
                "LoadBalancers": true,
                "SdnRoutes": true,
                "Acl": { "AclAddressLists": true, "AclHostRulePriority": true, "AclPortRanges": true, "AclRuleId": true },
                "TierAcl": true,
                "NetworkACL": true,
                "SetPolicy": true,
                "NestedIpSet": true,
                "DSR": true,
                "IPv6DualStack": true,
                "ModifyLoadbalancer": true,
                "VmNic": true
            }
        })
    }

    /// Store a changed object and replace it in memory.
    pub(crate) fn save(
        &self,
        kind: Kind,
        id: &Uuid,
        obj: &Map<String, Value>,
    ) -> Result<(), HcnError> {
        let mut txn = Txn::new();
        txn.put(kind.collection(), &crate::object::guid(id), bytes(obj));
        self.commit(txn)
    }
}

pub(crate) fn parse_id(kind: Kind, id: &str) -> Result<Uuid, HcnError> {
    hostnet_model::parse_guid(id).map_err(|_| {
        HcnError::new(
            ErrorCode::GuidConversionFailure,
            format!(
                "{id:?} is not a {} ID: give a GUID like 0A0B0C0D-0000-4000-8000-000000000001",
                kind.noun()
            ),
        )
    })
}
