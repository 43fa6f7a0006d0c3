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
