//! Every policy type of schema §5 (network), §6 (subnet, see objects.rs) and §8
//! (endpoint) parses from a representative document; ACL details of §8.2.

use std::net::IpAddr;

use serde_json::{json, Value};

use super::assert_err;
use crate::domain::*;
use crate::error::{ErrorCode, HcnError};
use crate::wire::Policy;

fn np(t: &str, settings: Value) -> Result<NetworkPolicy, HcnError> {
    parse_network_policy(&Policy::new(t, settings))
}

fn ep(t: &str, settings: Value) -> Result<EndpointPolicy, HcnError> {
    parse_endpoint_policy(&Policy::new(t, settings))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mac(s: &str) -> Mac {
    s.parse().unwrap()
}

#[test]
fn every_network_policy_type_parses() {
    let ext = "e7c3b2f0-3a1c-4b5d-9e8f-0123456789ab";
    let cases: Vec<(&str, Value)> = vec![
        (
            "SourceMacAddress",
            json!({"SourceMacAddress": "00-15-5D-00-00-01"}),
        ),
        ("NetAdapterName", json!({"NetworkAdapterName": "eth0"})),
        (
            "VSwitchExtension",
            json!({"ExtensionID": ext, "Enable": true}),
        ),
        ("DrMacAddress", json!({"Address": "0E-2A-0a-f4-01-05"})),
        ("AutomaticDNS", json!({"Enable": true})),
        (
            "INTERFACECONSTRAINT",
            json!({"InterfaceGuid": ext, "InterfaceIndex": 3, "InterfaceAlias": "eth0"}),
        ),
        (
            "ProviderAddress",
            json!({"ProviderAddress": "192.168.1.10"}),
        ),
        (
            "RemoteSubnetRoute",
            json!({"DestinationPrefix": "10.244.2.0/24", "IsolationId": 4096, "ProviderAddress": "192.168.1.11", "DistributedRouterMacAddress": "02:11:0a:f4:02:07"}),
        ),
        ("VxlanPort", json!({"Port": 4789})),
        ("HostRoute", json!({})),
        (
            "SetPolicy",
            json!({"Id": "azure-npm-1", "Name": "ns-default", "PolicyType": "IPSET", "Values": "10.0.0.1,10.0.0.2"}),
        ),
        (
            "L4Proxy",
            json!({"IP": "127.0.0.1", "Port": "15001", "Protocol": 6, "Exceptions": ["10.0.0.0/8"], "OutboundNAT": true}),
        ),
        ("LayerConstraint", json!({"LayerId": ext})),
        (
            "NetworkACL",
            json!({"Action": "Block", "Direction": "Out", "RemoteAddresses": "10.0.0.0/8", "Priority": 100}),
        ),
        (
            "NeighborDiscovery",
            json!({"TargetIpPrefix": "10.0.0.0/24", "SenderIpAddress": "10.0.0.1", "SenderMacAddress": "00-15-5D-00-00-02"}),
        ),
    ];
    assert_eq!(cases.len(), NETWORK_POLICY_TYPES.len());
    for (t, s) in cases {
        let p = np(t, s).unwrap_or_else(|e| panic!("{t}: {e}"));
        assert!(
            p.type_name().eq_ignore_ascii_case(t),
            "{t} -> {}",
            p.type_name()
        );
        assert!(NETWORK_POLICY_TYPES.contains(&p.type_name()));
    }
}

#[test]
fn network_policy_values() {
    assert_eq!(
        np("RemoteSubnetRoute", json!({"DestinationPrefix": "10.244.2.0/24", "IsolationId": 4096, "ProviderAddress": "192.168.1.11", "DistributedRouterMacAddress": ""})).unwrap(),
        NetworkPolicy::RemoteSubnetRoute { destination: "10.244.2.0/24".parse().unwrap(), isolation_id: 4096, provider_address: ip("192.168.1.11"), dr_mac: None }
    );
    assert_eq!(
        np("drmacaddress", json!({"Address": "02:11:0a:f4:02:07"})).unwrap(),
        NetworkPolicy::DrMacAddress(mac("02-11-0A-F4-02-07"))
    );
    assert_eq!(
        np("HostRoute", Value::Null).unwrap(),
        NetworkPolicy::HostRoute
    );
    let NetworkPolicy::SetPolicy { members, .. } = np(
        "SetPolicy",
        json!({"Id": "s", "PolicyType": "nestedipset", "Values": "a, b,"}),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(
        members,
        SetMembers::Sets(vec!["a".to_string(), "b".to_string()])
    );
    let NetworkPolicy::SetPolicy { members, .. } = np(
        "SetPolicy",
        json!({"Id": "a", "PolicyType": "IPSET", "Values": "10.0.0.1, 10.1.2.3/16"}),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(
        members,
        SetMembers::Addresses(vec![
            "10.0.0.1/32".parse().unwrap(),
            "10.1.0.0/16".parse().unwrap()
        ])
    );
    let e = np(
        "SetPolicy",
        json!({"Id": "a", "PolicyType": "IPSET", "Values": "nope"}),
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidPolicy);
    assert!(e.message.contains("\"nope\""), "{e:?}");
    // Both L4Proxy key spellings ([conflict] note).
    let a = np(
        "L4Proxy",
        json!({"Port": 15001, "Exceptions": ["10.0.0.1"], "OutboundNAT": true}),
    )
    .unwrap();
    let b = np(
        "L4Proxy",
        json!({"Port": "15001", "ExceptionList": ["10.0.0.1"], "OutboundNat": true}),
    )
    .unwrap();
    assert_eq!(a, b);
    let NetworkPolicy::L4Proxy(l4) = a else {
        panic!()
    };
    assert_eq!(
        (l4.port, l4.outbound_nat, l4.exceptions[0]),
        (Some(15001), true, "10.0.0.1/32".parse().unwrap())
    );

    assert_err(
        np(
            "RemoteSubnetRoute",
            json!({"DestinationPrefix": "10.244.2.0/24"}),
        ),
        ErrorCode::InvalidPolicy,
        &["ProviderAddress is missing"],
    );
    assert_err(
        np("ProviderAddress", json!({"ProviderAddress": "host"})),
        ErrorCode::InvalidPolicy,
        &["ProviderAddress", "not an IP address"],
    );
    assert_err(
        np("DrMacAddress", json!({"Address": "nope"})),
        ErrorCode::InvalidPolicy,
        &["Address", "not a MAC address"],
    );
    assert_err(
        np("VxlanPort", json!({"Port": "x"})),
        ErrorCode::InvalidPolicy,
        &["invalid type"],
    );
    assert_err(
        np("SetPolicy", json!({"Id": "s", "PolicyType": "LIST"})),
        ErrorCode::InvalidPolicy,
        &["IPSET or NESTEDIPSET"],
    );
    assert_err(
        np("L4Proxy", json!({"Port": "http"})),
        ErrorCode::InvalidPolicy,
        &["Port"],
    );
}

#[test]
fn unknown_policy_types_are_rejected_by_name() {
    assert_err(
        np("Teleport", json!({})),
        ErrorCode::InvalidPolicyType,
        &["\"Teleport\"", "network policy type", "RemoteSubnetRoute"],
    );
    assert_err(
        ep("Teleport", json!({})),
        ErrorCode::InvalidPolicyType,
        &["\"Teleport\"", "endpoint policy type", "PortMapping"],
    );
    // A network-only type is not an endpoint policy and vice versa.
    assert_err(
        ep("HostRoute", json!({})),
        ErrorCode::InvalidPolicyType,
        &["HostRoute"],
    );
    assert_err(
        np("PortMapping", json!({})),
        ErrorCode::InvalidPolicyType,
        &["PortMapping"],
    );
    // Docker's v1 network-level VLAN is a subnet policy in v2: say where.
    assert_err(
        np("VLAN", json!({"IsolationId": 11})),
        ErrorCode::InvalidPolicyType,
        &["subnet policy", "IsolationId"],
    );
}

#[test]
fn every_endpoint_policy_type_parses() {
    let cases: Vec<(&str, Value)> = vec![
        (
            "PortMapping",
            json!({"Protocol": 6, "InternalPort": 80, "ExternalPort": 8080}),
        ),
        (
            "acl",
            json!({"Protocols": "6", "Action": "Allow", "Direction": "In", "RuleType": "Switch", "Priority": 200}),
        ),
        ("QOS", json!({"MaximumOutgoingBandwidthInBytes": 1000000})),
        ("L2Driver", json!({"Anything": [1, 2]})),
        (
            "OutBoundNAT",
            json!({"VirtualIP": "168.63.129.16", "Destinations": ["168.63.129.16"], "Flags": 0}),
        ),
        (
            "SDNRoute",
            json!({"DestinationPrefix": "10.96.0.0/12", "NeedEncap": true}),
        ),
        ("L4Proxy", json!({"IP": "127.0.0.1", "Port": "15001"})),
        (
            "L4WFPPROXY",
            json!({"InboundProxyPort": "15006", "OutboundProxyPort": "15001", "FilterTuple": {"Protocols": "6"}}),
        ),
        (
            "ProviderAddress",
            json!({"ProviderAddress": "192.168.1.11"}),
        ),
        ("PortName", json!({"Name": "port1"})),
        ("EncapOverhead", json!({"Overhead": 50})),
        ("InterfaceConstraint", json!({"InterfaceIndex": 3})),
        (
            "IOV",
            json!({"IovOffloadWeight": 100, "QueuePairsRequested": 1, "InterruptModeration": "Adaptive"}),
        ),
        (
            "TierAcl",
            json!({"Name": "calico", "Direction": "In", "Order": 1, "TierAclRules": [{"Id": "r1", "Protocols": "6", "TierAclRuleAction": "Pass", "LocalPorts": "80", "Priority": 10}]}),
        ),
        ("VLAN", json!({"IsolationId": 100})),
        ("InterfaceParameters", json!({"Mtu": 1450})),
        ("Encryption", json!({"Mode": "x"})),
    ];
    assert_eq!(cases.len(), ENDPOINT_POLICY_TYPES.len());
    for (t, s) in cases {
        let p = ep(t, s).unwrap_or_else(|e| panic!("{t}: {e}"));
        assert!(
            p.type_name().eq_ignore_ascii_case(t),
            "{t} -> {}",
            p.type_name()
        );
        assert!(ENDPOINT_POLICY_TYPES.contains(&p.type_name()));
    }
}

#[test]
fn endpoint_policy_values() {
    assert_eq!(
        ep("PortMapping", json!({"Protocol": "UDP", "InternalPort": 53, "ExternalPort": 5353, "VIP": "10.0.0.4", "Flags": 3})).unwrap(),
        EndpointPolicy::PortMapping(PortMapping { protocol: Protocol::Udp, internal_port: 53, external_port: 5353, vip: Some(ip("10.0.0.4")), flags: NatFlags(3) })
    );
    let EndpointPolicy::OutboundNat(n) = ep("OutBoundNAT", json!({"Exceptions": ["10.244.0.0/16", "fd00::/48"], "Flags": "IPv6", "MaxPortPoolUsage": 80})).unwrap() else { panic!() };
    assert_eq!(
        n.exceptions,
        vec![
            "10.244.0.0/16".parse().unwrap(),
            "fd00::/48".parse().unwrap()
        ]
    );
    assert!(n.flags.contains(NatFlags::IPV6));
    assert_eq!(n.max_port_pool_usage, Some(80));
    assert_eq!(
        ep(
            "SDNRoute",
            json!({"DestinationPrefix": "10.0.0.2/32", "NextHop": "", "NeedEncap": true})
        )
        .unwrap(),
        EndpointPolicy::SdnRoute {
            destination: "10.0.0.2/32".parse().unwrap(),
            next_hop: None,
            need_encap: true
        }
    );
    assert_eq!(
        ep("Iov", json!({"InterruptModeration": "high"})).unwrap(),
        EndpointPolicy::Iov {
            offload_weight: 0,
            queue_pairs: 0,
            interrupt_moderation: 300
        }
    );
    let l2 = json!({"Anything": [1]});
    assert_eq!(
        ep("L2Driver", l2.clone()).unwrap(),
        EndpointPolicy::L2Driver(l2)
    );
    let EndpointPolicy::TierAcl(t) = ep("TierAcl", json!({"Name": "t", "Direction": "Out", "TierAclRules": [{"TierAclRuleAction": "block", "RemoteAddresses": "10.0.0.0/8"}]})).unwrap() else { panic!() };
    assert_eq!(
        (t.direction, t.rules[0].action),
        (Direction::Out, AclAction::Block)
    );

    assert_err(
        ep(
            "PortMapping",
            json!({"Protocol": 6, "InternalPort": 0, "ExternalPort": 80}),
        ),
        ErrorCode::InvalidInternalPort,
        &["InternalPort"],
    );
    assert_err(
        ep("PortMapping", json!({"Protocol": 6, "InternalPort": 80})),
        ErrorCode::InvalidPolicy,
        &["ExternalPort is missing or 0"],
    );
    assert_err(
        ep(
            "PortMapping",
            json!({"InternalPort": 80, "ExternalPort": 80}),
        ),
        ErrorCode::InvalidPolicy,
        &["Protocol 0"],
    );
    assert_err(
        ep(
            "PortMapping",
            json!({"Protocol": 300, "InternalPort": 80, "ExternalPort": 80}),
        ),
        ErrorCode::InvalidPolicy,
        &["Protocol 300"],
    );
    assert_err(
        ep(
            "PortMapping",
            json!({"Protocol": "quic", "InternalPort": 80, "ExternalPort": 80}),
        ),
        ErrorCode::InvalidPolicy,
        &["quic"],
    );
    assert_err(
        ep(
            "PortMapping",
            json!({"Protocol": 6, "InternalPort": 80, "ExternalPort": "abc"}),
        ),
        ErrorCode::InvalidPolicy,
        &["invalid type"],
    );
    assert_err(
        ep("PortMapping", json!("not an object")),
        ErrorCode::InvalidPolicy,
        &["Settings are not valid"],
    );
    assert_err(
        ep("OutBoundNAT", json!({"Exceptions": ["10.0.0.300"]})),
        ErrorCode::InvalidPolicy,
        &["Exceptions"],
    );
    assert_err(
        ep("VLAN", json!({"IsolationId": 0})),
        ErrorCode::InvalidPolicy,
        &["1-4094"],
    );
    assert_err(
        ep("L4WFPPROXY", json!({"InboundProxyPort": "x"})),
        ErrorCode::InvalidPolicy,
        &["InboundProxyPort"],
    );
    assert_err(
        ep("QOS", json!({})),
        ErrorCode::InvalidPolicy,
        &["MaximumOutgoingBandwidthInBytes is missing"],
    );
    assert_eq!("tcp".parse::<Protocol>().unwrap(), Protocol::Tcp);
    assert_eq!(Protocol::from_number(0), None);
    assert_eq!(Protocol::Other(132).number(), 132);
}

#[test]
fn acl_rules() {
    let acl = |s: Value| match ep("ACL", s)? {
        EndpointPolicy::Acl(a) => Ok(a),
        other => panic!("{other:?}"),
    };
    // WCN-style allow rule.
    let a = acl(json!({"Id": "allow-dns", "Protocols": "6,17", "Action": "Allow", "Direction": "Out",
        "RemoteAddresses": "10.96.0.10,10.244.0.0/16", "RemotePorts": "53,1000-2000", "RuleType": "switch", "Priority": 101})).unwrap();
    assert_eq!(a.id.as_deref(), Some("allow-dns"));
    assert_eq!(a.protocols, vec![6, 17]);
    assert_eq!(
        (a.action, a.direction, a.rule_type, a.priority),
        (AclAction::Allow, Direction::Out, RuleType::Switch, 101)
    );
    assert_eq!(
        a.remote_addresses,
        vec![
            AddressMatch::Prefix("10.96.0.10/32".parse().unwrap()),
            AddressMatch::Prefix("10.244.0.0/16".parse().unwrap())
        ]
    );
    assert_eq!(
        a.remote_ports,
        vec![
            PortRange { start: 53, end: 53 },
            PortRange {
                start: 1000,
                end: 2000
            }
        ]
    );
    assert!(a.local_addresses.is_empty() && a.local_ports.is_empty());
    // Calico default deny: lower-case pass, 256 = any, no RuleType => Switch.
    let a =
        acl(json!({"Protocols": "256", "Action": "pass", "Direction": "in", "Priority": 65500}))
            .unwrap();
    assert_eq!(
        (a.action, a.protocols.len(), a.rule_type),
        (AclAction::Pass, 0, RuleType::Switch)
    );
    // v1-style numeric Protocols and Host rules.
    let a = acl(json!({"Protocols": 1, "Action": "Block", "Direction": "In", "RuleType": "Host"}))
        .unwrap();
    assert_eq!((a.protocols, a.rule_type), (vec![1], RuleType::Host));
    // NPM: SetPolicy ids among addresses; v6 addresses.
    let a = acl(json!({"Action": "Allow", "Direction": "In", "LocalAddresses": "azure-npm-3216600258,fd00::1"})).unwrap();
    assert_eq!(
        a.local_addresses,
        vec![
            AddressMatch::SetId("azure-npm-3216600258".into()),
            AddressMatch::Prefix("fd00::1/128".parse().unwrap())
        ]
    );

    assert_err(
        acl(json!({"Direction": "In"})),
        ErrorCode::InvalidPolicy,
        &["Action is missing"],
    );
    assert_err(
        acl(json!({"Action": "Allow"})),
        ErrorCode::InvalidPolicy,
        &["Direction is missing"],
    );
    assert_err(
        acl(json!({"Action": "Deny", "Direction": "In"})),
        ErrorCode::InvalidPolicy,
        &["\"Deny\"", "Allow, Block or Pass"],
    );
    assert_err(
        acl(json!({"Action": "Allow", "Direction": "Both"})),
        ErrorCode::InvalidPolicy,
        &["In or Out"],
    );
    assert_err(
        acl(json!({"Action": "Allow", "Direction": "In", "RuleType": "Kernel"})),
        ErrorCode::InvalidPolicy,
        &["Switch or Host"],
    );
    assert_err(
        acl(json!({"Action": "Allow", "Direction": "In", "Protocols": "6,300"})),
        ErrorCode::InvalidPolicy,
        &["\"300\""],
    );
    assert_err(
        acl(json!({"Action": "Allow", "Direction": "In", "LocalAddresses": "10.0.0.300"})),
        ErrorCode::InvalidPolicy,
        &["LocalAddresses", "10.0.0.300"],
    );
    assert_err(
        acl(json!({"Action": "Allow", "Direction": "In", "LocalPorts": "90-80"})),
        ErrorCode::InvalidPolicy,
        &["LocalPorts", "90-80"],
    );
    assert_err(
        acl(json!({"Action": "Allow", "Direction": "In", "RemotePorts": "http"})),
        ErrorCode::InvalidPolicy,
        &["RemotePorts"],
    );
    assert_err(
        acl(json!({"Action": "Allow", "Direction": "In", "Priority": "high"})),
        ErrorCode::InvalidPolicy,
        &["invalid type"],
    );
    // NetworkACL uses the same settings.
    let NetworkPolicy::NetworkAcl(r) = np(
        "networkacl",
        json!({"Action": "Block", "Direction": "In", "LocalPorts": "22"}),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(r.local_ports, vec![PortRange { start: 22, end: 22 }]);
}

#[test]
fn v1_pa_policy_and_is_remote_endpoint_mean_a_remote_endpoint() {
    assert_eq!(
        ep("PA", json!({"PA": "192.0.2.12"})).unwrap(),
        EndpointPolicy::ProviderAddress(ip("192.0.2.12"))
    );
    let w: crate::wire::HostComputeEndpoint = serde_json::from_value(json!({
        "HostComputeNetwork": "6f7a3c1e-0000-4000-8000-000000000001",
        "IsRemoteEndpoint": true,
        "Policies": [{"Type": "PA", "Settings": {"PA": "192.0.2.12"}}]
    }))
    .unwrap();
    let spec = validate_endpoint(&w).unwrap();
    assert!(spec.flags.contains(EndpointFlags::REMOTE_ENDPOINT));
}
