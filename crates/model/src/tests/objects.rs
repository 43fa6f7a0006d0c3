//! Validation of the five object kinds and of queries (schema §3, §4, §7, §9–§11).

use std::net::IpAddr;

use super::{assert_err, wire};
use crate::domain::*;
use crate::error::ErrorCode;
use crate::wire::{
    HostComputeEndpoint, HostComputeLoadBalancer, HostComputeNamespace, HostComputeNetwork,
    HostComputeQuery, HostComputeRoute,
};

const NET: &str = "6f7a3c1e-0000-4000-8000-000000000001";

fn net(json: &str) -> Result<NetworkSpec, crate::HcnError> {
    validate_network(&crate::from_json::<HostComputeNetwork>(json.as_bytes())?)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn subnet_doc(prefix: &str, gw: &str) -> String {
    format!(
        r#"{{"Type":"nat","Ipams":[{{"Type":"Static","Subnets":[{{"IpAddressPrefix":"{prefix}","Routes":[{{"NextHop":"{gw}","DestinationPrefix":"{}"}}]}}]}}]}}"#,
        if prefix.contains(':') {
            "::/0"
        } else {
            "0.0.0.0/0"
        }
    )
}

#[test]
fn docker_nat_network() {
    let s = net(r#"{"Name":"nat","Type":"nat","Ipams":[{"Type":"Static","Subnets":[{"IpAddressPrefix":"172.31.0.0/16","Routes":[{"NextHop":"172.31.0.1","DestinationPrefix":"0.0.0.0/0"}]}]}],"Dns":{},"MacPool":{},"SchemaVersion":{"Major":2,"Minor":0}}"#).unwrap();
    assert_eq!(s.name, "nat");
    assert_eq!(s.kind, NetworkKind::Nat);
    assert_eq!(s.subnets.len(), 1);
    let sub = &s.subnets[0];
    assert_eq!(sub.prefix, "172.31.0.0/16".parse().unwrap());
    assert_eq!(sub.gateway, Some(ip("172.31.0.1")));
    assert_eq!(sub.routes.len(), 1);
    assert!(s.mac_pool.is_none() && s.dns.is_empty() && s.policies.is_empty());
}

#[test]
fn flannel_overlay_network() {
    let s = net(r#"{"Name":"flannel.4096","Type":"Overlay","Flags":8,
        "Ipams":[{"Type":"Static","Subnets":[{"IpAddressPrefix":"10.244.1.0/24","Routes":[{"NextHop":"10.244.1.1","DestinationPrefix":"0.0.0.0/0"}],
          "Policies":[{"Type":"VSID","Settings":{"IsolationId":4096}}]}]}],
        "Policies":[{"Type":"NetAdapterName","Settings":{"NetworkAdapterName":"eth0"}}],
        "MacPool":{"Ranges":[{"StartMacAddress":"00-15-5D-52-C0-00","EndMacAddress":"00-15-5D-52-CF-FF"}]},
        "Dns":{"ServerList":["10.96.0.10"],"Search":["svc.cluster.local"]}}"#).unwrap();
    assert_eq!(s.kind, NetworkKind::Overlay);
    assert_eq!(s.subnets[0].policies, vec![SubnetPolicy::Vsid(4096)]);
    assert_eq!(
        s.policies,
        vec![NetworkPolicy::NetAdapterName {
            name: "eth0".into(),
            teaming_mode: None
        }]
    );
    assert_eq!(s.mac_pool.unwrap().len(), 4096);
    assert_eq!(s.dns.servers, vec![ip("10.96.0.10")]);
    assert!(s.flags.contains(NetworkFlags::ENABLE_NON_PERSISTENT));
}

#[test]
fn dual_stack_and_ipam_without_type() {
    let s = net(r#"{"Type":"L2Bridge","Ipams":[{"Subnets":[
        {"IpAddressPrefix":"10.0.0.0/24","Routes":[{"NextHop":"10.0.0.1","DestinationPrefix":"0.0.0.0/0"}]},
        {"IpAddressPrefix":"fd00:1::/64","Routes":[{"NextHop":"fd00:1::1","DestinationPrefix":"::/0"}]}]}]}"#).unwrap();
    assert_eq!(s.subnets[1].gateway, Some(ip("fd00:1::1")));
    // A subnet without routes has no gateway.
    let s = net(r#"{"Ipams":[{"Subnets":[{"IpAddressPrefix":"10.0.0.0/24"}]}]}"#).unwrap();
    assert_eq!(s.subnets[0].gateway, None);
    // A NextHop without DestinationPrefix is a default route.
    let s = net(r#"{"Ipams":[{"Subnets":[{"IpAddressPrefix":"10.0.0.0/24","Routes":[{"NextHop":"10.0.0.1"}]}]}]}"#).unwrap();
    assert_eq!(s.subnets[0].gateway, Some(ip("10.0.0.1")));
}

#[test]
fn subnet_errors() {
    assert_err(
        net(&subnet_doc("172.31.0.1/16", "172.31.0.1")),
        ErrorCode::InvalidSubnet,
        &[
            "Ipams[0].Subnets[0].IpAddressPrefix",
            "did you mean 172.31.0.0/16",
        ],
    );
    assert_err(
        net(&subnet_doc("172.31.0.0/16", "10.0.0.1")),
        ErrorCode::InvalidSubnet,
        &["outside 172.31.0.0/16"],
    );
    assert_err(
        net(&subnet_doc("172.31.0.0/16", "172.31.0.0")),
        ErrorCode::AddrInvalidOrReserved,
        &["network or broadcast", "172.31.0.1"],
    );
    assert_err(
        net(&subnet_doc("172.31.0.0/16", "172.31.255.255")),
        ErrorCode::AddrInvalidOrReserved,
        &[],
    );
    assert_err(
        net(&subnet_doc("172.31.0.0/33", "172.31.0.1")),
        ErrorCode::InvalidSubnet,
        &["not a prefix"],
    );
    assert_err(
        net(&subnet_doc("fd00::/64", "fd01::1")),
        ErrorCode::InvalidSubnet,
        &["outside"],
    );
    assert!(net(&subnet_doc("fd00::/64", "fd00::1")).is_ok());
    assert_err(
        net(r#"{"Ipams":[{"Subnets":[{"Routes":[]}]}]}"#),
        ErrorCode::InvalidSubnet,
        &["IpAddressPrefix is missing"],
    );
    assert_err(
        net(
            r#"{"Ipams":[{"Subnets":[{"IpAddressPrefix":"10.0.0.0/24","Routes":[{"NextHop":"fd00::1","DestinationPrefix":"0.0.0.0/0"}]}]}]}"#,
        ),
        ErrorCode::InvalidSubnet,
        &["different IP families"],
    );
    assert_err(
        net(
            r#"{"Ipams":[{"Subnets":[{"IpAddressPrefix":"10.0.0.0/16"}]},{"Subnets":[{"IpAddressPrefix":"10.0.5.0/24"}]}]}"#,
        ),
        ErrorCode::InvalidSubnet,
        &["overlap"],
    );
    assert_err(
        net(r#"{"Ipams":[{"Type":"Magic"}]}"#),
        ErrorCode::InvalidNetwork,
        &["Static or Dhcp"],
    );
}

#[test]
fn subnet_policies() {
    let doc = |t: &str, id: u32| {
        format!(
            r#"{{"Ipams":[{{"Subnets":[{{"IpAddressPrefix":"10.0.0.0/24","Policies":[{{"Type":"{t}","Settings":{{"IsolationId":{id}}}}}]}}]}}]}}"#
        )
    };
    assert_eq!(
        net(&doc("VLAN", 7)).unwrap().subnets[0].policies,
        vec![SubnetPolicy::Vlan(7)]
    );
    assert_eq!(
        net(&doc("vsid", 4097)).unwrap().subnets[0].policies,
        vec![SubnetPolicy::Vsid(4097)]
    );
    assert_err(
        net(&doc("VLAN", 5000)),
        ErrorCode::InvalidPolicy,
        &["Policies[0]", "1-4094"],
    );
    assert_err(
        net(&doc("QinQ", 1)),
        ErrorCode::InvalidPolicyType,
        &["\"QinQ\"", "VLAN, VSID"],
    );
}

#[test]
fn network_mac_pool_and_dns_errors() {
    assert_err(
        net(
            r#"{"MacPool":{"Ranges":[{"StartMacAddress":"00-15-5D-52-CF-FF","EndMacAddress":"00-15-5D-52-C0-00"}]}}"#,
        ),
        ErrorCode::InvalidNetwork,
        &["StartMacAddress <= EndMacAddress"],
    );
    assert_err(
        net(
            r#"{"MacPool":{"Ranges":[{"StartMacAddress":"bogus","EndMacAddress":"00-15-5D-52-C0-00"}]}}"#,
        ),
        ErrorCode::InvalidNetwork,
        &["StartMacAddress", "bogus"],
    );
    assert_err(
        net(r#"{"Dns":{"ServerList":["1.1.1.1","dns.example"]}}"#),
        ErrorCode::InvalidNetwork,
        &["Dns.ServerList[1]"],
    );
    assert_err(
        net(r#"{"Type":"bridge"}"#),
        ErrorCode::InvalidNetworkType,
        &["bridge"],
    );
}

#[test]
fn endpoint_with_policies() {
    let e: HostComputeEndpoint = wire(
        r#"{"Name":"c1_nat","HostComputeNetwork":"6F7A3C1E-0000-4000-8000-000000000001",
        "IpConfigurations":[{"IpAddress":"172.31.0.5","PrefixLength":16}],
        "MacAddress":"00:15:5d:3a:1c:07",
        "Routes":[{"NextHop":"172.31.0.1","DestinationPrefix":"0.0.0.0/0"}],
        "Dns":{"ServerList":["172.31.0.1"]},
        "Policies":[
          {"Type":"PortMapping","Settings":{"Protocol":6,"InternalPort":80,"ExternalPort":8080}},
          {"Type":"ACL","Settings":{"Protocols":"6","Action":"Allow","Direction":"In","LocalPorts":"80","Priority":200}},
          {"Type":"OutBoundNAT","Settings":{"Exceptions":["10.244.0.0/16","10.96.0.0/12","192.168.1.5"]}}],
        "SchemaVersion":{"Major":2,"Minor":0}}"#,
    );
    let s = validate_endpoint(&e).unwrap();
    assert_eq!(s.network, parse_guid(NET).unwrap());
    assert_eq!(
        s.ip_configs,
        vec![IpConfigSpec {
            address: ip("172.31.0.5"),
            prefix_len: Some(16)
        }]
    );
    assert_eq!(s.mac.unwrap().to_string(), "00-15-5D-3A-1C-07");
    assert_eq!(s.routes[0].next_hop, Some(ip("172.31.0.1")));
    assert_eq!(s.policies.len(), 3);
    assert_eq!(
        s.policies[0],
        EndpointPolicy::PortMapping(PortMapping {
            protocol: Protocol::Tcp,
            internal_port: 80,
            external_port: 8080,
            vip: None,
            flags: NatFlags(0)
        })
    );
    let EndpointPolicy::OutboundNat(nat) = &s.policies[2] else {
        panic!()
    };
    assert_eq!(nat.exceptions[2], "192.168.1.5/32".parse().unwrap());
    assert!(s.namespace.is_none());
}

#[test]
fn endpoint_errors() {
    let ep = |body: &str| validate_endpoint(&wire::<HostComputeEndpoint>(body));
    assert_err(
        ep(r#"{"Name":"x"}"#),
        ErrorCode::InvalidEndpoint,
        &["HostComputeNetwork is missing"],
    );
    assert_err(
        ep(r#"{"HostComputeNetwork":"nat"}"#),
        ErrorCode::GuidConversionFailure,
        &["HostComputeNetwork"],
    );
    assert_err(
        ep(&format!(
            r#"{{"HostComputeNetwork":"{NET}","IpConfigurations":[{{"IpAddress":"10.1.0.300"}}]}}"#
        )),
        ErrorCode::InvalidIp,
        &[
            "IpConfigurations[0].IpAddress \"10.1.0.300\" is not an IP address",
            "dotted IPv4",
        ],
    );
    assert_err(
        ep(&format!(
            r#"{{"HostComputeNetwork":"{NET}","IpConfigurations":[{{"IpAddress":"10.1.0.3","PrefixLength":33}}]}}"#
        )),
        ErrorCode::InvalidPrefix,
        &["PrefixLength 33"],
    );
    assert_err(
        ep(&format!(
            r#"{{"HostComputeNetwork":"{NET}","MacAddress":"00-15"}}"#
        )),
        ErrorCode::InvalidEndpoint,
        &["MacAddress"],
    );
    assert_err(
        ep(&format!(
            r#"{{"HostComputeNetwork":"{NET}","Policies":[{{"Type":"PortMapping","Settings":{{"Protocol":6,"InternalPort":80,"ExternalPort":"abc"}}}}]}}"#
        )),
        ErrorCode::InvalidPolicy,
        &["Policies[0]", "PortMapping", "invalid type"],
    );
    // An allocated-IP endpoint: no IpConfigurations at all.
    let s = ep(&format!(
        r#"{{"HostComputeNetwork":"{NET}","HostComputeNamespace":"{NET}"}}"#
    ))
    .unwrap();
    assert!(s.ip_configs.is_empty() && s.mac.is_none() && s.namespace.is_some());
}

#[test]
fn namespaces() {
    let ns = |b: &str| validate_namespace(&wire::<HostComputeNamespace>(b));
    let s = ns(r#"{"SchemaVersion":{"Major":0,"Minor":0}}"#).unwrap();
    assert_eq!(s.kind, NamespaceKind::Host);
    let s = ns(r#"{"Type":"hostdefault","NamespaceId":5,"Name":"n"}"#).unwrap();
    assert_eq!(
        (s.kind, s.namespace_id, s.name.as_str()),
        (NamespaceKind::HostDefault, Some(5), "n")
    );
    assert_err(
        ns(r#"{"Type":"Pod"}"#),
        ErrorCode::InvalidJson,
        &["Host, HostDefault"],
    );
    assert_eq!(s.netns_path, None);
    let s = ns(r#"{"NetNsPath":"/run/netns/cni-1"}"#).unwrap();
    assert_eq!(s.netns_path, Some("/run/netns/cni-1".into()));
    assert_err(
        ns(r#"{"NetNsPath":"run/netns/x"}"#),
        ErrorCode::InvalidJson,
        &["run/netns/x", "absolute"],
    );
    assert_err(
        ns(r#"{"NetNsPath":"/run/netns/../x"}"#),
        ErrorCode::InvalidJson,
        &["absolute"],
    );
    let s = ns(r#"{"Type":"HostDefault","NetNsPath":"/proc/self/ns/net"}"#).unwrap();
    assert_eq!(
        s.netns_path, None,
        "the host's namespace is always the daemon's"
    );
}

#[test]
fn kube_proxy_load_balancer() {
    let lb = |b: &str| validate_load_balancer(&wire::<HostComputeLoadBalancer>(b));
    let s = lb(r#"{"HostComputeEndpoints":["a1b2c3d4-0000-4000-8000-000000000001","A1B2C3D4-0000-4000-8000-000000000002"],
        "SourceVIP":"10.0.0.5","FrontendVIPs":["10.96.0.10"],
        "PortMappings":[{"Protocol":17,"InternalPort":53,"ExternalPort":53,"DistributionType":2,"Flags":2}],
        "Flags":0,"SchemaVersion":{"Major":2,"Minor":0}}"#).unwrap();
    assert_eq!(s.endpoints.len(), 2);
    assert_eq!(s.source_vip, Some(ip("10.0.0.5")));
    assert_eq!(s.frontend_vips, vec![ip("10.96.0.10")]);
    assert_eq!(
        s.port_mappings,
        vec![LbPortMapping {
            protocol: Protocol::Udp,
            internal_port: 53,
            external_port: 53,
            distribution: Distribution::SourceIp,
            flags: 2
        }]
    );
    // NodePort: no FrontendVIPs; SCTP.
    let s = lb(r#"{"HostComputeEndpoints":[],"PortMappings":[{"Protocol":132,"InternalPort":8080,"ExternalPort":30080,"Flags":16}],"Flags":1}"#).unwrap();
    assert!(s.frontend_vips.is_empty());
    assert_eq!(s.port_mappings[0].protocol, Protocol::Other(132));
    assert_eq!(s.flags, 1);
    assert_err(
        lb(r#"{"PortMappings":[{"Protocol":6,"ExternalPort":80}]}"#),
        ErrorCode::InvalidInternalPort,
        &["PortMappings[0].InternalPort"],
    );
    assert_err(
        lb(r#"{"PortMappings":[{"Protocol":6,"InternalPort":80}]}"#),
        ErrorCode::InvalidPolicy,
        &["ExternalPort"],
    );
    assert_err(
        lb(r#"{"PortMappings":[{"InternalPort":80,"ExternalPort":80}]}"#),
        ErrorCode::InvalidPolicy,
        &["Protocol 0"],
    );
    assert_err(
        lb(
            r#"{"PortMappings":[{"Protocol":6,"InternalPort":80,"ExternalPort":80,"DistributionType":7}]}"#,
        ),
        ErrorCode::InvalidPolicy,
        &["DistributionType 7"],
    );
    assert_err(
        lb(r#"{"FrontendVIPs":["10.96.0"]}"#),
        ErrorCode::InvalidIp,
        &["FrontendVIPs[0]"],
    );
    assert_err(
        lb(r#"{"HostComputeEndpoints":["x"]}"#),
        ErrorCode::GuidConversionFailure,
        &["HostComputeEndpoints[0]"],
    );
}

#[test]
fn route_objects() {
    let r = |b: &str| validate_route(&wire::<HostComputeRoute>(b));
    let s = r(r#"{"HostComputeEndpoints":["a1b2c3d4-0000-4000-8000-000000000001"],"Routes":[{"DestinationPrefix":"10.96.0.0/12","NextHop":"10.0.0.1","NeedEncap":true}]}"#).unwrap();
    assert_eq!(
        s.routes,
        vec![SdnRouteSpec {
            destination: "10.96.0.0/12".parse().unwrap(),
            next_hop: Some(ip("10.0.0.1")),
            need_encap: true
        }]
    );
    let s = r(r#"{"Setting":[{"DestinationPrefix":"10.0.0.0/8"}],"HostComputeNetwork":"6f7a3c1e-0000-4000-8000-000000000001"}"#).unwrap();
    assert_eq!(s.routes[0].next_hop, None);
    assert!(s.network.is_some());
    assert_err(
        r(r#"{"Setting":[{"NextHop":"10.0.0.1"}]}"#),
        ErrorCode::InvalidPrefix,
        &["Setting[0].DestinationPrefix is missing"],
    );
    assert_err(
        r(r#"{"Routes":[{"DestinationPrefix":"10.0.0.1/8"}]}"#),
        ErrorCode::InvalidPrefix,
        &["did you mean 10.0.0.0/8"],
    );
}

#[test]
fn queries_and_filters() {
    let q = |b: &str| parse_query(&wire::<HostComputeQuery>(b));
    assert!(q(r#"{"SchemaVersion":{"Major":2,"Minor":0}}"#)
        .unwrap()
        .is_empty());
    assert!(q(r#"{"Filter":""}"#).unwrap().is_empty());
    assert_eq!(
        q(r#"{"Filter":"{\"Name\":\"cbr0\"}"}"#)
            .unwrap()
            .name
            .as_deref(),
        Some("cbr0")
    );
    assert_eq!(
        q(r#"{"Filter":{"Name":"cbr0"}}"#).unwrap().name.as_deref(),
        Some("cbr0")
    );
    let f = q(r#"{"Filter":"{\"VirtualNetwork\":\"6F7A3C1E-0000-4000-8000-000000000001\",\"ID\":\"6f7a3c1e-0000-4000-8000-000000000002\"}"}"#).unwrap();
    assert_eq!(
        f.network.as_deref(),
        Some("6F7A3C1E-0000-4000-8000-000000000001")
    );
    assert_eq!(
        f.id.map(|u| format_guid(&u)).as_deref(),
        Some("6F7A3C1E-0000-4000-8000-000000000002")
    );
    assert_eq!(
        parse_filter_json(r#"{"VirtualNetworkName":"nat"}"#)
            .unwrap()
            .network
            .as_deref(),
        Some("nat")
    );
    assert_err(
        parse_filter_json(r#"{"Color":"red"}"#),
        ErrorCode::RequestUnsupported,
        &["Color", "VirtualNetwork"],
    );
    assert_err(
        parse_filter_json("{nope"),
        ErrorCode::InvalidJson,
        &["Filter is not JSON"],
    );
    assert_err(
        parse_filter_json(r#"{"Name":5}"#),
        ErrorCode::InvalidJson,
        &["Filter.Name"],
    );
    assert_err(
        parse_filter_json(r#"{"ID":"x"}"#),
        ErrorCode::GuidConversionFailure,
        &["Filter.ID"],
    );
}
