//! The differential test of issue 5: generated ACL rule sets, compiled to
//! hostnet's nftables maps and loaded into a real kernel, decide real
//! packets exactly as the policy evaluator says.
//!
//! ```text
//!  ep (10.0.0.5/32) --veth-- host (forwards; ACL maps and chains) --veth-- peer (10.0.0.1, 10.0.0.6,
//!                                                                          192.0.2.9, 198.51.100.1)
//! ```
//!
//! Every generated packet is crafted whole (raw IP) in the sender's
//! namespace and looked for with a packet socket on the receiver's link;
//! receivers drop everything at their input hook, so no reply ever makes a
//! flow established and every packet is judged as a new one.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use hostnet_dataplane::linux::{run_in_netns, LinuxDataplane};
use hostnet_dataplane::{Dataplane, Op};
use hostnet_nft::acl;
use hostnet_policy::arbitrary::{packet, rules, ENDPOINT, PEERS};
use hostnet_policy::{
    evaluate, lower, Direction, Group, LayerName, Packet, Port, PortKind, Proto, Verdict,
};
use hostnet_testbed::{require_privileges, unique, Netns};
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// The three namespaces, linked and routed.
struct World {
    host: Netns,
    ep: Netns,
    peer: Netns,
}

fn sysctl(ns: &Netns, kv: &str) {
    let out = ns.output("sysctl", &["-qw", kv]);
    assert!(out.status.success(), "sysctl {kv}: {out:?}");
}

fn nft(ns: &Netns, script: &str) {
    use std::io::Write;
    let mut child = ns
        .command("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run nft");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "nft -f: {script}");
}

impl World {
    fn new() -> Self {
        let w = World {
            host: Netns::new(&unique("aclhost")),
            ep: Netns::new(&unique("aclep")),
            peer: Netns::new(&unique("aclpeer")),
        };
        w.host.link(
            "h-ep",
            "169.254.1.1/32",
            &w.ep,
            "eth0",
            &format!("{ENDPOINT}/32"),
        );
        w.host.link(
            "h-peer",
            "169.254.2.1/32",
            &w.peer,
            "eth0",
            &format!("{}/32", PEERS[0]),
        );
        for p in &PEERS[1..] {
            w.peer
                .ip(&["addr", "add", &format!("{p}/32"), "dev", "eth0"]);
        }
        w.ep.ip(&["route", "add", "169.254.1.1", "dev", "eth0"]);
        w.ep.ip(&[
            "route",
            "add",
            "default",
            "via",
            "169.254.1.1",
            "dev",
            "eth0",
        ]);
        w.peer.ip(&["route", "add", "169.254.2.1", "dev", "eth0"]);
        w.peer.ip(&[
            "route",
            "add",
            "default",
            "via",
            "169.254.2.1",
            "dev",
            "eth0",
        ]);
        w.host
            .ip(&["route", "add", &format!("{ENDPOINT}/32"), "dev", "h-ep"]);
        for p in PEERS {
            w.host
                .ip(&["route", "add", &format!("{p}/32"), "dev", "h-peer"]);
        }
        sysctl(&w.host, "net.ipv4.ip_forward=1");
        for ns in [&w.host, &w.ep, &w.peer] {
            sysctl(ns, "net.ipv4.conf.all.rp_filter=0");
            sysctl(ns, "net.ipv4.conf.default.rp_filter=0");
        }
        // Receivers answer nothing: every probe stays a new flow.
        for ns in [&w.ep, &w.peer] {
            nft(
                ns,
                "table inet quiet {\n\tchain input {\n\t\ttype filter hook input priority 0; policy drop;\n\t}\n}\n",
            );
        }
        w
    }
}

/// The host's ruleset: the ACL maps and chains, entered from forward.
/// Probes are not tracked: the walk must decide each one on its own (GRE,
/// say, is tracked by addresses alone, so an allowed probe out would make
/// every later one in a reply). That replies of allowed flows pass is the
/// daemon's tests' business.
fn host_tables() -> String {
    format!(
        "table inet hostnet {{\n{}\tchain raw {{\n\t\ttype filter hook prerouting priority raw; policy accept;\n\t\tnotrack\n\t}}\n\tchain forward {{\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tct state established,related accept\n\t\tip saddr {ENDPOINT} jump {}\n\t\tip daddr {ENDPOINT} jump {}\n\t}}\n}}\n",
        acl::skeleton(),
        acl::OUT_ENTRY,
        acl::IN_ENTRY
    )
}

fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The whole IPv4 packet for `p`, carrying `marker` in its payload.
fn craft(p: &Packet, marker: u64) -> Vec<u8> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (p.src, p.dst) else {
        unreachable!("the universe is IPv4")
    };
    let mut l4 = match p.proto {
        Proto::TCP => {
            let mut h = vec![0u8; 20];
            h[0..2].copy_from_slice(&p.src_port.unwrap().to_be_bytes());
            h[2..4].copy_from_slice(&p.dst_port.unwrap().to_be_bytes());
            h[4..8].copy_from_slice(&(marker as u32).to_be_bytes());
            h[12] = 5 << 4;
            h[13] = 0x02; // SYN
            h[14..16].copy_from_slice(&64240u16.to_be_bytes());
            h
        }
        Proto::UDP => {
            let mut h = vec![0u8; 8];
            h[0..2].copy_from_slice(&p.src_port.unwrap().to_be_bytes());
            h[2..4].copy_from_slice(&p.dst_port.unwrap().to_be_bytes());
            h
        }
        Proto::ICMP => vec![8, 0, 0, 0, (marker >> 8) as u8, marker as u8, 0, 1],
        _ => Vec::new(),
    };
    l4.extend_from_slice(&marker.to_be_bytes());
    let len = l4.len();
    match p.proto {
        Proto::TCP | Proto::UDP => {
            if p.proto == Proto::UDP {
                l4[4..6].copy_from_slice(&(len as u16).to_be_bytes());
            }
            let mut pseudo: u32 = 0;
            for w in [src.octets(), dst.octets()] {
                pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]))
                    + u32::from(u16::from_be_bytes([w[2], w[3]]));
            }
            pseudo += u32::from(p.proto.0) + len as u32;
            let at = if p.proto == Proto::TCP { 16 } else { 6 };
            let sum = checksum(&l4, pseudo);
            l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        }
        Proto::ICMP => {
            let sum = checksum(&l4, 0);
            l4[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        _ => {}
    }
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, p.proto.0, 0, 0];
    ip[2..4].copy_from_slice(&((20 + len) as u16).to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = checksum(&ip, 0);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&l4);
    ip
}

fn raw_sender(ns: &Netns) -> OwnedFd {
    run_in_netns(ns.path(), || {
        // SAFETY: plain socket(2); the descriptor is owned below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        // SAFETY: fd is a fresh descriptor we own.
        unsafe { OwnedFd::from_raw_fd(fd) }
    })
    .expect("enter namespace")
}

/// A packet socket on `eth0` of `ns`, receiving IPv4 payloads.
fn capture(ns: &Netns) -> OwnedFd {
    run_in_netns(ns.path(), || {
        let proto = (libc::ETH_P_IP as u16).to_be();
        // SAFETY: plain socket(2); the descriptor is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK,
                i32::from(proto),
            )
        };
        assert!(
            fd >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = std::ffi::CString::new("eth0").unwrap();
        // SAFETY: a NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        // SAFETY: sockaddr_ll is plain data; zero is a valid start.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = proto;
        sa.sll_ifindex = index as i32;
        // SAFETY: sa is a valid sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        fd
    })
    .expect("enter namespace")
}

fn send(fd: &OwnedFd, pkt: &[u8], dst: Ipv4Addr) {
    // SAFETY: sockaddr_in is plain data.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as u16;
    sa.sin_addr.s_addr = u32::from_ne_bytes(dst.octets());
    // SAFETY: pkt and sa are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    assert_eq!(
        n as usize,
        pkt.len(),
        "sendto: {}",
        std::io::Error::last_os_error()
    );
}

/// The markers of packets `fd` saw arriving for `want_dst` (or, when
/// None, for anyone but the endpoint).
fn drain(fd: &OwnedFd, to_endpoint: bool, seen: &mut HashSet<u64>) {
    let mut buf = [0u8; 2048];
    loop {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 28 {
            return;
        }
        let p = &buf[..n as usize];
        let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
        if (dst == ENDPOINT) == to_endpoint {
            let m = &p[p.len() - 8..];
            seen.insert(u64::from_be_bytes(m.try_into().unwrap()));
        }
    }
}

#[test]
fn compiled_acls_decide_real_packets_as_the_evaluator() {
    if !require_privileges("compiled_acls_decide_real_packets_as_the_evaluator") {
        return;
    }
    let w = World::new();
    let dp = run_in_netns(w.host.path(), LinuxDataplane::new)
        .expect("enter host")
        .expect("dataplane");
    dp.load_tables(&host_tables()).expect("load the ACL tables");
    let (from_ep, from_peer) = (raw_sender(&w.ep), raw_sender(&w.peer));
    let (at_ep, at_peer) = (capture(&w.ep), capture(&w.peer));
    let marker = std::cell::Cell::new(0u64);

    let mut runner = TestRunner::new(Config {
        // HOSTNET_ACL_CASES=N runs more (each case takes about 70 ms).
        cases: std::env::var("HOSTNET_ACL_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(48),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        rules(5),
        rules(7),
        proptest::collection::vec(packet(), 1..10),
    );
    let result = runner.run(&strategy, |(host_rules, switch_rules, packets)| {
        let mut port = Port::new("ep", PortKind::Endpoint);
        port.set_group(LayerName::AclHost, lower::firewall_defaults());
        port.set_group(LayerName::AclHost, Group::new("acl", 0, host_rules));
        port.set_group(LayerName::AclSwitch, Group::new("acl", 0, switch_rules));
        let Ok(els) = acl::elements(ENDPOINT, &port) else {
            return Ok(());
        };
        dp.execute(&Op::AddElements(els.clone()))
            .map_err(|e| TestCaseError::fail(format!("programming: {e}")))?;
        let mut sent = Vec::new();
        for (p, dir) in &packets {
            marker.set(marker.get() + 1);
            let marker = marker.get();
            let (fd, dst) = match dir {
                Direction::In => (&from_peer, p.dst),
                Direction::Out => (&from_ep, p.dst),
            };
            let IpAddr::V4(dst) = dst else { unreachable!() };
            send(fd, &craft(p, marker), dst);
            sent.push((marker, *p, *dir));
        }
        let mut seen = HashSet::new();
        let deadline = Instant::now() + Duration::from_millis(60);
        while Instant::now() < deadline {
            drain(&at_ep, true, &mut seen);
            drain(&at_peer, false, &mut seen);
            std::thread::sleep(Duration::from_millis(5));
        }
        dp.execute(&Op::DeleteElements(els))
            .map_err(|e| TestCaseError::fail(format!("unprogramming: {e}")))?;
        let left = w.host.output("nft", &["list", "table", "inet", "hostnet"]);
        let left = String::from_utf8_lossy(&left.stdout);
        if left.contains("elements") {
            return Err(TestCaseError::fail(format!(
                "elements left after delete:\n{left}"
            )));
        }
        for (m, p, dir) in sent {
            let e = evaluate(&port, p, dir, None);
            let want = matches!(e.verdict, Verdict::Allow { .. });
            let got = seen.contains(&m);
            if got != want {
                return Err(TestCaseError::fail(format!(
                    "{dir} {p}: the kernel {} it, the evaluator says\n{}",
                    if got { "passed" } else { "dropped" },
                    e.trace.render(&e.verdict, true)
                )));
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
