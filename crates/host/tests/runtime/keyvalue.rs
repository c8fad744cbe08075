//! `wasi:keyvalue` end to end through a guest on every backend (real
//! servers on loopback), and fault tests (backend down → guest error, other
//! routes keep serving, recovery). The backend conformance suite lives with
//! the capability (`crates/capabilities/keyvalue/tests`).

use crate::common;

use bytes::Bytes;
use common::*;
use nimbus_host::workload::{HostInterface, Workload};
use std::time::{Duration, Instant};
use test_programs::P2_PLUGINS;
use test_programs::servers::{Kind, Server};

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
