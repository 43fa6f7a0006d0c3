//! Debian's stock cloud kernel for the tier-3 VM, fetched with apt and
//! unpacked into a cache (never installed: the machine's own boot setup
//! stays as it is).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the unpacked kernel is kept between runs.
pub const CACHE: &str = "/var/cache/hostnet-tier3";
/// Debian's metapackage that depends on the current cloud kernel.
const METAPACKAGE: &str = "linux-image-cloud-amd64";

/// A kernel image and its modules tree (`depmod` already run on it).
#[derive(Clone, Debug)]
pub struct Kernel {
    pub image: PathBuf,
    /// `…/lib/modules/<version>`.
    pub modules: PathBuf,
    pub version: String,
}

/// The cached kernel, downloading and unpacking it first if needed.
pub fn debian_cloud_kernel() -> Result<Kernel, String> {
    let root = Path::new(CACHE).join("kernel");
    if let Some(k) = find(&root) {
        return Ok(k);
    }
    let download = Path::new(CACHE).join("download");
    let _ = fs::remove_dir_all(&download);
    fs::create_dir_all(&download).map_err(|e| format!("{}: {e}", download.display()))?;
    let meta = apt_download(&download, METAPACKAGE)?;
    let image_package = depends_on(&meta)?;
    let deb = apt_download(&download, &image_package)?;
    let staging = Path::new(CACHE).join("kernel.partial");
    let _ = fs::remove_dir_all(&staging);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&staging))?;
    let k =
        find(&staging).ok_or_else(|| format!("{image_package} holds no vmlinuz and modules"))?;
    run(Command::new("depmod")
        .arg("-b")
        .arg(&staging)
        .arg(&k.version))?;
    fs::rename(&staging, &root).map_err(|e| format!("{}: {e}", root.display()))?;
    let _ = fs::remove_dir_all(&download);
    find(&root).ok_or_else(|| "the unpacked kernel vanished".into())
}

/// The kernel unpacked under `root`. The cache's `kernel` directory is
/// complete when it exists: it is renamed into place last.
fn find(root: &Path) -> Option<Kernel> {
    let boot = fs::read_dir(root.join("boot")).ok()?;
    for entry in boot.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(version) = name.strip_prefix("vmlinuz-") {
            let modules = root.join("lib/modules").join(version);
            if modules.is_dir() {
                return Some(Kernel {
                    image: entry.path(),
                    modules,
                    version: version.to_string(),
                });
            }
        }
    }
    None
}

/// `apt-get download PACKAGE` into `dir`, updating the package lists once
/// if they do not know it; returns the `.deb`.
fn apt_download(dir: &Path, package: &str) -> Result<PathBuf, String> {
    let attempt = || {
        Command::new("apt-get")
            .args(["download", "-qq", package])
            .current_dir(dir)
            .output()
    };
    let mut out = attempt().map_err(|e| format!("apt-get: {e}"))?;
    if !out.status.success() {
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        out = attempt().map_err(|e| format!("apt-get: {e}"))?;
    }
    if !out.status.success() {
        return Err(format!(
            "apt-get download {package} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
        })
        .ok_or_else(|| format!("apt-get download {package} left no .deb"))
}

/// The kernel image package a metapackage depends on.
fn depends_on(meta: &Path) -> Result<String, String> {
    let out = Command::new("dpkg-deb")
        .args(["-f"])
        .arg(meta)
        .arg("Depends")
        .output()
        .map_err(|e| format!("dpkg-deb: {e}"))?;
    parse_image_dependency(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| format!("{} depends on no linux-image", meta.display()))
}

/// `linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)` → the package name.
pub fn parse_image_dependency(depends: &str) -> Option<String> {
    depends
        .split(',')
        .map(|d| d.split_whitespace().next().unwrap_or(""))
        .find(|name| name.starts_with("linux-image-"))
        .map(str::to_string)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metapackage_names_the_image_package() {
        assert_eq!(
            parse_image_dependency("linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)").as_deref(),
            Some("linux-image-6.1.0-56-cloud-amd64")
        );
        assert_eq!(parse_image_dependency("libc6 (>= 2.36)"), None);
    }
}
