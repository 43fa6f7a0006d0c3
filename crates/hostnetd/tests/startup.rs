//! hostnetd's command line and start-up errors (no privileges needed).

use std::process::Command;

fn hostnetd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hostnetd"))
}

#[test]
fn help_names_the_main_options() {
    let out = hostnetd().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--socket",
        "--state-dir",
        "--default-subnet",
        "--no-default-network",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn an_unusable_state_dir_is_one_clear_error() {
    let dir = std::env::temp_dir().join(format!("hostnetd-test-{}", std::process::id()));
    std::fs::write(&dir, b"a file, not a directory").unwrap();
    let out = hostnetd()
        .arg("--state-dir")
        .arg(&dir)
        .arg("--socket")
        .arg(dir.with_extension("sock"))
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hostnetd: cannot create state dir"), "{err}");
}
