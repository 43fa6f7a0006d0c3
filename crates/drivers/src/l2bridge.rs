//! The L2Bridge and L2Tunnel drivers: containers on the physical network
//! behind the host's MAC.
//!
//! The network binds an adapter exactly as Transparent does (the bridge
//! takes the adapter as its uplink port and the host's addresses and MAC).
//! On top, the netdev table rewrites MACs at the uplink: every frame leaves
//! with the host's MAC (ARP sender included), and frames arriving for the
//! host's MAC are given back to the endpoint that owns the destination IP.
//! So the upstream switch only ever learns the host's MAC, and ARP for an
//! endpoint is answered with it. Same-subnet traffic on one host stays in
//! the bridge; cross-subnet traffic goes to the physical gateway.
//!
//! L2Tunnel hooks each endpoint port on one more chain: every unicast frame goes
//! to the physical gateway's MAC, even for a neighbour on the same bridge,
//! so the gateway (and its policy) sees all traffic and hairpins it back.
//!
//! `OutBoundNAT` endpoints detour through the host: their frames, except
//! towards the exception prefixes, are handed to the host's stack, which
//! routes and masquerades them to its own address.

use std::net::IpAddr;

use hostnet_dataplane::{Adapter, Op};
use hostnet_nft::{self as nft, onat, SetElement};
use uuid::Uuid;

pub use crate::bridge::{Endpoint, Network, L2};
use crate::team::Team;
use crate::transparent;
use crate::vlan::Vlan;

/// Bind `uplink` (as Transparent does: the adapter, or a VLAN's
/// sub-interface), then rewrite MACs at it. The host forwards, for
/// outbound NAT and for host-endpoint gateways.
pub fn network_up(
    id: &Uuid,
    uplink: &Adapter,
    vlan: Option<&Vlan>,
    team: Option<&Team>,
) -> Vec<Op> {
    let mut ops = vec![Op::Sysctl {
        key: "net/ipv4/ip_forward".into(),
        value: "1".into(),
    }];
    ops.extend(transparent::network_up(id, uplink, vlan, team));
    ops.push(Op::AddElements(nft::l2::uplink(&uplink.name, uplink.mac)));
    ops
}

/// The exact reverse of [`network_up`] (forwarding stays on).
pub fn network_down(
    id: &Uuid,
    uplink: &Adapter,
    vlan: Option<&Vlan>,
    team: Option<&Team>,
) -> Vec<Op> {
    Op::reverse_plan(&network_up(id, uplink, vlan, team))
}

/// The elements an endpoint owns from its creation: its entry behind the
/// uplink, and its outbound NAT.
pub fn endpoint_elements(l2: &L2, ep: &Endpoint) -> Vec<SetElement> {
    let IpAddr::V4(addr) = ep.address.addr() else {
        return Vec::new();
    };
    let mut els = vec![nft::l2::endpoint(&l2.uplink, addr, ep.mac)];
    if let Some(policies) = &ep.outbound_nat {
        els.extend(nft::onat::elements(
            addr,
            &onat::keep_the_rest(policies),
            true,
        ));
    }
    els
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::tests::endpoint;
    use crate::bridge::{endpoint_attach, Plug};
    use crate::transparent::tests::adapter;
    use std::path::Path;

    #[test]
    fn uplink_rewrite_goes_last_and_comes_off_first() {
        let id = Uuid::from_u128(0x12345678_0000_4000_8000_000000000000);
        let up = network_up(&id, &adapter(), None, None);
        assert!(matches!(up.last(), Some(Op::AddElements(e)) if e.len() == 3));
        let down = network_down(&id, &adapter(), None, None);
        assert!(matches!(down.first(), Some(Op::DeleteElements(e)) if e.len() == 3));
        assert!(matches!(down.last(), Some(Op::DeleteLink { .. })));
    }

    #[test]
    fn a_vlan_networks_rewrite_sits_on_its_sub_interface() {
        let id = Uuid::from_u128(0x12345678_0000_4000_8000_000000000000);
        let vlan = Vlan {
            parent: "eth0".into(),
            parent_index: 2,
            id: 12,
        };
        let uplink = vlan.uplink(&adapter());
        let up = network_up(&id, &uplink, Some(&vlan), None);
        assert_eq!(
            up.last(),
            Some(&Op::AddElements(nft::l2::uplink("hnq00122", adapter().mac)))
        );
        assert!(up
            .iter()
            .any(|op| matches!(op, Op::CreateVlan { id: 12, .. })));
        assert!(!up.iter().any(|op| matches!(op, Op::MoveAddresses { .. })));
    }

    #[test]
    fn tunnel_ports_detour_to_the_gateway() {
        let l2 = L2 {
            uplink: "eth0".into(),
            host_mac: [2, 0, 0, 0, 0, 1],
            gateway_mac: Some([2, 0, 0, 0, 0, 0xfe]),
        };
        let net = Network {
            id: Uuid::from_u128(1),
            gateways: Vec::new(),
            mtu: 1500,
            l2: Some(l2),
            nat: false,
            bound_mac: Some([2, 0, 0, 0, 0, 1]),
            subnet_bridges: vec![],
            port_netns: None,
        };
        let plug = Plug {
            netns: Path::new("/x"),
            ifname: "eth0",
            nic_index: 0,
            host: false,
        };
        let ops = endpoint_attach(&net, &endpoint(), plug);
        let Op::AddElements(els) = &ops[1] else {
            panic!("{ops:?}")
        };
        assert!(els.iter().any(|e| e.set == nft::TUNNEL_PORTS));
    }

    #[test]
    fn outbound_nat_endpoints_own_their_exceptions() {
        let l2 = L2 {
            uplink: "eth0".into(),
            host_mac: [2, 0, 0, 0, 0, 1],
            gateway_mac: None,
        };
        let mut ep = endpoint();
        ep.outbound_nat = Some(vec![nft::onat::OnatPolicy {
            exceptions: vec!["10.0.0.0/8".parse().unwrap()],
            ..Default::default()
        }]);
        let els = endpoint_elements(&l2, &ep);
        assert_eq!(els.len(), 4, "endpoint, source, exception in each table");
    }
}
