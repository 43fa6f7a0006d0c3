//! The Transparent driver: containers on the physical network.
//!
//! The network's bridge takes over a host adapter: the adapter becomes a
//! port of the bridge, and the host's own addresses and routes move from the
//! adapter onto the bridge (which also takes the adapter's MAC), so the host
//! stays reachable exactly as before. Endpoints are bridge ports with their
//! own MACs and addresses of the physical subnets; their default route is
//! the physical gateway, which routes between subnets. Nothing is NATed.
//! Deleting the network moves everything back.

use std::net::IpAddr;

use hostnet_dataplane::{Adapter, Op};
use hostnet_nft::{self as nft, SetElement};
use uuid::Uuid;

pub use crate::bridge::Endpoint;
use crate::names;
use crate::team::Team;
use crate::vlan::Vlan;

/// Bind `uplink` to the network's bridge without cutting the host off.
/// Without a VLAN the uplink is the adapter, whose addresses and routes
/// move to the bridge; with one it is the VLAN's sub-interface
/// ([`Vlan::uplink`]), made here, and the host keeps its addresses on the
/// adapter; with a team it is the team's bond ([`Team::uplink`]), made
/// here of the members, whose addresses move to the bridge.
pub fn network_up(
    id: &Uuid,
    uplink: &Adapter,
    vlan: Option<&Vlan>,
    team: Option<&Team>,
) -> Vec<Op> {
    let bridge = names::bridge(id);
    let mut ops = vec![Op::CreateBridge {
        name: bridge.clone(),
        mtu: uplink.mtu,
        mac: Some(uplink.mac),
        addresses: Vec::new(),
        ipv6: true,
    }];
    ops.extend(vlan.map(|v| v.create(uplink)));
    if let Some(t) = team {
        ops.extend(t.bind(uplink, &bridge));
    }
    ops.push(Op::SetMaster {
        link: uplink.name.clone(),
        master: Some(bridge.clone()),
        previous: None,
    });
    if vlan.is_none() && team.is_none() {
        ops.push(Op::MoveAddresses {
            from: uplink.name.clone(),
            to: bridge,
            addresses: uplink.addresses.clone(),
            routes: uplink.routes.clone(),
        });
    }
    ops
}

/// The elements an endpoint owns from its creation: only its
/// `OutBoundNAT`, whose frames detour through the host (the bridge's MAC
/// is the host's) to be routed and NATed there, as on L2Bridge.
pub fn endpoint_elements(ep: &Endpoint) -> Vec<SetElement> {
    match (ep.address.addr(), &ep.outbound_nat) {
        (IpAddr::V4(addr), Some(p)) => {
            nft::onat::elements(addr, &nft::onat::keep_the_rest(p), true)
        }
        _ => Vec::new(),
    }
}

/// Give the host's addresses and routes back to the adapter, release it
/// (or delete the VLAN sub-interface), and remove the bridge: the exact
/// reverse of [`network_up`].
pub fn network_down(
    id: &Uuid,
    uplink: &Adapter,
    vlan: Option<&Vlan>,
    team: Option<&Team>,
) -> Vec<Op> {
    Op::reverse_plan(&network_up(id, uplink, vlan, team))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The host's `eth0` on 192.0.2.0/24, for the binding drivers' tests.
    pub(crate) fn adapter() -> Adapter {
        Adapter {
            name: "eth0".into(),
            index: 2,
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
            addresses: vec!["192.0.2.11/24".parse().unwrap()],
            routes: Vec::new(),
            master: None,
            up: true,
        }
    }

    #[test]
    fn down_reverses_up() {
        let id = Uuid::from_u128(0x12345678_0000_4000_8000_000000000000);
        let adapter = adapter();
        let down = network_down(&id, &adapter, None, None);
        let [Op::MoveAddresses { from, to, .. }, Op::SetMaster { link, master, .. }, Op::DeleteLink { name }] =
            down.as_slice()
        else {
            panic!("{down:?}")
        };
        assert_eq!((from.as_str(), to.as_str()), ("hnbr12345678", "eth0"));
        assert_eq!((link.as_str(), master), ("eth0", &None));
        assert_eq!(name, "hnbr12345678");
    }

    #[test]
    fn a_vlan_network_binds_a_sub_interface_and_moves_nothing_of_the_hosts() {
        let id = Uuid::from_u128(0x12345678_0000_4000_8000_000000000000);
        let adapter = adapter();
        let vlan = Vlan {
            parent: "eth0".into(),
            parent_index: 2,
            id: 11,
        };
        let uplink = vlan.uplink(&adapter);
        let up = network_up(&id, &uplink, Some(&vlan), None);
        let [Op::CreateBridge { mac, mtu, .. }, Op::CreateVlan {
            name,
            parent,
            id: vid,
            ..
        }, Op::SetMaster { link, master, .. }] = up.as_slice()
        else {
            panic!("{up:?}")
        };
        assert_eq!((*mac, *mtu), (Some(adapter.mac), adapter.mtu));
        assert_eq!(
            (name.as_str(), parent.as_str(), *vid),
            ("hnq00112", "eth0", 11)
        );
        assert_eq!(
            (link.as_str(), master.as_deref()),
            ("hnq00112", Some("hnbr12345678"))
        );
        let down = network_down(&id, &uplink, Some(&vlan), None);
        let [Op::SetMaster { master: None, .. }, Op::DeleteLink { name: sub }, Op::DeleteLink { name: br }] =
            down.as_slice()
        else {
            panic!("{down:?}")
        };
        assert_eq!((sub.as_str(), br.as_str()), ("hnq00112", "hnbr12345678"));
    }

    #[test]
    fn a_teams_members_are_given_back_before_their_addresses() {
        let id = Uuid::from_u128(0x12345678_0000_4000_8000_000000000000);
        let team = crate::team::tests::team();
        let uplink = team.uplink(&id);
        let down = network_down(&id, &uplink, None, Some(&team));
        let [Op::SetMaster {
            link, master: None, ..
        }, Op::ReleaseFromBond { members, .. }, Op::DeleteLink { name: bond }, Op::MoveAddresses { from, to, .. }, Op::DeleteLink { name: br }] =
            down.as_slice()
        else {
            panic!("{down:?}")
        };
        assert_eq!(link, "hnbd12345678");
        assert_eq!(members.len(), 2);
        assert_eq!((from.as_str(), to.as_str()), ("hnbr12345678", "eth0"));
        assert_eq!(
            (bond.as_str(), br.as_str()),
            ("hnbd12345678", "hnbr12345678")
        );
    }
}
