//! `Add`, `Remove` and `Update` of an object's policy list (schema §12),
//! pure: the list after the request, or why the request cannot apply.
//!
//! `Update`: the ACL set is replaced wholesale by the request's ACLs
//! (possibly none); each other policy in the request replaces the policies
//! in its slot (same type; a `SetPolicy`'s slot is its `Id`); policies in
//! slots the request does not mention are kept.

use hostnet_model::domain::{EndpointPolicy, NetworkPolicy, RequestType};
use hostnet_model::{ErrorCode, HcnError};
use serde_json::Value;

/// What the list operations need to know of a policy type.
pub(crate) trait ListedPolicy: PartialEq {
    /// `ACL` on endpoints, `NetworkACL` on networks: the set `Update` replaces.
    fn is_acl(&self) -> bool;
    /// Whether `other` sits in the same slot (what an `Update` replaces).
    fn same_slot(&self, other: &Self) -> bool;
    fn type_name(&self) -> &'static str;
}

impl ListedPolicy for EndpointPolicy {
    fn is_acl(&self) -> bool {
        matches!(self, EndpointPolicy::Acl(_))
    }

    fn same_slot(&self, other: &Self) -> bool {
        self.type_name() == other.type_name()
    }

    fn type_name(&self) -> &'static str {
        EndpointPolicy::type_name(self)
    }
}

impl ListedPolicy for NetworkPolicy {
    fn is_acl(&self) -> bool {
        matches!(self, NetworkPolicy::NetworkAcl(_))
    }

    fn same_slot(&self, other: &Self) -> bool {
        match (self, other) {
            (NetworkPolicy::SetPolicy { id: a, .. }, NetworkPolicy::SetPolicy { id: b, .. }) => {
                a == b
            }
            // A route's slot is its destination: Update moves it to
            // another host (PA, DR MAC) or VNI.
            (
                NetworkPolicy::RemoteSubnetRoute { destination: a, .. },
                NetworkPolicy::RemoteSubnetRoute { destination: b, .. },
            ) => a == b,
            _ => self.type_name() == other.type_name(),
        }
    }

    fn type_name(&self) -> &'static str {
        NetworkPolicy::type_name(self)
    }
}

/// A policy as validated, with its stored (verbatim) JSON.
pub(crate) type Listed<P> = (P, Value);

/// The list after `request` with `given` policies. `object` names the
/// object in errors. A `Remove` of a policy the list does not hold is
/// `POLICY_NOT_FOUND`, and nothing is removed.
pub(crate) fn changed_list<P: ListedPolicy + Clone>(
    current: &[Listed<P>],
    request: RequestType,
    given: &[Listed<P>],
    object: &str,
) -> Result<Vec<Listed<P>>, HcnError> {
    match request {
        RequestType::Add => Ok(current.iter().chain(given).cloned().collect()),
        RequestType::Remove => {
            let mut out = current.to_vec();
            for (p, wire) in given {
                let Some(i) = out.iter().position(|(q, _)| q == p) else {
                    return Err(HcnError::new(
                        ErrorCode::PolicyNotFound,
                        format!(
                            "{object} has no {} policy {wire}: nothing was removed; send one of the Policies a GET returns",
                            p.type_name()
                        ),
                    ));
                };
                out.remove(i);
            }
            Ok(out)
        }
        RequestType::Update => {
            let replaced =
                |q: &P| q.is_acl() || given.iter().any(|(p, _)| !p.is_acl() && p.same_slot(q));
            let mut out: Vec<Listed<P>> = current
                .iter()
                .filter(|(q, _)| !replaced(q))
                .cloned()
                .collect();
            out.extend(given.iter().cloned());
            Ok(out)
        }
        other => Err(HcnError::new(
            ErrorCode::RequestUnsupported,
            format!("policy RequestType {other} is not supported: use Add, Remove or Update"),
        )),
    }
}

/// The policies of a stored object (its `Policies`), validated again with
/// `parse` (they were valid when stored).
pub(crate) fn stored_list<P>(
    obj: &serde_json::Map<String, Value>,
    parse: impl Fn(&hostnet_model::wire::Policy) -> Result<P, HcnError>,
) -> Result<Vec<Listed<P>>, HcnError> {
    let Some(list) = obj.get("Policies").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|v| {
            let wire: hostnet_model::wire::Policy = serde_json::from_value(v.clone())
                .map_err(|e| crate::object::internal("reading a stored policy", e))?;
            Ok((parse(&wire)?, v.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostnet_model::domain::parse_endpoint_policy;
    use serde_json::json;

    fn ep(v: Value) -> Listed<EndpointPolicy> {
        let w: hostnet_model::wire::Policy = serde_json::from_value(v.clone()).unwrap();
        (parse_endpoint_policy(&w).unwrap(), v)
    }

    fn acl(id: &str, port: u16) -> Listed<EndpointPolicy> {
        ep(
            json!({"Type":"ACL","Settings":{"Id":id,"Action":"Allow","Direction":"In","LocalPorts":port.to_string(),"Priority":100}}),
        )
    }

    fn mapping(ext: u16) -> Listed<EndpointPolicy> {
        ep(
            json!({"Type":"PortMapping","Settings":{"Protocol":6,"InternalPort":80,"ExternalPort":ext}}),
        )
    }

    fn ids(l: &[Listed<EndpointPolicy>]) -> Vec<String> {
        l.iter().map(|(_, v)| v["Settings"].to_string()).collect()
    }

    #[test]
    fn update_replaces_the_acl_set_and_same_typed_policies_only() {
        let current = [acl("a", 80), mapping(8080), acl("b", 81)];
        let out = changed_list(&current, RequestType::Update, &[acl("c", 82)], "e").unwrap();
        assert_eq!(ids(&out), ids(&[mapping(8080), acl("c", 82)]));
        // No ACLs at all: every ACL goes, the mapping stays.
        let out = changed_list(&current, RequestType::Update, &[], "e").unwrap();
        assert_eq!(ids(&out), ids(&[mapping(8080)]));
        // A PortMapping in the request replaces the endpoint's PortMappings.
        let out = changed_list(&current, RequestType::Update, &[mapping(9090)], "e").unwrap();
        assert_eq!(ids(&out), ids(&[mapping(9090)]));
    }

    #[test]
    fn remove_matches_by_content_and_refuses_what_is_not_there() {
        let current = [acl("a", 80), mapping(8080)];
        // Same content in another spelling (a number for the string).
        let same = ep(
            json!({"Type":"acl","Settings":{"Id":"a","Action":"allow","Direction":"In","LocalPorts":"80","Priority":100,"RuleType":"Switch"}}),
        );
        let out = changed_list(&current, RequestType::Remove, &[same], "e").unwrap();
        assert_eq!(ids(&out), ids(&[mapping(8080)]));
        let err = changed_list(&current, RequestType::Remove, &[acl("a", 81)], "e").unwrap_err();
        assert_eq!(err.code, ErrorCode::PolicyNotFound);
    }

    #[test]
    fn set_policies_are_replaced_by_id() {
        let set = |id: &str, v: &str| {
            let p =
                json!({"Type":"SetPolicy","Settings":{"Id":id,"PolicyType":"IPSET","Values":v}});
            let w: hostnet_model::wire::Policy = serde_json::from_value(p.clone()).unwrap();
            (hostnet_model::domain::parse_network_policy(&w).unwrap(), p)
        };
        let current = [set("s1", "10.0.0.1"), set("s2", "10.0.0.2")];
        let out =
            changed_list(&current, RequestType::Update, &[set("s1", "10.0.0.9")], "n").unwrap();
        let values: Vec<&str> = out
            .iter()
            .map(|(_, v)| v["Settings"]["Values"].as_str().unwrap())
            .collect();
        assert_eq!(values, ["10.0.0.2", "10.0.0.9"]);
    }
}
