//! Elements of the L2Bridge and L2Tunnel data path (netdev table); the
//! outbound NAT they detour for is [`crate::onat`].
//!
//! On the wire every frame of an L2 network carries the host adapter's MAC:
//! frames leaving through the uplink get it as source (ARP sender too), and
//! frames arriving for the host's MAC are given the endpoint's MAC back,
//! looked up by destination IP (ARP target for replies). Two detours start
//! at an endpoint's port: outbound NAT sends the frame to the host's own
//! MAC so the host routes and NATs it; L2Tunnel sends every unicast frame
//! to the physical gateway's MAC, so even a neighbour on the same bridge is
//! reached through the gateway (hairpin).
//!
//! Each of these hooks only the devices concerned (the uplink, the ports
//! that detour): which netdev chain a device is hooked on decides its
//! rules, so frames of other ports and of NAT networks pay nothing.

use std::net::Ipv4Addr;

use crate::ruleset::{
    device, ifname, EGRESS_TABLE, FROM_UPLINK, INGRESS_TABLE, L2_ENDPOINTS4, L2_PORT_GATEWAYS,
    L2_PORT_HOST_MACS, L2_PORT_TO_HOST, L2_UPLINK_MACS, OUTBOUND_NAT_PORTS, TO_UPLINK,
    TUNNEL_OUTBOUND_NAT_PORTS, TUNNEL_PORTS,
};
use crate::{Data, Family, NetdevHook, SetElement};

/// What happens to the frames an endpoint's port receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detour {
    /// Outbound NAT: frames not to an exception go to the host (`host_mac`).
    OutboundNat { host_mac: [u8; 6] },
    /// L2Tunnel: unicast frames go to the physical gateway.
    Tunnel { gateway_mac: [u8; 6] },
    /// Both: NATed frames to the host, the rest to the gateway.
    TunnelOutboundNat {
        host_mac: [u8; 6],
        gateway_mac: [u8; 6],
    },
}

/// The uplink of an L2 network: frames arriving on it for the host's MAC
/// are looked up, frames leaving through it take `host_mac`.
pub fn uplink(name: &str, host_mac: [u8; 6]) -> Vec<SetElement> {
    vec![
        device(FROM_UPLINK, NetdevHook::Ingress, name),
        device(TO_UPLINK, NetdevHook::Egress, name),
        mac_of(EGRESS_TABLE, L2_UPLINK_MACS, name, host_mac),
    ]
}

/// An endpoint behind `uplink`: frames for `addr` get `mac` back.
pub fn endpoint(uplink: &str, addr: Ipv4Addr, mac: [u8; 6]) -> SetElement {
    let mut key = ifname(uplink);
    key.extend_from_slice(&addr.octets());
    SetElement {
        family: Family::Netdev,
        table: INGRESS_TABLE,
        set: L2_ENDPOINTS4,
        key,
        key_end: None,
        data: Some(Data::Value(mac.to_vec())),
        text: format!("\"{uplink}\" . {addr} : {}", mac_text(mac)),
    }
}

/// The detour elements of an endpoint's port (host end of its veth).
pub fn port(name: &str, detour: Detour) -> Vec<SetElement> {
    match detour {
        Detour::OutboundNat { host_mac } => vec![
            device(OUTBOUND_NAT_PORTS, NetdevHook::Ingress, name),
            mac_of(INGRESS_TABLE, L2_PORT_HOST_MACS, name, host_mac),
            to_host(name, host_mac),
        ],
        Detour::Tunnel { gateway_mac } => vec![
            device(TUNNEL_PORTS, NetdevHook::Ingress, name),
            mac_of(INGRESS_TABLE, L2_PORT_GATEWAYS, name, gateway_mac),
        ],
        Detour::TunnelOutboundNat {
            host_mac,
            gateway_mac,
        } => vec![
            device(TUNNEL_OUTBOUND_NAT_PORTS, NetdevHook::Ingress, name),
            mac_of(INGRESS_TABLE, L2_PORT_HOST_MACS, name, host_mac),
            to_host(name, host_mac),
            mac_of(INGRESS_TABLE, L2_PORT_GATEWAYS, name, gateway_mac),
        ],
    }
}

/// `port . host_mac` in [`L2_PORT_TO_HOST`].
fn to_host(port: &str, host_mac: [u8; 6]) -> SetElement {
    let mut key = ifname(port);
    key.extend_from_slice(&host_mac);
    key.resize(24, 0); // each part of a concatenation is padded to 4 bytes
    SetElement {
        family: Family::Netdev,
        table: INGRESS_TABLE,
        set: L2_PORT_TO_HOST,
        key,
        key_end: None,
        data: None,
        text: format!("\"{port}\" . {}", mac_text(host_mac)),
    }
}

fn mac_of(table: &'static str, set: &'static str, port: &str, mac: [u8; 6]) -> SetElement {
    SetElement {
        family: Family::Netdev,
        table,
        set,
        key: ifname(port),
        key_end: None,
        data: Some(Data::Value(mac.to_vec())),
        text: format!("\"{port}\" : {}", mac_text(mac)),
    }
}

fn mac_text(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uplinks_hook_both_directions() {
        let els = uplink("eth0", [2, 0, 0, 0, 0, 1]);
        let hooks: Vec<_> = els.iter().map(|e| (e.set, e.device_hook())).collect();
        assert_eq!(
            hooks[..2],
            [
                (FROM_UPLINK, Some(NetdevHook::Ingress)),
                (TO_UPLINK, Some(NetdevHook::Egress))
            ]
        );
    }

    #[test]
    fn endpoint_key_is_uplink_then_address() {
        let e = endpoint("eth0", Ipv4Addr::new(192, 0, 2, 50), [2, 0x4e, 0, 0, 0, 1]);
        assert_eq!(e.key.len(), 20);
        assert_eq!(&e.key[16..], &[192, 0, 2, 50]);
        assert_eq!(e.text, "\"eth0\" . 192.0.2.50 : 02:4e:00:00:00:01");
    }

    #[test]
    fn tunnel_with_nat_has_both_macs() {
        let els = port(
            "hnve1",
            Detour::TunnelOutboundNat {
                host_mac: [2, 0, 0, 0, 0, 1],
                gateway_mac: [2, 0, 0, 0, 0, 2],
            },
        );
        assert_eq!(els[0].set, TUNNEL_OUTBOUND_NAT_PORTS);
        assert_eq!(els[0].device_hook(), Some(NetdevHook::Ingress));
        assert_eq!(els.len(), 4);
        assert_eq!(
            els[2].key.len(),
            24,
            "ifname (16) . ether_addr (6, padded to 8)"
        );
    }
}
