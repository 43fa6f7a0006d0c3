//! Narrowing cuts connections. The ACL walk judges only a connection's
//! first packet (`ct state established,related` passes before it), so
//! after a change the endpoint's tracked connections that its new policy
//! blocks are deleted from conntrack; their next packets are new and
//! meet the walk (a TCP segment that is not a SYN is then dropped, see
//! `hostnet_nft::ruleset`). Each connection is judged as the walk saw its
//! first packet, by the pure evaluator, so widening deletes nothing.

use std::net::{IpAddr, Ipv4Addr};

use hostnet_dataplane::Flow;
use hostnet_policy::{evaluate, Direction, Packet, Port, Proto, Verdict};
use uuid::Uuid;

use crate::object::guid;
use crate::service::{Service, State};

/// The flows of `flows` that `port` (endpoint `addr`'s) blocks now.
pub(crate) fn blocked(flows: &[Flow], addr: Ipv4Addr, port: &Port) -> Vec<Flow> {
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
fn first_packet(f: &Flow, addr: Ipv4Addr) -> Option<(Direction, Packet)> {
    let proto = Proto(f.proto);
    let packet = |src: Ipv4Addr, sport, dst: Ipv4Addr, dport| Packet {
        proto,
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
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
        let ports: Vec<(Uuid, Ipv4Addr, Port)> = ids
            .iter()
            .filter_map(|id| {
                let ep = st.endpoints.get(id)?;
                let net = st.networks.get(&ep.network)?;
                match ep.plan.address.addr() {
                    IpAddr::V4(a) => Some((*id, a, crate::policy::endpoint_port(id, ep, net))),
                    IpAddr::V6(_) => None,
                }
            })
            .collect();
        if ports.is_empty() {
            return;
        }
        let addrs: Vec<Ipv4Addr> = ports.iter().map(|(_, a, _)| *a).collect();
        let flows = match self.dp.flows_of(&addrs) {
            Ok(f) => f,
            Err(e) => {
                log::warn!("listing connections to cut the ones policies block now: {e}");
                return;
            }
        };
        for (id, addr, port) in &ports {
            let cut = blocked(&flows, *addr, port);
            match self.dp.delete_flows(&cut) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostnet_dataplane::FlowTuple;
    use hostnet_policy::{
        lower, Action, Condition, Group, LayerName, Origin, PortKind, Rule, RuleId,
    };

    const EP: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);

    fn flow(o: (Ipv4Addr, u16, Ipv4Addr, u16), r: (Ipv4Addr, u16, Ipv4Addr, u16)) -> Flow {
        let t = |(src, sport, dst, dport): (Ipv4Addr, u16, Ipv4Addr, u16)| FlowTuple {
            src,
            dst,
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
        assert_eq!(blocked(&flows, EP, &port_open_to(80)), vec![direct]);
        assert_eq!(blocked(&flows, EP, &port_open_to(81)), vec![published]);
    }
}
