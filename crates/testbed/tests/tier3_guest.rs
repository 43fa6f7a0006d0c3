//! Tests that run inside the tier-3 VM (Debian's stock cloud kernel, with
//! the 8021q and bonding modules this machine's kernel lacks). On the host
//! they are ignored; `tests/tier3.rs` boots the VM and runs them there with
//! `--ignored`.

use hostnet_testbed::{tier3, unique, Netns};

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
