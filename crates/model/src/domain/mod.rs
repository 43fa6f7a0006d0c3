//! Strict, validated domain types built from the wire types.
//!
//! The `validate_*` and `parse_*` functions are the boundary between the HCN
//! JSON schema (reference/hcn-schema.md) and the rest of hostnet: they are pure,
//! reject what is wrong with an [`HcnError`](crate::HcnError) naming the field
//! and the fix, and produce typed values (`IpNet`, [`Mac`], enums) that later
//! code never has to re-parse.

mod acl;
mod endpoint;
mod endpoint_policy;
mod guid;
mod ip;
mod load_balancer;
mod mac;
mod modify;
mod namespace;
mod network;
mod network_policy;
mod policy;
mod query;
mod route;
mod trace;

pub use acl::{
    AclAction, AclRule, AddressMatch, Direction, PortRange, RuleType, TierAcl, TierAclRule,
};
pub use endpoint::{validate_endpoint, EndpointFlags, EndpointSpec, IpConfigSpec};
pub use endpoint_policy::{
    parse_endpoint_policy, EndpointPolicy, NatFlags, OutboundNat, PortMapping, Protocol,
    ENDPOINT_POLICY_TYPES,
};
pub use guid::{format_guid, parse_guid};
pub use ip::{DnsSettings, RouteSpec};
pub use load_balancer::{validate_load_balancer, Distribution, LbPortMapping, LoadBalancerSpec};
pub use mac::{Mac, MacRange, ParseMacError};
pub use modify::{
    parse_endpoint_change, parse_namespace_change, parse_network_change, EndpointChange,
    NamespaceChange, NetworkChange, RequestType,
};
pub use namespace::{validate_namespace, NamespaceKind, NamespaceSpec};
pub use network::{
    validate_network, validate_subnet, NetworkFlags, NetworkKind, NetworkSpec, SubnetPolicy,
    SubnetSpec,
};
pub use network_policy::{
    parse_network_policy, InterfaceConstraint, L4Proxy, NetworkPolicy, SetMembers,
    NETWORK_POLICY_TYPES,
};
pub use query::{parse_filter_json, parse_query, Filter};
pub use route::{validate_route, RouteObjectSpec, SdnRouteSpec};
pub use trace::{validate_trace, TraceSpec};
