//! Where the daemon keeps its state: the embedded redb file (one host, the
//! default) or an etcd cluster (`--store etcd://…`, cluster mode).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hostnet_etcd::Client;
use hostnet_store::{EtcdOptions, EtcdStore, Store};

use crate::cluster::{ClusterView, HostRecord, Registration};
use crate::overlay_publish::Publications;
use crate::overlay_watch::OverlayWatch;

/// The store options of `hostnetd`.
#[derive(clap::Args, Debug)]
pub struct StoreArgs {
    /// Where state lives: `embedded` (a redb file in --state-dir) or an etcd
    /// cluster, `etcd://HOST:PORT[,HOST:PORT...]` (cluster mode).
    #[arg(long = "store", env = "HOSTNET_STORE", default_value = "embedded")]
    store: String,
    /// This host's name in the cluster, unique per host (default: the
    /// hostname). Its state lives under it: keep it across restarts.
    #[arg(long, env = "HOSTNET_HOST_ID")]
    host_id: Option<String>,
    /// The address other hosts reach this one at, as registered (default:
    /// the source address of this host's connection to etcd).
    #[arg(long)]
    host_address: Option<IpAddr>,
    /// Seconds the host registration outlives a dead daemon.
    #[arg(long, default_value_t = 10)]
    host_lease_ttl: u64,
    /// Prefix of every key hostnet keeps in etcd.
    #[arg(long, default_value = "/hostnet/v1")]
    etcd_prefix: String,
    /// For https:// members: the CA that signed their certificates (PEM).
    #[arg(long, value_name = "PEM")]
    etcd_cacert: Option<std::path::PathBuf>,
    /// For members that require client certificates: this host's (PEM).
    #[arg(long, value_name = "PEM", requires = "etcd_key")]
    etcd_cert: Option<std::path::PathBuf>,
    /// The private key of --etcd-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "etcd_cert")]
    etcd_key: Option<std::path::PathBuf>,
}

/// The opened store, and in cluster mode what else talks to etcd.
pub struct Opened {
    pub store: Box<dyn Store>,
    pub cluster: Option<Cluster>,
}

/// Cluster mode's handles.
pub struct Cluster {
    client: Arc<Client>,
    prefix: String,
    record: HostRecord,
    ttl: Duration,
}

impl Cluster {
    /// Registers this host under a lease (see `cluster.rs`); the
    /// publications are kept in etcd under that lease.
    pub fn register(&self, publications: Arc<Publications>) -> Result<Registration, String> {
        Registration::start(
            self.client.clone(),
            &self.prefix,
            self.record.clone(),
            self.ttl,
            publications,
        )
    }

    /// Where this host's overlay endpoints are published (keep in etcd
    /// with [`Cluster::register`], give to the service).
    pub fn publications(&self) -> Arc<Publications> {
        Arc::new(Publications::new(&self.prefix, &self.record.host_id))
    }

    /// Follows the other hosts' overlay networks and endpoints into `service`.
    pub fn watch_overlays(
        &self,
        service: Arc<hostnet_core::Service>,
    ) -> Result<OverlayWatch, String> {
        OverlayWatch::start(
            self.client.clone(),
            &self.prefix,
            &self.record.host_id,
            service,
        )
    }

    /// The registered hosts, for the API.
    pub fn view(&self) -> ClusterView {
        ClusterView::new(self.client.clone(), &self.prefix)
    }
}

/// Opens the store `args` name; an unreachable etcd is an error within
/// seconds, naming every member tried.
pub fn open(args: &StoreArgs, state_dir: &Path) -> Result<Opened, String> {
    if args.store == "embedded" {
        let store = hostnet_store::RedbStore::open(&state_dir.join("state.redb"))
            .map_err(|e| e.to_string())?;
        return Ok(Opened {
            store: Box::new(store),
            cluster: None,
        });
    }
    if !args.store.starts_with("etcd://") && !args.store.starts_with("http") {
        return Err(format!(
            "--store {:?}: give `embedded` or etcd://HOST:PORT[,HOST:PORT...] (https:// for TLS)",
            args.store
        ));
    }
    let tls = match &args.etcd_cacert {
        Some(ca) => Some(hostnet_etcd::TlsFiles {
            ca: ca.clone(),
            cert: args.etcd_cert.clone(),
            key: args.etcd_key.clone(),
        }),
        None if args.etcd_cert.is_some() => {
            return Err("--etcd-cert: give --etcd-cacert too (the CA of the members)".into())
        }
        None => None,
    };
    let host_id = match &args.host_id {
        Some(id) => id.clone(),
        None => hostname()?,
    };
    if args.host_lease_ttl < 2 {
        return Err("--host-lease-ttl: give at least 2 seconds".into());
    }
    let mut options = EtcdOptions::new(&args.store, &host_id);
    options.prefix = args.etcd_prefix.trim_end_matches('/').to_string();
    options.tls = tls;
    let store = EtcdStore::connect(&options).map_err(|e| match e {
        hostnet_store::StoreError::Unavailable(why) => format!(
            "cannot reach etcd at {}: {why}. Start etcd or fix --store",
            args.store
        ),
        e => format!("--store {}: {e}", args.store),
    })?;
    let client = store.client();
    let provider_address = args.host_address.or_else(|| client.local_address());
    crate::cluster::check_host_id_free(&client, &options.prefix, &host_id, provider_address)?;
    log::info!(
        "cluster mode: state in etcd {} under {}/hosts/{host_id}",
        args.store,
        options.prefix
    );
    Ok(Opened {
        store: Box::new(store),
        cluster: Some(Cluster {
            client,
            prefix: options.prefix,
            record: HostRecord {
                host_id,
                provider_address,
                vtep_mac: None,
            },
            ttl: Duration::from_secs(args.host_lease_ttl),
        }),
    })
}

/// The kernel's host name (this UTS namespace's).
fn hostname() -> Result<String, String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_err(|e| format!("reading the hostname for --host-id: {e}; give --host-id"))?;
    let name = name.trim().to_string();
    if hostnet_store::valid_host_id(&name) {
        Ok(name)
    } else {
        Err(format!(
            "the hostname {name:?} cannot be a host ID: give --host-id"
        ))
    }
}
