//! `hostnet endpoint inspect`: each endpoint with its counters
//! (`GET /v2/endpoints/{id}/stats`): rx/tx/drops and per-ACL-rule counts.

use super::{object_id, report, resolve};
use crate::cli::InspectArgs;
use crate::error::CliError;
use crate::output::{block_text, emit, json_text, Format};
use crate::table::Table;
use hostnet_api::{Client, Kind};
use serde_json::Value;

/// Runs `endpoint inspect`: JSON objects with a `Stats` member, or blocks
/// followed by the rule counters. A target not found, or whose counters
/// cannot be read, is reported and makes the exit status 1.
pub fn run(client: &Client, args: &InspectArgs) -> Result<u8, CliError> {
    let mut found = Vec::new();
    let mut status = 0;
    for target in &args.targets {
        let with_stats = resolve(client, Kind::Endpoints, target).and_then(|mut endpoint| {
            let id = object_id(Kind::Endpoints, &endpoint, target)?;
            match client.endpoint_stats(&id) {
                Ok(stats) => endpoint["Stats"] = stats,
                Err(e) => {
                    report(&CliError::from(e));
                    status = 1;
                }
            }
            Ok(endpoint)
        });
        match with_stats {
            Ok(endpoint) => found.push(endpoint),
            Err(e) => {
                report(&e);
                status = 1;
            }
        }
    }
    match args.format {
        Format::Json => emit(&json_text(&Value::Array(found))),
        Format::Table => emit(
            &found
                .iter()
                .map(endpoint_block)
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    }
    Ok(status)
}

/// One endpoint as a block: its fields, its counters as `Received`,
/// `Sent` and `Dropped` lines, then a table of its rules' counts.
fn endpoint_block(endpoint: &Value) -> String {
    let mut fields = endpoint.clone();
    let Some(stats) = fields.as_object_mut().and_then(|o| o.remove("Stats")) else {
        return block_text(endpoint);
    };
    let n = |k: &str| stats[k].as_u64().unwrap_or(0);
    if let Some(o) = fields.as_object_mut() {
        o.insert(
            "Received".into(),
            format!(
                "{} packets, {} bytes",
                n("PacketsReceived"),
                n("BytesReceived")
            )
            .into(),
        );
        o.insert(
            "Sent".into(),
            format!("{} packets, {} bytes", n("PacketsSent"), n("BytesSent")).into(),
        );
        o.insert(
            "Dropped".into(),
            format!(
                "{} incoming, {} outgoing",
                n("DroppedPacketsIncoming"),
                n("DroppedPacketsOutgoing")
            )
            .into(),
        );
    }
    let mut out = block_text(&fields);
    let rules = stats["Rules"].as_array().cloned().unwrap_or_default();
    if !rules.is_empty() {
        out.push('\n');
        out.push_str(&rules_table(&rules).render());
    }
    out
}

/// The per-rule counters: one row per ACL rule.
fn rules_table(rules: &[Value]) -> Table {
    let mut table = Table::new(&[
        "RULE",
        "LAYER",
        "DIRECTION",
        "ACTION",
        "PRIORITY",
        "PACKETS",
        "BYTES",
    ]);
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    for r in rules {
        table.push(
            [
                "Id",
                "Layer",
                "Direction",
                "Action",
                "Priority",
                "Packets",
                "Bytes",
            ]
            .iter()
            .map(|k| text(&r[*k]))
            .collect(),
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_block_shows_counters_and_one_row_per_rule() {
        let ep = json!({
            "ID": "E1",
            "Name": "web",
            "Stats": {
                "EndpointId": "E1", "InstanceId": "",
                "PacketsReceived": 7, "BytesReceived": 434,
                "PacketsSent": 2, "BytesSent": 120,
                "DroppedPacketsIncoming": 3, "DroppedPacketsOutgoing": 0,
                "Rules": [
                    { "Id": "allow-5000", "Layer": "acl-switch", "Group": "acl", "Direction": "In",
                      "Action": "Allow", "Priority": 100, "Packets": 7, "Bytes": 266 }
                ]
            }
        });
        let text = endpoint_block(&ep);
        assert!(text.contains("Received: 7 packets, 434 bytes\n"), "{text}");
        assert!(text.contains("Sent:     2 packets, 120 bytes\n"), "{text}");
        assert!(
            text.contains("Dropped:  3 incoming, 0 outgoing\n"),
            "{text}"
        );
        assert!(!text.contains("Stats"), "{text}");
        assert!(
            text.contains("RULE         LAYER        DIRECTION"),
            "{text}"
        );
        assert!(
            text.contains(
                "allow-5000   acl-switch   In          Allow    100        7         266\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn without_counters_the_block_is_the_object() {
        let ep = json!({ "ID": "E1", "Name": "web" });
        assert_eq!(endpoint_block(&ep), block_text(&ep));
    }
}
