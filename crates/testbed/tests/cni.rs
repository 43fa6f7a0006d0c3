//! hostnet-cni run as a runtime runs it (CNI_* variables, the config on
//! stdin, in the host namespace) against a real hostnetd: every verb, every
//! result version, what the kernel shows, packets through the attachment,
//! and bad input getting the spec's error with nothing left behind.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use hostnet_api::Kind;
use hostnet_testbed::cni::{exec_plugin, CniCall, CniOutput};
use hostnet_testbed::{unique, wait_until, workspace_binary, Netns, Probe};
use serde_json::{json, Value};

const VERSIONS: [&str; 4] = ["0.3.1", "0.4.0", "1.0.0", "1.1.0"];
const SUBNET: &str = "10.89.0.0/24";
const GATEWAY: &str = "10.89.0.1";

/// A network config for the hostnet network `cniweb`, created on first use.
fn conf(w: &World, version: &str, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version, "name": "web", "type": "hostnet-cni",
        "network": "cniweb", "driver": "nat", "subnet": SUBNET, "gateway": GATEWAY,
        "socket": w.daemon.socket,
    });
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    c
}

fn plugin() -> PathBuf {
    workspace_binary("hostnet-cni")
}

fn cni(w: &World, command: &str, id: &str, netns: Option<&Path>, conf: &Value) -> CniOutput {
    cni_if(w, command, id, netns, "eth0", conf)
}

fn cni_if(
    w: &World,
    command: &str,
    id: &str,
    netns: Option<&Path>,
    ifname: &str,
    conf: &Value,
) -> CniOutput {
    let call = CniCall {
        command,
        container_id: id,
        netns,
        ifname,
    };
    exec_plugin(w.host.path(), &plugin(), &call, conf)
}

fn ok(out: CniOutput, what: &str) -> CniOutput {
    assert!(
        out.success(),
        "{what}: exit {:?}\nstdout {}\nstderr {}",
        out.exit,
        out.stdout,
        out.stderr
    );
    out
}

/// An error result with `code` whose message mentions each of `mentions`.
fn refused(out: &CniOutput, code: u64, mentions: &[&str], what: &str) {
    assert!(!out.success(), "{what}: succeeded: {}", out.stdout);
    assert_eq!(out.error_code(), Some(code), "{what}: {}", out.stdout);
    for m in mentions {
        assert!(
            out.msg().contains(m),
            "{what}: msg lacks {m:?}: {}",
            out.msg()
        );
    }
}

/// A config with the result of ADD as `prevResult`.
fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

/// The container's addresses on `ifname`, as `ip` shows them.
fn addresses(ns: &Netns, ifname: &str) -> String {
    let out = ns.output("ip", &["-o", "-4", "addr", "show", "dev", ifname]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// hostnet's CNI attachments as the API lists them.
fn attachments(w: &World) -> Vec<String> {
    let c = w.client();
    let mut names = Vec::new();
    for kind in [Kind::Endpoints, Kind::Namespaces] {
        for o in c.list(kind, None).expect("list") {
            let n = o["Name"].as_str().unwrap_or_default();
            if n.starts_with("cni/") {
                names.push(format!("{kind:?} {n}"));
            }
        }
    }
    names
}

/// hostnet's veths in the host namespace.
fn host_veths(w: &World) -> Vec<String> {
    w.links()
        .into_iter()
        .filter(|l| l.starts_with("hnve"))
        .collect()
}

#[test]
fn add_check_del_in_every_version() {
    let Some(w) = World::new("add_check_del_in_every_version") else {
        return;
    };
    let outside = Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("{INTERNET}:7000")],
    );
    for (i, version) in VERSIONS.iter().enumerate() {
        let ns = Netns::new(&unique("cnic"));
        let id = format!("ctr{i}");
        let host_port = 8080 + i as u16;
        let conf = conf(
            &w,
            version,
            json!({"runtimeConfig": {"portMappings": [{"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}]}}),
        );
        let add = ok(cni(&w, "ADD", &id, Some(ns.path()), &conf), version);
        let r = &add.doc;
        assert_eq!(r["cniVersion"], *version, "{r}");
        let ip = &r["ips"][0];
        assert_eq!(
            ip.get("version").is_some(),
            version.starts_with("0."),
            "{version}: {ip}"
        );
        assert_eq!(ip["gateway"], GATEWAY, "{r}");
        assert_eq!(ip["interface"], 1, "{r}");
        let address = ip["address"].as_str().unwrap().to_string();
        assert!(
            address.starts_with("10.89.0.") && address.ends_with("/24"),
            "{r}"
        );
        assert_eq!(r["interfaces"][1]["name"], "eth0");
        assert_eq!(
            r["interfaces"][1]["sandbox"],
            ns.path().display().to_string()
        );
        assert!(r["interfaces"][0]["name"]
            .as_str()
            .unwrap()
            .starts_with("hnve"));
        assert!(r["interfaces"][0].get("sandbox").is_none(), "{r}");
        assert_eq!(r["routes"][0], json!({"dst": "0.0.0.0/0", "gw": GATEWAY}));

        // The kernel has it: the address on eth0 in the runtime's netns.
        assert!(
            addresses(&ns, "eth0").contains(&address),
            "{version}: {}",
            addresses(&ns, "eth0")
        );
        // Out through NAT, in through the published port.
        let (reached, said) = Probe::run(ns.path(), &["tcp-get", &format!("{INTERNET}:7000")]);
        assert!(
            reached && said.starts_with(&format!("peer {HOST}:")),
            "{version}: {said}"
        );
        assert!(outside.next_line().is_some());
        let _server = Probe::serve(ns.path(), &["tcp-serve", "0.0.0.0:80"]);
        let (reached, said) = Probe::run(
            w.outside.path(),
            &["tcp-get", &format!("{HOST}:{host_port}")],
        );
        assert!(
            reached && said.starts_with(&format!("peer {OUTSIDE}:")),
            "{version}: {said}"
        );

        let prev = with_prev(&conf, r);
        let check = cni(&w, "CHECK", &id, Some(ns.path()), &prev);
        if *version == "0.3.1" {
            refused(&check, 1, &["0.4.0"], "CHECK on 0.3.1");
        } else {
            ok(check, &format!("CHECK {version}"));
        }
        ok(cni(&w, "DEL", &id, Some(ns.path()), &prev), "DEL");
        ok(cni(&w, "DEL", &id, Some(ns.path()), &prev), "DEL again");
        assert!(
            addresses(&ns, "eth0").is_empty(),
            "{version}: eth0 is still there"
        );
        let (reached, _) = Probe::run(
            w.outside.path(),
            &["tcp-get", &format!("{HOST}:{host_port}")],
        );
        assert!(!reached, "{version}: the port is still published");
    }
    assert_eq!(attachments(&w), Vec::<String>::new());
    assert_eq!(host_veths(&w), Vec::<String>::new());
    assert!(w.elements("inet", "map", "ports4").is_empty());
}

#[test]
fn runtime_capabilities_ips_mac_and_dns() {
    let Some(w) = World::new("runtime_capabilities_ips_mac_and_dns") else {
        return;
    };
    let ns = Netns::new(&unique("cnic"));
    let conf = conf(
        &w,
        "1.1.0",
        json!({"runtimeConfig": {"ips": ["10.89.0.77/24"], "mac": "c2:11:22:33:44:55",
            "dns": {"servers": ["10.0.0.53"], "searches": ["corp.example"], "options": ["ndots:2"]}}}),
    );
    let add = ok(cni(&w, "ADD", "caps", Some(ns.path()), &conf), "ADD");
    let r = &add.doc;
    assert_eq!(r["ips"][0]["address"], "10.89.0.77/24", "{r}");
    assert_eq!(r["interfaces"][1]["mac"], "c2:11:22:33:44:55", "{r}");
    // The network's gateway DNS proxy comes first, as on Windows (a
    // network with disable_gatewaydns leaves it out), then the runtime's.
    assert_eq!(
        r["dns"],
        json!({"nameservers": ["10.89.0.1", "10.0.0.53"], "search": ["corp.example"], "options": ["ndots:2"]})
    );
    let link = ns.output("ip", &["-o", "link", "show", "dev", "eth0"]);
    assert!(String::from_utf8_lossy(&link.stdout).contains("c2:11:22:33:44:55"));
    assert!(addresses(&ns, "eth0").contains("10.89.0.77/24"));
    ok(
        cni(&w, "CHECK", "caps", Some(ns.path()), &with_prev(&conf, r)),
        "CHECK",
    );
    ok(cni(&w, "DEL", "caps", Some(ns.path()), &conf), "DEL");
}

#[test]
fn check_notices_what_changed_in_the_kernel() {
    let Some(w) = World::new("check_notices_what_changed_in_the_kernel") else {
        return;
    };
    let ns = Netns::new(&unique("cnic"));
    let conf = conf(&w, "1.0.0", json!({}));
    let add = ok(cni(&w, "ADD", "drift", Some(ns.path()), &conf), "ADD");
    let prev = with_prev(&conf, &add.doc);
    let address = add.doc["ips"][0]["address"].as_str().unwrap().to_string();
    ok(cni(&w, "CHECK", "drift", Some(ns.path()), &prev), "CHECK");

    ns.ip(&["route", "del", "default"]);
    let out = cni(&w, "CHECK", "drift", Some(ns.path()), &prev);
    refused(
        &out,
        102,
        &["route 0.0.0.0/0 via 10.89.0.1"],
        "CHECK without the default route",
    );

    ns.ip(&["addr", "del", &address, "dev", "eth0"]);
    let out = cni(&w, "CHECK", "drift", Some(ns.path()), &prev);
    refused(&out, 102, &[&address], "CHECK without the address");

    ns.ip(&["link", "del", "eth0"]);
    let out = cni(&w, "CHECK", "drift", Some(ns.path()), &prev);
    refused(
        &out,
        102,
        &["eth0 is missing"],
        "CHECK without the interface",
    );

    // Another interface of the same container is another attachment.
    let out = cni_if(&w, "CHECK", "drift", Some(ns.path()), "eth1", &prev);
    refused(
        &out,
        102,
        &["no endpoint"],
        "CHECK of an attachment never added",
    );
    ok(cni(&w, "DEL", "drift", Some(ns.path()), &prev), "DEL");
    assert_eq!(attachments(&w), Vec::<String>::new());
}

#[test]
fn version_status_and_an_unreachable_daemon() {
    let Some(w) = World::new("version_status_and_an_unreachable_daemon") else {
        return;
    };
    let out = ok(
        cni(&w, "VERSION", "", None, &json!({"cniVersion": "1.0.0"})),
        "VERSION",
    );
    assert_eq!(
        out.doc,
        json!({"cniVersion": "1.0.0", "supportedVersions": VERSIONS})
    );
    let out = ok(
        cni(&w, "STATUS", "", None, &conf(&w, "1.1.0", json!({}))),
        "STATUS",
    );
    assert_eq!(out.stdout.trim(), "");

    let nowhere = json!({"socket": "/nonexistent/hostnet.sock"});
    let down = conf(&w, "1.1.0", nowhere);
    let out = cni(&w, "STATUS", "", None, &down);
    refused(
        &out,
        50,
        &["/nonexistent/hostnet.sock", "start hostnetd"],
        "STATUS",
    );
    let ns = Netns::new(&unique("cnic"));
    let out = cni(&w, "ADD", "c1", Some(ns.path()), &down);
    refused(
        &out,
        11,
        &["not reachable", "retry"],
        "ADD without hostnetd",
    );
    let out = cni(&w, "DEL", "c1", Some(ns.path()), &down);
    refused(&out, 11, &["not reachable"], "DEL without hostnetd");
    let out = cni(&w, "STATUS", "", None, &conf(&w, "1.0.0", json!({})));
    refused(&out, 1, &["1.1.0"], "STATUS on 1.0.0");
}

#[test]
fn gc_removes_what_the_runtime_no_longer_lists() {
    let Some(w) = World::new("gc_removes_what_the_runtime_no_longer_lists") else {
        return;
    };
    let conf = conf(&w, "1.1.0", json!({}));
    let a = Netns::new(&unique("cnic"));
    let b = Netns::new(&unique("cnic"));
    ok(cni(&w, "ADD", "keep", Some(a.path()), &conf), "ADD keep");
    ok(cni(&w, "ADD", "drop", Some(b.path()), &conf), "ADD drop");
    // Another config's attachment on the same hostnet network is not ours.
    let mut other = conf.clone();
    other["name"] = json!("other");
    ok(
        cni_if(&w, "ADD", "drop", Some(b.path()), "eth1", &other),
        "ADD other",
    );
    assert_eq!(host_veths(&w).len(), 3);

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    ok(cni(&w, "GC", "", None, &gc), "GC");
    let mut left = attachments(&w);
    left.sort();
    assert_eq!(
        left,
        [
            "Endpoints cni/other/drop/eth1",
            "Endpoints cni/web/keep/eth0",
            "Namespaces cni/other/drop/eth1",
            "Namespaces cni/web/keep/eth0"
        ]
    );
    assert!(addresses(&b, "eth0").is_empty(), "GC left drop's eth0");
    assert!(!addresses(&a, "eth0").is_empty(), "GC took keep's eth0");
    assert_eq!(host_veths(&w).len(), 2);

    let mut no_list = conf.clone();
    no_list
        .as_object_mut()
        .unwrap()
        .remove("cni.dev/valid-attachments");
    refused(
        &cni(&w, "GC", "", None, &no_list),
        7,
        &["valid-attachments"],
        "GC without a list",
    );
}

#[test]
fn bad_input_gets_the_spec_error_and_leaves_nothing() {
    let Some(w) = World::new("bad_input_gets_the_spec_error_and_leaves_nothing") else {
        return;
    };
    let good = conf(&w, "1.1.0", json!({}));
    let ns = Netns::new(&unique("cnic"));
    // The network exists from here on: every refusal must leave all as is.
    ok(cni(&w, "ADD", "first", Some(ns.path()), &good), "ADD");
    ok(cni(&w, "DEL", "first", Some(ns.path()), &good), "DEL");
    let before = w.snapshot();
    let path = Some(ns.path());
    let mut cases: Vec<(&str, CniOutput, u64, Vec<&str>)> = Vec::new();

    let call = |conf: &[u8], env: Option<&Path>| {
        // A config that is not JSON cannot go through serde_json::Value.
        let plugin = plugin();
        let mut cmd = hostnet_testbed::Probe::command(w.host.path(), plugin.to_str().unwrap());
        cmd.env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", "bad")
            .env("CNI_IFNAME", "eth0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        if let Some(p) = env {
            cmd.env("CNI_NETNS", p);
        }
        let mut child = cmd.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(conf).unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        CniOutput {
            exit: out.status.code(),
            doc: serde_json::from_str(&stdout).unwrap_or(Value::Null),
            stdout,
            stderr: String::new(),
        }
    };
    cases.push((
        "not JSON",
        call(b"{\"cniVersion\": \"1.1.0\", ", path),
        6,
        vec!["not valid"],
    ));
    let unknown_driver = conf(&w, "1.1.0", json!({"network": "fresh", "driver": "vxlan"}));
    cases.push((
        "unknown driver",
        cni(&w, "ADD", "bad", path, &unknown_driver),
        7,
        vec!["\"vxlan\"", "nat, transparent"],
    ));
    let unimplemented = conf(
        &w,
        "1.1.0",
        json!({"network": "fresh", "driver": "private"}),
    );
    cases.push((
        "a driver hostnetd does not implement",
        cni(&w, "ADD", "bad", path, &unimplemented),
        7,
        vec!["fresh"],
    ));
    let mismatch = conf(
        &w,
        "1.1.0",
        json!({"network": "nat", "driver": "transparent"}),
    );
    cases.push((
        "an existing network of another driver",
        cni(&w, "ADD", "bad", path, &mismatch),
        7,
        vec!["NAT", "transparent"],
    ));
    cases.push((
        "missing CNI_NETNS",
        cni(&w, "ADD", "bad", None, &good),
        4,
        vec!["CNI_NETNS"],
    ));
    let gone = Path::new("/run/netns/hnt-no-such-namespace");
    cases.push((
        "a CNI_NETNS that does not exist",
        cni(&w, "ADD", "bad", Some(gone), &good),
        3,
        vec!["hnt-no-such-namespace"],
    ));
    let old = conf(&w, "0.2.0", json!({}));
    cases.push((
        "an old cniVersion",
        cni(&w, "ADD", "bad", path, &old),
        1,
        vec!["0.2.0"],
    ));
    let bandwidth = conf(
        &w,
        "1.1.0",
        json!({"runtimeConfig": {"bandwidth": {"ingressRate": 1000}}}),
    );
    cases.push((
        "the bandwidth capability",
        cni(&w, "ADD", "bad", path, &bandwidth),
        2,
        vec!["bandwidth plugin"],
    ));
    let outside_ip = conf(
        &w,
        "1.1.0",
        json!({"runtimeConfig": {"ips": ["10.99.0.5"]}}),
    );
    cases.push((
        "an address outside the subnet",
        cni(&w, "ADD", "bad", path, &outside_ip),
        7,
        vec!["10.99.0.5"],
    ));
    // eth0 taken by something else in the container.
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer",
    ]);
    cases.push((
        "an interface name in use",
        cni(&w, "ADD", "bad", path, &good),
        101,
        vec!["eth0 exists already"],
    ));
    for (what, out, code, mentions) in &cases {
        refused(out, *code, mentions, what);
        assert!(out.doc["cniVersion"].is_string(), "{what}: {}", out.stdout);
        assert_eq!(w.snapshot(), before, "{what} changed state");
    }
    ns.ip(&["link", "del", "eth0"]);

    // A host port another container has: refused by hostnetd after the
    // namespace was registered; the plugin takes it back.
    let port = |p: u16| {
        conf(
            &w,
            "1.1.0",
            json!({"runtimeConfig": {"portMappings": [{"hostPort": p, "containerPort": 80}]}}),
        )
    };
    let holder = Netns::new(&unique("cnic"));
    ok(
        cni(&w, "ADD", "holder", Some(holder.path()), &port(9090)),
        "ADD holder",
    );
    let holding = w.snapshot();
    let out = cni(&w, "ADD", "bad", path, &port(9090));
    refused(&out, 7, &["9090"], "a host port in use");
    assert_eq!(w.snapshot(), holding, "a refused port left something");
    assert!(addresses(&ns, "eth0").is_empty());
    ok(
        cni(&w, "DEL", "holder", Some(holder.path()), &good),
        "DEL holder",
    );

    // The namespace vanished before DEL: DEL succeeds, nothing is left.
    let doomed = Netns::new(&unique("cnic"));
    ok(
        cni(&w, "ADD", "doomed", Some(doomed.path()), &port(9091)),
        "ADD doomed",
    );
    let doomed_path = doomed.path().to_path_buf();
    drop(doomed);
    ok(
        cni(&w, "DEL", "doomed", Some(&doomed_path), &good),
        "DEL after the netns went",
    );
    ok(
        cni(&w, "DEL", "doomed", None, &good),
        "DEL without CNI_NETNS",
    );
    assert!(
        wait_until(Duration::from_secs(5), || w.snapshot() == before),
        "the vanished container left {:?}",
        w.snapshot()
    );
}

#[test]
fn an_interrupted_add_is_cleaned_up_by_the_next() {
    let Some(w) = World::new("an_interrupted_add_is_cleaned_up_by_the_next") else {
        return;
    };
    let conf = conf(&w, "1.1.0", json!({}));
    let ns = Netns::new(&unique("cnic"));
    ok(cni(&w, "ADD", "warm", Some(ns.path()), &conf), "ADD");
    ok(cni(&w, "DEL", "warm", Some(ns.path()), &conf), "DEL");
    // What an ADD killed between its creates leaves: the namespace object
    // and an endpoint not yet attached.
    let c = w.client();
    let name = "cni/web/again/eth0";
    c.create(
        Kind::Namespaces,
        &json!({"Name": name, "NetNsPath": ns.path()}),
    )
    .unwrap();
    let net = id(&c.find_by_name(Kind::Networks, "cniweb").unwrap().unwrap());
    c.create(
        Kind::Endpoints,
        &json!({"Name": name, "HostComputeNetwork": net}),
    )
    .unwrap();
    let add = ok(
        cni(&w, "ADD", "again", Some(ns.path()), &conf),
        "ADD after a crash",
    );
    assert!(addresses(&ns, "eth0").contains(add.doc["ips"][0]["address"].as_str().unwrap()));
    let mut left = attachments(&w);
    left.sort();
    assert_eq!(
        left,
        [format!("Endpoints {name}"), format!("Namespaces {name}")]
    );
    ok(cni(&w, "DEL", "again", Some(ns.path()), &conf), "DEL");
    assert_eq!(attachments(&w), Vec::<String>::new());
}

/// A dual-stack NAT network (made through the API) used by name: ADD
/// gives the container an address of each family (one asked for in
/// `runtimeConfig.ips`) with a gateway each, CHECK passes, the container
/// reaches the outside over IPv6 through NAT66, DEL leaves nothing.
#[test]
fn a_dual_stack_network_gives_both_families() {
    let Some(w) = World::dual_stack("a_dual_stack_network_gives_both_families") else {
        return;
    };
    w.client()
        .create(
            Kind::Networks,
            &json!({ "Name": "cnidual", "Type": "nat", "Ipams": [{ "Subnets": [
                { "IpAddressPrefix": "10.91.0.0/24" }, { "IpAddressPrefix": "fd00:91::/64" }
            ] }] }),
        )
        .expect("dual-stack network");
    let conf = json!({
        "cniVersion": "1.1.0", "name": "dual", "type": "hostnet-cni",
        "network": "cnidual", "socket": w.daemon.socket,
        "runtimeConfig": {"ips": ["fd00:91::77/64"]},
    });
    let ns = Netns::new(&unique("cnid"));
    let add = ok(cni(&w, "ADD", "dual1", Some(ns.path()), &conf), "ADD");
    let ips = &add.doc["ips"];
    assert_eq!(
        ips,
        &json!([
            {"address": "10.91.0.2/24", "gateway": "10.91.0.1", "interface": 1},
            {"address": "fd00:91::77/64", "gateway": "fd00:91::1", "interface": 1}
        ]),
        "{}",
        add.doc
    );
    ok(
        cni(
            &w,
            "CHECK",
            "dual1",
            Some(ns.path()),
            &with_prev(&conf, &add.doc),
        ),
        "CHECK",
    );
    let server = Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("[{INTERNET6}]:7000")],
    );
    let (ok6, said) = Probe::run(ns.path(), &["tcp-get", &format!("[{INTERNET6}]:7000")]);
    assert!(
        ok6 && said.starts_with(&format!("peer [{HOST6}]:")),
        "{said}"
    );
    assert!(server.next_line().is_some());
    ok(
        cni(
            &w,
            "DEL",
            "dual1",
            Some(ns.path()),
            &with_prev(&conf, &add.doc),
        ),
        "DEL",
    );
    assert!(attachments(&w).is_empty(), "{:?}", attachments(&w));
    assert!(host_veths(&w).is_empty(), "{:?}", host_veths(&w));
}
