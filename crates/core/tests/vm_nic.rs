//! VM NIC endpoints (`VmNic`, tier 0): the port is a persistent tap on the
//! bridge, with the port elements a veth gets; it cannot be attached to a
//! namespace, is rebuilt after a restart, and goes with the endpoint.

mod common;

use std::sync::Arc;

use common::*;
use hostnet_core::Kind;
use hostnet_dataplane::Op;
use hostnet_model::ErrorCode;
use hostnet_store::MemoryStore;
use serde_json::json;

fn taps(ops: &[Op]) -> Vec<String> {
    ops.iter()
        .filter_map(|o| match o {
            Op::CreateTap { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// Whether some op adds a device element for `port` (its firewall
/// defaults' netdev hook).
fn hooks(ops: &[Op], port: &str) -> bool {
    ops.iter().any(|o| match o {
        Op::AddElements(els) => els.iter().any(|e| e.text == format!("\"{port}\"")),
        _ => false,
    })
}

#[test]
fn a_vm_nic_is_a_tap_with_its_ports_elements_until_deleted() {
    let store = Arc::new(MemoryStore::new());
    let f = start(store.clone());
    f.dp.take();
    let ep = f
        .svc
        .create(
            Kind::Endpoint,
            &body(json!({ "HostComputeNetwork": f.nat(), "VmNic": true })),
        )
        .unwrap();
    assert_eq!(f.svc.version()["Features"]["VmNic"], json!(true));
    let id = ep["ID"].as_str().unwrap().to_string();
    let tap = ep["InterfaceName"].as_str().unwrap().to_string();
    assert!(tap.starts_with("hnve"), "{ep}");
    assert_eq!(ep["VmNic"], json!(true));
    assert_eq!(ep["TapMtu"], json!(1500));
    assert_eq!(
        ep["TapNetNsPath"],
        json!(format!("/proc/{}/ns/net", std::process::id()))
    );
    let ops = f.dp.take();
    assert_eq!(taps(&ops), std::slice::from_ref(&tap), "{ops:?}");
    assert!(
        hooks(&ops, &tap),
        "no firewall defaults on the tap: {ops:?}"
    );

    // Not for a namespace.
    let ns = f.svc.create(Kind::Namespace, b"{}").unwrap();
    let req = json!({ "ResourceType": "Endpoint", "RequestType": "Add", "Settings": { "EndpointId": id } });
    let e = f
        .svc
        .modify(Kind::Namespace, ns["ID"].as_str().unwrap(), &body(req))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::EndpointAlreadyAttached, "{e}");
    assert!(e.message.contains("VM NIC"), "{e}");
    assert!(taps(&f.dp.take()).is_empty());
    drop(f);

    // A restart finds no tap (the recorder reports no links): rebuilt
    // (its elements are in the reloaded tables).
    let g = start(store);
    let ops = g.dp.take();
    assert_eq!(taps(&ops), std::slice::from_ref(&tap), "{ops:?}");
    assert_eq!(
        g.svc.get(Kind::Endpoint, &id).unwrap()["InterfaceName"],
        json!(tap)
    );

    g.svc.delete(Kind::Endpoint, &id).unwrap();
    let ops = g.dp.take();
    assert!(
        ops.contains(&Op::DeleteLink { name: tap.clone() }),
        "the tap stayed: {ops:?}"
    );
}

#[test]
fn a_vm_nic_in_a_namespace_or_on_another_host_is_refused() {
    let f = fresh();
    f.dp.take();
    for extra in [
        json!({ "HostComputeNamespace": "C1B2C3D4-0000-4000-8000-000000000001" }),
        json!({ "Flags": 1 }),
    ] {
        let mut req = json!({ "HostComputeNetwork": f.nat(), "VmNic": true });
        req.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let e = f.svc.create(Kind::Endpoint, &body(&req)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidEndpoint, "{req}: {e}");
        assert!(e.message.contains("VmNic"), "{e}");
    }
    assert!(f.dp.take().is_empty());
    assert!(f.svc.list(Kind::Endpoint, None).unwrap().is_empty());
}

/// What acts inside an endpoint's namespace (route objects, DSR and
/// PreserveDip backends) is refused for a VM NIC rather than ignored; a
/// plain load balancer takes it as a backend.
#[test]
fn namespace_only_features_refuse_a_vm_nic_and_a_plain_load_balancer_takes_it() {
    let f = fresh();
    let ep = f
        .svc
        .create(
            Kind::Endpoint,
            &body(json!({ "HostComputeNetwork": f.nat(), "VmNic": true })),
        )
        .unwrap();
    let id = ep["ID"].as_str().unwrap();
    f.dp.take();
    let route = json!({
        "HostComputeEndpoints": [id],
        "Routes": [{ "DestinationPrefix": "198.18.0.0/15", "NextHop": "10.88.0.1" }]
    });
    let e = f.svc.create(Kind::Route, &body(route)).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidEndpoint, "{e}");
    assert!(e.message.contains("VM NIC"), "{e}");
    let lb = |flags: u32, pm_flags: u32| {
        json!({
            "HostComputeEndpoints": [id],
            "FrontendVIPs": ["10.96.0.10"],
            "Flags": flags,
            "PortMappings": [{ "Protocol": 6, "InternalPort": 80, "ExternalPort": 80, "Flags": pm_flags }],
        })
    };
    for (flags, pm_flags) in [(1, 0), (0, 8)] {
        let e = f
            .svc
            .create(Kind::LoadBalancer, &body(lb(flags, pm_flags)))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::RequestUnsupported, "{e}");
        assert!(e.message.contains("VM NIC"), "{e}");
    }
    assert!(
        f.dp.take().is_empty(),
        "a refused request changed the kernel"
    );
    f.svc
        .create(Kind::LoadBalancer, &body(lb(0, 0)))
        .unwrap_or_else(|e| panic!("{e}"));
}
