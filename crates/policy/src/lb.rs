//! Load balancers in the `lb` layer: a client port's view of the
//! frontends it reaches (docs/load-balancers.md).
//!
//! Each frontend is one rule of its LB's group: outbound to `vip` on
//! `proto`/`port`, [`Action::Balance`] to the backends. The kernel picks a
//! backend at random per connection, or by a hash of the source address
//! with a per-boot seed, so no model can say which backend a given
//! connection gets; the evaluator rewrites to a *representative*
//! ([`representative`]): a fixed hash of the packet, so traces are stable,
//! and the trace line says "one of N".

use std::net::IpAddr;

use ipnet::IpNet;

use crate::condition::Condition;
use crate::packet::{Direction, Packet, Proto};
use crate::port::Group;
use crate::rule::{Action, Origin, Rule, RuleId};

/// One frontend a client reaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontend {
    pub vip: IpAddr,
    pub proto: u8,
    pub port: u16,
    pub target_port: u16,
    pub backends: Vec<IpAddr>,
    /// Source-address affinity (DistributionType 1 or 2).
    pub affinity: bool,
    /// The source connections to the backends get (SourceVIP).
    pub source_vip: Option<IpAddr>,
    /// The backends receive the VIP as destination (EnablePreserveDip).
    pub preserve_dip: bool,
}

/// The group of load balancer `object` (its ID) in a client's `lb` layer.
pub fn group(object: &str, frontends: &[Frontend]) -> Group {
    let origin = Origin {
        policy: "LoadBalancer".into(),
        object: object.into(),
        hcn_id: None,
    };
    let rules = frontends
        .iter()
        .map(|f| Rule {
            id: RuleId(format!("lb:{}:{}:{}", f.vip, f.proto, f.port)),
            direction: Direction::Out,
            priority: 0,
            condition: Condition::any()
                .protocols([Proto(f.proto)])
                .remote([IpNet::from(f.vip)])
                .remote_ports([(f.port, f.port)]),
            action: Action::Balance {
                backends: f.backends.clone(),
                port: f.target_port,
                affinity: f.affinity,
                source: f.source_vip,
                preserve_dip: f.preserve_dip,
            },
            origin: origin.clone(),
        })
        .collect();
    Group::new(format!("lb/{object}"), 0, rules)
}

/// The backend the evaluator shows for `packet`: FNV-1a of the source
/// address (and port, without affinity), modulo the number of backends.
/// `backends` must not be empty.
pub fn representative(packet: &Packet, backends: &[IpAddr], affinity: bool) -> IpAddr {
    let mut bytes = match packet.src {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    if !affinity {
        bytes.extend_from_slice(&packet.src_port.unwrap_or(0).to_be_bytes());
    }
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    backends[(hash % backends.len() as u64) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::{LayerName, Port, PortKind};
    use crate::{evaluate, Verdict};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// TCP 10.96.0.10:80 to `backends` at 8080.
    fn frontend(backends: &[&str], affinity: bool) -> Frontend {
        Frontend {
            vip: ip("10.96.0.10"),
            proto: 6,
            port: 80,
            target_port: 8080,
            backends: backends.iter().map(|b| ip(b)).collect(),
            affinity,
            source_vip: None,
            preserve_dip: false,
        }
    }

    /// A client port whose `lb` layer has LB1 with frontend `f`.
    fn port_of(f: Frontend) -> Port {
        let mut port = Port::new("client", PortKind::Endpoint);
        port.set_group(LayerName::Lb, group("LB1", &[f]));
        port
    }

    fn port_with(backends: &[&str], affinity: bool) -> Port {
        port_of(frontend(backends, affinity))
    }

    #[test]
    fn a_vip_is_rewritten_to_a_backend_and_shown() {
        let port = port_with(&["10.88.0.2", "10.88.0.3"], false);
        let p = Packet::new(Proto(6), ip("10.88.0.9"), 40000, ip("10.96.0.10"), 80);
        let e = evaluate(&port, p, Direction::Out, None);
        let Verdict::Allow { packet } = e.verdict else {
            panic!("{:?}", e.verdict)
        };
        assert!([ip("10.88.0.2"), ip("10.88.0.3")].contains(&packet.dst));
        assert_eq!(packet.dst_port, Some(8080));
        let text = e.trace.render(&Verdict::Allow { packet }, false);
        assert!(
            text.contains("  lb          group lb/LB1 rule lb:10.96.0.10:6:80 prio 0 balance to one of 2 backends port 8080 per connection (LoadBalancer) => "),
            "{text}"
        );
        // Another port, or protocol: not the frontend.
        let other = Packet::new(Proto(17), ip("10.88.0.9"), 40000, ip("10.96.0.10"), 80);
        let e = evaluate(&port, other, Direction::Out, None);
        assert_eq!(e.verdict, Verdict::Allow { packet: other });
    }

    #[test]
    fn a_source_vip_becomes_the_source_and_is_shown() {
        let port = port_of(Frontend {
            source_vip: Some(ip("10.96.0.100")),
            ..frontend(&["10.88.0.2"], false)
        });
        let p = Packet::new(Proto(6), ip("10.88.0.9"), 40000, ip("10.96.0.10"), 80);
        let e = evaluate(&port, p, Direction::Out, None);
        let Verdict::Allow { packet } = e.verdict else {
            panic!("{:?}", e.verdict)
        };
        assert_eq!(
            (packet.src, packet.dst),
            (ip("10.96.0.100"), ip("10.88.0.2"))
        );
        let text = e.trace.render(&Verdict::Allow { packet }, false);
        assert!(
            text.contains("per connection source 10.96.0.100 (LoadBalancer)"),
            "{text}"
        );
    }

    #[test]
    fn preserve_dip_is_shown_and_routes_to_the_backend() {
        let port = port_of(Frontend {
            preserve_dip: true,
            ..frontend(&["10.88.0.2"], false)
        });
        let p = Packet::new(Proto(6), ip("10.88.0.9"), 40000, ip("10.96.0.10"), 80);
        let e = evaluate(&port, p, Direction::Out, None);
        let Verdict::Allow { packet } = e.verdict else {
            panic!("{:?}", e.verdict)
        };
        // The host routes to the backend; its port restores the VIP.
        assert_eq!(packet.dst, ip("10.88.0.2"));
        let text = e.trace.render(&Verdict::Allow { packet }, false);
        assert!(
            text.contains("per connection delivered to the VIP (preserve DIP) (LoadBalancer)"),
            "{text}"
        );
    }

    #[test]
    fn affinity_ignores_the_source_port_and_no_backend_blocks() {
        let backends: Vec<IpAddr> = (2..9).map(|i| ip(&format!("10.88.0.{i}"))).collect();
        let at = |sport| Packet::new(Proto(6), ip("10.1.2.3"), sport, ip("10.96.0.10"), 80);
        let first = representative(&at(1000), &backends, true);
        assert!((1001..1100).all(|s| representative(&at(s), &backends, true) == first));
        let spread: std::collections::BTreeSet<IpAddr> = (1000..1100)
            .map(|s| representative(&at(s), &backends, false))
            .collect();
        assert!(spread.len() > 3, "{spread:?}");
        let port = port_with(&[], false);
        let e = evaluate(&port, at(5), Direction::Out, None);
        assert!(matches!(
            e.verdict,
            Verdict::Block {
                layer: LayerName::Lb,
                ..
            }
        ));
    }
}
