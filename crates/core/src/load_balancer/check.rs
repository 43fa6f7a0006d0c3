//! Is a load balancer document one hostnet can program, against the
//! state: what the data path does not do is refused by name, and
//! references and frontend conflicts are checked before anything changes.

use std::collections::BTreeSet;
use std::net::IpAddr;

use hostnet_model::domain::LoadBalancerSpec;
use hostnet_model::wire::HostComputeLoadBalancer;
use hostnet_model::{ErrorCode, HcnError};
use serde_json::Value;
use uuid::Uuid;

use crate::object::{guid, Kind};
use crate::service::State;

/// `LoadBalancerFlags` bits.
const LB_DSR: u32 = 1;
const LB_IPV6: u32 = 2;

/// Where a frontend listens: a VIP, or every local address of one family
/// (a node port; an IPv4 and an IPv6 LB may share one, as kube-proxy's
/// dual-stack services do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Listen {
    Vip(IpAddr),
    NodePort { ipv6: bool },
}

/// (where, protocol, frontend port).
pub(super) type FrontendKey = (Listen, u8, u16);

/// Whether an LB is IPv6 (`LoadBalancerFlags` 2): its addresses, its
/// backends' addresses and its node ports are all IPv6.
pub(super) fn is_ipv6(spec: &LoadBalancerSpec) -> bool {
    spec.flags & LB_IPV6 != 0
}

/// Parse and validate an LB document, refusing what hostnet cannot do.
pub(super) fn parse(body: &[u8]) -> Result<(HostComputeLoadBalancer, LoadBalancerSpec), HcnError> {
    let wire: HostComputeLoadBalancer = crate::object::parse_object(body)?;
    let spec = hostnet_model::validate_load_balancer(&wire)?;
    check_supported(&spec)?;
    Ok((wire, spec))
}

/// The body of a modify: a ModifySettingRequest's `Settings` when the body
/// is one (it has `Settings` and a `RequestType` or `ResourceType`), else
/// the body itself.
pub(super) fn unwrap_modify(body: &[u8]) -> Result<Vec<u8>, HcnError> {
    let v: Value = hostnet_model::from_json(body)?;
    let wrapped = v
        .get("Settings")
        .filter(|s| s.is_object())
        .filter(|_| v.get("RequestType").is_some() || v.get("ResourceType").is_some());
    match (wrapped, v.get("RequestType").and_then(Value::as_str)) {
        (Some(_), Some(t)) if !t.eq_ignore_ascii_case("Update") => Err(HcnError::new(
            ErrorCode::RequestUnsupported,
            format!(
                "load balancer modify RequestType {t:?} is not supported: send RequestType \"Update\" with the whole load balancer in Settings (or the document alone)"
            ),
        )),
        (Some(s), _) => Ok(serde_json::to_vec(s).expect("a JSON value serializes")),
        (None, _) => Ok(body.to_vec()),
    }
}

/// What the data path does not do is refused by name.
fn check_supported(spec: &LoadBalancerSpec) -> Result<(), HcnError> {
    check_family(spec)?;
    if spec.flags & LB_DSR != 0 {
        check_dsr(spec)?;
    }
    if spec.flags & !(LB_DSR | LB_IPV6) != 0 {
        return Err(HcnError::new(
            ErrorCode::InvalidPolicy,
            format!(
                "LoadBalancerFlags {:#x} has unknown bits: use 0, 1 (DSR) or 2 (IPv6)",
                spec.flags
            ),
        ));
    }
    if spec.port_mappings.is_empty() {
        return Err(HcnError::new(
            ErrorCode::InvalidPolicy,
            "a load balancer needs PortMappings: give one {Protocol, InternalPort, ExternalPort}",
        ));
    }
    for (i, m) in spec.port_mappings.iter().enumerate() {
        if !matches!(m.protocol.number(), 6 | 17 | 132) {
            return Err(HcnError::new(
                ErrorCode::InvalidPolicy,
                format!(
                    "PortMappings[{i}].Protocol {} cannot be load balanced: give 6 (TCP), 17 (UDP) or 132 (SCTP)",
                    m.protocol.number()
                ),
            ));
        }
    }
    super::preserve_dip::check_supported(spec)?;
    let mut seen = BTreeSet::new();
    if let Some(dup) = spec.endpoints.iter().find(|e| !seen.insert(**e)) {
        return Err(HcnError::new(
            ErrorCode::InvalidPolicy,
            format!(
                "HostComputeEndpoints lists {} twice: list each backend once",
                guid(dup)
            ),
        ));
    }
    Ok(())
}

/// Every address of an LB is of the family its IPv6 flag says (kube-proxy
/// makes a second LB with the flag for a dual-stack service's IPv6 VIP);
/// DSR and PreserveDip are IPv4 only.
fn check_family(spec: &LoadBalancerSpec) -> Result<(), HcnError> {
    let ipv6 = is_ipv6(spec);
    let named = spec
        .frontend_vips
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("FrontendVIPs[{i}]"), a))
        .chain(spec.source_vip.iter().map(|a| ("SourceVIP".to_string(), a)));
    for (what, a) in named {
        if a.is_ipv6() != ipv6 {
            let msg = match ipv6 {
                true => format!(
                    "{what} {a} is IPv4 but LoadBalancerFlags has IPv6 (2): give IPv6 addresses, or make a separate load balancer without the flag for IPv4"
                ),
                false => format!(
                    "{what} {a} is IPv6: set LoadBalancerFlags IPv6 (2) for an IPv6 load balancer, with IPv6 addresses only (one load balancer per family)"
                ),
            };
            return Err(HcnError::new(ErrorCode::InvalidIp, msg));
        }
    }
    let unsupported = |m: &str| Err(HcnError::new(ErrorCode::RequestUnsupported, m));
    if ipv6 && spec.flags & LB_DSR != 0 {
        return unsupported(
            "EnableDirectServerReturn (1) with IPv6 (2) is not supported: hostnet's direct server return is IPv4 only; remove the DSR flag",
        );
    }
    let pdip = spec
        .port_mappings
        .iter()
        .any(|m| m.flags & super::preserve_dip::FLAG != 0);
    if ipv6 && pdip {
        return unsupported(
            "EnablePreserveDip (port mapping flag 8) with IPv6 (2) is not supported: hostnet preserves the VIP for IPv4 only; remove the flag",
        );
    }
    Ok(())
}

/// DSR delivers the client's packet unchanged to a backend holding the
/// VIP: the port cannot change, and the frontend must be a VIP.
fn check_dsr(spec: &LoadBalancerSpec) -> Result<(), HcnError> {
    let unsupported = |m: String| HcnError::new(ErrorCode::RequestUnsupported, m);
    if spec.frontend_vips.is_empty() {
        return Err(unsupported(
            "EnableDirectServerReturn needs FrontendVIPs: node ports are not delivered directly; give a VIP or remove the flag".into(),
        ));
    }
    if let Some(m) = spec
        .port_mappings
        .iter()
        .find(|m| m.internal_port != m.external_port)
    {
        return Err(unsupported(format!(
            "EnableDirectServerReturn delivers packets to the backend unchanged, so InternalPort {} must equal ExternalPort {}: give equal ports or remove the flag",
            m.internal_port, m.external_port
        )));
    }
    if spec.endpoints.len() > hostnet_nft::dsr::MAX_BACKENDS {
        return Err(unsupported(format!(
            "EnableDirectServerReturn takes at most {} backends, {} given: split the service or remove the flag",
            hostnet_nft::dsr::MAX_BACKENDS,
            spec.endpoints.len()
        )));
    }
    Ok(())
}

/// References and conflicts, against the state (`except`: the LB being
/// replaced).
pub(super) fn check(
    st: &State,
    spec: &LoadBalancerSpec,
    except: Option<&Uuid>,
) -> Result<(), HcnError> {
    if let Some(net) = spec.network {
        if !st.networks.contains_key(&net) {
            return Err(HcnError::new(
                ErrorCode::NetworkNotFound,
                format!(
                    "HostComputeNetwork {} does not exist: give an existing network or omit it",
                    guid(&net)
                ),
            ));
        }
    }
    let mut network = spec.network;
    for (i, ep) in spec.endpoints.iter().enumerate() {
        let Some(rec) = st.endpoints.get(ep) else {
            return Err(HcnError::new(
                ErrorCode::EndpointNotFound,
                format!(
                    "HostComputeEndpoints[{i}] {} is not an endpoint of this host: create it first (another host's container on an Overlay network: as a remote endpoint, Flags 1) or remove it",
                    guid(ep)
                ),
            ));
        };
        match network {
            None => network = Some(rec.network),
            Some(n) if n != rec.network => {
                return Err(HcnError::new(
                    ErrorCode::InvalidEndpoint,
                    format!(
                        "HostComputeEndpoints[{i}] {} is on network {}, not on the load balancer's network {}: give backends of one network",
                        guid(ep),
                        guid(&rec.network),
                        guid(&n)
                    ),
                ));
            }
            Some(_) => {}
        }
        if is_ipv6(spec) && rec.plan.address6.is_none() {
            return Err(HcnError::new(
                ErrorCode::InvalidEndpoint,
                format!(
                    "HostComputeEndpoints[{i}] {} has no IPv6 address: an IPv6 load balancer's backends must be on a dual-stack network; give endpoints with an IPv6 address or remove the IPv6 flag",
                    guid(ep)
                ),
            ));
        }
        if !is_ipv6(spec) && !rec.plan.address.addr().is_ipv4() {
            return Err(HcnError::new(
                ErrorCode::InvalidEndpoint,
                format!(
                    "HostComputeEndpoints[{i}] {} has no IPv4 address: give endpoints with an IPv4 address, or set LoadBalancerFlags IPv6 (2) with IPv6 addresses",
                    guid(ep)
                ),
            ));
        }
        // DSR puts the VIP on a backend's loopback and PreserveDip hooks
        // its namespace's port; a VM's are inside the guest.
        let in_guest = spec.flags & LB_DSR != 0
            || spec
                .port_mappings
                .iter()
                .any(|m| m.flags & super::preserve_dip::FLAG != 0);
        if rec.vm_nic && in_guest {
            return Err(HcnError::new(
                ErrorCode::RequestUnsupported,
                format!(
                    "HostComputeEndpoints[{i}] {} is a VM NIC: DSR and PreserveDip need the backend's namespace, and a VM's is inside the guest; use a load balancer without them for VM backends",
                    guid(ep)
                ),
            ));
        }
    }
    if let Some(net) = network.and_then(|n| st.networks.get(&n)) {
        super::overlay::check(st, spec, net)?;
    }
    super::preserve_dip::check_against(st, spec, except)?;
    let mine = frontend_keys(spec);
    let taken = mine.iter().find_map(|k| {
        let owner = st.load_balancers.owner(k)?;
        (Some(owner) != except).then_some((owner, k))
    });
    if let Some((id, k)) = taken {
        return Err(HcnError::new(
            ErrorCode::PortAlreadyExists,
            format!(
                "{} is already load balanced by {} {}: choose another VIP or ExternalPort, or modify that load balancer",
                describe_key(k),
                Kind::LoadBalancer.noun(),
                guid(id)
            ),
        ));
    }
    // A node port takes the port on every host address, as a published
    // port of an endpoint does (of either family: published ports
    // without a VIP are on both).
    for k in mine
        .iter()
        .filter(|k| matches!(k.0, Listen::NodePort { .. }))
    {
        if let Some(ep) = crate::endpoint::publisher(st, k.1, k.2, None, None) {
            return Err(HcnError::new(
                ErrorCode::PortAlreadyExists,
                format!(
                    "{} is already a published port of endpoint {}: choose another ExternalPort",
                    describe_key(k),
                    guid(&ep)
                ),
            ));
        }
    }
    Ok(())
}

/// The load balancer whose frontend takes the host port an endpoint's
/// `PortMapping` asks for (a node port takes it on every address), named
/// for the error.
pub(crate) fn port_owner(st: &State, m: &hostnet_model::domain::PortMapping) -> Option<String> {
    let (proto, port) = (m.protocol.number(), m.external_port);
    // A VIP is not a host address: only the same VIP clashes. A node port
    // of either family clashes (a mapping without a VIP is on both).
    let node = |ipv6| {
        st.load_balancers
            .owner(&(Listen::NodePort { ipv6 }, proto, port))
    };
    let owner = node(false).or_else(|| node(true)).or_else(|| {
        m.vip
            .and_then(|v| st.load_balancers.owner(&(Listen::Vip(v), proto, port)))
    })?;
    Some(format!("{} {}", Kind::LoadBalancer.noun(), guid(owner)))
}

/// (where, protocol, frontend port) of each frontend.
pub(super) fn frontend_keys(spec: &LoadBalancerSpec) -> BTreeSet<FrontendKey> {
    let vips: Vec<Listen> = match spec.frontend_vips.is_empty() {
        true => vec![Listen::NodePort {
            ipv6: is_ipv6(spec),
        }],
        false => spec
            .frontend_vips
            .iter()
            .copied()
            .map(Listen::Vip)
            .collect(),
    };
    vips.iter()
        .flat_map(|v| {
            spec.port_mappings
                .iter()
                .map(move |m| (*v, m.protocol.number(), m.external_port))
        })
        .collect()
}

fn describe_key(k: &FrontendKey) -> String {
    let proto = match k.1 {
        6 => "TCP".to_string(),
        17 => "UDP".to_string(),
        132 => "SCTP".to_string(),
        n => format!("protocol {n}"),
    };
    match k.0 {
        Listen::Vip(vip @ IpAddr::V4(_)) => format!("{proto} {vip}:{}", k.2),
        Listen::Vip(vip) => format!("{proto} [{vip}]:{}", k.2),
        Listen::NodePort { ipv6: false } => format!("{proto} node port {}", k.2),
        Listen::NodePort { ipv6: true } => format!("{proto} IPv6 node port {}", k.2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(body: &str) -> Result<LoadBalancerSpec, HcnError> {
        parse(body.as_bytes()).map(|(_, s)| s)
    }

    #[test]
    fn unsupported_flags_are_refused_by_name() {
        let pm = r#""PortMappings":[{"Protocol":6,"InternalPort":80,"ExternalPort":80}]"#;
        let e = spec(&format!(r#"{{{pm},"Flags":4}}"#)).unwrap_err();
        assert!(e.to_string().contains("unknown"), "{e}");
        let e = spec(r#"{"FrontendVIPs":["10.96.0.1"],"PortMappings":[{"Protocol":6,"InternalPort":8080,"ExternalPort":80}],"Flags":1}"#)
            .unwrap_err();
        assert!(e.to_string().contains("must equal ExternalPort"), "{e}");
        let e = spec(
            r#"{"PortMappings":[{"Protocol":6,"InternalPort":80,"ExternalPort":80}],"Flags":1}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("needs FrontendVIPs"), "{e}");
        let e = spec(
            r#"{"PortMappings":[{"Protocol":6,"InternalPort":80,"ExternalPort":80,"Flags":8}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::RequestUnsupported);
        assert!(
            e.to_string()
                .contains("EnablePreserveDip needs FrontendVIPs"),
            "{e}"
        );
        let e = spec(r#"{"FrontendVIPs":["fd00::1"],"PortMappings":[{"Protocol":6,"InternalPort":80,"ExternalPort":80}]}"#)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidIp);
        assert!(
            e.to_string().contains("set LoadBalancerFlags IPv6 (2)"),
            "{e}"
        );
        let e = spec(r#"{"PortMappings":[{"Protocol":1,"InternalPort":80,"ExternalPort":80}]}"#)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidPolicy);
        let e = spec(r#"{"HostComputeEndpoints":[]}"#).unwrap_err();
        assert!(e.to_string().contains("PortMappings"), "{e}");
    }

    #[test]
    fn an_ipv6_load_balancer_takes_ipv6_addresses_only() {
        let pm = r#""PortMappings":[{"Protocol":6,"InternalPort":80,"ExternalPort":80}]"#;
        let ok = spec(&format!(
            r#"{{"FrontendVIPs":["fd00:96::1"],"SourceVIP":"fd00:77::1",{pm},"Flags":2}}"#
        ))
        .unwrap();
        assert!(is_ipv6(&ok));
        assert!(
            spec(&format!(r#"{{{pm},"Flags":2}}"#)).is_ok(),
            "IPv6 node port"
        );
        for (body, word) in [
            (
                r#""FrontendVIPs":["10.96.0.1"],"Flags":2"#,
                "FrontendVIPs[0] 10.96.0.1 is IPv4",
            ),
            (
                r#""FrontendVIPs":["fd00:96::1"],"SourceVIP":"10.0.0.1","Flags":2"#,
                "SourceVIP 10.0.0.1 is IPv4",
            ),
            (
                r#""FrontendVIPs":["10.96.0.1"],"SourceVIP":"fd00::1""#,
                "SourceVIP fd00::1 is IPv6",
            ),
        ] {
            let e = spec(&format!("{{{pm},{body}}}")).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidIp, "{body}");
            assert!(e.to_string().contains(word), "{e}");
        }
        let e = spec(&format!(
            r#"{{"FrontendVIPs":["fd00:96::1"],{pm},"Flags":3}}"#
        ))
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::RequestUnsupported);
        assert!(e.to_string().contains("DSR"), "{e}");
        let e = spec(r#"{"FrontendVIPs":["fd00:96::1"],"PortMappings":[{"Protocol":6,"InternalPort":80,"ExternalPort":80,"Flags":8}],"Flags":2}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::RequestUnsupported);
        assert!(e.to_string().contains("EnablePreserveDip"), "{e}");
        let v4 = frontend_keys(&spec(&format!("{{{pm}}}")).unwrap());
        let v6 = frontend_keys(&spec(&format!(r#"{{{pm},"Flags":2}}"#)).unwrap());
        assert!(
            v4.is_disjoint(&v6),
            "node ports of two families do not clash"
        );
    }

    #[test]
    fn modify_takes_the_document_or_a_wrapped_one() {
        let doc = br#"{"PortMappings":[]}"#;
        assert_eq!(unwrap_modify(doc).unwrap(), doc.to_vec());
        let wrapped = br#"{"RequestType":"Update","ResourceType":"LoadBalancer","Settings":{"FrontendVIPs":["10.96.0.1"]}}"#;
        assert_eq!(
            unwrap_modify(wrapped).unwrap(),
            br#"{"FrontendVIPs":["10.96.0.1"]}"#.to_vec()
        );
        let add = br#"{"RequestType":"Add","Settings":{}}"#;
        assert_eq!(
            unwrap_modify(add).unwrap_err().code,
            ErrorCode::RequestUnsupported
        );
    }
}
