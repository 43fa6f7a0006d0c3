//! Overlay networks in cluster mode (docs/cluster.md, "Overlay networks
//! across hosts"): three hosts whose `hostnetd --store etcd://…` share a
//! real 3-member etcd cluster on the physical switch converge by
//! themselves, with no remote endpoint given through the API. Everything
//! is proved with packets between containers, and with the kernel's FDB
//! on the hosts.
//!
//! | case | what the test shows |
//! |---|---|
//! | one network, three hosts | created on host 1, it appears on hosts 2 and 3 with the same ID and each host's own ProviderAddress; containers on the three hosts reach each other in one subnet and across subnets; an endpoint created on host 1 is reachable from host 3 within [`BOUND`] |
//! | concurrent creates | 3 hosts × 30 endpoints at once on one network: all addresses distinct, every host programs the other hosts' 60 |
//! | one VNI, two networks | two hosts creating networks with one VNI at once: exactly one succeeds, the other gets HCN_E_INVALID_POLICY naming the VNI |
//! | delete | refused with HCN_E_ENTITY_HAS_REFERENCES while another host has endpoints on it (naming the host); once they are gone, deleting on host 2 removes it from all three |
//! | kill -9 | host 2's daemon killed: after the lease TTL hosts 1 and 3 have no FDB entry of its container, whose own kernel state is untouched; an endpoint deleted on host 3 meanwhile stays in dead host 2's kernel; restarted, host 2 is back on both and reachable, and the stale entry is gone from its FDB and neighbours |
//! | names | with `AutomaticDNS`, a named endpoint created on host 1 resolves at host 3's gateway within [`BOUND`] and stops resolving within it after its delete; host 2's named container stops resolving on host 1 when its lease expires and resolves again after the restart |
//! | etcd failures | one member down: a new endpoint converges; all down: an existing cross-host flow forwards, a create gets HCN_E_DEGRADED_OPERATION; members back: creates and convergence work without restarting daemons |

use std::time::{Duration, Instant};

use hostnet_api::{Client, Kind};
use hostnet_testbed::physical::host_addr;
use hostnet_testbed::{
    etcd, id, require_privileges, wait_until, Container, Daemon, EtcdCluster, PhysicalNet, Probe,
};
use serde_json::{json, Value};

/// Seconds a dead daemon's registration (and its endpoints) linger.
const LEASE_TTL: u64 = 3;
/// How soon an endpoint created on one host must be reachable from another.
const BOUND: Duration = Duration::from_secs(2);
const NET: &str = "ov";
const VNI1: u32 = 4100;
const VNI2: u32 = 4101;

struct World {
    // Daemons go before the etcd members and the hosts they run in.
    daemons: Vec<Daemon>,
    /// Each host's daemon's namespace directory (its routers are there),
    /// by host, whatever the order of `daemons`.
    netns_dirs: Vec<std::path::PathBuf>,
    cluster: EtcdCluster,
    /// Held for the hosts' lifetime (dropped last).
    _phys: PhysicalNet,
}

/// Three hosts, a 3-member etcd cluster and a daemon on each host, or
/// None (after `skipped:`).
fn world(test: &str) -> Option<World> {
    if !require_privileges(test) || etcd::etcd_server(test).is_none() {
        return None;
    }
    let mut phys = PhysicalNet::new("co", 3);
    let cluster = EtcdCluster::on_switch(&mut phys, 3);
    let daemons: Vec<Daemon> = (0..3).map(|i| daemon(&phys, &cluster, i)).collect();
    let netns_dirs = daemons
        .iter()
        .map(|d| d.dir.join("state").join("netns"))
        .collect();
    Some(World {
        daemons,
        netns_dirs,
        cluster,
        _phys: phys,
    })
}

fn daemon(phys: &PhysicalNet, cluster: &EtcdCluster, i: usize) -> Daemon {
    cluster.daemon_on(
        phys,
        i,
        &[
            "--host-lease-ttl",
            &LEASE_TTL.to_string(),
            "--no-default-network",
            // No upstream: a name the proxy does not know fails at once.
            "--resolv-conf",
            "/dev/null",
        ],
    )
}

impl World {
    fn client(&self, i: usize) -> Client {
        self.daemons[i].client()
    }

    /// The overlay network, created on host `i`; waits until every host
    /// has it under the same ID.
    fn network(&self, i: usize) -> String {
        let net = self
            .client(i)
            .create(Kind::Networks, &overlay_network(NET, [VNI1, VNI2]))
            .expect("create overlay network");
        let net_id = id(&net);
        let everywhere = wait_until(Duration::from_secs(10), || {
            (0..3).all(|h| network_id(&self.client(h), NET).as_deref() == Some(&net_id))
        });
        assert!(
            everywhere,
            "network {net_id} did not reach every host:\n{}",
            self.logs()
        );
        net_id
    }

    fn container(&self, i: usize, net: &str, ip: Option<&str>) -> Container {
        let endpoint = match ip {
            Some(ip) => json!({"IpConfigurations": [{"IpAddress": ip}]}),
            None => json!({}),
        };
        Container::create(&self.client(i), net, endpoint)
    }

    /// A container on host `i` whose endpoint is called `name`.
    fn named(&self, i: usize, net: &str, name: &str, ip: Option<&str>) -> Container {
        let mut endpoint = json!({ "Name": name });
        if let Some(ip) = ip {
            endpoint["IpConfigurations"] = json!([{ "IpAddress": ip }]);
        }
        Container::create(&self.client(i), net, endpoint)
    }

    /// Whether host `i`'s VXLAN device of `vni` sends `mac` to a PA.
    /// Whether host `i`'s VXLAN device of `vni` (in its network's router
    /// namespace) sends `mac` to a remote host.
    fn has_peer(&self, i: usize, vni: u32, mac: &str) -> bool {
        let dev = format!("hnvx{vni:06x}");
        let fdb = self.in_routers(i, &["bridge", "fdb", "show", "dev", &dev]);
        fdb.to_lowercase()
            .lines()
            .any(|l| l.starts_with(&kernel_mac(mac)) && l.contains(" dst "))
    }

    /// What a command prints in each overlay router namespace of host `i`.
    fn in_routers(&self, i: usize, command: &[&str]) -> String {
        let routers = std::fs::read_dir(&self.netns_dirs[i])
            .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default();
        routers
            .iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("router-"))
            })
            .map(|router| {
                let out = std::process::Command::new("nsenter")
                    .arg(format!("--net={}", router.display()))
                    .args(command)
                    .output()
                    .expect("nsenter");
                String::from_utf8_lossy(&out.stdout).to_string()
            })
            .collect()
    }

    fn logs(&self) -> String {
        (0..self.daemons.len())
            .map(|i| format!("--- host{} ---\n{}", i + 1, self.daemons[i].log()))
            .collect()
    }
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
        "Policies": [{"Type": "AutomaticDNS", "Settings": {"Enable": true}}],
        "SchemaVersion": {"Major": 2, "Minor": 0}
    })
}

/// Whether `name` resolves to `ip` at `from`'s gateway (`gateway`).
fn resolves(from: &Container, gateway: &str, name: &str, ip: &str) -> bool {
    from.run(&["dns", gateway, name, "A"]).1 == format!("NOERROR tc=0 A {ip}")
}

fn network_id(client: &Client, name: &str) -> Option<String> {
    client
        .find_by_name(Kind::Networks, name)
        .ok()
        .flatten()
        .map(|n| id(&n))
}

/// An HCN MAC (`00-15-5D-…`) as `bridge fdb` prints it.
fn kernel_mac(mac: &str) -> String {
    mac.replace('-', ":").to_lowercase()
}

fn mac_of(client: &Client, c: &Container) -> String {
    let ep = client.get(Kind::Endpoints, &c.ep_id).expect("get endpoint");
    ep["MacAddress"].as_str().expect("MacAddress").to_string()
}

fn ping(c: &Container, to: &str) -> bool {
    Probe::run(&c.netns, &["ping", to]).0
}

/// `from` reaches `to` within `within`.
fn reaches(from: &Container, to: &str, within: Duration) -> bool {
    wait_until(within, || ping(from, to))
}

#[test]
fn overlay_network_and_endpoints_converge_across_three_hosts() {
    let Some(w) = world("overlay_network_and_endpoints_converge_across_three_hosts") else {
        return;
    };
    let net = w.network(0);
    // Each host instantiates it with its own identity.
    for h in 0..3 {
        let got = w.client(h).get(Kind::Networks, &net).unwrap();
        let pa = got["Policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["Type"] == "ProviderAddress")
            .expect("ProviderAddress shown");
        assert_eq!(pa["Settings"]["ProviderAddress"], host_addr(h).as_str());
    }

    // Containers on three hosts; none was told of another through the API.
    let a = w.container(0, &net, Some("10.0.1.10"));
    let b = w.container(1, &net, Some("10.0.1.20"));
    let c = w.container(2, &net, Some("10.0.2.30"));
    assert!(
        reaches(&a, &b.ip, BOUND),
        "same subnet, host 1 -> host 2:\n{}",
        w.logs()
    );
    assert!(reaches(&a, &c.ip, BOUND), "cross subnet, host 1 -> host 3");
    assert!(reaches(&c, &b.ip, BOUND), "cross subnet, host 3 -> host 2");

    // A new endpoint on host 1 resolves by name and is reachable from
    // host 3 within the bound.
    let start = Instant::now();
    let d = w.named(0, &net, "dee", None);
    assert!(
        wait_until(BOUND, || resolves(&c, "10.0.2.1", "dee", &d.ip)),
        "host 3 resolves the new endpoint on host 1 within {BOUND:?}:\n{}",
        w.logs()
    );
    eprintln!(
        "new endpoint on host 1 resolved at host 3 after {:?}",
        start.elapsed()
    );
    assert!(
        reaches(&c, &d.ip, BOUND),
        "host 3 -> new endpoint on host 1 within {BOUND:?}"
    );
    eprintln!(
        "new endpoint on host 1 answered host 3 after {:?}",
        start.elapsed()
    );

    // Concurrent creates on every host: no address twice, and every host
    // programs the others' endpoints.
    let per_host = 30;
    let created: Vec<Vec<(String, String, String)>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..3)
            .map(|h| {
                let (client, net) = (w.client(h), net.clone());
                s.spawn(move || {
                    (0..per_host)
                        .map(|_| {
                            let ep = client
                                .create(Kind::Endpoints, &json!({"HostComputeNetwork": net}))
                                .expect("concurrent create");
                            (
                                id(&ep),
                                ep["IpConfigurations"][0]["IpAddress"]
                                    .as_str()
                                    .unwrap()
                                    .to_string(),
                                ep["MacAddress"].as_str().unwrap().to_string(),
                            )
                        })
                        .collect()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let mut addresses: Vec<&str> = created
        .iter()
        .flatten()
        .map(|(_, ip, _)| ip.as_str())
        .collect();
    addresses.extend([a.ip.as_str(), b.ip.as_str(), c.ip.as_str(), d.ip.as_str()]);
    let total = addresses.len();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), total, "an address was handed out twice");
    let programmed = wait_until(Duration::from_secs(10), || {
        (0..3).all(|h| {
            created
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != h)
                .flat_map(|(_, eps)| eps)
                .all(|(_, _, mac)| w.has_peer(h, VNI1, mac))
        })
    });
    assert!(
        programmed,
        "every host has the others' endpoints in its FDB"
    );

    // Two hosts creating networks with one VNI at once: one wins.
    let results: Vec<_> = std::thread::scope(|s| {
        let threads: Vec<_> = [1usize, 2]
            .iter()
            .map(|&h| {
                let client = w.client(h);
                s.spawn(move || {
                    client.create(
                        Kind::Networks,
                        &overlay_network(&format!("dup{h}"), [4300, 4300 + h as u32]),
                    )
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let losers: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(
        losers.len(),
        1,
        "exactly one network gets VNI 4300: {results:?}"
    );
    assert_eq!(losers[0].error_code(), Some(0x803B_000D), "{}", losers[0]);
    assert!(losers[0].to_string().contains("VSID 4300"), "{}", losers[0]);
    let winner = results.iter().find_map(|r| r.as_ref().ok()).unwrap();
    let winner_id = id(winner);
    let gone_everywhere = |name: &str| {
        wait_until(Duration::from_secs(10), || {
            (0..3).all(|h| network_id(&w.client(h), name).is_none())
        })
    };
    w.client(0)
        .delete(Kind::Networks, &winner_id)
        .expect("delete the winner on host 1");
    let winner_name = winner["Name"].as_str().unwrap();
    assert!(
        gone_everywhere(winner_name),
        "{winner_name} left every host"
    );

    // Deleting the network while other hosts have endpoints on it is
    // refused, naming them (host 1's own endpoints are gone first).
    let on = |h: usize| -> Vec<String> {
        let mut eps: Vec<String> = created[h].iter().map(|(ep, _, _)| ep.clone()).collect();
        eps.extend(
            [(0, &a), (1, &b), (2, &c), (0, &d)]
                .iter()
                .filter(|(host, _)| *host == h)
                .map(|(_, ct)| ct.ep_id.clone()),
        );
        eps
    };
    for ep in on(0) {
        w.client(0).delete(Kind::Endpoints, &ep).unwrap();
    }
    assert!(
        wait_until(BOUND, || !resolves(&c, "10.0.2.1", "dee", &d.ip)),
        "a deleted endpoint stops resolving on host 3 within {BOUND:?}"
    );
    let err = w.client(0).delete(Kind::Networks, &net).unwrap_err();
    assert_eq!(err.error_code(), Some(0x803B_002C), "{err}");
    assert!(
        err.to_string().contains("host2: 31") && err.to_string().contains("host3: 31"),
        "{err}"
    );
    for h in [1, 2] {
        for ep in on(h) {
            w.client(h).delete(Kind::Endpoints, &ep).unwrap();
        }
    }
    // Gone from the other hosts' FDB too; then any host may delete it.
    let b_mac_gone = wait_until(Duration::from_secs(5), || {
        created[1]
            .iter()
            .all(|(_, _, mac)| !w.has_peer(0, VNI1, mac))
    });
    assert!(b_mac_gone, "host 2's deleted endpoints left host 1's FDB");
    let deleted = wait_until(Duration::from_secs(5), || {
        w.client(1).delete(Kind::Networks, &net).is_ok()
    });
    assert!(
        deleted,
        "host 2 deletes the network once no host has endpoints:\n{}",
        w.logs()
    );
    assert!(
        gone_everywhere(NET),
        "the network left every host:\n{}",
        w.logs()
    );
}

#[test]
fn killed_host_leaves_with_its_lease_and_comes_back() {
    let Some(mut w) = world("killed_host_leaves_with_its_lease_and_comes_back") else {
        return;
    };
    let net = w.network(0);
    let a = w.container(0, &net, Some("10.0.1.10"));
    let b = w.named(1, &net, "bee", Some("10.0.1.20"));
    let c = w.container(2, &net, Some("10.0.2.30"));
    assert!(reaches(&a, &b.ip, BOUND), "host 1 -> host 2:\n{}", w.logs());
    assert!(resolves(&a, "10.0.1.1", "bee", &b.ip), "host 1 names b");
    assert!(reaches(&c, &b.ip, BOUND), "host 3 -> host 2");
    // e, on host 3, is deleted while host 2's daemon is down.
    let e = w.container(2, &net, Some("10.0.1.40"));
    let (a_mac, b_mac) = (mac_of(&w.client(0), &a), mac_of(&w.client(1), &b));
    let e_mac = mac_of(&w.client(2), &e);
    assert!(w.has_peer(0, VNI1, &b_mac) && w.has_peer(2, VNI1, &b_mac));
    assert!(
        wait_until(BOUND, || w.has_peer(1, VNI1, &e_mac)),
        "host 2 has e"
    );

    let c3 = w.client(2);
    // (Host 3 is w.daemons[1] while host 2's daemon is out of the list.)
    let mut d2 = w.daemons.remove(1);
    let killed = Instant::now();
    d2.kill9_and_restart_with(|| {
        let left = wait_until(Duration::from_secs(LEASE_TTL + 10), || {
            !w.has_peer(0, VNI1, &b_mac) && !w.has_peer(2, VNI1, &b_mac)
        });
        assert!(
            left,
            "host 2's endpoint left hosts 1 and 3 after its lease:\n{}",
            w.logs()
        );
        eprintln!(
            "host 2's endpoint left the others {:?} after kill -9",
            killed.elapsed()
        );
        assert!(
            !resolves(&a, "10.0.1.1", "bee", &b.ip),
            "an expired endpoint's name is gone"
        );
        // Host 2's own kernel state is untouched: its container keeps its
        // address, and its host still sends to host 1's container.
        let addr = Probe::command(&b.netns, "ip")
            .args(["-o", "addr"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&addr.stdout).contains(&b.ip));
        assert!(w.has_peer(1, VNI1, &a_mac), "host 2 keeps host 1's peer");
        c3.delete(Kind::Endpoints, &e.ep_id).unwrap();
        assert!(
            wait_until(BOUND, || !w.has_peer(0, VNI1, &e_mac)),
            "e left host 1"
        );
        assert!(
            w.has_peer(1, VNI1, &e_mac),
            "dead host 2 still has e's entry"
        );
    });
    w.daemons.insert(1, d2);
    let back = wait_until(Duration::from_secs(10), || {
        w.has_peer(0, VNI1, &b_mac) && w.has_peer(2, VNI1, &b_mac)
    });
    assert!(
        back,
        "restarted host 2 published its endpoint again:\n{}",
        w.logs()
    );
    // What went while it was down is gone from its kernel too.
    let pruned = wait_until(BOUND, || !w.has_peer(1, VNI1, &e_mac));
    assert!(
        pruned,
        "restarted host 2 removed e's stale entry:\n{}",
        w.logs()
    );
    let dev = format!("hnvx{VNI1:06x}");
    let neighbours = w.in_routers(1, &["ip", "neigh", "show", "dev", &dev]);
    assert!(
        !neighbours.contains(&e.ip) && neighbours.contains(&a.ip),
        "{neighbours}"
    );
    assert!(reaches(&a, &b.ip, BOUND), "host 1 -> restarted host 2");
    assert!(
        resolves(&a, "10.0.1.1", "bee", &b.ip),
        "restarted host 2's endpoint has its name again"
    );
    assert!(reaches(&c, &b.ip, BOUND), "host 3 -> restarted host 2");
    assert!(reaches(&b, &a.ip, BOUND), "restarted host 2 -> host 1");
}

#[test]
fn overlay_keeps_working_through_etcd_failures() {
    let Some(mut w) = world("overlay_keeps_working_through_etcd_failures") else {
        return;
    };
    let net = w.network(0);
    let a = w.container(0, &net, Some("10.0.1.10"));
    let b = w.container(1, &net, Some("10.0.2.20"));
    assert!(reaches(&a, &b.ip, BOUND), "host 1 -> host 2:\n{}", w.logs());

    // One member down (the leader): a new endpoint still converges.
    let leader = w.cluster.leader();
    w.cluster.kill(leader);
    let c = w.container(2, &net, None);
    assert!(
        reaches(&a, &c.ip, Duration::from_secs(5)),
        "new endpoint with a member down:\n{}",
        w.logs()
    );

    // All members down: the existing flows forward, changes are refused.
    for i in 0..3 {
        w.cluster.kill(i);
    }
    assert!(
        ping(&a, &b.ip),
        "an existing cross-host flow forwards without etcd"
    );
    assert!(ping(&c, &a.ip), "and the one converged with a member down");
    let err = w
        .client(0)
        .create(Kind::Endpoints, &json!({"HostComputeNetwork": net}))
        .unwrap_err();
    assert_eq!(err.error_code(), Some(0x803B_0017), "{err}");
    assert!(err.to_string().contains("unavailable"), "{err}");

    // Members back: creates and convergence work, no daemon restarted.
    w.cluster.restart_all();
    let created = wait_until(Duration::from_secs(10), || {
        w.client(1)
            .create(
                Kind::Endpoints,
                &json!({"HostComputeNetwork": net, "Name": "probe"}),
            )
            .is_ok()
    });
    assert!(created, "creates work again:\n{}", w.logs());
    let d = w.container(1, &net, None);
    assert!(
        reaches(&a, &d.ip, Duration::from_secs(5)),
        "convergence after the outage:\n{}",
        w.logs()
    );
    assert!(ping(&a, &b.ip), "old flows still forward");
}
