//! No silent green: a test that needs root fails under
//! `HOSTNET_REQUIRE_PRIV=1` (CI) and says `skipped:` elsewhere.

/// Whether this process may run privileged tests.
pub enum Privileges {
    Granted,
    Missing(String),
}

/// Check for root and a kernel that lets us make namespaces. Returns false
/// (after printing `skipped: …`) when the test should return early; panics
/// instead when `HOSTNET_REQUIRE_PRIV=1`.
pub fn require_privileges(test: &str) -> bool {
    match check() {
        Privileges::Granted => true,
        Privileges::Missing(why) => {
            if std::env::var("HOSTNET_REQUIRE_PRIV").as_deref() == Ok("1") {
                panic!("{test}: needs privileges but {why} (HOSTNET_REQUIRE_PRIV=1)");
            }
            println!("skipped: {test}: {why}");
            false
        }
    }
}

fn check() -> Privileges {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Privileges::Missing("not running as root".into());
    }
    let ok = std::process::Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        return Privileges::Missing("iproute2 (`ip`) is not installed".into());
    }
    Privileges::Granted
}

/// Whether every file in `paths` exists (programs a test runs). Like
/// [`require_privileges`]: false after `skipped: …`, or a panic under
/// `HOSTNET_REQUIRE_PRIV=1`, naming the Debian `packages` to install.
pub fn require_installed(test: &str, paths: &[&str], packages: &str) -> bool {
    let missing: Vec<&str> = paths
        .iter()
        .copied()
        .filter(|p| !std::path::Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "{} missing (apt-get install {packages})",
        missing.join(", ")
    );
    if std::env::var("HOSTNET_REQUIRE_PRIV").as_deref() == Ok("1") {
        panic!("{test}: {why} (HOSTNET_REQUIRE_PRIV=1)");
    }
    println!("skipped: {test}: {why}");
    false
}
