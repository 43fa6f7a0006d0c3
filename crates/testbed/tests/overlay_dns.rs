//! The gateway DNS proxy of Overlay networks (`AutomaticDNS`), with real
//! queries (tier 2): one host of the physical network, a dnsmasq upstream
//! in the outside namespace serving `test.`, containers asking their
//! subnet's gateway, which lives in the network's router namespace.
//!
//! ```text
//!  outside: dnsmasq 203.0.113.2:53 (www.test)
//!     | router
//!  host1: hostnetd (--resolv-conf naming it); forwards from here
//!     router namespace of each overlay network: proxy on 10.0.1.1:53, 10.0.2.1:53
//!  containers 10.0.1.x, 10.0.2.x (the same addresses in every network)
//! ```
//!
//! Cluster mode (names learnt from etcd) is in cluster_overlay.rs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hostnet_api::Kind;
use hostnet_testbed::physical::{id, Container, Host, OUTSIDE};
use hostnet_testbed::{require_privileges, wait_until, PhysicalNet, Probe, UpstreamDns};
use serde_json::{json, Value};

const GW1: &str = "10.0.1.1";
const GW2: &str = "10.0.2.1";
/// The upstream's one name.
const WWW: (&str, &str) = ("192.0.2.80", "www.test");

struct World {
    phys: PhysicalNet,
    upstream: UpstreamDns,
    _resolv: ResolvDir,
}

/// The daemon's resolv.conf's directory, removed on drop.
struct ResolvDir(PathBuf);

impl Drop for ResolvDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn world(test: &str) -> Option<World> {
    if !require_privileges(test) {
        return None;
    }
    let mut phys = PhysicalNet::new("od", 1);
    let hosts = [(WWW.0.to_string(), WWW.1.to_string())];
    let upstream = UpstreamDns::start(test, &phys.outside, OUTSIDE, &hosts, 300)?;
    let dir = ResolvDir(std::env::temp_dir().join(hostnet_testbed::unique("resolv")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let resolv = dir.0.join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {OUTSIDE}\n")).unwrap();
    phys.start_daemons(&[
        "--no-default-network",
        "--resolv-conf",
        resolv.to_str().unwrap(),
    ]);
    Some(World {
        phys,
        upstream,
        _resolv: dir,
    })
}

impl World {
    fn host(&self) -> &Host {
        self.phys.host(0)
    }

    /// An overlay network on 10.0.1.0/24 and 10.0.2.0/24 with `vnis` and
    /// the further `policies`; its ID.
    fn network(&self, name: &str, vnis: [u32; 2], policies: Value) -> String {
        let subnet = |prefix: &str, vni: u32| {
            json!({"IpAddressPrefix": prefix,
                   "Policies": [{"Type": "VSID", "Settings": {"IsolationId": vni}}]})
        };
        let body = json!({
            "Name": name, "Type": "Overlay",
            "Ipams": [{"Type": "Static", "Subnets": [
                subnet("10.0.1.0/24", vnis[0]), subnet("10.0.2.0/24", vnis[1])]}],
            "Policies": policies,
            "Dns": {"ServerList": [OUTSIDE]},
            "SchemaVersion": {"Major": 2, "Minor": 0}
        });
        id(&self
            .host()
            .client()
            .create(Kind::Networks, &body)
            .expect("create overlay network"))
    }

    fn container(&self, network: &str, name: &str, ip: &str) -> Container {
        self.container_with(
            network,
            json!({"Name": name, "IpConfigurations": [{"IpAddress": ip}]}),
        )
    }

    /// A container on the network `id` whose endpoint has the fields of
    /// `endpoint`.
    fn container_with(&self, id: &str, endpoint: Value) -> Container {
        Container::create(&self.host().client(), id, endpoint)
    }

    fn servers(&self, c: &Container) -> Value {
        let ep = self
            .host()
            .client()
            .get(Kind::Endpoints, &c.ep_id)
            .expect("get endpoint");
        ep["Dns"]["ServerList"].clone()
    }

    /// The router namespace of the network `id`.
    fn router(&self, id: &str) -> PathBuf {
        let dir = self.host().daemon().dir.join("state").join("netns");
        dir.join(format!("router-{id}"))
    }
}

fn enabled() -> Value {
    json!([{"Type": "AutomaticDNS", "Settings": {"Enable": true}}])
}

/// Ask `server` from inside `c`: the probe's one-line answer, or "" on
/// no answer.
fn ask(c: &Container, server: &str, name: &str, ty: &str) -> String {
    c.run(&["dns", server, name, ty]).1
}

fn ask_from(ns: &Path, server: &str, name: &str) -> String {
    Probe::run(ns, &["dns", server, name, "A"]).1
}

/// The UDP and TCP sockets listening on port 53 in the namespace at `ns`
/// (`ss`, one `proto address:port` a line, sorted).
fn port_53_listeners(ns: &Path) -> Vec<String> {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["ss", "-Hlntu", "sport = :53"])
        .output()
        .expect("ss");
    assert!(out.status.success(), "{out:?}");
    let mut found: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(format!("{} {}", f.first()?, f.get(4)?))
        })
        .collect();
    found.sort();
    found
}

fn a(ip: &str) -> String {
    format!("NOERROR tc=0 A {ip}")
}

#[test]
fn overlay_containers_resolve_local_and_remote_names_and_forward_the_rest() {
    let Some(mut w) =
        world("overlay_containers_resolve_local_and_remote_names_and_forward_the_rest")
    else {
        return;
    };
    let net = w.network("ov", [4100, 4101], enabled());
    let web = w.container(&net, "web", "10.0.1.10");
    let cli = w.container(&net, "cli", "10.0.2.20");
    // Each endpoint's first server is its own subnet's gateway, then the
    // network's servers.
    assert_eq!(w.servers(&web), json!([GW1, OUTSIDE]));
    assert_eq!(w.servers(&cli), json!([GW2, OUTSIDE]));
    // OverrideDnsServerOrder (16): the gateway goes last.
    let own_first = w.container_with(
        &net,
        json!({"Name": "own", "Flags": 16, "Dns": {"ServerList": ["192.0.2.53"]}}),
    );
    assert_eq!(w.servers(&own_first), json!(["192.0.2.53", GW1]));

    // A remote endpoint (another host's container, told through the API).
    let far = w
        .host()
        .client()
        .create(
            Kind::Endpoints,
            &json!({
                "HostComputeNetwork": net, "Name": "far", "Flags": 1,
                "IpConfigurations": [{"IpAddress": "10.0.1.99"}],
                "MacAddress": "00-15-5D-0A-00-63",
                "Policies": [{"Type": "ProviderAddress",
                              "Settings": {"ProviderAddress": "192.0.2.12"}}],
            }),
        )
        .expect("create remote endpoint");

    assert_eq!(ask(&cli, GW2, "web", "A"), a(&web.ip));
    assert_eq!(ask(&web, GW1, "CLI", "A"), a(&cli.ip));
    assert_eq!(ask(&cli, GW2, "far", "A"), a("10.0.1.99"));
    assert_eq!(
        cli.run(&["dns", GW2, "web", "A", "tcp"]).1,
        a(&web.ip),
        "over TCP"
    );
    assert_eq!(ask(&web, GW1, "web", "AAAA"), "NOERROR tc=0");
    // Anything else goes upstream, from the host's namespace.
    assert_eq!(ask(&cli, GW2, WWW.1, "A"), a(WWW.0));
    assert_eq!(w.upstream.queries_for(WWW.1), 1, "{}", w.upstream.log());
    // The proxy listens in the router namespace, on both gateways.
    let router = w.router(&net);
    assert_eq!(
        port_53_listeners(&router),
        [
            "tcp 10.0.1.1:53",
            "tcp 10.0.2.1:53",
            "udp 10.0.1.1:53",
            "udp 10.0.2.1:53"
        ]
    );
    // Someone who is not an endpoint (the router itself): REFUSED.
    assert_eq!(ask_from(&router, GW1, "web"), "REFUSED tc=0");
    // The host cannot reach the overlay's gateways at all: they are not
    // in its namespace.
    assert_eq!(ask_from(w.host().path(), GW1, "web"), "");

    // `hostnet run` on the overlay: its resolv.conf names the gateway and
    // the C library resolves through it.
    let (code, out, err) = w.host().daemon().run_cli(&[
        "run",
        "--network",
        "ov",
        "--",
        "sh",
        "-c",
        "cat /etc/resolv.conf; getent hosts web; getent hosts far; getent hosts www.test",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("nameserver {GW1}\n")), "{out}");
    assert!(out.contains(&web.ip) && out.contains("10.0.1.99"), "{out}");
    assert!(out.contains(WWW.0), "{out}");

    // A deleted remote endpoint stops resolving at once.
    w.host()
        .client()
        .delete(Kind::Endpoints, &id(&far))
        .expect("delete remote endpoint");
    assert!(!ask(&cli, GW2, "far", "A").contains("10.0.1.99"));

    // The proxy comes back after a restart.
    w.phys.hosts[0].daemon_mut().restart();
    let back = wait_until(Duration::from_secs(5), || {
        ask(&cli, GW2, "web", "A") == a(&web.ip)
    });
    assert!(back, "after a restart:\n{}", w.host().daemon().log());

    // Deleting the network closes its proxy.
    for c in [&web, &cli, &own_first] {
        w.host().client().delete(Kind::Endpoints, &c.ep_id).unwrap();
    }
    w.host().client().delete(Kind::Networks, &net).unwrap();
    let log = w.host().daemon().log();
    assert!(
        log.contains(&format!("DNS proxy of network {net} on")) && log.contains("closed"),
        "{log}"
    );
}

#[test]
fn overlay_networks_with_the_same_subnets_answer_only_their_own_names() {
    let Some(w) = world("overlay_networks_with_the_same_subnets_answer_only_their_own_names")
    else {
        return;
    };
    let one = w.network("one", [4200, 4201], enabled());
    let two = w.network("two", [4300, 4301], enabled());
    let alpha = w.container(&one, "alpha", "10.0.1.10");
    let beta = w.container(&two, "beta", "10.0.1.11");
    // An asker at the same address in each network.
    let ask1 = w.container(&one, "asker1", "10.0.1.20");
    let ask2 = w.container(&two, "asker2", "10.0.1.20");
    assert_eq!(ask(&ask1, GW1, "alpha", "A"), a(&alpha.ip));
    assert_eq!(ask(&ask2, GW1, "beta", "A"), a(&beta.ip));
    assert_eq!(ask(&ask2, GW2, "asker2", "A"), a("10.0.1.20"));
    // The other network's name is not known here: it goes upstream,
    // which knows nothing outside `test.`.
    assert!(!ask(&ask1, GW1, "beta", "A").contains("A 10.0.1"));
    assert!(!ask(&ask2, GW1, "alpha", "A").contains("A 10.0.1"));

    // AutomaticDNS off (Enable false), and not asked for (the overlay
    // default): nothing listens and the gateway is not a server.
    let off = w.network(
        "off",
        [4400, 4401],
        json!([{"Type": "AutomaticDNS", "Settings": {"Enable": false}}]),
    );
    let plain = w.network("plain", [4500, 4501], json!([]));
    for (net, name) in [(&off, "quiet1"), (&plain, "quiet2")] {
        let c = w.container(net, name, "10.0.1.30");
        assert_eq!(w.servers(&c), json!([OUTSIDE]));
        assert!(port_53_listeners(&w.router(net)).is_empty());
        if net == &off {
            assert_eq!(ask(&c, GW1, name, "A"), "", "nothing answers");
        }
    }
}
