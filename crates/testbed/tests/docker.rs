//! Docker's remote network driver protocol, spoken over HTTP on the plugin
//! socket as a Docker engine speaks it, against a real hostnetd: the calls
//! `docker network create`, `docker run -p`, `docker stop`, `docker rm`
//! and `docker network rm` make, in their order, with packets through the
//! result.

mod common;

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;
use hostnet_api::{Client, Kind};
use hostnet_testbed::{unique, wait_until, workspace_binary, Netns, Probe};
use serde_json::{json, Value};

const NET_ID: &str = "3fa1c0de99887766554433221100aabbccddeeff00112233445566778899aabb";
const EP_ID: &str = "7e57e57e57e57e57e57e57e57e57e57e57e57e57e57e57e57e57e57e57e57e5";

/// `hostnet-docker` in the host namespace; killed on drop.
struct Plugin {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Plugin {
    fn start(w: &World) -> Plugin {
        let dir = std::env::temp_dir().join(unique("docker"));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("plugins/hostnet.sock");
        let child = w
            .host
            .command(workspace_binary("hostnet-docker"))
            .arg("--socket")
            .arg(&socket)
            .arg("--hostnetd")
            .arg(&w.daemon.socket)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start hostnet-docker");
        let p = Plugin { child, dir, socket };
        let up = wait_until(Duration::from_secs(10), || {
            p.socket.exists() && p.try_call("Plugin.Activate", json!({})).is_some()
        });
        assert!(up, "hostnet-docker did not start");
        p
    }

    fn try_call(&self, method: &str, body: Value) -> Option<(u16, Value)> {
        let raw = body.to_string();
        let r = Client::new(&self.socket)
            .request("POST", &format!("/{method}"), Some(raw.as_bytes()))
            .ok()?;
        Some((
            r.status,
            serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        ))
    }

    /// A call Docker makes; the answer must be 200 without `Err`.
    fn ok(&self, method: &str, body: Value) -> Value {
        let (status, v) = self.try_call(method, body).expect("plugin socket");
        assert!(
            status == 200 && v.get("Err").is_none(),
            "{method}: {status} {v}"
        );
        v
    }

    /// A call that must be refused with a message mentioning `mention`.
    fn refused(&self, method: &str, body: Value, mention: &str) {
        let (status, v) = self.try_call(method, body).expect("plugin socket");
        let err = v["Err"].as_str().unwrap_or_default();
        assert!(
            status != 200 && err.contains(mention),
            "{method}: {status} {v}"
        );
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_docker_engine_drives_a_hostnet_network() {
    let Some(w) = World::new("a_docker_engine_drives_a_hostnet_network") else {
        return;
    };
    let plugin = Plugin::start(&w);
    assert_eq!(
        plugin.ok("Plugin.Activate", json!({})),
        json!({"Implements": ["NetworkDriver"]})
    );
    assert_eq!(
        plugin.ok("NetworkDriver.GetCapabilities", json!({})),
        json!({"Scope": "local", "ConnectivityScope": "local"})
    );

    // docker network create -d hostnet --subnet 10.93.0.0/24 --gateway 10.93.0.1
    //   -o com.docker.network.windowsshim.networkname=dockerweb
    //   -o com.docker.network.windowsshim.dnsservers=10.0.0.53 dockerweb
    plugin.ok(
        "NetworkDriver.CreateNetwork",
        json!({"NetworkID": NET_ID,
            "Options": {"com.docker.network.enable_ipv6": false, "com.docker.network.generic": {
                "com.docker.network.windowsshim.networkname": "dockerweb",
                "com.docker.network.windowsshim.dnsservers": "10.0.0.53"}},
            "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": "10.93.0.0/24", "Gateway": "10.93.0.1/24", "AuxAddresses": {}}],
            "IPv6Data": []}),
    );
    let c = w.client();
    let net = c
        .find_by_name(Kind::Networks, "dockerweb")
        .unwrap()
        .expect("the hostnet network");
    assert_eq!(net["Type"], "NAT");
    assert_eq!(net["Dns"]["ServerList"], json!(["10.0.0.53"]));
    assert_eq!(
        net["Ipams"][0]["Subnets"][0]["IpAddressPrefix"],
        "10.93.0.0/24"
    );

    // docker run --network dockerweb -p 8095:80 …: Docker's IPAM gave the address.
    let created = plugin.ok(
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID,
            "Interface": {"Address": "10.93.0.2/24", "AddressIPv6": "", "MacAddress": ""},
            "Options": {"com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}],
                "com.docker.network.portmap": [{"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8095, "HostPortEnd": 8095}]}}),
    );
    let mac = created["Interface"]["MacAddress"]
        .as_str()
        .expect("the MAC hostnet chose")
        .to_string();
    assert!(created["Interface"].get("Address").is_none(), "{created}");
    let sandbox = Netns::new(&unique("dksb"));
    let joined = plugin.ok(
        "NetworkDriver.Join",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "SandboxKey": sandbox.path(), "Options": {}}),
    );
    assert!(joined.get("InterfaceName").is_none(), "{joined}");
    plugin.ok(
        "NetworkDriver.ProgramExternalConnectivity",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "Options": {
            "com.docker.network.portmap": [{"Proto": 6, "IP": "10.93.0.2", "Port": 80, "HostIP": "", "HostPort": 8095, "HostPortEnd": 8095}]}}),
    );
    let info = plugin.ok(
        "NetworkDriver.EndpointOperInfo",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID}),
    );
    assert_eq!(info["Value"]["IpAddress"], "10.93.0.2");
    assert_eq!(info["Value"]["MacAddress"], mac);

    // The sandbox has eth0 with Docker's address and hostnet's MAC; it
    // reaches the outside and serves the published port.
    let link = sandbox.output("ip", &["-o", "addr", "show", "dev", "eth0"]);
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(link.contains("10.93.0.2/24"), "{link}");
    let shown = sandbox.output("ip", &["-o", "link", "show", "dev", "eth0"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains(&mac));
    let _outside = Probe::serve(
        w.outside.path(),
        &["tcp-serve", &format!("{INTERNET}:7000")],
    );
    let (reached, said) = Probe::run(sandbox.path(), &["tcp-get", &format!("{INTERNET}:7000")]);
    assert!(
        reached && said.starts_with(&format!("peer {HOST}:")),
        "{said}"
    );
    let _server = Probe::serve(sandbox.path(), &["tcp-serve", "0.0.0.0:80"]);
    let (reached, said) = Probe::run(w.outside.path(), &["tcp-get", &format!("{HOST}:8095")]);
    assert!(
        reached && said.starts_with(&format!("peer {OUTSIDE}:")),
        "{said}"
    );

    // docker stop: the port goes, then the interface.
    plugin.ok(
        "NetworkDriver.RevokeExternalConnectivity",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID}),
    );
    let (reached, _) = Probe::run(w.outside.path(), &["tcp-get", &format!("{HOST}:8095")]);
    assert!(
        !reached,
        "the port is still published after RevokeExternalConnectivity"
    );
    plugin.ok(
        "NetworkDriver.Leave",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID}),
    );
    let gone = sandbox.output("ip", &["-o", "link", "show", "dev", "eth0"]);
    assert!(
        gone.stdout.is_empty(),
        "eth0 is still in the sandbox after Leave"
    );

    // docker rm, docker network rm: nothing left.
    plugin.ok(
        "NetworkDriver.DeleteEndpoint",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID}),
    );
    plugin.ok(
        "NetworkDriver.DeleteEndpoint",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID}),
    );
    plugin.ok("NetworkDriver.DeleteNetwork", json!({"NetworkID": NET_ID}));
    assert!(c
        .find_by_name(Kind::Networks, "dockerweb")
        .unwrap()
        .is_none());
    assert!(c.list(Kind::Endpoints, None).unwrap().is_empty());
    assert!(c.list(Kind::Namespaces, None).unwrap().is_empty());
    assert!(
        w.links().iter().all(|l| !l.starts_with("hnve")),
        "{:?}",
        w.links()
    );
    assert!(w.elements("inet", "map", "ports4").is_empty());
}

#[test]
fn docker_requests_hostnet_cannot_honour_are_refused_by_name() {
    let Some(w) = World::new("docker_requests_hostnet_cannot_honour_are_refused_by_name") else {
        return;
    };
    let plugin = Plugin::start(&w);
    let before = w.snapshot();
    let create = |opts: Value| {
        json!({"NetworkID": NET_ID, "Options": {"com.docker.network.generic": opts},
            "IPv4Data": [{"Pool": "10.94.0.0/24", "Gateway": "10.94.0.1/24"}], "IPv6Data": []})
    };
    plugin.refused(
        "NetworkDriver.CreateNetwork",
        create(json!({"type": "vxlan"})),
        "vxlan",
    );
    plugin.refused(
        "NetworkDriver.CreateNetwork",
        create(json!({"com.docker.network.windowsshim.enable_outboundnat": "true"})),
        "enable_outboundnat",
    );
    plugin.refused(
        "NetworkDriver.CreateNetwork",
        create(
            json!({"com.docker.network.windowsshim.hnsid": "0A0B0C0D-0000-4000-8000-00000000DEAD"}),
        ),
        "0A0B0C0D-0000-4000-8000-00000000DEAD",
    );
    let mut v6 = create(json!({}));
    v6["IPv6Data"] = json!([{"Pool": "fd00::/64"}]);
    plugin.refused("NetworkDriver.CreateNetwork", v6, "IPv6");
    plugin.refused(
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": "ffff", "EndpointID": EP_ID, "Interface": {}}),
        "not a hostnet network",
    );
    plugin.refused("NetworkDriver.AllocateNetwork", json!({}), "local-scope");
    plugin.refused("NetworkDriver.Bogus", json!({}), "NetworkDriver.Bogus");
    assert_eq!(w.snapshot(), before, "a refused call changed state");

    // An existing hostnet network by ID (windowsshim.hnsid) is used, and
    // left alone by DeleteNetwork.
    let nat = w.network("nat");
    plugin.ok(
        "NetworkDriver.CreateNetwork",
        create(json!({"com.docker.network.windowsshim.hnsid": nat})),
    );
    plugin.refused(
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "Interface": {},
            "Options": {"com.docker.network.portmap": [{"Proto": 6, "Port": 80, "HostPort": 8000, "HostPortEnd": 8010}]}}),
        "ranges",
    );
    plugin.ok("NetworkDriver.DeleteNetwork", json!({"NetworkID": NET_ID}));
    assert_eq!(w.snapshot(), before);
}
