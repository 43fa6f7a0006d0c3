//! Crash durability and commit latency of the redb store.
//!
//! The crash test runs this very test binary a second time as a child (switched
//! by an environment variable): the child commits, reports it, and is killed
//! with SIGKILL mid-sleep; the parent must then find every commit.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hostnet_store::{Collection, RedbStore, Store, Txn};

const CHILD_ENV: &str = "HOSTNET_STORE_CRASH_CHILD_DB";
const N: usize = 20;

/// In the child: commit `N` values one transaction at a time, say so, then hang.
fn child(path: &Path) -> ! {
    let store = RedbStore::open(path).unwrap();
    for i in 0..N {
        let mut txn = Txn::new();
        txn.put(
            Collection::Endpoints,
            &format!("EP{i:04}"),
            vec![i as u8; 100],
        )
        .put(Collection::Meta, "count", (i + 1).to_string().into_bytes());
        store.commit(txn).unwrap();
    }
    println!("committed");
    std::thread::sleep(Duration::from_secs(60));
    std::process::exit(1)
}

#[test]
fn commits_survive_sigkill() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&path));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let mut proc = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "commits_survive_sigkill", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // libtest prints "test NAME ... " before the child's own output, on the same line.
    let stdout = BufReader::new(proc.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let found = stdout
            .lines()
            .map_while(Result::ok)
            .any(|line| line.ends_with("committed"));
        let _ = tx.send(found);
    });
    let saw_committed = rx.recv_timeout(Duration::from_secs(30)).unwrap_or(false);
    // Child::kill sends SIGKILL on Unix: no destructors, no clean shutdown.
    proc.kill().unwrap();
    proc.wait().unwrap();
    assert!(saw_committed, "child never reported its commits");

    let store = RedbStore::open(&path).unwrap();
    let endpoints = store.list(Collection::Endpoints).unwrap();
    assert_eq!(endpoints.len(), N);
    for (i, (key, value)) in endpoints.iter().enumerate() {
        assert_eq!(key, &format!("EP{i:04}"));
        assert_eq!(value, &vec![i as u8; 100]);
    }
    assert_eq!(
        store.get(Collection::Meta, "count").unwrap().unwrap(),
        N.to_string().into_bytes()
    );
}

/// Not an assertion: prints the latency of a durable single-put commit
/// (run with `--nocapture`). The endpoint-create budget is 10 ms.
#[test]
fn commit_latency() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("state.redb")).unwrap();
    let value = vec![b'x'; 1500]; // about one endpoint's JSON
    let mut samples: Vec<Duration> = (0..200)
        .map(|i| {
            let mut txn = Txn::new();
            txn.put(Collection::Endpoints, &format!("EP{i:04}"), value.clone());
            let start = Instant::now();
            store.commit(txn).unwrap();
            start.elapsed()
        })
        .collect();
    samples.sort();
    let pct = |p: usize| samples[(samples.len() - 1) * p / 100];
    println!(
        "redb single-put commit latency: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        pct(50),
        pct(90),
        pct(99),
        samples[samples.len() - 1]
    );
}
