//! Tier 1: a restart keeps hostnet's tables and changes only the elements
//! that differ from the store (issue 5 item 10).
//!
//! In a namespace of its own: the tables are loaded with an endpoint's
//! ACL, a NAT source, a published port and a hooked veth; real packets
//! bump an ACL rule's counter; then the kernel is left as a `kill -9` in
//! the middle of changes leaves it (an element and a hooked device the
//! store never committed, a published port the store changed, a NAT
//! source the store has and the kernel lacks). The next sync must patch
//! exactly that difference, leave the kernel holding exactly the store's
//! elements, keep the counter, and keep passing packets; another
//! skeleton version or a missing table loads everything again.

use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use hostnet_dataplane::linux::{create_netns, delete_netns, run_in_netns, LinuxDataplane};
use hostnet_dataplane::{Dataplane, Op, SetRef, TableSync};
use hostnet_nft::{HostPort, L4Proto, SetElement};
use hostnet_policy::{
    lower, Action, Condition, Direction, Group, LayerName, Origin, Port, PortKind, Proto, Rule,
    RuleId,
};

/// A namespace bind-mounted in a temporary directory, removed on drop.
struct Host {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Host {
    fn new() -> Option<Self> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return skip("not root");
        }
        let dir = tempfile::Builder::new()
            .prefix("hostnet-dp-")
            .tempdir()
            .expect("temporary directory");
        let path = dir.path().join("host");
        if let Err(e) = create_netns(&path) {
            return skip(&format!("cannot create a network namespace: {e}"));
        }
        Some(Self { _dir: dir, path })
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Err(e) = delete_netns(&self.path) {
            eprintln!("cleanup {}: {e}", self.path.display());
        }
    }
}

fn skip<T>(reason: &str) -> Option<T> {
    if std::env::var("HOSTNET_REQUIRE_PRIV").as_deref() == Ok("1") {
        panic!("privileged test cannot run: {reason}");
    }
    eprintln!("skipped: {reason}");
    None
}

fn udp_rule(id: &str, port: u16, action: Action) -> Rule {
    Rule {
        id: RuleId(id.into()),
        direction: Direction::In,
        priority: 100,
        condition: Condition::any()
            .protocols([Proto::UDP])
            .local_ports([(port, port)]),
        action,
        origin: Origin::default(),
    }
}

fn published(host_port: u16, target: [u8; 4]) -> SetElement {
    hostnet_nft::host_port(&HostPort {
        proto: L4Proto::Tcp,
        host_addr: None,
        host_port,
        target: Ipv4Addr::from(target).into(),
        target_port: 80,
    })
}

/// Elements as the diff compares them, in one order: text dropped, a
/// one-key range as the key alone, a rules chain by name (the dump does
/// not read rules back; packets below show they work).
fn normalized(elements: &[SetElement]) -> Vec<SetElement> {
    let mut v: Vec<SetElement> = elements
        .iter()
        .map(|e| SetElement {
            text: String::new(),
            key_end: e.key_end.clone().filter(|end| *end != e.key),
            data: match &e.data {
                Some(hostnet_nft::Data::Rules(_)) => Some(hostnet_nft::Data::Rules(Vec::new())),
                d => d.clone(),
            },
            ..e.clone()
        })
        .collect();
    v.sort_by(|a, b| {
        (a.family, a.table, a.set, &a.key, &a.key_end)
            .cmp(&(b.family, b.table, b.set, &b.key, &b.key_end))
    });
    v.dedup();
    v
}

fn sh(script: &str) -> String {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_restart_patches_only_the_difference_and_keeps_counters() {
    let Some(host) = Host::new() else { return };
    run_in_netns(&host.path, || {
        let dp = LinuxDataplane::new().unwrap();
        let addr = Ipv4Addr::new(10, 9, 0, 2);
        dp.execute(&Op::AddAddress {
            link: "lo".into(),
            address: "10.9.0.2/32".parse().unwrap(),
        })
        .unwrap();
        // Children of this thread are in the test's namespace.
        sh("ip link add hntwv0 type veth peer name hntwv0p && ip link add hntwv1 type veth peer name hntwv1p");

        let mut port = Port::new("ep", PortKind::Endpoint);
        port.set_group(LayerName::AclHost, lower::firewall_defaults());
        port.set_group(
            LayerName::AclSwitch,
            Group::new(
                "acl",
                0,
                vec![
                    udp_rule("allow-5000", 5000, Action::Allow),
                    udp_rule("block-6000", 6000, Action::Block),
                ],
            ),
        );
        let tagged = hostnet_nft::acl::rule_elements(addr.into(), &port).unwrap();
        // The rules' elements and the endpoint's chains going to them.
        let mut stored = hostnet_nft::acl::elements(addr.into(), &port).unwrap();
        stored.push(hostnet_nft::acl_endpoint(addr.into()));
        stored.push(hostnet_nft::counters::inbound_drops(addr.into()));
        stored.push(hostnet_nft::nat_source(Ipv4Addr::new(10, 9, 0, 3).into()));
        stored.push(published(8080, [10, 9, 0, 3]));
        stored.push(hostnet_nft::endpoint_port("hntwv0"));

        let skeleton = hostnet_nft::skeleton();
        // The endpoint's rules chains are programmed again at every sync
        // (their rules are not read back).
        let chains = stored
            .iter()
            .filter(|e| matches!(e.data, Some(hostnet_nft::Data::Rules(_))))
            .count();
        assert!(chains > 0);
        // A new namespace has no tables: loaded whole.
        assert_eq!(dp.sync_tables(&skeleton, &stored).unwrap(), TableSync::Loaded);
        assert_eq!(
            normalized(&dp.table_elements(&skeleton).unwrap().expect("this design's chains")),
            normalized(&stored)
        );

        let sink = UdpSocket::bind((addr, 5000)).unwrap();
        sink.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let client = UdpSocket::bind((addr, 0)).unwrap();
        let mut buf = [0u8; 64];
        let mut send = |n: u64| {
            for _ in 0..n {
                client.send_to(&[7u8; 10], (addr, 5000)).unwrap();
                assert_eq!(sink.recv(&mut buf).unwrap(), 10, "allowed packets arrive");
            }
        };
        let rules = port.layer(LayerName::AclSwitch).groups()[0].rules();
        let allow: Vec<SetElement> = tagged
            .iter()
            .filter(|t| {
                t.rule.layer == LayerName::AclSwitch && rules[t.rule.rule].id.0 == "allow-5000"
            })
            .map(|t| t.element.clone())
            .collect();
        assert!(!allow.is_empty(), "the allow rule's elements");
        // The packets the allow rule counted: over its elements.
        let allowed = || -> u64 {
            allow
                .iter()
                .map(|e| {
                    dp.set_counters(SetRef {
                        family: e.family,
                        table: e.table,
                        set: e.set,
                    })
                    .unwrap()
                    .iter()
                    .filter(|c| c.key == e.key && c.key_end == e.key_end)
                    .map(|c| c.packets)
                    .sum::<u64>()
                })
                .sum()
        };
        send(4);
        assert_eq!(allowed(), 4);

        // What a kill -9 between the kernel and the store leaves: the
        // kernel has a NAT source and a hooked device the store never
        // committed; the store changed a published port and has a NAT
        // source the kernel never got.
        dp.execute(&Op::AddElements(vec![
            hostnet_nft::nat_source(Ipv4Addr::new(10, 9, 0, 4).into()),
            hostnet_nft::endpoint_port("hntwv1"),
        ]))
        .unwrap();
        let mut wanted = stored.clone();
        wanted.retain(|e| *e != published(8080, [10, 9, 0, 3]));
        wanted.push(published(8080, [10, 9, 0, 7]));
        wanted.push(hostnet_nft::nat_source(Ipv4Addr::new(10, 9, 0, 5).into()));

        assert_eq!(
            dp.sync_tables(&skeleton, &wanted).unwrap(),
            TableSync::Patched {
                deleted: 3,
                added: 2 + chains
            }
        );
        assert_eq!(
            normalized(&dp.table_elements(&skeleton).unwrap().expect("this design's chains")),
            normalized(&wanted)
        );
        // Read by nft too, not only by the code under test.
        let listed = sh("nft list table inet hostnet; nft list table netdev hostnet_egress");
        assert!(listed.contains("tcp . 8080 : 10.9.0.7 . 80"), "{listed}");
        assert!(!listed.contains("10.9.0.3 . 80"), "{listed}");
        assert!(!listed.contains("10.9.0.4"), "{listed}");
        // Hooked by a chain of its own or on a chain's device list,
        // whichever design this kernel takes.
        assert!(listed.contains("hntwv0"), "{listed}");
        assert!(!listed.contains("hntwv1"), "{listed}");
        // The rule's counter went on, and counts what follows.
        assert_eq!(allowed(), 4, "the restart kept the counter");
        send(3);
        assert_eq!(allowed(), 7);

        // Nothing changed: nothing to do.
        assert_eq!(
            dp.sync_tables(&skeleton, &wanted).unwrap(),
            TableSync::Patched {
                deleted: 0,
                added: chains
            }
        );

        // Another version of the skeleton (an upgrade): loaded whole.
        let mut upgrade = skeleton.clone();
        upgrade.script = upgrade
            .script
            .replace(&skeleton.comment(), "hostnet skeleton 0000000000000000");
        upgrade.fingerprint = "0000000000000000".into();
        assert_eq!(dp.sync_tables(&upgrade, &wanted).unwrap(), TableSync::Loaded);
        assert_eq!(
            normalized(&dp.table_elements(&upgrade).unwrap().expect("this design's chains")),
            normalized(&wanted)
        );
        assert_eq!(allowed(), 0, "a whole load starts counters again");

        // Back to this version, with one of its tables gone: loaded whole.
        assert_eq!(dp.sync_tables(&skeleton, &wanted).unwrap(), TableSync::Loaded);
        sh("nft delete table netdev hostnet_dsr");
        assert_eq!(dp.sync_tables(&skeleton, &wanted).unwrap(), TableSync::Loaded);
        assert_eq!(
            normalized(&dp.table_elements(&skeleton).unwrap().expect("this design's chains")),
            normalized(&wanted)
        );
        send(1);
    })
    .expect("enter the namespace");
}
