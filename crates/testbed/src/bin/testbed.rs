//! hostnet-testbed: housekeeping for the namespace testbed.
//!
//! `hostnet-testbed sweep` removes what killed test runs left behind: the
//! `hnt-*` network namespaces, mounts below `$TMPDIR/hnt-*`, and those
//! directories. It touches nothing else.

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("sweep") => sweep(),
        _ => {
            eprintln!("usage: hostnet-testbed sweep");
            std::process::exit(2);
        }
    }
}

fn sweep() {
    let prefix = hostnet_testbed::PREFIX;
    if let Ok(out) = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
    {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            if name.starts_with(prefix) {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", name])
                    .status();
                println!("removed netns {name}");
            }
        }
    }
    let tmp = std::env::temp_dir();
    if let Ok(dir) = std::fs::read_dir(&tmp) {
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                hostnet_testbed::unmount_below(&e.path());
                let _ = std::fs::remove_dir_all(e.path());
                println!("removed {}", e.path().display());
            }
        }
    }
}
