//! ACLs on overlay endpoints against the recording dataplane (tier 0):
//! their elements go to the network's router, never the host's tables;
//! the subnet's bridge filters exactly while one of its endpoints walks
//! ACLs; a modify is one `ReplaceElements` in the router. Packets:
//! crates/testbed/tests/acl_overlay.rs.

mod common;

use common::*;
use hostnet_core::Kind;
use hostnet_dataplane::Op;
use serde_json::{json, Value};

fn overlay_host() -> Fixture {
    let f = fresh();
    f.dp.set_adapter(adapter("eth0", 2, "192.0.2.11/24"));
    f.dp.set_default_route(Some("eth0"));
    f
}

fn overlay_network(f: &Fixture) -> String {
    let net = f
        .svc
        .create(
            Kind::Network,
            &body(json!({"Name": "ov", "Type": "Overlay",
                "Ipams": [{"Type": "Static", "Subnets": [
                    {"IpAddressPrefix": "10.0.1.0/24",
                     "Policies": [{"Type": "VSID", "Settings": {"IsolationId": 4100}}]},
                    {"IpAddressPrefix": "10.0.2.0/24",
                     "Policies": [{"Type": "VSID", "Settings": {"IsolationId": 4101}}]}]}]})),
        )
        .expect("overlay network");
    net["ID"].as_str().unwrap().to_string()
}

fn deny_in() -> Value {
    json!({"Type": "ACL", "Settings": {"Id": "deny", "Action": "Block", "Direction": "In", "Priority": 1000}})
}

fn endpoint(f: &Fixture, net: &str, ip: &str, policies: Value) -> String {
    let ep = f
        .svc
        .create(
            Kind::Endpoint,
            &body(json!({"HostComputeNetwork": net,
                "IpConfigurations": [{"IpAddress": ip}], "Policies": policies})),
        )
        .expect("endpoint");
    ep["ID"].as_str().unwrap().to_string()
}

fn change(request: &str, policies: Value) -> Vec<u8> {
    body(json!({"ResourceType": "Policy", "RequestType": request,
        "Settings": {"Policies": policies}}))
}

/// The bridges whose filtering the ops set, with the value, in order.
fn filtering(ops: &[Op]) -> Vec<(String, bool)> {
    ops.iter()
        .filter_map(|op| match op {
            Op::InNetns { op, .. } => match op.as_ref() {
                Op::BridgeNfCallIptables { bridge, on } => Some((bridge.clone(), *on)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Whether an element set is ACL state (compiled maps, ACL endpoints).
fn acl_set(set: &str) -> bool {
    set.starts_with("acl")
}

/// ACL elements the ops add in the host's tables.
fn host_acl_elements(ops: &[Op]) -> usize {
    ops.iter()
        .map(|op| match op {
            Op::AddElements(els) => els.iter().filter(|e| acl_set(e.set)).count(),
            Op::ReplaceElements { add, .. } => add.iter().filter(|e| acl_set(e.set)).count(),
            _ => 0,
        })
        .sum()
}

/// ACL elements the ops add, and delete, in a router.
fn router_acl_elements(ops: &[Op]) -> (Vec<String>, Vec<String>) {
    let texts = |els: &[hostnet_nft::SetElement]| -> Vec<String> {
        els.iter()
            .filter(|e| acl_set(e.set))
            .map(|e| format!("{} {}", e.set, e.text))
            .collect()
    };
    let (mut add, mut del) = (Vec::new(), Vec::new());
    for op in ops {
        match op {
            Op::AddNetnsElements { elements, .. } => add.extend(texts(elements)),
            Op::DeleteNetnsElements { elements, .. } => del.extend(texts(elements)),
            Op::InNetns { op, .. } => {
                if let Op::ReplaceElements { delete, add: a } = op.as_ref() {
                    add.extend(texts(a));
                    del.extend(texts(delete));
                }
            }
            _ => {}
        }
    }
    (add, del)
}

#[test]
fn acl_elements_go_to_the_router_and_the_bridge_filters_while_needed() {
    let f = overlay_host();
    let net = overlay_network(&f);
    f.dp.take();
    let a = endpoint(&f, &net, "10.0.1.10", json!([deny_in()]));
    let ops = f.dp.take();
    assert_eq!(host_acl_elements(&ops), 0, "{ops:?}");
    let (add, _) = router_acl_elements(&ops);
    assert!(
        add.contains(&"acl_endpoints4 10.0.1.10".to_string()),
        "{add:?}"
    );
    assert_eq!(filtering(&ops), [("hnvb001004".to_string(), true)]);

    // A second ACL endpoint on the same subnet changes no bridge, one on
    // the other subnet turns its bridge on, one without ACLs nothing.
    let a2 = endpoint(&f, &net, "10.0.1.11", json!([deny_in()]));
    assert!(filtering(&f.dp.take()).is_empty());
    endpoint(&f, &net, "10.0.2.30", json!([deny_in()]));
    assert_eq!(filtering(&f.dp.take()), [("hnvb001005".to_string(), true)]);
    let plain = endpoint(&f, &net, "10.0.1.12", json!([]));
    let ops = f.dp.take();
    assert!(filtering(&ops).is_empty());
    assert!(router_acl_elements(&ops).0.is_empty(), "{ops:?}");

    // The bridge stops filtering with its last ACL endpoint.
    f.svc.delete(Kind::Endpoint, &a).unwrap();
    let ops = f.dp.take();
    assert!(filtering(&ops).is_empty());
    assert!(router_acl_elements(&ops)
        .1
        .contains(&"acl_endpoints4 10.0.1.10".to_string()));
    f.svc.delete(Kind::Endpoint, &a2).unwrap();
    assert_eq!(filtering(&f.dp.take()), [("hnvb001004".to_string(), false)]);

    // Modify: one ReplaceElements in the router, the filtering with it.
    f.svc
        .modify(Kind::Endpoint, &plain, &change("Add", json!([deny_in()])))
        .unwrap();
    let ops = f.dp.take();
    assert_eq!(host_acl_elements(&ops), 0, "{ops:?}");
    assert!(router_acl_elements(&ops)
        .0
        .contains(&"acl_endpoints4 10.0.1.12".to_string()));
    assert_eq!(filtering(&ops), [("hnvb001004".to_string(), true)]);
    let replaces = ops
        .iter()
        .filter(|op| matches!(op, Op::InNetns { op, .. } if matches!(op.as_ref(), Op::ReplaceElements { .. })))
        .count();
    assert_eq!(replaces, 1, "{ops:?}");
    f.svc
        .modify(Kind::Endpoint, &plain, &change("Update", json!([])))
        .unwrap();
    let ops = f.dp.take();
    assert_eq!(filtering(&ops), [("hnvb001004".to_string(), false)]);
    assert!(router_acl_elements(&ops)
        .1
        .contains(&"acl_endpoints4 10.0.1.12".to_string()));

    // A NetworkACL makes every local endpoint walk ACLs: both bridges.
    f.svc
        .modify(
            Kind::Network,
            &net,
            &change(
                "Add",
                json!([{"Type": "NetworkACL", "Settings": {"Id": "n", "Action": "Block",
                    "Direction": "In", "Priority": 50, "Protocols": "6", "LocalPorts": "7000"}}]),
            ),
        )
        .unwrap();
    let ops = f.dp.take();
    assert_eq!(filtering(&ops), [("hnvb001004".to_string(), true)]);
    assert_eq!(host_acl_elements(&ops), 0, "{ops:?}");
}
