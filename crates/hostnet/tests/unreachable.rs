//! The CLI without a daemon: one clear line and a non-zero exit.

use std::process::Command;

#[test]
fn no_daemon_is_one_line_naming_the_socket() {
    let out = Command::new(env!("CARGO_BIN_EXE_hostnet"))
        .args(["--socket", "/nonexistent/hostnet.sock", "network", "ls"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("hostnet: cannot reach hostnetd at /nonexistent/hostnet.sock"),
        "{err}"
    );
}
