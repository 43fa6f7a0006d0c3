//! Cluster mode's overlay sharing in the core (docs/cluster.md, "Overlay
//! networks across hosts"), against the recording dataplane and the
//! in-memory store: what goes into the store with a network, what is
//! published, what another host's endpoint programs and reserves, and what
//! a delete refuses. The same with real etcd, three hosts and packets is
//! `crates/testbed/tests/cluster_overlay.rs`.

mod common;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use common::*;

use hostnet_core::{Kind, OverlayEndpoint, OverlayPublisher};
use hostnet_dataplane::Op;
use hostnet_store::{Collection, Store, Txn};
use serde_json::{json, Value};
use uuid::Uuid;

/// What the core published, in order: Some on publish, None on withdraw.
#[derive(Default)]
struct Published(Mutex<Vec<(Uuid, Option<OverlayEndpoint>)>>);

impl OverlayPublisher for Published {
    fn publish(&self, ep: OverlayEndpoint) {
        self.0.lock().unwrap().push((ep.endpoint, Some(ep)));
    }
    fn withdraw(&self, _network: Uuid, endpoint: Uuid) {
        self.0.lock().unwrap().push((endpoint, None));
    }
}

fn cluster_host() -> (Fixture, Arc<Published>) {
    let f = fresh();
    f.dp.set_adapter(adapter("eth0", 2, "192.0.2.11/24"));
    f.dp.set_default_route(Some("eth0"));
    let published = Arc::new(Published::default());
    f.svc.share_overlays(published.clone());
    (f, published)
}

fn overlay(name: &str, vni: u32) -> Value {
    json!({"Name": name, "Type": "Overlay",
           "Ipams": [{"Type": "Static", "Subnets": [{"IpAddressPrefix": "10.0.1.0/24",
               "Policies": [{"Type": "VSID", "Settings": {"IsolationId": vni}}]}]}]})
}

fn uuid(v: &Value) -> Uuid {
    hostnet_model::parse_guid(v["ID"].as_str().unwrap()).unwrap()
}

fn remote(network: Uuid, last: u8) -> OverlayEndpoint {
    OverlayEndpoint {
        network,
        endpoint: Uuid::new_v4(),
        ip: Ipv4Addr::new(10, 0, 1, last),
        mac: [0x00, 0x15, 0x5d, 10, 0, last],
        pa: Ipv4Addr::new(192, 0, 2, 12),
        name: format!("peer{last}"),
    }
}

#[test]
fn a_network_is_shared_with_its_claims_and_removed_with_them() {
    let (f, _) = cluster_host();
    let net = f
        .svc
        .create(Kind::Network, &body(overlay("ov", 4100)))
        .unwrap();
    let id = net["ID"].as_str().unwrap();
    let shared: Value = serde_json::from_slice(
        &f.store
            .get(Collection::OverlayNetworks, id)
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    // The definition carries no host's identity; this host's record does.
    assert!(!shared.to_string().contains("192.0.2.11"), "{shared}");
    assert!(shared.get("OverlayTransit").is_none());
    assert!(net.to_string().contains("192.0.2.11"));
    for (c, key) in [
        (Collection::OverlayVnis, "4100"),
        (Collection::OverlayNames, "ov"),
    ] {
        assert_eq!(f.store.get(c, key).unwrap().unwrap(), id.as_bytes());
    }
    f.svc.delete(Kind::Network, id).unwrap();
    for c in [
        Collection::OverlayNetworks,
        Collection::OverlayVnis,
        Collection::OverlayNames,
    ] {
        assert!(f.store.list(c).unwrap().is_empty(), "{c:?}");
    }
}

#[test]
fn a_vni_another_host_holds_is_refused_and_nothing_is_left() {
    let (f, _) = cluster_host();
    let mut txn = Txn::new();
    txn.claim(
        Collection::OverlayVnis,
        "4200",
        b"NETWORK-OF-HOST-2".to_vec(),
    );
    f.store.commit(txn).unwrap();
    f.dp.take();
    let err = f
        .svc
        .create(Kind::Network, &body(overlay("ov", 4200)))
        .unwrap_err();
    assert_eq!(err.code.code(), 0x803B_000D, "{err}");
    assert!(
        err.message.contains("VSID 4200") && err.message.contains("NETWORK-OF-HOST-2"),
        "{err}"
    );
    // The kernel change was undone; nothing else is stored.
    let ops = f.dp.take();
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::DeleteLink { .. } | Op::DeleteNetns { .. })),
        "{ops:?}"
    );
    assert!(f
        .store
        .list(Collection::OverlayNetworks)
        .unwrap()
        .is_empty());
    assert!(f
        .store
        .get(Collection::OverlayNames, "ov")
        .unwrap()
        .is_none());
    assert_eq!(
        f.svc.list(Kind::Network, None).unwrap().len(),
        1,
        "only nat"
    );
}

#[test]
fn local_endpoints_are_published_and_remote_ones_programmed() {
    let (f, published) = cluster_host();
    let net = f
        .svc
        .create(Kind::Network, &body(overlay("ov", 4100)))
        .unwrap();
    let net_id = uuid(&net);
    let local = f
        .svc
        .create(
            Kind::Endpoint,
            &body(json!({"HostComputeNetwork": net["ID"]})),
        )
        .unwrap();
    let got = published.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let ep = got[0].1.clone().unwrap();
    assert_eq!((ep.network, ep.endpoint), (net_id, uuid(&local)));
    assert_eq!(ep.pa, Ipv4Addr::new(192, 0, 2, 11));
    assert_eq!(ep.ip.to_string(), local["IpConfigurations"][0]["IpAddress"]);

    // Another host's endpoint: FDB and neighbours, and its address is
    // never handed out here.
    let other = remote(net_id, 3);
    f.dp.take();
    f.svc.remote_endpoint_up("host2", other.clone());
    f.svc.remote_endpoint_up("host2", other.clone()); // idempotent
    let ops = f.dp.take();
    assert!(
        matches!(ops.as_slice(), [Op::InNetns { op, .. }, Op::AddNeighbour { .. }, Op::AddNeighbour { .. }] if matches!(op.as_ref(), Op::AddFdb { remote, .. } if *remote == other.pa)),
        "{ops:?}"
    );
    let next = f
        .svc
        .create(
            Kind::Endpoint,
            &body(json!({"HostComputeNetwork": net["ID"]})),
        )
        .unwrap();
    assert_ne!(next["IpConfigurations"][0]["IpAddress"], "10.0.1.3");

    // The network cannot go while host2 has an endpoint on it.
    for e in [&local, &next] {
        f.svc
            .delete(Kind::Endpoint, e["ID"].as_str().unwrap())
            .unwrap();
    }
    assert_eq!(
        published.0.lock().unwrap().last().unwrap(),
        &(uuid(&next), None)
    );
    let err = f
        .svc
        .delete(Kind::Network, net["ID"].as_str().unwrap())
        .unwrap_err();
    assert_eq!(err.code.code(), 0x803B_002C, "{err}");
    assert!(err.message.contains("host2: 1"), "{err}");
    f.dp.take();
    f.svc.remote_endpoint_down(other.endpoint);
    let ops = f.dp.take();
    assert!(
        matches!(ops.first(), Some(Op::DeleteNeighbour { .. })),
        "{ops:?}"
    );
    assert!(
        ops.iter().any(
            |o| matches!(o, Op::InNetns { op, .. } if matches!(op.as_ref(), Op::DeleteFdb { .. }))
        ),
        "{ops:?}"
    );
    f.svc
        .delete(Kind::Network, net["ID"].as_str().unwrap())
        .unwrap();
}

#[test]
fn a_shared_network_is_joined_under_its_id_and_its_early_endpoints_programmed() {
    let (f, _) = cluster_host();
    let id = Uuid::new_v4();
    // An endpoint seen before its network waits for it.
    let early = remote(id, 7);
    f.svc.remote_endpoint_up("host2", early.clone());
    let mut def = overlay("ov", 4100);
    def["ID"] = json!(hostnet_model::format_guid(&id));
    def["Policies"] =
        json!([{"Type": "ProviderAddress", "Settings": {"ProviderAddress": "192.0.2.12"}}]);
    f.dp.take();
    // (A definition never carries a PA; if one did, it names another host.)
    assert!(f.svc.join_shared_network(id, &body(&def)).is_err());
    def["Policies"] = json!([]);
    assert!(f.svc.join_shared_network(id, &body(&def)).unwrap());
    assert!(
        !f.svc.join_shared_network(id, &body(&def)).unwrap(),
        "already joined"
    );
    let net = f
        .svc
        .get(Kind::Network, &hostnet_model::format_guid(&id))
        .unwrap();
    assert!(
        net.to_string().contains("192.0.2.11"),
        "this host's PA: {net}"
    );
    assert!(f
        .dp
        .take()
        .iter()
        .any(|o| matches!(o, Op::InNetns { op, .. } if matches!(op.as_ref(), Op::AddFdb { mac, .. } if *mac == early.mac))));
    // Joining stores this host's record only, never the definition again.
    assert!(f
        .store
        .list(Collection::OverlayNetworks)
        .unwrap()
        .is_empty());
    assert_eq!(f.svc.overlay_network_ids(), [id]);
    // Its definition gone from the store: this host leaves it.
    assert!(f.svc.leave_shared_network(id, true).unwrap());
    assert!(f.svc.overlay_network_ids().is_empty());
}

/// What the DNS observer is told about overlay networks (those whose
/// proxy is in a router namespace), as text.
#[derive(Default)]
struct DnsLog(Mutex<Vec<String>>);

impl hostnet_core::DnsObserver for DnsLog {
    fn networks_changed(&self, networks: &[hostnet_core::DnsNetwork]) {
        let overlays = networks.iter().filter(|n| {
            n.netns
                .as_ref()
                .is_some_and(|p| p.display().to_string().contains("router-"))
        });
        for n in overlays {
            let names: Vec<&str> = n.endpoints.iter().map(|e| e.name.as_str()).collect();
            self.0
                .lock()
                .unwrap()
                .push(format!("overlay {:?} {names:?}", n.gateways));
        }
    }
    fn endpoint_added(&self, _: &hostnet_core::DnsNetwork, e: &hostnet_core::DnsEndpoint) {
        self.0
            .lock()
            .unwrap()
            .push(format!("+{} {}", e.name, e.address));
    }
    fn endpoint_removed(&self, _: &hostnet_core::DnsNetwork, e: &hostnet_core::DnsEndpoint) {
        self.0.lock().unwrap().push(format!("-{}", e.name));
    }
}

#[test]
fn overlay_names_come_from_local_endpoints_and_other_hosts() {
    let (f, published) = cluster_host();
    let log = Arc::new(DnsLog::default());
    f.svc.observe_dns(log.clone());
    // Off by default on Overlay networks: nothing to tell.
    f.svc
        .create(Kind::Network, &body(overlay("quiet", 4200)))
        .unwrap();
    let mut def = overlay("ov", 4100);
    def["Policies"] = json!([{"Type": "AutomaticDNS", "Settings": {"Enable": true}}]);
    let net = f.svc.create(Kind::Network, &body(def)).unwrap();
    let net_id = uuid(&net);
    let local = f
        .svc
        .create(
            Kind::Endpoint,
            &body(json!({"HostComputeNetwork": net["ID"], "Name": "web"})),
        )
        .unwrap();
    // The gateway of its subnet first; its name is published to the cluster.
    assert_eq!(local["Dns"]["ServerList"], json!(["10.0.1.1"]));
    let got = published.0.lock().unwrap().clone();
    assert_eq!(got[0].1.as_ref().unwrap().name, "web");
    let peer = remote(net_id, 3);
    f.svc.remote_endpoint_up("host2", peer.clone());
    f.svc.remote_endpoint_down(peer.endpoint);
    assert_eq!(
        *log.0.lock().unwrap(),
        [
            "overlay [10.0.1.1] []",
            format!(
                "+web {}",
                local["IpConfigurations"][0]["IpAddress"].as_str().unwrap()
            )
            .as_str(),
            "+peer3 10.0.1.3",
            "-peer3",
        ]
    );
}
