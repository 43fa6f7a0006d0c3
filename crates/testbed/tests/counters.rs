//! Counters (issue 5 item 7) with real packets: per-ACL-rule packet and
//! byte counts and an endpoint's rx/tx/drop counts move by exactly what
//! was sent, on the API (`GET /v2/endpoints/{id}/stats`) and in
//! `hostnet endpoint inspect`.
//!
//! Every datagram is sent from a socket of its own (`hostnet-probe
//! udp-send`), so each is a new flow that the stateful ACL walk judges;
//! the receiver (`udp-sink`) never answers. Byte counts: the ACL rules
//! count IP packets (20 + 8 + payload), the link counts Ethernet frames
//! (14 more). Link counts may also carry a few ARP frames, so they are
//! checked within a small margin; rule and drop counts exactly.

use std::process::Command;

use hostnet_api::{ApiError, Client, Kind};
use hostnet_testbed::physical::{sysctl, Container};
use hostnet_testbed::{require_privileges, workspace_binary, PhysicalNet, Probe};
use serde_json::{json, Value};

fn acl(id: &str, action: &str, proto: &str, port: u16) -> Value {
    json!({ "Type": "ACL", "Settings": { "Id": id, "Action": action, "Direction": "In",
        "Priority": 100, "Protocols": proto, "LocalPorts": port.to_string() } })
}

/// [`acl`] from one peer only: the shape compiled into a hash map rather
/// than an interval map, whose elements count as well.
fn acl_from(peer: &str, id: &str, action: &str, proto: &str, port: u16) -> Value {
    let mut a = acl(id, action, proto, port);
    a["Settings"]["RemoteAddresses"] = json!(peer);
    a
}

fn stats(client: &Client, c: &Container) -> Value {
    client.endpoint_stats(&c.ep_id).expect("endpoint stats")
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing: {v}"))
}

fn rule<'a>(stats: &'a Value, id: &str) -> &'a Value {
    stats["Rules"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["Id"] == id))
        .unwrap_or_else(|| panic!("no rule {id}: {stats}"))
}

/// `(packets, bytes)` of rule `id` between two readings.
fn rule_delta(before: &Value, after: &Value, id: &str) -> (u64, u64) {
    let (b, a) = (rule(before, id), rule(after, id));
    (
        n(a, "Packets") - n(b, "Packets"),
        n(a, "Bytes") - n(b, "Bytes"),
    )
}

fn delta(before: &Value, after: &Value, key: &str) -> u64 {
    n(after, key) - n(before, key)
}

/// `udp-send` from `ns`: `count` datagrams of `size` bytes.
fn udp_send(ns: &std::path::Path, to: &str, count: usize, size: usize) {
    let (ok, said) = Probe::run(ns, &["udp-send", to, &count.to_string(), &size.to_string()]);
    assert!(ok, "udp-send {to}: {said}");
}

/// `count` GRE packets (13 bytes of payload each) from `ns` to `to`;
/// the sender may see them refused.
fn gre(ns: &std::path::Path, to: &str, count: usize) {
    for _ in 0..count {
        Probe::run(ns, &["raw-send", "47", to]);
    }
}

fn world(test: &str) -> Option<PhysicalNet> {
    if !require_privileges(test) {
        return None;
    }
    let mut phys = PhysicalNet::new("ctr", 1);
    phys.start_daemons(&["--default-subnet", "10.88.0.0/16"]);
    Some(phys)
}

#[test]
fn acl_rule_and_endpoint_counters_move_by_the_packets_sent() {
    let Some(phys) = world("acl_rule_and_endpoint_counters_move_by_the_packets_sent") else {
        return;
    };
    let h1 = phys.host(0);
    let client = h1.client();
    let s = h1.container(
        "nat",
        json!([
            acl_from("10.88.0.1", "allow-5000", "Allow", "17", 5000),
            acl("block-6000", "Block", "17", 6000)
        ]),
    );
    let sink = s.serve(&["udp-sink", "0.0.0.0:5000"]);
    let host_sink = Probe::serve(h1.path(), &["udp-sink", "0.0.0.0:7777"]);
    // Warm up (ARP both ways) before the first reading.
    udp_send(h1.path(), &format!("{}:5000", s.ip), 1, 100);
    assert!(sink
        .next_line()
        .is_some_and(|l| l.starts_with("got 100 bytes")));
    udp_send(&s.netns, "10.88.0.1:7777", 1, 50);
    assert!(host_sink.next_line().is_some());

    let before = stats(&client, &s);
    let (allowed, blocked, gres, sent, size) = (20, 7, 3, 5, 100);
    udp_send(h1.path(), &format!("{}:5000", s.ip), allowed, size);
    udp_send(h1.path(), &format!("{}:6000", s.ip), blocked, size);
    gre(h1.path(), &s.ip, gres);
    udp_send(&s.netns, "10.88.0.1:7777", sent, 50);
    for i in 0..allowed {
        let line = sink
            .next_line()
            .unwrap_or_else(|| panic!("datagram {i} lost"));
        assert!(line.starts_with("got 100 bytes from 10.88.0.1:"), "{line}");
    }
    for _ in 0..sent {
        assert!(host_sink.next_line().is_some(), "the host got what s sent");
    }
    let after = stats(&client, &s);

    let ip = |payload: u64| 28 + payload;
    let (allowed, blocked, gres, sent) = (allowed as u64, blocked as u64, gres as u64, sent as u64);
    assert_eq!(
        rule_delta(&before, &after, "allow-5000"),
        (allowed, allowed * ip(100)),
        "{after}"
    );
    assert_eq!(
        rule_delta(&before, &after, "block-6000"),
        (blocked, blocked * ip(100)),
        "{after}"
    );
    let r = rule(&after, "block-6000");
    assert_eq!(
        (&r["Layer"], &r["Direction"], &r["Action"], &r["Group"]),
        (
            &json!("acl-switch"),
            &json!("In"),
            &json!("Block"),
            &json!("acl")
        )
    );
    assert_eq!(
        delta(&before, &after, "DroppedPacketsIncoming"),
        blocked + gres,
        "the block rule's packets and the GRE the defaults dropped: {after}"
    );
    assert_eq!(delta(&before, &after, "DroppedPacketsOutgoing"), 0);
    let rx = delta(&before, &after, "PacketsReceived");
    assert!(
        (allowed..=allowed + 4).contains(&rx),
        "received {rx}: {after}"
    );
    assert!(delta(&before, &after, "BytesReceived") >= allowed * (14 + ip(100)));
    let tx = delta(&before, &after, "PacketsSent");
    assert!((sent..=sent + 4).contains(&tx), "sent {tx}: {after}");
    assert!(delta(&before, &after, "BytesSent") >= sent * (14 + ip(50)));
    assert_eq!(after["EndpointId"], json!(s.ep_id));
    assert_eq!(after["InstanceId"], json!(s.ns_id));

    // Another endpoint's ACLs come and go in the same maps: s's counters
    // stay as they were.
    let other = h1.container("nat", json!([acl("other", "Block", "6", 22)]));
    client
        .delete(Kind::Endpoints, &other.ep_id)
        .expect("delete other");
    let later = stats(&client, &s);
    for id in ["allow-5000", "block-6000"] {
        assert_eq!(rule_delta(&after, &later, id), (0, 0), "{id}: {later}");
    }

    // The CLI shows the same counters.
    let socket = &h1.daemon().socket;
    let cli = |args: &[&str]| {
        let out = Command::new(workspace_binary("hostnet"))
            .arg("--socket")
            .arg(socket)
            .args(args)
            .env_remove("HOSTNET_SOCKET")
            .output()
            .expect("run hostnet");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = cli(&["endpoint", "inspect", &s.ep_id, "--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let shown: Value = serde_json::from_str(&out).expect("JSON");
    let shown = &shown[0]["Stats"];
    for id in ["allow-5000", "block-6000"] {
        assert_eq!(rule(shown, id), rule(&later, id), "{out}");
    }
    assert_eq!(
        shown["DroppedPacketsIncoming"],
        later["DroppedPacketsIncoming"]
    );
    let (code, out, err) = cli(&["endpoint", "inspect", &s.ep_id, "--format", "table"]);
    assert_eq!(code, Some(0), "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("allow-5000"))
        .unwrap_or_else(|| panic!("no allow-5000 row: {out}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "allow-5000",
            "acl-switch",
            "In",
            "Allow",
            "100",
            &n(rule(&later, "allow-5000"), "Packets").to_string(),
            &n(rule(&later, "allow-5000"), "Bytes").to_string(),
        ],
        "{out}"
    );
    let dropped = format!(
        "{} incoming, 0 outgoing",
        n(&later, "DroppedPacketsIncoming")
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("Dropped:") && l.ends_with(&dropped)),
        "{out}"
    );

    // Unknown endpoints: a 404 ErrorRecord; a malformed ID: 400.
    match client.endpoint_stats("0A0B0C0D-0000-4000-8000-000000000001") {
        Err(ApiError::Hcn { status, record }) => {
            assert_eq!(
                (status, record.error_code),
                (404, 0x8007_0490),
                "{record:?}"
            );
            assert!(record.error.contains("0A0B0C0D"), "{record:?}");
        }
        other => panic!("expected a 404 ErrorRecord, got {other:?}"),
    }
    match client.endpoint_stats("not-a-guid") {
        Err(ApiError::Hcn { status, record }) => {
            assert_eq!(
                (status, record.error_code),
                (400, 0x803B_0019),
                "{record:?}"
            );
        }
        other => panic!("expected a 400 ErrorRecord, got {other:?}"),
    }
    let (code, _, err) = cli(&["endpoint", "inspect", "no-such-endpoint"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("0x80070490"), "{err}");
}

#[test]
fn firewall_default_drops_count_against_the_endpoint_they_were_for() {
    let Some(phys) = world("firewall_default_drops_count_against_the_endpoint_they_were_for")
    else {
        return;
    };
    let h1 = phys.host(0);
    let client = h1.client();
    let t = h1.container("nat", json!([]));
    let c = h1.container("nat", json!([]));
    let sink = t.serve(&["udp-sink", "0.0.0.0:5000"]);
    // Warm up ARP between the siblings and from the host.
    udp_send(&c.netns, &format!("{}:5000", t.ip), 1, 10);
    udp_send(h1.path(), &format!("{}:5000", t.ip), 1, 10);
    assert!(sink.next_line().is_some() && sink.next_line().is_some());
    let gres = 4;

    // Bridged from a sibling: judged on t's port by the netdev chain, or
    // with br_netfilter's bridge-nf-call-iptables=1 by the inet table
    // first. Either way once, against t.
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
        let before = (stats(&client, &t), stats(&client, &c));
        gre(&c.netns, &t.ip, gres);
        let after = (stats(&client, &t), stats(&client, &c));
        assert_eq!(
            delta(&before.0, &after.0, "DroppedPacketsIncoming"),
            gres as u64,
            "bridge-nf-call-iptables={on:?}: {}",
            after.0
        );
        assert_eq!(delta(&before.1, &after.1, "DroppedPacketsIncoming"), 0);
        assert!(delta(&before.1, &after.1, "PacketsSent") >= gres as u64);
        assert_eq!(after.0["Rules"], json!([]), "no ACLs, no rules");
    }

    // Sent by the host: dropped on the way into the NAT network.
    let before = stats(&client, &t);
    gre(h1.path(), &t.ip, gres);
    let after = stats(&client, &t);
    assert_eq!(
        delta(&before, &after, "DroppedPacketsIncoming"),
        gres as u64,
        "{after}"
    );
    // UDP passes the defaults: nothing more dropped, and it arrives.
    udp_send(h1.path(), &format!("{}:5000", t.ip), 3, 10);
    for _ in 0..3 {
        assert!(sink.next_line().is_some());
    }
    let last = stats(&client, &t);
    assert_eq!(delta(&after, &last, "DroppedPacketsIncoming"), 0, "{last}");
    assert!(delta(&after, &last, "PacketsReceived") >= 3);
}

/// A restart of hostnetd (kill -9) keeps the kernel's tables of this
/// version and changes only what differs from the store, so the ACL
/// rules' counters carry on instead of starting at zero, and count what
/// follows.
#[test]
fn acl_rule_counters_survive_a_daemon_restart() {
    let Some(mut phys) = world("acl_rule_counters_survive_a_daemon_restart") else {
        return;
    };
    let s = phys.host(0).container(
        "nat",
        json!([
            acl_from("10.88.0.1", "allow-5000", "Allow", "17", 5000),
            acl("block-6000", "Block", "17", 6000)
        ]),
    );
    let sink = s.serve(&["udp-sink", "0.0.0.0:5000"]);
    let to = |port: u16| format!("{}:{port}", s.ip);
    let receive = |count: usize| {
        for i in 0..count {
            let line = sink
                .next_line()
                .unwrap_or_else(|| panic!("datagram {i} lost"));
            assert!(line.starts_with("got 100 bytes"), "{line}");
        }
    };
    let host = phys.host(0).path().to_path_buf();
    udp_send(&host, &to(5000), 6, 100);
    udp_send(&host, &to(6000), 2, 100);
    receive(6);
    let before = stats(&phys.host(0).client(), &s);
    let allowed = n(rule(&before, "allow-5000"), "Packets");
    assert!(allowed >= 6, "{before}");

    phys.hosts[0].daemon_mut().kill9_and_restart();
    let after = stats(&phys.host(0).client(), &s);
    for id in ["allow-5000", "block-6000"] {
        assert_eq!(rule(&after, id), rule(&before, id), "{id}: {after}");
    }

    // The rules still judge, and count on from where they were.
    udp_send(&host, &to(5000), 4, 100);
    udp_send(&host, &to(6000), 3, 100);
    receive(4);
    let later = stats(&phys.host(0).client(), &s);
    assert_eq!(rule_delta(&after, &later, "allow-5000"), (4, 4 * 128));
    assert_eq!(rule_delta(&after, &later, "block-6000"), (3, 3 * 128));
    assert_eq!(n(rule(&later, "allow-5000"), "Packets"), allowed + 4);
}
