//! hostnetd: the hostnet daemon.
//!
//! Serves the HCN v2 JSON schema over REST on a Unix socket, keeps state in
//! an embedded store under `--state-dir` (or in etcd with `--store
//! etcd://…`, cluster mode: docs/cluster.md), and programs the kernel of the
//! network namespace it runs in. At first start it creates the NAT network
//! `nat`, as Windows does.

mod cluster;
mod dns;
mod http;
mod overlay_keys;
mod overlay_publish;
mod overlay_watch;
mod store_choice;

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use hostnet_core::{Config, Service};
use ipnet::Ipv4Net;

/// The hostnet daemon: Windows' Host Networking Service on the Linux kernel.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Unix socket of the REST API.
    #[arg(long, env = "HOSTNET_SOCKET", default_value = hostnet_api::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Directory of the state file and the namespaces' bind mounts.
    #[arg(long, default_value = "/var/lib/hostnet")]
    state_dir: PathBuf,
    /// Subnet of the default NAT network (default: a private /16 no host route uses).
    #[arg(long)]
    default_subnet: Option<Ipv4Net>,
    /// Do not create the default NAT network `nat` at first start.
    #[arg(long)]
    no_default_network: bool,
    /// MTU of bridges and endpoints.
    #[arg(long, default_value_t = 1500)]
    mtu: u32,
    /// Seconds a DHCP exchange (an endpoint's lease on a Transparent
    /// network without subnets, a renewal) may take before it fails.
    #[arg(long, default_value_t = 10.0)]
    dhcp_timeout: f64,
    /// The host's resolver configuration: the upstream servers the NAT
    /// gateways' DNS proxy forwards to (read again when it changes).
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// How devices are hooked on hostnet's netdev rules: `auto` asks the
    /// kernel (one chain per rule set listing its devices where the kernel
    /// updates such lists, Linux 6.16+), `chain-per-device` keeps the design
    /// every kernel supports (to compare the two: docs/benchmarks.md).
    #[arg(long, env = "HOSTNET_HOOK_DESIGN", value_enum, default_value_t = HookChoice::Auto)]
    hook_design: HookChoice,
    #[command(flatten)]
    store: store_choice::StoreArgs,
}

/// `--hook-design`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum HookChoice {
    Auto,
    ChainPerDevice,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    if let Err(e) = run(args) {
        log::error!("{e}");
        eprintln!("hostnetd: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.state_dir)
        .map_err(|e| format!("cannot create state dir {}: {e}", args.state_dir.display()))?;
    let store = store_choice::open(&args.store, &args.state_dir)?;
    let mut dp = hostnet_dataplane::linux::LinuxDataplane::new().map_err(|e| e.to_string())?;
    if args.hook_design == HookChoice::ChainPerDevice {
        dp = dp.with_hook_design(hostnet_nft::hook::HookDesign::ChainPerDevice);
    }
    log::info!(
        "hooking devices with {}",
        hostnet_dataplane::Dataplane::hook_design(&dp).describe()
    );
    let config = Config {
        netns_dir: args.state_dir.join("netns"),
        default_network: !args.no_default_network,
        default_subnet: args.default_subnet,
        mtu: args.mtu,
    };
    let service = Service::start(config, store.store, Box::new(dp))
        .map_err(|e| format!("start-up failed: {e}"))?;
    let service = Arc::new(service);
    // Registered once the service is up; dropped (lease revoked) on a clean
    // stop. Overlay networks are then shared: local endpoints published
    // under the lease, the other hosts' followed by a watch.
    let mut registration = None;
    let mut overlay_watch = None;
    if let Some(c) = &store.cluster {
        let publications = c.publications();
        registration = Some(c.register(publications.clone())?);
        service.share_overlays(publications);
        overlay_watch = Some(c.watch_overlays(service.clone())?);
    }
    let dhcp_timeout = std::time::Duration::try_from_secs_f64(args.dhcp_timeout)
        .map_err(|e| format!("--dhcp-timeout {}: {e}", args.dhcp_timeout))?;
    service.start_dhcp(hostnet_core::DhcpSettings {
        timeout: dhcp_timeout,
        ..Default::default()
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let proxy = hostnet_dns::Proxy::new(
        runtime.handle().clone(),
        hostnet_dns::ProxySettings {
            resolv_conf: args.resolv_conf.clone(),
            ..Default::default()
        },
    );
    service.observe_dns(Arc::new(dns::ProxyObserver(proxy)));
    let listener = hostnet_api::bind_socket(&args.socket, "hostnetd")?;
    log::info!("serving the HCN v2 API on {}", args.socket.display());

    let view = store.cluster.as_ref().map(|c| c.view());
    let result = runtime.block_on(http::serve(listener, service, view));
    let _ = std::fs::remove_file(&args.socket);
    drop(overlay_watch);
    drop(registration);
    result
}
