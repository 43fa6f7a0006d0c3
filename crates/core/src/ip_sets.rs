//! `SetPolicy` (IPSET, NESTEDIPSET; schema §5): named address sets of a
//! network, which its ACLs name by `Id` in Local/RemoteAddresses (Azure
//! NPM). Resolved to prefixes when ACLs are lowered, so the kernel sees
//! plain intervals; a change of a set reprograms the endpoints whose ACLs
//! use it. Pure.

use std::collections::BTreeMap;

use hostnet_model::domain::{AddressMatch, NetworkPolicy, SetPolicyKind};
use hostnet_model::{ErrorCode, HcnError};
use ipnet::IpNet;

/// A network's sets, resolved: every set's members as prefixes (a nested
/// set's are its members' members).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct IpSets {
    sets: BTreeMap<String, Vec<IpNet>>,
}

impl IpSets {
    /// The sets among `policies`, checked: IPSET values are addresses or
    /// CIDRs, NESTEDIPSET values name other sets of the network, no set
    /// contains itself, no Id is used twice.
    pub(crate) fn of(policies: &[NetworkPolicy]) -> Result<Self, HcnError> {
        let mut defs: BTreeMap<&str, (SetPolicyKind, &[String])> = BTreeMap::new();
        for p in policies {
            if let NetworkPolicy::SetPolicy {
                id, kind, values, ..
            } = p
            {
                if defs.insert(id, (*kind, values)).is_some() {
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
    defs: &BTreeMap<&str, (SetPolicyKind, &[String])>,
    path: &mut Vec<String>,
) -> Result<Vec<IpNet>, HcnError> {
    if path.iter().any(|p| p == id) {
        return Err(invalid(format!(
            "SetPolicy {id:?} contains itself (through {}): a NESTEDIPSET may not loop",
            path.join(" -> ")
        )));
    }
    let Some((kind, values)) = defs.get(id) else {
        let parent = path.last().cloned().unwrap_or_default();
        return Err(invalid(format!(
            "NESTEDIPSET {parent:?} names set {id:?}, which the network does not have: add that SetPolicy first"
        )));
    };
    match kind {
        SetPolicyKind::IpSet => values.iter().map(|v| prefix(id, v)).collect(),
        SetPolicyKind::NestedIpSet => {
            path.push(id.to_string());
            let mut out = Vec::new();
            for v in values.iter() {
                out.extend(resolve(v, defs, path)?);
            }
            path.pop();
            Ok(out)
        }
    }
}

fn prefix(id: &str, v: &str) -> Result<IpNet, HcnError> {
    let v = v.trim();
    v.parse::<IpNet>()
        .map(|p| p.trunc())
        .or_else(|_| v.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            invalid(format!(
                "SetPolicy {id:?}: value {v:?} is not an address or CIDR: an IPSET holds addresses and CIDRs (a NESTEDIPSET holds set Ids)"
            ))
        })
}

fn invalid(message: String) -> HcnError {
    HcnError::new(ErrorCode::InvalidPolicy, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(id: &str, kind: SetPolicyKind, values: &[&str]) -> NetworkPolicy {
        NetworkPolicy::SetPolicy {
            id: id.into(),
            name: id.into(),
            kind,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn nested_sets_resolve_to_their_members_members() {
        let sets = IpSets::of(&[
            set("a", SetPolicyKind::IpSet, &["10.0.0.1", "10.1.0.0/16"]),
            set("b", SetPolicyKind::IpSet, &["192.0.2.7"]),
            set("ab", SetPolicyKind::NestedIpSet, &["a", "b"]),
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
        let e = err(&[set("a", SetPolicyKind::IpSet, &["nope"])]);
        assert_eq!(e.code, ErrorCode::InvalidPolicy);
        assert!(e.message.contains("\"nope\""), "{e:?}");
        let e = err(&[set("n", SetPolicyKind::NestedIpSet, &["n"])]);
        assert!(e.message.contains("contains itself"), "{e:?}");
        let e = err(&[set("n", SetPolicyKind::NestedIpSet, &["missing"])]);
        assert!(e.message.contains("\"missing\""), "{e:?}");
        let e = err(&[
            set("a", SetPolicyKind::IpSet, &["10.0.0.1"]),
            set("a", SetPolicyKind::IpSet, &["10.0.0.2"]),
        ]);
        assert!(e.message.contains("twice"), "{e:?}");
    }
}
