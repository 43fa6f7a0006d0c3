//! `hostnet cluster hosts`: the hosts registered in cluster mode.

use crate::cli::ClusterCommand;
use crate::error::CliError;
use crate::output::{emit, json_text, Format};
use crate::table::Table;
use hostnet_api::Client;
use serde_json::Value;

/// The API path of the registered hosts.
const HOSTS_PATH: &str = "/v2/cluster/hosts";

/// Runs a `hostnet cluster` command.
pub fn run(client: &Client, cmd: ClusterCommand) -> Result<u8, CliError> {
    match cmd {
        ClusterCommand::Hosts(args) => {
            let hosts = client.call("GET", HOSTS_PATH, None)?;
            match args.format {
                Format::Json => emit(&json_text(&hosts)),
                Format::Table => emit(&table(&hosts).render()),
            }
            Ok(0)
        }
    }
}

fn table(hosts: &Value) -> Table {
    let mut t = Table::new(&["HOST ID", "ADDRESS", "VTEP MAC", "VERSION"]);
    let text = |h: &Value, f: &str| h.get(f).and_then(Value::as_str).unwrap_or("-").to_string();
    for h in hosts.as_array().map(Vec::as_slice).unwrap_or_default() {
        t.push(vec![
            text(h, "HostId"),
            text(h, "ProviderAddress"),
            text(h, "VtepMac"),
            text(h, "Version"),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_hosts_with_dashes_for_unknowns() {
        let hosts = json!([
            {"HostId": "host1", "ProviderAddress": "192.0.2.11", "VtepMac": null, "Version": "0.1.0"},
        ]);
        let text = table(&hosts).render();
        assert!(text.starts_with("HOST ID"), "{text}");
        let row = text.lines().nth(1).unwrap();
        assert!(
            row.contains("host1") && row.contains("192.0.2.11") && row.contains(" - "),
            "{text}"
        );
    }
}
