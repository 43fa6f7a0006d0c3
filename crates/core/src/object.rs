//! The object kinds and their stored form.
//!
//! Each object is kept as the HCN JSON the API returns (a valid input too),
//! so what clients read back is exactly what is stored, and reloading it
//! goes through the same validation as a create.

use hostnet_model::{ErrorCode, HcnError};
use hostnet_store::Collection;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The five HCN object kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Network,
    Endpoint,
    Namespace,
    LoadBalancer,
    Route,
}

impl Kind {
    pub fn collection(self) -> Collection {
        match self {
            Kind::Network => Collection::Networks,
            Kind::Endpoint => Collection::Endpoints,
            Kind::Namespace => Collection::Namespaces,
            Kind::LoadBalancer => Collection::LoadBalancers,
            Kind::Route => Collection::Routes,
        }
    }

    /// The not-found code clients test for (schema §13: `0x80070490` for
    /// unknown IDs, as HNS v2 answers).
    pub fn not_found(self, id: &str) -> HcnError {
        HcnError::new(
            ErrorCode::NotFound,
            format!(
                "Element not found. No {} has ID {id}: list them with GET /v2/{}",
                self.noun(),
                self.path()
            ),
        )
    }

    pub fn noun(self) -> &'static str {
        match self {
            Kind::Network => "network",
            Kind::Endpoint => "endpoint",
            Kind::Namespace => "namespace",
            Kind::LoadBalancer => "load balancer",
            Kind::Route => "route",
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Kind::Network => "networks",
            Kind::Endpoint => "endpoints",
            Kind::Namespace => "namespaces",
            Kind::LoadBalancer => "loadbalancers",
            Kind::Route => "routes",
        }
    }
}

/// Refuse a create whose non-empty name another object of its kind has,
/// naming that object, so a retried create finds what it made before.
pub fn ensure_unique_name<'a>(
    kind: Kind,
    name: &str,
    mut existing: impl Iterator<Item = (&'a Uuid, &'a str)>,
) -> Result<(), HcnError> {
    let Some((id, _)) = existing.find(|(_, n)| !name.is_empty() && *n == name) else {
        return Ok(());
    };
    let code = match kind {
        Kind::Network => ErrorCode::NetworkAlreadyExists,
        _ => ErrorCode::AlreadyExists,
    };
    Err(HcnError::new(
        code,
        format!(
            "a {} with this name already exists: {name:?} has ID {}; choose another name or use that {}",
            kind.noun(),
            guid(id),
            kind.noun()
        ),
    ))
}

/// A GUID as hostnet prints it: upper case, no braces.
pub fn guid(id: &Uuid) -> String {
    hostnet_model::format_guid(id)
}

/// The JSON object of a serializable wire value.
pub fn to_object<T: serde::Serialize>(wire: &T) -> Map<String, Value> {
    match serde_json::to_value(wire) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Serialize a stored object for the store.
pub fn bytes(obj: &Map<String, Value>) -> Vec<u8> {
    serde_json::to_vec(obj).expect("a JSON map always serializes")
}

/// A store or kernel failure, as the API reports it.
pub fn internal(what: &str, err: impl std::fmt::Display) -> HcnError {
    HcnError::new(
        ErrorCode::Unexpected,
        format!("{what} failed: {err}. Nothing was changed; see the hostnetd log"),
    )
}

/// A failed store read or write as the client sees it: a store that cannot
/// be reached (cluster mode's etcd down) is a degraded service, not a bug.
pub fn store_failure(what: &str, err: hostnet_store::StoreError) -> HcnError {
    match err {
        hostnet_store::StoreError::Unavailable(why) => HcnError::new(
            ErrorCode::DegradedOperation,
            format!(
                "{what} failed: the state store is unavailable ({why}). Nothing was changed and existing containers keep working; retry once etcd is reachable again"
            ),
        ),
        other => internal(what, other),
    }
}

/// Parse a request body that must be one JSON object (serde's derived
/// decoders would also take an array, positionally).
pub fn parse_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, HcnError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if matches!(first, Some(b) if *b != b'{') {
        return Err(HcnError::new(
            ErrorCode::InvalidJson,
            "the request body is not a JSON object: send one HCN object {...}",
        ));
    }
    hostnet_model::from_json(body)
}
