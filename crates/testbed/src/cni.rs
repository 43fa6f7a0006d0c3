//! Running CNI plugins the way a runtime does: CNI_* variables, the
//! network config on stdin, inside the host namespace; the answer parsed.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use crate::netns::command_in;

/// Where Debian's containernetworking-plugins live.
pub const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

/// One CNI call.
#[derive(Debug, Clone)]
pub struct CniCall<'a> {
    pub command: &'a str,
    pub container_id: &'a str,
    /// CNI_NETNS; None leaves it unset.
    pub netns: Option<&'a Path>,
    pub ifname: &'a str,
}

/// What a plugin answered.
#[derive(Debug, Clone)]
pub struct CniOutput {
    pub exit: Option<i32>,
    /// stdout as JSON (`Null` when empty or not JSON).
    pub doc: Value,
    pub stdout: String,
    pub stderr: String,
}

impl CniOutput {
    pub fn success(&self) -> bool {
        self.exit == Some(0)
    }

    /// The `code` of an error result.
    pub fn error_code(&self) -> Option<u64> {
        self.doc.get("code").and_then(Value::as_u64)
    }

    /// The `msg` of an error result.
    pub fn msg(&self) -> &str {
        self.doc
            .get("msg")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// Runs `plugin` in the namespace at `host` for `call` with `config` on
/// stdin (CNI_PATH: the reference plugins' directory and the plugin's own).
pub fn exec_plugin(host: &Path, plugin: &Path, call: &CniCall<'_>, config: &Value) -> CniOutput {
    let own_dir = plugin.parent().unwrap_or(Path::new("/"));
    let mut cmd = command_in(host, plugin);
    cmd.env("CNI_COMMAND", call.command)
        .env("CNI_CONTAINERID", call.container_id)
        .env("CNI_IFNAME", call.ifname)
        .env(
            "CNI_PATH",
            format!("{}:{REFERENCE_PLUGINS}", own_dir.display()),
        )
        .env_remove("CNI_NETNS")
        .env_remove("HOSTNET_SOCKET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ns) = call.netns {
        cmd.env("CNI_NETNS", ns);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", plugin.display()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(config.to_string().as_bytes())
        .expect("write the config");
    let out = child.wait_with_output().expect("wait for the plugin");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    CniOutput {
        exit: out.status.code(),
        doc: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A plugin list run the way libcni runs a conflist: each plugin gets the
/// list's `name` and `cniVersion`, the `runtimeConfig` entries for the
/// capabilities it declares, and (after the first) the previous plugin's
/// result as `prevResult`; DEL goes in reverse order; CHECK and DEL get
/// the cached ADD result.
pub struct Chain<'a> {
    pub host: &'a Path,
    /// Directories searched for each plugin `type`, in order.
    pub dirs: Vec<std::path::PathBuf>,
    pub conflist: Value,
    /// The runtime's capability arguments (`portMappings`, `bandwidth`, ...).
    pub runtime: Value,
}

impl Chain<'_> {
    /// ADD through every plugin; the last output (or the first failure).
    pub fn add(&self, call: &CniCall<'_>) -> CniOutput {
        let mut prev: Option<Value> = None;
        let mut last = None;
        for plugin in self.plugins() {
            let out = self.exec(&plugin, call, prev.as_ref());
            if !out.success() {
                return out;
            }
            prev = Some(out.doc.clone());
            last = Some(out);
        }
        last.expect("a conflist has plugins")
    }

    /// CHECK (in order) or DEL (reversed) with the cached ADD result.
    pub fn with_cached(&self, call: &CniCall<'_>, cached: Option<&Value>) -> CniOutput {
        let mut plugins = self.plugins();
        if call.command == "DEL" {
            plugins.reverse();
        }
        let mut last = None;
        for plugin in plugins {
            let out = self.exec(&plugin, call, cached);
            if !out.success() {
                return out;
            }
            last = Some(out);
        }
        last.expect("a conflist has plugins")
    }

    fn plugins(&self) -> Vec<Value> {
        self.conflist["plugins"]
            .as_array()
            .cloned()
            .expect("conflist plugins")
    }

    fn exec(&self, plugin: &Value, call: &CniCall<'_>, prev: Option<&Value>) -> CniOutput {
        let mut conf = plugin.clone();
        conf["name"] = self.conflist["name"].clone();
        conf["cniVersion"] = self.conflist["cniVersion"].clone();
        if let Some(p) = prev {
            conf["prevResult"] = p.clone();
        }
        let mut runtime = serde_json::Map::new();
        for (cap, on) in plugin["capabilities"].as_object().into_iter().flatten() {
            if let (Some(true), Some(v)) = (on.as_bool(), self.runtime.get(cap)) {
                runtime.insert(cap.clone(), v.clone());
            }
        }
        if !runtime.is_empty() {
            conf["runtimeConfig"] = Value::Object(runtime);
        }
        let kind = plugin["type"].as_str().expect("plugin type");
        let binary = self
            .dirs
            .iter()
            .map(|d| d.join(kind))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("plugin {kind} is in none of {:?}", self.dirs));
        exec_plugin(self.host, &binary, call, &conf)
    }
}
