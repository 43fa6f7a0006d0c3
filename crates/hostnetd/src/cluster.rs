//! Cluster mode's host registration: this host's record under
//! `<prefix>/cluster/hosts/<host-id>`, attached to a lease a thread keeps
//! alive. When the daemon dies the lease expires and the record goes;
//! when etcd was away long enough for the lease to expire, the thread
//! registers again as soon as etcd answers. The same thread keeps this
//! host's overlay endpoints published under that lease
//! (`overlay_publish`).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hostnet_etcd::Client;
use serde_json::{json, Value};

use crate::overlay_publish::Publications;

/// What this host tells the cluster about itself.
#[derive(Clone, Debug)]
pub struct HostRecord {
    pub host_id: String,
    /// The provider (underlay) address other hosts reach this one at.
    pub provider_address: Option<IpAddr>,
    /// The VXLAN tunnel endpoint's MAC (none until the Overlay driver has one).
    pub vtep_mac: Option<String>,
}

impl HostRecord {
    fn to_json(&self, started: u64) -> Value {
        json!({
            "HostId": self.host_id,
            "ProviderAddress": self.provider_address.map(|a| a.to_string()),
            "VtepMac": self.vtep_mac,
            "Version": env!("CARGO_PKG_VERSION"),
            "Started": started,
        })
    }
}

/// The registered hosts' key prefix.
fn hosts_prefix(prefix: &str) -> String {
    format!("{prefix}/cluster/hosts/")
}

/// Refuses a host ID that a live daemon elsewhere holds: two hosts with one
/// ID would share, and overwrite, one state. A registration from this
/// host's own address is its previous run's (killed, its lease not yet
/// expired), and is taken over.
pub fn check_host_id_free(
    client: &Client,
    prefix: &str,
    host_id: &str,
    own_address: Option<IpAddr>,
) -> Result<(), String> {
    let key = format!("{}{host_id}", hosts_prefix(prefix));
    let Some(kv) = client
        .get(key.as_bytes())
        .map_err(|e| format!("reading the host registrations: {e}"))?
    else {
        return Ok(());
    };
    let holder: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
    let theirs = holder["ProviderAddress"].as_str().unwrap_or("");
    let ours = own_address.map(|a| a.to_string()).unwrap_or_default();
    if theirs == ours {
        return Ok(());
    }
    Err(format!(
        "host ID {host_id:?} is in use by a running hostnetd at {theirs}: give each host its own --host-id (or wait up to the lease TTL if that host was just stopped)"
    ))
}

/// This host's registration; dropping it revokes the lease, so a daemon
/// that stops cleanly leaves the cluster at once.
pub struct Registration {
    client: Arc<Client>,
    lease: Arc<std::sync::Mutex<Option<i64>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A view of the registered hosts, for the API.
#[derive(Clone)]
pub struct ClusterView {
    client: Arc<Client>,
    prefix: String,
}

impl ClusterView {
    pub fn new(client: Arc<Client>, prefix: &str) -> Self {
        ClusterView {
            client,
            prefix: prefix.to_string(),
        }
    }

    /// Every registered (live) host's record, sorted by host ID.
    pub fn hosts(&self) -> Result<Vec<Value>, hostnet_etcd::Error> {
        let (kvs, _) = self
            .client
            .range_prefix(hosts_prefix(&self.prefix).as_bytes())?;
        Ok(kvs
            .into_iter()
            .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
            .collect())
    }
}

impl Registration {
    /// Registers the host now (an error if etcd refuses) and starts the
    /// thread that keeps it registered.
    pub fn start(
        client: Arc<Client>,
        prefix: &str,
        record: HostRecord,
        ttl: Duration,
        publications: Arc<Publications>,
    ) -> Result<Self, String> {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let keeper = Keeper {
            client: client.clone(),
            key: format!("{}{}", hosts_prefix(prefix), record.host_id).into_bytes(),
            value: serde_json::to_vec(&record.to_json(started)).expect("JSON serializes"),
            ttl: ttl.as_secs().max(1) as i64,
            publications: publications.clone(),
        };
        let lease = keeper
            .register()
            .map_err(|e| format!("registering host {}: {e}", record.host_id))?;
        log::info!(
            "registered host {} in the cluster (lease {lease:x}, TTL {} s)",
            record.host_id,
            keeper.ttl
        );
        let lease = Arc::new(std::sync::Mutex::new(Some(lease)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (lease, stop) = (lease.clone(), stop.clone());
            std::thread::Builder::new()
                .name("host-lease".into())
                .spawn(move || keeper.run(&lease, &stop))
                .map_err(|e| format!("starting the lease thread: {e}"))?
        };
        publications.set_syncer(thread.thread().clone());
        Ok(Registration {
            client,
            lease,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        let lease = *self.lease.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = lease {
            match self.client.lease_revoke(id) {
                Ok(()) => log::info!("left the cluster (lease revoked)"),
                Err(e) => log::warn!("leaving the cluster: {e} (the lease expires by itself)"),
            }
        }
    }
}

/// How soon a failed publication is tried again.
const PUBLISH_RETRY: Duration = Duration::from_millis(500);

/// The thread's side: grant, put, renew, publish.
struct Keeper {
    client: Arc<Client>,
    key: Vec<u8>,
    value: Vec<u8>,
    ttl: i64,
    publications: Arc<Publications>,
}

impl Keeper {
    /// A fresh lease with the record attached.
    fn register(&self) -> Result<i64, hostnet_etcd::Error> {
        let lease = self.client.lease_grant(self.ttl)?;
        self.client.put(&self.key, &self.value, lease.id)?;
        Ok(lease.id)
    }

    /// Renews the lease every third of its TTL; registers again when it
    /// has expired (etcd was unreachable for longer than the TTL), and then
    /// publishes every overlay endpoint again. Between renewals it wakes on
    /// every publication change.
    fn run(&self, lease: &std::sync::Mutex<Option<i64>>, stop: &AtomicBool) {
        let period = Duration::from_millis((self.ttl as u64 * 1000 / 3).max(300));
        let mut last_renewal_error: Option<String> = None;
        let mut next_renewal = std::time::Instant::now() + period;
        let mut publish_failed = false;
        while !stop.load(Ordering::SeqCst) {
            let current = *lease.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(id) = current {
                match self.publications.sync(&self.client, id) {
                    Ok(()) => publish_failed = false,
                    Err(e) => {
                        if !publish_failed {
                            log::warn!("publishing this host's overlay endpoints: {e}; retrying");
                        }
                        publish_failed = true;
                    }
                }
            }
            let now = std::time::Instant::now();
            let mut wait = next_renewal.saturating_duration_since(now);
            if publish_failed {
                wait = wait.min(PUBLISH_RETRY);
            }
            std::thread::park_timeout(wait);
            if stop.load(Ordering::SeqCst) {
                return;
            }
            if std::time::Instant::now() < next_renewal {
                continue;
            }
            next_renewal = std::time::Instant::now() + period;
            let current = *lease.lock().unwrap_or_else(|p| p.into_inner());
            let renewed = match current {
                Some(id) => self.client.lease_keepalive(id).map(|ttl| ttl.map(|_| id)),
                None => Ok(None),
            };
            let result = match renewed {
                Ok(Some(id)) => Ok(Some(id)),
                Ok(None) => self.register().map(Some),
                Err(e) => Err(e),
            };
            match result {
                Ok(id) => {
                    if current != id {
                        log::info!(
                            "registered this host in the cluster again (lease {:x}); publishing its overlay endpoints again",
                            id.unwrap_or(0)
                        );
                        self.publications.forget_published();
                    }
                    if last_renewal_error.take().is_some() {
                        log::info!("etcd answers again; the host registration is current");
                    }
                    *lease.lock().unwrap_or_else(|p| p.into_inner()) = id;
                }
                Err(e) => {
                    // Each new reason is logged once, so a host that stays
                    // unregistered says why without flooding the log.
                    let reason = e.to_string();
                    if last_renewal_error.as_deref() != Some(reason.as_str()) {
                        log::warn!("renewing the host registration: {reason}; retrying");
                        last_renewal_error = Some(reason);
                    }
                }
            }
        }
    }
}
