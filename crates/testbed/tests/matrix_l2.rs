//! The L2Bridge and L2Tunnel rows of the connectivity matrix, proved with
//! packets on the multi-host world ([`PhysicalNet`], tier 2): hosts on one
//! physical segment (192.0.2.0/24, gateway 192.0.2.1, which also routes
//! 198.18.0.0/24 on the same segment), each running `hostnetd`.
//!
//! | cell | L2Bridge | L2Tunnel |
//! |---|---|---|
//! | same host, same subnet | bridged in the host (the router sees nothing) | hairpinned through the physical gateway |
//! | cross subnet | routed by the physical gateway | routed by the physical gateway |
//! | container to outside | directly (own address) or, with OutBoundNAT, as the host | directly |
//! | container to container across hosts | through the switch, host MACs only | through the gateway |
//! | outside to container | directly, no published port | directly |
//!
//! On the wire every frame carries its host's MAC: the router's neighbour
//! table maps each container to its host's MAC and the switch never learns
//! a container's MAC.

use hostnet_api::{ApiError, Kind};
use hostnet_testbed::firewall::assert_defaults_hold;
use hostnet_testbed::inspect::{iface_with, ip_out, learnt_macs, mac, neighbour, word_after};
use hostnet_testbed::physical::{id, Container, Host, GATEWAY, OUTSIDE, ROUTER_OUTSIDE};
use hostnet_testbed::{require_privileges, PhysicalNet, Probe};
use serde_json::{json, Value};

/// Daemons without any network of their own.
const BARE: [&str; 1] = ["--no-default-network"];
/// The network's name in every test.
const NET: &str = "l2";
/// Containers' static addresses: A, B, E on host 1 in the hosts' subnet,
/// C on host 1 in the router's other subnet, D on host 2.
const A: &str = "192.0.2.50";
const B: &str = "192.0.2.51";
const C: &str = "198.18.0.50";
const D: &str = "192.0.2.60";
const E: &str = "192.0.2.52";
const GATEWAY2: &str = "198.18.0.1";

const INVALID_SUBNET: u32 = 0x803B_0032;
const INVALID_NETWORK: u32 = 0x803B_000A;
const REQUEST_UNSUPPORTED: u32 = 0x803B_0015;
const MAPPING_NOT_SUPPORTED: u32 = 0x803B_0016;

fn world(test: &str, hosts: usize) -> Option<PhysicalNet> {
    if !require_privileges(test) {
        return None;
    }
    let mut phys = PhysicalNet::new("l2", hosts);
    phys.start_daemons(&BARE);
    Some(phys)
}

/// The body of an L2 network (`kind` L2Bridge or L2Tunnel) on the physical
/// subnets, bound to `eth0`.
fn l2_network(kind: &str) -> Value {
    json!({
        "Name": NET,
        "Type": kind,
        "Ipams": [{ "Subnets": [
            { "IpAddressPrefix": "192.0.2.0/24",
              "Routes": [{ "NextHop": GATEWAY, "DestinationPrefix": "0.0.0.0/0" }] },
            { "IpAddressPrefix": "198.18.0.0/24",
              "Routes": [{ "NextHop": GATEWAY2, "DestinationPrefix": "0.0.0.0/0" }] },
        ] }],
        "Policies": [{ "Type": "NetAdapterName", "Settings": { "NetworkAdapterName": "eth0" } }],
    })
}

fn create(host: &Host, kind: &str) -> String {
    let n = host
        .client()
        .create(Kind::Networks, &l2_network(kind))
        .unwrap_or_else(|e| panic!("create an {kind} network on {}: {e}", host.addr));
    id(&n)
}

/// A container on `host` with the static address `ip` and `policies`.
fn at(host: &Host, ip: &str, policies: Value) -> Container {
    let c = host.container_with(
        NET,
        json!({ "IpConfigurations": [{ "IpAddress": ip }], "Policies": policies }),
    );
    assert_eq!(c.ip, ip, "the endpoint did not get its static address");
    c
}

/// A call that must fail with HCN error `want`.
fn refused(r: Result<Value, ApiError>, want: u32, what: &str) {
    match r {
        Err(e) => assert_eq!(
            e.error_code(),
            Some(want),
            "{what}: expected {want:#010X}, got {e}"
        ),
        Ok(v) => panic!("{what}: expected {want:#010X}, got {v}"),
    }
}

/// `from` fetches from a TCP server on `to` (port `port`); the address the
/// server saw its peer as.
fn tcp_peer(from: &Container, to: &Container, port: u16) -> String {
    let srv = to.serve(&["tcp-serve", &format!("0.0.0.0:{port}")]);
    let (ok, said) = from.run(&["tcp-get", &format!("{}:{port}", to.ip)]);
    assert!(ok, "{} -> {}: {said}", from.ip, to.ip);
    peer(&srv)
}

/// The peer address a probe server reported for its first connection.
fn peer(srv: &Probe) -> String {
    let seen = srv.next_line().unwrap_or_default();
    seen.strip_prefix("peer ")
        .and_then(|p| p.rsplit_once(':'))
        .map(|(a, _)| a.to_string())
        .unwrap_or_else(|| panic!("the server said {seen:?}"))
}

/// `c` reaches the outside; the address the outside saw.
fn outside_sees(phys: &PhysicalNet, c: &Container, port: u16) -> String {
    let srv = Probe::serve(
        phys.outside.path(),
        &["tcp-serve", &format!("{OUTSIDE}:{port}")],
    );
    let (ok, said) = c.run(&["tcp-get", &format!("{OUTSIDE}:{port}")]);
    assert!(ok, "{} -> outside:{port}: {said}", c.ip);
    peer(&srv)
}

/// The container's own MAC.
fn own_mac(c: &Container) -> String {
    mac(&c.netns, &iface_with(&c.netns, &c.ip))
}

// ---- L2Bridge ----

#[test]
fn l2bridge_same_host_same_subnet_is_bridged() {
    let Some(phys) = world("l2bridge_same_host_same_subnet_is_bridged", 1) else {
        return;
    };
    let h1 = phys.host(0);
    create(h1, "L2Bridge");
    let a = at(h1, A, json!([]));
    let b = at(h1, B, json!([]));
    let (router, host) = (phys.router_forwarded(), h1.forwarded());
    assert_eq!(tcp_peer(&a, &b, 80), A, "B must see A's own address");
    assert_eq!(phys.router_forwarded(), router, "the router forwarded it");
    assert_eq!(h1.forwarded(), host, "the host routed it");
    // Neighbours on one bridge see each other's own MACs.
    assert_eq!(neighbour(&a.netns, B), Some(own_mac(&b)));
}

#[test]
fn l2bridge_wire_carries_only_the_host_mac() {
    let Some(phys) = world("l2bridge_wire_carries_only_the_host_mac", 2) else {
        return;
    };
    let (h1, h2) = (phys.host(0), phys.host(1));
    let host1_mac = mac(h1.path(), "eth0");
    let host2_mac = mac(h2.path(), "eth0");
    create(h1, "L2Bridge");
    create(h2, "L2Bridge");
    let a = at(h1, A, json!([]));
    let d = at(h2, D, json!([]));

    // Container to outside: routed by the physical gateway, not NATed.
    assert_eq!(outside_sees(&phys, &a, 7000), A);
    // Outside to container: directly, no published port.
    let srv = a.serve(&["tcp-serve", "0.0.0.0:8080"]);
    let (ok, said) = Probe::run(phys.outside.path(), &["tcp-get", &format!("{A}:8080")]);
    assert!(ok, "outside -> A: {said}");
    assert_eq!(peer(&srv), OUTSIDE);
    // Across hosts, same subnet: through the switch.
    let router = phys.router_forwarded();
    assert_eq!(tcp_peer(&a, &d, 81), A, "D must see A's own address");
    assert_eq!(tcp_peer(&d, &a, 82), D, "A must see D's own address");
    assert_eq!(phys.router_forwarded(), router, "the router forwarded it");

    // What the wire learnt: each container behind its host's MAC.
    let (ok, said) = Probe::run(phys.router.path(), &["ping", D]);
    assert!(ok, "router -> D: {said}");
    assert_eq!(neighbour(phys.router.path(), A), Some(host1_mac.clone()));
    assert_eq!(neighbour(phys.router.path(), D), Some(host2_mac.clone()));
    assert_eq!(neighbour(&d.netns, A), Some(host1_mac.clone()));
    assert_eq!(neighbour(&a.netns, D), Some(host2_mac.clone()));
    let learnt = learnt_macs(phys.switch.path());
    for c in [&a, &d] {
        let own = own_mac(c);
        assert_ne!(own, host1_mac);
        assert!(
            !learnt.contains(&own),
            "the switch learnt {}'s own MAC {own}: {learnt:?}",
            c.ip
        );
    }
    assert!(learnt.contains(&host1_mac), "{learnt:?}");

    // The rewriting survives a daemon restart (tables rebuilt from the store).
    let mut phys = phys;
    phys.hosts[0].daemon_mut().restart();
    assert_eq!(outside_sees(&phys, &a, 7001), A);
    assert_eq!(tcp_peer(&d, &a, 83), D);
}

#[test]
fn l2bridge_cross_subnet_is_routed_by_the_physical_gateway() {
    let Some(phys) = world("l2bridge_cross_subnet_is_routed_by_the_physical_gateway", 1) else {
        return;
    };
    let h1 = phys.host(0);
    create(h1, "L2Bridge");
    let a = at(h1, A, json!([]));
    let c = at(h1, C, json!([]));
    let default = ip_out(&c.netns, &["route", "show", "default"]);
    assert_eq!(word_after(&default, "via").as_deref(), Some(GATEWAY2));
    let (router, host) = (phys.router_forwarded(), h1.forwarded());
    assert_eq!(tcp_peer(&a, &c, 80), A);
    assert!(
        phys.router_forwarded() >= router + 4,
        "the router forwarded {} packets",
        phys.router_forwarded() - router
    );
    assert_eq!(h1.forwarded(), host, "the host routed it");
}

#[test]
fn l2bridge_outbound_nat_hides_all_but_the_exceptions() {
    let Some(phys) = world("l2bridge_outbound_nat_hides_all_but_the_exceptions", 2) else {
        return;
    };
    let (h1, h2) = (phys.host(0), phys.host(1));
    create(h1, "L2Bridge");
    create(h2, "L2Bridge");
    let nat = json!([{ "Type": "OutBoundNAT", "Settings": { "Exceptions": ["192.0.2.0/24"] } }]);
    let e = at(h1, E, nat);
    let a = at(h1, A, json!([]));
    let d = at(h2, D, json!([]));
    // To the outside: NATed to the host's address, through the host.
    let host = h1.forwarded();
    assert_eq!(outside_sees(&phys, &e, 7000), h1.addr);
    assert!(h1.forwarded() > host, "the host did not route it");
    // The exceptions are reached with the container's own address, bridged.
    assert_eq!(tcp_peer(&e, &d, 80), E, "D is in the exceptions");
    assert_eq!(tcp_peer(&e, &a, 81), E, "A is in the exceptions");
    // A neighbour without the policy is not NATed.
    assert_eq!(outside_sees(&phys, &a, 7001), A);
    // On the wire, still only the host's MAC.
    assert!(!learnt_macs(phys.switch.path()).contains(&own_mac(&e)));

    // The same policy without exceptions NATs the neighbours too.
    let all = json!([{ "Type": "OutBoundNAT", "Settings": {} }]);
    let f = at(h1, "192.0.2.53", all);
    assert_eq!(tcp_peer(&f, &d, 84), h1.addr);
}

#[test]
fn l2bridge_sdn_route_without_next_hop_goes_through_the_host() {
    let Some(phys) = world(
        "l2bridge_sdn_route_without_next_hop_goes_through_the_host",
        1,
    ) else {
        return;
    };
    let h1 = phys.host(0);
    create(h1, "L2Bridge");
    let route = json!([{ "Type": "SDNRoute", "Settings": {
        "DestinationPrefix": "203.0.113.0/24", "NeedEncap": true } }]);
    let a = at(h1, A, route);
    let r = ip_out(&a.netns, &["route", "show", "203.0.113.0/24"]);
    assert_eq!(word_after(&r, "via"), Some(h1.addr.clone()), "{r}");
    let host = h1.forwarded();
    assert_eq!(outside_sees(&phys, &a, 7000), A, "routed, not NATed");
    assert!(h1.forwarded() > host, "the host did not route it");
}

#[test]
fn l2bridge_custom_subnet_with_a_host_endpoint_as_gateway() {
    let Some(phys) = world("l2bridge_custom_subnet_with_a_host_endpoint_as_gateway", 1) else {
        return;
    };
    let h1 = phys.host(0);
    let c = h1.client();
    // A subnet the physical network does not have; its gateway is the
    // host endpoint made below (Kubernetes' win-bridge layout).
    let mut body = l2_network("L2Bridge");
    body["Ipams"][0]["Subnets"] = json!([{ "IpAddressPrefix": "10.10.1.0/24",
        "Routes": [{ "NextHop": "10.10.1.2", "DestinationPrefix": "0.0.0.0/0" }] }]);
    body["Policies"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "Type": "HostRoute", "Settings": {} }));
    let net = id(&c
        .create(Kind::Networks, &body)
        .expect("custom subnet network"));
    let host_ns = c
        .create(Kind::Namespaces, &json!({ "Type": "HostDefault" }))
        .expect("the host's namespace");
    let gw = c
        .create(
            Kind::Endpoints,
            &json!({ "HostComputeNetwork": net, "IpConfigurations": [{ "IpAddress": "10.10.1.2" }] }),
        )
        .expect("the host endpoint");
    c.attach_endpoint(&id(&host_ns), &id(&gw))
        .expect("attach to the host");
    let routes_before_containers = ip_out(h1.path(), &["route", "show", "default"]);
    assert_eq!(
        word_after(&routes_before_containers, "via").as_deref(),
        Some(GATEWAY),
        "the host endpoint took the host's default route"
    );
    // The host is already on the switch: the host endpoint is its address
    // on the network's bridge.
    let hostif = iface_with(h1.path(), "10.10.1.2");
    assert!(hostif.starts_with("hnbr"), "{hostif}");
    // The gateway address is the host endpoint's alone.
    refused(
        c.create(
            Kind::Endpoints,
            &json!({ "HostComputeNetwork": net, "IpConfigurations": [{ "IpAddress": "10.10.1.2" }] }),
        ),
        0x803B_002F, // HCN_E_ADDR_INVALID_OR_RESERVED
        "a second endpoint on the gateway's address",
    );

    let nat = json!([{ "Type": "OutBoundNAT", "Settings": { "Exceptions": ["10.10.1.0/24"] } }]);
    let x = at(h1, "10.10.1.10", nat);
    let y = at(h1, "10.10.1.11", json!([]));
    // Host and containers reach each other (HostRoute).
    let (ok, said) = x.run(&["ping", "10.10.1.2"]);
    assert!(ok, "X -> host endpoint: {said}");
    let (ok, said) = Probe::run(h1.path(), &["ping", "10.10.1.11"]);
    assert!(ok, "host -> Y: {said}");
    // Same subnet: bridged, own addresses.
    assert_eq!(tcp_peer(&x, &y, 80), "10.10.1.10");
    // X reaches the outside through the host, NATed to the host's address.
    let host = h1.forwarded();
    assert_eq!(outside_sees(&phys, &x, 7000), h1.addr);
    assert!(h1.forwarded() > host, "the host did not route it");
    // Y has no NAT: the physical network needs a route to the custom
    // subnet through the host (a UDR), then Y is seen as itself.
    phys.router
        .ip(&["route", "add", "10.10.1.0/24", "via", &h1.addr]);
    phys.outside
        .ip(&["route", "add", "10.10.1.0/24", "via", ROUTER_OUTSIDE]);
    assert_eq!(outside_sees(&phys, &y, 7001), "10.10.1.11");
    let srv = y.serve(&["tcp-serve", "0.0.0.0:8080"]);
    let (ok, said) = Probe::run(phys.outside.path(), &["tcp-get", "10.10.1.11:8080"]);
    assert!(ok, "outside -> Y: {said}");
    assert_eq!(peer(&srv), OUTSIDE);

    // A restart keeps the host endpoint (not a stale link) and the path.
    let mut phys = phys;
    phys.hosts[0].daemon_mut().restart();
    let h1 = phys.host(0);
    assert_eq!(iface_with(h1.path(), "10.10.1.2"), hostif);
    assert_eq!(outside_sees(&phys, &x, 7002), h1.addr);

    // Deleting the host endpoint takes its address away.
    let c = h1.client();
    c.delete(Kind::Endpoints, &id(&gw))
        .expect("delete the host endpoint");
    assert!(
        !ip_out(h1.path(), &["-o", "addr"]).contains("10.10.1.2/"),
        "10.10.1.2 is still on the host"
    );
}

// ---- L2Tunnel ----

#[test]
fn l2tunnel_same_host_traffic_hairpins_through_the_gateway() {
    let Some(phys) = world("l2tunnel_same_host_traffic_hairpins_through_the_gateway", 2) else {
        return;
    };
    let (h1, h2) = (phys.host(0), phys.host(1));
    let host1_mac = mac(h1.path(), "eth0");
    let net = h1
        .client()
        .create(Kind::Networks, &l2_network("L2Tunnel"))
        .expect("create L2Tunnel");
    assert_eq!(
        net["GatewayMacAddress"]
            .as_str()
            .map(|m| m.replace('-', ":").to_lowercase()),
        Some(mac(phys.router.path(), "eth0")),
        "{net}"
    );
    create(h2, "L2Bridge");
    let a = at(h1, A, json!([]));
    let b = at(h1, B, json!([]));
    let d = at(h2, D, json!([]));

    // Same host, same subnet: both directions through the router.
    let (router, host) = (phys.router_forwarded(), h1.forwarded());
    assert_eq!(tcp_peer(&a, &b, 80), A, "B must see A's own address");
    assert!(
        phys.router_forwarded() >= router + 4,
        "the router forwarded {} packets of a same-host connection",
        phys.router_forwarded() - router
    );
    assert_eq!(h1.forwarded(), host, "the host routed it");
    // Across hosts and to the outside, also through the gateway.
    let router = phys.router_forwarded();
    assert_eq!(tcp_peer(&a, &d, 81), A);
    assert!(phys.router_forwarded() > router, "not through the router");
    assert_eq!(outside_sees(&phys, &a, 7000), A);
    // The outside reaches a container directly.
    let srv = b.serve(&["tcp-serve", "0.0.0.0:8080"]);
    let (ok, said) = Probe::run(phys.outside.path(), &["tcp-get", &format!("{B}:8080")]);
    assert!(ok, "outside -> B: {said}");
    assert_eq!(peer(&srv), OUTSIDE);
    // The wire carries the host's MAC only.
    assert_eq!(neighbour(phys.router.path(), A), Some(host1_mac));
    assert!(!learnt_macs(phys.switch.path()).contains(&own_mac(&a)));
}

// ---- bad input ----

#[test]
fn l2_bad_input_is_refused_and_changes_nothing() {
    let Some(phys) = world("l2_bad_input_is_refused_and_changes_nothing", 1) else {
        return;
    };
    let h1 = phys.host(0);
    let c = h1.client();
    // IPv6 duplicate address detection finishes in its own time.
    let eth0 =
        || ip_out(h1.path(), &["-o", "addr", "show", "dev", "eth0"]).replace(" tentative", "");
    let eth0_before = eth0();
    let routes_before = ip_out(h1.path(), &["route"]);

    // A subnet wider than the adapter's.
    let mut wide = l2_network("L2Bridge");
    wide["Ipams"][0]["Subnets"] = json!([{ "IpAddressPrefix": "192.0.0.0/16",
        "Routes": [{ "NextHop": GATEWAY, "DestinationPrefix": "0.0.0.0/0" }] }]);
    refused(
        c.create(Kind::Networks, &wide),
        INVALID_SUBNET,
        "a /16 around the host's /24",
    );
    // The host's own address as the gateway.
    let mut own_gw = l2_network("L2Bridge");
    own_gw["Ipams"][0]["Subnets"] = json!([{ "IpAddressPrefix": "192.0.2.0/24",
        "Routes": [{ "NextHop": h1.addr, "DestinationPrefix": "0.0.0.0/0" }] }]);
    refused(
        c.create(Kind::Networks, &own_gw),
        INVALID_SUBNET,
        "the host as gateway",
    );
    // No subnets.
    let mut none = l2_network("L2Bridge");
    none.as_object_mut().unwrap().remove("Ipams");
    refused(c.create(Kind::Networks, &none), INVALID_SUBNET, "no Ipams");
    // An L2Tunnel whose gateway nobody answers for.
    let mut silent = l2_network("L2Tunnel");
    silent["Ipams"][0]["Subnets"] = json!([{ "IpAddressPrefix": "192.0.2.0/24",
        "Routes": [{ "NextHop": "192.0.2.254", "DestinationPrefix": "0.0.0.0/0" }] }]);
    refused(
        c.create(Kind::Networks, &silent),
        INVALID_NETWORK,
        "a silent gateway",
    );
    assert!(c.list(Kind::Networks, None).unwrap().is_empty());
    assert_eq!(eth0(), eth0_before);
    assert_eq!(ip_out(h1.path(), &["route"]), routes_before);

    // Endpoint policies that do not apply.
    let net = create(h1, "L2Bridge");
    let mapping = json!({ "HostComputeNetwork": net, "Policies": [{ "Type": "PortMapping",
        "Settings": { "Protocol": 6, "InternalPort": 80, "ExternalPort": 8080 } }] });
    refused(
        c.create(Kind::Endpoints, &mapping),
        MAPPING_NOT_SUPPORTED,
        "a port mapping",
    );
    assert!(c.list(Kind::Endpoints, None).unwrap().is_empty());
    c.delete(Kind::Networks, &net).expect("delete");
    let nat = c
        .create(Kind::Networks, &json!({ "Name": "n", "Type": "NAT" }))
        .expect("a NAT network");
    // OutBoundNAT works on every driver (outbound_nat.rs), but not IPv6.
    let onat = json!({ "HostComputeNetwork": id(&nat), "Policies": [{ "Type": "OutBoundNAT", "Settings": { "Flags": 2 } }] });
    refused(
        c.create(Kind::Endpoints, &onat),
        REQUEST_UNSUPPORTED,
        "IPv6 OutBoundNAT",
    );
    assert!(c.list(Kind::Endpoints, None).unwrap().is_empty());
}

// ---- firewall defaults ----

/// The seed's defaults on an L2 endpoint: GRE from the router, a sibling
/// on the same host and a container on another host is dropped; ICMP and
/// UDP pass; GRE out is allowed and leaves with the container's address.
fn firewall_defaults_hold(test: &str, kind: &str) {
    let Some(phys) = world(test, 2) else {
        return;
    };
    let (h1, h2) = (phys.host(0), phys.host(1));
    create(h1, kind);
    create(h2, "L2Bridge");
    let a = at(h1, A, json!([]));
    let b = at(h1, B, json!([]));
    let d = at(h2, D, json!([]));
    let senders = [phys.router.path(), b.netns.as_path(), d.netns.as_path()];
    assert_defaults_hold(&a, &senders, phys.outside.path(), OUTSIDE);
}

#[test]
fn l2bridge_firewall_defaults_drop_other_protocols_inbound() {
    firewall_defaults_hold(
        "l2bridge_firewall_defaults_drop_other_protocols_inbound",
        "L2Bridge",
    );
}

#[test]
fn l2tunnel_firewall_defaults_drop_other_protocols_inbound() {
    firewall_defaults_hold(
        "l2tunnel_firewall_defaults_drop_other_protocols_inbound",
        "L2Tunnel",
    );
}
