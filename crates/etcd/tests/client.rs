//! hostnet-etcd against a real etcd 3.4 member in a namespace of its own.

use std::time::Duration;

use hostnet_etcd::{Client, Compare, EventKind, Timeouts, Txn, TxnOp, TxnOpResponse, WatchMessage};
use hostnet_testbed::{etcd, require_privileges, run_in, EtcdCluster};

/// A single-member cluster, or None (after `skipped:`) without root or etcd.
fn cluster(test: &str) -> Option<EtcdCluster> {
    if !require_privileges(test) || etcd::etcd_server(test).is_none() {
        return None;
    }
    Some(EtcdCluster::single("ec"))
}

fn client(c: &EtcdCluster) -> Client {
    Client::new(&c.endpoints(), Timeouts::default()).unwrap()
}

#[test]
fn keys_values_and_prefixes() {
    let Some(c) = cluster("keys_values_and_prefixes") else {
        return;
    };
    run_in(c.netns(0), || {
        let etcd = client(&c);
        let first = etcd.check().unwrap();
        assert_eq!(etcd.get(b"/t/a").unwrap(), None);
        let rev = etcd.put(b"/t/a", b"1", 0).unwrap();
        assert!(rev > first);
        etcd.put(b"/t/b", &[0, 255, 10], 0).unwrap();
        etcd.put(b"/u/c", b"3", 0).unwrap();
        let a = etcd.get(b"/t/a").unwrap().unwrap();
        assert_eq!((a.value.as_slice(), a.create_revision), (&b"1"[..], rev));
        let (kvs, at) = etcd.range_prefix(b"/t/").unwrap();
        let keys: Vec<_> = kvs.iter().map(|kv| kv.key.as_slice()).collect();
        assert_eq!(keys, [&b"/t/a"[..], b"/t/b"]);
        assert_eq!(kvs[1].value, [0, 255, 10], "binary values survive base64");
        assert!(at >= rev + 2);
        assert_eq!(etcd.delete(b"/t/", true).unwrap(), 2);
        assert_eq!(etcd.delete(b"/t/a", false).unwrap(), 0);
        assert!(etcd.range_prefix(b"/t/").unwrap().0.is_empty());
        assert!(etcd.get(b"/u/c").unwrap().is_some());
    });
}

#[test]
fn transactions_compare_then_branch() {
    let Some(c) = cluster("transactions_compare_then_branch") else {
        return;
    };
    run_in(c.netns(0), || {
        let etcd = client(&c);
        let claim = |owner: &[u8]| Txn {
            compares: vec![Compare::absent(b"/claims/10.0.0.5")],
            success: vec![
                TxnOp::put(b"/claims/10.0.0.5", owner),
                TxnOp::put(b"/eps/x", b"ep"),
            ],
            failure: vec![TxnOp::get(b"/claims/10.0.0.5")],
        };
        let won = etcd.txn(&claim(b"host1")).unwrap();
        assert!(won.succeeded);
        assert_eq!(won.responses, [TxnOpResponse::Put, TxnOpResponse::Put]);
        let lost = etcd.txn(&claim(b"host2")).unwrap();
        assert!(!lost.succeeded);
        let TxnOpResponse::Get(holder) = &lost.responses[0] else {
            panic!("{lost:?}")
        };
        assert_eq!(holder[0].value, b"host1");
        assert_eq!(
            etcd.get(b"/claims/10.0.0.5").unwrap().unwrap().value,
            b"host1"
        );

        // Compare on the value and on the last change's revision.
        let kv = etcd.get(b"/eps/x").unwrap().unwrap();
        let swap = |rev| Txn {
            compares: vec![
                Compare::ModRevision(b"/eps/x".to_vec(), hostnet_etcd::CompareOp::Equal, rev),
                Compare::Value(
                    b"/eps/x".to_vec(),
                    hostnet_etcd::CompareOp::Equal,
                    b"ep".to_vec(),
                ),
            ],
            success: vec![
                TxnOp::put(b"/eps/x", b"ep2"),
                TxnOp::delete(b"/claims/10.0.0.5"),
            ],
            failure: vec![],
        };
        assert!(!etcd.txn(&swap(kv.mod_revision - 1)).unwrap().succeeded);
        let done = etcd.txn(&swap(kv.mod_revision)).unwrap();
        assert!(done.succeeded);
        assert_eq!(done.responses[1], TxnOpResponse::Delete { deleted: 1 });
        assert_eq!(etcd.get(b"/claims/10.0.0.5").unwrap(), None);
    });
}

#[test]
fn leases_keep_keys_until_they_expire_or_are_revoked() {
    let Some(c) = cluster("leases_keep_keys_until_they_expire_or_are_revoked") else {
        return;
    };
    run_in(c.netns(0), || {
        let etcd = client(&c);
        let lease = etcd.lease_grant(2).unwrap();
        assert_eq!(lease.ttl, 2);
        etcd.put(b"/hosts/a", b"alive", lease.id).unwrap();
        assert_eq!(etcd.get(b"/hosts/a").unwrap().unwrap().lease, lease.id);
        // Renewed for 3 s: longer than the TTL, the key stays.
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            assert_eq!(etcd.lease_keepalive(lease.id).unwrap(), Some(2));
            std::thread::sleep(Duration::from_millis(500));
        }
        assert!(etcd.get(b"/hosts/a").unwrap().is_some());
        // Left alone, it expires with its key.
        let gone = hostnet_testbed::wait_until(Duration::from_secs(6), || {
            etcd.get(b"/hosts/a").unwrap().is_none()
        });
        assert!(gone, "the leased key outlived its lease");
        assert_eq!(etcd.lease_keepalive(lease.id).unwrap(), None);

        let lease = etcd.lease_grant(60).unwrap();
        etcd.put(b"/hosts/b", b"alive", lease.id).unwrap();
        etcd.lease_revoke(lease.id).unwrap();
        assert_eq!(
            etcd.get(b"/hosts/b").unwrap(),
            None,
            "revoking deletes at once"
        );
        etcd.lease_revoke(lease.id).unwrap();
    });
}

/// Drains a watch until it has delivered `n` events (or times out).
fn events(w: &hostnet_etcd::Watch, n: usize) -> Vec<(EventKind, String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        match w.recv_timeout(Duration::from_secs(15)) {
            Ok(WatchMessage::Events { events, .. }) => out.extend(events.into_iter().map(|e| {
                (
                    e.kind,
                    String::from_utf8(e.kv.key).unwrap(),
                    String::from_utf8(e.kv.value).unwrap(),
                )
            })),
            other => panic!("after {out:?}: {other:?}"),
        }
    }
    out
}

#[test]
fn watches_resume_after_the_member_restarts_and_report_compaction() {
    let test = "watches_resume_after_the_member_restarts_and_report_compaction";
    let Some(mut c) = cluster(test) else { return };
    let path = c.netns(0).to_path_buf();
    let (from, watch) = run_in(&path, || {
        let etcd = client(&c);
        let from = etcd.put(b"/w/before", b"0", 0).unwrap();
        etcd.put(b"/other", b"x", 0).unwrap();
        etcd.put(b"/w/a", b"1", 0).unwrap();
        etcd.delete(b"/w/before", false).unwrap();
        (from, etcd.watch(b"/w/", true, from))
    });
    // History from `from` on, only under the prefix, in order.
    assert_eq!(
        events(&watch, 3),
        [
            (EventKind::Put, "/w/before".into(), "0".into()),
            (EventKind::Put, "/w/a".into(), "1".into()),
            (EventKind::Delete, "/w/before".into(), String::new()),
        ]
    );

    // The member goes away; what happens meanwhile and after it is back
    // arrives once, in order.
    c.kill(0);
    c.restart(0);
    run_in(&path, || {
        let etcd = client(&c);
        etcd.put(b"/w/b", b"2", 0).unwrap();
        etcd.put(b"/w/a", b"3", 0).unwrap();
    });
    assert_eq!(
        events(&watch, 2),
        [
            (EventKind::Put, "/w/b".into(), "2".into()),
            (EventKind::Put, "/w/a".into(), "3".into()),
        ]
    );
    drop(watch);

    // A watch from a compacted revision says so, and ends.
    let watch = run_in(&path, || {
        let etcd = client(&c);
        let now = etcd.put(b"/w/c", b"4", 0).unwrap();
        let body = format!("{{\"revision\":\"{now}\",\"physical\":true}}");
        compact(&c, &body);
        etcd.watch(b"/w/", true, from)
    });
    match watch.recv_timeout(Duration::from_secs(15)) {
        Ok(WatchMessage::Compacted { compact_revision }) => assert!(compact_revision > from),
        other => panic!("{other:?}"),
    }
    assert!(watch.recv_timeout(Duration::from_secs(1)).is_err());
}

/// Compacts the member's history (no client call for it: hostnet never does).
fn compact(c: &EtcdCluster, body: &str) {
    use std::io::{Read, Write};
    let addr = c.endpoints().trim_start_matches("etcd://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "POST /v3/kv/compaction HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A watch "from now" that loses its only member before any event, with
/// a change made meanwhile through another member of a 3-member cluster:
/// the change is delivered once the watch's member is back.
#[test]
fn a_watch_from_now_misses_nothing_written_while_it_reconnects() {
    let test = "a_watch_from_now_misses_nothing_written_while_it_reconnects";
    if !require_privileges(test) || etcd::etcd_server(test).is_none() {
        return;
    }
    let mut phys = hostnet_testbed::PhysicalNet::new("ew", 1);
    let mut c = EtcdCluster::on_switch(&mut phys, 3);
    let path = phys.host(0).netns.path().to_path_buf();
    // The watch's member is a follower: the others keep a leader without it.
    let follower = (c.leader() + 1) % 3;
    let all = c.endpoints();
    let members: Vec<&str> = all.trim_start_matches("etcd://").split(',').collect();
    let first = format!("etcd://{}", members[follower]);
    let rest: Vec<&str> = (0..3)
        .filter(|&i| i != follower)
        .map(|i| members[i])
        .collect();
    let others = format!("etcd://{}", rest.join(","));
    let watch = run_in(&path, || {
        let etcd = Client::new(&all, Timeouts::default()).unwrap();
        etcd.put(b"/n/old", b"0", 0).unwrap();
        // The watch knows only that follower.
        Client::new(&first, Timeouts::default())
            .unwrap()
            .watch(b"/n/", true, 0)
    });
    let created =
        hostnet_testbed::wait_until(Duration::from_secs(5), || watch.started_at().is_some());
    assert!(created, "the watch was never created");
    c.kill(follower);
    run_in(&path, || {
        let etcd = Client::new(&others, Timeouts::default()).unwrap();
        etcd.put(b"/n/new", b"1", 0).unwrap();
    });
    c.restart(follower);
    assert_eq!(
        events(&watch, 1),
        [(EventKind::Put, "/n/new".into(), "1".into())]
    );
    drop(watch);
}

/// A member that requires TLS with client certificates: the client with
/// the cluster's CA and a client certificate works (watches too); without
/// a certificate, or trusting another CA, it fails before sending, saying
/// why.
#[test]
fn tls_members_take_clients_with_the_right_certificates() {
    let test = "tls_members_take_clients_with_the_right_certificates";
    if !require_privileges(test) || etcd::etcd_server(test).is_none() {
        return;
    }
    let c = EtcdCluster::single_tls("et");
    let pki = c.pki().unwrap();
    let files = hostnet_etcd::TlsFiles {
        ca: pki.ca.clone(),
        cert: Some(pki.client_cert.clone()),
        key: Some(pki.client_key.clone()),
    };
    let url = c.endpoints();
    assert!(url.starts_with("https://"), "{url}");
    run_in(c.netns(0), || {
        let etcd = Client::with_tls(&url, Timeouts::default(), Some(&files)).unwrap();
        let rev = etcd.put(b"/tls/a", b"1", 0).unwrap();
        assert_eq!(etcd.get(b"/tls/a").unwrap().unwrap().value, b"1");
        let watch = etcd.watch(b"/tls/", true, rev);
        assert_eq!(
            events(&watch, 1),
            [(EventKind::Put, "/tls/a".into(), "1".into())]
        );

        // No client certificate: the member refuses it.
        let anonymous = hostnet_etcd::TlsFiles {
            cert: None,
            key: None,
            ..files.clone()
        };
        let err = Client::with_tls(&url, Timeouts::default(), Some(&anonymous))
            .unwrap()
            .get(b"/tls/a")
            .unwrap_err();
        // (TLS 1.3: the member's alert arrives with the first answer.)
        assert!(
            err.is_unavailable() && err.to_string().to_lowercase().contains("certificate"),
            "{err}"
        );

        // Trusting the client's own certificate instead of the CA: the
        // member's certificate does not verify.
        let wrong_ca = hostnet_etcd::TlsFiles {
            ca: pki.client_cert.clone(),
            ..files.clone()
        };
        let err = Client::with_tls(&url, Timeouts::default(), Some(&wrong_ca))
            .unwrap()
            .get(b"/tls/a")
            .unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");

        // Plain HTTP to a TLS member, and https:// without a CA, are refused.
        let plain = url.replace("https://", "etcd://");
        assert!(Client::new(&plain, Timeouts::default())
            .unwrap()
            .get(b"/tls/a")
            .is_err());
        let err = Client::new(&url, Timeouts::default()).unwrap_err();
        assert!(err.to_string().contains("give the cluster's CA"), "{err}");
    });
}
