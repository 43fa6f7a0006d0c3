//! `br_netfilter`: bridged IPv4 and IPv6 through the `inet` hooks.
//!
//! hostnet's ACLs judge traffic between endpoints of one bridge in the
//! `inet` table, which bridged frames reach only through `br_netfilter`
//! with `bridge-nf-call-iptables=1` (and, for a dual-stack endpoint's
//! IPv6, `bridge-nf-call-ip6tables=1`; docs/policy.md). Some kernels build it
//! in; Debian's stock kernel has it as a module that nothing loads until
//! someone asks (Docker does, with `modprobe`), and a module loaded later
//! gives every namespace the knob, set to 1.

use std::io;
use std::process::Command;

/// The knob, as the reading thread's network namespace has it.
const KNOB: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";
/// Its IPv6 twin (the same module makes both).
const KNOB6: &str = "/proc/sys/net/bridge/bridge-nf-call-ip6tables";

/// Loads `br_netfilter` if the daemon's namespace has no knob yet, and
/// says whether bridged IPv4 and IPv6 both reach the `inet` hooks there. `in_home`
/// runs a closure in the daemon's namespace.
pub(super) fn ensure(
    in_home: impl Fn(Box<dyn FnOnce() -> io::Result<String> + Send>) -> io::Result<io::Result<String>>,
) -> Result<bool, crate::DataplaneError> {
    let fail = |m: String| crate::DataplaneError::new("load br_netfilter", m);
    let read = || in_home(Box::new(|| std::fs::read_to_string(KNOB))).and_then(|r| r);
    let value = match read() {
        Ok(v) => v,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let out = Command::new("modprobe")
                .arg("br_netfilter")
                .output()
                .map_err(|e| fail(format!("run modprobe: {e}")))?;
            if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                return Err(fail(format!("modprobe br_netfilter: {}", stderr.trim())));
            }
            read().map_err(|e| fail(format!("read {KNOB} after loading it: {e}")))?
        }
        Err(e) => return Err(fail(format!("read {KNOB}: {e}"))),
    };
    let value6 = in_home(Box::new(|| std::fs::read_to_string(KNOB6)))
        .and_then(|r| r)
        .map_err(|e| fail(format!("read {KNOB6}: {e}")))?;
    Ok(value.trim() == "1" && value6.trim() == "1")
}
