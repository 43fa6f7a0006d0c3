//! The NAT row of the connectivity matrix, proved with packets on the
//! multi-host world ([`PhysicalNet`], tier 2): two hosts on one physical
//! segment, each running `hostnetd` with its default `nat` network on the
//! same private prefix 10.88.0.0/16 (as on Windows, where each host's NAT
//! prefix is its own), the segment's router, and an outside host.
//!
//! | cell | NAT |
//! |---|---|
//! | same host, same subnet | bridged, direct |
//! | cross subnet | not supported: one prefix per network, others refused |
//! | container to outside | routed through the host, masqueraded to its physical address |
//! | container to container across hosts | not directly; only through ports published on the host |
//! | outside to container | only through a published port |
//!
//! The first tests check the world itself: switching, routing, hairpinning
//! through the router, and DHCP on the segment.

use std::time::Duration;

use hostnet_api::{ApiError, Kind};
use hostnet_testbed::physical::{
    host_addr, missing_tool, sysctl, udhcpc, Host, GATEWAY, OUTSIDE, ROUTER_OUTSIDE,
};
use hostnet_testbed::{require_privileges, wait_until, PhysicalNet, Probe};
use serde_json::{json, Value};

const SUBNET: &str = "10.88.0.0/16";

/// Two hosts with `hostnetd` each, or None (after `skipped:`).
fn world(test: &str) -> Option<PhysicalNet> {
    if !require_privileges(test) {
        return None;
    }
    let mut phys = PhysicalNet::new("mx", 2);
    phys.start_daemons(&["--default-subnet", SUBNET]);
    Some(phys)
}

fn port_mapping(proto: u32, internal: u16, external: u16) -> Value {
    json!({ "Type": "PortMapping", "Settings": { "Protocol": proto, "InternalPort": internal, "ExternalPort": external } })
}

/// The HCN error code of a call that must fail.
fn code(r: Result<Value, ApiError>) -> u32 {
    match r {
        Err(e) => e
            .error_code()
            .unwrap_or_else(|| panic!("not an HCN error: {e}")),
        Ok(v) => panic!("expected an error, got {v}"),
    }
}

/// How many packets `host` has routed (not bridged) so far.
fn forwarded(host: &Host) -> u64 {
    let out = host.netns.output("cat", &["/proc/net/snmp"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let ip: Vec<&str> = text.lines().filter(|l| l.starts_with("Ip:")).collect();
    ip[0]
        .split_whitespace()
        .zip(ip[1].split_whitespace())
        .find(|(n, _)| *n == "ForwDatagrams")
        .and_then(|(_, v)| v.parse().ok())
        .expect("ForwDatagrams")
}

// ---- the world itself ----

#[test]
fn physical_network_switches_routes_and_hairpins() {
    if !require_privileges("physical_network_switches_routes_and_hairpins") {
        return;
    }
    let phys = PhysicalNet::new("pw", 3);
    let (h1, h2, h3) = (phys.host(0), phys.host(1), phys.host(2));

    // Switched: host to host on the segment, the router not involved.
    let before = phys.router_forwarded();
    for (from, to) in [(h1, h2), (h2, h3), (h3, h1)] {
        let (ok, said) = Probe::run(from.path(), &["ping", &to.addr]);
        assert!(ok, "{} -> {}: {said}", from.addr, to.addr);
    }
    assert_eq!(
        phys.router_forwarded(),
        before,
        "the switch sent via the router"
    );

    // Routed: a host reaches the outside through the router, unNATed.
    let srv = Probe::serve(
        phys.outside.path(),
        &["tcp-serve", &format!("{OUTSIDE}:7000")],
    );
    let (ok, said) = Probe::run(h3.path(), &["tcp-get", &format!("{OUTSIDE}:7000")]);
    assert!(
        ok && said.starts_with(&format!("peer {}:", h3.addr)),
        "{said}"
    );
    assert!(srv
        .next_line()
        .unwrap()
        .starts_with(&format!("peer {}:", h3.addr)));
    assert!(Probe::run(phys.outside.path(), &["ping", GATEWAY]).0);

    // Hairpin: host2 also holds 198.18.0.12 (another subnet the router is
    // the gateway of); host1 reaches it only through the router, which
    // sends the packets back out of the port they came in on, without a
    // redirect.
    h2.netns
        .ip(&["addr", "add", "198.18.0.12/24", "dev", "eth0"]);
    let srv = Probe::serve(h2.path(), &["tcp-serve", "198.18.0.12:7001"]);
    let before = phys.router_forwarded();
    let (ok, said) = Probe::run(h1.path(), &["tcp-get", "198.18.0.12:7001"]);
    assert!(
        ok && said.starts_with(&format!("peer {}:", h1.addr)),
        "hairpin: {said}"
    );
    assert!(srv.next_line().is_some());
    assert!(
        phys.router_forwarded() >= before + 3,
        "the hairpinned connection did not go through the router"
    );
    assert_eq!(phys.router_redirects(), 0, "the router sent ICMP redirects");
    // The outside reaches the extra subnet through the router too.
    assert!(Probe::run(phys.outside.path(), &["ping", "198.18.0.12"]).0);
}

#[test]
fn dhcp_server_on_the_physical_network_leases() {
    let test = "dhcp_server_on_the_physical_network_leases";
    if !require_privileges(test) {
        return;
    }
    let Some(busybox) = udhcpc() else {
        missing_tool(
            test,
            "busybox with udhcpc is not installed (Debian package busybox-static)",
        );
        return;
    };
    let mut phys = PhysicalNet::new("dh", 1);
    if !phys.start_dhcp(test, "192.0.2.100,192.0.2.199") {
        return;
    }
    let station = phys.plug("dhc");
    let out = station.output("ip", &["-o", "link", "show", "eth0"]);
    let link = String::from_utf8_lossy(&out.stdout);
    let mac = link
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("MAC")
        .to_string();
    let client = station
        .command(&busybox)
        .args([
            "udhcpc",
            "-i",
            "eth0",
            "-n",
            "-q",
            "-s",
            "/bin/true",
            "-t",
            "5",
            "-T",
            "1",
        ])
        .output()
        .expect("run udhcpc");
    assert!(
        client.status.success(),
        "udhcpc got no lease: {}\n{}\ndnsmasq:\n{}",
        String::from_utf8_lossy(&client.stdout),
        String::from_utf8_lossy(&client.stderr),
        phys.dhcp().log()
    );
    let leased = wait_until(Duration::from_secs(5), || {
        phys.dhcp()
            .leases()
            .lines()
            .any(|l| l.contains(&mac) && l.contains(" 192.0.2.1"))
    });
    assert!(leased, "no lease for {mac}:\n{}", phys.dhcp().leases());
}

// ---- the NAT row ----

#[test]
fn same_host_same_subnet_is_bridged() {
    let Some(phys) = world("same_host_same_subnet_is_bridged") else {
        return;
    };
    let h1 = phys.host(0);
    let a1 = h1.container("nat", json!([]));
    let a2 = h1.container("nat", json!([]));
    let srv = a2.serve(&["tcp-serve", "0.0.0.0:80"]);
    let before = forwarded(h1);
    let (ok, said) = a1.run(&["tcp-get", &format!("{}:80", a2.ip)]);
    assert!(ok, "A1 -> A2 on one host: {said}");
    assert!(srv.next_line().is_some());
    // The host routed nothing: it was bridged.
    assert_eq!(forwarded(h1), before, "same-subnet traffic was routed");
}

/// Bridged traffic keeps its source address, as on Windows, whether or not
/// the kernel passes bridged packets through the IP hooks (`br_netfilter`,
/// loaded on most Docker and Kubernetes hosts, and on this machine).
#[test]
fn same_host_same_subnet_keeps_the_source_address() {
    let Some(phys) = world("same_host_same_subnet_keeps_the_source_address") else {
        return;
    };
    let h1 = phys.host(0);
    let a1 = h1.container("nat", json!([]));
    let a2 = h1.container("nat", json!([]));
    let srv = a2.serve(&["tcp-serve", "0.0.0.0:80"]);
    // With the knob there (br_netfilter loaded), try both of its settings.
    let knob = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    let settings = if std::path::Path::new(knob).exists() {
        vec![Some("0"), Some("1")]
    } else {
        vec![None]
    };
    for on in settings {
        if let Some(on) = on {
            sysctl(
                &h1.netns,
                &[&format!("net.bridge.bridge-nf-call-iptables={on}")],
            );
        }
        let on = on.unwrap_or("absent");
        let (ok, said) = a1.run(&["tcp-get", &format!("{}:80", a2.ip)]);
        assert!(ok, "A1 -> A2 (bridge-nf-call-iptables={on}): {said}");
        let seen = srv.next_line().unwrap();
        assert!(
            seen.starts_with(&format!("peer {}:", a1.ip)),
            "A2 saw {seen}, not A1 {} (bridge-nf-call-iptables={on})",
            a1.ip
        );
    }
}

#[test]
fn cross_subnet_on_the_nat_network_is_not_supported() {
    let Some(phys) = world("cross_subnet_on_the_nat_network_is_not_supported") else {
        return;
    };
    let h1 = phys.host(0);
    let c = h1.client();
    let nat = h1.network("nat");
    let before = c.get(Kind::Networks, &nat).unwrap();

    // An endpoint outside the network's one prefix: HCN_E_INVALID_IP.
    let r = c.create(
        Kind::Endpoints,
        &json!({ "HostComputeNetwork": nat, "IpConfigurations": [{ "IpAddress": "10.99.0.5" }] }),
    );
    assert_eq!(code(r), 0x803B_001E, "static IP outside the NAT prefix");
    // A second subnet on the network: HCN_E_REQUEST_UNSUPPORTED.
    let r = c.modify(
        Kind::Networks,
        &nat,
        &json!({ "ResourceType": "Subnet", "RequestType": "Add",
                 "Settings": { "Subnets": [{ "IpAddressPrefix": "10.99.0.0/16" }] } }),
    );
    assert_eq!(code(r), 0x803B_0015, "second subnet on the NAT network");

    assert_eq!(
        c.get(Kind::Networks, &nat).unwrap(),
        before,
        "network changed"
    );
    assert!(
        c.list(Kind::Endpoints, None).unwrap().is_empty(),
        "an endpoint was left"
    );
    // An address inside the prefix is fine: the refusals were about the subnet.
    let ep = c
        .create(
            Kind::Endpoints,
            &json!({ "HostComputeNetwork": nat, "IpConfigurations": [{ "IpAddress": "10.88.0.5" }] }),
        )
        .expect("static IP inside the NAT prefix");
    assert_eq!(ep["IpConfigurations"][0]["IpAddress"], "10.88.0.5");
}

#[test]
fn container_reaches_the_outside_through_its_hosts_nat() {
    let Some(phys) = world("container_reaches_the_outside_through_its_hosts_nat") else {
        return;
    };
    let srv = Probe::serve(
        phys.outside.path(),
        &["tcp-serve", &format!("{OUTSIDE}:7000")],
    );
    let a1 = phys.host(0).container("nat", json!([]));
    let b1 = phys.host(1).container("nat", json!([]));
    // Both hosts' containers may well have the same private address; the
    // outside tells them apart by their hosts' physical addresses.
    for (c, host) in [(&a1, host_addr(0)), (&b1, host_addr(1))] {
        let (ok, said) = c.run(&["tcp-get", &format!("{OUTSIDE}:7000")]);
        assert!(ok, "container {} -> outside: {said}", c.ip);
        let seen = srv.next_line().unwrap();
        assert!(
            seen.starts_with(&format!("peer {host}:")),
            "outside saw {seen}, not host {host}"
        );
    }
}

#[test]
fn containers_on_two_hosts_meet_only_through_published_ports() {
    let Some(phys) = world("containers_on_two_hosts_meet_only_through_published_ports") else {
        return;
    };
    let (h1, h2) = (phys.host(0), phys.host(1));
    let a1 = h1.container("nat", json!([port_mapping(6, 80, 8080)]));
    let a2 = h1.container("nat", json!([port_mapping(6, 80, 8081)]));
    let srv1 = a1.serve(&["tcp-serve", "0.0.0.0:80"]);
    let srv2 = a2.serve(&["tcp-serve", "0.0.0.0:80"]);
    let b1 = h2.container("nat", json!([]));
    assert_ne!(a2.ip, b1.ip);

    // Directly: A2's address is in host 2's own private prefix, on host
    // 2's own bridge, where nobody has it; A1's may even be B1's own.
    let (ok, said) = b1.run(&["tcp-get", &format!("{}:80", a2.ip)]);
    assert!(!ok, "B1 reached host 1's A2 directly: {said}");
    let (ok, said) = b1.run(&["tcp-get", &format!("{}:80", a1.ip)]);
    assert!(!ok, "B1 reached host 1's A1 directly: {said}");

    // Through the ports host 1 publishes: host 2 masquerades B1, so A1 and
    // A2 see host 2's physical address. Their first connections are these
    // (the servers print one line per connection, in order), so the direct
    // attempts above reached neither.
    let router = phys.router_forwarded();
    for (port, srv) in [(8080, &srv1), (8081, &srv2)] {
        let (ok, said) = b1.run(&["tcp-get", &format!("{}:{port}", h1.addr)]);
        assert!(ok, "B1 -> host 1:{port}: {said}");
        let seen = srv.next_line().unwrap();
        assert!(
            seen.starts_with(&format!("peer {}:", h2.addr)),
            "through :{port} the container saw {seen}, not host 2"
        );
    }
    assert_eq!(
        phys.router_forwarded(),
        router,
        "host to host went through the router"
    );
}

#[test]
fn outside_reaches_a_container_only_through_a_published_port() {
    let Some(phys) = world("outside_reaches_a_container_only_through_a_published_port") else {
        return;
    };
    let h1 = phys.host(0);
    let a1 = h1.container("nat", json!([port_mapping(6, 80, 8080)]));
    let srv = a1.serve(&["tcp-serve", "0.0.0.0:80"]);
    let ep = h1.client().get(Kind::Endpoints, &a1.ep_id).unwrap();
    let gateway = ep["Routes"][0]["NextHop"]
        .as_str()
        .expect("gateway")
        .to_string();

    // Give the outside a real route into host 1's private prefix, so only
    // hostnet stands in the way: the route works up to host 1 (its NAT
    // gateway address answers), the container stays unreachable.
    phys.router.ip(&["route", "add", SUBNET, "via", &h1.addr]);
    phys.outside
        .ip(&["route", "add", SUBNET, "via", ROUTER_OUTSIDE]);
    let (ok, said) = Probe::run(phys.outside.path(), &["ping", &gateway]);
    assert!(ok, "route to host 1's NAT gateway {gateway}: {said}");
    let (ok, said) = Probe::run(phys.outside.path(), &["tcp-get", &format!("{}:80", a1.ip)]);
    assert!(!ok, "outside reached the container directly: {said}");

    // Published: the container sees the outside's real address. This is
    // its first connection, so the direct attempt never reached it.
    let (ok, said) = Probe::run(
        phys.outside.path(),
        &["tcp-get", &format!("{}:8080", h1.addr)],
    );
    assert!(ok, "outside -> host 1:8080: {said}");
    let seen = srv.next_line().unwrap();
    assert!(
        seen.starts_with(&format!("peer {OUTSIDE}:")),
        "container saw {seen}"
    );
}
