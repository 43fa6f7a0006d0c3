//! hostnet's object store.
//!
//! The daemon keeps every object it manages (networks, endpoints, namespaces,
//! load balancers, routes) as an opaque value under its GUID. HNS state must
//! survive a daemon restart or crash, so every [`Store::commit`] is durable
//! before it returns, and a [`Txn`] touching several objects (an endpoint and
//! the namespace it joins, say) lands all at once or not at all.
//!
//! [`RedbStore`] is the embedded, single-file backend used by `hostnetd`;
//! [`EtcdStore`] keeps the same collections in an etcd cluster (cluster
//! mode, docs/cluster.md); [`MemoryStore`] has the same semantics without a
//! file, for tests of the crates above this one.
//!
//! A [`Txn`] may *claim* keys (create-only puts): if any claimed key exists,
//! the whole transaction fails with [`StoreError::Conflict`] and changes
//! nothing. That is how hosts sharing one etcd never hand out one address
//! twice.

mod etcd;

pub use etcd::{valid_host_id, EtcdOptions, EtcdStore};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::{Database, Durability, ReadableTable, TableDefinition};

/// A kind of stored object; each is its own key space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Collection {
    /// HNS networks.
    Networks,
    /// HNS endpoints.
    Endpoints,
    /// HNS namespaces (compartments).
    Namespaces,
    /// HNS load balancers (policy lists).
    LoadBalancers,
    /// HNS routes (SDN routes).
    Routes,
    /// Daemon bookkeeping: schema version and the like.
    Meta,
    /// Who holds an address: key `<network ID>/<address>`, value the
    /// holder. Written with [`Txn::claim`]; shared by every host of a cluster.
    AddressClaims,
    /// Cluster mode: an overlay network's shared definition (its HCN JSON
    /// without this host's identity), which every host instantiates.
    OverlayNetworks,
    /// Cluster mode: who holds a VNI (key: the VNI), claimed with the
    /// network's definition, so no two networks share one.
    OverlayVnis,
    /// Cluster mode: who holds an overlay network name (key: the name).
    OverlayNames,
}

/// Who sees a collection's keys when hosts share a store (cluster mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Each host has its own (namespaces, NAT networks, load balancers…).
    Host,
    /// One for the whole cluster (address claims, overlay networks).
    Cluster,
}

impl Collection {
    /// Every collection, in a fixed order.
    pub const ALL: [Collection; 10] = [
        Collection::Networks,
        Collection::Endpoints,
        Collection::Namespaces,
        Collection::LoadBalancers,
        Collection::Routes,
        Collection::Meta,
        Collection::AddressClaims,
        Collection::OverlayNetworks,
        Collection::OverlayVnis,
        Collection::OverlayNames,
    ];

    /// The collection's table name in the state file (stable: changing it loses data).
    pub fn name(self) -> &'static str {
        match self {
            Collection::Networks => "networks",
            Collection::Endpoints => "endpoints",
            Collection::Namespaces => "namespaces",
            Collection::LoadBalancers => "load_balancers",
            Collection::Routes => "routes",
            Collection::Meta => "meta",
            Collection::AddressClaims => "address_claims",
            Collection::OverlayNetworks => "overlay_networks",
            Collection::OverlayVnis => "overlay_vnis",
            Collection::OverlayNames => "overlay_names",
        }
    }

    /// Whether hosts sharing a store share this collection.
    pub fn scope(self) -> Scope {
        match self {
            Collection::AddressClaims
            | Collection::OverlayNetworks
            | Collection::OverlayVnis
            | Collection::OverlayNames => Scope::Cluster,
            _ => Scope::Host,
        }
    }

    fn table(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        TableDefinition::new(self.name())
    }
}

/// One write operation of a [`Txn`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Put(Collection, String, Vec<u8>),
    /// A put only if the key is absent before the transaction.
    Claim(Collection, String, Vec<u8>),
    Delete(Collection, String),
}

impl Op {
    fn target(&self) -> (Collection, &str) {
        match self {
            Op::Put(c, k, _) | Op::Claim(c, k, _) | Op::Delete(c, k) => (*c, k),
        }
    }
}

/// An ordered batch of puts and deletes, committed atomically by [`Store::commit`].
///
/// Later operations on the same key win, as if applied one after the other.
#[derive(Default, Debug)]
pub struct Txn {
    ops: Vec<Op>,
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` in `c` to `value`, replacing any previous value.
    pub fn put(&mut self, c: Collection, key: &str, value: Vec<u8>) -> &mut Self {
        self.ops.push(Op::Put(c, key.to_owned(), value));
        self
    }

    /// Sets `key` in `c` to `value` if no value is there before the
    /// transaction; otherwise the whole transaction fails with
    /// [`StoreError::Conflict`] and changes nothing.
    pub fn claim(&mut self, c: Collection, key: &str, value: Vec<u8>) -> &mut Self {
        self.ops.push(Op::Claim(c, key.to_owned(), value));
        self
    }

    /// Removes `key` from `c`; removing an absent key is not an error.
    pub fn delete(&mut self, c: Collection, key: &str) -> &mut Self {
        self.ops.push(Op::Delete(c, key.to_owned()));
        self
    }

    /// Whether the transaction has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Why the store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state file could not be created or is not a valid store.
    #[error("cannot open state file {}: {message}", path.display())]
    Open {
        /// The state file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Another process (or another handle in this one) has the state file open.
    #[error("state file {} is in use by another hostnetd: stop it first", path.display())]
    Locked {
        /// The state file.
        path: PathBuf,
    },
    /// A read or write failed; a failed commit changed nothing.
    #[error("state store I/O error: {0}")]
    Io(String),
    /// The store's settings are wrong (cluster mode: endpoints, host ID).
    #[error("{0}")]
    Config(String),
    /// A key the transaction claims is taken; nothing was changed.
    #[error("{} key {key:?} is already taken", collection.name())]
    Conflict {
        /// The claimed key's collection.
        collection: Collection,
        /// The claimed key.
        key: String,
    },
    /// The store cannot be reached (cluster mode: no etcd member answers).
    /// A failed commit changed nothing, except when the message says the
    /// outcome is unknown (the write reached etcd but no answer came back).
    #[error("the state store is unavailable: {0}")]
    Unavailable(String),
}

/// Durable storage of the daemon's objects, keyed by collection and string key.
pub trait Store: Send + Sync {
    /// The value under `key` in `c`, if any.
    fn get(&self, c: Collection, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every key and value of `c`, sorted by key (byte order).
    fn list(&self, c: Collection) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// All puts and deletes of `txn` become durable together, or none do.
    fn commit(&self, txn: Txn) -> Result<(), StoreError>;
}

fn io_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

/// The on-disk store: one redb file, one table per [`Collection`].
///
/// redb holds an exclusive `flock` on the file, so a second daemon on the same
/// state file fails fast with [`StoreError::Locked`] instead of corrupting it.
/// Every commit uses [`Durability::Immediate`] (fsync before returning).
pub struct RedbStore {
    db: Database,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens the state file at `path`, creating it and its parent directory if needed.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |message: String| StoreError::Open {
            path: path.to_owned(),
            message,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| open_err(format!("creating {}: {e}", parent.display())))?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
                path: path.to_owned(),
            },
            e => open_err(e.to_string()),
        })?;
        Self::from_database(db).map_err(|e| open_err(e.to_string()))
    }

    /// Wraps an opened database, creating any missing tables so reads never
    /// have to tell "no table yet" from "empty".
    fn from_database(db: Database) -> Result<Self, StoreError> {
        let mut tx = db.begin_write().map_err(io_err)?;
        tx.set_durability(Durability::Immediate);
        for c in Collection::ALL {
            tx.open_table(c.table()).map_err(io_err)?;
        }
        tx.commit().map_err(io_err)?;
        Ok(Self { db })
    }
}

impl Store for RedbStore {
    fn get(&self, c: Collection, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(io_err)?;
        let table = tx.open_table(c.table()).map_err(io_err)?;
        let value = table.get(key).map_err(io_err)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn list(&self, c: Collection) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(io_err)?;
        let table = tx.open_table(c.table()).map_err(io_err)?;
        let entries = table.iter().map_err(io_err)?;
        entries
            .map(|entry| {
                let (k, v) = entry.map_err(io_err)?;
                Ok((k.value().to_owned(), v.value().to_vec()))
            })
            .collect()
    }

    fn commit(&self, txn: Txn) -> Result<(), StoreError> {
        if txn.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin_write().map_err(io_err)?;
        tx.set_durability(Durability::Immediate);
        // An error before `commit` drops `tx`, which aborts it: nothing is applied.
        for op in &txn.ops {
            if let Op::Claim(c, key, _) = op {
                let table = tx.open_table(c.table()).map_err(io_err)?;
                if table.get(key.as_str()).map_err(io_err)?.is_some() {
                    return Err(StoreError::Conflict {
                        collection: *c,
                        key: key.clone(),
                    });
                }
            }
        }
        for op in &txn.ops {
            match op {
                Op::Put(c, key, value) | Op::Claim(c, key, value) => {
                    let mut table = tx.open_table(c.table()).map_err(io_err)?;
                    table
                        .insert(key.as_str(), value.as_slice())
                        .map_err(io_err)?;
                }
                Op::Delete(c, key) => {
                    let mut table = tx.open_table(c.table()).map_err(io_err)?;
                    table.remove(key.as_str()).map_err(io_err)?;
                }
            }
        }
        tx.commit().map_err(io_err)
    }
}

/// An in-memory [`Store`] with the same semantics as [`RedbStore`], minus durability.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<HashMap<Collection, BTreeMap<String, Vec<u8>>>>,
    fail_next: std::sync::atomic::AtomicBool,
    unavailable_next: std::sync::atomic::AtomicBool,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Make the next commit fail (and change nothing), to test what callers
    /// do when the store refuses a write.
    pub fn fail_next_commit(&self) {
        self.fail_next
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Make the next commit fail as an unreachable store would (cluster
    /// mode with etcd down), changing nothing.
    pub fn unavailable_next_commit(&self) {
        self.unavailable_next
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Collection, BTreeMap<String, Vec<u8>>>> {
        // A panic while holding the lock cannot leave a half-applied txn (see
        // `commit`), so a poisoned map is still consistent.
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemoryStore {
    fn get(&self, c: Collection, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().get(&c).and_then(|t| t.get(key)).cloned())
    }

    fn list(&self, c: Collection) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .get(&c)
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    fn commit(&self, txn: Txn) -> Result<(), StoreError> {
        if self
            .fail_next
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(StoreError::Io("injected commit failure".into()));
        }
        if self
            .unavailable_next
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(StoreError::Unavailable(
                "no etcd member answered (injected)".into(),
            ));
        }
        let mut tables = self.lock();
        for op in &txn.ops {
            if let Op::Claim(c, key, _) = op {
                if tables.get(c).is_some_and(|t| t.contains_key(key)) {
                    return Err(StoreError::Conflict {
                        collection: *c,
                        key: key.clone(),
                    });
                }
            }
        }
        // Apply to a copy of the touched tables, then swap them in, so the
        // visible state changes all at once.
        let mut staged: HashMap<Collection, BTreeMap<String, Vec<u8>>> = HashMap::new();
        for op in txn.ops {
            let c = op.target().0;
            let table = staged
                .entry(c)
                .or_insert_with(|| tables.get(&c).cloned().unwrap_or_default());
            match op {
                Op::Put(_, key, value) | Op::Claim(_, key, value) => {
                    table.insert(key, value);
                }
                Op::Delete(_, key) => {
                    table.remove(&key);
                }
            }
        }
        tables.extend(staged);
        Ok(())
    }
}

/// A shared store is a store: tests keep a handle to inspect it, and a
/// restarted service can reopen the same one.
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn get(&self, c: Collection, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(c, key)
    }

    fn list(&self, c: Collection) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        (**self).list(c)
    }

    fn commit(&self, txn: Txn) -> Result<(), StoreError> {
        (**self).commit(txn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The behaviour every backend shares.
    fn exercise(store: &dyn Store) {
        use Collection::*;
        assert_eq!(store.get(Networks, "A").unwrap(), None);
        assert!(store.list(Endpoints).unwrap().is_empty());

        let mut txn = Txn::new();
        assert!(txn.is_empty());
        txn.put(Networks, "B", b"net-b".to_vec())
            .put(Networks, "A", b"net-a".to_vec())
            .put(Endpoints, "A", b"ep-a".to_vec());
        assert!(!txn.is_empty());
        store.commit(txn).unwrap();

        assert_eq!(store.get(Networks, "A").unwrap().unwrap(), b"net-a");
        assert_eq!(store.get(Endpoints, "A").unwrap().unwrap(), b"ep-a");
        assert_eq!(store.get(Namespaces, "A").unwrap(), None);
        let keys: Vec<_> = store
            .list(Networks)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["A", "B"]);

        // Ordered operations: the last one on a key wins; deleting a missing key is fine.
        let mut txn = Txn::new();
        txn.put(Networks, "A", b"v2".to_vec())
            .delete(Networks, "B")
            .delete(Routes, "missing")
            .put(Meta, "C", b"x".to_vec())
            .delete(Meta, "C");
        store.commit(txn).unwrap();
        assert_eq!(
            store.list(Networks).unwrap(),
            vec![("A".to_owned(), b"v2".to_vec())]
        );
        assert_eq!(store.get(Meta, "C").unwrap(), None);
        store.commit(Txn::new()).unwrap();
        exercise_claims(store);
    }

    /// Claims: create-only puts that fail the whole transaction when taken.
    fn exercise_claims(store: &dyn Store) {
        use Collection::*;
        let mut txn = Txn::new();
        txn.claim(AddressClaims, "N1/10.0.0.2", b"ep-1".to_vec())
            .put(Endpoints, "ep-1", b"one".to_vec());
        store.commit(txn).unwrap();
        assert_eq!(
            store.get(AddressClaims, "N1/10.0.0.2").unwrap().unwrap(),
            b"ep-1"
        );

        // A second claim of the same key changes nothing, not even its other ops.
        let mut txn = Txn::new();
        txn.put(Endpoints, "ep-2", b"two".to_vec())
            .claim(AddressClaims, "N1/10.0.0.3", b"ep-2".to_vec())
            .claim(AddressClaims, "N1/10.0.0.2", b"ep-2".to_vec());
        let err = store.commit(txn).unwrap_err();
        match &err {
            StoreError::Conflict { collection, key } => {
                assert_eq!((*collection, key.as_str()), (AddressClaims, "N1/10.0.0.2"))
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("already taken"), "{err}");
        assert_eq!(store.get(Endpoints, "ep-2").unwrap(), None);
        assert_eq!(store.get(AddressClaims, "N1/10.0.0.3").unwrap(), None);
        assert_eq!(
            store.get(AddressClaims, "N1/10.0.0.2").unwrap().unwrap(),
            b"ep-1"
        );

        // Released, it can be claimed again.
        let mut txn = Txn::new();
        txn.delete(AddressClaims, "N1/10.0.0.2");
        store.commit(txn).unwrap();
        let mut txn = Txn::new();
        txn.claim(AddressClaims, "N1/10.0.0.2", b"ep-3".to_vec());
        store.commit(txn).unwrap();
        assert_eq!(
            store.get(AddressClaims, "N1/10.0.0.2").unwrap().unwrap(),
            b"ep-3"
        );
        let mut txn = Txn::new();
        txn.delete(AddressClaims, "N1/10.0.0.2")
            .delete(Endpoints, "ep-1");
        store.commit(txn).unwrap();
    }

    #[test]
    fn memory_store_semantics() {
        exercise(&MemoryStore::new());
    }

    #[test]
    fn redb_store_semantics() {
        let dir = tempfile::tempdir().unwrap();
        exercise(&RedbStore::open(&dir.path().join("state.redb")).unwrap());
    }

    #[test]
    fn redb_survives_reopen_and_creates_parent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/state.redb");
        {
            let store = RedbStore::open(&path).unwrap();
            let mut txn = Txn::new();
            txn.put(Collection::LoadBalancers, "L", b"lb".to_vec());
            store.commit(txn).unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(
            store.get(Collection::LoadBalancers, "L").unwrap().unwrap(),
            b"lb"
        );
    }

    #[test]
    fn second_open_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let first = RedbStore::open(&path).unwrap();
        let err = RedbStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("in use by another hostnetd"), "{msg}");
        assert!(msg.contains("state.redb"), "{msg}");
        drop(first);
        RedbStore::open(&path).unwrap();
    }

    #[test]
    fn garbage_file_is_an_open_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let err = RedbStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    }

    /// A file backend whose writes start failing on demand, to make a commit
    /// fail halfway through writing its pages.
    #[derive(Debug)]
    struct FlakyBackend {
        inner: redb::backends::FileBackend,
        fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl redb::StorageBackend for FlakyBackend {
        fn len(&self) -> std::io::Result<u64> {
            self.inner.len()
        }
        fn read(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
            self.inner.read(offset, len)
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.inner.set_len(len)
        }
        fn sync_data(&self, eventual: bool) -> std::io::Result<()> {
            self.inner.sync_data(eventual)
        }
        fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(std::io::Error::other("injected write failure"));
            }
            self.inner.write(offset, data)
        }
    }

    #[test]
    fn failed_multi_collection_commit_applies_nothing() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use Collection::*;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let mut txn = Txn::new();
            txn.put(Networks, "N", b"old".to_vec());
            RedbStore::open(&path).unwrap().commit(txn).unwrap();
        }

        let fail = std::sync::Arc::new(AtomicBool::new(false));
        {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            let backend = FlakyBackend {
                inner: redb::backends::FileBackend::new(file).unwrap(),
                fail: fail.clone(),
            };
            let db = redb::Builder::new().create_with_backend(backend).unwrap();
            let store = RedbStore::from_database(db).unwrap();
            fail.store(true, Ordering::SeqCst);
            let mut txn = Txn::new();
            txn.put(Networks, "N", b"new".to_vec())
                .put(Endpoints, "E", b"ep".to_vec())
                .put(Namespaces, "S", b"ns".to_vec())
                .delete(Networks, "missing");
            let err = store.commit(txn).unwrap_err();
            assert!(matches!(err, StoreError::Io(_)), "{err:?}");
        }

        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.get(Networks, "N").unwrap().unwrap(), b"old");
        assert_eq!(store.get(Endpoints, "E").unwrap(), None);
        assert_eq!(store.get(Namespaces, "S").unwrap(), None);
    }

    #[test]
    fn memory_store_is_shareable() {
        fn assert_store<T: Store + 'static>() {}
        assert_store::<MemoryStore>();
        assert_store::<RedbStore>();
        let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(MemoryStore::new());
        std::thread::scope(|s| {
            for i in 0..4 {
                let store = store.clone();
                s.spawn(move || {
                    let mut txn = Txn::new();
                    txn.put(Collection::Routes, &format!("R{i}"), vec![i]);
                    store.commit(txn).unwrap();
                });
            }
        });
        assert_eq!(store.list(Collection::Routes).unwrap().len(), 4);
    }
}
