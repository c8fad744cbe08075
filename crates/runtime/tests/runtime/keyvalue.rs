//! `wasi:keyvalue` on every backend: one conformance suite run against
//! memory, filesystem (redb), Redis and NATS JetStream KV (real servers on
//! loopback), the same operations end to end through a guest, fault tests
//! (backend down → guest error, other routes keep serving, recovery), and
//! the filesystem store surviving `kill -9` without losing an acknowledged
//! write.

use crate::common;

use bytes::Bytes;
use common::*;
use nimbus_runtime::plugins::keyvalue::{
    BackendSettings, KeyValueBackend, KvError, PAGE_SIZE, open_backend,
};
use nimbus_runtime::workload::{HostInterface, Workload};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use test_programs::P2_PLUGINS;
use test_programs::servers::{Kind, Server};

const CALL_TIMEOUT: Duration = Duration::from_secs(2);

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

/// A workload of the plugins guest with `wasi:keyvalue` configured by `config`.
fn kv_workload(name: &str, host: &str, config: &[(&str, &str)]) -> Workload {
    let mut w = http_workload(name, P2_PLUGINS, host);
    w.spec.host_interfaces.push(HostInterface {
        namespace: "wasi".into(),
        package: "keyvalue".into(),
        interfaces: vec!["store".into(), "atomics".into(), "batch".into()],
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    });
    w
}

async fn call(t: &TestHost, host: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    request(
        t.addr,
        Some(host),
        method,
        path,
        Bytes::from(body.to_string()),
    )
    .await
}

/// The guest's view, end to end: every operation, then concurrent HTTP
/// clients incrementing one counter.
async fn through_the_guest(config: &[(&str, &str)]) {
    let t = TestHost::dynamic().await;
    t.host
        .start_workload(kv_workload("kv", "kv.test", config))
        .await
        .unwrap();
    let h = "kv.test";
    assert_eq!(
        call(&t, h, "GET", "/kv/get?bucket=app&key=a", "").await.0,
        404
    );
    assert_eq!(
        call(&t, h, "PUT", "/kv/set?bucket=app&key=a", "one")
            .await
            .0,
        204
    );
    assert_eq!(
        call(&t, h, "GET", "/kv/get?bucket=app&key=a", "").await,
        (200, "one".into())
    );
    assert_eq!(
        call(&t, h, "GET", "/kv/exists?bucket=app&key=a", "").await,
        (200, "true".into())
    );
    assert_eq!(
        call(&t, h, "PUT", "/kv/set-many?bucket=app", "b=two\nc=three\n")
            .await
            .0,
        204
    );
    assert_eq!(
        call(&t, h, "GET", "/kv/get-many?bucket=app&keys=a,b,zz", "").await,
        (200, "a=one\nb=two\nzz=<none>\n".into())
    );
    assert_eq!(
        call(&t, h, "GET", "/kv/list?bucket=app", "").await,
        (200, "a\nb\nc\n".into())
    );
    assert_eq!(
        call(&t, h, "DELETE", "/kv/delete-many?bucket=app&keys=b,c", "")
            .await
            .0,
        204
    );
    assert_eq!(
        call(&t, h, "DELETE", "/kv/delete?bucket=app&key=a", "")
            .await
            .0,
        204
    );
    assert_eq!(
        call(&t, h, "GET", "/kv/exists?bucket=app&key=a", "").await,
        (200, "false".into())
    );

    const CLIENTS: usize = 6;
    const EACH: usize = 15;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let addr = t.addr;
        tasks.push(tokio::spawn(async move {
            for _ in 0..EACH {
                let (status, body) = request(
                    addr,
                    Some("kv.test"),
                    "POST",
                    "/kv/incr?bucket=app&key=hits",
                    Bytes::new(),
                )
                .await;
                assert_eq!(status, 200, "{body}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        call(&t, h, "GET", "/kv/get?bucket=app&key=hits", "").await,
        (200, (CLIENTS * EACH).to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guest_on_memory() {
    through_the_guest(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guest_on_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    through_the_guest(&[("backend", "filesystem"), ("path", path.to_str().unwrap())]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guest_on_redis() {
    let Some(redis) = Server::start(Kind::Redis) else {
        return;
    };
    through_the_guest(&[("backend", "redis"), ("url", &redis.url())]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guest_on_nats() {
    let Some(nats) = Server::start(Kind::Nats) else {
        return;
    };
    through_the_guest(&[("backend", "nats"), ("url", &nats.url())]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_bucket_and_prefix_map_to_backend_namespaces() {
    let t = TestHost::dynamic().await;
    // Two workloads on one filesystem store: one maps its default bucket to
    // `shared`, the other prefixes its buckets.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    let path = path.to_str().unwrap();
    t.host
        .start_workload(kv_workload(
            "one",
            "one.test",
            &[("path", path), ("bucket", "shared")],
        ))
        .await
        .unwrap();
    t.host
        .start_workload(kv_workload(
            "two",
            "two.test",
            &[("path", path), ("prefix", "sh")],
        ))
        .await
        .unwrap();
    assert_eq!(
        call(&t, "one.test", "PUT", "/kv/set?bucket=default&key=k", "v")
            .await
            .0,
        204
    );
    // `two` opening `ared` reaches `sh` + `ared` = `shared`.
    assert_eq!(
        call(&t, "two.test", "GET", "/kv/get?bucket=ared&key=k", "").await,
        (200, "v".into())
    );
    assert_eq!(
        call(&t, "two.test", "GET", "/kv/get?bucket=default&key=k", "")
            .await
            .0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_backend_setting_fails_the_start_naming_it() {
    let t = TestHost::dynamic().await;
    let err = t
        .host
        .start_workload(kv_workload("bad", "bad.test", &[("backend", "etcd")]))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown key-value backend `etcd`"),
        "{err}"
    );
}

/// Stops the server mid-run: the guest gets an error value within the
/// timeout while another route keeps serving, then works again once the
/// server is back.
async fn outage(server: &mut Server, backend: &str) {
    let t = TestHost::dynamic().await;
    t.host
        .start_workload(kv_workload(
            "kv",
            "kv.test",
            &[
                ("backend", backend),
                ("url", &server.url()),
                ("timeout_ms", "1000"),
            ],
        ))
        .await
        .unwrap();
    let h = "kv.test";
    assert_eq!(
        call(&t, h, "POST", "/kv/incr?bucket=app&key=n", "").await,
        (200, "1".into())
    );

    server.stop();
    let (status, body) = call(&t, h, "POST", "/kv/incr?bucket=app&key=n", "").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("Other("), "{body}");
    // The host and the rest of the workload are fine.
    assert_eq!(call(&t, h, "POST", "/log", "still here").await.0, 204);

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = call(&t, h, "POST", "/kv/incr?bucket=app&key=n", "").await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery after the server came back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_outage_gives_errors_then_recovers() {
    let Some(mut redis) = Server::start(Kind::Redis) else {
        return;
    };
    outage(&mut redis, "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_outage_gives_errors_then_recovers() {
    let Some(mut nats) = Server::start(Kind::Nats) else {
        return;
    };
    outage(&mut nats, "nats").await;
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
            "keyvalue::filesystem_store_survives_kill_9_without_losing_acknowledged_writes",
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
