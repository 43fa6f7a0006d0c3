//! The command line grammar (clap derive), docker-like on purpose.

use crate::output::Format;
use clap::{Args, Parser, Subcommand};
use hostnet_api::DEFAULT_SOCKET;
use std::path::PathBuf;

/// hostnet: Windows-style container networking (HNS/HCN v2) on Linux.
#[derive(Debug, Parser)]
#[command(name = "hostnet", version, about, propagate_version = true)]
pub struct Cli {
    /// hostnetd's Unix socket.
    #[arg(
        long,
        global = true,
        env = hostnet_api::SOCKET_ENV,
        default_value = DEFAULT_SOCKET,
        value_name = "PATH"
    )]
    pub socket: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage networks.
    #[command(subcommand, visible_alias = "net")]
    Network(NetworkCommand),
    /// Manage endpoints (a container's network interface).
    #[command(subcommand, visible_alias = "ep")]
    Endpoint(EndpointCommand),
    /// Manage namespaces (HCN compartments: Linux network namespaces).
    #[command(subcommand, visible_alias = "ns")]
    Namespace(NamespaceCommand),
    /// Run a command in a fresh namespace with an endpoint on a network.
    Run(RunArgs),
    /// Walk a packet through an endpoint's policies and print each layer.
    Trace(TraceArgs),
    /// Show the client and daemon versions.
    Version,
    /// Cluster mode (hostnetd --store etcd://…): the hosts sharing the store.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

/// `hostnet cluster …`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// List the live hosts registered in the cluster.
    #[command(visible_alias = "ls")]
    Hosts(LsArgs),
}

/// `hostnet trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The endpoint (name or ID).
    #[arg(long, value_name = "NAME|ID")]
    pub endpoint: String,
    /// `in` (towards the endpoint) or `out`.
    #[arg(long, value_name = "in|out")]
    pub direction: String,
    /// tcp, udp, icmp, sctp, or an IP protocol number.
    #[arg(long, value_name = "PROTO", default_value = "tcp")]
    pub proto: String,
    /// Source IP[:PORT] (default: the endpoint, going out).
    #[arg(long, value_name = "IP[:PORT]")]
    pub src: Option<String>,
    /// Destination IP[:PORT] (default: the endpoint, coming in).
    #[arg(long, value_name = "IP[:PORT]")]
    pub dst: Option<String>,
    /// Also list every rule visited and why it did not match.
    #[arg(long)]
    pub verbose: bool,
    /// Output format: the trace text, or the daemon's JSON.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Arguments shared by `ls` commands.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Arguments shared by `inspect` commands.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Names or IDs.
    #[arg(required = true, value_name = "NAME|ID")]
    pub targets: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
}

/// Arguments shared by `rm` commands.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Names or IDs.
    #[arg(required = true, value_name = "NAME|ID")]
    pub targets: Vec<String>,
}

/// `hostnet network …`
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network and print its ID.
    Create(NetworkCreateArgs),
    /// List networks.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show networks in detail.
    Inspect(InspectArgs),
    /// Remove networks.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
}

/// `hostnet network create`
#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// Network type: nat, transparent, l2bridge, l2tunnel, overlay, …
    #[arg(short = 'd', long, default_value = "nat")]
    pub driver: String,
    /// Subnet in CIDR form (repeatable).
    #[arg(long, value_name = "CIDR")]
    pub subnet: Vec<String>,
    /// Gateway of the subnet containing it (repeatable).
    #[arg(long, value_name = "IP")]
    pub gateway: Vec<String>,
    /// Dual stack (Docker's --ipv6): checks that an IPv6 --subnet is given
    /// (hostnet does not pick IPv6 subnets). NAT networks only.
    #[arg(long)]
    pub ipv6: bool,
    /// Docker option com.docker.network.windowsshim.KEY=VALUE (repeatable).
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
    pub opt: Vec<String>,
    /// Network name (or -o com.docker.network.windowsshim.networkname=NAME).
    pub name: Option<String>,
}

/// `hostnet endpoint …`
#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Create an endpoint and print its ID.
    Create(EndpointCreateArgs),
    /// List endpoints.
    #[command(visible_alias = "list")]
    Ls(EndpointLsArgs),
    /// Show endpoints in detail.
    Inspect(InspectArgs),
    /// Remove endpoints.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
}

/// `hostnet endpoint create`
#[derive(Debug, Args)]
pub struct EndpointCreateArgs {
    /// Network (name or ID).
    #[arg(long)]
    pub network: String,
    /// IP address (allocated by the daemon when omitted).
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address on a dual-stack network (allocated when omitted).
    #[arg(long)]
    pub ip6: Option<String>,
    /// MAC address (allocated by the daemon when omitted).
    #[arg(long)]
    pub mac: Option<String>,
    /// Publish a port: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp] (repeatable).
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Endpoint name.
    #[arg(long)]
    pub name: Option<String>,
}

/// `hostnet endpoint ls`
#[derive(Debug, Args)]
pub struct EndpointLsArgs {
    /// Only endpoints of this network (name or ID).
    #[arg(long)]
    pub network: Option<String>,
    #[command(flatten)]
    pub ls: LsArgs,
}

/// `hostnet namespace …`
#[derive(Debug, Subcommand)]
pub enum NamespaceCommand {
    /// Create a namespace and print its ID.
    Create {
        /// Namespace name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List namespaces.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show namespaces in detail.
    Inspect(InspectArgs),
    /// Remove namespaces.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Attach an endpoint to a namespace.
    Attach {
        /// Namespace (name or ID).
        namespace: String,
        /// Endpoint (name or ID).
        endpoint: String,
    },
    /// Detach an endpoint from a namespace.
    Detach {
        /// Namespace (name or ID).
        namespace: String,
        /// Endpoint (name or ID).
        endpoint: String,
    },
}

/// Where `hostnet run` runs its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Isolation {
    /// A network namespace on this host (Windows: process isolation).
    Process,
    /// A microVM on the endpoint's tap (Windows: Hyper-V isolation).
    Vm,
}

/// `hostnet run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Network (name or ID).
    #[arg(long, default_value = "nat")]
    pub network: String,
    /// IP address (allocated by the daemon when omitted).
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address on a dual-stack network (allocated when omitted).
    #[arg(long)]
    pub ip6: Option<String>,
    /// Publish a port: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp] (repeatable).
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Name of the endpoint and namespace.
    #[arg(long)]
    pub name: Option<String>,
    /// Keep the namespace and endpoint after CMD exits (their IDs go to stderr).
    #[arg(long)]
    pub keep: bool,
    /// How CMD is isolated: in a network namespace (process) or in a
    /// microVM whose NIC is the endpoint (vm; needs --vm-kernel).
    #[arg(long, value_enum, default_value = "process")]
    pub isolation: Isolation,
    /// The guest kernel for --isolation vm (e.g. Debian's
    /// linux-image-cloud-amd64 /boot/vmlinuz-VERSION).
    #[arg(long, env = "HOSTNET_VM_KERNEL", value_name = "PATH")]
    pub vm_kernel: Option<PathBuf>,
    /// The guest kernel's modules directory (lib/modules/VERSION), for a
    /// kernel whose virtio-net driver is a module; by default the one
    /// beside the kernel (KERNEL/../../lib/modules/VERSION).
    #[arg(long, env = "HOSTNET_VM_MODULES", value_name = "DIR")]
    pub vm_modules: Option<PathBuf>,
    /// A program or file of this host the guest also gets, at the same
    /// path, with its shared libraries (repeatable; CMD's own program is
    /// always added).
    #[arg(long, value_name = "PATH")]
    pub vm_add: Vec<PathBuf>,
    /// The guest's memory in MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub vm_memory: u32,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_the_rest() {
        let cli = Cli::try_parse_from([
            "hostnet", "run", "-p", "8080:80", "--keep", "--", "sh", "-c", "echo hi",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!()
        };
        assert_eq!(run.command, ["sh", "-c", "echo hi"]);
        assert_eq!(run.publish, ["8080:80"]);
        assert_eq!(run.network, "nat");
        assert!(run.keep);
        let cli = Cli::try_parse_from(["hostnet", "run", "ip", "-br", "a"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!()
        };
        assert_eq!(run.command, ["ip", "-br", "a"]);
    }

    #[test]
    fn network_create() {
        let cli = Cli::try_parse_from([
            "hostnet",
            "--socket",
            "/tmp/s",
            "network",
            "create",
            "-d",
            "l2bridge",
            "--subnet",
            "10.0.0.0/24",
            "--gateway",
            "10.0.0.1",
            "-o",
            "vlanid=5",
            "br",
        ])
        .unwrap();
        assert_eq!(cli.socket, PathBuf::from("/tmp/s"));
        let Command::Network(NetworkCommand::Create(args)) = cli.command else {
            panic!()
        };
        assert_eq!(args.driver, "l2bridge");
        assert_eq!(args.name.as_deref(), Some("br"));
        assert_eq!(args.opt, ["vlanid=5"]);
    }
}
