//! `hostnet network create|ls|inspect|rm`.

use super::{inspect, print_created, print_list, remove};
use crate::cli::{NetworkCommand, NetworkCreateArgs};
use crate::error::CliError;
use crate::network_body::{network_body, NetworkArgs};
use crate::output::{emit, Format};
use crate::table::Table;
use crate::view;
use hostnet_api::{Client, Kind};
use serde_json::Value;

/// Runs a `network` subcommand.
pub fn run(client: &Client, command: NetworkCommand) -> Result<u8, CliError> {
    match command {
        NetworkCommand::Create(args) => create(client, args),
        NetworkCommand::Ls(args) => {
            let networks = client.list(Kind::Networks, None)?;
            match args.format {
                Format::Json => print_list(&networks),
                Format::Table => emit(&table(&networks).render()),
            }
            Ok(0)
        }
        NetworkCommand::Inspect(args) => inspect(client, Kind::Networks, &args),
        NetworkCommand::Rm(args) => remove(client, Kind::Networks, &args),
    }
}

fn create(client: &Client, args: NetworkCreateArgs) -> Result<u8, CliError> {
    let body = network_body(&NetworkArgs {
        name: args.name,
        driver: args.driver,
        subnets: args.subnet,
        gateways: args.gateway,
        options: args.opt,
        ipv6: args.ipv6,
    })?;
    let created = client.create(Kind::Networks, &body)?;
    print_created(Kind::Networks, &created)
}

/// The `network ls` table.
pub fn table(networks: &[Value]) -> Table {
    let mut table = Table::new(&["ID", "NAME", "DRIVER", "SUBNET", "GATEWAY"]);
    for n in networks {
        table.push(vec![
            view::short_id(view::id(n)),
            view::text(n, "Name").to_string(),
            view::network_type(n).to_string(),
            view::network_subnets(n).join(","),
            view::network_gateways(n).join(","),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ls_table() {
        let networks = [
            json!({"ID":"A1B2C3D4-0000-4000-8000-000000000001","Name":"nat","Type":"NAT",
                   "Ipams":[{"Subnets":[{"IpAddressPrefix":"172.20.0.0/16","Routes":[{"NextHop":"172.20.0.1","DestinationPrefix":"0.0.0.0/0"}]}]}]}),
            json!({"ID":"b1b2c3d4-0000-4000-8000-000000000002","Name":"ext","Type":"transparent"}),
        ];
        assert_eq!(
            table(&networks).render(),
            "ID             NAME   DRIVER        SUBNET          GATEWAY\n\
             A1B2C3D4-000   nat    NAT           172.20.0.0/16   172.20.0.1\n\
             b1b2c3d4-000   ext    transparent\n"
        );
    }
}
