//! The NAT network end to end, on the real kernel (tier 2): hostnetd in a
//! host namespace, containers it made, an outside namespace, real packets.

mod common;

use common::*;
use hostnet_api::Kind;
use hostnet_testbed::{Probe, Session};
use serde_json::json;

#[test]
fn container_reaches_outside_through_nat() {
    let Some(w) = World::new("container_reaches_outside_through_nat") else {
        return;
    };
    let server = Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("{INTERNET}:7000")],
    );
    let a = w.container("nat", json!([]));
    let (ok, said) = a.run(&["tcp-get", &format!("{INTERNET}:7000")]);
    assert!(ok, "container could not reach the outside");
    assert!(
        said.starts_with(&format!("peer {HOST}:")),
        "outside saw {said}, not the host's address"
    );
    assert!(server
        .next_line()
        .unwrap()
        .starts_with(&format!("peer {HOST}:")));
    let (ok, said) = a.run(&["udp-get", &format!("{OUTSIDE}:7001")]);
    assert!(!ok, "nothing listens on udp 7001 but got {said}");
}

#[test]
fn published_ports_reach_the_container_from_everywhere() {
    let Some(w) = World::new("published_ports_reach_the_container_from_everywhere") else {
        return;
    };
    let a = w.container(
        "nat",
        json!([port_mapping(6, 80, 8080), port_mapping(17, 53, 5353)]),
    );
    let _tcp = a.serve(&["tcp-serve", "0.0.0.0:80"]);
    let _udp = a.serve(&["udp-serve", "0.0.0.0:53"]);

    // From outside the host: the container sees the real client.
    let (ok, said) = Probe::run(w.outside.path(), &["tcp-get", &format!("{HOST}:8080")]);
    assert!(
        ok && said.starts_with(&format!("peer {OUTSIDE}:")),
        "tcp from outside: {said}"
    );
    let (ok, said) = Probe::run(w.outside.path(), &["udp-get", &format!("{HOST}:5353")]);
    assert!(
        ok && said.starts_with(&format!("peer {OUTSIDE}:")),
        "udp from outside: {said}"
    );

    // From the host itself.
    let (ok, said) = Probe::run(w.host.path(), &["tcp-get", &format!("{HOST}:8080")]);
    assert!(ok, "tcp from the host: {said}");

    // From another container, through the host's address (hairpin).
    let b = w.container("nat", json!([]));
    let (ok, said) = b.run(&["tcp-get", &format!("{HOST}:8080")]);
    assert!(ok, "hairpin tcp: {said}");
    let (ok, said) = b.run(&["udp-get", &format!("{HOST}:5353")]);
    assert!(ok, "hairpin udp: {said}");

    // An unmapped port is closed.
    let (ok, _) = Probe::run(w.outside.path(), &["tcp-get", &format!("{HOST}:8081")]);
    assert!(!ok);
}

#[test]
fn networks_are_isolated_except_through_published_ports() {
    let Some(w) = World::new("networks_are_isolated_except_through_published_ports") else {
        return;
    };
    w.client()
        .create(
            Kind::Networks,
            &json!({ "Name": "other", "Type": "nat", "Ipams": [{ "Subnets": [{ "IpAddressPrefix": "10.89.0.0/16" }] }] }),
        )
        .expect("second network");
    let a = w.container("nat", json!([port_mapping(6, 80, 8080)]));
    let _srv = a.serve(&["tcp-serve", "0.0.0.0:80"]);
    let b = w.container("nat", json!([]));
    let c = w.container("other", json!([]));
    assert!(c.ip.starts_with("10.89."), "{}", c.ip);

    let (ok, said) = b.run(&["tcp-get", &format!("{}:80", a.ip)]);
    assert!(ok, "same network: {said}");
    assert!(
        said.starts_with(&format!("peer {}:", b.ip)),
        "same network: the container saw {said}, not its neighbour's address"
    );
    let (ok, said) = c.run(&["tcp-get", &format!("{}:80", a.ip)]);
    assert!(!ok, "across networks the container answered: {said}");
    let (ok, _) = c.run(&["ping", &a.ip]);
    assert!(!ok, "across networks ping passed");
    let (ok, said) = c.run(&["tcp-get", &format!("{HOST}:8080")]);
    assert!(ok, "published port from the other network: {said}");
    // The outside cannot route into a NAT network either.
    w.outside.ip(&["route", "add", SUBNET, "via", HOST]);
    let (ok, said) = Probe::run(w.outside.path(), &["tcp-get", &format!("{}:80", a.ip)]);
    assert!(!ok, "outside reached the container directly: {said}");
}

#[test]
fn firewall_defaults_drop_other_protocols_inbound() {
    let Some(w) = World::new("firewall_defaults_drop_other_protocols_inbound") else {
        return;
    };
    firewall_defaults_drop_other_protocols(&w);
}

/// The same with a base chain per port, the hooking design of kernels
/// before 6.16 (on those, the test above is this one).
#[test]
fn firewall_defaults_drop_other_protocols_inbound_with_a_chain_per_port() {
    let test = "firewall_defaults_drop_other_protocols_inbound_with_a_chain_per_port";
    let Some(w) = World::with_chain_per_device(test) else {
        return;
    };
    firewall_defaults_drop_other_protocols(&w);
}

fn firewall_defaults_drop_other_protocols(w: &World) {
    let a = w.container("nat", json!([]));
    let b = w.container("nat", json!([]));
    for proto in ["47", "132"] {
        let listen = a.serve(&["raw-listen", proto]);
        // From the host (routed) and from a sibling (bridged): both dropped.
        // The host's own send fails with EPERM: its output hook drops it.
        let _ = Probe::run(w.host.path(), &["raw-send", proto, &a.ip]);
        assert!(b.run(&["raw-send", proto, &a.ip]).0);
        // ICMP still passes on both paths, after the dropped packets.
        assert!(
            Probe::run(w.host.path(), &["ping", &a.ip]).0,
            "ping from host"
        );
        assert!(b.run(&["ping", &a.ip]).0, "ping from sibling");
        assert_eq!(
            listen.next_line(),
            None,
            "protocol {proto} reached the container"
        );
    }
    // Outbound is allowed for every protocol: the outside gets GRE from the host's address.
    let out = Probe::serve(w.outside.path(), &["raw-listen", "47"]);
    assert!(a.run(&["raw-send", "47", INTERNET]).0);
    assert_eq!(out.next_line(), Some(format!("got {HOST}")));
}

#[test]
fn state_and_connections_survive_restart_and_kill9() {
    let Some(mut w) = World::new("state_and_connections_survive_restart_and_kill9") else {
        return;
    };
    let a = w.container("nat", json!([port_mapping(6, 80, 8080)]));
    let _echo = a.serve(&["tcp-echo", "0.0.0.0:80"]);
    let mut session = Session::open(w.outside.path(), &format!("{HOST}:8080"));
    assert_eq!(session.say("one"), "one");
    let before = w.client().list(Kind::Endpoints, None).unwrap();

    w.daemon.restart();
    assert_eq!(session.say("two"), "two", "connection lost over a restart");
    w.daemon.kill9_and_restart();
    assert_eq!(
        session.say("three"),
        "three",
        "connection lost over kill -9"
    );

    let after = w.client().list(Kind::Endpoints, None).unwrap();
    assert_eq!(before, after, "endpoints changed over restarts");
    // New connections work too, inbound and outbound.
    let mut fresh = Session::open(w.outside.path(), &format!("{HOST}:8080"));
    assert_eq!(fresh.say("four"), "four");
    let _srv = Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("{INTERNET}:7000")],
    );
    assert!(a.run(&["tcp-get", &format!("{INTERNET}:7000")]).0);
}

#[test]
fn restart_rebuilds_what_is_missing_and_removes_strays() {
    let Some(w) = World::new("restart_rebuilds_what_is_missing_and_removes_strays") else {
        return;
    };
    restart_rebuilds(w);
}

/// The same with a base chain per port, the hooking design of kernels
/// before 6.16.
#[test]
fn restart_rebuilds_what_is_missing_and_removes_strays_with_a_chain_per_port() {
    let test = "restart_rebuilds_what_is_missing_and_removes_strays_with_a_chain_per_port";
    let Some(w) = World::with_chain_per_device(test) else {
        return;
    };
    restart_rebuilds(w);
}

fn restart_rebuilds(mut w: World) {
    let a = w.container("nat", json!([port_mapping(6, 80, 8080)]));
    let veth = w
        .links()
        .into_iter()
        .find(|l| l.starts_with("hnve"))
        .expect("endpoint veth");
    let b = w.container("nat", json!([]));
    // While the daemon is down: lose the endpoint's link, its table, and
    // gain a link and a namespace mount point it does not know.
    let stray_ns = w
        .daemon
        .dir
        .join("state/netns/0A0B0C0D-0000-4000-8000-00000000DEAD");
    w.daemon.kill9_and_restart_with(|| {
        std::fs::write(&stray_ns, b"").expect("stray namespace file");
        w.host.ip(&["link", "del", &veth]);
        w.host.ip(&[
            "link",
            "add",
            "hnvedeadbeef00",
            "type",
            "veth",
            "peer",
            "name",
            "stray1",
        ]);
        let _ = w
            .host
            .output("nft", &["delete", "table", "inet", "hostnet"]);
    });
    let links = w.links();
    assert!(links.contains(&veth), "veth not rebuilt: {links:?}");
    assert!(
        !links.iter().any(|l| l == "hnvedeadbeef00"),
        "stray link kept: {links:?}"
    );
    assert!(!stray_ns.exists(), "stray namespace mount point kept");
    let _srv = a.serve(&["tcp-serve", "0.0.0.0:80"]);
    let (ok, said) = Probe::run(w.outside.path(), &["tcp-get", &format!("{HOST}:8080")]);
    assert!(ok, "mapping not rebuilt: {said}");
    // The rebuilt port is hooked again: the firewall defaults drop GRE
    // from a sibling, after which ICMP still passes.
    let listen = a.serve(&["raw-listen", "47"]);
    assert!(b.run(&["raw-send", "47", &a.ip]).0);
    assert!(b.run(&["ping", &a.ip]).0, "ping from sibling");
    assert_eq!(listen.next_line(), None, "GRE reached the rebuilt port");
}

/// The gateway keeps its MAC while endpoints come and go. A bridge left to
/// pick its own takes its lowest port's, so a new endpoint (or the delete of
/// the one whose MAC it had) moved the gateway under its containers' ARP
/// entries, and they lost the gateway (DNS, the outside) for seconds.
#[test]
fn the_gateway_keeps_its_mac_as_endpoints_come_and_go() {
    let Some(w) = World::new("the_gateway_keeps_its_mac_as_endpoints_come_and_go") else {
        return;
    };
    let first = w.container("nat", json!([]));
    let gateway = "10.88.0.1";
    assert!(first.run(&["ping", gateway]).0);
    let seen = hostnet_testbed::inspect::neighbour(&first.netns, gateway).expect("gateway's MAC");
    let mut others: Vec<_> = (0..8).map(|_| w.container("nat", json!([]))).collect();
    for c in &others {
        assert!(c.run(&["ping", gateway]).0);
        assert_eq!(
            hostnet_testbed::inspect::neighbour(&c.netns, gateway).as_deref(),
            Some(seen.as_str()),
            "every container sees one gateway MAC"
        );
    }
    let c = w.client();
    for o in others.drain(..) {
        c.delete(Kind::Endpoints, &o.ep_id).unwrap();
    }
    assert!(first.run(&["ping", gateway]).0);
    assert_eq!(
        hostnet_testbed::inspect::neighbour(&first.netns, gateway).as_deref(),
        Some(seen.as_str()),
        "the gateway's MAC did not change"
    );
}
