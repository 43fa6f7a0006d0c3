//! Teaming's bad input on the real kernel (tier 2), where the kernel's
//! lack of bonding does not matter or is the point: a host with two
//! uplinks, refused teams, each with its HCN code and a message naming
//! what was wrong, and nothing changed on the host (links with their
//! state, masters and MACs, addresses, routes, the objects, the store over
//! a restart). This machine's kernel has no bonding: a team is refused as
//! unsupported by the kernel, naming the module. Working teams are tested
//! in the tier-3 VM (tier3_guest.rs).

use hostnet_api::Kind;
use hostnet_testbed::inspect::ip_out;
use hostnet_testbed::physical::{Host, GATEWAY};
use hostnet_testbed::{require_privileges, PhysicalNet, Probe};
use serde_json::{json, Value};

const ADAPTER_NOT_FOUND: u32 = 0x803B_0006;
const INVALID_NETWORK: u32 = 0x803B_000A;
const INVALID_POLICY: u32 = 0x803B_000D;
const INVALID_POLICY_TYPE: u32 = 0x803B_000E;
const REQUEST_UNSUPPORTED: u32 = 0x803B_0015;

fn team(kind: &str, adapters: &str, mode: Option<&str>, prefix: &str) -> Value {
    let mut settings = json!({ "NetworkAdapterName": adapters });
    if let Some(m) = mode {
        settings["TeamingMode"] = json!(m);
    }
    let gw = prefix.replace(".0/24", ".1");
    json!({ "Name": format!("{kind}-{adapters}"), "Type": kind,
        "Ipams": [{ "Subnets": [{ "IpAddressPrefix": prefix,
            "Routes": [{ "NextHop": gw, "DestinationPrefix": "0.0.0.0/0" }] }] }],
        "Policies": [{ "Type": "NetAdapterName", "Settings": settings }] })
}

/// Everything a refused team must leave as it was: every link with its
/// flags, MTU, master and MAC; addresses; routes; the networks.
fn host_state(h: &Host) -> String {
    let links: Vec<String> = ip_out(h.path(), &["-o", "link"])
        .lines()
        .map(|l| {
            // Drop the index ("3: "), which a made-and-deleted link does
            // not change anyway, and keep the rest.
            l.split_once(": ").map_or(l, |(_, rest)| rest).to_string()
        })
        .collect();
    let mut networks: Vec<String> = h
        .client()
        .list(Kind::Networks, None)
        .expect("list networks")
        .iter()
        .map(|n| n.to_string())
        .collect();
    networks.sort();
    format!(
        "links:\n{}\naddresses:\n{}\nroutes:\n{}\nnetworks: {networks:?}",
        links.join("\n"),
        ip_out(h.path(), &["-o", "addr"]),
        ip_out(h.path(), &["route"]),
    )
}

fn refused(h: &Host, body: &Value, code: u32, mentions: &[&str]) {
    let before = host_state(h);
    let e = h
        .client()
        .create(Kind::Networks, body)
        .expect_err(&format!("{body} was accepted"));
    assert_eq!(e.error_code(), Some(code), "{body}: {e}");
    let said = e.to_string();
    for m in mentions {
        assert!(
            said.contains(m),
            "{body}: the error does not say {m:?}: {said}"
        );
    }
    assert_eq!(
        host_state(h),
        before,
        "{body}: the refusal changed the host"
    );
}

#[test]
fn bad_teams_are_refused_and_leave_the_host_as_it_was() {
    if !require_privileges("bad_teams_are_refused_and_leave_the_host_as_it_was") {
        return;
    }
    let mut phys = PhysicalNet::new("tm", 1);
    phys.add_uplink(0, "eth1");
    phys.start_daemons(&["--no-default-network"]);
    let h = phys.host(0);
    let start = host_state(h);

    let has_bonding = std::path::Path::new("/sys/module/bonding").exists();
    if has_bonding {
        println!("skipped: the bonding refusal: this kernel has bonding (tier 3 tests teams)");
    } else {
        refused(
            h,
            &team("Transparent", "eth0,eth1", None, "192.0.2.0/24"),
            REQUEST_UNSUPPORTED,
            &["no bonding driver", "modprobe bonding"],
        );
        refused(
            h,
            &team(
                "L2Bridge",
                "eth0, eth1",
                Some("balance-tlb"),
                "192.0.2.0/24",
            ),
            REQUEST_UNSUPPORTED,
            &["balance-tlb bond", "modprobe bonding"],
        );
    }
    refused(
        h,
        &team("Transparent", "eth0,eth9", None, "192.0.2.0/24"),
        ADAPTER_NOT_FOUND,
        &["\"eth9\" does not exist"],
    );
    refused(
        h,
        &team("L2Bridge", "eth1,eth1", None, "192.0.2.0/24"),
        INVALID_POLICY,
        &["eth1 is named twice"],
    );
    refused(
        h,
        &team("Transparent", "eth0,eth1", Some("802.3ad"), "192.0.2.0/24"),
        INVALID_POLICY,
        &["\"802.3ad\"", "active-backup, balance-tlb"],
    );
    refused(
        h,
        &json!({ "Name": "nat", "Type": "NAT",
            "Policies": [{ "Type": "NetAdapterName", "Settings": { "NetworkAdapterName": "eth0,eth1" } }] }),
        INVALID_POLICY_TYPE,
        &["NetAdapterName", "NAT"],
    );

    // eth1 serving a network of its own is no team member.
    let single = h
        .client()
        .create(
            Kind::Networks,
            &team("Transparent", "eth1", None, "198.18.0.0/24"),
        )
        .expect("a network on eth1 alone");
    let id = single["ID"].as_str().expect("ID").to_string();
    refused(
        h,
        &team("Transparent", "eth0,eth1", None, "192.0.2.0/24"),
        INVALID_NETWORK,
        &["team member eth1", &id],
    );
    h.client()
        .delete(Kind::Networks, &id)
        .expect("delete the network on eth1");

    assert_eq!(host_state(h), start, "the host changed over the refusals");
    phys.hosts[0].daemon_mut().restart();
    let h = phys.host(0);
    assert_eq!(host_state(h), start, "a restart found something to do");
    let (ok, said) = Probe::run(h.path(), &["ping", GATEWAY]);
    assert!(ok, "the host lost its network: {said}");
}
