//! Endpoint ACLs in the daemon: compiled into the inet table's ACL walk,
//! stateful (conntrack), on top of the seed's defaults (issue 5, item 2).

use hostnet_api::Kind;
use hostnet_testbed::physical::{Container, GATEWAY, OUTSIDE};
use hostnet_testbed::{require_privileges, PhysicalNet, Probe};
use serde_json::{json, Value};

fn acl(id: &str, action: &str, dir: &str, prio: u16, extra: Value) -> Value {
    let mut s = json!({ "Id": id, "Action": action, "Direction": dir, "Priority": prio });
    s.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({ "Type": "ACL", "Settings": s })
}

fn mapping(internal: u16, external: u16) -> Value {
    json!({ "Type": "PortMapping", "Settings": { "Protocol": 6, "InternalPort": internal, "ExternalPort": external } })
}

fn reaches(from: &std::path::Path, to: &str) -> bool {
    Probe::run(from, &["tcp-get", to]).0
}

#[test]
fn a_default_deny_ladder_guards_a_nat_endpoint_statefully() {
    if !require_privileges("a_default_deny_ladder_guards_a_nat_endpoint_statefully") {
        return;
    }
    let mut phys = PhysicalNet::new("acl", 1);
    phys.start_daemons(&["--default-subnet", "10.88.0.0/16"]);
    let h1 = phys.host(0);
    let policies = json!([
        mapping(80, 8080),
        mapping(81, 8081),
        acl(
            "web",
            "Allow",
            "In",
            100,
            json!({ "Protocols": "6", "LocalPorts": "80" })
        ),
        acl("deny-in", "Block", "In", 1000, json!({})),
    ]);
    let s: Container = h1.container("nat", policies);
    let c: Container = h1.container("nat", json!([]));
    let _web = s.serve(&["tcp-serve", "0.0.0.0:80"]);
    let _other = s.serve(&["tcp-serve", "0.0.0.0:81"]);

    // Published ports: the ACL decides after DNAT, on the endpoint's port.
    assert!(
        reaches(phys.outside.path(), &format!("{}:8080", h1.addr)),
        "8080 -> 80 is allowed"
    );
    assert!(
        !reaches(phys.outside.path(), &format!("{}:8081", h1.addr)),
        "8081 -> 81 is denied"
    );
    // A sibling on the same bridge: the same verdicts.
    assert!(
        c.run(&["tcp-get", &format!("{}:80", s.ip)]).0,
        "sibling -> 80"
    );
    assert!(
        !c.run(&["tcp-get", &format!("{}:81", s.ip)]).0,
        "sibling -> 81"
    );
    assert!(!c.run(&["ping", &s.ip]).0, "ping is denied by deny-in");
    // Out is not restricted, and replies come back in through deny-in.
    let srv = Probe::serve(
        phys.outside.path(),
        &["tcp-serve", &format!("{OUTSIDE}:7000")],
    );
    assert!(
        s.run(&["tcp-get", &format!("{OUTSIDE}:7000")]).0,
        "out and back"
    );
    assert!(srv.next_line().is_some());
    assert!(
        s.run(&["ping", GATEWAY]).0 || s.run(&["ping", OUTSIDE]).0,
        "ICMP out and its replies"
    );

    // The trace says the same.
    let t = h1
        .client()
        .trace(&s.ep_id, &json!({ "Direction": "In", "Protocol": "tcp", "Source": format!("{}:4000", c.ip), "Destination": format!("{}:81", s.ip) }))
        .expect("trace");
    assert_eq!(t["Verdict"], "Block", "{t}");
    assert!(t["Text"].as_str().unwrap().contains("rule deny-in"), "{t}");

    // Deleting the endpoint takes its rules away.
    h1.client().delete(Kind::Endpoints, &s.ep_id).ok();
}

#[test]
fn a_host_acl_opens_a_protocol_the_defaults_block() {
    if !require_privileges("a_host_acl_opens_a_protocol_the_defaults_block") {
        return;
    }
    let mut phys = PhysicalNet::new("aclt", 1);
    phys.start_daemons(&["--no-default-network"]);
    let h1 = phys.host(0);
    let net = json!({
        "Name": "t", "Type": "Transparent",
        "Ipams": [{ "Subnets": [{ "IpAddressPrefix": "192.0.2.0/24",
            "Routes": [{ "NextHop": GATEWAY, "DestinationPrefix": "0.0.0.0/0" }] }] }],
        "Policies": [{ "Type": "NetAdapterName", "Settings": { "NetworkAdapterName": "eth0" } }],
    });
    h1.client().create(Kind::Networks, &net).expect("network");
    let open = json!([acl(
        "gre-in",
        "Allow",
        "In",
        100,
        json!({ "Protocols": "47", "RuleType": "Host" })
    )]);
    let a = h1.container_with(
        "t",
        json!({ "IpConfigurations": [{ "IpAddress": "192.0.2.50" }], "Policies": open }),
    );
    let b = h1.container_with(
        "t",
        json!({ "IpConfigurations": [{ "IpAddress": "192.0.2.51" }] }),
    );
    for c in [&a, &b] {
        let listen = c.serve(&["raw-listen", "47"]);
        // From the router (through the uplink) and from the sibling (bridged).
        assert!(Probe::run(phys.router.path(), &["raw-send", "47", &c.ip]).0);
        let other = if c.ip == a.ip { &b } else { &a };
        assert!(other.run(&["raw-send", "47", &c.ip]).0);
        assert!(c.run(&["raw-send", "47", "127.0.0.1"]).0);
        let first = listen.next_line();
        if c.ip == a.ip {
            assert_eq!(
                first,
                Some(format!("got {GATEWAY}")),
                "the Host ACL lets GRE in"
            );
        } else {
            assert_eq!(
                first.as_deref(),
                Some("got 127.0.0.1"),
                "without an ACL the defaults drop GRE"
            );
        }
    }
}

/// Thousands of rules on one endpoint: their elements go to the kernel in
/// several messages (one message's element list is a nested attribute of at
/// most 64 KiB), and the last rule decides as the first does.
#[test]
fn thousands_of_rules_program_and_decide() {
    if !require_privileges("thousands_of_rules_program_and_decide") {
        return;
    }
    let mut phys = PhysicalNet::new("aclmany", 1);
    phys.start_daemons(&["--default-subnet", "10.88.0.0/16"]);
    let h1 = phys.host(0);
    let c: Container = h1.container("nat", json!([]));
    const RULES: u16 = 3000;
    // One allow per local port 10000.., from the sibling only, and a block
    // of everything else below them.
    let mut policies: Vec<Value> = (0..RULES)
        .map(|i| {
            acl(
                &format!("port-{i}"),
                "Allow",
                "In",
                100 + i,
                json!({ "Protocols": "6", "LocalPorts": (10000 + i).to_string(), "RemoteAddresses": format!("{}/32", c.ip) }),
            )
        })
        .collect();
    policies.push(acl("deny-in", "Block", "In", 4000, json!({})));
    let s: Container = h1.container("nat", Value::Array(policies));
    let last = 10000 + RULES - 1;
    let _first = s.serve(&["tcp-serve", "0.0.0.0:10000"]);
    let _last = s.serve(&["tcp-serve", &format!("0.0.0.0:{last}")]);
    let _beyond = s.serve(&["tcp-serve", &format!("0.0.0.0:{}", last + 1)]);
    assert!(
        c.run(&["tcp-get", &format!("{}:10000", s.ip)]).0,
        "first rule's port"
    );
    assert!(
        c.run(&["tcp-get", &format!("{}:{last}", s.ip)]).0,
        "last rule's port"
    );
    assert!(
        !c.run(&["tcp-get", &format!("{}:{}", s.ip, last + 1)]).0,
        "a port no rule opens is blocked"
    );
}

/// Thousands of interval-shaped rules (unaligned port ranges, prefixes of
/// other peers beside them): their aligned blocks go to the shape maps
/// through the endpoint's own chain, and real connections are judged by
/// them: the ends of the first and last ranges open, a port between two
/// ranges and one beyond the last blocked.
#[test]
fn thousands_of_interval_shaped_rules_program_and_decide() {
    if !require_privileges("thousands_of_interval_shaped_rules_program_and_decide") {
        return;
    }
    let mut phys = PhysicalNet::new("aclrange", 1);
    phys.start_daemons(&["--default-subnet", "10.88.0.0/16"]);
    let h1 = phys.host(0);
    let c: Container = h1.container("nat", json!([]));
    const RULES: u16 = 3000;
    // Rule i opens 20000 + 8i + 1 ..= that + i % 7 to the sibling; as many
    // again open ranges to /27-/30 prefixes of other peers.
    let range = |i: u16| {
        let first = 20000 + 8 * i + 1;
        (first, first + i % 7)
    };
    let mut policies: Vec<Value> = (0..RULES)
        .flat_map(|i| {
            let (a, b) = range(i);
            let other = std::net::Ipv4Addr::from(u32::from_be_bytes([100, 64, 0, 0]) + 32 * u32::from(i));
            [
                acl(
                    &format!("range-{i}"),
                    "Allow",
                    "In",
                    100 + i % 1000,
                    json!({ "Protocols": "6", "LocalPorts": format!("{a}-{b}"), "RemoteAddresses": format!("{}/32", c.ip) }),
                ),
                acl(
                    &format!("other-{i}"),
                    "Allow",
                    "In",
                    100 + i % 1000,
                    json!({ "Protocols": "6", "LocalPorts": format!("{a}-{b}"), "RemoteAddresses": format!("{other}/{}", 27 + i % 4) }),
                ),
            ]
        })
        .collect();
    policies.push(acl("deny-in", "Block", "In", 4000, json!({})));
    let s: Container = h1.container("nat", Value::Array(policies));
    let first = range(0).0;
    let last = range(RULES - 1).1;
    let gap = range(5).0 - 1;
    assert!(range(4).1 < gap, "no range covers {gap}");
    let _servers: Vec<_> = [first, last, gap, last + 1]
        .iter()
        .map(|p| s.serve(&["tcp-serve", &format!("0.0.0.0:{p}")]))
        .collect();
    let open = |p: u16| c.run(&["tcp-get", &format!("{}:{p}", s.ip)]).0;
    assert!(open(first), "the first range's first port");
    assert!(open(last), "the last range's last port");
    assert!(!open(gap), "a port between two ranges is blocked");
    assert!(!open(last + 1), "a port beyond the last range is blocked");
}
