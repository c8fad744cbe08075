//! End-to-end tests of the runtime over real TCP: routing, P2 and P3
//! serving, limits, outbound policy, lifecycle and HTTP/2.

use crate::common;

use bytes::Bytes;
use common::*;
use nimbus_host::http::DevRouter;
use nimbus_host::{HostConfig, WorkloadError};
use std::sync::Arc;
use std::time::Duration;
use test_programs::{P2_BEHAVIORS, P2_HELLO, P3_HELLO, P3_LEAN};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn p2_and_p3_hello_route_by_host() {
    let t = TestHost::dynamic().await;
    t.host
        .start_workload(http_workload("p2", P2_HELLO, "p2.test"))
        .await
        .unwrap();
    let status = t
        .host
        .start_workload(http_workload("p3", P3_HELLO, "p3.test"))
        .await
        .unwrap();
    assert_eq!(
        status.components[0].http,
        Some(nimbus_host::workload::HttpKind::P3)
    );

    assert_eq!(t.get("p2.test", "/").await, (200, "hello from p2\n".into()));
    assert_eq!(
        t.get("p3.test:8080", "/").await,
        (200, "hello from p3\n".into()),
        "port is stripped"
    );
    assert_eq!(
        t.get("P2.TEST", "/x").await.0,
        200,
        "host match is case-insensitive"
    );
    // P3 instances are reused: many requests, all answered.
    for _ in 0..20 {
        assert_eq!(t.get("p3.test", "/").await.0, 200);
    }
}

/// The comparison harness's lean P3 hello answers like the P3 hello, from
/// reused instances (what `bench/compare.sh` measures as `p3lean`).
#[tokio::test]
pub(crate) async fn the_lean_p3_hello_answers_from_reused_instances() {
    let t = accounting_host().await;
    t.host
        .start_workload(http_workload("lean", P3_LEAN, "lean.test"))
        .await
        .unwrap();
    for _ in 0..20 {
        assert_eq!(
            t.get("lean.test", "/any/path?q=1").await,
            (200, "hello from p3\n".into())
        );
    }
    let metrics = t.host.metrics().encode();
    let reuses: f64 = metrics
        .lines()
        .find(|l| l.starts_with("nimbus_instance_reuses_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(reuses >= 15.0, "{metrics}");
}

#[tokio::test]
async fn unknown_host_is_404_and_missing_host_is_400() {
    let t = TestHost::dynamic().await;
    t.host
        .start_workload(http_workload("p2", P2_HELLO, "p2.test"))
        .await
        .unwrap();
    let (status, body) = t.get("nobody.test", "/").await;
    assert_eq!(status, 404);
    assert!(body.contains("nobody.test"), "{body}");
    let (status, body) = request(t.addr, None, "GET", "/", Bytes::new()).await;
    assert_eq!(status, 400);
    assert!(body.contains("Host"), "{body}");
}

#[tokio::test]
async fn host_aliases_route_and_conflicts_are_refused() {
    let t = TestHost::dynamic().await;
    let mut w = http_workload("p2", P2_HELLO, "main.test");
    w.spec.host_interfaces[0].config.insert(
        "host-aliases".into(),
        "alias-one.test, alias-two.test".into(),
    );
    t.host.start_workload(w).await.unwrap();
    assert_eq!(t.get("alias-two.test", "/").await.0, 200);
    let err = t
        .host
        .start_workload(http_workload("other", P2_HELLO, "alias-one.test"))
        .await
        .unwrap_err();
    assert!(matches!(err, WorkloadError::Route(_)), "{err}");
    assert!(err.to_string().contains("alias-one.test"), "{err}");
}

#[tokio::test]
async fn http2_prior_knowledge_works() {
    let t = TestHost::dynamic().await;
    t.host
        .start_workload(http_workload("p2", P2_HELLO, "h2.test"))
        .await
        .unwrap();
    assert_eq!(
        request_h2(t.addr, "h2.test", "/").await,
        (200, "hello from p2\n".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_stops_an_infinite_loop_while_others_keep_answering() {
    let t = TestHost::dynamic().await;
    let mut looping = http_workload("loop", P2_BEHAVIORS, "loop.test");
    resources(&mut looping).timeout_ms = Some(1500);
    t.host.start_workload(looping).await.unwrap();
    let mut looping_p3 = http_workload("loop3", P3_HELLO, "loop3.test");
    resources(&mut looping_p3).timeout_ms = Some(1500);
    t.host.start_workload(looping_p3).await.unwrap();
    t.host
        .start_workload(http_workload("hello", P2_HELLO, "hello.test"))
        .await
        .unwrap();

    let addr = t.addr;
    let spinning = spawn_get(addr, "loop.test", "/loop");
    let spinning_p3 = spawn_get(addr, "loop3.test", "/loop");
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        assert_eq!(
            t.get("hello.test", "/").await.0,
            200,
            "other workloads answer while a guest spins"
        );
    }
    let (status, body) = spinning.await.unwrap();
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("deadline"), "{body}");
    let (status, body) = spinning_p3.await.unwrap();
    assert_eq!(status, 504, "{body}");
    // The discarded instance does not poison the workload.
    assert_eq!(t.get("loop.test", "/ok").await, (200, "ok\n".into()));
    assert_eq!(t.get("loop3.test", "/").await.0, 200);
}

/// A P3 instance serves several requests at once, each under its own
/// deadline: the one past it gets 504 while the same instance goes on
/// answering the one it took on later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p3_request_past_its_deadline_gets_504_while_its_instance_answers_a_newer_one() {
    let t = accounting_host().await;
    let mut w = http_workload("waits", P3_HELLO, "waits.test");
    resources(&mut w).timeout_ms = Some(6_000);
    t.host.start_workload(w).await.unwrap();
    let addr = t.addr;
    // Deadline at 6 s; it would wait 20.
    let overdue = spawn_get(addr, "waits.test", "/sleep?ms=20000");
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    // Started about 3 s later: answers at about 7 s, after the first
    // one's deadline and well before its own (9 s).
    let (status, body) = request(
        addr,
        Some("waits.test"),
        "GET",
        "/sleep?ms=4000",
        Bytes::new(),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "slept 4000\n"));
    let (status, body) = overdue.await.unwrap();
    assert_eq!(status, 504, "{body}");
    let metrics = crate::accounting::scrape(&t.host.metrics().encode());
    assert_eq!(
        crate::accounting::sample(
            &metrics,
            "nimbus_instances_created_total",
            &[("workload", "waits")]
        ),
        Some(1.0),
        "both requests were served by one instance"
    );
    assert_eq!(t.get("waits.test", "/").await.0, 200);
}

#[tokio::test]
async fn a_memory_limit_under_the_components_initial_memory_is_refused_at_start() {
    let t = TestHost::dynamic().await;
    let mut w = http_workload("tiny", P2_HELLO, "tiny.test");
    resources(&mut w).memory_limit_mb = Some(1);
    let error = t.host.start_workload(w).await.unwrap_err().to_string();
    assert!(
        error.contains("component `tiny` memoryLimitMb")
            && error.contains("over the limit of 1024 KiB"),
        "{error}"
    );
}

#[tokio::test]
async fn memory_bomb_is_stopped_at_the_limit() {
    let t = TestHost::dynamic().await;
    let mut w = http_workload("mem", P2_BEHAVIORS, "mem.test");
    resources(&mut w).memory_limit_mb = Some(32);
    t.host.start_workload(w).await.unwrap();
    assert_eq!(
        t.get("mem.test", "/grow?mb=4").await,
        (200, "grew 4\n".into())
    );
    let (status, _) = t.get("mem.test", "/grow?mb=64").await;
    assert_eq!(status, 500, "growing past 32 MiB fails");
    assert_eq!(
        t.get("mem.test", "/ok").await.0,
        200,
        "host and workload live on"
    );
}

#[tokio::test]
async fn a_trap_is_500_and_the_next_request_succeeds() {
    let t = TestHost::dynamic().await;
    t.host
        .start_workload(http_workload("trap", P2_BEHAVIORS, "trap.test"))
        .await
        .unwrap();
    let (status, body) = t.get("trap.test", "/trap").await;
    assert_eq!(status, 500);
    assert!(body.contains("failed"), "{body}");
    assert_eq!(t.get("trap.test", "/ok").await, (200, "ok\n".into()));
}

#[tokio::test]
async fn outbound_is_deny_all_and_private_addresses_need_an_exact_entry() {
    let upstream = upstream().await;
    let port = upstream.port();
    let t = TestHost::dynamic().await;

    let mut exact = http_workload("exact", P2_BEHAVIORS, "exact.test");
    resources(&mut exact).allowed_hosts = vec![format!("127.0.0.1:{port}")];
    t.host.start_workload(exact).await.unwrap();
    let mut wildcard = http_workload("wild", P2_BEHAVIORS, "wild.test");
    resources(&mut wildcard).allowed_hosts = vec!["*".into()];
    t.host.start_workload(wildcard).await.unwrap();
    t.host
        .start_workload(http_workload("none", P2_BEHAVIORS, "none.test"))
        .await
        .unwrap();

    let (status, body) = t
        .get(
            "exact.test",
            &format!("/fetch?url=http://127.0.0.1:{port}/"),
        )
        .await;
    assert_eq!((status, body.as_str()), (200, "status: 200\nupstream ok"));

    let (status, body) = t
        .get("none.test", &format!("/fetch?url=http://127.0.0.1:{port}/"))
        .await;
    assert_eq!(status, 502);
    assert!(body.contains("HttpRequestDenied"), "{body}");

    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        let (status, body) = t.get("wild.test", &format!("/fetch?url={url}")).await;
        assert_eq!(status, 502, "{url}: {body}");
        assert!(body.contains("DestinationIpProhibited"), "{url}: {body}");
    }

    let (status, body) = t
        .get(
            "exact.test",
            &format!("/fetch?url=http://127.0.0.1:{}/", port.wrapping_add(1)),
        )
        .await;
    assert_eq!(status, 502, "another port is not allowed");
    assert!(body.contains("HttpRequestDenied"), "{body}");
}

/// A server that answers as soon as it has a request's head, then closes
/// the connection without reading the body (as hyper does when the body is
/// not yet in its buffer).
async fn answers_before_the_body() -> std::net::SocketAddr {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if read_request_head(&mut stream).await.is_none() {
                    return;
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_request_body_written_after_the_server_answered_and_closed_is_taken() {
    let server = answers_before_the_body().await;
    let t = TestHost::dynamic().await;
    let mut workload = http_workload("late", P2_BEHAVIORS, "late.test");
    resources(&mut workload).allowed_hosts = vec![server.to_string()];
    t.host.start_workload(workload).await.unwrap();
    let (status, body) = t
        .get("late.test", &format!("/post-late?addr={server}&ms=300"))
        .await;
    assert_eq!(
        (status, body.as_str()),
        (200, "write: ok, finish: ok, response: 200\n"),
        "the guest's late write must not fail because the server answered first"
    );
}

#[tokio::test]
async fn same_bytes_compile_once_and_the_disk_cache_survives_restart() {
    let cache = tempfile::tempdir().unwrap();
    let config = || HostConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..HostConfig::default()
    };
    {
        let t =
            TestHost::start_with(config(), Arc::new(nimbus_host::http::DynamicRouter::new())).await;
        t.host
            .start_workload(http_workload("a", P2_HELLO, "a.test"))
            .await
            .unwrap();
        t.host
            .start_workload(http_workload("b", P2_HELLO, "b.test"))
            .await
            .unwrap();
        assert_eq!(
            t.host.artifacts().compilations(),
            1,
            "two workloads, same bytes, one compilation"
        );
        assert_eq!(t.get("a.test", "/").await.0, 200);
        assert_eq!(t.get("b.test", "/").await.0, 200);
        let a = t.host.workload_status("test/a").unwrap();
        let b = t.host.workload_status("test/b").unwrap();
        assert_eq!(a.components[0].digest, b.components[0].digest);
    }
    let t = TestHost::start_with(config(), Arc::new(nimbus_host::http::DynamicRouter::new())).await;
    t.host
        .start_workload(http_workload("a", P2_HELLO, "a.test"))
        .await
        .unwrap();
    assert_eq!(
        t.host.artifacts().compilations(),
        0,
        "a restarted host does not recompile"
    );
    assert_eq!(t.host.artifacts().disk_hits(), 1);
    assert_eq!(t.get("a.test", "/").await.0, 200);
}

#[tokio::test]
async fn an_unchanged_component_file_is_read_once_and_a_rewritten_one_again() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.wasm");
    std::fs::copy(P2_HELLO, &file).unwrap();
    let path = file.to_str().unwrap();
    let t = TestHost::dynamic().await;
    let start = |name: &'static str| {
        t.host
            .start_workload(http_workload(name, path, &format!("{name}.test")))
    };
    // Just written: its times cannot yet tell a second write in the same
    // clock tick, so it is read every time.
    start("a").await.unwrap();
    start("b").await.unwrap();
    assert_eq!(
        t.host.artifacts().file_hits(),
        0,
        "a file written just now was trusted"
    );
    // Settled: read once more, then not again.
    tokio::time::sleep(nimbus_host::artifact::STAMP_SETTLE + Duration::from_millis(100)).await;
    start("c").await.unwrap();
    start("d").await.unwrap();
    start("e").await.unwrap();
    assert_eq!(
        t.host.artifacts().file_hits(),
        2,
        "the workloads after the first of a settled, unchanged file do not read it"
    );
    let p2_digest = t.host.workload_status("test/a").unwrap().components[0]
        .digest
        .clone();

    // Rewritten in place with other bytes: the next start reads it again.
    std::fs::write(&file, std::fs::read(P3_LEAN).unwrap()).unwrap();
    t.host
        .replace_workload(http_workload("a", path, "a.test"))
        .await
        .unwrap();
    assert_eq!(t.host.artifacts().file_hits(), 2);
    let a = t.host.workload_status("test/a").unwrap();
    assert_ne!(a.components[0].digest, p2_digest);
    assert_eq!(
        t.get("a.test", "/").await,
        (200, "hello from p3\n".to_string())
    );
    assert_eq!(t.get("b.test", "/").await.0, 200);

    // Garbage is refused, and never remembered as the file's content.
    std::fs::write(&file, b"\0asm garbage").unwrap();
    let refused = t
        .host
        .replace_workload(http_workload("b", path, "b.test"))
        .await;
    assert!(refused.is_err(), "{refused:?}");
    std::fs::copy(P3_LEAN, &file).unwrap();
    t.host
        .replace_workload(http_workload("b", path, "b.test"))
        .await
        .unwrap();
    assert_eq!(
        t.get("b.test", "/").await,
        (200, "hello from p3\n".to_string())
    );
}

#[tokio::test]
async fn start_is_idempotent_and_a_different_spec_needs_replace() {
    let t = TestHost::dynamic().await;
    let w = http_workload("idem", P2_HELLO, "idem.test");
    let first = t.host.start_workload(w.clone()).await.unwrap();
    let second = t.host.start_workload(w.clone()).await.unwrap();
    assert_eq!(first, second);
    let mut changed = w.clone();
    resources(&mut changed)
        .environment
        .config
        .insert("GREETING".into(), "changed".into());
    let err = t.host.start_workload(changed.clone()).await.unwrap_err();
    assert!(matches!(err, WorkloadError::Conflict(_)), "{err}");
    t.host.replace_workload(changed).await.unwrap();
    assert_eq!(t.get("idem.test", "/").await, (200, "changed\n".into()));
    let stopped = t.host.stop_workload("test/idem").await.unwrap();
    assert_eq!(stopped.state, nimbus_host::workload::WorkloadState::Stopped);
    assert_eq!(t.get("idem.test", "/").await.0, 404);
    assert!(matches!(
        t.host.stop_workload("test/idem").await,
        Err(WorkloadError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parked_workload_keeps_its_routes_and_its_next_requests_start_it() {
    let t = TestHost::dynamic().await;
    let w = http_workload("idle", P2_HELLO, "idle.test");
    t.host.start_workload(w).await.unwrap();
    assert_eq!(t.get("idle.test", "/").await.0, 200);
    let parked = t.host.park_workload("test/idle").await.unwrap();
    assert_eq!(parked.state, nimbus_host::workload::WorkloadState::Stopped);
    assert!(t.host.is_parked("test/idle"));
    assert!(t.host.workload_status("test/idle").is_none());
    // Requests arriving together: one start, every one answered.
    let answers = futures::future::join_all((0..8).map(|_| t.get("idle.test", "/"))).await;
    for answer in answers {
        assert_eq!(answer, (200, "hello from p2\n".to_string()));
    }
    assert!(!t.host.is_parked("test/idle"));
    assert!(t.host.workload_status("test/idle").is_some());
    // Stopping a parked workload unbinds its routes.
    t.host.park_workload("test/idle").await.unwrap();
    t.host.stop_workload("test/idle").await.unwrap_err();
    assert!(!t.host.is_parked("test/idle"));
    assert_eq!(t.get("idle.test", "/").await.0, 404);
    // A stop while a request's wake is starting it wins: the wake does not
    // bring it back (whichever comes first, it ends stopped, unrouted).
    for pause_ms in [0, 1, 2, 5] {
        let w = http_workload("idle", P2_HELLO, "idle.test");
        t.host.start_workload(w).await.unwrap();
        t.host.park_workload("test/idle").await.unwrap();
        assert_eq!(t.host.parked_workloads(), vec!["test/idle".to_string()]);
        let addr = t.addr;
        let woken = spawn_get(addr, "idle.test", "/");
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        let _ = t.host.stop_workload("test/idle").await;
        let (status, _) = woken.await.unwrap();
        assert!(status == 200 || status == 404 || status == 503, "{status}");
        assert!(
            t.host.workload_status("test/idle").is_none(),
            "after {pause_ms} ms"
        );
        assert!(t.host.parked_workloads().is_empty());
        assert_eq!(t.get("idle.test", "/").await.0, 404);
    }
    // Parking what does not run says so.
    assert!(matches!(
        t.host.park_workload("test/idle").await,
        Err(WorkloadError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replace_under_load_loses_no_request() {
    let t = TestHost::dynamic().await;
    let mut v1 = http_workload("swap", P2_HELLO, "swap.test");
    resources(&mut v1)
        .environment
        .config
        .insert("GREETING".into(), "v1".into());
    t.host.start_workload(v1.clone()).await.unwrap();
    let mut slow = http_workload("slow", P2_BEHAVIORS, "slow.test");
    t.host.start_workload(slow.clone()).await.unwrap();

    // An in-flight request on the old version of `slow` finishes on it.
    let addr = t.addr;
    let in_flight = spawn_get(addr, "slow.test", "/sleep?ms=800");

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seen.push(request(addr, Some("swap.test"), "GET", "/", Bytes::new()).await);
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut v2 = v1.clone();
    resources(&mut v2)
        .environment
        .config
        .insert("GREETING".into(), "v2".into());
    t.host.replace_workload(v2).await.unwrap();
    resources(&mut slow)
        .environment
        .config
        .insert("X".into(), "y".into());
    t.host.replace_workload(slow).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let mut total = 0;
    let mut saw_v2 = false;
    for client in clients {
        for (status, body) in client.await.unwrap() {
            total += 1;
            assert_eq!(status, 200, "no request fails during a replace: {body}");
            assert!(body == "v1\n" || body == "v2\n", "{body}");
            saw_v2 |= body == "v2\n";
        }
    }
    assert!(total > 8, "load actually ran ({total} requests)");
    assert!(saw_v2, "the new version took over");
    assert_eq!(t.get("swap.test", "/").await, (200, "v2\n".into()));
    assert_eq!(in_flight.await.unwrap(), (200, "slept 800\n".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn excess_concurrency_gets_503_without_queueing() {
    use crate::accounting::{sample, scrape};
    // Accounting on, for the in-flight gauge: it shows when both slow
    // requests hold their slots without taking one (a probe request would).
    let t = TestHost::start_with(
        HostConfig {
            cache_dir: Some(shared_cache_dir()),
            accounting: true,
            ..HostConfig::default()
        },
        Arc::new(nimbus_host::http::DynamicRouter::new()),
    )
    .await;
    let mut w = http_workload("busy", P2_BEHAVIORS, "busy.test");
    resources(&mut w).max_concurrent_requests = Some(2);
    t.host.start_workload(w).await.unwrap();
    let addr = t.addr;
    let slow: Vec<_> = (0..2)
        .map(|_| spawn_get(addr, "busy.test", "/sleep?ms=3000"))
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = scrape(&t.host.metrics().encode());
        let in_flight = sample(
            &metrics,
            "nimbus_requests_in_flight",
            &[("workload", "busy")],
        );
        if in_flight == Some(2.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the two slow requests were not both in flight within 10 s ({in_flight:?})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = t.get("busy.test", "/ok").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("concurrent"), "{body}");
    for s in slow {
        assert_eq!(s.await.unwrap().0, 200);
    }
    assert_eq!(t.get("busy.test", "/ok").await.0, 200, "capacity returns");
}

#[tokio::test]
async fn environment_is_only_what_the_workload_declares() {
    let t = TestHost::dynamic().await;
    let mut w = http_workload("env", P2_BEHAVIORS, "env.test");
    resources(&mut w)
        .environment
        .config
        .insert("COLOR".into(), "blue".into());
    t.host.start_workload(w).await.unwrap();
    assert_eq!(
        t.get("env.test", "/env?name=COLOR").await,
        (200, "blue".into())
    );
    assert!(std::env::var("PATH").is_ok());
    assert_eq!(
        t.get("env.test", "/env?name=PATH").await,
        (404, "unset\n".into()),
        "host environment does not leak"
    );
}

#[tokio::test]
async fn volumes_are_read_only_unless_declared_writable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "from the host").unwrap();
    let t = TestHost::dynamic().await;
    let with_mount = |name: &str, read_only: Option<bool>| {
        let mut w = http_workload(name, P2_BEHAVIORS, &format!("{name}.test"));
        mount_dir(&mut w, dir.path(), "/data", read_only);
        w
    };
    t.host.start_workload(with_mount("ro", None)).await.unwrap();
    t.host
        .start_workload(with_mount("rw", Some(false)))
        .await
        .unwrap();

    assert_eq!(
        t.get("ro.test", "/read?path=/data/hello.txt").await,
        (200, "from the host".into())
    );
    let (status, body) = request(
        t.addr,
        Some("ro.test"),
        "POST",
        "/write?path=/data/new.txt",
        Bytes::from_static(b"x"),
    )
    .await;
    assert_eq!(status, 500, "read-only by default: {body}");
    assert!(!dir.path().join("new.txt").exists());

    let (status, body) = request(
        t.addr,
        Some("rw.test"),
        "POST",
        "/write?path=/data/new.txt",
        Bytes::from_static(b"written by guest"),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "written\n"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("new.txt")).unwrap(),
        "written by guest"
    );

    let (status, _) = t.get("ro.test", "/read?path=/etc/hostname").await;
    assert_eq!(status, 500, "nothing outside the mounts is visible");
}

#[tokio::test]
pub(crate) async fn sockets_are_denied_unless_the_workload_allows_them() {
    let upstream = upstream().await;
    let t = TestHost::dynamic().await;
    t.host
        .start_workload(http_workload("nosock", P2_BEHAVIORS, "nosock.test"))
        .await
        .unwrap();
    let mut allowed = http_workload("sock", P2_BEHAVIORS, "sock.test");
    grant_tcp_sockets(&mut allowed);
    // The upstream is on loopback: the address filter wants it named.
    resources(&mut allowed).allowed_hosts = vec!["127.0.0.1".into()];
    t.host.start_workload(allowed).await.unwrap();
    let path = format!("/tcp?addr={upstream}");
    let (status, body) = t.get("nosock.test", &path).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(t.get("sock.test", &path).await, (200, "connected\n".into()));
}

#[tokio::test]
pub(crate) async fn dev_router_sends_everything_to_the_newest_workload() {
    let t = TestHost::start(Arc::new(DevRouter::new())).await;
    let (status, _) = t.get("any.test", "/").await;
    assert_eq!(status, 503, "nothing running yet");
    t.host
        .start_workload(http_workload("first", P2_HELLO, "ignored"))
        .await
        .unwrap();
    assert_eq!(
        t.get("whatever", "/").await,
        (200, "hello from p2\n".into())
    );
    t.host
        .start_workload(http_workload("second", P3_HELLO, "ignored"))
        .await
        .unwrap();
    assert_eq!(
        t.get("whatever", "/").await,
        (200, "hello from p3\n".into())
    );
    t.host.stop_workload("test/second").await.unwrap();
    assert_eq!(
        t.get("whatever", "/").await,
        (200, "hello from p2\n".into()),
        "falls back to the previous workload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests() {
    let host = nimbus_host::Host::new(
        HostConfig {
            cache_dir: Some(shared_cache_dir()),
            ..HostConfig::default()
        },
        Arc::new(nimbus_host::http::DynamicRouter::new()),
    )
    .unwrap();
    host.start_workload(http_workload("drain", P2_BEHAVIORS, "drain.test"))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(nimbus_host::http::serve(
        listener,
        host,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(20),
    ));
    // The request gets a second to arrive (a loaded machine is slow), and
    // is still running when the stop comes.
    let in_flight = spawn_get(addr, "drain.test", "/sleep?ms=3000");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.send(()).unwrap();
    assert_eq!(
        in_flight.await.unwrap(),
        (200, "slept 3000\n".into()),
        "the in-flight request finished"
    );
    let drained = tokio::time::timeout(TIMEOUT, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(drained, "serve reports a complete drain");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn manifest_files_resolve_images_and_volumes_relative_to_themselves() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/msg.txt"), "relative volume").unwrap();
    std::fs::copy(P2_BEHAVIORS, dir.path().join("app.wasm")).unwrap();
    let manifest = dir.path().join("workload.yaml");
    std::fs::write(
        &manifest,
        r#"apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: Workload
metadata: { name: rel }
spec:
  components:
    - name: app
      image: file://./app.wasm
      localResources:
        volumeMounts: [{ name: data, mountPath: /data }]
  volumes:
    - name: data
      hostPath: { path: ./data }
  hostInterfaces:
    - { namespace: wasi, package: http, interfaces: [incoming-handler], config: { host: rel.test } }
"#,
    )
    .unwrap();
    let docs = nimbus_host::workload::load_manifest_file(&manifest)
        .unwrap()
        .documents;
    let t = TestHost::dynamic().await;
    t.host
        .start_workload(docs[0].workload.clone())
        .await
        .unwrap();
    assert_eq!(
        t.get("rel.test", "/read?path=/data/msg.txt").await,
        (200, "relative volume".into())
    );
}
