//! VLAN isolation on this machine's kernel (tier 2): what a user of a
//! kernel without 802.1q sees, and refusals of bad VLAN input that leave
//! the host as it was. VLAN traffic itself needs the 8021q module this
//! kernel lacks: it is proven in the tier-3 VM
//! (`tier3_guest.rs`, `vlans_isolate_networks_across_hosts_on_one_trunk`).

use std::path::Path;

use hostnet_api::{ApiError, Kind};
use hostnet_testbed::inspect::{ip_out, word_after};
use hostnet_testbed::physical::Host;
use hostnet_testbed::{require_privileges, unique, Netns, PhysicalNet};
use serde_json::{json, Value};

const INVALID_POLICY: u32 = 0x803B_000D;
const INVALID_POLICY_TYPE: u32 = 0x803B_000E;
const REQUEST_UNSUPPORTED: u32 = 0x803B_0015;

fn world(test: &str) -> Option<PhysicalNet> {
    if !require_privileges(test) {
        return None;
    }
    let mut phys = PhysicalNet::new("vl", 1);
    phys.start_daemons(&["--no-default-network"]);
    Some(phys)
}

/// Whether this kernel makes 802.1q links (tried in a scratch namespace).
fn kernel_has_8021q() -> bool {
    let ns = Netns::new(&unique("vlq"));
    ns.ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
    let out = ns.output(
        "ip",
        &[
            "link", "add", "link", "va", "name", "va.11", "type", "vlan", "id", "11",
        ],
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || said.contains("Unknown device type"),
        "trying a VLAN link failed otherwise: {said}"
    );
    out.status.success()
}

/// A network of `kind` bound to eth0, its subnets each with `policies`.
fn network(name: &str, kind: &str, subnets: &[(&str, Value)]) -> Value {
    let subs: Vec<Value> = subnets
        .iter()
        .map(|(prefix, policies)| {
            let gw = prefix.replace(".0/24", ".1");
            json!({ "IpAddressPrefix": prefix, "Policies": policies,
                "Routes": [{ "NextHop": gw, "DestinationPrefix": "0.0.0.0/0" }] })
        })
        .collect();
    json!({ "Name": name, "Type": kind, "Ipams": [{ "Subnets": subs }],
        "Policies": [{ "Type": "NetAdapterName", "Settings": { "NetworkAdapterName": "eth0" } }] })
}

fn vlan(id: u32) -> Value {
    json!([{ "Type": "VLAN", "Settings": { "IsolationId": id } }])
}

/// The host's links (with their masters), addresses, routes and its
/// daemon's objects: what a refused request must leave as it was.
fn snapshot(host: &Host) -> (String, String, String, Vec<Value>, Vec<Value>) {
    let c = host.client();
    let p: &Path = host.path();
    (
        ip_out(p, &["-o", "link", "show"])
            .lines()
            .filter_map(|l| {
                let name = l.split_whitespace().nth(1)?.trim_end_matches(':');
                Some(format!("{name} master {:?}\n", word_after(l, "master")))
            })
            .collect(),
        ip_out(p, &["-br", "addr"]).replace(" tentative", ""),
        ip_out(p, &["route"]),
        c.list(Kind::Networks, None).expect("list networks"),
        c.list(Kind::Endpoints, None).expect("list endpoints"),
    )
}

fn refused(r: Result<Value, ApiError>, want: u32, says: &str, what: &str) {
    match r {
        Err(e) => {
            assert_eq!(e.error_code(), Some(want), "{what}: got {e}");
            assert!(e.to_string().contains(says), "{what}: no {says:?} in {e}");
        }
        Ok(v) => panic!("{what}: expected {want:#010X}, got {v}"),
    }
}

/// On a kernel without 802.1q (this machine's), a VLAN network is refused
/// with REQUEST_UNSUPPORTED naming the module, through the API and the
/// CLI, and nothing of the host changes: no bridge, no link, eth0 as it
/// was, no network stored (also after a restart). On a kernel with it,
/// the same requests make the sub-interface (VLAN 11 of eth0, eth0's MAC)
/// as the bridge's port, leave the host's address on eth0, and deleting
/// the network removes both.
#[test]
fn a_vlan_network_needs_8021q_and_fails_cleanly_without_it() {
    let test = "a_vlan_network_needs_8021q_and_fails_cleanly_without_it";
    let Some(mut phys) = world(test) else {
        return;
    };
    let has = kernel_has_8021q();
    let h = phys.host(0);
    let before = snapshot(h);
    let body = network("v11", "Transparent", &[("10.11.0.0/24", vlan(11))]);
    let cli = [
        "network",
        "create",
        "-d",
        "l2bridge",
        "-o",
        "com.docker.network.windowsshim.interface=eth0",
        "-o",
        "com.docker.network.windowsshim.vlanid=12",
        "--subnet",
        "10.12.0.0/24",
        "--gateway",
        "10.12.0.1",
        "v12",
    ];
    if !has {
        refused(
            h.client().create(Kind::Networks, &body),
            REQUEST_UNSUPPORTED,
            "802.1q",
            "a VLAN network on a kernel without 8021q",
        );
        let (code, out, err) = h.daemon().run_cli(&cli);
        assert_ne!(code, 0, "hostnet {cli:?} succeeded: {out}");
        for says in ["802.1q", "modprobe 8021q", "0x803B0015"] {
            assert!(err.contains(says), "hostnet {cli:?}: no {says:?} in {err}");
        }
        assert_eq!(
            snapshot(h),
            before,
            "a refused VLAN network changed the host"
        );
        phys.hosts[0].daemon_mut().restart();
        assert_eq!(
            snapshot(&phys.hosts[0]),
            before,
            "a restart after the refusals changed the host"
        );
        return;
    }
    let mac = |dev: &str| hostnet_testbed::inspect::mac(phys.host(0).path(), dev);
    let eth0_mac = mac("eth0");
    let net = h
        .client()
        .create(Kind::Networks, &body)
        .expect("VLAN network");
    let sub = ip_out(h.path(), &["-d", "-o", "link", "show", "type", "vlan"]);
    assert!(
        sub.contains("vlan protocol 802.1Q id 11") && sub.contains("master hnbr"),
        "no VLAN 11 port on a bridge: {sub}"
    );
    let name = sub
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.split('@').next())
        .unwrap()
        .to_string();
    assert_eq!(mac(&name), eth0_mac);
    assert!(
        ip_out(h.path(), &["-4", "-o", "addr", "show", "dev", "eth0"]).contains(&h.addr),
        "the host's address left eth0"
    );
    let (code, out, err) = h.daemon().run_cli(&cli);
    assert_eq!(code, 0, "hostnet {cli:?}: {out} {err}");
    for n in [net["ID"].as_str().unwrap(), "v12"] {
        let (code, out, err) = h.daemon().run_cli(&["network", "rm", n]);
        assert_eq!(code, 0, "network rm {n}: {out} {err}");
    }
    assert_eq!(
        snapshot(h),
        before,
        "deleting the VLAN networks left something"
    );
}

/// Bad VLAN input, through the API and the CLI: each refused with its code
/// and a message saying what to do, nothing changed on the host.
#[test]
fn bad_vlan_input_is_refused_and_changes_nothing() {
    let test = "bad_vlan_input_is_refused_and_changes_nothing";
    let Some(phys) = world(test) else {
        return;
    };
    let h = phys.host(0);
    let c = h.client();
    let before = snapshot(h);
    let overlay = json!({ "Name": "ov", "Type": "Overlay", "Ipams": [{ "Subnets": [
        { "IpAddressPrefix": "10.1.0.0/24", "Policies": vlan(11) }] }] });
    let nat = json!({ "Name": "nat", "Type": "NAT", "Ipams": [{ "Subnets": [
        { "IpAddressPrefix": "10.1.0.0/24", "Policies": vlan(11) }] }] });
    let cases = [
        (
            network("zero", "Transparent", &[("10.1.0.0/24", vlan(0))]),
            INVALID_POLICY,
            "give 1-4094",
        ),
        (
            network("big", "L2Bridge", &[("10.1.0.0/24", vlan(4095))]),
            INVALID_POLICY,
            "give 1-4094",
        ),
        (
            network(
                "split",
                "Transparent",
                &[("10.1.0.0/24", vlan(11)), ("10.2.0.0/24", vlan(12))],
            ),
            INVALID_POLICY,
            "give all its subnets the same VLAN",
        ),
        (nat, INVALID_POLICY_TYPE, "NAT networks"),
        (overlay, INVALID_POLICY_TYPE, "VSID"),
        (
            network("tun", "L2Tunnel", &[("10.1.0.0/24", vlan(11))]),
            INVALID_POLICY_TYPE,
            "L2Bridge",
        ),
    ];
    for (body, code, says) in &cases {
        refused(
            c.create(Kind::Networks, body),
            *code,
            says,
            &body.to_string(),
        );
    }
    // An endpoint's VLAN needs its network's.
    let plain = c
        .create(
            Kind::Networks,
            &network("plain", "Transparent", &[("192.0.2.0/24", json!([]))]),
        )
        .expect("untagged Transparent network");
    let bound = snapshot(h);
    let ep = json!({ "HostComputeNetwork": plain["ID"], "Policies": vlan(11) });
    refused(
        c.create(Kind::Endpoints, &ep),
        INVALID_POLICY,
        "needs the network's VLAN",
        "an endpoint VLAN on an untagged network",
    );
    assert_eq!(snapshot(h), bound, "a refused endpoint changed the host");
    c.delete(Kind::Networks, plain["ID"].as_str().unwrap())
        .expect("delete");
    for (args, says) in [
        (
            &["-d", "nat", "-o", "vlanid=5"][..],
            "vlanid does not apply to nat",
        ),
        (
            &["-d", "overlay", "-o", "vlanid=5"][..],
            "vlanid does not apply to overlay",
        ),
        (
            &["-d", "transparent", "-o", "vlanid=0"][..],
            "outside 1-4094",
        ),
        (
            &["-d", "l2bridge", "-o", "vlanid=4095"][..],
            "outside 1-4094",
        ),
    ] {
        let mut full = vec!["network", "create"];
        full.extend_from_slice(args);
        full.extend(["--subnet", "10.5.0.0/24", "bad"]);
        let (code, out, err) = h.daemon().run_cli(&full);
        assert_ne!(code, 0, "hostnet {full:?} succeeded: {out}");
        assert!(err.contains(says), "hostnet {full:?}: no {says:?} in {err}");
    }
    assert_eq!(snapshot(h), before, "bad VLAN input changed the host");
}
