//! hostnet-store-bench: what cluster mode costs an endpoint create, the
//! embedded redb store and a 3-member etcd cluster side by side in one run.
//!
//! ```text
//! sudo target/release/hostnet-store-bench [--n 200] [--rounds 2]
//! ```
//!
//! A two-host [`PhysicalNet`] with a 3-member etcd 3.4 cluster on its
//! switch: host1's `hostnetd` keeps the embedded store, host2's runs with
//! `--store etcd://…`. Each round creates `n` endpoints on `nat` (one POST
//! each, timed through the API socket) on host1, then on host2, then
//! deletes them; rounds alternate so drift shows. Prints p50/p99 per store.
//! Everything is in namespaces this process makes; see docs/benchmarks.md.

use std::time::Instant;

use hostnet_api::{Client, Kind};
use hostnet_testbed::bench_args;
use hostnet_testbed::samples::Samples;
use hostnet_testbed::{Daemon, EtcdCluster, PhysicalNet};
use serde_json::json;

/// Creates `n` endpoints on `nat`, timing each create; deletes them after.
fn churn(client: &Client, n: usize, samples: &mut Samples) {
    let nat = client
        .find_by_name(Kind::Networks, "nat")
        .unwrap()
        .expect("nat");
    let body = json!({ "HostComputeNetwork": nat["ID"] });
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let ep = client
            .create(Kind::Endpoints, &body)
            .expect("create endpoint");
        samples.push(start.elapsed());
        ids.push(ep["ID"].as_str().unwrap().to_string());
    }
    for id in ids {
        client
            .delete(Kind::Endpoints, &id)
            .expect("delete endpoint");
    }
}

fn main() {
    let n = bench_args::number("--n", 200);
    let rounds = bench_args::number("--rounds", 2);
    let mut phys = PhysicalNet::new("sb", 2);
    let cluster = EtcdCluster::on_switch(&mut phys, 3);
    let subnet = ["--default-subnet", "10.88.0.0/16"];
    let embedded = Daemon::start(phys.host(0).netns.path(), &subnet);
    let store = cluster.endpoints();
    let etcd = Daemon::start(
        phys.host(1).netns.path(),
        &[&subnet[..], &["--store", &store, "--host-id", "bench"]].concat(),
    );
    let (mut redb, mut quorum) = (Samples::default(), Samples::default());
    for _ in 0..rounds {
        churn(&embedded.client(), n, &mut redb);
        churn(&etcd.client(), n, &mut quorum);
    }
    println!("endpoint create, {n} x {rounds} rounds each (ms):");
    for (name, s) in [("redb (embedded)", &redb), ("etcd (3 members)", &quorum)] {
        println!(
            "  {name:<18} p50 {:>6.2}  p90 {:>6.2}  p99 {:>6.2}  max {:>7.2}",
            s.pct(50.0),
            s.pct(90.0),
            s.pct(99.0),
            s.max()
        );
    }
    drop(etcd);
    drop(embedded);
    drop(cluster);
}
