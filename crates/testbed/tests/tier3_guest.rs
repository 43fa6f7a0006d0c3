//! Tests that run inside the tier-3 VM (Debian's stock cloud kernel, with
//! the 8021q and bonding modules this machine's kernel lacks). On the host
//! they are ignored; `tests/tier3.rs` boots the VM and runs them there with
//! `--ignored`.

mod common;

use std::time::Duration;

use common::{port_mapping, World, HOST, HOST6, INTERNET, OUTSIDE6};
use hostnet_api::Kind;
use hostnet_testbed::capture::Capture;
use hostnet_testbed::firewall::assert_defaults_hold;
use hostnet_testbed::inspect::{ip_out, mac, neighbour, word_after};
use hostnet_testbed::physical::{id, Container, Host, GATEWAY, OUTSIDE};
use hostnet_testbed::{tier3, unique, wait_until, Netns, PhysicalNet, Probe, Session};
use serde_json::{json, Value};

fn in_vm(test: &str) {
    assert!(
        tier3::in_guest(),
        "{test} needs modules this kernel may lack; run it through tests/tier3.rs"
    );
}

fn ping(from: &Netns, to: &str) -> bool {
    from.output("ping", &["-c", "1", "-W", "1", to])
        .status
        .success()
}

/// The guest kernel is the stock one and has what the tier exists for:
/// 802.1q sub-interfaces on a trunk keep VLANs apart, and an
/// active-backup bond survives losing a member.
#[test]
#[ignore = "runs in the tier-3 VM: cargo test -p hostnet-testbed --test tier3"]
fn stock_kernel_vlans_stay_apart_and_a_bond_survives_a_member() {
    in_vm("stock_kernel_vlans_stay_apart_and_a_bond_survives_a_member");
    // One trunk between two hosts; on each end VLAN 11 stays in the host
    // and VLAN 12's sub-interface moves to a namespace of its own, all four
    // on one subnet: only the same VLAN can answer.
    let a = Netns::new(&unique("t3a"));
    let b = Netns::new(&unique("t3b"));
    let a12 = Netns::new(&unique("t3a12"));
    let b12 = Netns::new(&unique("t3b12"));
    a.ip(&[
        "link", "add", "trunk", "type", "veth", "peer", "name", "trunk", "netns", &b.name,
    ]);
    for (ns, ns12, host) in [(&a, &a12, 1), (&b, &b12, 2)] {
        ns.ip(&["link", "set", "trunk", "up"]);
        for vlan in ["11", "12"] {
            let dev = format!("trunk.{vlan}");
            ns.ip(&[
                "link", "add", "link", "trunk", "name", &dev, "type", "vlan", "id", vlan,
            ]);
        }
        ns.ip(&["link", "set", "trunk.12", "netns", &ns12.name]);
        ns.ip(&[
            "addr",
            "add",
            &format!("10.1.0.{host}/24"),
            "dev",
            "trunk.11",
        ]);
        ns.ip(&["link", "set", "trunk.11", "up"]);
        ns12.ip(&[
            "addr",
            "add",
            &format!("10.1.0.1{host}/24"),
            "dev",
            "trunk.12",
        ]);
        ns12.ip(&["link", "set", "trunk.12", "up"]);
    }
    assert!(
        ping(&a, "10.1.0.2"),
        "VLAN 11 does not reach across the trunk"
    );
    assert!(
        ping(&a12, "10.1.0.12"),
        "VLAN 12 does not reach across the trunk"
    );
    assert!(!ping(&a, "10.1.0.12"), "VLAN 11 reached VLAN 12");
    assert!(!ping(&a12, "10.1.0.2"), "VLAN 12 reached VLAN 11");

    let c = Netns::new(&unique("t3c"));
    let d = Netns::new(&unique("t3d"));
    c.ip(&[
        "link",
        "add",
        "bond0",
        "type",
        "bond",
        "mode",
        "active-backup",
        "miimon",
        "50",
    ]);
    for m in ["m1", "m2"] {
        c.ip(&[
            "link", "add", m, "type", "veth", "peer", "name", m, "netns", &d.name,
        ]);
        c.ip(&["link", "set", m, "master", "bond0"]);
        d.ip(&["link", "set", m, "up"]);
    }
    d.ip(&["link", "add", "br0", "type", "bridge"]);
    for m in ["m1", "m2"] {
        d.ip(&["link", "set", m, "master", "br0"]);
    }
    d.ip(&["addr", "add", "10.20.0.2/24", "dev", "br0"]);
    d.ip(&["link", "set", "br0", "up"]);
    c.ip(&["addr", "add", "10.20.0.1/24", "dev", "bond0"]);
    c.ip(&["link", "set", "bond0", "up"]);
    assert!(
        hostnet_testbed::wait_until(std::time::Duration::from_secs(5), || ping(&c, "10.20.0.2")),
        "the bond does not reach"
    );
    d.ip(&["link", "set", "m1", "down"]);
    assert!(
        hostnet_testbed::wait_until(std::time::Duration::from_secs(5), || ping(&c, "10.20.0.2")),
        "the bond did not fail over to m2"
    );
}

/// A network bound to `eth0`, its one subnet `prefix` (gateway `.1`) on
/// `vlan` (None: untagged).
fn bound_network(name: &str, kind: &str, prefix: &str, vlan: Option<u32>) -> Value {
    let policies = match vlan {
        Some(id) => json!([{ "Type": "VLAN", "Settings": { "IsolationId": id } }]),
        None => json!([]),
    };
    let gw = prefix.replace(".0/24", ".1");
    json!({ "Name": name, "Type": kind,
        "Ipams": [{ "Subnets": [{ "IpAddressPrefix": prefix, "Policies": policies,
            "Routes": [{ "NextHop": gw, "DestinationPrefix": "0.0.0.0/0" }] }] }],
        "Policies": [{ "Type": "NetAdapterName", "Settings": { "NetworkAdapterName": "eth0" } }] })
}

fn create_network(host: &Host, body: Value) -> String {
    id(&host
        .client()
        .create(Kind::Networks, &body)
        .unwrap_or_else(|e| panic!("create {body} on {}: {e}", host.addr)))
}

fn at(host: &Host, network: &str, ip: &str) -> Container {
    host.container_with(
        network,
        json!({ "IpConfigurations": [{ "IpAddress": ip }] }),
    )
}

/// `c` reaches `to` (within a deadline: the first ARP under TCG is slow).
fn reaches(c: &Container, to: &str) -> bool {
    wait_until(Duration::from_secs(10), || {
        Probe::run(&c.netns, &["ping", to]).0
    })
}

/// `c` does not reach `to`: three tries, none answered.
fn never_reaches(c: &Container, to: &str) -> bool {
    (0..3).all(|_| !Probe::run(&c.netns, &["ping", to]).0)
}

/// The host's VLAN links (`ip -d link show type vlan`), one a line.
fn vlan_links(host: &Host) -> String {
    ip_out(host.path(), &["-d", "-o", "link", "show", "type", "vlan"])
}

/// Issue 7's VLAN isolation on a trunk (the switch port of each host
/// carries every VLAN): hosts 1 and 2 each have a Transparent network on
/// VLAN 11 (10.11.0.0/24) and an L2Bridge network on VLAN 12
/// (10.12.0.0/24); host 3 a Transparent network on VLAN 12 with VLAN 11's
/// subnet; host 2 also an untagged L2Bridge network on eth0 (made first,
/// so its VLANs hang off a bridge port whose egress rewrites MACs). Same VLAN across hosts
/// reaches, a different VLAN does not even on the same subnet, the
/// untagged network and the host keep working, the trunk carries each
/// network's frames tagged (L2Bridge's with the host's MAC only), and a
/// restart after the kernel lost a sub-interface makes it again.
#[test]
#[ignore = "runs in the tier-3 VM: cargo test -p hostnet-testbed --test tier3"]
fn vlans_isolate_networks_across_hosts_on_one_trunk() {
    in_vm("vlans_isolate_networks_across_hosts_on_one_trunk");
    let mut phys = PhysicalNet::new("t3v", 3);
    phys.start_daemons(&["--no-default-network"]);
    let (h1, h2, h3) = (phys.host(0), phys.host(1), phys.host(2));
    let h1_eth0 = ip_out(h1.path(), &["-4", "-o", "addr", "show", "dev", "eth0"]);
    create_network(h2, bound_network("plain", "L2Bridge", "192.0.2.0/24", None));
    for h in [h1, h2] {
        create_network(
            h,
            bound_network("v11", "Transparent", "10.11.0.0/24", Some(11)),
        );
        create_network(
            h,
            bound_network("v12", "L2Bridge", "10.12.0.0/24", Some(12)),
        );
    }
    create_network(
        h3,
        bound_network("w12", "Transparent", "10.11.0.0/24", Some(12)),
    );
    for (h, ids) in [(h1, &["id 11", "id 12"][..]), (h3, &["id 12"])] {
        let links = vlan_links(h);
        for want in ids {
            assert!(
                links.contains(&format!("802.1Q {want}")),
                "no VLAN {want} link: {links}"
            );
        }
    }
    assert_eq!(
        ip_out(h1.path(), &["-4", "-o", "addr", "show", "dev", "eth0"]),
        h1_eth0,
        "the host's address left eth0"
    );

    let a1 = at(h1, "v11", "10.11.0.11");
    let a2 = at(h2, "v11", "10.11.0.12");
    let b1 = at(h1, "v12", "10.12.0.11");
    let b2 = at(h2, "v12", "10.12.0.12");
    let c3 = at(h3, "w12", "10.11.0.13");
    let u2 = at(h2, "plain", "192.0.2.52");

    let trunk = Capture::start(phys.switch.path(), "host1");
    assert!(reaches(&a1, &a2.ip), "VLAN 11 (Transparent) across hosts");
    assert!(reaches(&b1, &b2.ip), "VLAN 12 (L2Bridge) across hosts");
    assert!(
        never_reaches(&a1, &c3.ip),
        "VLAN 11 reached VLAN 12 on one subnet"
    );
    assert!(
        never_reaches(&c3, &a2.ip),
        "VLAN 12 reached VLAN 11 on one subnet"
    );
    assert!(
        reaches(&u2, GATEWAY),
        "the untagged network beside the VLANs"
    );
    let (ok, said) = Probe::run(h2.path(), &["ping", GATEWAY]);
    assert!(
        ok,
        "host 2 itself (untagged, on the bridge) -> router: {said}"
    );
    for filter in ["vlan 11 and icmp", "vlan 12 and icmp"] {
        assert!(trunk.saw(filter), "the capture got no {filter}");
    }
    let trunk = trunk.stop();

    let h1_mac = mac(h1.path(), "eth0");
    let h2_mac = mac(h2.path(), "eth0");
    let v11 = trunk.frames_with_macs("vlan 11 and icmp");
    assert!(
        v11.iter().any(|l| l.contains("10.11.0.11 > 10.11.0.12")),
        "no VLAN 11 echo on the trunk: {v11:?}"
    );
    let v12 = trunk.frames_with_macs("vlan 12 and icmp");
    assert!(
        v12.iter().any(|l| l.contains("10.12.0.11 > 10.12.0.12")),
        "no VLAN 12 echo on the trunk: {v12:?}"
    );
    // L2Bridge: the wire sees the hosts' MACs only.
    for l in &v12 {
        assert!(
            l.starts_with(&h1_mac) || l.starts_with(&h2_mac),
            "a VLAN 12 frame with a container's MAC: {l}"
        );
    }
    let arp12 = trunk.frames_with_macs("vlan 12 and arp");
    assert!(
        arp12
            .iter()
            .any(|l| l.contains("10.12.0.12 is-at") && l.contains(&h2_mac)),
        "no ARP answer for B2 with host 2's MAC: {arp12:?}"
    );
    assert_eq!(
        neighbour(&b1.netns, &b2.ip).as_deref(),
        Some(h2_mac.as_str()),
        "B1 learnt B2 behind another MAC than host 2's"
    );
    // Host 2's untagged L2Bridge rewrites source MACs at eth0, but not of
    // the tagged frames its VLAN 11 Transparent network sends through it.
    let a2_mac = mac(&a2.netns, "eth0");
    assert!(
        v11.iter()
            .any(|l| l.starts_with(&a2_mac) && l.contains("10.11.0.12 > 10.11.0.11")),
        "A2's echo reply did not keep A2's MAC {a2_mac}: {v11:?}"
    );
    let untagged = trunk.frames_with_macs("(net 10.11.0.0/24 or net 10.12.0.0/24) and not vlan");
    assert!(
        untagged.is_empty(),
        "VLAN traffic untagged on the trunk: {untagged:?}"
    );

    // Crash recovery: the kernel loses VLAN 11's sub-interface while the
    // daemon is down; the restarted daemon makes it again, and A1 reaches.
    let sub = vlan_links(&phys.hosts[0])
        .lines()
        .find(|l| l.contains("802.1Q id 11"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.split('@').next())
        .expect("VLAN 11 link")
        .to_string();
    let host1 = phys.hosts[0].netns.name.clone();
    phys.hosts[0].daemon_mut().kill9_and_restart_with(|| {
        hostnet_testbed::ip(&["-n", &host1, "link", "del", &sub]);
    });
    let h1 = phys.host(0);
    assert!(
        vlan_links(h1).contains("802.1Q id 11"),
        "the restart did not make VLAN 11's link again"
    );
    assert!(reaches(&a1, &a2.ip), "VLAN 11 after the restart");

    // Deleting the networks removes their sub-interfaces and nothing else.
    let c = h1.client();
    for ct in [&a1, &b1] {
        c.delete(Kind::Endpoints, &ct.ep_id)
            .expect("delete endpoint");
        c.delete(Kind::Namespaces, &ct.ns_id)
            .expect("delete namespace");
    }
    for n in ["v11", "v12"] {
        c.delete(Kind::Networks, &h1.network(n))
            .expect("delete network");
    }
    assert_eq!(vlan_links(h1), "", "sub-interfaces left after delete");
    assert_eq!(
        ip_out(h1.path(), &["-4", "-o", "addr", "show", "dev", "eth0"]),
        h1_eth0
    );
    let (ok, said) = Probe::run(h1.path(), &["ping", GATEWAY]);
    assert!(ok, "host 1 -> router after the deletes: {said}");
}

/// An overlay network's VSID is its VXLAN identifier, not a VLAN: with
/// VSID 11 and VLAN 11 side by side on two hosts, the overlay's frames
/// cross the trunk untagged as VXLAN (UDP 4789) between the hosts'
/// addresses, the VLAN network's tagged with 11, and no 802.1q link is
/// made for the overlay.
#[test]
#[ignore = "runs in the tier-3 VM: cargo test -p hostnet-testbed --test tier3"]
fn an_overlay_vsid_is_not_a_vlan() {
    in_vm("an_overlay_vsid_is_not_a_vlan");
    let mut phys = PhysicalNet::new("t3o", 2);
    phys.start_daemons(&["--no-default-network"]);
    let (h1, h2) = (phys.host(0), phys.host(1));
    let overlay = json!({ "Name": "ov", "Type": "Overlay",
        "Ipams": [{ "Type": "Static", "Subnets": [{ "IpAddressPrefix": "10.31.0.0/24",
            "Policies": [{ "Type": "VSID", "Settings": { "IsolationId": 11 } }] }] }] });
    for h in [h1, h2] {
        create_network(h, overlay.clone());
        assert_eq!(vlan_links(h), "", "an overlay made an 802.1q link");
        create_network(
            h,
            bound_network("v11", "Transparent", "10.11.0.0/24", Some(11)),
        );
    }
    let o1 = at(h1, "ov", "10.31.0.11");
    let o2 = at(h2, "ov", "10.31.0.12");
    for (host, of, c) in [(h1, h2, &o2), (h2, h1, &o1)] {
        let ep = of.client().get(Kind::Endpoints, &c.ep_id).expect("get");
        let body = json!({ "HostComputeNetwork": host.network("ov"), "Flags": 1,
            "IpConfigurations": [{ "IpAddress": c.ip }], "MacAddress": ep["MacAddress"],
            "Policies": [{ "Type": "ProviderAddress", "Settings": { "ProviderAddress": of.addr } }] });
        host.client()
            .create(Kind::Endpoints, &body)
            .expect("remote endpoint");
    }
    let a1 = at(h1, "v11", "10.11.0.11");
    let a2 = at(h2, "v11", "10.11.0.12");
    let trunk = Capture::start(phys.switch.path(), "host1");
    assert!(reaches(&o1, &o2.ip), "overlay VSID 11 across hosts");
    assert!(reaches(&a1, &a2.ip), "VLAN 11 across hosts");
    // Under emulation tcpdump may not have written these yet, and what is
    // still in its ring buffer at SIGINT is lost.
    for filter in ["udp port 4789", "vlan 11 and icmp"] {
        assert!(trunk.saw(filter), "the capture got no {filter}");
    }
    let trunk = trunk.stop();
    let vxlan = trunk.frames_with_macs("udp port 4789");
    assert!(
        vxlan
            .iter()
            .any(|l| l.contains(&format!("{}.", h1.addr)) && l.contains(&format!("{}.", h2.addr))),
        "no VXLAN between the hosts' addresses: {vxlan:?}"
    );
    let tagged_vxlan = trunk.frames_with_macs("vlan and udp port 4789");
    assert!(tagged_vxlan.is_empty(), "VXLAN tagged: {tagged_vxlan:?}");
    let v11 = trunk.frames_with_macs("vlan 11 and icmp");
    assert!(!v11.is_empty(), "VLAN 11's echo not tagged 11");
    assert!(
        v11.iter().all(|l| !l.contains("10.31.0.")),
        "overlay traffic in VLAN 11: {v11:?}"
    );
}

/// What the VLAN networks stand on, without hostnetd (so it runs on this
/// kernel today): `Op::CreateVlan` through hostnet's own rtnetlink code
/// makes a sub-interface with the parent's MAC, the given MTU and no IPv6
/// link-local address, whose frames cross a trunk tagged (only the same VLAN
/// answers at the other end); and a netdev egress chain on the trunk that
/// returns on `ether type 0x8100` first (as `to_uplink` does) does not
/// rewrite the sub-interface's tagged frames, but does untagged ones
/// (counted by source MAC where they arrive).
#[test]
#[ignore = "runs in the tier-3 VM: cargo test -p hostnet-testbed --test tier3"]
fn the_dataplane_makes_vlan_links_whose_frames_leave_tagged() {
    use hostnet_dataplane::{apply, linux::LinuxDataplane, Dataplane, Op};
    in_vm("the_dataplane_makes_vlan_links_whose_frames_leave_tagged");
    let a = Netns::new(&unique("t3va"));
    let b = Netns::new(&unique("t3vb"));
    a.ip(&[
        "link", "add", "trunk", "type", "veth", "peer", "name", "trunk", "netns", &b.name,
    ]);
    // No IPv6 on A's trunk: its link-local chatter (DAD, MLD, RS) would
    // leave untagged at any moment and be counted as rewritten below.
    let off = a.output("sysctl", &["-w", "net.ipv6.conf.trunk.disable_ipv6=1"]);
    assert!(off.status.success(), "sysctl: {off:?}");
    a.ip(&["link", "set", "trunk", "up"]);
    b.ip(&["link", "set", "trunk", "up"]);
    let trunk_mac = mac(a.path(), "trunk");
    let parse = |m: &str| -> [u8; 6] {
        let v: Vec<u8> = m
            .split(':')
            .map(|x| u8::from_str_radix(x, 16).unwrap())
            .collect();
        v.try_into().unwrap()
    };
    let make = Op::CreateVlan {
        name: "hnq00112".into(),
        parent: "trunk".into(),
        id: 11,
        mtu: 1400,
        mac: parse(&trunk_mac),
    };
    let design = hostnet_testbed::run_in(a.path(), || {
        let dp = LinuxDataplane::new().expect("dataplane");
        apply(&dp, std::slice::from_ref(&make)).expect("CreateVlan");
        // A second one on the same VLAN of the trunk is refused.
        let again = Op::CreateVlan {
            name: "hnq00113".into(),
            parent: "trunk".into(),
            id: 11,
            mtu: 1400,
            mac: parse(&trunk_mac),
        };
        let e = dp.execute(&again).expect_err("VLAN 11 twice");
        assert!(e.message.contains("VLAN 11"), "{e}");
        dp.hook_design()
    });
    // The hooking design the dataplane's probe picks is what this kernel
    // does with a netdev chain on a device that does not exist: only the
    // device-list design may rely on it (hostnet_nft::hook).
    measured(&format!("hooking devices with {}", design.describe()));
    let missing = a.output(
        "nft",
        &["add table netdev hp; add chain netdev hp c { type filter hook ingress device \"hnt-missing\" priority 0; }"],
    );
    assert_eq!(
        missing.status.success(),
        design == hostnet_nft::hook::HookDesign::DeviceList,
        "probe: {design:?}; a chain on a missing device: {missing:?}"
    );
    let _ = a.output("nft", &["delete table netdev hp"]);
    let link = ip_out(a.path(), &["-d", "-o", "link", "show", "dev", "hnq00112"]);
    for want in ["vlan protocol 802.1Q id 11", "mtu 1400", &trunk_mac, "UP"] {
        assert!(link.contains(want), "no {want:?} in {link}");
    }
    assert_eq!(
        ip_out(a.path(), &["-6", "-o", "addr", "show", "dev", "hnq00112"]),
        "",
        "the sub-interface has an IPv6 address"
    );
    a.ip(&["addr", "add", "10.11.0.1/24", "dev", "hnq00112"]);
    // VLAN 12's end in a namespace of its own: B would answer ARP for
    // any of its addresses on any of its links.
    let b12 = Netns::new(&unique("t3vb12"));
    for (vlan, addr, ns) in [("11", "10.11.0.2/24", &b), ("12", "10.11.0.3/24", &b12)] {
        let dev = format!("trunk.{vlan}");
        b.ip(&[
            "link", "add", "link", "trunk", "name", &dev, "type", "vlan", "id", vlan,
        ]);
        if vlan == "12" {
            b.ip(&["link", "set", &dev, "netns", &b12.name]);
        }
        ns.ip(&["addr", "add", addr, "dev", &dev]);
        ns.ip(&["link", "set", &dev, "up"]);
    }
    // to_uplink's shape on the trunk: tagged frames return before the rewrite.
    for cmd in [
        &["add", "table", "netdev", "t"][..],
        &[
            "add",
            "chain",
            "netdev",
            "t",
            "c",
            "{ type filter hook egress device trunk priority 0; }",
        ],
        &[
            "add", "rule", "netdev", "t", "c", "ether", "type", "0x8100", "return",
        ],
        &[
            "add",
            "rule",
            "netdev",
            "t",
            "c",
            "ether",
            "saddr",
            "set",
            "02:00:00:00:00:99",
        ],
    ] {
        let out = a.output("nft", cmd);
        assert!(
            out.status.success(),
            "nft {cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // B counts the frames arriving from each source MAC.
    let rewritten = "02:00:00:00:00:99";
    for cmd in [
        &["add", "table", "netdev", "r"][..],
        &[
            "add",
            "chain",
            "netdev",
            "r",
            "c",
            "{ type filter hook ingress device trunk priority 0; }",
        ],
        &[
            "add", "rule", "netdev", "r", "c", "ether", "saddr", rewritten, "counter",
        ],
        &[
            "add", "rule", "netdev", "r", "c", "ether", "saddr", &trunk_mac, "counter",
        ],
    ] {
        let out = b.output("nft", cmd);
        assert!(
            out.status.success(),
            "nft {cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let frames_from = |src: &str| -> u64 {
        let out = b.output("nft", &["list", "chain", "netdev", "r", "c"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find(|l| l.contains(src))
            .and_then(|l| word_after(l, "packets"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no counter for {src}: {text}"))
    };
    assert!(
        wait_until(Duration::from_secs(5), || ping(&a, "10.11.0.2")),
        "VLAN 11 does not reach across the trunk"
    );
    assert!(!ping(&a, "10.11.0.3"), "VLAN 11 reached VLAN 12");
    assert_eq!(
        frames_from(rewritten),
        0,
        "the egress chain rewrote a tagged frame's source MAC"
    );
    assert!(frames_from(&trunk_mac) > 0, "no tagged frame seen");
    // The control: the same chain does rewrite untagged frames.
    a.ip(&["addr", "add", "10.99.0.1/24", "dev", "trunk"]);
    b.ip(&["addr", "add", "10.99.0.2/24", "dev", "trunk"]);
    // (B learns A's real MAC from ARP's sender field, which the chain
    // leaves alone, so the replies find A.)
    assert!(
        wait_until(Duration::from_secs(5), || ping(&a, "10.99.0.2")),
        "untagged across the trunk"
    );
    assert!(
        frames_from(rewritten) > 0,
        "the egress chain did not rewrite an untagged frame"
    );
    hostnet_testbed::run_in(a.path(), || {
        let dp = LinuxDataplane::new().expect("dataplane");
        let failed = hostnet_dataplane::teardown(&dp, &[make.undo().unwrap()]);
        assert!(failed.is_empty(), "delete: {failed:?}");
    });
    assert_eq!(
        ip_out(a.path(), &["-o", "link", "show", "type", "vlan"]),
        "",
        "the sub-interface outlived its delete"
    );
}

/// The host end of an endpoint's veth: `hnve` + 10 hex digits of its ID.
fn veth_of(c: &Container) -> String {
    format!("hnve{}", &c.ep_id.replace('-', "").to_lowercase()[..10])
}

/// hostnetd on the stock kernel, NAT network: a container reaches the
/// outside masqueraded, a published port is reached from outside, the
/// endpoint firewall (each port's netdev hook) drops GRE from a sibling;
/// after a kill -9 during which one endpoint's veth vanished, the restart
/// rebuilds and hooks it again, and an open connection survives; an ACL
/// judges a sibling's connections (`br_netfilter`, loaded by hostnetd).
#[test]
#[ignore = "runs in the tier-3 VM: cargo test -p hostnet-testbed --test tier3"]
fn stock_kernel_nat_network_end_to_end() {
    in_vm("stock_kernel_nat_network_end_to_end");
    let mut w = World::new("stock_kernel_nat_network_end_to_end").expect("root in the VM");
    let server = Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("{INTERNET}:7000")],
    );
    let a = w.container("nat", json!([port_mapping(6, 80, 8080)]));
    let b = w.container("nat", json!([]));
    let (ok, said) = a.run(&["tcp-get", &format!("{INTERNET}:7000")]);
    assert!(ok, "the container could not reach the outside: {said}");
    assert!(
        said.starts_with(&format!("peer {HOST}:")),
        "outside saw {said}"
    );
    assert!(server.next_line().is_some());

    let _echo = a.serve(&["tcp-echo", "0.0.0.0:80"]);
    let mut session = Session::open(w.outside.path(), &format!("{HOST}:8080"));
    assert_eq!(session.say("one"), "one", "published port from outside");

    let gre_from_sibling_dropped = |to: &Container, from: &Container| {
        let listen = to.serve(&["raw-listen", "47"]);
        assert!(from.run(&["raw-send", "47", &to.ip]).0);
        assert!(from.run(&["ping", &to.ip]).0, "ping between siblings");
        listen.next_line().is_none()
    };
    assert!(gre_from_sibling_dropped(&a, &b), "GRE reached a");
    assert!(gre_from_sibling_dropped(&b, &a), "GRE reached b");

    let gone = veth_of(&b);
    w.daemon.kill9_and_restart_with(|| {
        w.host.ip(&["link", "del", &gone]);
    });
    assert_eq!(session.say("two"), "two", "connection lost over kill -9");
    let hooked = w.nft_elements("netdev hostnet_egress", "chain", "nat_endpoint_inbound");
    assert!(
        hooked.contains(&gone) && hooked.contains(&veth_of(&a)),
        "ports not hooked after the restart: {hooked}"
    );
    assert!(
        gre_from_sibling_dropped(&b, &a),
        "GRE reached the rebuilt b"
    );
    let (ok, said) = b.run(&["tcp-get", &format!("{INTERNET}:7000")]);
    assert!(
        ok,
        "the rebuilt container could not reach the outside: {said}"
    );

    // ACLs judge traffic between siblings in the inet table, which bridged
    // frames reach only through br_netfilter: a module here, which
    // hostnetd loads.
    let acl = |id: &str, action: &str, prio: u16, extra: Value| {
        let mut s = json!({ "Id": id, "Action": action, "Direction": "In", "Priority": prio });
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({ "Type": "ACL", "Settings": s })
    };
    let guarded = w.container(
        "nat",
        json!([
            acl(
                "web",
                "Allow",
                100,
                json!({ "Protocols": "6", "LocalPorts": "80" })
            ),
            acl("deny-in", "Block", 1000, json!({})),
        ]),
    );
    let _web = guarded.serve(&["tcp-serve", "0.0.0.0:80"]);
    let _other = guarded.serve(&["tcp-serve", "0.0.0.0:81"]);
    assert!(
        a.run(&["tcp-get", &format!("{}:80", guarded.ip)]).0,
        "sibling -> 80"
    );
    assert!(
        !a.run(&["tcp-get", &format!("{}:81", guarded.ip)]).0,
        "sibling -> 81 passed the ACL"
    );

    // Deleting an endpoint deletes its port's chain (the kernel already
    // did with the veth on 6.1; hostnet's own delete finds nothing).
    w.client()
        .delete(Kind::Endpoints, &b.ep_id)
        .expect("delete b");
    let hooked = w.nft_elements("netdev hostnet_egress", "chain", "nat_endpoint_inbound");
    assert!(!hooked.contains(&gone), "{hooked}");
}

/// IPv6 load balancers on the stock kernel (Debian 12's 6.1): the IPv6
/// maps and the pick chains' IPv6 rules balance a VIP from a container
/// and from outside, and a node port on the host's IPv6 address.
#[test]
#[ignore = "runs in the tier-3 VM: cargo test -p hostnet-testbed --test tier3"]
fn stock_kernel_ipv6_load_balancers() {
    in_vm("stock_kernel_ipv6_load_balancers");
    let w = World::dual_stack("stock_kernel_ipv6_load_balancers").expect("root in the VM");
    let c = w.client();
    c.create(
        Kind::Networks,
        &json!({ "Name": "dual", "Type": "nat", "Ipams": [{ "Type": "Static", "Subnets": [
            { "IpAddressPrefix": "10.77.0.0/24" }, { "IpAddressPrefix": "fd00:77::/64" }
        ] }] }),
    )
    .expect("dual-stack network");
    let backends: Vec<_> = (0..2).map(|_| w.container("dual", json!([]))).collect();
    let servers: Vec<Probe> = backends
        .iter()
        .map(|b| b.serve(&["tcp-serve", "[::]:8080"]))
        .collect();
    let ids: Vec<&str> = backends.iter().map(|b| b.ep_id.as_str()).collect();
    let lb6 = |vips: &[&str], port: u16| {
        json!({ "HostComputeEndpoints": ids, "FrontendVIPs": vips, "Flags": 2,
            "PortMappings": [{ "Protocol": 6, "InternalPort": 8080, "ExternalPort": port }] })
    };
    c.create(Kind::LoadBalancers, &lb6(&["fd00:96::10"], 80))
        .expect("IPv6 VIP");
    c.create(Kind::LoadBalancers, &lb6(&[], 30080))
        .expect("IPv6 node port");
    let served = |n: usize| {
        let mut counts = vec![0; servers.len()];
        let all = wait_until(Duration::from_secs(10), || {
            for (count, s) in counts.iter_mut().zip(&servers) {
                *count += s.drain().len();
            }
            counts.iter().sum::<usize>() >= n
        });
        assert!(all, "only {counts:?} of {n} arrived");
        counts
    };
    let client = w.container("dual", json!([]));
    for _ in 0..16 {
        let (ok, said) = client.run(&["tcp-get", "[fd00:96::10]:80"]);
        assert!(ok, "container to the IPv6 VIP: {said}");
    }
    let counts = served(16);
    assert!(counts.iter().all(|&n| n > 0), "not spread: {counts:?}");
    w.outside
        .ip(&["-6", "route", "add", "fd00:96::/64", "via", HOST6]);
    for to in ["[fd00:96::10]:80".to_string(), format!("[{HOST6}]:30080")] {
        let (ok, said) = Probe::run(w.outside.path(), &["tcp-get", &to]);
        assert!(ok, "outside to {to}: {said}");
        assert!(said.starts_with(&format!("peer [{OUTSIDE6}]:")), "{said}");
        served(1);
    }
}

/// Container addresses on the physical subnet, hosts 1 and 2.
const A: &str = "192.0.2.50";
const D: &str = "192.0.2.60";
const E: &str = "192.0.2.52";

/// A network of `kind` on 192.0.2.0/24 bound to each host's `eth0`.
fn bind_untagged(host: &Host, kind: &str) {
    let body = json!({
        "Name": "phys",
        "Type": kind,
        "Ipams": [{ "Subnets": [
            { "IpAddressPrefix": "192.0.2.0/24",
              "Routes": [{ "NextHop": GATEWAY, "DestinationPrefix": "0.0.0.0/0" }] },
        ] }],
        "Policies": [{ "Type": "NetAdapterName", "Settings": { "NetworkAdapterName": "eth0" } }],
    });
    host.client()
        .create(Kind::Networks, &body)
        .unwrap_or_else(|e| panic!("create a {kind} network on {}: {e}", host.addr));
}

fn container_at(host: &Host, ip: &str, policies: Value) -> Container {
    let c = host.container_with(
        "phys",
        json!({ "IpConfigurations": [{ "IpAddress": ip }], "Policies": policies }),
    );
    assert_eq!(c.ip, ip);
    c
}

/// `from` connects to a TCP server in `to`; the address the server saw.
fn tcp_peer(from: &Container, to: &Container, port: u16) -> String {
    let srv = to.serve(&["tcp-serve", &format!("0.0.0.0:{port}")]);
    let (ok, said) = from.run(&["tcp-get", &format!("{}:{port}", to.ip)]);
    assert!(ok, "{} -> {}: {said}", from.ip, to.ip);
    let seen = srv.next_line().unwrap_or_default();
    seen.strip_prefix("peer ")
        .and_then(|p| p.rsplit_once(':'))
        .map(|(a, _)| a.to_string())
        .unwrap_or_else(|| panic!("the server said {seen:?}"))
}

/// Two hosts on one physical segment, each with a network of `kind`
/// bound to its uplink: containers on both reach each other with their
/// own addresses, and the endpoint firewall holds.
fn bound_networks_on_two_hosts(test: &str, kind: &str) -> (PhysicalNet, Container, Container) {
    in_vm(test);
    let mut phys = PhysicalNet::new("t3p", 2);
    phys.start_daemons(&["--no-default-network"]);
    let (h1, h2) = (phys.host(0), phys.host(1));
    bind_untagged(h1, kind);
    bind_untagged(h2, kind);
    let a = container_at(h1, A, json!([]));
    let d = container_at(h2, D, json!([]));
    assert_eq!(tcp_peer(&a, &d, 80), A, "{kind}: host 1 to host 2");
    assert_eq!(tcp_peer(&d, &a, 81), D, "{kind}: host 2 to host 1");
    let senders = [phys.router.path(), d.netns.as_path()];
    assert_defaults_hold(&a, &senders, phys.outside.path(), OUTSIDE);
    (phys, a, d)
}

#[test]
#[ignore = "runs in the tier-3 VM: cargo test -p hostnet-testbed --test tier3"]
fn stock_kernel_transparent_networks_on_two_hosts() {
    bound_networks_on_two_hosts(
        "stock_kernel_transparent_networks_on_two_hosts",
        "Transparent",
    );
}

/// L2Bridge adds the uplink's hooks (the host's MAC on the wire) and an
/// outbound-NAT port's detour; both survive a kill -9.
#[test]
#[ignore = "runs in the tier-3 VM: cargo test -p hostnet-testbed --test tier3"]
fn stock_kernel_l2bridge_networks_on_two_hosts() {
    let test = "stock_kernel_l2bridge_networks_on_two_hosts";
    let (mut phys, a, d) = bound_networks_on_two_hosts(test, "L2Bridge");
    let nat = json!([{ "Type": "OutBoundNAT", "Settings": { "Exceptions": ["192.0.2.0/24"] } }]);
    let e = container_at(phys.host(0), E, nat);
    let outside_sees = |phys: &PhysicalNet, c: &Container, port: u16| {
        let srv = Probe::serve(
            phys.outside.path(),
            &["tcp-serve", &format!("{OUTSIDE}:{port}")],
        );
        let (ok, said) = c.run(&["tcp-get", &format!("{OUTSIDE}:{port}")]);
        assert!(ok, "{} -> outside: {said}", c.ip);
        srv.next_line().unwrap_or_default()
    };
    let h1 = phys.host(0).addr.clone();
    assert!(outside_sees(&phys, &e, 7000).starts_with(&format!("peer {h1}:")));
    assert_eq!(tcp_peer(&e, &d, 82), E, "D is an exception");
    phys.hosts[0].daemon_mut().kill9_and_restart();
    assert!(outside_sees(&phys, &e, 7001).starts_with(&format!("peer {h1}:")));
    assert_eq!(tcp_peer(&d, &a, 83), D, "after kill -9");
}

/// Report a measurement past libtest's capture (straight to stderr):
/// `tests/tier3.rs` relays the console's `measured:` lines.
fn measured(what: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "measured: {what}");
}

/// A network of `kind` named "phys" on 192.0.2.0/24 teaming host 1's
/// `eth0` and `eth1` (`mode`: None is the default, active-backup).
fn team_network(kind: &str, mode: Option<&str>) -> Value {
    let mut settings = json!({ "NetworkAdapterName": "eth0,eth1" });
    if let Some(m) = mode {
        settings["TeamingMode"] = json!(m);
    }
    json!({
        "Name": "phys",
        "Type": kind,
        "Ipams": [{ "Subnets": [
            { "IpAddressPrefix": "192.0.2.0/24",
              "Routes": [{ "NextHop": GATEWAY, "DestinationPrefix": "0.0.0.0/0" }] },
        ] }],
        "Policies": [{ "Type": "NetAdapterName", "Settings": settings }],
    })
}

/// What giving an adapter back must restore, as `ip` shows it: flags
/// (up, carrier), MTU, MAC, no master; global addresses; routes.
fn adapter_state(host: &Host, dev: &str) -> String {
    let link = ip_out(host.path(), &["-o", "link", "show", "dev", dev]);
    let words: Vec<&str> = link.split_whitespace().collect();
    let after = |k: &str| {
        words
            .iter()
            .position(|w| *w == k)
            .and_then(|i| words.get(i + 1))
            .copied()
            .unwrap_or("-")
    };
    let mut addrs: Vec<String> = ip_out(
        host.path(),
        &["-o", "addr", "show", "dev", dev, "scope", "global"],
    )
    .lines()
    .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
    .collect();
    addrs.sort();
    let mut routes: Vec<String> = ip_out(host.path(), &["route", "show", "dev", dev])
        .lines()
        .map(str::to_string)
        .collect();
    routes.sort();
    format!(
        "{dev}: flags {} mtu {} mac {} master {} addrs {addrs:?} routes {routes:?}",
        words.get(2).unwrap_or(&"-"),
        after("mtu"),
        after("link/ether"),
        after("master"),
    )
}

/// The bond's `/proc/net/bonding` report, as the host sees it.
fn bonding_report(host: &Host, bond: &str) -> String {
    let out = host
        .netns
        .output("cat", &[&format!("/proc/net/bonding/{bond}")]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn active_member(host: &Host, bond: &str) -> Option<String> {
    bonding_report(host, bond)
        .lines()
        .find_map(|l| l.strip_prefix("Currently Active Slave: "))
        .map(|s| s.trim().to_string())
        .filter(|s| s != "None")
}

/// Packets `dev` has sent (`/proc/net/dev` of the host).
fn tx_packets(host: &Host, dev: &str) -> u64 {
    let out = host.netns.output("cat", &["/proc/net/dev"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(&format!("{dev}:"))
                .map(str::to_string)
        })
        .and_then(|rest| rest.split_whitespace().nth(9)?.parse().ok())
        .unwrap_or_else(|| panic!("no counters of {dev}"))
}

/// `from` streams UDP to `to` every 10 ms while host 1's active team
/// member loses its carrier (its switch port goes down); the bond must
/// fail over. Returns (longest gap between echoes in ms, lost, sent) and
/// the member that was cut (its port is brought back up).
fn cut_active_member(
    phys: &PhysicalNet,
    bond: &str,
    from: &Container,
    to: &Container,
) -> ((u64, u64, u64), String) {
    let h1 = phys.host(0);
    let active = active_member(h1, bond).expect("an active member");
    let _echo = to.serve(&["udp-echo", "0.0.0.0:7007"]);
    let stream = from.serve(&["udp-stream", &format!("{}:7007", to.ip), "10", "6"]);
    let flowing = wait_until(Duration::from_secs(15), || {
        stream.next_line().as_deref() == Some("flowing")
    });
    assert!(flowing, "the stream never flowed before the cut");
    let port = phys.switch_port(0, &active);
    phys.set_switch_port(&port, false);
    let failed_over = wait_until(Duration::from_secs(10), || {
        active_member(h1, bond).is_some_and(|m| m != active)
    });
    assert!(
        failed_over,
        "the bond kept {active} after its carrier went: {}",
        bonding_report(h1, bond)
    );
    let mut summary = None;
    wait_until(Duration::from_secs(30), || {
        summary = stream.next_line().filter(|l| l.starts_with("sent "));
        summary.is_some()
    });
    let summary = summary.expect("the stream's summary");
    let n = |k: &str| {
        word_after(&summary, k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap()
    };
    let (sent, echoed, gap) = (n("sent"), n("echoed"), n("longest-gap-ms"));
    phys.set_switch_port(&port, true);
    let back = wait_until(Duration::from_secs(10), || {
        bonding_report(h1, bond)
            .split("Slave Interface: ")
            .any(|s| s.starts_with(&active) && s.contains("MII Status: up"))
    });
    assert!(
        back,
        "{active} did not come back: {}",
        bonding_report(h1, bond)
    );
    ((gap, sent - echoed, sent), active)
}

/// Issue 7's teaming, active-backup on Transparent: host 1 has two
/// uplinks to the switch and a network teaming both; its container
/// reaches host 2's, and stays connected when the active member's cable
/// is pulled (the interruption is measured and printed); a kill -9 during
/// which the bond vanished rebuilds it; deleting the network gives both
/// adapters back exactly as they were.
#[test]
#[ignore = "runs in the tier-3 VM: cargo test -p hostnet-testbed --test tier3"]
fn a_team_of_two_uplinks_survives_losing_its_active_member() {
    in_vm("a_team_of_two_uplinks_survives_losing_its_active_member");
    let mut phys = PhysicalNet::new("t3t", 2);
    phys.add_uplink(0, "eth1");
    phys.start_daemons(&["--no-default-network"]);
    let before: Vec<String> = ["eth0", "eth1"]
        .iter()
        .map(|d| adapter_state(phys.host(0), d))
        .collect();
    let (h1, h2) = (phys.host(0), phys.host(1));
    let net = h1
        .client()
        .create(Kind::Networks, &team_network("Transparent", None))
        .expect("create the team");
    let team = &net["Team"];
    assert_eq!(team["Mode"], "active-backup", "{net}");
    assert_eq!(team["Members"], json!(["eth0", "eth1"]), "{net}");
    let bond = team["Bond"].as_str().expect("bond").to_string();
    let report = bonding_report(h1, &bond);
    assert!(
        report.contains("Bonding Mode: fault-tolerance (active-backup)")
            && report.contains("Slave Interface: eth0")
            && report.contains("Slave Interface: eth1"),
        "{report}"
    );
    let (code, shown, err) = h1.daemon().run_cli(&["network", "inspect", "phys"]);
    assert!(
        code == 0 && shown.contains(&bond) && shown.contains("eth1"),
        "{shown}{err}"
    );
    let (ok, said) = Probe::run(h1.path(), &["ping", GATEWAY]);
    assert!(ok, "host 1 itself behind its team -> router: {said}");
    bind_untagged(h2, "Transparent");
    let a = container_at(h1, A, json!([]));
    let d = container_at(h2, D, json!([]));
    assert_eq!(tcp_peer(&a, &d, 80), A, "host 1 to host 2 over the team");
    assert_eq!(tcp_peer(&d, &a, 81), D, "host 2 to host 1 over the team");

    let ((gap, lost, sent), cut) = cut_active_member(&phys, &bond, &a, &d);
    measured(&format!(
        "team failover (active-backup, {cut} cut at the switch): longest gap {gap} ms, {lost} of {sent} datagrams at 10 ms lost"
    ));
    assert!(gap < 3000, "the team was out {gap} ms");
    assert_eq!(tcp_peer(&a, &d, 82), A, "after {cut} came back");

    // The bond vanishes while hostnetd is down: the restart makes it again.
    let host1 = phys.hosts[0].netns.name.clone();
    let gone = bond.clone();
    phys.hosts[0].daemon_mut().kill9_and_restart_with(|| {
        hostnet_testbed::ip(&["-n", &host1, "link", "del", &gone]);
    });
    let h1 = phys.host(0);
    let report = bonding_report(h1, &bond);
    assert!(
        report.contains("Slave Interface: eth0") && report.contains("Slave Interface: eth1"),
        "the restart did not rebuild the team: {report}"
    );
    assert_eq!(tcp_peer(&d, &a, 83), D, "after the rebuild");

    let c = h1.client();
    c.delete(Kind::Endpoints, &a.ep_id)
        .expect("delete endpoint");
    c.delete(Kind::Namespaces, &a.ns_id)
        .expect("delete namespace");
    c.delete(Kind::Networks, &id(&net))
        .expect("delete the team");
    let after: Vec<String> = ["eth0", "eth1"]
        .iter()
        .map(|d| adapter_state(h1, d))
        .collect();
    assert_eq!(
        after, before,
        "the adapters were not given back as they were"
    );
    assert!(
        !ip_out(h1.path(), &["-o", "link"]).contains(&bond),
        "the bond is left"
    );
    let (ok, said) = Probe::run(h1.path(), &["ping", GATEWAY]);
    assert!(ok, "host 1 -> router on its own eth0 again: {said}");
}

/// The load-balancing mode, balance-tlb on L2Bridge: two containers'
/// flows leave through different members (a layer 2+3 hash of the
/// addresses), the team survives losing its active member, and deleting
/// the network gives the adapters back.
#[test]
#[ignore = "runs in the tier-3 VM: cargo test -p hostnet-testbed --test tier3"]
fn a_balance_tlb_team_spreads_flows_over_both_members() {
    in_vm("a_balance_tlb_team_spreads_flows_over_both_members");
    let mut phys = PhysicalNet::new("t3b", 2);
    phys.add_uplink(0, "eth1");
    phys.start_daemons(&["--no-default-network"]);
    let before: Vec<String> = ["eth0", "eth1"]
        .iter()
        .map(|d| adapter_state(phys.host(0), d))
        .collect();
    let (h1, h2) = (phys.host(0), phys.host(1));
    let net = h1
        .client()
        .create(
            Kind::Networks,
            &team_network("L2Bridge", Some("balance-tlb")),
        )
        .expect("create the team");
    let bond = net["Team"]["Bond"].as_str().expect("bond").to_string();
    assert!(
        bonding_report(h1, &bond).contains("transmit load balancing"),
        "{}",
        bonding_report(h1, &bond)
    );
    let details = ip_out(h1.path(), &["-d", "link", "show", "dev", &bond]);
    assert!(
        details.contains("xmit_hash_policy layer2+3") && details.contains("tlb_dynamic_lb 0"),
        "{details}"
    );
    bind_untagged(h2, "L2Bridge");
    // .50 and .51: their layer 2+3 hashes differ in the bit that picks
    // one of two members (the hash XORs the addresses and folds them).
    let a = container_at(h1, A, json!([]));
    let e = container_at(h1, "192.0.2.51", json!([]));
    let d = container_at(h2, D, json!([]));
    assert_eq!(tcp_peer(&a, &d, 80), A);
    assert_eq!(tcp_peer(&e, &d, 81), e.ip);
    assert_eq!(tcp_peer(&d, &a, 82), D);

    let _sink = d.serve(&["udp-sink", "0.0.0.0:9009"]);
    let tx = |h: &Host| (tx_packets(h, "eth0"), tx_packets(h, "eth1"));
    let (eth0_before, eth1_before) = tx(h1);
    for c in [&a, &e] {
        let (ok, said) = c.run(&["udp-send", &format!("{D}:9009"), "300", "64"]);
        assert!(ok, "{said}");
    }
    let (eth0_after, eth1_after) = tx(h1);
    let (sent0, sent1) = (eth0_after - eth0_before, eth1_after - eth1_before);
    measured(&format!(
        "team balance-tlb: of 600 datagrams from two containers, eth0 sent {sent0} packets, eth1 {sent1}"
    ));
    assert!(
        sent0 >= 250 && sent1 >= 250,
        "the flows were not spread: eth0 {sent0}, eth1 {sent1}"
    );

    let ((gap, lost, sent), cut) = cut_active_member(&phys, &bond, &a, &d);
    measured(&format!(
        "team failover (balance-tlb, {cut} cut at the switch): longest gap {gap} ms, {lost} of {sent} datagrams at 10 ms lost"
    ));
    assert!(gap < 3000, "the team was out {gap} ms");

    let h1 = phys.host(0);
    let c = h1.client();
    for ct in [&a, &e] {
        c.delete(Kind::Endpoints, &ct.ep_id)
            .expect("delete endpoint");
        c.delete(Kind::Namespaces, &ct.ns_id)
            .expect("delete namespace");
    }
    c.delete(Kind::Networks, &id(&net))
        .expect("delete the team");
    let after: Vec<String> = ["eth0", "eth1"]
        .iter()
        .map(|d| adapter_state(h1, d))
        .collect();
    assert_eq!(
        after, before,
        "the adapters were not given back as they were"
    );
}

/// ACLs on an overlay endpoint on Linux 6.1 (docs/drivers/overlay.md
/// "ACLs"): the router hands its subnet's bridged frames to the IP hooks
/// by the bridge's own `nf_call_iptables` (`br_netfilter` is a module
/// there, which hostnetd loads), so a default-deny ladder judges a sibling
/// on the same host and a peer over VXLAN, and replies of the endpoint's
/// own connections come back.
#[test]
#[ignore = "runs in the tier-3 VM: cargo test -p hostnet-testbed --test tier3"]
fn stock_kernel_overlay_acls_judge_bridged_and_vxlan_traffic() {
    in_vm("stock_kernel_overlay_acls_judge_bridged_and_vxlan_traffic");
    let mut phys = PhysicalNet::new("t3a", 2);
    phys.start_daemons(&["--no-default-network"]);
    let (h1, h2) = (phys.host(0), phys.host(1));
    let overlay = json!({ "Name": "ov", "Type": "Overlay",
        "Ipams": [{ "Type": "Static", "Subnets": [{ "IpAddressPrefix": "10.32.0.0/24",
            "Policies": [{ "Type": "VSID", "Settings": { "IsolationId": 4200 } }] }] }] });
    for h in [h1, h2] {
        create_network(h, overlay.clone());
    }
    let acl = |id: &str, action: &str, prio: u32, extra: Value| {
        let mut s = json!({ "Id": id, "Action": action, "Direction": "In", "Priority": prio });
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({ "Type": "ACL", "Settings": s })
    };
    let ladder = json!([
        acl(
            "open-80",
            "Allow",
            100,
            json!({ "Protocols": "6", "LocalPorts": "80" })
        ),
        acl("deny", "Block", 1000, json!({}))
    ]);
    let a = h1.container_with(
        "ov",
        json!({ "IpConfigurations": [{ "IpAddress": "10.32.0.10" }], "Policies": ladder }),
    );
    let sibling = at(h1, "ov", "10.32.0.11");
    let b = at(h2, "ov", "10.32.0.20");
    for (host, of, c) in [(h1, h2, &b), (h2, h1, &a), (h2, h1, &sibling)] {
        let ep = of.client().get(Kind::Endpoints, &c.ep_id).expect("get");
        let body = json!({ "HostComputeNetwork": host.network("ov"), "Flags": 1,
            "IpConfigurations": [{ "IpAddress": c.ip }], "MacAddress": ep["MacAddress"],
            "Policies": [{ "Type": "ProviderAddress", "Settings": { "ProviderAddress": of.addr } }] });
        host.client()
            .create(Kind::Endpoints, &body)
            .expect("remote endpoint");
    }
    let _web = a.serve(&["tcp-serve", "0.0.0.0:80"]);
    let _alt = a.serve(&["tcp-serve", "0.0.0.0:81"]);
    let get = |from: &Container, port: u16| {
        Probe::run(&from.netns, &["tcp-get", &format!("{}:{port}", a.ip)]).0
    };
    for from in [&sibling, &b] {
        assert!(get(from, 80), "{} -> A:80", from.ip);
        assert!(!get(from, 81), "{} -> A:81 through the deny", from.ip);
    }
    let _b_web = b.serve(&["tcp-serve", "0.0.0.0:8080"]);
    let (ok, said) = a.run(&["tcp-get", &format!("{}:8080", b.ip)]);
    assert!(ok, "A's own connection to B came back: {said}");
}
