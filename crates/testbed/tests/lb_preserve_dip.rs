//! EnablePreserveDip end to end (issue 5 item 3): backends see the VIP as
//! the destination of load balanced connections, from containers, the
//! host and the outside; see docs/load-balancers.md#preserve-dip.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hostnet_api::Kind;
use hostnet_testbed::{require_installed, wait_until, Probe, HOST, OUTSIDE};
use serde_json::{json, Value};

const VIP: &str = "10.96.0.10";
const PLAIN_VIP: &str = "10.96.0.11";
const PRESERVE_DIP: u32 = 8;
const LOCAL_ROUTED_VIP: u32 = 2;

fn lb(vip: &str, mappings: &[(u32, u16, u16, u32)], backends: &[String]) -> Value {
    let maps: Vec<Value> = mappings
        .iter()
        .map(|&(proto, port, target, flags)| {
            json!({ "Protocol": proto, "InternalPort": target, "ExternalPort": port, "Flags": flags })
        })
        .collect();
    json!({
        "HostComputeEndpoints": backends,
        "FrontendVIPs": [vip],
        "PortMappings": maps,
        "SchemaVersion": { "Major": 2, "Minor": 0 }
    })
}

/// `n` clients of `args` from `netns`; every answer.
fn ask(netns: &Path, args: &[&str], n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let (ok, said) = Probe::run(netns, args);
            assert!(ok, "{args:?} #{i} from {} failed: {said}", netns.display());
            said
        })
        .collect()
}

/// Every answer says the server saw `local` as its address.
fn all_local(said: &[String], local: &str, what: &str) {
    assert!(
        said.iter().all(|s| s.ends_with(&format!(" local {local}"))),
        "{what}: backends did not see {local}: {said:?}"
    );
}

/// The servers' lines since the last call, once `n` arrived in all: how
/// many each backend served.
fn served(servers: &[Probe], n: usize) -> Vec<usize> {
    let mut counts = vec![0; servers.len()];
    let arrived = wait_until(Duration::from_secs(5), || {
        for (c, s) in counts.iter_mut().zip(servers) {
            *c += s.drain().len();
        }
        counts.iter().sum::<usize>() >= n
    });
    assert!(arrived, "only {counts:?} of {n} arrived");
    counts
}

/// A PreserveDip LB on 10.96.0.16 over `backends`; its ID.
fn another_preserve_dip_lb(w: &World, backends: &[String]) -> String {
    let made = w
        .client()
        .create(
            Kind::LoadBalancers,
            &lb("10.96.0.16", &[(6, 80, 8080, PRESERVE_DIP)], backends),
        )
        .expect("another PreserveDip LB");
    id(&made)
}

fn accepts(netns: &Path, vip: &str) -> bool {
    hostnet_testbed::inspect::accepts_vip(netns, vip)
}

#[test]
fn preserve_dip_delivers_the_vip_to_backends_from_everywhere() {
    let Some(mut w) = World::new("preserve_dip_delivers_the_vip_to_backends_from_everywhere")
    else {
        return;
    };
    let backends: Vec<Container> = (0..2).map(|_| w.container("nat", json!([]))).collect();
    let ids: Vec<String> = backends.iter().map(|c| c.ep_id.clone()).collect();
    let tcp: Vec<Probe> = backends
        .iter()
        .map(|c| c.serve(&["tcp-whoami", "0.0.0.0:8080"]))
        .collect();
    let udp: Vec<Probe> = backends
        .iter()
        .map(|c| c.serve(&["udp-whoami", "0.0.0.0:5353"]))
        .collect();
    let flags = PRESERVE_DIP | LOCAL_ROUTED_VIP;
    let mut body = lb(VIP, &[(6, 80, 8080, flags), (17, 53, 5353, flags)], &ids);
    // UDP by source address (DistributionType 2), TCP per connection.
    body["PortMappings"][1]["DistributionType"] = json!(2);
    let pdip = w
        .client()
        .create(Kind::LoadBalancers, &body)
        .expect("PreserveDip LB");
    // The same backends behind a VIP without the flag.
    w.client()
        .create(
            Kind::LoadBalancers,
            &lb(PLAIN_VIP, &[(6, 80, 8080, LOCAL_ROUTED_VIP)], &ids),
        )
        .expect("plain LB");
    for b in &backends {
        assert!(accepts(&b.netns, VIP));
        assert!(!accepts(&b.netns, PLAIN_VIP));
    }

    let client = w.container("nat", json!([]));
    w.outside.ip(&["route", "add", "10.96.0.0/16", "via", HOST]);
    let vip_tcp = format!("{VIP}:80");
    let vip_udp = format!("{VIP}:53");
    let clients: [(&str, &Path); 3] = [
        ("a container", &client.netns),
        ("the host", w.host.path()),
        ("the outside", w.outside.path()),
    ];
    for (who, netns) in clients {
        let said = ask(netns, &["tcp-get", &vip_tcp], 16);
        all_local(&said, &format!("{VIP}:8080"), &format!("TCP from {who}"));
        let counts = served(&tcp, 16);
        assert!(counts.iter().all(|&c| c >= 2), "TCP from {who}: {counts:?}");
        let said = ask(netns, &["udp-get", &vip_udp], 6);
        all_local(&said, &format!("{VIP}:5353"), &format!("UDP from {who}"));
        let counts = served(&udp, 6);
        assert!(counts.contains(&6), "UDP by source from {who}: {counts:?}");
        // Without the flag: the backend's own address.
        let said = ask(netns, &["tcp-get", &format!("{PLAIN_VIP}:80")], 6);
        assert!(
            said.iter().all(|s| backends
                .iter()
                .any(|b| s.ends_with(&format!(" local {}:8080", b.ip)))),
            "plain VIP from {who}: {said:?}"
        );
        served(&tcp, 6);
    }

    // A restart reloads the tables with the same elements.
    w.daemon.kill9_and_restart();
    let said = ask(w.outside.path(), &["tcp-get", &vip_tcp], 4);
    all_local(&said, &format!("{VIP}:8080"), "after a restart");
    served(&tcp, 4);

    // The trace names the rewrite.
    let t = w
        .client()
        .trace(
            &client.ep_id,
            &json!({ "Direction": "Out", "Protocol": "tcp", "Destination": vip_tcp.clone() }),
        )
        .unwrap();
    let text = t["Text"].as_str().unwrap_or_default();
    assert!(
        text.contains("per connection delivered to the VIP (preserve DIP)"),
        "{text}"
    );

    // A second PreserveDip LB on the VIP keeps it on backend 0 while the
    // first moves to backend 1 only.
    let second = w
        .client()
        .create(
            Kind::LoadBalancers,
            &lb(VIP, &[(6, 81, 8080, flags)], &ids[..1]),
        )
        .expect("second LB");
    w.client()
        .modify(
            Kind::LoadBalancers,
            &id(&pdip),
            &lb(
                VIP,
                &[(6, 80, 8080, flags), (17, 53, 5353, flags)],
                &ids[1..],
            ),
        )
        .expect("modify");
    assert!(accepts(&backends[0].netns, VIP), "still needed");
    let said = ask(&client.netns, &["tcp-get", &format!("{VIP}:81")], 4);
    all_local(&said, &format!("{VIP}:8080"), "second LB");
    assert_eq!(served(&tcp, 4), [4, 0]);
    let said = ask(&client.netns, &["tcp-get", &vip_tcp], 4);
    all_local(&said, &format!("{VIP}:8080"), "modified LB");
    assert_eq!(served(&tcp, 4), [0, 4]);
    w.client()
        .delete(Kind::LoadBalancers, &id(&second))
        .expect("delete second");
    assert!(!accepts(&backends[0].netns, VIP), "no LB needs it");
    assert!(accepts(&backends[1].netns, VIP));

    // A DSR LB answering from the same VIP and port as a PreserveDip
    // backend would have its replies rewritten: refused.
    let mut dsr = lb(VIP, &[(6, 8080, 8080, 0)], &ids);
    dsr["Flags"] = json!(1);
    let got = code(w.client().create(Kind::LoadBalancers, &dsr));
    assert_eq!(got, 0x803B_0015, "DSR clashing with PreserveDip");

    // Another PreserveDip LB on another VIP with the same backend: its
    // delete leaves the backend's port hooked for the first.
    let other = another_preserve_dip_lb(&w, &ids[1..]);
    w.client()
        .delete(Kind::LoadBalancers, &other)
        .expect("delete other");
    let said = ask(&client.netns, &["tcp-get", &vip_tcp], 2);
    all_local(&said, &format!("{VIP}:8080"), "after another LB's delete");
    served(&tcp, 2);

    // A backend attached after the LB names it gets the VIP and its
    // connections at the attach, and loses the VIP at the detach.
    let c = w.client();
    let ns = c
        .create(
            Kind::Namespaces,
            &json!({ "SchemaVersion": { "Major": 2, "Minor": 0 } }),
        )
        .expect("namespace");
    let late = c
        .create(
            Kind::Endpoints,
            &json!({ "HostComputeNetwork": w.network("nat") }),
        )
        .expect("endpoint");
    let late_ns = std::path::PathBuf::from(ns["NetNsPath"].as_str().expect("NetNsPath"));
    let mut late_lb = lb("10.96.0.13", &[(6, 80, 8080, PRESERVE_DIP)], &[id(&late)]);
    c.create(Kind::LoadBalancers, &late_lb)
        .map(|made| late_lb = made)
        .expect("LB of a detached backend");
    c.attach_endpoint(&id(&ns), &id(&late)).expect("attach");
    assert!(accepts(&late_ns, "10.96.0.13"), "at the attach");
    let late_server = Probe::serve(&late_ns, &["tcp-whoami", "0.0.0.0:8080"]);
    let said = ask(&client.netns, &["tcp-get", "10.96.0.13:80"], 2);
    all_local(&said, "10.96.0.13:8080", "a backend attached late");
    served(std::slice::from_ref(&late_server), 2);
    c.detach_endpoint(&id(&ns), &id(&late)).expect("detach");
    assert!(!accepts(&late_ns, "10.96.0.13"), "after the detach");
    c.delete(Kind::LoadBalancers, &id(&late_lb))
        .expect("delete late LB");

    // The endpoint's delete takes the VIP off, and the LB's delete every
    // element.
    w.client()
        .delete(Kind::Endpoints, &ids[1])
        .expect("delete endpoint");
    assert!(!accepts(&backends[1].netns, VIP));
    w.client()
        .delete(Kind::LoadBalancers, &id(&pdip))
        .expect("delete");
    for (family, kind, name) in [
        ("inet", "map", "lb_pdip_vips4"),
        ("netdev hostnet_pdip", "map", "pdip_vips4"),
        ("netdev hostnet_pdip_replies", "map", "pdip_replies4"),
    ] {
        assert_eq!(
            w.elements(family, kind, name),
            Vec::<String>::new(),
            "{name}"
        );
    }
    for (table, chain) in [
        ("netdev hostnet_pdip", "pdip_to_backends"),
        ("netdev hostnet_pdip_replies", "pdip_from_backends"),
    ] {
        let hooked = w.nft_elements(table, "chain", chain);
        assert!(!hooked.contains("hnve"), "{chain}: {hooked}");
    }
}

/// `tcpdump -vv` on one interface, its text kept as it comes: with `-vv`
/// it checks every IP, TCP and UDP checksum it prints.
struct Tcpdump {
    child: Child,
    text: Arc<Mutex<String>>,
}

impl Tcpdump {
    fn start(netns: &Path, iface: &str, filter: &str) -> Tcpdump {
        let mut child = Probe::command(netns, "tcpdump")
            .args(["-i", iface, "-nn", "-vv", "-l", filter])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump (Debian package tcpdump)");
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        err.read_line(&mut line).expect("tcpdump stderr");
        assert!(line.contains("listening"), "tcpdump: {line}");
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let text = Arc::new(Mutex::new(String::new()));
        let kept = Arc::clone(&text);
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let mut t = kept.lock().expect("text");
                t.push_str(&line);
                t.push('\n');
            }
        });
        Tcpdump { child, text }
    }

    /// Whether `needle` shows within a few seconds.
    fn saw(&self, needle: &str) -> bool {
        wait_until(Duration::from_secs(5), || {
            self.text.lock().expect("text").contains(needle)
        })
    }

    /// Stop; everything it printed.
    fn stop(mut self) -> String {
        // SAFETY: signalling our own child, which then flushes and exits.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        // The reader ends at the pipe's end; wait for its last lines.
        wait_until(Duration::from_secs(2), || {
            Arc::strong_count(&self.text) == 1
        });
        let text = self.text.lock().expect("text").clone();
        text
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The host's end of the veth whose other end is `eth0` in `netns`.
fn host_end(w: &World, netns: &Path) -> String {
    let out = Probe::command(netns, "ip")
        .args(["-o", "link", "show", "eth0"])
        .output()
        .expect("ip link");
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let index = line
        .split_once("@if")
        .and_then(|(_, rest)| rest.split(':').next())
        .unwrap_or_else(|| panic!("no peer index in {line}"))
        .to_string();
    let out = w.host.output("ip", &["-o", "link", "show"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with(&format!("{index}: ")))
        .and_then(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .unwrap_or_else(|| panic!("no host link {index}"))
}

/// Every checksum tcpdump checked in `text` was right, and there were at
/// least `n`.
fn checksums_correct(text: &str, n: usize, what: &str) {
    let bad = ["incorrect", "bad udp cksum", "bad cksum"];
    let wrong: Vec<&str> = text
        .lines()
        .filter(|l| bad.iter().any(|b| l.contains(b)))
        .take(3)
        .collect();
    assert!(wrong.is_empty(), "{what}: wrong checksums: {wrong:?}");
    let right = text.matches("(correct)").count() + text.matches("udp sum ok").count();
    assert!(
        right >= n,
        "{what}: only {right} checksums checked:\n{text:.2000}"
    );
}

#[test]
fn preserve_dip_rewrites_keep_checksums_valid() {
    let test = "preserve_dip_rewrites_keep_checksums_valid";
    if !require_installed(test, &["/usr/bin/tcpdump"], "tcpdump") {
        return;
    }
    let Some(w) = World::new(test) else {
        return;
    };
    let backend = w.container("nat", json!([]));
    let sink = backend.serve(&["tcp-sink", "0.0.0.0:9000"]);
    let _udp = backend.serve(&["udp-whoami", "0.0.0.0:5353"]);
    let vip = "10.96.0.12";
    w.client()
        .create(
            Kind::LoadBalancers,
            &lb(
                vip,
                &[(6, 90, 9000, PRESERVE_DIP), (17, 53, 5353, PRESERVE_DIP)],
                std::slice::from_ref(&backend.ep_id),
            ),
        )
        .expect("LB");
    w.outside.ip(&["route", "add", "10.96.0.0/16", "via", HOST]);
    // Offloads off on every hop: each segment carries a full checksum,
    // which tcpdump checks and every receiving stack verifies in software
    // (a wrong one would be dropped and the transfer would stall).
    let host_veth = host_end(&w, &backend.netns);
    for (netns, iface) in [
        (w.outside.path(), "up0"),
        (w.host.path(), "up0"),
        (w.host.path(), host_veth.as_str()),
        (backend.netns.as_path(), "eth0"),
    ] {
        let (ok, said) = Probe::run(netns, &["checksum-offload", iface, "off"]);
        assert!(ok, "{iface}: {said}");
    }
    let into_backend = Tcpdump::start(&backend.netns, "eth0", &format!("host {vip}"));
    let at_outside = Tcpdump::start(w.outside.path(), "up0", &format!("host {vip}"));
    let (ok, said) = Probe::run(
        w.outside.path(),
        &["tcp-send", &format!("{vip}:90"), "4000000"],
    );
    assert!(ok && said.contains("sent 4000000"), "{said}");
    let got = sink.next_line().unwrap_or_default();
    assert!(got.starts_with("got 4000000 bytes"), "{got}");
    let (ok, said) = Probe::run(w.outside.path(), &["udp-get", &format!("{vip}:53")]);
    assert!(
        ok && said.ends_with(&format!(" local {vip}:5353")),
        "{said}"
    );
    let into_backend = into_backend.stop();
    let at_outside = at_outside.stop();
    // The backend's wire has the VIP as destination, the outside's as source.
    assert!(
        into_backend.contains(&format!("> {vip}.9000:")),
        "{into_backend:.2000}"
    );
    assert!(
        at_outside.contains(&format!("{vip}.90 > ")),
        "{at_outside:.2000}"
    );
    checksums_correct(&into_backend, 100, "into the backend");
    checksums_correct(&at_outside, 100, "back at the outside");
}

#[test]
fn preserve_dip_carries_sctp_both_ways() {
    let test = "preserve_dip_carries_sctp_both_ways";
    if !require_installed(test, &["/usr/bin/tcpdump"], "tcpdump") {
        return;
    }
    let Some(w) = World::new(test) else {
        return;
    };
    // The firewall defaults let only TCP, UDP, ICMP and IGMP into an
    // endpoint: SCTP needs an ACL that allows it.
    let allow_sctp = json!({ "Type": "ACL", "Settings": {
        "Id": "sctp", "Action": "Allow", "Direction": "In", "Priority": 100, "Protocols": "132", "RuleType": "Host" } });
    let backend = w.container("nat", json!([allow_sctp]));
    let ids = std::slice::from_ref(&backend.ep_id);
    let (vip, plain) = ("10.96.0.14", "10.96.0.15");
    let c = w.client();
    c.create(
        Kind::LoadBalancers,
        &lb(vip, &[(132, 80, 8080, PRESERVE_DIP)], ids),
    )
    .expect("SCTP PreserveDip LB");
    c.create(Kind::LoadBalancers, &lb(plain, &[(132, 80, 8080, 0)], ids))
        .expect("SCTP LB");
    w.outside.ip(&["route", "add", "10.96.0.0/16", "via", HOST]);
    let at_backend = Tcpdump::start(&backend.netns, "eth0", "sctp");
    let at_outside = Tcpdump::start(w.outside.path(), "up0", "sctp");
    // No SCTP sockets on this kernel: an INIT and its INIT ACK by hand.
    let run = |netns: &Path, args: &[&str]| {
        let (ok, said) = Probe::run(netns, args);
        assert!(ok, "{args:?}: {said}");
    };
    run(w.outside.path(), &["sctp-init", &format!("{vip}:80")]);
    assert!(
        at_backend.saw(&format!("{OUTSIDE}.5000 > {vip}.8080: sctp")),
        "the INIT did not reach the backend at the VIP"
    );
    // The backend answers from the VIP; the outside sees the frontend's
    // port, so conntrack matched the reply (un-DNAT).
    run(
        &backend.netns,
        &["sctp-init-ack", vip, &format!("{OUTSIDE}:5000")],
    );
    assert!(
        at_outside.saw(&format!("{vip}.80 > {OUTSIDE}.5000: sctp")),
        "the INIT ACK did not come back from the frontend"
    );
    // Without the flag: the backend's own address (from another port: the
    // same one would make the same reply tuple as the first association).
    run(
        w.outside.path(),
        &["sctp-init", &format!("{plain}:80"), "5001"],
    );
    assert!(
        at_backend.saw(&format!("{OUTSIDE}.5001 > {}.8080: sctp", backend.ip)),
        "the plain VIP's INIT did not reach the backend's address"
    );
    let seen = at_backend.stop();
    assert!(!seen.contains("bad"), "{seen}");
    at_outside.stop();
}
