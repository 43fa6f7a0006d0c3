//! ACL changes by modify against the recording dataplane and the in-memory
//! store (tier 0): each change is one `ReplaceElements` holding only the
//! changed endpoints' elements, a failure anywhere leaves store and kernel
//! as they were, and narrowing cuts exactly the connections it blocks.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use common::*;

use hostnet_core::{Config, Kind, Service};
use hostnet_dataplane::{Flow, FlowTuple, Op, Recorder};
use hostnet_model::ErrorCode;
use hostnet_store::{Collection, Store};
use serde_json::{json, Value};

fn acl(id: &str, action: &str, prio: u16, extra: Value) -> Value {
    let mut s = json!({ "Id": id, "Action": action, "Direction": "In", "Priority": prio });
    s.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({ "Type": "ACL", "Settings": s })
}

fn open(port: u16) -> Value {
    acl(
        &format!("open-{port}"),
        "Allow",
        100,
        json!({ "Protocols": "6", "LocalPorts": port.to_string() }),
    )
}

fn deny() -> Value {
    acl("deny", "Block", 1000, json!({}))
}

fn change(request: &str, policies: Value) -> Vec<u8> {
    body(
        json!({ "ResourceType": "Policy", "RequestType": request, "Settings": { "Policies": policies } }),
    )
}

impl Fixture {
    fn network(&self, name: &str) -> String {
        let nets = self.svc.list(Kind::Network, None).unwrap();
        let n = nets.iter().find(|n| n["Name"] == name).unwrap();
        n["ID"].as_str().unwrap().to_string()
    }

    fn endpoint(&self, network: &str, policies: Value) -> (String, Ipv4Addr) {
        let ep = self
            .svc
            .create(
                Kind::Endpoint,
                &body(json!({ "HostComputeNetwork": self.network(network), "Policies": policies })),
            )
            .unwrap();
        let ip = ep["IpConfigurations"][0]["IpAddress"].as_str().unwrap();
        (ep["ID"].as_str().unwrap().to_string(), ip.parse().unwrap())
    }

    fn stored(&self, id: &str) -> Value {
        let (_, raw) = self
            .store
            .list(Collection::Endpoints)
            .unwrap()
            .into_iter()
            .find(|(k, _)| k == id)
            .unwrap();
        serde_json::from_slice(&raw).unwrap()
    }

    /// The one op a change made: its deletes and adds.
    fn replaced(&self) -> (Vec<String>, Vec<String>) {
        let ops = self.dp.take();
        match ops.as_slice() {
            [Op::ReplaceElements { delete, add }] => (
                delete
                    .iter()
                    .map(|e| format!("{} {}", e.set, e.text))
                    .collect(),
                add.iter()
                    .map(|e| format!("{} {}", e.set, e.text))
                    .collect(),
            ),
            other => panic!("expected one ReplaceElements, got {other:?}"),
        }
    }
}

fn types(v: &Value) -> Vec<String> {
    v["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Type"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn add_remove_and_update_touch_only_the_endpoints_acl_elements() {
    let f = fresh();
    let mapping = json!({ "Type": "PortMapping", "Settings": { "Protocol": 6, "InternalPort": 80, "ExternalPort": 8080 } });
    let (a, a_ip) = f.endpoint("nat", json!([mapping, open(80), deny()]));
    let (_b, _) = f.endpoint("nat", json!([open(22), deny()]));
    f.dp.take();

    // Add opens 81: new elements for a only, in one transaction.
    f.svc
        .modify(Kind::Endpoint, &a, &change("Add", json!([open(81)])))
        .unwrap();
    let (del, add) = f.replaced();
    assert!(!add.is_empty());
    for e in del.iter().chain(&add) {
        assert!(e.contains(&a_ip.to_string()), "{e} is not endpoint a's");
    }
    // (A shape map's element: the fields masked, any peer and source port.)
    assert!(add.iter().any(|e| e.contains(". 6 . 81 . 0 :")), "{add:?}");
    assert_eq!(types(&f.stored(&a)), ["PortMapping", "ACL", "ACL", "ACL"]);

    // Remove closes it again (matched by content).
    f.svc
        .modify(Kind::Endpoint, &a, &change("Remove", json!([open(81)])))
        .unwrap();
    let (del, _) = f.replaced();
    assert!(del.iter().any(|e| e.contains(". 6 . 81 . 0 :")), "{del:?}");
    assert_eq!(types(&f.stored(&a)), ["PortMapping", "ACL", "ACL"]);

    // Update with no ACLs: the ACL walk goes, the PortMapping stays.
    let out = f
        .svc
        .modify(Kind::Endpoint, &a, &change("Update", json!([])))
        .unwrap();
    assert_eq!(types(&out), ["PortMapping"]);
    let (del, add) = f.replaced();
    assert!(
        del.iter().any(|e| e == &format!("acl_endpoints4 {a_ip}")),
        "{del:?}"
    );
    assert!(add.is_empty(), "{add:?}");
    assert_eq!(
        f.svc.get(Kind::Endpoint, &a).unwrap()["Policies"],
        out["Policies"]
    );

    // The same change again changes nothing in the kernel.
    f.svc
        .modify(Kind::Endpoint, &a, &change("Update", json!([])))
        .unwrap();
    assert!(f.dp.take().is_empty());
}

#[test]
fn a_failed_change_leaves_store_and_kernel_as_they_were() {
    let f = fresh();
    let (a, _) = f.endpoint("nat", json!([open(80), deny()]));
    f.dp.take();
    let before = f.stored(&a);

    // The kernel refuses: nothing stored, nothing left in the kernel (the
    // transaction is all or nothing, so there is nothing to undo).
    f.dp.fail_after(0);
    let err = f
        .svc
        .modify(Kind::Endpoint, &a, &change("Update", json!([open(81)])))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unexpected);
    assert_eq!(f.dp.take().len(), 1);
    assert_eq!(f.stored(&a), before);
    assert_eq!(f.svc.get(Kind::Endpoint, &a).unwrap(), before);

    // Removing an ACL the endpoint does not have, a malformed ACL, an ACL
    // naming a set the network lacks: refused before the kernel.
    let refused = |req: Vec<u8>, code: ErrorCode, mention: &str| {
        let e = f.svc.modify(Kind::Endpoint, &a, &req).unwrap_err();
        assert_eq!(e.code, code, "{e:?}");
        assert!(e.message.contains(mention), "{e:?}");
        assert!(f.dp.take().is_empty());
        assert_eq!(f.stored(&a), before);
    };
    refused(
        change("Remove", json!([open(443)])),
        ErrorCode::PolicyNotFound,
        "443",
    );
    refused(
        change("Add", json!([acl("x", "Maybe", 1, json!({}))])),
        ErrorCode::InvalidPolicy,
        "Maybe",
    );
    refused(
        change(
            "Add",
            json!([acl(
                "x",
                "Allow",
                1,
                json!({ "RemoteAddresses": "nosuchset" })
            )]),
        ),
        ErrorCode::InvalidPolicy,
        "nosuchset",
    );
}

fn tcp(o: (Ipv4Addr, u16, Ipv4Addr, u16), r: (Ipv4Addr, u16, Ipv4Addr, u16)) -> Flow {
    let t = |(src, sport, dst, dport): (Ipv4Addr, u16, Ipv4Addr, u16)| FlowTuple {
        src: src.into(),
        dst: dst.into(),
        sport: Some(sport),
        dport: Some(dport),
    };
    Flow {
        proto: 6,
        original: t(o),
        reply: t(r),
        zone: 0,
        key: Vec::new(),
    }
}

#[test]
fn narrowing_cuts_the_connections_it_blocks_and_widening_none() {
    let f = fresh();
    let (a, ip) = f.endpoint("nat", json!([open(80), open(81), deny()]));
    let peer: Ipv4Addr = "10.88.0.200".parse().unwrap();
    let to80 = tcp((peer, 40000, ip, 80), (ip, 80, peer, 40000));
    let to81 = tcp((peer, 40001, ip, 81), (ip, 81, peer, 40001));
    let out = tcp((ip, 50000, peer, 9), (peer, 9, ip, 50000));
    *f.dp.flows.lock().unwrap() = vec![to80.clone(), to81.clone(), out.clone()];

    // Widening: nothing is cut.
    f.svc
        .modify(Kind::Endpoint, &a, &change("Add", json!([open(82)])))
        .unwrap();
    assert_eq!(f.dp.flows.lock().unwrap().len(), 3);
    // Narrowing to 80 only: the connection to 81 goes, the rest stays.
    f.svc
        .modify(
            Kind::Endpoint,
            &a,
            &change("Update", json!([open(80), deny()])),
        )
        .unwrap();
    assert_eq!(*f.dp.flows.lock().unwrap(), vec![to80, out]);
}

#[test]
fn network_acls_reach_every_endpoint_of_their_network_in_one_transaction() {
    let f = fresh();
    let other = f
        .svc
        .create(
            Kind::Network,
            &body(json!({ "Name": "other", "Type": "NAT", "Ipams": [{ "Subnets": [{ "IpAddressPrefix": "10.99.0.0/24" }] }] })),
        )
        .unwrap();
    let (_a, a_ip) = f.endpoint("nat", json!([]));
    let (_b, b_ip) = f.endpoint("nat", json!([open(80)]));
    let (_c, c_ip) = f.endpoint("other", json!([]));
    f.dp.take();
    let nat = f.network("nat");
    let block22 = json!({ "Type": "NetworkACL", "Settings": { "Id": "no-ssh", "Action": "Block", "Direction": "In", "Protocols": "6", "LocalPorts": "22", "Priority": 50 } });
    let out = f
        .svc
        .modify(Kind::Network, &nat, &change("Add", json!([block22])))
        .unwrap();
    assert_eq!(out["Policies"][0]["Type"], "NetworkACL");
    let (_, add) = f.replaced();
    for ip in [a_ip, b_ip] {
        assert!(
            add.iter()
                .any(|e| e.contains(&format!("{ip} . 0.0.0.0 . 6 . 22 . 0 : drop"))),
            "{ip}: {add:?}"
        );
    }
    assert!(
        !add.iter().any(|e| e.contains(&c_ip.to_string())),
        "{add:?}"
    );
    assert!(f
        .svc
        .get(Kind::Network, other["ID"].as_str().unwrap())
        .unwrap()
        .get("Policies")
        .is_none());

    // Update with none takes them all away again, for both endpoints.
    f.svc
        .modify(Kind::Network, &nat, &change("Update", json!([])))
        .unwrap();
    let (del, _) = f.replaced();
    assert!(del
        .iter()
        .any(|e| e.contains(&format!("{a_ip} . 0.0.0.0 . 6 . 22 . 0 : drop"))));
    // Other network policy types are fixed at create.
    let e = f
        .svc
        .modify(
            Kind::Network,
            &nat,
            &change(
                "Add",
                json!([{ "Type": "AutomaticDNS", "Settings": { "Enable": false } }]),
            ),
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidPolicyType);
}

#[test]
fn set_policies_resolve_in_acls_and_a_change_reprograms_their_users() {
    let f = fresh();
    let nat = f.network("nat");
    let set = |values: &str| json!({ "Type": "SetPolicy", "Settings": { "Id": "peers", "Name": "peers", "PolicyType": "IPSET", "Values": values } });
    f.svc
        .modify(
            Kind::Network,
            &nat,
            &change("Add", json!([set("192.0.2.7")])),
        )
        .unwrap();
    let rule = acl(
        "from-peers",
        "Allow",
        100,
        json!({ "RemoteAddresses": "peers" }),
    );
    let (_a, _) = f.endpoint("nat", json!([rule, deny()]));
    f.dp.take();
    f.svc
        .modify(
            Kind::Network,
            &nat,
            &change("Update", json!([set("192.0.2.9,198.51.100.0/24")])),
        )
        .unwrap();
    let (del, add) = f.replaced();
    assert!(del.iter().any(|e| e.contains(". 192.0.2.7 .")), "{del:?}");
    assert!(add.iter().any(|e| e.contains(". 192.0.2.9 .")), "{add:?}");
    assert!(
        add.iter()
            .any(|e| e.contains(". 198.51.100.0 . 0 . 0 . 0 :")),
        "{add:?}"
    );
    // A set in use cannot go.
    let e = f
        .svc
        .modify(
            Kind::Network,
            &nat,
            &change("Remove", json!([set("192.0.2.9,198.51.100.0/24")])),
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidPolicy);
    assert!(e.message.contains("peers"), "{e:?}");
    assert!(f.dp.take().is_empty());
}

#[test]
fn tier_acls_are_programmed() {
    let f = fresh();
    let tier = json!({ "Type": "TierAcl", "Settings": { "Name": "t1", "Direction": "In", "Order": 1,
        "TierAclRules": [{ "Id": "t1-deny", "TierAclRuleAction": "Block", "Protocols": "6", "LocalPorts": "23", "Priority": 10 }] } });
    let (a, ip) = f.endpoint("nat", json!([tier]));
    let ops = f.dp.take();
    let Some(Op::AddElements(els)) = ops.last() else {
        panic!("{ops:?}")
    };
    assert!(
        els.iter().any(
            |e| e.text.contains(&format!("{ip} . 0.0.0.0 . 6 . 23 . 0 :"))
                && e.text.ends_with("drop")
        ),
        "{els:?}"
    );
    // Update without TierAcl keeps it (a TierAcl is not an ACL).
    f.svc
        .modify(Kind::Endpoint, &a, &change("Update", json!([open(80)])))
        .unwrap();
    assert_eq!(
        types(&f.svc.get(Kind::Endpoint, &a).unwrap()),
        ["TierAcl", "ACL"]
    );
}

#[test]
fn changed_acls_come_back_after_a_restart() {
    let f = fresh();
    let nat = f.network("nat");
    let set = json!({ "Type": "SetPolicy", "Settings": { "Id": "peers", "PolicyType": "IPSET", "Values": "192.0.2.7" } });
    let block = json!({ "Type": "NetworkACL", "Settings": { "Id": "no-peers", "Action": "Block", "Direction": "In", "RemoteAddresses": "peers", "Priority": 50 } });
    f.svc
        .modify(Kind::Network, &nat, &change("Add", json!([set, block])))
        .unwrap();
    let (a, ip) = f.endpoint("nat", json!([]));
    f.svc
        .modify(Kind::Endpoint, &a, &change("Add", json!([open(81)])))
        .unwrap();
    let before = f.svc.get(Kind::Endpoint, &a).unwrap();
    let store = f.store.clone();
    drop(f);

    let dp = Arc::new(Recorder::new());
    let config = Config {
        netns_dir: std::env::temp_dir().join("hostnet-core-test-netns-never-created"),
        default_network: true,
        default_subnet: Some("10.88.0.0/16".parse().unwrap()),
        mtu: 1500,
    };
    let svc = Service::start(config, Box::new(store), Box::new(dp.clone())).unwrap();
    assert_eq!(svc.get(Kind::Endpoint, &a).unwrap(), before);
    let tables = dp.tables.lock().unwrap().join("\n");
    assert!(
        tables.contains(&format!("{ip} . 192.0.2.7 . 0 . 0 . 0 : drop")),
        "the NetworkACL on its set"
    );
    assert!(
        tables.contains(&format!("{ip} . 0.0.0.0 . 6 . 81 . 0 : goto acl_in_host_0")),
        "the added ACL"
    );
    assert!(
        tables.contains(&format!("add chain inet hostnet acl_in_switch_0/{ip}\n")),
        "the endpoint's chain, made before its elements"
    );
}

#[test]
fn update_keeps_outbound_nat_and_replaces_it_when_named() {
    let f = fresh();
    f.dp.set_adapter(adapter("eth0", 2, "192.0.2.11/24"));
    f.svc
        .create(
            Kind::Network,
            &body(json!({ "Name": "l2", "Type": "L2Bridge",
                "Ipams": [{ "Subnets": [{ "IpAddressPrefix": "192.0.2.0/24",
                    "Routes": [{ "NextHop": "192.0.2.1", "DestinationPrefix": "0.0.0.0/0" }] }] }],
                "Policies": [{ "Type": "NetAdapterName", "Settings": { "NetworkAdapterName": "eth0" } }] })),
        )
        .unwrap();
    let onat = |ex: &str| json!({ "Type": "OutBoundNAT", "Settings": { "Exceptions": [ex] } });
    let (a, _) = f.endpoint("l2", json!([onat("192.0.2.0/24")]));
    f.dp.take();

    // Calico's default-deny Update: the OutBoundNAT and its elements stay.
    f.svc
        .modify(Kind::Endpoint, &a, &change("Update", json!([deny()])))
        .unwrap();
    assert_eq!(types(&f.stored(&a)), ["OutBoundNAT", "ACL"]);
    let (del, _) = f.replaced();
    assert!(del.iter().all(|e| !e.starts_with("onat")), "{del:?}");

    // An Update naming OutBoundNAT replaces it: its exceptions change.
    f.svc
        .modify(
            Kind::Endpoint,
            &a,
            &change("Update", json!([onat("198.51.100.0/24"), deny()])),
        )
        .unwrap();
    assert_eq!(types(&f.stored(&a)), ["OutBoundNAT", "ACL"]);
    let (del, add) = f.replaced();
    assert!(
        del.iter()
            .any(|e| e.starts_with("onat_exceptions4") && e.contains("192.0.2.0")),
        "{del:?}"
    );
    assert!(
        add.iter()
            .any(|e| e.starts_with("onat_exceptions4") && e.contains("198.51.100.0")),
        "{add:?}"
    );
}
