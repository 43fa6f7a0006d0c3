//! The guest's initramfs: busybox as its userland, the kernel's modules,
//! the host's networking tools with their libraries, hostnet's binaries and
//! the guest test program, and an `/init` that runs the tests and powers
//! off.

use std::path::{Path, PathBuf};
use std::process::Command;

use hostnet_microvm::cpio::Archive;
use hostnet_microvm::initramfs::find_busybox;
use hostnet_microvm::libs;

use super::kernel::Kernel;
use super::vm::EXIT_MARKER;
use super::{which, GUEST_ENV};

/// Tools the testbed and hostnetd run by name (`nft` loads tables, the
/// testbed drives `ip`). Missing optional ones are left out.
const REQUIRED_TOOLS: &[&str] = &["ip", "nft"];
const OPTIONAL_TOOLS: &[&str] = &["nsenter", "tcpdump", "iperf3", "bridge"];
/// Loaded at boot; the rest (nftables expressions, conntrack) the kernel
/// loads on demand through `/sbin/modprobe`.
const BOOT_MODULES: &[&str] = &["veth", "bridge", "vxlan", "tun", "8021q", "bonding"];
/// hostnet's binaries, next to the guest test program as cargo lays them
/// out, so `workspace_binary` finds them.
const WORKSPACE_BINARIES: &[&str] = &["hostnetd", "hostnet", "hostnet-probe"];

/// What goes into one guest image.
pub struct Image<'a> {
    pub kernel: &'a Kernel,
    /// The guest test program (a libtest binary).
    pub tests: &'a Path,
    /// The directory holding hostnet's built binaries.
    pub binaries: &'a Path,
    /// Arguments after `--ignored` (test name filters).
    pub filters: &'a [String],
    /// Where to write the initramfs.
    pub out: &'a Path,
    /// Scratch directory for stripped copies.
    pub scratch: &'a Path,
}

/// Writes the initramfs; returns its size in bytes.
pub fn build(img: &Image) -> Result<u64, String> {
    let io = |e: std::io::Error| format!("initramfs: {e}");
    let mut programs: Vec<(String, PathBuf)> = Vec::new();
    for tool in REQUIRED_TOOLS {
        let p = which(tool).ok_or_else(|| format!("{tool} is not installed"))?;
        programs.push((format!("/usr/sbin/{tool}"), p));
    }
    for tool in OPTIONAL_TOOLS {
        if let Some(p) = which(tool) {
            programs.push((format!("/usr/sbin/{tool}"), p));
        }
    }
    std::fs::create_dir_all(img.scratch).map_err(io)?;
    for name in WORKSPACE_BINARIES {
        let built = img.binaries.join(name);
        if !built.exists() {
            return Err(format!(
                "{} is not built: run `cargo build --workspace`",
                built.display()
            ));
        }
        programs.push((format!("/t3/bin/{name}"), stripped(&built, img.scratch)?));
    }
    programs.push((
        "/t3/bin/deps/tier3_guest".into(),
        stripped(img.tests, img.scratch)?,
    ));
    let binaries: Vec<PathBuf> = programs.iter().map(|(_, p)| p.clone()).collect();
    let libraries = libs::closure(&binaries)?;

    let mut a = Archive::create(img.out).map_err(io)?;
    for d in [
        "/bin",
        "/sbin",
        "/usr",
        "/usr/bin",
        "/usr/sbin",
        "/lib",
        "/lib64",
        "/etc",
        "/proc",
        "/sys",
        "/dev",
        "/tmp",
        "/run",
        "/var",
        "/var/lib",
        "/root",
        "/t3",
        "/t3/bin",
        "/t3/bin/deps",
    ] {
        a.dir(d, 0o755).map_err(io)?;
    }
    a.symlink("/var/run", "/run").map_err(io)?;
    a.copy("/bin/busybox", 0o755, &find_busybox()?)
        .map_err(io)?;
    a.file("/init", 0o755, init_script(img.filters).as_bytes())
        .map_err(io)?;
    // tcpdump drops privileges to its own user after opening the capture.
    a.file(
        "/etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\ntcpdump:x:100:100::/nonexistent:/bin/false\n",
    )
    .map_err(io)?;
    a.file("/etc/group", 0o644, b"root:x:0:\ntcpdump:x:100:\n")
        .map_err(io)?;
    a.file("/etc/hosts", 0o644, b"127.0.0.1 localhost\n")
        .map_err(io)?;
    let mut made = std::collections::BTreeSet::new();
    for lib in &libraries {
        dirs_for(&mut a, &mut made, lib)?;
        a.copy(&lib.to_string_lossy(), 0o755, lib).map_err(io)?;
    }
    for (at, from) in &programs {
        a.copy(at, 0o755, from).map_err(io)?;
    }
    let modules_at = format!("/lib/modules/{}", img.kernel.version);
    a.dir("/lib/modules", 0o755).map_err(io)?;
    copy_tree(&mut a, &img.kernel.modules, &modules_at)?;
    a.finish().map_err(io)?;
    Ok(std::fs::metadata(img.out).map_err(io)?.len())
}

/// The guest's PID 1.
fn init_script(filters: &[String]) -> String {
    let filters: Vec<String> = filters.iter().map(|f| shell_quote(f)).collect();
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
ip link set lo up
echo "hostnet-tier3: booted in $(cut -d' ' -f1 /proc/uptime) s, kernel $(uname -r)"
for m in {modules}; do modprobe "$m" || echo "hostnet-tier3: modprobe $m failed"; done
cd /t3
{env}=guest HOSTNET_REQUIRE_PRIV=1 RUST_BACKTRACE=1 /t3/bin/deps/tier3_guest --ignored --test-threads="$(nproc)" {filters} 2>&1
echo "{marker}$?"
poweroff -f
"#,
        modules = BOOT_MODULES.join(" "),
        env = GUEST_ENV,
        filters = filters.join(" "),
        marker = EXIT_MARKER,
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A copy of `binary` without debug information (hostnet's debug builds
/// are ten times their stripped size, and the guest holds all in RAM).
fn stripped(binary: &Path, scratch: &Path) -> Result<PathBuf, String> {
    let name = binary.file_name().ok_or("binary without a name")?;
    let out = scratch.join(name);
    let status = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(binary)
        .status();
    match status {
        Ok(s) if s.success() => Ok(out),
        _ => Ok(binary.to_path_buf()),
    }
}

/// The directories above `file` not yet in the archive.
fn dirs_for<W: std::io::Write>(
    a: &mut Archive<W>,
    made: &mut std::collections::BTreeSet<String>,
    file: &Path,
) -> Result<(), String> {
    let mut above: Vec<String> = file
        .ancestors()
        .skip(1)
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p != "/" && !p.is_empty())
        .collect();
    above.reverse();
    for d in above {
        if made.insert(d.clone()) {
            a.dir(&d, 0o755).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Every directory and file below `from`, placed at `to` in the archive.
fn copy_tree<W: std::io::Write>(a: &mut Archive<W>, from: &Path, to: &str) -> Result<(), String> {
    let io = |e: std::io::Error| format!("{}: {e}", from.display());
    a.dir(to, 0o755).map_err(io)?;
    let mut entries: Vec<_> = std::fs::read_dir(from).map_err(io)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let at = format!("{to}/{}", e.file_name().to_string_lossy());
        let ty = e.file_type().map_err(io)?;
        if ty.is_dir() {
            copy_tree(a, &e.path(), &at)?;
        } else if ty.is_symlink() {
            // The Debian tree's `build`/`source` links point outside it.
            continue;
        } else {
            a.copy(&at, 0o644, &e.path()).map_err(io)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_runs_the_ignored_tests_with_quoted_filters_and_reports_the_exit() {
        let s = init_script(&["vlan".into(), "it's".into()]);
        assert!(s.starts_with("#!/bin/busybox sh\n"));
        assert!(s.contains("tier3_guest --ignored"));
        assert!(s.contains(r"'vlan' 'it'\''s'"));
        assert!(s.contains("echo \"hostnet-tier3: exit $?\""));
        assert!(s.contains("modprobe \"$m\""));
        assert!(s.trim_end().ends_with("poweroff -f"));
    }
}
