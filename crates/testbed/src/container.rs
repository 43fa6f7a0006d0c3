//! Containers the tests make through a daemon's API: an HCN namespace with
//! one endpoint attached, and probes run inside it.

use std::path::PathBuf;

use hostnet_api::{Client, Kind};
use serde_json::{json, Value};

use crate::Probe;

/// A container a `hostnetd` made (its namespace is the daemon's; it goes
/// with the daemon).
pub struct Container {
    pub ns_id: String,
    pub ep_id: String,
    pub netns: PathBuf,
    pub ip: String,
}

impl Container {
    /// Create a namespace and an endpoint of the network `network_id`
    /// (with the further fields of `endpoint`, an object such as
    /// `{"Policies": [...]}` or `{"IpConfigurations": [...]}`), and attach it.
    pub fn create(client: &Client, network_id: &str, endpoint: Value) -> Container {
        let mut body = json!({ "HostComputeNetwork": network_id });
        if let (Some(b), Some(extra)) = (body.as_object_mut(), endpoint.as_object()) {
            b.extend(extra.clone());
        }
        let ns = client
            .create(
                Kind::Namespaces,
                &json!({ "SchemaVersion": { "Major": 2, "Minor": 0 } }),
            )
            .expect("create namespace");
        let ep = client
            .create(Kind::Endpoints, &body)
            .unwrap_or_else(|e| panic!("create endpoint: {e}\nrequest: {:.300}", body.to_string()));
        client.attach_endpoint(&id(&ns), &id(&ep)).expect("attach");
        Container {
            ns_id: id(&ns),
            ep_id: id(&ep),
            netns: PathBuf::from(ns["NetNsPath"].as_str().expect("NetNsPath")),
            ip: ep["IpConfigurations"][0]["IpAddress"]
                .as_str()
                .expect("ip")
                .to_string(),
        }
    }

    /// A probe server in the container.
    pub fn serve(&self, args: &[&str]) -> Probe {
        Probe::serve(&self.netns, args)
    }

    /// A one-shot probe client in the container: (success, stdout).
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        Probe::run(&self.netns, args)
    }
}

/// The `ID` of an HCN object.
pub fn id(v: &Value) -> String {
    v["ID"].as_str().expect("ID").to_string()
}
