//! The `hostnet` CLI on the L2 drivers, against real daemons on the
//! multi-host world ([`PhysicalNet`], tier 2): docker's windowsshim options
//! on `network create` are kept with the network (`Options`), shown by
//! `network inspect`, and `run` / `endpoint create` act on them as docker
//! does on Windows: `enable_outboundnat` gives every endpoint an
//! `OutBoundNAT` policy with the `outboundnat_exceptions`. Options that do
//! not apply to a driver, and malformed exceptions, are refused with the
//! HCN code before anything is made.

use std::path::Path;

use hostnet_api::Kind;
use hostnet_testbed::inspect::ip_out;
use hostnet_testbed::physical::{Host, GATEWAY, OUTSIDE};
use hostnet_testbed::{require_privileges, PhysicalNet, Probe};
use serde_json::{json, Value};

/// A container `hostnet run` makes on host 1, and one made by `endpoint
/// create`; D is a container on host 2, in the exceptions.
const RUN_IP: &str = "192.0.2.52";
const EP_IP: &str = "192.0.2.53";
const D: &str = "192.0.2.60";
const PREFIX: &str = "com.docker.network.windowsshim.";

/// What one CLI invocation did: (exit code, stdout, stderr).
fn hostnet(host: &Host, args: &[&str]) -> (i32, String, String) {
    host.daemon().run_cli(args)
}

/// The CLI must succeed; its stdout.
fn ok(host: &Host, args: &[&str]) -> String {
    let (code, out, err) = hostnet(host, args);
    assert_eq!(code, 0, "hostnet {args:?}: {out} {err}");
    out
}

/// The CLI must fail with one `hostnet:` line mentioning each of `mentions`.
fn fails(host: &Host, args: &[&str], mentions: &[&str]) {
    let (code, out, err) = hostnet(host, args);
    assert_ne!(code, 0, "hostnet {args:?} succeeded: {out}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("hostnet: "),
        "hostnet {args:?}: {err}"
    );
    for m in mentions {
        assert!(lines[0].contains(m), "hostnet {args:?}: no {m:?} in {err}");
    }
}

/// The host's links, its IPv4 addresses, and its daemon's networks: what
/// a refused create must leave as it was.
fn state(host: &Host) -> (Vec<String>, String, Vec<Value>) {
    let links = ip_out(host.path(), &["-br", "link"])
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    (
        links,
        ip_out(host.path(), &["-4", "-br", "addr"]),
        host.client().list(Kind::Networks, None).expect("list"),
    )
}

/// The address a probe server saw its first peer as.
fn peer(srv: &Probe) -> String {
    let seen = srv.next_line().unwrap_or_default();
    seen.strip_prefix("peer ")
        .and_then(|p| p.rsplit_once(':'))
        .map(|(a, _)| a.to_string())
        .unwrap_or_else(|| panic!("the server said {seen:?}"))
}

/// `hostnet run --network l2 --ip RUN_IP -- hostnet-probe tcp-get TO`;
/// the address the server at `to` (its `srv`) saw.
fn run_tcp_get(host: &Host, srv: &Probe, to: &str) -> String {
    let probe = Probe::binary();
    let probe = probe.to_str().expect("probe path");
    ok(
        host,
        &[
            "run",
            "--network",
            "l2",
            "--ip",
            RUN_IP,
            "--",
            probe,
            "tcp-get",
            to,
        ],
    );
    peer(srv)
}

/// The `l2 create` command of the issue, with `options` as `-o` flags.
fn create_args<'a>(driver: &'a str, options: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["network", "create", "-d", driver];
    for o in options {
        args.extend(["-o", o]);
    }
    args.extend(["--subnet", "192.0.2.0/24", "--gateway", GATEWAY, "l2"]);
    args
}

#[test]
fn cli_l2bridge_outbound_nat_from_network_options() {
    let test = "cli_l2bridge_outbound_nat_from_network_options";
    if !require_privileges(test) {
        return;
    }
    let mut phys = PhysicalNet::new("cl2", 2);
    phys.start_daemons(&["--no-default-network"]);
    let (h1, h2) = (phys.host(0), phys.host(1));
    let before = state(h1);

    // Refused before anything is made: options of other drivers, by name,
    // and malformed exceptions, with the code hostnetd gives the policy.
    let outbound = [
        "com.docker.network.windowsshim.interface=eth0",
        "enable_outboundnat=true",
        "outboundnat_exceptions=192.0.2.0/24",
    ];
    fails(
        h1,
        &create_args("nat", &outbound[1..]),
        &["enable_outboundnat", "nat networks", "0x803B000E"],
    );
    fails(
        h1,
        &create_args("Transparent", &outbound),
        &["enable_outboundnat", "transparent networks", "0x803B000E"],
    );
    fails(
        h1,
        &create_args("NAT", &outbound[..1]),
        &["interface does not apply to nat networks", "0x803B000E"],
    );
    for bad in [
        "outboundnat_exceptions=192.0.2.0/33",
        "outboundnat_exceptions=192.0.2.0/24,gateway",
        "outboundnat_exceptions=fd00::/8",
    ] {
        fails(
            h1,
            &create_args("l2bridge", &[outbound[0], outbound[1], bad]),
            &["outboundnat_exceptions", "0x803B000D"],
        );
    }
    fails(
        h1,
        &create_args("l2bridge", &[outbound[0], outbound[2]]),
        &["enable_outboundnat=true", "0x803B000D"],
    );
    assert_eq!(state(h1), before, "a refused create left something");

    // The issue's command; -d is case-insensitive.
    let net = ok(h1, &create_args("L2BRIDGE", &outbound));
    let shown: Value = serde_json::from_str(&ok(h1, &["network", "inspect", "l2"])).expect("JSON");
    assert_eq!(shown[0]["ID"], Value::from(net.trim()));
    assert_eq!(shown[0]["Type"], "L2Bridge");
    assert_eq!(
        shown[0]["Options"],
        json!({
            format!("{PREFIX}interface"): "eth0",
            format!("{PREFIX}enable_outboundnat"): "true",
            format!("{PREFIX}outboundnat_exceptions"): "192.0.2.0/24",
        })
    );
    let table = ok(h1, &["network", "inspect", "l2", "--format", "table"]);
    assert!(
        table.contains(&format!("\"{PREFIX}enable_outboundnat\":\"true\"")),
        "{table}"
    );

    // D, on host 2, is in the exceptions.
    h2.client()
        .create(
            Kind::Networks,
            &json!({ "Name": "l2", "Type": "L2Bridge",
                "Ipams": [{ "Subnets": [{ "IpAddressPrefix": "192.0.2.0/24",
                    "Routes": [{ "NextHop": GATEWAY, "DestinationPrefix": "0.0.0.0/0" }] }] }],
                "Policies": [{ "Type": "NetAdapterName", "Settings": { "NetworkAdapterName": "eth0" } }] }),
        )
        .expect("host 2's network");
    let d = h2.container_with("l2", json!({ "IpConfigurations": [{ "IpAddress": D }] }));

    // hostnet run: the outside sees the host; D sees the container.
    let outside = Probe::serve(
        phys.outside.path(),
        &["tcp-serve", &format!("{OUTSIDE}:7000")],
    );
    assert_eq!(
        run_tcp_get(h1, &outside, &format!("{OUTSIDE}:7000")),
        h1.addr,
        "not NATed to the host's address"
    );
    let at_d = d.serve(&["tcp-serve", "0.0.0.0:80"]);
    assert_eq!(
        run_tcp_get(h1, &at_d, &format!("{D}:80")),
        RUN_IP,
        "an exception was NATed"
    );
    assert!(
        h1.client().list(Kind::Endpoints, None).unwrap().is_empty(),
        "run left its endpoint"
    );

    // endpoint create + namespace attach, after a restart of the daemon:
    // the options live in the daemon's store.
    phys.hosts[0].daemon_mut().restart();
    let h1 = phys.host(0);
    ok(
        h1,
        &[
            "endpoint",
            "create",
            "--network",
            "l2",
            "--ip",
            EP_IP,
            "--name",
            "e1",
        ],
    );
    let ep: Value = serde_json::from_str(&ok(h1, &["endpoint", "inspect", "e1"])).expect("JSON");
    assert_eq!(
        ep[0]["Policies"],
        json!([{ "Type": "OutBoundNAT", "Settings": { "Exceptions": ["192.0.2.0/24"] } }])
    );
    ok(h1, &["namespace", "create", "--name", "c1"]);
    ok(h1, &["namespace", "attach", "c1", "e1"]);
    let ns = h1
        .client()
        .find_by_name(Kind::Namespaces, "c1")
        .expect("list")
        .expect("c1");
    let netns = Path::new(ns["NetNsPath"].as_str().expect("NetNsPath")).to_path_buf();
    let outside = Probe::serve(
        phys.outside.path(),
        &["tcp-serve", &format!("{OUTSIDE}:7001")],
    );
    let (reached, said) = Probe::run(&netns, &["tcp-get", &format!("{OUTSIDE}:7001")]);
    assert!(reached, "{said}");
    assert_eq!(peer(&outside), h1.addr);
    let at_d = d.serve(&["tcp-serve", "0.0.0.0:81"]);
    let (reached, said) = Probe::run(&netns, &["tcp-get", &format!("{D}:81")]);
    assert!(reached, "{said}");
    assert_eq!(peer(&at_d), EP_IP);

    ok(h1, &["namespace", "detach", "c1", "e1"]);
    ok(h1, &["endpoint", "rm", "e1"]);
    ok(h1, &["namespace", "rm", "c1"]);
    ok(h1, &["network", "rm", "l2"]);
    assert_eq!(state(h1), before, "network rm did not give eth0 back");
}

#[test]
fn cli_l2tunnel_outbound_nat_from_network_options() {
    let test = "cli_l2tunnel_outbound_nat_from_network_options";
    if !require_privileges(test) {
        return;
    }
    let mut phys = PhysicalNet::new("ct2", 1);
    phys.start_daemons(&["--no-default-network"]);
    let h1 = phys.host(0);
    ok(
        h1,
        &create_args(
            "l2tunnel",
            &[
                "com.docker.network.windowsshim.interface=eth0",
                "com.docker.network.windowsshim.enable_outboundnat=1",
            ],
        ),
    );
    let outside = Probe::serve(
        phys.outside.path(),
        &["tcp-serve", &format!("{OUTSIDE}:7000")],
    );
    assert_eq!(
        run_tcp_get(h1, &outside, &format!("{OUTSIDE}:7000")),
        h1.addr,
        "not NATed to the host's address"
    );
}
