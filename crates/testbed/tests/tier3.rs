//! The tier-3 runner: boots Debian's stock cloud kernel under qemu with
//! hostnet's binaries and `tier3_guest`'s tests inside, and reports each
//! test's verdict here (the guest's console too when one fails).
//!
//! `cargo test -p hostnet-testbed --test tier3 [-- FILTER…]`; set
//! `HOSTNET_TIER3_ECHO=1` to watch the guest's console as it runs.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use hostnet_testbed::tier3::{self, Boot, Image, Verdict};

const TEST: &str = "tier3";

fn main() -> ExitCode {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if std::env::args().any(|a| a == "--list") {
        // cargo's `--list` asks what tests there are: the guest's.
        return ExitCode::SUCCESS;
    }
    if !hostnet_testbed::require_privileges(TEST) {
        return ExitCode::SUCCESS;
    }
    match run(&filters) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(why) if std::env::var("HOSTNET_REQUIRE_PRIV").as_deref() == Ok("1") => {
            eprintln!("{TEST}: {why} (HOSTNET_REQUIRE_PRIV=1)");
            ExitCode::FAILURE
        }
        Err(why) => {
            println!("skipped: {TEST}: {why}");
            ExitCode::SUCCESS
        }
    }
}

/// Ok(passed) once the guest ran; Err when the VM could not be set up.
fn run(filters: &[String]) -> Result<bool, String> {
    let started = Instant::now();
    tier3::ensure_qemu()?;
    let kernel = tier3::debian_cloud_kernel()?;
    let tests = tier3::test_binary("tier3_guest")?;
    let binaries = hostnet_testbed::workspace_binary("hostnetd")
        .parent()
        .expect("target dir")
        .to_path_buf();
    let scratch = std::env::temp_dir().join(format!("hostnet-tier3-{}", std::process::id()));
    let initrd = scratch.join("initramfs.cpio");
    let built = tier3::build(&Image {
        kernel: &kernel,
        tests: &tests,
        binaries: &binaries,
        filters,
        out: &initrd,
        scratch: &scratch,
    });
    let result = built.and_then(|bytes| {
        println!(
            "tier3: kernel {}, initramfs {} MiB built in {:.1} s",
            kernel.version,
            bytes >> 20,
            started.elapsed().as_secs_f64()
        );
        tier3::boot(&Boot {
            kernel: kernel.image.clone(),
            initrd: initrd.clone(),
            memory_mb: 2048,
            cpus: 2,
            timeout: Duration::from_secs(600),
            echo: std::env::var("HOSTNET_TIER3_ECHO").is_ok(),
        })
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let console = result?;
    let report = tier3::report(&console.text);
    for (name, verdict) in &report.tests {
        let v = match verdict {
            Verdict::Passed => "ok",
            Verdict::Failed => "FAILED",
            Verdict::Ignored => "ignored",
        };
        println!("test tier3_guest::{name} ... {v}");
    }
    // A guest test that could not run says so on the console, and one
    // that measured something (a failover's interruption) says what.
    let relayed = |l: &&str| l.contains("skipped:") || l.contains("measured:");
    for line in console.text.lines().filter(relayed) {
        println!("tier3_guest: {}", line.trim());
    }
    let passed = report.passed() && !console.timed_out;
    println!(
        "tier3: {} tests in the guest, {} in {:.1} s{}",
        report.tests.len(),
        if passed { "passed" } else { "FAILED" },
        console.elapsed.as_secs_f64(),
        if console.timed_out {
            " (timed out)"
        } else {
            ""
        },
    );
    if !passed {
        println!("---- guest console ----\n{}\n---- end ----", console.text);
    }
    Ok(passed)
}
