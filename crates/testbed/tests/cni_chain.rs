//! hostnet-cni as the first plugin of a conflist, followed by the CNI
//! reference plugins (Debian's containernetworking-plugins): they get
//! hostnet's result as `prevResult` and act on the interfaces it names.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use hostnet_testbed::cni::{Chain, CniCall, REFERENCE_PLUGINS};
use hostnet_testbed::{require_installed, unique, workspace_binary, Netns, Probe};
use serde_json::{json, Value};

/// The reference plugins, or None (after saying `skipped:`) without them.
fn reference_plugins(test: &str) -> Option<()> {
    let tuning = format!("{REFERENCE_PLUGINS}/tuning");
    let bandwidth = format!("{REFERENCE_PLUGINS}/bandwidth");
    require_installed(test, &[&tuning, &bandwidth], "containernetworking-plugins").then_some(())
}

fn chain<'a>(w: &'a World, version: &str, next: Value, runtime: Value) -> Chain<'a> {
    let own: PathBuf = workspace_binary("hostnet-cni")
        .parent()
        .unwrap()
        .to_path_buf();
    Chain {
        host: w.host.path(),
        dirs: vec![own, PathBuf::from(REFERENCE_PLUGINS)],
        conflist: json!({
            "cniVersion": version, "name": "chained",
            "plugins": [
                {"type": "hostnet-cni", "network": "chained", "subnet": "10.90.0.0/24",
                 "socket": w.daemon.socket, "capabilities": {"portMappings": true}},
                next,
            ],
        }),
        runtime,
    }
}

fn call<'a>(command: &'a str, ns: &'a Netns) -> CniCall<'a> {
    CniCall {
        command,
        container_id: "chained1",
        netns: Some(ns.path()),
        ifname: "eth0",
    }
}

fn ok(out: hostnet_testbed::cni::CniOutput, what: &str) -> Value {
    assert!(out.success(), "{what}: {}\n{}", out.stdout, out.stderr);
    out.doc
}

fn text(out: std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tuning_after_hostnet_changes_mac_mtu_and_sysctl() {
    let Some(w) = World::new("tuning_after_hostnet_changes_mac_mtu_and_sysctl") else {
        return;
    };
    if reference_plugins("tuning_after_hostnet_changes_mac_mtu_and_sysctl").is_none() {
        return;
    }
    let ns = Netns::new(&unique("cnic"));
    let tuning = json!({"type": "tuning", "mac": "c2:00:00:00:0a:01", "mtu": 1400,
        "sysctl": {"net.ipv4.conf.eth0.arp_ignore": "1"}});
    let c = chain(&w, "0.4.0", tuning, json!({}));
    let result = ok(c.add(&call("ADD", &ns)), "ADD");
    // tuning read hostnet's result and changed the interface it names.
    assert_eq!(result["cniVersion"], "0.4.0");
    assert_eq!(
        result["interfaces"][1]["mac"], "c2:00:00:00:0a:01",
        "{result}"
    );
    assert_eq!(result["ips"][0]["version"], "4", "{result}");
    let link = text(ns.output("ip", &["-o", "link", "show", "dev", "eth0"]));
    assert!(
        link.contains("mtu 1400") && link.contains("c2:00:00:00:0a:01"),
        "{link}"
    );
    let sysctl = text(ns.output("cat", &["/proc/sys/net/ipv4/conf/eth0/arp_ignore"]));
    assert_eq!(sysctl.trim(), "1");
    // With its new MAC the container still gets out.
    let _outside = Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("{INTERNET}:7000")],
    );
    let (reached, said) = Probe::run(ns.path(), &["tcp-get", &format!("{INTERNET}:7000")]);
    assert!(
        reached && said.starts_with(&format!("peer {HOST}:")),
        "{said}"
    );

    // CHECK through the chain: hostnet compares the kernel with the MAC
    // tuning reported, tuning its own settings.
    ok(c.with_cached(&call("CHECK", &ns), Some(&result)), "CHECK");
    ok(c.with_cached(&call("DEL", &ns), Some(&result)), "DEL");
    assert!(text(ns.output("ip", &["-o", "link", "show", "dev", "eth0"])).is_empty());
    assert!(w.links().iter().all(|l| !l.starts_with("hnve")));
}

#[test]
fn bandwidth_after_hostnet_shapes_the_host_end() {
    let Some(w) = World::new("bandwidth_after_hostnet_shapes_the_host_end") else {
        return;
    };
    if reference_plugins("bandwidth_after_hostnet_shapes_the_host_end").is_none() {
        return;
    }
    let ns = Netns::new(&unique("cnic"));
    let bandwidth = json!({"type": "bandwidth", "capabilities": {"bandwidth": true}});
    let rate = 8_000_000u64; // bits per second
    let runtime = json!({
        "bandwidth": {"ingressRate": rate, "ingressBurst": 80_000, "egressRate": rate, "egressBurst": 80_000},
        "portMappings": [{"hostPort": 8088, "containerPort": 80, "protocol": "tcp"}],
    });
    let c = chain(&w, "1.0.0", bandwidth, runtime);
    let result = ok(c.add(&call("ADD", &ns)), "ADD");
    let host_end = result["interfaces"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(host_end.starts_with("hnve"), "{result}");
    // bandwidth found hostnet's host end through prevResult and shaped it.
    let qdisc = text(w.host.output("tc", &["qdisc", "show", "dev", &host_end]));
    assert!(
        qdisc.contains("tbf") && qdisc.contains("rate 8Mbit"),
        "{qdisc}"
    );
    // The published port still works through the shaped link, and a
    // second's worth of bytes takes about a second.
    let _server = Probe::serve(ns.path(), &["tcp-serve", "0.0.0.0:80"]);
    let (reached, said) = Probe::run(w.outside.path(), &["tcp-get", &format!("{HOST}:8088")]);
    assert!(reached, "{said}");
    let ip = result["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    if let Some(mbit) = iperf_mbit(&w, &ns, &ip) {
        println!("ingress through the shaped host end: {mbit:.1} Mbit/s");
        assert!(
            mbit < 12.0,
            "ingress shaped to 8 Mbit/s measured {mbit} Mbit/s"
        );
    }
    ok(c.with_cached(&call("CHECK", &ns), Some(&result)), "CHECK");
    ok(c.with_cached(&call("DEL", &ns), Some(&result)), "DEL");
    let links = text(w.host.output("ip", &["-o", "link", "show"]));
    assert!(!links.contains("hnve") && !links.contains("bwp"), "{links}");
}

/// Throughput into the container (through the host end's qdisc) over one
/// second with iperf3, if it is installed.
fn iperf_mbit(w: &World, ns: &Netns, ip: &str) -> Option<f64> {
    Command::new("iperf3").arg("--version").output().ok()?;
    let mut server = ns
        .command("iperf3")
        .args(["-s", "-1", "-p", "5201"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let ready = hostnet_testbed::wait_until(std::time::Duration::from_secs(5), || {
        text(ns.output("ss", &["-ltn", "sport = :5201"])).contains("5201")
    });
    assert!(ready, "iperf3 server did not start");
    let out = w
        .host
        .output("iperf3", &["-c", ip, "-p", "5201", "-t", "1", "-J"]);
    let _ = server.wait();
    let doc: Value = serde_json::from_slice(&out.stdout).ok()?;
    let bps = doc["end"]["sum_received"]["bits_per_second"].as_f64()?;
    Some(bps / 1e6)
}
