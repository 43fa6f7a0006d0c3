//! Address claims (cluster mode's cluster-wide IPAM) and an unreachable
//! store, against the recording dataplane and the in-memory store.

mod common;

use std::sync::Arc;

use common::*;

use hostnet_core::Kind;
use hostnet_dataplane::Op;
use hostnet_model::{ErrorCode, HcnError};
use hostnet_store::{Collection, MemoryStore, Store, Txn};
use serde_json::json;

/// Another host's claim of `ip` on the default network.
fn claimed_elsewhere(f: &Fixture, ip: &str) {
    let mut txn = Txn::new();
    txn.claim(
        Collection::AddressClaims,
        &format!("{}/{ip}", f.nat()),
        b"endpoint-of-host-2".to_vec(),
    );
    f.store.commit(txn).unwrap();
}

/// Creates an endpoint on the default network, at `ip` if given.
fn create_on_nat(f: &Fixture, ip: Option<&str>) -> Result<serde_json::Value, HcnError> {
    let mut ep = json!({ "HostComputeNetwork": f.nat() });
    if let Some(ip) = ip {
        ep["IpConfigurations"] = json!([{ "IpAddress": ip }]);
    }
    f.svc.create(Kind::Endpoint, &body(ep))
}

fn addresses_in_elements(ops: &[Op]) -> Vec<String> {
    ops.iter()
        .map(|op| match op {
            Op::AddElements(els) => format!("+{}", els[0].text),
            Op::DeleteElements(els) => format!("-{}", els[0].text),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn an_endpoint_claims_its_address_until_it_is_deleted() {
    let f = fresh();
    let ep = create_on_nat(&f, None).unwrap();
    let key = format!("{}/10.88.0.2", f.nat());
    assert_eq!(
        f.store
            .get(Collection::AddressClaims, &key)
            .unwrap()
            .unwrap(),
        ep["ID"].as_str().unwrap().as_bytes()
    );
    f.svc
        .delete(Kind::Endpoint, ep["ID"].as_str().unwrap())
        .unwrap();
    assert!(f.store.list(Collection::AddressClaims).unwrap().is_empty());
}

#[test]
fn an_address_another_host_claimed_is_skipped_and_the_kernel_undone() {
    let f = fresh();
    claimed_elsewhere(&f, "10.88.0.2");
    claimed_elsewhere(&f, "10.88.0.3");
    f.dp.take();
    let ep = create_on_nat(&f, None).unwrap();
    // After losing 10.88.0.2 the pool moves on from a random place of the
    // subnet (hosts creating at once stop walking it in step), so the
    // address won is neither lost one.
    let won = ep["IpConfigurations"][0]["IpAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(won != "10.88.0.2" && won != "10.88.0.3", "{won}");
    // Each lost attempt took its elements back out of the kernel.
    let kernel = addresses_in_elements(&f.dp.take());
    assert_eq!(kernel[..2], ["+10.88.0.2", "-10.88.0.2"]);
    assert_eq!(kernel.last().unwrap(), &format!("+{won}"));
    assert_eq!(kernel.len() % 2, 1, "every lost attempt undone: {kernel:?}");
    assert_eq!(f.svc.list(Kind::Endpoint, None).unwrap().len(), 1);
    assert_eq!(f.store.list(Collection::Endpoints).unwrap().len(), 1);
}

#[test]
fn a_requested_address_another_host_holds_is_refused() {
    let f = fresh();
    claimed_elsewhere(&f, "10.88.0.9");
    f.dp.take();
    let err = create_on_nat(&f, Some("10.88.0.9")).unwrap_err();
    assert_eq!(err.code, ErrorCode::AddrInvalidOrReserved);
    assert!(err.message.contains("another host"), "{}", err.message);
    let ops = f.dp.take();
    assert!(
        matches!(ops.as_slice(), [Op::AddElements(a), Op::DeleteElements(d)] if a == d),
        "{ops:?}"
    );
    assert!(f.svc.list(Kind::Endpoint, None).unwrap().is_empty());
    // Released by its holder, the address is free here too.
    let mut txn = Txn::new();
    txn.delete(Collection::AddressClaims, &format!("{}/10.88.0.9", f.nat()));
    f.store.commit(txn).unwrap();
    create_on_nat(&f, Some("10.88.0.9")).unwrap();
}

#[test]
fn an_unavailable_store_is_a_degraded_operation_that_changes_nothing() {
    let store = Arc::new(MemoryStore::new());
    let f = start(store.clone());
    f.dp.take();
    store.unavailable_next_commit();
    let err = create_on_nat(&f, None).unwrap_err();
    assert_eq!(err.code, ErrorCode::DegradedOperation);
    assert!(
        err.message.contains("state store is unavailable"),
        "{}",
        err.message
    );
    assert!(err.message.contains("retry"), "{}", err.message);
    let ops = f.dp.take();
    assert!(
        matches!(ops.as_slice(), [Op::AddElements(a), Op::DeleteElements(d)] if a == d),
        "{ops:?}"
    );
    assert!(f.svc.list(Kind::Endpoint, None).unwrap().is_empty());
    // Reads answer from memory; the next change works once the store is back.
    assert_eq!(f.svc.list(Kind::Network, None).unwrap().len(), 1);
    create_on_nat(&f, None).unwrap();
    // The failed attempt's address went back to the pool (the pool hands
    // out the next one first, so ask for it).
    create_on_nat(&f, Some("10.88.0.2")).unwrap();

    // A network create fails the same way, and leaves no bridge behind.
    store.unavailable_next_commit();
    let err = f
        .svc
        .create(
            Kind::Network,
            &body(json!({ "Name": "n2", "Type": "NAT", "Ipams": [{ "Subnets": [{ "IpAddressPrefix": "10.89.0.0/24" }] }] })),
        )
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::DegradedOperation);
    assert_eq!(f.svc.list(Kind::Network, None).unwrap().len(), 1);
}
