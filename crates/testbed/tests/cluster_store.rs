//! Cluster mode (docs/cluster.md) with packets and a real etcd: a 3-member
//! etcd 3.4 cluster in namespaces of its own on the physical network's
//! switch, and `hostnetd --store etcd://…` on the hosts.
//!
//! | case | what the test shows |
//! |---|---|
//! | state in etcd | objects come back after a daemon restart, read from etcd (their keys are there, under the host's ID; the other host sees none of them) |
//! | registration | each host is listed with its physical address (API and `hostnet cluster hosts`); `kill -9`: gone after the lease TTL, back on restart; a second daemon with a running host's ID is refused at start |
//! | a host cut off from etcd | its registration expires, its changes get HCN_E_DEGRADED_OPERATION, its containers still forward; reachable again: it registers again by itself and changes work |
//! | one member down | creates still work |
//! | all members down | a create gets HCN_E_DEGRADED_OPERATION (503) and leaves no veth; existing containers still reach the outside and each other (packets); members back: creates work again, no daemon restart, the host re-registered |
//! | bad input | an unreachable etcd at start: exit non-zero within seconds, naming the members |
//! | TLS | `--store https://…` with the CA and a client certificate: stores and registers; without the CA: refused at start |

use std::time::{Duration, Instant};

use hostnet_api::{ApiError, Client, Kind};
use hostnet_testbed::physical::{host_addr, OUTSIDE};
use hostnet_testbed::{
    etcd, require_privileges, run_in, wait_until, Container, Daemon, EtcdCluster, PhysicalNet,
    Probe,
};
use serde_json::{json, Value};

/// Seconds a dead daemon's registration lingers in these tests.
const LEASE_TTL: &str = "3";

/// Two hosts and a 3-member etcd cluster, or None (after `skipped:`).
fn world(test: &str) -> Option<(PhysicalNet, EtcdCluster)> {
    if !require_privileges(test) || etcd::etcd_server(test).is_none() {
        return None;
    }
    let mut phys = PhysicalNet::new("cs", 2);
    let cluster = EtcdCluster::on_switch(&mut phys, 3);
    Some((phys, cluster))
}

/// `hostnetd --store <cluster>` on host `i`, as `host<i+1>`.
fn daemon(phys: &PhysicalNet, cluster: &EtcdCluster, i: usize) -> Daemon {
    cluster.daemon_on(
        phys,
        i,
        &[
            "--host-lease-ttl",
            LEASE_TTL,
            "--default-subnet",
            "10.88.0.0/16",
        ],
    )
}

fn registered(client: &Client) -> Vec<(String, String)> {
    let hosts = client
        .call("GET", "/v2/cluster/hosts", None)
        .expect("cluster hosts");
    hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["HostId"].as_str().unwrap().to_string(),
                h["ProviderAddress"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn host_ids(client: &Client) -> Vec<String> {
    registered(client).into_iter().map(|(h, _)| h).collect()
}

fn nat(client: &Client) -> String {
    client
        .find_by_name(Kind::Networks, "nat")
        .unwrap()
        .expect("nat")["ID"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The host-side veths hostnetd made in a host namespace.
fn veths(phys: &PhysicalNet, i: usize) -> usize {
    let out = phys.host(i).netns.output("ip", &["-o", "link", "show"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(": hnve"))
        .count()
}

/// The keys under `prefix` in etcd, read from host `i`.
fn etcd_keys(phys: &PhysicalNet, cluster: &EtcdCluster, i: usize, prefix: &str) -> Vec<String> {
    let endpoints = cluster.endpoints();
    run_in(phys.host(i).netns.path(), || {
        let c = hostnet_etcd::Client::new(&endpoints, Default::default()).unwrap();
        let (kvs, _) = c.range_prefix(prefix.as_bytes()).unwrap();
        kvs.into_iter()
            .map(|kv| String::from_utf8(kv.key).unwrap())
            .collect()
    })
}

fn create_endpoint(client: &Client, net: &str) -> Result<Value, ApiError> {
    client.create(Kind::Endpoints, &json!({ "HostComputeNetwork": net }))
}

#[test]
fn state_lives_in_etcd_and_survives_member_loss_and_outage() {
    let Some((phys, mut cluster)) =
        world("state_lives_in_etcd_and_survives_member_loss_and_outage")
    else {
        return;
    };
    let mut d1 = daemon(&phys, &cluster, 0);
    let d2 = daemon(&phys, &cluster, 1);
    let (c1, c2) = (d1.client(), d2.client());

    // Both hosts registered, each with its physical address.
    let mut hosts = registered(&c1);
    hosts.sort();
    assert_eq!(
        hosts,
        [
            ("host1".to_string(), host_addr(0)),
            ("host2".to_string(), host_addr(1))
        ]
    );

    // Objects live in etcd under the host's ID, and come back from there.
    let net = c1
        .create(
            Kind::Networks,
            &json!({ "Name": "web", "Type": "NAT", "Ipams": [{ "Subnets": [{ "IpAddressPrefix": "10.90.0.0/24" }] }] }),
        )
        .unwrap();
    let net_id = net["ID"].as_str().unwrap().to_string();
    let a = Container::create(&c1, &nat(&c1), json!({}));
    let b = Container::create(&c1, &nat(&c1), json!({}));
    let web = create_endpoint(&c1, &net_id).unwrap();
    let keys = etcd_keys(&phys, &cluster, 0, "/hostnet/v1/hosts/host1/");
    for (collection, id) in [
        ("networks", &net_id),
        ("endpoints", &a.ep_id),
        ("namespaces", &a.ns_id),
    ] {
        let key = format!("/hostnet/v1/hosts/host1/{collection}/{id}");
        assert!(keys.contains(&key), "{key} not in {keys:#?}");
    }
    let claims = etcd_keys(&phys, &cluster, 0, "/hostnet/v1/cluster/address_claims/");
    assert!(
        claims.contains(&format!(
            "/hostnet/v1/cluster/address_claims/{net_id}/10.90.0.2"
        )),
        "{claims:#?}"
    );
    assert!(
        c2.find_by_name(Kind::Networks, "web").unwrap().is_none(),
        "host2 sees host1's network"
    );
    let before = (
        c1.list(Kind::Networks, None).unwrap(),
        c1.list(Kind::Endpoints, None).unwrap(),
    );
    d1.restart();
    let after = (
        c1.list(Kind::Networks, None).unwrap(),
        c1.list(Kind::Endpoints, None).unwrap(),
    );
    assert_eq!(before, after, "state after a restart");
    assert!(after.1.iter().any(|e| e["ID"] == web["ID"]));

    // One member down, the leader (an election follows): creates still work.
    let leader = cluster.leader();
    cluster.kill(leader);
    println!("killed etcd member {leader}, the leader");
    let start = Instant::now();
    create_endpoint(&c1, &net_id).expect("a create with one etcd member down");
    create_endpoint(&c2, &nat(&c2)).expect("a create with one etcd member down");
    println!("first create with a member down took {:?}", start.elapsed());

    // All members down: changes are refused, clearly, and change nothing;
    // what exists keeps forwarding.
    let srv = Probe::serve(
        phys.outside.path(),
        &["tcp-serve", &format!("{OUTSIDE}:7000")],
    );
    let echo = a.serve(&["tcp-serve", &format!("{}:7001", a.ip)]);
    for i in 0..3 {
        cluster.kill(i);
    }
    let veths_before = veths(&phys, 0);
    let err = create_endpoint(&c1, &net_id).unwrap_err();
    assert_eq!(err.error_code(), Some(0x803B_0017), "{err}");
    assert!(matches!(err, ApiError::Hcn { status: 503, .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("state store is unavailable") && msg.contains("retry"),
        "{msg}"
    );
    assert_eq!(
        veths(&phys, 0),
        veths_before,
        "a refused create left a veth"
    );
    let err = c1.create(Kind::Namespaces, &json!({})).unwrap_err();
    assert_eq!(err.error_code(), Some(0x803B_0017), "{err}");
    // Reads answer from the daemon's memory.
    assert_eq!(
        c1.list(Kind::Endpoints, None).unwrap().len(),
        after.1.len() + 1
    );
    // Packets: a container to the outside, and to another container.
    let (ok, said) = b.run(&["tcp-get", &format!("{OUTSIDE}:7000")]);
    assert!(ok, "container -> outside with etcd down: {said}");
    assert!(srv
        .next_line()
        .unwrap()
        .starts_with(&format!("peer {}:", host_addr(0))));
    let (ok, said) = b.run(&["tcp-get", &format!("{}:7001", a.ip)]);
    assert!(ok, "container -> container with etcd down: {said}");
    assert!(echo
        .next_line()
        .unwrap()
        .starts_with(&format!("peer {}:", b.ip)));

    // etcd back: changes work again without restarting the daemon, and the
    // registration is current (made again if the lease expired meanwhile).
    cluster.restart_all();
    let ok = wait_until(Duration::from_secs(15), || {
        create_endpoint(&c1, &net_id).is_ok()
    });
    assert!(ok, "creates fail after etcd came back:\n{}", d1.log());
    let back = wait_until(Duration::from_secs(15), || {
        let mut ids = host_ids(&c1);
        ids.sort();
        ids == ["host1", "host2"]
    });
    assert!(back, "hosts after the outage: {:?}", registered(&c1));
}

#[test]
fn a_killed_daemon_leaves_the_cluster_when_its_lease_expires() {
    let Some((phys, cluster)) = world("a_killed_daemon_leaves_the_cluster_when_its_lease_expires")
    else {
        return;
    };
    let mut d1 = daemon(&phys, &cluster, 0);
    let d2 = daemon(&phys, &cluster, 1);
    let watcher = d2.client();
    assert!(host_ids(&watcher).contains(&"host1".to_string()));
    let mut gone_after = None;
    d1.kill9_and_restart_with(|| {
        let killed = Instant::now();
        let gone = wait_until(Duration::from_secs(15), || {
            !host_ids(&watcher).contains(&"host1".to_string())
        });
        assert!(gone, "host1 still registered 15 s after kill -9");
        gone_after = Some(killed.elapsed());
    });
    let gone_after = gone_after.unwrap();
    // Not before the TTL (3 s), and not long after.
    assert!(
        gone_after >= Duration::from_secs(2),
        "gone after {gone_after:?}"
    );
    println!("host1's registration went {gone_after:?} after kill -9");
    // Restarted: registered again at once.
    assert!(host_ids(&watcher).contains(&"host1".to_string()));
    // The command line lists both, with their physical addresses.
    let out = std::process::Command::new(hostnet_testbed::workspace_binary("hostnet"))
        .arg("--socket")
        .arg(&d2.socket)
        .args(["cluster", "hosts"])
        .output()
        .expect("run hostnet");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (host, addr) in [("host1", host_addr(0)), ("host2", host_addr(1))] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(host) && l.contains(&addr)),
            "{host} {addr} not in:\n{text}"
        );
    }
    // A second host claiming host1's ID while it runs is refused at start.
    let out = phys
        .host(1)
        .netns
        .command(hostnet_testbed::workspace_binary("hostnetd"))
        .arg("--socket")
        .arg(d2.dir.join("dup.sock"))
        .arg("--state-dir")
        .arg(d2.dir.join("dup-state"))
        .args(["--store", &cluster.endpoints(), "--host-id", "host1"])
        .output()
        .expect("run hostnetd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a duplicate host ID started: {stderr}"
    );
    assert!(
        stderr.contains("\"host1\" is in use by a running hostnetd at 192.0.2.11"),
        "{stderr}"
    );
    // The embedded store has no cluster to list.
    let single = Daemon::start(phys.host(1).netns.path(), &["--no-default-network"]);
    let err = single
        .client()
        .call("GET", "/v2/cluster/hosts", None)
        .unwrap_err();
    assert_eq!(err.error_code(), Some(0x803B_0015), "{err}");
    assert!(err.to_string().contains("--store etcd://"), "{err}");
}

#[test]
fn an_unreachable_etcd_at_start_is_a_clear_error() {
    if !require_privileges("an_unreachable_etcd_at_start_is_a_clear_error") {
        return;
    }
    let phys = PhysicalNet::new("cu", 1);
    let dir = std::env::temp_dir().join(hostnet_testbed::unique("state"));
    let start = Instant::now();
    let out = phys
        .host(0)
        .netns
        .command(hostnet_testbed::workspace_binary("hostnetd"))
        .arg("--socket")
        .arg(dir.join("sock"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args([
            "--store",
            "etcd://192.0.2.99:2379,192.0.2.98:2379",
            "--host-id",
            "host1",
        ])
        .output()
        .expect("run hostnetd");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "hostnetd started without etcd: {stderr}"
    );
    assert!(stderr.contains("cannot reach etcd"), "{stderr}");
    assert!(
        stderr.contains("192.0.2.99:2379") && stderr.contains("192.0.2.98:2379"),
        "{stderr}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
}

/// host1 cut off from every etcd member (routes in its namespace refuse
/// them) for longer than its lease: its registration expires, changes on
/// it are refused as degraded while its containers keep working; once the
/// routes are back it registers again by itself and changes work.
#[test]
fn a_host_cut_off_from_etcd_registers_again_when_it_can() {
    let Some((phys, cluster)) = world("a_host_cut_off_from_etcd_registers_again_when_it_can")
    else {
        return;
    };
    let d1 = daemon(&phys, &cluster, 0);
    let d2 = daemon(&phys, &cluster, 1);
    let (c1, watcher) = (d1.client(), d2.client());
    let a = Container::create(&c1, &nat(&c1), json!({}));
    let members: Vec<String> = (0..cluster.len())
        .map(|i| format!("192.0.2.{}", 21 + i))
        .collect();
    let h1 = &phys.host(0).netns;
    for m in &members {
        h1.ip(&["route", "add", "prohibit", m]);
    }
    let gone = wait_until(Duration::from_secs(15), || {
        !host_ids(&watcher).contains(&"host1".to_string())
    });
    assert!(gone, "host1's registration outlived its cut-off");
    let err = create_endpoint(&c1, &nat(&c1)).unwrap_err();
    assert_eq!(err.error_code(), Some(0x803B_0017), "{err}");
    let (ok, said) = a.run(&["ping", &host_addr(1)]);
    assert!(ok, "container -> host2 while cut off from etcd: {said}");

    for m in &members {
        h1.ip(&["route", "del", "prohibit", m]);
    }
    let back = wait_until(Duration::from_secs(15), || {
        host_ids(&watcher).contains(&"host1".to_string())
    });
    assert!(back, "host1 did not register again:\n{}", d1.log());
    assert!(
        d1.log()
            .contains("registered this host in the cluster again"),
        "{}",
        d1.log()
    );
    create_endpoint(&c1, &nat(&c1)).expect("a create once etcd is reachable again");
}

/// Cluster mode over TLS with client certificates (one member requiring
/// them): the daemon starts with the CA and its certificate, stores and
/// registers; without the CA it refuses to start, saying what to give.
#[test]
fn cluster_mode_over_tls_with_client_certificates() {
    let test = "cluster_mode_over_tls_with_client_certificates";
    if !require_privileges(test) || etcd::etcd_server(test).is_none() {
        return;
    }
    let cluster = EtcdCluster::single_tls("ct");
    let pki = cluster.pki().unwrap();
    let url = cluster.endpoints();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (ca, cert, key) = (s(&pki.ca), s(&pki.client_cert), s(&pki.client_key));
    let d = Daemon::start(
        cluster.netns(0),
        &[
            "--store",
            &url,
            "--host-id",
            "tls-host",
            "--etcd-cacert",
            &ca,
            "--etcd-cert",
            &cert,
            "--etcd-key",
            &key,
            "--default-subnet",
            "10.88.0.0/16",
        ],
    );
    let c = d.client();
    create_endpoint(&c, &nat(&c)).expect("a create over TLS");
    assert_eq!(host_ids(&c), ["tls-host"]);

    let dir = std::env::temp_dir().join(hostnet_testbed::unique("state"));
    let out = Probe::command(
        cluster.netns(0),
        hostnet_testbed::workspace_binary("hostnetd")
            .to_str()
            .unwrap(),
    )
    .arg("--socket")
    .arg(dir.join("sock"))
    .arg("--state-dir")
    .arg(dir.join("state"))
    .args(["--store", &url, "--host-id", "other"])
    .output()
    .expect("run hostnetd");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("give the cluster's CA"), "{stderr}");
}
