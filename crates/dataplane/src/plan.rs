//! Running plans: all-or-nothing creation, best-effort teardown.

use crate::{Adapter, ElementCounter, LinkStats, Op, SetRef, VxlanEntries};

/// A kernel change failed.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {message}")]
pub struct DataplaneError {
    /// Short description of the failing operation.
    pub op: String,
    pub message: String,
    /// The kernel lacks what the op needs (a device kind, a module): no
    /// retry helps, the host must change. Callers tell the user so.
    pub unsupported: bool,
}

impl DataplaneError {
    pub fn new(op: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            op: op.into(),
            message: message.into(),
            unsupported: false,
        }
    }

    /// An error saying the kernel cannot do `op` at all.
    pub fn unsupported(op: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            unsupported: true,
            ..Self::new(op, message)
        }
    }
}

/// How [`Dataplane::sync_tables`] made the tables right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableSync {
    /// The skeleton and every element, loaded by `nft -f`.
    Loaded,
    /// The kernel's tables kept; this many elements (or hooked devices)
    /// deleted and added.
    Patched { deleted: usize, added: usize },
}

/// What hostnet needs of the kernel. The daemon is the only caller.
pub trait Dataplane: Send + Sync {
    /// Carry out one op.
    fn execute(&self, op: &Op) -> Result<(), DataplaneError>;

    /// Replace hostnet's tables atomically with `nft -f` text (the skeleton
    /// and every element). Connections tracked by conntrack survive.
    fn load_tables(&self, script: &str) -> Result<(), DataplaneError>;

    /// Make hostnet's tables `skeleton` holding exactly `elements`. When
    /// the kernel's tables carry the skeleton's fingerprint (a restart),
    /// only the elements that differ change, in one transaction, and the
    /// rest keep their counters; otherwise (a reboot, an upgrade) the
    /// skeleton is loaded whole with the elements ([`Self::load_tables`]).
    /// Either way connections tracked by conntrack survive.
    fn sync_tables(
        &self,
        skeleton: &hostnet_nft::Skeleton,
        elements: &[hostnet_nft::SetElement],
    ) -> Result<TableSync, DataplaneError> {
        self.load_tables(&skeleton.with_elements(elements, self.hook_design()))
            .map(|()| TableSync::Loaded)
    }

    /// How this dataplane hooks devices on netdev rules
    /// ([`hostnet_nft::hook`]): the design table text must render device
    /// elements in (`hostnet_nft::tables`). The real one asks the kernel.
    fn hook_design(&self) -> hostnet_nft::hook::HookDesign {
        hostnet_nft::hook::HookDesign::ChainPerDevice
    }

    /// Names of links in the daemon's namespace that start with `prefix`.
    fn links_with_prefix(&self, prefix: &str) -> Result<Vec<String>, DataplaneError>;

    /// Destinations of the routes in the daemon's namespace, so a new
    /// network can pick a subnet that nothing on the host uses.
    fn routed_prefixes(&self) -> Result<Vec<ipnet::IpNet>, DataplaneError> {
        Ok(Vec::new())
    }

    /// The same dataplane acting on the namespace at `path` (an overlay
    /// router's): to read what is there. Changes go through
    /// [`Op::InNetns`], so plans keep their undo.
    fn in_netns(&self, path: &std::path::Path) -> Result<Box<dyn Dataplane>, DataplaneError> {
        Err(not_supported(format!("enter {}", path.display())))
    }

    /// Whether a bind-mounted namespace is still mounted at `path`.
    fn netns_exists(&self, path: &std::path::Path) -> bool {
        path.exists()
    }

    /// Link `name` of the daemon's namespace with its addresses and
    /// routes (see [`Adapter`]), or None if there is no such link.
    fn adapter(&self, name: &str) -> Result<Option<Adapter>, DataplaneError> {
        Err(not_supported(format!("adapter {name}")))
    }

    /// The link of the daemon's namespace that holds address `addr`, as
    /// [`Dataplane::adapter`] reports it; None if no link holds it.
    fn address_owner(&self, addr: std::net::IpAddr) -> Result<Option<Adapter>, DataplaneError> {
        Err(not_supported(format!("look up {addr}")))
    }

    /// The link of the IPv4 default route in the main table (the one with
    /// the lowest metric), or None if there is no default route.
    fn default_route_interface(&self) -> Result<Option<String>, DataplaneError> {
        Err(not_supported("default route interface"))
    }

    /// Makes bridged IPv4 and IPv6 reach the `inet` hooks where the kernel
    /// can (`br_netfilter`, loaded if it is a module not loaded yet, as on
    /// Debian's stock kernel); whether both do in the daemon's namespace
    /// (`bridge-nf-call-iptables` and `-ip6tables`). ACLs judge bridged
    /// traffic there.
    fn bridge_netfilter(&self) -> Result<bool, DataplaneError> {
        Ok(true)
    }

    /// Every address of every link of the daemon's namespace: where its
    /// node ports answer (`fib daddr type local`).
    fn local_addresses(&self) -> Result<Vec<std::net::IpAddr>, DataplaneError> {
        Err(not_supported("list the host's addresses"))
    }

    /// The MAC of IPv4 neighbour `addr` on `link`, asking for it (ARP)
    /// and waiting up to about three seconds if the kernel does not know
    /// it yet; None if nobody answers.
    fn neighbour_mac(
        &self,
        link: &str,
        addr: std::net::Ipv4Addr,
    ) -> Result<Option<[u8; 6]>, DataplaneError> {
        Err(not_supported(format!("resolve {addr} on {link}")))
    }

    /// Every element of `set` with its counter (the set must be declared
    /// with `counter`). A read: nothing is reset or reprogrammed.
    fn set_counters(&self, set: SetRef) -> Result<Vec<ElementCounter>, DataplaneError> {
        Err(not_supported(format!("counters of {}", set.set)))
    }

    /// The static FDB entries (MAC, remote) and permanent IPv4 neighbours
    /// (IP, MAC) of VXLAN link `link` in the daemon's namespace; empty if
    /// the link does not exist. To find what a previous run left behind.
    fn vxlan_entries(&self, link: &str) -> Result<VxlanEntries, DataplaneError> {
        Err(not_supported(format!("entries of {link}")))
    }

    /// Link `name`'s statistics, or None if there is no such link.
    fn link_stats(&self, name: &str) -> Result<Option<LinkStats>, DataplaneError> {
        Err(not_supported(format!("statistics of {name}")))
    }

    /// The connections (IPv4 and IPv6) conntrack tracks in the daemon's namespace
    /// that involve one of `addrs` (before or after NAT): one dump.
    fn flows_of(&self, addrs: &[std::net::IpAddr]) -> Result<Vec<crate::Flow>, DataplaneError> {
        Err(not_supported(format!("list the connections of {addrs:?}")))
    }

    /// Delete these conntrack entries (gone already: skipped), so their
    /// next packets are judged as new connections.
    fn delete_flows(&self, flows: &[crate::Flow]) -> Result<(), DataplaneError> {
        Err(not_supported(format!("delete {} connections", flows.len())))
    }

    /// The namespace mount points (or leftover files) in `dir`, where
    /// hostnet bind-mounts the namespaces it makes.
    fn netns_in(&self, dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

fn not_supported(op: impl Into<String>) -> DataplaneError {
    DataplaneError::new(op, "not supported by this dataplane")
}

/// Apply `ops` in order. If one fails, undo the ones already applied in
/// reverse order (best effort) and return the first error.
pub fn apply(dp: &dyn Dataplane, ops: &[Op]) -> Result<(), DataplaneError> {
    for (i, op) in ops.iter().enumerate() {
        if let Err(e) = dp.execute(op) {
            for done in ops[..i].iter().rev() {
                if let Some(undo) = done.undo() {
                    if let Err(u) = dp.execute(&undo) {
                        log::warn!("rollback step failed: {u}");
                    }
                }
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Run every op even if some fail; return all the errors.
pub fn teardown(dp: &dyn Dataplane, ops: &[Op]) -> Vec<DataplaneError> {
    ops.iter().filter_map(|op| dp.execute(op).err()).collect()
}

/// A shared dataplane is a dataplane (tests keep a handle on the fake).
impl<D: Dataplane + ?Sized> Dataplane for std::sync::Arc<D> {
    fn execute(&self, op: &Op) -> Result<(), DataplaneError> {
        (**self).execute(op)
    }

    fn load_tables(&self, script: &str) -> Result<(), DataplaneError> {
        (**self).load_tables(script)
    }

    fn hook_design(&self) -> hostnet_nft::hook::HookDesign {
        (**self).hook_design()
    }

    fn links_with_prefix(&self, prefix: &str) -> Result<Vec<String>, DataplaneError> {
        (**self).links_with_prefix(prefix)
    }

    fn routed_prefixes(&self) -> Result<Vec<ipnet::IpNet>, DataplaneError> {
        (**self).routed_prefixes()
    }

    fn netns_exists(&self, path: &std::path::Path) -> bool {
        (**self).netns_exists(path)
    }

    fn in_netns(&self, path: &std::path::Path) -> Result<Box<dyn Dataplane>, DataplaneError> {
        (**self).in_netns(path)
    }

    fn adapter(&self, name: &str) -> Result<Option<Adapter>, DataplaneError> {
        (**self).adapter(name)
    }

    fn default_route_interface(&self) -> Result<Option<String>, DataplaneError> {
        (**self).default_route_interface()
    }

    fn bridge_netfilter(&self) -> Result<bool, DataplaneError> {
        (**self).bridge_netfilter()
    }

    fn address_owner(&self, addr: std::net::IpAddr) -> Result<Option<Adapter>, DataplaneError> {
        (**self).address_owner(addr)
    }

    fn local_addresses(&self) -> Result<Vec<std::net::IpAddr>, DataplaneError> {
        (**self).local_addresses()
    }

    fn netns_in(&self, dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        (**self).netns_in(dir)
    }

    fn set_counters(&self, set: SetRef) -> Result<Vec<ElementCounter>, DataplaneError> {
        (**self).set_counters(set)
    }

    fn link_stats(&self, name: &str) -> Result<Option<LinkStats>, DataplaneError> {
        (**self).link_stats(name)
    }

    fn flows_of(&self, addrs: &[std::net::IpAddr]) -> Result<Vec<crate::Flow>, DataplaneError> {
        (**self).flows_of(addrs)
    }

    fn delete_flows(&self, flows: &[crate::Flow]) -> Result<(), DataplaneError> {
        (**self).delete_flows(flows)
    }

    fn vxlan_entries(&self, link: &str) -> Result<VxlanEntries, DataplaneError> {
        (**self).vxlan_entries(link)
    }

    fn neighbour_mac(
        &self,
        link: &str,
        addr: std::net::Ipv4Addr,
    ) -> Result<Option<[u8; 6]>, DataplaneError> {
        (**self).neighbour_mac(link, addr)
    }
}
