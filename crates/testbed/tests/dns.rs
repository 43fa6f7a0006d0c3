//! The gateway DNS proxy with real queries (tier 2): two dnsmasq upstreams
//! in the outside namespace serve the zone `test.`; hostnetd reads them
//! from a resolv.conf of the test's own; containers ask their gateway.
//!
//! ```text
//!  outside: dnsmasq 198.51.100.1:53, dnsmasq 203.0.113.1:53
//!     | up0
//!  host: hostnetd (--resolv-conf naming both), proxy on 10.88.0.1:53
//!     | hnbr...
//!  containers 10.88.0.x (and 10.77.0.x on a second network)
//! ```

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use hostnet_api::Kind;
use hostnet_testbed::{
    require_privileges, workspace_binary, Container, Daemon, Netns, Uplink, UpstreamDns,
};
use serde_json::{json, Value};

const GATEWAY: &str = "10.88.0.1";
const BIG: usize = 100;

struct DnsWorld {
    daemon: Daemon,
    upstreams: Vec<UpstreamDns>,
    host: Netns,
    _outside: Netns,
    _resolv: ResolvDir,
}

/// The directory of the daemon's resolv.conf, removed on drop: made
/// before the daemon starts, so a daemon that fails to start (a panic)
/// leaves nothing behind either.
struct ResolvDir(std::path::PathBuf);

impl Drop for ResolvDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The zone both upstreams serve.
fn zone() -> Vec<(String, String)> {
    let mut hosts = vec![("192.0.2.80".to_string(), "www.test".to_string())];
    for i in 0..BIG {
        hosts.push((
            format!("10.1.{}.{}", i / 200, i % 200 + 1),
            "big.test".into(),
        ));
    }
    for i in 0..20 {
        hosts.push((format!("192.0.2.{}", 100 + i), format!("n{i}.test")));
    }
    hosts
}

impl DnsWorld {
    fn new(test: &str) -> Option<DnsWorld> {
        if !require_privileges(test) {
            return None;
        }
        let Uplink { host, outside } = Uplink::new("dns");
        let a = UpstreamDns::start(test, &outside, OUTSIDE, &zone(), 300)?;
        let b = UpstreamDns::start(test, &outside, INTERNET, &zone(), 300)?;
        let dir = ResolvDir(std::env::temp_dir().join(hostnet_testbed::unique("resolv")));
        std::fs::create_dir_all(&dir.0).unwrap();
        let resolv = dir.0.join("resolv.conf");
        std::fs::write(
            &resolv,
            format!("nameserver {OUTSIDE}\nnameserver {INTERNET}\n"),
        )
        .unwrap();
        let daemon = Daemon::start(
            host.path(),
            &[
                "--default-subnet",
                SUBNET,
                "--resolv-conf",
                resolv.to_str().unwrap(),
            ],
        );
        Some(DnsWorld {
            daemon,
            upstreams: vec![a, b],
            host,
            _outside: outside,
            _resolv: dir,
        })
    }

    fn network(&self, name: &str) -> String {
        id(&self
            .daemon
            .client()
            .find_by_name(Kind::Networks, name)
            .unwrap()
            .unwrap())
    }

    fn container(&self, network: &str, endpoint: Value) -> Container {
        Container::create(&self.daemon.client(), &self.network(network), endpoint)
    }
}

/// Ask `server` from inside `c`: the probe's one-line answer, or "" on
/// no answer.
fn ask(c: &Container, server: &str, name: &str, ty: &str) -> String {
    c.run(&["dns", server, name, ty]).1
}

fn ask_tcp(c: &Container, server: &str, name: &str, ty: &str) -> String {
    c.run(&["dns", server, name, ty, "tcp"]).1
}

#[test]
fn containers_resolve_each_other_by_name() {
    let Some(w) = DnsWorld::new("containers_resolve_each_other_by_name") else {
        return;
    };
    let web = w.container(
        "nat",
        json!({"Name": "web", "Dns": {"Domain": "corp.test"}}),
    );
    let db = w.container("nat", json!({"Name": "db"}));
    // The endpoint reports the gateway as its first DNS server.
    let ep = w.daemon.client().get(Kind::Endpoints, &web.ep_id).unwrap();
    assert_eq!(ep["Dns"]["ServerList"], json!([GATEWAY]), "{ep}");
    assert_eq!(ep["Dns"]["Domain"], "corp.test");

    assert_eq!(
        ask(&db, GATEWAY, "web", "A"),
        format!("NOERROR tc=0 A {}", web.ip)
    );
    assert_eq!(
        ask(&db, GATEWAY, "WEB.corp.test.", "A"),
        format!("NOERROR tc=0 A {}", web.ip)
    );
    assert_eq!(
        ask(&web, GATEWAY, "db", "A"),
        format!("NOERROR tc=0 A {}", db.ip)
    );
    assert_eq!(
        ask_tcp(&web, GATEWAY, "db", "A"),
        format!("NOERROR tc=0 A {}", db.ip)
    );
    assert_eq!(ask(&db, GATEWAY, "web", "AAAA"), "NOERROR tc=0");
    let octets: Vec<&str> = web.ip.split('.').rev().collect();
    let arpa = format!("{}.in-addr.arpa.", octets.join("."));
    assert_eq!(
        ask(&db, GATEWAY, &arpa, "PTR"),
        "NOERROR tc=0 PTR web.corp.test."
    );

    // Names come and go with their endpoints, no restart.
    let late = w.container("nat", json!({"Name": "late"}));
    assert_eq!(
        ask(&db, GATEWAY, "late", "A"),
        format!("NOERROR tc=0 A {}", late.ip)
    );
    w.daemon
        .client()
        .delete(Kind::Endpoints, &late.ep_id)
        .unwrap();
    let gone = ask(&db, GATEWAY, "late", "A");
    assert!(
        !gone.contains(" A "),
        "deleted endpoint still resolves: {gone}"
    );
}

#[test]
fn no_answers_across_networks_or_to_strangers() {
    let Some(w) = DnsWorld::new("no_answers_across_networks_or_to_strangers") else {
        return;
    };
    let c = w.daemon.client();
    c.create(
        Kind::Networks,
        &json!({"Name": "other", "Type": "NAT", "Ipams": [{"Subnets": [{"IpAddressPrefix": "10.77.0.0/24"}]}]}),
    )
    .unwrap();
    let web = w.container("nat", json!({"Name": "web"}));
    let x = w.container("other", json!({"Name": "x"}));
    // Its own gateway does not know the other network's names.
    let there = ask(&x, "10.77.0.1", "web", "A");
    assert!(
        there.starts_with("NXDOMAIN") || there.starts_with("REFUSED"),
        "{there}"
    );
    assert!(!there.contains(&web.ip));
    // Another network's gateway refuses it, and so it does the host.
    assert_eq!(ask(&x, GATEWAY, "web", "A"), "REFUSED tc=0");
    let out = w.host.output(
        workspace_binary("hostnet-probe").to_str().unwrap(),
        &["dns", GATEWAY, "web", "A"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "REFUSED tc=0");
    // Garbage gets no answer and breaks nothing.
    let (answered, _) = web.run(&["udp-get", &format!("{GATEWAY}:53")]);
    assert!(!answered, "a one-byte datagram was answered");
    assert!(!ask(&web, GATEWAY, "x", "A").contains(&x.ip));
    assert_eq!(
        ask(&web, GATEWAY, "web", "A"),
        format!("NOERROR tc=0 A {}", web.ip)
    );
}

#[test]
fn upstream_names_are_forwarded_cached_and_large_answers_use_tcp() {
    let Some(w) = DnsWorld::new("upstream_names_are_forwarded_cached_and_large_answers_use_tcp")
    else {
        return;
    };
    let c = w.container("nat", json!({"Name": "c"}));
    assert_eq!(
        ask(&c, GATEWAY, "www.test", "A"),
        "NOERROR tc=0 A 192.0.2.80"
    );
    assert_eq!(
        ask(&c, GATEWAY, "www.test", "A"),
        "NOERROR tc=0 A 192.0.2.80"
    );
    assert_eq!(
        ask_tcp(&c, GATEWAY, "www.test", "A"),
        "NOERROR tc=0 A 192.0.2.80"
    );
    let asked: usize = w.upstreams.iter().map(|u| u.queries_for("www.test")).sum();
    assert_eq!(asked, 1, "the cache should have answered the repeats");
    assert!(ask(&c, GATEWAY, "nosuch.test", "A").starts_with("NXDOMAIN"));

    // 100 addresses do not fit 512 bytes: truncated over UDP, whole over TCP.
    assert_eq!(ask(&c, GATEWAY, "big.test", "A"), "NOERROR tc=1");
    let whole = ask_tcp(&c, GATEWAY, "big.test", "A");
    assert_eq!(whole.matches(" A ").count(), BIG, "{whole}");
    assert!(whole.starts_with("NOERROR tc=0"));
}

#[test]
fn a_silent_upstream_is_passed_over() {
    let Some(w) = DnsWorld::new("a_silent_upstream_is_passed_over") else {
        return;
    };
    let c = w.container("nat", json!({"Name": "c"}));
    w.upstreams[0].freeze();
    let start = Instant::now();
    for i in 0..10 {
        let t = Instant::now();
        let got = ask(&c, GATEWAY, &format!("n{i}.test"), "A");
        assert_eq!(got, format!("NOERROR tc=0 A 192.0.2.{}", 100 + i));
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "query {i} took {:?}",
            t.elapsed()
        );
    }
    // Only the first query waits for the silent one.
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(w.upstreams[1].queries_for("n9.test") >= 1);
}

#[test]
fn disable_gatewaydns_leaves_the_gateway_out() {
    let Some(w) = DnsWorld::new("disable_gatewaydns_leaves_the_gateway_out") else {
        return;
    };
    let out = Command::new(workspace_binary("hostnet"))
        .arg("--socket")
        .arg(&w.daemon.socket)
        .args([
            "network",
            "create",
            "-d",
            "nat",
            "--subnet",
            "10.66.0.0/24",
            "-o",
            "com.docker.network.windowsshim.disable_gatewaydns=true",
            "-o",
            &format!("com.docker.network.windowsshim.dnsservers={OUTSIDE}"),
            "plain",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let c = w.container("plain", json!({"Name": "p"}));
    let ep = w.daemon.client().get(Kind::Endpoints, &c.ep_id).unwrap();
    assert_eq!(ep["Dns"]["ServerList"], json!([OUTSIDE]), "{ep}");
    // Nothing answers on that gateway.
    assert_eq!(ask(&c, "10.66.0.1", "p", "A"), "");
    let conf = run_in_container(&w, "plain", "cat /etc/resolv.conf");
    assert!(conf.contains(&format!("nameserver {OUTSIDE}")), "{conf}");
    assert!(!conf.contains("10.66.0.1"), "{conf}");
}

/// `hostnet run --network NET -- sh -c SCRIPT`: its stdout.
fn run_in_container(w: &DnsWorld, network: &str, script: &str) -> String {
    let out = Command::new(workspace_binary("hostnet"))
        .arg("--socket")
        .arg(&w.daemon.socket)
        .args(["run", "--network", network, "--", "sh", "-c", script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn hostnet_run_writes_the_containers_resolv_conf() {
    let Some(w) = DnsWorld::new("hostnet_run_writes_the_containers_resolv_conf") else {
        return;
    };
    let host_before = std::fs::read("/etc/resolv.conf").ok();
    let web = w.container("nat", json!({"Name": "web"}));
    let out = run_in_container(
        &w,
        "nat",
        "cat /etc/resolv.conf; getent hosts web; getent hosts www.test",
    );
    assert!(out.contains(&format!("nameserver {GATEWAY}\n")), "{out}");
    assert!(out.contains(&web.ip) && out.contains(" web"), "{out}");
    assert!(out.contains("192.0.2.80"), "{out}");
    assert_eq!(
        std::fs::read("/etc/resolv.conf").ok(),
        host_before,
        "the host's file changed"
    );
}

#[test]
fn endpoint_names_that_are_not_dns_names_are_not_published() {
    let Some(w) = DnsWorld::new("endpoint_names_that_are_not_dns_names_are_not_published") else {
        return;
    };
    let odd = w.container("nat", json!({"Name": "my container"}));
    let c = w.container("nat", json!({"Name": "c"}));
    assert!(!ask(&c, GATEWAY, "my", "A").contains(&odd.ip));
    // The endpoint still asks its gateway and is answered.
    assert_eq!(
        ask(&odd, GATEWAY, "c", "A"),
        format!("NOERROR tc=0 A {}", c.ip)
    );
    assert!(
        w.daemon.log().contains("\"my container\""),
        "{}",
        w.daemon.log()
    );
}
