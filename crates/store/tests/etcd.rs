//! EtcdStore against real etcd 3.4: one member, and a 3-member cluster on
//! a physical network with a host per client.

use std::collections::BTreeSet;

use hostnet_store::{Collection, EtcdOptions, EtcdStore, Store, StoreError, Txn};
use hostnet_testbed::{etcd, require_privileges, run_in, EtcdCluster, PhysicalNet};

fn ready(test: &str) -> bool {
    require_privileges(test) && etcd::etcd_server(test).is_some()
}

#[test]
fn etcd_store_keeps_hosts_apart_and_claims_shared() {
    if !ready("etcd_store_keeps_hosts_apart_and_claims_shared") {
        return;
    }
    let mut c = EtcdCluster::single("es");
    let path = c.netns(0).to_path_buf();
    run_in(&path, || {
        use Collection::*;
        let a = EtcdStore::connect(&EtcdOptions::new(&c.endpoints(), "host-a")).unwrap();
        let b = EtcdStore::connect(&EtcdOptions::new(&c.endpoints(), "host-b")).unwrap();
        assert_eq!(
            a.collection_prefix(Endpoints),
            "/hostnet/v1/hosts/host-a/endpoints/"
        );
        assert_eq!(
            a.collection_prefix(AddressClaims),
            "/hostnet/v1/cluster/address_claims/"
        );

        let mut txn = Txn::new();
        txn.put(Networks, "N2", b"n2".to_vec())
            .put(Networks, "N1", b"old".to_vec())
            .put(Endpoints, "E", b"e".to_vec())
            // Several ops on one key: the last wins (one etcd txn refuses duplicates).
            .put(Networks, "N1", b"n1".to_vec())
            .put(Meta, "gone", b"x".to_vec())
            .delete(Meta, "gone");
        a.commit(txn).unwrap();
        let nets = a.list(Networks).unwrap();
        assert_eq!(
            nets,
            [
                ("N1".to_string(), b"n1".to_vec()),
                ("N2".to_string(), b"n2".to_vec())
            ]
        );
        assert_eq!(a.get(Meta, "gone").unwrap(), None);
        assert_eq!(a.get(Endpoints, "E").unwrap().unwrap(), b"e");
        // Host-scoped: host B sees none of host A's objects.
        assert!(b.list(Networks).unwrap().is_empty());
        assert_eq!(b.get(Endpoints, "E").unwrap(), None);

        // Claims are cluster-wide: B cannot take what A holds.
        let mut txn = Txn::new();
        txn.claim(AddressClaims, "N/10.0.0.2", b"host-a".to_vec());
        a.commit(txn).unwrap();
        let mut txn = Txn::new();
        txn.put(Endpoints, "EB", b"eb".to_vec()).claim(
            AddressClaims,
            "N/10.0.0.2",
            b"host-b".to_vec(),
        );
        let err = b.commit(txn).unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict { key, .. } if key == "N/10.0.0.2"),
            "{err:?}"
        );
        assert_eq!(
            b.get(Endpoints, "EB").unwrap(),
            None,
            "a lost claim changes nothing"
        );
        assert_eq!(
            b.get(AddressClaims, "N/10.0.0.2").unwrap().unwrap(),
            b"host-a"
        );
    });

    // The member down: reads and commits say the store is unavailable,
    // promptly; back up, everything works again on the same store.
    let store = run_in(&path, || {
        EtcdStore::connect(&EtcdOptions::new(&c.endpoints(), "host-a")).unwrap()
    });
    c.kill(0);
    run_in(&path, || {
        let start = std::time::Instant::now();
        let mut txn = Txn::new();
        txn.put(Collection::Networks, "N3", b"n3".to_vec());
        let err = store.commit(txn).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(err.to_string().contains("unavailable"), "{err}");
        let err = store.list(Collection::Networks).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    });
    c.restart(0);
    run_in(&path, || {
        let mut txn = Txn::new();
        txn.put(Collection::Networks, "N3", b"n3".to_vec());
        store.commit(txn).unwrap();
        assert_eq!(store.list(Collection::Networks).unwrap().len(), 3);
    });
}

/// Three hosts, each with its own store on a 3-member cluster, claim from
/// one pool of 60 addresses at once, every host walking the pool in the
/// same order (the worst case): each address is won exactly once.
#[test]
fn concurrent_claims_from_three_hosts_never_collide() {
    if !ready("concurrent_claims_from_three_hosts_never_collide") {
        return;
    }
    let mut phys = PhysicalNet::new("cc", 3);
    let cluster = EtcdCluster::on_switch(&mut phys, 3);
    const POOL: u32 = 60;
    let start = std::sync::Barrier::new(3);
    let won: Vec<Vec<String>> = std::thread::scope(|s| {
        let hosts: Vec<_> = phys
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let path = h.netns.path().to_path_buf();
                let endpoints = cluster.endpoints();
                let start = &start;
                s.spawn(move || {
                    run_in(&path, || {
                        let host = format!("host{}", i + 1);
                        let store =
                            EtcdStore::connect(&EtcdOptions::new(&endpoints, &host)).unwrap();
                        let mut mine = Vec::new();
                        start.wait();
                        for n in 1..=POOL {
                            let key = format!("N/10.0.0.{n}");
                            let mut txn = Txn::new();
                            txn.claim(Collection::AddressClaims, &key, host.clone().into_bytes())
                                .put(
                                    Collection::Endpoints,
                                    &format!("ep-{n}"),
                                    key.clone().into_bytes(),
                                );
                            match store.commit(txn) {
                                Ok(()) => mine.push(key),
                                Err(StoreError::Conflict { .. }) => {}
                                Err(e) => panic!("{host}: {e}"),
                            }
                        }
                        mine
                    })
                })
            })
            .collect();
        hosts.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<&String> = won.iter().flatten().collect();
    let distinct: BTreeSet<&String> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        POOL as usize,
        "every address claimed once: {won:?}"
    );
    assert_eq!(distinct.len(), POOL as usize, "no address twice: {won:?}");
    // What each host believes it won is what the cluster recorded.
    let path = phys.hosts[0].netns.path().to_path_buf();
    run_in(&path, || {
        let store = EtcdStore::connect(&EtcdOptions::new(&cluster.endpoints(), "reader")).unwrap();
        let claims = store.list(Collection::AddressClaims).unwrap();
        assert_eq!(claims.len(), POOL as usize);
        for (i, mine) in won.iter().enumerate() {
            let host = format!("host{}", i + 1);
            for key in mine {
                let holder = claims
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.as_slice());
                assert_eq!(holder, Some(host.as_bytes()), "{key}");
            }
        }
    });
    println!(
        "claims won per host: {:?}",
        won.iter().map(Vec::len).collect::<Vec<_>>()
    );
    drop(cluster);
}
