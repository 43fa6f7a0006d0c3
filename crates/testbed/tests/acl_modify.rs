//! ACL changes on live endpoints (issue 5, items 2 and 9): endpoint modify
//! `Add`/`Remove`/`Update` of `ACL`s, `NetworkACL`s and `SetPolicy`s by
//! network modify, proved with packets from outside, from the host and
//! between containers; the trace agrees with the kernel after each change;
//! narrowing cuts live connections it blocks; bad input changes nothing.

mod common;

use common::*;
use hostnet_api::Kind;
use hostnet_testbed::{Probe, Session};
use serde_json::{json, Value};

fn acl(id: &str, action: &str, prio: u16, extra: Value) -> Value {
    let mut s = json!({ "Id": id, "Action": action, "Direction": "In", "Priority": prio });
    s.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({ "Type": "ACL", "Settings": s })
}

/// Allow TCP in to `port`.
fn open(port: u16) -> Value {
    acl(
        &format!("open-{port}"),
        "Allow",
        100,
        json!({ "Protocols": "6", "LocalPorts": port.to_string() }),
    )
}

fn deny_in() -> Value {
    acl("deny-in", "Block", 1000, json!({}))
}

fn change(request: &str, policies: Value) -> Value {
    json!({ "ResourceType": "Policy", "RequestType": request, "Settings": { "Policies": policies } })
}

fn reaches(from: &std::path::Path, to: &str) -> bool {
    Probe::run(from, &["tcp-get", to]).0
}

/// The trace's verdict for TCP from `src` to endpoint `ep` at `dst`.
fn traced(w: &World, ep: &str, src: &str, dst: &str) -> bool {
    let t = w
        .client()
        .trace(
            ep,
            &json!({ "Direction": "In", "Protocol": "tcp", "Source": src, "Destination": dst }),
        )
        .expect("trace");
    match t["Verdict"].as_str() {
        Some("Allow") => true,
        Some("Block") => false,
        _ => panic!("{t}"),
    }
}

/// What the kernel and the trace say of outside -> host:`external` ->
/// container:`internal`, which must agree.
fn inbound(w: &World, c: &Container, external: u16, internal: u16) -> bool {
    let wire = reaches(w.outside.path(), &format!("{HOST}:{external}"));
    let trace = traced(
        w,
        &c.ep_id,
        &format!("{OUTSIDE}:40000"),
        &format!("{}:{internal}", c.ip),
    );
    assert_eq!(wire, trace, "kernel and trace disagree on port {internal}");
    wire
}

fn policy_types(w: &World, ep: &str) -> Vec<String> {
    let e = w.client().get(Kind::Endpoints, ep).expect("get endpoint");
    e["Policies"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["Type"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn add_opens_remove_closes_update_replaces_and_keeps_port_mappings() {
    let Some(w) = World::new("add_opens_remove_closes_update_replaces_and_keeps_port_mappings")
    else {
        return;
    };
    let s = w.container(
        "nat",
        json!([
            port_mapping(6, 80, 8080),
            port_mapping(6, 81, 8081),
            open(80),
            deny_in()
        ]),
    );
    let _web = s.serve(&["tcp-serve", "0.0.0.0:80"]);
    let _alt = s.serve(&["tcp-serve", "0.0.0.0:81"]);
    let c = w.client();
    assert!(inbound(&w, &s, 8080, 80));
    assert!(!inbound(&w, &s, 8081, 81));

    c.modify(Kind::Endpoints, &s.ep_id, &change("Add", json!([open(81)])))
        .expect("add");
    assert!(inbound(&w, &s, 8081, 81), "Add opens 81");
    assert!(inbound(&w, &s, 8080, 80));

    c.modify(
        Kind::Endpoints,
        &s.ep_id,
        &change("Remove", json!([open(81)])),
    )
    .expect("remove");
    assert!(!inbound(&w, &s, 8081, 81), "Remove closes 81");

    // Update replaces the ACL set (81 only now) and keeps the mappings.
    c.modify(
        Kind::Endpoints,
        &s.ep_id,
        &change("Update", json!([open(81), deny_in()])),
    )
    .expect("update");
    assert_eq!(
        policy_types(&w, &s.ep_id),
        ["PortMapping", "PortMapping", "ACL", "ACL"]
    );
    assert!(inbound(&w, &s, 8081, 81), "81 through its kept mapping");
    assert!(!inbound(&w, &s, 8080, 80), "80 is no longer in the set");

    // Update with no ACLs: back to the seed's defaults (TCP in allowed).
    c.modify(Kind::Endpoints, &s.ep_id, &change("Update", json!([])))
        .expect("update to none");
    assert_eq!(policy_types(&w, &s.ep_id), ["PortMapping", "PortMapping"]);
    assert!(inbound(&w, &s, 8080, 80));
    assert!(inbound(&w, &s, 8081, 81));
    // And the endpoint's port took its defaults back: GRE is dropped.
    let listen = s.serve(&["raw-listen", "47"]);
    // (The host's own send may fail with EPERM: the drop is in its output path.)
    let _ = Probe::run(w.host.path(), &["raw-send", "47", &s.ip]);
    assert!(s.run(&["raw-send", "47", "127.0.0.1"]).0);
    assert_eq!(listen.next_line().as_deref(), Some("got 127.0.0.1"));
}

#[test]
fn narrowing_update_cuts_a_live_connection_and_an_unrelated_add_does_not() {
    let Some(w) =
        World::new("narrowing_update_cuts_a_live_connection_and_an_unrelated_add_does_not")
    else {
        return;
    };
    let s = w.container(
        "nat",
        json!([
            port_mapping(6, 80, 8080),
            port_mapping(6, 81, 8081),
            open(80),
            open(81),
            deny_in()
        ]),
    );
    let _e80 = s.serve(&["tcp-echo", "0.0.0.0:80"]);
    let _e81 = s.serve(&["tcp-echo", "0.0.0.0:81"]);
    let mut to80 = Session::open(w.outside.path(), &format!("{HOST}:8080"));
    let mut to81 = Session::open(w.outside.path(), &format!("{HOST}:8081"));
    assert_eq!(to80.say("a"), "a");
    assert_eq!(to81.say("b"), "b");
    let c = w.client();

    let t = std::time::Instant::now();
    c.modify(Kind::Endpoints, &s.ep_id, &change("Add", json!([open(82)])))
        .expect("unrelated add");
    eprintln!("measured: an unrelated ACL Add took {:?}", t.elapsed());
    assert_eq!(to80.say("c"), "c", "an unrelated Add keeps connections");
    assert_eq!(to81.say("d"), "d", "an unrelated Add keeps connections");

    let t = std::time::Instant::now();
    c.modify(
        Kind::Endpoints,
        &s.ep_id,
        &change("Update", json!([open(80), deny_in()])),
    )
    .expect("narrowing update");
    eprintln!(
        "measured: a narrowing Update (with its connection cut) took {:?}",
        t.elapsed()
    );
    assert_eq!(to81.say("e"), "", "the connection to 81 is cut");
    assert_eq!(to80.say("f"), "f", "the connection to 80 stays");
    assert!(!reaches(w.outside.path(), &format!("{HOST}:8081")));
}

/// A cut connection stays cut when the endpoint's side speaks first: the
/// kernel would pick its segment up as a new outbound connection (which
/// the ACLs allow) and the peer's answers would pass as its replies.
#[test]
fn a_cut_connection_stays_cut_when_the_endpoint_speaks_first() {
    let Some(w) = World::new("a_cut_connection_stays_cut_when_the_endpoint_speaks_first") else {
        return;
    };
    let s = w.container("nat", json!([open(83), deny_in()]));
    let mut pusher = Session::push_server(&s.netns, "0.0.0.0:83");
    // From the host, directly: no NAT between the two ends.
    let _client = Probe::serve(w.host.path(), &["tcp-echo-to", &format!("{}:83", s.ip)]);
    assert_eq!(pusher.say("p1"), "p1");
    w.client()
        .modify(
            Kind::Endpoints,
            &s.ep_id,
            &change("Update", json!([deny_in()])),
        )
        .expect("narrowing update");
    assert_eq!(pusher.say("p2"), "", "the endpoint's push after the cut");
}

#[test]
fn network_acls_and_sets_apply_to_their_networks_endpoints_only() {
    let Some(w) = World::new("network_acls_and_sets_apply_to_their_networks_endpoints_only") else {
        return;
    };
    let c = w.client();
    c.create(
        Kind::Networks,
        &json!({ "Name": "other", "Type": "NAT", "Ipams": [{ "Subnets": [{ "IpAddressPrefix": "10.99.0.0/24" }] }] }),
    )
    .expect("second network");
    let a = w.container("nat", json!([]));
    let b = w.container("nat", json!([open(7000)]));
    let o = w.container("other", json!([]));
    let _servers: Vec<Probe> = [&a, &b, &o]
        .iter()
        .map(|x| x.serve(&["tcp-serve", "0.0.0.0:7000"]))
        .collect();
    let from_host = |x: &Container| {
        let wire = reaches(w.host.path(), &format!("{}:7000", x.ip));
        let gateway = if x.ip.starts_with("10.99.") {
            "10.99.0.1"
        } else {
            "10.88.0.1"
        };
        let trace = traced(
            &w,
            &x.ep_id,
            &format!("{gateway}:40000"),
            &format!("{}:7000", x.ip),
        );
        assert_eq!(wire, trace, "kernel and trace disagree for {}", x.ip);
        wire
    };
    assert!(from_host(&a) && from_host(&b) && from_host(&o));

    let nat = w.network("nat");
    let block = json!({ "Type": "NetworkACL", "Settings": { "Id": "no-7000", "Action": "Block",
        "Direction": "In", "Protocols": "6", "LocalPorts": "7000", "Priority": 50 } });
    c.modify(Kind::Networks, &nat, &change("Add", json!([block.clone()])))
        .expect("add NetworkACL");
    assert!(!from_host(&a), "a is on the network");
    assert!(
        !from_host(&b),
        "the NetworkACL (priority 50) comes before b's allow (100)"
    );
    assert!(from_host(&o), "the other network is untouched");
    // A sibling on the same bridge is blocked too (bridged traffic).
    assert!(!a.run(&["tcp-get", &format!("{}:7000", b.ip)]).0);

    c.modify(Kind::Networks, &nat, &change("Remove", json!([block])))
        .expect("remove NetworkACL");
    assert!(from_host(&a) && from_host(&b));

    // A set names who may connect; changing the set reprograms its user.
    let set = |values: &str| {
        json!({ "Type": "SetPolicy", "Settings": { "Id": "admins",
        "Name": "admins", "PolicyType": "IPSET", "Values": values } })
    };
    c.modify(
        Kind::Networks,
        &nat,
        &change("Add", json!([set("192.0.2.99")])),
    )
    .expect("add set");
    let from_admins = acl(
        "admins",
        "Allow",
        100,
        json!({ "RemoteAddresses": "admins" }),
    );
    c.modify(
        Kind::Endpoints,
        &a.ep_id,
        &change("Update", json!([from_admins, deny_in()])),
    )
    .expect("acl on the set");
    assert!(!from_host(&a), "the host is not in the set");
    c.modify(
        Kind::Networks,
        &nat,
        &change("Update", json!([set("192.0.2.99,10.88.0.1")])),
    )
    .expect("update set");
    assert!(from_host(&a), "the host joined the set");
}

fn tier(name: &str, order: u16, rules: Value) -> Value {
    json!({ "Type": "TierAcl", "Settings": { "Name": name, "Direction": "In", "Order": order, "TierAclRules": rules } })
}

fn tier_rule(id: &str, action: &str, prio: u16, ports: &str) -> Value {
    let mut r =
        json!({ "Id": id, "TierAclRuleAction": action, "Protocols": "6", "Priority": prio });
    if !ports.is_empty() {
        r["LocalPorts"] = json!(ports);
    }
    r
}

#[test]
fn tier_acls_pass_to_the_next_tier_and_change_by_update() {
    let Some(w) = World::new("tier_acls_pass_to_the_next_tier_and_change_by_update") else {
        return;
    };
    let t1 = tier(
        "t1",
        1,
        json!([
            tier_rule("t1-pass", "Pass", 10, "7001"),
            tier_rule("t1-block", "Block", 100, "")
        ]),
    );
    let t2 = tier("t2", 2, json!([tier_rule("t2-allow", "Allow", 10, "7001")]));
    let s = w.container("nat", json!([t1, t2]));
    let _servers: Vec<Probe> = ["7000", "7001"]
        .iter()
        .map(|p| s.serve(&["tcp-serve", &format!("0.0.0.0:{p}")]))
        .collect();
    let from_host = |port: u16| {
        let wire = reaches(w.host.path(), &format!("{}:{port}", s.ip));
        let trace = traced(&w, &s.ep_id, "10.88.0.1:40000", &format!("{}:{port}", s.ip));
        assert_eq!(wire, trace, "kernel and trace disagree on {port}");
        wire
    };
    assert!(!from_host(7000), "t1 blocks");
    assert!(from_host(7001), "t1 passes, t2 allows");

    // Update naming TierAcl replaces the tiers: one that blocks 7001 only.
    let only = tier("t1", 1, json!([tier_rule("t1-7001", "Block", 10, "7001")]));
    w.client()
        .modify(Kind::Endpoints, &s.ep_id, &change("Update", json!([only])))
        .expect("update tiers");
    assert_eq!(policy_types(&w, &s.ep_id), ["TierAcl"]);
    assert!(
        from_host(7000),
        "nothing decides 7000 now: the defaults allow TCP"
    );
    assert!(!from_host(7001));
}

/// `nft list table` of hostnet's tables: every element, in one text.
fn kernel_tables(w: &World) -> String {
    ["inet hostnet", "netdev hostnet_egress"]
        .iter()
        .map(|t| {
            let args: Vec<&str> = ["list", "table"].into_iter().chain(t.split(' ')).collect();
            String::from_utf8_lossy(&w.host.output("nft", &args).stdout).to_string()
        })
        .collect()
}

#[test]
fn bad_acl_changes_are_refused_and_change_nothing() {
    let Some(w) = World::new("bad_acl_changes_are_refused_and_change_nothing") else {
        return;
    };
    let s = w.container(
        "nat",
        json!([port_mapping(6, 80, 8080), open(80), deny_in()]),
    );
    let path = format!("/v2/endpoints/{}", s.ep_id);
    let net_path = format!("/v2/networks/{}", w.network("nat"));
    let cases: [(&str, Value, u16, u32, &str); 5] = [
        (
            &path,
            change("Remove", json!([open(443)])),
            404,
            0x803B_0008,
            "443",
        ),
        (
            &path,
            change("Add", json!([acl("x", "Maybe", 1, json!({}))])),
            400,
            0x803B_000D,
            "Maybe",
        ),
        (
            &path,
            change(
                "Update",
                json!([acl("x", "Allow", 1, json!({ "LocalPorts": "99999" }))]),
            ),
            400,
            0x803B_000D,
            "99999",
        ),
        (
            &path,
            change(
                "Add",
                json!([acl(
                    "x",
                    "Allow",
                    1,
                    json!({ "RemoteAddresses": "nosuchset" })
                )]),
            ),
            400,
            0x803B_000D,
            "nosuchset",
        ),
        (
            &net_path,
            change(
                "Add",
                json!([{ "Type": "SetPolicy", "Settings": { "Id": "s", "PolicyType": "IPSET", "Values": "not-an-address" } }]),
            ),
            400,
            0x803B_000D,
            "not-an-address",
        ),
    ];
    for (p, body, status, code, mention) in cases {
        let before = (w.snapshot(), kernel_tables(&w));
        let (got, answer) = w.raw("PATCH", p, Some(&body.to_string()));
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(
            answer["ErrorCode"].as_u64(),
            Some(u64::from(code)),
            "{body}: {answer}"
        );
        assert!(
            answer["Error"].as_str().unwrap().contains(mention),
            "{answer}"
        );
        assert_eq!(
            (w.snapshot(), kernel_tables(&w)),
            before,
            "{body} changed state"
        );
    }
    let _web = s.serve(&["tcp-serve", "0.0.0.0:80"]);
    assert!(inbound(&w, &s, 8080, 80), "the endpoint works as before");
}
