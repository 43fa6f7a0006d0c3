//! The tier-0 fixture the core's tests share: the service over the
//! recording dataplane and an in-memory store, with its default NAT
//! network on 10.88.0.0/16.

#![allow(dead_code)]

use std::borrow::Borrow;
use std::sync::Arc;

use hostnet_core::{Config, Service};
use hostnet_dataplane::Recorder;
use hostnet_store::MemoryStore;
use serde_json::Value;

pub struct Fixture {
    pub svc: Service,
    pub dp: Arc<Recorder>,
    pub store: Arc<MemoryStore>,
}

pub fn config() -> Config {
    Config {
        netns_dir: std::env::temp_dir().join("hostnet-core-test-netns-never-created"),
        default_network: true,
        default_subnet: Some("10.88.0.0/16".parse().unwrap()),
        mtu: 1500,
    }
}

/// The service started on `store`: give the same store again to restart.
pub fn start(store: Arc<MemoryStore>) -> Fixture {
    let dp = Arc::new(Recorder::new());
    let svc = Service::start(config(), Box::new(store.clone()), Box::new(dp.clone())).unwrap();
    Fixture { svc, dp, store }
}

/// The service on a store of its own.
pub fn fresh() -> Fixture {
    start(Arc::new(MemoryStore::new()))
}

/// A request body.
pub fn body(v: impl Borrow<Value>) -> Vec<u8> {
    serde_json::to_vec(v.borrow()).unwrap()
}
