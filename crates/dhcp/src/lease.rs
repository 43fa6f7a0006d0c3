//! A lease and its timing (RFC 2131 §4.4.5): renew at T1, rebind at T2,
//! gone at expiry; pure, on Unix seconds.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// Lease time that never ends (RFC 2131 §3.3).
pub const INFINITE: u32 = u32::MAX;

/// Retransmissions in RENEWING and REBINDING wait at least this long
/// (RFC 2131 §4.4.5: "down to a minimum of 60 seconds").
pub const MIN_RETRY_SECS: u64 = 60;

/// An address leased from a DHCP server, with what the server said about
/// the network. Times are Unix seconds; `acquired` is when the request
/// that got the lease was first sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// The first router (option 3), the endpoint's gateway.
    pub router: Option<Ipv4Addr>,
    /// DNS servers (option 6).
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    /// Domain name (option 15).
    #[serde(default)]
    pub domain: Option<String>,
    /// The server identifier (option 54).
    pub server: Ipv4Addr,
    /// The Ethernet source of the server's answer: where unicasts to the
    /// server go (the server, or the router in front of it).
    pub server_mac: [u8; 6],
    pub acquired: u64,
    /// Lease time in seconds, [`INFINITE`] for ever.
    pub lease_secs: u32,
    /// T1 and T2, in seconds after `acquired`.
    pub t1_secs: u32,
    pub t2_secs: u32,
}

/// What a lease needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing until this time.
    WaitUntil(u64),
    /// Past T1: renew with the server that gave the lease (unicast).
    Renew,
    /// Past T2: rebind with any server (broadcast).
    Rebind,
    /// Past expiry: the address is no longer ours; a server may still
    /// take it back (rebind), but it may be given to someone else.
    Expired,
}

impl Lease {
    /// Whether the lease never ends.
    pub fn is_infinite(&self) -> bool {
        self.lease_secs == INFINITE
    }

    /// When to start renewing (T1).
    pub fn renew_at(&self) -> u64 {
        self.acquired + u64::from(self.t1_secs)
    }

    /// When to start rebinding (T2).
    pub fn rebind_at(&self) -> u64 {
        self.acquired + u64::from(self.t2_secs)
    }

    /// When the lease ends (`u64::MAX` if infinite).
    pub fn expires_at(&self) -> u64 {
        if self.is_infinite() {
            u64::MAX
        } else {
            self.acquired + u64::from(self.lease_secs)
        }
    }

    /// What the lease needs at `now`.
    pub fn step(&self, now: u64) -> Step {
        if self.is_infinite() {
            Step::WaitUntil(u64::MAX)
        } else if now < self.renew_at() {
            Step::WaitUntil(self.renew_at())
        } else if now < self.rebind_at() {
            Step::Renew
        } else if now < self.expires_at() {
            Step::Rebind
        } else {
            Step::Expired
        }
    }

    /// When to try again after an attempt at `now` got no answer: half the
    /// time left until T2 (renewing) or expiry (rebinding), at least
    /// [`MIN_RETRY_SECS`], but never past the next phase's start. Expired
    /// leases are retried every [`MIN_RETRY_SECS`].
    pub fn retry_at(&self, now: u64) -> u64 {
        let until = match self.step(now) {
            Step::WaitUntil(t) => return t,
            Step::Renew => self.rebind_at(),
            Step::Rebind => self.expires_at(),
            Step::Expired => return now + MIN_RETRY_SECS,
        };
        let half = (until - now) / 2;
        (now + half.max(MIN_RETRY_SECS)).min(until)
    }
}

/// T1 and T2 for a lease of `lease_secs`: as the server gave them, else
/// 0.5 and 0.875 of the lease (RFC 2131 §4.4.5); made consistent
/// (T1 <= T2 <= lease).
pub fn timers(lease_secs: u32, t1: Option<u32>, t2: Option<u32>) -> (u32, u32) {
    if lease_secs == INFINITE {
        return (INFINITE, INFINITE);
    }
    let l = u64::from(lease_secs);
    let t2 = t2.map_or(l * 7 / 8, u64::from).min(l);
    let t1 = t1.map_or(l / 2, u64::from).min(t2);
    (t1 as u32, t2 as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(acquired: u64, secs: u32, t1: u32, t2: u32) -> Lease {
        Lease {
            address: Ipv4Addr::new(192, 0, 2, 100),
            prefix_len: 24,
            router: Some(Ipv4Addr::new(192, 0, 2, 1)),
            dns: vec![],
            domain: None,
            server: Ipv4Addr::new(192, 0, 2, 1),
            server_mac: [2, 0, 0, 0, 0, 1],
            acquired,
            lease_secs: secs,
            t1_secs: t1,
            t2_secs: t2,
        }
    }

    #[test]
    fn default_timers_are_half_and_seven_eighths() {
        assert_eq!(timers(3600, None, None), (1800, 3150));
        assert_eq!(timers(120, Some(4), Some(8)), (4, 8));
        // A T1 after T2, or a T2 after expiry, is pulled back.
        assert_eq!(timers(100, Some(90), Some(80)), (80, 80));
        assert_eq!(timers(100, None, Some(500)), (50, 100));
        assert_eq!(timers(INFINITE, Some(5), None), (INFINITE, INFINITE));
    }

    #[test]
    fn phases_follow_t1_t2_and_expiry() {
        let l = lease(1000, 3600, 1800, 3150);
        assert_eq!(l.step(1000), Step::WaitUntil(2800));
        assert_eq!(l.step(2799), Step::WaitUntil(2800));
        assert_eq!(l.step(2800), Step::Renew);
        assert_eq!(l.step(4149), Step::Renew);
        assert_eq!(l.step(4150), Step::Rebind);
        assert_eq!(l.step(4600), Step::Expired);
        assert_eq!(l.expires_at(), 4600);
    }

    #[test]
    fn retries_halve_the_time_left_but_wait_a_minute() {
        let l = lease(0, 3600, 1800, 3150);
        // Renewing at 1800: half of 1350 s to T2.
        assert_eq!(l.retry_at(1800), 1800 + 675);
        // Close to T2 the minute wins, but not past T2.
        assert_eq!(l.retry_at(3100), 3150);
        assert_eq!(l.retry_at(3000), 3075);
        assert_eq!(l.retry_at(3050), 3110);
        // Rebinding: half the time to expiry.
        assert_eq!(l.retry_at(3150), 3150 + 225);
        assert_eq!(l.retry_at(3590), 3600);
        assert_eq!(l.retry_at(4000), 4060);
        // Bound: the retry is T1.
        assert_eq!(l.retry_at(10), 1800);
    }

    #[test]
    fn infinite_leases_never_renew() {
        let l = lease(0, INFINITE, INFINITE, INFINITE);
        assert_eq!(l.step(u64::MAX / 2), Step::WaitUntil(u64::MAX));
        assert_eq!(l.expires_at(), u64::MAX);
    }

    #[test]
    fn a_lease_round_trips_through_json() {
        let l = lease(5, 120, 4, 8);
        let s = serde_json::to_string(&l).unwrap();
        assert!(s.contains("\"Address\":\"192.0.2.100\""), "{s}");
        assert_eq!(serde_json::from_str::<Lease>(&s).unwrap(), l);
    }
}
