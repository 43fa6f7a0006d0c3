//! The commands: each turns parsed arguments into API calls and output.
//!
//! Every command takes a `&Client` so it can be driven against a test daemon.
//! Commands return the exit status on success; failures are a [`CliError`].

mod cluster;
mod endpoint;
mod endpoint_inspect;
mod namespace;
mod network;
pub mod run;
mod run_vm;
mod trace;
mod version;

use crate::cli::{Command, InspectArgs, RmArgs};
use crate::error::CliError;
use crate::output::{blocks_text, emit, json_text, Format};
use crate::view;
use hostnet_api::{Client, Kind};
use serde_json::Value;

/// Runs one command.
pub fn dispatch(client: &Client, command: Command) -> Result<u8, CliError> {
    match command {
        Command::Network(cmd) => network::run(client, cmd),
        Command::Endpoint(cmd) => endpoint::run(client, cmd),
        Command::Namespace(cmd) => namespace::run(client, cmd),
        Command::Run(args) => run::run(client, &args),
        Command::Trace(args) => trace::run(client, &args),
        Command::Version => version::run(client),
        Command::Cluster(cmd) => cluster::run(client, cmd),
    }
}

/// The object of `kind` called `name_or_id`, or "no such <kind>: <arg>"
/// with HCN's not-found code (the lookup is client-side, as in hcsshim).
pub fn resolve(client: &Client, kind: Kind, name_or_id: &str) -> Result<Value, CliError> {
    client.lookup(kind, name_or_id)?.ok_or_else(|| {
        CliError::new(format!(
            "no such {kind}: {name_or_id} (HCN 0x80070490 ERROR_NOT_FOUND)"
        ))
    })
}

/// The ID of the object of `kind` called `name_or_id`.
pub fn resolve_id(client: &Client, kind: Kind, name_or_id: &str) -> Result<String, CliError> {
    object_id(kind, &resolve(client, kind, name_or_id)?, name_or_id)
}

/// The ID of `object`, which [`resolve`] found for `name_or_id`.
pub fn object_id(kind: Kind, object: &Value, name_or_id: &str) -> Result<String, CliError> {
    match view::id(object) {
        "" => Err(CliError::new(format!(
            "hostnetd returned a {kind} without an ID for {name_or_id}"
        ))),
        id => Ok(id.to_string()),
    }
}

/// Prints the ID of a freshly created object.
fn print_created(kind: Kind, created: &Value) -> Result<u8, CliError> {
    match view::id(created) {
        "" => Err(CliError::new(format!(
            "hostnetd created the {kind} but returned no ID"
        ))),
        id => {
            emit(&format!("{id}\n"));
            Ok(0)
        }
    }
}

/// Reports a failure for one of several targets and keeps going.
fn report(error: &CliError) {
    eprintln!("hostnet: {error}");
}

/// `inspect`: every target found, as a JSON array (like docker) or blocks;
/// each missing one is reported and makes the exit status 1.
fn inspect(client: &Client, kind: Kind, args: &InspectArgs) -> Result<u8, CliError> {
    let mut found = Vec::new();
    let mut status = 0;
    for target in &args.targets {
        match resolve(client, kind, target) {
            Ok(object) => found.push(object),
            Err(e) => {
                report(&e);
                status = 1;
            }
        }
    }
    match args.format {
        Format::Json => emit(&json_text(&Value::Array(found))),
        Format::Table => emit(&blocks_text(&found)),
    }
    Ok(status)
}

/// `rm`: removes every target, echoing each removed one as given; failures
/// are reported one per line and make the exit status 1.
fn remove(client: &Client, kind: Kind, args: &RmArgs) -> Result<u8, CliError> {
    let mut status = 0;
    for target in &args.targets {
        let removed = resolve_id(client, kind, target)
            .and_then(|id| client.delete(kind, &id).map_err(CliError::from));
        match removed {
            Ok(()) => emit(&format!("{target}\n")),
            Err(e) => {
                report(&e);
                status = 1;
            }
        }
    }
    Ok(status)
}

/// `ls --format json`: the raw array.
fn print_list(list: &[Value]) {
    emit(&json_text(&Value::Array(list.to_vec())));
}
