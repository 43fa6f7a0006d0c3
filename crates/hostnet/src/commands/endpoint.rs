//! `hostnet endpoint create|ls|inspect|rm`.

use super::{object_id, print_created, print_list, remove, resolve, resolve_id};
use crate::addr::{check_mac, parse_ip};
use crate::cli::{EndpointCommand, EndpointCreateArgs, EndpointLsArgs};
use crate::error::CliError;
use crate::inherited;
use crate::output::{emit, Format};
use crate::ports::{describe_port_mappings, PortSpec};
use crate::table::Table;
use crate::view;
use hostnet_api::{Client, Kind};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Runs an `endpoint` subcommand.
pub fn run(client: &Client, command: EndpointCommand) -> Result<u8, CliError> {
    match command {
        EndpointCommand::Create(args) => create(client, &args),
        EndpointCommand::Ls(args) => ls(client, &args),
        EndpointCommand::Inspect(args) => super::endpoint_inspect::run(client, &args),
        EndpointCommand::Rm(args) => remove(client, Kind::Endpoints, &args),
    }
}

/// What an endpoint is created with (from `endpoint create` or `run`).
#[derive(Debug, Clone, Default)]
pub struct EndpointSpec<'a> {
    /// Endpoint name.
    pub name: Option<&'a str>,
    /// Requested IP address.
    pub ip: Option<&'a str>,
    /// Requested IPv6 address (a dual-stack network's endpoint).
    pub ip6: Option<&'a str>,
    /// Requested MAC address.
    pub mac: Option<&'a str>,
    /// `-p` specs.
    pub publish: &'a [String],
    /// Policies from the network's stored options ([`inherited`]), after
    /// the port mappings.
    pub inherited: Vec<Value>,
}

impl EndpointSpec<'_> {
    /// Checks the arguments before anything is created.
    pub fn validate(&self) -> Result<(), String> {
        self.body("").map(drop)
    }

    /// Looks up the network called `name_or_id`, takes the policies its
    /// options give every endpoint, and returns its ID.
    pub fn take_network(&mut self, client: &Client, name_or_id: &str) -> Result<String, CliError> {
        let network = resolve(client, Kind::Networks, name_or_id)?;
        self.inherited = inherited::endpoint_policies(&network)?;
        object_id(Kind::Networks, &network, name_or_id)
    }

    /// The `POST /v2/endpoints` body for an endpoint on `network_id`.
    pub fn body(&self, network_id: &str) -> Result<Value, String> {
        let mut body = json!({
            "HostComputeNetwork": network_id,
            "SchemaVersion": {"Major": 2, "Minor": 0},
        });
        if let Some(name) = self.name {
            body["Name"] = json!(name);
        }
        let mut configs = Vec::new();
        if let Some(ip) = self.ip {
            configs.push(json!({ "IpAddress": parse_ip("--ip", ip)?.to_string() }));
        }
        if let Some(ip6) = self.ip6 {
            match parse_ip("--ip6", ip6)? {
                ip @ std::net::IpAddr::V6(_) => {
                    configs.push(json!({ "IpAddress": ip.to_string() }))
                }
                ip => {
                    return Err(format!(
                        "--ip6 {ip} is not an IPv6 address: give it with --ip"
                    ))
                }
            }
        }
        if !configs.is_empty() {
            body["IpConfigurations"] = json!(configs);
        }
        if let Some(mac) = self.mac {
            body["MacAddress"] = json!(check_mac("--mac", mac)?);
        }
        let mut policies: Vec<Value> = self
            .publish
            .iter()
            .map(|p| p.parse::<PortSpec>().map(|spec| spec.to_policy()))
            .collect::<Result<_, _>>()?;
        policies.extend(self.inherited.iter().cloned());
        if !policies.is_empty() {
            body["Policies"] = Value::Array(policies);
        }
        Ok(body)
    }
}

fn create(client: &Client, args: &EndpointCreateArgs) -> Result<u8, CliError> {
    let mut spec = EndpointSpec {
        name: args.name.as_deref(),
        ip: args.ip.as_deref(),
        ip6: args.ip6.as_deref(),
        mac: args.mac.as_deref(),
        publish: &args.publish,
        inherited: Vec::new(),
    };
    spec.validate()?;
    let network_id = spec.take_network(client, &args.network)?;
    let created = client.create(Kind::Endpoints, &spec.body(&network_id)?)?;
    print_created(Kind::Endpoints, &created)
}

fn ls(client: &Client, args: &EndpointLsArgs) -> Result<u8, CliError> {
    let endpoints = match &args.network {
        None => client.list(Kind::Endpoints, None)?,
        Some(network) => {
            let network_id = resolve_id(client, Kind::Networks, network)?;
            // Filter on the daemon (HCN's key is the v1 name) and here again.
            client
                .list(
                    Kind::Endpoints,
                    Some(&json!({ "VirtualNetwork": network_id })),
                )?
                .into_iter()
                .filter(|e| view::text(e, "HostComputeNetwork").eq_ignore_ascii_case(&network_id))
                .collect()
        }
    };
    match args.ls.format {
        Format::Json => print_list(&endpoints),
        Format::Table => {
            // Network names are a nicety: without them, show the ID.
            let networks = client.list(Kind::Networks, None).unwrap_or_default();
            emit(&table(&endpoints, &network_names(&networks)).render());
        }
    }
    Ok(0)
}

/// Upper-cased network ID → name.
fn network_names(networks: &[Value]) -> HashMap<String, String> {
    networks
        .iter()
        .map(|n| {
            (
                view::id(n).to_ascii_uppercase(),
                view::text(n, "Name").to_string(),
            )
        })
        .collect()
}

/// The `endpoint ls` table.
fn table(endpoints: &[Value], network_names: &HashMap<String, String>) -> Table {
    let mut table = Table::new(&["ID", "NAME", "NETWORK", "IP", "MAC", "NAMESPACE", "PORTS"]);
    for e in endpoints {
        let network = view::text(e, "HostComputeNetwork");
        let network = network_names
            .get(&network.to_ascii_uppercase())
            .filter(|name| !name.is_empty())
            .cloned()
            .unwrap_or_else(|| view::short_id(network));
        table.push(vec![
            view::short_id(view::id(e)),
            view::text(e, "Name").to_string(),
            network,
            view::endpoint_ips(e).join(","),
            view::text(e, "MacAddress").to_string(),
            view::short_id(view::text(e, "HostComputeNamespace")),
            describe_port_mappings(e.get("Policies")).join(", "),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip6_is_a_second_ip_configuration() {
        let spec = EndpointSpec {
            ip: Some("172.20.0.5"),
            ip6: Some("fd00:20::5"),
            ..Default::default()
        };
        assert_eq!(
            spec.body("N1").unwrap()["IpConfigurations"],
            json!([{"IpAddress":"172.20.0.5"}, {"IpAddress":"fd00:20::5"}])
        );
        let only6 = EndpointSpec {
            ip6: Some("fd00:20::5"),
            ..Default::default()
        };
        assert_eq!(
            only6.body("N1").unwrap()["IpConfigurations"],
            json!([{"IpAddress":"fd00:20::5"}])
        );
        let wrong = EndpointSpec {
            ip6: Some("172.20.0.5"),
            ..Default::default()
        };
        assert!(wrong.body("N1").unwrap_err().contains("not an IPv6"));
    }

    #[test]
    fn body() {
        let publish = ["8080:80".to_string(), "127.0.0.1:53:53/udp".to_string()];
        let spec = EndpointSpec {
            name: Some("web"),
            ip: Some("172.20.0.5"),
            ip6: None,
            mac: Some("00-15-5D-52-C0-00"),
            publish: &publish,
            inherited: vec![json!({"Type":"OutBoundNAT","Settings":{}})],
        };
        assert_eq!(
            spec.body("N1").unwrap(),
            json!({
                "Name": "web",
                "HostComputeNetwork": "N1",
                "SchemaVersion": {"Major":2,"Minor":0},
                "IpConfigurations": [{"IpAddress":"172.20.0.5"}],
                "MacAddress": "00-15-5D-52-C0-00",
                "Policies": [
                    {"Type":"PortMapping","Settings":{"Protocol":6,"InternalPort":80,"ExternalPort":8080}},
                    {"Type":"PortMapping","Settings":{"Protocol":17,"InternalPort":53,"ExternalPort":53,"VIP":"127.0.0.1"}},
                    {"Type":"OutBoundNAT","Settings":{}},
                ],
            })
        );
        assert_eq!(
            EndpointSpec::default().body("N1").unwrap(),
            json!({"HostComputeNetwork":"N1","SchemaVersion":{"Major":2,"Minor":0}})
        );
        let bad = ["80".to_string()];
        let spec = EndpointSpec {
            publish: &bad,
            ..Default::default()
        };
        assert!(spec
            .validate()
            .unwrap_err()
            .contains("HOSTPORT:CONTAINERPORT"));
        let spec = EndpointSpec {
            mac: Some("zz"),
            ..Default::default()
        };
        assert!(spec.validate().unwrap_err().contains("invalid --mac"));
    }

    #[test]
    fn ls_table() {
        let endpoints = [
            json!({"ID":"E1B2C3D4-0000-4000-8000-000000000001","Name":"web",
                   "HostComputeNetwork":"a1b2c3d4-0000-4000-8000-000000000001",
                   "HostComputeNamespace":"C1B2C3D4-0000-4000-8000-000000000001",
                   "IpConfigurations":[{"IpAddress":"172.20.0.5","PrefixLength":16}],
                   "MacAddress":"00-15-5D-52-C0-00",
                   "Policies":[{"Type":"PortMapping","Settings":{"Protocol":6,"InternalPort":80,"ExternalPort":8080}}]}),
            json!({"ID":"E2","HostComputeNetwork":"F1B2C3D4-0000-4000-8000-000000000009"}),
        ];
        let names =
            network_names(&[json!({"ID":"A1B2C3D4-0000-4000-8000-000000000001","Name":"nat"})]);
        assert_eq!(
            table(&endpoints, &names).render(),
            "ID             NAME   NETWORK        IP              MAC                 NAMESPACE      PORTS\n\
             E1B2C3D4-000   web    nat            172.20.0.5/16   00-15-5D-52-C0-00   C1B2C3D4-000   0.0.0.0:8080->80/tcp\n\
             E2                    F1B2C3D4-000\n"
        );
    }
}
