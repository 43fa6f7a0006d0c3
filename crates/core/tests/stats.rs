//! Endpoint counters against the recording dataplane (tier 0): which
//! kernel counters make up each number, and the errors.

mod common;

use common::*;

use hostnet_core::Kind;
use hostnet_dataplane::{ElementCounter, Op, Recorder, SetRef};
use hostnet_model::ErrorCode;
use hostnet_nft::{Data, SetElement};

use serde_json::{json, Value};

fn acl(id: &str, action: &str, port: u16) -> Value {
    json!({ "Type": "ACL", "Settings": { "Id": id, "Action": action, "Direction": "In",
        "Priority": 100, "Protocols": "17", "LocalPorts": port.to_string() } })
}

fn set_of(e: &SetElement) -> SetRef {
    SetRef {
        family: e.family,
        table: e.table,
        set: e.set,
    }
}

fn counted(dp: &Recorder, e: &SetElement, packets: u64, bytes: u64) {
    dp.counters
        .lock()
        .unwrap()
        .entry(set_of(e))
        .or_default()
        .push(ElementCounter {
            key: e.key.clone(),
            key_end: e.key_end.clone(),
            packets,
            bytes,
        });
}

#[test]
fn rule_and_drop_counts_add_up_the_endpoints_elements_only() {
    let Fixture { svc, dp, .. } = fresh();
    let net = svc.list(Kind::Network, None).unwrap()[0]["ID"].clone();
    dp.take();
    let ep = svc
        .create(
            Kind::Endpoint,
            &serde_json::to_vec(&json!({ "HostComputeNetwork": net, "Name": "web",
                "Policies": [acl("allow-5000", "Allow", 5000), acl("block-6000", "Block", 6000)] }))
            .unwrap(),
        )
        .unwrap();
    let id = ep["ID"].as_str().unwrap();
    let added: Vec<SetElement> = dp
        .take()
        .into_iter()
        .flat_map(|op| match op {
            Op::AddElements(els) => els,
            _ => Vec::new(),
        })
        .collect();
    let acl_els: Vec<&SetElement> = added
        .iter()
        // The rules' elements, not the endpoint's chain or its dispatch.
        .filter(|e| e.set.starts_with("acl_in") && e.chain_rules().is_none())
        .filter(|e| !e.set.ends_with("_ep"))
        .collect();
    assert_eq!(acl_els.len(), 2, "{added:#?}");
    for e in &acl_els {
        match e.data {
            Some(Data::Drop) => counted(&dp, e, 2, 76),
            _ => counted(&dp, e, 3, 114),
        }
        // Another endpoint's element in the same map is not this one's.
        let mut other = (*e).clone();
        other.key[..4].copy_from_slice(&[10, 88, 0, 99]);
        if let Some(end) = other.key_end.as_mut() {
            end[..4].copy_from_slice(&[10, 88, 0, 99]);
        }
        counted(&dp, &other, 1000, 1000);
    }
    let addr: std::net::IpAddr = ep["IpConfigurations"][0]["IpAddress"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    counted(&dp, &hostnet_nft::counters::inbound_drops(addr), 4, 96);

    let stats = svc.endpoint_stats(&id.to_lowercase()).unwrap();
    assert_eq!(stats["EndpointId"], id);
    assert_eq!(stats["InstanceId"], "", "not attached");
    let rule = |rid: &str| {
        stats["Rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["Id"] == rid)
            .cloned()
            .unwrap_or_else(|| panic!("no rule {rid}: {stats}"))
    };
    let allow = rule("allow-5000");
    assert_eq!(
        (allow["Packets"].as_u64(), allow["Bytes"].as_u64()),
        (Some(3), Some(114))
    );
    assert_eq!(allow["Layer"], "acl-switch");
    assert_eq!(allow["Action"], "Allow");
    assert_eq!(allow["Direction"], "In");
    let block = rule("block-6000");
    assert_eq!(
        (block["Packets"].as_u64(), block["Bytes"].as_u64()),
        (Some(2), Some(76))
    );
    assert_eq!(
        stats["DroppedPacketsIncoming"],
        2 + 4,
        "block rule + defaults"
    );
    assert_eq!(stats["DroppedPacketsOutgoing"], 0);
    assert_eq!(stats["PacketsReceived"], 0, "no link while unattached");
    assert!(dp.take().is_empty(), "reading counters changes nothing");
}

#[test]
fn unknown_or_malformed_endpoint_ids_are_hcn_errors() {
    let Fixture { svc, .. } = fresh();
    let e = svc
        .endpoint_stats("0A0B0C0D-0000-4000-8000-000000000001")
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    let e = svc.endpoint_stats("nope").unwrap_err();
    assert_eq!(e.code, ErrorCode::GuidConversionFailure);
}
