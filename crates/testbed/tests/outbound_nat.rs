//! `OutBoundNAT` beyond L2Bridge (issue 5, item 4), with packets: on a NAT
//! endpoint the exceptions are destinations *not* masqueraded, `VirtualIP`
//! with `Destinations` NATs those destinations to the given address; on a
//! Transparent endpoint everything but the exceptions leaves with the
//! host's address. Each assertion is the source address a server saw.
//! (L2Bridge/L2Tunnel: matrix_l2.rs.)

mod common;

use common::*;
use hostnet_api::Kind;
use hostnet_testbed::physical::{host_addr, id, GATEWAY, OUTSIDE as FAR_OUTSIDE, ROUTER_OUTSIDE};
use hostnet_testbed::{require_privileges, PhysicalNet, Probe};
use serde_json::{json, Value};

fn onat(settings: Value) -> Value {
    json!({ "Type": "OutBoundNAT", "Settings": settings })
}

/// The peer address the server at `to` saw when `from` connected to it.
fn seen_by(server: &Probe, from: &Container, to: &str) -> String {
    let (ok, said) = from.run(&["tcp-get", to]);
    assert!(ok, "{} -> {to}: {said}", from.ip);
    let line = server.next_line().unwrap_or_default();
    line.strip_prefix("peer ")
        .and_then(|p| p.split(':').next())
        .unwrap_or_else(|| panic!("server at {to} printed {line:?}"))
        .to_string()
}

#[test]
fn nat_endpoint_exceptions_keep_the_container_address() {
    let Some(mut w) = World::new("nat_endpoint_exceptions_keep_the_container_address") else {
        return;
    };
    // The outside routes the containers' prefix back through the host, as
    // a cluster network would (the exception's peers answer directly).
    w.outside.ip(&["route", "add", SUBNET, "via", HOST]);
    let internet = Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("{INTERNET}:7000")],
    );
    let uplink = Probe::serve(w.outside.path(), &["tcp-serve", &format!("{OUTSIDE}:7001")]);
    let a = w.container(
        "nat",
        json!([onat(json!({ "Exceptions": ["203.0.113.0/24"] }))]),
    );
    let plain = w.container("nat", json!([]));

    assert_eq!(
        seen_by(&internet, &a, &format!("{INTERNET}:7000")),
        a.ip,
        "exception"
    );
    assert_eq!(
        seen_by(&uplink, &a, &format!("{OUTSIDE}:7001")),
        HOST,
        "the rest"
    );
    assert_eq!(
        seen_by(&internet, &plain, &format!("{INTERNET}:7000")),
        HOST,
        "per endpoint"
    );

    // Programmed as elements, and the same after a restart.
    let exceptions = w.elements("inet", "set", "onat_exceptions4");
    assert_eq!(exceptions, [format!("{} . 203.0.113.0/24", a.ip)]);
    w.daemon.restart();
    assert_eq!(w.elements("inet", "set", "onat_exceptions4"), exceptions);
    assert_eq!(
        seen_by(&internet, &a, &format!("{INTERNET}:7000")),
        a.ip,
        "after restart"
    );

    // Deleting the endpoint takes its elements with it.
    w.client()
        .delete(Kind::Endpoints, &a.ep_id)
        .expect("delete");
    assert!(w.elements("inet", "set", "onat_exceptions4").is_empty());
    assert!(w.elements("inet", "set", "onat_sources4").is_empty());
}

#[test]
fn virtual_ip_nats_the_listed_destinations_to_that_address() {
    let Some(w) = World::new("virtual_ip_nats_the_listed_destinations_to_that_address") else {
        return;
    };
    const VIP: &str = "192.0.2.200";
    // Replies to the virtual IP must reach the host.
    w.outside
        .ip(&["route", "add", &format!("{VIP}/32"), "via", HOST]);
    let internet = Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("{INTERNET}:7000")],
    );
    let uplink = Probe::serve(w.outside.path(), &["tcp-serve", &format!("{OUTSIDE}:7001")]);
    let udp = Probe::serve(
        w.outside.path(),
        &["udp-serve", &format!("{INTERNET}:7002")],
    );
    let a = w.container(
        "nat",
        json!([onat(
            json!({ "VirtualIP": VIP, "Destinations": [format!("{INTERNET}/32")] })
        )]),
    );
    assert_eq!(seen_by(&internet, &a, &format!("{INTERNET}:7000")), VIP);
    // What the policy does not name is masqueraded as on any NAT endpoint.
    assert_eq!(seen_by(&uplink, &a, &format!("{OUTSIDE}:7001")), HOST);
    let (ok, said) = a.run(&["udp-get", &format!("{INTERNET}:7002")]);
    assert!(
        ok && said.starts_with(&format!("peer {VIP}:")),
        "udp: {said}"
    );
    assert!(udp
        .next_line()
        .unwrap_or_default()
        .starts_with(&format!("peer {VIP}:")));
    assert_eq!(
        w.elements("inet", "map", "onat_vips4"),
        [format!("{} . {INTERNET} : {VIP}", a.ip)]
    );
}

/// A Transparent network on host 1 of the physical world.
fn transparent(phys: &PhysicalNet) -> String {
    let body = json!({
        "Name": "t1",
        "Type": "Transparent",
        "Ipams": [{ "Subnets": [{ "IpAddressPrefix": "192.0.2.0/24",
            "Routes": [{ "NextHop": GATEWAY, "DestinationPrefix": "0.0.0.0/0" }] }] }],
    });
    let n = phys
        .host(0)
        .client()
        .create(Kind::Networks, &body)
        .expect("create network");
    id(&n)
}

#[test]
fn transparent_endpoint_leaves_as_the_host_except_to_the_exceptions() {
    let test = "transparent_endpoint_leaves_as_the_host_except_to_the_exceptions";
    if !require_privileges(test) {
        return;
    }
    let mut phys = PhysicalNet::new("onat", 2);
    phys.start_daemons(&["--no-default-network"]);
    transparent(&phys);
    let a = phys.host(0).container_with(
        "t1",
        json!({ "IpConfigurations": [{ "IpAddress": "192.0.2.50" }],
                "Policies": [onat(json!({ "ExceptionList": ["192.0.2.0/24"] }))] }),
    );
    let far = Probe::serve(
        phys.outside.path(),
        &["tcp-serve", &format!("{FAR_OUTSIDE}:7000")],
    );
    let near = Probe::serve(
        phys.host(1).path(),
        &["tcp-serve", &format!("{}:7001", host_addr(1))],
    );

    assert_eq!(
        seen_by(&far, &a, &format!("{FAR_OUTSIDE}:7000")),
        host_addr(0),
        "NATed"
    );
    assert_eq!(
        seen_by(&near, &a, &format!("{}:7001", host_addr(1))),
        a.ip,
        "exception"
    );
    // A neighbour without the policy keeps its own address everywhere.
    let b = phys.host(0).container_with(
        "t1",
        json!({ "IpConfigurations": [{ "IpAddress": "192.0.2.51" }] }),
    );
    assert_eq!(seen_by(&far, &b, &format!("{FAR_OUTSIDE}:7000")), b.ip);
    // VirtualIP with Destinations: the listed destination sees the
    // virtual IP (the router routes it back to host 1), the rest the
    // container's own address.
    const VIP: &str = "198.51.100.77";
    phys.router
        .ip(&["route", "add", &format!("{VIP}/32"), "via", &host_addr(0)]);
    phys.outside
        .ip(&["route", "add", &format!("{VIP}/32"), "via", ROUTER_OUTSIDE]);
    let c = phys.host(0).container_with(
        "t1",
        json!({ "IpConfigurations": [{ "IpAddress": "192.0.2.52" }],
                "Policies": [onat(json!({ "VirtualIP": VIP, "Destinations": [format!("{FAR_OUTSIDE}/32")] }))] }),
    );
    assert_eq!(
        seen_by(&far, &c, &format!("{FAR_OUTSIDE}:7000")),
        VIP,
        "virtual IP"
    );
    assert_eq!(
        seen_by(&near, &c, &format!("{}:7001", host_addr(1))),
        c.ip,
        "not listed"
    );
    // After a restart the detour and the NAT still hold.
    phys.hosts[0].daemon_mut().restart();
    assert_eq!(
        seen_by(&far, &a, &format!("{FAR_OUTSIDE}:7000")),
        host_addr(0),
        "after restart"
    );
    assert_eq!(
        seen_by(&far, &c, &format!("{FAR_OUTSIDE}:7000")),
        VIP,
        "after restart"
    );
}
