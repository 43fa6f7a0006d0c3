//! Keys and values: range, put, delete and transactions.

use serde_json::{json, Map, Value};

use crate::base64;
use crate::{header_revision, int, prefix_end, Client, Error, Idempotent};

/// One key and its value, with etcd's revisions of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// The revision that created the key (0: absent).
    pub create_revision: i64,
    /// The revision of its last change.
    pub mod_revision: i64,
    /// The lease it is attached to (0: none).
    pub lease: i64,
}

impl KeyValue {
    pub(crate) fn from_json(v: &Value) -> Result<Self, String> {
        let bytes = |field: &str| match v.get(field).and_then(Value::as_str) {
            None => Ok(Vec::new()),
            Some(s) => base64::decode(s).ok_or_else(|| format!("{field} {s:?} is not base64")),
        };
        Ok(KeyValue {
            key: bytes("key")?,
            value: bytes("value")?,
            create_revision: int(v, "create_revision"),
            mod_revision: int(v, "mod_revision"),
            lease: int(v, "lease"),
        })
    }
}

/// How a [`Compare`] compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Greater,
    Less,
}

impl CompareOp {
    fn wire(self) -> &'static str {
        match self {
            CompareOp::Equal => "EQUAL",
            CompareOp::NotEqual => "NOT_EQUAL",
            CompareOp::Greater => "GREATER",
            CompareOp::Less => "LESS",
        }
    }
}

/// A condition of a [`Txn`] on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compare {
    /// The key's create revision (0 when it does not exist).
    CreateRevision(Vec<u8>, CompareOp, i64),
    /// The key's last modification revision.
    ModRevision(Vec<u8>, CompareOp, i64),
    /// The key's value.
    Value(Vec<u8>, CompareOp, Vec<u8>),
}

impl Compare {
    /// True when `key` does not exist: a create-only put's condition.
    pub fn absent(key: &[u8]) -> Self {
        Compare::CreateRevision(key.to_vec(), CompareOp::Equal, 0)
    }

    fn to_json(&self) -> Value {
        let (key, op, target, field, operand) = match self {
            Compare::CreateRevision(k, op, r) => {
                (k, op, "CREATE", "create_revision", json!(r.to_string()))
            }
            Compare::ModRevision(k, op, r) => (k, op, "MOD", "mod_revision", json!(r.to_string())),
            Compare::Value(k, op, v) => (k, op, "VALUE", "value", json!(base64::encode(v))),
        };
        let mut m = Map::new();
        m.insert("key".into(), json!(base64::encode(key)));
        m.insert("result".into(), json!(op.wire()));
        m.insert("target".into(), json!(target));
        m.insert(field.into(), operand);
        Value::Object(m)
    }
}

/// An operation of a [`Txn`] branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOp {
    /// Set a key, attached to a lease if not 0.
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: i64,
    },
    /// Delete a key, or every key with it as prefix.
    Delete { key: Vec<u8>, prefix: bool },
    /// Read a key, or every key with it as prefix.
    Get { key: Vec<u8>, prefix: bool },
}

impl TxnOp {
    /// A put without a lease.
    pub fn put(key: &[u8], value: &[u8]) -> Self {
        TxnOp::Put {
            key: key.to_vec(),
            value: value.to_vec(),
            lease: 0,
        }
    }

    /// A delete of one key.
    pub fn delete(key: &[u8]) -> Self {
        TxnOp::Delete {
            key: key.to_vec(),
            prefix: false,
        }
    }

    /// A read of one key.
    pub fn get(key: &[u8]) -> Self {
        TxnOp::Get {
            key: key.to_vec(),
            prefix: false,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            TxnOp::Put { key, value, lease } => {
                json!({"request_put": put_body(key, value, *lease)})
            }
            TxnOp::Delete { key, prefix } => {
                json!({"request_delete_range": key_range(key, *prefix)})
            }
            TxnOp::Get { key, prefix } => json!({"request_range": key_range(key, *prefix)}),
        }
    }
}

/// The answer to one [`TxnOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOpResponse {
    Put,
    Delete { deleted: i64 },
    Get(Vec<KeyValue>),
}

/// An etcd transaction: if every compare holds, the success ops run,
/// otherwise the failure ops; atomically, at one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
}

/// What a [`Txn`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether the compares held (the success branch ran).
    pub succeeded: bool,
    /// The cluster revision after the transaction.
    pub revision: i64,
    /// One answer per op of the branch that ran.
    pub responses: Vec<TxnOpResponse>,
}

fn key_range(key: &[u8], prefix: bool) -> Value {
    let mut m = Map::new();
    m.insert("key".into(), json!(base64::encode(key)));
    if prefix {
        m.insert("range_end".into(), json!(base64::encode(&prefix_end(key))));
    }
    Value::Object(m)
}

fn put_body(key: &[u8], value: &[u8], lease: i64) -> Value {
    let mut m = Map::new();
    m.insert("key".into(), json!(base64::encode(key)));
    m.insert("value".into(), json!(base64::encode(value)));
    if lease != 0 {
        m.insert("lease".into(), json!(lease.to_string()));
    }
    Value::Object(m)
}

fn kvs(member: &str, v: &Value) -> Result<Vec<KeyValue>, Error> {
    v.get("kvs")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(KeyValue::from_json).collect::<Result<_, _>>())
        .unwrap_or(Ok(Vec::new()))
        .map_err(|reason| Error::Protocol {
            member: member.to_string(),
            reason,
        })
}

impl Client {
    /// The value of `key`, if it exists.
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, Error> {
        let v = self.call("/v3/kv/range", &key_range(key, false), Idempotent::Yes)?;
        Ok(kvs("range", &v)?.into_iter().next())
    }

    /// Every key starting with `prefix`, sorted by key, and the revision
    /// they were read at (watch from the one after it to miss nothing).
    pub fn range_prefix(&self, prefix: &[u8]) -> Result<(Vec<KeyValue>, i64), Error> {
        let v = self.call("/v3/kv/range", &key_range(prefix, true), Idempotent::Yes)?;
        Ok((kvs("range", &v)?, header_revision(&v)))
    }

    /// Sets `key` to `value` (attached to `lease` unless it is 0); returns
    /// the revision of the change.
    pub fn put(&self, key: &[u8], value: &[u8], lease: i64) -> Result<i64, Error> {
        let v = self.call("/v3/kv/put", &put_body(key, value, lease), Idempotent::No)?;
        Ok(header_revision(&v))
    }

    /// Deletes `key` (or every key under it as a prefix); returns how many
    /// keys went.
    pub fn delete(&self, key: &[u8], prefix: bool) -> Result<i64, Error> {
        let v = self.call(
            "/v3/kv/deleterange",
            &key_range(key, prefix),
            Idempotent::No,
        )?;
        Ok(int(&v, "deleted"))
    }

    /// Runs a transaction.
    pub fn txn(&self, txn: &Txn) -> Result<TxnResponse, Error> {
        let ops = |ops: &[TxnOp]| ops.iter().map(TxnOp::to_json).collect::<Vec<_>>();
        let body = json!({
            "compare": txn.compares.iter().map(Compare::to_json).collect::<Vec<_>>(),
            "success": ops(&txn.success),
            "failure": ops(&txn.failure),
        });
        let writes = txn
            .success
            .iter()
            .chain(&txn.failure)
            .any(|op| !matches!(op, TxnOp::Get { .. }));
        let idempotent = if writes {
            Idempotent::No
        } else {
            Idempotent::Yes
        };
        let v = self.call("/v3/kv/txn", &body, idempotent)?;
        let succeeded = v.get("succeeded").and_then(Value::as_bool).unwrap_or(false);
        let branch = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let answers = v.get("responses").and_then(Value::as_array);
        let mut responses = Vec::with_capacity(branch.len());
        for (i, op) in branch.iter().enumerate() {
            let answer = answers
                .and_then(|a| a.get(i))
                .cloned()
                .unwrap_or(Value::Null);
            responses.push(match op {
                TxnOp::Put { .. } => TxnOpResponse::Put,
                TxnOp::Delete { .. } => TxnOpResponse::Delete {
                    deleted: answer
                        .get("response_delete_range")
                        .map(|d| int(d, "deleted"))
                        .unwrap_or(0),
                },
                TxnOp::Get { .. } => TxnOpResponse::Get(match answer.get("response_range") {
                    Some(r) => kvs("txn", r)?,
                    None => Vec::new(),
                }),
            });
        }
        Ok(TxnResponse {
            succeeded,
            revision: header_revision(&v),
            responses,
        })
    }
}
