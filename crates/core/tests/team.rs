//! Teams of adapters on Transparent and L2Bridge networks against the
//! recording dataplane (tier 0): the plan, the record kept for crash
//! recovery, giving the members back, and that refusals change nothing.
//! The kernel side (a bond surviving a member, the interruption, the
//! members given back as they were) is proven in the tier-3 VM
//! (crates/testbed/tests/tier3_guest.rs); a kernel without bonding in
//! crates/testbed/tests/bad_input.rs.

mod common;

use std::sync::Arc;

use common::*;

use hostnet_core::Kind;
use hostnet_dataplane::{BondMode, Op};
use hostnet_model::ErrorCode;
use hostnet_store::{Collection, MemoryStore, Store};
use serde_json::{json, Value};

/// eth1 holds the host's address and default route; eth2 is down, unused.
fn members() -> [hostnet_dataplane::Adapter; 2] {
    let mut eth1 = adapter("eth1", 3, "192.0.2.11/24");
    eth1.routes = vec![hostnet_dataplane::AdapterRoute {
        destination: "0.0.0.0/0".parse().unwrap(),
        via: Some("192.0.2.1".parse().unwrap()),
        metric: 0,
        table: 254,
        proto: 4,
        scope: 0,
        src: None,
    }];
    let mut eth2 = adapter("eth2", 4, "192.0.2.12/24");
    eth2.addresses.clear();
    eth2.up = false;
    eth2.mtu = 9000;
    [eth1, eth2]
}

fn network(name: &str, kind: &str, adapters: &str, mode: Option<&str>) -> Value {
    let mut settings = json!({ "NetworkAdapterName": adapters });
    if let Some(m) = mode {
        settings["TeamingMode"] = json!(m);
    }
    json!({ "Name": name, "Type": kind,
        "Ipams": [{ "Subnets": [{ "IpAddressPrefix": "192.0.2.0/24",
            "Routes": [{ "NextHop": "192.0.2.1", "DestinationPrefix": "0.0.0.0/0" }] }] }],
        "Policies": [{ "Type": "NetAdapterName", "Settings": settings }] })
}

fn fixture(store: Arc<MemoryStore>) -> Fixture {
    let f = start(store);
    for m in members() {
        f.dp.set_adapter(m);
    }
    f.dp.set_adapter(adapter("eth3", 5, "198.51.100.11/24"));
    f.dp.take();
    f
}

fn snapshot(f: &Fixture) -> Vec<(String, Vec<u8>)> {
    [
        Collection::Networks,
        Collection::Endpoints,
        Collection::Meta,
    ]
    .into_iter()
    .flat_map(|c| f.store.list(c).unwrap())
    .collect()
}

#[test]
fn a_team_is_a_bond_of_its_members_and_deleting_gives_them_back() {
    let f = fixture(Arc::new(MemoryStore::new()));
    let net = f
        .svc
        .create(
            Kind::Network,
            &body(network("team", "Transparent", "eth1, eth2", None)),
        )
        .unwrap();
    let ops = f.dp.take();
    let [Op::CreateBridge {
        name: br,
        mac: Some(mac),
        mtu: 1500,
        ..
    }, Op::MoveAddresses {
        from,
        to,
        addresses,
        routes,
    }, Op::CreateBond {
        name: bond,
        mode: BondMode::ActiveBackup,
        mtu: 1500,
        mac: bond_mac,
    }, Op::EnslaveToBond {
        bond: into,
        members: enslaved,
    }, Op::SetMaster {
        link,
        master: Some(m),
        ..
    }] = ops.as_slice()
    else {
        panic!("{ops:?}")
    };
    let [eth1, eth2] = members();
    assert_eq!((*mac, *bond_mac), (eth1.mac, eth1.mac));
    assert_eq!((from.as_str(), to), ("eth1", br));
    assert_eq!((addresses, routes), (&eth1.addresses, &eth1.routes));
    assert!(bond.starts_with("hnbd") && into == bond && link == bond && m == br);
    let states: Vec<_> = enslaved
        .iter()
        .map(|b| (b.name.as_str(), b.up, b.mtu))
        .collect();
    assert_eq!(states, [("eth1", true, 1500), ("eth2", false, 9000)]);
    // Inspect shows the team; the host's address stays out of the pool.
    assert_eq!(
        net["Team"],
        json!({ "Bond": bond, "Mode": "active-backup", "Members": ["eth1", "eth2"] })
    );
    let id = net["ID"].as_str().unwrap().to_string();
    let ep = f
        .svc
        .create(Kind::Endpoint, &body(json!({ "HostComputeNetwork": id })))
        .unwrap();
    assert_eq!(ep["IpConfigurations"][0]["IpAddress"], "192.0.2.2");
    f.svc
        .delete(Kind::Endpoint, ep["ID"].as_str().unwrap())
        .unwrap();
    f.dp.take();
    f.svc.delete(Kind::Network, &id).unwrap();
    let ops = f.dp.take();
    let [Op::SetMaster {
        link, master: None, ..
    }, Op::ReleaseFromBond { members: back, .. }, Op::DeleteLink { name: gone_bond }, Op::MoveAddresses { from, to, .. }, Op::DeleteLink { name: gone_br }] =
        ops.as_slice()
    else {
        panic!("{ops:?}")
    };
    assert_eq!((link, gone_bond, gone_br), (bond, bond, br));
    assert_eq!(back, enslaved, "each member as it was");
    assert_eq!((from, to.as_str()), (br, "eth1"));
    assert_eq!(eth2.addresses.len(), 0);
    assert_eq!(
        f.store.list(Collection::Meta).unwrap().len(),
        1,
        "only the store's own key left"
    );
}

#[test]
fn the_members_are_recorded_before_the_kernel_changes_and_given_back_after_a_crash() {
    let store = Arc::new(MemoryStore::new());
    let f = fixture(store.clone());
    f.svc
        .create(
            Kind::Network,
            &body(network(
                "team",
                "L2Bridge",
                "eth1,eth2",
                Some("balance-tlb"),
            )),
        )
        .unwrap();
    let made = f.dp.take();
    assert!(made.iter().any(|op| matches!(
        op,
        Op::CreateBond {
            mode: BondMode::BalanceTlb,
            ..
        }
    )));
    // A crash between the record and the network's commit: the network is
    // not in the store, its adapter record is.
    let nets = store.list(Collection::Networks).unwrap();
    let team_net = nets
        .iter()
        .find(|(_, v)| String::from_utf8_lossy(v).contains("\"team\""))
        .unwrap();
    let mut txn = hostnet_store::Txn::new();
    txn.delete(Collection::Networks, &team_net.0);
    store.commit(txn).unwrap();
    drop(f);
    let again = start(store.clone());
    let ops = again.dp.take();
    let released = ops.iter().find_map(|op| match op {
        Op::ReleaseFromBond { members, .. } => Some(members.clone()),
        _ => None,
    });
    let released = released.unwrap_or_else(|| panic!("{ops:?}"));
    assert_eq!(released.len(), 2);
    assert!(
        ops.iter()
            .any(|op| matches!(op, Op::MoveAddresses { to, .. } if to == "eth1")),
        "{ops:?}"
    );
    assert_eq!(store.list(Collection::Meta).unwrap().len(), 1);
}

#[test]
fn a_restart_rebuilds_a_lost_bond() {
    let store = Arc::new(MemoryStore::new());
    let f = fixture(store.clone());
    f.svc
        .create(
            Kind::Network,
            &body(network("team", "Transparent", "eth1,eth2", None)),
        )
        .unwrap();
    drop(f);
    // The recording kernel has no links: bridge and bond are rebuilt.
    let again = start(store);
    let ops = again.dp.take();
    for wanted in ["CreateBridge", "CreateBond", "EnslaveToBond", "SetMaster"] {
        assert!(
            ops.iter().any(|op| format!("{op:?}").starts_with(wanted)),
            "{wanted}: {ops:?}"
        );
    }
}

#[test]
fn bad_teams_are_refused_and_change_nothing() {
    let f = fixture(Arc::new(MemoryStore::new()));
    f.svc
        .create(
            Kind::Network,
            &body(json!({ "Name": "other", "Type": "Transparent",
                "Ipams": [{ "Subnets": [{ "IpAddressPrefix": "198.51.100.0/24",
                    "Routes": [{ "NextHop": "198.51.100.1", "DestinationPrefix": "0.0.0.0/0" }] }] }],
                "Policies": [{ "Type": "NetAdapterName", "Settings": { "NetworkAdapterName": "eth3" } }] })),
        )
        .unwrap();
    f.dp.take();
    let before = snapshot(&f);
    let vlan_team = {
        let mut n = network("v", "Transparent", "eth1,eth2", None);
        n["Ipams"][0]["Subnets"][0]["Policies"] =
            json!([{ "Type": "VLAN", "Settings": { "IsolationId": 11 } }]);
        n
    };
    let nat_team = json!({ "Name": "nat", "Type": "NAT",
        "Policies": [{ "Type": "NetAdapterName", "Settings": { "NetworkAdapterName": "eth1,eth2" } }] });
    let cases = [
        (
            network("gone", "Transparent", "eth1,eth9", None),
            ErrorCode::AdapterNotFound,
            "team member \"eth9\" does not exist",
        ),
        (
            network("twice", "L2Bridge", "eth1,eth1", None),
            ErrorCode::InvalidPolicy,
            "adapter eth1 is named twice",
        ),
        (
            network("taken", "Transparent", "eth1,eth3", None),
            ErrorCode::InvalidNetwork,
            "team member eth3 is already network",
        ),
        (
            network("mode", "Transparent", "eth1,eth2", Some("802.3ad")),
            ErrorCode::InvalidPolicy,
            "active-backup, balance-tlb",
        ),
        (
            network("one", "Transparent", "eth1", Some("active-backup")),
            ErrorCode::InvalidPolicy,
            "names one adapter",
        ),
        (
            vlan_team,
            ErrorCode::RequestUnsupported,
            "VLAN 11 on a team",
        ),
        (nat_team, ErrorCode::InvalidPolicyType, "NAT networks"),
    ];
    for (n, code, says) in cases {
        let e = f.svc.create(Kind::Network, &body(&n)).unwrap_err();
        assert_eq!(e.code, code, "{n}: {e}");
        assert!(e.message.contains(says), "{n}: {e}");
    }
    assert_eq!(snapshot(&f), before);
    assert!(f.dp.take().is_empty());

    // A team member cannot be another network's adapter either.
    let team = f
        .svc
        .create(
            Kind::Network,
            &body(network("team", "Transparent", "eth1,eth2", None)),
        )
        .unwrap();
    f.dp.take();
    let before = snapshot(&f);
    let mut single = network("single", "Transparent", "eth2", None);
    single["Ipams"][0]["Subnets"][0]["IpAddressPrefix"] = json!("203.0.113.0/24");
    single["Ipams"][0]["Subnets"][0]["Routes"][0]["NextHop"] = json!("203.0.113.1");
    let e = f.svc.create(Kind::Network, &body(&single)).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidNetwork, "{e}");
    assert!(
        e.message.contains(&format!(
            "member of network {}'s team",
            team["ID"].as_str().unwrap()
        )),
        "{e}"
    );
    assert_eq!(snapshot(&f), before);
    assert!(f.dp.take().is_empty());
}

#[test]
fn a_kernel_without_bonding_leaves_nothing() {
    let f = fixture(Arc::new(MemoryStore::new()));
    let before = snapshot(&f);
    f.dp.fail_after(2); // the CreateBond, after the bridge and the move
    let e = f
        .svc
        .create(
            Kind::Network,
            &body(network("team", "Transparent", "eth1,eth2", None)),
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unexpected, "{e}");
    let ops = f.dp.take();
    assert!(
        matches!(ops.as_slice(), [Op::CreateBridge { .. }, Op::MoveAddresses { .. }, Op::CreateBond { .. }, Op::MoveAddresses { to, .. }, Op::DeleteLink { .. }] if to == "eth1"),
        "{ops:?}"
    );
    assert_eq!(snapshot(&f), before);
}
