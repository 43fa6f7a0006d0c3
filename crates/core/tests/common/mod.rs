//! The tier-0 fixture the core's tests share: the service over the
//! recording dataplane and an in-memory store, with its default NAT
//! network on 10.88.0.0/16.

#![allow(dead_code)]

use std::borrow::Borrow;
use std::sync::Arc;

use hostnet_core::{Config, Kind, Service};
use hostnet_dataplane::Recorder;
use hostnet_store::MemoryStore;
use serde_json::{json, Value};

pub struct Fixture {
    pub svc: Service,
    pub dp: Arc<Recorder>,
    pub store: Arc<MemoryStore>,
}

pub fn config() -> Config {
    Config {
        netns_dir: std::env::temp_dir().join("hostnet-core-test-netns-never-created"),
        default_network: true,
        default_subnet: Some("10.88.0.0/16".parse().unwrap()),
        mtu: 1500,
    }
}

/// The service started on `store`: give the same store again to restart.
pub fn start(store: Arc<MemoryStore>) -> Fixture {
    let dp = Arc::new(Recorder::new());
    let svc = Service::start(config(), Box::new(store.clone()), Box::new(dp.clone())).unwrap();
    Fixture { svc, dp, store }
}

/// The service on a store of its own.
pub fn fresh() -> Fixture {
    start(Arc::new(MemoryStore::new()))
}

/// A request body.
pub fn body(v: impl Borrow<Value>) -> Vec<u8> {
    serde_json::to_vec(v.borrow()).unwrap()
}

impl Fixture {
    /// The default NAT network's ID.
    pub fn nat(&self) -> String {
        self.svc.list(Kind::Network, None).unwrap()[0]["ID"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// An endpoint with `policies`, attached to a new namespace when `attach`.
    pub fn nat_endpoint(&self, policies: Value, attach: bool) -> (String, String) {
        let ep = self
            .svc
            .create(
                Kind::Endpoint,
                &body(json!({ "HostComputeNetwork": self.nat(), "Policies": policies })),
            )
            .unwrap();
        let id = ep["ID"].as_str().unwrap().to_string();
        let ip = ep["IpConfigurations"][0]["IpAddress"]
            .as_str()
            .unwrap()
            .to_string();
        if attach {
            let ns = self.svc.create(Kind::Namespace, b"{}").unwrap();
            let req = json!({ "ResourceType": "Endpoint", "RequestType": "Add", "Settings": { "EndpointId": id } });
            self.svc
                .modify(Kind::Namespace, ns["ID"].as_str().unwrap(), &body(req))
                .unwrap();
        }
        (id, ip)
    }

    /// An outbound TCP packet to `dst`:80 traced through endpoint `ep`.
    pub fn trace(&self, ep: &str, dst: &str) -> Value {
        let req =
            json!({ "Direction": "Out", "Protocol": "tcp", "Destination": format!("{dst}:80") });
        self.svc.trace_endpoint(ep, &body(req)).unwrap()
    }
}

/// A link of the host for the recording dataplane to report
/// (`Recorder::set_adapter`): `name` holding the one address `cidr`.
pub fn adapter(name: &str, index: u32, cidr: &str) -> hostnet_dataplane::Adapter {
    hostnet_dataplane::Adapter {
        name: name.into(),
        index,
        mac: [2, 0, 0, 0, 0x11, index as u8],
        mtu: 1500,
        addresses: vec![cidr.parse().unwrap()],
        routes: Vec::new(),
        master: None,
        up: true,
    }
}
