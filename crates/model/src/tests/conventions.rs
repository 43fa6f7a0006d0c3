//! Schema §2 conventions: key case, omission, enums, flags, GUIDs, MACs,
//! unknown keys, wrong types, round trips; plus error codes and `from_json`.

use serde_json::json;

use super::{assert_err, assert_round_trip, to_value, wire};
use crate::domain::{
    format_guid, parse_guid, validate_endpoint, validate_network, EndpointFlags, Mac, MacRange,
    NetworkFlags, NetworkKind,
};
use crate::error::{ErrorCode, HcnError};
use crate::from_json;
use crate::wire::{
    HostComputeEndpoint, HostComputeLoadBalancer, HostComputeNamespace, HostComputeNetwork,
    HostComputeQuery, HostComputeRoute,
};

const DOCKER_NAT: &str = r#"{"Name":"nat","Type":"nat","Ipams":[{"Type":"Static","Subnets":[{"IpAddressPrefix":"172.31.0.0/16","Routes":[{"NextHop":"172.31.0.1","DestinationPrefix":"0.0.0.0/0"}]}]}],"Dns":{},"MacPool":{},"SchemaVersion":{"Major":2,"Minor":0}}"#;

#[test]
fn network_type_is_case_insensitive_and_defaults_to_nat() {
    for (t, k) in [
        ("nat", NetworkKind::Nat),
        ("l2bridge", NetworkKind::L2Bridge),
        ("OVERLAY", NetworkKind::Overlay),
        ("Transparent", NetworkKind::Transparent),
        ("constrainedics", NetworkKind::ConstrainedIcs),
        ("", NetworkKind::Nat),
    ] {
        assert_eq!(t.parse::<NetworkKind>().unwrap(), k, "{t}");
    }
    let n: HostComputeNetwork = wire(r#"{"Name":"x"}"#);
    assert_eq!(validate_network(&n).unwrap().kind, NetworkKind::Nat);
    assert_eq!(NetworkKind::L2Bridge.to_string(), "L2Bridge");
    assert_eq!(NetworkKind::Nat.to_string(), "NAT");
    assert_err(
        "bridge".parse::<NetworkKind>(),
        ErrorCode::InvalidNetworkType,
        &["\"bridge\"", "L2Bridge", "Overlay"],
    );
}

#[test]
fn flags_accept_numbers_and_names_and_emit_numbers() {
    let a: HostComputeNetwork = wire(r#"{"Flags":9}"#);
    let b: HostComputeNetwork = wire(r#"{"Flags":"EnableDnsProxy|enablenonpersistent"}"#);
    assert_eq!(a.flags, 9);
    assert_eq!(a, b);
    assert_eq!(to_value(&b), json!({"Flags": 9}));
    let spec = validate_network(&a).unwrap();
    assert!(spec.flags.contains(NetworkFlags::ENABLE_NON_PERSISTENT));
    assert!(!spec.flags.contains(NetworkFlags::ENABLE_IOV));

    let e: HostComputeEndpoint = wire(
        r#"{"HostComputeNetwork":"6f7a3c1e-0000-4000-8000-000000000001","Flags":"RemoteEndpoint"}"#,
    );
    assert!(validate_endpoint(&e)
        .unwrap()
        .flags
        .contains(EndpointFlags::REMOTE_ENDPOINT));

    let lb: HostComputeLoadBalancer = wire(
        r#"{"PortMappings":[{"Protocol":"tcp","InternalPort":80,"ExternalPort":8080,"DistributionType":"SourceIP","Flags":"LocalRoutedVip"}],"Flags":"DSR"}"#,
    );
    assert_eq!(
        to_value(&lb),
        json!({"PortMappings":[{"Protocol":6,"InternalPort":80,"ExternalPort":8080,"DistributionType":2,"Flags":2}],"Flags":1})
    );

    assert_err(
        from_json::<HostComputeNetwork>(br#"{"Flags":"EnableTeleport"}"#),
        ErrorCode::InvalidJson,
        &["EnableTeleport", "EnableDnsProxy"],
    );
    assert_err(
        from_json::<HostComputeNetwork>(br#"{"Flags":-1}"#),
        ErrorCode::InvalidJson,
        &[],
    );
    assert_err(
        from_json::<HostComputeNetwork>(br#"{"Flags":true}"#),
        ErrorCode::InvalidJson,
        &["NetworkFlags"],
    );
}

#[test]
fn macs_in_both_spellings() {
    let a: Mac = "00-15-5D-52-C0-00".parse().unwrap();
    let b: Mac = "00:15:5d:52:c0:00".parse().unwrap();
    let c: Mac = "00-15-5d-52-C0-00".parse().unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(b.to_string(), "00-15-5D-52-C0-00");
    assert_eq!(a.0, [0x00, 0x15, 0x5d, 0x52, 0xc0, 0x00]);
    assert_eq!(Mac::from_u64(a.to_u64()), a);
    for bad in [
        "",
        "00-15-5D-52-C0",
        "00-15-5D-52-C0-00-11",
        "0-15-5D-52-C0-00",
        "zz-15-5D-52-C0-00",
        "00-15:5D-52-C0-00",
    ] {
        assert!(bad.parse::<Mac>().is_err(), "{bad}");
    }
    assert_eq!(serde_json::to_string(&a).unwrap(), r#""00-15-5D-52-C0-00""#);
    assert_eq!(
        serde_json::from_str::<Mac>(r#""0e:2a:0A:f4:01:05""#)
            .unwrap()
            .to_string(),
        "0E-2A-0A-F4-01-05"
    );
    assert!(MacRange::new(b, a).is_ok());
    let hi: Mac = "00-15-5D-52-CF-FF".parse().unwrap();
    assert_eq!(MacRange::new(a, hi).unwrap().len(), 0x1000);
    assert_err(
        MacRange::new(hi, a),
        ErrorCode::InvalidNetwork,
        &["StartMacAddress <= EndMacAddress"],
    );
}

#[test]
fn guids_in_any_case() {
    let up = parse_guid("0E1C4F24-8C4B-4B0C-9D4E-7A57E5C4C3B1").unwrap();
    assert_eq!(
        parse_guid("0e1c4f24-8c4b-4b0c-9d4e-7a57e5c4c3b1").unwrap(),
        up
    );
    assert_eq!(
        parse_guid("{0e1c4f24-8C4B-4b0c-9d4e-7a57e5c4c3b1}").unwrap(),
        up
    );
    assert_eq!(format_guid(&up), "0E1C4F24-8C4B-4B0C-9D4E-7A57E5C4C3B1");
    for bad in [
        "",
        "nope",
        "0e1c4f248c4b4b0c9d4e7a57e5c4c3b1x",
        "0e1c4f24-8c4b-4b0c-9d4e-7a57e5c4c3b",
    ] {
        assert_err(
            parse_guid(bad),
            ErrorCode::GuidConversionFailure,
            &["is not a GUID"],
        );
    }
}

#[test]
fn unknown_keys_are_tolerated() {
    let n: HostComputeNetwork = wire(
        r#"{"Name":"a","Bogus":1,"Ipams":[{"Subnets":[{"IpAddressPrefix":"10.0.0.0/24","Whatever":[1]}]}],"Dns":{"X":1}}"#,
    );
    assert_eq!(validate_network(&n).unwrap().subnets.len(), 1);
    // docker overlay's legacy key inside an OutBoundNAT policy.
    let e: HostComputeEndpoint = wire(
        r#"{"HostComputeNetwork":"6f7a3c1e-0000-4000-8000-000000000001","Policies":[{"Type":"OutBoundNAT","Settings":{"PA":""}}]}"#,
    );
    validate_endpoint(&e).unwrap();
}

#[test]
fn wrong_types_are_rejected() {
    assert_err(
        from_json::<HostComputeNetwork>(br#"{"Ipams":5}"#),
        ErrorCode::InvalidJson,
        &["invalid type", "line 1"],
    );
    assert_err(
        from_json::<HostComputeNetwork>(br#"{"Name":5}"#),
        ErrorCode::InvalidJson,
        &["invalid type"],
    );
    assert_err(
        from_json::<HostComputeEndpoint>(br#"{"IpConfigurations":[{"PrefixLength":"24"}]}"#),
        ErrorCode::InvalidJson,
        &[],
    );
    assert_err(
        from_json::<HostComputeLoadBalancer>(br#"{"PortMappings":[{"ExternalPort":"abc"}]}"#),
        ErrorCode::InvalidJson,
        &[],
    );
    assert_err(
        from_json::<HostComputeLoadBalancer>(br#"{"PortMappings":[{"ExternalPort":70000}]}"#),
        ErrorCode::InvalidJson,
        &[],
    );
    assert_err(
        from_json::<HostComputeQuery>(br#"{"Filter":5}"#),
        ErrorCode::InvalidJson,
        &["Filter"],
    );
}

#[test]
fn empty_body_and_malformed_json() {
    assert_err(
        from_json::<HostComputeNetwork>(b""),
        ErrorCode::InvalidJson,
        &["request body is empty"],
    );
    assert_err(
        from_json::<HostComputeNetwork>(b"  \n"),
        ErrorCode::InvalidJson,
        &["empty"],
    );
    assert_err(
        from_json::<HostComputeNetwork>(b"{\"Name\":"),
        ErrorCode::InvalidJson,
        &["line 1 column"],
    );
    assert_err(
        from_json::<HostComputeNetwork>(b"\"nat\""),
        ErrorCode::InvalidJson,
        &["invalid type"],
    );
}

#[test]
fn empties_are_omitted_and_nulls_read_as_empty() {
    let n: HostComputeNetwork = wire(
        r#"{"Name":"x","Policies":[],"Dns":{},"MacPool":{},"Ipams":[],"Flags":0,"Health":null}"#,
    );
    assert_eq!(to_value(&n), json!({"Name":"x"}));
    let n: HostComputeNetwork =
        wire(r#"{"Name":"x","Policies":null,"Ipams":null,"Dns":{"Search":null}}"#);
    assert_eq!(to_value(&n), json!({"Name":"x"}));
    // Nested structs HCS always sends are echoed when they carry something.
    let n: HostComputeNetwork =
        wire(r#"{"Health":{"Extra":{}},"SchemaVersion":{"Major":0,"Minor":0}}"#);
    assert_eq!(
        to_value(&n),
        json!({"Health":{"Extra":{}},"SchemaVersion":{"Major":0,"Minor":0}})
    );
}

#[test]
fn docker_network_round_trips_and_echoes_fields() {
    let n: HostComputeNetwork = wire(DOCKER_NAT);
    assert_round_trip(&n);
    let v = to_value(&n);
    assert_eq!(
        v["Ipams"][0]["Subnets"][0]["IpAddressPrefix"],
        "172.31.0.0/16"
    );
    assert_eq!(
        v["Ipams"][0]["Subnets"][0]["Routes"][0]["NextHop"],
        "172.31.0.1"
    );
    assert_eq!(v["Type"], "nat");
    assert!(v.get("Dns").is_none() && v.get("MacPool").is_none());
}

#[test]
fn service_filled_objects_round_trip() {
    let e: HostComputeEndpoint = wire(
        r#"{"ID":"A1B2C3D4-0000-4000-8000-000000000001","Name":"c1_nat","HostComputeNetwork":"6F7A3C1E-0000-4000-8000-000000000001",
            "HostComputeNamespace":"5F7A3C1E-0000-4000-8000-000000000009","State":2,
            "IpConfigurations":[{"IpAddress":"172.31.0.5","PrefixLength":16},{"IpAddress":"fd00::5","PrefixLength":64}],
            "MacAddress":"00-15-5D-52-C0-05","Routes":[{"NextHop":"172.31.0.1","DestinationPrefix":"0.0.0.0/0","Metric":10}],
            "Dns":{"Domain":"corp","Search":["corp"],"ServerList":["172.31.0.1"],"Options":["ndots:5"]},
            "Policies":[{"Type":"PortMapping","Settings":{"Protocol":6,"InternalPort":80,"ExternalPort":8080,"Flags":0,"Extra":"kept"}}],
            "Flags":3,"SchemaVersion":{"Major":2,"Minor":0},"AdditionalParams":{"K":"v"},"Version":7,"Owner":"me"}"#,
    );
    assert_round_trip(&e);
    // Policy settings are echoed verbatim, unknown keys included.
    assert_eq!(to_value(&e)["Policies"][0]["Settings"]["Extra"], "kept");
    validate_endpoint(&e).unwrap();

    let ns: HostComputeNamespace = wire(
        r#"{"ID":"5F7A3C1E-0000-4000-8000-000000000009","Type":"HostDefault","NamespaceId":5,
            "Resources":[{"Type":"Endpoint","Data":{"Id":"A1B2C3D4-0000-4000-8000-000000000001"}}],
            "NetNsPath":"/run/hostnet/netns/5F7A3C1E"}"#,
    );
    assert_round_trip(&ns);
    assert_eq!(to_value(&ns)["NetNsPath"], "/run/hostnet/netns/5F7A3C1E");

    let q: HostComputeQuery =
        wire(r#"{"SchemaVersion":{"Major":1,"Minor":0},"Flags":1,"Filter":{"Name":"cbr0"}}"#);
    assert_eq!(q.filter.as_deref(), Some(r#"{"Name":"cbr0"}"#));
    assert_round_trip(&q);
    let q: HostComputeQuery = wire(
        r#"{"SchemaVersion":{"Major":2,"Minor":0},"Flags":"Detailed","Filter":"{\"Name\":\"cbr0\"}"}"#,
    );
    assert_eq!(to_value(&q)["Filter"], r#"{"Name":"cbr0"}"#);
    assert_eq!(q.flags, 1);
}

#[test]
fn route_object_echoes_the_key_received() {
    let a: HostComputeRoute = wire(
        r#"{"HostComputeEndpoints":["a1b2c3d4-0000-4000-8000-000000000001"],"Setting":[{"DestinationPrefix":"10.0.0.0/8","NextHop":"10.1.0.1","NeedEncap":true}]}"#,
    );
    let b: HostComputeRoute = wire(
        r#"{"HostComputeEndpoints":["a1b2c3d4-0000-4000-8000-000000000001"],"Routes":[{"DestinationPrefix":"10.0.0.0/8","NextHop":"10.1.0.1","NeedEncap":true,"AutomaticEndpointMonitor":true}]}"#,
    );
    assert!(to_value(&a).get("Setting").is_some() && to_value(&a).get("Routes").is_none());
    assert!(to_value(&b).get("Routes").is_some() && to_value(&b).get("Setting").is_none());
    assert_round_trip(&a);
    assert_round_trip(&b);
}

#[test]
fn error_codes_are_consistent() {
    for &c in ErrorCode::ALL {
        assert_eq!(ErrorCode::from_code(c.code()), Some(c));
        assert!(!c.name().is_empty() && !c.description().is_empty());
    }
    assert_eq!(ErrorCode::PortAlreadyExists.code(), 0x803B0013);
    assert_eq!(
        ErrorCode::PortAlreadyExists.name(),
        "HCN_E_PORT_ALREADY_EXISTS"
    );
    assert_eq!(ErrorCode::NotFound.code(), 0x80070490);
    assert_eq!(ErrorCode::NotImplemented.code(), 0x80004001);
    assert_eq!(ErrorCode::AddrInvalidOrReserved.code(), 2151350319);
    assert_eq!(ErrorCode::GuidConversionFailure.code(), 0x803B0019);
    assert_eq!(ErrorCode::from_code(0x803B0099), None);
    assert_eq!(
        ErrorCode::EndpointAlreadyAttached.description(),
        "This endpoint is already attached to the switch."
    );
    let e = HcnError::new(ErrorCode::InvalidIp, "bad").context("IpConfigurations[0]");
    assert_eq!(e.to_string(), "IpConfigurations[0]: bad");
}
