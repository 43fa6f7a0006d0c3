//! Choosing and checking a network's subnets: IPv4, plus on NAT networks
//! one IPv6 subnet (dual stack).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hostnet_model::domain::{NetworkKind, NetworkSpec};
use hostnet_model::{ErrorCode, HcnError};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A subnet with its gateway, fixed; both of one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub prefix: IpNet,
    pub gateway: IpAddr,
}

impl Resolved {
    /// The subnet and gateway if IPv4 (every subnet but a NAT network's
    /// IPv6 one).
    pub fn v4(&self) -> Option<(Ipv4Net, Ipv4Addr)> {
        match (self.prefix, self.gateway) {
            (IpNet::V4(p), IpAddr::V4(g)) => Some((p, g)),
            _ => None,
        }
    }
}

/// The subnets of a network: as given, or for a NAT network without any,
/// one picked from the private ranges that neither another network nor a
/// host route uses.
pub fn resolve(
    spec: &NetworkSpec,
    taken: &[IpNet],
    host_routes: &[IpNet],
) -> Result<Vec<Resolved>, HcnError> {
    if spec.subnets.is_empty() {
        return pick(taken, host_routes).map(|r| vec![r]);
    }
    check_families(spec)?;
    let mut out: Vec<Resolved> = Vec::new();
    for (i, s) in spec.subnets.iter().enumerate() {
        let prefix = s.prefix;
        check_room(prefix)?;
        let gateway = match s.gateway {
            Some(g) if g.is_ipv4() != prefix.addr().is_ipv4() => {
                return Err(HcnError::new(
                    ErrorCode::InvalidSubnet,
                    format!("gateway {g} of subnet {prefix} is of the other IP family: give a gateway inside the subnet"),
                ))
            }
            Some(g) => g,
            None => hostnet_ipam::default_gateway(prefix).ok_or_else(|| no_room(prefix))?,
        };
        if let Some(other) = taken
            .iter()
            .chain(out.iter().map(|r| &r.prefix))
            .find(|t| overlaps(t, &prefix))
        {
            return Err(HcnError::new(
                ErrorCode::InvalidSubnet,
                format!("Ipams subnet {i}: {prefix} overlaps subnet {other} of another network: choose a subnet that no network uses"),
            ));
        }
        out.push(Resolved { prefix, gateway });
    }
    Ok(out)
}

/// IPv6 subnets only on NAT networks, at most one, next to an IPv4 one
/// (endpoints there are dual-stack; IPv6-only endpoints are not supported).
fn check_families(spec: &NetworkSpec) -> Result<(), HcnError> {
    let v6: Vec<IpNet> = spec
        .subnets
        .iter()
        .map(|s| s.prefix)
        .filter(|p| p.addr().is_ipv6())
        .collect();
    let Some(first) = v6.first() else {
        return Ok(());
    };
    if spec.kind != NetworkKind::Nat {
        return Err(HcnError::new(
            ErrorCode::RequestUnsupported,
            format!(
                "subnet {first} is IPv6: {} networks are IPv4-only in this hostnet (dual stack is supported on NAT networks); give IPv4 subnets only",
                spec.kind
            ),
        ));
    }
    if v6.len() > 1 {
        return Err(HcnError::new(
            ErrorCode::InvalidSubnet,
            format!(
                "subnets {} are all IPv6: a dual-stack NAT network takes one IPv6 subnet (and its IPv4 ones); keep one",
                v6.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    if spec.subnets.len() == v6.len() {
        return Err(HcnError::new(
            ErrorCode::RequestUnsupported,
            format!("subnet {first} is IPv6 and the network has no IPv4 subnet: IPv6-only NAT networks are not supported yet; add an IPv4 subnet (dual stack)"),
        ));
    }
    Ok(())
}

/// A subnet must hold a gateway and endpoints (IPv4 /30 or shorter, IPv6
/// /126 or shorter) and, if IPv6, be unicast (not link-local, multicast,
/// loopback or IPv4-mapped).
fn check_room(prefix: IpNet) -> Result<(), HcnError> {
    match prefix {
        IpNet::V4(p) if p.prefix_len() > 30 => Err(no_room(prefix)),
        IpNet::V6(p) if p.prefix_len() > 126 => Err(no_room(prefix)),
        IpNet::V6(p) if !is_unicast_subnet(p) => Err(HcnError::new(
            ErrorCode::InvalidSubnet,
            format!("subnet {p} is not a unicast IPv6 range (link-local, multicast, loopback, IPv4-mapped or ::/0): give a unique local (fd00::/8) or global /64 such as fd00:1::/64"),
        )),
        _ => Ok(()),
    }
}

fn is_unicast_subnet(p: Ipv6Net) -> bool {
    let reserved: [Ipv6Net; 4] = [
        "fe80::/10".parse().expect("literal"),
        "ff00::/8".parse().expect("literal"),
        "::ffff:0:0/96".parse().expect("literal"),
        "::/96".parse().expect("literal"),
    ];
    p.prefix_len() > 0
        && p.network() != Ipv6Addr::LOCALHOST
        && !reserved
            .iter()
            .any(|r| r.contains(&p.network()) || p.contains(&r.network()))
}

fn no_room(prefix: IpNet) -> HcnError {
    let longest = if prefix.addr().is_ipv4() { 30 } else { 126 };
    HcnError::new(
        ErrorCode::InvalidSubnet,
        format!("subnet {prefix} has no room for a gateway and endpoints: use a prefix of /{longest} or shorter"),
    )
}

/// The first /16 of 172.17-31 (then /24s of 192.168) that overlaps nothing.
fn pick(taken: &[IpNet], host_routes: &[IpNet]) -> Result<Resolved, HcnError> {
    let candidates = (17..=31u8)
        .map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).expect("valid"))
        .chain(
            (0..=255u8).map(|c| Ipv4Net::new(Ipv4Addr::new(192, 168, c, 0), 24).expect("valid")),
        );
    for prefix in candidates {
        let net = IpNet::V4(prefix);
        let busy = taken.iter().any(|t| overlaps(t, &net))
            || host_routes
                .iter()
                .filter(|r| r.prefix_len() > 0)
                .any(|r| overlaps(r, &net));
        if !busy {
            let Some(gateway) = hostnet_ipam::default_gateway(net) else {
                continue;
            };
            return Ok(Resolved {
                prefix: net,
                gateway,
            });
        }
    }
    Err(HcnError::new(
        ErrorCode::PoolExhausted,
        "no free private subnet is left for a NAT network: give one with Ipams (or --subnet)",
    ))
}

/// Whether two prefixes share an address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn pick_skips_taken_and_routed() {
        let r = pick(
            &[net("172.17.0.0/16")],
            &[net("0.0.0.0/0"), net("172.18.5.0/24")],
        )
        .unwrap();
        assert_eq!(r.prefix.to_string(), "172.19.0.0/16");
        assert_eq!(r.gateway.to_string(), "172.19.0.1");
    }

    #[test]
    fn ipv6_subnets_must_be_unicast() {
        for bad in ["fe80::/64", "ff02::/64", "::ffff:0:0/96", "::/64", "::/0"] {
            assert!(!is_unicast_subnet(bad.parse().unwrap()), "{bad}");
        }
        for good in ["fd00:1::/64", "2001:db8::/48", "fd00::/120"] {
            assert!(is_unicast_subnet(good.parse().unwrap()), "{good}");
        }
        assert!(check_room(net("fd00::/127")).is_err());
        assert!(check_room(net("fd00::/126")).is_ok());
    }

    #[test]
    fn overlap_both_ways() {
        assert!(overlaps(&net("10.0.0.0/8"), &net("10.1.0.0/16")));
        assert!(overlaps(&net("10.1.0.0/16"), &net("10.0.0.0/8")));
        assert!(!overlaps(&net("10.1.0.0/16"), &net("10.2.0.0/16")));
    }
}
