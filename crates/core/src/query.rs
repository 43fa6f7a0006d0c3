//! Listing objects with an HCN query filter (schema §3).

use hostnet_model::domain::Filter;
use hostnet_model::wire::HostComputeQuery;
use hostnet_model::HcnError;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::object::{guid, Kind};
use crate::service::{Service, State};

impl Service {
    /// Objects of one kind, filtered by a HostComputeQuery JSON document
    /// (keys `ID`, `Name`, and for endpoints `VirtualNetwork`, which matches
    /// the network's ID or name). `[]` when nothing matches.
    pub fn list(&self, kind: Kind, query: Option<&str>) -> Result<Vec<Value>, HcnError> {
        let filter = match query.map(str::trim).filter(|q| !q.is_empty()) {
            Some(q) => {
                let q: HostComputeQuery = hostnet_model::from_json(q.as_bytes())?;
                Some(hostnet_model::parse_query(&q)?)
            }
            None => None,
        };
        let st = self.lock();
        let objs: Vec<(&Uuid, &Map<String, Value>, Option<&Uuid>)> = match kind {
            Kind::Network => st
                .networks
                .iter()
                .map(|(id, r)| (id, &r.obj, None))
                .collect(),
            Kind::Endpoint => st
                .endpoints
                .iter()
                .map(|(id, r)| (id, &r.obj, Some(&r.network)))
                .collect(),
            Kind::Namespace => st
                .namespaces
                .iter()
                .map(|(id, r)| (id, &r.obj, None))
                .collect(),
            Kind::LoadBalancer => st
                .load_balancers
                .iter()
                .map(|(id, r)| (id, &r.obj, None))
                .collect(),
            Kind::Route => st.routes.iter().map(|(id, r)| (id, &r.obj, None)).collect(),
        };
        Ok(objs
            .into_iter()
            .filter(|(id, obj, net)| {
                filter
                    .as_ref()
                    .is_none_or(|f| matches(f, &st, id, obj, *net))
            })
            .map(|(_, obj, _)| Value::Object(obj.clone()))
            .collect())
    }
}

fn matches(
    f: &Filter,
    st: &State,
    id: &Uuid,
    obj: &Map<String, Value>,
    net: Option<&Uuid>,
) -> bool {
    if f.id.is_some_and(|want| want != *id) {
        return false;
    }
    if let Some(name) = &f.name {
        if obj.get("Name").and_then(|v| v.as_str()).unwrap_or_default() != name {
            return false;
        }
    }
    if let Some(want) = &f.network {
        let Some(net) = net else { return false };
        let by_id = guid(net).eq_ignore_ascii_case(want.trim_matches(|c| c == '{' || c == '}'));
        let by_name = st.networks.get(net).is_some_and(|n| &n.name == want);
        if !by_id && !by_name {
            return false;
        }
    }
    true
}
