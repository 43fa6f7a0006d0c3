//! The `hostnet` CLI on the Overlay driver, against real daemons on the
//! multi-host world ([`PhysicalNet`], tier 2): `network create -d overlay`
//! with docker's `com.docker.network.driver.overlay.vxlanid_list` gives
//! each subnet its VNI, `network inspect` shows them with the host's
//! provider address and DR MAC, and the network carries packets between
//! the hosts. A list that does not match the subnets is refused before
//! anything is made.

use hostnet_api::Kind;
use hostnet_testbed::physical::{Container, Host};
use hostnet_testbed::{require_privileges, PhysicalNet, Probe};
use serde_json::{json, Value};

const VXLAN_IDS: &str = "com.docker.network.driver.overlay.vxlanid_list";

/// What one CLI invocation did: (exit code, stdout, stderr).
fn hostnet(host: &Host, args: &[&str]) -> (i32, String, String) {
    host.daemon().run_cli(args)
}

fn create_args(ids: &str) -> Vec<String> {
    [
        "network",
        "create",
        "-d",
        "overlay",
        "-o",
        &format!("{VXLAN_IDS}={ids}"),
        "--subnet",
        "10.0.1.0/24",
        "--subnet",
        "10.0.2.0/24",
        "ov",
    ]
    .map(String::from)
    .to_vec()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The `Settings` of the first policy of type `t` in `policies`.
fn setting<'a>(policies: &'a Value, t: &str) -> &'a Value {
    &policies
        .as_array()
        .and_then(|l| l.iter().find(|p| p["Type"] == t))
        .unwrap_or_else(|| panic!("no {t} in {policies}"))["Settings"]
}

/// Tell `host` of container `c` on the host at `pa`.
fn remote(host: &Host, c: &Container, of: &Host) {
    let ep = of.client().get(Kind::Endpoints, &c.ep_id).unwrap();
    host.client()
        .create(
            Kind::Endpoints,
            &json!({"HostComputeNetwork": host.network("ov"), "Flags": 1,
                "IpConfigurations": [{"IpAddress": c.ip}], "MacAddress": ep["MacAddress"],
                "Policies": [{"Type": "ProviderAddress", "Settings": {"ProviderAddress": of.addr}}]}),
        )
        .expect("remote endpoint");
}

#[test]
fn cli_overlay_vxlanid_list_gives_each_subnet_its_vni() {
    let test = "cli_overlay_vxlanid_list_gives_each_subnet_its_vni";
    if !require_privileges(test) {
        return;
    }
    let mut phys = PhysicalNet::new("clo", 2);
    phys.start_daemons(&["--no-default-network"]);
    let (h1, h2) = (phys.host(0), phys.host(1));

    // One VNI for two subnets: refused by the CLI, nothing made.
    let (code, out, err) = hostnet(h1, &strs(&create_args("4100")));
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("gives 1 VXLAN IDs for 2 --subnet") && err.contains("0x803B000D"),
        "{err}"
    );
    assert!(h1.client().list(Kind::Networks, None).unwrap().is_empty());

    for h in [h1, h2] {
        let (code, out, err) = hostnet(h, &strs(&create_args("4100,4101")));
        assert_eq!(code, 0, "create: {out} {err}");
    }
    let (code, out, err) = hostnet(h1, &["network", "inspect", "ov"]);
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&out).expect("inspect prints JSON");
    let net = &shown[0];
    let subnets = &net["Ipams"][0]["Subnets"];
    assert_eq!(
        setting(&subnets[0]["Policies"], "VSID")["IsolationId"],
        4100
    );
    assert_eq!(
        setting(&subnets[1]["Policies"], "VSID")["IsolationId"],
        4101
    );
    assert_eq!(
        setting(&net["Policies"], "ProviderAddress")["ProviderAddress"],
        h1.addr.as_str()
    );
    assert_eq!(
        setting(&net["Policies"], "DrMacAddress")["Address"],
        "02-11-C0-00-02-0B",
        "the DR MAC from host 1's PA 192.0.2.11"
    );
    assert_eq!(net["Options"][VXLAN_IDS], "4100,4101");

    // The CLI's network carries packets between the hosts, across subnets.
    let a = h1.container_with(
        "ov",
        json!({"IpConfigurations": [{"IpAddress": "10.0.1.10"}]}),
    );
    let c = h2.container_with(
        "ov",
        json!({"IpConfigurations": [{"IpAddress": "10.0.2.30"}]}),
    );
    remote(h1, &c, h2);
    remote(h2, &a, h1);
    let (ok, said) = Probe::run(&a.netns, &["ping", &c.ip]);
    assert!(ok, "10.0.1.10 -> 10.0.2.30 across hosts: {said}");
}
