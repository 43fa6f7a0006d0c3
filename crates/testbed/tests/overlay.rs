//! The Overlay driver on the multi-host world ([`PhysicalNet`], tier 2):
//! the same overlay network (name, subnets, VNIs) on two hosts, each
//! host's daemon told of the other's endpoints through the API as remote
//! endpoints (`Flags: 1` and a `ProviderAddress`), as Docker's and
//! kube-proxy's Windows overlay code does. Everything is proved with
//! packets: probes in containers, forwarding counters of the routers.

use std::path::{Path, PathBuf};

use hostnet_api::Kind;
use hostnet_testbed::physical::{id, Container, Host};
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

/// The router namespace of the host's only overlay network.
fn router_of(host: &Host) -> PathBuf {
    let dir = host.daemon().dir.join("state").join("netns");
    std::fs::read_dir(&dir)
        .expect("netns dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("router-"))
        })
        .expect("a router namespace")
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
    let (r1, r2) = (router_of(h1), router_of(h2));
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
    let (h1, _) = (phys.host(0), phys.host(1));
    assert!(
        ping(&a, C),
        "A still reaches C after host 1's daemon restarted"
    );

    // Deleting the remote endpoint stops traffic to it.
    h1.client()
        .delete(Kind::Endpoints, &b_on_1)
        .expect("delete remote");
    assert!(
        !ping(&a, B),
        "A no longer reaches B once B's remote endpoint is gone"
    );
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
}
