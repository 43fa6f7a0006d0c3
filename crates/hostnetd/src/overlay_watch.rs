//! Follows the cluster's overlay networks and the other hosts' overlay
//! endpoints into this host's service (cluster mode): a thread reads
//! everything under `<prefix>/cluster/overlay_` once, makes the service
//! match it, then applies the changes of a watch from the next revision.
//! The watch resumes by itself after a member fails; when its revision was
//! compacted away (or it ended) the thread reads everything again and
//! diffs. This host's own endpoints are ignored. While etcd is away
//! nothing is removed: what is programmed keeps forwarding.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hostnet_core::{OverlayEndpoint, Service};
use hostnet_etcd::{Client, EventKind, KeyValue, WatchMessage};
use hostnet_model::format_guid;
use uuid::Uuid;

use crate::overlay_keys::{entry, parse_endpoint_record, watch_prefix, Entry};

/// How often a blocked thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(300);
/// How long to wait before reading again after etcd failed a read.
const RETRY: Duration = Duration::from_secs(1);
/// How often a network this host failed to instantiate is tried again.
const JOIN_RETRY: Duration = Duration::from_secs(5);

/// The running watch; dropping it stops the thread.
pub struct OverlayWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for OverlayWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread's side.
struct Follower {
    client: Arc<Client>,
    prefix: String,
    host_id: String,
    service: Arc<Service>,
    stop: Arc<AtomicBool>,
    /// Definitions this host failed to instantiate, tried again every
    /// [`JOIN_RETRY`] (a missing default route may come back).
    failed_joins: BTreeMap<Uuid, Vec<u8>>,
}

impl OverlayWatch {
    pub fn start(
        client: Arc<Client>,
        prefix: &str,
        host_id: &str,
        service: Arc<Service>,
    ) -> Result<Self, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let follower = Follower {
            client,
            prefix: prefix.to_string(),
            host_id: host_id.to_string(),
            service,
            stop: stop.clone(),
            failed_joins: BTreeMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("overlay-watch".into())
            .spawn(move || {
                let mut follower = follower;
                follower.run()
            })
            .map_err(|e| format!("starting the overlay watch: {e}"))?;
        Ok(OverlayWatch {
            stop,
            thread: Some(thread),
        })
    }
}

/// The shared state as read at one revision: network definitions and the
/// other hosts' endpoints.
#[derive(Default)]
struct Snapshot {
    networks: BTreeMap<Uuid, Vec<u8>>,
    endpoints: BTreeMap<Uuid, (String, OverlayEndpoint)>,
}

impl Follower {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn run(&mut self) {
        let prefix = watch_prefix(&self.prefix);
        let mut failing = false;
        while !self.stopped() {
            let (kvs, revision) = match self.client.range_prefix(prefix.as_bytes()) {
                Ok(read) => read,
                Err(e) => {
                    if !failing {
                        log::warn!("reading the cluster's overlay state: {e}; retrying");
                        failing = true;
                    }
                    self.sleep(RETRY);
                    continue;
                }
            };
            failing = false;
            self.resync(self.snapshot(&kvs));
            log::info!("following the cluster's overlay state from revision {revision}");
            let watch = self.client.watch(prefix.as_bytes(), true, revision + 1);
            let mut retried = std::time::Instant::now();
            while !self.stopped() {
                if !self.failed_joins.is_empty() && retried.elapsed() >= JOIN_RETRY {
                    retried = std::time::Instant::now();
                    for (id, definition) in std::mem::take(&mut self.failed_joins) {
                        self.join(id, &definition);
                    }
                }
                match watch.recv_timeout(POLL) {
                    Ok(WatchMessage::Events { events, .. }) => {
                        for e in events {
                            self.apply(e.kind, &e.kv);
                        }
                    }
                    Ok(WatchMessage::Compacted { compact_revision }) => {
                        log::warn!("the overlay watch's revision was compacted ({compact_revision}): reading everything again");
                        break;
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        }
    }

    fn sleep(&self, total: Duration) {
        let end = std::time::Instant::now() + total;
        while !self.stopped() && std::time::Instant::now() < end {
            std::thread::sleep(POLL.min(end - std::time::Instant::now()));
        }
    }

    fn snapshot(&self, kvs: &[KeyValue]) -> Snapshot {
        let mut s = Snapshot::default();
        for kv in kvs {
            match entry(&self.prefix, &kv.key) {
                Entry::Network(id) => {
                    s.networks.insert(id, kv.value.clone());
                }
                Entry::Endpoint(id) => match parse_endpoint_record(&kv.value) {
                    Some((host, ep)) if host != self.host_id => {
                        s.endpoints.insert(id, (host, ep));
                    }
                    Some(_) => {}
                    None => log::warn!(
                        "a malformed overlay endpoint record at {:?}: ignored",
                        String::from_utf8_lossy(&kv.key)
                    ),
                },
                Entry::Other => {}
            }
        }
        s
    }

    /// Make the service match a full read: join and leave networks, add
    /// and remove remote endpoints.
    fn resync(&mut self, s: Snapshot) {
        self.failed_joins.clear();
        for (id, definition) in &s.networks {
            self.join(*id, definition);
        }
        for id in self.service.overlay_network_ids() {
            if !s.networks.contains_key(&id) {
                self.leave(id, true);
            }
        }
        let wanted: BTreeSet<Uuid> = s.endpoints.keys().copied().collect();
        for (host, ep) in s.endpoints.into_values() {
            self.service.remote_endpoint_up(&host, ep);
        }
        for id in self.service.remote_endpoint_ids() {
            if !wanted.contains(&id) {
                self.service.remote_endpoint_down(id);
            }
        }
        self.service.prune_stale_peers();
    }

    /// One change from the watch.
    fn apply(&mut self, kind: EventKind, kv: &KeyValue) {
        match (entry(&self.prefix, &kv.key), kind) {
            (Entry::Network(id), EventKind::Put) => self.join(id, &kv.value),
            (Entry::Network(id), EventKind::Delete) => self.leave(id, false),
            (Entry::Endpoint(_), EventKind::Put) => match parse_endpoint_record(&kv.value) {
                Some((host, ep)) if host != self.host_id => {
                    self.service.remote_endpoint_up(&host, ep)
                }
                Some(_) => {}
                None => log::warn!(
                    "a malformed overlay endpoint record at {:?}: ignored",
                    String::from_utf8_lossy(&kv.key)
                ),
            },
            (Entry::Endpoint(id), EventKind::Delete) => self.service.remote_endpoint_down(id),
            (Entry::Other, _) => {}
        }
    }

    fn join(&mut self, id: Uuid, definition: &[u8]) {
        match self.service.join_shared_network(id, definition) {
            Ok(true) => log::info!("joined overlay network {} of the cluster", format_guid(&id)),
            Ok(false) => {}
            Err(e) => {
                log::error!(
                    "cannot instantiate overlay network {} of the cluster here: {e} (trying again every {} s)",
                    format_guid(&id),
                    JOIN_RETRY.as_secs()
                );
                self.failed_joins.insert(id, definition.to_vec());
            }
        }
    }

    fn leave(&mut self, id: Uuid, confirm: bool) {
        self.failed_joins.remove(&id);
        match self.service.leave_shared_network(id, confirm) {
            Ok(true) => log::info!(
                "left overlay network {}: deleted in the cluster",
                format_guid(&id)
            ),
            Ok(false) => {}
            Err(e) => log::error!("removing overlay network {} here: {e}", format_guid(&id)),
        }
    }
}
