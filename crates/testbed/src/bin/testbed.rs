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
    kill_test_processes(prefix);
    if let Ok(out) = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
    {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            if name.starts_with(prefix) {
                kill_in_netns(name);
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

/// Kills processes a killed test run left behind: daemons whose arguments
/// name a test directory (`<tmp>/hnt-…`: hostnetd's `--state-dir`,
/// aardvark-dns's `--config`), which outlive their namespace's name.
fn kill_test_processes(prefix: &str) {
    let marker = std::env::temp_dir().join(prefix);
    let marker = marker.to_string_lossy();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in procs.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if pid != std::process::id() as i32 && args.iter().skip(1).any(|a| a.starts_with(&*marker))
        {
            // SAFETY: kill(2) with a plain pid and signal.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            println!("killed {pid} {}", args.join(" ").trim());
        }
    }
}

/// Kills every process still inside the test namespace `name`.
fn kill_in_netns(name: &str) {
    let Ok(out) = std::process::Command::new("ip")
        .args(["netns", "pids", name])
        .output()
    else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if let Ok(pid) = pid.parse::<i32>() {
            // SAFETY: kill(2) with a plain pid and signal.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            println!("killed {pid} in netns {name}");
        }
    }
}
