//! Transparent networks without subnets: endpoints lease their addresses
//! from the physical network's DHCP server (dnsmasq in the router of the
//! multi-host world, [`PhysicalNet`]), keep them renewed while they live,
//! across daemon restarts, and release them on delete.
//!
//! The server hands out 192.0.2.100-149 for 2 minutes (dnsmasq's shortest
//! lease) with T1 = 3 s, so renewals happen within a test's budget; it
//! names 192.0.2.53 as DNS server and corp.example as domain, and itself
//! (192.0.2.1) as router.

use std::net::Ipv4Addr;
use std::time::Duration;

use hostnet_api::{ApiError, Client, Kind};
use hostnet_testbed::physical::{id, Container, Host, GATEWAY, OUTSIDE};
use hostnet_testbed::{require_privileges, wait_until, PhysicalNet, Probe};
use serde_json::{json, Value};

const NET: &str = "dhcp";
const DNS: &str = "192.0.2.53";
const DOMAIN: &str = "corp.example";
/// ERROR_NO_MORE_ITEMS: no address could be had.
const POOL_EXHAUSTED: u32 = 0x8007_0103;
/// Renew after this many seconds (dnsmasq sends it as option 58).
const T1: u64 = 3;

/// Hosts with `hostnetd` (no network of their own, and `args`), and a DHCP
/// server if `dhcp`; None after `skipped:`.
fn world(test: &str, dhcp: bool, args: &[&str]) -> Option<PhysicalNet> {
    if !require_privileges(test) {
        return None;
    }
    let mut phys = PhysicalNet::new("dh", 2);
    if dhcp {
        let t1 = format!("--dhcp-option=option:T1,{T1}");
        let dns = format!("--dhcp-option=option:dns-server,{DNS}");
        let domain = format!("--dhcp-option=option:domain-name,{DOMAIN}");
        if !phys.start_dhcp_with(test, "192.0.2.100,192.0.2.149", "2m", &[&t1, &dns, &domain]) {
            return None;
        }
    }
    let mut all = vec!["--no-default-network"];
    all.extend_from_slice(args);
    phys.start_daemons(&all);
    Some(phys)
}

/// Create the DHCP network [`NET`] on `host` (no Ipams), bound to eth0.
fn dhcp_network(host: &Host) -> Value {
    let body = json!({
        "Name": NET,
        "Type": "Transparent",
        "Policies": [{ "Type": "NetAdapterName", "Settings": { "NetworkAdapterName": "eth0" } }],
    });
    host.client()
        .create(Kind::Networks, &body)
        .unwrap_or_else(|e| panic!("create a DHCP Transparent network: {e}"))
}

fn in_range(ip: &str) -> bool {
    let a: Ipv4Addr = ip.parse().expect("an IPv4 address");
    (Ipv4Addr::new(192, 0, 2, 100)..=Ipv4Addr::new(192, 0, 2, 149)).contains(&a)
}

/// The MAC of an endpoint as the lease file writes it.
fn mac_of(ep: &Value) -> String {
    ep["MacAddress"]
        .as_str()
        .expect("MacAddress")
        .replace('-', ":")
        .to_lowercase()
}

/// `ip ARGS` in a namespace.
fn ip_in(ns: &std::path::Path, args: &[&str]) -> String {
    let out = Probe::command(ns, "ip")
        .args(args)
        .output()
        .expect("run ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lease expiry of `mac` once it is later than `after` (waits up to
/// `secs` seconds); panics with the server's log otherwise.
fn renewed_after(phys: &PhysicalNet, mac: &str, after: u64, secs: u64, what: &str) -> u64 {
    let mut seen = None;
    let ok = wait_until(Duration::from_secs(secs), || {
        seen = phys.dhcp().lease_of(mac).map(|(e, _)| e);
        seen.is_some_and(|e| e > after)
    });
    assert!(
        ok,
        "{what}: the lease of {mac} was not renewed past {after} (now {seen:?})\nserver log:\n{}",
        phys.dhcp().log()
    );
    seen.expect("seen")
}

#[test]
fn an_endpoint_leases_its_address_gateway_and_dns() {
    let Some(phys) = world("an_endpoint_leases_its_address_gateway_and_dns", true, &[]) else {
        return;
    };
    let (h1, h2) = (phys.host(0), phys.host(1));
    let net = dhcp_network(h1);
    assert_eq!(net["Ipams"], json!([{ "Type": "Dhcp" }]), "{net}");

    let a = h1.container(NET, json!([]));
    let ep = h1.client().get(Kind::Endpoints, &a.ep_id).expect("get");
    assert!(in_range(&a.ip), "{} is not from the DHCP range: {ep}", a.ip);
    assert_eq!(ep["IpConfigurations"][0]["PrefixLength"], 24, "{ep}");
    assert_eq!(
        ep["Routes"],
        json!([{ "NextHop": GATEWAY, "DestinationPrefix": "0.0.0.0/0" }]),
        "{ep}"
    );
    assert_eq!(ep["Dns"]["ServerList"], json!([DNS]), "{ep}");
    assert_eq!(ep["Dns"]["Domain"], DOMAIN, "{ep}");
    // The server's lease file holds it, under the endpoint's MAC.
    let mac = mac_of(&ep);
    assert_eq!(
        phys.dhcp().lease_of(&mac).map(|(_, ip)| ip),
        Some(a.ip.clone()),
        "lease file:\n{}",
        phys.dhcp().leases()
    );
    // Inside: the address and the default route via the DHCP router.
    let route = ip_in(&a.netns, &["route", "show", "default"]);
    assert!(route.contains(&format!("via {GATEWAY}")), "{route}");

    // It reaches the outside through the router, with its own address...
    let srv = Probe::serve(
        phys.outside.path(),
        &["tcp-serve", &format!("{OUTSIDE}:7000")],
    );
    let (ok, said) = a.run(&["tcp-get", &format!("{OUTSIDE}:7000")]);
    assert!(ok, "container -> outside: {said}");
    let seen = srv.next_line().unwrap_or_default();
    assert!(
        seen.starts_with(&format!("peer {}:", a.ip)),
        "the outside saw {seen:?}"
    );
    // ...the router itself, and another host, which reach it back.
    let (ok, said) = a.run(&["ping", GATEWAY]);
    assert!(ok, "container -> router: {said}");
    let srv = Probe::serve(h2.path(), &["tcp-serve", &format!("{}:7001", h2.addr)]);
    let (ok, said) = a.run(&["tcp-get", &format!("{}:7001", h2.addr)]);
    assert!(ok, "container -> host 2: {said}");
    assert!(srv
        .next_line()
        .unwrap_or_default()
        .starts_with(&format!("peer {}:", a.ip)));
    let _web = a.serve(&["tcp-serve", &format!("{}:80", a.ip)]);
    let (ok, said) = Probe::run(h2.path(), &["tcp-get", &format!("{}:80", a.ip)]);
    assert!(ok, "host 2 -> container: {said}");
    assert!(said.contains(&format!("peer {}:", h2.addr)), "{said}");

    // A second endpoint gets another address and MAC.
    let b = h1.container(NET, json!([]));
    assert!(in_range(&b.ip) && b.ip != a.ip, "{} and {}", a.ip, b.ip);
}

#[test]
fn leases_are_renewed_and_survive_a_daemon_restart() {
    let Some(mut phys) = world("leases_are_renewed_and_survive_a_daemon_restart", true, &[]) else {
        return;
    };
    let h1 = phys.host(0);
    dhcp_network(h1);
    let c = h1.client();
    // Not attached: the lease does not need the endpoint in a namespace.
    let ep = c
        .create(
            Kind::Endpoints,
            &json!({ "HostComputeNetwork": h1.network(NET) }),
        )
        .expect("create endpoint");
    let addr = ep["IpConfigurations"][0]["IpAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let mac = mac_of(&ep);
    // dnsmasq writes its lease file after it has answered: wait for it.
    let mut lease = None;
    wait_until(Duration::from_secs(5), || {
        lease = phys.dhcp().lease_of(&mac);
        lease.is_some()
    });
    let (first, leased) = lease.expect("leased (dnsmasq's lease file)");
    assert_eq!(leased, addr);
    // Renewed at T1 (the server's lease file moves the expiry on).
    let renewed = renewed_after(&phys, &mac, first, 3 * T1 + 2, "while the daemon runs");
    let log = h1.daemon().log();
    assert!(log.contains("renewed"), "no renewal in the log:\n{log}");

    // kill -9 and start again: same endpoint, same address, still renewed.
    phys.hosts[0].daemon_mut().kill9_and_restart();
    let h1 = phys.host(0);
    let again = h1
        .client()
        .get(Kind::Endpoints, &id(&ep))
        .expect("endpoint after restart");
    assert_eq!(again["IpConfigurations"], ep["IpConfigurations"]);
    assert_eq!(again["MacAddress"], ep["MacAddress"]);
    renewed_after(&phys, &mac, renewed, 3 * T1 + 2, "after a restart");
    assert_eq!(phys.dhcp().lease_of(&mac).map(|(_, ip)| ip), Some(addr));

    // Attached after all that, it has the address it leased.
    let ns = h1
        .client()
        .create(
            Kind::Namespaces,
            &json!({ "SchemaVersion": { "Major": 2, "Minor": 0 } }),
        )
        .expect("namespace");
    h1.client()
        .attach_endpoint(&id(&ns), &id(&ep))
        .expect("attach");
    let path = ns["NetNsPath"].as_str().expect("NetNsPath");
    let (ok, said) = Probe::run(std::path::Path::new(path), &["ping", GATEWAY]);
    assert!(ok, "attached endpoint -> router: {said}");
}

#[test]
fn deleting_an_endpoint_releases_its_lease() {
    let Some(phys) = world("deleting_an_endpoint_releases_its_lease", true, &[]) else {
        return;
    };
    let h1 = phys.host(0);
    dhcp_network(h1);
    let a: Container = h1.container(NET, json!([]));
    let c = h1.client();
    let mac = mac_of(&c.get(Kind::Endpoints, &a.ep_id).expect("get"));
    assert!(phys.dhcp().lease_of(&mac).is_some());
    c.delete(Kind::Endpoints, &a.ep_id)
        .expect("delete endpoint");
    let gone = wait_until(Duration::from_secs(5), || {
        phys.dhcp().lease_of(&mac).is_none()
    });
    assert!(
        gone,
        "the lease of {mac} is still in the lease file:\n{}\nserver log:\n{}",
        phys.dhcp().leases(),
        phys.dhcp().log()
    );
    assert!(phys.dhcp().log().contains("DHCPRELEASE"));
    // The network can go now, and its adapter is given back.
    c.delete(Kind::Networks, &h1.network(NET))
        .expect("delete network");
}

#[test]
fn no_dhcp_server_is_a_clear_error_and_leaves_nothing() {
    let Some(phys) = world(
        "no_dhcp_server_is_a_clear_error_and_leaves_nothing",
        false,
        &["--dhcp-timeout", "2"],
    ) else {
        return;
    };
    let h1 = phys.host(0);
    // A MacPool of one MAC: a second try gets past the MAC only if the
    // first one gave it back.
    let body = json!({
        "Name": NET,
        "Type": "Transparent",
        "Ipams": [{ "Type": "Dhcp" }],
        "MacPool": { "Ranges": [{ "StartMacAddress": "02-4D-AA-00-00-01", "EndMacAddress": "02-4D-AA-00-00-01" }] },
        "Policies": [{ "Type": "NetAdapterName", "Settings": { "NetworkAdapterName": "eth0" } }],
    });
    let c: Client = h1.client();
    let net = c.create(Kind::Networks, &body).expect("create network");
    let links = ip_in(h1.path(), &["-o", "link", "show"]);
    for attempt in 1..=2 {
        let started = std::time::Instant::now();
        let r = c.create(Kind::Endpoints, &json!({ "HostComputeNetwork": id(&net) }));
        let e: ApiError = match r {
            Err(e) => e,
            Ok(v) => panic!("attempt {attempt}: an endpoint without a DHCP server: {v}"),
        };
        assert_eq!(
            e.error_code(),
            Some(POOL_EXHAUSTED),
            "attempt {attempt}: {e}"
        );
        let text = e.to_string();
        assert!(
            text.contains("no DHCP server answered") && text.contains("eth0"),
            "attempt {attempt}: {text}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "it took {:?}",
            started.elapsed()
        );
        assert!(c.list(Kind::Endpoints, None).expect("list").is_empty());
        assert_eq!(
            ip_in(h1.path(), &["-o", "link", "show"]),
            links,
            "links changed"
        );
    }
    // Nothing stored either: a restarted daemon has no endpoint.
    let mut phys = phys;
    phys.hosts[0].daemon_mut().restart();
    assert!(phys
        .host(0)
        .client()
        .list(Kind::Endpoints, None)
        .expect("list")
        .is_empty());
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
fn outbound_nat_and_sdn_routes_follow_the_leased_address() {
    let test = "outbound_nat_and_sdn_routes_follow_the_leased_address";
    let Some(mut phys) = world(test, true, &[]) else {
        return;
    };
    let (h1, h2) = (phys.host(0), phys.host(1));
    let host1 = hostnet_testbed::physical::host_addr(0);
    let host2 = hostnet_testbed::physical::host_addr(1);
    dhcp_network(h1);
    let far_at = format!("{OUTSIDE}:7000");
    let near_at = format!("{host2}:7001");
    let far = Probe::serve(phys.outside.path(), &["tcp-serve", &far_at]);
    let near = Probe::serve(h2.path(), &["tcp-serve", &near_at]);

    // OutBoundNAT with the physical subnet as exception, for an address
    // nobody knew before the lease: the outside sees host 1, host 2 the
    // container.
    let onat = json!({ "Type": "OutBoundNAT", "Settings": { "ExceptionList": ["192.0.2.0/24"] } });
    let a = h1.container(NET, json!([onat]));
    assert!(in_range(&a.ip), "{}", a.ip);
    assert_eq!(seen_by(&far, &a, &far_at), host1, "NATed");
    assert_eq!(seen_by(&near, &a, &near_at), a.ip, "exception");

    // An SDNRoute without NextHop goes via host 1's address on the leased
    // subnet, which routes it (its forwarding counter grows), un-NATed.
    let via_host = json!({ "Type": "SDNRoute", "Settings": { "DestinationPrefix": format!("{OUTSIDE}/32"), "NeedEncap": true } });
    let b = h1.container(NET, json!([via_host]));
    assert!(
        ip_in(&b.netns, &["-4", "route"]).contains(&format!("{OUTSIDE} via {host1} dev eth0")),
        "{}",
        ip_in(&b.netns, &["-4", "route"])
    );
    let before = h1.forwarded();
    assert_eq!(seen_by(&far, &b, &far_at), b.ip, "routed, not NATed");
    assert!(h1.forwarded() > before, "host 1 did not route it");

    // OutBoundNAT added by modify: NATed from now on.
    let change = json!({ "ResourceType": "Policy", "RequestType": "Add",
                         "Settings": { "Policies": [{ "Type": "OutBoundNAT", "Settings": {} }] } });
    h1.client()
        .modify(Kind::Endpoints, &b.ep_id, &change)
        .expect("add OutBoundNAT");
    assert_eq!(seen_by(&far, &b, &far_at), host1, "NATed after modify");

    // A next hop off the leased subnet: refused once the lease shows it,
    // the lease given back, nothing left.
    let bad = json!({ "Type": "SDNRoute", "Settings": { "DestinationPrefix": "198.51.100.0/24", "NextHop": "10.99.0.1" } });
    let c = h1.client();
    let e = c
        .create(
            Kind::Endpoints,
            &json!({ "HostComputeNetwork": h1.network(NET), "Policies": [bad] }),
        )
        .expect_err("a next hop off the leased subnet");
    assert_eq!(e.error_code(), Some(0x803B_001E), "{e}");
    assert!(e.to_string().contains("10.99.0.1"), "{e}");
    assert_eq!(c.list(Kind::Endpoints, None).expect("list").len(), 2);
    let released = wait_until(Duration::from_secs(5), || {
        phys.dhcp().log().contains("DHCPRELEASE")
    });
    assert!(released, "server log:\n{}", phys.dhcp().log());

    // A restarted daemon programs them again from the store.
    phys.hosts[0].daemon_mut().restart();
    let h1 = phys.host(0);
    let before = h1.forwarded();
    assert_eq!(seen_by(&far, &a, &far_at), host1, "NATed after restart");
    assert_eq!(
        seen_by(&near, &a, &near_at),
        a.ip,
        "exception after restart"
    );
    assert_eq!(seen_by(&far, &b, &far_at), host1, "b after restart");
    assert!(h1.forwarded() > before);
}
