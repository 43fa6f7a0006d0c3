//! Narrowing cuts connections. The ACL walk judges only a connection's
//! first packet (`ct state established,related` passes before it), so
//! after a change the endpoint's tracked connections that its new policy
//! blocks are deleted from conntrack; their next packets are new and
//! meet the walk (a TCP segment that is not a SYN is then dropped, see
//! `hostnet_nft::ruleset`). Each connection is judged as the walk saw its
//! first packet, by the pure evaluator, so widening deletes nothing. A
//! dual-stack endpoint's IPv6 connections are judged and cut the same way.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use hostnet_dataplane::{Dataplane, Flow};
use hostnet_policy::{evaluate, Direction, Packet, Port, Proto, Verdict};
use uuid::Uuid;

use crate::object::guid;
use crate::service::{Service, State};

/// The flows of `flows` that `port` (of the endpoint with address `addr`)
/// blocks now.
pub(crate) fn blocked(flows: &[Flow], addr: IpAddr, port: &Port) -> Vec<Flow> {
    flows
        .iter()
        .filter(|f| {
            first_packet(f, addr).is_some_and(|(dir, packet)| {
                matches!(
                    evaluate(port, packet, dir, None).verdict,
                    Verdict::Block { .. }
                )
            })
        })
        .cloned()
        .collect()
}

/// A connection's first packet as the endpoint's walk met it: going out
/// (before any source NAT), or coming in after a published port's DNAT
/// (the endpoint's port is the reply's source port).
fn first_packet(f: &Flow, addr: IpAddr) -> Option<(Direction, Packet)> {
    let proto = Proto(f.proto);
    let packet = |src: IpAddr, sport, dst: IpAddr, dport| Packet {
        proto,
        src,
        dst,
        src_port: sport,
        dst_port: dport,
    };
    let (o, r) = (&f.original, &f.reply);
    if o.src == addr {
        Some((Direction::Out, packet(o.src, o.sport, o.dst, o.dport)))
    } else if r.src == addr {
        Some((Direction::In, packet(o.src, o.sport, addr, r.sport)))
    } else {
        None
    }
}

impl Service {
    /// Cuts the connections of endpoints `ids` that their policies block
    /// now, from one conntrack dump. The policy change is done by then; a
    /// failure here is logged.
    pub(crate) fn cut_blocked_flows(&self, st: &State, ids: &[Uuid]) {
        // Each namespace's conntrack apart: the daemon's, and each overlay
        // router's (whose addresses may repeat another network's).
        let mut by_netns: BTreeMap<Option<PathBuf>, Vec<Uuid>> = BTreeMap::new();
        for id in ids {
            if let Some(net) = st
                .endpoints
                .get(id)
                .and_then(|e| st.networks.get(&e.network))
            {
                by_netns
                    .entry(crate::overlay_acl::acl_netns(net))
                    .or_default()
                    .push(*id);
            }
        }
        for (netns, ids) in by_netns {
            let there;
            let dp = match &netns {
                None => self.dp.as_ref(),
                Some(netns) => match self.dp.in_netns(netns) {
                    Ok(d) => {
                        there = d;
                        there.as_ref()
                    }
                    Err(e) => {
                        log::warn!("cutting the connections policies block now: {e}");
                        continue;
                    }
                },
            };
            cut_in(dp, st, &ids);
        }
    }
}

/// [`Service::cut_blocked_flows`] in one namespace, through its `dp`.
fn cut_in(dp: &dyn Dataplane, st: &State, ids: &[Uuid]) {
    let ports: Vec<(Uuid, Vec<IpAddr>, Port)> = ids
        .iter()
        .filter_map(|id| {
            let ep = st.endpoints.get(id)?;
            let net = st.networks.get(&ep.network)?;
            let addrs = crate::policy::acl_addresses(ep);
            (!addrs.is_empty()).then(|| (*id, addrs, crate::policy::endpoint_port(id, ep, net)))
        })
        .collect();
    if ports.is_empty() {
        return;
    }
    let addrs: Vec<IpAddr> = ports.iter().flat_map(|(_, a, _)| a.clone()).collect();
    let flows = match dp.flows_of(&addrs) {
        Ok(f) => f,
        Err(e) => {
            log::warn!("listing connections to cut the ones policies block now: {e}");
            return;
        }
    };
    for (id, own, port) in &ports {
        let cut: Vec<Flow> = own.iter().flat_map(|a| blocked(&flows, *a, port)).collect();
        match dp.delete_flows(&cut) {
            Ok(()) if cut.is_empty() => {}
            Ok(()) => log::info!(
                "endpoint {}: cut {} connection(s) its policy blocks now",
                guid(id),
                cut.len()
            ),
            Err(e) => log::warn!(
                "endpoint {}: cutting the connections its policy blocks now: {e}",
                guid(id)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostnet_dataplane::FlowTuple;
    use hostnet_policy::{
        lower, Action, Condition, Group, LayerName, Origin, PortKind, Rule, RuleId,
    };
    use std::net::Ipv4Addr;

    const EP: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);

    fn flow(o: (Ipv4Addr, u16, Ipv4Addr, u16), r: (Ipv4Addr, u16, Ipv4Addr, u16)) -> Flow {
        let t = |(src, sport, dst, dport): (Ipv4Addr, u16, Ipv4Addr, u16)| FlowTuple {
            src: src.into(),
            dst: dst.into(),
            sport: Some(sport),
            dport: Some(dport),
        };
        Flow {
            proto: 6,
            original: t(o),
            reply: t(r),
            zone: 0,
            key: Vec::new(),
        }
    }

    /// Inbound TCP to `open` only.
    fn port_open_to(open: u16) -> Port {
        let rule = |id: &str, prio, c: Condition, action| Rule {
            id: RuleId(id.into()),
            direction: Direction::In,
            priority: prio,
            condition: c,
            action,
            origin: Origin::default(),
        };
        let mut port = Port::new("ep", PortKind::Endpoint);
        port.set_group(LayerName::AclHost, lower::firewall_defaults());
        port.set_group(
            LayerName::AclSwitch,
            Group::new(
                "acl",
                0,
                vec![
                    rule(
                        "open",
                        100,
                        Condition::any().local_ports([(open, open)]),
                        Action::Allow,
                    ),
                    rule("deny", 1000, Condition::any(), Action::Block),
                ],
            ),
        );
        port
    }

    #[test]
    fn connections_are_judged_as_their_first_packet_met_the_walk() {
        let outside = Ipv4Addr::new(198, 51, 100, 1);
        let host = Ipv4Addr::new(198, 51, 100, 2);
        // In through a published port: 8080 on the host, 80 on the endpoint.
        let published = flow((outside, 40000, host, 8080), (EP, 80, outside, 40000));
        // In directly to 81.
        let direct = flow((outside, 40001, EP, 81), (EP, 81, outside, 40001));
        // Out, masqueraded: outbound is not restricted.
        let out = flow((EP, 50000, outside, 81), (outside, 81, host, 50000));
        let flows = [published.clone(), direct.clone(), out];
        let ep = IpAddr::V4(EP);
        assert_eq!(blocked(&flows, ep, &port_open_to(80)), vec![direct]);
        assert_eq!(blocked(&flows, ep, &port_open_to(81)), vec![published]);
    }

    #[test]
    fn ipv6_connections_are_judged_by_the_endpoints_ipv6_address() {
        let (ep6, peer6): (IpAddr, IpAddr) =
            ("fd00::2".parse().unwrap(), "fd00::3".parse().unwrap());
        let t = |src, sport, dst, dport| FlowTuple {
            src,
            dst,
            sport: Some(sport),
            dport: Some(dport),
        };
        let to81 = Flow {
            proto: 6,
            original: t(peer6, 40000, ep6, 81),
            reply: t(ep6, 81, peer6, 40000),
            zone: 0,
            key: Vec::new(),
        };
        let flows = [to81.clone()];
        assert_eq!(blocked(&flows, ep6, &port_open_to(80)), vec![to81]);
        assert!(blocked(&flows, ep6, &port_open_to(81)).is_empty());
        // Not the IPv4 address's connection.
        assert!(blocked(&flows, IpAddr::V4(EP), &port_open_to(80)).is_empty());
    }
}
