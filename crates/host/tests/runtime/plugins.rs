//! The other host plugins end to end: `wasmcloud:messaging` on the memory
//! broker and on NATS (request/reply, queue groups across two workloads,
//! pub/sub fan-out, a trapping handler), `wasi:logging` into the host's
//! tracing with workload and component ids, and `wasmcloud:secrets` serving
//! exactly the granted secrets without ever logging them.

use crate::common;

use bytes::Bytes;
use common::*;
use futures::StreamExt;
use nimbus_host::secret::Secret;
use nimbus_host::workload::{ComponentSpec, HostInterface, NamedSources, SourceRef, Workload};
use std::time::Duration;
use test_programs::servers::{Kind, Server};
use test_programs::{P2_MSG_HANDLER, P2_PLUGINS, P3_SECRETS};

fn messaging_interface(config: &[(&str, &str)]) -> HostInterface {
    HostInterface {
        namespace: "wasmcloud".into(),
        package: "messaging".into(),
        interfaces: vec!["consumer".into(), "handler".into()],
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// A handler-only workload (no HTTP) answering as `name`.
fn handler_workload(
    name: &str,
    broker: &[(&str, &str)],
    subscription: &[(&str, &str)],
) -> Workload {
    let mut config: Vec<(&str, &str)> = broker.to_vec();
    config.extend_from_slice(subscription);
    let mut component = ComponentSpec {
        name: name.into(),
        image: format!("file://{P2_MSG_HANDLER}"),
        ..Default::default()
    };
    component
        .local_resources
        .config
        .insert("name".into(), name.into());
    Workload {
        namespace: "test".into(),
        name: name.into(),
        spec: nimbus_host::workload::WorkloadSpec {
            components: vec![component],
            host_interfaces: vec![messaging_interface(&config)],
            ..Default::default()
        },
    }
}

/// The plugins guest as an HTTP client of the broker.
fn client_workload(broker: &[(&str, &str)]) -> Workload {
    let mut w = http_workload("client", P2_PLUGINS, "client.test");
    w.spec.host_interfaces.push(messaging_interface(broker));
    w
}

async fn ask(t: &TestHost, subject: &str, body: &str, timeout_ms: u32) -> (u16, String) {
    request(
        t.addr,
        Some("client.test"),
        "POST",
        &format!("/msg/request?subject={subject}&timeout_ms={timeout_ms}"),
        Bytes::from(body.to_string()),
    )
    .await
}

/// Request/reply, a trapping handler that does not end the subscription,
/// and a queue group sharing requests across two workloads.
async fn messaging_suite(broker: &[(&str, &str)]) {
    let t = TestHost::dynamic().await;
    t.host
        .start_workload(client_workload(broker))
        .await
        .unwrap();
    t.host
        .start_workload(handler_workload(
            "echo",
            broker,
            &[("subscriptions", "echo.req")],
        ))
        .await
        .unwrap();

    // Subscriptions start asynchronously: wait for the first answer.
    let mut answer = (0, String::new());
    for _ in 0..100 {
        answer = ask(&t, "echo.req", "hi", 500).await;
        if answer.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer, (200, "echo: hi".into()));

    // A trap gets no reply (the requester times out) but the next message
    // is handled.
    let (status, _) = ask(&t, "echo.req", "trap", 300).await;
    assert_eq!(status, 500);
    assert_eq!(
        ask(&t, "echo.req", "again", 2000).await,
        (200, "echo: again".into())
    );
    // A handler error is logged; the subscription goes on.
    assert_eq!(ask(&t, "echo.req", "fail", 300).await.0, 500);
    assert_eq!(
        ask(&t, "echo.req", "more", 2000).await,
        (200, "echo: more".into())
    );

    // Queue group: each request goes to one member; both members work.
    for name in ["worker-a", "worker-b"] {
        t.host
            .start_workload(handler_workload(
                name,
                broker,
                &[("subscriptions", "jobs"), ("queue_group", "workers")],
            ))
            .await
            .unwrap();
    }
    let mut by_worker = std::collections::BTreeMap::<String, usize>::new();
    let mut answered = 0;
    for i in 0..40 {
        let (status, body) = ask(&t, "jobs", &format!("job{i}"), 2000).await;
        if status != 200 {
            // Until both members have subscribed a request may find none.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        answered += 1;
        let (worker, payload) = body.split_once(": ").unwrap();
        assert_eq!(payload, format!("job{i}"));
        *by_worker.entry(worker.to_string()).or_default() += 1;
    }
    assert!(answered >= 30, "only {answered} of 40 jobs answered");
    assert_eq!(
        by_worker.keys().cloned().collect::<Vec<_>>(),
        ["worker-a", "worker-b"],
        "{by_worker:?}"
    );

    // No responders / invalid subject are error values, not hangs.
    assert_eq!(ask(&t, "nobody.home", "x", 300).await.0, 500);
    let (status, body) = request(
        t.addr,
        Some("client.test"),
        "POST",
        "/msg/publish?subject=bad..subject",
        Bytes::new(),
    )
    .await;
    assert_eq!(status, 500, "{body}");
}

/// wasmCloud's distributed-workloads template: one workload, two workers,
/// each subscribing through its own `localResources.config`; the workload
/// declares no subscriptions of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_component_subscriptions_route_each_subject_to_its_component() {
    let t = TestHost::dynamic().await;
    t.host.start_workload(client_workload(&[])).await.unwrap();
    let worker = |name: &str, subject: &str| {
        let mut component = ComponentSpec {
            name: name.into(),
            image: format!("file://{P2_MSG_HANDLER}"),
            ..Default::default()
        };
        let config = &mut component.local_resources.config;
        config.insert("name".into(), name.into());
        config.insert("subscriptions".into(), subject.into());
        component
    };
    let workers = Workload {
        namespace: "test".into(),
        name: "tasks".into(),
        spec: nimbus_host::workload::WorkloadSpec {
            components: vec![
                worker("task-leet", "tasks.leet"),
                worker("task-reverse", "tasks.reverse"),
            ],
            ..Default::default()
        },
    };
    t.host.start_workload(workers).await.unwrap();
    for (subject, expected) in [
        ("tasks.leet", "task-leet: hi"),
        ("tasks.reverse", "task-reverse: hi"),
    ] {
        // Subscriptions start asynchronously: wait for the first answer.
        let mut answer = (0, String::new());
        for _ in 0..100 {
            answer = ask(&t, subject, "hi", 500).await;
            if answer.0 == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(answer, (200, expected.to_string()), "{subject}");
    }
    // Each worker listens on its own subject only: a second request to
    // each still reaches the same one.
    for _ in 0..5 {
        assert_eq!(ask(&t, "tasks.leet", "x", 2000).await.1, "task-leet: x");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub(crate) async fn messaging_on_memory() {
    messaging_suite(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messaging_on_nats() {
    let Some(nats) = Server::start(Kind::Nats) else {
        return;
    };
    messaging_suite(&[("backend", "nats"), ("url", &nats.url())]).await;
}

/// NATS stops mid-run: a request gets an error value (no hang) while the
/// host keeps serving, and once the server is back the handler's
/// subscription answers again without restarting anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messaging_survives_a_nats_outage() {
    let Some(mut nats) = Server::start(Kind::Nats) else {
        return;
    };
    let url = nats.url();
    let broker = [
        ("backend", "nats"),
        ("url", url.as_str()),
        ("timeout_ms", "1000"),
    ];
    let t = TestHost::dynamic().await;
    t.host
        .start_workload(client_workload(&broker))
        .await
        .unwrap();
    t.host
        .start_workload(handler_workload(
            "echo",
            &broker,
            &[("subscriptions", "echo.req")],
        ))
        .await
        .unwrap();
    let answered = |t: &TestHost| {
        let addr = t.addr;
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let (status, body) = request(
                    addr,
                    Some("client.test"),
                    "POST",
                    "/msg/request?subject=echo.req&timeout_ms=500",
                    Bytes::from_static(b"hi"),
                )
                .await;
                if status == 200 {
                    return body;
                }
                assert!(tokio::time::Instant::now() < deadline, "no answer: {body}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(answered(&t).await, "echo: hi");

    nats.stop();
    let (status, body) = ask(&t, "echo.req", "down", 500).await;
    assert_eq!(status, 500, "{body}");
    // The host still serves: a publish fails as a value, not a hang.
    let (status, _) = request(
        t.addr,
        Some("client.test"),
        "POST",
        "/msg/publish?subject=x",
        Bytes::new(),
    )
    .await;
    assert_eq!(status, 500);

    nats.restart();
    assert_eq!(answered(&t).await, "echo: hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pub_sub_fans_out_to_every_plain_subscriber() {
    let Some(nats) = Server::start(Kind::Nats) else {
        return;
    };
    let url = nats.url();
    let broker = [("url", url.as_str())];
    let t = TestHost::dynamic().await;
    t.host
        .start_workload(client_workload(&broker))
        .await
        .unwrap();
    for name in ["left", "right"] {
        t.host
            .start_workload(handler_workload(
                name,
                &broker,
                &[("subscriptions", "events")],
            ))
            .await
            .unwrap();
    }
    let observer = async_nats::connect(url.as_str()).await.unwrap();
    let mut seen = subscribe_confirmed(&observer, "events.seen").await;
    // Both handlers must have subscribed: publish until both answered once.
    let mut names = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while names.len() < 2 {
        let (status, body) = request(
            t.addr,
            Some("client.test"),
            "POST",
            "/msg/publish?subject=events",
            Bytes::from_static(b"ping"),
        )
        .await;
        assert_eq!(status, 204, "{body}");
        while let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(300), seen.next()).await
        {
            let text = String::from_utf8_lossy(&message.payload).to_string();
            assert!(text.ends_with(": ping"), "{text}");
            names.insert(text.split(':').next().unwrap().to_string());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {names:?} got the event"
        );
    }
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["left", "right"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_without_subscriptions_or_with_a_bad_subject_is_reported() {
    let t = TestHost::dynamic().await;
    let err = t
        .host
        .start_workload(handler_workload("bad", &[], &[("subscriptions", "a..b")]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid subject `a..b`"), "{err}");
    let err = t
        .host
        .start_workload(handler_workload("bad2", &[("backend", "kafka")], &[]))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown messaging backend `kafka`"),
        "{err}"
    );
}

const SECRET: &str = "s3cr3t-never-logged";

#[tokio::test(flavor = "current_thread")]
pub(crate) async fn logging_reaches_tracing_and_secrets_are_served_but_never_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let t = TestHost::dynamic().await;
    t.host.set_sources(NamedSources {
        secrets: [(
            "db".to_string(),
            [("DB_PASSWORD".to_string(), Secret::new(SECRET))].into(),
        )]
        .into(),
        ..Default::default()
    });
    let mut w = http_workload("plug", P2_PLUGINS, "plug.test");
    w.spec.host_interfaces.push(HostInterface {
        namespace: "wasmcloud".into(),
        package: "secrets".into(),
        interfaces: vec!["store".into(), "reveal".into()],
        secret_from: vec![SourceRef { name: "db".into() }],
        ..Default::default()
    });
    t.host.start_workload(w).await.unwrap();

    let (status, _) = request(
        t.addr,
        Some("plug.test"),
        "POST",
        "/log?level=warn",
        Bytes::from_static(b"disk almost full"),
    )
    .await;
    assert_eq!(status, 204);
    let logs = captured.text();
    let line = logs
        .lines()
        .find(|l| l.contains("disk almost full"))
        .unwrap_or_else(|| panic!("guest log line missing from:\n{logs}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("guest"), "{line}");
    assert!(
        line.contains("workload=\"test/plug\"") || line.contains("workload=test/plug"),
        "{line}"
    );
    assert!(
        line.contains("component=\"plug\"") || line.contains("component=plug"),
        "{line}"
    );
    assert!(line.contains("p2-plugins"), "{line}");

    assert_eq!(
        t.get("plug.test", "/secret?key=DB_PASSWORD").await,
        (200, SECRET.to_string())
    );
    assert_eq!(t.get("plug.test", "/secret?key=OTHER").await.0, 404);
    assert!(
        !captured.text().contains(SECRET),
        "a secret value reached the logs"
    );
}

/// `wasmcloud:secrets@2.1.0`, whose calls are `async` functions, from a P3
/// guest: the same grant as 0.1.0-draft, and values never logged.
#[tokio::test(flavor = "current_thread")]
pub(crate) async fn secrets_2_1_serve_a_p3_guest_through_async_calls() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let t = TestHost::dynamic().await;
    t.host.set_sources(NamedSources {
        secrets: [(
            "db".to_string(),
            [("DB_PASSWORD".to_string(), Secret::new(SECRET))].into(),
        )]
        .into(),
        ..Default::default()
    });
    let mut w = http_workload("sec2", P3_SECRETS, "sec2.test");
    w.spec.host_interfaces.push(HostInterface {
        namespace: "wasmcloud".into(),
        package: "secrets".into(),
        interfaces: vec!["store".into(), "reveal".into()],
        secret_from: vec![SourceRef { name: "db".into() }],
        ..Default::default()
    });
    t.host.start_workload(w).await.unwrap();
    assert_eq!(
        t.get("sec2.test", "/secret?key=DB_PASSWORD").await,
        (200, SECRET.to_string())
    );
    assert_eq!(
        t.get("sec2.test", "/secret?key=OTHER").await,
        (404, "not found".to_string())
    );
    assert!(
        !captured.text().contains(SECRET),
        "a secret value reached the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_source_fails_the_start_naming_it() {
    let t = TestHost::dynamic().await;
    let mut w = http_workload("nosrc", P2_PLUGINS, "nosrc.test");
    w.spec.host_interfaces.push(HostInterface {
        namespace: "wasmcloud".into(),
        package: "secrets".into(),
        secret_from: vec![SourceRef {
            name: "vault".into(),
        }],
        ..Default::default()
    });
    let err = t.host.start_workload(w).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("secret source `vault` is not defined"),
        "{err}"
    );
}

mod blobstore {
    //! `wasi:blobstore` through a guest, including a 64 MiB object streamed
    //! by a component limited to 32 MiB of memory. The backend conformance
    //! suite lives with the capability (`crates/capabilities/blobstore/tests`).

    use super::*;

    fn blob_workload(config: &[(&str, &str)]) -> Workload {
        let mut w = http_workload("blobs", P2_PLUGINS, "blobs.test");
        // The guest may not hold a 64 MiB object: it has to stream.
        resources(&mut w).memory_limit_mb = Some(32);
        w.spec.host_interfaces.push(HostInterface {
            namespace: "wasi".into(),
            package: "blobstore".into(),
            interfaces: vec!["blobstore".into(), "container".into(), "types".into()],
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        });
        w
    }

    async fn call(t: &TestHost, method: &str, path: &str, body: &'static [u8]) -> (u16, String) {
        request(
            t.addr,
            Some("blobs.test"),
            method,
            path,
            Bytes::from_static(body),
        )
        .await
    }

    /// FNV-1a 64 of the guest's fill pattern.
    fn expected_check(size: u64) -> String {
        let mut hash = 0xcbf29ce484222325u64;
        for i in 0..size {
            hash = (hash ^ ((i * 31 + 7) % 251)).wrapping_mul(0x100000001b3);
        }
        format!("{size} {hash:016x}")
    }

    async fn through_the_guest(config: &[(&str, &str)]) {
        let t = TestHost::dynamic().await;
        t.host.start_workload(blob_workload(config)).await.unwrap();
        assert_eq!(
            call(&t, "POST", "/blob/create?container=docs", b"").await.0,
            201
        );
        assert_eq!(
            call(&t, "POST", "/blob/create?container=archive", b"")
                .await
                .0,
            201
        );
        assert_eq!(
            call(&t, "GET", "/blob/exists?container=docs", b"").await,
            (200, "true".into())
        );
        assert_eq!(
            call(
                &t,
                "PUT",
                "/blob/put?container=docs&name=a.txt",
                b"0123456789"
            )
            .await
            .0,
            204
        );
        assert_eq!(
            call(&t, "GET", "/blob/get?container=docs&name=a.txt", b"").await,
            (200, "0123456789".into())
        );
        // Inclusive range.
        assert_eq!(
            call(
                &t,
                "GET",
                "/blob/get?container=docs&name=a.txt&start=2&end=4",
                b""
            )
            .await,
            (200, "234".into())
        );
        assert_eq!(
            call(&t, "GET", "/blob/info?container=docs&name=a.txt", b"").await,
            (200, "docs a.txt 10".into())
        );
        assert_eq!(
            call(
                &t,
                "POST",
                "/blob/copy?container=docs&name=a.txt&to_container=archive&to=a-copy.txt",
                b""
            )
            .await
            .0,
            204
        );
        assert_eq!(
            call(
                &t,
                "POST",
                "/blob/move?container=docs&name=a.txt&to=b.txt",
                b""
            )
            .await
            .0,
            204
        );
        assert_eq!(
            call(&t, "PUT", "/blob/put?container=docs&name=c.txt", b"c")
                .await
                .0,
            204
        );
        assert_eq!(
            call(&t, "GET", "/blob/list?container=docs", b"").await,
            (200, "b.txt\nc.txt\n".into())
        );
        assert_eq!(
            call(
                &t,
                "GET",
                "/blob/get?container=archive&name=a-copy.txt",
                b""
            )
            .await,
            (200, "0123456789".into())
        );
        assert_eq!(
            call(&t, "GET", "/blob/has?container=docs&name=a.txt", b"").await,
            (200, "false".into())
        );
        assert_eq!(
            call(&t, "DELETE", "/blob/delete?container=docs&name=c.txt", b"")
                .await
                .0,
            204
        );
        assert_eq!(
            call(&t, "POST", "/blob/clear?container=docs", b"").await.0,
            204
        );
        assert_eq!(
            call(&t, "GET", "/blob/list?container=docs", b"").await,
            (200, String::new())
        );
        // Errors are values: missing objects, escaping names.
        let (status, body) = call(&t, "GET", "/blob/get?container=docs&name=nope", b"").await;
        assert_eq!(status, 500);
        assert!(body.contains("does not exist"), "{body}");
        let (status, body) = call(&t, "PUT", "/blob/put?container=docs&name=../escape", b"x").await;
        assert_eq!(status, 500);
        assert!(body.contains("invalid object name"), "{body}");

        // 64 MiB, written and read back in 64 KiB chunks by a 32 MiB guest.
        const SIZE: u64 = 64 * 1024 * 1024;
        let (status, body) = call(
            &t,
            "POST",
            &format!("/blob/fill?container=archive&name=big&size={SIZE}"),
            b"",
        )
        .await;
        assert_eq!(status, 204, "{body}");
        assert_eq!(
            call(&t, "GET", "/blob/info?container=archive&name=big", b"").await,
            (200, format!("archive big {SIZE}"))
        );
        assert_eq!(
            call(&t, "GET", "/blob/check?container=archive&name=big", b"").await,
            (200, expected_check(SIZE))
        );
        // Reading it whole as one list is refused before the host buffers it.
        let (status, body) = call(&t, "GET", "/blob/get?container=archive&name=big", b"").await;
        assert_eq!(status, 500);
        assert!(body.contains("incoming-value-consume-async"), "{body}");
        assert_eq!(
            call(&t, "DELETE", "/blob/drop?container=archive", b"")
                .await
                .0,
            204
        );
        assert_eq!(
            call(&t, "GET", "/blob/exists?container=archive", b"").await,
            (200, "false".into())
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn guest_on_memory() {
        through_the_guest(&[]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn guest_on_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        through_the_guest(&[("backend", "filesystem"), ("path", root.to_str().unwrap())]).await;
        // Nothing was written outside the root.
        let outside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(outside, ["root"]);
    }

    /// The object store's server stops: calls fail as values within the
    /// timeout, then work again (same container, same data) once it is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn nats_outage_gives_errors_then_recovers() {
        let Some(mut nats) = Server::start(Kind::Nats) else {
            return;
        };
        let url = nats.url();
        let t = TestHost::dynamic().await;
        t.host
            .start_workload(blob_workload(&[
                ("backend", "nats"),
                ("url", &url),
                ("timeout_ms", "1000"),
            ]))
            .await
            .unwrap();
        assert_eq!(
            call(&t, "POST", "/blob/create?container=keep", b"").await.0,
            201
        );
        assert_eq!(
            call(&t, "PUT", "/blob/put?container=keep&name=a", b"kept")
                .await
                .0,
            204
        );

        nats.stop();
        let (status, body) = call(&t, "GET", "/blob/get?container=keep&name=a", b"").await;
        assert_eq!(status, 500, "{body}");
        let (status, body) = call(&t, "PUT", "/blob/put?container=keep&name=b", b"x").await;
        assert_eq!(status, 500, "{body}");

        nats.restart();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let answer = call(&t, "GET", "/blob/get?container=keep&name=a", b"").await;
            if answer.0 == 200 {
                assert_eq!(answer.1, "kept");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no recovery after the server came back: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn guest_on_nats() {
        let Some(nats) = Server::start(Kind::Nats) else {
            return;
        };
        through_the_guest(&[("backend", "nats"), ("url", &nats.url())]).await;
    }
}
