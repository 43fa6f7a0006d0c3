//! Tier 1: reading counters from the kernel (issue 5 item 7).
//!
//! In a namespace of its own: hostnet's whole tables are loaded, an
//! endpoint's compiled ACL elements and its drop counter are added over
//! netlink (so the kernel must give each element the set's `counter`
//! itself), known packets are sent to the endpoint's address on the
//! loopback, and the counters the dataplane reads back must say exactly
//! how many packets and bytes each rule and the defaults saw.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use hostnet_dataplane::linux::{create_netns, delete_netns, run_in_netns, LinuxDataplane};
use hostnet_dataplane::{Dataplane, ElementCounter, Op, SetRef};
use hostnet_nft::acl::RuleAt;
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

fn udp_rule(id: &str, ports: (u16, u16), action: Action) -> Rule {
    Rule {
        id: RuleId(id.into()),
        direction: Direction::In,
        priority: 100,
        condition: Condition::any()
            .protocols([Proto::UDP])
            .local_ports([ports]),
        action,
        origin: Origin::default(),
    }
}

/// Sends `n` GRE packets of `payload` bytes to `to` (a raw socket).
fn send_gre(to: Ipv4Addr, n: usize, payload: usize) {
    // SAFETY: plain socket calls on a descriptor this function owns.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, 47);
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(to).to_be(),
            },
            sin_zero: [0; 8],
        };
        let data = vec![0u8; payload];
        for _ in 0..n {
            // Dropped by the firewall: sendto reports EPERM, as expected.
            libc::sendto(
                fd,
                data.as_ptr().cast(),
                data.len(),
                0,
                std::ptr::addr_of!(addr).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            );
        }
        libc::close(fd);
    }
}

#[test]
fn counters_count_each_rule_and_each_endpoints_drops() {
    let Some(host) = Host::new() else { return };
    run_in_netns(&host.path, || {
        let dp = LinuxDataplane::new().unwrap();
        dp.load_tables(&hostnet_nft::tables(&[], dp.hook_design()))
            .unwrap();
        let addr = Ipv4Addr::new(10, 9, 0, 2);
        dp.execute(&Op::AddAddress {
            link: "lo".into(),
            address: "10.9.0.2/32".parse().unwrap(),
        })
        .unwrap();

        let mut port = Port::new("ep", PortKind::Endpoint);
        port.set_group(LayerName::AclHost, lower::firewall_defaults());
        port.set_group(
            LayerName::AclSwitch,
            Group::new(
                "acl",
                0,
                vec![
                    udp_rule("allow-5000", (5000, 5000), Action::Allow),
                    // Two aligned blocks (5999 and 6000), two elements:
                    // the rule's count is their sum.
                    udp_rule("block-6000", (5999, 6000), Action::Block),
                ],
            ),
        );
        let tagged = hostnet_nft::acl::rule_elements(addr.into(), &port).unwrap();
        assert_eq!(tagged.len(), 3, "{tagged:?}");
        // The rules' elements and the endpoint's chains going to them.
        let mut els = hostnet_nft::acl::elements(addr.into(), &port).unwrap();
        els.push(hostnet_nft::acl_endpoint(addr.into()));
        els.push(hostnet_nft::counters::inbound_drops(addr.into()));
        // Over netlink, without expressions: the kernel must attach the
        // sets' counters to the elements itself.
        dp.execute(&Op::AddElements(els)).unwrap();

        let (n, m, k, payload): (u64, u64, u64, usize) = (5, 3, 2, 10);
        let sink = UdpSocket::bind((addr, 5000)).unwrap();
        sink.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let client = UdpSocket::bind((addr, 0)).unwrap();
        for _ in 0..n {
            client.send_to(&[7u8; 10], (addr, 5000)).unwrap();
        }
        for i in 0..m {
            // Blocked: EPERM from the output hook.
            let _ = client.send_to(&[7u8; 10], (addr, 5999 + (i % 2) as u16));
        }
        send_gre(addr, k as usize, 4);
        let mut buf = [0u8; 64];
        for _ in 0..n {
            assert_eq!(
                sink.recv(&mut buf).unwrap(),
                payload,
                "allowed packets arrive"
            );
        }

        // Sum each rule's elements, by (set, key, key end).
        let mut by_rule: BTreeMap<RuleAt, (u64, u64)> = BTreeMap::new();
        let mut read: BTreeMap<&str, Vec<ElementCounter>> = BTreeMap::new();
        for t in &tagged {
            let e = &t.element;
            let counters = read.entry(e.set).or_insert_with(|| {
                dp.set_counters(SetRef {
                    family: e.family,
                    table: e.table,
                    set: e.set,
                })
                .unwrap()
            });
            let c = counters
                .iter()
                .find(|c| c.key == e.key && c.key_end == e.key_end)
                .unwrap_or_else(|| panic!("element {} not dumped: {counters:?}", e.text));
            let sum = by_rule.entry(t.rule).or_default();
            sum.0 += c.packets;
            sum.1 += c.bytes;
        }
        let ip_len = |p: usize| (20 + 8 + p) as u64;
        let rule = |i| RuleAt {
            layer: LayerName::AclSwitch,
            group: 0,
            rule: i,
        };
        let rules = port.layer(LayerName::AclSwitch).groups()[0].rules();
        let at = |id: &str| rules.iter().position(|r| r.id.0 == id).unwrap();
        assert_eq!(by_rule[&rule(at("allow-5000"))], (n, n * ip_len(payload)));
        assert_eq!(by_rule[&rule(at("block-6000"))], (m, m * ip_len(payload)));

        let drops = dp
            .set_counters(SetRef {
                family: hostnet_nft::Family::Inet,
                table: hostnet_nft::TABLE,
                set: hostnet_nft::counters::INBOUND_DROPS4,
            })
            .unwrap();
        assert_eq!(drops.len(), 1, "{drops:?}");
        assert_eq!(drops[0].key, addr.octets().to_vec());
        assert_eq!(
            (drops[0].packets, drops[0].bytes),
            (k, k * 24),
            "GRE falls to the defaults"
        );

        let lo = dp.link_stats("lo").unwrap().expect("lo exists");
        assert!(lo.rx_packets >= n && lo.tx_packets >= n, "{lo:?}");
        assert_eq!(dp.link_stats("hnve-missing").unwrap(), None);
    })
    .expect("enter the namespace");
}
