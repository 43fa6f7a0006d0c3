//! `hostnet run --isolation vm` (tier 2): the command runs in a microVM
//! (qemu, Debian's cloud kernel, TCG here) whose NIC is a VmNic endpoint's
//! tap on the NAT network's bridge. The guest and a process container reach
//! each other and the outside, a published port reaches a server in the
//! guest, the tap port gets the firewall defaults a veth port gets (GRE in
//! dropped, ICMP passes), a hostnetd restart keeps the running VM's tap,
//! and after the run, or a SIGTERM to it, no tap, qemu or endpoint is left.
//! Without a boot: a VmNic endpoint's tap in the kernel (rebuilt by
//! reconcile, refused by namespace attach), and bad input (no kernel, no
//! such command, no modules.dep, --keep) refused before anything exists.
//!
//! On an Overlay network the tap is in the router namespace and the guest
//! gets the overlay's MTU, and a VM reaches another host's container.
//!
//! Each boot costs seconds of software emulation, so the checks share few
//! boots. The CLI runs from the test process (it enters the tap's
//! namespace for qemu itself); the kernel comes from the tier-3 cache.

mod common;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hostnet_api::Kind;
use hostnet_testbed::{tier3, wait_until, Probe};
use serde_json::json;

/// How long one guest may take from `hostnet run` to its command's start.
const BOOT: Duration = Duration::from_secs(60);

/// `hostnet run --isolation vm` with the cached kernel, not yet started.
fn vm_run(w: &World, kernel: &str, args: &[&str]) -> Command {
    let mut full = vec!["run", "--isolation", "vm", "--vm-kernel", kernel];
    full.extend_from_slice(args);
    let mut cmd = w.daemon.cli(&full);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    cmd
}

/// Debian's cloud kernel (downloaded into the tier-3 cache if missing);
/// None (after printing `skipped:`) without qemu.
fn kernel() -> Option<String> {
    if tier3::which("qemu-system-x86_64").is_none() {
        eprintln!("skipped: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)");
        return None;
    }
    let k = tier3::debian_cloud_kernel().expect("Debian's cloud kernel");
    Some(k.image.display().to_string())
}

/// A running `hostnet run`, killed (its whole group) on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: kill on the process group of our own child.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

impl Running {
    /// Waits for the CLI to exit: (code, stdout, stderr).
    fn finish(&mut self, within: Duration) -> (Option<i32>, String, String) {
        let mut status = None;
        let exited = wait_until(within, || {
            status = self.0.try_wait().expect("try_wait");
            status.is_some()
        });
        assert!(exited, "hostnet run did not exit within {within:?}");
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut o) = self.0.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(mut e) = self.0.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status.and_then(|s| s.code()), out, err)
    }
}

/// Processes whose command line opens `tap` (a qemu left running).
fn users_of(tap: &str) -> Vec<String> {
    let needle = format!("ifname={tap},");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle))
        .collect()
}

/// The one VmNic endpoint while a VM runs.
fn vm_endpoint(w: &World) -> Option<serde_json::Value> {
    w.client()
        .list(Kind::Endpoints, None)
        .ok()?
        .into_iter()
        .find(|e| e["VmNic"] == json!(true))
}

#[test]
fn a_vm_container_and_a_process_container_reach_each_other_the_outside_and_a_published_port() {
    let Some(mut w) = World::new("vm_isolation_reachability") else {
        return;
    };
    let Some(kernel) = kernel() else {
        return;
    };
    let process = w.container("nat", json!([]));
    let before_vm = w.snapshot();
    let probe = Probe::binary().display().to_string();
    let _web = process.serve(&["tcp-serve", "0.0.0.0:80"]);
    let _outside = Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("{INTERNET}:7000")],
    );
    // The guest: reach the process container and the outside, then serve
    // (port 80, published as 8083) and listen for GRE until the outside
    // says go (7001), then exit 7.
    let script = format!(
        "{probe} tcp-get {proc}:80 && {probe} tcp-get {INTERNET}:7000 || exit 1
{probe} tcp-serve 0.0.0.0:80 & {probe} raw-listen 47 &
until {probe} tcp-get {INTERNET}:7001 >/dev/null 2>&1; do sleep 0.2; done
echo to-stderr >&2
exit 7",
        proc = process.ip
    );
    let console = std::env::temp_dir().join(format!("hostnet-vm-console-{}", std::process::id()));
    let started = Instant::now();
    let mut run = Running(
        vm_run(
            &w,
            &kernel,
            &[
                "-p", "8083:80", "--vm-add", &probe, "--", "sh", "-c", &script,
            ],
        )
        .env("HOSTNET_VM_CONSOLE", &console)
        .spawn()
        .expect("spawn hostnet run"),
    );

    // The VM's NIC: a tap on the network's bridge, hooked by the port
    // firewall defaults as a veth is.
    let mut ep = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            ep = vm_endpoint(&w);
            ep.is_some()
        }),
        "no VmNic endpoint appeared"
    );
    let ep = ep.unwrap();
    let tap = ep["InterfaceName"].as_str().unwrap().to_string();
    let vm_ip = ep["IpConfigurations"][0]["IpAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let link = w.host.output("ip", &["-d", "link", "show", &tap]);
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(link.contains("tun type tap"), "{tap} is not a tap: {link}");
    assert!(
        link.contains(&format!(
            "master hnbr{}",
            &w.network("nat").replace('-', "")[..8].to_lowercase()
        )),
        "{tap} is not on the bridge: {link}"
    );
    assert!(
        w.elements("netdev hostnet_egress", "chain", "nat_endpoint_inbound")
            .contains(&format!("\"{tap}\"")),
        "the tap has no firewall defaults"
    );

    // Process container -> VM, once the guest serves.
    let to_vm = format!("{vm_ip}:80");
    let served = wait_until(BOOT, || process.run(&["tcp-get", &to_vm]).0);
    let boot_to_serve = started.elapsed();
    assert!(
        served,
        "the VM's server never answered the process container"
    );
    let (_, said) = process.run(&["tcp-get", &to_vm]);
    assert!(said.starts_with(&format!("peer {}:", process.ip)), "{said}");
    // The outside -> the published port -> the VM.
    let (ok, said) = Probe::run(w.outside.path(), &["tcp-get", &format!("{HOST}:8083")]);
    assert!(
        ok && said.starts_with(&format!("peer {OUTSIDE}:")),
        "{said}"
    );
    // Firewall defaults on the tap: GRE from a sibling is dropped (and
    // counted as the endpoint's inbound drops), ICMP passes.
    let ep_id = ep["ID"].as_str().unwrap().to_string();
    let dropped = || {
        w.client()
            .endpoint_stats(&ep_id)
            .expect("VM endpoint stats")["DroppedPacketsIncoming"]
            .as_u64()
            .expect("DroppedPacketsIncoming")
    };
    let before = dropped();
    for _ in 0..3 {
        assert!(process.run(&["raw-send", "47", &vm_ip]).0);
    }
    assert!(process.run(&["ping", &vm_ip]).0, "ping to the VM");
    assert!(dropped() >= before + 3, "the tap's port did not drop GRE");

    // hostnetd restarts while the VM runs: the tap and its port stay.
    w.daemon.restart();
    assert!(w.links().contains(&tap), "the restart lost the tap");
    let (ok, said) = Probe::run(w.outside.path(), &["tcp-get", &format!("{HOST}:8083")]);
    assert!(ok, "published port after a hostnetd restart: {said}");

    // Go: the guest exits 7.
    let _go = Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("{INTERNET}:7001")],
    );
    let (code, out, err) = run.finish(Duration::from_secs(30));
    let said = std::fs::read_to_string(&console).unwrap_or_default();
    let _ = std::fs::remove_file(&console);
    eprintln!(
        "VM run: first answer {:.1} s after start, whole run {:.1} s; console:\n{said}",
        boot_to_serve.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(code, Some(7), "stdout {out}\nstderr {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("peer {vm_ip}:"))),
        "the process container did not see the VM's address: {out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("peer {HOST}:"))),
        "the outside did not see the host's address: {out}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("got ")),
        "GRE reached the VM: {out}"
    );
    assert_eq!(
        lines.iter().filter(|l| **l == "ready").count(),
        2,
        "the guest's server and GRE listener did not both start: {out}"
    );
    assert_eq!(err.trim(), "to-stderr", "the command's stderr: {err}");

    // Nothing of the VM is left.
    assert!(
        users_of(&tap).is_empty(),
        "qemu still runs: {:?}",
        users_of(&tap)
    );
    assert_eq!(w.snapshot(), before_vm, "the VM run left something behind");
}

#[test]
fn sigterm_stops_a_dual_stack_vm_and_removes_its_endpoint() {
    let Some(w) = World::new("vm_isolation_sigterm") else {
        return;
    };
    let Some(kernel) = kernel() else {
        return;
    };
    // A dual-stack network: the guest configures both of its endpoint's
    // addresses and default routes.
    w.client()
        .create(
            Kind::Networks,
            &json!({ "Name": "dual", "Type": "nat", "Ipams": [{ "Type": "Static", "Subnets": [
                { "IpAddressPrefix": "10.79.0.0/24" }, { "IpAddressPrefix": "fd00:79::/64" }
            ] }] }),
        )
        .expect("dual-stack network");
    let process = w.container("dual", json!([]));
    let start = w.snapshot();
    let busybox = hostnet_microvm::initramfs::find_busybox().expect("busybox");
    let busybox = busybox.display().to_string();
    let mut run = Running(
        vm_run(
            &w,
            &kernel,
            &["--network", "dual", "--", &busybox, "sleep", "600"],
        )
        .spawn()
        .expect("spawn hostnet run"),
    );
    let mut ep = None;
    assert!(wait_until(Duration::from_secs(10), || {
        ep = vm_endpoint(&w);
        ep.as_ref()
            .and_then(|e| e["InterfaceName"].as_str())
            .is_some_and(|tap| !users_of(tap).is_empty())
    }));
    let ep = ep.unwrap();
    let tap = ep["InterfaceName"].as_str().unwrap().to_string();
    let vm_ip6 = ep["IpConfigurations"][1]["IpAddress"]
        .as_str()
        .expect("the VM's endpoint has an IPv6 address")
        .to_string();
    assert!(vm_ip6.starts_with("fd00:79::"), "{ep}");
    assert!(
        wait_until(BOOT, || process.run(&["ping", &vm_ip6]).0),
        "the guest never answered on its IPv6 address {vm_ip6}"
    );
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(run.0.id() as i32, libc::SIGTERM) };
    let (code, out, err) = run.finish(Duration::from_secs(20));
    assert_eq!(
        code,
        Some(128 + libc::SIGTERM),
        "stdout {out}\nstderr {err}"
    );
    assert!(users_of(&tap).is_empty(), "qemu still runs");
    assert_eq!(
        w.snapshot(),
        start,
        "a stopped VM run left something behind"
    );
}

/// Every link of the host namespace (a tap would be one).
fn all_links(w: &World) -> String {
    String::from_utf8_lossy(&w.host.output("ip", &["-o", "link", "show"]).stdout).into_owned()
}

#[test]
fn isolation_vm_bad_input_is_refused_and_creates_nothing() {
    let Some(w) = World::new("vm_isolation_bad_input") else {
        return;
    };
    let start = w.snapshot();
    let links_before = all_links(&w);
    let out = w
        .daemon
        .cli(&["run", "--isolation", "vm", "-p", "8084:80", "--", "true"])
        .env_remove("HOSTNET_VM_KERNEL")
        .output()
        .expect("run hostnet");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("hostnet: ")
            && err.contains("--vm-kernel")
            && err.contains("HOSTNET_VM_KERNEL"),
        "{err}"
    );
    // A kernel that is not there: the same, naming it.
    let out = w
        .daemon
        .cli(&[
            "run",
            "--isolation",
            "vm",
            "--vm-kernel",
            "/nonexistent/vmlinuz",
            "--",
            "true",
        ])
        .output()
        .expect("run hostnet");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("/nonexistent/vmlinuz"), "{err}");
    // With a kernel: a modules directory without modules.dep, and a
    // command this host does not have (127, as docker run).
    if let Some(kernel) = kernel() {
        let refused = |args: &[&str], exit: i32, mentions: &str| {
            let mut full = vec!["run", "--isolation", "vm", "--vm-kernel", &kernel];
            full.extend_from_slice(args);
            let out = w.daemon.cli(&full).output().expect("run hostnet");
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_eq!(out.status.code(), Some(exit), "{args:?}: {err}");
            assert!(
                err.starts_with("hostnet: ") && err.contains(mentions),
                "{err}"
            );
        };
        refused(
            &["--vm-modules", "/nonexistent", "--", "true"],
            125,
            "modules.dep",
        );
        refused(&["--", "/nonexistent/program"], 127, "/nonexistent/program");
        refused(&["--keep", "--", "true"], 125, "--keep");
    }
    assert_eq!(w.snapshot(), start, "a refused run changed something");
    assert_eq!(all_links(&w), links_before);
}

/// The API side alone (no boot): a VmNic endpoint is a persistent tap on
/// the bridge with the port's firewall defaults; it cannot join a
/// namespace; hostnetd rebuilds it when the kernel lost it while the
/// daemon was down; deleting the endpoint removes it.
#[test]
fn a_vm_nic_endpoint_is_a_tap_kept_by_reconcile_and_removed_with_it() {
    let Some(mut w) = World::new("vm_nic_endpoint") else {
        return;
    };
    let start = w.snapshot();
    let c = w.client();
    let ep = c
        .create(
            Kind::Endpoints,
            &json!({ "HostComputeNetwork": w.network("nat"), "VmNic": true }),
        )
        .expect("create a VmNic endpoint");
    let id = ep["ID"].as_str().unwrap().to_string();
    let tap = ep["InterfaceName"].as_str().unwrap().to_string();
    let is_tap = |w: &World| {
        let out = w.host.output("ip", &["-d", "link", "show", &tap]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("tun type tap") && text.contains("master hnbr")
    };
    assert!(is_tap(&w), "no tap {tap} on the bridge");
    let hooked = |w: &World| {
        w.elements("netdev hostnet_egress", "chain", "nat_endpoint_inbound")
            .contains(&format!("\"{tap}\""))
    };
    assert!(hooked(&w), "the tap has no firewall defaults");

    // Not for a namespace; nothing changes.
    let ns = c.create(Kind::Namespaces, &json!({})).expect("namespace");
    let ns_id = ns["ID"].as_str().unwrap().to_string();
    let before = w.snapshot();
    assert_eq!(
        code(c.attach_endpoint(&ns_id, &id)),
        0x803B_0014,
        "HCN_E_ENDPOINT_ALREADY_ATTACHED"
    );
    assert_eq!(w.snapshot(), before);
    c.delete(Kind::Namespaces, &ns_id)
        .expect("delete namespace");

    // Lost behind hostnetd's back while it was down: rebuilt, hooked again.
    w.daemon
        .kill9_and_restart_with(|| w.host.ip(&["link", "del", &tap]));
    assert!(is_tap(&w), "the restart did not rebuild the tap");
    assert!(hooked(&w), "the rebuilt tap has no firewall defaults");

    w.client()
        .delete(Kind::Endpoints, &id)
        .expect("delete the endpoint");
    assert!(!w.links().contains(&tap), "the tap outlived its endpoint");
    assert_eq!(w.snapshot(), start);
}

/// On an Overlay network the tap is in the network's router namespace
/// (`TapNetNsPath`), and the guest gets the overlay's smaller MTU: a VM on
/// host 1 reaches a container on host 2 across VXLAN with its own address.
#[test]
fn a_vm_on_an_overlay_network_reaches_a_container_on_another_host() {
    if !hostnet_testbed::require_privileges("vm_isolation_overlay") {
        return;
    }
    let Some(kernel) = kernel() else {
        return;
    };
    let mut phys = hostnet_testbed::PhysicalNet::new("vmov", 2);
    phys.start_daemons(&["--no-default-network"]);
    let (h1, h2) = (phys.host(0), phys.host(1));
    let network = json!({
        "Name": "ov", "Type": "Overlay",
        "Ipams": [{"Type": "Static", "Subnets": [{"IpAddressPrefix": "10.0.1.0/24",
            "Policies": [{"Type": "VSID", "Settings": {"IsolationId": 4100}}]}]}],
        "SchemaVersion": {"Major": 2, "Minor": 0}
    });
    for h in [h1, h2] {
        h.client()
            .create(Kind::Networks, &network)
            .expect("create overlay network");
    }
    let b = h2.container_with(
        "ov",
        json!({"IpConfigurations": [{"IpAddress": "10.0.1.20"}]}),
    );
    let _web = b.serve(&["tcp-serve", "0.0.0.0:80"]);
    // Each host learns the other's endpoint as a remote one, as
    // kube-proxy or flannel would tell it: host 1 learns B now.
    let b_ep = h2.client().get(Kind::Endpoints, &b.ep_id).expect("B");
    let remote_of =
        |host: &hostnet_testbed::physical::Host, ip: &str, mac: &serde_json::Value, pa: &str| {
            host.client()
            .create(
                Kind::Endpoints,
                &json!({
                    "HostComputeNetwork": host.network("ov"), "Flags": 1,
                    "IpConfigurations": [{"IpAddress": ip}],
                    "MacAddress": mac,
                    "Policies": [{"Type": "ProviderAddress", "Settings": {"ProviderAddress": pa}}],
                }),
            )
            .expect("remote endpoint")
        };
    remote_of(h1, "10.0.1.20", &b_ep["MacAddress"], &h2.addr);
    let probe = Probe::binary().display().to_string();
    let script = format!(
        "i=0; until {probe} tcp-get 10.0.1.20:80; do i=$((i+1)); [ $i -lt 20 ] || exit 9; sleep 0.2; done
echo mtu $(cat /sys/class/net/eth0/mtu)"
    );
    let mut cmd = h1.daemon().cli(&[
        "run",
        "--isolation",
        "vm",
        "--vm-kernel",
        &kernel,
        "--network",
        "ov",
        "--ip",
        "10.0.1.10",
        "--vm-add",
        &probe,
        "--",
        "sh",
        "-c",
        &script,
    ]);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut run = Running(cmd.spawn().expect("spawn hostnet run"));

    let mut ep = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            ep = h1
                .client()
                .list(Kind::Endpoints, None)
                .ok()
                .and_then(|l| l.into_iter().find(|e| e["VmNic"] == json!(true)));
            ep.is_some()
        }),
        "no VmNic endpoint appeared"
    );
    let ep = ep.unwrap();
    let netns = ep["TapNetNsPath"].as_str().unwrap().to_string();
    assert!(
        netns.contains("/router-"),
        "the tap is not in the router: {ep}"
    );
    let tap = ep["InterfaceName"].as_str().unwrap();
    let in_router = Command::new("nsenter")
        .arg(format!("--net={netns}"))
        .args(["ip", "-d", "link", "show", tap])
        .output()
        .expect("nsenter");
    assert!(
        String::from_utf8_lossy(&in_router.stdout).contains("tun type tap"),
        "no tap {tap} in {netns}"
    );
    // And host 2 the VM.
    let remote = remote_of(h2, "10.0.1.10", &ep["MacAddress"], &h1.addr);

    let (code, out, err) = run.finish(BOOT);
    assert_eq!(code, Some(0), "stdout {out}\nstderr {err}");
    assert!(
        out.lines().any(|l| l.starts_with("peer 10.0.1.10:")),
        "host 2's container did not see the VM's address: {out}"
    );
    let mtu = ep["TapMtu"].as_u64().expect("TapMtu");
    assert!(
        mtu < 1500,
        "an overlay port's MTU leaves room for VXLAN: {ep}"
    );
    assert!(
        out.contains(&format!("mtu {mtu}")),
        "the guest's MTU: {out}"
    );
    assert!(users_of(tap).is_empty(), "qemu still runs");
    assert!(h1
        .client()
        .list(Kind::Endpoints, None)
        .unwrap()
        .iter()
        .all(|e| e["VmNic"] != json!(true)));
    h2.client()
        .delete(Kind::Endpoints, remote["ID"].as_str().unwrap())
        .expect("delete the remote endpoint");
}
