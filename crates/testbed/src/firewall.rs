//! The seed's endpoint firewall defaults, checked with packets: inbound
//! TCP, UDP, ICMP, ICMPv6 and IGMP pass, other protocols are dropped;
//! outbound everything passes.

use std::path::Path;

use crate::{Container, Probe};

/// GRE sent to `target` from every namespace in `senders` never arrives,
/// while ping and UDP from them do; GRE from `target` to `outside`
/// (listening at `outside_addr`) arrives with the target's own address.
pub fn assert_defaults_hold(
    target: &Container,
    senders: &[&Path],
    outside: &Path,
    outside_addr: &str,
) {
    let listen = target.serve(&["raw-listen", "47"]);
    for from in senders {
        let (ok, said) = Probe::run(from, &["raw-send", "47", &target.ip]);
        assert!(ok, "raw-send from {}: {said}", from.display());
    }
    // ICMP and UDP pass on the same paths, after the GRE packets.
    for from in senders {
        let (ok, said) = Probe::run(from, &["ping", &target.ip]);
        assert!(ok, "ping {} -> {}: {said}", from.display(), target.ip);
    }
    let udp = target.serve(&["udp-serve", "0.0.0.0:5353"]);
    let (ok, said) = Probe::run(senders[0], &["udp-get", &format!("{}:5353", target.ip)]);
    assert!(ok, "UDP {} -> {}: {said}", senders[0].display(), target.ip);
    assert!(udp.next_line().is_some_and(|l| l.starts_with("peer ")));
    // A marker from inside: the first packet the listener saw must be it,
    // so no GRE from outside got in before.
    assert!(target.run(&["raw-send", "47", "127.0.0.1"]).0);
    assert_eq!(
        listen.next_line().as_deref(),
        Some("got 127.0.0.1"),
        "GRE from outside the container reached {}",
        target.ip
    );
    // Outbound GRE is allowed, and leaves with the container's address.
    let out = Probe::serve(outside, &["raw-listen", "47"]);
    assert!(target.run(&["raw-send", "47", outside_addr]).0);
    assert_eq!(out.next_line(), Some(format!("got {}", target.ip)));
}
