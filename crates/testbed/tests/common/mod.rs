//! The world of the NAT tests: a host namespace running hostnetd, joined by
//! an uplink to an "outside" namespace that stands for the internet.
//!
//! ```text
//!  outside (198.51.100.1, 203.0.113.1)  --up0--  host (198.51.100.2) [hostnetd]
//!                                                  |  bridge per network
//!                                                  containers (10.88.0.0/16 ...)
//! ```
#![allow(dead_code)]

use hostnet_api::{ApiError, Client, Kind};
pub use hostnet_testbed::{id, Container};
use hostnet_testbed::{require_privileges, Daemon, Netns, Uplink};
use serde_json::{json, Value};

#[allow(unused_imports)] // each test binary uses a different subset
pub use hostnet_testbed::{HOST, HOST6, INTERNET, INTERNET6, OUTSIDE, OUTSIDE6};
pub const SUBNET: &str = "10.88.0.0/16";

pub struct World {
    // Drop order: the daemon (and its namespaces) before the hosts.
    pub daemon: Daemon,
    pub host: Netns,
    pub outside: Netns,
}

impl World {
    /// None (after printing `skipped:`) when privileges are missing.
    pub fn new(test: &str) -> Option<World> {
        Self::with_uplink(test, false, &[])
    }

    /// [`World::new`] whose hostnetd hooks devices with a base chain per
    /// device whatever the kernel allows: the design of kernels before
    /// 6.16, kept tested on kernels that have the other.
    pub fn with_chain_per_device(test: &str) -> Option<World> {
        Self::with_uplink(test, false, &["--hook-design", "chain-per-device"])
    }

    /// [`World::new`] whose uplink carries IPv6 too (`HOST6`, `OUTSIDE6`,
    /// `INTERNET6`), for dual-stack networks.
    pub fn dual_stack(test: &str) -> Option<World> {
        Self::with_uplink(test, true, &[])
    }

    fn with_uplink(test: &str, ipv6: bool, daemon_args: &[&str]) -> Option<World> {
        if !require_privileges(test) {
            return None;
        }
        let uplink = Uplink::new("");
        if ipv6 {
            uplink.add_ipv6();
        }
        let Uplink { host, outside } = uplink;
        let mut args = vec!["--default-subnet", SUBNET];
        args.extend_from_slice(daemon_args);
        let daemon = Daemon::start(host.path(), &args);
        Some(World {
            daemon,
            host,
            outside,
        })
    }

    pub fn client(&self) -> Client {
        self.daemon.client()
    }

    /// ID of a network by name.
    pub fn network(&self, name: &str) -> String {
        let n = self
            .client()
            .find_by_name(Kind::Networks, name)
            .expect("list networks")
            .unwrap_or_else(|| panic!("no network {name}"));
        id(&n)
    }

    /// A container: a namespace with one endpoint of `network` attached,
    /// with the given endpoint policies.
    pub fn container(&self, network: &str, policies: Value) -> Container {
        Container::create(
            &self.client(),
            &self.network(network),
            json!({ "Policies": policies }),
        )
    }

    /// The elements of one set or map (`kind` is "set" or "map") of a
    /// hostnet table, as the kernel lists them; with `kind` "chain", the
    /// devices hooked on a netdev rules chain, as `devices = { … }` (each
    /// has a base chain of its own going to it: `hostnet_nft::hook`).
    /// `family` may name the table after a space ("netdev
    /// hostnet_egress"); the default is `hostnet`.
    pub fn nft_elements(&self, family: &str, kind: &str, name: &str) -> String {
        let (family, table) = family.split_once(' ').unwrap_or((family, "hostnet"));
        if kind == "chain" {
            let out = self.host.output("nft", &["list", "table", family, table]);
            let devices = hooked_devices(&String::from_utf8_lossy(&out.stdout), name);
            return match devices.is_empty() {
                true => String::new(),
                false => format!("devices = {{ {} }}", devices.join(", ")),
            };
        }
        let out = self
            .host
            .output("nft", &["list", kind, family, table, name]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip_while(|l| !l.contains("elements") && !l.contains("devices ="))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Names of hostnet's links in the host namespace.
    pub fn links(&self) -> Vec<String> {
        let out = self.host.output("ip", &["-o", "link", "show"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .filter(|n| n.starts_with("hn"))
            .collect()
    }
}

/// The devices (quoted, as nft lists them) whose base chains in `table`
/// (`nft list table` text) are named for the rules chain `rules`: a chain
/// per device (`device "x"`) or one listing them (`devices = { "x", y }`,
/// Linux 6.16+; `hostnet_nft::hook`), sorted.
pub fn hooked_devices(table: &str, rules: &str) -> Vec<String> {
    let prefix = format!("chain {rules}/");
    let mut devices = Vec::new();
    let mut inside = false;
    for line in table.lines().map(str::trim) {
        if line.starts_with("chain ") {
            inside = line.starts_with(&prefix);
        } else if let (true, Some((_, rest))) = (inside, line.split_once(" devices = { ")) {
            let list = rest.split(" }").next().unwrap_or_default();
            devices.extend(list.split(", ").map(|d| {
                // nft quotes only the names that need it.
                let bare = d.trim_matches('"');
                format!("\"{bare}\"")
            }));
            inside = false;
        } else if let (true, Some((_, rest))) = (inside, line.split_once(" device ")) {
            devices.extend(rest.split(' ').next().map(str::to_string));
            inside = false;
        }
    }
    devices.sort();
    devices
}

pub fn port_mapping(proto: u32, internal: u16, external: u16) -> Value {
    json!({ "Type": "PortMapping", "Settings": { "Protocol": proto, "InternalPort": internal, "ExternalPort": external } })
}

/// The HCN error code of a failed call.
pub fn code(r: Result<impl std::fmt::Debug, ApiError>) -> u32 {
    match r {
        Err(e) => e
            .error_code()
            .unwrap_or_else(|| panic!("not an HCN error: {e}")),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// Everything hostnet has made, as the API and the kernel show it: a
/// refused request must leave all of it as it was.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub networks: Vec<Value>,
    pub endpoints: Vec<Value>,
    pub namespaces: Vec<Value>,
    /// hostnet's links in the host namespace.
    pub links: Vec<String>,
    /// (set or map, its elements sorted) for each of hostnet's sets and maps.
    pub nft: Vec<(&'static str, Vec<String>)>,
}

/// The sets and maps a snapshot reads: (family, "set" or "map", name);
/// "chain": the devices of a netdev chain (endpoint ports).
pub const NFT_SETS: [(&str, &str, &str); 9] = [
    ("inet", "map", "ports4"),
    ("inet", "map", "vip_ports4"),
    ("inet", "set", "nat_sources4"),
    ("inet", "map", "ports6"),
    ("inet", "map", "vip_ports6"),
    ("inet", "set", "nat_sources6"),
    ("inet", "set", "nat_bridges"),
    ("netdev hostnet_egress", "chain", "nat_endpoint_inbound"),
    ("netdev hostnet_egress", "chain", "endpoint_inbound"),
];

impl World {
    /// The objects, links and nft elements hostnet has now.
    pub fn snapshot(&self) -> Snapshot {
        let c = self.client();
        let list = |kind| c.list(kind, None).expect("list");
        Snapshot {
            networks: list(Kind::Networks),
            endpoints: list(Kind::Endpoints),
            namespaces: list(Kind::Namespaces),
            links: self.links(),
            nft: NFT_SETS
                .iter()
                .map(|(family, kind, name)| (*name, self.elements(family, kind, name)))
                .collect(),
        }
    }

    /// The elements of one of hostnet's sets or maps, one string each,
    /// sorted (the kernel's listing order is not the insertion order).
    pub fn elements(&self, family: &str, kind: &str, name: &str) -> Vec<String> {
        let text = self.nft_elements(family, kind, name);
        let inside = text
            .split_once('{')
            .map(|(_, rest)| rest.split('}').next().unwrap_or_default())
            .unwrap_or_default();
        let mut out: Vec<String> = inside
            .split(',')
            .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|e| !e.is_empty())
            .collect();
        out.sort();
        out
    }

    /// One raw API request: (HTTP status, body as JSON or `Null`).
    pub fn raw(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let r = self
            .client()
            .request(method, path, body.map(str::as_bytes))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        (r.status, v)
    }
}
