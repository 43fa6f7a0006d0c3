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
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hostnet_dataplane::linux::{create_netns, delete_netns, run_in_netns, LinuxDataplane};
use hostnet_dataplane::{Dataplane, Op, RouteSpec};
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
/// bridge port may still be coming up), sends a line, and checks that the
/// listener in the host namespace saw it from `from`.
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
        data: Some(data),
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
    tb.in_host(|| {
        let dp = LinuxDataplane::new().unwrap();
        dp.execute(&bridge("hnbr0", &["10.99.0.1/24"])).unwrap();
        let mut samples = Vec::new();
        let mut netns = Vec::new();
        for i in 0..20 {
            let ns = tb.ns_path(&format!("ep{i}"));
            let t = Instant::now();
            dp.execute(&Op::CreateNetns { path: ns.clone() }).unwrap();
            netns.push(t.elapsed());
            let op = veth(
                &format!("hnv{i}"),
                "hnbr0",
                &ns,
                "eth0",
                &[&format!("10.99.0.{}/24", i + 2)],
                vec![default_route("10.99.0.1")],
            );
            let t = Instant::now();
            dp.execute(&op).unwrap();
            samples.push(t.elapsed());
        }
        report("CreateNetns", netns);
        report("CreateVeth (address + default route)", samples);
        assert_eq!(dp.links_with_prefix("hnv").unwrap().len(), 20);
    });
}
