//! ACLs on Overlay endpoints (issue 5 item 2; docs/drivers/overlay.md
//! "ACLs"): Kubernetes network policy on a Windows overlay cluster. The
//! world of overlay.rs: the same overlay network on two hosts, each told of
//! the other's containers as remote endpoints. A on host 1 has the ACLs;
//! A2 shares its subnet and host, B is in its subnet on host 2, C in the
//! other subnet on host 2. Everything is proved with packets: bridged on
//! one host, bridged across hosts over VXLAN, and routed across subnets.

use hostnet_api::Kind;
use hostnet_testbed::physical::{id, Container, Host};
use hostnet_testbed::{require_privileges, PhysicalNet, Probe, Session};
use serde_json::{json, Value};
use std::path::Path;

const NET: &str = "ov";
const VNI1: u32 = 4100;
const VNI2: u32 = 4101;
const A: &str = "10.0.1.10";
const A2: &str = "10.0.1.11";
const B: &str = "10.0.1.20";
const C: &str = "10.0.2.30";

fn overlay_network() -> Value {
    let subnet = |prefix: &str, vni: u32| {
        json!({"IpAddressPrefix": prefix,
               "Policies": [{"Type": "VSID", "Settings": {"IsolationId": vni}}]})
    };
    json!({
        "Name": NET, "Type": "Overlay",
        "Ipams": [{"Type": "Static", "Subnets": [
            subnet("10.0.1.0/24", VNI1), subnet("10.0.2.0/24", VNI2)]}],
        "SchemaVersion": {"Major": 2, "Minor": 0}
    })
}

fn acl(id: &str, action: &str, dir: &str, prio: u16, extra: Value) -> Value {
    let mut s = json!({ "Id": id, "Action": action, "Direction": dir, "Priority": prio });
    s.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({ "Type": "ACL", "Settings": s })
}

/// Allow `proto` (6 or 17) in to `port`.
fn open(proto: u8, port: u16) -> Value {
    acl(
        &format!("open-{proto}-{port}"),
        "Allow",
        "In",
        100,
        json!({ "Protocols": proto.to_string(), "LocalPorts": port.to_string() }),
    )
}

/// Allow TCP in to `port` (an echo server's, for sessions) and to
/// `port + 10` (a `tcp-serve` one, for single connections).
fn open_pair(port: u16) -> Value {
    acl(
        &format!("open-pair-{port}"),
        "Allow",
        "In",
        100,
        json!({ "Protocols": "6", "LocalPorts": format!("{port},{}", port + 10) }),
    )
}

/// Block everything in: the bottom of the ladder.
fn deny_in() -> Value {
    acl("deny-in", "Block", "In", 1000, json!({}))
}

fn change(request: &str, policies: Value) -> Value {
    json!({ "ResourceType": "Policy", "RequestType": request, "Settings": { "Policies": policies } })
}

/// Tell `host` about a container of another host (whose PA is `pa`).
fn remote(host: &Host, of: &Host, c: &Container, pa: &str) {
    let ep = of.client().get(Kind::Endpoints, &c.ep_id).unwrap();
    let body = json!({
        "HostComputeNetwork": host.network(NET),
        "Flags": 1,
        "IpConfigurations": [{"IpAddress": c.ip}],
        "MacAddress": ep["MacAddress"],
        "Policies": [{"Type": "ProviderAddress", "Settings": {"ProviderAddress": pa}}],
    });
    id(&host
        .client()
        .create(Kind::Endpoints, &body)
        .expect("create remote endpoint"));
}

struct World {
    phys: PhysicalNet,
    a: Container,
    a2: Container,
    b: Container,
    c: Container,
}

/// Both hosts with the network; A (with `a_policies`) and A2 on host 1,
/// B and C on host 2, each host told of the other's.
fn world(test: &str, a_policies: Value) -> Option<World> {
    if !require_privileges(test) {
        return None;
    }
    let mut phys = PhysicalNet::new("ao", 2);
    phys.start_daemons(&["--no-default-network"]);
    let (h1, h2) = (phys.host(0), phys.host(1));
    for h in [h1, h2] {
        h.client()
            .create(Kind::Networks, &overlay_network())
            .expect("create overlay network");
    }
    let at = |h: &Host, ip: &str, policies: Value| {
        h.container_with(
            NET,
            json!({"IpConfigurations": [{"IpAddress": ip}], "Policies": policies}),
        )
    };
    let a = at(h1, A, a_policies);
    let a2 = at(h1, A2, json!([]));
    let b = at(h2, B, json!([]));
    let c = at(h2, C, json!([]));
    let (pa1, pa2) = (h1.addr.clone(), h2.addr.clone());
    remote(h1, h2, &b, &pa2);
    remote(h1, h2, &c, &pa2);
    remote(h2, h1, &a, &pa1);
    remote(h2, h1, &a2, &pa1);
    Some(World { phys, a, a2, b, c })
}

fn reaches(from: &Container, to: &str) -> bool {
    Probe::run(&from.netns, &["tcp-get", to]).0
}

/// Whether a new session from `from` to echo server `to` echoes.
fn echoes(from: &Container, to: &str) -> bool {
    Session::open(&from.netns, to).say("x") == "x"
}

fn ping(from: &Container, to: &str) -> bool {
    Probe::run(&from.netns, &["ping", to]).0
}

/// A command run inside the namespace at `ns`.
fn ns_output(ns: &Path, program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .arg(program)
        .args(args)
        .output()
        .expect("nsenter");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The router's conntrack table.
fn conntrack(router: &Path) -> String {
    ns_output(router, "cat", &["/proc/net/nf_conntrack"])
}

/// Whether VNI bridge `vni` of the router hands IPv4 frames to the IP hooks.
fn filtered(router: &Path, vni: u32) -> bool {
    let link = ns_output(
        router,
        "ip",
        &["-d", "link", "show", &format!("hnvb{vni:06x}")],
    );
    assert!(link.contains("nf_call_iptables"), "{link}");
    link.contains("nf_call_iptables 1")
}

/// The trace's verdict for TCP from `src` into endpoint `ep` at `dst`.
fn traced(host: &Host, ep: &str, src: &str, dst: &str) -> bool {
    let t = host
        .client()
        .trace(
            ep,
            &json!({ "Direction": "In", "Protocol": "tcp", "Source": src, "Destination": dst }),
        )
        .expect("trace");
    match t["Verdict"].as_str() {
        Some("Allow") => true,
        Some("Block") => false,
        _ => panic!("{t}"),
    }
}

#[test]
fn a_default_deny_ladder_judges_bridged_vxlan_and_routed_traffic() {
    let test = "a_default_deny_ladder_judges_bridged_vxlan_and_routed_traffic";
    let Some(w) = world(test, json!([open(6, 80), deny_in()])) else {
        return;
    };
    let (h1, h2) = (w.phys.host(0), w.phys.host(1));
    let (r1, r2) = (h1.overlay_router(), h2.overlay_router());
    let _web = w.a.serve(&["tcp-serve", "0.0.0.0:80"]);
    let _alt = w.a.serve(&["tcp-serve", "0.0.0.0:81"]);
    // From A's host and subnet (bridged), across hosts in its subnet
    // (VXLAN, bridged on both hosts), and from the other subnet (routed by
    // host 2's router, then VXLAN): 80 is open, 81 and ping are not.
    for from in [&w.a2, &w.b, &w.c] {
        assert!(reaches(from, &format!("{A}:80")), "{} -> A:80", from.ip);
        assert!(!reaches(from, &format!("{A}:81")), "{} -> A:81", from.ip);
        assert!(!ping(from, A), "{} pinged A through its deny", from.ip);
        // The trace says what the kernel did.
        assert!(traced(
            h1,
            &w.a.ep_id,
            &format!("{}:40000", from.ip),
            &format!("{A}:80")
        ));
        assert!(!traced(
            h1,
            &w.a.ep_id,
            &format!("{}:40000", from.ip),
            &format!("{A}:81")
        ));
    }
    // Replies of A's own connections come back through the deny: ping and
    // TCP, to its subnet on its host, across hosts, and across subnets.
    let _c_web = w.c.serve(&["tcp-serve", "0.0.0.0:8080"]);
    let _b_web = w.b.serve(&["tcp-serve", "0.0.0.0:8080"]);
    for to in [A2, B, C] {
        assert!(ping(&w.a, to), "A pings {to}");
    }
    assert!(reaches(&w.a, &format!("{B}:8080")), "A -> B:8080");
    assert!(reaches(&w.a, &format!("{C}:8080")), "A -> C:8080");

    // Only A's subnet on A's host hands bridged frames to the IP hooks.
    assert!(filtered(&r1, VNI1));
    assert!(!filtered(&r1, VNI2));
    assert!(!filtered(&r2, VNI1) && !filtered(&r2, VNI2));
    // Paths without ACLs pay nothing new: no conntrack entry for them, on
    // A's own bridge (A2 <-> B) or anywhere on host 2 (B, C).
    assert!(ping(&w.a2, B) && reaches(&w.b, &format!("{C}:8080")));
    assert!(ping(&w.a2, C), "A2 -> C, routed by host 1's router");
    let t1 = conntrack(&r1);
    assert!(
        t1.contains(&format!("src={A} ")),
        "A's flows are tracked: {t1}"
    );
    for line in t1.lines() {
        assert!(line.contains(&format!("={A} ")), "only A's flows: {line}");
    }
    let t2 = conntrack(&r2);
    assert!(t2.trim().is_empty(), "host 2's router tracks nothing: {t2}");

    // The bridge's filtering is what judges bridged frames: without it A2
    // and B get through to 81 (checked), with it again they do not.
    let set = |on: &str| {
        let bridge = format!("hnvb{VNI1:06x}");
        let args = [
            "link",
            "set",
            &bridge,
            "type",
            "bridge",
            "nf_call_iptables",
            on,
        ];
        ns_output(&r1, "ip", &args);
    };
    set("0");
    assert!(reaches(&w.a2, &format!("{A}:81")), "bridged, unjudged");
    assert!(reaches(&w.b, &format!("{A}:81")), "over VXLAN, unjudged");
    set("1");
    assert!(!reaches(&w.a2, &format!("{A}:81")));
    assert!(!reaches(&w.b, &format!("{A}:81")));
}

/// `(packets, bytes)` of rule `id` in an endpoint's stats.
fn rule_count(host: &Host, c: &Container, id: &str) -> (u64, u64) {
    let stats = host.client().endpoint_stats(&c.ep_id).expect("stats");
    let r = stats["Rules"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["Id"] == id))
        .unwrap_or_else(|| panic!("no rule {id}: {stats}"));
    (r["Packets"].as_u64().unwrap(), r["Bytes"].as_u64().unwrap())
}

fn dropped(host: &Host, c: &Container) -> u64 {
    let stats = host.client().endpoint_stats(&c.ep_id).expect("stats");
    stats["DroppedPacketsIncoming"].as_u64().unwrap()
}

fn udp_send(from: &Container, to: &str, count: usize) {
    let (ok, said) = Probe::run(&from.netns, &["udp-send", to, &count.to_string(), "100"]);
    assert!(ok, "udp-send {to}: {said}");
}

#[test]
fn modify_narrows_and_cuts_counters_count_and_kill9_keeps_it_all() {
    let test = "modify_narrows_and_cuts_counters_count_and_kill9_keeps_it_all";
    let block_udp = acl(
        "block-udp-6000",
        "Block",
        "In",
        100,
        json!({ "Protocols": "17", "LocalPorts": "6000" }),
    );
    let policies = json!([
        open_pair(80),
        open_pair(81),
        open(17, 5000),
        block_udp,
        deny_in()
    ]);
    let Some(mut w) = world(test, policies.clone()) else {
        return;
    };
    let h1 = w.phys.host(0);
    let _e80 = w.a.serve(&["tcp-echo", "0.0.0.0:80"]);
    let _e81 = w.a.serve(&["tcp-echo", "0.0.0.0:81"]);
    let _s82 = w.a.serve(&["tcp-serve", "0.0.0.0:82"]);
    let _s90 = w.a.serve(&["tcp-serve", "0.0.0.0:90"]);
    let _s91 = w.a.serve(&["tcp-serve", "0.0.0.0:91"]);
    let sink = w.a.serve(&["udp-sink", "0.0.0.0:5000"]);

    // Counters move by exactly the packets sent: each datagram is a new
    // flow (its own source port) the walk judges, from across hosts. A
    // speaks first, so its bridge knows its MAC: a frame the bridge floods
    // is judged (and counted) once per port it floods to.
    assert!(ping(&w.a, B) && ping(&w.a, A2));
    udp_send(&w.b, &format!("{A}:5000"), 1);
    assert!(sink.next_line().is_some(), "warm-up datagram");
    let (allow0, block0, drop0) = (
        rule_count(h1, &w.a, "open-17-5000"),
        rule_count(h1, &w.a, "block-udp-6000"),
        dropped(h1, &w.a),
    );
    udp_send(&w.b, &format!("{A}:5000"), 20);
    udp_send(&w.a2, &format!("{A}:6000"), 7);
    for i in 0..20 {
        assert!(sink.next_line().is_some(), "datagram {i} lost");
    }
    let (allow1, block1) = (
        rule_count(h1, &w.a, "open-17-5000"),
        rule_count(h1, &w.a, "block-udp-6000"),
    );
    assert_eq!(
        (allow1.0 - allow0.0, allow1.1 - allow0.1),
        (20, 20 * 128),
        "the allow counted the 20 datagrams"
    );
    assert_eq!(
        (block1.0 - block0.0, block1.1 - block0.1),
        (7, 7 * 128),
        "the block counted the 7"
    );
    assert_eq!(dropped(h1, &w.a) - drop0, 7, "A's drops: the 7 blocked");
    // `hostnet endpoint inspect` shows the same, from the router.
    let out = std::process::Command::new(hostnet_testbed::workspace_binary("hostnet"))
        .arg("--socket")
        .arg(&h1.daemon().socket)
        .args(["endpoint", "inspect", &w.a.ep_id, "--format", "json"])
        .env_remove("HOSTNET_SOCKET")
        .output()
        .expect("run hostnet");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let rule = |stats: &Value, id: &str| {
        stats["Rules"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["Id"] == id))
            .map(|r| (r["Packets"].as_u64(), r["Bytes"].as_u64()))
    };
    let shown = &shown[0]["Stats"];
    assert_eq!(
        rule(shown, "open-17-5000"),
        Some((Some(allow1.0), Some(allow1.1))),
        "{shown}"
    );
    assert_eq!(
        rule(shown, "block-udp-6000"),
        Some((Some(block1.0), Some(block1.1))),
        "{shown}"
    );

    // Live sessions from across hosts (bridged over VXLAN) and from the
    // other subnet (routed), to 80 and 81.
    let mut b80 = Session::open(&w.b.netns, &format!("{A}:80"));
    let mut b81 = Session::open(&w.b.netns, &format!("{A}:81"));
    let mut c81 = Session::open(&w.c.netns, &format!("{A}:81"));
    assert_eq!(b80.say("a"), "a");
    assert_eq!(b81.say("b"), "b");
    assert_eq!(c81.say("c"), "c");
    let c = h1.client();
    // Add opens 82, Remove closes it; neither touches the sessions.
    c.modify(
        Kind::Endpoints,
        &w.a.ep_id,
        &change("Add", json!([open(6, 82)])),
    )
    .expect("add");
    assert!(reaches(&w.a2, &format!("{A}:82")), "Add opens 82");
    c.modify(
        Kind::Endpoints,
        &w.a.ep_id,
        &change("Remove", json!([open(6, 82)])),
    )
    .expect("remove");
    assert!(!reaches(&w.a2, &format!("{A}:82")), "Remove closes 82");
    assert_eq!(b81.say("d"), "d", "an unrelated change keeps connections");

    // A narrowing Update cuts the sessions to 81 and keeps the one to 80.
    c.modify(
        Kind::Endpoints,
        &w.a.ep_id,
        &change("Update", json!([open_pair(80), deny_in()])),
    )
    .expect("narrowing update");
    assert_eq!(b81.say("e"), "", "B's session to 81 is cut");
    assert_eq!(c81.say("f"), "", "C's session to 81 is cut");
    assert_eq!(b80.say("g"), "g", "the session to 80 stays");
    assert!(!reaches(&w.b, &format!("{A}:91")));

    // kill -9 and restart: the ACLs are programmed again in the same
    // transaction as the router's tables, the session carries on.
    w.phys.hosts[0].daemon_mut().kill9_and_restart();
    let h1 = w.phys.host(0);
    assert_eq!(b80.say("h"), "h", "the session to 80 survives the restart");
    assert!(echoes(&w.a2, &format!("{A}:80")));
    assert!(reaches(&w.a2, &format!("{A}:90")));
    assert!(!reaches(&w.a2, &format!("{A}:91")), "81 and 91 stay closed");
    assert!(!ping(&w.b, A), "the deny stays");
    let r1 = h1.overlay_router();
    assert!(filtered(&r1, VNI1), "A's bridge still filtered");

    // Update with no ACLs: the defaults again (TCP in allowed, GRE not),
    // and A's subnet stops paying for the IP hooks.
    h1.client()
        .modify(Kind::Endpoints, &w.a.ep_id, &change("Update", json!([])))
        .expect("update to none");
    assert!(echoes(&w.b, &format!("{A}:81")));
    assert!(ping(&w.b, A));
    assert!(!filtered(&r1, VNI1), "no ACL endpoint left on VNI {VNI1}");
    let listen = w.a.serve(&["raw-listen", "47"]);
    assert!(Probe::run(&w.a2.netns, &["raw-send", "47", A]).0);
    assert!(w.a.run(&["raw-send", "47", "127.0.0.1"]).0);
    assert_eq!(
        listen.next_line().as_deref(),
        Some("got 127.0.0.1"),
        "A's port took the defaults back: GRE from A2 dropped"
    );
    // New flows are no longer tracked in the router (a SYN to a closed
    // port would leave an entry for seconds).
    assert!(reaches(&w.a2, &format!("{A}:82")));
    assert!(!reaches(&w.a2, &format!("{A}:83")));
    let t = conntrack(&r1);
    assert!(
        !t.contains("dport=83"),
        "a flow of A2 -> A was tracked: {t}"
    );
}

#[test]
fn network_acls_judge_overlay_endpoints_and_remote_endpoints_are_not_walked() {
    let test = "network_acls_judge_overlay_endpoints_and_remote_endpoints_are_not_walked";
    let Some(w) = world(test, json!([])) else {
        return;
    };
    let h1 = w.phys.host(0);
    let _a = w.a.serve(&["tcp-serve", "0.0.0.0:7000"]);
    let _a2 = w.a2.serve(&["tcp-serve", "0.0.0.0:7000"]);
    assert!(reaches(&w.b, &format!("{A}:7000")));
    let block = json!([{ "Type": "NetworkACL", "Settings": {
        "Id": "no-7000", "Action": "Block", "Direction": "In", "Priority": 50,
        "Protocols": "6", "LocalPorts": "7000" } }]);
    h1.client()
        .modify(
            Kind::Networks,
            &h1.network(NET),
            &change("Add", block.clone()),
        )
        .expect("add a NetworkACL");
    // Every local endpoint of the network is judged, from anywhere.
    for to in [A, A2] {
        assert!(!reaches(&w.b, &format!("{to}:7000")), "B -> {to}:7000");
        assert!(!reaches(&w.c, &format!("{to}:7000")), "C -> {to}:7000");
    }
    assert!(!reaches(&w.a2, &format!("{A}:7000")), "A2 -> A:7000");
    // Remote endpoints are their own hosts' to judge: B's address is not
    // among host 1's ACL endpoints, so A reaches B as before.
    let _b = w.b.serve(&["tcp-serve", "0.0.0.0:7000"]);
    assert!(
        reaches(&w.a, &format!("{B}:7000")),
        "A -> B:7000 (B is remote here)"
    );
    let set = ns_output(
        &h1.overlay_router(),
        "nft",
        &["list", "set", "inet", "hostnet", "acl_endpoints4"],
    );
    assert!(
        set.contains(A) && set.contains(A2) && !set.contains(B),
        "{set}"
    );
    h1.client()
        .modify(Kind::Networks, &h1.network(NET), &change("Remove", block))
        .expect("remove it");
    assert!(reaches(&w.b, &format!("{A}:7000")));
    assert!(reaches(&w.a2, &format!("{A}:7000")));
}
