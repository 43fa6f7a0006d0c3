//! `SetPolicy` (IPSET, NESTEDIPSET; schema §5): named address sets of a
//! network, which its ACLs name by `Id` in Local/RemoteAddresses (Azure
//! NPM). Resolved to prefixes when ACLs are lowered, so the kernel sees
//! plain intervals; a change of a set reprograms the endpoints whose ACLs
//! use it. Pure.

use std::collections::BTreeMap;

use hostnet_model::domain::{AddressMatch, NetworkPolicy, SetMembers};
use hostnet_model::{ErrorCode, HcnError};
use ipnet::IpNet;

/// A network's sets, resolved: every set's members as prefixes (a nested
/// set's are its members' members).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct IpSets {
    sets: BTreeMap<String, Vec<IpNet>>,
}

impl IpSets {
    /// The sets among `policies`, checked: NESTEDIPSET values name other
    /// sets of the network, no set contains itself, no Id is used twice
    /// (the model has parsed IPSET values).
    pub(crate) fn of(policies: &[NetworkPolicy]) -> Result<Self, HcnError> {
        let mut defs: BTreeMap<&str, &SetMembers> = BTreeMap::new();
        for p in policies {
            if let NetworkPolicy::SetPolicy { id, members, .. } = p {
                if defs.insert(id, members).is_some() {
                    return Err(invalid(format!(
                        "SetPolicy Id {id:?} is given twice: give each set its own Id (Update replaces a set by its Id)"
                    )));
                }
            }
        }
        let mut sets = BTreeMap::new();
        for id in defs.keys() {
            let mut seen = Vec::new();
            sets.insert(id.to_string(), resolve(id, &defs, &mut seen)?);
        }
        Ok(IpSets { sets })
    }

    /// The prefixes of set `id`, if the network has it.
    pub(crate) fn get(&self, id: &str) -> Option<Vec<IpNet>> {
        self.sets.get(id).cloned()
    }

    /// Refuses addresses (of ACL rules) naming a set the network does not have.
    pub(crate) fn check_refs<'a>(
        &self,
        addresses: impl IntoIterator<Item = &'a AddressMatch>,
        network: &str,
    ) -> Result<(), HcnError> {
        for m in addresses {
            if let AddressMatch::SetId(id) = m {
                if !self.sets.contains_key(id) {
                    return Err(invalid(format!(
                        "ACL names SetPolicy {id:?}, which network {network} does not have: add the SetPolicy to the network first (network modify, ResourceType Policy)"
                    )));
                }
            }
        }
        Ok(())
    }
}

fn resolve(
    id: &str,
    defs: &BTreeMap<&str, &SetMembers>,
    path: &mut Vec<String>,
) -> Result<Vec<IpNet>, HcnError> {
    if path.iter().any(|p| p == id) {
        return Err(invalid(format!(
            "SetPolicy {id:?} contains itself (through {}): a NESTEDIPSET may not loop",
            path.join(" -> ")
        )));
    }
    let Some(members) = defs.get(id) else {
        let parent = path.last().cloned().unwrap_or_default();
        return Err(invalid(format!(
            "NESTEDIPSET {parent:?} names set {id:?}, which the network does not have: add that SetPolicy first"
        )));
    };
    match members {
        SetMembers::Addresses(prefixes) => Ok(prefixes.clone()),
        SetMembers::Sets(ids) => {
            path.push(id.to_string());
            let mut out = Vec::new();
            for v in ids {
                out.extend(resolve(v, defs, path)?);
            }
            path.pop();
            Ok(out)
        }
    }
}

fn invalid(message: String) -> HcnError {
    HcnError::new(ErrorCode::InvalidPolicy, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(id: &str, values: &[&str]) -> NetworkPolicy {
        set(
            id,
            SetMembers::Addresses(values.iter().map(|v| v.parse().unwrap()).collect()),
        )
    }

    fn nested(id: &str, ids: &[&str]) -> NetworkPolicy {
        set(
            id,
            SetMembers::Sets(ids.iter().map(|v| v.to_string()).collect()),
        )
    }

    fn set(id: &str, members: SetMembers) -> NetworkPolicy {
        NetworkPolicy::SetPolicy {
            id: id.into(),
            name: id.into(),
            members,
        }
    }

    #[test]
    fn nested_sets_resolve_to_their_members_members() {
        let sets = IpSets::of(&[
            addresses("a", &["10.0.0.1/32", "10.1.0.0/16"]),
            addresses("b", &["192.0.2.7/32"]),
            nested("ab", &["a", "b"]),
        ])
        .unwrap();
        let got: Vec<String> = sets
            .get("ab")
            .unwrap()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(got, ["10.0.0.1/32", "10.1.0.0/16", "192.0.2.7/32"]);
        assert_eq!(sets.get("zz"), None);
    }

    #[test]
    fn bad_sets_are_refused_by_name() {
        let err = |p: &[NetworkPolicy]| IpSets::of(p).unwrap_err();
        // (An IPSET value that is no address is the model's refusal.)
        let e = err(&[nested("n", &["n"])]);
        assert_eq!(e.code, ErrorCode::InvalidPolicy);
        assert!(e.message.contains("contains itself"), "{e:?}");
        let e = err(&[nested("n", &["missing"])]);
        assert!(e.message.contains("\"missing\""), "{e:?}");
        let e = err(&[
            addresses("a", &["10.0.0.1/32"]),
            addresses("a", &["10.0.0.2/32"]),
        ]);
        assert!(e.message.contains("twice"), "{e:?}");
    }
}
