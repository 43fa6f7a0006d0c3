//! Route objects (`HostComputeRoute`) in the service, against the
//! recording dataplane and the in-memory store (tier 0): what is planned,
//! stored and traced, and that refusals leave nothing. The packets are in
//! crates/testbed/tests/routes.rs.

mod common;

use std::sync::Arc;

use common::*;

use hostnet_core::Kind;
use hostnet_dataplane::Op;
use hostnet_model::ErrorCode;
use hostnet_store::{Collection, MemoryStore, Store};
use serde_json::{json, Value};

impl Fixture {
    fn stored_routes(&self) -> usize {
        self.store.list(Collection::Routes).unwrap().len()
    }
}

fn route_ops(ops: &[Op]) -> Vec<&Op> {
    ops.iter()
        .filter(|o| matches!(o, Op::AddRoutes { .. } | Op::DeleteRoutes { .. }))
        .collect()
}

#[test]
fn a_route_object_lives_in_its_endpoints_namespaces_until_deleted() {
    let f = start(Arc::new(MemoryStore::new()));
    let (a, _) = f.nat_endpoint(json!([]), true);
    let (b, _) = f.nat_endpoint(json!([]), false);
    let (_, hop) = f.nat_endpoint(json!([]), false);
    f.dp.take();

    let created = f
        .svc
        .create(
            Kind::Route,
            &body(json!({
                "Name": "to-lab",
                "HostComputeEndpoints": [a.to_lowercase(), b],
                "Setting": [{ "DestinationPrefix": "192.0.2.0/24", "NextHop": hop, "NeedEncap": false }],
                "SchemaVersion": { "Major": 2, "Minor": 0 }
            })),
        )
        .unwrap();
    let id = created["ID"].as_str().unwrap().to_string();
    // The key received is echoed; the endpoints come back as hostnet prints IDs.
    assert!(
        created.get("Setting").is_some() && created.get("Routes").is_none(),
        "{created}"
    );
    assert_eq!(created["HostComputeEndpoints"], json!([a, b]));
    assert_eq!(f.svc.get(Kind::Route, &id).unwrap(), created);
    let by_name = f
        .svc
        .list(Kind::Route, Some(r#"{"Filter":"{\"Name\":\"to-lab\"}"}"#))
        .unwrap();
    assert_eq!(by_name, std::slice::from_ref(&created));

    // Only the attached endpoint has a namespace to change; the other gets
    // the route when it is attached.
    let ops = f.dp.take();
    let [Op::AddRoutes { link, routes, .. }] = route_ops(&ops)[..] else {
        panic!("{ops:?}")
    };
    assert_eq!(link, "eth0");
    assert_eq!(routes[0].destination.to_string(), "192.0.2.0/24");
    assert_eq!(routes[0].via.unwrap().to_string(), hop);
    let ns = f.svc.create(Kind::Namespace, b"{}").unwrap();
    let req = json!({ "ResourceType": "Endpoint", "RequestType": "Add", "Settings": { "EndpointId": b } });
    f.svc
        .modify(Kind::Namespace, ns["ID"].as_str().unwrap(), &body(req))
        .unwrap();
    let ops = f.dp.take();
    assert!(
        ops.iter().any(|o| matches!(o, Op::CreateVeth { routes, .. } if routes.iter().any(|r| r.destination.to_string() == "192.0.2.0/24"))),
        "{ops:?}"
    );

    // The trace's route layer says where the prefix goes, and why.
    let t = f.trace(&a, "192.0.2.7");
    let text = t["Text"].as_str().unwrap();
    assert!(text.contains(&format!("route via {hop}")), "{text}");
    let t = f.trace(&a, "203.0.113.1");
    assert!(
        t["Text"].as_str().unwrap().contains("route via 10.88.0.1"),
        "{t}"
    );

    // No modify in HNS: E_NOTIMPL, nothing changed.
    let e = f
        .svc
        .modify(
            Kind::Route,
            &id,
            &body(json!({ "RequestType": "Update", "Settings": {} })),
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotImplemented, "{e}");

    f.svc.delete(Kind::Route, &id).unwrap();
    let ops = f.dp.take();
    assert!(
        matches!(
            route_ops(&ops)[..],
            [Op::DeleteRoutes { .. }, Op::DeleteRoutes { .. }]
        ),
        "{ops:?}"
    );
    assert_eq!(
        f.svc.get(Kind::Route, &id).unwrap_err().code,
        ErrorCode::NotFound
    );
    assert_eq!(f.stored_routes(), 0);
    assert!(!f.trace(&a, "192.0.2.7")["Text"]
        .as_str()
        .unwrap()
        .contains(&hop));
}

#[test]
fn routes_survive_a_restart_and_endpoints_leave_them() {
    let store = Arc::new(MemoryStore::new());
    let f = start(store.clone());
    let (a, _) = f.nat_endpoint(json!([]), true);
    let (b, _) = f.nat_endpoint(json!([]), true);
    let route = f
        .svc
        .create(
            Kind::Route,
            &body(json!({
                "HostComputeEndpoints": [a, b],
                "Routes": [{ "DestinationPrefix": "198.18.0.0/15", "NextHop": "10.88.0.1" },
                           { "DestinationPrefix": "192.0.2.0/24", "NeedEncap": true }]
            })),
        )
        .unwrap();
    let id = route["ID"].as_str().unwrap().to_string();
    drop(f);

    let g = start(store);
    assert_eq!(g.svc.get(Kind::Route, &id).unwrap(), route);
    // Reprogrammed at start: in the rebuilt veths and once more as routes.
    let ops = g.dp.take();
    assert_eq!(route_ops(&ops).len(), 2, "{ops:?}");
    // NeedEncap without a NextHop goes through the host (the gateway here).
    let t = g.trace(&a, "192.0.2.9");
    assert!(
        t["Text"].as_str().unwrap().contains("route via 10.88.0.1"),
        "{t}"
    );
    assert!(
        t["Text"]
            .as_str()
            .unwrap()
            .contains(&format!("(HostComputeRoute Id \"{id}\")")),
        "{t}"
    );

    g.svc
        .delete(Kind::Endpoint, &a)
        .unwrap_or_else(|e| panic!("{e}"));
    let left = g.svc.get(Kind::Route, &id).unwrap();
    assert_eq!(left["HostComputeEndpoints"], json!([b]));
    g.dp.take();
    g.svc.delete(Kind::Route, &id).unwrap();
    assert_eq!(route_ops(&g.dp.take()).len(), 1, "only b's namespace");
}

#[test]
fn bad_routes_are_refused_and_leave_nothing() {
    let f = start(Arc::new(MemoryStore::new()));
    let (a, a_ip) = f.nat_endpoint(json!([]), true);
    let (b, _) = f.nat_endpoint(
        json!([{ "Type": "SDNRoute", "Settings": { "DestinationPrefix": "172.20.0.0/16", "NextHop": "10.88.0.1" } }]),
        true,
    );
    f.dp.take();
    let route =
        |eps: Value, routes: Value| json!({ "HostComputeEndpoints": eps, "Routes": routes });
    let r = |d: &str, h: &str| json!([{ "DestinationPrefix": d, "NextHop": h }]);
    let cases = [
        (
            route(
                json!(["0A0B0C0D-0000-4000-8000-00000000DEAD"]),
                r("192.0.2.0/24", "10.88.0.1"),
            ),
            ErrorCode::EndpointNotFound,
            "does not exist",
        ),
        (
            route(json!([a]), r("192.0.2.0/33", "10.88.0.1")),
            ErrorCode::InvalidPrefix,
            "DestinationPrefix",
        ),
        (
            route(json!([a]), r("192.0.2.1/24", "10.88.0.1")),
            ErrorCode::InvalidPrefix,
            "DestinationPrefix",
        ),
        (
            route(json!([a]), r("192.0.2.0/24", "10.89.0.1")),
            ErrorCode::InvalidIp,
            "not reachable",
        ),
        (
            route(json!([a]), r("192.0.2.0/24", &a_ip)),
            ErrorCode::InvalidIp,
            "own address",
        ),
        (
            route(json!([a]), r("fd00::/64", "10.88.0.1")),
            ErrorCode::InvalidPrefix,
            "IPv4",
        ),
        (
            route(json!([a]), json!([])),
            ErrorCode::InvalidPolicy,
            "no routes",
        ),
        (
            route(json!([]), r("192.0.2.0/24", "10.88.0.1")),
            ErrorCode::InvalidEndpoint,
            "HostComputeEndpoints",
        ),
        (
            route(json!([a, b]), r("172.20.0.0/16", "10.88.0.1")),
            ErrorCode::PolicyAlreadyExists,
            "already has a route",
        ),
        (
            route(json!([a]), r("0.0.0.0/0", "10.88.0.1")),
            ErrorCode::PolicyAlreadyExists,
            "already has a route",
        ),
        (
            route(json!([a]), r("10.88.0.0/16", "10.88.0.1")),
            ErrorCode::PolicyAlreadyExists,
            "already has a route",
        ),
        (
            json!({ "HostComputeEndpoints": [a], "HostComputeNetwork": "0A0B0C0D-0000-4000-8000-00000000DEAD", "Routes": r("192.0.2.0/24", "10.88.0.1") }),
            ErrorCode::NetworkNotFound,
            "does not exist",
        ),
    ];
    for (req, code, says) in cases {
        let e = f.svc.create(Kind::Route, &body(req.clone())).unwrap_err();
        assert_eq!(e.code, code, "{req}: {e}");
        assert!(e.message.contains(says), "{req}: {e}");
    }
    assert!(f.svc.list(Kind::Route, None).unwrap().is_empty());
    assert_eq!(f.stored_routes(), 0);
    assert!(route_ops(&f.dp.take()).is_empty());
    assert!(!f.trace(&a, "192.0.2.1")["Text"]
        .as_str()
        .unwrap()
        .contains("HostComputeRoute"));
}

fn sdn_route(prefix: &str, hop: &str) -> Value {
    json!({ "Type": "SDNRoute", "Settings": { "DestinationPrefix": prefix, "NextHop": hop } })
}

fn change(request: &str, policies: Value) -> Vec<u8> {
    body(
        json!({ "ResourceType": "Policy", "RequestType": request, "Settings": { "Policies": policies } }),
    )
}

/// Each route op as "add|del PREFIX via HOP".
fn route_steps(ops: &[Op]) -> Vec<String> {
    route_ops(ops)
        .into_iter()
        .flat_map(|o| {
            let (verb, routes) = match o {
                Op::AddRoutes { routes, .. } => ("add", routes),
                Op::DeleteRoutes { routes, .. } => ("del", routes),
                _ => unreachable!(),
            };
            routes
                .iter()
                .map(move |r| format!("{verb} {} via {}", r.destination, r.via.unwrap()))
        })
        .collect()
}

#[test]
fn sdn_routes_change_by_endpoint_modify_in_its_namespace_and_trace() {
    let store = Arc::new(MemoryStore::new());
    let f = start(store.clone());
    let (_, hop1) = f.nat_endpoint(json!([]), false);
    let (_, hop2) = f.nat_endpoint(json!([]), false);
    let (a, _) = f.nat_endpoint(json!([sdn_route("192.0.2.0/24", &hop1)]), true);
    f.dp.take();

    // Add: one route more in the namespace, nothing else.
    f.svc
        .modify(
            Kind::Endpoint,
            &a,
            &change("Add", json!([sdn_route("198.51.100.0/24", &hop2)])),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let ops = f.dp.take();
    assert_eq!(
        route_steps(&ops),
        [format!("add 198.51.100.0/24 via {hop2}")]
    );
    assert_eq!(ops.len(), 1, "{ops:?}");
    let t = f.trace(&a, "198.51.100.7");
    assert!(
        t["Text"]
            .as_str()
            .unwrap()
            .contains(&format!("route via {hop2}")),
        "{t}"
    );

    // Update replaces the SDNRoutes: the one not named goes, a prefix with
    // a new next hop is deleted then added.
    f.svc
        .modify(
            Kind::Endpoint,
            &a,
            &change("Update", json!([sdn_route("192.0.2.0/24", &hop2)])),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        route_steps(&f.dp.take()),
        [
            format!("del 192.0.2.0/24 via {hop1}"),
            format!("del 198.51.100.0/24 via {hop2}"),
            format!("add 192.0.2.0/24 via {hop2}"),
        ]
    );
    assert!(f.trace(&a, "192.0.2.7")["Text"]
        .as_str()
        .unwrap()
        .contains(&format!("route via {hop2}")));
    assert!(f.trace(&a, "198.51.100.7")["Text"]
        .as_str()
        .unwrap()
        .contains("route via 10.88.0.1"));

    // Stored: a restart rebuilds the namespace with the changed route.
    drop(f);
    let g = start(store);
    let ops = g.dp.take();
    assert!(
        ops.iter().any(|o| matches!(o, Op::CreateVeth { routes, .. }
            if routes.iter().any(|r| r.destination.to_string() == "192.0.2.0/24" && r.via.unwrap().to_string() == hop2)
            && !routes.iter().any(|r| r.destination.to_string() == "198.51.100.0/24"))),
        "{ops:?}"
    );

    // Remove: the route leaves the namespace.
    g.svc
        .modify(
            Kind::Endpoint,
            &a,
            &change("Remove", json!([sdn_route("192.0.2.0/24", &hop2)])),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        route_steps(&g.dp.take()),
        [format!("del 192.0.2.0/24 via {hop2}")]
    );
    assert!(g.trace(&a, "192.0.2.7")["Text"]
        .as_str()
        .unwrap()
        .contains("route via 10.88.0.1"));
}

#[test]
fn a_detached_endpoints_changed_sdn_routes_come_with_its_attach() {
    let f = fresh();
    let (_, hop) = f.nat_endpoint(json!([]), false);
    let (a, _) = f.nat_endpoint(json!([]), false);
    f.dp.take();
    f.svc
        .modify(
            Kind::Endpoint,
            &a,
            &change("Add", json!([sdn_route("192.0.2.0/24", &hop)])),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(route_ops(&f.dp.take()).is_empty());
    let ns = f.svc.create(Kind::Namespace, b"{}").unwrap();
    let req = json!({ "ResourceType": "Endpoint", "RequestType": "Add", "Settings": { "EndpointId": a } });
    f.svc
        .modify(Kind::Namespace, ns["ID"].as_str().unwrap(), &body(req))
        .unwrap();
    let ops = f.dp.take();
    assert!(
        ops.iter().any(|o| matches!(o, Op::CreateVeth { routes, .. } if routes.iter().any(|r| r.destination.to_string() == "192.0.2.0/24"))),
        "{ops:?}"
    );
}

#[test]
fn a_refused_or_failed_sdn_route_change_leaves_the_old_routes() {
    let f = fresh();
    let (_, hop1) = f.nat_endpoint(json!([]), false);
    let (_, hop2) = f.nat_endpoint(json!([]), false);
    let (a, a_ip) = f.nat_endpoint(json!([sdn_route("192.0.2.0/24", &hop1)]), true);
    f.svc
        .create(
            Kind::Route,
            &body(json!({ "HostComputeEndpoints": [a],
                          "Routes": [{ "DestinationPrefix": "198.18.0.0/15", "NextHop": hop2 }] })),
        )
        .unwrap();
    f.dp.take();
    let stored = || f.svc.get(Kind::Endpoint, &a).unwrap();
    let before = stored();

    // The kernel fails the add after the old route was deleted: the
    // delete is taken back, nothing is stored.
    f.dp.fail_after(1);
    let e = f
        .svc
        .modify(
            Kind::Endpoint,
            &a,
            &change("Update", json!([sdn_route("203.0.113.0/24", &hop2)])),
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unexpected, "{e}");
    assert_eq!(
        route_steps(&f.dp.take()),
        [
            format!("del 192.0.2.0/24 via {hop1}"),
            format!("add 203.0.113.0/24 via {hop2}"),
            format!("add 192.0.2.0/24 via {hop1}"),
        ]
    );
    assert_eq!(stored(), before);
    assert!(f.trace(&a, "192.0.2.7")["Text"]
        .as_str()
        .unwrap()
        .contains(&format!("route via {hop1}")));

    // Refused before the kernel, with the create's codes.
    let cases = [
        (
            sdn_route("203.0.113.0/24", "10.89.0.1"),
            ErrorCode::InvalidIp,
            "not reachable",
        ),
        (
            sdn_route("203.0.113.0/24", &a_ip),
            ErrorCode::InvalidIp,
            "own address",
        ),
        (
            sdn_route("fd00::/64", &hop1),
            ErrorCode::InvalidPrefix,
            "IPv4",
        ),
        (
            sdn_route("198.18.0.0/15", &hop1),
            ErrorCode::PolicyAlreadyExists,
            "route object",
        ),
        (
            sdn_route("192.0.2.0/24", &hop2),
            ErrorCode::PolicyAlreadyExists,
            "already has a route",
        ),
        (
            sdn_route("0.0.0.0/0", &hop2),
            ErrorCode::PolicyAlreadyExists,
            "default route",
        ),
        (
            sdn_route("10.88.0.0/16", &hop2),
            ErrorCode::PolicyAlreadyExists,
            "subnet",
        ),
    ];
    for (policy, code, says) in cases {
        let e = f
            .svc
            .modify(Kind::Endpoint, &a, &change("Add", json!([policy.clone()])))
            .unwrap_err();
        assert_eq!(e.code, code, "{policy}: {e}");
        assert!(e.message.contains(says), "{policy}: {e}");
        assert!(f.dp.take().is_empty(), "{policy}");
        assert_eq!(stored(), before);
    }
}

/// The routes of the veths `ops` create, in the router's namespace or not.
fn veth_routes(ops: &[Op]) -> Vec<String> {
    ops.iter()
        .flat_map(|o| match o {
            Op::InNetns { op, .. } => veth_routes(std::slice::from_ref(op)),
            Op::CreateVeth { routes, .. } => routes
                .iter()
                .map(|r| format!("{} via {}", r.destination, r.via.unwrap()))
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn sdn_routes_on_overlay_endpoints_go_via_a_neighbour_or_the_router() {
    let f = fresh();
    f.dp.set_adapter(adapter("eth0", 2, "192.0.2.11/24"));
    f.dp.set_default_route(Some("eth0"));
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
    let encap = json!({ "Type": "SDNRoute", "Settings": { "DestinationPrefix": "198.51.100.0/24", "NeedEncap": true } });
    let ep = f
        .svc
        .create(
            Kind::Endpoint,
            &body(json!({"HostComputeNetwork": net["ID"],
                "IpConfigurations": [{"IpAddress": "10.0.1.10"}], "Policies": [encap]})),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let a = ep["ID"].as_str().unwrap().to_string();
    let ns = f.svc.create(Kind::Namespace, b"{}").unwrap();
    let req = json!({ "ResourceType": "Endpoint", "RequestType": "Add", "Settings": { "EndpointId": a } });
    f.dp.take();
    f.svc
        .modify(Kind::Namespace, ns["ID"].as_str().unwrap(), &body(req))
        .unwrap();
    // NeedEncap without a NextHop: through the subnet's router.
    let routes = veth_routes(&f.dp.take());
    assert!(
        routes.contains(&"198.51.100.0/24 via 10.0.1.1".to_string()),
        "{routes:?}"
    );
    assert!(f.trace(&a, "198.51.100.7")["Text"]
        .as_str()
        .unwrap()
        .contains("route via 10.0.1.1"));

    // A neighbour on the subnet (local or on another host) by modify: a
    // route in the container's namespace, nothing in the router's.
    f.svc
        .modify(
            Kind::Endpoint,
            &a,
            &change("Add", json!([sdn_route("203.0.113.0/24", "10.0.1.20")])),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let ops = f.dp.take();
    assert_eq!(route_steps(&ops), ["add 203.0.113.0/24 via 10.0.1.20"]);
    assert_eq!(ops.len(), 1, "{ops:?}");

    // The other subnet is not the endpoint's: refused, nothing changes.
    let e = f
        .svc
        .modify(
            Kind::Endpoint,
            &a,
            &change("Add", json!([sdn_route("192.0.2.0/24", "10.0.2.1")])),
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidIp, "{e}");
    assert!(f.dp.take().is_empty());
}
