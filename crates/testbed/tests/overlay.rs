//! The Overlay driver on the multi-host world ([`PhysicalNet`], tier 2):
//! the same overlay network (name, subnets, VNIs) on two hosts, each
//! host's daemon told of the other's endpoints through the API as remote
//! endpoints (`Flags: 1` and a `ProviderAddress`), as Docker's and
//! kube-proxy's Windows overlay code does. Everything is proved with
//! packets: probes in containers, forwarding counters of the routers.

use std::path::Path;

use hostnet_api::Kind;
use hostnet_testbed::capture::Capture;
use hostnet_testbed::physical::{id, Container, Host, OUTSIDE};
use hostnet_testbed::{require_privileges, PhysicalNet, Probe};

/// A command run inside the namespace at `ns`.
fn ns_command(ns: &Path, program: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new("nsenter");
    cmd.arg(format!("--net={}", ns.display())).arg(program);
    cmd
}
use serde_json::{json, Value};

const NET: &str = "ov";
const VNI1: u32 = 4100;
const VNI2: u32 = 4101;
/// A on host 1, B on host 2 in subnet 1; C on host 2 in subnet 2.
const A: &str = "10.0.1.10";
const B: &str = "10.0.1.20";
const C: &str = "10.0.2.30";

fn world(test: &str) -> Option<PhysicalNet> {
    if !require_privileges(test) {
        return None;
    }
    let mut phys = PhysicalNet::new("ov", 2);
    phys.start_daemons(&["--no-default-network"]);
    Some(phys)
}

fn overlay_network(name: &str, vnis: [u32; 2]) -> Value {
    let subnet = |prefix: &str, vni: u32| {
        json!({"IpAddressPrefix": prefix,
               "Policies": [{"Type": "VSID", "Settings": {"IsolationId": vni}}]})
    };
    json!({
        "Name": name, "Type": "Overlay",
        "Ipams": [{"Type": "Static", "Subnets": [
            subnet("10.0.1.0/24", vnis[0]), subnet("10.0.2.0/24", vnis[1])]}],
        "SchemaVersion": {"Major": 2, "Minor": 0}
    })
}

fn at(host: &Host, network: &str, ip: &str) -> Container {
    host.container_with(network, json!({"IpConfigurations": [{"IpAddress": ip}]}))
}

/// Tell `host` about a container of another host (whose PA is `pa`).
fn remote(host: &Host, network: &str, of: &Host, c: &Container, pa: &str) -> String {
    let ep = of
        .client()
        .get(Kind::Endpoints, &c.ep_id)
        .expect("get endpoint");
    let body = json!({
        "HostComputeNetwork": host.network(network),
        "Flags": 1,
        "IpConfigurations": [{"IpAddress": c.ip}],
        "MacAddress": ep["MacAddress"],
        "Policies": [{"Type": "ProviderAddress", "Settings": {"ProviderAddress": pa}}],
    });
    id(&host
        .client()
        .create(Kind::Endpoints, &body)
        .expect("create remote endpoint"))
}

fn ping(c: &Container, to: &str) -> bool {
    Probe::run(&c.netns, &["ping", to]).0
}

/// IPv4 datagrams forwarded in a namespace (`/proc/net/snmp` there).
fn forwarded(ns: &Path) -> u64 {
    let out = ns_command(ns, "cat")
        .arg("/proc/net/snmp")
        .output()
        .expect("cat");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().filter(|l| l.starts_with("Ip:"));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    let i = names
        .split_whitespace()
        .position(|n| n == "ForwDatagrams")
        .unwrap();
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

#[test]
fn overlay_same_subnet_and_cross_subnet_across_hosts_one_hop() {
    let Some(phys) = world("overlay_same_subnet_and_cross_subnet_across_hosts_one_hop") else {
        return;
    };
    let (h1, h2) = (phys.host(0), phys.host(1));
    for h in [h1, h2] {
        h.client()
            .create(Kind::Networks, &overlay_network(NET, [VNI1, VNI2]))
            .expect("create overlay network");
    }
    // GET shows the host's identity, as flannel and kube-proxy read it.
    let net = h1.client().get(Kind::Networks, &h1.network(NET)).unwrap();
    let policies = net["Policies"].as_array().unwrap();
    let pa = policies
        .iter()
        .find(|p| p["Type"] == "ProviderAddress")
        .unwrap();
    assert_eq!(pa["Settings"]["ProviderAddress"], h1.addr.as_str());
    assert!(policies.iter().any(|p| p["Type"] == "DrMacAddress"));

    let a = at(h1, NET, A);
    let b = at(h2, NET, B);
    let c = at(h2, NET, C);
    let (pa1, pa2) = (h1.addr.clone(), h2.addr.clone());
    let b_on_1 = remote(h1, NET, h2, &b, &pa2);
    remote(h1, NET, h2, &c, &pa2);
    remote(h2, NET, h1, &a, &pa1);

    // Same subnet across hosts: bridged, no router involved.
    assert!(ping(&a, B), "A reaches B over VNI {VNI1}");
    // Cross subnet across hosts: routed once, by the sending host's router.
    let (r1, r2) = (h1.overlay_router(), h2.overlay_router());
    let (f1, f2) = (forwarded(&r1), forwarded(&r2));
    assert!(ping(&a, C), "A reaches C across subnets");
    assert!(forwarded(&r1) > f1, "host 1's router routed A's request");
    assert!(forwarded(&r2) > f2, "host 2's router routed C's reply");
    let echo = c.serve(&["tcp-serve", "0.0.0.0:8080"]);
    let (ok, out) = a.run(&["tcp-get", &format!("{C}:8080")]);
    assert!(ok, "TCP A -> C: {out}");
    assert!(
        echo.next_line().unwrap_or_default().contains(A),
        "C sees A's own address"
    );
    // The hosts never see an overlay frame: their conntrack holds only the
    // VXLAN packets between PAs, and all of the overlay's L2 (bridges,
    // VXLAN devices, ports) is in the routers.
    for h in [h1, h2] {
        let table = ns_command(h.path(), "cat")
            .arg("/proc/net/nf_conntrack")
            .output()
            .expect("cat");
        let table = String::from_utf8_lossy(&table.stdout).to_string();
        assert!(
            table.contains("dport=4789"),
            "the VXLAN flows are tracked: {table}"
        );
        assert!(
            !table.contains("10.0."),
            "the host tracked overlay flows: {table}"
        );
    }
    for (h, r) in [(h1, &r1), (h2, &r2)] {
        let links = |ns: &Path| {
            let out = ns_command(ns, "ip").args(["-o", "link"]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        let (host, router) = (links(h.path()), links(r));
        assert!(!host.contains("hnvb") && !host.contains("hnvx"), "{host}");
        assert!(
            !host.contains("hnve"),
            "no overlay port in the host: {host}"
        );
        for l in [
            format!("hnvb{VNI1:06x}"),
            format!("hnvx{VNI2:06x}"),
            "hnve".into(),
        ] {
            assert!(router.contains(&l), "{l} in the router: {router}");
        }
    }
    // Routing between subnets is not tracked: only the transit is.
    for r in [&r1, &r2] {
        let table = ns_command(r, "cat")
            .arg("/proc/net/nf_conntrack")
            .output()
            .expect("cat");
        let table = String::from_utf8_lossy(&table.stdout).to_string();
        assert_eq!(tracked(r), 0, "conntrack entries in a router: {table}");
    }

    // The switch learns only the hosts' MACs: container MACs stay inside VXLAN.
    let ep_a = h1.client().get(Kind::Endpoints, &a.ep_id).unwrap();
    let mac_a = ep_a["MacAddress"]
        .as_str()
        .unwrap()
        .replace('-', ":")
        .to_lowercase();
    let fdb = phys_switch_macs(&phys);
    assert!(
        !fdb.contains(&mac_a),
        "the switch learnt container MAC {mac_a}: {fdb}"
    );

    // A daemon killed and restarted keeps everything working.
    let mut phys = phys;
    phys.hosts[0].daemon_mut().kill9_and_restart();
    assert!(
        ping(&a, C),
        "A still reaches C after host 1's daemon restarted"
    );

    // A network the kernel lost part of while the daemon was down (its
    // first VNI bridge) gets its bridges and VXLAN devices again at start,
    // its endpoints' ports plugged into the new bridges in the same start.
    phys.hosts[0].daemon_mut().kill9_and_restart_with(|| {
        let out = ns_command(&r1, "ip")
            .args(["link", "del", &format!("hnvb{VNI1:06x}")])
            .output()
            .expect("ip");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    assert!(ping(&a, B), "A reaches B again after the rebuild");
    assert!(ping(&a, C), "and C");

    // A router namespace gone while the daemon was down (its links and
    // A's port with it) is rebuilt whole at start, A's veth made again.
    phys.hosts[0].daemon_mut().kill9_and_restart_with(|| {
        let out = std::process::Command::new("umount")
            .arg(&r1)
            .output()
            .expect("umount");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_file(&r1).expect("remove the router's mount point");
    });
    let h1 = phys.host(0);
    assert!(ping(&a, B), "A reaches B after its router was rebuilt");
    assert!(ping(&a, C), "and C");

    // Deleting the remote endpoint stops traffic to it.
    h1.client()
        .delete(Kind::Endpoints, &b_on_1)
        .expect("delete remote");
    assert!(
        !ping(&a, B),
        "A no longer reaches B once B's remote endpoint is gone"
    );
}

/// Connections conntrack holds in a namespace.
fn tracked(ns: &Path) -> u64 {
    let out = ns_command(ns, "cat")
        .arg("/proc/sys/net/netfilter/nf_conntrack_count")
        .output()
        .expect("cat");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// The MACs the physical switch has learnt (its bridge FDB), as text.
fn phys_switch_macs(phys: &PhysicalNet) -> String {
    let out = phys
        .switch
        .command("bridge")
        .args(["fdb", "show"])
        .output()
        .expect("bridge fdb");
    String::from_utf8_lossy(&out.stdout).to_lowercase()
}

#[test]
fn overlapping_overlay_networks_stay_isolated_and_both_work() {
    let Some(phys) = world("overlapping_overlay_networks_stay_isolated_and_both_work") else {
        return;
    };
    let (h1, h2) = (phys.host(0), phys.host(1));
    for h in [h1, h2] {
        h.client()
            .create(Kind::Networks, &overlay_network("red", [5001, 5002]))
            .unwrap();
        h.client()
            .create(Kind::Networks, &overlay_network("blue", [6001, 6002]))
            .unwrap();
    }
    let (pa1, pa2) = (h1.addr.clone(), h2.addr.clone());
    let red_a = at(h1, "red", A);
    let red_c = at(h2, "red", C);
    let blue_a = at(h1, "blue", A);
    let blue_b = at(h2, "blue", B);
    remote(h1, "red", h2, &red_c, &pa2);
    remote(h2, "red", h1, &red_a, &pa1);
    remote(h1, "blue", h2, &blue_b, &pa2);
    remote(h2, "blue", h1, &blue_a, &pa1);
    assert!(ping(&red_a, C), "red: cross subnet across hosts");
    assert!(ping(&blue_a, B), "blue: same subnet across hosts");
    assert!(!ping(&red_a, B), "red does not reach blue's B");
    assert!(!ping(&blue_a, C), "blue does not reach red's C");

    // A VNI in use is refused by name.
    let err = h1
        .client()
        .create(Kind::Networks, &overlay_network("green", [5001, 7002]))
        .unwrap_err();
    assert!(err.to_string().contains("5001"), "{err}");

    // Deleting both networks leaves nothing: no router, no overlay link,
    // no VXLAN socket in the host.
    let client = h1.client();
    for e in client.list(Kind::Endpoints, None).unwrap() {
        client
            .delete(Kind::Endpoints, e["ID"].as_str().unwrap())
            .unwrap();
    }
    for net in ["red", "blue"] {
        client.delete(Kind::Networks, &h1.network(net)).unwrap();
    }
    let routers = h1.daemon().dir.join("state").join("netns");
    let left: Vec<_> = std::fs::read_dir(&routers)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !left
            .iter()
            .any(|n| n.to_string_lossy().starts_with("router-")),
        "{left:?}"
    );
    let out = |program: &str, args: &[&str]| {
        let out = ns_command(h1.path(), program).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let links = out("ip", &["-o", "link"]);
    assert!(!links.contains("hnv"), "{links}");
    let udp = out("ss", &["-uln"]);
    assert!(!udp.contains(":4789"), "{udp}");
}

/// Both hosts have the overlay network; A (with `a_policies`) on host 1,
/// B and C on host 2, each host told of the other's containers.
struct Pair {
    phys: PhysicalNet,
    a: Container,
    b: Container,
    c: Container,
}

fn pair(test: &str, a_policies: Value) -> Option<Pair> {
    let phys = world(test)?;
    let (h1, h2) = (phys.host(0), phys.host(1));
    for h in [h1, h2] {
        h.client()
            .create(Kind::Networks, &overlay_network(NET, [VNI1, VNI2]))
            .expect("create overlay network");
    }
    let a = h1.container_with(
        NET,
        json!({"IpConfigurations": [{"IpAddress": A}], "Policies": a_policies}),
    );
    let b = at(h2, NET, B);
    let c = at(h2, NET, C);
    let (pa1, pa2) = (h1.addr.clone(), h2.addr.clone());
    remote(h1, NET, h2, &b, &pa2);
    remote(h1, NET, h2, &c, &pa2);
    remote(h2, NET, h1, &a, &pa1);
    Some(Pair { phys, a, b, c })
}

fn onat(exceptions: &[&str]) -> Value {
    json!({"Type": "OutBoundNAT", "Settings": {"Exceptions": exceptions}})
}

/// The source address the server saw when `from` connected to `to`.
fn seen_by(server: &Probe, from: &Container, to: &str) -> String {
    let (ok, said) = from.run(&["tcp-get", to]);
    assert!(ok, "{} -> {to}: {said}", from.ip);
    let line = server.next_line().unwrap_or_default();
    line.strip_prefix("peer ")
        .and_then(|p| p.split(':').next())
        .unwrap_or_else(|| panic!("server at {to} printed {line:?}"))
        .to_string()
}

#[test]
fn overlay_outbound_nat_leaves_as_the_host_and_overlay_traffic_keeps_its_source() {
    let test = "overlay_outbound_nat_leaves_as_the_host_and_overlay_traffic_keeps_its_source";
    // The cluster CIDR is an exception, as kube-proxy gives it.
    let Some(mut p) = pair(test, json!([onat(&["10.0.0.0/16"])])) else {
        return;
    };
    let h1 = p.phys.host(0);
    let far = format!("{OUTSIDE}:7000");
    let outside = Probe::serve(p.phys.outside.path(), &["tcp-serve", &far]);
    assert_eq!(
        seen_by(&outside, &p.a, &far),
        h1.addr,
        "the outside sees host 1's physical address"
    );
    assert!(
        tracked(&h1.overlay_router()) > 0,
        "the router tracks what it NATs"
    );
    // Inside the overlay (the exception), across hosts and subnets: the
    // peer sees A's own address.
    let echo = p.c.serve(&["tcp-serve", "0.0.0.0:8080"]);
    assert_eq!(seen_by(&echo, &p.a, &format!("{C}:8080")), A);

    // Without OutBoundNAT there is no way out.
    let plain = at(h1, NET, "10.0.1.11");
    let (ok, out) = plain.run(&["tcp-get", &far]);
    assert!(
        !ok,
        "an endpoint without OutBoundNAT reached the outside: {out}"
    );
    // An exception outside the overlay is not routed out either (its
    // replies could not find their way back to an overlay address).
    let exc = h1.container_with(
        NET,
        json!({"IpConfigurations": [{"IpAddress": "10.0.1.12"}],
               "Policies": [onat(&["203.0.113.0/24"])]}),
    );
    let (ok, out) = exc.run(&["tcp-get", &far]);
    assert!(!ok, "an outside exception left un-NATed: {out}");
    assert!(outside.drain().is_empty(), "the outside saw nothing else");
    // The plain endpoint still works inside the overlay.
    remote(p.phys.host(1), NET, h1, &plain, &h1.addr);
    assert!(ping(&plain, B), "no OutBoundNAT still reaches the overlay");

    // A kill -9 and restart keeps the router's tables, OutBoundNAT
    // elements and all (synced, not reloaded): A still leaves as the
    // host, the exception still keeps its source, the plain endpoint
    // still has no way out.
    let host1 = p.phys.host(0).addr.clone();
    p.phys.hosts[0].daemon_mut().kill9_and_restart();
    assert_eq!(seen_by(&outside, &p.a, &far), host1, "after a restart");
    assert_eq!(seen_by(&echo, &p.a, &format!("{C}:8080")), A);
    let (ok, out) = plain.run(&["tcp-get", &far]);
    assert!(!ok, "without OutBoundNAT, out after a restart: {out}");
}

/// The MTU of the container's interface (its only link besides `lo`).
fn container_mtu(c: &Container) -> u32 {
    let out = ns_command(&c.netns, "ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text
        .lines()
        .find(|l| !l.contains(" lo:"))
        .unwrap_or_else(|| panic!("no link in the container: {text}"));
    let mut words = line.split_whitespace();
    words.find(|w| *w == "mtu");
    words.next().and_then(|m| m.parse().ok()).expect("an mtu")
}

#[test]
fn overlay_mtu_fits_the_underlay_and_the_wire_carries_only_vxlan_between_pas() {
    let test = "overlay_mtu_fits_the_underlay_and_the_wire_carries_only_vxlan_between_pas";
    let Some(p) = pair(test, json!([])) else {
        return;
    };
    let (h1, h2) = (p.phys.host(0), p.phys.host(1));
    assert_eq!(container_mtu(&p.a), 1450, "1500 underlay - 50 of VXLAN");
    assert_eq!(container_mtu(&p.b), 1450);
    let capture = Capture::start(p.phys.switch.path(), "host1");

    // The largest ICMP echo that fits, DF set, crosses hosts in both
    // subnets: 1450 - 20 (IP) - 8 (ICMP).
    let (ok, out) = p.a.run(&["ping", B, "1422"]);
    assert!(ok, "1422-byte DF ping A -> B: {out}");
    let (ok, out) = p.a.run(&["ping", C, "1422"]);
    assert!(ok, "1422-byte DF ping A -> C (routed): {out}");
    // One byte more fails at once, at the sender: no black hole.
    let started = std::time::Instant::now();
    let out = ns_command(&p.a.netns, Probe::binary().to_str().unwrap())
        .args(["ping", B, "1423"])
        .output()
        .expect("probe");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a 1423-byte DF ping went through");
    assert!(err.contains("too long"), "fails with EMSGSIZE: {err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));

    // A bulk TCP transfer, across hosts and subnets.
    const BULK: usize = 16 << 20;
    let sink = p.c.serve(&["tcp-sink", "0.0.0.0:9000"]);
    let (ok, out) =
        p.a.run(&["tcp-send", &format!("{C}:9000"), &BULK.to_string()]);
    assert!(ok, "bulk A -> C: {out}");
    let got = sink.next_line().unwrap_or_default();
    assert!(
        got.starts_with(&format!("got {BULK} bytes from {A}:")),
        "{got}"
    );

    // On the wire: VXLAN between the two PAs, full-sized frames
    // (14 + 1500 bytes) and no container address outside a tunnel.
    let wire = capture.stop();
    let vxlan = format!(
        "udp dst port 4789 and src host {} and dst host {}",
        h1.addr, h2.addr
    );
    let tunnelled = wire.frames(&vxlan);
    assert!(
        tunnelled.iter().any(|l| l.contains(&format!("vni {VNI1}"))),
        "VXLAN on VNI {VNI1}: {tunnelled:?}"
    );
    assert!(tunnelled.iter().any(|l| l.contains(&format!("vni {VNI2}"))));
    assert!(
        !wire
            .frames(&format!("({vxlan}) and greater 1514"))
            .is_empty(),
        "a full-sized (1500-byte) VXLAN packet crossed"
    );
    let bare = wire.frames("net 10.0.0.0/16");
    assert!(bare.is_empty(), "container addresses on the wire: {bare:?}");
    let fragments = wire.frames("ip[6:2] & 0x3fff != 0");
    assert!(fragments.is_empty(), "fragments on the wire: {fragments:?}");

    // EncapOverhead lowers one endpoint's MTU: 1500 - 100.
    let encap = |o: u32| json!([{"Type": "EncapOverhead", "Settings": {"Overhead": o}}]);
    let e = h1.container_with(
        NET,
        json!({"IpConfigurations": [{"IpAddress": "10.0.1.13"}], "Policies": encap(100)}),
    );
    remote(h2, NET, h1, &e, &h1.addr);
    assert_eq!(container_mtu(&e), 1400);
    let (ok, out) = e.run(&["ping", B, "1372"]);
    assert!(ok, "1372-byte DF ping at MTU 1400: {out}");
    assert!(!e.run(&["ping", B, "1373"]).0, "1373 bytes do not fit 1400");
    // Less than VXLAN's 50 bytes would not fit the underlay: refused.
    let err = h1
        .client()
        .create(
            Kind::Endpoints,
            &json!({"HostComputeNetwork": h1.network(NET), "Policies": encap(30)}),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("less than VXLAN's 50") && err.contains("0x803B000D"),
        "{err}"
    );
}

/// flannel's subnet on host `i`: 10.244.(i+1).0/24.
fn flannel_subnet(i: usize) -> String {
    format!("10.244.{}.0/24", i + 1)
}

/// flannel's way on Windows: one overlay network per host, holding only
/// that host's subnet of the cluster CIDR (all on VNI 4096), and a
/// `RemoteSubnetRoute` per other host instead of remote endpoints.
fn flannel_network(i: usize, routes: Vec<Value>) -> Value {
    json!({
        "Name": "vxlan0", "Type": "Overlay",
        "Ipams": [{"Type": "Static", "Subnets": [{"IpAddressPrefix": flannel_subnet(i),
            "Policies": [{"Type": "VSID", "Settings": {"IsolationId": 4096}}]}]}],
        "Policies": routes,
        "SchemaVersion": {"Major": 2, "Minor": 0}
    })
}

/// A route to host `i`'s subnet, with the PA and DR MAC its GET shows.
fn route_to(phys: &PhysicalNet, i: usize) -> Value {
    let h = phys.host(i);
    let net = h
        .client()
        .get(Kind::Networks, &h.network("vxlan0"))
        .unwrap();
    let setting = |t: &str, key: &str| {
        net["Policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["Type"] == t)
            .unwrap_or_else(|| panic!("no {t} in {net}"))["Settings"][key]
            .clone()
    };
    json!({"Type": "RemoteSubnetRoute", "Settings": {
        "DestinationPrefix": flannel_subnet(i), "IsolationId": 4096,
        "ProviderAddress": setting("ProviderAddress", "ProviderAddress"),
        "DistributedRouterMacAddress": setting("DrMacAddress", "Address")}})
}

fn change(request: &str, policies: Value) -> Value {
    json!({"ResourceType": "Policy", "RequestType": request, "Settings": {"Policies": policies}})
}

#[test]
fn remote_subnet_routes_connect_per_host_subnets_and_modify_adds_and_removes_them() {
    let test = "remote_subnet_routes_connect_per_host_subnets_and_modify_adds_and_removes_them";
    let Some(phys) = world(test) else {
        return;
    };
    let (h1, h2) = (phys.host(0), phys.host(1));
    h2.client()
        .create(Kind::Networks, &flannel_network(1, vec![]))
        .expect("host 2's network");
    // Host 1 learns of host 2's subnet at create.
    h1.client()
        .create(
            Kind::Networks,
            &flannel_network(0, vec![route_to(&phys, 1)]),
        )
        .expect("host 1's network, with a route to host 2");
    let x = at(h1, "vxlan0", "10.244.1.10");
    let y = at(h2, "vxlan0", "10.244.2.20");
    assert!(!ping(&x, &y.ip), "host 2 has no route back yet");

    // Host 2 learns of host 1's later: network modify, Add.
    let net2 = h2.network("vxlan0");
    let back = route_to(&phys, 0);
    h2.client()
        .modify(Kind::Networks, &net2, &change("Add", json!([back.clone()])))
        .expect("add the route");
    assert!(ping(&x, &y.ip), "x reaches y once both hosts route");
    let echo = y.serve(&["tcp-serve", "0.0.0.0:8080"]);
    let (ok, out) = x.run(&["tcp-get", &format!("{}:8080", y.ip)]);
    assert!(ok, "TCP x -> y: {out}");
    assert!(
        echo.next_line().unwrap_or_default().contains(&x.ip),
        "y sees x's address"
    );
    let shown = h2.client().get(Kind::Networks, &net2).unwrap();
    assert!(
        shown["Policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["Type"] == "RemoteSubnetRoute"),
        "GET shows the route: {shown}"
    );

    // Refused changes leave everything as it was.
    let mut wrong_vni = back.clone();
    wrong_vni["Settings"]["IsolationId"] = json!(4097);
    let err = h2
        .client()
        .modify(Kind::Networks, &net2, &change("Add", json!([wrong_vni])))
        .unwrap_err();
    assert!(err.to_string().contains("4097"), "{err}");
    let err = h2
        .client()
        .modify(Kind::Networks, &net2, &change("Add", json!([back.clone()])))
        .unwrap_err();
    assert!(
        err.to_string().contains("overlaps"),
        "a duplicate route: {err}"
    );
    let mut elsewhere = back.clone();
    elsewhere["Settings"]["DestinationPrefix"] = json!("10.244.9.0/24");
    let err = h2
        .client()
        .modify(Kind::Networks, &net2, &change("Remove", json!([elsewhere])))
        .unwrap_err();
    assert!(err.to_string().contains("nothing was removed"), "{err}");
    assert!(ping(&x, &y.ip), "still connected after refused changes");

    // Remove: the route goes, traffic stops; Add again: it flows.
    h2.client()
        .modify(
            Kind::Networks,
            &net2,
            &change("Remove", json!([back.clone()])),
        )
        .expect("remove the route");
    assert!(!ping(&x, &y.ip), "no route back once removed");
    let routes = ns_command(&h2.overlay_router(), "ip")
        .args(["route"])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout).to_string();
    assert!(
        !routes.contains("10.244.1.0/24"),
        "the router's route is gone: {routes}"
    );
    h2.client()
        .modify(Kind::Networks, &net2, &change("Add", json!([back])))
        .expect("add it again");
    assert!(ping(&x, &y.ip), "x reaches y again");
}

/// A number of an endpoint's statistics.
fn stat(host: &Host, c: &Container, key: &str) -> u64 {
    let stats = host.client().endpoint_stats(&c.ep_id).expect("stats");
    stats[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key}: {stats}"))
}

#[test]
fn overlay_endpoints_keep_the_firewall_defaults_and_their_counters() {
    let Some(phys) = world("overlay_endpoints_keep_the_firewall_defaults_and_their_counters")
    else {
        return;
    };
    let (h1, h2) = (phys.host(0), phys.host(1));
    for h in [h1, h2] {
        h.client()
            .create(Kind::Networks, &overlay_network(NET, [VNI1, VNI2]))
            .expect("create overlay network");
    }
    let a = at(h1, NET, A);
    let a2 = at(h1, NET, "10.0.1.11");
    let b = at(h2, NET, B);
    let c = at(h2, NET, C);
    let (pa1, pa2) = (h1.addr.clone(), h2.addr.clone());
    remote(h1, NET, h2, &b, &pa2);
    remote(h1, NET, h2, &c, &pa2);
    remote(h2, NET, h1, &a, &pa1);
    // Warm up every path (ARP, bridge FDBs) before the first reading.
    for from in [&a2, &b, &c] {
        assert!(ping(from, A), "{} reaches A", from.ip);
    }
    let (rx, dropped) = (
        stat(h1, &a, "PacketsReceived"),
        stat(h1, &a, "DroppedPacketsIncoming"),
    );
    // GRE into A from its own host's bridge, across hosts, and routed
    // across subnets: the defaults drop it on A's port in the router.
    let listen = a.serve(&["raw-listen", "47"]);
    for from in [&a2, &b, &c] {
        let (ok, said) = Probe::run(&from.netns, &["raw-send", "47", A]);
        assert!(ok, "raw-send from {}: {said}", from.ip);
    }
    for from in [&a2, &b, &c] {
        assert!(ping(from, A), "ping {} -> A after the GRE", from.ip);
    }
    assert!(a.run(&["raw-send", "47", "127.0.0.1"]).0);
    assert_eq!(
        listen.next_line().as_deref(),
        Some("got 127.0.0.1"),
        "GRE from another container reached A"
    );
    // Outbound everything passes: A's GRE leaves A and crosses to host 2,
    // where B's own defaults drop it (and count it).
    let b_dropped = stat(h2, &b, "DroppedPacketsIncoming");
    assert!(a.run(&["raw-send", "47", B]).0);
    let counted = hostnet_testbed::wait_until(std::time::Duration::from_secs(5), || {
        stat(h2, &b, "DroppedPacketsIncoming") == b_dropped + 1
    });
    assert!(counted, "A's GRE reached B's port on host 2");
    // A's counters saw it all, from the ports in the router namespace.
    assert_eq!(
        stat(h1, &a, "DroppedPacketsIncoming") - dropped,
        3,
        "the three GRE packets the defaults dropped"
    );
    let received = stat(h1, &a, "PacketsReceived") - rx;
    assert!(
        (3..=8).contains(&received),
        "A received the three pings (and no GRE): {received}"
    );
}

fn sdn_route(prefix: &str, next_hop: Option<&str>) -> Value {
    match next_hop {
        Some(hop) => {
            json!({"Type": "SDNRoute", "Settings": {"DestinationPrefix": prefix, "NextHop": hop}})
        }
        None => {
            json!({"Type": "SDNRoute", "Settings": {"DestinationPrefix": prefix, "NeedEncap": true}})
        }
    }
}

#[test]
fn sdn_routes_steer_an_overlay_endpoint_to_a_peer_across_hosts_or_through_its_router() {
    let test = "sdn_routes_steer_an_overlay_endpoint_to_a_peer_across_hosts_or_through_its_router";
    // B (host 2) answers for 203.0.113.1 itself: A's route sends it there.
    let Some(p) = pair(test, json!([sdn_route("203.0.113.0/24", Some(B))])) else {
        return;
    };
    let h1 = p.phys.host(0);
    let out = ns_command(&p.b.netns, "ip")
        .args(["addr", "add", "203.0.113.1/32", "dev", "lo"])
        .output()
        .expect("ip addr");
    assert!(out.status.success(), "{out:?}");
    let at_b = p.b.serve(&["tcp-serve", "203.0.113.1:7000"]);
    assert_eq!(
        seen_by(&at_b, &p.a, "203.0.113.1:7000"),
        A,
        "B, across the underlay, sees A's own address"
    );

    // Same subnet: bridged past the router, until a NeedEncap route
    // without NextHop (added by modify) sends B's address through it.
    let router = h1.overlay_router();
    let before = forwarded(&router);
    assert!(ping(&p.a, B));
    assert_eq!(forwarded(&router), before, "bridged, not routed");
    h1.client()
        .modify(
            Kind::Endpoints,
            &p.a.ep_id,
            &change("Add", json!([sdn_route("10.0.1.20/32", None)])),
        )
        .expect("add a NeedEncap SDNRoute");
    assert!(ping(&p.a, B), "through the router B still answers");
    let through = forwarded(&router);
    assert!(through > before, "the router forwarded A's packets to B");

    // Removed: bridged again.
    h1.client()
        .modify(
            Kind::Endpoints,
            &p.a.ep_id,
            &change("Remove", json!([sdn_route("10.0.1.20/32", None)])),
        )
        .expect("remove the SDNRoute");
    assert!(ping(&p.a, B));
    assert_eq!(forwarded(&router), through, "bridged again");
}
