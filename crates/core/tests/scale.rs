//! What hostnetd's own code (no kernel: the recording dataplane and the
//! in-memory store) spends per CNI-style ADD as the host fills up: a
//! measurement, not a check (docs/benchmarks.md, "Where hostnet-cni's ADD
//! time goes").
//!
//! ```sh
//! cargo test --release -p hostnet-core --test scale -- --ignored --nocapture
//! HOSTNET_SCALE_N=100 valgrind --tool=callgrind target/release/deps/scale-… --ignored
//! ```
//!
//! Each ADD is what hostnet-cni asks: a named namespace, a named endpoint
//! with one port mapping, the attach; the store is hostnetd's (redb, in a
//! temporary directory), as the in-memory test store copies itself on
//! every commit. Timed in this thread's CPU time, so
//! other work on the machine does not count; under callgrind the
//! instruction counts of `Service::create` and `Service::modify` divided by
//! N compare N=100 with N=1000 without any noise.

mod common;

use std::sync::Arc;

use common::*;
use hostnet_core::{Kind, Service};
use hostnet_dataplane::Recorder;
use hostnet_store::RedbStore;
use serde_json::json;

fn cpu_us() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e6 + ts.tv_nsec as f64 / 1e3
}

fn p50(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
#[ignore = "a measurement: cargo test --release -p hostnet-core --test scale -- --ignored --nocapture"]
fn add_cost_by_containers() {
    let n: usize = std::env::var("HOSTNET_SCALE_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("state.redb")).unwrap();
    let dp = Arc::new(Recorder::new());
    let svc = Service::start(config(), Box::new(store), Box::new(dp.clone())).unwrap();
    let net = svc.list(Kind::Network, None).unwrap()[0]["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let mut add_us = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("cni/nat/c{i:04}/eth0");
        let t = cpu_us();
        let ns = svc
            .create(Kind::Namespace, &body(json!({ "Name": name })))
            .unwrap();
        let ep = svc
            .create(
                Kind::Endpoint,
                &body(json!({ "Name": name, "HostComputeNetwork": net, "Policies": [
                    { "Type": "PortMapping", "Settings": { "Protocol": 6, "InternalPort": 80, "ExternalPort": 20000 + i } }
                ] })),
            )
            .unwrap();
        let req = json!({ "ResourceType": "Endpoint", "RequestType": "Add",
            "Settings": { "EndpointId": ep["ID"], "InterfaceName": "eth0" } });
        svc.modify(Kind::Namespace, ns["ID"].as_str().unwrap(), &body(req))
            .unwrap();
        add_us.push(cpu_us() - t);
        dp.take();
    }
    let tenth = (n / 10).max(1);
    println!(
        "N={n}: hostnetd's own CPU per ADD, p50 of the first tenth {:.1} µs, of the last tenth {:.1} µs",
        p50(&add_us[..tenth]),
        p50(&add_us[n - tenth..])
    );
}
