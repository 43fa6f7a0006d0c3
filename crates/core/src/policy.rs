//! An endpoint's policies in the policy model (`hostnet-policy`) and in
//! the kernel: its port (what trace walks) and its compiled ACL elements.

use std::net::IpAddr;

use hostnet_model::domain::OutboundNat;
use hostnet_model::{ErrorCode, HcnError};
use hostnet_nft::onat::{self, OnatPolicy};
use hostnet_policy::{lower, lower_egress, LayerName, Port, PortKind};
use ipnet::IpNet;
use uuid::Uuid;

use crate::object::guid;
use crate::service::{EndpointRec, NetworkRec};

/// An endpoint's port as the model sees it: its ACLs, the seed's firewall
/// defaults, and its source NAT (its OutBoundNAT policies, decided as the
/// kernel's [`onat::resolve`] does; a NAT network's masquerade of the
/// rest, never within the network). Its routes are [`crate::route`]'s.
pub(crate) fn endpoint_port(id: &Uuid, ep: &EndpointRec, net: &NetworkRec) -> Port {
    let object = guid(id);
    let mut port = Port::new(object.clone(), PortKind::Endpoint);
    port.set_group(LayerName::AclHost, lower::firewall_defaults());
    let acls: Vec<lower::SourcedAcl<'_>> = ep
        .acls
        .iter()
        .map(|rule| lower::SourcedAcl {
            rule,
            origin: hostnet_policy::Origin {
                policy: "ACL".into(),
                object: object.clone(),
                hcn_id: None,
            },
        })
        .collect();
    if !acls.is_empty() {
        for (layer, group) in lower::acl_groups(&acls, &|_| None) {
            port.set_group(layer, group);
        }
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
/// has none): its compiled groups, and its address among the ACL endpoints.
pub(crate) fn acl_elements(
    id: &Uuid,
    ep: &EndpointRec,
    net: &NetworkRec,
) -> Result<Vec<hostnet_nft::SetElement>, HcnError> {
    let IpAddr::V4(addr) = ep.plan.address.addr() else {
        return Ok(Vec::new());
    };
    if ep.acls.is_empty() {
        return Ok(Vec::new());
    }
    let port = endpoint_port(id, ep, net);
    let mut els = hostnet_nft::acl::elements(addr, &port).map_err(|e| {
        HcnError::new(
            ErrorCode::InvalidPolicy,
            format!("the endpoint's ACLs cannot be programmed: {e}"),
        )
    })?;
    els.push(hostnet_nft::acl_endpoint(addr));
    Ok(els)
}
