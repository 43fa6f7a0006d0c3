//! The network's `Options` extension: an object of strings, echoed verbatim.

use super::{assert_err, assert_round_trip, to_value, wire};
use crate::error::ErrorCode;
use crate::from_json;
use crate::wire::HostComputeNetwork;
use serde_json::json;

#[test]
fn options_are_kept_verbatim() {
    let n: HostComputeNetwork = wire(
        r#"{"Name":"l2","Type":"L2Bridge","Options":{
            "com.docker.network.windowsshim.enable_outboundnat":"true",
            "com.docker.network.windowsshim.outboundnat_exceptions":" 192.0.2.0/24 ,10.0.0.1",
            "anything":""}}"#,
    );
    assert_eq!(
        to_value(&n)["Options"],
        json!({
            "com.docker.network.windowsshim.enable_outboundnat": "true",
            "com.docker.network.windowsshim.outboundnat_exceptions": " 192.0.2.0/24 ,10.0.0.1",
            "anything": "",
        })
    );
    assert_round_trip(&n);
    // Absent and null are the same: no Options in the output.
    for body in [r#"{"Name":"n"}"#, r#"{"Name":"n","Options":null}"#] {
        let n: HostComputeNetwork = wire(body);
        assert!(to_value(&n).get("Options").is_none(), "{body}");
    }
    let n: HostComputeNetwork = wire(r#"{"Options":{}}"#);
    assert_eq!(to_value(&n)["Options"], json!({}));
}

#[test]
fn options_that_are_not_strings_are_invalid_json() {
    for (body, fragment) in [
        (
            r#"{"Options":{"enable_outboundnat":true}}"#,
            "\"enable_outboundnat\" is true; quote it",
        ),
        (r#"{"Options":{"vlanid":11}}"#, "\"vlanid\" is 11"),
        (r#"{"Options":{"x":{"y":"z"}}}"#, "\"x\" is {\"y\":\"z\"}"),
        (r#"{"Options":["a=b"]}"#, "not [\"a=b\"]"),
        (r#"{"Options":"a=b"}"#, "not \"a=b\""),
    ] {
        assert_err(
            from_json::<HostComputeNetwork>(body.as_bytes()),
            ErrorCode::InvalidJson,
            &["Options must be an object of strings", fragment],
        );
    }
}
