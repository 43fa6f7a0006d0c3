//! VLAN isolation of Transparent and L2Bridge networks.
//!
//! A network with a VLAN binds an 802.1q sub-interface of its adapter to
//! its bridge instead of the adapter itself: the uplink carries the
//! network's frames tagged with the VLAN, its container ports are access
//! ports (untagged), and the host's own addresses stay on the adapter,
//! untagged. Several VLANs (and one untagged network) can share an adapter.

use hostnet_dataplane::{Adapter, Op};

use crate::names::VLAN_PREFIX;

/// Where a network's VLAN sub-interface hangs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vlan {
    /// The adapter (the trunk).
    pub parent: String,
    /// The adapter's index when the network was created: with the VLAN it
    /// names the sub-interface, so the name stays the same after restarts.
    pub parent_index: u32,
    /// The VLAN ID, 1-4094.
    pub id: u16,
}

/// The sub-interface's name: `hnq`, the VLAN ID in four digits, the
/// adapter's index in hex (VLAN 11 on ifindex 2: `hnq00112`). At most 15
/// bytes, and unique per adapter and VLAN, like the kernel's pairing.
pub fn link_name(parent_index: u32, id: u16) -> String {
    format!("{VLAN_PREFIX}{id:04}{parent_index:x}")
}

impl Vlan {
    /// The sub-interface as the network's uplink: the adapter's MAC and
    /// MTU, none of the host's addresses or routes (they stay on the
    /// adapter).
    pub fn uplink(&self, adapter: &Adapter) -> Adapter {
        Adapter {
            name: link_name(self.parent_index, self.id),
            index: 0,
            mac: adapter.mac,
            mtu: adapter.mtu,
            addresses: Vec::new(),
            routes: Vec::new(),
            master: None,
            up: true,
        }
    }

    /// Creates the sub-interface `uplink` (from [`Vlan::uplink`]).
    pub fn create(&self, uplink: &Adapter) -> Op {
        Op::CreateVlan {
            name: uplink.name.clone(),
            parent: self.parent.clone(),
            id: self.id,
            mtu: uplink.mtu,
            mac: uplink.mac,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz_and_differ_per_adapter_and_vlan() {
        assert_eq!(link_name(2, 11), "hnq00112");
        assert_eq!(link_name(u32::MAX, 4094), "hnq4094ffffffff");
        assert!(link_name(u32::MAX, 4094).len() <= 15);
        assert_ne!(link_name(2, 11), link_name(2, 12));
        assert_ne!(link_name(2, 11), link_name(3, 11));
        // The fixed-width VLAN keeps (index, VLAN) pairs apart.
        assert_ne!(link_name(0x12, 1), link_name(0x2, 11));
    }

    #[test]
    fn the_uplink_has_the_adapters_mac_and_mtu_and_none_of_its_addresses() {
        let adapter = crate::transparent::tests::adapter();
        let v = Vlan {
            parent: adapter.name.clone(),
            parent_index: adapter.index,
            id: 11,
        };
        let up = v.uplink(&adapter);
        assert_eq!((up.mac, up.mtu), (adapter.mac, adapter.mtu));
        assert!(up.addresses.is_empty() && up.routes.is_empty());
        assert_eq!(
            v.create(&up),
            Op::CreateVlan {
                name: "hnq00112".into(),
                parent: "eth0".into(),
                id: 11,
                mtu: 1500,
                mac: adapter.mac,
            }
        );
    }
}
