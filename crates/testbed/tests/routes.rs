//! SDN routes with packets (issue 5, item 4): a `HostComputeRoute` object
//! steers a prefix of its endpoints through a chosen next hop, until it is
//! deleted, across a daemon restart; an `SDNRoute` policy does the same
//! for one endpoint on a NAT network; `HostRoute` is taken on NAT
//! networks; bad routes are refused with their codes and change nothing.
//!
//! The steering is seen at the servers: 203.0.113.1 is both the outside's
//! (past the host's default route) and a container's (R, on its loopback),
//! so which server printed the connection says which way it went.

mod common;

use std::path::Path;

use common::*;
use hostnet_api::Kind;
use hostnet_testbed::physical::{host_addr, id as id_of, GATEWAY};
use hostnet_testbed::{require_privileges, PhysicalNet, Probe, Session};
use serde_json::{json, Value};

const INVALID_IP: u32 = 0x803B_001E;
const INVALID_PREFIX: u32 = 0x803B_0030;
const ENDPOINT_NOT_FOUND: u32 = 0x803B_0002;
const NOT_IMPLEMENTED: u32 = 0x8000_4001;
const POLICY_ALREADY_EXISTS: u32 = 0x803B_0012;
/// The default NAT network's gateway (the host on 10.88.0.0/16).
const GATEWAY_OF_NAT: &str = "10.88.0.1";

/// `ip route` in a namespace.
fn routes_in(netns: &Path) -> String {
    let out = Probe::command(netns, "ip")
        .args(["-4", "route"])
        .output()
        .expect("ip route");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A container `R` that owns [`INTERNET`] on its loopback and serves TCP
/// there: a next hop that answers for the prefix itself.
fn responder(w: &World) -> (Container, Probe) {
    let r = w.container("nat", json!([]));
    let out = Probe::command(&r.netns, "ip")
        .args(["addr", "add", &format!("{INTERNET}/32"), "dev", "lo"])
        .output()
        .expect("ip addr");
    assert!(out.status.success(), "{out:?}");
    let server = r.serve(&["tcp-serve", &format!("{INTERNET}:7000")]);
    (r, server)
}

/// Who answered `from`'s connection to [`INTERNET`]: "outside" or "R",
/// with the peer address that server saw. The outside sees the host's
/// address (masqueraded), R the container's own (same network, no NAT);
/// the server that answered must have printed it.
fn who_answers(from: &Container, outside: &Probe, r: &Probe) -> (&'static str, String) {
    let (ok, said) = from.run(&["tcp-get", &format!("{INTERNET}:7000")]);
    assert!(ok, "{} -> {INTERNET}: {said}", from.ip);
    let peer = said
        .strip_prefix("peer ")
        .and_then(|p| p.split(':').next())
        .unwrap_or_else(|| panic!("{said:?}"))
        .to_string();
    let (who, server) = if peer == HOST {
        ("outside", outside)
    } else {
        ("R", r)
    };
    let line = server.next_line().unwrap_or_default();
    assert!(
        line.starts_with(&format!("peer {peer}:")),
        "{who} printed {line:?}, the client heard {said:?}"
    );
    (who, peer)
}

fn route_object(endpoints: &[&str], routes: Value) -> Value {
    json!({ "HostComputeEndpoints": endpoints, "Routes": routes,
            "SchemaVersion": { "Major": 2, "Minor": 0 } })
}

#[test]
fn a_route_object_steers_a_prefix_through_its_next_hop_until_deleted() {
    let Some(mut w) =
        World::new("a_route_object_steers_a_prefix_through_its_next_hop_until_deleted")
    else {
        return;
    };
    let outside = Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("{INTERNET}:7000")],
    );
    let (r, at_r) = responder(&w);
    let a = w.container("nat", json!([]));
    let b = w.container("nat", json!([]));
    assert_eq!(
        who_answers(&a, &outside, &at_r),
        ("outside", HOST.to_string())
    );

    let c = w.client();
    let route = c
        .create(
            Kind::Routes,
            &route_object(
                &[&a.ep_id],
                json!([{ "DestinationPrefix": "203.0.113.0/24", "NextHop": r.ip }]),
            ),
        )
        .expect("create route");
    let route_id = id(&route);
    assert!(
        route.get("Routes").is_some(),
        "the key sent is echoed: {route}"
    );
    assert!(
        routes_in(&a.netns).contains(&format!("203.0.113.0/24 via {} dev eth0", r.ip)),
        "{}",
        routes_in(&a.netns)
    );
    // A's packets go to R, unNATed (same network); B, not named, still
    // goes out through the host.
    assert_eq!(who_answers(&a, &outside, &at_r), ("R", a.ip.clone()));
    assert_eq!(
        who_answers(&b, &outside, &at_r),
        ("outside", HOST.to_string())
    );

    // Stored: a restart keeps the object and the route, and a connection
    // open through it.
    let _echo = r.serve(&["tcp-echo", &format!("{INTERNET}:7003")]);
    let mut session = Session::open(&a.netns, &format!("{INTERNET}:7003"));
    assert_eq!(session.say("through R"), "through R");
    w.daemon.restart();
    assert_eq!(
        c.list(Kind::Routes, None).expect("list"),
        std::slice::from_ref(&route)
    );
    assert_eq!(session.say("still there"), "still there");
    assert_eq!(who_answers(&a, &outside, &at_r), ("R", a.ip.clone()));

    // Routes cannot be modified (HNS has no such call): E_NOTIMPL.
    let (status, err) = w.raw(
        "PATCH",
        &format!("/v2/routes/{route_id}"),
        Some("{\"RequestType\":\"Update\",\"Settings\":{}}"),
    );
    assert_eq!(
        (status, err["ErrorCode"].as_u64()),
        (501, Some(u64::from(NOT_IMPLEMENTED))),
        "{err}"
    );

    c.delete(Kind::Routes, &route_id).expect("delete route");
    assert!(
        !routes_in(&a.netns).contains("203.0.113.0/24"),
        "{}",
        routes_in(&a.netns)
    );
    assert_eq!(
        who_answers(&a, &outside, &at_r),
        ("outside", HOST.to_string())
    );
    assert!(c.list(Kind::Routes, None).expect("list").is_empty());
    w.daemon.restart();
    assert!(c.list(Kind::Routes, None).expect("list").is_empty());
    assert!(!routes_in(&a.netns).contains("203.0.113.0/24"));
}

#[test]
fn deleting_an_endpoint_takes_it_out_of_its_routes() {
    let Some(w) = World::new("deleting_an_endpoint_takes_it_out_of_its_routes") else {
        return;
    };
    let outside = Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("{INTERNET}:7000")],
    );
    let (r, at_r) = responder(&w);
    let a = w.container("nat", json!([]));
    let b = w.container("nat", json!([]));
    let c = w.client();
    let route = c
        .create(
            Kind::Routes,
            &route_object(
                &[&a.ep_id, &b.ep_id],
                json!([{ "DestinationPrefix": "203.0.113.0/24", "NextHop": r.ip }]),
            ),
        )
        .expect("create route");
    assert_eq!(who_answers(&b, &outside, &at_r), ("R", b.ip.clone()));
    c.delete(Kind::Endpoints, &a.ep_id)
        .expect("delete endpoint");
    let left = c.get(Kind::Routes, &id(&route)).expect("get route");
    assert_eq!(left["HostComputeEndpoints"], json!([b.ep_id]));
    assert_eq!(who_answers(&b, &outside, &at_r), ("R", b.ip.clone()));
}

#[test]
fn sdn_route_policy_steers_a_nat_endpoint_and_host_route_is_taken() {
    let Some(w) = World::new("sdn_route_policy_steers_a_nat_endpoint_and_host_route_is_taken")
    else {
        return;
    };
    let outside = Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("{INTERNET}:7000")],
    );
    let (r, at_r) = responder(&w);
    let a = w.container(
        "nat",
        json!([{ "Type": "SDNRoute", "Settings": { "DestinationPrefix": "203.0.113.0/24", "NextHop": r.ip } }]),
    );
    assert_eq!(who_answers(&a, &outside, &at_r), ("R", a.ip.clone()));

    // HostRoute on a NAT network: the host reaches its endpoints.
    let c = w.client();
    let net = c
        .create(
            Kind::Networks,
            &json!({ "Name": "hr", "Type": "NAT", "Policies": [{ "Type": "HostRoute", "Settings": {} }],
                     "Ipams": [{ "Subnets": [{ "IpAddressPrefix": "10.77.0.0/24" }] }] }),
        )
        .expect("HostRoute on a NAT network");
    let d = Container::create(&c, &id(&net), json!({}));
    let _srv = d.serve(&["tcp-serve", "0.0.0.0:7001"]);
    let (ok, said) = Probe::run(w.host.path(), &["tcp-get", &format!("{}:7001", d.ip)]);
    assert!(ok, "host -> endpoint: {said}");
}

fn sdn_route(prefix: &str, hop: &str) -> Value {
    json!({ "Type": "SDNRoute", "Settings": { "DestinationPrefix": prefix, "NextHop": hop } })
}

fn change(request: &str, policies: Value) -> Value {
    json!({ "ResourceType": "Policy", "RequestType": request, "Settings": { "Policies": policies } })
}

#[test]
fn sdn_routes_change_by_endpoint_modify_and_a_refused_change_keeps_them() {
    let Some(mut w) =
        World::new("sdn_routes_change_by_endpoint_modify_and_a_refused_change_keeps_them")
    else {
        return;
    };
    let outside = Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("{INTERNET}:7000")],
    );
    let (r, at_r) = responder(&w);
    let a = w.container("nat", json!([]));
    let c = w.client();
    assert_eq!(
        who_answers(&a, &outside, &at_r),
        ("outside", HOST.to_string())
    );

    // Add: A's packets to the prefix go to R from now on.
    c.modify(
        Kind::Endpoints,
        &a.ep_id,
        &change("Add", json!([sdn_route("203.0.113.0/24", &r.ip)])),
    )
    .expect("add an SDNRoute");
    assert!(
        routes_in(&a.netns).contains(&format!("203.0.113.0/24 via {} dev eth0", r.ip)),
        "{}",
        routes_in(&a.netns)
    );
    assert_eq!(who_answers(&a, &outside, &at_r), ("R", a.ip.clone()));

    // Refused changes leave the route where it is: a next hop off the
    // subnet (INVALID_IP), a second route to the same prefix.
    let kernel_routes = routes_in(&a.netns);
    let before = w.snapshot();
    for (policies, code) in [
        (json!([sdn_route("198.18.0.0/15", "10.99.0.1")]), INVALID_IP),
        (
            json!([sdn_route("203.0.113.0/24", GATEWAY_OF_NAT)]),
            POLICY_ALREADY_EXISTS,
        ),
    ] {
        let body = change("Add", policies);
        let (status, err) = w.raw(
            "PATCH",
            &format!("/v2/endpoints/{}", a.ep_id),
            Some(&body.to_string()),
        );
        assert_eq!(
            err["ErrorCode"].as_u64(),
            Some(u64::from(code)),
            "{body}: {status} {err}"
        );
    }
    assert_eq!(routes_in(&a.netns), kernel_routes);
    assert_eq!(w.snapshot(), before);
    assert_eq!(who_answers(&a, &outside, &at_r), ("R", a.ip.clone()));

    // Stored: a restart keeps it.
    w.daemon.restart();
    assert_eq!(who_answers(&a, &outside, &at_r), ("R", a.ip.clone()));

    // Remove: back out through the host.
    c.modify(
        Kind::Endpoints,
        &a.ep_id,
        &change("Remove", json!([sdn_route("203.0.113.0/24", &r.ip)])),
    )
    .expect("remove the SDNRoute");
    assert!(
        !routes_in(&a.netns).contains("203.0.113.0/24"),
        "{}",
        routes_in(&a.netns)
    );
    assert_eq!(
        who_answers(&a, &outside, &at_r),
        ("outside", HOST.to_string())
    );
}

#[test]
fn bad_routes_are_refused_with_their_codes_and_change_nothing() {
    let Some(mut w) = World::new("bad_routes_are_refused_with_their_codes_and_change_nothing")
    else {
        return;
    };
    let a = w.container("nat", json!([]));
    let before = w.snapshot();
    let kernel_routes = routes_in(&a.netns);
    let cases = [
        (
            route_object(
                &["0A0B0C0D-0000-4000-8000-00000000DEAD"],
                json!([{ "DestinationPrefix": "192.0.2.0/24", "NextHop": "10.88.0.1" }]),
            ),
            ENDPOINT_NOT_FOUND,
            "does not exist",
        ),
        (
            route_object(
                &[&a.ep_id],
                json!([{ "DestinationPrefix": "192.0.2.0/33", "NextHop": "10.88.0.1" }]),
            ),
            INVALID_PREFIX,
            "DestinationPrefix",
        ),
        (
            route_object(
                &[&a.ep_id],
                json!([{ "DestinationPrefix": "not-a-prefix", "NextHop": "10.88.0.1" }]),
            ),
            INVALID_PREFIX,
            "DestinationPrefix",
        ),
        (
            route_object(
                &[&a.ep_id],
                json!([{ "DestinationPrefix": "192.0.2.0/24", "NextHop": "198.51.100.1" }]),
            ),
            INVALID_IP,
            "not reachable",
        ),
        // The second route is bad: the first must not be left behind.
        (
            route_object(
                &[&a.ep_id],
                json!([{ "DestinationPrefix": "192.0.2.0/24", "NextHop": "10.88.0.1" },
                                          { "DestinationPrefix": "198.18.0.0/15", "NextHop": "10.99.0.1" }]),
            ),
            INVALID_IP,
            "10.99.0.1",
        ),
    ];
    for (body, code, says) in cases {
        let (status, err) = w.raw("POST", "/v2/routes", Some(&body.to_string()));
        assert_eq!(
            err["ErrorCode"].as_u64(),
            Some(u64::from(code)),
            "{body}: {status} {err}"
        );
        assert!(
            err["Error"].as_str().unwrap_or("").contains(says),
            "{body}: {err}"
        );
    }
    assert!(w
        .client()
        .list(Kind::Routes, None)
        .expect("list")
        .is_empty());
    assert_eq!(routes_in(&a.netns), kernel_routes);
    assert_eq!(w.snapshot(), before);
    w.daemon.restart();
    assert!(w
        .client()
        .list(Kind::Routes, None)
        .expect("list")
        .is_empty());
    assert_eq!(w.snapshot(), before);
}

#[test]
fn need_encap_routes_a_transparent_endpoint_through_the_host() {
    let test = "need_encap_routes_a_transparent_endpoint_through_the_host";
    if !require_privileges(test) {
        return;
    }
    let mut phys = PhysicalNet::new("rt", 1);
    phys.start_daemons(&["--no-default-network"]);
    let h1 = phys.host(0);
    let net = h1
        .client()
        .create(
            Kind::Networks,
            &json!({ "Name": "t1", "Type": "Transparent",
                "Ipams": [{ "Subnets": [{ "IpAddressPrefix": "192.0.2.0/24",
                    "Routes": [{ "NextHop": GATEWAY, "DestinationPrefix": "0.0.0.0/0" }] }] }] }),
        )
        .expect("Transparent network");
    let a = Container::create(
        &h1.client(),
        &id_of(&net),
        json!({ "IpConfigurations": [{ "IpAddress": "192.0.2.50" }] }),
    );
    // The router's address on its other subnet answers for both paths.
    let srv = Probe::serve(phys.router.path(), &["tcp-serve", "198.18.1.1:7005"]);
    let fetch = |what: &str| {
        let before = h1.forwarded();
        let (ok, said) = a.run(&["tcp-get", "198.18.1.1:7005"]);
        assert!(ok && said.starts_with("peer 192.0.2.50:"), "{what}: {said}");
        assert!(srv
            .next_line()
            .unwrap_or_default()
            .starts_with("peer 192.0.2.50:"));
        h1.forwarded() - before
    };
    assert_eq!(
        fetch("straight to the gateway"),
        0,
        "the host routed it without a route"
    );

    let route = h1
        .client()
        .create(
            Kind::Routes,
            &route_object(
                &[&a.ep_id],
                json!([{ "DestinationPrefix": "198.18.1.0/24", "NeedEncap": true }]),
            ),
        )
        .expect("create route");
    assert!(
        routes_in(&a.netns).contains(&format!("198.18.1.0/24 via {} dev eth0", host_addr(0))),
        "{}",
        routes_in(&a.netns)
    );
    assert!(fetch("through the host") > 0, "the host did not route it");
    h1.client()
        .delete(Kind::Routes, &id(&route))
        .expect("delete route");
    assert!(!routes_in(&a.netns).contains("198.18.1.0/24"));
}
