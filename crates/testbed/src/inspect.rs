//! Reading a namespace's kernel state in tests: `ip` output, MACs,
//! neighbours and what a switch has learnt.

use std::path::Path;

use crate::Probe;

/// `ip ARGS` in the namespace at `ns`: its output (panics on failure).
pub fn ip_out(ns: &Path, args: &[&str]) -> String {
    let out = Probe::command(ns, "ip")
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {} in {}: {}",
        args.join(" "),
        ns.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The word after `key` in `text`.
pub fn word_after(text: &str, key: &str) -> Option<String> {
    text.split_whitespace()
        .skip_while(|w| *w != key)
        .nth(1)
        .map(str::to_string)
}

/// The MAC of link `dev` in `ns`.
pub fn mac(ns: &Path, dev: &str) -> String {
    let link = ip_out(ns, &["-o", "link", "show", "dev", dev]);
    word_after(&link, "link/ether").unwrap_or_else(|| panic!("no MAC on {dev}: {link}"))
}

/// The MAC `ns` has learnt for neighbour `addr`, if any.
pub fn neighbour(ns: &Path, addr: &str) -> Option<String> {
    word_after(&ip_out(ns, &["neigh", "show", addr]), "lladdr")
}

/// The interface of `ns` holding IPv4 address `addr`.
pub fn iface_with(ns: &Path, addr: &str) -> String {
    ip_out(ns, &["-o", "-4", "addr", "show"])
        .lines()
        .find(|l| l.contains(&format!(" inet {addr}/")))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no interface holds {addr} in {}", ns.display()))
        .to_string()
}

/// The MACs a Linux bridge in `ns` has learnt from traffic (dynamic FDB
/// entries), lower case.
pub fn learnt_macs(ns: &Path) -> Vec<String> {
    let out = Probe::command(ns, "bridge")
        .args(["fdb", "show", "dynamic"])
        .output()
        .expect("run bridge");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_lowercase))
        .collect()
}

/// Whether `ns` accepts `vip` as its own the way hostnet makes a DSR or
/// PreserveDip backend do it: a `local` route on loopback in the local
/// table (`proto static`). Panics if `vip` is an address on loopback
/// instead (how earlier versions did it).
pub fn accepts_vip(ns: &Path, vip: &str) -> bool {
    let addresses = ip_out(ns, &["-4", "-o", "addr", "show", "dev", "lo"]);
    assert!(
        !addresses.contains(&format!(" {vip}/")),
        "{vip} as an address on lo of {}: {addresses}",
        ns.display()
    );
    let routes = ip_out(
        ns,
        &["-4", "route", "show", "table", "local", "proto", "static"],
    );
    routes.lines().any(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words.get(..2) == Some(&["local", vip][..]) && words.windows(2).any(|w| w == ["dev", "lo"])
    })
}
