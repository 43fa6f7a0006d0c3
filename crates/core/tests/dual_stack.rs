//! Dual-stack NAT networks against the recording dataplane (tier 0): what
//! an IPv4 + IPv6 network and its endpoints plan and show, what is
//! refused, and that a refusal leaves nothing behind. The packets are in
//! the testbed's `nat_ipv6` tests.

mod common;

use std::sync::Arc;

use common::*;

use hostnet_core::Kind;
use hostnet_dataplane::Op;
use hostnet_model::ErrorCode;
use hostnet_store::MemoryStore;
use serde_json::{json, Value};

fn dual(f: &Fixture, name: &str, v4: &str, v6: &str) -> Result<Value, hostnet_model::HcnError> {
    f.svc.create(
        Kind::Network,
        &body(
            json!({ "Name": name, "Type": "nat", "Ipams": [{ "Type": "Static", "Subnets": [
            { "IpAddressPrefix": v4 }, { "IpAddressPrefix": v6 }
        ] }] }),
        ),
    )
}

fn endpoint(f: &Fixture, net: &Value, extra: Value) -> Result<Value, hostnet_model::HcnError> {
    let mut ep = json!({ "HostComputeNetwork": net["ID"] });
    if let (Some(o), Some(e)) = (ep.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    f.svc.create(Kind::Endpoint, &body(ep))
}

#[test]
fn a_dual_stack_network_gives_its_bridge_both_gateways_and_ipv6_forwarding() {
    let f = fresh();
    f.dp.take();
    let net = dual(&f, "d", "10.90.0.0/24", "fd00:90::/64").unwrap();
    let subnets = &net["Ipams"][0]["Subnets"];
    assert_eq!(subnets[0]["Routes"][0]["DestinationPrefix"], "0.0.0.0/0");
    assert_eq!(subnets[1]["Routes"][0]["NextHop"], "fd00:90::1");
    assert_eq!(subnets[1]["Routes"][0]["DestinationPrefix"], "::/0");
    let ops = f.dp.take();
    let sysctls: Vec<&str> = ops
        .iter()
        .filter_map(|o| match o {
            Op::Sysctl { key, .. } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        sysctls,
        ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"]
    );
    let bridge = ops.iter().find_map(|o| match o {
        Op::CreateBridge {
            addresses, ipv6, ..
        } => Some((addresses.clone(), *ipv6)),
        _ => None,
    });
    let (addresses, ipv6) = bridge.expect("a bridge");
    assert!(ipv6);
    let shown: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["10.90.0.1/24", "fd00:90::1/64"]);
}

#[test]
fn endpoints_get_an_address_and_a_default_route_of_each_family() {
    let f = fresh();
    let net = dual(&f, "d", "10.90.0.0/24", "fd00:90::/64").unwrap();
    f.dp.take();
    let pm = json!({ "Type": "PortMapping", "Settings": { "Protocol": 6, "InternalPort": 80, "ExternalPort": 8080 } });
    let ep = endpoint(&f, &net, json!({ "Policies": [pm] })).unwrap();
    assert_eq!(
        ep["IpConfigurations"],
        json!([{ "IpAddress": "10.90.0.2", "PrefixLength": 24 }, { "IpAddress": "fd00:90::2", "PrefixLength": 64 }])
    );
    assert_eq!(
        ep["Routes"],
        json!([{ "NextHop": "10.90.0.1", "DestinationPrefix": "0.0.0.0/0" }, { "NextHop": "fd00:90::1", "DestinationPrefix": "::/0" }])
    );
    let ops = f.dp.take();
    let [Op::AddElements(els)] = ops.as_slice() else {
        panic!("{ops:?}")
    };
    let texts: Vec<String> = els
        .iter()
        .map(|e| format!("{} {}", e.set, e.text))
        .collect();
    assert_eq!(
        texts,
        [
            "nat_sources4 10.90.0.2",
            "nat_sources6 fd00:90::2",
            "ports4 tcp . 8080 : 10.90.0.2 . 80",
            "ports6 tcp . 8080 : fd00:90::2 . 80",
        ]
    );

    // A static IPv6 address is honoured, the IPv4 one still allocated.
    let ep = endpoint(
        &f,
        &net,
        json!({ "IpConfigurations": [{ "IpAddress": "fd00:90::99" }] }),
    )
    .unwrap();
    assert_eq!(ep["IpConfigurations"][0]["IpAddress"], "10.90.0.3");
    assert_eq!(ep["IpConfigurations"][1]["IpAddress"], "fd00:90::99");
    // Taken: asked again, refused, nothing new in the kernel.
    f.dp.take();
    let err = endpoint(
        &f,
        &net,
        json!({ "IpConfigurations": [{ "IpAddress": "10.90.0.50" }, { "IpAddress": "fd00:90::99" }] }),
    )
    .unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::AddrInvalidOrReserved,
        "{}",
        err.message
    );
    assert!(f.dp.take().is_empty());
    // ... and the IPv4 address it took first is free again.
    let ep = endpoint(
        &f,
        &net,
        json!({ "IpConfigurations": [{ "IpAddress": "10.90.0.50" }] }),
    )
    .unwrap();
    assert_eq!(ep["IpConfigurations"][0]["IpAddress"], "10.90.0.50");
}

#[test]
fn attach_gives_the_veth_both_addresses_and_default_routes() {
    let f = fresh();
    let net = dual(&f, "d", "10.90.0.0/24", "fd00:90::/64").unwrap();
    let ep = endpoint(&f, &net, json!({})).unwrap();
    let ns = f.svc.create(Kind::Namespace, b"{}").unwrap();
    f.dp.take();
    let req = json!({ "ResourceType": "Endpoint", "RequestType": "Add", "Settings": { "EndpointId": ep["ID"] } });
    f.svc
        .modify(Kind::Namespace, ns["ID"].as_str().unwrap(), &body(req))
        .unwrap();
    let ops = f.dp.take();
    let veth = ops.iter().find_map(|o| match o {
        Op::CreateVeth {
            addresses,
            routes,
            ipv6,
            ..
        } => Some((addresses.clone(), routes.clone(), *ipv6)),
        _ => None,
    });
    let (addresses, routes, ipv6) = veth.expect("a veth");
    assert!(ipv6);
    assert_eq!(addresses.len(), 2);
    let routes: Vec<String> = routes
        .iter()
        .map(|r| format!("{} via {}", r.destination, r.via.unwrap()))
        .collect();
    assert_eq!(routes, ["0.0.0.0/0 via 10.90.0.1", "::/0 via fd00:90::1"]);
}

#[test]
fn a_restart_keeps_both_addresses_and_their_elements() {
    let store = Arc::new(MemoryStore::new());
    let f = start(store.clone());
    let net = dual(&f, "d", "10.90.0.0/24", "fd00:90::/64").unwrap();
    let ep = endpoint(&f, &net, json!({})).unwrap();
    drop(f);
    let g = start(store);
    let id = ep["ID"].as_str().unwrap();
    assert_eq!(g.svc.get(Kind::Endpoint, id).unwrap(), ep);
    let tables = g.dp.tables.lock().unwrap().clone();
    assert!(
        tables[0].contains("add element inet hostnet nat_sources6 { fd00:90::2 }"),
        "{}",
        tables[0]
    );
    // The reloaded IPv6 pool knows fd00:90::2 is taken.
    let next = endpoint(&g, &net, json!({})).unwrap();
    assert_eq!(next["IpConfigurations"][1]["IpAddress"], "fd00:90::3");
}

#[test]
fn bad_ipv6_subnets_are_refused_and_nothing_is_made() {
    let f = fresh();
    f.dp.take();
    let before = f.svc.list(Kind::Network, None).unwrap();
    let cases: [(&str, Value, ErrorCode); 7] = [
        (
            "two IPv6 subnets",
            json!([{ "IpAddressPrefix": "10.91.0.0/24" }, { "IpAddressPrefix": "fd00:91::/64" }, { "IpAddressPrefix": "fd00:92::/64" }]),
            ErrorCode::InvalidSubnet,
        ),
        (
            "IPv6 only",
            json!([{ "IpAddressPrefix": "fd00:91::/64" }]),
            ErrorCode::RequestUnsupported,
        ),
        (
            "link-local",
            json!([{ "IpAddressPrefix": "10.91.0.0/24" }, { "IpAddressPrefix": "fe80::/64" }]),
            ErrorCode::InvalidSubnet,
        ),
        (
            "no room",
            json!([{ "IpAddressPrefix": "10.91.0.0/24" }, { "IpAddressPrefix": "fd00:91::/127" }]),
            ErrorCode::InvalidSubnet,
        ),
        (
            "host bits",
            json!([{ "IpAddressPrefix": "10.91.0.0/24" }, { "IpAddressPrefix": "fd00:91::5/64" }]),
            ErrorCode::InvalidSubnet,
        ),
        (
            "malformed",
            json!([{ "IpAddressPrefix": "10.91.0.0/24" }, { "IpAddressPrefix": "fd00:::/64" }]),
            ErrorCode::InvalidSubnet,
        ),
        (
            "gateway outside",
            json!([{ "IpAddressPrefix": "10.91.0.0/24" }, { "IpAddressPrefix": "fd00:91::/64",
                "Routes": [{ "NextHop": "fd00:92::1", "DestinationPrefix": "::/0" }] }]),
            ErrorCode::InvalidSubnet,
        ),
    ];
    for (what, subnets, want) in cases {
        let err = f
            .svc
            .create(
                Kind::Network,
                &body(json!({ "Name": "bad", "Type": "nat", "Ipams": [{ "Subnets": subnets }] })),
            )
            .unwrap_err();
        assert_eq!(err.code, want, "{what}: {}", err.message);
        assert!(f.dp.take().is_empty(), "{what} touched the kernel");
    }
    // Overlapping another network's IPv6 subnet.
    dual(&f, "d", "10.90.0.0/24", "fd00:90::/64").unwrap();
    f.dp.take();
    let err = dual(&f, "e", "10.91.0.0/24", "fd00:90::/48").unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidSubnet, "{}", err.message);
    assert!(err.message.contains("overlaps"), "{}", err.message);
    assert!(f.dp.take().is_empty());
    assert_eq!(
        f.svc.list(Kind::Network, None).unwrap().len(),
        before.len() + 1
    );
}

#[test]
fn ipv6_requests_on_an_ipv4_network_are_refused() {
    let f = fresh();
    let net = f.svc.list(Kind::Network, None).unwrap()[0].clone();
    f.dp.take();
    let err = endpoint(
        &f,
        &net,
        json!({ "IpConfigurations": [{ "IpAddress": "fd00::5" }] }),
    )
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidIp, "{}", err.message);
    assert!(err.message.contains("no IPv6 subnet"), "{}", err.message);
    let pm = json!({ "Type": "PortMapping", "Settings": { "Protocol": 6, "InternalPort": 80, "ExternalPort": 8080, "Flags": 2 } });
    let err = endpoint(&f, &net, json!({ "Policies": [pm] })).unwrap_err();
    assert_eq!(err.code, ErrorCode::MappingNotSupported, "{}", err.message);
    assert!(f.dp.take().is_empty());
    assert!(f.svc.list(Kind::Endpoint, None).unwrap().is_empty());
}

#[test]
fn dual_stack_endpoints_refuse_two_ipv6_addresses() {
    let f = fresh();
    let net = dual(&f, "d", "10.90.0.0/24", "fd00:90::/64").unwrap();
    f.dp.take();
    let err = endpoint(
        &f,
        &net,
        json!({ "IpConfigurations": [{ "IpAddress": "fd00:90::7" }, { "IpAddress": "fd00:90::8" }] }),
    )
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidEndpoint, "{}", err.message);
    assert!(f.dp.take().is_empty());
}

/// Every element text an op list adds (`set text`).
fn added(ops: &[Op]) -> Vec<String> {
    ops.iter()
        .flat_map(|op| match op {
            Op::AddElements(els) => els.clone(),
            Op::ReplaceElements { add, .. } => add.clone(),
            _ => Vec::new(),
        })
        .map(|e| format!("{} {}", e.set, e.text))
        .collect()
}

#[test]
fn acls_on_a_dual_stack_endpoint_judge_both_families() {
    let f = fresh();
    let net = dual(&f, "d", "10.90.0.0/24", "fd00:90::/64").unwrap();
    f.dp.take();
    let acl = |id: &str, action: &str, prio: u16, extra: Value| {
        let mut s = json!({ "Id": id, "Action": action, "Direction": "In", "Priority": prio });
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({ "Type": "ACL", "Settings": s })
    };
    let web = acl(
        "web",
        "Allow",
        100,
        json!({ "Protocols": "6", "LocalPorts": "80" }),
    );
    let deny = acl("deny", "Block", 1000, json!({}));
    let ep = endpoint(&f, &net, json!({ "Policies": [web, deny] })).unwrap();
    let els = added(&f.dp.take());
    for want in [
        "acl_endpoints4 10.90.0.2",
        "acl_endpoints6 fd00:90::2",
        "acl_in_switch_0_m0 10.90.0.2 . 0.0.0.0 . 6 . 80 . 0 : goto acl_in_host_0",
        "acl6_in_switch_0_m0 fd00:90::2 . :: . 6 . 80 . 0 : goto acl6_in_host_0",
        "acl_in_switch_0_ep 10.90.0.2 : goto acl_in_switch_0/10.90.0.2",
        "acl6_in_switch_0_ep fd00:90::2 : goto acl6_in_switch_0/fd00_3a90_3a_3a2",
    ] {
        assert!(els.iter().any(|e| e == want), "no {want} in {els:#?}");
    }
    // An IPv6-only rule added by modify: IPv6 elements only, one transaction.
    let only6 = acl(
        "ssh6",
        "Allow",
        100,
        json!({ "Protocols": "6", "LocalPorts": "22", "RemoteAddresses": "2001:db8::/32" }),
    );
    let id = ep["ID"].as_str().unwrap();
    f.svc
        .modify(
            Kind::Endpoint,
            id,
            &body(json!({ "ResourceType": "Policy", "RequestType": "Add", "Settings": { "Policies": [only6] } })),
        )
        .unwrap();
    let ops = f.dp.take();
    assert!(
        matches!(ops.as_slice(), [Op::ReplaceElements { .. }]),
        "{ops:?}"
    );
    let els = added(&ops);
    assert!(
        els.iter()
            .any(|e| e.contains("fd00:90::2 . 2001:db8:: . 6 . 22 . 0 :")),
        "{els:#?}"
    );
    assert!(
        !els.iter()
            .any(|e| e.starts_with("acl_in") && e.contains(". 22 . 0 :")),
        "{els:#?}"
    );
    // A NetworkACL on a dual-stack network is taken too.
    f.svc
        .create(
            Kind::Network,
            &body(json!({ "Name": "a", "Type": "nat",
                "Ipams": [{ "Subnets": [{ "IpAddressPrefix": "10.92.0.0/24" }, { "IpAddressPrefix": "fd00:92::/64" }] }],
                "Policies": [{ "Type": "NetworkACL", "Settings": { "Action": "Block", "Direction": "In", "Priority": 100 } }] })),
        )
        .unwrap();
}

#[test]
fn a_mapping_publishes_on_the_families_its_vip_and_flags_name() {
    let f = fresh();
    let net = dual(&f, "d", "10.90.0.0/24", "fd00:90::/64").unwrap();
    let pm = |ext: u16, extra: Value| {
        let mut s = json!({ "Protocol": 6, "InternalPort": 80, "ExternalPort": ext });
        if let (Some(o), Some(e)) = (s.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        json!({ "Type": "PortMapping", "Settings": s })
    };
    f.dp.take();
    endpoint(
        &f,
        &net,
        json!({ "Policies": [
            pm(8081, json!({ "VIP": "0.0.0.0" })),
            pm(8082, json!({ "VIP": "::", "Flags": 2 })),
            pm(8083, json!({ "VIP": "fd00:90::1" })),
            pm(8084, json!({ "VIP": "10.90.0.1" })),
        ] }),
    )
    .unwrap();
    let ops = f.dp.take();
    let [Op::AddElements(els)] = ops.as_slice() else {
        panic!("{ops:?}")
    };
    let ports: Vec<String> = els
        .iter()
        .filter(|e| e.set.contains("ports"))
        .map(|e| format!("{} {}", e.set, e.text))
        .collect();
    assert_eq!(
        ports,
        [
            "ports4 tcp . 8081 : 10.90.0.2 . 80",
            "ports6 tcp . 8082 : fd00:90::2 . 80",
            "vip_ports6 fd00:90::1 . tcp . 8083 : fd00:90::2 . 80",
            "vip_ports4 10.90.0.1 . tcp . 8084 : 10.90.0.2 . 80",
        ]
    );
    // The IPv6 flag with an IPv4 VIP contradicts itself.
    let err = endpoint(
        &f,
        &net,
        json!({ "Policies": [pm(8085, json!({ "VIP": "10.90.0.1", "Flags": 2 }))] }),
    )
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidPolicy, "{}", err.message);
    assert!(f.dp.take().is_empty());
}
