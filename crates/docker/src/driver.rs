//! Docker's NetworkDriver calls, carried out through hostnetd's API.
//!
//! Join differs from Docker's bridge driver: hostnet creates the
//! container's interface directly inside the sandbox (SandboxKey), as it
//! does for CNI, so the answer names no interface for Docker to move and
//! no gateway (hostnet installed the default route already).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hostnet_api::{ApiError, Client, Kind};
use hostnet_dataplane::linux::{run_in_netns, LinuxDataplane};
use serde_json::{json, Value};

use crate::state::{NetworkRecord, Networks};
use crate::translate::{self, docker_mac, endpoint_name, NetworkPlan, Refusal, PORTMAP};

/// The driver: a hostnetd client and the network records.
pub struct Driver {
    client: Client,
    networks: Networks,
    /// Docker may call concurrently; one call at a time keeps
    /// check-then-create sequences whole.
    serial: Mutex<()>,
}

fn api(what: &str, e: ApiError) -> Refusal {
    format!("{what}: {e}")
}

fn field<'a>(req: &'a Value, key: &str) -> Result<&'a str, Refusal> {
    req.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("the request has no {key}"))
}

fn id(v: &Value) -> String {
    v["ID"].as_str().unwrap_or_default().to_string()
}

impl Driver {
    pub fn new(client: Client, state_dir: PathBuf) -> Self {
        Driver {
            client,
            networks: Networks::new(state_dir.join("networks")),
            serial: Mutex::new(()),
        }
    }

    /// One call by its name (`Plugin.Activate`, `NetworkDriver.Join`, …).
    pub fn call(&self, method: &str, req: &Value) -> Result<Value, Refusal> {
        let _one = self.serial.lock().unwrap_or_else(|p| p.into_inner());
        match method {
            "Plugin.Activate" => Ok(json!({ "Implements": ["NetworkDriver"] })),
            "NetworkDriver.GetCapabilities" => {
                Ok(json!({ "Scope": "local", "ConnectivityScope": "local" }))
            }
            "NetworkDriver.CreateNetwork" => self.create_network(req),
            "NetworkDriver.DeleteNetwork" => self.delete_network(req),
            "NetworkDriver.CreateEndpoint" => self.create_endpoint(req),
            "NetworkDriver.EndpointOperInfo" => self.endpoint_oper_info(req),
            "NetworkDriver.DeleteEndpoint" => self.delete_endpoint(req),
            "NetworkDriver.Join" => self.join(req),
            "NetworkDriver.Leave" => self.leave(req),
            "NetworkDriver.ProgramExternalConnectivity" => self.program_external(req),
            "NetworkDriver.RevokeExternalConnectivity" => self.revoke_external(req),
            // Local scope: nothing to learn from other nodes.
            "NetworkDriver.DiscoverNew" | "NetworkDriver.DiscoverDelete" => Ok(json!({})),
            "NetworkDriver.AllocateNetwork" | "NetworkDriver.FreeNetwork" => Err(format!(
                "{method}: hostnet networks are local-scope: swarm-scope allocation is not supported"
            )),
            other => Err(format!("{other} is not a NetworkDriver call hostnet implements")),
        }
    }

    fn network(&self, req: &Value) -> Result<NetworkRecord, Refusal> {
        let docker_id = field(req, "NetworkID")?;
        self.networks.get(docker_id)?.ok_or_else(|| {
            format!("network {docker_id} is not a hostnet network this plugin created: create it with docker network create -d hostnet")
        })
    }

    fn create_network(&self, req: &Value) -> Result<Value, Refusal> {
        let docker_id = field(req, "NetworkID")?;
        if req["IPv6Data"].as_array().is_some_and(|v| !v.is_empty()) {
            return Err(
                "IPv6 subnets are not supported by hostnet yet: create the network without --ipv6"
                    .into(),
            );
        }
        let ipv4 = req["IPv4Data"].as_array().cloned().unwrap_or_default();
        let record = match translate::network_plan(docker_id, &req["Options"], &ipv4)? {
            NetworkPlan::Create(body) => {
                let net = self
                    .client
                    .create(Kind::Networks, &body)
                    .map_err(|e| api("creating the hostnet network", e))?;
                NetworkRecord {
                    hostnet: id(&net),
                    owned: true,
                }
            }
            NetworkPlan::Existing(hnsid) => {
                let net = self
                    .client
                    .get(Kind::Networks, &hnsid)
                    .map_err(|e| api(&format!("hostnet network {hnsid} (windowsshim.hnsid)"), e))?;
                NetworkRecord {
                    hostnet: id(&net),
                    owned: false,
                }
            }
        };
        if let Err(e) = self.networks.put(docker_id, &record) {
            if record.owned {
                let _ = self.client.delete(Kind::Networks, &record.hostnet);
            }
            return Err(format!("recording the network: {e}"));
        }
        Ok(json!({}))
    }

    fn delete_network(&self, req: &Value) -> Result<Value, Refusal> {
        let docker_id = field(req, "NetworkID")?;
        if let Some(r) = self.networks.get(docker_id)? {
            if r.owned {
                match self.client.delete(Kind::Networks, &r.hostnet) {
                    Err(e) if !e.is_not_found() => {
                        return Err(api("deleting the hostnet network", e))
                    }
                    _ => {}
                }
            }
            self.networks.remove(docker_id)?;
        }
        Ok(json!({}))
    }

    fn find_endpoint(&self, req: &Value) -> Result<Value, Refusal> {
        let endpoint_id = field(req, "EndpointID")?;
        self.client
            .find_by_name(Kind::Endpoints, &endpoint_name(endpoint_id))
            .map_err(|e| api("looking up the endpoint", e))?
            .ok_or_else(|| format!("endpoint {endpoint_id} does not exist in hostnet"))
    }

    fn create_endpoint(&self, req: &Value) -> Result<Value, Refusal> {
        let net = self.network(req)?;
        let endpoint_id = field(req, "EndpointID")?;
        let iface = &req["Interface"];
        let body = translate::endpoint_body(endpoint_id, &net.hostnet, iface, &req["Options"])?;
        let ep = self
            .client
            .create(Kind::Endpoints, &body)
            .map_err(|e| api("creating the endpoint", e))?;
        // Answer only what Docker did not give (it refuses a changed value).
        let mut answer = serde_json::Map::new();
        let given = |k: &str| iface[k].as_str().is_some_and(|s| !s.is_empty());
        if !given("Address") {
            let c = &ep["IpConfigurations"][0];
            if let (Some(ip), Some(len)) = (c["IpAddress"].as_str(), c["PrefixLength"].as_u64()) {
                answer.insert("Address".into(), json!(format!("{ip}/{len}")));
            }
        }
        if !given("MacAddress") {
            if let Some(mac) = ep["MacAddress"].as_str() {
                answer.insert("MacAddress".into(), json!(docker_mac(mac)));
            }
        }
        Ok(json!({ "Interface": answer }))
    }

    fn endpoint_oper_info(&self, req: &Value) -> Result<Value, Refusal> {
        let ep = self.find_endpoint(req)?;
        Ok(json!({ "Value": {
            "hostnet.EndpointID": ep["ID"],
            "hostnet.Network": ep["HostComputeNetwork"],
            "IpAddress": ep["IpConfigurations"][0]["IpAddress"],
            "MacAddress": ep["MacAddress"].as_str().map(docker_mac),
            "State": ep["State"],
            "Policies": ep["Policies"],
        }}))
    }

    fn delete_endpoint(&self, req: &Value) -> Result<Value, Refusal> {
        let name = endpoint_name(field(req, "EndpointID")?);
        for kind in [Kind::Endpoints, Kind::Namespaces] {
            let found = self
                .client
                .find_by_name(kind, &name)
                .map_err(|e| api("looking up the endpoint", e))?;
            if let Some(o) = found {
                match self.client.delete(kind, &id(&o)) {
                    Err(e) if !e.is_not_found() => return Err(api(&format!("deleting {name}"), e)),
                    _ => {}
                }
            }
        }
        Ok(json!({}))
    }

    fn join(&self, req: &Value) -> Result<Value, Refusal> {
        let ep = self.find_endpoint(req)?;
        let sandbox = field(req, "SandboxKey")?;
        let ifname = free_ifname(Path::new(sandbox))?;
        let ns = self
            .client
            .create(
                Kind::Namespaces,
                &json!({ "Name": ep["Name"], "Type": "Host", "NetNsPath": sandbox }),
            )
            .map_err(|e| api("registering the sandbox with hostnetd", e))?;
        if let Err(e) = self.client.attach_endpoint_as(&id(&ns), &id(&ep), &ifname) {
            let _ = self.client.delete(Kind::Namespaces, &id(&ns));
            return Err(api(&format!("attaching the endpoint as {ifname}"), e));
        }
        Ok(json!({ "DisableGatewayService": false }))
    }

    fn leave(&self, req: &Value) -> Result<Value, Refusal> {
        let ep = self.find_endpoint(req)?;
        let ns = self
            .client
            .find_by_name(Kind::Namespaces, ep["Name"].as_str().unwrap_or_default())
            .map_err(|e| api("looking up the sandbox", e))?;
        if let Some(ns) = ns {
            if ep["HostComputeNamespace"].as_str() == Some(&id(&ns)) {
                self.client
                    .detach_endpoint(&id(&ns), &id(&ep))
                    .map_err(|e| api("detaching the endpoint", e))?;
            }
            self.client
                .delete(Kind::Namespaces, &id(&ns))
                .map_err(|e| api("deleting the sandbox's namespace object", e))?;
        }
        Ok(json!({}))
    }

    fn program_external(&self, req: &Value) -> Result<Value, Refusal> {
        let ep = self.find_endpoint(req)?;
        let wanted = translate::port_policies(&req["Options"][PORTMAP])?;
        let have = |p: &Value| {
            ep["Policies"].as_array().into_iter().flatten().any(|h| {
                h["Type"] == "PortMapping"
                    && h["Settings"]["ExternalPort"] == p["Settings"]["ExternalPort"]
                    && h["Settings"]["Protocol"] == p["Settings"]["Protocol"]
            })
        };
        let new: Vec<Value> = wanted.into_iter().filter(|p| !have(p)).collect();
        if !new.is_empty() {
            self.modify_policies(&ep, "Add", new)?;
        }
        Ok(json!({}))
    }

    fn revoke_external(&self, req: &Value) -> Result<Value, Refusal> {
        let ep = self.find_endpoint(req)?;
        let mappings: Vec<Value> = ep["Policies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["Type"] == "PortMapping")
            .cloned()
            .collect();
        if !mappings.is_empty() {
            self.modify_policies(&ep, "Remove", mappings)?;
        }
        Ok(json!({}))
    }

    fn modify_policies(
        &self,
        ep: &Value,
        request: &str,
        policies: Vec<Value>,
    ) -> Result<(), Refusal> {
        let body = json!({
            "ResourceType": "Policy",
            "RequestType": request,
            "Settings": { "Policies": policies },
        });
        self.client
            .modify(Kind::Endpoints, &id(ep), &body)
            .map(drop)
            .map_err(|e| api("changing the endpoint's port mappings", e))
    }
}

/// The first `ethN` not taken in the sandbox (Docker's naming).
fn free_ifname(sandbox: &Path) -> Result<String, Refusal> {
    let taken = |name: String| -> Result<bool, Refusal> {
        let found = run_in_netns(sandbox, || {
            LinuxDataplane::new()
                .and_then(|dp| dp.link_index(&name))
                .map_err(|e| e.to_string())
        })
        .map_err(|e| format!("SandboxKey {}: {e}", sandbox.display()))??;
        Ok(found.is_some())
    };
    for n in 0..100 {
        let name = format!("eth{n}");
        if !taken(name.clone())? {
            return Ok(name);
        }
    }
    Err(format!(
        "sandbox {} has eth0 to eth99 already",
        sandbox.display()
    ))
}
