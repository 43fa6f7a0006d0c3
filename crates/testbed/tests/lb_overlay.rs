//! Load balancers on an Overlay network (issue 5 item 3, "backends as
//! local and remote endpoints"), on the two-host world of overlay.rs:
//! the Kubernetes-on-Windows shape, a ClusterIP whose backends are a
//! container of this host and one of another host (given to this host as
//! a remote endpoint), reached from a container through its gateway, the
//! network's router, which SNATs every connection to the SourceVIP so
//! replies come back to it. See docs/load-balancers.md#on-overlay-networks.

use std::path::Path;
use std::time::Duration;

use hostnet_api::Kind;
use hostnet_testbed::capture::Capture;
use hostnet_testbed::physical::{id, Container, Host};
use hostnet_testbed::{require_privileges, wait_until, PhysicalNet, Probe, Session};
use serde_json::{json, Value};

const NET: &str = "ov";
/// The client and the local backend on host 1, subnet 1 (the router
/// sends the local backend's connections back out of the bridge they
/// came in on).
const CLIENT: &str = "10.0.1.10";
const LOCAL: &str = "10.0.1.11";
/// The remote backend, on host 2 in subnet 2.
const REMOTE: &str = "10.0.2.30";
/// Host 1's SourceVIP endpoint (kube-proxy's `--source-vip`): never
/// attached.
const SOURCE_VIP: &str = "10.0.1.2";
const VIP: &str = "10.96.0.10";

fn world(test: &str) -> Option<PhysicalNet> {
    if !require_privileges(test) {
        return None;
    }
    let mut phys = PhysicalNet::new("lbov", 2);
    phys.start_daemons(&["--no-default-network"]);
    Some(phys)
}

fn overlay_network() -> Value {
    let subnet = |prefix: &str, vni: u32| {
        json!({"IpAddressPrefix": prefix,
               "Policies": [{"Type": "VSID", "Settings": {"IsolationId": vni}}]})
    };
    json!({
        "Name": NET, "Type": "Overlay",
        "Ipams": [{"Type": "Static", "Subnets": [
            subnet("10.0.1.0/24", 4100), subnet("10.0.2.0/24", 4101)]}],
        "SchemaVersion": {"Major": 2, "Minor": 0}
    })
}

fn at(host: &Host, ip: &str) -> Container {
    host.container_with(NET, json!({"IpConfigurations": [{"IpAddress": ip}]}))
}

/// A remote endpoint on `host`: `ip` at `mac`, on the host at `pa`.
fn remote(host: &Host, ip: &str, mac: &Value, pa: &str) -> String {
    let body = json!({
        "HostComputeNetwork": host.network(NET),
        "Flags": 1,
        "IpConfigurations": [{"IpAddress": ip}],
        "MacAddress": mac,
        "Policies": [{"Type": "ProviderAddress", "Settings": {"ProviderAddress": pa}}],
    });
    id(&host
        .client()
        .create(Kind::Endpoints, &body)
        .expect("create remote endpoint"))
}

fn lb_body(vip: &str, proto: u32, port: u16, target: u16, backends: &[&str]) -> Value {
    json!({
        "HostComputeEndpoints": backends,
        "FrontendVIPs": [vip],
        "SourceVIP": SOURCE_VIP,
        "PortMappings": [{ "Protocol": proto, "InternalPort": target, "ExternalPort": port }],
        "SchemaVersion": { "Major": 2, "Minor": 0 }
    })
}

fn in_ns(ns: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(args)
        .output()
        .expect("nsenter");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The router's LB elements: its frontend, slot and SNAT maps, and the
/// SourceVIPs it tracks.
fn router_lb_state(router: &Path) -> String {
    [
        "lb_vip_guests4",
        "lb_vip_slots4",
        "lb_vip_snat4",
        "lb_router_sources4",
    ]
    .iter()
    .map(|m| {
        let kind = if m.ends_with("sources4") {
            "set"
        } else {
            "map"
        };
        in_ns(router, &["nft", "list", kind, "inet", "hostnet", m])
    })
    .collect()
}

/// The router accepts `ip` as its own (a local route).
fn router_holds(router: &Path, ip: &str) -> bool {
    in_ns(router, &["ip", "route", "show", "table", "local"])
        .lines()
        .any(|l| l.starts_with(&format!("local {ip} ")))
}

/// Each server's connections since the last call, once `total` arrived.
fn served(servers: &[&Probe], total: usize) -> Vec<Vec<String>> {
    let mut seen = vec![Vec::new(); servers.len()];
    let arrived = wait_until(Duration::from_secs(5), || {
        for (lines, server) in seen.iter_mut().zip(servers) {
            lines.extend(server.drain());
        }
        seen.iter().map(Vec::len).sum::<usize>() >= total
    });
    assert!(arrived, "only {seen:?} of {total} connections arrived");
    seen
}

fn connect_many(c: &Container, args: &[&str], n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let (ok, said) = c.run(args);
            assert!(ok, "connection {i} of {args:?} failed: {said}");
            said
        })
        .collect()
}

#[test]
fn overlay_cluster_ip_balances_over_local_and_remote_backends() {
    let test = "overlay_cluster_ip_balances_over_local_and_remote_backends";
    let Some(mut phys) = world(test) else {
        return;
    };
    let (h1, h2) = (phys.host(0), phys.host(1));
    for h in [h1, h2] {
        h.client()
            .create(Kind::Networks, &overlay_network())
            .expect("create overlay network");
    }
    let (pa1, pa2) = (h1.addr.clone(), h2.addr.clone());
    let client = at(h1, CLIENT);
    let local = at(h1, LOCAL);
    let far = at(h2, REMOTE);
    let far_mac = h2.client().get(Kind::Endpoints, &far.ep_id).unwrap()["MacAddress"].clone();
    let far_on_1 = remote(h1, REMOTE, &far_mac, &pa2);
    // Host 1's SourceVIP: an endpoint of its own, never attached, as
    // kube-proxy makes it. Host 2 learns it is at host 1's router (its
    // DR MAC), as a RemoteSubnetRoute to host 1's subnet would say.
    let source_ep = id(&h1
        .client()
        .create(
            Kind::Endpoints,
            &json!({"HostComputeNetwork": h1.network(NET),
                    "IpConfigurations": [{"IpAddress": SOURCE_VIP}]}),
        )
        .expect("the SourceVIP endpoint"));
    let net1 = h1.client().get(Kind::Networks, &h1.network(NET)).unwrap();
    let dr_mac = net1["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["Type"] == "DrMacAddress")
        .expect("DrMacAddress")["Settings"]["Address"]
        .clone();
    remote(h2, SOURCE_VIP, &dr_mac, &pa1);
    let router = h1.overlay_router();
    let empty = router_lb_state(&router);

    // Bad input: refused with the reason, nothing changed.
    let backends = [local.ep_id.as_str(), far_on_1.as_str()];
    let good = lb_body(VIP, 6, 80, 8080, &backends);
    let refusals: Vec<(Value, &str)> = vec![
        (
            {
                let mut b = good.clone();
                b.as_object_mut().unwrap().remove("SourceVIP");
                b
            },
            "needs a SourceVIP",
        ),
        (
            {
                let mut b = good.clone();
                b["SourceVIP"] = json!("10.0.1.99");
                b
            },
            "not the address of an endpoint",
        ),
        (
            {
                let mut b = good.clone();
                b["SourceVIP"] = json!(CLIENT);
                b
            },
            "attached endpoint",
        ),
        (
            {
                let mut b = good.clone();
                b["SourceVIP"] = json!(REMOTE);
                b
            },
            "remote endpoint",
        ),
        (
            lb_body("10.0.2.99", 6, 80, 8080, &backends),
            "inside subnet",
        ),
        (
            {
                let mut b = good.clone();
                b.as_object_mut().unwrap().remove("FrontendVIPs");
                b
            },
            "needs FrontendVIPs",
        ),
        (
            {
                let mut b = lb_body(VIP, 6, 80, 80, &backends);
                b["Flags"] = json!(1);
                b
            },
            "EnableDirectServerReturn",
        ),
    ];
    for (body, why) in &refusals {
        let err = h1
            .client()
            .create(Kind::LoadBalancers, body)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("0x803B0015") && err.contains(why),
            "{why}: {err}"
        );
    }
    assert!(h1
        .client()
        .list(Kind::LoadBalancers, None)
        .unwrap()
        .is_empty());
    assert_eq!(router_lb_state(&router), empty, "a refusal left elements");
    assert!(!router_holds(&router, SOURCE_VIP));

    // TCP, a backend per connection: both are used, and each sees the
    // SourceVIP as its client, over the bridge and over VXLAN.
    let servers = [
        local.serve(&["tcp-serve", "0.0.0.0:8080"]),
        far.serve(&["tcp-serve", "0.0.0.0:8080"]),
    ];
    let lb = id(&h1
        .client()
        .create(Kind::LoadBalancers, &good)
        .expect("create"));
    let shown = h1.client().get(Kind::LoadBalancers, &lb).unwrap();
    assert_eq!(shown["HostComputeNetwork"], json!(h1.network(NET)));
    assert!(
        router_holds(&router, SOURCE_VIP),
        "the router holds the SourceVIP"
    );
    let said = connect_many(&client, &["tcp-get", &format!("{VIP}:80")], 30);
    assert!(
        said.iter()
            .all(|s| s.starts_with(&format!("peer {SOURCE_VIP}:"))),
        "replies came back through the router: {said:?}"
    );
    let seen = served(&[&servers[0], &servers[1]], 30);
    assert!(
        seen.iter().all(|s| s.len() >= 3),
        "both backends, local and remote: {seen:?}"
    );
    assert!(
        seen.iter().flatten().all(|l| l.contains(SOURCE_VIP)),
        "{seen:?}"
    );
    // The host does not see the overlay's connections: its table has
    // no element of this LB.
    let host_guests = in_ns(
        h1.path(),
        &["nft", "list", "map", "inet", "hostnet", "lb_vip_guests4"],
    );
    assert!(!host_guests.contains(VIP), "{host_guests}");

    // UDP on the same VIP, its own port.
    let udp = [
        local.serve(&["udp-serve", "0.0.0.0:5353"]),
        far.serve(&["udp-serve", "0.0.0.0:5353"]),
    ];
    let udp_lb = id(&h1
        .client()
        .create(Kind::LoadBalancers, &lb_body(VIP, 17, 53, 5353, &backends))
        .expect("create UDP"));
    let said = connect_many(&client, &["udp-get", &format!("{VIP}:53")], 20);
    assert!(
        said.iter()
            .all(|s| s.starts_with(&format!("peer {SOURCE_VIP}:"))),
        "{said:?}"
    );
    let seen = served(&[&udp[0], &udp[1]], 20);
    assert!(seen.iter().all(|s| !s.is_empty()), "UDP on both: {seen:?}");

    // SCTP (no SCTP sockets on this kernel: INITs by hand). The firewall
    // defaults let no SCTP into an endpoint, so the router's side of the
    // bridges shows where each INIT went: DNATed to a backend, from the
    // SourceVIP.
    h1.client()
        .create(Kind::LoadBalancers, &lb_body(VIP, 132, 80, 8080, &backends))
        .expect("create SCTP");
    // The VNI bridges (hostnet_drivers::overlay::vni_bridge).
    let wires = [
        Capture::start(&router, &format!("hnvb{:06x}", 4100)),
        Capture::start(&router, &format!("hnvb{:06x}", 4101)),
    ];
    for sport in 5000..5012 {
        let (ok, said) = client.run(&["sctp-init", &format!("{VIP}:80"), &sport.to_string()]);
        assert!(ok, "{said}");
    }
    // The capture has caught up once the client's last INIT is in it.
    assert!(wires[0].saw(&format!("sctp and src host {CLIENT} and src port 5011")));
    let frames: Vec<String> = wires
        .into_iter()
        .flat_map(|w| w.stop().frames("sctp"))
        .collect();
    let to = |backend: &str| {
        frames
            .iter()
            .filter(|f| f.contains(&format!("> {backend}.8080: sctp")))
            .collect::<Vec<_>>()
    };
    let (near, remote) = (to(LOCAL), to(REMOTE));
    assert_eq!(near.len() + remote.len(), 12, "{frames:#?}");
    assert!(
        !near.is_empty() && !remote.is_empty(),
        "SCTP on both: {frames:#?}"
    );
    assert!(
        near.iter()
            .chain(&remote)
            .all(|f| f.contains(&format!("IP {SOURCE_VIP}.50"))),
        "from the SourceVIP: {frames:#?}"
    );

    // An SCTP handshake's first two packets, between endpoints whose ACLs
    // let SCTP in (the firewall defaults do not): the INIT arrives from
    // the SourceVIP, the INIT ACK (sent by hand) arrives from the VIP, so
    // conntrack matched it and undid both rewrites.
    let allow_sctp = json!({ "Type": "ACL", "Settings": {
        "Id": "sctp", "Action": "Allow", "Direction": "In", "Priority": 100,
        "Protocols": "132", "RuleType": "Host" } });
    let with_acl = |ip: &str| {
        h1.container_with(
            NET,
            json!({"IpConfigurations": [{"IpAddress": ip}], "Policies": [allow_sctp.clone()]}),
        )
    };
    let (sctp, sctp_client) = (with_acl("10.0.1.12"), with_acl("10.0.1.13"));
    h1.client()
        .create(
            Kind::LoadBalancers,
            &lb_body("10.96.0.12", 132, 80, 8080, &[sctp.ep_id.as_str()]),
        )
        .expect("create SCTP to one backend");
    let at_backend = Capture::start(&sctp.netns, "eth0");
    let at_client = Capture::start(&sctp_client.netns, "eth0");
    let (ok, said) = sctp_client.run(&["sctp-init", "10.96.0.12:80", "5100"]);
    assert!(ok, "{said}");
    assert!(
        at_backend.saw(&format!(
            "sctp and src host {SOURCE_VIP} and src port 5100 and dst port 8080"
        )),
        "the INIT reached the backend from the SourceVIP"
    );
    let (ok, said) = sctp.run(&["sctp-init-ack", "10.0.1.12", &format!("{SOURCE_VIP}:5100")]);
    assert!(ok, "{said}");
    let seen = at_client.saw("sctp and src host 10.96.0.12 and src port 80 and dst port 5100");
    let frames = at_client.stop().frames("sctp");
    assert!(seen, "the INIT ACK came back from the VIP: {frames:#?}");

    // Source-IP affinity: each client's connections go to one backend.
    let mut affine = lb_body("10.96.0.11", 6, 80, 8080, &backends);
    affine["PortMappings"][0]["DistributionType"] = json!(2);
    let affine_lb = id(&h1
        .client()
        .create(Kind::LoadBalancers, &affine)
        .expect("create affine"));
    let clients: Vec<Container> = ["10.0.1.20", "10.0.1.21", "10.0.2.22", "10.0.2.23"]
        .iter()
        .map(|ip| at(h1, ip))
        .collect();
    let mut used = [false, false];
    for c in &clients {
        connect_many(c, &["tcp-get", "10.96.0.11:80"], 6);
        let seen = served(&[&servers[0], &servers[1]], 6);
        let on: Vec<usize> = seen.iter().map(Vec::len).collect();
        assert!(on.contains(&6), "{} spread over {on:?}", c.ip);
        used[on.iter().position(|&n| n == 6).unwrap()] = true;
    }
    eprintln!("affinity: backends used {used:?}");

    // An open connection and the LBs survive a kill -9 and restart; the
    // router's elements come back the same.
    let echo = [
        local.serve(&["tcp-echo", "0.0.0.0:8081"]),
        far.serve(&["tcp-echo", "0.0.0.0:8081"]),
    ];
    h1.client()
        .create(Kind::LoadBalancers, &lb_body(VIP, 6, 81, 8081, &backends))
        .expect("create echo");
    let mut session = Session::open(&client.netns, &format!("{VIP}:81"));
    assert_eq!(session.say("before"), "before");
    let programmed = router_lb_state(&router);
    phys.hosts[0].daemon_mut().kill9_and_restart();
    let (h1, router) = (phys.host(0), phys.host(0).overlay_router());
    assert_eq!(session.say("after"), "after", "the open connection goes on");
    assert_eq!(router_lb_state(&router), programmed, "restored the same");
    assert!(router_holds(&router, SOURCE_VIP));
    connect_many(&client, &["tcp-get", &format!("{VIP}:80")], 10);
    served(&[&servers[0], &servers[1]], 10);
    drop(echo);

    // A refused modify changes nothing either.
    let mut bad = good.clone();
    bad.as_object_mut().unwrap().remove("SourceVIP");
    let err = h1
        .client()
        .modify(Kind::LoadBalancers, &lb, &bad)
        .unwrap_err();
    assert!(err.to_string().contains("needs a SourceVIP"), "{err}");
    assert_eq!(router_lb_state(&router), programmed);

    // The remote backend's endpoint deleted: it leaves every LB, and all
    // connections go to the local one.
    h1.client()
        .delete(Kind::Endpoints, &far_on_1)
        .expect("delete remote");
    let shown = h1.client().get(Kind::LoadBalancers, &lb).unwrap();
    assert_eq!(
        shown["HostComputeEndpoints"],
        json!([local.ep_id.to_uppercase()])
    );
    connect_many(&client, &["tcp-get", &format!("{VIP}:80")], 10);
    let seen = served(&[&servers[0], &servers[1]], 10);
    assert_eq!((seen[0].len(), seen[1].len()), (10, 0), "{seen:?}");

    // Deleting the LBs: the router's maps are empty and it lets the
    // SourceVIP go with the last one.
    let all: Vec<String> = h1
        .client()
        .list(Kind::LoadBalancers, None)
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert!(all.contains(&udp_lb) && all.contains(&affine_lb));
    for (i, lb) in all.iter().enumerate() {
        h1.client().delete(Kind::LoadBalancers, lb).expect("delete");
        let last = i + 1 == all.len();
        assert_eq!(
            router_holds(&router, SOURCE_VIP),
            !last,
            "after {} deletes",
            i + 1
        );
    }
    assert_eq!(router_lb_state(&router), empty);
    h1.client()
        .delete(Kind::Endpoints, &source_ep)
        .expect("delete the SourceVIP endpoint");
}

/// flannel's shape: one overlay network per host holding that host's
/// subnet of the cluster CIDR (10.244.(i+1).0/24, VNI 4096), and a
/// `RemoteSubnetRoute` to each other host's.
fn flannel_network(i: usize, routes: Vec<Value>) -> Value {
    json!({
        "Name": "vxlan0", "Type": "Overlay",
        "Ipams": [{"Type": "Static", "Subnets": [{"IpAddressPrefix": format!("10.244.{}.0/24", i + 1),
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
        "DestinationPrefix": format!("10.244.{}.0/24", i + 1), "IsolationId": 4096,
        "ProviderAddress": setting("ProviderAddress", "ProviderAddress"),
        "DistributedRouterMacAddress": setting("DrMacAddress", "Address")}})
}

#[test]
fn flannel_cluster_ip_reaches_another_hosts_pods_through_its_subnet_route() {
    let test = "flannel_cluster_ip_reaches_another_hosts_pods_through_its_subnet_route";
    let Some(mut phys) = world(test) else {
        return;
    };
    let (h1, h2) = (phys.host(0), phys.host(1));
    h2.client()
        .create(Kind::Networks, &flannel_network(1, vec![]))
        .expect("host 2's network");
    h1.client()
        .create(
            Kind::Networks,
            &flannel_network(0, vec![route_to(&phys, 1)]),
        )
        .expect("host 1's network, with a route to host 2");
    let back = json!({"ResourceType": "Policy", "RequestType": "Add",
        "Settings": {"Policies": [route_to(&phys, 0)]}});
    h2.client()
        .modify(Kind::Networks, &h2.network("vxlan0"), &back)
        .expect("host 2's route to host 1");
    let on = |h: &Host, ip: &str| {
        h.container_with("vxlan0", json!({"IpConfigurations": [{"IpAddress": ip}]}))
    };
    let client = on(h1, "10.244.1.10");
    let local = on(h1, "10.244.1.11");
    let far = on(h2, "10.244.2.20");
    let far_mac = h2.client().get(Kind::Endpoints, &far.ep_id).unwrap()["MacAddress"].clone();
    // kube-proxy's remote endpoint for a pod of host 2: outside host 1's
    // subnet, inside its route to host 2. One outside every route is
    // refused.
    let remote_at = |ip: &str| {
        h1.client().create(
            Kind::Endpoints,
            &json!({"HostComputeNetwork": h1.network("vxlan0"), "Flags": 1,
                "IpConfigurations": [{"IpAddress": ip}], "MacAddress": far_mac,
                "Policies": [{"Type": "ProviderAddress", "Settings": {"ProviderAddress": h2.addr}}]}),
        )
    };
    let err = remote_at("10.244.7.20").unwrap_err().to_string();
    assert!(err.contains("RemoteSubnetRoute"), "{err}");
    let far_on_1 = id(&remote_at("10.244.2.20").expect("remote endpoint"));
    let source = "10.244.1.2";
    h1.client()
        .create(
            Kind::Endpoints,
            &json!({"HostComputeNetwork": h1.network("vxlan0"),
                    "IpConfigurations": [{"IpAddress": source}]}),
        )
        .expect("the SourceVIP endpoint");
    let servers = [
        local.serve(&["tcp-serve", "0.0.0.0:8080"]),
        far.serve(&["tcp-serve", "0.0.0.0:8080"]),
    ];
    let mut body = lb_body(VIP, 6, 80, 8080, &[&local.ep_id, &far_on_1]);
    body["SourceVIP"] = json!(source);
    let lb = id(&h1
        .client()
        .create(Kind::LoadBalancers, &body)
        .expect("create"));
    let check = |client: &Container, n: usize| {
        let said = connect_many(client, &["tcp-get", &format!("{VIP}:80")], n);
        assert!(
            said.iter()
                .all(|s| s.starts_with(&format!("peer {source}:"))),
            "{said:?}"
        );
        served(&[&servers[0], &servers[1]], n)
    };
    let seen = check(&client, 30);
    assert!(seen.iter().all(|s| s.len() >= 3), "both backends: {seen:?}");

    // The remote endpoint outside the subnets is reloaded at a restart.
    phys.hosts[0].daemon_mut().kill9_and_restart();
    let h1 = phys.host(0);
    let shown = h1.client().get(Kind::LoadBalancers, &lb).unwrap();
    assert_eq!(
        shown["HostComputeEndpoints"].as_array().map(Vec::len),
        Some(2),
        "{shown}"
    );
    let seen = check(&client, 30);
    assert!(
        seen.iter().all(|s| s.len() >= 3),
        "both after a restart: {seen:?}"
    );

    h1.client()
        .delete(Kind::Endpoints, &far_on_1)
        .expect("delete remote");
    let seen = check(&client, 10);
    assert_eq!((seen[0].len(), seen[1].len()), (10, 0), "{seen:?}");
    h1.client()
        .delete(Kind::LoadBalancers, &lb)
        .expect("delete");
}
