//! This host's overlay endpoints in etcd, under its registration lease
//! (cluster mode): when the daemon dies the lease expires and its
//! endpoints leave every other host; after a new lease (a restart, an
//! outage longer than the TTL) all of them are put again.
//!
//! The core tells [`Publications`] what should be published (with the
//! service lock held, so it only records and wakes); the registration
//! thread, which owns the lease, makes etcd match.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::thread::Thread;

use hostnet_core::{OverlayEndpoint, OverlayPublisher};
use hostnet_etcd::{Client, TxnOp};
use uuid::Uuid;

use crate::overlay_keys::{endpoint_key, endpoint_record};

/// Keys per etcd transaction (etcd takes at most 128).
const BATCH: usize = 100;

/// What should be in etcd, and what the current lease holds.
#[derive(Default)]
struct Keys {
    desired: BTreeMap<Vec<u8>, Vec<u8>>,
    published: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// The puts and deletes that make `published` match `desired`.
fn diff(keys: &Keys) -> Vec<TxnOp> {
    let puts = keys
        .desired
        .iter()
        .filter(|(k, v)| keys.published.get(*k) != Some(*v))
        .map(|(k, v)| TxnOp::put(k, v));
    let deletes = keys
        .published
        .keys()
        .filter(|k| !keys.desired.contains_key(*k))
        .map(|k| TxnOp::delete(k));
    puts.chain(deletes).collect()
}

/// The published endpoints of this host.
pub struct Publications {
    prefix: String,
    host_id: String,
    keys: Mutex<Keys>,
    /// The registration thread, woken on every change.
    syncer: Mutex<Option<Thread>>,
}

impl Publications {
    pub fn new(prefix: &str, host_id: &str) -> Self {
        Publications {
            prefix: prefix.to_string(),
            host_id: host_id.to_string(),
            keys: Mutex::default(),
            syncer: Mutex::default(),
        }
    }

    /// The thread [`Publications::sync`] runs on, to wake on changes.
    pub fn set_syncer(&self, thread: Thread) {
        *self.syncer.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self) {
        if let Some(t) = &*self.syncer.lock().unwrap_or_else(|p| p.into_inner()) {
            t.unpark();
        }
    }

    /// A new lease holds nothing yet: everything is put again.
    pub fn forget_published(&self) {
        self.keys().published.clear();
    }

    /// Make etcd match what should be published, attached to `lease`;
    /// on an error what was not confirmed is tried again next time.
    pub fn sync(&self, client: &Client, lease: i64) -> Result<(), hostnet_etcd::Error> {
        let ops = diff(&self.keys());
        for batch in ops.chunks(BATCH) {
            let success = batch
                .iter()
                .map(|op| match op {
                    TxnOp::Put { key, value, .. } => TxnOp::Put {
                        key: key.clone(),
                        value: value.clone(),
                        lease,
                    },
                    other => other.clone(),
                })
                .collect();
            client.txn(&hostnet_etcd::Txn {
                success,
                ..Default::default()
            })?;
            let mut keys = self.keys();
            for op in batch {
                match op {
                    TxnOp::Put { key, value, .. } => {
                        keys.published.insert(key.clone(), value.clone());
                    }
                    TxnOp::Delete { key, .. } => {
                        keys.published.remove(key);
                    }
                    TxnOp::Get { .. } => {}
                }
            }
        }
        Ok(())
    }
}

impl OverlayPublisher for Publications {
    fn publish(&self, endpoint: OverlayEndpoint) {
        let key = endpoint_key(&self.prefix, &endpoint.network, &endpoint.endpoint);
        let value = endpoint_record(&self.host_id, &endpoint);
        self.keys().desired.insert(key, value);
        self.wake();
    }

    fn withdraw(&self, network: Uuid, endpoint: Uuid) {
        let key = endpoint_key(&self.prefix, &network, &endpoint);
        if self.keys().desired.remove(&key).is_some() {
            self.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_puts_what_changed_and_deletes_what_went() {
        let mut keys = Keys::default();
        keys.desired.insert(b"a".to_vec(), b"1".to_vec());
        keys.desired.insert(b"b".to_vec(), b"2".to_vec());
        keys.published.insert(b"a".to_vec(), b"1".to_vec());
        keys.published.insert(b"c".to_vec(), b"3".to_vec());
        assert_eq!(
            diff(&keys),
            vec![TxnOp::put(b"b", b"2"), TxnOp::delete(b"c")]
        );
        keys.published.clear();
        assert_eq!(diff(&keys).len(), 2, "a new lease puts everything again");
    }
}
