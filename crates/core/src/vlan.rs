//! Which VLAN a network is on, and whether its endpoints may say so.
//!
//! HCN v2 gives a VLAN per subnet (`VLAN` subnet policy); Linux tags per
//! bridge uplink, so every subnet of a network must carry the same VLAN, or
//! none. Only the networks that bind an adapter as a plain bridge port take
//! one: Transparent and L2Bridge (docs/drivers.md, VLANs).

use hostnet_model::domain::{NetworkKind, NetworkSpec, SubnetPolicy};
use hostnet_model::{ErrorCode, HcnError};

use crate::service::NetworkRec;

/// The network's VLAN ID (None: untagged), refused when its subnets
/// disagree or its type cannot carry one.
pub(crate) fn of_network(spec: &NetworkSpec) -> Result<Option<u16>, HcnError> {
    let per_subnet: Vec<(String, Option<u32>)> = spec
        .subnets
        .iter()
        .map(|s| {
            let ids: Vec<u32> = s
                .policies
                .iter()
                .filter_map(|p| match p {
                    SubnetPolicy::Vlan(id) => Some(*id),
                    SubnetPolicy::Vsid(_) => None,
                })
                .collect();
            match ids.as_slice() {
                [] => Ok((s.prefix.to_string(), None)),
                [id] => Ok((s.prefix.to_string(), Some(*id))),
                _ => Err(HcnError::new(
                    ErrorCode::InvalidPolicy,
                    format!(
                        "subnet {} has {} VLAN policies ({ids:?}): give it one",
                        s.prefix,
                        ids.len()
                    ),
                )),
            }
        })
        .collect::<Result<_, _>>()?;
    let Some((first_subnet, Some(id))) = per_subnet.iter().find(|(_, v)| v.is_some()) else {
        return Ok(None);
    };
    if let Some((other, theirs)) = per_subnet.iter().find(|(_, v)| v != &Some(*id)) {
        let theirs = match theirs {
            Some(v) => format!("VLAN {v}"),
            None => "no VLAN".into(),
        };
        return Err(HcnError::new(
            ErrorCode::InvalidPolicy,
            format!(
                "subnet {first_subnet} has VLAN {id} but subnet {other} has {theirs}: a network is on one VLAN, so give all its subnets the same VLAN policy (or none)"
            ),
        ));
    }
    match spec.kind {
        NetworkKind::Transparent | NetworkKind::L2Bridge => {}
        NetworkKind::Overlay => {
            return Err(HcnError::new(
                ErrorCode::InvalidPolicyType,
                "VLAN policies do not apply to Overlay networks: their isolation is the VSID (the VXLAN network identifier), give each subnet a VSID policy instead",
            ))
        }
        NetworkKind::L2Tunnel => {
            return Err(HcnError::new(
                ErrorCode::InvalidPolicyType,
                "VLAN policies are not supported on L2Tunnel networks: the host learns the gateway's MAC with its own ARP, and it has no address on the VLAN; use an L2Bridge network",
            ))
        }
        kind => {
            return Err(HcnError::new(
                ErrorCode::InvalidPolicyType,
                format!(
                    "VLAN policies do not apply to {kind} networks: only Transparent and L2Bridge networks put their endpoints on a VLAN of the host's adapter; remove the VLAN policy"
                ),
            ))
        }
    }
    // 1-4094 is checked when the policy is parsed (hostnet-model).
    Ok(Some(u16::try_from(*id).expect("VLAN ids are 1-4094")))
}

/// An endpoint's `VLAN` policy: only the network's own VLAN, which its
/// port has already (a container port is an access port of its network's
/// VLAN; a VLAN per endpoint would need a bridge per VLAN).
pub(crate) fn check_endpoint(net: &NetworkRec, vlan: Option<u32>) -> Result<(), HcnError> {
    let Some(asked) = vlan else {
        return Ok(());
    };
    let has = net.vlan.as_ref().map(|v| u32::from(v.id));
    match has {
        Some(id) if id == asked => Ok(()),
        Some(id) => Err(HcnError::new(
            ErrorCode::InvalidPolicy,
            format!(
                "endpoint VLAN {asked} differs from its network's VLAN {id}: an endpoint is on its network's VLAN; create a network on VLAN {asked} for it, or omit the policy"
            ),
        )),
        None => Err(HcnError::new(
            ErrorCode::InvalidPolicy,
            format!(
                "endpoint VLAN {asked}: its network has no VLAN, and a VLAN per endpoint needs the network's VLAN; create a Transparent or L2Bridge network whose subnets carry the VLAN policy {asked}"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostnet_model::wire::HostComputeNetwork;

    fn spec(kind: &str, subnets: &[(&str, &[&str])]) -> NetworkSpec {
        let subs: Vec<serde_json::Value> = subnets
            .iter()
            .map(|(prefix, policies)| {
                let ps: Vec<serde_json::Value> = policies
                    .iter()
                    .map(|p| {
                        let (ty, id) = p.split_once('=').unwrap();
                        serde_json::json!({"Type": ty, "Settings": {"IsolationId": id.parse::<u32>().unwrap()}})
                    })
                    .collect();
                serde_json::json!({"IpAddressPrefix": prefix, "Policies": ps})
            })
            .collect();
        let body = serde_json::json!({"Name": "n", "Type": kind, "Ipams": [{"Subnets": subs}]});
        let wire: HostComputeNetwork = serde_json::from_value(body).unwrap();
        hostnet_model::validate_network(&wire).unwrap()
    }

    #[test]
    fn all_subnets_on_one_vlan_or_none() {
        let one = spec(
            "Transparent",
            &[("10.1.0.0/24", &["VLAN=11"]), ("10.2.0.0/24", &["VLAN=11"])],
        );
        assert_eq!(of_network(&one).unwrap(), Some(11));
        let none = spec("L2Bridge", &[("10.1.0.0/24", &[]), ("10.2.0.0/24", &[])]);
        assert_eq!(of_network(&none).unwrap(), None);
        for subnets in [
            &[
                ("10.1.0.0/24", &["VLAN=11"][..]),
                ("10.2.0.0/24", &["VLAN=12"][..]),
            ][..],
            &[("10.1.0.0/24", &[][..]), ("10.2.0.0/24", &["VLAN=12"][..])],
            &[("10.1.0.0/24", &["VLAN=12"][..]), ("10.2.0.0/24", &[][..])],
            &[("10.1.0.0/24", &["VLAN=12", "VLAN=13"][..])],
        ] {
            let e = of_network(&spec("Transparent", subnets)).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidPolicy, "{subnets:?}: {e}");
            assert!(e.message.contains("VLAN"), "{e}");
        }
    }

    #[test]
    fn only_transparent_and_l2bridge_take_a_vlan() {
        for kind in ["NAT", "Overlay", "L2Tunnel", "ICS"] {
            let e = of_network(&spec(kind, &[("10.1.0.0/24", &["VLAN=11"])])).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidPolicyType, "{kind}: {e}");
        }
        let e = of_network(&spec("Overlay", &[("10.1.0.0/24", &["VLAN=11"])])).unwrap_err();
        assert!(e.message.contains("VSID"), "{e}");
        // A VSID is not a VLAN: an overlay's subnets keep theirs.
        let overlay = spec("Overlay", &[("10.1.0.0/24", &["VSID=4096"])]);
        assert_eq!(of_network(&overlay).unwrap(), None);
    }
}
