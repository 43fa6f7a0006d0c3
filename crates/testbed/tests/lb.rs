//! Load balancers end to end (issue 5 item 3): hostnetd in a host
//! namespace, containers as backends and clients, real connections.
//! See docs/load-balancers.md.

mod common;

use std::time::Duration;

use common::*;
use hostnet_api::Kind;
use hostnet_testbed::{wait_until, Probe, Session};
use serde_json::{json, Value};

const VIP: &str = "10.96.0.10";
/// The NAT network's gateway: the host's address on its bridge.
const GATEWAY: &str = "10.88.0.1";

/// Backends serving `args` (e.g. `tcp-serve 0.0.0.0:8080`), one probe each.
struct Backends {
    containers: Vec<Container>,
    servers: Vec<Probe>,
}

impl Backends {
    fn start(w: &World, n: usize, args: &[&str]) -> Backends {
        let containers: Vec<Container> = (0..n).map(|_| w.container("nat", json!([]))).collect();
        let servers = containers.iter().map(|c| c.serve(args)).collect();
        Backends {
            containers,
            servers,
        }
    }

    fn ids(&self) -> Vec<String> {
        self.containers.iter().map(|c| c.ep_id.clone()).collect()
    }

    /// How many connections each backend has served since the last call,
    /// once `total` have arrived in all (the servers print one line each).
    fn served(&self, total: usize) -> Vec<usize> {
        let mut counts = vec![0; self.servers.len()];
        let arrived = wait_until(Duration::from_secs(5), || {
            for (count, server) in counts.iter_mut().zip(&self.servers) {
                *count += server.drain().len();
            }
            counts.iter().sum::<usize>() >= total
        });
        assert!(arrived, "only {counts:?} of {total} connections arrived");
        counts
    }
}

fn lb_body(vips: &[&str], proto: u32, port: u16, target: u16, backends: &[String]) -> Value {
    json!({
        "HostComputeEndpoints": backends,
        "FrontendVIPs": vips,
        "PortMappings": [{ "Protocol": proto, "InternalPort": target, "ExternalPort": port }],
        "SchemaVersion": { "Major": 2, "Minor": 0 }
    })
}

/// `n` one-shot clients of `args` from `netns`, all of which must succeed;
/// returns what each said.
fn connect_many(netns: &std::path::Path, args: &[&str], n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let (ok, said) = Probe::run(netns, args);
            assert!(ok, "connection {i} of {args:?} failed: {said}");
            said
        })
        .collect()
}

fn both_used(counts: &[usize], what: &str) {
    assert!(
        counts.iter().all(|&c| c >= 3),
        "{what}: connections were not spread over the backends: {counts:?}"
    );
}

#[test]
fn cluster_ip_spreads_connections_from_containers_and_the_host() {
    let Some(w) = World::new("cluster_ip_spreads_connections_from_containers_and_the_host") else {
        return;
    };
    let tcp = Backends::start(&w, 2, &["tcp-serve", "0.0.0.0:8080"]);
    let mut body = lb_body(&[VIP], 6, 80, 8080, &tcp.ids());
    body["PortMappings"][0]["Flags"] = json!(2); // LocalRoutedVip: the host too
    let lb = w
        .client()
        .create(Kind::LoadBalancers, &body)
        .expect("create");
    let lb_id = id(&lb);
    // Echoed as kube-proxy reads it back.
    let got = w.client().get(Kind::LoadBalancers, &lb_id).unwrap();
    for key in ["HostComputeEndpoints", "FrontendVIPs", "PortMappings"] {
        assert_eq!(got[key], body[key], "{key} not echoed: {got}");
    }
    let listed = w.client().list(Kind::LoadBalancers, None).unwrap();
    assert_eq!(listed, vec![got.clone()]);
    let filter = json!({ "ID": lb_id });
    assert_eq!(
        w.client().list(Kind::LoadBalancers, Some(&filter)).unwrap(),
        vec![got]
    );

    let client = w.container("nat", json!([]));
    // Trace shows the LB rule and the rewrite to one of the backends.
    let t = w
        .client()
        .trace(
            &client.ep_id,
            &json!({ "Direction": "Out", "Protocol": "tcp", "Destination": format!("{VIP}:80") }),
        )
        .unwrap();
    let text = t["Text"].as_str().unwrap_or_default();
    assert!(
        text.contains(&format!("group lb/{lb_id} rule lb:{VIP}:6:80 prio 0 balance to one of 2 backends port 8080 per connection")),
        "{text}"
    );
    let after = t["PacketAfter"].as_str().unwrap_or_default().to_string();
    assert!(
        tcp.containers
            .iter()
            .any(|c| after.ends_with(&format!("{}:8080", c.ip))),
        "rewritten to {after}"
    );
    let said = connect_many(&client.netns, &["tcp-get", &format!("{VIP}:80")], 30);
    // Same bridge: the host's hairpin NAT gives the gateway as source.
    assert!(said.iter().all(|s| s.starts_with("peer ")), "{said:?}");
    both_used(&tcp.served(30), "from a container");
    connect_many(w.host.path(), &["tcp-get", &format!("{VIP}:80")], 30);
    both_used(&tcp.served(30), "from the host");

    // UDP on the same VIP, its own port.
    let udp = Backends::start(&w, 2, &["udp-serve", "0.0.0.0:5353"]);
    w.client()
        .create(
            Kind::LoadBalancers,
            &lb_body(&[VIP], 17, 53, 5353, &udp.ids()),
        )
        .expect("udp lb");
    connect_many(&client.netns, &["udp-get", &format!("{VIP}:53")], 30);
    both_used(&udp.served(30), "udp from a container");

    // Without LocalRoutedVip the host's own connection is not balanced.
    let (ok, said) = Probe::run(w.host.path(), &["udp-get", &format!("{VIP}:53")]);
    assert!(!ok, "the host reached a VIP without LocalRoutedVip: {said}");
}

#[test]
fn node_port_reaches_backends_from_outside_with_source_vip() {
    let Some(w) = World::new("node_port_reaches_backends_from_outside_with_source_vip") else {
        return;
    };
    let tcp = Backends::start(&w, 2, &["tcp-serve", "0.0.0.0:8080"]);
    let body = lb_body(&[], 6, 30080, 8080, &tcp.ids());
    let lb = w
        .client()
        .create(Kind::LoadBalancers, &body)
        .expect("node port");
    assert!(lb.get("FrontendVIPs").is_none(), "{lb}");
    let said = connect_many(w.outside.path(), &["tcp-get", &format!("{HOST}:30080")], 30);
    assert!(
        said.iter()
            .all(|s| s.starts_with(&format!("peer {OUTSIDE}:"))),
        "backends did not see the outside client: {said:?}"
    );
    both_used(&tcp.served(30), "node port from outside");
    // Not from the host without LocalRoutedVip: nothing listens there.
    let (ok, said) = Probe::run(w.host.path(), &["tcp-get", &format!("{HOST}:30080")]);
    assert!(
        !ok,
        "the host reached a node port without LocalRoutedVip: {said}"
    );

    // With a SourceVIP the backends see it instead.
    let mut body = body;
    body["SourceVIP"] = json!(GATEWAY);
    w.client()
        .modify(Kind::LoadBalancers, &id(&lb), &body)
        .expect("modify");
    let said = connect_many(w.outside.path(), &["tcp-get", &format!("{HOST}:30080")], 10);
    assert!(
        said.iter()
            .all(|s| s.starts_with(&format!("peer {GATEWAY}:"))),
        "backends did not see the SourceVIP: {said:?}"
    );
    tcp.served(10);
    // LocalRoutedVip: the host reaches its own node port too.
    body["PortMappings"][0]["Flags"] = json!(2);
    w.client()
        .modify(Kind::LoadBalancers, &id(&lb), &body)
        .expect("modify");
    connect_many(w.host.path(), &["tcp-get", &format!("{HOST}:30080")], 5);
    tcp.served(5);

    // An internal LB (ILB) is reached from containers only.
    let ilb = Backends::start(&w, 1, &["tcp-serve", "0.0.0.0:9090"]);
    let mut body = lb_body(&["10.96.0.20"], 6, 90, 9090, &ilb.ids());
    body["PortMappings"][0]["Flags"] = json!(1);
    w.client().create(Kind::LoadBalancers, &body).expect("ilb");
    let client = w.container("nat", json!([]));
    connect_many(&client.netns, &["tcp-get", "10.96.0.20:90"], 3);
    ilb.served(3);
    // A container reaches the node port on the host's address, as its
    // trace says (the model takes the host's addresses from the kernel).
    connect_many(&client.netns, &["tcp-get", &format!("{HOST}:30080")], 3);
    tcp.served(3);
    let t = w
        .client()
        .trace(
            &client.ep_id,
            &json!({ "Direction": "Out", "Protocol": "tcp", "Destination": format!("{HOST}:30080") }),
        )
        .unwrap();
    let text = t["Text"].as_str().unwrap_or_default();
    assert!(
        text.contains(&format!("rule lb:{HOST}:6:30080 prio 0 balance to one of 2 backends port 8080 per connection source {GATEWAY}")),
        "{text}"
    );
    w.outside.ip(&["route", "add", "10.96.0.0/16", "via", HOST]);
    let (ok, said) = Probe::run(w.outside.path(), &["tcp-get", "10.96.0.20:90"]);
    assert!(!ok, "the outside reached an internal LB: {said}");
    // Not internal: the outside reaches a VIP routed to the host.
    let mut body = lb_body(&["10.96.0.30"], 6, 90, 9090, &ilb.ids());
    body["PortMappings"][0]["Flags"] = json!(16);
    w.client()
        .create(Kind::LoadBalancers, &body)
        .expect("external");
    connect_many(w.outside.path(), &["tcp-get", "10.96.0.30:90"], 3);
    ilb.served(3);
}

#[test]
fn source_ip_affinity_sends_a_client_to_one_backend() {
    let Some(w) = World::new("source_ip_affinity_sends_a_client_to_one_backend") else {
        return;
    };
    let tcp = Backends::start(&w, 3, &["tcp-serve", "0.0.0.0:8080"]);
    let mut body = lb_body(&[VIP], 6, 80, 8080, &tcp.ids());
    body["PortMappings"][0]["DistributionType"] = json!(2);
    w.client()
        .create(Kind::LoadBalancers, &body)
        .expect("create");
    let got = w.client().list(Kind::LoadBalancers, None).unwrap();
    assert_eq!(got[0]["PortMappings"][0]["DistributionType"], 2);
    let mut sticky = 0;
    for _ in 0..4 {
        let client = w.container("nat", json!([]));
        connect_many(&client.netns, &["tcp-get", &format!("{VIP}:80")], 8);
        let counts = tcp.served(8);
        assert_eq!(
            counts.iter().filter(|&&c| c > 0).count(),
            1,
            "one client's connections went to several backends: {counts:?}"
        );
        sticky += 1;
    }
    assert_eq!(sticky, 4);
}

#[test]
fn deleted_endpoints_leave_the_backends_and_modify_replaces_them() {
    let Some(w) = World::new("deleted_endpoints_leave_the_backends_and_modify_replaces_them")
    else {
        return;
    };
    let tcp = Backends::start(&w, 3, &["tcp-serve", "0.0.0.0:8080"]);
    let ids = tcp.ids();
    let lb = w
        .client()
        .create(
            Kind::LoadBalancers,
            &lb_body(&[VIP], 6, 80, 8080, &ids[..2]),
        )
        .unwrap();
    let lb_id = id(&lb);
    let client = w.container("nat", json!([]));
    let vip = format!("{VIP}:80");
    connect_many(&client.netns, &["tcp-get", &vip], 20);
    let counts = tcp.served(20);
    assert!(
        counts[0] > 0 && counts[1] > 0 && counts[2] == 0,
        "{counts:?}"
    );

    // The second backend's endpoint goes: it leaves the LB, store and kernel.
    w.client().delete(Kind::Endpoints, &ids[1]).unwrap();
    let got = w.client().get(Kind::LoadBalancers, &lb_id).unwrap();
    assert_eq!(got["HostComputeEndpoints"], json!([ids[0]]));
    assert_eq!(w.elements("inet", "map", "lb_vip_slots4").len(), 1);
    connect_many(&client.netns, &["tcp-get", &vip], 10);
    assert_eq!(tcp.served(10), vec![10, 0, 0]);

    // An open connection to the first backend (echo on another port).
    let _echo = tcp.containers[0].serve(&["tcp-echo", "0.0.0.0:7070"]);
    let echo_lb = w
        .client()
        .create(
            Kind::LoadBalancers,
            &lb_body(&[VIP], 6, 70, 7070, &ids[..1]),
        )
        .unwrap();
    let mut session = Session::open(&client.netns, &format!("{VIP}:70"));
    assert_eq!(session.say("before"), "before");

    // Modify, wrapped as SDN sends it, replaces the backends.
    let wrapped = json!({
        "RequestType": "Update", "ResourceType": "LoadBalancer",
        "Settings": lb_body(&[VIP], 6, 80, 8080, &ids[2..]),
    });
    let got = w
        .client()
        .modify(Kind::LoadBalancers, &lb_id, &wrapped)
        .unwrap();
    assert_eq!(got["HostComputeEndpoints"], json!([ids[2]]));
    connect_many(&client.netns, &["tcp-get", &vip], 10);
    assert_eq!(tcp.served(10), vec![0, 0, 10]);
    // Conntrack keeps an open connection on its backend when the LB moves.
    w.client()
        .modify(
            Kind::LoadBalancers,
            &id(&echo_lb),
            &lb_body(&[VIP], 6, 70, 7070, &ids[2..]),
        )
        .unwrap();
    assert_eq!(session.say("after"), "after", "the open connection moved");

    // Delete: the frontends are gone from every map.
    w.client().delete(Kind::LoadBalancers, &lb_id).unwrap();
    w.client()
        .delete(Kind::LoadBalancers, &id(&echo_lb))
        .unwrap();
    for map in ["lb_vip_guests4", "lb_vip_outside4", "lb_vip_slots4"] {
        assert!(
            w.elements("inet", "map", map).is_empty(),
            "{map} kept elements"
        );
    }
    assert_eq!(
        code(w.client().get(Kind::LoadBalancers, &lb_id)),
        0x8007_0490
    );
}

#[test]
fn load_balancers_and_their_connections_survive_a_restart() {
    let Some(mut w) = World::new("load_balancers_and_their_connections_survive_a_restart") else {
        return;
    };
    let echo = Backends::start(&w, 1, &["tcp-echo", "0.0.0.0:8080"]);
    w.client()
        .create(
            Kind::LoadBalancers,
            &lb_body(&[VIP], 6, 80, 8080, &echo.ids()),
        )
        .unwrap();
    let client = w.container("nat", json!([]));
    let mut session = Session::open(&client.netns, &format!("{VIP}:80"));
    assert_eq!(session.say("one"), "one");
    let before = w.client().list(Kind::LoadBalancers, None).unwrap();
    let elements = w.elements("inet", "map", "lb_vip_slots4");
    w.daemon.kill9_and_restart();
    assert_eq!(session.say("two"), "two", "the connection broke");
    assert_eq!(w.client().list(Kind::LoadBalancers, None).unwrap(), before);
    assert_eq!(w.elements("inet", "map", "lb_vip_slots4"), elements);
    let mut other = Session::open(&client.netns, &format!("{VIP}:80"));
    assert_eq!(
        other.say("three"),
        "three",
        "a new connection after the restart"
    );
}

#[test]
fn bad_load_balancers_are_refused_and_change_nothing() {
    let Some(w) = World::new("bad_load_balancers_are_refused_and_change_nothing") else {
        return;
    };
    let backends = Backends::start(&w, 1, &["tcp-serve", "0.0.0.0:8080"]);
    let ids = backends.ids();
    let lb = w
        .client()
        .create(Kind::LoadBalancers, &lb_body(&[VIP], 6, 80, 8080, &ids))
        .unwrap();
    w.client()
        .create(
            Kind::Networks,
            &json!({ "Name": "other", "Type": "nat", "Ipams": [{ "Subnets": [{ "IpAddressPrefix": "10.89.0.0/16" }] }] }),
        )
        .unwrap();
    let stranger = w.container("other", json!([]));
    let published = w.container("nat", json!([port_mapping(6, 80, 30081)]));

    let state = |w: &World| {
        let maps: Vec<Vec<String>> = [
            "lb_vip_guests4",
            "lb_vip_outside4",
            "lb_vip_host4",
            "lb_node_guests4",
            "lb_node_outside4",
            "lb_vip_backends4",
            "lb_node_backends4",
            "lb_vip_slots4",
            "lb_node_slots4",
        ]
        .iter()
        .map(|m| w.elements("inet", "map", m))
        .chain(
            [
                ("inet", "map", "lb_pdip_vips4"),
                ("netdev hostnet_pdip_replies", "map", "pdip_replies4"),
                ("netdev hostnet_pdip", "chain", "pdip_to_backends"),
            ]
            .iter()
            .map(|(family, kind, name)| w.elements(family, kind, name)),
        )
        .collect();
        (w.client().list(Kind::LoadBalancers, None).unwrap(), maps)
    };
    let before = state(&w);
    let missing = "0A0B0C0D-0000-4000-8000-000000000001".to_string();
    let cases: Vec<(&str, Value, u32)> = vec![
        (
            "same VIP, protocol and port",
            lb_body(&[VIP], 6, 80, 9000, &ids),
            0x803B_0013,
        ),
        (
            "a node port an endpoint publishes",
            lb_body(&[], 6, 30081, 8080, &ids),
            0x803B_0013,
        ),
        (
            "unknown endpoint",
            lb_body(&["10.96.0.11"], 6, 80, 8080, &[ids[0].clone(), missing]),
            0x803B_0002,
        ),
        (
            "backends on two networks",
            lb_body(
                &["10.96.0.11"],
                6,
                80,
                8080,
                &[ids[0].clone(), stranger.ep_id.clone()],
            ),
            0x803B_000C,
        ),
        (
            "IPv6 flag with an IPv4 VIP",
            {
                let mut b = lb_body(&["10.96.0.11"], 6, 80, 8080, &ids);
                b["Flags"] = json!(2);
                b
            },
            0x803B_001E,
        ),
        (
            "IPv6 with backends that have no IPv6 address",
            {
                let mut b = lb_body(&["fd00:96::11"], 6, 80, 8080, &ids);
                b["Flags"] = json!(2);
                b
            },
            0x803B_000C,
        ),
        (
            "PreserveDip on a node port",
            {
                let mut b = lb_body(&[], 6, 30090, 8080, &ids);
                b["PortMappings"][0]["Flags"] = json!(8);
                b
            },
            0x803B_0015,
        ),
        (
            "PreserveDip with DSR",
            {
                let mut b = lb_body(&["10.96.0.11"], 6, 8080, 8080, &ids);
                b["PortMappings"][0]["Flags"] = json!(8);
                b["Flags"] = json!(1);
                b
            },
            0x803B_0015,
        ),
        (
            "ICMP port mapping",
            lb_body(&["10.96.0.11"], 1, 80, 8080, &ids),
            0x803B_000D,
        ),
        (
            "malformed VIP",
            lb_body(&["10.96.0.300"], 6, 80, 8080, &ids),
            0x803B_001E,
        ),
        (
            "port of the wrong type",
            json!({ "PortMappings": [{ "Protocol": 6, "InternalPort": "x", "ExternalPort": 80 }] }),
            0x803B_001B,
        ),
    ];
    for (what, body, want) in &cases {
        let got = code(w.client().create(Kind::LoadBalancers, body));
        assert_eq!(got, *want, "{what}: {got:#x}");
        assert_eq!(state(&w), before, "{what} changed something");
    }
    // A modify that conflicts or names an unknown endpoint changes nothing.
    let second = w
        .client()
        .create(
            Kind::LoadBalancers,
            &lb_body(&["10.96.0.12"], 6, 80, 8080, &ids),
        )
        .unwrap();
    let before = state(&w);
    for (body, want) in [
        (lb_body(&[VIP], 6, 80, 8080, &ids), 0x803B_0013),
        (
            lb_body(
                &["10.96.0.12"],
                6,
                80,
                8080,
                &[published.ep_id.clone(), stranger.ep_id.clone()],
            ),
            0x803B_000C,
        ),
    ] {
        let got = code(w.client().modify(Kind::LoadBalancers, &id(&second), &body));
        assert_eq!(got, want);
        assert_eq!(state(&w), before);
    }
    let (status, body) = w.raw(
        "PATCH",
        &format!("/v2/loadbalancers/{}", id(&lb)),
        Some("{nope"),
    );
    assert_eq!(
        (status >= 400, body["ErrorCode"].as_u64()),
        (true, Some(0x803B_001B))
    );
    assert_eq!(state(&w), before);
}

#[test]
fn more_backends_than_slots_share_bucket_ranges_and_switch_back() {
    let Some(w) = World::new("more_backends_than_slots_share_bucket_ranges_and_switch_back") else {
        return;
    };
    // 65 backends in one namespace (eth0..eth64), one server on them all.
    let host = w.container("nat", json!([]));
    let net = w.network("nat");
    let mut ids = vec![host.ep_id.clone()];
    for i in 1..=64 {
        let ep = w
            .client()
            .create(Kind::Endpoints, &json!({ "HostComputeNetwork": net }))
            .unwrap();
        w.client()
            .attach_endpoint_as(&host.ns_id, &id(&ep), &format!("eth{i}"))
            .unwrap();
        ids.push(id(&ep));
    }
    let _server = host.serve(&["tcp-serve", "0.0.0.0:8080"]);
    let lb = w
        .client()
        .create(Kind::LoadBalancers, &lb_body(&[VIP], 6, 80, 8080, &ids))
        .unwrap();
    assert_eq!(w.elements("inet", "map", "lb_vip_backends4").len(), 65);
    assert!(w.elements("inet", "map", "lb_vip_slots4").is_empty());
    let client = w.container("nat", json!([]));
    connect_many(&client.netns, &["tcp-get", &format!("{VIP}:80")], 20);

    // Down to two: the slots again, in one transaction.
    w.client()
        .modify(
            Kind::LoadBalancers,
            &id(&lb),
            &lb_body(&[VIP], 6, 80, 8080, &ids[..2]),
        )
        .unwrap();
    assert!(w.elements("inet", "map", "lb_vip_backends4").is_empty());
    assert_eq!(w.elements("inet", "map", "lb_vip_slots4").len(), 2);
    connect_many(&client.netns, &["tcp-get", &format!("{VIP}:80")], 10);
}

#[test]
fn dsr_delivers_the_clients_packets_to_a_backend_holding_the_vip() {
    let Some(mut w) = World::new("dsr_delivers_the_clients_packets_to_a_backend_holding_the_vip")
    else {
        return;
    };
    let early = w.container("nat", json!([]));
    let tcp = Backends::start(&w, 2, &["tcp-serve", "0.0.0.0:80"]);
    let mut body = lb_body(&[VIP], 6, 80, 80, &tcp.ids());
    body["Flags"] = json!(1);
    let lb = w
        .client()
        .create(Kind::LoadBalancers, &body)
        .expect("dsr lb");
    let late = w.container("nat", json!([]));
    let holds_vip = |c: &Container| hostnet_testbed::inspect::accepts_vip(&c.netns, VIP);
    assert!(
        tcp.containers.iter().all(holds_vip),
        "backends lack the VIP"
    );
    assert!(!holds_vip(&early));
    // Clients attached before and after the LB: the backends see the
    // client itself (the NAT path would show the gateway, hairpin NAT).
    for client in [&early, &late] {
        let said = connect_many(&client.netns, &["tcp-get", &format!("{VIP}:80")], 30);
        assert!(
            said.iter()
                .all(|s| s.starts_with(&format!("peer {}:", client.ip))),
            "not delivered directly: {said:?}"
        );
        both_used(&tcp.served(30), "dsr");
    }
    // The outside still reaches the VIP, through the NAT path.
    w.outside.ip(&["route", "add", "10.96.0.0/16", "via", HOST]);
    connect_many(w.outside.path(), &["tcp-get", &format!("{VIP}:80")], 4);
    tcp.served(4);

    // A restart keeps it all.
    w.daemon.kill9_and_restart();
    let said = connect_many(&late.netns, &["tcp-get", &format!("{VIP}:80")], 4);
    assert!(said
        .iter()
        .all(|s| s.starts_with(&format!("peer {}:", late.ip))));
    tcp.served(4);

    // The clients' ports are hooked on the DSR chain, the backends' not
    // (they reach their own service through the NAT path).
    let veth = |ep: &str| format!("hnve{}", &ep.replace('-', "").to_lowercase()[..10]);
    let hooked = w.nft_elements("netdev hostnet_dsr", "chain", "dsr_ports");
    assert!(
        hooked.contains(&veth(&early.ep_id)) && hooked.contains(&veth(&late.ep_id)),
        "{hooked}"
    );
    assert!(
        !hooked.contains(&veth(&tcp.containers[0].ep_id)),
        "{hooked}"
    );

    // Deleted: the VIPs leave the backends, the ports the DSR chain.
    w.client().delete(Kind::LoadBalancers, &id(&lb)).unwrap();
    assert!(
        !tcp.containers.iter().any(holds_vip),
        "a backend kept the VIP"
    );
    let hooked = w.nft_elements("netdev hostnet_dsr", "chain", "dsr_ports");
    assert!(!hooked.contains("hnve"), "ports still hooked: {hooked}");
}
