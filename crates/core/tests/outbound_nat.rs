//! OutBoundNAT in the service, against the recording dataplane and the
//! in-memory store (tier 0): the elements planned, and the model's trace
//! held against the kernel's resolution. The packets are in
//! crates/testbed/tests/outbound_nat.rs.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use common::*;

use hostnet_core::Kind;
use hostnet_dataplane::Op;
use hostnet_model::ErrorCode;
use hostnet_nft::onat::{self, OnatPolicy, SnatTo};
use hostnet_store::MemoryStore;
use serde_json::json;

/// The outcome the trace shows for a destination: its source after the
/// walk, and whether the nat layer rewrote it.
fn traced_nat(f: &Fixture, ep: &str, dst: Ipv4Addr) -> Option<String> {
    let t = f.trace(ep, &dst.to_string());
    let text = t["Text"].as_str().unwrap();
    let nat_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("nat"))
        .unwrap_or("");
    nat_line.contains("snat").then(|| {
        let after = t["PacketAfter"].as_str().unwrap();
        after
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .split(':')
            .next()
            .unwrap()
            .to_string()
    })
}

#[test]
fn outbound_nat_on_a_nat_endpoint_traces_as_the_kernel_resolves_it() {
    let f = start(Arc::new(MemoryStore::new()));
    let policies = json!([
        { "Type": "OutBoundNAT", "Settings": { "Exceptions": ["203.0.113.0/24", "10.0.0.0/8"] } },
        { "Type": "OutBoundNAT", "Settings": { "VirtualIP": "192.0.2.200", "Destinations": ["203.0.113.7/32", "10.1.0.0/16"] } }
    ]);
    let (ep, ip) = f.nat_endpoint(policies, false);
    let ops = f.dp.take();
    let texts: Vec<String> = ops
        .iter()
        .filter_map(|o| match o {
            Op::AddElements(e) => Some(e.iter().map(|e| format!("{} {}", e.set, e.text))),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(texts.contains(&format!("onat_sources4 {ip}")), "{texts:?}");
    assert!(
        texts.contains(&format!("onat_vips4 {ip} . 203.0.113.7/32 : 192.0.2.200")),
        "{texts:?}"
    );
    assert!(
        texts.contains(&format!("onat_exceptions4 {ip} . 203.0.113.0-203.0.113.6")),
        "{texts:?}"
    );

    // What the kernel is given (onat::resolve over the same policies)
    // and what the model's walk says agree, destination by destination.
    let kernel = onat::masquerade_the_rest(&[
        OnatPolicy {
            exceptions: vec![
                "203.0.113.0/24".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ],
            ..OnatPolicy::default()
        },
        OnatPolicy {
            virtual_ip: Some("192.0.2.200".parse().unwrap()),
            destinations: vec![
                "203.0.113.7/32".parse().unwrap(),
                "10.1.0.0/16".parse().unwrap(),
            ],
            ..OnatPolicy::default()
        },
    ]);
    for d in [
        "203.0.113.7",
        "203.0.113.8",
        "10.1.2.3",
        "10.2.0.1",
        "198.51.100.1",
        "8.8.8.8",
    ] {
        let d: Ipv4Addr = d.parse().unwrap();
        let want = match onat::resolve(&kernel, d) {
            None => None,
            Some(SnatTo::Host) => Some(ip.clone()), // the trace keeps a masqueraded source
            Some(SnatTo::Address(a)) => Some(a.to_string()),
        };
        assert_eq!(traced_nat(&f, &ep, d), want, "{d}");
    }
    // Within the network nothing is NATed, whatever the policies say.
    assert_eq!(traced_nat(&f, &ep, "10.88.0.9".parse().unwrap()), None);

    // IPv6 and unusable virtual IPs are refused, nothing made.
    for bad in [
        json!({ "Type": "OutBoundNAT", "Settings": { "Flags": 2 } }),
        json!({ "Type": "OutBoundNAT", "Settings": { "Exceptions": ["fd00::/8"] } }),
        json!({ "Type": "OutBoundNAT", "Settings": { "VirtualIP": "224.0.0.1" } }),
        json!({ "Type": "OutBoundNAT", "Settings": { "Destinations": ["10.0.0.0/33"] } }),
    ] {
        let req = json!({ "HostComputeNetwork": f.nat(), "Policies": [bad] });
        let e = f.svc.create(Kind::Endpoint, &body(req)).unwrap_err();
        assert!(
            matches!(
                e.code,
                ErrorCode::InvalidPolicy | ErrorCode::RequestUnsupported
            ),
            "{bad}: {e}"
        );
    }
    assert_eq!(f.svc.list(Kind::Endpoint, None).unwrap().len(), 1);
    assert!(f.dp.take().is_empty());
}

#[test]
fn outbound_nat_comes_and_goes_by_endpoint_modify() {
    let f = start(Arc::new(MemoryStore::new()));
    let (ep, ip) = f.nat_endpoint(json!([]), false);
    f.dp.take();
    let policy = json!({ "Type": "OutBoundNAT", "Settings": { "VirtualIP": "192.0.2.200", "Destinations": ["203.0.113.7"] } });
    let change = |request: &str| {
        let req = json!({ "ResourceType": "Policy", "RequestType": request, "Settings": { "Policies": [policy] } });
        f.svc.modify(Kind::Endpoint, &ep, &body(req)).unwrap();
        let ops = f.dp.take();
        let [Op::ReplaceElements { delete, add }] = &ops[..] else {
            panic!("{ops:?}")
        };
        let texts = |els: &[hostnet_nft::SetElement]| {
            els.iter()
                .map(|e| format!("{} {}", e.set, e.text))
                .collect::<Vec<_>>()
        };
        (texts(delete), texts(add))
    };
    let vip = format!("onat_vips4 {ip} . 203.0.113.7/32 : 192.0.2.200");
    let (delete, add) = change("Add");
    assert!(delete.is_empty() && add.contains(&vip), "{add:?}");
    assert_eq!(
        traced_nat(&f, &ep, "203.0.113.7".parse().unwrap()).as_deref(),
        Some("192.0.2.200")
    );
    let (delete, add) = change("Remove");
    assert!(add.is_empty() && delete.contains(&vip), "{delete:?}");
    assert_eq!(
        traced_nat(&f, &ep, "203.0.113.7".parse().unwrap()).as_deref(),
        Some(ip.as_str())
    );
}
