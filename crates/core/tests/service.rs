//! The service against the recording dataplane and the in-memory store
//! (tier 0): what it plans, and that a failure leaves nothing behind.

mod common;

use std::sync::Arc;

use common::*;

use hostnet_core::Kind;
use hostnet_dataplane::Op;
use hostnet_model::ErrorCode;
use hostnet_store::{Collection, MemoryStore, Store};
use serde_json::{json, Value};

fn nat_id(f: &Fixture) -> String {
    let nets = f.svc.list(Kind::Network, None).unwrap();
    nets[0]["ID"].as_str().unwrap().to_string()
}

fn endpoint(f: &Fixture, extra: Value) -> Result<Value, hostnet_model::HcnError> {
    let mut ep = json!({ "HostComputeNetwork": nat_id(f) });
    if let (Some(o), Some(e)) = (ep.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    f.svc.create(Kind::Endpoint, &body(ep))
}

fn mapping(ext: u16) -> Value {
    json!({ "Policies": [{ "Type": "PortMapping", "Settings": { "Protocol": 6, "InternalPort": 80, "ExternalPort": ext } }] })
}

#[test]
fn first_start_creates_the_default_nat_network_once() {
    let store = Arc::new(MemoryStore::new());
    let f = start(store.clone());
    let nets = f.svc.list(Kind::Network, None).unwrap();
    assert_eq!(nets.len(), 1);
    assert_eq!(nets[0]["Name"], "nat");
    assert_eq!(
        nets[0]["Ipams"][0]["Subnets"][0]["IpAddressPrefix"],
        "10.88.0.0/16"
    );
    assert_eq!(
        nets[0]["Ipams"][0]["Subnets"][0]["Routes"][0]["NextHop"],
        "10.88.0.1"
    );
    let ops = f.dp.take();
    assert!(ops.iter().any(|o| matches!(o, Op::CreateBridge { addresses, .. } if addresses[0].to_string() == "10.88.0.1/16")));
    // Deleted by the user, it is not recreated on the next start.
    f.svc
        .delete(Kind::Network, nets[0]["ID"].as_str().unwrap())
        .unwrap();
    drop(f);
    let again = start(store);
    assert!(again.svc.list(Kind::Network, None).unwrap().is_empty());
}

#[test]
fn endpoint_create_plans_masquerade_and_port_elements() {
    let f = start(Arc::new(MemoryStore::new()));
    f.dp.take();
    let ep = endpoint(&f, mapping(8080)).unwrap();
    assert_eq!(ep["IpConfigurations"][0]["IpAddress"], "10.88.0.2");
    assert_eq!(ep["IpConfigurations"][0]["PrefixLength"], 16);
    assert_eq!(ep["MacAddress"], "02-4E-0A-58-00-02");
    assert_eq!(ep["Routes"][0]["NextHop"], "10.88.0.1");
    let ops = f.dp.take();
    let [Op::AddElements(els)] = ops.as_slice() else {
        panic!("{ops:?}")
    };
    let texts: Vec<&str> = els.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, ["10.88.0.2", "tcp . 8080 : 10.88.0.2 . 80"]);
}

#[test]
fn a_kernel_failure_leaves_no_record_and_no_allocation() {
    let f = start(Arc::new(MemoryStore::new()));
    f.dp.fail_after(0);
    let err = endpoint(&f, mapping(8080)).unwrap_err();
    assert_eq!(err.code, ErrorCode::Unexpected);
    assert!(f.svc.list(Kind::Endpoint, None).unwrap().is_empty());
    assert!(f.store.list(Collection::Endpoints).unwrap().is_empty());
    // The address and the host port are free again.
    let mut again = mapping(8080);
    again["IpConfigurations"] = json!([{ "IpAddress": "10.88.0.2" }]);
    let ep = endpoint(&f, again).unwrap();
    assert_eq!(ep["IpConfigurations"][0]["IpAddress"], "10.88.0.2");
}

#[test]
fn a_store_failure_undoes_the_kernel_change() {
    let f = start(Arc::new(MemoryStore::new()));
    f.dp.take();
    f.store.fail_next_commit();
    let err = endpoint(&f, mapping(8080)).unwrap_err();
    assert_eq!(err.code, ErrorCode::Unexpected);
    let ops = f.dp.take();
    assert!(
        matches!(ops.as_slice(), [Op::AddElements(a), Op::DeleteElements(d)] if a == d),
        "{ops:?}"
    );
    assert!(f.svc.list(Kind::Endpoint, None).unwrap().is_empty());
}

#[test]
fn a_host_port_is_mapped_once() {
    let f = start(Arc::new(MemoryStore::new()));
    endpoint(&f, mapping(8080)).unwrap();
    f.dp.take();
    let err = endpoint(&f, mapping(8080)).unwrap_err();
    assert_eq!(err.code, ErrorCode::PortAlreadyExists);
    assert!(err.message.contains("8080"), "{}", err.message);
    assert!(
        f.dp.take().is_empty(),
        "a refused create touched the kernel"
    );
    // The same port on UDP is another mapping.
    let udp = json!({ "Policies": [{ "Type": "PortMapping", "Settings": { "Protocol": 17, "InternalPort": 80, "ExternalPort": 8080 } }] });
    endpoint(&f, udp).unwrap();
}

#[test]
fn objects_survive_a_restart_with_their_ids_and_addresses() {
    let store = Arc::new(MemoryStore::new());
    let f = start(store.clone());
    let ep = endpoint(&f, mapping(8080)).unwrap();
    let ns = f.svc.create(Kind::Namespace, b"{}").unwrap();
    let before = (
        f.svc.list(Kind::Endpoint, None).unwrap(),
        f.svc.list(Kind::Namespace, None).unwrap(),
    );
    drop(f);
    let g = start(store);
    let after = (
        g.svc.list(Kind::Endpoint, None).unwrap(),
        g.svc.list(Kind::Namespace, None).unwrap(),
    );
    assert_eq!(before, after);
    assert_eq!(
        g.svc
            .get(Kind::Namespace, ns["ID"].as_str().unwrap())
            .unwrap(),
        ns
    );
    // The reloaded pools know the address is taken.
    let next = endpoint(&g, json!({})).unwrap();
    assert_ne!(
        next["IpConfigurations"][0]["IpAddress"],
        ep["IpConfigurations"][0]["IpAddress"]
    );
    // Reconcile rebuilt the tables with the endpoint's elements.
    let tables = g.dp.tables.lock().unwrap().clone();
    assert!(
        tables[0].contains("tcp . 8080 : 10.88.0.2 . 80"),
        "{}",
        tables[0]
    );
}

#[test]
fn unknown_ids_and_bodies_that_are_not_objects() {
    let f = start(Arc::new(MemoryStore::new()));
    let err = f
        .svc
        .get(Kind::Endpoint, "0a0b0c0d-0000-4000-8000-000000000001")
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    let err = f.svc.delete(Kind::Network, "not-a-guid").unwrap_err();
    assert_eq!(err.code, ErrorCode::GuidConversionFailure);
    let err = f.svc.create(Kind::Network, b"[]").unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidJson);
    let err = f.svc.create(Kind::Network, b"{\"Name\": ").unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidJson);
    assert_eq!(f.svc.list(Kind::Network, None).unwrap().len(), 1);
}

#[test]
fn list_filters_by_name_and_network() {
    let f = start(Arc::new(MemoryStore::new()));
    endpoint(&f, json!({ "Name": "a" })).unwrap();
    endpoint(&f, json!({ "Name": "b" })).unwrap();
    let q = r#"{"Filter":"{\"Name\":\"b\"}"}"#;
    let found = f.svc.list(Kind::Endpoint, Some(q)).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["Name"], "b");
    let q = r#"{"Filter":"{\"VirtualNetwork\":\"nat\"}"}"#;
    assert_eq!(f.svc.list(Kind::Endpoint, Some(q)).unwrap().len(), 2);
    let q = r#"{"Filter":"{\"Name\":\"zzz\"}"}"#;
    assert!(f.svc.list(Kind::Endpoint, Some(q)).unwrap().is_empty());
}

fn eth0() -> hostnet_dataplane::Adapter {
    hostnet_dataplane::Adapter {
        name: "eth0".into(),
        index: 2,
        mac: [2, 0, 0, 0, 0x11, 0x11],
        mtu: 1450,
        addresses: vec!["192.0.2.11/24".parse().unwrap()],
        routes: Vec::new(),
        master: None,
        up: true,
    }
}

fn transparent(f: &Fixture, extra: Value) -> Result<Value, hostnet_model::HcnError> {
    let mut net = json!({
        "Name": "t1", "Type": "transparent",
        "Ipams": [{ "Subnets": [{ "IpAddressPrefix": "192.0.2.0/24",
            "Routes": [{ "NextHop": "192.0.2.1", "DestinationPrefix": "0.0.0.0/0" }] }] }]
    });
    if let (Some(o), Some(e)) = (net.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    f.svc.create(Kind::Network, &body(net))
}

#[test]
fn transparent_binds_the_default_adapter_and_gives_it_back() {
    let store = Arc::new(MemoryStore::new());
    let f = start(store.clone());
    f.dp.set_adapter(eth0());
    f.dp.set_default_route(Some("eth0"));
    f.dp.take();
    let net = transparent(&f, json!({})).unwrap();
    assert_eq!(net["Type"], "Transparent");
    let ops = f.dp.take();
    assert!(
        matches!(ops.as_slice(), [Op::CreateBridge { mac: Some(m), mtu: 1450, .. }, Op::SetMaster { .. }, Op::MoveAddresses { from, .. }] if *m == eth0().mac && from == "eth0"),
        "{ops:?}"
    );
    // The binding is recorded for crash recovery.
    assert_eq!(f.store.list(Collection::Meta).unwrap().len(), 2);

    // Endpoints: never the host's own address or the gateway; no ports.
    let id = net["ID"].as_str().unwrap().to_string();
    let ep = f
        .svc
        .create(Kind::Endpoint, &body(json!({ "HostComputeNetwork": id })))
        .unwrap();
    assert_eq!(ep["IpConfigurations"][0]["IpAddress"], "192.0.2.2");
    let own =
        json!({ "HostComputeNetwork": id, "IpConfigurations": [{ "IpAddress": "192.0.2.11" }] });
    let err = f.svc.create(Kind::Endpoint, &body(own)).unwrap_err();
    assert_eq!(err.code, ErrorCode::AddrInvalidOrReserved);
    let mut mapped = mapping(8080);
    mapped["HostComputeNetwork"] = json!(id);
    let err = f.svc.create(Kind::Endpoint, &body(mapped)).unwrap_err();
    assert_eq!(err.code, ErrorCode::MappingNotSupported);

    // One adapter, one network.
    let err = transparent(&f, json!({ "Name": "t2" })).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidNetwork);

    f.svc
        .delete(Kind::Endpoint, ep["ID"].as_str().unwrap())
        .unwrap();
    f.dp.take();
    f.svc.delete(Kind::Network, &id).unwrap();
    let ops = f.dp.take();
    assert!(
        matches!(ops.as_slice(), [Op::MoveAddresses { to, .. }, Op::SetMaster { master: None, .. }, Op::DeleteLink { .. }] if to == "eth0"),
        "{ops:?}"
    );
    assert_eq!(
        f.store.list(Collection::Meta).unwrap().len(),
        1,
        "adapter record left"
    );
}

#[test]
fn a_binding_left_by_a_crash_is_undone_on_start() {
    let store = Arc::new(MemoryStore::new());
    let f = start(store.clone());
    f.dp.set_adapter(eth0());
    f.dp.set_default_route(Some("eth0"));
    let net = transparent(&f, json!({})).unwrap();
    // As if the daemon died after binding but before storing the network.
    let mut txn = hostnet_store::Txn::new();
    txn.delete(Collection::Networks, net["ID"].as_str().unwrap());
    store.commit(txn).unwrap();
    drop(f);
    let g = start(store.clone());
    let ops = g.dp.take();
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::MoveAddresses { to, .. } if to == "eth0")),
        "{ops:?}"
    );
    assert_eq!(store.list(Collection::Meta).unwrap().len(), 1);
}

#[test]
fn transparent_refusals() {
    let f = start(Arc::new(MemoryStore::new()));
    f.dp.set_adapter(eth0());
    let missing = json!({ "Policies": [{ "Type": "NetAdapterName", "Settings": { "NetworkAdapterName": "eth9" } }] });
    assert_eq!(
        transparent(&f, missing).unwrap_err().code,
        ErrorCode::AdapterNotFound
    );
    // No default route and no adapter named.
    assert_eq!(
        transparent(&f, json!({})).unwrap_err().code,
        ErrorCode::AdapterNotFound
    );
    assert!(f
        .dp
        .take()
        .iter()
        .all(|o| !matches!(o, Op::SetMaster { .. })));
}

/// A Transparent network without subnets takes addresses from DHCP. Only
/// what happens before any DHCP exchange is checked here: an exchange would
/// use a real socket on this process's interfaces (the kernel tests in
/// crates/testbed/tests/transparent_dhcp.rs do it in namespaces of their own).
#[test]
fn transparent_without_subnets_is_dhcp() {
    let f = start(Arc::new(MemoryStore::new()));
    f.dp.set_adapter(eth0());
    let named = json!([{ "Type": "NetAdapterName", "Settings": { "NetworkAdapterName": "eth0" } }]);
    for ipams in [None, Some(json!([])), Some(json!([{ "Type": "Dhcp" }]))] {
        let mut n = json!({ "Name": "d", "Type": "Transparent", "Policies": named });
        if let Some(i) = ipams {
            n["Ipams"] = i;
        }
        let net = f.svc.create(Kind::Network, &body(n)).unwrap();
        assert_eq!(net["Ipams"], json!([{ "Type": "Dhcp" }]), "{net}");
        let id = net["ID"].as_str().unwrap().to_string();
        // A static address is refused: DHCP gives the addresses.
        let ep = json!({ "HostComputeNetwork": id, "IpConfigurations": [{ "IpAddress": "192.0.2.50" }] });
        let e = f.svc.create(Kind::Endpoint, &body(ep)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidIp, "{e}");
        assert!(f.svc.list(Kind::Endpoint, None).unwrap().is_empty());
        f.svc.delete(Kind::Network, &id).unwrap();
    }
}

#[test]
fn trace_walks_a_packet_through_an_endpoints_policies() {
    let f = start(Arc::new(MemoryStore::new()));
    let ep = endpoint(&f, json!({})).unwrap();
    let id = ep["ID"].as_str().unwrap();
    let ip = ep["IpConfigurations"][0]["IpAddress"].as_str().unwrap();
    let trace = |req: Value| f.svc.trace_endpoint(id, &body(req)).unwrap();

    // The seed's defaults: GRE in is blocked, TCP in allowed.
    let gre = trace(json!({ "Direction": "In", "Protocol": "47", "Source": "198.51.100.1" }));
    assert_eq!(gre["Verdict"], "Block", "{gre}");
    let text = gre["Text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("trace port {id} dir in")),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("verdict block (acl-host, rule defaults:in-block"),
        "{text}"
    );
    let tcp = trace(
        json!({ "Direction": "in", "Protocol": "tcp", "Source": "198.51.100.1:5000", "Destination": format!("{ip}:80") }),
    );
    assert_eq!(tcp["Verdict"], "Allow", "{tcp}");
    // Out of the NAT network it is masqueraded; within it, not.
    let out =
        trace(json!({ "Direction": "Out", "Protocol": "udp", "Destination": "203.0.113.2:53" }));
    assert!(
        out["Text"].as_str().unwrap().contains("snat host-address"),
        "{out}"
    );
    let near =
        trace(json!({ "Direction": "Out", "Protocol": "udp", "Destination": "10.88.0.9:53" }));
    assert!(
        near["Text"]
            .as_str()
            .unwrap()
            .contains("outbound-nat:exceptions"),
        "{near}"
    );

    // Bad requests say what to send.
    for bad in [
        json!({ "Direction": "sideways", "Protocol": "tcp", "Source": "1.2.3.4" }),
        json!({ "Direction": "In", "Protocol": "tcp" }),
        json!({ "Direction": "In", "Protocol": "warp", "Source": "1.2.3.4" }),
        json!({ "Direction": "In", "Protocol": "tcp", "Source": "1.2.3" }),
        json!({ "Direction": "In" }),
    ] {
        let e = f.svc.trace_endpoint(id, &body(bad.clone())).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidJson, "{bad}: {e}");
    }
    let e = f
        .svc
        .trace_endpoint(
            "0A0B0C0D-0000-4000-8000-000000000001",
            &body(json!({ "Direction": "In", "Protocol": "tcp", "Source": "1.2.3.4" })),
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound, "{e}");
}

/// A runtime's netns given as `NetNsPath` (what hostnet-cni sends): used
/// as it is, never made, removed or rebuilt by hostnet.
#[test]
fn a_runtime_namespace_is_used_not_owned() {
    let store = Arc::new(MemoryStore::new());
    let f = start(store.clone());
    // The recorder takes any existing path for a namespace.
    let runtime_ns = std::env::temp_dir().join(format!(
        "hostnet-core-test-runtime-ns-{}",
        std::process::id()
    ));
    std::fs::write(&runtime_ns, b"").unwrap();
    let path = runtime_ns.display().to_string();
    f.dp.take();

    let err = f
        .svc
        .create(
            Kind::Namespace,
            &body(json!({ "NetNsPath": "/nonexistent/ns" })),
        )
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert!(err.message.contains("/nonexistent/ns"), "{}", err.message);
    let inside = config().netns_dir.join("X").display().to_string();
    let err = f
        .svc
        .create(Kind::Namespace, &body(json!({ "NetNsPath": inside })))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidJson);
    assert!(f.svc.list(Kind::Namespace, None).unwrap().is_empty());

    let ns = f
        .svc
        .create(
            Kind::Namespace,
            &body(json!({ "Name": "c1", "NetNsPath": path })),
        )
        .unwrap();
    assert_eq!(ns["NetNsPath"], path);
    assert!(
        !f.dp
            .take()
            .iter()
            .any(|op| matches!(op, Op::CreateNetns { .. })),
        "made a namespace for a runtime's"
    );
    let id = ns["ID"].as_str().unwrap().to_string();

    // After a restart it is still the runtime's: nothing rebuilt when it
    // is gone, nothing removed on delete.
    drop(f);
    std::fs::remove_file(&runtime_ns).unwrap();
    let f = start(store);
    assert!(
        !f.dp
            .take()
            .iter()
            .any(|op| matches!(op, Op::CreateNetns { .. } | Op::DeleteNetns { .. })),
        "touched a runtime's namespace on start"
    );
    f.svc.delete(Kind::Namespace, &id).unwrap();
    assert!(!f
        .dp
        .take()
        .iter()
        .any(|op| matches!(op, Op::DeleteNetns { .. })));
}

/// Records what the DNS observer is told.
#[derive(Default)]
struct DnsLog(std::sync::Mutex<Vec<String>>);

impl hostnet_core::DnsObserver for DnsLog {
    fn networks_changed(&self, networks: &[hostnet_core::DnsNetwork]) {
        let hosts: usize = networks.iter().map(|n| n.endpoints.len()).sum();
        self.0
            .lock()
            .unwrap()
            .push(format!("all {} {hosts}", networks.len()));
    }
    fn endpoint_added(&self, _: &hostnet_core::DnsNetwork, e: &hostnet_core::DnsEndpoint) {
        self.0.lock().unwrap().push(format!("+{}", e.name));
    }
    fn endpoint_removed(&self, _: &hostnet_core::DnsNetwork, e: &hostnet_core::DnsEndpoint) {
        self.0.lock().unwrap().push(format!("-{}", e.name));
    }
}

#[test]
fn dns_hears_one_endpoint_at_a_time() {
    let f = start(Arc::new(MemoryStore::new()));
    let log = Arc::new(DnsLog::default());
    f.svc.observe_dns(log.clone());
    let a = endpoint(&f, json!({ "Name": "a" })).unwrap();
    endpoint(&f, json!({ "Name": "b" })).unwrap();
    f.svc
        .delete(Kind::Endpoint, a["ID"].as_str().unwrap())
        .unwrap();
    // A network without a gateway proxy (AutomaticDNS off) changes the set
    // of DNS networks not at all: nothing to tell.
    f.svc
        .create(
            Kind::Network,
            &body(json!({ "Name": "quiet", "Type": "NAT",
                "Ipams": [{ "Subnets": [{ "IpAddressPrefix": "10.99.0.0/24" }] }],
                "Policies": [{ "Type": "AutomaticDNS", "Settings": { "Enable": false } }] })),
        )
        .unwrap();
    assert_eq!(
        *log.0.lock().unwrap(),
        ["all 1 0", "+a", "+b", "-a"],
        "the whole state once, then deltas"
    );
}

/// Names, host ports and shared runtime namespaces are looked up in
/// indexes, not by going over every object (docs/benchmarks.md): the
/// indexes must follow creates, deletes and a restart.
#[test]
fn names_and_host_ports_stay_unique_and_nics_of_one_netns_stay_counted() {
    let store = Arc::new(MemoryStore::new());
    let f = start(store.clone());
    let runtime_ns = std::env::temp_dir().join(format!(
        "hostnet-core-test-shared-ns-{}",
        std::process::id()
    ));
    std::fs::write(&runtime_ns, b"").unwrap();
    let path = runtime_ns.display().to_string();

    let web = endpoint(&f, json!({ "Name": "web" })).unwrap();
    let err = endpoint(&f, json!({ "Name": "web" })).unwrap_err();
    assert_eq!(err.code, ErrorCode::AlreadyExists);
    assert!(
        err.message.contains(web["ID"].as_str().unwrap()),
        "{}",
        err.message
    );
    endpoint(&f, json!({})).unwrap();
    endpoint(&f, json!({})).unwrap();

    // A CNI runtime registers its netns once per interface: the second
    // NIC's default route gets the next metric.
    let mut metrics = Vec::new();
    for (name, ifname) in [("c1/eth0", "eth0"), ("c1/eth1", "eth1")] {
        let ns = f
            .svc
            .create(
                Kind::Namespace,
                &body(json!({ "Name": name, "NetNsPath": path })),
            )
            .unwrap();
        let ep = endpoint(&f, json!({})).unwrap();
        f.dp.take();
        let req = json!({ "ResourceType": "Endpoint", "RequestType": "Add",
            "Settings": { "EndpointId": ep["ID"], "InterfaceName": ifname } });
        f.svc
            .modify(Kind::Namespace, ns["ID"].as_str().unwrap(), &body(req))
            .unwrap();
        metrics.extend(f.dp.take().iter().find_map(|op| match op {
            Op::CreateVeth { routes, .. } => Some(routes[0].metric),
            _ => None,
        }));
    }
    assert_eq!(metrics, [0, 100]);
    let err = f
        .svc
        .create(
            Kind::Namespace,
            &body(json!({ "Name": "c1/eth0", "NetNsPath": path })),
        )
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::AlreadyExists);

    // Host ports likewise.
    let published = endpoint(&f, mapping(8080)).unwrap();
    let err = endpoint(&f, mapping(8080)).unwrap_err();
    assert_eq!(err.code, ErrorCode::PortAlreadyExists);
    assert!(
        err.message.contains(published["ID"].as_str().unwrap()),
        "{}",
        err.message
    );

    // A deleted endpoint's name and ports are free again; after a restart
    // the names and ports in the store are taken.
    for gone in [&web, &published] {
        f.svc
            .delete(Kind::Endpoint, gone["ID"].as_str().unwrap())
            .unwrap();
    }
    endpoint(&f, json!({ "Name": "web" })).unwrap();
    endpoint(&f, mapping(8080)).unwrap();
    drop(f);
    let f = start(store);
    let err = endpoint(&f, json!({ "Name": "web" })).unwrap_err();
    assert_eq!(err.code, ErrorCode::AlreadyExists);
    let err = endpoint(&f, mapping(8080)).unwrap_err();
    assert_eq!(err.code, ErrorCode::PortAlreadyExists);
    let err = f
        .svc
        .create(
            Kind::Namespace,
            &body(json!({ "Name": "c1/eth1", "NetNsPath": path })),
        )
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::AlreadyExists);
    std::fs::remove_file(&runtime_ns).unwrap();
}
