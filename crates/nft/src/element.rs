//! Set and map elements in the kernel's byte layout.

/// nftables address family of a table (the `nfgenmsg.nfgen_family` value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Inet,
    /// Hooks on single devices (ingress, egress): only the frames of the
    /// devices a chain is hooked on pay for it.
    Netdev,
    /// Only to remove the bridge table of older versions (see
    /// [`crate::tables`]); hostnet keeps no bridge-family state.
    Bridge,
}

impl Family {
    /// The `NFPROTO_*` number the kernel uses for this family.
    pub fn nfproto(self) -> u8 {
        match self {
            Family::Inet => 1,   // NFPROTO_INET
            Family::Netdev => 5, // NFPROTO_NETDEV
            Family::Bridge => 7, // NFPROTO_BRIDGE
        }
    }

    /// The family keyword in nft syntax.
    pub fn keyword(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Netdev => "netdev",
            Family::Bridge => "bridge",
        }
    }
}

/// One element of a named set or map in one of hostnet's tables.
///
/// `key` and `data` are in the kernel's layout: each component of a
/// concatenation is padded to a multiple of 4 bytes, numbers in network
/// byte order, interface names NUL-padded to 16 bytes. `text` is the same
/// element in nft syntax, for rebuilding the table with `nft -f` and for
/// error messages. `key_end` closes the range of an element of an
/// interval set (the last key the element covers).
///
/// A [`Data::Device`] element hooks a device on a netdev rules chain:
/// `set` names the chain and `key` the device. It puts the device on a base
/// chain whose one rule goes to `set` (its own, or one listing the rule
/// set's devices: [`crate::hook`]), in the same batch as set elements, so
/// hooking an endpoint's port is as incremental as adding a set element.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SetElement {
    pub family: Family,
    pub table: &'static str,
    pub set: &'static str,
    pub key: Vec<u8>,
    pub key_end: Option<Vec<u8>>,
    pub data: Option<Data>,
    pub text: String,
}

/// What a map element maps its key to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Data {
    /// A value in the kernel's layout (addresses, ports, MACs).
    Value(Vec<u8>),
    /// A verdict map's `goto CHAIN`.
    Goto(&'static str),
    /// A verdict map's `drop`.
    Drop,
    /// A verdict map's `return` (back to the chain that jumped here).
    Return,
    /// Not a set element: the key is a device hooked, at this hook, on the
    /// rules chain named by `set` (through a base chain, [`crate::hook`]).
    Device(NetdevHook),
    /// Not a set element: a regular chain named `set` holding these rules
    /// ([`crate::chain`]). Added, the chain is made (if missing) and its
    /// rules replaced; deleted, it goes with its rules.
    Rules(Vec<crate::chain::ChainRule>),
}

/// Where a netdev base chain sees a device's frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetdevHook {
    /// Frames the device receives, before the bridge it is a port of.
    Ingress,
    /// Frames the device sends: forwarded by its bridge, or sent by the host.
    Egress,
}

impl NetdevHook {
    /// `NF_NETDEV_INGRESS` / `NF_NETDEV_EGRESS`.
    pub fn number(self) -> u32 {
        match self {
            NetdevHook::Ingress => 0,
            NetdevHook::Egress => 1,
        }
    }

    pub fn keyword(self) -> &'static str {
        match self {
            NetdevHook::Ingress => "ingress",
            NetdevHook::Egress => "egress",
        }
    }
}

impl SetElement {
    /// The hook, if this is a device of a netdev base chain.
    pub fn device_hook(&self) -> Option<NetdevHook> {
        match self.data {
            Some(Data::Device(h)) => Some(h),
            _ => None,
        }
    }

    /// The rules, if this is a regular chain ([`Data::Rules`]).
    pub fn chain_rules(&self) -> Option<&[crate::chain::ChainRule]> {
        match &self.data {
            Some(Data::Rules(r)) => Some(r),
            _ => None,
        }
    }
}
