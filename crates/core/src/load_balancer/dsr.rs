//! Direct server return (LoadBalancerFlags 1): what it adds to a load
//! balancer's kernel state (docs/load-balancers.md#direct-server-return).
//!
//! Per LB: its VIP frontends in `hostnet_nft::dsr`'s maps, with the
//! backends' MACs. Shared by all DSR LBs, so kept as a union and changed
//! by its difference: the client ports hooked on the DSR chain (endpoints
//! attached on a DSR LB's network, except its backends, which reach their
//! own service through the NAT path: a bridge never sends a frame back out
//! of the port it came in on), and each DSR VIP accepted by its backends (a
//! local route in their namespaces).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use hostnet_dataplane::{LocalRoutes, Op};
use hostnet_drivers::names;
use hostnet_model::domain::{Distribution, LoadBalancerSpec};
use hostnet_nft::SetElement;
use uuid::Uuid;

use crate::service::State;

/// `LoadBalancerFlags` bit of DSR.
pub(super) const FLAG: u32 = 1;

pub(super) fn is_dsr(spec: &LoadBalancerSpec) -> bool {
    spec.flags & FLAG != 0
}

/// The LB's own DSR elements: a frontend per VIP and port mapping.
pub(super) fn elements(st: &State, spec: &LoadBalancerSpec) -> Vec<SetElement> {
    if !is_dsr(spec) {
        return Vec::new();
    }
    let macs: Vec<[u8; 6]> = spec
        .endpoints
        .iter()
        .filter_map(|e| st.endpoints.get(e))
        .map(|e| e.plan.mac)
        .collect();
    let mut out = Vec::new();
    for vip in super::frontend_vips4(spec) {
        for m in &spec.port_mappings {
            out.extend(hostnet_nft::dsr::elements(&hostnet_nft::dsr::Frontend {
                vip,
                proto: m.protocol.number(),
                port: m.external_port,
                backends: macs.clone(),
                affinity: m.distribution != Distribution::None,
            }));
        }
    }
    out
}

/// One op adding (or deleting) the local routes that make the backends'
/// namespaces accept the VIPs, grouped by namespace (the pairs come sorted
/// by it), so each namespace is visited once; none when there are none.
fn local_routes<'a>(vips: impl Iterator<Item = &'a (PathBuf, Ipv4Addr)>, add: bool) -> Vec<Op> {
    let mut by_netns: Vec<LocalRoutes> = Vec::new();
    for (ns, vip) in vips {
        match by_netns.last_mut() {
            Some(last) if &last.netns == ns => last.addresses.push(*vip),
            _ => by_netns.push(LocalRoutes {
                netns: ns.clone(),
                addresses: vec![*vip],
            }),
        }
    }
    match (by_netns.is_empty(), add) {
        (true, _) => Vec::new(),
        (false, true) => vec![Op::AddLocalRoutes(by_netns)],
        (false, false) => vec![Op::DeleteLocalRoutes(by_netns)],
    }
}

/// What all DSR LBs share in the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Shared {
    /// Host veths of client endpoints, hooked on the DSR chain.
    ports: BTreeSet<String>,
    /// (backend's namespace, VIP) that namespace accepts as its own (a
    /// local route), for DSR and PreserveDip LBs alike.
    vips: BTreeSet<(PathBuf, Ipv4Addr)>,
    /// What PreserveDip LBs share besides the VIPs.
    preserve_dip: super::preserve_dip::Shared,
}

/// Which DSR and PreserveDip LBs a change can touch the shared state of:
/// [`Shared::of`] takes only those, so the difference before and after a
/// change costs O(the LBs it touches), not O(all of them). VIPs on
/// backends, VIP marks and reply elements come from LBs with that VIP,
/// which a scope takes whole; DSR's client ports from DSR LBs (all of
/// them, as before); a backend's hooked port from any PreserveDip LB with
/// that backend, so for the backends of the LBs taken the others are
/// asked too (a scan of their backend lists, nothing built).
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// Everything (the start-up load).
    All,
    /// A change of an LB from one spec to another (either may be absent).
    Lb(Option<&'a LoadBalancerSpec>, Option<&'a LoadBalancerSpec>),
    /// An endpoint attached, detached or deleted.
    Endpoint(&'a Uuid),
}

impl Scope<'_> {
    /// The LB specs a change is about: their backends' ports are asked
    /// of the LBs not taken, before and after alike (a deleted LB is in
    /// neither state's list, but its backends must still be asked).
    fn changed(&self) -> impl Iterator<Item = &LoadBalancerSpec> {
        match *self {
            Scope::Lb(old, new) => old.into_iter().chain(new),
            Scope::All | Scope::Endpoint(_) => None.into_iter().chain(None),
        }
    }

    /// The LBs an LB change takes, from the VIP index (O(them)); None for
    /// the other scopes, which ask [`Scope::takes`] of every LB.
    fn indexed(&self, lbs: &super::LoadBalancers) -> Option<BTreeSet<Uuid>> {
        match *self {
            Scope::Lb(old, new) => {
                let changed = || old.into_iter().chain(new);
                let vips = changed().flat_map(|c| &c.frontend_vips);
                Some(lbs.shared_with(vips, changed().any(is_dsr)))
            }
            Scope::All | Scope::Endpoint(_) => None,
        }
    }

    fn takes(&self, s: &LoadBalancerSpec) -> bool {
        match *self {
            Scope::All => true,
            Scope::Endpoint(ep) => is_dsr(s) || s.endpoints.contains(ep),
            Scope::Lb(old, new) => old.into_iter().chain(new).any(|c| {
                (is_dsr(c) && is_dsr(s))
                    || c.frontend_vips.iter().any(|v| s.frontend_vips.contains(v))
            }),
        }
    }
}

impl Shared {
    /// The shared state of the DSR and PreserveDip LBs in `st` that
    /// `scope` takes, with LB `id` replaced by `spec` (None: without it)
    /// when `replacing` says so, and without endpoint `gone` (being
    /// deleted).
    pub(crate) fn of(
        st: &State,
        replacing: Option<(&Uuid, Option<&LoadBalancerSpec>)>,
        gone: Option<&Uuid>,
        scope: Scope<'_>,
    ) -> Shared {
        let lbs = &st.load_balancers;
        let kept = |id: &Uuid| replacing.is_none_or(|(r, _)| r != id);
        let indexed = scope.indexed(lbs);
        let taken = |id: &Uuid, s: &LoadBalancerSpec| match &indexed {
            Some(ids) => ids.contains(id),
            None => scope.takes(s),
        };
        let mut specs: Vec<&LoadBalancerSpec> = match &indexed {
            Some(ids) => ids
                .iter()
                .filter(|id| kept(id))
                .filter_map(|id| lbs.get(id))
                .map(|lb| &lb.spec)
                .collect(),
            None => lbs
                .shared()
                .filter(|(id, lb)| kept(id) && scope.takes(&lb.spec))
                .map(|(_, lb)| &lb.spec)
                .collect(),
        };
        // Whether a PreserveDip LB not taken has `ep` as a backend: asked
        // only for the backends of the LBs taken, and it stops at the first.
        let others_have = |ep: &Uuid| {
            lbs.shared().any(|(id, lb)| {
                kept(id)
                    && !taken(id, &lb.spec)
                    && super::preserve_dip::is_preserve_dip(&lb.spec)
                    && lb.spec.endpoints.contains(ep)
            })
        };
        if let Some((_, Some(spec))) = replacing {
            specs.push(spec);
        }
        let mut out = Shared::default();
        for spec in &specs {
            out.preserve_dip.add(st, spec, gone, &mut out.vips);
        }
        let asked: Vec<&LoadBalancerSpec> = specs.iter().copied().chain(scope.changed()).collect();
        out.preserve_dip.keep_ports(st, &asked, &others_have, gone);
        for spec in specs.into_iter().filter(|s| is_dsr(s)) {
            let Some(net) = spec
                .endpoints
                .iter()
                .find_map(|e| st.endpoints.get(e))
                .map(|e| e.network)
            else {
                continue;
            };
            for (id, ep) in st.endpoints.iter().filter(|(id, _)| Some(*id) != gone) {
                let Some(ns) = ep.namespace.and_then(|n| st.namespaces.get(&n)) else {
                    continue;
                };
                if ns.host || ep.network != net {
                    continue;
                }
                if spec.endpoints.contains(id) {
                    for vip in super::frontend_vips4(spec) {
                        out.vips.insert((ns.path.clone(), vip));
                    }
                } else {
                    out.ports.insert(names::host_veth(id));
                }
            }
        }
        out
    }

    /// The ops from `self` to `after`: those to run before the LB's
    /// element change (VIPs onto backends, ports hooked), and after it
    /// (ports unhooked, VIPs off), so a backend never gets a steered
    /// packet for a VIP it does not hold.
    pub(crate) fn ops_to(&self, after: &Shared) -> (Vec<Op>, Vec<Op>) {
        let mut before = local_routes(after.vips.difference(&self.vips), true);
        let hook: Vec<SetElement> = after
            .ports
            .difference(&self.ports)
            .map(|p| hostnet_nft::dsr::client_port(p))
            .collect();
        if !hook.is_empty() {
            before.push(Op::AddElements(hook));
        }
        let (add, delete) = self.preserve_dip.elements_to(&after.preserve_dip);
        let (add, delete) = super::preserve_dip::ops(add, delete);
        before.extend(add);
        let mut later: Vec<Op> = delete.into_iter().collect();
        let unhook: Vec<SetElement> = self
            .ports
            .difference(&after.ports)
            .map(|p| hostnet_nft::dsr::client_port(p))
            .collect();
        if !unhook.is_empty() {
            later.push(Op::DeleteElements(unhook));
        }
        later.extend(local_routes(self.vips.difference(&after.vips), false));
        (before, later)
    }

    /// Every port and VIP, for the start-up load.
    pub(crate) fn all(st: &State) -> (Vec<SetElement>, Vec<Op>) {
        let (ops, _) = Shared::default().ops_to(&Shared::of(st, None, None, Scope::All));
        let mut ports = Vec::new();
        let mut vips = Vec::new();
        for op in ops {
            match op {
                Op::AddElements(e) => ports.extend(e),
                other => vips.push(other),
            }
        }
        (ports, vips)
    }

    /// After an attach or detach (`self` made with the same `scope`):
    /// make the kernel follow, best effort (what fails is logged and redone
    /// by the next reconcile).
    pub(crate) fn follow(
        &self,
        st: &State,
        dp: &dyn hostnet_dataplane::Dataplane,
        scope: Scope<'_>,
    ) {
        let after = Shared::of(st, None, None, scope);
        if after == *self {
            return;
        }
        let (first, later) = self.ops_to(&after);
        let ops: Vec<Op> = first.into_iter().chain(later).collect();
        for e in hostnet_dataplane::teardown(dp, &ops) {
            log::warn!("direct server return: {e} (left for the next reconcile)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn shared(ports: &[&str], vips: &[(&str, [u8; 4])]) -> Shared {
        Shared {
            ports: ports.iter().map(|p| p.to_string()).collect(),
            vips: vips
                .iter()
                .map(|(ns, a)| (PathBuf::from(ns), Ipv4Addr::from(*a)))
                .collect(),
            preserve_dip: Default::default(),
        }
    }

    fn lb(vip: &str, backends: &[&str], pm_flags: u32, flags: u32) -> LoadBalancerSpec {
        let body = serde_json::json!({
            "HostComputeEndpoints": backends.iter().map(|b| format!("{b}-0000-4000-8000-000000000000")).collect::<Vec<_>>(),
            "FrontendVIPs": [vip],
            "PortMappings": [{ "Protocol": 6, "InternalPort": 80, "ExternalPort": 80, "Flags": pm_flags }],
            "Flags": flags,
        });
        let wire = serde_json::from_value(body).unwrap();
        hostnet_model::validate_load_balancer(&wire).unwrap()
    }

    #[test]
    fn a_change_takes_only_the_lbs_sharing_its_vips() {
        let changed = lb("10.96.0.1", &["00000001"], 8, 0);
        let scope = Scope::Lb(None, Some(&changed));
        assert!(
            scope.takes(&lb("10.96.0.1", &["00000009"], 0, 1)),
            "same VIP"
        );
        assert!(
            !scope.takes(&lb("10.96.0.2", &["00000001"], 8, 0)),
            "a shared backend: its port is kept by keep_ports, the LB not taken"
        );
        assert!(
            !scope.takes(&lb("10.96.0.2", &["00000001"], 0, 1)),
            "DSR elsewhere"
        );
        assert!(
            !scope.takes(&lb("10.96.0.2", &["00000002"], 8, 0)),
            "unrelated"
        );
        let dsr = lb("10.96.0.3", &["00000003"], 0, 1);
        assert!(Scope::Lb(Some(&dsr), None).takes(&lb("10.96.0.4", &["00000004"], 0, 1)));
        let ep = Uuid::parse_str("00000001-0000-4000-8000-000000000000").unwrap();
        assert!(Scope::Endpoint(&ep).takes(&changed));
        assert!(!Scope::Endpoint(&ep).takes(&lb("10.96.0.2", &["00000002"], 8, 0)));
        assert!(Scope::All.takes(&changed));
    }

    #[test]
    fn vips_go_on_before_ports_are_hooked_and_come_off_after() {
        let before = shared(&["hnveA"], &[("/ns/b1", [10, 96, 0, 10])]);
        let after = shared(&["hnveB"], &[("/ns/b2", [10, 96, 0, 10])]);
        let (first, later) = before.ops_to(&after);
        assert!(
            matches!(&first[0], Op::AddLocalRoutes(r) if r[0].netns == Path::new("/ns/b2") && r[0].addresses == [Ipv4Addr::new(10, 96, 0, 10)])
        );
        assert!(
            matches!(&first[1], Op::AddElements(e) if e.len() == 1 && e[0].text == "\"hnveB\"")
        );
        assert!(matches!(&later[0], Op::DeleteElements(e) if e[0].text == "\"hnveA\""));
        assert!(matches!(&later[1], Op::DeleteLocalRoutes(r) if r[0].netns == Path::new("/ns/b1")));
        assert_eq!(first.len() + later.len(), 4);
        // No change, no ops.
        let (first, later) = after.ops_to(&after.clone());
        assert!(first.is_empty() && later.is_empty());
    }

    #[test]
    fn local_routes_are_one_op_grouped_by_namespace() {
        let s = shared(
            &[],
            &[
                ("/ns/b1", [10, 96, 0, 1]),
                ("/ns/b1", [10, 96, 0, 2]),
                ("/ns/b2", [10, 96, 0, 1]),
            ],
        );
        let (first, later) = Shared::default().ops_to(&s);
        assert!(later.is_empty());
        let [Op::AddLocalRoutes(routes)] = &first[..] else {
            panic!("{first:?}");
        };
        let grouped: Vec<(&str, usize)> = routes
            .iter()
            .map(|r| (r.netns.to_str().unwrap(), r.addresses.len()))
            .collect();
        assert_eq!(grouped, [("/ns/b1", 2), ("/ns/b2", 1)]);
        let (first, later) = s.ops_to(&Shared::default());
        assert!(first.is_empty());
        assert!(matches!(&later[..], [Op::DeleteLocalRoutes(r)] if r.len() == 2));
    }

    #[test]
    fn the_vip_index_takes_what_takes_says_and_forgets_removed_lbs() {
        let specs = [
            lb("10.96.0.1", &["00000009"], 0, 1),
            lb("10.96.0.2", &["00000001"], 8, 0),
            lb("10.96.0.2", &["00000001"], 0, 1),
            lb("10.96.0.3", &["00000002"], 8, 0),
            lb("10.96.0.1", &["00000003"], 0, 0),
        ];
        let mut lbs = super::super::LoadBalancers::default();
        let ids: Vec<Uuid> = (1..=specs.len() as u128).map(Uuid::from_u128).collect();
        for (id, spec) in ids.iter().zip(&specs) {
            let rec = super::super::LoadBalancerRec {
                obj: Default::default(),
                spec: spec.clone(),
            };
            lbs.insert(*id, rec);
        }
        let check = |lbs: &super::super::LoadBalancers, changed: &LoadBalancerSpec| {
            let scope = Scope::Lb(None, Some(changed));
            let expected: BTreeSet<Uuid> = lbs
                .shared()
                .filter(|(_, lb)| scope.takes(&lb.spec))
                .map(|(id, _)| *id)
                .collect();
            assert_eq!(scope.indexed(lbs), Some(expected));
        };
        for changed in [
            lb("10.96.0.1", &["00000001"], 8, 0),
            lb("10.96.0.2", &["00000001"], 8, 0),
            lb("10.96.0.4", &["00000001"], 0, 1),
            lb("10.96.0.5", &["00000001"], 8, 0),
        ] {
            check(&lbs, &changed);
        }
        lbs.remove(&ids[0]);
        lbs.remove(&ids[2]);
        let changed = lb("10.96.0.2", &["00000001"], 0, 1);
        check(&lbs, &changed);
        assert_eq!(
            Scope::Lb(None, Some(&changed)).indexed(&lbs),
            Some(BTreeSet::from([ids[1]]))
        );
    }
}
