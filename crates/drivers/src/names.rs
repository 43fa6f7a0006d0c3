//! Kernel names of hostnet's objects.
//!
//! Every link hostnet creates starts with [`LINK_PREFIX`], so reconciliation
//! can tell its own links from everyone else's, and a sweep can find
//! leftovers. Names are derived from object IDs, so they survive restarts.

use uuid::Uuid;

/// Prefix of every link hostnet owns.
pub const LINK_PREFIX: &str = "hn";
/// Prefix of network bridges: `hnbr` + 8 hex digits of the network ID.
pub const BRIDGE_PREFIX: &str = "hnbr";
/// Prefix of teams' bonds: `hnbd` + 8 hex digits of the network ID.
pub const BOND_PREFIX: &str = "hnbd";
/// Prefix of VLAN sub-interfaces of adapters ([`crate::vlan::link_name`]).
pub const VLAN_PREFIX: &str = "hnq";
/// Prefix of endpoints' host-side veths: `hnve` + 10 hex digits of the endpoint ID.
pub const VETH_PREFIX: &str = "hnve";

/// The bridge of a network.
pub fn bridge(network: &Uuid) -> String {
    format!("{BRIDGE_PREFIX}{}", &hex(network)[..8])
}

/// The bond of a network that teams adapters.
pub fn bond(network: &Uuid) -> String {
    format!("{BOND_PREFIX}{}", &hex(network)[..8])
}

/// Bytes of the endpoint ID spelled (in hex) in its host veth's name.
const VETH_ID_BYTES: usize = 5;

/// The host end of an endpoint's veth pair.
pub fn host_veth(endpoint: &Uuid) -> String {
    format!("{VETH_PREFIX}{}", &hex(endpoint)[..2 * VETH_ID_BYTES])
}

/// The IDs whose endpoints' host veths have `endpoint`'s name: those that
/// share the leading ID bytes the name is made of. IDs order by their
/// bytes, so this is one range of an ID-ordered map, and a create looks
/// for a clash without going over every endpoint.
pub fn same_host_veth(endpoint: &Uuid) -> std::ops::RangeInclusive<Uuid> {
    let mut first = *endpoint.as_bytes();
    first[VETH_ID_BYTES..].fill(0);
    let mut last = first;
    last[VETH_ID_BYTES..].fill(0xff);
    Uuid::from_bytes(first)..=Uuid::from_bytes(last)
}

/// The MAC of a network's bridge when no adapter gives it one: locally
/// administered, from the network ID, so it is the same after a rebuild.
/// Set explicitly because a bridge left to choose takes its lowest port's
/// MAC, and the gateway's MAC would change as endpoints come and go
/// (containers' ARP entries then point at a MAC no port answers to).
pub fn bridge_mac(network: &Uuid) -> [u8; 6] {
    let b = network.as_bytes();
    [0x02, b[11], b[12], b[13], b[14], b[15]]
}

fn hex(id: &Uuid) -> String {
    id.simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz() {
        let id = Uuid::new_v4();
        assert!(bridge(&id).len() <= 15);
        assert!(bond(&id).len() <= 15 && bond(&id).starts_with(LINK_PREFIX));
        assert!(host_veth(&id).len() <= 15);
        assert!(bridge(&id).starts_with(LINK_PREFIX));
    }

    #[test]
    fn veth_name_clashes_are_one_range_of_ids() {
        let a = Uuid::new_v4();
        let clashes = same_host_veth(&a);
        assert!(clashes.contains(&a));
        let mut bytes = *a.as_bytes();
        bytes[15] ^= 1;
        let near = Uuid::from_bytes(bytes);
        assert!(clashes.contains(&near) && host_veth(&a) == host_veth(&near));
        bytes[4] ^= 1;
        let far = Uuid::from_bytes(bytes);
        assert!(!clashes.contains(&far) && host_veth(&a) != host_veth(&far));
        for edge in [*clashes.start(), *clashes.end()] {
            assert_eq!(host_veth(&edge), host_veth(&a));
        }
    }

    #[test]
    fn bridge_macs_are_stable_local_unicast() {
        let id = Uuid::new_v4();
        let mac = bridge_mac(&id);
        assert_eq!(mac, bridge_mac(&id));
        assert_eq!(mac[0] & 0x03, 0x02, "locally administered, unicast");
    }
}
