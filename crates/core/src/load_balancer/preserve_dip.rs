//! EnablePreserveDip (port mapping flag 8): what it adds to a load
//! balancer's checks and kernel state (docs/load-balancers.md#preserve-dip).
//!
//! The LB's own elements carry the flag in the connection's mark
//! (`hostnet_nft::lb`). Shared by all PreserveDip LBs, kept as a union and
//! changed by its difference along with DSR's ([`super::dsr::Shared`]):
//! each VIP's mark, the backends' ports hooked on `hostnet_nft::preserve_dip`'s
//! chains, one reply element per backend, VIP and target port, and each
//! VIP accepted by its backends, a local route in their namespaces (a set
//! DSR shares: a VIP leaves a backend only when no DSR or PreserveDip LB
//! still needs it there).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use hostnet_dataplane::Op;
use hostnet_drivers::names;
use hostnet_model::domain::LoadBalancerSpec;
use hostnet_model::{ErrorCode, HcnError};
use hostnet_nft::preserve_dip::{self as nft, Reply};
use hostnet_nft::SetElement;
use uuid::Uuid;

use crate::service::State;

/// Port mapping flag bit of EnablePreserveDip.
pub(super) const FLAG: u32 = 8;

pub(super) fn is_preserve_dip(spec: &LoadBalancerSpec) -> bool {
    spec.port_mappings.iter().any(|m| m.flags & FLAG != 0)
}

/// What the data path cannot do with the flag is refused by name.
pub(super) fn check_supported(spec: &LoadBalancerSpec) -> Result<(), HcnError> {
    if !is_preserve_dip(spec) {
        return Ok(());
    }
    let unsupported = |m: &str| Err(HcnError::new(ErrorCode::RequestUnsupported, m));
    if spec.frontend_vips.is_empty() {
        return unsupported(
            "EnablePreserveDip needs FrontendVIPs: a node port would have every backend accept the host's own addresses as its own, cutting the backends off from the host; give a VIP or remove the flag",
        );
    }
    if super::dsr::is_dsr(spec) {
        return unsupported(
            "EnablePreserveDip with EnableDirectServerReturn is not supported: DSR already delivers to the VIP for the clients it serves directly; use one of the two flags",
        );
    }
    Ok(())
}

/// The frontends whose replies the backends send from the VIP: a
/// PreserveDip mapping's (VIP, protocol, InternalPort), a DSR one's (VIP,
/// protocol, port). The reply rewrite of one would catch the other's, so
/// no two LBs may share one.
fn reply_keys(spec: &LoadBalancerSpec) -> BTreeSet<(Ipv4Addr, u8, u16)> {
    let dsr = super::dsr::is_dsr(spec);
    super::frontend_vips4(spec)
        .flat_map(|vip| {
            spec.port_mappings
                .iter()
                .filter(move |m| dsr || m.flags & FLAG != 0)
                .map(move |m| (vip, m.protocol.number(), m.internal_port))
        })
        .collect()
}

/// A PreserveDip LB and a DSR LB (either may be `spec`) must not answer
/// from one VIP, protocol and port: the backends' replies could not be
/// told apart. A reply key holds the VIP, so only the LBs sharing one are
/// asked: O(them).
pub(super) fn check_against(
    st: &State,
    spec: &LoadBalancerSpec,
    except: Option<&Uuid>,
) -> Result<(), HcnError> {
    let mine = reply_keys(spec);
    if mine.is_empty() {
        return Ok(());
    }
    let lbs = &st.load_balancers;
    for id in lbs.shared_with(&spec.frontend_vips, false) {
        let Some(lb) = lbs.get(&id) else { continue };
        if Some(&id) == except || super::dsr::is_dsr(spec) == super::dsr::is_dsr(&lb.spec) {
            continue;
        }
        if let Some((vip, proto, port)) = reply_keys(&lb.spec).intersection(&mine).next() {
            return Err(HcnError::new(
                ErrorCode::RequestUnsupported,
                format!(
                    "load balancer {} already has backends answer from {vip} protocol {proto} port {port} (one uses EnableDirectServerReturn, the other EnablePreserveDip), so their replies cannot be told apart: use another VIP or InternalPort",
                    crate::object::guid(&id)
                ),
            ));
        }
    }
    Ok(())
}

/// What all PreserveDip LBs share in the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Shared {
    /// The PreserveDip VIPs (their marks).
    vips: BTreeSet<Ipv4Addr>,
    /// Host veths of backends, hooked both ways.
    ports: BTreeSet<String>,
    replies: BTreeSet<Reply>,
}

impl Shared {
    /// Add LB `spec`'s part, without endpoint `gone`; the VIPs its
    /// backends must accept go into `accepted`.
    pub(super) fn add(
        &mut self,
        st: &State,
        spec: &LoadBalancerSpec,
        gone: Option<&Uuid>,
        accepted: &mut BTreeSet<(PathBuf, Ipv4Addr)>,
    ) {
        if !is_preserve_dip(spec) {
            return;
        }
        let vips: Vec<Ipv4Addr> = super::frontend_vips4(spec).collect();
        self.vips.extend(&vips);
        for id in spec.endpoints.iter().filter(|e| Some(*e) != gone) {
            let Some(ep) = st.endpoints.get(id) else {
                continue;
            };
            // Attached to a namespace of its own: a host endpoint's
            // namespace is the host's, which must not accept VIPs.
            let Some(ns) = ep.namespace.and_then(|n| st.namespaces.get(&n)) else {
                continue;
            };
            let IpAddr::V4(backend) = ep.plan.address.addr() else {
                continue;
            };
            if ns.host {
                continue;
            }
            let port_name = names::host_veth(id);
            for &vip in &vips {
                accepted.insert((ns.path.clone(), vip));
                for m in spec.port_mappings.iter().filter(|m| m.flags & FLAG != 0) {
                    self.replies.insert(Reply {
                        port_name: port_name.clone(),
                        vip,
                        proto: m.protocol.number(),
                        target_port: m.internal_port,
                        backend,
                    });
                }
            }
            self.ports.insert(port_name);
        }
    }

    /// The ports of the backends of the `asked` LBs that PreserveDip LBs
    /// not taken still have (`others_have`): those stay hooked whatever
    /// the taken ones do. Only those backends are asked about, so nothing
    /// of the others is built.
    pub(super) fn keep_ports(
        &mut self,
        st: &State,
        asked: &[&LoadBalancerSpec],
        others_have: &dyn Fn(&Uuid) -> bool,
        gone: Option<&Uuid>,
    ) {
        let candidates: BTreeSet<&Uuid> = asked
            .iter()
            .filter(|s| is_preserve_dip(s))
            .flat_map(|s| &s.endpoints)
            .filter(|e| Some(*e) != gone)
            .collect();
        for id in candidates {
            let attached = st
                .endpoints
                .get(id)
                .and_then(|ep| ep.namespace.and_then(|n| st.namespaces.get(&n)))
                .is_some_and(|ns| !ns.host);
            if attached && others_have(id) {
                self.ports.insert(names::host_veth(id));
            }
        }
    }

    /// The elements `after` has and `self` has not (added before an LB's
    /// change), and those only `self` has (deleted after it).
    pub(super) fn elements_to(&self, after: &Shared) -> (Vec<SetElement>, Vec<SetElement>) {
        let diff = |a: &Shared, b: &Shared| -> Vec<SetElement> {
            let mut out: Vec<SetElement> = a
                .vips
                .difference(&b.vips)
                .flat_map(|v| nft::vip(*v))
                .collect();
            out.extend(
                a.ports
                    .difference(&b.ports)
                    .flat_map(|p| nft::backend_port(p)),
            );
            out.extend(a.replies.difference(&b.replies).map(nft::reply));
            out
        };
        (diff(after, self), diff(self, after))
    }
}

/// The ops that add `add` before and delete `delete` after, if any.
pub(super) fn ops(add: Vec<SetElement>, delete: Vec<SetElement>) -> (Option<Op>, Option<Op>) {
    (
        (!add.is_empty()).then_some(Op::AddElements(add)),
        (!delete.is_empty()).then_some(Op::DeleteElements(delete)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(body: &str) -> LoadBalancerSpec {
        let wire = serde_json::from_str(body).unwrap();
        hostnet_model::validate_load_balancer(&wire).unwrap()
    }

    #[test]
    fn node_ports_and_dsr_are_refused_with_the_flag() {
        let pm = r#""PortMappings":[{"Protocol":6,"InternalPort":80,"ExternalPort":80,"Flags":8}]"#;
        let e = check_supported(&spec(&format!("{{{pm}}}"))).unwrap_err();
        assert_eq!(e.code, ErrorCode::RequestUnsupported);
        assert!(e.to_string().contains("needs FrontendVIPs"), "{e}");
        let e = check_supported(&spec(&format!(
            r#"{{{pm},"FrontendVIPs":["10.96.0.1"],"Flags":1}}"#
        )))
        .unwrap_err();
        assert!(e.to_string().contains("DirectServerReturn"), "{e}");
        assert!(
            check_supported(&spec(&format!(r#"{{{pm},"FrontendVIPs":["10.96.0.1"]}}"#))).is_ok()
        );
    }

    #[test]
    fn replies_are_keyed_by_the_target_port_of_flagged_mappings_only() {
        let s = spec(
            r#"{"FrontendVIPs":["10.96.0.1"],"PortMappings":[
                {"Protocol":6,"InternalPort":8080,"ExternalPort":80,"Flags":8},
                {"Protocol":17,"InternalPort":53,"ExternalPort":53}]}"#,
        );
        assert_eq!(
            reply_keys(&s).into_iter().collect::<Vec<_>>(),
            [(Ipv4Addr::new(10, 96, 0, 1), 6, 8080)]
        );
    }

    #[test]
    fn only_the_difference_is_added_and_deleted() {
        let reply = |p: &str| Reply {
            port_name: p.into(),
            vip: Ipv4Addr::new(10, 96, 0, 1),
            proto: 6,
            target_port: 80,
            backend: Ipv4Addr::new(10, 88, 0, 2),
        };
        let before = Shared {
            vips: [Ipv4Addr::new(10, 96, 0, 1)].into(),
            ports: ["hnveA".to_string()].into(),
            replies: [reply("hnveA")].into(),
        };
        let after = Shared {
            ports: ["hnveB".to_string()].into(),
            replies: [reply("hnveB")].into(),
            ..before.clone()
        };
        let (add, delete) = before.elements_to(&after);
        // Two hooks and a reply each way; the VIP stays.
        assert_eq!(add.len(), 3);
        assert_eq!(delete.len(), 3);
        assert!(add.iter().all(|e| e.text.contains("hnveB")));
        assert!(delete.iter().all(|e| e.text.contains("hnveA")));
        assert_eq!(before.elements_to(&before), (Vec::new(), Vec::new()));
    }
}
