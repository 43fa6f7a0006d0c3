//! Endpoints whose address comes from the physical network's DHCP server:
//! the endpoints of a Transparent network without subnets.
//!
//! Creating such an endpoint takes a MAC, then leases an address for it
//! with the service lock released (a DHCP exchange takes seconds; dnsmasq
//! alone waits up to 3 s for its ping check), then takes the lock again,
//! checks that nothing it relied on changed, programs the endpoint's
//! policies for the leased address (`OutBoundNAT`, `SDNRoute`s via next
//! hops on the leased subnet, ACLs) and stores the endpoint and its lease
//! (`Meta`, key `lease:<endpoint ID>`) in one transaction. A renewal asks
//! for the same address and takes no other (the client refuses an ACK for
//! another), so what was programmed stays right for the lease's life. A
//! renewal thread renews each lease at T1 (rebinds at T2) and stores the renewed
//! lease; deleting the endpoint releases it (DHCPRELEASE). The DHCP client
//! speaks through the network's adapter, the bridge port facing the
//! physical network (see `hostnet-dhcp`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use hostnet_dataplane::{apply, teardown, Op};
use hostnet_dhcp::{Lease, Settings, Step};
use hostnet_model::domain::{EndpointSpec, NetworkKind, NetworkSpec};
use hostnet_model::wire::HostComputeEndpoint;
use hostnet_model::{ErrorCode, HcnError};
use hostnet_store::{Collection, Txn};
use ipnet::IpNet;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::endpoint::{
    endpoint_elements, fill_endpoint, host_forwarding, new_endpoint_id, plan, sdn_routes,
    Addresses, EndpointPolicies, DEFAULT_IFNAME,
};
use crate::object::{bytes, ensure_unique_name, guid, internal, to_object, Kind};
use crate::service::{EndpointRec, NetworkRec, Service, State};

const KEY_PREFIX: &str = "lease:";

/// The store key of an endpoint's lease.
pub(crate) fn key(endpoint: &Uuid) -> String {
    format!("{KEY_PREFIX}{}", guid(endpoint))
}

/// Whether a network's endpoints get their addresses from DHCP: a
/// Transparent network whose Ipams give no subnets.
pub(crate) fn is_dhcp(spec: &NetworkSpec) -> bool {
    spec.kind == NetworkKind::Transparent && spec.subnets.is_empty()
}

impl NetworkRec {
    pub(crate) fn is_dhcp(&self) -> bool {
        is_dhcp(&self.spec)
    }
}

/// A lease the service keeps alive.
#[derive(Clone)]
struct Held {
    /// The interface the client speaks on (the network's adapter).
    ifname: String,
    mac: [u8; 6],
    lease: Lease,
    /// When to act next (Unix seconds).
    next_at: u64,
}

/// The leases of the service's endpoints, and the renewal thread's wake-up.
#[derive(Default)]
pub(crate) struct Leases {
    held: Mutex<BTreeMap<Uuid, Held>>,
    wake: Condvar,
    settings: Mutex<Option<Settings>>,
}

impl Leases {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<Uuid, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn settings(&self) -> Settings {
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_default()
    }

    fn hold(&self, id: Uuid, ifname: String, mac: [u8; 6], lease: Lease) {
        let next_at = lease.renew_at();
        self.lock().insert(
            id,
            Held {
                ifname,
                mac,
                lease,
                next_at,
            },
        );
        self.wake.notify_all();
    }
}

/// A DHCP client failure as the HCN error of an endpoint create.
fn lease_error(e: hostnet_dhcp::Error, ifname: &str) -> HcnError {
    match e {
        hostnet_dhcp::Error::Io(e) => internal(&format!("opening a DHCP socket on {ifname}"), e),
        other => HcnError::new(
            ErrorCode::PoolExhausted,
            format!(
                "the endpoint got no address from the physical network's DHCP server through adapter {ifname}: {other}. \
                 Nothing was created; check that a DHCP server serves that network, or create the network with Ipams subnets"
            ),
        ),
    }
}

impl Service {
    /// Set how long DHCP exchanges may take and start the renewal thread.
    /// Until called, endpoints lease with the default settings and leases
    /// are not renewed.
    pub fn start_dhcp(self: &Arc<Self>, settings: Settings) {
        *self
            .leases
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(settings);
        let svc = Arc::downgrade(self);
        let leases = self.leases.clone();
        std::thread::Builder::new()
            .name("dhcp-renew".into())
            .spawn(move || renew_loop(&leases, &svc))
            .expect("spawn the DHCP renewal thread");
    }

    /// Create an endpoint on a DHCP network (called with the lock held,
    /// after the checks every endpoint passes).
    pub(crate) fn create_dhcp_endpoint(
        &self,
        mut st: MutexGuard<'_, State>,
        wire: &HostComputeEndpoint,
        spec: &EndpointSpec,
        policies: &EndpointPolicies,
    ) -> Result<Map<String, Value>, HcnError> {
        let net_id = spec.network;
        if let Some(cfg) = spec.ip_configs.first() {
            return Err(HcnError::new(
                ErrorCode::InvalidIp,
                format!(
                    "network {} takes its endpoints' addresses from the physical network's DHCP server: remove IpConfigurations ({}), or create the network with Ipams subnets for static addresses",
                    guid(&net_id),
                    cfg.address
                ),
            ));
        }
        let net = st.networks.get_mut(&net_id).expect("checked by the caller");
        let ifname = net
            .adapter
            .as_ref()
            .map(|a| a.name.clone())
            .ok_or_else(|| internal("finding the network's adapter", "none recorded"))?;
        let mac = match spec.mac {
            Some(m) => net.macs.reserve(m.0).map(|_| m.0).map_err(|_| {
                HcnError::new(
                    ErrorCode::AddrInvalidOrReserved,
                    format!("MacAddress {m} is already in use on this network: choose another or omit it"),
                )
            })?,
            None => net.macs.allocate(None).map_err(|e| {
                HcnError::new(
                    ErrorCode::PoolExhausted,
                    format!("no MAC address is left in the network's MacPool ({e}): widen the MacPool"),
                )
            })?,
        };
        drop(st);

        let settings = self.leases.settings();
        let leased = hostnet_dhcp::open(&ifname, mac, settings).and_then(|mut c| c.acquire());
        let mut st = self.lock();
        let release_mac = |st: &mut State| {
            if let Some(net) = st.networks.get_mut(&net_id) {
                net.macs.release(mac);
            }
        };
        let lease = match leased {
            Ok(l) => l,
            Err(e) => {
                release_mac(&mut st);
                return Err(lease_error(e, &ifname));
            }
        };
        let give_back = |why: &str| {
            log::info!(
                "releasing {} of {}: {why}",
                lease.address,
                hostnet_dhcp::mac_string(mac)
            );
            release(&ifname, mac, &lease, settings);
        };
        // What the lease was taken for may have changed meanwhile.
        let checked = (|| {
            if !st.networks.contains_key(&net_id) {
                return Err(HcnError::new(
                    ErrorCode::NetworkNotFound,
                    format!("network {} was deleted while the endpoint's address was leased: nothing was created", guid(&net_id)),
                ));
            }
            ensure_unique_name(Kind::Endpoint, &spec.name, st.endpoints.named(&spec.name))?;
            let subnet = IpNet::new(IpAddr::V4(lease.address), lease.prefix_len)
                .map_err(|e| internal("reading the lease", e))?;
            for (i, r) in spec.routes.iter().enumerate() {
                if let Some(hop) = r.next_hop.filter(|h| !subnet.contains(h)) {
                    return Err(HcnError::new(
                        ErrorCode::InvalidIp,
                        format!("Routes[{i}].NextHop {hop} is not on the leased subnet {}: give a next hop inside it (or omit Routes for the DHCP router)", subnet.trunc()),
                    ));
                }
            }
            // The policies' next hops are known only now.
            let sdn = sdn_routes(&st.networks[&net_id], subnet, policies)?;
            Ok((subnet, sdn))
        })();
        let (address, sdn) = match checked {
            Ok(a) => a,
            Err(e) => {
                release_mac(&mut st);
                give_back("the endpoint was not created");
                return Err(e);
            }
        };
        let gateway = lease.router.map(IpAddr::V4);
        let id = new_endpoint_id(&st);
        let net = st.networks.get_mut(&net_id).expect("checked above");
        let mut obj = to_object(wire);
        let taken = Addresses::single(address, gateway);
        fill_endpoint(&mut obj, &id, &net_id, &taken, mac, net);
        if has_no_dns(&obj) && !lease.dns.is_empty() {
            let mut dns = json!({
                "ServerList": lease.dns.iter().map(|a| a.to_string()).collect::<Vec<_>>()
            });
            if let Some(d) = &lease.domain {
                dns["Domain"] = json!(d);
            }
            obj.insert("Dns".into(), dns);
        }
        let rec = EndpointRec {
            obj,
            name: spec.name.clone(),
            network: net_id,
            plan: plan(&id, &taken, mac, spec, policies, sdn),
            mappings: policies.mappings.clone(),
            acls: policies.acls.clone(),
            tiers: policies.tiers.clone(),
            namespace: None,
            ifname: DEFAULT_IFNAME.into(),
            vm_nic: false,
        };
        let mut rec = rec;
        rec.plan.acl = crate::policy::walks_acls(&rec, net);
        let mut elements = endpoint_elements(net, &rec.plan);
        // The network's NetworkACLs apply to it too.
        let acl = crate::policy::acl_elements(&id, &rec, net);
        let fail = |st: &mut State, e: HcnError| {
            release_mac(st);
            give_back("the endpoint was not created");
            Err(e)
        };
        match acl {
            Ok(acl) => elements.extend(acl),
            Err(e) => return fail(&mut st, e),
        }
        // OutBoundNAT, or a route via the host: the host must forward.
        let mut create = host_forwarding(net, &rec.plan);
        create.push(Op::AddElements(elements.clone()));
        if let Err(e) = apply(self.dp.as_ref(), &create) {
            return fail(&mut st, internal("programming the endpoint", e));
        }
        let mut txn = Txn::new();
        txn.put(Kind::Endpoint.collection(), &guid(&id), bytes(&rec.obj));
        txn.put(Collection::Meta, &key(&id), lease_bytes(&lease));
        if let Err(e) = self.commit(txn) {
            teardown(self.dp.as_ref(), &[Op::DeleteElements(elements)]);
            return fail(&mut st, e);
        }
        log::info!(
            "endpoint {} leased {}/{} from {} (renewal in {} s)",
            guid(&id),
            lease.address,
            lease.prefix_len,
            lease.server,
            lease.t1_secs
        );
        let out = rec.obj.clone();
        st.endpoints.insert(id, rec);
        self.leases.hold(id, ifname, mac, lease);
        Ok(out)
    }

    /// Stop renewing an endpoint's lease (before its delete commits); the
    /// lease is released by [`Service::release_lease`] once it did.
    pub(crate) fn take_lease(&self, id: &Uuid) -> Option<HeldLease> {
        self.leases.lock().remove(id).map(HeldLease)
    }

    /// Renew a taken lease again (the delete did not commit).
    pub(crate) fn keep_lease(&self, id: Uuid, held: HeldLease) {
        let h = held.0;
        self.leases.hold(id, h.ifname, h.mac, h.lease);
    }

    /// Give a taken lease back to its server.
    pub(crate) fn release_lease(&self, held: HeldLease) {
        let h = held.0;
        release(&h.ifname, h.mac, &h.lease, self.leases.settings());
    }

    /// Every lease record in the store, by endpoint.
    pub(crate) fn lease_records(&self) -> Result<HashMap<Uuid, Lease>, HcnError> {
        let all = self
            .store
            .list(Collection::Meta)
            .map_err(|e| internal("reading the store", e))?;
        Ok(all
            .into_iter()
            .filter_map(|(k, v)| {
                let id = hostnet_model::parse_guid(k.strip_prefix(KEY_PREFIX)?).ok()?;
                match serde_json::from_slice(&v) {
                    Ok(l) => Some((id, l)),
                    Err(e) => {
                        log::error!("lease record {k} is unreadable: {e}");
                        None
                    }
                }
            })
            .collect())
    }

    /// After loading: renew the stored leases of the loaded endpoints.
    pub(crate) fn hold_loaded_leases(&self, st: &State, records: HashMap<Uuid, Lease>) {
        for (id, lease) in records {
            let Some(ep) = st.endpoints.get(&id) else {
                log::warn!("lease record of unknown endpoint {} ignored", guid(&id));
                continue;
            };
            let Some(ifname) = st
                .networks
                .get(&ep.network)
                .and_then(|n| n.adapter.as_ref())
                .map(|a| a.name.clone())
            else {
                continue;
            };
            self.leases.hold(id, ifname, ep.plan.mac, lease);
        }
    }
}

/// A lease taken out of the renewal set.
pub(crate) struct HeldLease(Held);

fn lease_bytes(l: &Lease) -> Vec<u8> {
    serde_json::to_vec(l).expect("a lease serialises")
}

/// Send a DHCPRELEASE (no answer comes; failures are logged).
fn release(ifname: &str, mac: [u8; 6], lease: &Lease, settings: Settings) {
    let sent = hostnet_dhcp::open(ifname, mac, settings).and_then(|mut c| c.release(lease));
    match sent {
        Ok(()) => log::info!(
            "released {} of {} to {}",
            lease.address,
            hostnet_dhcp::mac_string(mac),
            lease.server
        ),
        Err(e) => log::warn!(
            "releasing {} of {}: {e}",
            lease.address,
            hostnet_dhcp::mac_string(mac)
        ),
    }
}

/// The renewal thread: sleeps until the next lease needs something, renews
/// (or rebinds) it with the leases unlocked, and stores the result. Ends
/// when the service is gone.
fn renew_loop(leases: &Leases, svc: &Weak<Service>) {
    let mut held = leases.lock();
    loop {
        if svc.strong_count() == 0 {
            return;
        }
        let now = hostnet_dhcp::unix_now();
        let due = held
            .iter()
            .find(|(_, h)| h.next_at <= now)
            .map(|(id, h)| (*id, h.clone()));
        let Some((id, h)) = due else {
            let next = held.values().map(|h| h.next_at).min().unwrap_or(u64::MAX);
            // Wake at least once a minute to notice the service is gone.
            let wait = Duration::from_secs(next.saturating_sub(now).clamp(1, 60));
            held = leases
                .wake
                .wait_timeout(held, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            continue;
        };
        drop(held);
        let settings = leases.settings();
        let step = h.lease.step(now);
        let result = hostnet_dhcp::open(&h.ifname, h.mac, settings).and_then(|mut c| match step {
            Step::WaitUntil(_) | Step::Renew => c.renew(&h.lease),
            Step::Rebind | Step::Expired => c.rebind(&h.lease),
        });
        held = leases.lock();
        let Some(entry) = held.get_mut(&id) else {
            // Deleted (and released) meanwhile: whatever the server just
            // extended goes back too.
            if let Ok(l) = &result {
                release(&h.ifname, h.mac, l, settings);
            }
            continue;
        };
        let mac = hostnet_dhcp::mac_string(h.mac);
        match result {
            Ok(lease) => {
                log::info!(
                    "endpoint {}: {} of {mac} {} until {} (next renewal in {} s)",
                    guid(&id),
                    lease.address,
                    if matches!(step, Step::Renew | Step::WaitUntil(_)) {
                        "renewed"
                    } else {
                        "rebound"
                    },
                    lease.expires_at(),
                    lease.t1_secs
                );
                entry.next_at = lease.renew_at();
                entry.lease = lease;
                if let Some(s) = svc.upgrade() {
                    let mut txn = Txn::new();
                    txn.put(Collection::Meta, &key(&id), lease_bytes(&entry.lease));
                    if let Err(e) = s.commit(txn) {
                        log::warn!("endpoint {}: storing the renewed lease: {e}", guid(&id));
                    }
                }
            }
            Err(hostnet_dhcp::Error::Refused { message, .. }) => {
                log::error!(
                    "endpoint {}: the DHCP server refused to extend the lease of {} ({message}): the address is no longer leased; delete and re-create the endpoint",
                    guid(&id),
                    h.lease.address
                );
                held.remove(&id);
            }
            Err(e) => {
                entry.next_at = entry.lease.retry_at(now).max(now + 1);
                log::warn!(
                    "endpoint {}: extending the lease of {} failed ({e}); next try in {} s",
                    guid(&id),
                    h.lease.address,
                    entry.next_at - now
                );
            }
        }
    }
}

/// A stored DHCP endpoint's address and gateway: from its lease record,
/// else from its IpConfiguration and default route.
pub(crate) fn loaded_address(
    lease: Option<&Lease>,
    spec: &EndpointSpec,
) -> Result<(IpNet, Option<IpAddr>), HcnError> {
    if let Some(l) = lease {
        let net = IpNet::new(IpAddr::V4(l.address), l.prefix_len)
            .map_err(|e| internal("reading the lease", e))?;
        return Ok((net, l.router.map(IpAddr::V4)));
    }
    let cfg = spec
        .ip_configs
        .first()
        .ok_or_else(|| HcnError::new(ErrorCode::InvalidEndpoint, "it has no address"))?;
    let len = cfg.prefix_len.unwrap_or(32);
    let net = IpNet::new(cfg.address, len).map_err(|e| internal("reading the address", e))?;
    let gateway = spec
        .routes
        .iter()
        .find(|r| r.destination.prefix_len() == 0)
        .and_then(|r| r.next_hop);
    Ok((net, gateway))
}

/// Whether an HCN object has no (or an empty) `Dns`.
pub(crate) fn has_no_dns(obj: &Map<String, Value>) -> bool {
    obj.get("Dns")
        .and_then(|v| v.as_object())
        .is_none_or(|m| m.is_empty())
}
