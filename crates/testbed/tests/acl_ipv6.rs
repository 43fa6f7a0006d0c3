//! ACLs on dual-stack endpoints (issue 5, item 2) on the real kernel: the
//! compiled walk judges IPv6 as it judges IPv4 (its own `acl6_…` chains and
//! maps), rules apply to the families their addresses name, replies pass,
//! the per-rule counters count IPv6, modify changes both families, a
//! kill -9 keeps it, and the trace agrees with the kernel for IPv6.

mod common;

use common::*;
use hostnet_api::Kind;
use std::time::Duration;

use hostnet_testbed::{wait_until, Probe, Session};
use serde_json::{json, Value};

const V4: &str = "10.77.0.0/24";
const V6: &str = "fd00:77::/64";
const GATEWAY6: &str = "fd00:77::1";

fn dual_network(w: &World, name: &str) {
    w.client()
        .create(
            Kind::Networks,
            &json!({ "Name": name, "Type": "nat", "Ipams": [{ "Type": "Static", "Subnets": [
                { "IpAddressPrefix": V4 }, { "IpAddressPrefix": V6 }
            ] }] }),
        )
        .expect("dual-stack network");
}

/// A container's IPv6 address, as the API shows it.
fn ip6(w: &World, c: &Container) -> String {
    let ep = w.client().get(Kind::Endpoints, &c.ep_id).expect("endpoint");
    ep["IpConfigurations"][1]["IpAddress"]
        .as_str()
        .unwrap_or_else(|| panic!("no IPv6 address: {ep}"))
        .to_string()
}

fn acl(id: &str, action: &str, prio: u16, extra: Value) -> Value {
    let mut s = json!({ "Id": id, "Action": action, "Direction": "In", "Priority": prio });
    s.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({ "Type": "ACL", "Settings": s })
}

fn open(port: u16) -> Value {
    acl(
        &format!("open-{port}"),
        "Allow",
        100,
        json!({ "Protocols": "6", "LocalPorts": port.to_string() }),
    )
}

fn deny_in() -> Value {
    acl("deny-in", "Block", 1000, json!({}))
}

fn v4(addr: &str, port: u16) -> String {
    format!("{addr}:{port}")
}

fn v6(addr: &str, port: u16) -> String {
    format!("[{addr}]:{port}")
}

fn change(request: &str, policies: Value) -> Value {
    json!({ "ResourceType": "Policy", "RequestType": request, "Settings": { "Policies": policies } })
}

/// A server listening on both families (one dual socket) at `port`.
fn serve(c: &Container, port: u16) -> Probe {
    c.serve(&["tcp-serve", &v6("::", port)])
}

#[test]
fn a_default_deny_ladder_judges_ipv4_and_ipv6_alike() {
    let Some(w) = World::dual_stack("a_default_deny_ladder_judges_ipv4_and_ipv6_alike") else {
        return;
    };
    dual_network(&w, "dual");
    let s = w.container("dual", json!([open(80), deny_in()]));
    let c = w.container("dual", json!([]));
    let (s6, c6) = (ip6(&w, &s), ip6(&w, &c));
    let _web = serve(&s, 80);
    let _other = serve(&s, 81);

    // The set of the walk's IPv6 endpoints holds s's IPv6 address.
    let set = w.nft_elements("inet", "set", "acl_endpoints6");
    assert!(set.contains(&s6), "{set}");

    for (family, to) in [("IPv4", &s.ip), ("IPv6", &s6)] {
        let at = |port| match family {
            "IPv4" => v4(to, port),
            _ => v6(to, port),
        };
        assert!(c.run(&["tcp-get", &at(80)]).0, "{family}: sibling -> 80");
        assert!(
            !c.run(&["tcp-get", &at(81)]).0,
            "{family}: sibling -> 81 passed deny-in"
        );
        assert!(!c.run(&["ping", to]).0, "{family}: ping passed deny-in");
    }
    // Neighbour discovery is never judged (as ARP is not): deny-in must
    // not stop s answering c's unicast neighbour solicitation, which c
    // sends when it re-checks a stale entry (at once: no first-probe delay;
    // one-way UDP, so no TCP reply confirms the entry instead).
    let ip = |n: &Container, args: &[&str]| {
        let out = Probe::command(&n.netns, "ip").args(args).output().unwrap();
        assert!(out.status.success(), "ip {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let out = Probe::command(&c.netns, "sysctl")
        .args(["-qw", "net.ipv6.neigh.eth0.delay_first_probe_time=0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    ip(
        &c,
        &["-6", "neigh", "change", &s6, "dev", "eth0", "nud", "stale"],
    );
    assert!(c.run(&["udp-send", &v6(&s6, 9), "1", "16"]).0);
    let confirmed = wait_until(Duration::from_secs(6), || {
        ip(&c, &["-6", "neigh", "show", &s6, "dev", "eth0"]).contains("REACHABLE")
    });
    assert!(
        confirmed,
        "s did not answer a unicast solicitation: {}",
        ip(&c, &["-6", "neigh", "show", &s6, "dev", "eth0"])
    );

    // Out is open, and replies come back through deny-in (stateful): TCP
    // to the outside (NAT66) and a ping of the gateway.
    let srv = Probe::serve(w.outside.path(), &["tcp-serve", &v6(INTERNET6, 7000)]);
    let (ok, said) = s.run(&["tcp-get", &v6(INTERNET6, 7000)]);
    assert!(ok, "out and back over IPv6: {said}");
    assert!(srv.next_line().is_some());
    assert!(s.run(&["ping", GATEWAY6]).0, "an echo reply is a reply");
    assert!(s.run(&["ping", &c6]).0, "to a sibling and back");
    // Unsolicited from the host and from outside: judged the same.
    assert!(Probe::run(w.host.path(), &["tcp-get", &v6(&s6, 80)]).0);
    assert!(!Probe::run(w.host.path(), &["tcp-get", &v6(&s6, 81)]).0);
    assert!(!Probe::run(w.host.path(), &["ping", &s6]).0);
}

#[test]
fn a_rule_judges_only_the_family_its_addresses_name() {
    let Some(w) = World::dual_stack("a_rule_judges_only_the_family_its_addresses_name") else {
        return;
    };
    dual_network(&w, "dual");
    let c = w.container("dual", json!([]));
    let c6 = ip6(&w, &c);
    // Block c's IPv6 on 80 and c's IPv4 on 81; a list naming both
    // families (82) splits by family.
    let s = w.container(
        "dual",
        json!([
            acl("no-v6-80", "Block", 100, json!({ "Protocols": "6", "LocalPorts": "80", "RemoteAddresses": format!("{c6}/128") })),
            acl("no-v4-81", "Block", 100, json!({ "Protocols": "6", "LocalPorts": "81", "RemoteAddresses": c.ip })),
            acl("no-82", "Block", 100, json!({ "Protocols": "6", "LocalPorts": "82", "RemoteAddresses": format!("{},{c6}", c.ip) })),
        ]),
    );
    let s6 = ip6(&w, &s);
    let _servers: Vec<Probe> = [80, 81, 82, 83].into_iter().map(|p| serve(&s, p)).collect();
    let cases = [
        (80, false, true),
        (81, true, false),
        (82, false, false),
        (83, true, true),
    ];
    for (port, want6, want4) in cases {
        let got6 = c.run(&["tcp-get", &v6(&s6, port)]).0;
        let got4 = c.run(&["tcp-get", &v4(&s.ip, port)]).0;
        assert_eq!((got6, got4), (want6, want4), "port {port}: (IPv6, IPv4)");
        // The trace walks the same model and agrees with the kernel.
        for (src, dst, got) in [
            (v6(&c6, 40000), v6(&s6, port), got6),
            (v4(&c.ip, 40000), v4(&s.ip, port), got4),
        ] {
            let t = w
                .client()
                .trace(
                    &s.ep_id,
                    &json!({ "Direction": "In", "Protocol": "tcp", "Source": src, "Destination": dst }),
                )
                .expect("trace");
            assert_eq!(t["Verdict"] == "Allow", got, "trace of {src} -> {dst}: {t}");
        }
    }
    // The other families' packets of the host, not named by any rule, pass.
    assert!(Probe::run(w.host.path(), &["tcp-get", &v6(&s6, 80)]).0);
    // ICMPv6 and IPv6 from one side only: a trace with one side left out
    // takes the endpoint's IPv6 address; mixed families are refused.
    let t = w
        .client()
        .trace(
            &s.ep_id,
            &json!({ "Direction": "In", "Protocol": "icmpv6", "Source": c6 }),
        )
        .expect("trace");
    assert_eq!(t["Verdict"], "Allow", "{t}");
    assert!(c.run(&["ping", &s6]).0, "the kernel agrees on ICMPv6");
    // The CLI takes `[v6]:port` sides (exit status 0 allowed, 1 blocked).
    for (port, want) in [(80, 1), (83, 0)] {
        let (code, out, err) = w.daemon.run_cli(&[
            "trace",
            "--endpoint",
            &s.ep_id,
            "--direction",
            "in",
            "--proto",
            "tcp",
            "--src",
            &v6(&c6, 40000),
            "--dst",
            &v6(&s6, port),
        ]);
        assert_eq!(code, want, "trace to {port}: {out}{err}");
        assert!(out.contains(&s6), "{out}");
    }
    let err = w.client().trace(
        &s.ep_id,
        &json!({ "Direction": "In", "Protocol": "tcp", "Source": v4(&c.ip, 1), "Destination": v6(&s6, 80) }),
    );
    assert_eq!(code(err), 0x803B_001E);
}

fn stats(w: &World, c: &Container) -> Value {
    w.client().endpoint_stats(&c.ep_id).expect("endpoint stats")
}

/// Packets rule `id` counted.
fn counted(stats: &Value, id: &str) -> u64 {
    stats["Rules"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["Id"] == id))
        .and_then(|r| r["Packets"].as_u64())
        .unwrap_or_else(|| panic!("no rule {id}: {stats}"))
}

#[test]
fn counters_modify_and_kill9_cover_ipv6() {
    let Some(mut w) = World::dual_stack("counters_modify_and_kill9_cover_ipv6") else {
        return;
    };
    dual_network(&w, "dual");
    let s = w.container("dual", json!([open(80), deny_in()]));
    let c = w.container("dual", json!([]));
    let s6 = ip6(&w, &s);
    let _servers: Vec<Probe> = [80, 81].into_iter().map(|p| serve(&s, p)).collect();

    // Only a connection's first packet walks the ACLs: one count each.
    let before = stats(&w, &s);
    assert!(c.run(&["tcp-get", &v6(&s6, 80)]).0);
    let mid = stats(&w, &s);
    assert_eq!(
        counted(&mid, "open-80") - counted(&before, "open-80"),
        1,
        "an IPv6 SYN"
    );
    assert!(c.run(&["tcp-get", &v4(&s.ip, 80)]).0);
    assert!(!c.run(&["tcp-get", &v6(&s6, 81)]).0);
    let after = stats(&w, &s);
    assert_eq!(
        counted(&after, "open-80") - counted(&mid, "open-80"),
        1,
        "an IPv4 SYN"
    );
    assert!(
        counted(&after, "deny-in") > counted(&mid, "deny-in"),
        "the IPv6 SYNs to 81 (and their retries) count on deny-in"
    );

    // Modify: Add opens 81 on both families, Remove closes it again.
    let client = w.client();
    client
        .modify(Kind::Endpoints, &s.ep_id, &change("Add", json!([open(81)])))
        .expect("add");
    assert!(c.run(&["tcp-get", &v6(&s6, 81)]).0, "IPv6 81 after Add");
    assert!(c.run(&["tcp-get", &v4(&s.ip, 81)]).0, "IPv4 81 after Add");
    client
        .modify(
            Kind::Endpoints,
            &s.ep_id,
            &change("Remove", json!([open(81)])),
        )
        .expect("remove");
    assert!(!c.run(&["tcp-get", &v6(&s6, 81)]).0, "IPv6 81 after Remove");
    assert!(
        !c.run(&["tcp-get", &v4(&s.ip, 81)]).0,
        "IPv4 81 after Remove"
    );

    // kill -9: the IPv6 walk is still there, and after a restart that
    // finds the tables gone it is rebuilt.
    w.daemon.kill9_and_restart();
    assert!(c.run(&["tcp-get", &v6(&s6, 80)]).0, "IPv6 80 after kill -9");
    assert!(
        !c.run(&["tcp-get", &v6(&s6, 81)]).0,
        "IPv6 81 after kill -9"
    );
    w.daemon.kill9_and_restart_with(|| {
        let _ = w
            .host
            .output("nft", &["delete", "table", "inet", "hostnet"]);
    });
    assert!(
        w.nft_elements("inet", "set", "acl_endpoints6")
            .contains(&s6),
        "the IPv6 ACL endpoint is back"
    );
    assert!(
        c.run(&["tcp-get", &v6(&s6, 80)]).0,
        "IPv6 80 after a rebuild"
    );
    assert!(
        !c.run(&["tcp-get", &v6(&s6, 81)]).0,
        "IPv6 81 after a rebuild"
    );
}

#[test]
fn a_narrowing_update_cuts_live_ipv6_connections_it_blocks() {
    let Some(w) = World::dual_stack("a_narrowing_update_cuts_live_ipv6_connections_it_blocks")
    else {
        return;
    };
    dual_network(&w, "dual");
    let s = w.container("dual", json!([open(80), open(81), deny_in()]));
    let c = w.container("dual", json!([]));
    let s6 = ip6(&w, &s);
    let _e80 = s.serve(&["tcp-echo", &v6("::", 80)]);
    let _e81 = s.serve(&["tcp-echo", &v6("::", 81)]);
    let mut to80 = Session::open(&c.netns, &v6(&s6, 80));
    let mut to81 = Session::open(&c.netns, &v6(&s6, 81));
    let mut to81v4 = Session::open(&c.netns, &v4(&s.ip, 81));
    assert_eq!(to80.say("a"), "a");
    assert_eq!(to81.say("b"), "b");
    assert_eq!(to81v4.say("c"), "c");
    w.client()
        .modify(
            Kind::Endpoints,
            &s.ep_id,
            &change("Update", json!([open(80), deny_in()])),
        )
        .expect("narrowing update");
    assert_eq!(to81.say("d"), "", "the IPv6 connection to 81 is cut");
    assert_eq!(to81v4.say("e"), "", "the IPv4 connection to 81 is cut");
    assert_eq!(to80.say("f"), "f", "the IPv6 connection to 80 stays");
}
