//! The built driver states its flags, and a socket it cannot make is a
//! clear error. Being an integration test of this crate also makes
//! `cargo test --workspace` build the `hostnet-docker` binary, which the
//! testbed's protocol test runs.

use std::process::Command;

#[test]
fn help_names_the_sockets_it_uses() {
    let out = Command::new(env!("CARGO_BIN_EXE_hostnet-docker"))
        .arg("--help")
        .output()
        .expect("run hostnet-docker");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in ["--socket", "--hostnetd", "--state-dir"] {
        assert!(text.contains(flag), "no {flag} in {text}");
    }
}

#[test]
fn a_socket_path_it_cannot_make_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_hostnet-docker"))
        .args(["--socket", "/proc/no/such/dir/hostnet.sock"])
        .output()
        .expect("run hostnet-docker");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hostnet-docker:") && err.contains("/proc/no/such/dir"),
        "{err}"
    );
}
