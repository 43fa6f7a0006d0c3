//! An endpoint's policies in the policy model (`hostnet-policy`) and in
//! the kernel: its port (what trace walks) and its compiled ACL elements.

use std::net::IpAddr;

use hostnet_model::{ErrorCode, HcnError};
use hostnet_policy::{lower, LayerName, Port, PortKind};
use ipnet::IpNet;
use uuid::Uuid;

use crate::object::guid;
use crate::service::{EndpointRec, NetworkRec};

/// An endpoint's port as the model sees it: its ACLs, the seed's firewall
/// defaults, and its source NAT (a NAT network's masquerade, except within the
/// network; an L2 endpoint's OutBoundNAT).
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
    let exceptions: Option<Vec<IpNet>> = match (&ep.plan.outbound_nat, net.kind) {
        (Some(ex), _) => Some(ex.iter().map(|&p| IpNet::V4(p)).collect()),
        (None, hostnet_model::domain::NetworkKind::Nat) => {
            Some(net.pools.iter().map(|p| p.prefix()).collect())
        }
        (None, _) => None,
    };
    if let Some(ex) = exceptions {
        port.set_group(LayerName::Nat, lower::outbound_nat(&ex, None, &object));
    }
    port
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
