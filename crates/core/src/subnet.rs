//! Choosing and checking a NAT network's subnet.

use std::net::{IpAddr, Ipv4Addr};

use hostnet_model::domain::NetworkSpec;
use hostnet_model::{ErrorCode, HcnError};
use ipnet::{IpNet, Ipv4Net};

/// A subnet with its gateway, fixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub prefix: Ipv4Net,
    pub gateway: Ipv4Addr,
}

/// The subnets of a NAT network: as given, or one picked from the private
/// ranges that neither another network nor a host route uses.
pub fn resolve(
    spec: &NetworkSpec,
    taken: &[IpNet],
    host_routes: &[IpNet],
) -> Result<Vec<Resolved>, HcnError> {
    if spec.subnets.is_empty() {
        return pick(taken, host_routes).map(|r| vec![r]);
    }
    let mut out = Vec::new();
    for (i, s) in spec.subnets.iter().enumerate() {
        let IpNet::V4(prefix) = s.prefix else {
            return Err(HcnError::new(
                ErrorCode::RequestUnsupported,
                format!(
                    "subnet {} is IPv6: NAT networks are IPv4-only in this hostnet; give an IPv4 subnet",
                    s.prefix
                ),
            ));
        };
        let gateway = match s.gateway {
            Some(IpAddr::V4(g)) => g,
            Some(IpAddr::V6(g)) => {
                return Err(HcnError::new(
                    ErrorCode::InvalidSubnet,
                    format!("gateway {g} of subnet {prefix} is not IPv4"),
                ))
            }
            None => match hostnet_ipam::default_gateway(IpNet::V4(prefix)) {
                Some(IpAddr::V4(g)) => g,
                _ => {
                    return Err(HcnError::new(
                        ErrorCode::InvalidSubnet,
                        format!("subnet {prefix} has no room for a gateway and endpoints: use a prefix of /30 or shorter"),
                    ))
                }
            },
        };
        if prefix.prefix_len() > 30 {
            return Err(HcnError::new(
                ErrorCode::InvalidSubnet,
                format!("subnet {prefix} has no room for a gateway and endpoints: use a prefix of /30 or shorter"),
            ));
        }
        if let Some(other) = taken
            .iter()
            .chain(
                out.iter()
                    .map(|r: &Resolved| IpNet::V4(r.prefix))
                    .collect::<Vec<_>>()
                    .iter(),
            )
            .find(|t| overlaps(t, &IpNet::V4(prefix)))
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
            let gateway = match hostnet_ipam::default_gateway(net) {
                Some(IpAddr::V4(g)) => g,
                _ => continue,
            };
            return Ok(Resolved { prefix, gateway });
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
    fn overlap_both_ways() {
        assert!(overlaps(&net("10.0.0.0/8"), &net("10.1.0.0/16")));
        assert!(overlaps(&net("10.1.0.0/16"), &net("10.0.0.0/8")));
        assert!(!overlaps(&net("10.1.0.0/16"), &net("10.2.0.0/16")));
    }
}
