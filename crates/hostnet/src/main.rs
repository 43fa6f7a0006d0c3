//! `hostnet`: the command line of hostnet, a client of `hostnetd`'s REST API.
//!
//! It speaks only the API (crate `hostnet-api`), never the store or the
//! kernel, except `run`, which enters the namespace the daemon made to start
//! a command there. Failures print one line, `hostnet: <message>`.

mod addr;
mod cli;
mod commands;
mod error;
mod exec;
mod inherited;
mod network_body;
mod output;
mod ports;
mod resolv_conf;
mod shim;
mod shim_drivers;
mod table;
#[cfg(test)]
mod testing;
mod view;

use clap::Parser;
use hostnet_api::Client;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let client = Client::new(&cli.socket);
    match commands::dispatch(&client, cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("hostnet: {e}");
            ExitCode::from(e.exit_code)
        }
    }
}
