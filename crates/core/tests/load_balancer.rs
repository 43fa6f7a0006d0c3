//! Load balancers against the recording dataplane and the in-memory store
//! (tier 0): one kernel op per change, only the LB's own elements, and a
//! failure in the kernel or the store leaves nothing behind.

mod common;

use std::sync::Arc;

use common::*;

use hostnet_core::Kind;
use hostnet_dataplane::Op;
use hostnet_model::ErrorCode;
use hostnet_store::{MemoryStore, Store};
use serde_json::{json, Value};

fn endpoint(f: &Fixture, extra: Value) -> String {
    let nets = f.svc.list(Kind::Network, None).unwrap();
    let mut ep = json!({ "HostComputeNetwork": nets[0]["ID"] });
    if let (Some(o), Some(e)) = (ep.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    let ep = f.svc.create(Kind::Endpoint, &body(&ep)).unwrap();
    ep["ID"].as_str().unwrap().to_string()
}

fn lb(vips: &[&str], port: u16, backends: &[&str]) -> Value {
    json!({
        "HostComputeEndpoints": backends,
        "FrontendVIPs": vips,
        "PortMappings": [{ "Protocol": 6, "InternalPort": 8080, "ExternalPort": port }],
    })
}

fn stored_lbs(f: &Fixture) -> usize {
    f.store.list(Kind::LoadBalancer.collection()).unwrap().len()
}

#[test]
fn a_change_is_one_op_with_only_its_own_elements() {
    let f = start(Arc::new(MemoryStore::new()));
    let a = endpoint(&f, json!({}));
    let b = endpoint(&f, json!({}));
    f.dp.take();
    let made = f
        .svc
        .create(
            Kind::LoadBalancer,
            &body(lb(&["10.96.0.10"], 80, &[a.as_str()])),
        )
        .unwrap();
    let id = made["ID"].as_str().unwrap();
    let ops = f.dp.take();
    let [Op::AddElements(els)] = ops.as_slice() else {
        panic!("{ops:?}")
    };
    // Containers and outside dispatch, one backend slot.
    assert_eq!(els.len(), 3, "{els:?}");

    // Adding a backend: the dispatch moves to the two-slot chain, one slot
    // is added, the first one stays.
    f.svc
        .modify(
            Kind::LoadBalancer,
            id,
            &body(lb(&["10.96.0.10"], 80, &[a.as_str(), b.as_str()])),
        )
        .unwrap();
    let ops = f.dp.take();
    let [Op::ReplaceElements { delete, add }] = ops.as_slice() else {
        panic!("{ops:?}")
    };
    assert_eq!((delete.len(), add.len()), (2, 3), "{delete:?} {add:?}");
    let kind = |chain: &str| format!("{:#010x}", hostnet_nft::lb::kind_of_chain(chain).unwrap());
    assert!(delete
        .iter()
        .all(|e| e.text.ends_with(&kind("lb_vip_random_1"))));
    assert!(add
        .iter()
        .all(|e| e.text.ends_with(&kind("lb_vip_random_2")) || e.set == "lb_vip_slots4"));

    // Deleting endpoint b takes it out in the same store commit.
    f.svc.delete(Kind::Endpoint, &b).unwrap();
    let got = f.svc.get(Kind::LoadBalancer, id).unwrap();
    assert_eq!(got["HostComputeEndpoints"], json!([a]));
    let ops = f.dp.take();
    assert!(
        ops.iter().any(|o| matches!(o, Op::ReplaceElements { delete, add } if delete.len() == 3 && add.len() == 2)),
        "{ops:?}"
    );

    // Restart: the LB is back, with its elements in the one table load.
    let store = f.store.clone();
    drop(f);
    let again = start(store);
    assert_eq!(again.svc.get(Kind::LoadBalancer, id).unwrap(), got);
    let tables = again.dp.tables.lock().unwrap();
    assert!(
        tables[0].contains("add element inet hostnet lb_vip_slots4 { 10.96.0.10 . tcp . 80 . 0 : ")
    );
}

#[test]
fn kernel_or_store_failures_leave_nothing() {
    let f = start(Arc::new(MemoryStore::new()));
    let a = endpoint(&f, json!({}));
    f.dp.fail_after(0);
    let e = f
        .svc
        .create(
            Kind::LoadBalancer,
            &body(lb(&["10.96.0.10"], 80, &[a.as_str()])),
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unexpected);
    assert_eq!(stored_lbs(&f), 0);
    assert!(f.svc.list(Kind::LoadBalancer, None).unwrap().is_empty());

    f.dp.take();
    f.store.fail_next_commit();
    assert!(f
        .svc
        .create(
            Kind::LoadBalancer,
            &body(lb(&["10.96.0.10"], 80, &[a.as_str()]))
        )
        .is_err());
    let ops = f.dp.take();
    assert!(
        matches!(ops.as_slice(), [Op::AddElements(x), Op::DeleteElements(y)] if x == y),
        "the kernel change was not undone: {ops:?}"
    );
    assert_eq!(stored_lbs(&f), 0);

    // A failed modify keeps the old document and elements.
    let made = f
        .svc
        .create(
            Kind::LoadBalancer,
            &body(lb(&["10.96.0.10"], 80, &[a.as_str()])),
        )
        .unwrap();
    let id = made["ID"].as_str().unwrap();
    f.dp.take();
    f.store.fail_next_commit();
    assert!(f
        .svc
        .modify(
            Kind::LoadBalancer,
            id,
            &body(lb(&["10.96.0.11"], 80, &[a.as_str()]))
        )
        .is_err());
    let ops = f.dp.take();
    assert!(
        matches!(ops.as_slice(), [Op::ReplaceElements { delete: d1, add: a1 }, Op::ReplaceElements { delete: d2, add: a2 }] if d1 == a2 && a1 == d2),
        "{ops:?}"
    );
    assert_eq!(f.svc.get(Kind::LoadBalancer, id).unwrap(), made);
}

#[test]
fn node_ports_and_published_ports_exclude_each_other() {
    let f = start(Arc::new(MemoryStore::new()));
    let a = endpoint(&f, json!({}));
    f.svc
        .create(Kind::LoadBalancer, &body(lb(&[], 30080, &[a.as_str()])))
        .unwrap();
    let nets = f.svc.list(Kind::Network, None).unwrap();
    let published = json!({
        "HostComputeNetwork": nets[0]["ID"],
        "Policies": [{ "Type": "PortMapping", "Settings": { "Protocol": 6, "InternalPort": 80, "ExternalPort": 30080 } }]
    });
    let e = f.svc.create(Kind::Endpoint, &body(&published)).unwrap_err();
    assert_eq!(e.code, ErrorCode::PortAlreadyExists);
    assert!(e.to_string().contains("load balancer"), "{e}");
    // Another protocol is another port.
    let mut udp = published.clone();
    udp["Policies"][0]["Settings"]["Protocol"] = json!(17);
    f.svc.create(Kind::Endpoint, &body(&udp)).unwrap();
}

#[test]
fn version_says_load_balancers_dsr_and_modify_work() {
    let f = start(Arc::new(MemoryStore::new()));
    let v = f.svc.version();
    assert_eq!(v["Features"]["LoadBalancers"], true);
    assert_eq!(v["Features"]["ModifyLoadbalancer"], true);
    assert_eq!(v["Features"]["DSR"], true);
}

/// A node port (no VIP) is in a container's trace on each of the host's
/// addresses but loopback: the rule, the rewrite to the backend's port.
#[test]
fn a_node_port_is_traced_on_the_host_addresses() {
    let f = start(Arc::new(MemoryStore::new()));
    f.dp.set_adapter(adapter("eth0", 2, "192.0.2.10/24"));
    f.dp.set_adapter(adapter("lo", 1, "127.0.0.1/8"));
    let backend = endpoint(&f, json!({}));
    let backend_ip = f.svc.get(Kind::Endpoint, &backend).unwrap()["IpConfigurations"][0]
        ["IpAddress"]
        .as_str()
        .unwrap()
        .to_string();
    f.svc
        .create(
            Kind::LoadBalancer,
            &body(lb(&[], 30080, &[backend.as_str()])),
        )
        .unwrap();
    let (client, _) = f.nat_endpoint(json!([]), false);
    let at = |dst: &str| {
        let req = json!({ "Direction": "Out", "Protocol": "tcp", "Destination": dst });
        f.svc.trace_endpoint(&client, &body(req)).unwrap()
    };
    let t = at("192.0.2.10:30080");
    let text = t["Text"].as_str().unwrap();
    assert!(text.contains("rule lb:192.0.2.10:6:30080"), "{text}");
    assert_eq!(
        t["PacketAfter"].as_str().unwrap().split(" -> ").nth(1),
        Some(format!("{backend_ip}:8080").as_str()),
        "{t}"
    );
    // Not on loopback, nor on another port.
    for other in ["127.0.0.1:30080", "192.0.2.10:30081"] {
        let t = at(other);
        assert!(!t["Text"].as_str().unwrap().contains("lb:"), "{t}");
    }
}

/// A dual-stack NAT network and two endpoints on it: (network, [(ID,
/// IPv4, IPv6)]).
fn dual_stack_backends(f: &Fixture) -> (Value, Vec<(String, String, String)>) {
    let net = f
        .svc
        .create(
            Kind::Network,
            &body(
                json!({ "Name": "dual", "Type": "nat", "Ipams": [{ "Type": "Static", "Subnets": [
                { "IpAddressPrefix": "10.90.0.0/24" }, { "IpAddressPrefix": "fd00:90::/64" }
            ] }] }),
            ),
        )
        .unwrap();
    let eps = (0..2)
        .map(|_| {
            let ep = f
                .svc
                .create(
                    Kind::Endpoint,
                    &body(json!({ "HostComputeNetwork": net["ID"] })),
                )
                .unwrap();
            let ip = |i: usize| {
                ep["IpConfigurations"][i]["IpAddress"]
                    .as_str()
                    .unwrap()
                    .to_string()
            };
            (ep["ID"].as_str().unwrap().to_string(), ip(0), ip(1))
        })
        .collect();
    (net, eps)
}

fn lb6(vips: &[&str], port: u16, backends: &[&str]) -> Value {
    let mut v = lb(vips, port, backends);
    v["Flags"] = json!(2);
    v
}

/// An IPv6 LB programs the IPv6 maps with the backends' IPv6 addresses,
/// one op per change like an IPv4 one; an IPv4 and an IPv6 LB of one
/// dual-stack service share the node port; the trace shows the rewrite.
#[test]
fn an_ipv6_load_balancer_uses_the_backends_ipv6_addresses() {
    let f = start(Arc::new(MemoryStore::new()));
    let (_, eps) = dual_stack_backends(&f);
    let [(a, _, a6), (b, _, b6)] = [eps[0].clone(), eps[1].clone()];
    f.dp.take();
    let made = f
        .svc
        .create(
            Kind::LoadBalancer,
            &body(lb6(&["fd00:96::10"], 80, &[a.as_str(), b.as_str()])),
        )
        .unwrap();
    assert_eq!(made["Flags"], 2);
    let id = made["ID"].as_str().unwrap().to_string();
    let ops = f.dp.take();
    let [Op::AddElements(els)] = ops.as_slice() else {
        panic!("{ops:?}")
    };
    let texts: Vec<String> = els
        .iter()
        .map(|e| format!("{} {}", e.set, e.text))
        .collect();
    let kind = |chain: &str| format!("{:#010x}", hostnet_nft::lb::kind_of_chain(chain).unwrap());
    assert_eq!(
        texts,
        [
            format!(
                "lb_vip_guests6 fd00:96::10 . tcp . 80 : {}",
                kind("lb_vip_random_2")
            ),
            format!(
                "lb_vip_outside6 fd00:96::10 . tcp . 80 : {}",
                kind("lb_vip_random_2")
            ),
            format!("lb_vip_slots6 fd00:96::10 . tcp . 80 . 0 : {a6} . 8080"),
            format!("lb_vip_slots6 fd00:96::10 . tcp . 80 . 1 : {b6} . 8080"),
        ]
    );

    // The same service's IPv4 twin and two node ports, one per family.
    f.svc
        .create(
            Kind::LoadBalancer,
            &body(lb(&["10.96.0.10"], 80, &[b.as_str()])),
        )
        .unwrap();
    f.svc
        .create(Kind::LoadBalancer, &body(lb(&[], 30080, &[b.as_str()])))
        .unwrap();
    f.dp.take();
    f.svc
        .create(Kind::LoadBalancer, &body(lb6(&[], 30080, &[b.as_str()])))
        .unwrap();
    let ops = f.dp.take();
    let [Op::AddElements(els)] = ops.as_slice() else {
        panic!("{ops:?}")
    };
    assert!(els.iter().all(|e| e.set.ends_with('6')), "{els:?}");
    assert!(els
        .iter()
        .any(|e| e.text == format!("tcp . 30080 . 0 : {b6} . 8080")));
    // A third node port on 30080 clashes, whatever its family.
    for doc in [
        lb(&[], 30080, &[a.as_str()]),
        lb6(&[], 30080, &[a.as_str()]),
    ] {
        let e = f.svc.create(Kind::LoadBalancer, &body(doc)).unwrap_err();
        assert_eq!(e.code, ErrorCode::PortAlreadyExists, "{e}");
    }
    let e = f
        .svc
        .create(
            Kind::LoadBalancer,
            &body(lb6(&["fd00:96::10"], 80, &[a.as_str()])),
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::PortAlreadyExists);
    assert!(e.to_string().contains("TCP [fd00:96::10]:80"), "{e}");

    // The trace of a container's IPv6 packet to the VIP names the rule and
    // rewrites to an IPv6 backend.
    let req = json!({ "Direction": "Out", "Protocol": "tcp", "Destination": "[fd00:96::10]:80" });
    let t = f.svc.trace_endpoint(&a, &body(req)).unwrap();
    let text = t["Text"].as_str().unwrap();
    assert!(text.contains("rule lb:fd00:96::10:6:80"), "{text}");
    let after = t["PacketAfter"].as_str().unwrap();
    assert!(
        after.ends_with(&format!("[{a6}]:8080")) || after.ends_with(&format!("[{b6}]:8080")),
        "{t}"
    );

    // Deleting endpoint a leaves b in the IPv6 LB, by its IPv6 address.
    f.dp.take();
    f.svc.delete(Kind::Endpoint, &a).unwrap();
    assert_eq!(
        f.svc.get(Kind::LoadBalancer, &id).unwrap()["HostComputeEndpoints"],
        json!([b])
    );
    let ops = f.dp.take();
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::ReplaceElements { add, .. }
            if add.iter().any(|e| e.text == format!("fd00:96::10 . tcp . 80 . 0 : {b6} . 8080")))),
        "{ops:?}"
    );
}

/// Mixed families, backends without an IPv6 address, DSR and PreserveDip
/// with IPv6: refused by name, nothing stored or programmed, and a modify
/// refused the same way keeps the LB as it was.
#[test]
fn bad_ipv6_load_balancers_change_nothing() {
    let f = start(Arc::new(MemoryStore::new()));
    let (_, eps) = dual_stack_backends(&f);
    let dual = eps[0].0.clone();
    let nets = f.svc.list(Kind::Network, None).unwrap();
    let v4_net = nets.iter().find(|n| n["Name"] != "dual").unwrap();
    let v4_only = f
        .svc
        .create(
            Kind::Endpoint,
            &body(json!({ "HostComputeNetwork": v4_net["ID"] })),
        )
        .unwrap()["ID"]
        .as_str()
        .unwrap()
        .to_string();
    f.dp.take();
    let pdip = {
        let mut v = lb6(&["fd00:96::10"], 80, &[dual.as_str()]);
        v["PortMappings"][0]["Flags"] = json!(8);
        v
    };
    let dsr = {
        let mut v = lb(&["fd00:96::10"], 8080, &[dual.as_str()]);
        v["Flags"] = json!(3);
        v
    };
    let cases = [
        (
            lb6(&["10.96.0.10"], 80, &[dual.as_str()]),
            ErrorCode::InvalidIp,
            "is IPv4 but LoadBalancerFlags has IPv6",
        ),
        (
            lb(&["fd00:96::10"], 80, &[dual.as_str()]),
            ErrorCode::InvalidIp,
            "set LoadBalancerFlags IPv6 (2)",
        ),
        (
            lb6(&["fd00:96::10", "10.96.0.10"], 80, &[dual.as_str()]),
            ErrorCode::InvalidIp,
            "FrontendVIPs[1]",
        ),
        (
            lb6(&["fd00:96::10"], 80, &[v4_only.as_str()]),
            ErrorCode::InvalidEndpoint,
            "has no IPv6 address",
        ),
        (pdip, ErrorCode::RequestUnsupported, "EnablePreserveDip"),
        (
            dsr,
            ErrorCode::RequestUnsupported,
            "EnableDirectServerReturn",
        ),
    ];
    for (doc, code, word) in &cases {
        let e = f.svc.create(Kind::LoadBalancer, &body(doc)).unwrap_err();
        assert_eq!(e.code, *code, "{doc}: {e}");
        assert!(e.to_string().contains(word), "{e}");
    }
    assert_eq!(stored_lbs(&f), 0);
    assert!(f.dp.take().is_empty(), "nothing programmed");

    let made = f
        .svc
        .create(
            Kind::LoadBalancer,
            &body(lb6(&["fd00:96::10"], 80, &[dual.as_str()])),
        )
        .unwrap();
    let id = made["ID"].as_str().unwrap();
    f.dp.take();
    for (doc, code, _) in &cases {
        let e = f
            .svc
            .modify(Kind::LoadBalancer, id, &body(doc))
            .unwrap_err();
        assert_eq!(e.code, *code);
    }
    assert!(f.dp.take().is_empty());
    assert_eq!(f.svc.get(Kind::LoadBalancer, id).unwrap(), made);
}

#[test]
fn version_says_ipv6_dual_stack_works() {
    let f = start(Arc::new(MemoryStore::new()));
    assert_eq!(f.svc.version()["Features"]["IPv6DualStack"], true);
}

/// An overlay network on a host whose PA is 192.0.2.11, and endpoints
/// on it: (network id, local backend, remote backend, SourceVIP endpoint).
fn overlay_host(f: &Fixture) -> (String, String, String, String) {
    f.dp.set_adapter(adapter("eth0", 2, "192.0.2.11/24"));
    f.dp.set_default_route(Some("eth0"));
    let net = f
        .svc
        .create(
            Kind::Network,
            &body(json!({"Name": "ov", "Type": "Overlay",
                "Ipams": [{"Type": "Static", "Subnets": [{"IpAddressPrefix": "10.0.1.0/24",
                    "Policies": [{"Type": "VSID", "Settings": {"IsolationId": 4100}}]}]}]})),
        )
        .unwrap();
    let net = net["ID"].as_str().unwrap().to_string();
    let ep = |extra: Value| {
        let mut ep = json!({ "HostComputeNetwork": net });
        ep.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let ep = f.svc.create(Kind::Endpoint, &body(&ep)).unwrap();
        ep["ID"].as_str().unwrap().to_string()
    };
    let local = ep(json!({"IpConfigurations": [{"IpAddress": "10.0.1.11"}]}));
    let remote = ep(
        json!({"Flags": 1, "IpConfigurations": [{"IpAddress": "10.0.1.30"}],
        "MacAddress": "00-15-5D-0A-00-1E",
        "Policies": [{"Type": "ProviderAddress", "Settings": {"ProviderAddress": "192.0.2.12"}}]}),
    );
    let source = ep(json!({"IpConfigurations": [{"IpAddress": "10.0.1.2"}]}));
    (net, local, remote, source)
}

/// The elements of the ops in the router, none in the host's table.
fn router_elements(ops: &[Op]) -> (Vec<String>, Vec<String>) {
    let (mut delete, mut add) = (Vec::new(), Vec::new());
    for op in ops {
        match op {
            Op::InNetns { op, .. } => match op.as_ref() {
                Op::ReplaceElements { delete: d, add: a } => {
                    delete.extend(d.iter().map(|e| format!("{} {}", e.set, e.text)));
                    add.extend(a.iter().map(|e| format!("{} {}", e.set, e.text)));
                }
                op => panic!("{op:?}"),
            },
            Op::AddLocalRoutes(_) | Op::DeleteLocalRoutes(_) => {}
            op => panic!("not in the router: {op:?}"),
        }
    }
    (delete, add)
}

#[test]
fn an_overlay_lb_is_its_routers_and_shares_the_source_vip() {
    let f = fresh();
    let (net, local, remote, _) = overlay_host(&f);
    f.dp.take();
    let mut doc = lb(&["10.96.0.10"], 80, &[local.as_str(), remote.as_str()]);
    doc["SourceVIP"] = json!("10.0.1.2");
    let first = f.svc.create(Kind::LoadBalancer, &body(&doc)).unwrap();
    assert_eq!(first["HostComputeNetwork"].as_str(), Some(net.as_str()));
    let ops = f.dp.take();
    // The SourceVIP held before the elements that use it.
    let [Op::AddLocalRoutes(routes), Op::InNetns { .. }] = ops.as_slice() else {
        panic!("{ops:?}")
    };
    assert_eq!(
        routes[0].addresses,
        ["10.0.1.2".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    let (_, add) = router_elements(&ops);
    assert!(
        add.contains(&"lb_router_sources4 10.0.1.2".to_string()),
        "{add:?}"
    );
    assert!(add
        .iter()
        .any(|e| e.starts_with("lb_vip_guests4 10.96.0.10 . tcp . 80")));
    assert!(
        !add.iter().any(|e| e.starts_with("lb_vip_outside4")),
        "{add:?}"
    );
    assert!(add.contains(&"lb_vip_slots4 10.96.0.10 . tcp . 80 . 1 : 10.0.1.30 . 8080".to_string()));

    // A second LB with the same SourceVIP: only its own elements.
    doc["FrontendVIPs"] = json!(["10.96.0.11"]);
    let second = f.svc.create(Kind::LoadBalancer, &body(&doc)).unwrap();
    let ops = f.dp.take();
    let (_, add) = router_elements(&ops);
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert!(add.iter().all(|e| e.contains("10.96.0.11")), "{add:?}");

    // The remote backend deleted: one router transaction for both LBs.
    f.svc.delete(Kind::Endpoint, &remote).unwrap();
    let ops = f.dp.take();
    // (Besides the remote peer's own FDB and neighbour removals.)
    let lb_ops: Vec<Op> = ops
        .into_iter()
        .filter(|op| format!("{op:?}").contains("lb_vip"))
        .collect();
    assert_eq!(lb_ops.len(), 1, "{lb_ops:?}");
    let (delete, _) = router_elements(&lb_ops);
    assert!(delete
        .iter()
        .any(|e| e.contains("10.96.0.10 . tcp . 80 . 1 : 10.0.1.30")));
    assert!(delete
        .iter()
        .any(|e| e.contains("10.96.0.11 . tcp . 80 . 1 : 10.0.1.30")));

    // Deleting the first keeps the SourceVIP; the last lets it go, after.
    f.svc
        .delete(Kind::LoadBalancer, first["ID"].as_str().unwrap())
        .unwrap();
    let ops = f.dp.take();
    assert!(matches!(ops.as_slice(), [Op::InNetns { .. }]), "{ops:?}");
    f.svc
        .delete(Kind::LoadBalancer, second["ID"].as_str().unwrap())
        .unwrap();
    let ops = f.dp.take();
    assert!(
        matches!(
            ops.as_slice(),
            [Op::InNetns { .. }, Op::DeleteLocalRoutes(_)]
        ),
        "{ops:?}"
    );
    let (delete, _) = router_elements(&ops);
    assert!(delete.contains(&"lb_router_sources4 10.0.1.2".to_string()));
    // The network's last backend gone, the LB stays the router's: its
    // network was pinned.
    let mut doc = lb(&["10.96.0.12"], 80, &[local.as_str()]);
    doc["SourceVIP"] = json!("10.0.1.2");
    let third = f.svc.create(Kind::LoadBalancer, &body(&doc)).unwrap();
    f.dp.take();
    f.svc.delete(Kind::Endpoint, &local).unwrap();
    let ops = f.dp.take();
    let lb_ops: Vec<&Op> = ops
        .iter()
        .filter(|op| format!("{op:?}").contains("10.96.0.12"))
        .collect();
    assert!(
        lb_ops.iter().all(|op| matches!(op, Op::InNetns { .. })),
        "{lb_ops:?}"
    );
    let shown = f
        .svc
        .get(Kind::LoadBalancer, third["ID"].as_str().unwrap())
        .unwrap();
    assert_eq!(shown["HostComputeNetwork"].as_str(), Some(net.as_str()));
}

#[test]
fn an_overlay_lb_without_a_usable_source_vip_is_refused_and_changes_nothing() {
    let f = fresh();
    let (_, local, remote, _) = overlay_host(&f);
    f.dp.take();
    let doc = lb(&["10.96.0.10"], 80, &[local.as_str(), remote.as_str()]);
    let e = f.svc.create(Kind::LoadBalancer, &body(&doc)).unwrap_err();
    assert_eq!(e.code, ErrorCode::RequestUnsupported);
    assert!(e.to_string().contains("needs a SourceVIP"), "{e}");
    for (source, says) in [
        ("10.0.1.99", "not the address of an endpoint"),
        ("10.0.1.30", "remote endpoint"),
    ] {
        let mut doc = doc.clone();
        doc["SourceVIP"] = json!(source);
        let e = f.svc.create(Kind::LoadBalancer, &body(&doc)).unwrap_err();
        assert_eq!(e.code, ErrorCode::RequestUnsupported);
        assert!(e.to_string().contains(says), "{e}");
    }
    assert!(f.dp.take().is_empty());
    assert_eq!(stored_lbs(&f), 0);
}

#[test]
fn an_overlay_lbs_source_vip_is_not_attached_and_its_network_not_deleted_under_it() {
    let f = fresh();
    let (net, local, _, source) = overlay_host(&f);
    let mut doc = lb(&["10.96.0.10"], 80, &[local.as_str()]);
    doc["SourceVIP"] = json!("10.0.1.2");
    let made = f.svc.create(Kind::LoadBalancer, &body(&doc)).unwrap();
    let ns = f.svc.create(Kind::Namespace, &body(json!({}))).unwrap();
    let e = f
        .svc
        .modify(
            Kind::Namespace,
            ns["ID"].as_str().unwrap(),
            &body(json!({"ResourceType": "Endpoint", "RequestType": "Add",
                "Settings": {"EndpointId": source}})),
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidEndpoint);
    assert!(e.to_string().contains("SourceVIP"), "{e}");
    for ep in f.svc.list(Kind::Endpoint, None).unwrap() {
        f.svc
            .delete(Kind::Endpoint, ep["ID"].as_str().unwrap())
            .unwrap();
    }
    let e = f.svc.delete(Kind::Network, &net).unwrap_err();
    assert_eq!(e.code, ErrorCode::EntityHasReferences);
    f.svc
        .delete(Kind::LoadBalancer, made["ID"].as_str().unwrap())
        .unwrap();
    f.svc.delete(Kind::Network, &net).unwrap();
}

#[test]
fn a_remote_backend_in_another_hosts_subnet_needs_a_route_to_it() {
    let f = fresh();
    f.dp.set_adapter(adapter("eth0", 2, "192.0.2.11/24"));
    f.dp.set_default_route(Some("eth0"));
    let route = json!({"Type": "RemoteSubnetRoute", "Settings": {
        "DestinationPrefix": "10.244.2.0/24", "IsolationId": 4096,
        "ProviderAddress": "192.0.2.12", "DistributedRouterMacAddress": "02-11-c0-00-02-0c"}});
    let net = f
        .svc
        .create(
            Kind::Network,
            &body(json!({"Name": "vxlan0", "Type": "Overlay",
                "Ipams": [{"Type": "Static", "Subnets": [{"IpAddressPrefix": "10.244.1.0/24",
                    "Policies": [{"Type": "VSID", "Settings": {"IsolationId": 4096}}]}]}],
                "Policies": [route]})),
        )
        .unwrap();
    let remote = |ip: &str| {
        f.svc.create(
            Kind::Endpoint,
            &body(json!({"HostComputeNetwork": net["ID"], "Flags": 1,
                "IpConfigurations": [{"IpAddress": ip}], "MacAddress": "02-11-0a-f4-02-14",
                "Policies": [{"Type": "ProviderAddress", "Settings": {"ProviderAddress": "192.0.2.12"}}]})),
        )
    };
    let e = remote("10.244.3.20").unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidIp);
    assert!(e.to_string().contains("RemoteSubnetRoute"), "{e}");
    // A local endpoint gets no such leave.
    let e = f
        .svc
        .create(
            Kind::Endpoint,
            &body(json!({"HostComputeNetwork": net["ID"],
                "IpConfigurations": [{"IpAddress": "10.244.2.21"}]})),
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidIp);
    f.dp.take();
    let ep = remote("10.244.2.20").unwrap();
    // Its peer entries are on the route's VNI, in the router.
    let ops = format!("{:?}", f.dp.take());
    assert!(
        ops.contains("hnvx001000") && ops.contains("10.244.2.20"),
        "{ops}"
    );
    assert_eq!(ep["IpConfigurations"][0]["IpAddress"], "10.244.2.20");
    // Reloaded by a restart on the same store.
    let again = start(f.store.clone());
    let back = again
        .svc
        .get(Kind::Endpoint, ep["ID"].as_str().unwrap())
        .unwrap();
    assert_eq!(back["IpConfigurations"][0]["IpAddress"], "10.244.2.20");
}
