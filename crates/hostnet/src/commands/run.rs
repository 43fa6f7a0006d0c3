//! `hostnet run`: a minimal container runtime for networking.
//!
//! Creates a namespace and an endpoint, attaches them, runs the command in
//! the namespace's Linux netns, and removes both afterwards: on success, on
//! failure to start, and on SIGINT/SIGTERM. Like `docker run`, set-up
//! failures exit 125, a command that cannot be found 127, one that cannot be
//! executed 126, and otherwise the command's own status (128+signal).
//! With `--isolation vm` the command runs in a microVM instead
//! ([`super::run_vm`]), on a VM NIC endpoint and without a namespace.

use super::endpoint::EndpointSpec;
use super::namespace::namespace_body;
use crate::cli::{Isolation, RunArgs};
use crate::error::CliError;
use crate::exec::{exit_code, run_in_netns, signal_name, SignalRelay, StartError};
use crate::view;
use hostnet_api::{ApiError, Client, Kind};
use std::io;
use std::path::PathBuf;

/// Exit status of a failure of hostnet itself.
pub(super) const EXIT_SETUP: u8 = 125;
/// Exit status when the command exists but cannot be executed.
const EXIT_CANNOT_EXEC: u8 = 126;
/// Exit status when the command does not exist.
pub(super) const EXIT_NOT_FOUND: u8 = 127;

/// What `run` created, so that exactly that is removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// The namespace, once created.
    pub namespace_id: Option<String>,
    /// The endpoint, once created.
    pub endpoint_id: Option<String>,
    /// Whether the endpoint was attached to the namespace.
    pub attached: bool,
    /// The namespace's Linux netns bind mount, once known.
    pub netns_path: Option<PathBuf>,
    /// The container's resolv.conf, from the endpoint's `Dns` (none when
    /// it names no server).
    pub resolv_conf: Option<String>,
    /// The endpoint as hostnetd created it (a VM's NIC configuration).
    pub endpoint: serde_json::Value,
}

/// Runs `hostnet run`.
pub fn run(client: &Client, args: &RunArgs) -> Result<u8, CliError> {
    let relay = SignalRelay::install().map_err(|e| {
        CliError::new(format!("cannot install signal handlers: {e}")).with_exit(EXIT_SETUP)
    })?;
    if args.isolation == Isolation::Vm {
        return super::run_vm::run(client, args, &relay);
    }
    let sandbox = provision(client, args, || relay.received())?;
    let netns = sandbox
        .netns_path
        .clone()
        .expect("provision sets the netns path");
    let resolv = match &sandbox.resolv_conf {
        Some(text) => match write_resolv_conf(text) {
            Ok(file) => Some(file),
            Err(e) => {
                clean_up(client, &sandbox);
                return Err(CliError::new(format!(
                    "cannot write the container's resolv.conf: {e}"
                ))
                .with_exit(EXIT_SETUP));
            }
        },
        None => None,
    };
    let outcome = run_in_netns(
        &netns,
        &args.command,
        &relay,
        resolv.as_ref().map(|f| f.path()),
    );
    drop(resolv);
    if args.keep {
        eprintln!(
            "namespace {}\nendpoint {}",
            sandbox.namespace_id.as_deref().unwrap_or_default(),
            sandbox.endpoint_id.as_deref().unwrap_or_default()
        );
    } else {
        clean_up(client, &sandbox);
    }
    let program = &args.command[0];
    match outcome {
        Ok(status) => Ok(exit_code(status)),
        Err(StartError::OpenNetns(e)) => Err(CliError::new(format!(
            "cannot open network namespace {}: {e}",
            netns.display()
        ))
        .with_exit(EXIT_SETUP)),
        Err(StartError::Spawn(e)) => {
            let exit = match e.kind() {
                io::ErrorKind::NotFound => EXIT_NOT_FOUND,
                io::ErrorKind::PermissionDenied => EXIT_CANNOT_EXEC,
                _ => EXIT_SETUP,
            };
            Err(CliError::new(format!(
                "cannot start {program} in network namespace {}: {e}",
                netns.display()
            ))
            .with_exit(exit))
        }
    }
}

/// Creates the namespace and endpoint, attaches them and finds the netns
/// path. On failure (or a signal, checked between steps) removes whatever
/// was created and returns the error with exit status 125 (128+signal).
pub fn provision(
    client: &Client,
    args: &RunArgs,
    interrupted: impl Fn() -> Option<i32>,
) -> Result<Sandbox, CliError> {
    let mut sandbox = Sandbox::default();
    match build(client, args, &interrupted, &mut sandbox) {
        Ok(()) => Ok(sandbox),
        Err(e) => {
            clean_up(client, &sandbox);
            let exit = if e.exit_code == 1 {
                EXIT_SETUP
            } else {
                e.exit_code
            };
            Err(e.with_exit(exit))
        }
    }
}

fn check(interrupted: &impl Fn() -> Option<i32>) -> Result<(), CliError> {
    match interrupted() {
        None => Ok(()),
        Some(signal) => Err(
            CliError::new(format!("interrupted by {}", signal_name(signal)))
                .with_exit(128u8.saturating_add(signal as u8)),
        ),
    }
}

fn created_id(kind: Kind, object: &serde_json::Value) -> Result<String, CliError> {
    match view::id(object) {
        "" => Err(CliError::new(format!(
            "hostnetd created the {kind} but returned no ID"
        ))),
        id => Ok(id.to_string()),
    }
}

fn build(
    client: &Client,
    args: &RunArgs,
    interrupted: &impl Fn() -> Option<i32>,
    sandbox: &mut Sandbox,
) -> Result<(), CliError> {
    let mut spec = EndpointSpec {
        name: args.name.as_deref(),
        ip: args.ip.as_deref(),
        ip6: args.ip6.as_deref(),
        mac: None,
        publish: &args.publish,
        inherited: Vec::new(),
    };
    spec.validate()?;
    let network_id = spec.take_network(client, &args.network)?;
    check(interrupted)?;
    let vm = args.isolation == Isolation::Vm;

    // A VM's NIC is its own port on the switch: no namespace.
    let namespace_id = match vm {
        true => None,
        false => {
            let namespace =
                client.create(Kind::Namespaces, &namespace_body(args.name.as_deref()))?;
            let namespace_id = created_id(Kind::Namespaces, &namespace)?;
            sandbox.namespace_id = Some(namespace_id.clone());
            check(interrupted)?;
            Some(namespace_id)
        }
    };

    let mut body = spec.body(&network_id)?;
    if vm {
        body["VmNic"] = serde_json::json!(true);
    }
    let endpoint = client.create(Kind::Endpoints, &body)?;
    let endpoint_id = created_id(Kind::Endpoints, &endpoint)?;
    sandbox.endpoint_id = Some(endpoint_id.clone());
    sandbox.resolv_conf = crate::resolv_conf::render(&endpoint["Dns"]);
    sandbox.endpoint = endpoint;
    check(interrupted)?;
    let Some(namespace_id) = namespace_id else {
        return Ok(());
    };

    client.attach_endpoint(&namespace_id, &endpoint_id)?;
    sandbox.attached = true;
    check(interrupted)?;

    let namespace = client.get(Kind::Namespaces, &namespace_id)?;
    match view::text(&namespace, "NetNsPath") {
        "" => {
            return Err(CliError::new(format!(
                "namespace {namespace_id} has no NetNsPath: hostnetd did not report its Linux network namespace"
            )))
        }
        path => sandbox.netns_path = Some(PathBuf::from(path)),
    }
    check(interrupted)
}

/// A resolv.conf for the command's mount namespace; removed on drop.
struct ResolvFile(PathBuf);

impl ResolvFile {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ResolvFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write_resolv_conf(text: &str) -> io::Result<ResolvFile> {
    use std::io::Write;
    let path = std::env::temp_dir().join(format!("hostnet-resolv-{}.conf", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .or_else(|_| {
            std::fs::remove_file(&path)?;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
        })?;
    let file = ResolvFile(path);
    f.write_all(text.as_bytes())?;
    Ok(file)
}

/// Detaches and deletes what `sandbox` records, newest first, carrying on
/// past failures; objects already gone are not errors. Returns the failures.
pub fn teardown(client: &Client, sandbox: &Sandbox) -> Vec<ApiError> {
    let mut errors = Vec::new();
    let mut keep = |result: Result<(), ApiError>| match result {
        Err(e) if !e.is_not_found() => errors.push(e),
        _ => {}
    };
    if let (true, Some(ns), Some(ep)) = (
        sandbox.attached,
        &sandbox.namespace_id,
        &sandbox.endpoint_id,
    ) {
        keep(client.detach_endpoint(ns, ep));
    }
    if let Some(ep) = &sandbox.endpoint_id {
        keep(client.delete(Kind::Endpoints, ep));
    }
    if let Some(ns) = &sandbox.namespace_id {
        keep(client.delete(Kind::Namespaces, ns));
    }
    errors
}

/// [`teardown`], reporting each failure on stderr.
pub(super) fn clean_up(client: &Client, sandbox: &Sandbox) {
    for e in teardown(client, sandbox) {
        eprintln!("hostnet: cleanup: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Script;
    use clap::Parser;
    use serde_json::{json, Value};

    fn args(argv: &[&str]) -> RunArgs {
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        match cli.command {
            crate::cli::Command::Run(args) => args,
            _ => unreachable!(),
        }
    }

    const NET: &str = r#"[{"ID":"A1B2C3D4-0000-4000-8000-000000000001","Name":"nat"}]"#;
    const NS: &str = r#"{"ID":"C1B2C3D4-0000-4000-8000-000000000001","Type":"Host","NetNsPath":"/run/hostnet/netns/x"}"#;
    const EP: &str = r#"{"ID":"E1B2C3D4-0000-4000-8000-000000000001"}"#;

    #[test]
    fn provision_then_teardown() {
        let script = Script::serve(vec![
            ("200 OK", NET.into()),
            ("201 Created", NS.into()),
            ("201 Created", EP.into()),
            ("200 OK", NS.into()),
            ("200 OK", NS.into()),
            ("200 OK", NS.into()),
            ("204 No Content", String::new()),
            (
                "404 Not Found",
                r#"{"Success":false,"Error":"Element not found.","ErrorCode":2147943568}"#.into(),
            ),
        ]);
        let args = args(&["hostnet", "run", "-p", "8080:80", "--name", "web", "true"]);
        let sandbox = provision(&script.client, &args, || None).unwrap();
        assert_eq!(
            sandbox.netns_path,
            Some(PathBuf::from("/run/hostnet/netns/x"))
        );
        assert!(sandbox.attached);
        // The namespace is already gone: not an error.
        assert!(teardown(&script.client, &sandbox).is_empty());
        let seen = script.finish();
        let ns = "/v2/namespaces/C1B2C3D4-0000-4000-8000-000000000001";
        assert!(seen[0].0.starts_with("GET /v2/networks?query="));
        assert_eq!(
            seen[1],
            (
                "POST /v2/namespaces".into(),
                json!({"Name":"web","SchemaVersion":{"Major":2,"Minor":0},"Type":"Host"})
            )
        );
        assert_eq!(
            seen[2],
            (
                "POST /v2/endpoints".into(),
                json!({"HostComputeNetwork":"A1B2C3D4-0000-4000-8000-000000000001","Name":"web",
                       "Policies":[{"Type":"PortMapping","Settings":{"ExternalPort":8080,"InternalPort":80,"Protocol":6}}],
                       "SchemaVersion":{"Major":2,"Minor":0}})
            )
        );
        let endpoint = json!({"EndpointId":"E1B2C3D4-0000-4000-8000-000000000001"});
        assert_eq!(
            seen[3],
            (
                format!("PATCH {ns}"),
                json!({"RequestType":"Add","ResourceType":"Endpoint","Settings":endpoint})
            )
        );
        assert_eq!(seen[4], (format!("GET {ns}"), Value::Null));
        assert_eq!(
            seen[5],
            (
                format!("PATCH {ns}"),
                json!({"RequestType":"Remove","ResourceType":"Endpoint","Settings":endpoint})
            )
        );
        assert_eq!(
            seen[6].0,
            "DELETE /v2/endpoints/E1B2C3D4-0000-4000-8000-000000000001"
        );
        assert_eq!(seen[7].0, format!("DELETE {ns}"));
    }

    #[test]
    fn the_network_options_give_the_endpoint_outbound_nat() {
        let net = r#"[{"ID":"A1B2C3D4-0000-4000-8000-000000000001","Name":"l2","Type":"L2Bridge",
            "Options":{"com.docker.network.windowsshim.enable_outboundnat":"true",
                       "com.docker.network.windowsshim.outboundnat_exceptions":"192.0.2.0/24"}}]"#;
        let script = Script::serve(vec![
            ("200 OK", net.into()),
            ("201 Created", NS.into()),
            ("201 Created", EP.into()),
            ("200 OK", NS.into()),
            ("200 OK", NS.into()),
        ]);
        let args = args(&["hostnet", "run", "--network", "l2", "true"]);
        provision(&script.client, &args, || None).unwrap();
        let seen = script.finish();
        assert_eq!(
            seen[2].1["Policies"],
            json!([{"Type":"OutBoundNAT","Settings":{"Exceptions":["192.0.2.0/24"]}}])
        );
    }

    #[test]
    fn failed_step_removes_what_was_made() {
        let script = Script::serve(vec![
            ("200 OK", NET.into()),
            ("201 Created", NS.into()),
            ("409 Conflict", r#"{"Success":false,"Error":"host port 8080/tcp is already mapped","ErrorCode":2151350291}"#.into()),
            ("204 No Content", String::new()),
        ]);
        let args = args(&["hostnet", "run", "-p", "8080:80", "true"]);
        let err = provision(&script.client, &args, || None).unwrap_err();
        assert_eq!(err.exit_code, 125);
        assert!(err.message.contains("HCN_E_PORT_ALREADY_EXISTS"), "{err}");
        let seen = script.finish();
        assert_eq!(seen.len(), 4);
        assert_eq!(
            seen[3].0,
            "DELETE /v2/namespaces/C1B2C3D4-0000-4000-8000-000000000001"
        );
    }

    #[test]
    fn signal_during_setup_cleans_up() {
        let script = Script::serve(vec![
            ("200 OK", NET.into()),
            ("201 Created", NS.into()),
            ("204 No Content", String::new()),
        ]);
        let args = args(&["hostnet", "run", "true"]);
        let calls = std::cell::Cell::new(0);
        let err = provision(&script.client, &args, || {
            calls.set(calls.get() + 1);
            (calls.get() == 2).then_some(libc::SIGINT)
        })
        .unwrap_err();
        assert_eq!(err.exit_code, 130);
        assert_eq!(err.message, "interrupted by SIGINT");
        let seen = script.finish();
        assert_eq!(
            seen[2].0,
            "DELETE /v2/namespaces/C1B2C3D4-0000-4000-8000-000000000001"
        );
    }

    #[test]
    fn bad_arguments_create_nothing() {
        // No server: nothing may be contacted.
        let client = Client::new("/nonexistent/hostnet.sock");
        let err = provision(
            &client,
            &args(&["hostnet", "run", "-p", "x:80", "true"]),
            || None,
        )
        .unwrap_err();
        assert_eq!(err.exit_code, 125);
        assert!(err.message.contains("invalid port mapping"));
    }
}
