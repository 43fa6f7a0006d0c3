//! Dual-stack NAT networks on the real kernel (tier 2): a NAT network with
//! an IPv4 and an IPv6 subnet, its containers reaching the outside through
//! NAT66, published ports on the host's IPv6 address, the firewall
//! defaults and isolation in IPv6, and IPv6 state over kill -9. The host's
//! uplink carries IPv6 from the documentation range (`World::dual_stack`).

mod common;

use common::*;
use hostnet_api::Kind;
use hostnet_testbed::{Probe, Session};
use serde_json::{json, Value};

const V4: &str = "10.77.0.0/24";
const V6: &str = "fd00:77::/64";
const GATEWAY6: &str = "fd00:77::1";

/// A dual-stack NAT network `name`.
fn dual_network(w: &World, name: &str, v4: &str, v6: &str) -> Value {
    w.client()
        .create(
            Kind::Networks,
            &json!({ "Name": name, "Type": "nat", "Ipams": [{ "Type": "Static", "Subnets": [
                { "IpAddressPrefix": v4 }, { "IpAddressPrefix": v6 }
            ] }] }),
        )
        .expect("dual-stack network")
}

/// A container's IPv6 address, as the API shows it.
fn ip6(w: &World, c: &Container) -> String {
    let ep = w.client().get(Kind::Endpoints, &c.ep_id).expect("endpoint");
    let configs = ep["IpConfigurations"].as_array().expect("IpConfigurations");
    assert_eq!(configs.len(), 2, "a dual-stack endpoint has two: {ep}");
    assert_eq!(configs[0]["IpAddress"].as_str(), Some(c.ip.as_str()));
    configs[1]["IpAddress"].as_str().expect("IPv6").to_string()
}

fn at(addr: &str, port: u16) -> String {
    format!("[{addr}]:{port}")
}

fn ip6_mapping(proto: u32, internal: u16, external: u16) -> Value {
    json!({ "Type": "PortMapping", "Settings": { "Protocol": proto, "InternalPort": internal, "ExternalPort": external, "Flags": 2 } })
}

#[test]
fn dual_stack_containers_reach_the_outside_through_nat66_at_once() {
    let Some(w) =
        World::dual_stack("dual_stack_containers_reach_the_outside_through_nat66_at_once")
    else {
        return;
    };
    dual_network(&w, "dual", V4, V6);
    let server6 = Probe::serve(w.outside.path(), &["tcp-serve", &at(INTERNET6, 7000)]);
    let server4 = Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("{INTERNET}:7001")],
    );
    let a = w.container("dual", json!([]));
    // The very first packet, right after attach: no DAD holds the address.
    let (ok, said) = a.run(&["tcp-get", &at(INTERNET6, 7000)]);
    assert!(
        ok,
        "container could not reach the outside over IPv6: {said}"
    );
    let host6 = format!("peer [{HOST6}]:");
    assert!(
        said.starts_with(&host6),
        "outside saw {said}, not the host's IPv6 address"
    );
    assert!(server6.next_line().unwrap().starts_with(&host6));
    let (ok, said) = a.run(&["tcp-get", &format!("{INTERNET}:7001")]);
    assert!(
        ok && said.starts_with(&format!("peer {HOST}:")),
        "IPv4: {said}"
    );
    assert!(server4.next_line().is_some());

    // In the container: both addresses, none tentative; the IPv6 default
    // route via the network's IPv6 gateway.
    let a6 = ip6(&w, &a);
    assert!(a6.starts_with("fd00:77::"), "{a6}");
    let addrs = Probe::command(&a.netns, "ip")
        .args(["-6", "addr", "show", "dev", "eth0"])
        .output()
        .unwrap();
    let addrs = String::from_utf8_lossy(&addrs.stdout);
    assert!(addrs.contains(&format!("{a6}/64")), "{addrs}");
    assert!(
        !addrs.contains("tentative"),
        "an address waits for DAD: {addrs}"
    );
    let routes = Probe::command(&a.netns, "ip")
        .args(["-6", "route", "show", "default"])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert!(routes.contains(&format!("via {GATEWAY6}")), "{routes}");

    // The CLI shows both addresses.
    let (code, out, err) = w.daemon.run_cli(&["endpoint", "inspect", &a.ep_id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&a6) && out.contains(&a.ip), "{out}");

    // Outbound is allowed for every protocol in IPv6 too, NATed to the host.
    let gre = Probe::serve(w.outside.path(), &["raw6-listen", "47"]);
    assert!(a.run(&["raw-send", "47", INTERNET6]).0);
    assert_eq!(gre.next_line(), Some(format!("got {HOST6}")));
}

#[test]
fn ipv6_published_ports_reach_the_container_from_everywhere() {
    let Some(w) = World::dual_stack("ipv6_published_ports_reach_the_container_from_everywhere")
    else {
        return;
    };
    dual_network(&w, "dual", V4, V6);
    let a = w.container(
        "dual",
        json!([
            port_mapping(6, 80, 8080),
            port_mapping(17, 53, 5353),
            ip6_mapping(6, 80, 9090)
        ]),
    );
    let a6 = ip6(&w, &a);
    // One dual socket each: IPv4 arrives as ::ffff:a.b.c.d.
    let _tcp = a.serve(&["tcp-serve", "[::]:80"]);
    let _udp = a.serve(&["udp-serve", "[::]:53"]);

    // From outside: DNATed to the container's IPv6 address, the real
    // client seen.
    let outside6 = format!("peer [{OUTSIDE6}]:");
    let (ok, said) = Probe::run(w.outside.path(), &["tcp-get", &at(HOST6, 8080)]);
    assert!(
        ok && said.starts_with(&outside6),
        "tcp from outside: {said}"
    );
    let (ok, said) = Probe::run(w.outside.path(), &["udp-get", &at(HOST6, 5353)]);
    assert!(
        ok && said.starts_with(&outside6),
        "udp from outside: {said}"
    );
    // IPv4 as before.
    let (ok, said) = Probe::run(w.outside.path(), &["tcp-get", &format!("{HOST}:8080")]);
    assert!(
        ok && said.starts_with(&format!("peer [::ffff:{OUTSIDE}]:")),
        "IPv4 from outside: {said}"
    );
    // The IPv6-only mapping (Flags 2) is on IPv6 alone.
    let (ok, said) = Probe::run(w.outside.path(), &["tcp-get", &at(HOST6, 9090)]);
    assert!(ok, "IPv6-only mapping: {said}");
    let (ok, said) = Probe::run(w.outside.path(), &["tcp-get", &format!("{HOST}:9090")]);
    assert!(!ok, "the IPv6-only mapping answered on IPv4: {said}");

    // From the host itself, and from a sibling through the host (hairpin).
    let (ok, said) = Probe::run(w.host.path(), &["tcp-get", &at(HOST6, 8080)]);
    assert!(ok, "tcp from the host: {said}");
    let b = w.container("dual", json!([]));
    let (ok, said) = b.run(&["tcp-get", &at(HOST6, 8080)]);
    assert!(ok, "hairpin tcp: {said}");
    let (ok, said) = b.run(&["udp-get", &at(HOST6, 5353)]);
    assert!(ok, "hairpin udp: {said}");

    // An unmapped port is closed; the container's address is not reachable
    // directly from outside, even with a route to it.
    let (ok, _) = Probe::run(w.outside.path(), &["tcp-get", &at(HOST6, 8081)]);
    assert!(!ok);
    w.outside.ip(&["-6", "route", "add", V6, "via", HOST6]);
    let (ok, said) = Probe::run(w.outside.path(), &["tcp-get", &at(&a6, 80)]);
    assert!(!ok, "outside reached the container directly: {said}");
}

#[test]
fn ipv6_isolation_and_firewall_defaults_mirror_ipv4() {
    let Some(w) = World::dual_stack("ipv6_isolation_and_firewall_defaults_mirror_ipv4") else {
        return;
    };
    dual_network(&w, "dual", V4, V6);
    dual_network(&w, "other", "10.78.0.0/24", "fd00:78::/64");
    let a = w.container("dual", json!([]));
    let b = w.container("dual", json!([]));
    let c = w.container("other", json!([]));
    let (a6, b6, c6) = (ip6(&w, &a), ip6(&w, &b), ip6(&w, &c));
    assert!(c6.starts_with("fd00:78::"), "{c6}");
    let _srv = a.serve(&["tcp-serve", "[::]:80"]);

    // Same network: bridged, neighbour discovery and all.
    let (ok, said) = b.run(&["tcp-get", &at(&a6, 80)]);
    assert!(ok, "same network: {said}");
    assert!(said.starts_with(&format!("peer [{b6}]:")), "saw {said}");
    assert!(b.run(&["ping", &a6]).0, "ICMPv6 echo within the network");
    assert!(
        Probe::run(w.host.path(), &["ping", &a6]).0,
        "ICMPv6 echo from the host"
    );
    // Across networks: nothing, not even ICMPv6 echo.
    let (ok, said) = c.run(&["tcp-get", &at(&a6, 80)]);
    assert!(!ok, "across networks the container answered: {said}");
    assert!(!c.run(&["ping", &a6]).0, "across networks ping passed");
    // The other network itself works.
    assert!(
        c.run(&["ping", "fd00:78::1"]).0,
        "the other network's gateway"
    );

    // Inbound, only TCP, UDP, ICMP(v6) and IGMP: GRE and SCTP are dropped,
    // routed from the host and bridged from a sibling alike, each drop
    // counted once against the endpoint.
    let dropped = || {
        w.client().endpoint_stats(&a.ep_id).unwrap()["DroppedPacketsIncoming"]
            .as_u64()
            .unwrap()
    };
    let before = dropped();
    for proto in ["47", "132"] {
        let listen = a.serve(&["raw6-listen", proto]);
        // The host's own send fails with EPERM: its output hook drops it.
        let _ = Probe::run(w.host.path(), &["raw-send", proto, &a6]);
        assert!(b.run(&["raw-send", proto, &a6]).0);
        assert!(b.run(&["ping", &a6]).0, "ping from sibling");
        assert!(
            Probe::run(w.host.path(), &["ping", &a6]).0,
            "ping from host"
        );
        assert_eq!(
            listen.next_line(),
            None,
            "IPv6 protocol {proto} reached the container"
        );
    }
    assert_eq!(
        dropped() - before,
        4,
        "two protocols, from the host and a sibling"
    );
}

#[test]
fn ipv6_state_and_connections_survive_kill9() {
    let Some(mut w) = World::dual_stack("ipv6_state_and_connections_survive_kill9") else {
        return;
    };
    dual_network(&w, "dual", V4, V6);
    let a = w.container("dual", json!([port_mapping(6, 80, 8080)]));
    let a6 = ip6(&w, &a);
    let _echo = a.serve(&["tcp-echo", "[::]:80"]);
    let mut session = Session::open(w.outside.path(), &at(HOST6, 8080));
    assert_eq!(session.say("one"), "one");
    let before = w.client().list(Kind::Endpoints, None).unwrap();

    w.daemon.kill9_and_restart();
    assert_eq!(
        session.say("two"),
        "two",
        "IPv6 connection lost over kill -9"
    );
    assert_eq!(w.client().list(Kind::Endpoints, None).unwrap(), before);
    assert_eq!(ip6(&w, &a), a6);

    // A restart that finds the tables gone rebuilds the IPv6 elements.
    w.daemon.kill9_and_restart_with(|| {
        let _ = w
            .host
            .output("nft", &["delete", "table", "inet", "hostnet"]);
    });
    let mut fresh = Session::open(w.outside.path(), &at(HOST6, 8080));
    assert_eq!(fresh.say("three"), "three", "IPv6 mapping not rebuilt");
    let _srv = Probe::serve(w.outside.path(), &["tcp-serve", &at(INTERNET6, 7000)]);
    let (ok, said) = a.run(&["tcp-get", &at(INTERNET6, 7000)]);
    assert!(
        ok && said.starts_with(&format!("peer [{HOST6}]:")),
        "NAT66 after restart: {said}"
    );
    // The reloaded pool does not hand the address out again.
    let b = w.container("dual", json!([]));
    assert_ne!(ip6(&w, &b), a6);
}

/// The CLI in Docker's style: `network create --ipv6 --subnet v4 --subnet
/// v6`, an endpoint with a static IPv6 address (`--ip6`), and `run`
/// reaching the outside over IPv6 through NAT66.
#[test]
fn the_cli_creates_dual_stack_networks_and_endpoints() {
    let Some(w) = World::dual_stack("the_cli_creates_dual_stack_networks_and_endpoints") else {
        return;
    };
    let (code, _, err) = w.daemon.run_cli(&[
        "network",
        "create",
        "-d",
        "nat",
        "--ipv6",
        "--subnet",
        "10.79.0.0/24",
        "dualcli",
    ]);
    assert_ne!(code, 0, "--ipv6 without an IPv6 subnet was taken");
    assert!(err.contains("IPv6 --subnet"), "{err}");
    assert!(w
        .client()
        .find_by_name(Kind::Networks, "dualcli")
        .unwrap()
        .is_none());
    let (code, _, err) = w.daemon.run_cli(&[
        "network",
        "create",
        "-d",
        "nat",
        "--ipv6",
        "--subnet",
        "10.79.0.0/24",
        "--subnet",
        "fd00:79::/64",
        "dualcli",
    ]);
    assert_eq!(code, 0, "{err}");

    let (code, id, err) = w.daemon.run_cli(&[
        "endpoint",
        "create",
        "--network",
        "dualcli",
        "--ip6",
        "fd00:79::99",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = w.daemon.run_cli(&["endpoint", "inspect", id.trim()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("fd00:79::99") && out.contains("10.79.0.2"),
        "{out}"
    );

    let server = Probe::serve(w.outside.path(), &["tcp-serve", &at(INTERNET6, 7000)]);
    let probe = Probe::binary();
    let (code, out, err) = w.daemon.run_cli(&[
        "run",
        "--network",
        "dualcli",
        "--ip6",
        "fd00:79::7",
        "--",
        probe.to_str().unwrap(),
        "tcp-get",
        &at(INTERNET6, 7000),
    ]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.starts_with(&format!("peer [{HOST6}]:")), "{out}");
    assert!(server.next_line().is_some());
}

/// The gateway DNS proxy (on the network's IPv4 gateway) answers a
/// dual-stack endpoint's name with both records: A and AAAA.
#[test]
fn the_gateway_dns_answers_aaaa_for_dual_stack_endpoints() {
    let Some(w) = World::dual_stack("the_gateway_dns_answers_aaaa_for_dual_stack_endpoints") else {
        return;
    };
    // IPv6 subnet first: the proxy still listens on the IPv4 gateway.
    w.client()
        .create(
            Kind::Networks,
            &json!({ "Name": "dual", "Type": "nat", "Ipams": [{ "Type": "Static", "Subnets": [
                { "IpAddressPrefix": V6 }, { "IpAddressPrefix": V4 }
            ] }] }),
        )
        .expect("dual-stack network");
    let web = Container::create(&w.client(), &w.network("dual"), json!({ "Name": "web6" }));
    let web6 = ip6(&w, &web);
    let client = w.container("dual", json!([]));
    let gateway = "10.77.0.1";
    let ask = |ty: &str| {
        let mut said = String::new();
        let answered = hostnet_testbed::wait_until(std::time::Duration::from_secs(5), || {
            said = client.run(&["dns", gateway, "web6", ty]).1;
            said.starts_with("NOERROR")
        });
        assert!(answered, "{ty} web6: {said}");
        said
    };
    let aaaa = ask("AAAA");
    assert!(aaaa.contains(&web6) && !aaaa.contains(&web.ip), "{aaaa}");
    let a = ask("A");
    assert!(a.contains(&web.ip) && !a.contains(&web6), "{a}");
    // Deleting the endpoint takes both records.
    w.client().delete(Kind::Endpoints, &web.ep_id).unwrap();
    let gone = client.run(&["dns", gateway, "web6", "AAAA"]).1;
    assert!(!gone.contains(&web6), "{gone}");
}
