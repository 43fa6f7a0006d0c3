//! The store in an etcd cluster (cluster mode, docs/cluster.md).
//!
//! Keys live under a prefix (`/hostnet/v1` by default): a host's own
//! collections under `<prefix>/hosts/<host-id>/<collection>/<key>`, shared
//! ones under `<prefix>/cluster/<collection>/<key>` (see
//! [`Collection::scope`]). A commit is one etcd transaction, durable once
//! etcd's quorum has acknowledged it; claims are compares on the claimed
//! keys' create revision.
//!
//! A write whose answer is lost (the leader died under it) is settled, not
//! guessed: every commit also writes a unique marker to the host's
//! `<prefix>/hosts/<host-id>/commit` key, and after a lost answer a
//! linearizable read of the marker (which etcd serves only once a leader
//! has committed in its term) says whether the transaction was applied.
//! If not, it is sent again; a claim it then finds taken by the same value
//! was its own first attempt's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hostnet_etcd::{Client, Compare, Timeouts, TlsFiles, TxnOp, TxnOpResponse};

use crate::{Collection, Op, Scope, Store, StoreError, Txn};

/// etcd's default `--max-txn-ops`: more operations in one transaction are refused.
const MAX_TXN_OPS: usize = 128;

/// Where and as whom to keep state in etcd.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// The members: `etcd://h1:2379,h2:2379`.
    pub endpoints: String,
    /// This host's name in the cluster (`[A-Za-z0-9._-]`, unique per host).
    pub host_id: String,
    /// The prefix of every key (no trailing slash).
    pub prefix: String,
    /// How long to wait for a member.
    pub timeouts: Timeouts,
    /// The CA (and client certificate) for `https://` members.
    pub tls: Option<TlsFiles>,
}

impl EtcdOptions {
    /// Options with the default prefix `/hostnet/v1` and timeouts.
    pub fn new(endpoints: &str, host_id: &str) -> Self {
        EtcdOptions {
            endpoints: endpoints.to_string(),
            host_id: host_id.to_string(),
            prefix: "/hostnet/v1".into(),
            timeouts: Timeouts::default(),
            tls: None,
        }
    }
}

/// A [`Store`] in etcd.
#[derive(Debug)]
pub struct EtcdStore {
    client: Arc<Client>,
    prefix: String,
    host_id: String,
    /// What makes this process's commit markers unique.
    incarnation: String,
    commits: AtomicU64,
}

/// Whether `id` can be a key segment: nonempty, no `/`, nothing to escape.
pub fn valid_host_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl EtcdStore {
    /// Connects to the cluster and checks that a member answers (so an
    /// unreachable etcd fails the daemon's start within seconds).
    pub fn connect(options: &EtcdOptions) -> Result<Self, StoreError> {
        if !valid_host_id(&options.host_id) {
            return Err(StoreError::Config(format!(
                "host ID {:?} is not a name: use letters, digits, '.', '_' and '-' (at most 128)",
                options.host_id
            )));
        }
        let client = Client::with_tls(&options.endpoints, options.timeouts, options.tls.as_ref())
            .map_err(|e| StoreError::Config(e.to_string()))?;
        client.check().map_err(store_error)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(EtcdStore {
            client: Arc::new(client),
            prefix: options.prefix.trim_end_matches('/').to_string(),
            host_id: options.host_id.clone(),
            incarnation: format!("{}-{}", std::process::id(), now.as_nanos()),
            commits: AtomicU64::new(0),
        })
    }

    /// The client, to share with what else talks to the cluster (host
    /// registration, watches).
    pub fn client(&self) -> Arc<Client> {
        self.client.clone()
    }

    /// The prefix of every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// This host's ID.
    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    /// The etcd prefix of collection `c`'s keys, ending in `/`.
    pub fn collection_prefix(&self, c: Collection) -> String {
        match c.scope() {
            Scope::Host => format!("{}/hosts/{}/{}/", self.prefix, self.host_id, c.name()),
            Scope::Cluster => format!("{}/cluster/{}/", self.prefix, c.name()),
        }
    }

    fn key(&self, c: Collection, key: &str) -> Vec<u8> {
        format!("{}{key}", self.collection_prefix(c)).into_bytes()
    }

    /// The key of this host's last commit marker (outside every collection).
    fn marker_key(&self) -> Vec<u8> {
        format!("{}/hosts/{}/commit", self.prefix, self.host_id).into_bytes()
    }

    /// Sends `txn`; when its answer is lost, finds out from the marker
    /// whether it was applied and sends it again if not.
    fn run(
        &self,
        txn: &hostnet_etcd::Txn,
        marker: &[u8],
    ) -> Result<(hostnet_etcd::TxnResponse, bool), StoreError> {
        match self.client.txn(txn) {
            Ok(done) => Ok((done, false)),
            Err(lost @ hostnet_etcd::Error::OutcomeUnknown { .. }) => {
                log::warn!("etcd: {lost}; checking whether it was applied");
                let seen = self.client.get(&self.marker_key()).map_err(store_error)?;
                if seen.is_some_and(|kv| kv.value == marker) {
                    let applied = hostnet_etcd::TxnResponse {
                        succeeded: true,
                        revision: 0,
                        responses: Vec::new(),
                    };
                    return Ok((applied, false));
                }
                let done = self.client.txn(txn).map_err(store_error)?;
                Ok((done, true))
            }
            Err(e) => Err(store_error(e)),
        }
    }
}

/// A client error as the store reports it.
fn store_error(e: hostnet_etcd::Error) -> StoreError {
    match e {
        e if e.is_unavailable() => StoreError::Unavailable(e.to_string()),
        hostnet_etcd::Error::Refused { message, .. } if message.contains("too large") => {
            StoreError::Io(format!(
                "etcd refused a write as too large ({message}): raise the members' --max-request-bytes (default 1.5 MiB)"
            ))
        }
        e => StoreError::Io(e.to_string()),
    }
}

impl Store for EtcdStore {
    fn get(&self, c: Collection, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let kv = self.client.get(&self.key(c, key)).map_err(store_error)?;
        Ok(kv.map(|kv| kv.value))
    }

    fn list(&self, c: Collection) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let prefix = self.collection_prefix(c);
        let (kvs, _) = self
            .client
            .range_prefix(prefix.as_bytes())
            .map_err(store_error)?;
        // etcd returns keys sorted by bytes, as the trait promises.
        kvs.into_iter()
            .map(|kv| {
                let key = String::from_utf8(kv.key[prefix.len()..].to_vec())
                    .map_err(|_| StoreError::Io(format!("a key under {prefix} is not UTF-8")))?;
                Ok((key, kv.value))
            })
            .collect()
    }

    fn commit(&self, txn: Txn) -> Result<(), StoreError> {
        if txn.is_empty() {
            return Ok(());
        }
        // etcd refuses a key twice in one transaction: the last op on a key
        // wins (as applying them in order would), at its first position.
        let mut last: HashMap<(Collection, &str), &Op> = HashMap::new();
        let mut order = Vec::new();
        for op in &txn.ops {
            if last.insert(op.target(), op).is_none() {
                order.push(op.target());
            }
        }
        let mut etcd_txn = hostnet_etcd::Txn::default();
        let mut claims = Vec::new();
        for op in &txn.ops {
            if let Op::Claim(c, key, _) = op {
                let k = self.key(*c, key);
                etcd_txn.compares.push(Compare::absent(&k));
                etcd_txn.failure.push(TxnOp::get(&k));
                claims.push((*c, key.clone()));
            }
        }
        for target in order {
            etcd_txn.success.push(match last[&target] {
                Op::Put(c, key, value) | Op::Claim(c, key, value) => {
                    TxnOp::put(&self.key(*c, key), value)
                }
                Op::Delete(c, key) => TxnOp::delete(&self.key(*c, key)),
            });
        }
        let marker = format!(
            "{}-{}",
            self.incarnation,
            self.commits.fetch_add(1, Ordering::Relaxed)
        )
        .into_bytes();
        etcd_txn
            .success
            .push(TxnOp::put(&self.marker_key(), &marker));
        if etcd_txn.success.len() > MAX_TXN_OPS || etcd_txn.compares.len() > MAX_TXN_OPS {
            return Err(StoreError::Io(format!(
                "a change of {} keys is more than etcd takes in one transaction ({MAX_TXN_OPS}, its --max-txn-ops): raise it on every member",
                etcd_txn.success.len()
            )));
        }
        let (done, resent) = self.run(&etcd_txn, &marker)?;
        if done.succeeded {
            return Ok(());
        }
        // Which claim failed: the first whose key the failure branch read.
        let holders = done
            .responses
            .iter()
            .zip(&claims)
            .filter_map(|(r, claim)| match r {
                TxnOpResponse::Get(kvs) => kvs.first().map(|kv| (claim, kv.value.as_slice())),
                _ => None,
            });
        let mut taken = None;
        for (claim, holder) in holders {
            let ours = txn.ops.iter().any(|op| {
                matches!(op, Op::Claim(c, k, v) if (*c, k) == (claim.0, &claim.1) && v.as_slice() == holder)
            });
            // Resent after a lost answer: a claim holding our own value is
            // the first attempt's, applied after all.
            if !(resent && ours) {
                taken = Some(claim.clone());
                break;
            }
        }
        if resent && taken.is_none() {
            return Ok(());
        }
        let taken = taken.or_else(|| claims.first().cloned());
        let (collection, key) = taken
            .ok_or_else(|| StoreError::Io("etcd refused a transaction without claims".into()))?;
        Err(StoreError::Conflict { collection, key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids_are_key_segments() {
        for ok in ["host1", "node-a.example", "a_b", "0"] {
            assert!(valid_host_id(ok), "{ok}");
        }
        for bad in ["", "a/b", "a b", "ü", &"x".repeat(129)] {
            assert!(!valid_host_id(bad), "{bad}");
        }
    }

    #[test]
    fn unreachable_cluster_is_unavailable_at_connect() {
        let err = EtcdStore::connect(&EtcdOptions::new("etcd://127.0.0.1:1", "h1")).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
        let err = EtcdStore::connect(&EtcdOptions::new("etcd://127.0.0.1:1", "a/b")).unwrap_err();
        assert!(err.to_string().contains("not a name"), "{err}");
    }
}
