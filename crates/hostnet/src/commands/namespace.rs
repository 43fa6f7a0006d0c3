//! `hostnet namespace create|ls|inspect|rm|attach|detach`.

use super::{inspect, print_created, print_list, remove, resolve_id};
use crate::cli::NamespaceCommand;
use crate::error::CliError;
use crate::output::{emit, Format};
use crate::table::Table;
use crate::view;
use hostnet_api::{Client, Kind};
use serde_json::{json, Value};

/// Runs a `namespace` subcommand.
pub fn run(client: &Client, command: NamespaceCommand) -> Result<u8, CliError> {
    match command {
        NamespaceCommand::Create { name } => {
            let created = client.create(Kind::Namespaces, &namespace_body(name.as_deref()))?;
            print_created(Kind::Namespaces, &created)
        }
        NamespaceCommand::Ls(args) => {
            let namespaces = client.list(Kind::Namespaces, None)?;
            match args.format {
                Format::Json => print_list(&namespaces),
                Format::Table => emit(&table(&namespaces).render()),
            }
            Ok(0)
        }
        NamespaceCommand::Inspect(args) => inspect(client, Kind::Namespaces, &args),
        NamespaceCommand::Rm(args) => remove(client, Kind::Namespaces, &args),
        NamespaceCommand::Attach {
            namespace,
            endpoint,
        } => {
            let (ns, ep) = both_ids(client, &namespace, &endpoint)?;
            client.attach_endpoint(&ns, &ep)?;
            Ok(0)
        }
        NamespaceCommand::Detach {
            namespace,
            endpoint,
        } => {
            let (ns, ep) = both_ids(client, &namespace, &endpoint)?;
            client.detach_endpoint(&ns, &ep)?;
            Ok(0)
        }
    }
}

fn both_ids(
    client: &Client,
    namespace: &str,
    endpoint: &str,
) -> Result<(String, String), CliError> {
    Ok((
        resolve_id(client, Kind::Namespaces, namespace)?,
        resolve_id(client, Kind::Endpoints, endpoint)?,
    ))
}

/// The `POST /v2/namespaces` body: a host namespace.
pub fn namespace_body(name: Option<&str>) -> Value {
    let mut body = json!({"Type": "Host", "SchemaVersion": {"Major": 2, "Minor": 0}});
    if let Some(name) = name {
        body["Name"] = json!(name);
    }
    body
}

/// The `namespace ls` table.
fn table(namespaces: &[Value]) -> Table {
    let mut table = Table::new(&["ID", "NAME", "TYPE", "ENDPOINTS", "NETNS"]);
    for ns in namespaces {
        let endpoints: Vec<String> = view::namespace_endpoints(ns)
            .iter()
            .map(|id| view::short_id(id))
            .collect();
        table.push(vec![
            view::short_id(view::id(ns)),
            view::text(ns, "Name").to_string(),
            match view::text(ns, "Type") {
                "" => "Host".to_string(),
                t => t.to_string(),
            },
            endpoints.join(","),
            view::text(ns, "NetNsPath").to_string(),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body() {
        assert_eq!(
            namespace_body(Some("web")),
            json!({"Name":"web","Type":"Host","SchemaVersion":{"Major":2,"Minor":0}})
        );
        assert!(namespace_body(None).get("Name").is_none());
    }

    #[test]
    fn ls_table() {
        let namespaces = [json!({
            "ID": "C1B2C3D4-0000-4000-8000-000000000001",
            "Type": "Host",
            "Resources": [{"Type":"Endpoint","Data":{"Id":"E1B2C3D4-0000-4000-8000-000000000001"}}],
            "NetNsPath": "/run/hostnet/netns/C1B2C3D4-0000-4000-8000-000000000001"
        })];
        assert_eq!(
            table(&namespaces).render(),
            "ID             NAME   TYPE   ENDPOINTS      NETNS\n\
             C1B2C3D4-000          Host   E1B2C3D4-000   /run/hostnet/netns/C1B2C3D4-0000-4000-8000-000000000001\n"
        );
    }
}
