//! The few kernel reads hostnet-cni makes itself: whether CNI_IFNAME is
//! free before ADD, and what CHECK compares. Everything it changes, it
//! asks hostnetd for.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use hostnet_dataplane::linux::{run_in_netns, LinuxDataplane};
use hostnet_dataplane::{Adapter, Dataplane};

/// Link `name` inside the network namespace at `netns`, with its
/// addresses and routes; None if there is no such link.
pub fn link_in(netns: &Path, name: &str) -> Result<Option<Adapter>, String> {
    run_in_netns(netns, || read(name)).map_err(|e| format!("entering {}: {e}", netns.display()))?
}

/// Link `name` in the plugin's own namespace (the host's, where the
/// runtime runs it and hostnetd lives).
pub fn host_link(name: &str) -> Result<Option<Adapter>, String> {
    read(name)
}

fn read(name: &str) -> Result<Option<Adapter>, String> {
    let dp = LinuxDataplane::new().map_err(|e| e.to_string())?;
    dp.adapter(name).map_err(|e| e.to_string())
}

/// Whether two paths name the same network namespace (a runtime may give
/// `/proc/PID/ns/net` where hostnetd recorded a bind mount).
pub fn same_netns(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => false,
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
