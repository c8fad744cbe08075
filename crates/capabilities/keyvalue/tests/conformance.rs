//! The key-value backend contract, run against every backend: memory,
//! filesystem (redb), Redis and NATS JetStream KV (real servers on
//! loopback); and the filesystem store surviving `kill -9` without losing an
//! acknowledged write.

use nimbus_keyvalue::{BackendSettings, KeyValueBackend, KvError, PAGE_SIZE, open_backend};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use test_programs::servers::{Kind, Server};

/// Each backend call's bound: generous, since nothing here measures it and
/// a loaded machine (NATS creating a bucket, say) can be slow.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// The whole contract, against one backend.
async fn conformance(kv: Arc<dyn KeyValueBackend>) {
    kv.open("alpha").await.unwrap();
    kv.open("beta").await.unwrap();

    // get / set / exists / delete.
    assert_eq!(kv.get("alpha", "missing").await.unwrap(), None);
    assert!(!kv.exists("alpha", "k").await.unwrap());
    kv.set("alpha", "k", b"v1".to_vec()).await.unwrap();
    assert_eq!(kv.get("alpha", "k").await.unwrap(), Some(b"v1".to_vec()));
    assert!(kv.exists("alpha", "k").await.unwrap());
    kv.set("alpha", "k", b"v2".to_vec()).await.unwrap();
    assert_eq!(kv.get("alpha", "k").await.unwrap(), Some(b"v2".to_vec()));
    // Buckets are separate namespaces.
    assert_eq!(kv.get("beta", "k").await.unwrap(), None);
    kv.delete("alpha", "k").await.unwrap();
    assert_eq!(kv.get("alpha", "k").await.unwrap(), None);
    kv.delete("alpha", "k").await.unwrap();

    // Batch.
    let entries: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| (format!("b{i}"), format!("v{i}").into_bytes()))
        .collect();
    kv.set_many("beta", entries).await.unwrap();
    let got = kv
        .get_many("beta", vec!["b1".into(), "nope".into(), "b4".into()])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            Some(("b1".to_string(), b"v1".to_vec())),
            None,
            Some(("b4".to_string(), b"v4".to_vec()))
        ]
    );
    kv.delete_many("beta", vec!["b1".into(), "b4".into()])
        .await
        .unwrap();
    assert!(!kv.exists("beta", "b1").await.unwrap());
    assert!(kv.exists("beta", "b2").await.unwrap());

    // list-keys with cursors: several pages, every key, nothing from other buckets.
    let total = PAGE_SIZE * 2 + 37;
    let entries: Vec<(String, Vec<u8>)> = (0..total)
        .map(|i| (format!("key-{i:04}"), vec![b'x']))
        .collect();
    kv.set_many("gamma", entries.clone()).await.unwrap();
    let (mut seen, mut cursor, mut pages) = (BTreeSet::new(), None, 0);
    loop {
        let page = kv.list_keys("gamma", cursor).await.unwrap();
        pages += 1;
        seen.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 10_000, "cursor never ends");
    }
    let expected: BTreeSet<String> = entries.into_iter().map(|(k, _)| k).collect();
    assert_eq!(seen, expected);
    assert!(pages >= 2, "{total} keys came in {pages} page(s)");

    // Increments: missing key starts at 0; a non-number is an error value.
    assert_eq!(kv.increment("alpha", "fresh", 5).await.unwrap(), 5);
    assert_eq!(kv.get("alpha", "fresh").await.unwrap(), Some(b"5".to_vec()));
    kv.set("alpha", "word", b"hello".to_vec()).await.unwrap();
    assert!(matches!(
        kv.increment("alpha", "word", 1).await,
        Err(KvError::Other(_))
    ));

    // Atomic under concurrency: N clients x M increments = N*M, and every
    // increment returned a distinct value (no two saw the same count).
    const CLIENTS: u64 = 8;
    const EACH: u64 = 40;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let kv = kv.clone();
        tasks.push(tokio::spawn(async move {
            let mut values = Vec::new();
            for _ in 0..EACH {
                values.push(kv.increment("alpha", "counter", 1).await.unwrap());
            }
            values
        }));
    }
    let mut values = Vec::new();
    for task in tasks {
        values.extend(task.await.unwrap());
    }
    values.sort_unstable();
    assert_eq!(values, (1..=CLIENTS * EACH).collect::<Vec<_>>());
    assert_eq!(
        kv.get("alpha", "counter").await.unwrap(),
        Some((CLIENTS * EACH).to_string().into_bytes())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_memory() {
    conformance(open_backend(&BackendSettings::Memory, CALL_TIMEOUT).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let settings = BackendSettings::Filesystem {
        path: dir.path().join("kv.redb"),
    };
    conformance(open_backend(&settings, CALL_TIMEOUT).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_redis() {
    let Some(redis) = Server::start(Kind::Redis) else {
        return;
    };
    let settings = BackendSettings::Redis { url: redis.url() };
    conformance(open_backend(&settings, CALL_TIMEOUT).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_nats() {
    let Some(nats) = Server::start(Kind::Nats) else {
        return;
    };
    let settings = BackendSettings::Nats { url: nats.url() };
    conformance(open_backend(&settings, CALL_TIMEOUT).unwrap()).await;
}

/// Set in the child process of the kill -9 test: the database to write.
const CHILD_DB: &str = "NIMBUS_TEST_KV_CHILD_DB";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_store_survives_kill_9_without_losing_acknowledged_writes() {
    if let Ok(path) = std::env::var(CHILD_DB) {
        // Child: increment forever, printing each acknowledged value.
        let kv = open_backend(
            &BackendSettings::Filesystem { path: path.into() },
            CALL_TIMEOUT,
        )
        .unwrap();
        loop {
            let value = kv.increment("durable", "count", 1).await.unwrap();
            println!("ACK {value}");
        }
    }
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "filesystem_store_survives_kill_9_without_losing_acknowledged_writes",
            "--nocapture",
        ])
        .env(CHILD_DB, &path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut last_ack = 0u64;
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines {
        let line = line.unwrap();
        if let Some(value) = line.strip_prefix("ACK ") {
            last_ack = value.parse().unwrap();
            if last_ack >= 30 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructors, no flush.
    child.wait().unwrap();
    assert!(
        last_ack >= 30,
        "the child acknowledged only {last_ack} writes"
    );

    let kv = open_backend(&BackendSettings::Filesystem { path }, CALL_TIMEOUT).unwrap();
    let stored = kv.get("durable", "count").await.unwrap().unwrap();
    let stored: u64 = String::from_utf8(stored).unwrap().parse().unwrap();
    assert!(
        stored >= last_ack,
        "acknowledged {last_ack} but only {stored} survived"
    );
    // And the store is usable after the crash.
    assert_eq!(
        kv.increment("durable", "count", 1).await.unwrap(),
        stored + 1
    );
}
