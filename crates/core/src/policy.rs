//! An endpoint's policies in the policy model (`hostnet-policy`) and in
//! the kernel: its port (what trace walks) and its compiled ACL elements.

use std::net::IpAddr;

use hostnet_model::domain::{AclRule, NetworkPolicy, OutboundNat};
use hostnet_model::{ErrorCode, HcnError};
use hostnet_nft::onat::{self, OnatPolicy};
use hostnet_policy::{lower, lower_egress, LayerName, Port, PortKind};
use ipnet::IpNet;
use uuid::Uuid;

use crate::ip_sets::IpSets;
use crate::object::guid;
use crate::service::{EndpointRec, NetworkRec};

/// The `NetworkACL` policies of a network.
pub(crate) fn network_acls(net: &NetworkRec) -> impl Iterator<Item = &AclRule> {
    net.spec.policies.iter().filter_map(|p| match p {
        NetworkPolicy::NetworkAcl(rule) => Some(rule),
        _ => None,
    })
}

/// Whether an endpoint's traffic walks the compiled ACL chains: it has
/// `ACL`s or `TierAcl`s, or its network has `NetworkACL`s. A remote
/// overlay endpoint never does here: its own host judges its traffic.
pub(crate) fn walks_acls(ep: &EndpointRec, net: &NetworkRec) -> bool {
    let remote = net.overlay.is_some() && crate::overlay::stored_remote(ep);
    let has = !ep.acls.is_empty() || !ep.tiers.is_empty() || network_acls(net).next().is_some();
    has && !remote
}

/// An endpoint's port as the model sees it: its ACLs merged with its
/// network's NetworkACLs, its TierAcls, the seed's firewall defaults, and
/// its source NAT (its OutBoundNAT policies, decided as the kernel's
/// [`onat::resolve`] does; a NAT network's masquerade of the rest, never
/// within the network). SetPolicy Ids resolve to the network's sets. Its
/// routes are [`crate::route`]'s.
pub(crate) fn endpoint_port(id: &Uuid, ep: &EndpointRec, net: &NetworkRec) -> Port {
    let object = guid(id);
    let mut port = Port::new(object.clone(), PortKind::Endpoint);
    port.set_group(LayerName::AclHost, lower::firewall_defaults());
    let origin = |policy: &str, object: String| hostnet_policy::Origin {
        policy: policy.into(),
        object,
        hcn_id: None,
    };
    let network = guid(&net.plan.id);
    let acls: Vec<lower::SourcedAcl<'_>> = ep
        .acls
        .iter()
        .map(|rule| lower::SourcedAcl {
            rule,
            origin: origin("ACL", object.clone()),
        })
        .chain(network_acls(net).map(|rule| lower::SourcedAcl {
            rule,
            origin: origin("NetworkACL", network.clone()),
        }))
        .collect();
    // Sets were checked when they and the ACLs came in.
    let sets = IpSets::of(&net.spec.policies).unwrap_or_default();
    let resolve = |id: &str| sets.get(id);
    if !acls.is_empty() {
        for (layer, group) in lower::acl_groups(&acls, &resolve) {
            port.set_group(layer, group);
        }
    }
    for group in lower::tier_groups(&ep.tiers, &object, &resolve) {
        port.set_group(LayerName::AclSwitch, group);
    }
    let nat_network = net.kind == hostnet_model::domain::NetworkKind::Nat;
    let local: Vec<IpNet> = match nat_network {
        true => net.pools.iter().map(|p| p.prefix()).collect(),
        false => Vec::new(),
    };
    match &ep.plan.outbound_nat {
        Some(policies) => {
            let ordered: Vec<OutboundNat> = onat::keep_the_rest(policies)
                .ordered()
                .into_iter()
                .map(model_onat)
                .collect();
            let refs: Vec<&OutboundNat> = ordered.iter().collect();
            for g in lower_egress::outbound_nat_groups(&local, &refs, nat_network, &object) {
                port.set_group(LayerName::Nat, g);
            }
        }
        None if nat_network => {
            port.set_group(LayerName::Nat, lower::outbound_nat(&local, None, &object));
        }
        None => {}
    }
    port
}

/// An OutBoundNAT as the model's lowering takes it.
fn model_onat(p: &OnatPolicy) -> OutboundNat {
    OutboundNat {
        virtual_ip: p.virtual_ip.map(IpAddr::V4),
        exceptions: p.exceptions.iter().map(|&n| IpNet::V4(n)).collect(),
        destinations: p.destinations.iter().map(|&n| IpNet::V4(n)).collect(),
        ..OutboundNat::default()
    }
}

/// The elements that make the kernel walk an endpoint's ACLs (none when it
/// has none): its compiled groups, and its addresses among the ACL
/// endpoints, for each of its addresses (a dual-stack endpoint's IPv6 walks
/// the IPv6 chains), so one transaction changes both families.
pub(crate) fn acl_elements(
    id: &Uuid,
    ep: &EndpointRec,
    net: &NetworkRec,
) -> Result<Vec<hostnet_nft::SetElement>, HcnError> {
    if !walks_acls(ep, net) {
        return Ok(Vec::new());
    }
    let port = endpoint_port(id, ep, net);
    let mut els = Vec::new();
    for addr in acl_addresses(ep) {
        els.extend(hostnet_nft::acl::elements(addr, &port).map_err(|e| {
            HcnError::new(
                ErrorCode::InvalidPolicy,
                format!("the endpoint's ACLs cannot be programmed: {e}"),
            )
        })?);
        els.push(hostnet_nft::acl_endpoint(addr));
    }
    Ok(els)
}

/// The addresses whose traffic the compiled ACLs judge: the endpoint's
/// IPv4 address and a dual-stack endpoint's IPv6 one. (An endpoint of an
/// IPv6 DHCP network has no IPv4 address, and no ACLs.)
pub(crate) fn acl_addresses(ep: &EndpointRec) -> Vec<IpAddr> {
    let v4 = Some(ep.plan.address.addr()).filter(IpAddr::is_ipv4);
    v4.into_iter()
        .chain(v4.and(ep.plan.address6.map(|a| a.addr())))
        .collect()
}
