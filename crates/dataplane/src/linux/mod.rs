//! The Linux dataplane: rtnetlink and nfnetlink spoken directly.
//!
//! Process starts cost about 9 ms here, more than a whole endpoint's budget,
//! so every per-endpoint operation is a few netlink round trips from inside
//! the process; only whole-table loads run `nft`. The encoder is hand
//! written (see [`netlink`]) to avoid netlink crates' API churn and the GPL
//! nftables bindings.
//!
//! [`LinuxDataplane`] acts on the network namespace of the thread that
//! constructed it: its sockets are opened there and stay bound to it, and it
//! keeps a descriptor of that namespace for the few things that are not
//! socket-bound (sysctl files, the `nft` child process). So any thread, in
//! any namespace, may call it.

mod bridge_netfilter;
mod conntrack;
mod counters;
mod link;
mod netlink;
mod netns;
mod nf_tables_abi;
mod nftables;
mod table_state;
mod tap;
mod vxlan;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use hostnet_nft::hook::HookDesign;
use hostnet_nft::SetElement;
use ipnet::IpNet;

pub use netns::{run_in_netns, run_in_netns_fd};

use crate::{
    Adapter, AdapterRoute, Dataplane, DataplaneError, ElementCounter, LinkStats, Op, RouteSpec,
    SetRef, TableSync,
};
use link::LinkRef;
use netlink::{NetlinkError, Socket};
use netns::NetnsId;
use nftables::Change;

/// Creates a network namespace bind-mounted at `path` (parent directories
/// are created), with its loopback up. The caller's namespace is untouched:
/// the work happens on a dedicated thread.
pub fn create_netns(path: &Path) -> io::Result<()> {
    netns::create(path)
}

/// Unmounts and removes a namespace made by [`create_netns`]. A missing
/// path is not an error. The namespace itself is freed (with its links)
/// once nothing else holds it.
pub fn delete_netns(path: &Path) -> io::Result<()> {
    netns::delete(path)
}

/// The hooking design this kernel allows
/// ([`nftables::probe_hook_design`]), probed once per process: the answer
/// is the kernel's, the same in every namespace.
fn kernel_hook_design(sock: &mut Socket) -> HookDesign {
    static PROBED: OnceLock<HookDesign> = OnceLock::new();
    *PROBED.get_or_init(|| {
        let design = nftables::probe_hook_design(sock);
        log::info!("nftables: hooking devices with {}", design.describe());
        design
    })
}

/// The real dataplane. See the module docs for which namespace it acts on.
pub struct LinuxDataplane {
    route: Mutex<Socket>,
    netfilter: Mutex<Socket>,
    /// The namespace the dataplane acts on.
    home: File,
    home_id: NetnsId,
    /// Whether the kernel knows `NFT_MSG_DESTROYSETELEM`; cleared the first
    /// time it turns out not to.
    destroy_supported: AtomicBool,
    /// How device elements are hooked: probed from the kernel when first
    /// needed, once per process ([`kernel_hook_design`]), or forced.
    hooks: OnceLock<HookDesign>,
    /// Dataplanes of other namespaces (overlay routers) by path: making
    /// one takes a thread and two sockets, milliseconds on a busy host, and
    /// an overlay endpoint needs two ops there. Each holds its namespace
    /// alive, so it is dropped when this dataplane deletes that namespace,
    /// and replaced when the path names another namespace.
    others: Mutex<HashMap<PathBuf, Arc<LinuxDataplane>>>,
}

impl LinuxDataplane {
    /// Opens the netlink sockets in the calling thread's network namespace.
    pub fn new() -> Result<Self, DataplaneError> {
        let fail = |what: &str, e: io::Error| {
            DataplaneError::new("open dataplane", format!("{what}: {e}"))
        };
        let home = netns::open_current().map_err(|e| fail("open own network namespace", e))?;
        let home_id = NetnsId::of(&home).map_err(|e| fail("stat own network namespace", e))?;
        Ok(Self {
            route: Mutex::new(
                Socket::open(libc::NETLINK_ROUTE).map_err(|e| fail("rtnetlink socket", e))?,
            ),
            netfilter: Mutex::new(
                Socket::open(libc::NETLINK_NETFILTER).map_err(|e| fail("nfnetlink socket", e))?,
            ),
            home,
            home_id,
            destroy_supported: AtomicBool::new(true),
            hooks: OnceLock::new(),
            others: Mutex::new(HashMap::new()),
        })
    }

    /// The same dataplane hooking devices in `design` whatever the kernel
    /// allows: to keep the chain-per-device design tested, and measured, on
    /// kernels that could do better. The kernel must allow `design`.
    pub fn with_hook_design(self, design: HookDesign) -> Self {
        let _ = self.hooks.set(design);
        self
    }

    /// The hooking design, probed on first use (not in `new`: the CNI
    /// plugin opens a dataplane per call and never hooks a device).
    fn hooks(&self) -> HookDesign {
        *self
            .hooks
            .get_or_init(|| kernel_hook_design(&mut self.netfilter()))
    }

    /// The index of link `name` in the dataplane's namespace, if it exists.
    pub fn link_index(&self, name: &str) -> Result<Option<u32>, DataplaneError> {
        link::index(&mut self.route(), name)
            .map_err(|e| DataplaneError::new(format!("look up link {name}"), e.to_string()))
    }

    fn route(&self) -> MutexGuard<'_, Socket> {
        self.route.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn netfilter(&self) -> MutexGuard<'_, Socket> {
        self.netfilter.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in the dataplane's namespace: directly if the calling thread
    /// is already there, else on a thread that enters it.
    fn in_home<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        if NetnsId::current()? == self.home_id {
            return Ok(f());
        }
        run_in_netns_fd(self.home.as_fd(), f)
    }

    fn create_bridge(
        &self,
        name: &str,
        mtu: u32,
        mac: Option<[u8; 6]>,
        addresses: &[IpNet],
        ipv6: bool,
    ) -> Result<(), DataplaneError> {
        let fail = |m: String| DataplaneError::new(format!("create bridge {name}"), m);
        let mut sock = self.route();
        link::create_bridge(&mut sock, name, mtu, mac).map_err(|e| match e.errno {
            libc::EEXIST => fail(format!("link {name} exists already")),
            _ => fail(e.to_string()),
        })?;
        let link = LinkConfig {
            addresses,
            routes: &[],
            ipv6,
        };
        let configured = match has_ipv6(addresses) {
            true => skip_dad(name, |f| self.in_home(f)),
            false => Ok(()),
        }
        .and_then(|()| configure_link(&mut sock, name, &link));
        if let Err(m) = configured {
            undo_link(&mut sock, name);
            return Err(fail(m));
        }
        Ok(())
    }

    fn create_vlan(
        &self,
        name: &str,
        parent: &str,
        id: u16,
        mtu: u32,
        mac: [u8; 6],
    ) -> Result<(), DataplaneError> {
        let what = format!("create VLAN {id} link {name} on {parent}");
        let fail = |m: String| DataplaneError::new(what.clone(), m);
        let mut sock = self.route();
        let parent_index = link::index(&mut sock, parent)
            .map_err(|e| fail(e.to_string()))?
            .ok_or_else(|| fail(format!("adapter {parent} does not exist")))?;
        link::create_vlan(&mut sock, name, parent_index, id, mtu, mac).map_err(|e| match e.errno {
            libc::EOPNOTSUPP => DataplaneError::unsupported(
                what.clone(),
                "this kernel has no 802.1q VLAN devices: load module 8021q (modprobe 8021q), or use a kernel built with CONFIG_VLAN_8021Q",
            ),
            libc::EEXIST => fail(format!(
                "link {name} exists already, or {parent} has another link with VLAN {id}"
            )),
            _ => fail(e.to_string()),
        })?;
        bring_up_uplink_port(&mut sock, name).map_err(fail)
    }

    fn create_bond(
        &self,
        name: &str,
        mode: crate::BondMode,
        mtu: u32,
        mac: [u8; 6],
    ) -> Result<(), DataplaneError> {
        let what = format!("create {} bond {name}", mode.kernel_name());
        let fail = |m: String| DataplaneError::new(what.clone(), m);
        let mut sock = self.route();
        link::create_bond(&mut sock, name, mode, crate::BOND_MIIMON_MS, mtu, mac).map_err(
            |e| match e.errno {
                libc::EOPNOTSUPP => DataplaneError::unsupported(
                    what.clone(),
                    "this kernel has no bonding driver, which teaming adapters needs: load module bonding (modprobe bonding), or use a kernel built with CONFIG_BONDING",
                ),
                libc::EEXIST => fail(format!("link {name} exists already")),
                _ => fail(e.to_string()),
            },
        )?;
        bring_up_uplink_port(&mut sock, name).map_err(fail)
    }

    /// See [`Op::EnslaveToBond`]. A member that vanished since it was
    /// recorded (reconcile after an adapter was unplugged) is skipped with
    /// a warning, as long as one is left: the bond serves with the rest.
    fn enslave_to_bond(
        &self,
        bond: &str,
        members: &[crate::BondMember],
    ) -> Result<(), DataplaneError> {
        let fail = |m: String| DataplaneError::new(format!("enslave members to {bond}"), m);
        let mut sock = self.route();
        let bond_index = link::index(&mut sock, bond)
            .map_err(|e| fail(e.to_string()))?
            .ok_or_else(|| fail(format!("bond {bond} does not exist")))?;
        let mut enslaved = Vec::new();
        let mut present = 0;
        let mut result = Ok(());
        for m in members {
            let info = match link::info(&mut sock, LinkRef::Name(&m.name)) {
                Ok(Some(info)) => info,
                Ok(None) => {
                    log::warn!("member {} of {bond} does not exist: left out", m.name);
                    continue;
                }
                Err(e) => {
                    result = Err(fail(format!("look up {}: {e}", m.name)));
                    break;
                }
            };
            present += 1;
            if info.master == Some(bond_index) {
                continue;
            }
            let step = link::set_state(&mut sock, info.index, false)
                .and_then(|()| link::set_master(&mut sock, info.index, bond_index));
            enslaved.push(m.clone());
            if let Err(e) = step {
                result = Err(fail(format!("{}: {e}", m.name)));
                break;
            }
        }
        if result.is_ok() && present == 0 {
            result = Err(fail("none of its members exists".into()));
        }
        if let Err(e) = result {
            drop(sock);
            let problems = self.release_from_bond(bond, &enslaved);
            return Err(match problems.is_empty() {
                true => e,
                false => fail(format!("{e}; giving back failed: {}", problems.join("; "))),
            });
        }
        Ok(())
    }

    /// See [`Op::ReleaseFromBond`]; returns what could not be given back.
    fn release_from_bond(&self, bond: &str, members: &[crate::BondMember]) -> Vec<String> {
        let mut sock = self.route();
        let bond_index = link::index(&mut sock, bond).ok().flatten();
        let mut problems = Vec::new();
        for m in members {
            let info = match link::info(&mut sock, LinkRef::Name(&m.name)) {
                Ok(Some(info)) => info,
                Ok(None) => continue,
                Err(e) => {
                    problems.push(format!("look up {}: {e}", m.name));
                    continue;
                }
            };
            let mut step = |what: &str, r: Result<(), NetlinkError>| {
                if let Err(e) = r {
                    problems.push(format!("{} {what}: {e}", m.name));
                }
            };
            if info.master.is_some() && info.master == bond_index {
                step("release", link::set_master(&mut sock, info.index, 0));
            }
            if info.mac.as_slice() != m.mac || info.mtu != m.mtu {
                step(
                    "restore MAC and MTU",
                    link::set_mac_and_mtu(&mut sock, info.index, m.mac, m.mtu),
                );
            }
            step(
                "restore state",
                link::set_state(&mut sock, info.index, m.up),
            );
        }
        problems
    }

    #[allow(clippy::too_many_arguments)]
    fn create_veth(
        &self,
        host_name: &str,
        bridge: &str,
        mtu: u32,
        netns: &Path,
        peer_name: &str,
        peer_mac: [u8; 6],
        addresses: &[IpNet],
        routes: &[RouteSpec],
        ipv6: bool,
    ) -> Result<(), DataplaneError> {
        let fail = |m: String| DataplaneError::new(format!("create veth {host_name}"), m);
        check_routes(routes).map_err(fail)?;
        let ns = File::open(netns)
            .map_err(|e| fail(format!("open namespace {}: {e}", netns.display())))?;
        {
            let mut sock = self.route();
            let master = link::index(&mut sock, bridge)
                .map_err(|e| fail(format!("look up bridge {bridge}: {e}")))?
                .ok_or_else(|| fail(format!("bridge {bridge} not found")))?;
            let veth = link::Veth {
                host_name,
                master,
                mtu,
                peer_name,
                peer_mac,
                netns: ns.as_raw_fd(),
            };
            link::create_veth(&mut sock, &veth).map_err(|e| match e.errno {
                libc::EEXIST => fail(format!(
                    "link {host_name}, or {peer_name} in {}, exists already",
                    netns.display()
                )),
                _ => fail(e.to_string()),
            })?;
        }
        let host_end = LinkConfig {
            addresses: &[],
            routes: &[],
            ipv6,
        };
        let peer = LinkConfig {
            addresses,
            routes,
            ipv6,
        };
        let configured = configure_link(&mut self.route(), host_name, &host_end)
            .and_then(|()| match has_ipv6(addresses) {
                true => skip_dad(peer_name, |f| run_in_netns_fd(ns.as_fd(), f)),
                false => Ok(()),
            })
            .and_then(|()| configure_peer(&ns, peer_name, &peer));
        if let Err(m) = configured {
            undo_link(&mut self.route(), host_name);
            return Err(fail(m));
        }
        Ok(())
    }

    /// A persistent tap `name`: made in the dataplane's namespace, then
    /// given `mtu`, enslaved to `bridge`, without IPv6 link-local (a bridge
    /// port), up. A failure after the tap exists removes it.
    fn create_tap(&self, name: &str, bridge: &str, mtu: u32) -> Result<(), DataplaneError> {
        let fail = |m: String| DataplaneError::new(format!("create tap {name}"), m);
        let mut sock = self.route();
        let master = link::index(&mut sock, bridge)
            .map_err(|e| fail(format!("look up bridge {bridge}: {e}")))?
            .ok_or_else(|| fail(format!("bridge {bridge} not found")))?;
        // TUNSETIFF on an existing tap would silently take it over.
        if link::index(&mut sock, name)
            .map_err(|e| fail(e.to_string()))?
            .is_some()
        {
            return Err(fail(format!("link {name} exists already")));
        }
        self.in_home(|| tap::create_persistent(name))
            .and_then(|r| r)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENODEV) => fail(format!(
                    "{e}: this kernel has no tun/tap driver (modprobe tun)"
                )),
                _ => fail(e.to_string()),
            })?;
        let configured = (|| {
            let index = link::index(&mut sock, name)
                .map_err(|e| format!("look up {name}: {e}"))?
                .ok_or_else(|| format!("{name} vanished after creation"))?;
            link::set_mtu(&mut sock, index, mtu).map_err(|e| format!("set MTU {mtu}: {e}"))?;
            link::set_master(&mut sock, index, master)
                .map_err(|e| format!("enslave to {bridge}: {e}"))?;
            link::disable_ipv6_link_local(&mut sock, index)
                .map_err(|e| format!("turn off IPv6 link-local: {e}"))?;
            link::set_up(&mut sock, index).map_err(|e| format!("set up: {e}"))
        })();
        if let Err(m) = configured {
            undo_link(&mut sock, name);
            return Err(fail(m));
        }
        Ok(())
    }

    fn change_elements(&self, add: bool, elements: &[SetElement]) -> Result<(), DataplaneError> {
        if elements.is_empty() {
            return Ok(());
        }
        let all: Vec<usize> = (0..elements.len()).collect();
        let hooks = self.hooks();
        let mut sock = self.netfilter();
        let result = if add {
            nftables::apply(&mut sock, hooks, Change::Add, elements, &all)
        } else {
            self.delete_elements(&mut sock, hooks, elements, all)
        };
        result.map_err(|f| {
            let op = if add {
                "add elements"
            } else {
                "delete elements"
            };
            DataplaneError::new(op, f.describe(elements))
        })
    }

    /// Every element of `skeleton`'s tables in the kernel and every device
    /// their base chains hook, as [`Dataplane::sync_tables`] compares them
    /// (a set element's text empty).
    pub fn table_elements(
        &self,
        skeleton: &hostnet_nft::Skeleton,
    ) -> Result<Option<Vec<SetElement>>, DataplaneError> {
        let hooks = self.hooks();
        table_state::elements(&mut self.netfilter(), skeleton, hooks)
            .map_err(|e| DataplaneError::new("read hostnet's tables", e.to_string()))
    }

    /// If the kernel's tables are `skeleton`'s (their comments carry its
    /// fingerprint), makes their elements `elements` by deleting and
    /// adding only the difference, in one batch (atomic: a failure
    /// changed nothing). None if the tables are another version or gone.
    fn patch_tables(
        &self,
        skeleton: &hostnet_nft::Skeleton,
        elements: &[SetElement],
    ) -> Result<Option<TableSync>, DataplaneError> {
        let read = |e: NetlinkError| DataplaneError::new("read hostnet's tables", e.to_string());
        let hooks = self.hooks();
        let mut sock = self.netfilter();
        if !table_state::holds_skeleton(&mut sock, skeleton).map_err(read)? {
            return Ok(None);
        }
        let Some(present) = table_state::elements(&mut sock, skeleton, hooks).map_err(read)? else {
            return Ok(None);
        };
        let mut diff = hostnet_nft::sync::diff(&present, elements);
        for e in diff.delete.iter_mut().filter(|e| e.text.is_empty()) {
            e.text = table_state::key_text(e);
        }
        let patched = TableSync::Patched {
            deleted: diff.delete.len(),
            added: diff.add.len(),
        };
        if diff.is_empty() {
            return Ok(Some(patched));
        }
        let deletes: Vec<usize> = (0..diff.delete.len()).collect();
        let all: Vec<SetElement> = diff.delete.into_iter().chain(diff.add).collect();
        let adds: Vec<usize> = (deletes.len()..all.len()).collect();
        nftables::replace(&mut sock, hooks, Change::Delete, &all, &deletes, &adds).map_err(
            |f| DataplaneError::new("change hostnet's tables' elements", f.describe(&all)),
        )?;
        Ok(Some(patched))
    }

    /// One batch: the deletes, then the adds. Deletes go by DESTROY where
    /// the kernel has it; one the kernel reports missing (a chain's device,
    /// or any element on kernels before 6.3) is dropped and the batch sent
    /// again: it aborted as a whole, so nothing was changed yet.
    fn replace_elements(
        &self,
        delete: &[SetElement],
        add: &[SetElement],
    ) -> Result<(), DataplaneError> {
        if delete.is_empty() && add.is_empty() {
            return Ok(());
        }
        let all: Vec<SetElement> = delete.iter().chain(add).cloned().collect();
        let mut deletes: Vec<usize> = (0..delete.len()).collect();
        let adds: Vec<usize> = (delete.len()..all.len()).collect();
        let hooks = self.hooks();
        let mut sock = self.netfilter();
        let mut removal = match self.destroy_supported.load(Ordering::Relaxed) {
            true => Change::Destroy,
            false => Change::Delete,
        };
        let mut downgraded = false;
        loop {
            let failure = match nftables::replace(&mut sock, hooks, removal, &all, &deletes, &adds)
            {
                Ok(()) => {
                    if downgraded {
                        self.destroy_supported.store(false, Ordering::Relaxed);
                    }
                    return Ok(());
                }
                Err(f) => f,
            };
            let missing = failure
                .element
                .filter(|i| *i < delete.len() && failure.error.errno == libc::ENOENT);
            if let Some(i) = missing {
                deletes.retain(|&d| d != i);
            } else if removal == Change::Destroy
                && failure.element.is_none()
                && matches!(failure.error.errno, libc::EINVAL | libc::EOPNOTSUPP)
            {
                // Maybe an old kernel without DESTROY; DELETE tells.
                removal = Change::Delete;
                downgraded = true;
            } else {
                return Err(DataplaneError::new(
                    "replace elements",
                    failure.describe(&all),
                ));
            }
        }
    }

    /// Deletes with DESTROY where the kernel has it; otherwise with DELETE,
    /// dropping each element the kernel reports missing and retrying (the
    /// batch aborted as a whole, so nothing was deleted yet). A chain's
    /// devices always go the second way: the kernel has no DESTROY for them.
    /// Regular chains ([`hostnet_nft::Data::Rules`]) go last, the same
    /// way, once nothing goes to them.
    fn delete_elements(
        &self,
        sock: &mut Socket,
        hooks: HookDesign,
        elements: &[SetElement],
        all: Vec<usize>,
    ) -> Result<(), nftables::Failure> {
        let (chains, all): (Vec<usize>, Vec<usize>) = all
            .into_iter()
            .partition(|&i| elements[i].chain_rules().is_some());
        self.delete_set_elements(sock, hooks, elements, all)?;
        if chains.is_empty() {
            return Ok(());
        }
        Self::delete_skipping_missing(sock, hooks, elements, chains)
    }

    fn delete_set_elements(
        &self,
        sock: &mut Socket,
        hooks: HookDesign,
        elements: &[SetElement],
        all: Vec<usize>,
    ) -> Result<(), nftables::Failure> {
        let (devices, remaining): (Vec<usize>, Vec<usize>) = all
            .into_iter()
            .partition(|&i| elements[i].device_hook().is_some());
        if !devices.is_empty() {
            Self::delete_skipping_missing(sock, hooks, elements, devices)?;
        }
        if remaining.is_empty() {
            return Ok(());
        }
        if self.destroy_supported.load(Ordering::Relaxed) {
            match nftables::apply(sock, hooks, Change::Destroy, elements, &remaining) {
                Err(f)
                    if f.element.is_none()
                        && matches!(f.error.errno, libc::EINVAL | libc::EOPNOTSUPP) =>
                {
                    // Maybe an old kernel; DELETE tells.
                    nftables::apply(sock, hooks, Change::Delete, elements, &remaining)?;
                    self.destroy_supported.store(false, Ordering::Relaxed);
                    return Ok(());
                }
                other => return other,
            }
        }
        Self::delete_skipping_missing(sock, hooks, elements, remaining)
    }

    fn delete_skipping_missing(
        sock: &mut Socket,
        hooks: HookDesign,
        elements: &[SetElement],
        mut remaining: Vec<usize>,
    ) -> Result<(), nftables::Failure> {
        loop {
            match nftables::apply(sock, hooks, Change::Delete, elements, &remaining) {
                Err(f) if f.error.errno == libc::ENOENT && f.element.is_some() => {
                    let missing = f.element.expect("checked");
                    remaining.retain(|&i| i != missing);
                    if remaining.is_empty() {
                        return Ok(());
                    }
                }
                other => return other,
            }
        }
    }

    fn set_master(&self, name: &str, master: Option<&str>) -> Result<(), DataplaneError> {
        let what = match master {
            Some(m) => format!("enslave {name} to {m}"),
            None => format!("release {name} from its master"),
        };
        let fail = |m: String| DataplaneError::new(what.clone(), m);
        let mut sock = self.route();
        let mut find = |n: &str| {
            link::index(&mut sock, n)
                .map_err(|e| fail(format!("look up {n}: {e}")))?
                .ok_or_else(|| fail(format!("link {n} not found")))
        };
        let index = find(name)?;
        let master_index = match master {
            Some(m) => find(m)?,
            None => 0,
        };
        link::set_master(&mut sock, index, master_index).map_err(|e| fail(e.to_string()))
    }

    fn move_addresses(
        &self,
        from: &str,
        to: &str,
        addresses: &[IpNet],
        routes: &[AdapterRoute],
    ) -> Result<(), DataplaneError> {
        let fail =
            |m: String| DataplaneError::new(format!("move addresses from {from} to {to}"), m);
        let mut sock = self.route();
        let mut find = |n: &str| {
            link::index(&mut sock, n)
                .map_err(|e| fail(format!("look up {n}: {e}")))?
                .ok_or_else(|| fail(format!("link {n} not found")))
        };
        let (from_index, to_index) = (find(from)?, find(to)?);
        let mut mv = Move {
            sock: &mut sock,
            from: (from, from_index),
            to: (to, to_index),
            addresses,
            routes,
            routes_deleted: Vec::new(),
            addresses_deleted: Vec::new(),
            addresses_added: Vec::new(),
            routes_added: Vec::new(),
            broadcasts: Vec::new(),
        };
        mv.run().map_err(|m| {
            let problems = mv.roll_back();
            if problems.is_empty() {
                fail(format!("{m} (rolled back)"))
            } else {
                fail(format!("{m}; rollback incomplete: {}", problems.join("; ")))
            }
        })
    }

    fn change_address(&self, add: bool, link: &str, address: IpNet) -> Result<(), DataplaneError> {
        let verb = if add { "add" } else { "delete" };
        let fail = |m: String| DataplaneError::new(format!("{verb} {address} on {link}"), m);
        let index = self
            .link_index(link)?
            .ok_or_else(|| fail("no such link".into()))?;
        let mut sock = self.route();
        let done = match add {
            true => link::add_address(&mut sock, index, address),
            false => link::delete_address(&mut sock, index, address),
        };
        match done {
            Ok(()) => Ok(()),
            Err(e) if add && e.errno == libc::EEXIST => Ok(()),
            Err(e) if !add && e.errno == libc::EADDRNOTAVAIL => Ok(()),
            Err(e) => Err(fail(e.to_string())),
        }
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<(), DataplaneError> {
        let fail = |m: String| DataplaneError::new(format!("sysctl {key}"), m);
        let path = sysctl_path(key).map_err(fail)?;
        self.in_home(|| std::fs::write(&path, value))
            .and_then(|r| r)
            .map_err(|e| match e.kind() {
                // No /proc/sys/net/ipv6: the host runs without IPv6.
                io::ErrorKind::NotFound if path.starts_with("/proc/sys/net/ipv6/") => {
                    DataplaneError::unsupported(
                        format!("sysctl {key}"),
                        "IPv6 is disabled on this host (ipv6.disable=1): IPv6 subnets need it",
                    )
                }
                _ => fail(format!("write {value} to {path}: {e}")),
            })
    }

    #[allow(clippy::too_many_arguments)]
    fn create_vxlan(
        &self,
        name: &str,
        vni: u32,
        local: std::net::Ipv4Addr,
        port: u16,
        mtu: u32,
        bridge: &str,
        netns: Option<&Path>,
    ) -> Result<(), DataplaneError> {
        let fail = |m: String| DataplaneError::new(format!("create vxlan {name} (VNI {vni})"), m);
        // The bridge is where the device is born: look it up there.
        let (target, master) = match netns {
            None => (
                None,
                self.link_index(bridge).map_err(|e| fail(e.to_string()))?,
            ),
            Some(path) => {
                let ns = File::open(path)
                    .map_err(|e| fail(format!("open namespace {}: {e}", path.display())))?;
                let master = self
                    .dataplane_in(path)?
                    .link_index(bridge)
                    .map_err(|e| fail(e.to_string()))?;
                (Some(ns), master)
            }
        };
        let master = master.ok_or_else(|| fail(format!("bridge {bridge} does not exist")))?;
        let v = vxlan::Vxlan {
            name,
            vni,
            local,
            port,
            mtu,
            master,
            netns: target.as_ref().map(|f| f.as_raw_fd()),
        };
        vxlan::create(&mut self.route(), &v).map_err(|e| match e.errno {
            libc::EEXIST => fail(format!(
                "link {name} exists already, or another VXLAN device has VNI {vni} and port {port}"
            )),
            _ => fail(e.to_string()),
        })
    }

    /// The same dataplane acting on the namespace at `path` (kept for the
    /// next call while the path names that namespace).
    fn dataplane_in(&self, path: &Path) -> Result<Arc<LinuxDataplane>, DataplaneError> {
        let fail =
            |e: io::Error| DataplaneError::new(format!("enter {}", path.display()), e.to_string());
        let id = File::open(path)
            .and_then(|f| NetnsId::of(&f))
            .map_err(fail)?;
        let mut others = self.others.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dp) = others.get(path).filter(|dp| dp.home_id == id) {
            return Ok(dp.clone());
        }
        let dp = run_in_netns(path, LinuxDataplane::new).map_err(fail)??;
        let dp = Arc::new(dp.with_hook_design(self.hooks()));
        others.insert(path.to_path_buf(), dp.clone());
        Ok(dp)
    }

    /// [`Op::InNetns`]: `op` by a dataplane of that namespace; a removal
    /// in a namespace that is gone is nothing to do.
    fn execute_in(&self, netns: &Path, op: &Op) -> Result<(), DataplaneError> {
        if op.is_removal() && !netns.exists() {
            return Ok(());
        }
        self.dataplane_in(netns)?
            .execute(op)
            .map_err(|e| DataplaneError {
                op: format!("{} in {}", e.op, netns.display()),
                ..e
            })
    }

    fn change_fdb(
        &self,
        add: bool,
        link: &str,
        mac: [u8; 6],
        remote: std::net::Ipv4Addr,
    ) -> Result<(), DataplaneError> {
        let verb = if add { "add" } else { "delete" };
        let fail = |m: String| {
            DataplaneError::new(
                format!("{verb} fdb {} dst {remote} on {link}", fmt_mac(mac)),
                m,
            )
        };
        let mut sock = self.route();
        let Some(index) = index_for_change(&mut sock, link, add, &fail)? else {
            return Ok(());
        };
        match add {
            true => vxlan::add_fdb(&mut sock, index, mac, remote),
            false => vxlan::delete_fdb(&mut sock, index, mac, remote),
        }
        .map_err(|e| fail(e.to_string()))
    }

    fn change_neighbour(
        &self,
        add: bool,
        netns: Option<&Path>,
        link: &str,
        ip: std::net::Ipv4Addr,
        mac: [u8; 6],
    ) -> Result<(), DataplaneError> {
        let verb = if add { "add" } else { "delete" };
        let place = netns.map_or_else(String::new, |p| format!(" in {}", p.display()));
        let fail = |m: String| {
            DataplaneError::new(
                format!(
                    "{verb} neighbour {ip} lladdr {} on {link}{place}",
                    fmt_mac(mac)
                ),
                m,
            )
        };
        let mut own;
        let mut home;
        let sock: &mut Socket = match netns {
            None => {
                home = self.route();
                &mut home
            }
            Some(path) => {
                let ns = match File::open(path) {
                    Ok(f) => f,
                    Err(_) if !add => return Ok(()),
                    Err(e) => return Err(fail(format!("open the namespace: {e}"))),
                };
                own = netns::route_socket_in(ns.as_fd()).map_err(|e| fail(e.to_string()))?;
                &mut own
            }
        };
        let Some(index) = index_for_change(sock, link, add, &fail)? else {
            return Ok(());
        };
        match add {
            true => vxlan::add_neighbour(sock, index, ip, mac),
            false => vxlan::delete_neighbour(sock, index, ip),
        }
        .map_err(|e| fail(e.to_string()))
    }

    fn change_netns_elements(
        &self,
        add: bool,
        netns: &Path,
        elements: &[SetElement],
    ) -> Result<(), DataplaneError> {
        if elements.is_empty() {
            return Ok(());
        }
        let op = if add {
            "add elements"
        } else {
            "delete elements"
        };
        let fail = |m: String| DataplaneError::new(format!("{op} in {}", netns.display()), m);
        let ns = match File::open(netns) {
            Ok(f) => f,
            Err(_) if !add => return Ok(()),
            Err(e) => return Err(fail(format!("open the namespace: {e}"))),
        };
        let mut sock = run_in_netns_fd(ns.as_fd(), || Socket::open(libc::NETLINK_NETFILTER))
            .and_then(|r| r)
            .map_err(|e| fail(format!("nfnetlink socket: {e}")))?;
        let all: Vec<usize> = (0..elements.len()).collect();
        let hooks = self.hooks();
        let result = match add {
            true => nftables::apply(&mut sock, hooks, Change::Add, elements, &all),
            false => self.delete_elements(&mut sock, hooks, elements, all),
        };
        result.map_err(|f| fail(f.describe(elements)))
    }
}

fn fmt_mac(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Adds or deletes an on-link route inside the namespace at `netns`.
fn change_onlink_route(
    add: bool,
    netns: &Path,
    link: &str,
    destination: IpNet,
    via: std::net::Ipv4Addr,
) -> Result<(), DataplaneError> {
    let verb = if add { "add" } else { "delete" };
    let fail = |m: String| {
        DataplaneError::new(
            format!(
                "{verb} route {destination} via {via} dev {link} onlink in {}",
                netns.display()
            ),
            m,
        )
    };
    let ns = match File::open(netns) {
        Ok(f) => f,
        Err(_) if !add => return Ok(()),
        Err(e) => return Err(fail(format!("open the namespace: {e}"))),
    };
    let mut sock = netns::route_socket_in(ns.as_fd()).map_err(|e| fail(e.to_string()))?;
    let Some(index) = index_for_change(&mut sock, link, add, &fail)? else {
        return Ok(());
    };
    match add {
        true => vxlan::add_onlink_route(&mut sock, index, destination, via),
        false => vxlan::delete_onlink_route(&mut sock, index, destination, via),
    }
    .map_err(|e| fail(e.to_string()))
}

/// Writes a sysctl of the namespace at `netns` from a thread inside it
/// (`/proc/sys/net` shows the opener's namespace).
fn netns_sysctl(netns: &Path, key: &str, value: &str) -> Result<(), DataplaneError> {
    let fail = |m: String| DataplaneError::new(format!("sysctl {key} in {}", netns.display()), m);
    let path = sysctl_path(key).map_err(fail)?;
    let optional = key.starts_with("net/bridge/");
    run_in_netns(netns, || match std::fs::write(&path, value) {
        // No br_netfilter: no bridged frame reaches the IP hooks anyway.
        Err(e) if optional && e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    })
    .and_then(|r| r)
    .map_err(|e| fail(format!("write {value} to {path}: {e}")))
}

impl Dataplane for LinuxDataplane {
    fn bridge_netfilter(&self) -> Result<bool, DataplaneError> {
        bridge_netfilter::ensure(|f| self.in_home(f))
    }

    fn execute(&self, op: &Op) -> Result<(), DataplaneError> {
        match op {
            Op::CreateBridge {
                name,
                mtu,
                mac,
                addresses,
                ipv6,
            } => self.create_bridge(name, *mtu, *mac, addresses, *ipv6),
            Op::CreateVlan {
                name,
                parent,
                id,
                mtu,
                mac,
            } => self.create_vlan(name, parent, *id, *mtu, *mac),
            Op::CreateBond {
                name,
                mode,
                mtu,
                mac,
            } => self.create_bond(name, *mode, *mtu, *mac),
            Op::EnslaveToBond { bond, members } => self.enslave_to_bond(bond, members),
            Op::ReleaseFromBond { bond, members } => {
                let problems = self.release_from_bond(bond, members);
                match problems.is_empty() {
                    true => Ok(()),
                    false => Err(DataplaneError::new(
                        format!("give the members of {bond} back"),
                        problems.join("; "),
                    )),
                }
            }
            Op::DeleteLink { name } => link::delete(&mut self.route(), name)
                .map_err(|e| DataplaneError::new(format!("delete link {name}"), e.to_string())),
            Op::CreateNetns { path } => netns::create(path).map_err(|e| {
                DataplaneError::new(format!("create netns {}", path.display()), e.to_string())
            }),
            Op::DeleteNetns { path } => {
                // A kept dataplane of it would hold it (and its links) alive.
                let kept = self
                    .others
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(path);
                drop(kept);
                netns::delete(path).map_err(|e| {
                    DataplaneError::new(format!("delete netns {}", path.display()), e.to_string())
                })
            }
            Op::CreateVeth {
                host_name,
                bridge,
                mtu,
                netns,
                peer_name,
                peer_mac,
                addresses,
                routes,
                ipv6,
            } => self.create_veth(
                host_name, bridge, *mtu, netns, peer_name, *peer_mac, addresses, routes, *ipv6,
            ),
            Op::CreateTap { name, bridge, mtu } => self.create_tap(name, bridge, *mtu),
            Op::AddElements(elements) => self.change_elements(true, elements),
            Op::DeleteElements(elements) => self.change_elements(false, elements),
            Op::ReplaceElements { delete, add } => self.replace_elements(delete, add),
            Op::Sysctl { key, value } => self.sysctl(key, value),
            Op::SetMaster { link, master, .. } => self.set_master(link, master.as_deref()),
            Op::BridgeNfCallIptables { bridge, on } => {
                let fail = |m: String| {
                    DataplaneError::new(format!("set nf_call_iptables {on} on bridge {bridge}"), m)
                };
                let mut sock = self.route();
                match index_for_change(&mut sock, bridge, *on, &fail)? {
                    Some(i) => link::set_bridge_nf_call_iptables(&mut sock, i, *on)
                        .map_err(|e| fail(e.to_string())),
                    None => Ok(()),
                }
            }
            Op::MoveAddresses {
                from,
                to,
                addresses,
                routes,
            } => self.move_addresses(from, to, addresses, routes),
            Op::AddAddress { link, address } => self.change_address(true, link, *address),
            Op::AddLocalRoutes(routes) => change_local_routes(true, routes),
            Op::DeleteLocalRoutes(routes) => change_local_routes(false, routes),
            Op::DeleteAddress { link, address } => self.change_address(false, link, *address),
            Op::AddRoutes {
                netns,
                link,
                routes,
            } => change_routes(true, netns, link, routes),
            Op::CreateVxlan {
                name,
                vni,
                local,
                port,
                mtu,
                bridge,
                netns,
            } => self.create_vxlan(name, *vni, *local, *port, *mtu, bridge, netns.as_deref()),
            Op::InNetns { netns, op } => self.execute_in(netns, op),
            Op::AddFdb { link, mac, remote } => self.change_fdb(true, link, *mac, *remote),
            Op::DeleteFdb { link, mac, remote } => self.change_fdb(false, link, *mac, *remote),
            Op::AddNeighbour {
                netns,
                link,
                ip,
                mac,
            } => self.change_neighbour(true, netns.as_deref(), link, *ip, *mac),
            Op::DeleteNeighbour {
                netns,
                link,
                ip,
                mac,
            } => self.change_neighbour(false, netns.as_deref(), link, *ip, *mac),
            Op::AddOnlinkRoute {
                netns,
                link,
                destination,
                via,
            } => change_onlink_route(true, netns, link, *destination, *via),
            Op::DeleteOnlinkRoute {
                netns,
                link,
                destination,
                via,
            } => change_onlink_route(false, netns, link, *destination, *via),
            Op::NetnsSysctl { netns, key, value } => netns_sysctl(netns, key, value),
            Op::LoadNetnsTables { netns, script } => File::open(netns)
                .map_err(|e| {
                    DataplaneError::new("load tables", format!("open {}: {e}", netns.display()))
                })
                .and_then(|ns| nftables::load_tables(&ns, script)),
            Op::AddNetnsElements { netns, elements } => {
                self.change_netns_elements(true, netns, elements)
            }
            Op::DeleteNetnsElements { netns, elements } => {
                self.change_netns_elements(false, netns, elements)
            }
            Op::DeleteRoutes {
                netns,
                link,
                routes,
            } => change_routes(false, netns, link, routes),
        }
    }

    fn flows_of(&self, addrs: &[std::net::IpAddr]) -> Result<Vec<crate::Flow>, DataplaneError> {
        conntrack::flows_of(&mut self.netfilter(), addrs).map_err(|e| {
            DataplaneError::new(
                format!("list the connections of {} addresses", addrs.len()),
                e.to_string(),
            )
        })
    }

    fn delete_flows(&self, flows: &[crate::Flow]) -> Result<(), DataplaneError> {
        conntrack::delete(&mut self.netfilter(), flows)
            .map_err(|e| DataplaneError::new("delete connections", e.to_string()))
    }

    fn load_tables(&self, script: &str) -> Result<(), DataplaneError> {
        nftables::load_tables(&self.home, script)
    }

    fn sync_tables(
        &self,
        skeleton: &hostnet_nft::Skeleton,
        elements: &[SetElement],
    ) -> Result<TableSync, DataplaneError> {
        match self.patch_tables(skeleton, elements) {
            Ok(Some(patched)) => return Ok(patched),
            Ok(None) => {}
            Err(e) => log::warn!("{e}; loading the tables whole"),
        }
        nftables::load_tables(&self.home, &skeleton.with_elements(elements, self.hooks()))?;
        Ok(TableSync::Loaded)
    }

    fn hook_design(&self) -> HookDesign {
        self.hooks()
    }

    fn set_counters(&self, set: SetRef) -> Result<Vec<ElementCounter>, DataplaneError> {
        counters::set_counters(&mut self.netfilter(), set).map_err(|e| {
            DataplaneError::new(
                format!(
                    "read counters of {} {} {}",
                    set.family.keyword(),
                    set.table,
                    set.set
                ),
                e.to_string(),
            )
        })
    }

    fn link_stats(&self, name: &str) -> Result<Option<LinkStats>, DataplaneError> {
        counters::link_stats(&mut self.route(), name)
            .map_err(|e| DataplaneError::new(format!("read statistics of {name}"), e.to_string()))
    }

    fn links_with_prefix(&self, prefix: &str) -> Result<Vec<String>, DataplaneError> {
        let names = link::names(&mut self.route())
            .map_err(|e| DataplaneError::new("list links", e.to_string()))?;
        Ok(names
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .collect())
    }

    /// Destinations of unicast and local routes in all tables; default
    /// routes are left out.
    fn routed_prefixes(&self) -> Result<Vec<IpNet>, DataplaneError> {
        link::route_destinations(&mut self.route())
            .map_err(|e| DataplaneError::new("list routes", e.to_string()))
    }

    /// True only if a namespace is bind-mounted there (a plain file left
    /// behind by a crash does not count).
    fn in_netns(&self, path: &Path) -> Result<Box<dyn Dataplane>, DataplaneError> {
        Ok(Box::new(self.dataplane_in(path)?))
    }

    fn netns_exists(&self, path: &Path) -> bool {
        netns::is_mounted(path)
    }

    /// Three reads (link, address dump, route dump), not one snapshot:
    /// a change in between may show up in one and not the others.
    fn adapter(&self, name: &str) -> Result<Option<Adapter>, DataplaneError> {
        let fail =
            |e: NetlinkError| DataplaneError::new(format!("look up adapter {name}"), e.to_string());
        let mut sock = self.route();
        let Some(info) = link::info(&mut sock, LinkRef::Name(name)).map_err(fail)? else {
            return Ok(None);
        };
        let master = match info.master {
            Some(m) => Some(
                link::info(&mut sock, LinkRef::Index(m))
                    .map_err(fail)?
                    .map_or_else(|| format!("if{m}"), |l| l.name),
            ),
            None => None,
        };
        let addresses = link::addresses(&mut sock)
            .map_err(fail)?
            .into_iter()
            .filter(|a| a.index == info.index && is_host_address(a))
            .map(|a| a.net)
            .collect();
        let routes = link::routes(&mut sock)
            .map_err(fail)?
            .into_iter()
            .filter(|r| r.oif == Some(info.index) && is_host_route(r))
            .map(|r| AdapterRoute {
                destination: r.destination,
                via: r.gateway,
                metric: r.metric,
                table: r.table,
                proto: r.proto,
                scope: r.scope,
                src: r.src,
            })
            .collect();
        Ok(Some(Adapter {
            name: info.name,
            index: info.index,
            mac: info.mac.as_slice().try_into().unwrap_or([0; 6]),
            mtu: info.mtu,
            addresses,
            routes,
            master,
            up: info.up,
        }))
    }

    fn vxlan_entries(&self, link: &str) -> Result<crate::VxlanEntries, DataplaneError> {
        let fail = |e: NetlinkError| {
            DataplaneError::new(format!("read the entries of {link}"), e.to_string())
        };
        let Some(index) = self.link_index(link)? else {
            return Ok(crate::VxlanEntries::default());
        };
        let mut sock = self.route();
        Ok(crate::VxlanEntries {
            fdb: vxlan::fdb_remotes(&mut sock, index).map_err(fail)?,
            neighbours: vxlan::permanent_neighbours(&mut sock, index).map_err(fail)?,
        })
    }

    fn neighbour_mac(
        &self,
        link: &str,
        addr: std::net::Ipv4Addr,
    ) -> Result<Option<[u8; 6]>, DataplaneError> {
        let what = format!("resolve {addr} on {link}");
        let fail = |e: String| DataplaneError::new(what.clone(), e);
        let index = self
            .link_index(link)?
            .ok_or_else(|| fail(format!("link {link} does not exist")))?;
        // A datagram to the discard port makes the kernel ask (ARP); the
        // answer lands in the neighbour table, which is polled.
        let poke = || {
            let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
            sock.connect((addr, 9))?;
            sock.send(&[]).map(|_| ())
        };
        for attempt in 0..60 {
            let known =
                link::neighbour(&mut self.route(), index, addr).map_err(|e| fail(e.to_string()))?;
            if known.is_some() {
                return Ok(known);
            }
            if attempt % 10 == 0 {
                if let Ok(Err(e)) = self.in_home(poke) {
                    log::debug!("{what}: {e}");
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(None)
    }

    fn address_owner(&self, addr: std::net::IpAddr) -> Result<Option<Adapter>, DataplaneError> {
        let owner = link::addresses(&mut self.route())
            .map_err(|e| DataplaneError::new(format!("look up {addr}"), e.to_string()))?
            .into_iter()
            .find(|a| a.net.addr() == addr)
            .map(|a| a.index);
        let Some(index) = owner else { return Ok(None) };
        let name = link::info(&mut self.route(), LinkRef::Index(index))
            .map_err(|e| DataplaneError::new(format!("look up {addr}"), e.to_string()))?
            .map(|l| l.name);
        match name {
            Some(n) => self.adapter(&n),
            None => Ok(None),
        }
    }

    fn local_addresses(&self) -> Result<Vec<std::net::IpAddr>, DataplaneError> {
        Ok(link::addresses(&mut self.route())
            .map_err(|e| DataplaneError::new("list the host's addresses", e.to_string()))?
            .into_iter()
            .map(|a| a.net.addr())
            .collect())
    }

    fn default_route_interface(&self) -> Result<Option<String>, DataplaneError> {
        let fail =
            |e: NetlinkError| DataplaneError::new("look up the default route", e.to_string());
        let mut sock = self.route();
        let best = link::routes(&mut sock)
            .map_err(fail)?
            .into_iter()
            .filter(|r| {
                r.in_main_table()
                    && r.is_unicast()
                    && r.destination.addr().is_ipv4()
                    && r.destination.prefix_len() == 0
            })
            .filter_map(|r| Some((r.metric, r.oif?)))
            .min();
        let Some((_, oif)) = best else {
            return Ok(None);
        };
        let link = link::info(&mut sock, LinkRef::Index(oif)).map_err(fail)?;
        Ok(Some(link.map_or_else(|| format!("if{oif}"), |l| l.name)))
    }
}

/// Whether an address is one of the host's own that moves with its
/// adapter: IPv4, or IPv6 other than link-local and loopback (each link
/// makes its own), and not one that failed duplicate address detection.
fn is_host_address(a: &link::AddressInfo) -> bool {
    let own = match a.net {
        IpNet::V4(_) => true,
        IpNet::V6(n) => {
            let ip = n.addr();
            ip.segments()[0] & 0xffc0 != 0xfe80 && !ip.is_loopback()
        }
    };
    own && !a.dad_failed()
}

/// Whether a route is one a host adapter's addresses need moved along:
/// configured (not the kernel's connected or prefix routes, which come
/// back with the addresses), unicast, in the main table, through one link
/// (multipath routes cannot be described by an [`AdapterRoute`]), and not
/// to IPv6 link-local or multicast destinations.
fn is_host_route(r: &link::RouteInfo) -> bool {
    let special = match r.destination {
        IpNet::V4(_) => false,
        IpNet::V6(n) => {
            let seg = n.network().segments()[0];
            seg & 0xffc0 == 0xfe80 || seg & 0xff00 == 0xff00
        }
    };
    r.in_main_table() && r.is_unicast() && !r.multipath && !r.by_kernel() && !special
}

/// One [`Op::MoveAddresses`] under way: what it has changed so far, so a
/// failure can put it back.
struct Move<'a> {
    sock: &'a mut Socket,
    from: (&'a str, u32),
    to: (&'a str, u32),
    addresses: &'a [IpNet],
    routes: &'a [AdapterRoute],
    routes_deleted: Vec<&'a AdapterRoute>,
    addresses_deleted: Vec<IpNet>,
    addresses_added: Vec<IpNet>,
    routes_added: Vec<&'a AdapterRoute>,
    /// Broadcast addresses of the addresses on `from`, carried over.
    broadcasts: Vec<(IpNet, std::net::Ipv4Addr)>,
}

impl<'a> Move<'a> {
    /// Routes off `from` first (they would go with the last IPv4 address
    /// anyway, but not with IPv6 ones, and a route to the same destination
    /// and metric cannot be on both links), then the addresses over, then
    /// the routes onto `to` (their gateways are reachable once the
    /// addresses' connected routes exist). Steps already done are skipped.
    fn run(&mut self) -> Result<(), String> {
        let (from, from_index) = self.from;
        let (to, to_index) = self.to;
        for r in self.routes {
            match link::change_adapter_route(self.sock, false, from_index, r) {
                Ok(()) => self.routes_deleted.push(r),
                Err(e) if e.errno == libc::ESRCH => {}
                Err(e) => return Err(format!("delete route {} from {from}: {e}", describe(r))),
            }
        }
        self.broadcasts = link::addresses(self.sock)
            .map_err(|e| format!("list addresses of {from}: {e}"))?
            .into_iter()
            .filter(|i| i.index == from_index)
            .filter_map(|i| Some((i.net, i.broadcast?)))
            .collect();
        for a in delete_order(self.addresses) {
            match link::delete_address(self.sock, from_index, a) {
                Ok(()) => self.addresses_deleted.push(a),
                Err(e) if e.errno == libc::EADDRNOTAVAIL => {}
                Err(e) => return Err(format!("delete address {a} from {from}: {e}")),
            }
        }
        for a in add_order(self.addresses) {
            match link::add_moved_address(self.sock, to_index, a, self.broadcast_of(a)) {
                Ok(()) => self.addresses_added.push(a),
                Err(e) if e.errno == libc::EEXIST => {}
                Err(e) => return Err(format!("add address {a} to {to}: {e}")),
            }
        }
        for r in self.routes {
            match link::change_adapter_route(self.sock, true, to_index, r) {
                Ok(()) => self.routes_added.push(r),
                Err(e) if e.errno == libc::EEXIST => {}
                Err(e) => return Err(format!("add route {} to {to}: {e}", describe(r))),
            }
        }
        Ok(())
    }

    fn broadcast_of(&self, a: IpNet) -> Option<std::net::Ipv4Addr> {
        self.broadcasts
            .iter()
            .find(|(n, _)| *n == a)
            .map(|(_, b)| *b)
    }

    /// Undoes what [`Move::run`] did, in reverse; returns what failed.
    fn roll_back(&mut self) -> Vec<String> {
        let (from, from_index) = self.from;
        let (to, to_index) = self.to;
        let mut problems = Vec::new();
        for r in self.routes_added.iter().rev() {
            match link::change_adapter_route(self.sock, false, to_index, r) {
                Err(e) if e.errno != libc::ESRCH => {
                    problems.push(format!("delete route {} from {to}: {e}", describe(r)))
                }
                _ => {}
            }
        }
        for &a in self.addresses_added.iter().rev() {
            match link::delete_address(self.sock, to_index, a) {
                Err(e) if e.errno != libc::EADDRNOTAVAIL => {
                    problems.push(format!("delete address {a} from {to}: {e}"))
                }
                _ => {}
            }
        }
        let deleted = &self.addresses_deleted;
        for a in add_order(self.addresses).filter(|a| deleted.contains(a)) {
            match link::add_moved_address(self.sock, from_index, a, self.broadcast_of(a)) {
                Err(e) if e.errno != libc::EEXIST => {
                    problems.push(format!("add address {a} back to {from}: {e}"))
                }
                _ => {}
            }
        }
        for r in &self.routes_deleted {
            match link::change_adapter_route(self.sock, true, from_index, r) {
                Err(e) if e.errno != libc::EEXIST => {
                    problems.push(format!("add route {} back to {from}: {e}", describe(r)))
                }
                _ => {}
            }
        }
        for p in &problems {
            log::warn!("rollback: {p}");
        }
        problems
    }
}

/// Addresses are deleted last first: the kernel lists an IPv4 subnet's
/// primary address before its secondaries, and deleting a primary first
/// would take the secondaries with it (unless `promote_secondaries`).
fn delete_order(addresses: &[IpNet]) -> impl Iterator<Item = IpNet> + '_ {
    addresses.iter().rev().copied()
}

/// The order that reproduces the kernel's listing: IPv4 in order (primary
/// first); IPv6 reversed, since the kernel lists a link's IPv6 addresses
/// of equal scope newest first.
fn add_order(addresses: &[IpNet]) -> impl Iterator<Item = IpNet> + '_ {
    let v4 = addresses.iter().filter(|a| a.addr().is_ipv4());
    let v6 = addresses.iter().rev().filter(|a| a.addr().is_ipv6());
    v4.chain(v6).copied()
}

fn describe(r: &AdapterRoute) -> String {
    match r.via {
        Some(via) => format!("{} via {via} metric {}", r.destination, r.metric),
        None => format!("{} on-link metric {}", r.destination, r.metric),
    }
}

/// A link hostnet gives IPv6 addresses at creation (a dual-stack NAT
/// network's bridge, its endpoints' veth peers) skips duplicate address
/// detection for its link-local address too (`accept_dad` 0, set while the
/// link is down; its global ones are added NODAD already): hostnet's IPAM
/// made the addresses unique, and the link-local comes from a MAC hostnet
/// made unique. Until DAD ends the kernel sends no neighbour solicitation
/// for traffic it forwards out of a link whose link-local is tentative,
/// so a container was unreachable on IPv6 for the first second or two.
/// `run_there` runs the write in the link's namespace.
fn skip_dad(
    name: &str,
    run_there: impl FnOnce(Box<dyn FnOnce() -> io::Result<()> + Send>) -> io::Result<io::Result<()>>,
) -> Result<(), String> {
    let path = format!("/proc/sys/net/ipv6/conf/{name}/accept_dad");
    let write = {
        let path = path.clone();
        Box::new(move || std::fs::write(path, "0"))
    };
    run_there(write)
        .and_then(|r| r)
        .map_err(|e| format!("write 0 to {path}: {e}"))
}

fn has_ipv6(addresses: &[IpNet]) -> bool {
    addresses.iter().any(|a| a.addr().is_ipv6())
}

/// How to configure a link after its creation.
struct LinkConfig<'a> {
    addresses: &'a [IpNet],
    routes: &'a [RouteSpec],
    /// False: no IPv6 link-local address (see `Op::CreateBridge`).
    ipv6: bool,
}

/// Gives link `name` its IPv6 setting and addresses, sets it up, then adds
/// its routes: a gateway is reachable once the address's connected route
/// exists, which needs the link up.
fn configure_link(sock: &mut Socket, name: &str, link: &LinkConfig<'_>) -> Result<(), String> {
    let index = link::index(sock, name)
        .map_err(|e| format!("look up {name}: {e}"))?
        .ok_or_else(|| format!("{name} vanished after creation"))?;
    if !link.ipv6 {
        link::disable_ipv6_link_local(sock, index)
            .map_err(|e| format!("turn off IPv6 link-local on {name}: {e}"))?;
    }
    for a in link.addresses {
        link::add_address(sock, index, *a)
            .map_err(|e| format!("add address {a} to {name}: {e}"))?;
    }
    link::set_up(sock, index).map_err(|e| format!("set {name} up: {e}"))?;
    for r in link.routes {
        link::add_route(sock, index, r)
            .map_err(|e| format!("add route {} to {name}: {e}", describe_route(r)))?;
    }
    Ok(())
}

/// Adds or deletes the local routes of [`Op::AddLocalRoutes`], through
/// sockets opened in every namespace by one thread. A failed add removes
/// the routes it added, in every namespace; namespaces that are gone have
/// nothing to delete.
fn change_local_routes(add: bool, sets: &[crate::LocalRoutes]) -> Result<(), DataplaneError> {
    let verb = if add { "add" } else { "delete" };
    let fail = |path: &Path, m: String| {
        DataplaneError::new(
            format!("{verb} the local routes of VIPs in {}", path.display()),
            m,
        )
    };
    let mut open = Vec::with_capacity(sets.len());
    for set in sets {
        match File::open(&set.netns) {
            Ok(f) => open.push((set, f)),
            Err(_) if !add => {}
            Err(e) => return Err(fail(&set.netns, format!("open the namespace: {e}"))),
        }
    }
    let fds: Vec<_> = open.iter().map(|(_, f)| f.as_fd()).collect();
    let mut sockets = netns::route_sockets_in(&fds).map_err(|e| {
        let first = sets
            .first()
            .map(|s| s.netns.as_path())
            .unwrap_or(Path::new("?"));
        fail(first, e.to_string())
    })?;
    for (i, ((set, _), sock)) in open.iter().zip(sockets.iter_mut()).enumerate() {
        if let Err(e) = change_local_routes_in(add, sock, &set.addresses) {
            if add {
                for ((earlier, _), sock) in open[..i].iter().zip(sockets.iter_mut()) {
                    for &a in &earlier.addresses {
                        let _ = link::delete_local_route(sock, LOOPBACK_INDEX, a);
                    }
                }
            }
            return Err(fail(&set.netns, e));
        }
    }
    Ok(())
}

/// [`change_local_routes`] in one namespace, through `sock` opened there;
/// then the `/32` loopback addresses an earlier version held for those
/// addresses are removed (one dump finds them). A failed add removes the
/// routes it added here.
fn change_local_routes_in(
    add: bool,
    sock: &mut Socket,
    addresses: &[std::net::Ipv4Addr],
) -> Result<(), String> {
    if add {
        // Local delivery goes through loopback: down, the route is dead.
        link::set_up(sock, LOOPBACK_INDEX).map_err(|e| format!("set lo up: {e}"))?;
    }
    for (i, &a) in addresses.iter().enumerate() {
        let done = match add {
            true => link::add_local_route(sock, LOOPBACK_INDEX, a),
            false => link::delete_local_route(sock, LOOPBACK_INDEX, a),
        };
        match done {
            Ok(()) => {}
            Err(e) if add && e.errno == libc::EEXIST => {}
            Err(e) if !add && e.errno == libc::ESRCH => {}
            Err(e) => {
                if add {
                    for &undo in &addresses[..i] {
                        let _ = link::delete_local_route(sock, LOOPBACK_INDEX, undo);
                    }
                }
                return Err(format!("{a}: {e}"));
            }
        }
    }
    remove_loopback_addresses(sock, addresses)
}

/// The kernel gives loopback index 1 in every namespace (it registers it
/// first).
const LOOPBACK_INDEX: u32 = 1;

/// Deletes the `/32` addresses on loopback among `addresses`: how earlier
/// versions made a namespace accept a VIP, replaced by a local route.
fn remove_loopback_addresses(
    sock: &mut Socket,
    addresses: &[std::net::Ipv4Addr],
) -> Result<(), String> {
    let held = link::addresses(sock).map_err(|e| format!("list addresses: {e}"))?;
    let wanted: HashSet<std::net::IpAddr> = addresses.iter().map(|&a| a.into()).collect();
    for a in held {
        if a.index != LOOPBACK_INDEX || a.net.prefix_len() != 32 || !wanted.contains(&a.net.addr())
        {
            continue;
        }
        match link::delete_address(sock, LOOPBACK_INDEX, a.net) {
            Err(e) if e.errno != libc::EADDRNOTAVAIL => {
                return Err(format!("remove the old address {} from lo: {e}", a.net))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Configures a veth peer inside its namespace, through a socket opened
/// there.
fn configure_peer(ns: &File, peer: &str, link: &LinkConfig<'_>) -> Result<(), String> {
    let mut sock =
        netns::route_socket_in(ns.as_fd()).map_err(|e| format!("socket in namespace: {e}"))?;
    configure_link(&mut sock, peer, link)
}

fn describe_route(r: &RouteSpec) -> String {
    match r.via {
        Some(via) => format!("{} via {via}", r.destination),
        None => format!("{} on-link", r.destination),
    }
}

/// Rejects routes whose gateway family differs from the destination's
/// before anything is created.
fn check_routes(routes: &[RouteSpec]) -> Result<(), String> {
    for r in routes {
        if let Some(via) = r.via {
            if via.is_ipv4() != r.destination.addr().is_ipv4() {
                return Err(format!(
                    "route {}: gateway of another address family",
                    describe_route(r)
                ));
            }
        }
    }
    Ok(())
}

/// Adds (replacing) or deletes `routes` via `link` inside the namespace at
/// `netns`, through a socket opened there. A failed add removes the routes
/// it added; a delete skips routes that are not there (also when the
/// namespace or the link is gone).
fn change_routes(
    add: bool,
    netns: &Path,
    link: &str,
    routes: &[RouteSpec],
) -> Result<(), DataplaneError> {
    let what = if add { "add routes" } else { "delete routes" };
    let fail =
        |m: String| DataplaneError::new(format!("{what} via {link} in {}", netns.display()), m);
    check_routes(routes).map_err(fail)?;
    // Without the namespace or the link, the routes are gone already.
    let ns = match File::open(netns) {
        Err(e) if !add && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other.map_err(|e| fail(format!("open namespace: {e}")))?,
    };
    let mut sock = netns::route_socket_in(ns.as_fd())
        .map_err(|e| fail(format!("socket in namespace: {e}")))?;
    let index = match link::index(&mut sock, link) {
        Ok(Some(i)) => i,
        Ok(None) if !add => return Ok(()),
        Ok(None) => return Err(fail(format!("{link} not found"))),
        Err(e) => return Err(fail(format!("look up {link}: {e}"))),
    };
    for (i, r) in routes.iter().enumerate() {
        if add {
            if let Err(e) = link::replace_route(&mut sock, index, r) {
                for done in &routes[..i] {
                    let _ = link::delete_route(&mut sock, index, done);
                }
                return Err(fail(format!("{}: {e}", describe_route(r))));
            }
        } else {
            match link::delete_route(&mut sock, index, r) {
                Err(e) if e.errno != libc::ESRCH => {
                    return Err(fail(format!("{}: {e}", describe_route(r))))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Sets a just-made uplink link (a VLAN sub-interface, a bond) up as a
/// bridge port: no addresses, no IPv6 link-local address. If that fails
/// the link is deleted again, so the op leaves nothing behind.
fn bring_up_uplink_port(sock: &mut Socket, name: &str) -> Result<(), String> {
    let port = LinkConfig {
        addresses: &[],
        routes: &[],
        ipv6: false,
    };
    configure_link(sock, name, &port).inspect_err(|_| undo_link(sock, name))
}

/// Rollback: deletes a link made by a failing op, logging if that fails.
fn undo_link(sock: &mut Socket, name: &str) {
    if let Err(e) = link::delete(sock, name) {
        log::warn!("rollback: delete link {name}: {e}");
    }
}

/// `/proc/sys` path of a sysctl given as `net.ipv4.ip_forward` or
/// `net/ipv4/ip_forward` (the slash form allows dots in interface names).
fn sysctl_path(key: &str) -> Result<String, String> {
    let rel = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    if rel.is_empty()
        || rel.starts_with('/')
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!("invalid sysctl key {key:?}"));
    }
    Ok(format!("/proc/sys/{rel}"))
}

/// The index of `link`, for adding something to it or deleting something
/// from it: a delete from a link that is gone has nothing left to do
/// (None); an add needs the link.
fn index_for_change(
    sock: &mut Socket,
    link: &str,
    add: bool,
    fail: &dyn Fn(String) -> DataplaneError,
) -> Result<Option<u32>, DataplaneError> {
    match link::index(sock, link).map_err(|e| fail(e.to_string()))? {
        Some(i) => Ok(Some(i)),
        None if !add => Ok(None),
        None => Err(fail("no such link".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostnet_nft::Family;
    use std::process::Command;

    /// Unmounts a test namespace on drop (panics included).
    struct Netns(tempfile::TempDir);

    impl Netns {
        fn path(&self) -> std::path::PathBuf {
            self.0.path().join("ns")
        }

        /// A fresh namespace, or None (after saying why) when this test
        /// cannot have one; with HOSTNET_REQUIRE_PRIV=1 that is a failure.
        fn new() -> Option<Self> {
            let dir = tempfile::Builder::new()
                .prefix("hostnet-dp-")
                .tempdir()
                .unwrap();
            let ns = Self(dir);
            match create_netns(&ns.path()) {
                Ok(()) => Some(ns),
                Err(e) if std::env::var("HOSTNET_REQUIRE_PRIV").as_deref() == Ok("1") => {
                    panic!("privileged test cannot run: {e}")
                }
                Err(e) => {
                    eprintln!("skipped: cannot create a network namespace: {e}");
                    None
                }
            }
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = delete_netns(&self.path());
        }
    }

    fn port(n: u16) -> SetElement {
        SetElement {
            family: Family::Inet,
            table: "hostnet",
            set: "ports",
            key: n.to_be_bytes().to_vec(),
            key_end: None,
            data: None,
            text: n.to_string(),
        }
    }

    /// Kernels before 6.3 lack DESTROYSETELEM; the DELETE path must skip
    /// missing elements by retrying without the one the kernel names.
    #[test]
    fn legacy_delete_skips_missing_elements() {
        let Some(ns) = Netns::new() else { return };
        run_in_netns(&ns.path(), || {
            let dp = LinuxDataplane::new().unwrap();
            dp.load_tables("table inet hostnet { set ports { type inet_service; }; }")
                .unwrap();
            dp.execute(&Op::AddElements(vec![port(1), port(2), port(3)]))
                .unwrap();
            dp.destroy_supported.store(false, Ordering::Relaxed);
            let batch = vec![port(7), port(1), port(8), port(3), port(9)];
            dp.execute(&Op::DeleteElements(batch)).unwrap();
            // 1 and 3 are gone, 2 stayed.
            let mut sock = dp.netfilter();
            for n in [1, 3] {
                let gone = nftables::apply(
                    &mut sock,
                    HookDesign::ChainPerDevice,
                    Change::Delete,
                    &[port(n)],
                    &[0],
                )
                .unwrap_err();
                assert_eq!((gone.error.errno, gone.element), (libc::ENOENT, Some(0)));
                let text = gone.describe(&[port(n)]);
                assert!(
                    text.starts_with(&format!("element {{ {n} }} in inet hostnet ports: ")),
                    "{text}"
                );
            }
            nftables::apply(
                &mut sock,
                HookDesign::ChainPerDevice,
                Change::Delete,
                &[port(2)],
                &[0],
            )
            .unwrap();
        })
        .unwrap();
    }

    /// A replace whose deletes name missing elements (a device gone with
    /// its link, an old kernel's strict DELETE) still applies the rest in
    /// one batch.
    #[test]
    fn replace_skips_missing_deletes_without_destroy() {
        let Some(ns) = Netns::new() else { return };
        run_in_netns(&ns.path(), || {
            let dp = LinuxDataplane::new().unwrap();
            dp.load_tables("table inet hostnet { set ports { type inet_service; }; }")
                .unwrap();
            dp.execute(&Op::AddElements(vec![port(1), port(2)]))
                .unwrap();
            dp.destroy_supported.store(false, Ordering::Relaxed);
            dp.execute(&Op::ReplaceElements {
                delete: vec![port(7), port(1), port(8)],
                add: vec![port(5)],
            })
            .unwrap();
            let mut sock = dp.netfilter();
            let gone = nftables::apply(
                &mut sock,
                HookDesign::ChainPerDevice,
                Change::Delete,
                &[port(1)],
                &[0],
            )
            .unwrap_err();
            assert_eq!(gone.error.errno, libc::ENOENT);
            nftables::apply(
                &mut sock,
                HookDesign::ChainPerDevice,
                Change::Delete,
                &[port(2), port(5)],
                &[0, 1],
            )
            .unwrap();
        })
        .unwrap();
    }

    #[test]
    fn sysctl_keys_map_to_proc_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").unwrap(),
            "/proc/sys/net/ipv4/ip_forward"
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.5/forwarding").unwrap(),
            "/proc/sys/net/ipv4/conf/eth0.5/forwarding"
        );
        assert!(sysctl_path("net/../../etc").is_err());
        assert!(sysctl_path("/etc/passwd").is_err());
    }

    /// The probe's answer is what the kernel does: with the device-list
    /// design, a chain hooked on a missing device is created and a device
    /// added to an existing chain's list; with a chain per device the
    /// kernel refuses one of the two. The probe leaves no table behind.
    #[test]
    fn the_hook_design_probe_says_what_the_kernel_does() {
        let Some(ns) = Netns::new() else { return };
        run_in_netns(&ns.path(), || {
            let dp = LinuxDataplane::new().unwrap();
            let design = nftables::probe_hook_design(&mut dp.netfilter());
            let listed = Command::new("nft").args(["list", "tables"]).output().unwrap();
            assert!(listed.status.success());
            assert_eq!(String::from_utf8_lossy(&listed.stdout), "", "the probe cleans up");
            let chain = |device: &str| {
                format!("add chain netdev t c {{ type filter hook ingress device \"{device}\" priority 0; }}\n")
            };
            let tried = dp
                .load_tables(&format!("add table netdev t\n{}", chain("hnt-missing0")))
                .and_then(|()| dp.load_tables(&chain("hnt-missing1")));
            match design {
                HookDesign::DeviceList => tried.unwrap(),
                HookDesign::ChainPerDevice => {
                    tried.unwrap_err();
                }
            }
            eprintln!("this kernel: {}", design.describe());
        })
        .unwrap();
    }
}
