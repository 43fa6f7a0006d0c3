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

/// Bind `adapter` to the network's bridge without cutting the host off.
pub fn network_up(id: &Uuid, adapter: &Adapter) -> Vec<Op> {
    let bridge = names::bridge(id);
    vec![
        Op::CreateBridge {
            name: bridge.clone(),
            mtu: adapter.mtu,
            mac: Some(adapter.mac),
            addresses: Vec::new(),
            ipv6: true,
        },
        Op::SetMaster {
            link: adapter.name.clone(),
            master: Some(bridge.clone()),
            previous: None,
        },
        Op::MoveAddresses {
            from: adapter.name.clone(),
            to: bridge,
            addresses: adapter.addresses.clone(),
            routes: adapter.routes.clone(),
        },
    ]
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

/// Give the host's addresses and routes back to the adapter, release it,
/// and remove the bridge: the exact reverse of [`network_up`].
pub fn network_down(id: &Uuid, adapter: &Adapter) -> Vec<Op> {
    network_up(id, adapter)
        .iter()
        .rev()
        .filter_map(|op| op.undo())
        .collect()
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
        }
    }

    #[test]
    fn down_reverses_up() {
        let id = Uuid::from_u128(0x12345678_0000_4000_8000_000000000000);
        let adapter = adapter();
        let down = network_down(&id, &adapter);
        let [Op::MoveAddresses { from, to, .. }, Op::SetMaster { link, master, .. }, Op::DeleteLink { name }] =
            down.as_slice()
        else {
            panic!("{down:?}")
        };
        assert_eq!((from.as_str(), to.as_str()), ("hnbr12345678", "eth0"));
        assert_eq!((link.as_str(), master), ("eth0", &None));
        assert_eq!(name, "hnbr12345678");
    }
}
