//! Teams of adapters (Windows' SET teams): a Transparent or L2Bridge
//! network's uplink made of several host adapters.
//!
//! The members become ports of a bond, and the bond the bridge's uplink
//! port. The members' addresses and routes move to the bridge (as a single
//! adapter's do) *before* a member goes down to join the bond, since a link
//! going down loses its routes and IPv6 addresses. Giving the team back is
//! the exact reverse: members released and restored (MAC, MTU, up/down),
//! the bond deleted, then their addresses and routes moved back.

use hostnet_dataplane::{Adapter, BondMember, BondMode, Op};
use uuid::Uuid;

use crate::names;

/// The adapters a network teams, as they were before it took them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Team {
    pub mode: BondMode,
    /// In the order given; the first lends the bond its MAC.
    pub members: Vec<Adapter>,
}

impl Team {
    /// The bond as the network's uplink: the first member's MAC, the
    /// smallest MTU (every member takes the bond's), and every member's
    /// addresses and routes (the host's, which move to the bridge).
    pub fn uplink(&self, network: &Uuid) -> Adapter {
        Adapter {
            name: names::bond(network),
            index: 0,
            mac: self.members.first().map_or([0; 6], |m| m.mac),
            mtu: self.members.iter().map(|m| m.mtu).min().unwrap_or(1500),
            addresses: self
                .members
                .iter()
                .flat_map(|m| m.addresses.clone())
                .collect(),
            routes: self.members.iter().flat_map(|m| m.routes.clone()).collect(),
            master: None,
            up: true,
        }
    }

    /// The names of the members.
    pub fn member_names(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|m| m.name.as_str())
    }

    fn bond_members(&self) -> Vec<BondMember> {
        self.members
            .iter()
            .map(|m| BondMember {
                name: m.name.clone(),
                mac: m.mac,
                mtu: m.mtu,
                up: m.up,
            })
            .collect()
    }

    /// Moves the members' addresses to `bridge` (which must be up), then
    /// makes the bond `uplink` (from [`Team::uplink`]) of them. The caller
    /// enslaves the bond to the bridge.
    pub fn bind(&self, uplink: &Adapter, bridge: &str) -> Vec<Op> {
        let mut ops: Vec<Op> = self
            .members
            .iter()
            .filter(|m| !m.addresses.is_empty() || !m.routes.is_empty())
            .map(|m| Op::MoveAddresses {
                from: m.name.clone(),
                to: bridge.to_string(),
                addresses: m.addresses.clone(),
                routes: m.routes.clone(),
            })
            .collect();
        ops.push(Op::CreateBond {
            name: uplink.name.clone(),
            mode: self.mode,
            mtu: uplink.mtu,
            mac: uplink.mac,
        });
        ops.push(Op::EnslaveToBond {
            bond: uplink.name.clone(),
            members: self.bond_members(),
        });
        ops
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::transparent::tests::adapter;

    pub(crate) fn team() -> Team {
        let eth1 = Adapter {
            name: "eth1".into(),
            index: 3,
            mac: [2, 0, 0, 0, 0, 2],
            mtu: 9000,
            addresses: Vec::new(),
            routes: Vec::new(),
            master: None,
            up: false,
        };
        Team {
            mode: BondMode::ActiveBackup,
            members: vec![adapter(), eth1],
        }
    }

    #[test]
    fn the_bond_has_the_first_members_mac_and_the_smallest_mtu() {
        let id = Uuid::from_u128(0x12345678_0000_4000_8000_000000000000);
        let up = team().uplink(&id);
        assert_eq!(up.name, "hnbd12345678");
        assert_eq!((up.mac, up.mtu), (adapter().mac, 1500));
        assert_eq!(up.addresses, adapter().addresses);
    }

    #[test]
    fn addresses_move_before_any_member_joins() {
        let id = Uuid::from_u128(0x12345678_0000_4000_8000_000000000000);
        let t = team();
        let ops = t.bind(&t.uplink(&id), "hnbr12345678");
        let [Op::MoveAddresses { from, .. }, Op::CreateBond { name, .. }, Op::EnslaveToBond { bond, members }] =
            ops.as_slice()
        else {
            panic!("{ops:?}")
        };
        assert_eq!(from, "eth0", "eth1 has nothing to move");
        assert_eq!(
            (name.as_str(), bond.as_str()),
            ("hnbd12345678", "hnbd12345678")
        );
        assert_eq!(members.len(), 2);
        assert!(!members[1].up && members[1].mtu == 9000, "{members:?}");
    }
}
