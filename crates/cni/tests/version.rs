//! The built plugin answers VERSION as a runtime calls it (no daemon
//! needed). Being an integration test of this crate also makes
//! `cargo test --workspace` build the `hostnet-cni` binary, which the
//! testbed's runtime tests execute.

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn version_lists_every_supported_spec_version() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hostnet-cni"))
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run hostnet-cni");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"cniVersion":"1.1.0"}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let versions = v["supportedVersions"]
        .as_array()
        .expect("supportedVersions");
    for want in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        assert!(versions.iter().any(|x| x == want), "{v}");
    }
}
