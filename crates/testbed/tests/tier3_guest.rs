//! Tests that run inside the tier-3 VM (Debian's stock cloud kernel, with
//! the 8021q and bonding modules this machine's kernel lacks). On the host
//! they are ignored; `tests/tier3.rs` boots the VM and runs them there with
//! `--ignored`.

mod common;

use common::{port_mapping, World, HOST, INTERNET};
use hostnet_api::Kind;
use hostnet_testbed::firewall::assert_defaults_hold;
use hostnet_testbed::physical::{Container, Host, GATEWAY, OUTSIDE};
use hostnet_testbed::{tier3, unique, Netns, PhysicalNet, Probe, Session};
use serde_json::{json, Value};

fn in_vm(test: &str) {
    assert!(
        tier3::in_guest(),
        "{test} needs modules this kernel may lack; run it through tests/tier3.rs"
    );
}

fn ping(from: &Netns, to: &str) -> bool {
    from.output("ping", &["-c", "1", "-W", "1", to])
        .status
        .success()
}

/// The guest kernel is the stock one and has what the tier exists for:
/// 802.1q sub-interfaces on a trunk keep VLANs apart, and an
/// active-backup bond survives losing a member.
#[test]
#[ignore = "runs in the tier-3 VM: cargo test -p hostnet-testbed --test tier3"]
fn stock_kernel_vlans_stay_apart_and_a_bond_survives_a_member() {
    in_vm("stock_kernel_vlans_stay_apart_and_a_bond_survives_a_member");
    // One trunk between two hosts; on each end VLAN 11 stays in the host
    // and VLAN 12's sub-interface moves to a namespace of its own, all four
    // on one subnet: only the same VLAN can answer.
    let a = Netns::new(&unique("t3a"));
    let b = Netns::new(&unique("t3b"));
    let a12 = Netns::new(&unique("t3a12"));
    let b12 = Netns::new(&unique("t3b12"));
    a.ip(&[
        "link", "add", "trunk", "type", "veth", "peer", "name", "trunk", "netns", &b.name,
    ]);
    for (ns, ns12, host) in [(&a, &a12, 1), (&b, &b12, 2)] {
        ns.ip(&["link", "set", "trunk", "up"]);
        for vlan in ["11", "12"] {
            let dev = format!("trunk.{vlan}");
            ns.ip(&[
                "link", "add", "link", "trunk", "name", &dev, "type", "vlan", "id", vlan,
            ]);
        }
        ns.ip(&["link", "set", "trunk.12", "netns", &ns12.name]);
        ns.ip(&[
            "addr",
            "add",
            &format!("10.1.0.{host}/24"),
            "dev",
            "trunk.11",
        ]);
        ns.ip(&["link", "set", "trunk.11", "up"]);
        ns12.ip(&[
            "addr",
            "add",
            &format!("10.1.0.1{host}/24"),
            "dev",
            "trunk.12",
        ]);
        ns12.ip(&["link", "set", "trunk.12", "up"]);
    }
    assert!(
        ping(&a, "10.1.0.2"),
        "VLAN 11 does not reach across the trunk"
    );
    assert!(
        ping(&a12, "10.1.0.12"),
        "VLAN 12 does not reach across the trunk"
    );
    assert!(!ping(&a, "10.1.0.12"), "VLAN 11 reached VLAN 12");
    assert!(!ping(&a12, "10.1.0.2"), "VLAN 12 reached VLAN 11");

    let c = Netns::new(&unique("t3c"));
    let d = Netns::new(&unique("t3d"));
    c.ip(&[
        "link",
        "add",
        "bond0",
        "type",
        "bond",
        "mode",
        "active-backup",
        "miimon",
        "50",
    ]);
    for m in ["m1", "m2"] {
        c.ip(&[
            "link", "add", m, "type", "veth", "peer", "name", m, "netns", &d.name,
        ]);
        c.ip(&["link", "set", m, "master", "bond0"]);
        d.ip(&["link", "set", m, "up"]);
    }
    d.ip(&["link", "add", "br0", "type", "bridge"]);
    for m in ["m1", "m2"] {
        d.ip(&["link", "set", m, "master", "br0"]);
    }
    d.ip(&["addr", "add", "10.20.0.2/24", "dev", "br0"]);
    d.ip(&["link", "set", "br0", "up"]);
    c.ip(&["addr", "add", "10.20.0.1/24", "dev", "bond0"]);
    c.ip(&["link", "set", "bond0", "up"]);
    assert!(
        hostnet_testbed::wait_until(std::time::Duration::from_secs(5), || ping(&c, "10.20.0.2")),
        "the bond does not reach"
    );
    d.ip(&["link", "set", "m1", "down"]);
    assert!(
        hostnet_testbed::wait_until(std::time::Duration::from_secs(5), || ping(&c, "10.20.0.2")),
        "the bond did not fail over to m2"
    );
}

/// The host end of an endpoint's veth: `hnve` + 10 hex digits of its ID.
fn veth_of(c: &Container) -> String {
    format!("hnve{}", &c.ep_id.replace('-', "").to_lowercase()[..10])
}

/// hostnetd on the stock kernel, NAT network: a container reaches the
/// outside masqueraded, a published port is reached from outside, the
/// endpoint firewall (each port's netdev hook) drops GRE from a sibling;
/// after a kill -9 during which one endpoint's veth vanished, the restart
/// rebuilds and hooks it again, and an open connection survives; an ACL
/// judges a sibling's connections (`br_netfilter`, loaded by hostnetd).
#[test]
#[ignore = "runs in the tier-3 VM: cargo test -p hostnet-testbed --test tier3"]
fn stock_kernel_nat_network_end_to_end() {
    in_vm("stock_kernel_nat_network_end_to_end");
    let mut w = World::new("stock_kernel_nat_network_end_to_end").expect("root in the VM");
    let server = Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("{INTERNET}:7000")],
    );
    let a = w.container("nat", json!([port_mapping(6, 80, 8080)]));
    let b = w.container("nat", json!([]));
    let (ok, said) = a.run(&["tcp-get", &format!("{INTERNET}:7000")]);
    assert!(ok, "the container could not reach the outside: {said}");
    assert!(
        said.starts_with(&format!("peer {HOST}:")),
        "outside saw {said}"
    );
    assert!(server.next_line().is_some());

    let _echo = a.serve(&["tcp-echo", "0.0.0.0:80"]);
    let mut session = Session::open(w.outside.path(), &format!("{HOST}:8080"));
    assert_eq!(session.say("one"), "one", "published port from outside");

    let gre_from_sibling_dropped = |to: &Container, from: &Container| {
        let listen = to.serve(&["raw-listen", "47"]);
        assert!(from.run(&["raw-send", "47", &to.ip]).0);
        assert!(from.run(&["ping", &to.ip]).0, "ping between siblings");
        listen.next_line().is_none()
    };
    assert!(gre_from_sibling_dropped(&a, &b), "GRE reached a");
    assert!(gre_from_sibling_dropped(&b, &a), "GRE reached b");

    let gone = veth_of(&b);
    w.daemon.kill9_and_restart_with(|| {
        w.host.ip(&["link", "del", &gone]);
    });
    assert_eq!(session.say("two"), "two", "connection lost over kill -9");
    let hooked = w.nft_elements("netdev hostnet_egress", "chain", "nat_endpoint_inbound");
    assert!(
        hooked.contains(&gone) && hooked.contains(&veth_of(&a)),
        "ports not hooked after the restart: {hooked}"
    );
    assert!(
        gre_from_sibling_dropped(&b, &a),
        "GRE reached the rebuilt b"
    );
    let (ok, said) = b.run(&["tcp-get", &format!("{INTERNET}:7000")]);
    assert!(
        ok,
        "the rebuilt container could not reach the outside: {said}"
    );

    // ACLs judge traffic between siblings in the inet table, which bridged
    // frames reach only through br_netfilter: a module here, which
    // hostnetd loads.
    let acl = |id: &str, action: &str, prio: u16, extra: Value| {
        let mut s = json!({ "Id": id, "Action": action, "Direction": "In", "Priority": prio });
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({ "Type": "ACL", "Settings": s })
    };
    let guarded = w.container(
        "nat",
        json!([
            acl(
                "web",
                "Allow",
                100,
                json!({ "Protocols": "6", "LocalPorts": "80" })
            ),
            acl("deny-in", "Block", 1000, json!({})),
        ]),
    );
    let _web = guarded.serve(&["tcp-serve", "0.0.0.0:80"]);
    let _other = guarded.serve(&["tcp-serve", "0.0.0.0:81"]);
    assert!(
        a.run(&["tcp-get", &format!("{}:80", guarded.ip)]).0,
        "sibling -> 80"
    );
    assert!(
        !a.run(&["tcp-get", &format!("{}:81", guarded.ip)]).0,
        "sibling -> 81 passed the ACL"
    );

    // Deleting an endpoint deletes its port's chain (the kernel already
    // did with the veth on 6.1; hostnet's own delete finds nothing).
    w.client()
        .delete(Kind::Endpoints, &b.ep_id)
        .expect("delete b");
    let hooked = w.nft_elements("netdev hostnet_egress", "chain", "nat_endpoint_inbound");
    assert!(!hooked.contains(&gone), "{hooked}");
}

/// Container addresses on the physical subnet, hosts 1 and 2.
const A: &str = "192.0.2.50";
const D: &str = "192.0.2.60";
const E: &str = "192.0.2.52";

/// A network of `kind` on 192.0.2.0/24 bound to each host's `eth0`.
fn bound_network(host: &Host, kind: &str) {
    let body = json!({
        "Name": "phys",
        "Type": kind,
        "Ipams": [{ "Subnets": [
            { "IpAddressPrefix": "192.0.2.0/24",
              "Routes": [{ "NextHop": GATEWAY, "DestinationPrefix": "0.0.0.0/0" }] },
        ] }],
        "Policies": [{ "Type": "NetAdapterName", "Settings": { "NetworkAdapterName": "eth0" } }],
    });
    host.client()
        .create(Kind::Networks, &body)
        .unwrap_or_else(|e| panic!("create a {kind} network on {}: {e}", host.addr));
}

fn at(host: &Host, ip: &str, policies: Value) -> Container {
    let c = host.container_with(
        "phys",
        json!({ "IpConfigurations": [{ "IpAddress": ip }], "Policies": policies }),
    );
    assert_eq!(c.ip, ip);
    c
}

/// `from` connects to a TCP server in `to`; the address the server saw.
fn tcp_peer(from: &Container, to: &Container, port: u16) -> String {
    let srv = to.serve(&["tcp-serve", &format!("0.0.0.0:{port}")]);
    let (ok, said) = from.run(&["tcp-get", &format!("{}:{port}", to.ip)]);
    assert!(ok, "{} -> {}: {said}", from.ip, to.ip);
    let seen = srv.next_line().unwrap_or_default();
    seen.strip_prefix("peer ")
        .and_then(|p| p.rsplit_once(':'))
        .map(|(a, _)| a.to_string())
        .unwrap_or_else(|| panic!("the server said {seen:?}"))
}

/// Two hosts on one physical segment, each with a network of `kind`
/// bound to its uplink: containers on both reach each other with their
/// own addresses, and the endpoint firewall holds.
fn bound_networks_on_two_hosts(test: &str, kind: &str) -> (PhysicalNet, Container, Container) {
    in_vm(test);
    let mut phys = PhysicalNet::new("t3p", 2);
    phys.start_daemons(&["--no-default-network"]);
    let (h1, h2) = (phys.host(0), phys.host(1));
    bound_network(h1, kind);
    bound_network(h2, kind);
    let a = at(h1, A, json!([]));
    let d = at(h2, D, json!([]));
    assert_eq!(tcp_peer(&a, &d, 80), A, "{kind}: host 1 to host 2");
    assert_eq!(tcp_peer(&d, &a, 81), D, "{kind}: host 2 to host 1");
    let senders = [phys.router.path(), d.netns.as_path()];
    assert_defaults_hold(&a, &senders, phys.outside.path(), OUTSIDE);
    (phys, a, d)
}

#[test]
#[ignore = "runs in the tier-3 VM: cargo test -p hostnet-testbed --test tier3"]
fn stock_kernel_transparent_networks_on_two_hosts() {
    bound_networks_on_two_hosts(
        "stock_kernel_transparent_networks_on_two_hosts",
        "Transparent",
    );
}

/// L2Bridge adds the uplink's hooks (the host's MAC on the wire) and an
/// outbound-NAT port's detour; both survive a kill -9.
#[test]
#[ignore = "runs in the tier-3 VM: cargo test -p hostnet-testbed --test tier3"]
fn stock_kernel_l2bridge_networks_on_two_hosts() {
    let test = "stock_kernel_l2bridge_networks_on_two_hosts";
    let (mut phys, a, d) = bound_networks_on_two_hosts(test, "L2Bridge");
    let nat = json!([{ "Type": "OutBoundNAT", "Settings": { "Exceptions": ["192.0.2.0/24"] } }]);
    let e = at(phys.host(0), E, nat);
    let outside_sees = |phys: &PhysicalNet, c: &Container, port: u16| {
        let srv = Probe::serve(
            phys.outside.path(),
            &["tcp-serve", &format!("{OUTSIDE}:{port}")],
        );
        let (ok, said) = c.run(&["tcp-get", &format!("{OUTSIDE}:{port}")]);
        assert!(ok, "{} -> outside: {said}", c.ip);
        srv.next_line().unwrap_or_default()
    };
    let h1 = phys.host(0).addr.clone();
    assert!(outside_sees(&phys, &e, 7000).starts_with(&format!("peer {h1}:")));
    assert_eq!(tcp_peer(&e, &d, 82), E, "D is an exception");
    phys.hosts[0].daemon_mut().kill9_and_restart();
    assert!(outside_sees(&phys, &e, 7001).starts_with(&format!("peer {h1}:")));
    assert_eq!(tcp_peer(&d, &a, 83), D, "after kill -9");
}
