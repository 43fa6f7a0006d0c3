//! Modify requests (schema §9, §12).

use serde_json::json;

use super::{assert_err, wire};
use crate::domain::*;
use crate::error::ErrorCode;
use crate::wire::ModifyRequest;

fn m(json: &str) -> ModifyRequest {
    wire(json)
}

#[test]
fn namespace_attach_and_detach() {
    let id = parse_guid("A1B2C3D4-0000-4000-8000-000000000001").unwrap();
    assert_eq!(
        parse_namespace_change(&m(r#"{"ResourceType":"Endpoint","RequestType":"Add","Settings":{"EndpointId":"a1b2c3d4-0000-4000-8000-000000000001"}}"#)).unwrap(),
        NamespaceChange::AddEndpoint(id)
    );
    assert_eq!(
        parse_namespace_change(&m(r#"{"ResourceType":"endpoint","RequestType":"remove","Settings":{"EndpointId":"A1B2C3D4-0000-4000-8000-000000000001"}}"#)).unwrap(),
        NamespaceChange::RemoveEndpoint(id)
    );
    assert_eq!(
        parse_namespace_change(&m(r#"{"ResourceType":"Container","RequestType":"Add","Settings":{"ContainerId":"abc123"}}"#)).unwrap(),
        NamespaceChange::AddContainer("abc123".into())
    );
    assert_err(
        parse_namespace_change(&m(
            r#"{"ResourceType":"Endpoint","RequestType":"Add","Settings":{}}"#,
        )),
        ErrorCode::InvalidJson,
        &["EndpointId is missing"],
    );
    assert_err(
        parse_namespace_change(&m(r#"{"ResourceType":"Endpoint","RequestType":"Add"}"#)),
        ErrorCode::InvalidJson,
        &["Settings is missing"],
    );
    assert_err(
        parse_namespace_change(&m(
            r#"{"ResourceType":"Endpoint","RequestType":"Add","Settings":{"EndpointId":"x"}}"#,
        )),
        ErrorCode::GuidConversionFailure,
        &["Settings.EndpointId"],
    );
    assert_err(
        parse_namespace_change(&m(
            r#"{"ResourceType":"Endpoint","RequestType":"Update","Settings":{}}"#,
        )),
        ErrorCode::RequestUnsupported,
        &["Add or Remove"],
    );
    assert_err(
        parse_namespace_change(&m(
            r#"{"ResourceType":"Vm","RequestType":"Add","Settings":{}}"#,
        )),
        ErrorCode::RequestUnsupported,
        &["Endpoint or Container"],
    );
    assert_err(
        parse_namespace_change(&m(
            r#"{"ResourceType":"Endpoint","RequestType":"Attach","Settings":{}}"#,
        )),
        ErrorCode::InvalidJson,
        &["RequestType \"Attach\""],
    );
}

#[test]
fn endpoint_policy_update_keeps_the_wire_form() {
    let req = m(
        r#"{"ResourceType":"Policy","RequestType":"Update","Settings":{"Policies":[
        {"Type":"ACL","Settings":{"Action":"Block","Direction":"In","Priority":65500,"Protocols":"256","X":1}}]}}"#,
    );
    let EndpointChange::Policies { request, policies } = parse_endpoint_change(&req).unwrap();
    assert_eq!(request, RequestType::Update);
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].0.type_name(), "ACL");
    assert_eq!(policies[0].1.settings["X"], json!(1));
    // Update with no policies clears the ACL set (NPM).
    let EndpointChange::Policies { policies, .. } = parse_endpoint_change(&m(
        r#"{"ResourceType":"Policy","RequestType":"Update","Settings":{"Policies":[]}}"#,
    ))
    .unwrap();
    assert!(policies.is_empty());
    assert_err(
        parse_endpoint_change(&m(
            r#"{"ResourceType":"Port","RequestType":"Add","Settings":{}}"#,
        )),
        ErrorCode::RequestUnsupported,
        &["Policy"],
    );
    assert_err(
        parse_endpoint_change(&m(
            r#"{"ResourceType":"Policy","RequestType":"Refresh","Settings":{"Policies":[]}}"#,
        )),
        ErrorCode::RequestUnsupported,
        &["Add, Remove or Update"],
    );
    assert_err(
        parse_endpoint_change(&m(
            r#"{"ResourceType":"Policy","RequestType":"Add","Settings":{"Policies":[{"Type":"Nope"}]}}"#,
        )),
        ErrorCode::InvalidPolicyType,
        &["Settings.Policies[0]", "Nope"],
    );
    assert_err(
        parse_endpoint_change(&m(
            r#"{"ResourceType":"Policy","RequestType":"Add","Settings":{"Policies":7}}"#,
        )),
        ErrorCode::InvalidJson,
        &["Settings"],
    );
}

#[test]
fn network_changes() {
    let NetworkChange::Policies { request, policies } = parse_network_change(&m(r#"{"ResourceType":"Policy","RequestType":"Add","Settings":{"Policies":[
        {"Type":"RemoteSubnetRoute","Settings":{"DestinationPrefix":"10.244.2.0/24","IsolationId":4096,"ProviderAddress":"192.168.1.11","DistributedRouterMacAddress":"02-11-0a-f4-02-07"}},
        {"Type":"HostRoute","Settings":{}}]}}"#)).unwrap() else { panic!() };
    assert_eq!(request, RequestType::Add);
    assert_eq!(policies[1].0, NetworkPolicy::HostRoute);
    assert_eq!(
        policies[0].1.settings["DistributedRouterMacAddress"],
        "02-11-0a-f4-02-07"
    );

    let NetworkChange::Dns(d) = parse_network_change(&m(r#"{"ResourceType":"DNS","RequestType":"Update","Settings":{"Domain":"corp","ServerList":["10.0.0.2"]}}"#)).unwrap() else { panic!() };
    assert_eq!((d.domain.as_deref(), d.servers.len()), (Some("corp"), 1));

    let NetworkChange::Subnets { request, subnets } = parse_network_change(&m(r#"{"ResourceType":"Subnet","RequestType":"Add","Settings":{"Subnets":[
        {"IpAddressPrefix":"fd00:2::/64","Routes":[{"NextHop":"fd00:2::1","DestinationPrefix":"::/0"}]}]}}"#)).unwrap() else { panic!() };
    assert_eq!(
        (request, subnets[0].prefix.to_string()),
        (RequestType::Add, "fd00:2::/64".to_string())
    );

    assert_err(
        parse_network_change(&m(
            r#"{"ResourceType":"Subnet","RequestType":"Add","Settings":{"Subnets":[{"IpAddressPrefix":"10.0.0.1/24"}]}}"#,
        )),
        ErrorCode::InvalidSubnet,
        &["Settings.Subnets[0]", "did you mean 10.0.0.0/24"],
    );
    assert_err(
        parse_network_change(&m(
            r#"{"ResourceType":"Extension","RequestType":"Update","Settings":{}}"#,
        )),
        ErrorCode::RequestUnsupported,
        &["Policy, DNS or Subnet"],
    );
}
