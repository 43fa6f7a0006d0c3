//! The `hostnet` CLI against a real hostnetd (tier 2): its commands make
//! and remove what they say (checked through the API and the kernel), its
//! errors are one `hostnet:` line with the HCN code and a non-zero exit, and
//! `hostnet run` runs a command in a container that reaches the outside and
//! publishes ports, then removes everything unless `--keep` is given.
//!
//! The CLI runs from the test process: it only talks to the daemon's socket,
//! and `run` starts its command in the namespace the daemon made.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use hostnet_api::Kind;
use hostnet_testbed::{wait_until, Probe};
use serde_json::Value;

/// What one CLI invocation did.
#[derive(Debug)]
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `hostnet --socket <the daemon's> ARGS`, not yet started.
fn cli(w: &World, args: &[&str]) -> Command {
    w.daemon.cli(args)
}

/// Run the CLI to the end.
fn hostnet(w: &World, args: &[&str]) -> Ran {
    let (code, stdout, stderr) = w.daemon.run_cli(args);
    Ran {
        code,
        stdout,
        stderr,
    }
}

/// Run the CLI; it must succeed. Returns its stdout.
fn ok(w: &World, args: &[&str]) -> String {
    let r = hostnet(w, args);
    assert_eq!(r.code, 0, "hostnet {args:?} failed: {r:?}");
    r.stdout
}

/// Run the CLI; it must fail with one `hostnet:` line mentioning each of
/// `mentions`. Returns that line.
fn fails(w: &World, args: &[&str], mentions: &[&str]) -> String {
    let r = hostnet(w, args);
    assert_ne!(r.code, 0, "hostnet {args:?} succeeded: {r:?}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "hostnet {args:?}: not one error line: {r:?}"
    );
    assert!(lines[0].starts_with("hostnet: "), "{r:?}");
    for m in mentions {
        assert!(lines[0].contains(m), "hostnet {args:?}: no {m:?} in {r:?}");
    }
    lines[0].to_string()
}

/// The one line of a table that mentions `key`.
fn row(table: &str, key: &str) -> String {
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.split_whitespace().any(|c| c == key))
        .collect();
    assert_eq!(rows.len(), 1, "{key} in:\n{table}");
    rows[0].to_string()
}

/// The single GUID a create command printed.
fn printed_id(stdout: &str) -> String {
    let id = stdout.trim();
    assert!(
        id.len() == 36 && id.split('-').count() == 5 && !id.contains(char::is_whitespace),
        "not an ID: {stdout:?}"
    );
    id.to_string()
}

fn has_veth(w: &World) -> bool {
    w.links().iter().any(|l| l.starts_with("hnve"))
}

#[test]
fn network_commands() {
    let Some(w) = World::new("network_commands") else {
        return;
    };
    let start = w.snapshot();

    let id = printed_id(&ok(
        &w,
        &[
            "network",
            "create",
            "-d",
            "nat",
            "--subnet",
            "10.90.0.0/24",
            "net1",
        ],
    ));
    let line = row(&ok(&w, &["network", "ls"]), "net1");
    for col in [&id[..12], "NAT", "10.90.0.0/24", "10.90.0.1"] {
        assert!(line.contains(col), "no {col} in {line:?}");
    }
    let shown: Value =
        serde_json::from_str(&ok(&w, &["network", "inspect", "net1", "--format", "json"]))
            .expect("inspect prints JSON");
    assert_eq!(shown.as_array().map(Vec::len), Some(1), "{shown}");
    assert_eq!(shown[0]["ID"], Value::from(id.clone()));
    assert_eq!(shown[0]["Name"], "net1");
    assert_eq!(
        shown[0]["Ipams"][0]["Subnets"][0]["IpAddressPrefix"],
        "10.90.0.0/24"
    );
    // The network is in the kernel: its bridge, registered for NAT.
    let bridge = format!("hnbr{}", id[..8].to_ascii_lowercase());
    assert!(w.links().contains(&bridge), "{:?}", w.links());
    assert!(w
        .elements("inet", "set", "nat_bridges")
        .contains(&format!("\"{bridge}\"")));

    // Daemon errors: one line, with the HCN code.
    fails(
        &w,
        &["network", "create", "--subnet", "10.90.0.0/25", "net2"],
        &["10.90.0.0/25", "overlaps", "0x803B0032"],
    );
    fails(
        &w,
        &["network", "create", "--subnet", "10.91.0.0/24", "net1"],
        &["net1", "0x803B0010"],
    );
    fails(
        &w,
        &[
            "network",
            "create",
            "-d",
            "private",
            "--subnet",
            "10.91.0.0/24",
            "t1",
        ],
        &["Private", "0x803B0015"],
    );
    // Names the CLI cannot resolve.
    fails(&w, &["network", "rm", "nosuch"], &["nosuch", "0x80070490"]);
    fails(&w, &["network", "inspect", "nosuch"], &["nosuch"]);

    assert_eq!(ok(&w, &["network", "rm", "net1"]).trim(), "net1");
    assert!(!ok(&w, &["network", "ls"]).contains("net1"));
    assert_eq!(w.snapshot(), start, "network rm left something behind");
}

#[test]
fn namespace_and_endpoint_commands() {
    let Some(w) = World::new("namespace_and_endpoint_commands") else {
        return;
    };
    let start = w.snapshot();

    let ns = printed_id(&ok(&w, &["namespace", "create", "--name", "ns1"]));
    assert!(row(&ok(&w, &["namespace", "ls"]), "ns1").contains(&ns[..12]));
    let ep = printed_id(&ok(
        &w,
        &[
            "endpoint",
            "create",
            "--network",
            "nat",
            "-p",
            "8081:80/tcp",
            "--name",
            "ep1",
        ],
    ));
    let line = row(&ok(&w, &["endpoint", "ls"]), "ep1");
    for col in [&ep[..12], "nat", "10.88.", "0.0.0.0:8081->80/tcp"] {
        assert!(line.contains(col), "no {col} in {line:?}");
    }
    assert!(!has_veth(&w), "a veth before attach: {:?}", w.links());
    // The same host port again: one line with the HCN code.
    fails(
        &w,
        &["endpoint", "create", "--network", "nat", "-p", "8081:81"],
        &["8081", "0x803B0013"],
    );

    // The trace of a packet the seed's defaults drop: exit status 1, the
    // layers, and the verdict line; a TCP packet passes with status 0.
    let gre = hostnet(
        &w,
        &[
            "trace",
            "--endpoint",
            "ep1",
            "--direction",
            "in",
            "--proto",
            "47",
            "--src",
            "198.51.100.1",
        ],
    );
    assert_eq!(gre.code, 1, "{gre:?}");
    assert!(
        gre.stdout
            .contains("  acl-host    group defaults rule defaults:in-block"),
        "{gre:?}"
    );
    assert!(
        gre.stdout
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("verdict block"),
        "{gre:?}"
    );
    let web = ok(
        &w,
        &[
            "trace",
            "--endpoint",
            "ep1",
            "--direction",
            "in",
            "--src",
            "198.51.100.1:4000",
            "--verbose",
        ],
    );
    assert!(
        web.lines()
            .last()
            .unwrap_or_default()
            .starts_with("verdict allow tcp 198.51.100.1:4000"),
        "{web}"
    );
    fails(
        &w,
        &["trace", "--endpoint", "ep1", "--direction", "up"],
        &["Direction", "0x803B001B"],
    );

    ok(&w, &["namespace", "attach", "ns1", "ep1"]);
    assert!(row(&ok(&w, &["namespace", "ls"]), "ns1").contains(&ep[..12]));
    assert!(row(&ok(&w, &["endpoint", "ls"]), "ep1").contains(&ns[..12]));
    assert!(has_veth(&w), "no veth after attach: {:?}", w.links());
    // The endpoint the CLI made carries traffic: its published port answers.
    let netns = w.client().get(Kind::Namespaces, &ns).expect("namespace")["NetNsPath"]
        .as_str()
        .expect("NetNsPath")
        .to_string();
    let server = Probe::serve(netns.as_ref(), &["tcp-serve", "0.0.0.0:80"]);
    let (reached, said) = Probe::run(w.outside.path(), &["tcp-get", &format!("{HOST}:8081")]);
    assert!(reached, "published port 8081: {said}");
    drop(server);

    fails(&w, &["namespace", "rm", "ns1"], &[&ep, "0x803B002C"]);
    fails(&w, &["namespace", "attach", "ns1", "ep1"], &["0x803B002B"]);
    ok(&w, &["namespace", "detach", "ns1", "ep1"]);
    assert!(!has_veth(&w), "veth left after detach: {:?}", w.links());
    fails(&w, &["namespace", "detach", "ns1", "ep1"], &["0x803B0034"]);

    assert_eq!(ok(&w, &["endpoint", "rm", "ep1"]).trim(), "ep1");
    assert_eq!(ok(&w, &["namespace", "rm", "ns1"]).trim(), "ns1");
    fails(&w, &["endpoint", "rm", &ep], &[&ep]);
    assert_eq!(w.snapshot(), start, "rm left something behind");
}

#[test]
fn run_reaches_the_outside_and_cleans_up() {
    let Some(w) = World::new("run_reaches_the_outside_and_cleans_up") else {
        return;
    };
    let start = w.snapshot();
    let probe = Probe::binary();
    let probe = probe.to_str().expect("probe path");

    // The command's connection leaves through NAT: the outside sees the host.
    let server = Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("{INTERNET}:7000")],
    );
    let r = hostnet(
        &w,
        &["run", "--", probe, "tcp-get", &format!("{INTERNET}:7000")],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.starts_with(&format!("peer {HOST}:")),
        "the outside saw {r:?}"
    );
    assert!(r.stderr.is_empty(), "{r:?}");
    assert!(server
        .next_line()
        .is_some_and(|l| l.starts_with(&format!("peer {HOST}:"))));
    assert_eq!(w.snapshot(), start, "run left something behind");

    // The command's exit status is run's; set-up of a missing command is 127.
    let r = hostnet(&w, &["run", "--", "sh", "-c", "exit 3"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(w.snapshot(), start, "run left something behind");
    let r = hostnet(&w, &["run", "--", "/nonexistent/command"]);
    assert_eq!(r.code, 127, "{r:?}");
    assert!(r.stderr.starts_with("hostnet: "), "{r:?}");
    assert_eq!(w.snapshot(), start, "a failed run left something behind");
    // A set-up failure (an unknown network) creates nothing and exits 125.
    let r = hostnet(&w, &["run", "--network", "nosuch", "--", "true"]);
    assert_eq!(r.code, 125, "{r:?}");
    assert_eq!(w.snapshot(), start);

    // --keep: the namespace and endpoint stay (IDs on stderr) until removed.
    let r = hostnet(&w, &["run", "--keep", "--", "true"]);
    assert_eq!(r.code, 0, "{r:?}");
    let kept = |what: &str| {
        r.stderr
            .lines()
            .find_map(|l| l.strip_prefix(what))
            .map(|id| id.trim().to_string())
            .unwrap_or_else(|| panic!("no {what}in {r:?}"))
    };
    let (ns, ep) = (kept("namespace "), kept("endpoint "));
    let c = w.client();
    assert_eq!(
        c.get(Kind::Endpoints, &ep).unwrap()["HostComputeNamespace"],
        Value::from(ns.clone())
    );
    assert!(c.get(Kind::Namespaces, &ns).is_ok());
    assert!(has_veth(&w), "kept endpoint has no veth: {:?}", w.links());
    ok(&w, &["endpoint", "rm", &ep]);
    ok(&w, &["namespace", "rm", &ns]);
    assert_eq!(
        w.snapshot(),
        start,
        "removing what --keep kept left something"
    );
}

/// A `hostnet run` in the background, in its own process group; on drop
/// the whole group (the CLI and its command) is killed.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        // SAFETY: kill on the process group of our own child.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

#[test]
fn run_publishes_a_port_until_stopped() {
    let Some(w) = World::new("run_publishes_a_port_until_stopped") else {
        return;
    };
    let start = w.snapshot();
    let probe = Probe::binary();
    let mut cmd = cli(
        &w,
        &[
            "run",
            "-p",
            "8082:80",
            "--",
            probe.to_str().expect("probe path"),
            "tcp-serve",
            "0.0.0.0:80",
        ],
    );
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut run = Background(cmd.spawn().expect("spawn hostnet run"));

    let to = format!("{HOST}:8082");
    let reached = wait_until(Duration::from_secs(10), || {
        Probe::run(w.outside.path(), &["tcp-get", &to]).0
    });
    assert!(reached, "the published port never answered");
    let (_, said) = Probe::run(w.outside.path(), &["tcp-get", &to]);
    assert!(said.starts_with(&format!("peer {OUTSIDE}:")), "{said}");
    assert_eq!(w.client().list(Kind::Endpoints, None).unwrap().len(), 1);

    // SIGTERM to the CLI alone: it relays it to the command, then cleans up.
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(run.0.id() as i32, libc::SIGTERM) };
    let mut status = None;
    let exited = wait_until(Duration::from_secs(10), || {
        status = run.0.try_wait().expect("try_wait");
        status.is_some()
    });
    assert!(exited, "hostnet run did not exit on SIGTERM");
    let mut stderr = String::new();
    if let Some(mut e) = run.0.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(128 + libc::SIGTERM),
        "{stderr}"
    );
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(w.snapshot(), start, "run left something behind");
    assert!(!has_veth(&w));
    let (reached, said) = Probe::run(w.outside.path(), &["tcp-get", &to]);
    assert!(!reached, "the port still answers: {said}");
}
