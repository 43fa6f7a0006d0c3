//! IPv6 load balancers end to end (issue 5 item 3): LoadBalancerFlags 2
//! with IPv6 VIPs or node ports, backends on a dual-stack NAT network
//! reached at their IPv6 addresses, real connections from containers, the
//! host and the outside (`World::dual_stack`). See docs/load-balancers.md.

mod common;

use std::time::Duration;

use common::*;
use hostnet_api::Kind;
use hostnet_testbed::capture::Capture;
use hostnet_testbed::{require_installed, wait_until, Probe, Session};
use serde_json::{json, Value};

const VIP6: &str = "fd00:96::10";
const VIP4: &str = "10.96.0.10";
const V4: &str = "10.77.0.0/24";
const V6: &str = "fd00:77::/64";
/// The dual-stack network's IPv6 gateway: the host's address on its bridge.
const GATEWAY6: &str = "fd00:77::1";

fn at(addr: &str, port: u16) -> String {
    format!("[{addr}]:{port}")
}

fn dual_network(w: &World) {
    w.client()
        .create(
            Kind::Networks,
            &json!({ "Name": "dual", "Type": "nat", "Ipams": [{ "Type": "Static", "Subnets": [
                { "IpAddressPrefix": V4 }, { "IpAddressPrefix": V6 }
            ] }] }),
        )
        .expect("dual-stack network");
}

/// A container's IPv6 address, as the API shows it.
fn ip6(w: &World, c: &Container) -> String {
    let ep = w.client().get(Kind::Endpoints, &c.ep_id).expect("endpoint");
    ep["IpConfigurations"][1]["IpAddress"]
        .as_str()
        .unwrap_or_else(|| panic!("no IPv6 address: {ep}"))
        .to_string()
}

/// Backends on the dual-stack network serving `args` on one dual socket
/// (e.g. `tcp-serve [::]:8080`), one probe each.
struct Backends {
    containers: Vec<Container>,
    ip6: Vec<String>,
    servers: Vec<Probe>,
}

impl Backends {
    fn start(w: &World, n: usize, args: &[&str]) -> Backends {
        let containers: Vec<Container> = (0..n).map(|_| w.container("dual", json!([]))).collect();
        let ip6 = containers.iter().map(|c| ip6(w, c)).collect();
        let servers = containers.iter().map(|c| c.serve(args)).collect();
        Backends {
            containers,
            ip6,
            servers,
        }
    }

    fn ids(&self) -> Vec<String> {
        self.containers.iter().map(|c| c.ep_id.clone()).collect()
    }

    /// How many connections each backend has served since the last call,
    /// once `total` have arrived in all (the servers print one line each).
    fn served(&self, total: usize) -> Vec<usize> {
        let mut counts = vec![0; self.servers.len()];
        let arrived = wait_until(Duration::from_secs(5), || {
            for (count, server) in counts.iter_mut().zip(&self.servers) {
                *count += server.drain().len();
            }
            counts.iter().sum::<usize>() >= total
        });
        assert!(arrived, "only {counts:?} of {total} connections arrived");
        counts
    }
}

/// An IPv6 load balancer (Flags 2).
fn lb6(vips: &[&str], proto: u32, port: u16, target: u16, backends: &[String]) -> Value {
    json!({
        "HostComputeEndpoints": backends,
        "FrontendVIPs": vips,
        "PortMappings": [{ "Protocol": proto, "InternalPort": target, "ExternalPort": port }],
        "Flags": 2,
        "SchemaVersion": { "Major": 2, "Minor": 0 }
    })
}

/// `n` one-shot clients of `args` from `netns`, all of which must succeed;
/// returns what each said.
fn connect_many(netns: &std::path::Path, args: &[&str], n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let (ok, said) = Probe::run(netns, args);
            assert!(ok, "connection {i} of {args:?} failed: {said}");
            said
        })
        .collect()
}

fn both_used(counts: &[usize], what: &str) {
    assert!(
        counts.iter().all(|&c| c >= 3),
        "{what}: connections were not spread over the backends: {counts:?}"
    );
}

fn all_from(said: &[String], peer: &str, what: &str) {
    let want = format!("peer [{peer}]:");
    assert!(
        said.iter().all(|s| s.starts_with(&want)),
        "{what}: the backends did not see {peer}: {said:?}"
    );
}

/// The IPv6 maps' elements, and the LB list: what a refused change must
/// leave as it was.
fn lb_state(w: &World) -> (Vec<Value>, Vec<Vec<String>>) {
    let maps = hostnet_nft::lb::MAPS6
        .all()
        .iter()
        .map(|m| w.elements("inet", "map", m))
        .collect();
    (w.client().list(Kind::LoadBalancers, None).unwrap(), maps)
}

#[test]
fn ipv6_cluster_ip_spreads_connections_from_containers_the_host_and_outside() {
    let Some(w) = World::dual_stack(
        "ipv6_cluster_ip_spreads_connections_from_containers_the_host_and_outside",
    ) else {
        return;
    };
    dual_network(&w);
    let tcp = Backends::start(&w, 2, &["tcp-serve", "[::]:8080"]);
    let mut body = lb6(&[VIP6], 6, 80, 8080, &tcp.ids());
    body["PortMappings"][0]["Flags"] = json!(2); // LocalRoutedVip: the host too
    let lb = w
        .client()
        .create(Kind::LoadBalancers, &body)
        .expect("create");
    let lb_id = id(&lb);
    let got = w.client().get(Kind::LoadBalancers, &lb_id).unwrap();
    for key in [
        "HostComputeEndpoints",
        "FrontendVIPs",
        "PortMappings",
        "Flags",
    ] {
        assert_eq!(got[key], body[key], "{key} not echoed: {got}");
    }
    let version = w.client().version().expect("version");
    assert_eq!(
        version.features["IPv6DualStack"], true,
        "{:?}",
        version.features
    );

    let client = w.container("dual", json!([]));
    // Trace: the LB rule, rewritten to one of the backends' IPv6 addresses.
    let t = w
        .client()
        .trace(
            &client.ep_id,
            &json!({ "Direction": "Out", "Protocol": "tcp", "Destination": at(VIP6, 80) }),
        )
        .unwrap();
    let text = t["Text"].as_str().unwrap_or_default();
    assert!(
        text.contains(&format!("group lb/{lb_id} rule lb:{VIP6}:6:80 prio 0 balance to one of 2 backends port 8080 per connection")),
        "{text}"
    );
    let after = t["PacketAfter"].as_str().unwrap_or_default().to_string();
    assert!(
        tcp.ip6.iter().any(|b| after.ends_with(&at(b, 8080))),
        "rewritten to {after}"
    );

    let said = connect_many(&client.netns, &["tcp-get", &at(VIP6, 80)], 30);
    // Same bridge: the host's hairpin NAT66 gives the gateway as source.
    all_from(&said, GATEWAY6, "from a container");
    both_used(&tcp.served(30), "from a container");
    connect_many(w.host.path(), &["tcp-get", &at(VIP6, 80)], 20);
    both_used(&tcp.served(20), "from the host");
    // The outside, with the VIP's prefix routed to the host, is the client.
    w.outside
        .ip(&["-6", "route", "add", "fd00:96::/64", "via", HOST6]);
    let received = |c: &Container| {
        let stats = w.client().endpoint_stats(&c.ep_id).expect("stats");
        stats["PacketsReceived"]
            .as_u64()
            .unwrap_or_else(|| panic!("{stats}"))
    };
    let before = received(&tcp.containers[0]);
    let said = connect_many(w.outside.path(), &["tcp-get", &at(VIP6, 80)], 20);
    all_from(&said, OUTSIDE6, "from outside");
    let counts = tcp.served(20);
    both_used(&counts, "from outside");
    // The endpoint's counters count what the LB sent it: a SYN, an ACK and
    // a FIN at least per connection.
    let got = received(&tcp.containers[0]) - before;
    assert!(
        got >= 3 * counts[0] as u64,
        "{got} packets for {} connections",
        counts[0]
    );

    // An internal LB (ILB) is reached from containers, not from outside.
    let mut ilb = lb6(&["fd00:96::20"], 6, 90, 8080, &tcp.ids());
    ilb["PortMappings"][0]["Flags"] = json!(1);
    w.client().create(Kind::LoadBalancers, &ilb).expect("ILB");
    connect_many(&client.netns, &["tcp-get", &at("fd00:96::20", 90)], 3);
    tcp.served(3);
    let (ok, said) = Probe::run(w.outside.path(), &["tcp-get", &at("fd00:96::20", 90)]);
    assert!(!ok, "the outside reached an internal LB: {said}");

    // The service's IPv4 twin on the same backends (kube-proxy makes one
    // LB per family for a dual-stack service): each family to its own.
    w.client()
        .create(
            Kind::LoadBalancers,
            &json!({
                "HostComputeEndpoints": tcp.ids(),
                "FrontendVIPs": [VIP4],
                "PortMappings": [{ "Protocol": 6, "InternalPort": 8080, "ExternalPort": 80 }],
            }),
        )
        .expect("IPv4 twin");
    let said = connect_many(&client.netns, &["tcp-get", &format!("{VIP4}:80")], 10);
    assert!(
        said.iter()
            .all(|s| s.starts_with("peer [::ffff:10.77.0.1]:")),
        "IPv4 reached the dual socket as IPv4: {said:?}"
    );
    tcp.served(10);

    // UDP on the same VIP, its own port; not from the host without
    // LocalRoutedVip.
    let udp = Backends::start(&w, 2, &["udp-serve", "[::]:5353"]);
    w.client()
        .create(Kind::LoadBalancers, &lb6(&[VIP6], 17, 53, 5353, &udp.ids()))
        .expect("udp lb");
    connect_many(&client.netns, &["udp-get", &at(VIP6, 53)], 30);
    both_used(&udp.served(30), "udp from a container");
    let (ok, said) = Probe::run(w.host.path(), &["udp-get", &at(VIP6, 53)]);
    assert!(!ok, "the host reached a VIP without LocalRoutedVip: {said}");
}

#[test]
fn ipv6_node_port_with_source_vip_affinity_and_refusals() {
    let Some(w) = World::dual_stack("ipv6_node_port_with_source_vip_affinity_and_refusals") else {
        return;
    };
    dual_network(&w);
    let tcp = Backends::start(&w, 3, &["tcp-serve", "[::]:8080"]);
    let ids = tcp.ids();
    let mut body = lb6(&[], 6, 30080, 8080, &ids[..2]);
    let lb = w
        .client()
        .create(Kind::LoadBalancers, &body)
        .expect("IPv6 node port");
    // The IPv4 node port of the same service, to the third backend.
    w.client()
        .create(
            Kind::LoadBalancers,
            &json!({
                "HostComputeEndpoints": &ids[2..],
                "PortMappings": [{ "Protocol": 6, "InternalPort": 8080, "ExternalPort": 30080 }],
            }),
        )
        .expect("IPv4 node port beside it");
    let said = connect_many(w.outside.path(), &["tcp-get", &at(HOST6, 30080)], 30);
    all_from(&said, OUTSIDE6, "IPv6 node port from outside");
    let counts = tcp.served(30);
    assert!(
        counts[0] >= 3 && counts[1] >= 3 && counts[2] == 0,
        "{counts:?}"
    );
    connect_many(w.outside.path(), &["tcp-get", &format!("{HOST}:30080")], 5);
    assert_eq!(tcp.served(5), vec![0, 0, 5], "IPv4 goes to the IPv4 LB");
    // Not from the host without LocalRoutedVip.
    let (ok, said) = Probe::run(w.host.path(), &["tcp-get", &at(HOST6, 30080)]);
    assert!(
        !ok,
        "the host reached a node port without LocalRoutedVip: {said}"
    );

    // SourceVIP: the backends see it; affinity: one client, one backend.
    body["SourceVIP"] = json!(GATEWAY6);
    body["PortMappings"][0]["DistributionType"] = json!(2);
    w.client()
        .modify(Kind::LoadBalancers, &id(&lb), &body)
        .expect("modify");
    let said = connect_many(w.outside.path(), &["tcp-get", &at(HOST6, 30080)], 12);
    all_from(&said, GATEWAY6, "with SourceVIP");
    let counts = tcp.served(12);
    assert_eq!(
        counts.iter().filter(|&&c| c > 0).count(),
        1,
        "one client's connections went to several backends: {counts:?}"
    );
    // A container reaches the node port on the host's IPv6 address, as
    // its trace says.
    let client = w.container("dual", json!([]));
    connect_many(&client.netns, &["tcp-get", &at(HOST6, 30080)], 3);
    tcp.served(3);
    let t = w
        .client()
        .trace(
            &client.ep_id,
            &json!({ "Direction": "Out", "Protocol": "tcp", "Destination": at(HOST6, 30080) }),
        )
        .unwrap();
    let text = t["Text"].as_str().unwrap_or_default();
    assert!(
        text.contains(&format!("rule lb:{HOST6}:6:30080 prio 0 balance to one of 2 backends port 8080 by source address source {GATEWAY6}")),
        "{text}"
    );

    // Refused, nothing changed: mixed families, a backend without an IPv6
    // address, DSR and PreserveDip with IPv6.
    let v4_only = w.container("nat", json!([]));
    let before = lb_state(&w);
    let mut pdip = lb6(&[VIP6], 6, 80, 8080, &ids[..1]);
    pdip["PortMappings"][0]["Flags"] = json!(8);
    let mut dsr = lb6(&[VIP6], 6, 8080, 8080, &ids[..1]);
    dsr["Flags"] = json!(3);
    let mut v6_vip_without_flag = lb6(&[VIP6], 6, 80, 8080, &ids[..1]);
    v6_vip_without_flag["Flags"] = json!(0);
    let cases = [
        (lb6(&[VIP4], 6, 80, 8080, &ids[..1]), 0x803B_001E),
        (v6_vip_without_flag, 0x803B_001E),
        (
            lb6(&[VIP6], 6, 80, 8080, std::slice::from_ref(&v4_only.ep_id)),
            0x803B_000C,
        ),
        (pdip, 0x803B_0015),
        (dsr, 0x803B_0015),
    ];
    for (doc, want) in &cases {
        assert_eq!(
            code(w.client().create(Kind::LoadBalancers, doc)),
            *want,
            "{doc}"
        );
        assert_eq!(
            code(w.client().modify(Kind::LoadBalancers, &id(&lb), doc)),
            *want,
            "modify {doc}"
        );
    }
    // The IPv6 node port is taken (the IPv4 one beside it was not).
    let again = lb6(&[], 6, 30080, 8080, &ids[..1]);
    assert_eq!(
        code(w.client().create(Kind::LoadBalancers, &again)),
        0x803B_0013
    );
    assert_eq!(lb_state(&w), before, "a refusal changed something");
}

#[test]
fn ipv6_backends_leave_with_their_endpoints_and_connections_survive_a_restart() {
    let Some(mut w) = World::dual_stack(
        "ipv6_backends_leave_with_their_endpoints_and_connections_survive_a_restart",
    ) else {
        return;
    };
    dual_network(&w);
    let tcp = Backends::start(&w, 3, &["tcp-serve", "[::]:8080"]);
    let ids = tcp.ids();
    let lb = w
        .client()
        .create(Kind::LoadBalancers, &lb6(&[VIP6], 6, 80, 8080, &ids[..2]))
        .unwrap();
    let lb_id = id(&lb);
    let client = w.container("dual", json!([]));
    let vip = at(VIP6, 80);
    connect_many(&client.netns, &["tcp-get", &vip], 20);
    let counts = tcp.served(20);
    assert!(
        counts[0] > 0 && counts[1] > 0 && counts[2] == 0,
        "{counts:?}"
    );

    // The second backend's endpoint goes: it leaves the LB, store and kernel.
    w.client().delete(Kind::Endpoints, &ids[1]).unwrap();
    let got = w.client().get(Kind::LoadBalancers, &lb_id).unwrap();
    assert_eq!(got["HostComputeEndpoints"], json!([ids[0]]));
    let slots = w.elements("inet", "map", "lb_vip_slots6");
    assert_eq!(slots.len(), 1, "{slots:?}");
    assert!(slots[0].contains(&tcp.ip6[0]), "{slots:?}");
    connect_many(&client.netns, &["tcp-get", &vip], 10);
    assert_eq!(tcp.served(10), vec![10, 0, 0]);

    // An open connection to the first backend (echo on another port).
    let _echo = tcp.containers[0].serve(&["tcp-echo", "[::]:7070"]);
    let echo_lb = w
        .client()
        .create(Kind::LoadBalancers, &lb6(&[VIP6], 6, 70, 7070, &ids[..1]))
        .unwrap();
    let mut session = Session::open(&client.netns, &at(VIP6, 70));
    assert_eq!(session.say("before"), "before");

    // kill -9 and restart: the connection goes on, the LBs and elements
    // are as they were.
    let before = w.client().list(Kind::LoadBalancers, None).unwrap();
    let elements = w.elements("inet", "map", "lb_vip_slots6");
    w.daemon.kill9_and_restart();
    assert_eq!(
        session.say("restarted"),
        "restarted",
        "the connection broke"
    );
    assert_eq!(w.client().list(Kind::LoadBalancers, None).unwrap(), before);
    assert_eq!(w.elements("inet", "map", "lb_vip_slots6"), elements);

    // Modify, wrapped as SDN sends it, moves new connections to the third
    // backend; the open one stays where it is.
    let wrapped = json!({
        "RequestType": "Update", "ResourceType": "LoadBalancer",
        "Settings": lb6(&[VIP6], 6, 80, 8080, &ids[2..]),
    });
    w.client()
        .modify(Kind::LoadBalancers, &lb_id, &wrapped)
        .unwrap();
    connect_many(&client.netns, &["tcp-get", &vip], 10);
    assert_eq!(tcp.served(10), vec![0, 0, 10]);
    w.client()
        .modify(
            Kind::LoadBalancers,
            &id(&echo_lb),
            &lb6(&[VIP6], 6, 70, 7070, &ids[2..]),
        )
        .unwrap();
    assert_eq!(session.say("after"), "after", "the open connection moved");

    // Delete: every IPv6 map is empty again.
    w.client().delete(Kind::LoadBalancers, &lb_id).unwrap();
    w.client()
        .delete(Kind::LoadBalancers, &id(&echo_lb))
        .unwrap();
    for map in hostnet_nft::lb::MAPS6.all() {
        assert!(
            w.elements("inet", "map", map).is_empty(),
            "{map} kept elements"
        );
    }
}

/// SCTP (no SCTP sockets on this kernel: an association's INIT and INIT
/// ACK by hand, over raw IPv6): the INIT from outside reaches the backend
/// at its IPv6 address and InternalPort, the answer comes back from the
/// VIP and ExternalPort, so conntrack matched it.
#[test]
fn ipv6_sctp_reaches_a_backend_and_is_answered_from_the_vip() {
    let test = "ipv6_sctp_reaches_a_backend_and_is_answered_from_the_vip";
    if !require_installed(test, &["/usr/bin/tcpdump"], "tcpdump") {
        return;
    }
    let Some(w) = World::dual_stack(test) else {
        return;
    };
    dual_network(&w);
    // The firewall defaults let only TCP, UDP and ICMP into an endpoint.
    let allow_sctp = json!({ "Type": "ACL", "Settings": {
        "Id": "sctp", "Action": "Allow", "Direction": "In", "Priority": 100, "Protocols": "132", "RuleType": "Host" } });
    let backend = w.container("dual", json!([allow_sctp]));
    let b6 = ip6(&w, &backend);
    w.client()
        .create(
            Kind::LoadBalancers,
            &lb6(&[VIP6], 132, 80, 8080, std::slice::from_ref(&backend.ep_id)),
        )
        .expect("SCTP LB");
    w.outside
        .ip(&["-6", "route", "add", "fd00:96::/64", "via", HOST6]);
    let at_backend = Capture::start(&backend.netns, "eth0");
    let at_outside = Capture::start(w.outside.path(), "up0");
    let run = |netns: &std::path::Path, args: &[&str]| {
        let (ok, said) = Probe::run(netns, args);
        assert!(ok, "{args:?}: {said}");
    };
    run(w.outside.path(), &["sctp-init", &at(VIP6, 80)]);
    assert!(
        at_backend.saw(&format!(
            "sctp and src host {OUTSIDE6} and src port 5000 and dst host {b6} and dst port 8080"
        )),
        "the INIT did not reach the backend"
    );
    run(&backend.netns, &["sctp-init-ack", &b6, &at(OUTSIDE6, 5000)]);
    assert!(
        at_outside.saw(&format!(
            "sctp and src host {VIP6} and src port 80 and dst host {OUTSIDE6} and dst port 5000"
        )),
        "the INIT ACK did not come back from the frontend"
    );
    // Nothing arrived untranslated: the backend saw no packet to the VIP.
    let untranslated = at_backend
        .stop()
        .frames(&format!("sctp and dst host {VIP6}"));
    assert!(untranslated.is_empty(), "{untranslated:?}");
    at_outside.stop();
}
