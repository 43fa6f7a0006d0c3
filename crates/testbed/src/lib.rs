//! A testbed of network namespaces for hostnet's kernel tests (tiers 1-2).
//!
//! It follows ../shared/design/testbed.md: nothing here touches the root
//! network namespace. Each "host" is a namespace the test makes, named with
//! a per-run prefix ([`PREFIX`]); links are created with `ip -n`, inside;
//! `hostnetd` runs inside the host namespace; every namespace, process and
//! directory is owned by a guard that removes it on drop, on panic too.
//! `hostnet-testbed sweep` removes leftovers of killed runs.

pub mod bench_args;
pub mod capture;
pub mod cni;
mod container;
mod daemon;
pub mod dns_client;
pub mod etcd;
pub mod firewall;
pub mod inspect;
mod netns;
pub mod physical;
mod privilege;
mod probe;
pub mod process_cpu;
pub mod raw6;
pub mod samples;
pub mod sctp;
pub mod tier3;
pub mod traffic;
mod uplink;
mod upstream_dns;
mod wait;

pub use container::{id, Container};
pub use daemon::{unmount_below, Daemon};
pub use etcd::EtcdCluster;
pub use netns::{ip, run_in, Netns};
pub use physical::PhysicalNet;
pub use privilege::{require_installed, require_privileges, Privileges};
pub use probe::{Probe, Session};
pub use uplink::{Uplink, HOST, HOST6, INTERNET, INTERNET6, OUTSIDE, OUTSIDE6};
pub use upstream_dns::UpstreamDns;
pub use wait::wait_until;

/// Prefix of every namespace and directory the testbed makes.
pub const PREFIX: &str = "hnt-";

/// A unique name for this process and call: `hnt-<pid>-<n>-<what>`.
pub fn unique(what: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{PREFIX}{}-{}-{what}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A built binary of the workspace, next to the test executable's `deps`.
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("deps") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo test --workspace` (it builds every binary)",
        path.display()
    );
    path
}
