//! The network's `Options` (hostnet's store of docker's `-o` options, read
//! by the CLI): kept verbatim on create, modify and restart; anything but an
//! object of strings is refused before anything is made (tier 0).

use std::sync::Arc;

use hostnet_core::{Config, Kind, Service};
use hostnet_dataplane::Recorder;
use hostnet_model::ErrorCode;
use hostnet_store::MemoryStore;
use serde_json::{json, Value};

fn start(store: Arc<MemoryStore>) -> (Service, Arc<Recorder>) {
    let config = Config {
        netns_dir: std::env::temp_dir().join("hostnet-core-test-netns-never-created"),
        default_network: false,
        default_subnet: None,
        mtu: 1500,
    };
    let dp = Arc::new(Recorder::new());
    let svc = Service::start(config, Box::new(store), Box::new(dp.clone())).unwrap();
    (svc, dp)
}

fn body(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

fn options() -> Value {
    json!({
        "com.docker.network.windowsshim.enable_outboundnat": "true",
        "com.docker.network.windowsshim.outboundnat_exceptions": "192.0.2.0/24, 10.0.0.1",
    })
}

#[test]
fn options_survive_modify_and_restart() {
    let store = Arc::new(MemoryStore::new());
    let (svc, _) = start(store.clone());
    let net = svc
        .create(
            Kind::Network,
            &body(json!({ "Name": "n", "Type": "nat", "Options": options() })),
        )
        .unwrap();
    assert_eq!(net["Options"], options());
    let id = net["ID"].as_str().unwrap().to_string();
    let changed = svc
        .modify(
            Kind::Network,
            &id,
            &body(json!({ "ResourceType": "DNS", "RequestType": "Update",
                          "Settings": { "ServerList": ["10.0.0.53"] } })),
        )
        .unwrap();
    assert_eq!(changed["Options"], options());
    drop(svc);
    let (svc, _) = start(store);
    assert_eq!(svc.get(Kind::Network, &id).unwrap()["Options"], options());
}

#[test]
fn options_that_are_not_strings_create_nothing() {
    let (svc, dp) = start(Arc::new(MemoryStore::new()));
    dp.take();
    for options in [json!({ "vlanid": 11 }), json!(["enable_outboundnat=true"])] {
        let err = svc
            .create(
                Kind::Network,
                &body(json!({ "Name": "n", "Type": "nat", "Options": options })),
            )
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidJson, "{}", err.message);
        assert!(
            err.message.contains("Options must be an object of strings"),
            "{}",
            err.message
        );
    }
    assert!(svc.list(Kind::Network, None).unwrap().is_empty());
    assert!(dp.take().is_empty(), "the kernel was touched");
}
