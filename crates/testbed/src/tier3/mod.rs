//! Tier 3: tests that need kernel modules this machine's kernel lacks
//! (8021q, bonding) run inside a VM booting Debian's stock cloud kernel.
//!
//! The runner (`tests/tier3.rs`) builds an initramfs holding busybox,
//! the kernel's modules, this machine's `ip`/`nft`/… with their
//! libraries, hostnet's binaries and the guest test program
//! (`tests/tier3_guest.rs`, whose tests are `#[ignore]`d on the host), boots
//! it under qemu, and reports each guest test's verdict, with the guest's
//! console when something failed.

mod image;
pub mod kernel;
pub mod vm;

pub use image::{build, Image};
pub use kernel::{debian_cloud_kernel, Kernel};
pub use vm::{boot, report, Boot, Report, Verdict};

use std::path::{Path, PathBuf};
use std::process::Command;

/// Set in the guest's environment: tests that only make sense there can
/// tell where they are.
pub const GUEST_ENV: &str = "HOSTNET_TIER3";

/// True inside the tier-3 VM.
pub fn in_guest() -> bool {
    std::env::var(GUEST_ENV).as_deref() == Ok("guest")
}

/// qemu, installed from Debian if missing (the runner installs what it
/// needs, as CI does for the other tests).
pub fn ensure_qemu() -> Result<(), String> {
    if which("qemu-system-x86_64").is_some() {
        return Ok(());
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(["qemu-system-x86", "kmod"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("apt-get: {e}"))?;
    match which("qemu-system-x86_64") {
        Some(_) => Ok(()),
        None => Err(format!(
            "qemu-system-x86_64 is not installed and apt-get install qemu-system-x86 failed ({status})"
        )),
    }
}

/// The newest build of a test target `name` in the `deps` directory next
/// to the running test executable (cargo builds every test target before
/// running any).
pub fn test_binary(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let deps = exe.parent().ok_or("test executable has no directory")?;
    let prefix = format!("{name}-");
    std::fs::read_dir(deps)
        .map_err(|e| format!("{}: {e}", deps.display()))?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) && !n.contains('.')
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
        .ok_or_else(|| {
            format!(
                "no build of test target {name} in {}: run `cargo test -p hostnet-testbed` (it builds it)",
                deps.display()
            )
        })
}

/// A program on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
