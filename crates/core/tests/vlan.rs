//! VLAN isolation of Transparent and L2Bridge networks against the
//! recording dataplane (tier 0): what the service plans, what it records
//! for crash recovery, and that refusals change nothing. The kernel side
//! (802.1q links, tags on the wire) is proven in the tier-3 VM
//! (crates/testbed/tests/tier3_guest.rs).

mod common;

use std::sync::Arc;

use common::*;

use hostnet_core::Kind;
use hostnet_dataplane::Op;
use hostnet_model::ErrorCode;
use hostnet_store::{Collection, MemoryStore, Store};
use serde_json::{json, Value};

fn eth0() -> hostnet_dataplane::Adapter {
    hostnet_dataplane::Adapter {
        name: "eth0".into(),
        index: 2,
        mac: [2, 0, 0, 0, 0x11, 0x11],
        mtu: 1450,
        addresses: vec!["192.0.2.11/24".parse().unwrap()],
        routes: Vec::new(),
        master: None,
        up: true,
    }
}

/// A network of `kind` on eth0 with one subnet per prefix, each with
/// `policies` (e.g. a VLAN).
fn network(name: &str, kind: &str, subnets: &[(&str, Value)]) -> Value {
    let subs: Vec<Value> = subnets
        .iter()
        .map(|(prefix, policies)| {
            let gw = prefix.replace(".0/24", ".1");
            json!({ "IpAddressPrefix": prefix, "Policies": policies,
                "Routes": [{ "NextHop": gw, "DestinationPrefix": "0.0.0.0/0" }] })
        })
        .collect();
    json!({ "Name": name, "Type": kind, "Ipams": [{ "Subnets": subs }],
        "Policies": [{ "Type": "NetAdapterName", "Settings": { "NetworkAdapterName": "eth0" } }] })
}

fn vlan(id: u32) -> Value {
    json!([{ "Type": "VLAN", "Settings": { "IsolationId": id } }])
}

fn fixture(store: Arc<MemoryStore>) -> Fixture {
    let f = start(store);
    f.dp.set_adapter(eth0());
    f.dp.take();
    f
}

/// What a refused request must leave: the same store and no kernel change.
fn snapshot(f: &Fixture) -> Vec<(String, Vec<u8>)> {
    [
        Collection::Networks,
        Collection::Endpoints,
        Collection::Meta,
    ]
    .into_iter()
    .flat_map(|c| f.store.list(c).unwrap())
    .collect()
}

#[test]
fn a_vlan_network_binds_a_sub_interface_and_leaves_the_hosts_addresses() {
    let f = fixture(Arc::new(MemoryStore::new()));
    let net = f
        .svc
        .create(
            Kind::Network,
            &body(network("v11", "Transparent", &[("10.11.0.0/24", vlan(11))])),
        )
        .unwrap();
    let ops = f.dp.take();
    let [Op::CreateBridge {
        name: br,
        mac: Some(mac),
        mtu: 1450,
        ..
    }, Op::CreateVlan {
        name,
        parent,
        id: 11,
        mtu: 1450,
        mac: vmac,
    }, Op::SetMaster {
        link,
        master: Some(m),
        ..
    }] = ops.as_slice()
    else {
        panic!("{ops:?}")
    };
    assert_eq!((name.as_str(), parent.as_str()), ("hnq00112", "eth0"));
    assert_eq!((*mac, *vmac), (eth0().mac, eth0().mac));
    assert_eq!((link.as_str(), m), ("hnq00112", br));
    // The subnet echoes its VLAN policy; the host's address is not reserved
    // (the host is not on the VLAN), the gateway is.
    assert_eq!(
        net["Ipams"][0]["Subnets"][0]["Policies"][0]["Settings"]["IsolationId"],
        11
    );
    let id = net["ID"].as_str().unwrap().to_string();
    let ep = f
        .svc
        .create(Kind::Endpoint, &body(json!({ "HostComputeNetwork": id })))
        .unwrap();
    assert_eq!(ep["IpConfigurations"][0]["IpAddress"], "10.11.0.2");
    f.svc
        .delete(Kind::Endpoint, ep["ID"].as_str().unwrap())
        .unwrap();
    f.dp.take();
    f.svc.delete(Kind::Network, &id).unwrap();
    let ops = f.dp.take();
    assert!(
        matches!(ops.as_slice(), [Op::SetMaster { link, master: None, .. }, Op::DeleteLink { name: sub }, Op::DeleteLink { name: b }] if link == "hnq00112" && sub == "hnq00112" && b == br),
        "{ops:?}"
    );
    assert_eq!(
        f.store.list(Collection::Meta).unwrap().len(),
        1,
        "record left"
    );
}

#[test]
fn vlans_and_one_untagged_network_share_an_adapter_but_not_a_vlan() {
    let f = fixture(Arc::new(MemoryStore::new()));
    let create = |n: Value| f.svc.create(Kind::Network, &body(n));
    let plain = create(network(
        "plain",
        "Transparent",
        &[("192.0.2.0/24", json!([]))],
    ))
    .unwrap();
    // eth0 is now a port of plain's bridge: its VLANs may still be taken.
    let bridge = format!("hnbr{}", &plain["ID"].as_str().unwrap()[..8].to_lowercase());
    f.dp.set_adapter(hostnet_dataplane::Adapter {
        master: Some(bridge),
        ..eth0()
    });
    create(network("v11", "Transparent", &[("10.11.0.0/24", vlan(11))])).unwrap();
    create(network("v12", "L2Bridge", &[("10.12.0.0/24", vlan(12))])).unwrap();
    let ops = f.dp.take();
    // L2Bridge rewrites MACs at its sub-interface, not at the adapter.
    let rewrite = Op::AddElements(hostnet_nft::l2::uplink("hnq00122", eth0().mac));
    assert!(ops.contains(&rewrite), "{ops:?}");
    assert!(!ops.contains(&Op::AddElements(hostnet_nft::l2::uplink(
        "eth0",
        eth0().mac
    ))));

    let before = snapshot(&f);
    for (n, why) in [
        (
            network("again11", "L2Bridge", &[("10.21.0.0/24", vlan(11))]),
            "VLAN 11 of adapter eth0",
        ),
        (
            network("plain2", "Transparent", &[("10.22.0.0/24", json!([]))]),
            "(untagged)",
        ),
    ] {
        let e = create(n).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidNetwork, "{e}");
        assert!(e.message.contains(why), "{e}");
    }
    // A port of someone else's bridge is not free, tagged or not.
    f.dp.set_adapter(hostnet_dataplane::Adapter {
        master: Some("br0".into()),
        ..eth0()
    });
    let e = create(network("v13", "Transparent", &[("10.13.0.0/24", vlan(13))])).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidNetwork, "{e}");
    assert!(e.message.contains("port of br0"), "{e}");
    assert_eq!(snapshot(&f), before);
    assert!(f.dp.take().is_empty());
}

#[test]
fn vlan_networks_come_back_after_a_restart_and_a_crash_leftover_goes() {
    let store = Arc::new(MemoryStore::new());
    let f = fixture(store.clone());
    let kept = f
        .svc
        .create(
            Kind::Network,
            &body(network("v11", "L2Bridge", &[("10.11.0.0/24", vlan(11))])),
        )
        .unwrap();
    let lost = f
        .svc
        .create(
            Kind::Network,
            &body(network("v12", "Transparent", &[("10.12.0.0/24", vlan(12))])),
        )
        .unwrap();
    // As if the daemon died after making v12 but before storing it.
    let mut txn = hostnet_store::Txn::new();
    txn.delete(Collection::Networks, lost["ID"].as_str().unwrap());
    store.commit(txn).unwrap();
    drop(f);

    let dp = Arc::new(hostnet_dataplane::Recorder::new());
    dp.set_adapter(eth0());
    let svc = hostnet_core::Service::start(config(), Box::new(store.clone()), Box::new(dp.clone()))
        .unwrap();
    let ops = dp.take();
    // The orphan: its sub-interface and bridge deleted, nothing moved.
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::DeleteLink { name } if name == "hnq00122")),
        "{ops:?}"
    );
    assert!(!ops.iter().any(|o| matches!(o, Op::MoveAddresses { .. })));
    // The kept one: its sub-interface made again (this fake reports no
    // links) and bound to its bridge.
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::CreateVlan { name, id: 11, .. } if name == "hnq00112")),
        "{ops:?}"
    );
    assert!(ops
        .iter()
        .any(|o| matches!(o, Op::SetMaster { link, master: Some(_), .. } if link == "hnq00112")));
    let records = store.list(Collection::Meta).unwrap();
    assert_eq!(
        records.len(),
        2,
        "the kept network's record and 'initialized'"
    );
    let net = svc
        .get(Kind::Network, kept["ID"].as_str().unwrap())
        .unwrap();
    assert_eq!(net["Name"], "v11");
}

#[test]
fn bad_vlans_are_refused_and_change_nothing() {
    let f = fixture(Arc::new(MemoryStore::new()));
    let before = snapshot(&f);
    let cases = [
        (
            network("zero", "Transparent", &[("10.1.0.0/24", vlan(0))]),
            ErrorCode::InvalidPolicy,
            "1-4094",
        ),
        (
            network("big", "L2Bridge", &[("10.1.0.0/24", vlan(4095))]),
            ErrorCode::InvalidPolicy,
            "1-4094",
        ),
        (
            network(
                "split",
                "Transparent",
                &[("10.1.0.0/24", vlan(11)), ("10.2.0.0/24", vlan(12))],
            ),
            ErrorCode::InvalidPolicy,
            "same VLAN",
        ),
        (
            network(
                "half",
                "L2Bridge",
                &[("10.1.0.0/24", vlan(11)), ("10.2.0.0/24", json!([]))],
            ),
            ErrorCode::InvalidPolicy,
            "no VLAN",
        ),
        (
            json!({ "Name": "nat", "Type": "NAT", "Ipams": [{ "Subnets": [
                { "IpAddressPrefix": "10.1.0.0/24", "Policies": vlan(11) }] }] }),
            ErrorCode::InvalidPolicyType,
            "NAT",
        ),
        (
            json!({ "Name": "ov", "Type": "Overlay", "Ipams": [{ "Subnets": [
                { "IpAddressPrefix": "10.1.0.0/24", "Policies": vlan(11) }] }] }),
            ErrorCode::InvalidPolicyType,
            "VSID",
        ),
        (
            network("tun", "L2Tunnel", &[("10.1.0.0/24", vlan(11))]),
            ErrorCode::InvalidPolicyType,
            "L2Tunnel",
        ),
        (
            // A VSID is an overlay's, not a VLAN.
            network(
                "vsid",
                "L2Bridge",
                &[(
                    "10.1.0.0/24",
                    json!([{ "Type": "VSID", "Settings": { "IsolationId": 5000 } }]),
                )],
            ),
            ErrorCode::InvalidPolicyType,
            "VSID",
        ),
    ];
    for (n, code, says) in cases {
        let e = f.svc.create(Kind::Network, &body(&n)).unwrap_err();
        assert_eq!(e.code, code, "{n}: {e}");
        assert!(e.message.contains(says), "{n}: {e}");
    }
    assert_eq!(snapshot(&f), before);
    assert!(f.dp.take().is_empty());
}

#[test]
fn a_kernel_failure_making_the_sub_interface_leaves_nothing() {
    let f = fixture(Arc::new(MemoryStore::new()));
    let before = snapshot(&f);
    f.dp.fail_after(1); // the CreateVlan, after the bridge
    let e = f
        .svc
        .create(
            Kind::Network,
            &body(network("v11", "Transparent", &[("10.11.0.0/24", vlan(11))])),
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unexpected, "{e}");
    let ops = f.dp.take();
    assert!(
        matches!(ops.as_slice(), [Op::CreateBridge { name, .. }, Op::CreateVlan { .. }, Op::DeleteLink { name: gone }] if gone == name),
        "{ops:?}"
    );
    assert_eq!(snapshot(&f), before);
}

#[test]
fn an_endpoint_vlan_must_be_its_networks() {
    let f = fixture(Arc::new(MemoryStore::new()));
    let v11 = f
        .svc
        .create(
            Kind::Network,
            &body(network("v11", "Transparent", &[("10.11.0.0/24", vlan(11))])),
        )
        .unwrap();
    let plain = f
        .svc
        .create(
            Kind::Network,
            &body(network("plain", "L2Bridge", &[("192.0.2.0/24", json!([]))])),
        )
        .unwrap();
    let endpoint = |net: &Value, id: u32| {
        f.svc.create(
            Kind::Endpoint,
            &body(json!({ "HostComputeNetwork": net["ID"], "Policies": vlan(id) })),
        )
    };
    let ep = endpoint(&v11, 11).unwrap();
    assert_eq!(ep["Policies"][0]["Type"], "VLAN");
    let before = snapshot(&f);
    let e = endpoint(&v11, 12).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidPolicy, "{e}");
    assert!(e.message.contains("network's VLAN 11"), "{e}");
    let e = endpoint(&plain, 11).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidPolicy, "{e}");
    assert!(e.message.contains("needs the network's VLAN"), "{e}");
    let e = endpoint(&v11, 0).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidPolicy, "{e}");
    assert_eq!(snapshot(&f), before);
}
