//! Leases: keys that vanish when their owner stops renewing them.

use serde_json::json;

use crate::{int, Client, Error, Idempotent};

/// A granted lease and its TTL in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseId {
    pub id: i64,
    pub ttl: i64,
}

impl Client {
    /// Grants a lease of `ttl` seconds.
    pub fn lease_grant(&self, ttl: i64) -> Result<LeaseId, Error> {
        // Not retried on another member once sent: a lost answer leaves an
        // unused lease that expires by itself.
        let v = self.call("/v3/lease/grant", &json!({"TTL": ttl}), Idempotent::No)?;
        let id = int(&v, "ID");
        if id == 0 {
            return Err(Error::Protocol {
                member: "lease/grant".into(),
                reason: format!("no lease ID in {v}"),
            });
        }
        Ok(LeaseId {
            id,
            ttl: int(&v, "TTL"),
        })
    }

    /// Renews lease `id` once; returns its new TTL, or None when it has
    /// expired (or was revoked): keys attached to it are gone.
    pub fn lease_keepalive(&self, id: i64) -> Result<Option<i64>, Error> {
        // The gateway's keepalive is a stream; one request in the body gets
        // one `{"result": ...}` and the stream ends. Renewing twice is harmless.
        let v = match self.call(
            "/v3/lease/keepalive",
            &json!({"ID": id.to_string()}),
            Idempotent::Yes,
        ) {
            // etcd usually answers TTL 0 for a lease it no longer has, but
            // a member forwarding to a new leader may say so as an error:
            // both mean "expired", and the caller must register again.
            Err(Error::Refused { message, .. }) if message.contains("lease not found") => {
                return Ok(None)
            }
            other => other?,
        };
        let ttl = v.get("result").map(|r| int(r, "TTL")).unwrap_or(0);
        Ok((ttl > 0).then_some(ttl))
    }

    /// Revokes lease `id`, deleting its keys at once; revoking an expired
    /// lease is not an error.
    pub fn lease_revoke(&self, id: i64) -> Result<(), Error> {
        match self.call(
            "/v3/lease/revoke",
            &json!({"ID": id.to_string()}),
            Idempotent::Yes,
        ) {
            Err(Error::Refused { message, .. }) if message.contains("lease not found") => Ok(()),
            other => other.map(|_| ()),
        }
    }
}
