//! The Transparent row of the connectivity matrix, proved with packets on
//! the multi-host world ([`PhysicalNet`], tier 2): hosts on one physical
//! segment (192.0.2.0/24, gateway 192.0.2.1, which also routes
//! 198.18.0.0/24 on the same segment), each running `hostnetd`; a
//! Transparent network binds the host's `eth0` to its bridge and puts
//! containers straight on the physical network.
//!
//! | cell | Transparent |
//! |---|---|
//! | same host, same subnet | bridged through the host's bridge (the router sees nothing) |
//! | cross subnet | routed by the physical gateway (the router forwards it) |
//! | container to outside | directly through the physical network, no NAT: the outside sees the container's own address |
//! | container to container across hosts | bridged through the switch; across subnets routed by the physical router |
//! | outside to container | directly, no published port |
//!
//! Binding must not cut the host off: the host's addresses and routes move
//! from `eth0` onto the bridge (which takes `eth0`'s MAC) and back when the
//! network goes. Where a daemon runs its default NAT network, that network
//! is on 10.88.0.0/16, away from the physical subnets.

use std::path::Path;

use hostnet_api::{ApiError, Kind};
use hostnet_testbed::firewall::assert_defaults_hold;
use hostnet_testbed::inspect::{iface_with, ip_out as ip, mac, neighbour, word_after};
use hostnet_testbed::physical::{host_addr, id, Container, Host, GATEWAY, OUTSIDE};
use hostnet_testbed::{require_privileges, PhysicalNet, Probe, Session};
use serde_json::{json, Value};

/// The default NAT network's prefix, where a test keeps it.
const NAT_SUBNET: &str = "10.88.0.0/16";
/// The Transparent network's name in every test.
const NET: &str = "t1";
/// Containers' static addresses: A and B on host 1 in the hosts' own
/// subnet, C on host 1 in the router's other subnet, D on host 2.
const A: &str = "192.0.2.50";
const B: &str = "192.0.2.51";
const C: &str = "198.18.0.50";
const D: &str = "192.0.2.60";
/// The router's address in C's subnet: C's gateway.
const GATEWAY2: &str = "198.18.0.1";

const INVALID_NETWORK: u32 = 0x803B_000A;
const ADAPTER_NOT_FOUND: u32 = 0x803B_0006;
const MAPPING_NOT_SUPPORTED: u32 = 0x803B_0016;

/// Two hosts with `hostnetd` each (started with `args`), or None (after
/// `skipped:`).
fn world(test: &str, hosts: usize, args: &[&str]) -> Option<PhysicalNet> {
    if !require_privileges(test) {
        return None;
    }
    let mut phys = PhysicalNet::new("tr", hosts);
    phys.start_daemons(args);
    Some(phys)
}

/// Daemons that keep their default NAT network, out of the way.
const WITH_NAT: [&str; 2] = ["--default-subnet", NAT_SUBNET];
/// Daemons without any network of their own.
const BARE: [&str; 1] = ["--no-default-network"];

/// The body of a Transparent network on the physical subnets, bound to
/// `adapter` (None: no `NetAdapterName` policy, the default-route
/// interface).
fn transparent(name: &str, adapter: Option<&str>) -> Value {
    let mut n = json!({
        "Name": name,
        "Type": "Transparent",
        "Ipams": [{ "Subnets": [
            { "IpAddressPrefix": "192.0.2.0/24",
              "Routes": [{ "NextHop": GATEWAY, "DestinationPrefix": "0.0.0.0/0" }] },
            { "IpAddressPrefix": "198.18.0.0/24",
              "Routes": [{ "NextHop": GATEWAY2, "DestinationPrefix": "0.0.0.0/0" }] },
        ] }],
    });
    if let Some(a) = adapter {
        n["Policies"] = json!([
            { "Type": "NetAdapterName", "Settings": { "NetworkAdapterName": a } }
        ]);
    }
    n
}

/// Create the Transparent network [`NET`] on `host`; its ID.
fn bind(host: &Host, adapter: Option<&str>) -> String {
    let n = host
        .client()
        .create(Kind::Networks, &transparent(NET, adapter))
        .unwrap_or_else(|e| panic!("create a Transparent network on {}: {e}", host.addr));
    id(&n)
}

/// The bridge hostnet names after a network: `hnbr` + 8 hex digits of its ID.
fn bridge_of(network: &str) -> String {
    format!("hnbr{}", &network.replace('-', "").to_lowercase()[..8])
}

/// A container on `host` whose endpoint of [`NET`] has the static address `ip`.
fn at(host: &Host, ip: &str) -> Container {
    let c = host.container_with(NET, json!({ "IpConfigurations": [{ "IpAddress": ip }] }));
    assert_eq!(c.ip, ip, "the endpoint did not get its static address");
    c
}

fn port_mapping(proto: u32, internal: u16, external: u16) -> Value {
    json!({ "Type": "PortMapping", "Settings": { "Protocol": proto, "InternalPort": internal, "ExternalPort": external } })
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

/// The addresses of link `dev` in `ns`, one a line as `ip -o addr`
/// prints them, without the `tentative` flag: IPv6 duplicate address
/// detection on a fresh link finishes in its own time, whatever hostnet
/// does.
fn addresses(ns: &Path, dev: &str) -> String {
    ip(ns, &["-o", "addr", "show", "dev", dev]).replace(" tentative", "")
}

/// The bridge link `dev` of `ns` is a port of, if any.
fn master(ns: &Path, dev: &str) -> Option<String> {
    word_after(&ip(ns, &["-o", "link", "show", "dev", dev]), "master")
}

/// The IPv4 addresses (with prefix length) on link `dev` of `ns`.
fn ipv4_on(ns: &Path, dev: &str) -> Vec<String> {
    ip(ns, &["-o", "-4", "addr", "show", "dev", dev])
        .lines()
        .filter_map(|l| word_after(l, "inet"))
        .collect()
}

/// Every link of `ns` with its master: "eth0", "eth0 master hnbr…", sorted.
fn links(ns: &Path) -> Vec<String> {
    let mut v: Vec<String> = ip(ns, &["-o", "link", "show"])
        .lines()
        .filter_map(|l| {
            let name = l.split_whitespace().nth(1)?.trim_end_matches(':');
            let name = name.split('@').next()?;
            Some(match word_after(l, "master") {
                Some(m) => format!("{name} master {m}"),
                None => name.to_string(),
            })
        })
        .collect();
    v.sort();
    v
}

/// What a refused request must leave as it was: the host's links (with
/// their masters), `eth0`'s addresses, the host's routes, and the objects
/// the API lists.
#[derive(Debug, PartialEq)]
struct Snapshot {
    eth0: String,
    routes: String,
    links: Vec<String>,
    networks: Vec<Value>,
    endpoints: Vec<Value>,
    namespaces: Vec<Value>,
}

fn snapshot(host: &Host) -> Snapshot {
    let c = host.client();
    Snapshot {
        eth0: addresses(host.path(), "eth0"),
        routes: ip(host.path(), &["route"]),
        links: links(host.path()),
        networks: c.list(Kind::Networks, None).expect("list networks"),
        endpoints: c.list(Kind::Endpoints, None).expect("list endpoints"),
        namespaces: c.list(Kind::Namespaces, None).expect("list namespaces"),
    }
}

/// `host` reaches the outside, which sees the host's own address.
fn host_reaches_the_outside(phys: &PhysicalNet, host: &Host, port: u16) {
    let srv = Probe::serve(
        phys.outside.path(),
        &["tcp-serve", &format!("{OUTSIDE}:{port}")],
    );
    let (ok, said) = Probe::run(host.path(), &["tcp-get", &format!("{OUTSIDE}:{port}")]);
    assert!(ok, "host {} -> outside: {said}", host.addr);
    let seen = srv.next_line().unwrap_or_default();
    assert!(
        seen.starts_with(&format!("peer {}:", host.addr)),
        "the outside saw {seen:?}, not host {}",
        host.addr
    );
}

// ---- binding the adapter ----

#[test]
fn binding_keeps_the_host_connected_and_unbinding_restores_it() {
    let Some(phys) = world(
        "binding_keeps_the_host_connected_and_unbinding_restores_it",
        2,
        &BARE,
    ) else {
        return;
    };
    let (h1, h2) = (phys.host(0), phys.host(1));
    let addrs = addresses(h1.path(), "eth0");
    let routes = ip(h1.path(), &["route"]);
    let before = links(h1.path());
    let eth0_mac = mac(h1.path(), "eth0");
    // A connection to the host that must live through bind and unbind.
    let _echo = Probe::serve(h1.path(), &["tcp-echo", "0.0.0.0:7100"]);
    let mut session = Session::open(h2.path(), &format!("{}:7100", h1.addr));
    assert_eq!(session.say("before"), "before");

    let net = bind(h1, Some("eth0"));
    let br = bridge_of(&net);
    assert_eq!(
        master(h1.path(), "eth0").as_deref(),
        Some(br.as_str()),
        "eth0 is not a port of the network's bridge; links: {:?}",
        links(h1.path())
    );
    assert_eq!(
        ipv4_on(h1.path(), &br),
        [format!("{}/24", h1.addr)],
        "the host's address is not on the bridge"
    );
    assert!(
        ipv4_on(h1.path(), "eth0").is_empty(),
        "eth0 kept an IPv4 address"
    );
    assert_eq!(
        mac(h1.path(), &br),
        eth0_mac,
        "the bridge does not carry eth0's MAC"
    );
    let default = ip(h1.path(), &["route", "show", "default"]);
    assert_eq!(
        word_after(&default, "via").as_deref(),
        Some(GATEWAY),
        "{default}"
    );
    assert_eq!(word_after(&default, "dev"), Some(br.clone()), "{default}");

    // Still connected: the open connection, the router, the peer host, the
    // outside (routed), and the host itself towards the outside.
    assert_eq!(session.say("bound"), "bound", "connection lost by binding");
    for from in [phys.router.path(), h2.path(), phys.outside.path()] {
        let (ok, said) = Probe::run(from, &["ping", &h1.addr]);
        assert!(ok, "{} -> bound host: {said}", from.display());
    }
    host_reaches_the_outside(&phys, h1, 7000);
    // The router still knows the host by the same MAC.
    assert_eq!(
        neighbour(phys.router.path(), &h1.addr),
        Some(eth0_mac.clone())
    );

    h1.client().delete(Kind::Networks, &net).expect("delete");
    assert_eq!(
        addresses(h1.path(), "eth0"),
        addrs,
        "eth0's addresses not restored"
    );
    assert_eq!(ip(h1.path(), &["route"]), routes, "routes not restored");
    assert_eq!(links(h1.path()), before, "links not restored");
    let default = ip(h1.path(), &["route", "show", "default"]);
    assert_eq!(word_after(&default, "dev").as_deref(), Some("eth0"));
    assert_eq!(
        session.say("unbound"),
        "unbound",
        "connection lost by unbinding"
    );
    host_reaches_the_outside(&phys, h1, 7001);
}

// ---- the Transparent row ----

#[test]
fn same_host_same_subnet_is_bridged() {
    let Some(phys) = world("same_host_same_subnet_is_bridged", 2, &WITH_NAT) else {
        return;
    };
    let h1 = phys.host(0);
    bind(h1, Some("eth0"));
    let a = at(h1, A);
    let b = at(h1, B);
    let srv = b.serve(&["tcp-serve", "0.0.0.0:80"]);
    let (router, host) = (phys.router_forwarded(), h1.forwarded());
    let (ok, said) = a.run(&["tcp-get", &format!("{B}:80")]);
    assert!(ok, "A -> B on one host: {said}");
    let seen = srv.next_line().unwrap_or_default();
    assert!(
        seen.starts_with(&format!("peer {A}:")),
        "B saw {seen:?}, not A"
    );
    assert_eq!(phys.router_forwarded(), router, "the router forwarded it");
    assert_eq!(h1.forwarded(), host, "the host routed it");

    // Each endpoint is on the wire with its own MAC, and its default
    // route is its subnet's gateway.
    let host_mac = mac(h1.path(), "eth0");
    for c in [&a, &b] {
        let default = ip(&c.netns, &["route", "show", "default"]);
        assert_eq!(
            word_after(&default, "via").as_deref(),
            Some(GATEWAY),
            "{}: {default}",
            c.ip
        );
        let (ok, said) = c.run(&["ping", GATEWAY]);
        assert!(ok, "{} -> gateway: {said}", c.ip);
        let own = mac(&c.netns, &iface_with(&c.netns, &c.ip));
        assert_eq!(
            neighbour(phys.router.path(), &c.ip),
            Some(own.clone()),
            "the router does not see {}'s own MAC",
            c.ip
        );
        assert_ne!(own, host_mac, "{} uses the host's MAC", c.ip);
    }
    assert_ne!(
        mac(&a.netns, &iface_with(&a.netns, &a.ip)),
        mac(&b.netns, &iface_with(&b.netns, &b.ip))
    );
}

#[test]
fn same_host_cross_subnet_is_routed_by_the_physical_gateway() {
    let Some(phys) = world(
        "same_host_cross_subnet_is_routed_by_the_physical_gateway",
        2,
        &WITH_NAT,
    ) else {
        return;
    };
    let h1 = phys.host(0);
    bind(h1, Some("eth0"));
    let a = at(h1, A);
    let c = at(h1, C);
    let default = ip(&c.netns, &["route", "show", "default"]);
    assert_eq!(
        word_after(&default, "via").as_deref(),
        Some(GATEWAY2),
        "{default}"
    );
    let srv = c.serve(&["tcp-serve", "0.0.0.0:80"]);
    let (router, host) = (phys.router_forwarded(), h1.forwarded());
    let (ok, said) = a.run(&["tcp-get", &format!("{C}:80")]);
    assert!(ok, "A -> C across subnets: {said}");
    let seen = srv.next_line().unwrap_or_default();
    assert!(
        seen.starts_with(&format!("peer {A}:")),
        "C saw {seen:?}, not A"
    );
    // Both directions of the connection went through the router.
    assert!(
        phys.router_forwarded() >= router + 4,
        "the router forwarded {} packets",
        phys.router_forwarded() - router
    );
    assert_eq!(h1.forwarded(), host, "the host routed it");
    assert_eq!(phys.router_redirects(), 0, "the router sent ICMP redirects");
}

#[test]
fn container_reaches_the_outside_unnated() {
    let Some(phys) = world("container_reaches_the_outside_unnated", 2, &WITH_NAT) else {
        return;
    };
    let h1 = phys.host(0);
    bind(h1, Some("eth0"));
    let a = at(h1, A);
    let c = at(h1, C);
    let srv = Probe::serve(
        phys.outside.path(),
        &["tcp-serve", &format!("{OUTSIDE}:7000")],
    );
    let host = h1.forwarded();
    for k in [&a, &c] {
        let router = phys.router_forwarded();
        let (ok, said) = k.run(&["tcp-get", &format!("{OUTSIDE}:7000")]);
        assert!(ok, "{} -> outside: {said}", k.ip);
        let seen = srv.next_line().unwrap_or_default();
        assert!(
            seen.starts_with(&format!("peer {}:", k.ip)),
            "the outside saw {seen:?}, not the container's own {}",
            k.ip
        );
        assert!(
            phys.router_forwarded() >= router + 4,
            "not through the physical gateway"
        );
    }
    assert_eq!(h1.forwarded(), host, "the host routed it (NAT?)");
}

#[test]
fn containers_on_two_hosts_meet_on_the_physical_network() {
    let Some(phys) = world(
        "containers_on_two_hosts_meet_on_the_physical_network",
        2,
        &WITH_NAT,
    ) else {
        return;
    };
    let (h1, h2) = (phys.host(0), phys.host(1));
    bind(h1, Some("eth0"));
    // Host 2 names no adapter: its default-route interface, eth0.
    let net2 = bind(h2, None);
    assert_eq!(
        master(h2.path(), "eth0"),
        Some(bridge_of(&net2)),
        "without NetAdapterName host 2 did not bind its default-route interface"
    );
    let a = at(h1, A);
    let c = at(h1, C);
    let d = at(h2, D);
    let srv_d = d.serve(&["tcp-serve", "0.0.0.0:80"]);
    let srv_c = c.serve(&["tcp-serve", "0.0.0.0:80"]);

    // Same subnet, two hosts: bridged through the switch.
    let router = phys.router_forwarded();
    let (ok, said) = a.run(&["tcp-get", &format!("{D}:80")]);
    assert!(ok, "A (host 1) -> D (host 2): {said}");
    let seen = srv_d.next_line().unwrap_or_default();
    assert!(
        seen.starts_with(&format!("peer {A}:")),
        "D saw {seen:?}, not A"
    );
    assert_eq!(phys.router_forwarded(), router, "the router forwarded it");

    // Across subnets, two hosts: routed by the router.
    let (ok, said) = d.run(&["tcp-get", &format!("{C}:80")]);
    assert!(ok, "D (host 2) -> C (host 1, other subnet): {said}");
    let seen = srv_c.next_line().unwrap_or_default();
    assert!(
        seen.starts_with(&format!("peer {D}:")),
        "C saw {seen:?}, not D"
    );
    assert!(
        phys.router_forwarded() >= router + 4,
        "not through the router"
    );
    // The hosts themselves still reach each other.
    let (ok, said) = Probe::run(h2.path(), &["ping", &h1.addr]);
    assert!(ok, "host 2 -> host 1: {said}");
}

#[test]
fn outside_reaches_a_container_directly() {
    let Some(phys) = world("outside_reaches_a_container_directly", 2, &WITH_NAT) else {
        return;
    };
    let h1 = phys.host(0);
    bind(h1, Some("eth0"));
    let a = at(h1, A);
    let srv = a.serve(&["tcp-serve", "0.0.0.0:80"]);
    let host = h1.forwarded();
    let (ok, said) = Probe::run(phys.outside.path(), &["tcp-get", &format!("{A}:80")]);
    assert!(ok, "outside -> A:80 without a published port: {said}");
    let seen = srv.next_line().unwrap_or_default();
    assert!(
        seen.starts_with(&format!("peer {OUTSIDE}:")),
        "A saw {seen:?}, not the outside"
    );
    assert_eq!(h1.forwarded(), host, "the host routed it");
}

#[test]
fn firewall_defaults_drop_other_protocols_inbound() {
    let Some(phys) = world(
        "firewall_defaults_drop_other_protocols_inbound",
        2,
        &WITH_NAT,
    ) else {
        return;
    };
    let (h1, h2) = (phys.host(0), phys.host(1));
    bind(h1, Some("eth0"));
    let a = at(h1, A);
    // GRE to A from the router and from the other host is dropped.
    assert_defaults_hold(
        &a,
        &[phys.router.path(), h2.path()],
        phys.outside.path(),
        OUTSIDE,
    );
}

/// Frames the host itself sends to an endpoint take the bridge's output
/// path, not its forward path: the firewall defaults hold there too.
#[test]
fn firewall_defaults_drop_other_protocols_the_host_sends() {
    let Some(phys) = world(
        "firewall_defaults_drop_other_protocols_the_host_sends",
        1,
        &BARE,
    ) else {
        return;
    };
    let h1 = phys.host(0);
    bind(h1, Some("eth0"));
    let a = at(h1, A);
    for proto in ["47", "132"] {
        let listen = a.serve(&["raw-listen", proto]);
        let (ok, said) = Probe::run(h1.path(), &["raw-send", proto, A]);
        assert!(ok, "raw-send {proto} from the host: {said}");
        let (ok, said) = Probe::run(h1.path(), &["ping", A]);
        assert!(ok, "ping host -> A, after protocol {proto}: {said}");
        // The marker from inside must be the first thing the listener saw.
        assert!(a.run(&["raw-send", proto, "127.0.0.1"]).0);
        assert_eq!(
            listen.next_line().as_deref(),
            Some("got 127.0.0.1"),
            "protocol {proto} from the host reached the container"
        );
    }
}

#[test]
fn allocated_addresses_skip_the_gateway_and_the_host() {
    let Some(phys) = world(
        "allocated_addresses_skip_the_gateway_and_the_host",
        1,
        &BARE,
    ) else {
        return;
    };
    let h1 = phys.host(0);
    let net = bind(h1, Some("eth0"));
    // An allocated container works like a static one.
    let k = h1.container(NET, json!([]));
    let gateway = if k.ip.starts_with("198.18.0.") {
        GATEWAY2
    } else {
        GATEWAY
    };
    let default = ip(&k.netns, &["route", "show", "default"]);
    assert_eq!(
        word_after(&default, "via").as_deref(),
        Some(gateway),
        "{}: {default}",
        k.ip
    );
    let (ok, said) = k.run(&["ping", gateway]);
    assert!(ok, "{} -> its gateway: {said}", k.ip);

    let c = h1.client();
    let mut seen = vec![k.ip.clone()];
    for _ in 0..12 {
        let ep = c
            .create(Kind::Endpoints, &json!({ "HostComputeNetwork": net }))
            .expect("allocate an endpoint");
        seen.push(
            ep["IpConfigurations"][0]["IpAddress"]
                .as_str()
                .expect("IpAddress")
                .to_string(),
        );
    }
    let own = host_addr(0);
    let reserved = [
        "192.0.2.0",
        GATEWAY,
        own.as_str(),
        "192.0.2.255",
        "198.18.0.0",
        GATEWAY2,
        "198.18.0.255",
    ];
    for a in &seen {
        assert!(
            a.starts_with("192.0.2.") || a.starts_with("198.18.0."),
            "{a} is in neither subnet"
        );
        assert!(!reserved.contains(&a.as_str()), "handed out {a}: {seen:?}");
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "an address twice: {seen:?}");
}

// ---- bad input ----

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let Some(phys) = world("bad_input_is_refused_and_changes_nothing", 2, &BARE) else {
        return;
    };
    let h1 = phys.host(0);
    let c = h1.client();

    let before = snapshot(h1);
    refused(
        c.create(Kind::Networks, &transparent("t0", Some("eth9"))),
        ADAPTER_NOT_FOUND,
        "NetAdapterName of a missing adapter",
    );
    assert_eq!(
        snapshot(h1),
        before,
        "refusing a missing adapter changed something"
    );

    let net = bind(h1, Some("eth0"));
    let bound = snapshot(h1);
    refused(
        c.create(Kind::Networks, &transparent("t2", Some("eth0"))),
        INVALID_NETWORK,
        "a second network on a bound adapter",
    );
    assert_eq!(
        snapshot(h1),
        bound,
        "refusing a second network changed something"
    );
    let mapped = json!({
        "HostComputeNetwork": net,
        "IpConfigurations": [{ "IpAddress": A }],
        "Policies": [port_mapping(6, 80, 8080)],
    });
    refused(
        c.create(Kind::Endpoints, &mapped),
        MAPPING_NOT_SUPPORTED,
        "a PortMapping on a Transparent endpoint",
    );
    assert_eq!(
        snapshot(h1),
        bound,
        "refusing a PortMapping changed something"
    );

    // The first network still works, and the refused endpoint's address
    // is free.
    let a = at(h1, A);
    let (ok, said) = a.run(&["ping", GATEWAY]);
    assert!(ok, "A -> gateway after the refusals: {said}");
    let (ok, said) = Probe::run(phys.router.path(), &["ping", &h1.addr]);
    assert!(ok, "router -> host 1 after the refusals: {said}");
}
