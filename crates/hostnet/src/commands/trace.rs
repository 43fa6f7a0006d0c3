//! `hostnet trace`: the daemon walks a packet through an endpoint's
//! policies; this prints its trace (exit status 0 allowed, 1 blocked).

use hostnet_api::{Client, Kind};
use serde_json::json;

use super::resolve_id;
use crate::cli::TraceArgs;
use crate::error::CliError;
use crate::output::{json_text, Format};

pub fn run(client: &Client, args: &TraceArgs) -> Result<u8, CliError> {
    let id = resolve_id(client, Kind::Endpoints, &args.endpoint)?;
    let mut req = json!({
        "Direction": args.direction,
        "Protocol": args.proto,
        "Verbose": args.verbose,
    });
    if let Some(s) = &args.src {
        req["Source"] = json!(s);
    }
    if let Some(d) = &args.dst {
        req["Destination"] = json!(d);
    }
    let answer = client.trace(&id, &req)?;
    match args.format {
        Format::Json => println!("{}", json_text(&answer)),
        Format::Table => print!("{}", answer["Text"].as_str().unwrap_or_default()),
    }
    Ok(match answer["Verdict"].as_str() {
        Some("Allow") => 0,
        _ => 1,
    })
}
