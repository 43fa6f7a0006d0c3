//! Tier-1 tests of `LinuxDataplane` against the real kernel.
//!
//! Each test makes its own "host" namespace (bind-mounted under a
//! `hostnet-dp-*` temporary directory), constructs the dataplane on a thread
//! inside it, and asserts on real traffic and on what `ip`/`nft` (run with
//! `nsenter --net=`) report. The machine's root namespace is never touched.
//! Everything is removed by drop guards, on panic too. If a run is killed
//! hard, sweep leftovers with:
//!
//! ```sh
//! findmnt -rn -o TARGET | grep '/hostnet-dp-' | xargs -r -n1 umount -l; rm -rf /tmp/hostnet-dp-*
//! ```

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hostnet_dataplane::linux::{create_netns, delete_netns, run_in_netns, LinuxDataplane};
use hostnet_dataplane::{apply, Adapter, AdapterRoute, Dataplane, LocalRoutes, Op, RouteSpec};
use hostnet_nft::hook::HookDesign;
use hostnet_nft::NetdevHook;
use hostnet_nft::{Family, SetElement};
use ipnet::IpNet;

/// A test's namespaces. Dropping it unmounts them all (their links go with
/// them) and removes the directory.
struct Testbed {
    dir: tempfile::TempDir,
    host: PathBuf,
    extra: Mutex<Vec<PathBuf>>,
}

impl Testbed {
    /// Makes the host namespace, or explains why it cannot.
    fn new() -> Option<Self> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return skip("not root");
        }
        let dir = tempfile::Builder::new()
            .prefix("hostnet-dp-")
            .tempdir()
            .expect("temporary directory");
        let host = dir.path().join("host");
        if let Err(e) = create_netns(&host) {
            return skip(&format!("cannot create a network namespace: {e}"));
        }
        Some(Self {
            dir,
            host,
            extra: Mutex::new(Vec::new()),
        })
    }

    /// A path for an endpoint namespace, removed with the testbed.
    fn ns_path(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join("ns").join(name);
        self.extra.lock().unwrap().push(path.clone());
        path
    }

    /// Runs `f` on a thread inside the host namespace.
    fn in_host<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        run_in_netns(&self.host, f).expect("enter host namespace")
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for path in self.extra.lock().unwrap().iter().chain([&self.host]) {
            if let Err(e) = delete_netns(path) {
                eprintln!("cleanup {}: {e}", path.display());
            }
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

/// Runs a command inside the namespace at `ns`; returns stdout, panics on failure.
fn run_in(ns: &Path, args: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(args)
        .output()
        .expect("run nsenter");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn default_route(via: &str) -> RouteSpec {
    let via: IpAddr = via.parse().unwrap();
    let destination = if via.is_ipv4() {
        net("0.0.0.0/0")
    } else {
        net("::/0")
    };
    RouteSpec {
        destination,
        via: Some(via),
        metric: 0,
    }
}

fn bridge(name: &str, addresses: &[&str]) -> Op {
    Op::CreateBridge {
        name: name.into(),
        mtu: 1400,
        mac: Some([0x02, 0, 0, 0, 0, 0x01]),
        addresses: addresses.iter().map(|a| net(a)).collect(),
        ipv6: addresses.iter().any(|a| a.contains(':')),
    }
}

fn veth(
    host: &str,
    bridge: &str,
    ns: &Path,
    peer: &str,
    addresses: &[&str],
    routes: Vec<RouteSpec>,
) -> Op {
    Op::CreateVeth {
        host_name: host.into(),
        bridge: bridge.into(),
        mtu: 1400,
        netns: ns.to_path_buf(),
        peer_name: peer.into(),
        peer_mac: [0x02, 0, 0, 0, 0, 0x02],
        addresses: addresses.iter().map(|a| net(a)).collect(),
        routes,
        ipv6: addresses.iter().any(|a| a.contains(':')),
    }
}

/// Connects from namespace `ns` to `to` (retrying until a deadline: the
/// bridge port may still be coming up), sends a line, and checks that
/// `listener` (in whatever namespace it was bound) saw it from `from`.
fn assert_reaches(ns: &Path, listener: &TcpListener, to: IpAddr, from: IpAddr) {
    let target = SocketAddr::new(to, listener.local_addr().unwrap().port());
    let sent = run_in_netns(ns, || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpStream::connect_timeout(&target, Duration::from_millis(500)) {
                Ok(mut s) => break s.write_all(b"hello\n").map(|()| s),
                Err(e) if Instant::now() > deadline => break Err(e),
                Err(_) => {}
            }
        }
    })
    .unwrap();
    let _client = sent.unwrap_or_else(|e| panic!("connect to {target} from namespace: {e}"));
    let (mut conn, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip(), from, "source address seen by the host");
    let mut buf = [0u8; 6];
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello\n");
}

#[test]
fn bridge_veth_routes_and_rollback() {
    let Some(tb) = Testbed::new() else { return };
    tb.in_host(|| {
        let dp = LinuxDataplane::new().unwrap();
        dp.execute(&bridge(
            "hnbr0",
            &["10.99.0.1/24", "192.0.2.1/24", "fd00:99::1/64"],
        ))
        .unwrap();
        let again = dp.execute(&bridge("hnbr0", &[])).unwrap_err();
        assert!(again.to_string().contains("exists already"), "{again}");

        // A bridge whose address fails is not left behind.
        let bad = dp
            .execute(&bridge("hnbr1", &["10.98.0.1/24", "10.98.0.1/24"]))
            .unwrap_err();
        assert!(bad.to_string().contains("10.98.0.1/24"), "{bad}");
        assert_eq!(dp.link_index("hnbr1").unwrap(), None);

        let ep = tb.ns_path("ep1");
        dp.execute(&Op::CreateNetns { path: ep.clone() }).unwrap();
        let routes = vec![default_route("10.99.0.1"), default_route("fd00:99::1")];
        dp.execute(&veth(
            "hnv1",
            "hnbr0",
            &ep,
            "eth0",
            &["10.99.0.2/24", "fd00:99::2/64"],
            routes,
        ))
        .unwrap();

        let link = run_in(&ep, &["ip", "-o", "link", "show", "dev", "eth0"]);
        assert!(
            link.contains("mtu 1400") && link.contains("link/ether 02:00:00:00:00:02"),
            "{link}"
        );
        assert!(link.contains(",UP"), "peer is up: {link}");
        let lo = run_in(&ep, &["ip", "-o", "link", "show", "dev", "lo"]);
        assert!(lo.contains(",UP"), "loopback up: {lo}");
        let host_end = run_in(&tb.host, &["ip", "-o", "link", "show", "dev", "hnv1"]);
        assert!(
            host_end.contains("master hnbr0") && host_end.contains(",UP"),
            "{host_end}"
        );
        let v4 = run_in(&ep, &["ip", "route", "show", "default"]);
        assert!(
            v4.contains("default via 10.99.0.1 dev eth0 proto static"),
            "{v4}"
        );
        let v6 = run_in(&ep, &["ip", "-6", "addr", "show", "dev", "eth0"]);
        assert!(v6.contains("fd00:99::2/64") && v6.contains("nodad"), "{v6}");

        // Real traffic: the gateway, an address only reachable through the
        // default route, and IPv6 (usable at once thanks to NODAD).
        let listener = TcpListener::bind("[::]:0").unwrap();
        let me: IpAddr = "::ffff:10.99.0.2".parse().unwrap();
        assert_reaches(&ep, &listener, "10.99.0.1".parse().unwrap(), me);
        assert_reaches(&ep, &listener, "192.0.2.1".parse().unwrap(), me);
        assert_reaches(
            &ep,
            &listener,
            "fd00:99::1".parse().unwrap(),
            "fd00:99::2".parse().unwrap(),
        );

        let mut links = dp.links_with_prefix("hn").unwrap();
        links.sort();
        assert_eq!(links, ["hnbr0", "hnv1"]);
        let routed = dp.routed_prefixes().unwrap();
        for want in ["10.99.0.0/24", "192.0.2.0/24", "fd00:99::/64"] {
            assert!(routed.contains(&net(want)), "{want} in {routed:?}");
        }
        assert!(!routed.iter().any(|r| r.prefix_len() == 0), "{routed:?}");
        assert!(dp.netns_exists(&ep));
        assert!(!dp.netns_exists(&tb.dir.path().join("ns")));
        assert!(dp.link_index("hnv1").unwrap().is_some());
        assert_eq!(dp.link_index("hnnope").unwrap(), None);

        // An IPv4-only endpoint gets no IPv6 link-local address on either
        // end (no DAD/MLD/RS noise for the bridge to flood), yet works.
        let v4only = tb.ns_path("ep-v4only");
        dp.execute(&Op::CreateNetns {
            path: v4only.clone(),
        })
        .unwrap();
        dp.execute(&veth(
            "hnv3",
            "hnbr0",
            &v4only,
            "eth0",
            &["10.99.0.3/24"],
            vec![default_route("10.99.0.1")],
        ))
        .unwrap();
        let inside = run_in(&v4only, &["ip", "-6", "addr", "show", "dev", "eth0"]);
        assert_eq!(inside.trim(), "", "IPv6 address on an IPv4-only peer");
        let outside = run_in(&tb.host, &["ip", "-6", "addr", "show", "dev", "hnv3"]);
        assert_eq!(outside.trim(), "", "IPv6 address on an IPv4-only host end");
        let me3: IpAddr = "::ffff:10.99.0.3".parse().unwrap();
        assert_reaches(&v4only, &listener, "10.99.0.1".parse().unwrap(), me3);
        dp.execute(&Op::DeleteLink {
            name: "hnv3".into(),
        })
        .unwrap();
        dp.execute(&Op::DeleteNetns { path: v4only }).unwrap();

        // Same names again: refused, and nothing new left behind.
        let dup = dp
            .execute(&veth("hnv1", "hnbr0", &ep, "eth0", &[], vec![]))
            .unwrap_err();
        assert!(dup.to_string().contains("exists already"), "{dup}");

        // Rollback: a missing bridge fails before anything is made; a route
        // the kernel refuses (gateway not on any subnet) fails after the
        // pair exists, and both ends must be gone afterwards.
        let no_bridge = dp
            .execute(&veth("hnv2", "hnnobr", &ep, "eth1", &[], vec![]))
            .unwrap_err();
        assert!(no_bridge.to_string().contains("not found"), "{no_bridge}");
        let bad_route = dp
            .execute(&veth(
                "hnv2",
                "hnbr0",
                &ep,
                "eth1",
                &["10.99.0.3/24"],
                vec![default_route("10.50.0.1")],
            ))
            .unwrap_err();
        assert!(bad_route.to_string().contains("10.50.0.1"), "{bad_route}");
        let mut links = dp.links_with_prefix("hn").unwrap();
        links.sort();
        assert_eq!(links, ["hnbr0", "hnv1"]);
        let peers = run_in_netns(&ep, || {
            LinuxDataplane::new()
                .unwrap()
                .links_with_prefix("eth")
                .unwrap()
        })
        .unwrap();
        assert_eq!(peers, ["eth0"]);

        dp.execute(&Op::DeleteLink {
            name: "hnv1".into(),
        })
        .unwrap();
        dp.execute(&Op::DeleteLink {
            name: "hnv1".into(),
        })
        .unwrap();
        assert_eq!(dp.links_with_prefix("hn").unwrap(), ["hnbr0"]);

        dp.execute(&Op::DeleteNetns { path: ep.clone() }).unwrap();
        assert!(!ep.exists() && !dp.netns_exists(&ep));
        dp.execute(&Op::DeleteNetns { path: ep.clone() }).unwrap();
    });
}

#[test]
fn sysctl_and_nft_act_on_the_dataplanes_namespace() {
    let Some(tb) = Testbed::new() else { return };
    let dp = tb.in_host(|| LinuxDataplane::new().unwrap());
    let other = tb.ns_path("other");
    create_netns(&other).unwrap();
    let read = |ns: &Path| {
        run_in(ns, &["cat", "/proc/sys/net/ipv4/ip_forward"])
            .trim()
            .to_string()
    };
    let (host_before, other_before) = (read(&tb.host), read(&other));
    let wanted = if host_before == "1" { "0" } else { "1" };

    // Called from a thread in yet another namespace: must still act on the
    // dataplane's own.
    run_in_netns(&other, || {
        dp.execute(&Op::Sysctl {
            key: "net.ipv4.ip_forward".into(),
            value: wanted.into(),
        })
        .unwrap();
        dp.load_tables("table inet hostnet_probe { }\n").unwrap();
        dp.execute(&bridge("hnbr9", &[])).unwrap();
    })
    .unwrap();
    assert_eq!(read(&tb.host), wanted);
    assert_eq!(read(&other), other_before);
    assert!(run_in(&tb.host, &["nft", "list", "tables"]).contains("hostnet_probe"));
    assert!(!run_in(&other, &["nft", "list", "tables"]).contains("hostnet_probe"));
    assert!(run_in(&tb.host, &["ip", "-o", "link"]).contains("hnbr9"));

    let err = dp
        .load_tables("table inet hostnet_probe { chain c { nonsense } }\n")
        .unwrap_err();
    assert!(
        err.to_string().contains("nonsense") || err.to_string().contains("syntax"),
        "{err}"
    );
}

const TABLE: &str = "table inet hostnet {
    map pm { type inet_proto . inet_service : ipv4_addr . inet_service; }
    set ports { type ifname; }
    set big { type ipv4_addr; }
}
";

fn padded(bytes: &[u8], len: usize) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v.resize(len, 0);
    v
}

/// `tcp . port : addr . to_port` in the kernel's layout.
fn port_mapping(port: u16, addr: [u8; 4], to_port: u16) -> SetElement {
    let mut key = padded(&[6], 4);
    key.extend(padded(&port.to_be_bytes(), 4));
    let mut data = addr.to_vec();
    data.extend(padded(&to_port.to_be_bytes(), 4));
    let a = addr;
    SetElement {
        family: Family::Inet,
        table: "hostnet",
        set: "pm",
        key,
        key_end: None,
        data: Some(hostnet_nft::Data::Value(data)),
        text: format!(
            "tcp . {port} : {}.{}.{}.{} . {to_port}",
            a[0], a[1], a[2], a[3]
        ),
    }
}

fn ifname(name: &str) -> SetElement {
    SetElement {
        family: Family::Inet,
        table: "hostnet",
        set: "ports",
        key: padded(name.as_bytes(), 16),
        key_end: None,
        data: None,
        text: format!("\"{name}\""),
    }
}

fn address(i: u32) -> SetElement {
    let ip = std::net::Ipv4Addr::from(0x0a01_0000 + i);
    SetElement {
        family: Family::Inet,
        table: "hostnet",
        set: "big",
        key: ip.octets().to_vec(),
        key_end: None,
        data: None,
        text: ip.to_string(),
    }
}

fn elements_of(ns: &Path, kind: &str, name: &str) -> String {
    let out = run_in(ns, &["nft", "list", kind, "inet", "hostnet", name]);
    match out.find("elements = {") {
        Some(i) => out[i..].split_whitespace().collect::<Vec<_>>().join(" "),
        None => String::new(),
    }
}

fn has_element(ns: &Path, set: &str, text: &str) -> bool {
    Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args([
            "nft",
            "get",
            "element",
            "inet",
            "hostnet",
            set,
            &format!("{{ {text} }}"),
        ])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn set_and_map_elements() {
    let Some(tb) = Testbed::new() else { return };
    let host = &tb.host;
    tb.in_host(|| {
        let dp = LinuxDataplane::new().unwrap();
        dp.load_tables(TABLE).unwrap();

        let web = port_mapping(80, [10, 99, 0, 2], 8080);
        let ssh = port_mapping(22, [10, 99, 0, 3], 2222);
        dp.execute(&Op::AddElements(vec![
            web.clone(),
            ifname("hnv1"),
            ssh.clone(),
        ]))
        .unwrap();
        let pm = elements_of(host, "map", "pm");
        assert!(pm.contains("tcp . 80 : 10.99.0.2 . 8080"), "{pm}");
        assert!(pm.contains("tcp . 22 : 10.99.0.3 . 2222"), "{pm}");
        assert!(elements_of(host, "set", "ports").contains("{ \"hnv1\" }"));

        // A duplicate fails, names itself, and the batch is atomic: the new
        // element before it is not added either.
        let fresh = port_mapping(443, [10, 99, 0, 4], 8443);
        let err = dp
            .execute(&Op::AddElements(vec![fresh.clone(), web.clone()]))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("tcp . 80 : 10.99.0.2 . 8080") && text.contains("inet hostnet pm"),
            "{text}"
        );
        assert!(text.contains("exists"), "{text}");
        assert!(!elements_of(host, "map", "pm").contains("443"));

        // Deleting present and missing elements together succeeds.
        dp.execute(&Op::DeleteElements(vec![
            fresh.clone(),
            web.clone(),
            ifname("hnv1"),
            ifname("hnzz"),
        ]))
        .unwrap();
        let pm = elements_of(host, "map", "pm");
        assert!(
            !pm.contains("tcp . 80 ") && pm.contains("tcp . 22 "),
            "{pm}"
        );
        assert_eq!(elements_of(host, "set", "ports"), "");
        dp.execute(&Op::DeleteElements(vec![web.clone()])).unwrap();

        // A missing set is an error that names it.
        let mut stray = ifname("x");
        stray.set = "nosuchset";
        let err = dp.execute(&Op::AddElements(vec![stray])).unwrap_err();
        assert!(err.to_string().contains("inet hostnet nosuchset"), "{err}");

        // Several messages (1000 elements each) in one batch.
        let many: Vec<SetElement> = (0..2500).map(address).collect();
        dp.execute(&Op::AddElements(many.clone())).unwrap();
        assert!(has_element(host, "big", "10.1.0.0"));
        assert!(has_element(host, "big", &address(2499).text));
        let err = dp
            .execute(&Op::AddElements(vec![address(2600), address(1700)]))
            .unwrap_err();
        assert!(err.to_string().contains("10.1.6.164"), "{err}");
        dp.execute(&Op::DeleteElements(many)).unwrap();
        assert!(!has_element(host, "big", &address(2499).text));
        assert_eq!(elements_of(host, "set", "big"), "");

        measure_elements(&dp);
    });
}

/// The ACL maps (five-field interval keys, verdict data) load, take
/// elements over nfnetlink, and give them back.
#[test]
fn acl_chains_and_maps_load_and_unload() {
    use hostnet_policy::{
        lower, Action, Condition, Direction, Group, LayerName, Origin, Port, PortKind, Proto, Rule,
        RuleId,
    };
    let Some(tb) = Testbed::new() else { return };
    let host = &tb.host;
    tb.in_host(|| {
        let dp = LinuxDataplane::new().unwrap();
        dp.load_tables(&format!(
            "table inet hostnet {{\n{}}}\n",
            hostnet_nft::acl::skeleton()
        ))
        .unwrap();
        let web = Rule {
            id: RuleId("web".into()),
            direction: Direction::In,
            priority: 100,
            condition: Condition::any()
                .protocols([Proto::TCP])
                .remote([
                    "192.0.2.0/24".parse().unwrap(),
                    "198.51.100.0/24".parse().unwrap(),
                ])
                .local_ports([(80, 81), (443, 443)]),
            action: Action::Allow,
            origin: Origin::default(),
        };
        let deny = Rule {
            id: RuleId("deny".into()),
            priority: 1000,
            condition: Condition::any(),
            action: Action::Block,
            ..web.clone()
        };
        // Two wide, unaligned port ranges: too many blocks for the shape
        // maps, so an interval element.
        let wide = Rule {
            id: RuleId("wide".into()),
            condition: Condition::any()
                .protocols([Proto::TCP])
                .remote(["203.0.113.0/24".parse().unwrap()])
                .local_ports([(1, 65534)])
                .remote_ports([(1, 65534)]),
            ..web.clone()
        };
        let mut port = Port::new("ep", PortKind::Endpoint);
        port.set_group(LayerName::AclHost, lower::firewall_defaults());
        port.set_group(
            LayerName::AclSwitch,
            Group::new("acl", 0, vec![web, wide, deny]),
        );
        let els = hostnet_nft::acl::elements("10.0.0.5".parse().unwrap(), &port).unwrap();
        dp.execute(&Op::AddElements(els.clone())).unwrap();
        // 2 remotes x 2 port blocks (80-81 and 443) in shape maps, the wide
        // box in the interval map, the deny in a shape map of stratum 1.
        let chain = run_in(
            host,
            &[
                "nft",
                "list",
                "chain",
                "inet",
                "hostnet",
                "acl_in_switch_0/10.0.0.5",
            ],
        );
        for m in ["m0", "m1", "m2", "s0"] {
            assert!(
                chain.contains(&format!("vmap @acl_in_switch_0_{m}")),
                "{chain}"
            );
        }
        assert!(
            chain.contains(
                "ip saddr & 255.255.255.0 . meta l4proto . th dport & 65534 . th sport & 0 vmap"
            ),
            "{chain}"
        );
        assert!(chain.contains("goto acl_in_switch_1"), "{chain}");
        let dispatch = elements_of(host, "map", "acl_in_switch_0_ep");
        assert!(
            dispatch.contains("10.0.0.5 : goto acl_in_switch_0/10.0.0.5"),
            "{dispatch}"
        );
        let shapes: String = ["m0", "m1", "m2"]
            .iter()
            .map(|m| elements_of(host, "map", &format!("acl_in_switch_0_{m}")))
            .collect();
        assert_eq!(shapes.matches("goto acl_in_host_0").count(), 4, "{shapes}");
        assert!(
            shapes.contains("10.0.0.5 . 198.51.100.0 . tcp . 443 . 0"),
            "{shapes}"
        );
        assert_eq!(shapes.matches(": drop").count(), 1, "{shapes}");
        let s0 = elements_of(host, "map", "acl_in_switch_0_s0");
        assert!(
            s0.contains("10.0.0.5 . 203.0.113.0/24 . tcp . 1-65534 . 1-65534"),
            "{s0}"
        );
        dp.execute(&Op::DeleteElements(els)).unwrap();
        let table = run_in(host, &["nft", "list", "table", "inet", "hostnet"]);
        assert!(!table.contains("10.0.0.5"), "{table}");
    });
}

/// A policy change is one transaction: old elements out and new ones in
/// together, also where old and new intervals overlap (the kernel checks
/// overlaps against the transaction's outcome); a failure anywhere in it
/// changes nothing.
#[test]
fn replace_elements_is_one_transaction() {
    use hostnet_policy::{
        lower, Action, Condition, Direction, Group, LayerName, Origin, Port, PortKind, Proto, Rule,
        RuleId,
    };
    let Some(tb) = Testbed::new() else { return };
    let host = &tb.host;
    tb.in_host(|| {
        let dp = LinuxDataplane::new().unwrap();
        dp.load_tables(&format!(
            "table inet hostnet {{\n{}\tset ports {{ type ifname; }}\n}}\n",
            hostnet_nft::acl::skeleton()
        ))
        .unwrap();
        let compiled = |ports: (u16, u16), action: Action| {
            let rule = Rule {
                id: RuleId("r".into()),
                direction: Direction::In,
                priority: 100,
                condition: Condition::any()
                    .protocols([Proto::TCP])
                    .local_ports([ports]),
                action,
                origin: Origin::default(),
            };
            let mut port = Port::new("ep", PortKind::Endpoint);
            port.set_group(LayerName::AclHost, lower::firewall_defaults());
            port.set_group(LayerName::AclSwitch, Group::new("acl", 0, vec![rule]));
            hostnet_nft::acl::elements("10.0.0.5".parse().unwrap(), &port).unwrap()
        };
        let old = compiled((80, 90), Action::Allow);
        let new = compiled((85, 100), Action::Block);
        dp.execute(&Op::AddElements(old.clone())).unwrap();
        dp.execute(&Op::AddElements(vec![ifname("hnv1")])).unwrap();

        // Overlapping intervals swap in one batch, with a set's element too.
        let swap = Op::ReplaceElements {
            delete: [old.clone(), vec![ifname("hnv1")]].concat(),
            add: [new.clone(), vec![ifname("hnv2")]].concat(),
        };
        dp.execute(&swap).unwrap();
        // 80-90 and 85-100 are blocks of different shapes: the endpoint's
        // chain is replaced in place, its dispatch element kept.
        let acl = || run_in(host, &["nft", "list", "table", "inet", "hostnet"]);
        let s0 = acl();
        // (Elements of the ACL maps carry counters, printed before the verdict.)
        assert!(
            s0.contains("10.0.0.5 . 0.0.0.0 . tcp . 96 . 0 counter packets 0 bytes 0 : drop"),
            "{s0}"
        );
        assert!(!s0.contains(": goto acl_in_host_0"), "{s0}");
        assert!(s0.contains("th dport & 65532"), "96-99's shape: {s0}");
        assert!(elements_of(host, "set", "ports").contains("\"hnv2\""));

        // An add that fails (it exists) takes the deletes of its batch
        // back with it: nothing changed.
        let failing = Op::ReplaceElements {
            delete: new.clone(),
            add: [old.clone(), vec![ifname("hnv2")]].concat(),
        };
        let err = dp.execute(&failing).unwrap_err();
        assert!(err.to_string().contains("hnv2"), "{err}");
        assert_eq!(acl(), s0);

        // Undo is the reverse swap.
        dp.execute(&swap.undo().unwrap()).unwrap();
        let back = acl();
        assert!(
            back.contains(
                "10.0.0.5 . 0.0.0.0 . tcp . 80 . 0 counter packets 0 bytes 0 : goto acl_in_host_0"
            ),
            "{back}"
        );
        assert!(!back.contains(": drop"), "{back}");
        assert!(elements_of(host, "set", "ports").contains("\"hnv1\""));
    });
}

/// Conntrack entries are listed by address, with their ports, and a delete
/// removes exactly the one named.
#[test]
fn conntrack_flows_are_listed_and_deleted() {
    let Some(tb) = Testbed::new() else { return };
    tb.in_host(|| {
        let dp = LinuxDataplane::new().unwrap();
        // A ct expression makes the namespace track connections.
        dp.load_tables("table inet hostnet {\n\tchain input {\n\t\ttype filter hook input priority 0; ct state new accept\n\t}\n}\n")
            .unwrap();
        // IPv4 and IPv6 alike (a dual-stack endpoint's connections).
        for lo in ["127.0.0.1", "::1"] {
            let lo: std::net::IpAddr = lo.parse().unwrap();
            let listener = TcpListener::bind((lo, 0)).unwrap();
            let port = listener.local_addr().unwrap().port();
            let _a = TcpStream::connect((lo, port)).unwrap();
            let _b = TcpStream::connect((lo, port)).unwrap();
            let ours = |dp: &LinuxDataplane| -> Vec<hostnet_dataplane::Flow> {
                dp.flows_of(&[lo])
                    .unwrap()
                    .into_iter()
                    .filter(|f| f.proto == 6 && f.original.dport == Some(port))
                    .collect()
            };
            let flows = ours(&dp);
            assert_eq!(flows.len(), 2, "{lo}: {flows:?}");
            assert_eq!(flows[0].reply.sport, Some(port));
            assert_eq!(flows[0].original.dst, lo);
            assert!(dp.flows_of(&["192.0.2.1".parse().unwrap()]).unwrap().is_empty());
            assert!(dp.flows_of(&["2001:db8::1".parse().unwrap()]).unwrap().is_empty());
            dp.delete_flows(&flows[..1]).unwrap();
            let left = ours(&dp);
            assert_eq!(left, flows[1..].to_vec(), "{lo}");
            // Gone already: skipped.
            dp.delete_flows(&flows).unwrap();
            assert!(ours(&dp).is_empty(), "{lo}");
        }
    });
}

fn measure_elements(dp: &LinuxDataplane) {
    let n = 200;
    let (mut add, mut del) = (Vec::new(), Vec::new());
    for i in 0..n {
        let e = vec![port_mapping(10_000 + i as u16, [10, 99, 1, 1], 80)];
        let t = Instant::now();
        dp.execute(&Op::AddElements(e.clone())).unwrap();
        add.push(t.elapsed());
        let t = Instant::now();
        dp.execute(&Op::DeleteElements(e)).unwrap();
        del.push(t.elapsed());
    }
    report("AddElements (1 element)", add);
    report("DeleteElements (1 element)", del);
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{what}: n={} p50={:?} p90={:?} max={:?} mean={:?}",
        samples.len(),
        samples[samples.len() / 2],
        samples[samples.len() * 9 / 10],
        samples[samples.len() - 1],
        mean
    );
}

#[test]
fn create_veth_latency() {
    let Some(tb) = Testbed::new() else { return };
    let router = tb.ns_path("router");
    tb.in_host(|| {
        let dp = LinuxDataplane::new().unwrap();
        dp.execute(&bridge("hnbr0", &["10.99.0.1/24"])).unwrap();
        // An overlay's ports are made in its router namespace.
        dp.execute(&Op::CreateNetns {
            path: router.clone(),
        })
        .unwrap();
        let in_router = |op: Op| Op::InNetns {
            netns: router.clone(),
            op: Box::new(op),
        };
        dp.execute(&in_router(bridge("hnbr1", &["10.98.0.1/24"])))
            .unwrap();
        let (mut samples, mut routed, mut netns) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..20 {
            for (bridge, net, out) in [("hnbr0", 99, &mut samples), ("hnbr1", 98, &mut routed)] {
                let ns = tb.ns_path(&format!("ep{net}-{i}"));
                let t = Instant::now();
                dp.execute(&Op::CreateNetns { path: ns.clone() }).unwrap();
                netns.push(t.elapsed());
                let op = veth(
                    &format!("hnv{i}"),
                    bridge,
                    &ns,
                    "eth0",
                    &[&format!("10.{net}.0.{}/24", i + 2)],
                    vec![default_route(&format!("10.{net}.0.1"))],
                );
                let op = match net {
                    98 => in_router(op),
                    _ => op,
                };
                let t = Instant::now();
                dp.execute(&op).unwrap();
                out.push(t.elapsed());
            }
        }
        report("CreateNetns", netns);
        report("CreateVeth (address + default route)", samples);
        report("InNetns(CreateVeth) (an overlay's port)", routed);
        assert_eq!(dp.links_with_prefix("hnv").unwrap().len(), 20);
        let there = dp.in_netns(&router).unwrap();
        assert_eq!(there.links_with_prefix("hnv").unwrap().len(), 20);
    });
}

/// Runs `ip -batch -` with `script` inside the namespace at `ns`.
fn ip_batch(ns: &Path, script: &str) {
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["ip", "-batch", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nsenter ip");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ip -batch failed: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x11, 0x11];

/// A host with an uplink: the testbed's host namespace gets `eth0`
/// (192.0.2.11/24, 2001:db8::11/64, default route and 198.18.0.0/15 via
/// 192.0.2.1), a veth whose other end is `eth0` of a "peer" namespace
/// playing the network: the gateway 192.0.2.1 and 2001:db8::1, and a
/// remote address 203.0.113.1 on its loopback. Returns the peer's path.
fn uplinked_host(tb: &Testbed) -> PathBuf {
    let peer = tb.ns_path("peer");
    create_netns(&peer).expect("create peer namespace");
    ip_batch(
        &tb.host,
        &format!(
            "link add eth0 address 02:00:00:00:11:11 mtu 1450 type veth peer name eth0 netns {}\n\
             link set eth0 up\n\
             addr add 192.0.2.11/24 dev eth0\n\
             addr add 2001:db8::11/64 dev eth0 nodad\n\
             route add default via 192.0.2.1\n\
             route add 198.18.0.0/15 via 192.0.2.1 metric 50\n",
            peer.display()
        ),
    );
    ip_batch(
        &peer,
        "link set eth0 mtu 1450 up\n\
         addr add 192.0.2.1/24 dev eth0\n\
         addr add 2001:db8::1/64 dev eth0 nodad\n\
         addr add 203.0.113.1/32 dev lo\n",
    );
    peer
}

/// Routes as `ip route add` (proto boot) makes them in the main table.
fn uplink_route(destination: &str, metric: u32) -> AdapterRoute {
    AdapterRoute {
        destination: net(destination),
        via: Some("192.0.2.1".parse().unwrap()),
        metric,
        table: 254,
        proto: 3,
        scope: 0,
        src: None,
    }
}

/// New connections from the host namespace reach the peer: its own
/// address, the remote one behind the default route, and over IPv6.
fn assert_uplink_works(tb: &Testbed, listener: &TcpListener) {
    let v4: IpAddr = "::ffff:192.0.2.11".parse().unwrap();
    assert_reaches(&tb.host, listener, "192.0.2.1".parse().unwrap(), v4);
    assert_reaches(&tb.host, listener, "203.0.113.1".parse().unwrap(), v4);
    assert_reaches(
        &tb.host,
        listener,
        "2001:db8::1".parse().unwrap(),
        "2001:db8::11".parse().unwrap(),
    );
}

/// A ping-pong over an established connection.
fn assert_still_connected(client: &mut TcpStream, server: &mut TcpStream) {
    client.write_all(b"ping\n").unwrap();
    let mut buf = [0u8; 5];
    server.read_exact(&mut buf).expect("server reads");
    assert_eq!(&buf, b"ping\n");
    server.write_all(b"pong\n").unwrap();
    client.read_exact(&mut buf).expect("client reads");
    assert_eq!(&buf, b"pong\n");
}

fn move_op(from: &str, to: &str, a: &Adapter) -> Op {
    Op::MoveAddresses {
        from: from.into(),
        to: to.into(),
        addresses: a.addresses.clone(),
        routes: a.routes.clone(),
    }
}

fn without_master(a: Adapter) -> Adapter {
    Adapter { master: None, ..a }
}

#[test]
fn adapter_binding_keeps_the_host_connected() {
    let Some(tb) = Testbed::new() else { return };
    let peer = uplinked_host(&tb);
    let dp = tb.in_host(|| LinuxDataplane::new().unwrap());

    let eth0 = dp.adapter("eth0").unwrap().expect("eth0 exists");
    assert_eq!(
        eth0,
        Adapter {
            name: "eth0".into(),
            index: dp.link_index("eth0").unwrap().unwrap(),
            mac: HOST_MAC,
            mtu: 1450,
            addresses: vec![net("192.0.2.11/24"), net("2001:db8::11/64")],
            routes: vec![
                uplink_route("0.0.0.0/0", 0),
                uplink_route("198.18.0.0/15", 50)
            ],
            master: None,
            up: true,
        }
    );
    assert_eq!(
        dp.default_route_interface().unwrap().as_deref(),
        Some("eth0")
    );
    assert_eq!(dp.adapter("hnnope").unwrap(), None);

    let listener = run_in_netns(&peer, || TcpListener::bind("[::]:0"))
        .unwrap()
        .unwrap();
    assert_uplink_works(&tb, &listener);
    // A connection open across the bind and the unbind.
    let target = SocketAddr::new(
        "192.0.2.1".parse().unwrap(),
        listener.local_addr().unwrap().port(),
    );
    let mut client = run_in_netns(&tb.host, || {
        TcpStream::connect_timeout(&target, Duration::from_secs(5))
    })
    .unwrap()
    .unwrap();
    let (mut server, _) = listener.accept().unwrap();
    for s in [&client, &server] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }

    let bind = vec![
        Op::CreateBridge {
            name: "hnbrtest".into(),
            mtu: eth0.mtu,
            mac: Some(eth0.mac),
            addresses: vec![],
            ipv6: true,
        },
        Op::SetMaster {
            link: "eth0".into(),
            master: Some("hnbrtest".into()),
            previous: eth0.master.clone(),
        },
        move_op("eth0", "hnbrtest", &eth0),
    ];
    apply(&dp, &bind).unwrap();

    let bridge = dp.adapter("hnbrtest").unwrap().expect("bridge exists");
    assert_eq!(bridge.addresses, eth0.addresses);
    assert_eq!(bridge.routes, eth0.routes);
    assert_eq!((bridge.mac, bridge.mtu), (eth0.mac, eth0.mtu));
    let port = dp.adapter("eth0").unwrap().unwrap();
    assert_eq!(port.addresses, []);
    assert_eq!(port.routes, []);
    assert_eq!(port.master.as_deref(), Some("hnbrtest"));
    assert_eq!(
        dp.default_route_interface().unwrap().as_deref(),
        Some("hnbrtest")
    );
    assert_still_connected(&mut client, &mut server);
    assert_uplink_works(&tb, &listener);

    let unbind: Vec<Op> = bind.iter().rev().filter_map(Op::undo).collect();
    assert!(matches!(unbind[2], Op::DeleteLink { .. }), "{unbind:?}");
    apply(&dp, &unbind).unwrap();

    let after = dp.adapter("eth0").unwrap().unwrap();
    assert_eq!(after.master, None);
    assert_eq!(without_master(after), without_master(eth0));
    assert_eq!(dp.adapter("hnbrtest").unwrap(), None);
    assert_eq!(
        dp.default_route_interface().unwrap().as_deref(),
        Some("eth0")
    );
    assert_still_connected(&mut client, &mut server);
    assert_uplink_works(&tb, &listener);
}

#[test]
fn adapter_move_rolls_back_and_repeats() {
    let Some(tb) = Testbed::new() else { return };
    let peer = uplinked_host(&tb);
    let dp = tb.in_host(|| LinuxDataplane::new().unwrap());
    let eth0 = dp.adapter("eth0").unwrap().unwrap();
    dp.execute(&Op::CreateBridge {
        name: "hnbrtest".into(),
        mtu: eth0.mtu,
        mac: Some(eth0.mac),
        addresses: vec![],
        ipv6: true,
    })
    .unwrap();
    let empty = |name: &str| {
        let a = dp.adapter(name).unwrap().unwrap();
        a.addresses.is_empty() && a.routes.is_empty()
    };

    // To a link that does not exist: refused before anything changes.
    let err = dp.execute(&move_op("eth0", "hnnone", &eth0)).unwrap_err();
    assert!(err.to_string().contains("hnnone not found"), "{err}");
    assert_eq!(dp.adapter("eth0").unwrap().unwrap(), eth0);

    // The last step fails (a route whose gateway is on no subnet): the
    // addresses and routes moved before it go back.
    let mut bad = eth0.clone();
    bad.routes.push(AdapterRoute {
        destination: net("10.50.0.0/16"),
        via: Some("10.9.9.9".parse().unwrap()),
        metric: 0,
        table: 254,
        proto: 4,
        scope: 0,
        src: None,
    });
    let err = dp.execute(&move_op("eth0", "hnbrtest", &bad)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("add route 10.50.0.0/16 via 10.9.9.9") && text.contains("rolled back"),
        "{text}"
    );
    assert_eq!(dp.adapter("eth0").unwrap().unwrap(), eth0);
    assert!(empty("hnbrtest"));
    let listener = run_in_netns(&peer, || TcpListener::bind("[::]:0"))
        .unwrap()
        .unwrap();
    assert_uplink_works(&tb, &listener);

    // Reconcile: the same move twice, the second a no-op; then back, twice.
    let set_master = Op::SetMaster {
        link: "eth0".into(),
        master: Some("hnbrtest".into()),
        previous: None,
    };
    let mv = move_op("eth0", "hnbrtest", &eth0);
    dp.execute(&set_master).unwrap();
    dp.execute(&mv).unwrap();
    let bridge = dp.adapter("hnbrtest").unwrap().unwrap();
    dp.execute(&set_master).unwrap();
    dp.execute(&mv).unwrap();
    assert_eq!(dp.adapter("hnbrtest").unwrap().unwrap(), bridge);
    assert_eq!(bridge.addresses, eth0.addresses);
    assert_eq!(bridge.routes, eth0.routes);
    assert!(empty("eth0"));
    assert_uplink_works(&tb, &listener);

    let back = mv.undo().unwrap();
    dp.execute(&back).unwrap();
    dp.execute(&back).unwrap();
    let release = set_master.undo().unwrap();
    assert_eq!(
        release,
        Op::SetMaster {
            link: "eth0".into(),
            master: None,
            previous: Some("hnbrtest".into()),
        }
    );
    dp.execute(&release).unwrap();
    dp.execute(&release).unwrap();
    assert_eq!(dp.adapter("eth0").unwrap().unwrap(), eth0);
    assert!(empty("hnbrtest"));
    assert_uplink_works(&tb, &listener);

    let err = dp
        .execute(&Op::SetMaster {
            link: "eth0".into(),
            master: Some("hnnone".into()),
            previous: None,
        })
        .unwrap_err();
    assert!(err.to_string().contains("hnnone not found"), "{err}");
}

/// Secondary IPv4 addresses, several IPv6 ones, an IPv6 default route, an
/// on-link route with a preferred source: all move to the bridge and back
/// unchanged, in the kernel's order.
#[test]
fn adapter_move_round_trips_every_kind_of_address_and_route() {
    let Some(tb) = Testbed::new() else { return };
    let peer = uplinked_host(&tb);
    ip_batch(
        &tb.host,
        "addr add 192.0.2.12/24 dev eth0\n\
         addr add 198.51.100.7/25 dev eth0\n\
         addr add 2001:db8::12/64 dev eth0 nodad\n\
         addr add 2001:db8:5::11/64 dev eth0 nodad\n\
         route add ::/0 via 2001:db8::1\n\
         route add 2001:db8:77::/48 via 2001:db8::1 metric 7 proto static\n\
         route add 198.51.100.128/25 dev eth0 src 192.0.2.12\n",
    );
    let dp = tb.in_host(|| LinuxDataplane::new().unwrap());
    // Which source the host picks (the newest IPv6 address) must not
    // change either.
    let listener = run_in_netns(&peer, || TcpListener::bind("[::]:0"))
        .unwrap()
        .unwrap();
    let sources_unchanged = || {
        let v4: IpAddr = "::ffff:192.0.2.11".parse().unwrap();
        assert_reaches(&tb.host, &listener, "203.0.113.1".parse().unwrap(), v4);
        let v6: IpAddr = "2001:db8::12".parse().unwrap();
        assert_reaches(&tb.host, &listener, "2001:db8::1".parse().unwrap(), v6);
    };
    sources_unchanged();
    let eth0 = dp.adapter("eth0").unwrap().unwrap();
    // The kernel lists IPv4 primaries before secondaries, IPv6 newest first.
    assert_eq!(
        eth0.addresses,
        [
            "192.0.2.11/24",
            "198.51.100.7/25",
            "192.0.2.12/24",
            "2001:db8:5::11/64",
            "2001:db8::12/64",
            "2001:db8::11/64"
        ]
        .map(net)
    );
    let on_link = eth0
        .routes
        .iter()
        .find(|r| r.destination == net("198.51.100.128/25"))
        .expect("on-link route listed");
    assert_eq!(
        (on_link.via, on_link.scope, on_link.src),
        (None, 253, Some("192.0.2.12".parse().unwrap()))
    );
    let v6: Vec<_> = eth0
        .routes
        .iter()
        .filter(|r| r.destination.addr().is_ipv6())
        .map(|r| (r.destination, r.metric, r.proto))
        .collect();
    assert_eq!(
        v6,
        [(net("2001:db8:77::/48"), 7, 4), (net("::/0"), 1024, 3)],
        "{:?}",
        eth0.routes
    );
    assert_eq!(eth0.routes.len(), 5, "{:?}", eth0.routes);

    dp.execute(&Op::CreateBridge {
        name: "hnbrtest".into(),
        mtu: eth0.mtu,
        mac: Some(eth0.mac),
        addresses: vec![],
        ipv6: true,
    })
    .unwrap();
    // IPv4 details (broadcast addresses included) travel exactly.
    let v4 = |dev: &str| -> Vec<String> {
        run_in(&tb.host, &["ip", "-4", "-o", "addr", "show", "dev", dev])
            .lines()
            .map(|l| {
                l.split_whitespace()
                    .skip(2)
                    .collect::<Vec<_>>()
                    .join(" ")
                    .replace(dev, "IF")
            })
            .collect()
    };
    let before = v4("eth0");
    let there = move_op("eth0", "hnbrtest", &eth0);
    dp.execute(&there).unwrap();
    let bridge = dp.adapter("hnbrtest").unwrap().unwrap();
    assert_eq!(bridge.addresses, eth0.addresses);
    assert_eq!(bridge.routes, eth0.routes);
    assert_eq!(v4("hnbrtest"), before);
    dp.execute(&there.undo().unwrap()).unwrap();
    assert_eq!(dp.adapter("eth0").unwrap().unwrap(), eth0);
    assert_eq!(v4("eth0"), before);

    sources_unchanged();
}

/// A base chain as `nft` lists it (empty if there is none).
fn list_chain(ns: &Path, table: &str, chain: &str) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["nft", "list", "chain", "netdev", table, chain])
        .output()
        .expect("run nsenter");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The devices a listed base chain is hooked on: `device "x"` or
/// `devices = { x, y }`, sorted.
fn hooked_devices(listing: &str) -> Vec<String> {
    let Some(line) = listing.lines().find(|l| l.contains(" hook ")) else {
        return Vec::new();
    };
    let names = match (line.find("devices = {"), line.find("device \"")) {
        (Some(i), _) => {
            let rest = &line[i + "devices = {".len()..];
            rest[..rest.find('}').expect("closing brace")].to_string()
        }
        (None, Some(i)) => {
            let rest = &line[i + "device \"".len()..];
            rest[..rest.find('"').expect("closing quote")].to_string()
        }
        (None, None) => return Vec::new(),
    };
    let mut names: Vec<String> = names
        .split(',')
        .map(|n| n.trim().trim_matches('"').to_string())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names
}

/// Whether `device` is hooked on the rules chain `rules` in `design`, and
/// by a base chain whose one rule goes there.
fn is_hooked(
    ns: &Path,
    design: HookDesign,
    table: &str,
    rules: &str,
    hook: NetdevHook,
    device: &str,
) -> bool {
    let chain = match design {
        HookDesign::ChainPerDevice => hostnet_nft::hook::chain_name(rules, device),
        HookDesign::DeviceList => hostnet_nft::hook::list_chain_name(rules, hook),
    };
    let listing = list_chain(ns, table, &chain);
    let hooked = hooked_devices(&listing).iter().any(|d| d == device);
    if hooked {
        assert!(
            listing.contains(&format!("hook {}", hook.keyword())),
            "{listing}"
        );
        assert_eq!(
            listing.matches(&format!("goto {rules}")).count(),
            1,
            "{listing}"
        );
    }
    hooked
}

#[test]
fn devices_are_hooked_and_unhooked_one_batch_each_with_a_chain_per_device() {
    devices_are_hooked_and_unhooked(HookDesign::ChainPerDevice);
}

#[test]
fn devices_are_hooked_and_unhooked_one_batch_each_with_device_lists() {
    devices_are_hooked_and_unhooked(HookDesign::DeviceList);
}

fn devices_are_hooked_and_unhooked(design: HookDesign) {
    let Some(tb) = Testbed::new() else { return };
    let host = &tb.host;
    for (a, b) in [("hnvetest1", "p1"), ("hnvetest2", "p2"), ("hnuplink", "p3")] {
        run_in(
            host,
            &["ip", "link", "add", a, "type", "veth", "peer", "name", b],
        );
    }
    tb.in_host(|| {
        let kernel = LinuxDataplane::new().unwrap().hook_design();
        if design == HookDesign::DeviceList && kernel != design {
            eprintln!("skipped: this kernel hooks with {}", kernel.describe());
            return;
        }
        let dp = LinuxDataplane::new().unwrap().with_hook_design(design);
        assert_eq!(dp.hook_design(), design);
        let port = hostnet_nft::endpoint_port("hnvetest1");
        let nat_port = hostnet_nft::nat_endpoint_port("hnvetest2");
        // The real tables, with one device already hooked.
        dp.load_tables(&hostnet_nft::tables(std::slice::from_ref(&port), design))
            .unwrap();
        let egress = hostnet_nft::EGRESS_TABLE;
        let out = NetdevHook::Egress;
        assert!(is_hooked(
            host,
            design,
            egress,
            "endpoint_inbound",
            out,
            "hnvetest1"
        ));

        // An element batch may mix devices with set elements; adding
        // twice leaves one rule and one hook.
        let uplink = hostnet_nft::l2::uplink("hnuplink", [2, 0, 0, 0, 0, 1]);
        let mut batch = vec![nat_port.clone()];
        batch.extend(uplink.clone());
        dp.execute(&Op::AddElements(batch.clone())).unwrap();
        dp.execute(&Op::AddElements(vec![nat_port.clone()]))
            .unwrap();
        assert!(is_hooked(
            host,
            design,
            egress,
            "nat_endpoint_inbound",
            out,
            "hnvetest2"
        ));
        assert!(is_hooked(
            host,
            design,
            egress,
            "to_uplink",
            out,
            "hnuplink"
        ));
        let ingress = hostnet_nft::INGRESS_TABLE;
        let inward = NetdevHook::Ingress;
        assert!(is_hooked(
            host,
            design,
            ingress,
            "from_uplink",
            inward,
            "hnuplink"
        ));
        if design == HookDesign::DeviceList {
            // Ports of one rule set on one chain, two added in one batch.
            let more = vec![
                hostnet_nft::endpoint_port("hnvetest2"),
                hostnet_nft::endpoint_port("hnuplink"),
            ];
            dp.execute(&Op::AddElements(more.clone())).unwrap();
            let chain = list_chain(host, egress, "endpoint_inbound/_egress");
            assert_eq!(
                hooked_devices(&chain),
                ["hnuplink", "hnvetest1", "hnvetest2"],
                "{chain}"
            );
            dp.execute(&Op::DeleteElements(more)).unwrap();
            let chain = list_chain(host, egress, "endpoint_inbound/_egress");
            assert_eq!(hooked_devices(&chain), ["hnvetest1"], "{chain}");
        }

        // A replace that deletes and adds one device leaves it hooked.
        dp.execute(&Op::ReplaceElements {
            delete: vec![nat_port.clone()],
            add: vec![nat_port.clone()],
        })
        .unwrap();
        assert!(is_hooked(
            host,
            design,
            egress,
            "nat_endpoint_inbound",
            out,
            "hnvetest2"
        ));

        // Deleting unhooks the device and leaves the shared rules and the
        // other devices; deleting twice is not an error.
        dp.execute(&Op::DeleteElements(batch.clone())).unwrap();
        dp.execute(&Op::DeleteElements(batch)).unwrap();
        assert!(!is_hooked(
            host,
            design,
            egress,
            "nat_endpoint_inbound",
            out,
            "hnvetest2"
        ));
        assert!(!is_hooked(
            host,
            design,
            egress,
            "to_uplink",
            out,
            "hnuplink"
        ));
        assert!(!is_hooked(
            host,
            design,
            ingress,
            "from_uplink",
            inward,
            "hnuplink"
        ));
        assert!(is_hooked(
            host,
            design,
            egress,
            "endpoint_inbound",
            out,
            "hnvetest1"
        ));
        let rules = run_in(
            host,
            &[
                "nft",
                "list",
                "chain",
                "netdev",
                egress,
                "nat_endpoint_inbound",
            ],
        );
        assert!(rules.contains("drop"), "{rules}");

        // A device deleted first: Linux 6.1 deletes its chain with it,
        // 6.16+ keeps it hooked by name; either way the element's delete
        // unhooks it without an error.
        let veth = dp.execute(&Op::DeleteLink {
            name: "hnvetest1".into(),
        });
        veth.unwrap();
        dp.execute(&Op::DeleteElements(vec![port.clone()])).unwrap();
        assert!(!is_hooked(
            host,
            design,
            egress,
            "endpoint_inbound",
            out,
            "hnvetest1"
        ));

        if design == HookDesign::DeviceList {
            // A device hooked before it exists is hooked once it does.
            dp.execute(&Op::AddElements(vec![port.clone()])).unwrap();
            run_in(
                host,
                &[
                    "ip",
                    "link",
                    "add",
                    "hnvetest1",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "p1",
                ],
            );
            assert!(is_hooked(
                host,
                design,
                egress,
                "endpoint_inbound",
                out,
                "hnvetest1"
            ));
        }

        // A missing table is an error that names it.
        let mut stray = nat_port;
        stray.table = "nosuchtable";
        let err = dp.execute(&Op::AddElements(vec![stray])).unwrap_err();
        assert!(err.to_string().contains("netdev nosuchtable"), "{err}");
    });
}

/// A load balancer's change is one batch: the deletes and adds land
/// together, and when one add fails none of the deletes happened.
#[test]
fn replace_elements_is_one_atomic_batch() {
    use hostnet_nft::lb::{elements, Frontend, Pick, Reach};
    let Some(tb) = Testbed::new() else { return };
    let host = &tb.host;
    tb.in_host(|| {
        let dp = LinuxDataplane::new().unwrap();
        dp.load_tables(&hostnet_nft::tables(&[], dp.hook_design()))
            .unwrap();
        let frontend = |backends: &[[u8; 4]]| Frontend {
            family: hostnet_nft::lb::IpFamily::V4,
            vip: Some([10, 96, 0, 10].into()),
            proto: 6,
            port: 80,
            target_port: 8080,
            pick: Pick::Random,
            reach: Reach {
                guests: true,
                outside: false,
                host: false,
            },
            source_vip: None,
            backends: backends.iter().map(|&b| b.into()).collect(),
            preserve_dip: false,
        };
        let two = elements(&frontend(&[[10, 88, 0, 2], [10, 88, 0, 3]]));
        dp.execute(&Op::AddElements(two.clone())).unwrap();
        let three = elements(&frontend(&[[10, 88, 0, 2], [10, 88, 0, 3], [10, 88, 0, 4]]));
        dp.execute(&Op::ReplaceElements {
            delete: two.clone(),
            add: three.clone(),
        })
        .unwrap();
        let slots = elements_of(host, "map", "lb_vip_slots4");
        assert!(
            slots.contains("10.96.0.10 . tcp . 80 . 2 : 10.88.0.4 . 8080"),
            "{slots}"
        );
        let dispatch = elements_of(host, "map", "lb_vip_guests4");
        let kind = hostnet_nft::lb::kind_of_chain("lb_vip_random_3").unwrap();
        assert!(dispatch.contains(&format!(": {kind:#010x}")), "{dispatch}");

        // An add the kernel refuses (no such map): nothing was deleted.
        let mut stray = three[0].clone();
        stray.set = "no_such_map";
        let err = dp
            .execute(&Op::ReplaceElements {
                delete: three.clone(),
                add: vec![stray],
            })
            .unwrap_err();
        assert!(err.to_string().contains("no_such_map"), "{err}");
        assert_eq!(elements_of(host, "map", "lb_vip_slots4"), slots);
        assert_eq!(elements_of(host, "map", "lb_vip_guests4"), dispatch);
    });
}

#[test]
fn routes_are_added_again_harmlessly_and_deleted_leniently() {
    let Some(tb) = Testbed::new() else { return };
    tb.in_host(|| {
        let dp = LinuxDataplane::new().unwrap();
        dp.execute(&bridge("hnbr0", &["10.99.0.1/24"])).unwrap();
        let ep = tb.ns_path("ep-routes");
        dp.execute(&Op::CreateNetns { path: ep.clone() }).unwrap();
        dp.execute(&veth(
            "hnv1",
            "hnbr0",
            &ep,
            "eth0",
            &["10.99.0.2/24"],
            vec![],
        ))
        .unwrap();
        let route = |d: &str, via: &str| RouteSpec {
            destination: net(d),
            via: Some(via.parse().unwrap()),
            metric: 0,
        };
        let add = Op::AddRoutes {
            netns: ep.clone(),
            link: "eth0".into(),
            routes: vec![
                route("192.0.2.0/24", "10.99.0.7"),
                route("198.18.0.0/15", "10.99.0.1"),
            ],
        };
        dp.execute(&add).unwrap();
        // Reconcile repeats it: replaced, not refused, not doubled.
        dp.execute(&add).unwrap();
        let shown = run_in(&ep, &["ip", "-4", "route"]);
        assert_eq!(
            shown.matches("192.0.2.0/24 via 10.99.0.7 dev eth0").count(),
            1,
            "{shown}"
        );
        assert!(
            shown.contains("198.18.0.0/15 via 10.99.0.1 dev eth0"),
            "{shown}"
        );

        // A route that cannot be added takes the ones before it back.
        let bad = Op::AddRoutes {
            netns: ep.clone(),
            link: "eth0".into(),
            routes: vec![
                route("203.0.113.0/24", "10.99.0.1"),
                route("10.1.0.0/16", "172.31.0.1"),
            ],
        };
        assert!(dp.execute(&bad).is_err());
        assert!(!run_in(&ep, &["ip", "-4", "route"]).contains("203.0.113.0/24"));

        dp.execute(&add.undo().unwrap()).unwrap();
        let shown = run_in(&ep, &["ip", "-4", "route"]);
        assert!(
            !shown.contains("192.0.2.0/24") && !shown.contains("198.18.0.0/15"),
            "{shown}"
        );
        assert!(
            shown.contains("10.99.0.0/24 dev eth0"),
            "the connected route stays: {shown}"
        );
        // Deleting again, or where the link or namespace is gone, is done.
        dp.execute(&add.undo().unwrap()).unwrap();
        let gone_link = Op::DeleteRoutes {
            netns: ep.clone(),
            link: "eth9".into(),
            routes: vec![],
        };
        dp.execute(&gone_link).unwrap();
        let gone_ns = Op::DeleteRoutes {
            netns: tb.dir.path().join("no-such-ns"),
            link: "eth0".into(),
            routes: vec![route("192.0.2.0/24", "10.99.0.7")],
        };
        dp.execute(&gone_ns).unwrap();
    });
}

/// Local routes make a namespace accept VIPs (AnyIP): a wildcard listener
/// gets the connection with the VIP as its local address; they replace
/// the loopback addresses of earlier versions without breaking the
/// connections those carry, and go away again leniently.
#[test]
fn local_routes_accept_vips_and_replace_loopback_addresses() {
    let Some(tb) = Testbed::new() else { return };
    let dp = tb.in_host(|| LinuxDataplane::new().unwrap());
    let ep = tb.ns_path("ep-vips");
    dp.execute(&Op::CreateNetns { path: ep.clone() }).unwrap();
    let (old, new) = ("10.96.0.10", "10.96.0.11");
    // An earlier version's state: the VIP as an address, a connection to it.
    run_in(
        &ep,
        &["ip", "addr", "add", &format!("{old}/32"), "dev", "lo"],
    );
    let listener = run_in_netns(&ep, || TcpListener::bind("0.0.0.0:0").unwrap()).unwrap();
    let port = listener.local_addr().unwrap().port();
    let connect = |vip: &str| {
        let to: SocketAddr = format!("{vip}:{port}").parse().unwrap();
        run_in_netns(&ep, || {
            TcpStream::connect_timeout(&to, Duration::from_secs(2))
        })
        .unwrap()
    };
    let mut before = connect(old).expect("connect to the address");
    let (mut served, _) = listener.accept().unwrap();
    assert_eq!(served.local_addr().unwrap().ip().to_string(), old);

    let add = Op::AddLocalRoutes(vec![LocalRoutes {
        netns: ep.clone(),
        addresses: vec![old.parse().unwrap(), new.parse().unwrap()],
    }]);
    dp.execute(&add).unwrap();
    dp.execute(&add).expect("added again (reconcile)");
    let addresses = run_in(&ep, &["ip", "-4", "-o", "addr", "show", "dev", "lo"]);
    assert!(
        !addresses.contains(old),
        "the old address stays: {addresses}"
    );
    let routes = run_in(&ep, &["ip", "-4", "route", "show", "table", "local"]);
    for vip in [old, new] {
        let line = format!("local {vip} dev lo proto static scope host");
        assert_eq!(routes.matches(&line).count(), 1, "{routes}");
    }
    // The connection made to the address goes on; new ones, to either VIP,
    // reach the wildcard listener with the VIP as their local address.
    before.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    served.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    for vip in [old, new] {
        let _client = connect(vip).expect("connect to the VIP");
        let (conn, _) = listener.accept().unwrap();
        assert_eq!(conn.local_addr().unwrap().ip().to_string(), vip);
    }

    dp.execute(&add.undo().unwrap()).unwrap();
    let routes = run_in(&ep, &["ip", "-4", "route", "show", "table", "local"]);
    assert!(!routes.contains(old) && !routes.contains(new), "{routes}");
    assert!(connect(new).is_err(), "the VIP is still accepted");
    // Deleting again, or in a namespace that is gone, is done; adding
    // there is an error.
    dp.execute(&add.undo().unwrap()).unwrap();
    let gone = tb.dir.path().join("no-such-ns");
    let routes = |netns: &Path| LocalRoutes {
        netns: netns.to_path_buf(),
        addresses: vec![new.parse().unwrap()],
    };
    dp.execute(&Op::DeleteLocalRoutes(vec![routes(&gone), routes(&ep)]))
        .unwrap();
    // An add naming a namespace that is gone fails before it adds any.
    let err = dp
        .execute(&Op::AddLocalRoutes(vec![routes(&ep), routes(&gone)]))
        .unwrap_err();
    assert!(err.to_string().contains("no-such-ns"), "{err}");
    let routes_left = run_in(&ep, &["ip", "-4", "route", "show", "table", "local"]);
    assert!(!routes_left.contains(new), "{routes_left}");
}

#[test]
fn vxlan_entries_are_read_back_as_programmed() {
    let Some(tb) = Testbed::new() else { return };
    let dp = tb.in_host(|| LinuxDataplane::new().unwrap());
    run_in(&tb.host, &["ip", "link", "add", "br0", "type", "bridge"]);
    run_in(
        &tb.host,
        &[
            "ip",
            "link",
            "add",
            "vx0",
            "type",
            "vxlan",
            "id",
            "42",
            "dstport",
            "4789",
            "nolearning",
        ],
    );
    // On a bridge, the bridge's own entry for vx0's MAC is not the device's.
    run_in(
        &tb.host,
        &["ip", "link", "set", "vx0", "master", "br0", "up"],
    );
    let (mac, pa, ip) = (
        [0x00, 0x15, 0x5d, 1, 2, 3],
        "192.0.2.12".parse().unwrap(),
        "10.0.1.5".parse().unwrap(),
    );
    apply(
        &dp,
        &[
            Op::AddFdb {
                link: "vx0".into(),
                mac,
                remote: pa,
            },
            Op::AddNeighbour {
                netns: None,
                link: "vx0".into(),
                ip,
                mac,
            },
        ],
    )
    .unwrap();
    let found = dp.vxlan_entries("vx0").unwrap();
    assert_eq!(found.fdb, [(mac, pa)]);
    assert_eq!(found.neighbours, [(ip, mac)]);
    assert_eq!(dp.vxlan_entries("nonesuch").unwrap(), Default::default());
    dp.execute(&Op::DeleteFdb {
        link: "vx0".into(),
        mac,
        remote: pa,
    })
    .unwrap();
    assert!(dp.vxlan_entries("vx0").unwrap().fdb.is_empty());
}

#[test]
fn a_vxlan_born_in_another_namespace_keeps_its_socket_in_the_daemons() {
    let Some(tb) = Testbed::new() else { return };
    let dp = tb.in_host(|| LinuxDataplane::new().unwrap());
    let router = tb.ns_path("router");
    run_in(
        &tb.host,
        &["ip", "link", "add", "u0", "type", "veth", "peer", "u1"],
    );
    run_in(
        &tb.host,
        &["ip", "addr", "add", "192.0.2.11/24", "dev", "u0"],
    );
    run_in(&tb.host, &["ip", "link", "set", "u0", "up"]);
    let in_router = |op: Op| Op::InNetns {
        netns: router.clone(),
        op: Box::new(op),
    };
    let vxlan = Op::CreateVxlan {
        name: "hnvx00002a".into(),
        vni: 42,
        local: "192.0.2.11".parse().unwrap(),
        port: 4789,
        mtu: 1450,
        bridge: "hnvb00002a".into(),
        netns: Some(router.clone()),
    };
    let mac = [2, 0, 0, 0, 0, 9];
    let plan = [
        Op::CreateNetns {
            path: router.clone(),
        },
        in_router(bridge("hnvb00002a", &["10.0.1.1/24"])),
        vxlan.clone(),
        in_router(Op::AddFdb {
            link: "hnvx00002a".into(),
            mac,
            remote: "192.0.2.12".parse().unwrap(),
        }),
    ];
    apply(&dp, &plan).unwrap();
    // The device and its bridge are the router's, the UDP socket the host's.
    let there = run_in(&router, &["ip", "-d", "link", "show", "hnvx00002a"]);
    assert!(there.contains("master hnvb00002a"), "{there}");
    assert!(there.contains("vxlan id 42 local 192.0.2.11"), "{there}");
    assert!(run_in(&tb.host, &["ip", "link", "show"])
        .find("hnv")
        .is_none());
    assert!(run_in(&tb.host, &["ss", "-uln"]).contains(":4789"));
    assert!(!run_in(&router, &["ss", "-uln"]).contains(":4789"));
    let found = dp
        .in_netns(&router)
        .unwrap()
        .vxlan_entries("hnvx00002a")
        .unwrap();
    assert_eq!(found.fdb, [(mac, "192.0.2.12".parse().unwrap())]);
    // A failing plan takes back what it made in the router, device included.
    let again = [
        vxlan.undo().unwrap(),
        vxlan.clone(),
        in_router(bridge("hnvb00002a", &[])),
    ];
    assert!(apply(&dp, &again).is_err());
    assert!(!run_in(&router, &["ip", "link", "show"]).contains("hnvx00002a"));
    assert!(!run_in(&tb.host, &["ss", "-uln"]).contains(":4789"));
    // Deleting the namespace frees it, the device and its socket with it
    // (the dataplane kept for the router lets go of it), though the
    // kernel does so in its own time.
    apply(&dp, &[vxlan]).unwrap();
    dp.in_netns(&router)
        .unwrap()
        .links_with_prefix("hn")
        .unwrap();
    dp.execute(&Op::DeleteNetns {
        path: router.clone(),
    })
    .unwrap();
    let closed = (0..100).any(|_| {
        let open = run_in(&tb.host, &["ss", "-uln"]).contains(":4789");
        if open {
            std::thread::sleep(Duration::from_millis(50));
        }
        !open
    });
    assert!(closed, "the VXLAN socket outlived its namespace");
    // Removals in a namespace that is gone are nothing to do.
    dp.execute(&vxlan_down(&router)).unwrap();
}

fn vxlan_down(router: &Path) -> Op {
    Op::InNetns {
        netns: router.to_path_buf(),
        op: Box::new(Op::DeleteLink {
            name: "hnvx00002a".into(),
        }),
    }
}

/// A VM NIC's port: a persistent tap (it outlives the descriptor that
/// made it, for qemu to open by name), with the MTU asked for, on the
/// bridge, up, without IPv6 link-local; never taken over when a link of
/// its name exists; nothing left when its bridge is missing; gone with
/// `DeleteLink`.
#[test]
fn a_persistent_tap_on_a_bridge_until_deleted() {
    let Some(tb) = Testbed::new() else { return };
    tb.in_host(|| {
        let dp = LinuxDataplane::new().unwrap();
        dp.execute(&bridge("hnbr0", &["10.99.0.1/24"])).unwrap();
        let tap = |name: &str, bridge: &str| Op::CreateTap {
            name: name.into(),
            bridge: bridge.into(),
            mtu: 1400,
        };
        dp.execute(&tap("hnve1", "hnbr0")).unwrap();
        let shown = run_in(&tb.host, &["ip", "-d", "link", "show", "hnve1"]);
        for want in ["tun type tap", "persist on", "master hnbr0", "mtu 1400"] {
            assert!(shown.contains(want), "no {want:?} in {shown}");
        }
        let addrs = run_in(&tb.host, &["ip", "-6", "addr", "show", "hnve1"]);
        assert!(!addrs.contains("fe80"), "{addrs}");

        let again = dp.execute(&tap("hnve1", "hnbr0")).unwrap_err();
        assert!(again.to_string().contains("exists already"), "{again}");
        let orphan = dp.execute(&tap("hnve2", "hnbr9")).unwrap_err();
        assert!(orphan.to_string().contains("hnbr9"), "{orphan}");
        assert_eq!(dp.link_index("hnve2").unwrap(), None);

        dp.execute(&Op::DeleteLink {
            name: "hnve1".into(),
        })
        .unwrap();
        assert_eq!(dp.link_index("hnve1").unwrap(), None);
    });
}
