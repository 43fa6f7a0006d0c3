//! A small blocking etcd v3 client for hostnet's cluster mode.
//!
//! It speaks etcd's gRPC-JSON gateway (`POST /v3/kv/range` and friends,
//! served by every etcd 3.4 member on its client port) over plain HTTP/1.1,
//! so it costs the build no gRPC stack: keys and values travel as base64,
//! 64-bit numbers as strings. `https://` members are reached with rustls
//! ([`TlsFiles`]: the cluster's CA, and a client certificate if asked).
//!
//! A [`Client`] knows every member and fails over: a request goes to the
//! member that answered last, then to the others. Every request is bounded
//! by [`Timeouts`], so a dead cluster is an error within seconds, never a
//! hang. A read is retried on the next member whatever went wrong; a write
//! only when it never left (connection refused or timed out connecting):
//! once sent, it may have been applied, and the caller hears
//! [`Error::OutcomeUnknown`] instead.

mod base64;
mod http;
mod kv;
mod lease;
pub mod members;
mod tls;
mod watch;

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

pub use http::Timeouts;
pub use kv::{Compare, CompareOp, KeyValue, Txn, TxnOp, TxnOpResponse, TxnResponse};
pub use lease::LeaseId;
pub use tls::TlsFiles;
pub use watch::{Event, EventKind, Watch, WatchMessage};

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The member list or an option is malformed.
    #[error("etcd endpoints {0}")]
    Config(String),
    /// No member answered (down, unreachable, or without a quorum).
    #[error("no etcd member answered: {0}")]
    Unavailable(String),
    /// A write reached a member but no answer came back: it may or may not
    /// have been applied.
    #[error("etcd member {member} did not answer a write (it may or may not have been applied): {reason}")]
    OutcomeUnknown {
        /// The member the write went to.
        member: String,
        /// What went wrong.
        reason: String,
    },
    /// etcd refused the request (a gRPC status other than unavailable).
    #[error("etcd refused the request: {message} (gRPC code {code})")]
    Refused {
        /// The gRPC status code.
        code: i64,
        /// etcd's message, e.g. `etcdserver: request is too large`.
        message: String,
    },
    /// The answer was not what the gateway sends.
    #[error("unexpected answer from etcd member {member}: {reason}")]
    Protocol {
        /// The member that answered.
        member: String,
        /// What was wrong with the answer.
        reason: String,
    },
}

impl Error {
    /// Whether the cluster could not be reached (rather than refusing).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::OutcomeUnknown { .. })
    }
}

/// gRPC status codes that mean "try another member": UNAVAILABLE (no
/// leader, member stopping) and DEADLINE_EXCEEDED (proposal timed out).
const RETRYABLE_GRPC: [i64; 2] = [14, 4];

/// etcd's messages for requests it refused before proposing them: a write
/// refused so was not applied and may go to another member.
const NOT_PROPOSED: [&str; 3] = ["no leader", "not capable", "too many requests"];

/// Whether a request only reads (and so may be sent twice).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idempotent {
    Yes,
    No,
}

/// A client of one etcd cluster. Cheap to share between threads.
#[derive(Debug)]
pub struct Client {
    members: Vec<String>,
    /// The member that answered last: tried first.
    preferred: AtomicUsize,
    timeouts: Timeouts,
    transport: http::Transport,
}

impl Client {
    /// A client of the members in `urls` (`etcd://h1:2379,h2:2379`); does
    /// not connect yet (see [`Client::check`]). `https://` members need
    /// [`Client::with_tls`].
    pub fn new(urls: &str, timeouts: Timeouts) -> Result<Self, Error> {
        Self::with_tls(urls, timeouts, None)
    }

    /// A client that reaches `https://` members with `tls` (the cluster's
    /// CA, and a client certificate if they ask for one).
    pub fn with_tls(urls: &str, timeouts: Timeouts, tls: Option<&TlsFiles>) -> Result<Self, Error> {
        let members = members::parse(urls)?;
        let tls = match (members.tls, tls) {
            (true, Some(files)) => Some(files.client_config()?),
            (true, None) => {
                return Err(Error::Config(format!(
                    "{urls:?} is https://: give the cluster's CA (and a client certificate and key if the members require them)"
                )))
            }
            (false, Some(_)) => {
                return Err(Error::Config(format!(
                    "{urls:?}: TLS files are given but the members are not https://: write https://HOST:PORT"
                )))
            }
            (false, None) => None,
        };
        Ok(Client {
            members: members.addrs,
            preferred: AtomicUsize::new(0),
            timeouts,
            transport: http::Transport { tls },
        })
    }

    /// The members, as `host:port`.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// Whether some member answers a read, with the cluster's revision.
    pub fn check(&self) -> Result<i64, Error> {
        let (_, revision) = self.range_prefix(b"\0hostnet-etcd-check")?;
        Ok(revision)
    }

    /// The source address this host uses to reach the cluster (its
    /// address on the underlay), from a connection to the first member
    /// that accepts one.
    pub fn local_address(&self) -> Option<std::net::IpAddr> {
        self.members
            .iter()
            .find_map(|m| http::local_address(m, self.timeouts))
    }

    /// Sends one gateway request, failing over between members and trying
    /// them all again for up to [`Timeouts::retry`] while none can take it
    /// (an election); returns the JSON answer.
    fn call(&self, path: &str, body: &Value, idempotent: Idempotent) -> Result<Value, Error> {
        let body = serde_json::to_vec(body).expect("JSON values serialize");
        let deadline = std::time::Instant::now() + self.timeouts.retry;
        loop {
            match self.call_each(path, &body, idempotent) {
                Err(Error::Unavailable(why)) if std::time::Instant::now() < deadline => {
                    log::debug!("etcd {path}: {why}; trying again");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    /// One round over the members, from the preferred one.
    fn call_each(&self, path: &str, body: &[u8], idempotent: Idempotent) -> Result<Value, Error> {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut tried = Vec::new();
        for i in 0..self.members.len() {
            let index = (first + i) % self.members.len();
            let member = &self.members[index];
            match http::post(member, &self.transport, path, body, self.timeouts) {
                Ok(resp) => match answer(member, resp) {
                    Err(Error::Refused { code, message }) if RETRYABLE_GRPC.contains(&code) => {
                        let not_proposed = NOT_PROPOSED.iter().any(|m| message.contains(m));
                        if idempotent == Idempotent::No && !not_proposed {
                            return Err(Error::OutcomeUnknown {
                                member: member.clone(),
                                reason: message,
                            });
                        }
                        tried.push(format!("{member} ({message})"));
                    }
                    other => {
                        self.preferred.store(index, Ordering::Relaxed);
                        return other;
                    }
                },
                Err(http::Failure::NotSent(why)) => tried.push(format!("{member} ({why})")),
                Err(http::Failure::Sent(why)) => {
                    if idempotent == Idempotent::No {
                        self.preferred
                            .store((index + 1) % self.members.len(), Ordering::Relaxed);
                        return Err(Error::OutcomeUnknown {
                            member: member.clone(),
                            reason: why,
                        });
                    }
                    tried.push(format!("{member} ({why})"));
                }
            }
        }
        Err(Error::Unavailable(tried.join(", ")))
    }
}

/// The JSON of a gateway response, or etcd's error in it.
fn answer(member: &str, resp: http::Response) -> Result<Value, Error> {
    let protocol = |reason: String| Error::Protocol {
        member: member.to_string(),
        reason,
    };
    let v: Value = serde_json::from_slice(&resp.body).map_err(|e| {
        protocol(format!(
            "HTTP {} with a body that is not JSON ({e}): {}",
            resp.status,
            String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)])
        ))
    })?;
    if resp.status == 200 {
        return Ok(v);
    }
    let message = v
        .get("message")
        .or_else(|| v.get("error"))
        .and_then(Value::as_str)
        .unwrap_or("no message")
        .to_string();
    Err(Error::Refused {
        code: v.get("code").and_then(Value::as_i64).unwrap_or(2),
        message,
    })
}

/// A 64-bit number of a gateway answer (sent as a string; absent means 0).
fn int(v: &Value, field: &str) -> i64 {
    match v.get(field) {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// The revision in an answer's header.
fn header_revision(v: &Value) -> i64 {
    v.get("header").map(|h| int(h, "revision")).unwrap_or(0)
}

/// The end of the range of every key starting with `prefix` (etcd's
/// `range_end` convention: the prefix with its last byte incremented).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every key: etcd's "\0" range end.
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
    }

    #[test]
    fn unavailable_cluster_fails_fast_with_every_member_named() {
        // Nothing listens on port 1 of loopback: refused at once.
        let c = Client::new("etcd://127.0.0.1:1,127.0.0.2:1", Timeouts::default()).unwrap();
        let start = std::time::Instant::now();
        let err = c.check().unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("127.0.0.1:1") && msg.contains("127.0.0.2:1"),
            "{msg}"
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(4));
    }
}
