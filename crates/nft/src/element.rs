//! Set and map elements in the kernel's byte layout.

/// nftables address family of a table (the `nfgenmsg.nfgen_family` value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Inet,
    Bridge,
}

impl Family {
    /// The `NFPROTO_*` number the kernel uses for this family.
    pub fn nfproto(self) -> u8 {
        match self {
            Family::Inet => 1,   // NFPROTO_INET
            Family::Bridge => 7, // NFPROTO_BRIDGE
        }
    }

    /// The family keyword in nft syntax.
    pub fn keyword(self) -> &'static str {
        match self {
            Family::Inet => "inet",
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
}
