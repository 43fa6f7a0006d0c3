//! Modify requests (reference/hcn-schema.md §9, §12): `RequestType` and the
//! changes a `ModifySettingRequest` asks of a namespace, endpoint or network.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use uuid::Uuid;

use super::endpoint_policy::{parse_endpoint_policy, EndpointPolicy};
use super::guid::parse_guid;
use super::ip::DnsSettings;
use super::network::{check_overlaps, validate_subnet, SubnetSpec};
use super::network_policy::{parse_network_policy, NetworkPolicy};
use crate::error::{ErrorCode, HcnError};
use crate::parse::from_value;
use crate::wire;

/// `RequestType` of a modify request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestType {
    /// Append.
    Add,
    /// Delete matching items.
    Remove,
    /// Replace (see §12 for the policy model).
    Update,
    /// Refresh.
    Refresh,
    /// Reset.
    Reset,
}

impl RequestType {
    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::Add => "Add",
            RequestType::Remove => "Remove",
            RequestType::Update => "Update",
            RequestType::Refresh => "Refresh",
            RequestType::Reset => "Reset",
        }
    }
}

impl FromStr for RequestType {
    type Err = HcnError;

    /// Case-insensitive.
    fn from_str(s: &str) -> Result<Self, HcnError> {
        [
            RequestType::Add,
            RequestType::Remove,
            RequestType::Update,
            RequestType::Refresh,
            RequestType::Reset,
        ]
        .into_iter()
        .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| {
            HcnError::new(
                ErrorCode::InvalidJson,
                format!("RequestType {s:?} is unknown: use Add, Remove, Update, Refresh or Reset"),
            )
        })
    }
}

impl fmt::Display for RequestType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A namespace modification (attach/detach).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceChange {
    /// Attach an endpoint.
    AddEndpoint(Uuid),
    /// Detach an endpoint.
    RemoveEndpoint(Uuid),
    /// Record a container.
    AddContainer(String),
    /// Forget a container.
    RemoveContainer(String),
}

/// An endpoint modification. Policies are paired with their wire form so the
/// core can store and echo them verbatim.
#[derive(Debug, Clone, PartialEq)]
pub enum EndpointChange {
    /// `ResourceType: Policy` with `RequestType` Add, Remove or Update.
    Policies {
        /// Add, Remove or Update.
        request: RequestType,
        /// The policies, validated and verbatim.
        policies: Vec<(EndpointPolicy, wire::Policy)>,
    },
}

/// A network modification.
#[derive(Debug, Clone, PartialEq)]
pub enum NetworkChange {
    /// `ResourceType: Policy` with `RequestType` Add, Remove or Update.
    Policies {
        /// Add, Remove or Update.
        request: RequestType,
        /// The policies, validated and verbatim.
        policies: Vec<(NetworkPolicy, wire::Policy)>,
    },
    /// `ResourceType: DNS`: new DNS settings.
    Dns(DnsSettings),
    /// `ResourceType: Subnet`: subnets to add or remove.
    Subnets {
        /// Add or Remove.
        request: RequestType,
        /// The subnets.
        subnets: Vec<SubnetSpec>,
    },
}

fn unsupported(object: &str, m: &wire::ModifyRequest, valid: &str) -> HcnError {
    HcnError::new(
        ErrorCode::RequestUnsupported,
        format!(
            "{object} modify with ResourceType {:?} and RequestType {:?} is not supported: use {valid}",
            m.resource_type, m.request_type
        ),
    )
}

fn settings(m: &wire::ModifyRequest, example: &str) -> Result<(), HcnError> {
    if m.settings.is_null() {
        return Err(HcnError::new(
            ErrorCode::InvalidJson,
            format!("Settings is missing: give {example}"),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct PolicyList {
    #[serde(rename = "Policies", default)]
    policies: Vec<wire::Policy>,
}

fn policy_request(
    m: &wire::ModifyRequest,
    object: &str,
) -> Result<(RequestType, Vec<wire::Policy>), HcnError> {
    let request: RequestType = m.request_type.parse()?;
    if !matches!(
        request,
        RequestType::Add | RequestType::Remove | RequestType::Update
    ) {
        return Err(unsupported(
            object,
            m,
            "RequestType Add, Remove or Update for policies",
        ));
    }
    settings(m, r#"{"Policies":[{"Type":…,"Settings":{…}}]}"#)?;
    let list: PolicyList = from_value(&m.settings, "Settings", ErrorCode::InvalidJson)?;
    Ok((request, list.policies))
}

/// Validate a namespace modify request: `ResourceType` `Endpoint` (Settings
/// `{"EndpointId":…}`) or `Container` (`{"ContainerId":…}`), `RequestType` Add or Remove.
pub fn parse_namespace_change(m: &wire::ModifyRequest) -> Result<NamespaceChange, HcnError> {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    struct S {
        endpoint_id: Option<String>,
        container_id: Option<String>,
    }
    let request: RequestType = m.request_type.parse()?;
    let add = match request {
        RequestType::Add => true,
        RequestType::Remove => false,
        _ => return Err(unsupported("namespace", m, "RequestType Add or Remove")),
    };
    let rt = m.resource_type.trim();
    if rt.eq_ignore_ascii_case("Endpoint") {
        settings(m, r#"{"EndpointId":"<endpoint GUID>"}"#)?;
        let s: S = from_value(&m.settings, "Settings", ErrorCode::InvalidJson)?;
        let id = s
            .endpoint_id
            .filter(|i| !i.trim().is_empty())
            .ok_or_else(|| {
                HcnError::new(
                    ErrorCode::InvalidJson,
                    "Settings.EndpointId is missing: give the endpoint GUID",
                )
            })?;
        let id = parse_guid(&id).map_err(|e| e.context("Settings.EndpointId"))?;
        Ok(if add {
            NamespaceChange::AddEndpoint(id)
        } else {
            NamespaceChange::RemoveEndpoint(id)
        })
    } else if rt.eq_ignore_ascii_case("Container") {
        settings(m, r#"{"ContainerId":"<container id>"}"#)?;
        let s: S = from_value(&m.settings, "Settings", ErrorCode::InvalidJson)?;
        let id = s
            .container_id
            .filter(|i| !i.trim().is_empty())
            .ok_or_else(|| {
                HcnError::new(
                    ErrorCode::InvalidJson,
                    "Settings.ContainerId is missing: give the container id",
                )
            })?;
        Ok(if add {
            NamespaceChange::AddContainer(id)
        } else {
            NamespaceChange::RemoveContainer(id)
        })
    } else {
        Err(unsupported(
            "namespace",
            m,
            "ResourceType Endpoint or Container",
        ))
    }
}

/// Validate an endpoint modify request: `ResourceType` `Policy` with
/// `{"Policies":[…]}` and `RequestType` Add, Remove or Update.
pub fn parse_endpoint_change(m: &wire::ModifyRequest) -> Result<EndpointChange, HcnError> {
    if !m.resource_type.trim().eq_ignore_ascii_case("Policy") {
        return Err(unsupported("endpoint", m, "ResourceType Policy"));
    }
    let (request, list) = policy_request(m, "endpoint")?;
    let policies = list
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            parse_endpoint_policy(&p)
                .map(|d| (d, p))
                .map_err(|e| e.context(format!("Settings.Policies[{i}]")))
        })
        .collect::<Result<_, _>>()?;
    Ok(EndpointChange::Policies { request, policies })
}

/// Validate a network modify request: `ResourceType` `Policy`
/// (`{"Policies":[…]}`), `DNS` (a `Dns` object) or `Subnet` (`{"Subnets":[…]}`).
pub fn parse_network_change(m: &wire::ModifyRequest) -> Result<NetworkChange, HcnError> {
    let rt = m.resource_type.trim();
    if rt.eq_ignore_ascii_case("Policy") {
        let (request, list) = policy_request(m, "network")?;
        let policies = list
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                parse_network_policy(&p)
                    .map(|d| (d, p))
                    .map_err(|e| e.context(format!("Settings.Policies[{i}]")))
            })
            .collect::<Result<_, _>>()?;
        Ok(NetworkChange::Policies { request, policies })
    } else if rt.eq_ignore_ascii_case("DNS") {
        settings(m, r#"{"Domain":…,"ServerList":[…]}"#)?;
        let dns: wire::Dns = from_value(&m.settings, "Settings", ErrorCode::InvalidJson)?;
        Ok(NetworkChange::Dns(DnsSettings::from_wire(
            &dns,
            "Settings",
            ErrorCode::InvalidNetwork,
        )?))
    } else if rt.eq_ignore_ascii_case("Subnet") {
        #[derive(Deserialize)]
        struct S {
            #[serde(rename = "Subnets", default)]
            subnets: Vec<wire::Subnet>,
        }
        let request: RequestType = m.request_type.parse()?;
        if !matches!(request, RequestType::Add | RequestType::Remove) {
            return Err(unsupported(
                "network",
                m,
                "RequestType Add or Remove for subnets",
            ));
        }
        settings(m, r#"{"Subnets":[{"IpAddressPrefix":…}]}"#)?;
        let s: S = from_value(&m.settings, "Settings", ErrorCode::InvalidJson)?;
        let subnets = s
            .subnets
            .iter()
            .enumerate()
            .map(|(i, w)| {
                validate_subnet(w).map_err(|e| e.context(format!("Settings.Subnets[{i}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        check_overlaps(&subnets)?;
        Ok(NetworkChange::Subnets { request, subnets })
    } else {
        Err(unsupported(
            "network",
            m,
            "ResourceType Policy, DNS or Subnet",
        ))
    }
}
