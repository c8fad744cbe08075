//! Hostile inputs: manifests, guests and clients that try to take a host
//! down. Each test fails without the limit it checks. Resource figures are
//! asserted with generous bounds, from the host's own /proc, never timings;
//! waits are bounded only as hang guards.

use crate::common;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use nimbus_host::http::{DynamicRouter, IngressLimits};
use nimbus_host::outbound::OutboundLimits;
use nimbus_host::workload::LocalResources;
use nimbus_host::{HostConfig, WorkloadError};
use std::sync::Arc;
use std::time::Duration;
use test_programs::{P2_BEHAVIORS, P2_HELLO, P2_HOSTILE, P3_HOSTILE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn config() -> HostConfig {
    HostConfig {
        cache_dir: Some(shared_cache_dir()),
        ..HostConfig::default()
    }
}

async fn host_with(config: HostConfig) -> TestHost {
    TestHost::start_with(config, Arc::new(DynamicRouter::new())).await
}

/// A host whose connections get `first_request` for their first request
/// head and `idle` between requests, at most 100 at once.
async fn host_with_timeouts(first_request: Duration, idle: Duration) -> TestHost {
    host_with(HostConfig {
        ingress: IngressLimits {
            max_connections: 100,
            first_request_timeout: first_request,
            idle_timeout: idle,
        },
        ..config()
    })
    .await
}

/// A host writing the access log, and the log it writes.
async fn access_logged_host() -> (Captured, TestHost) {
    let logs = Captured::install_global();
    let host = host_with(HostConfig {
        access_log: true,
        ..config()
    })
    .await;
    (logs, host)
}

/// Starts `guest` on `t` as workload `name` at host `NAME.test`, its
/// local resources set by `configure`.
async fn serve(t: &TestHost, name: &str, guest: &str, configure: impl FnOnce(&mut LocalResources)) {
    let mut workload = http_workload(name, guest, &format!("{name}.test"));
    configure(resources(&mut workload));
    t.host.start_workload(workload).await.unwrap();
}

/// The host process's resident memory, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

/// Whether a metric line starting with `prefix` ends with `suffix` (a
/// component's series, whose labels the test does not spell out).
fn series_is(t: &TestHost, prefix: &str, suffix: &str) -> bool {
    t.host
        .metrics()
        .encode()
        .lines()
        .any(|l| l.starts_with(prefix) && l.ends_with(suffix))
}

/// Finding 1: a `file://` image is read bounded, regular files only, and a
/// failure for its content is one the cluster does not move around.
#[tokio::test]
async fn component_files_are_bounded_and_regular_files_only() {
    let mut config = config();
    config.registry.max_layer_bytes = 64 * 1024;
    let t = host_with(config).await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("image.wasm");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let big = dir.path().join("big.wasm");
    std::fs::write(&big, vec![0u8; 64 * 1024 + 1]).unwrap();
    assert!(std::fs::metadata(P2_HELLO).unwrap().len() > 64 * 1024);

    for (image, expected) in [
        (
            "/dev/zero".to_string(),
            "not a regular file (it is a character device)",
        ),
        (
            fifo.display().to_string(),
            "not a regular file (it is a FIFO)",
        ),
        (
            big.display().to_string(),
            "larger than the limit of 65536 bytes",
        ),
        (P2_HELLO.to_string(), "larger than the limit of 65536 bytes"),
    ] {
        let workload = http_workload("img", &image, "img.test");
        // A hang guard: /dev/zero read without a bound never ends, a FIFO
        // without a writer blocks forever.
        let error = tokio::time::timeout(TIMEOUT, t.host.start_workload(workload))
            .await
            .expect("the start did not hang")
            .unwrap_err();
        assert!(matches!(error, WorkloadError::Read { .. }), "{error}");
        assert!(error.to_string().contains(expected), "{image}: {error}");
        assert!(error.is_permanent(), "{image}: {error}");
    }
}

/// Finding 2: `wasi:http` `fields` created by a guest (host memory outside
/// its linear memory) are capped per instance; the host does not grow by
/// what the guest asks for.
#[tokio::test]
async fn header_fields_a_guest_creates_cannot_grow_the_host() {
    let t = host_with(config()).await;
    serve(&t, "fields", P2_HOSTILE, |r| r.memory_limit_mb = Some(16)).await;
    let (status, body) = t.get("fields.test", "/fields?kb=1&count=10").await;
    assert_eq!((status, body.as_str()), (200, "created 10\n"));

    let before = rss_bytes();
    // 30,000 fields of 100 KiB: 3 GB if the host kept them all.
    let (status, _) = t.get("fields.test", "/fields?kb=100&count=30000").await;
    let grown = rss_bytes().saturating_sub(before);
    assert_eq!(status, 500, "the guest is stopped when the host refuses");
    assert!(
        grown < 600 << 20,
        "the host grew by {} MiB for one guest's fields",
        grown >> 20
    );
    // The host still serves.
    let (status, body) = t.get("fields.test", "/fields?kb=1&count=1").await;
    assert_eq!((status, body.as_str()), (200, "created 1\n"));
}

/// A host-wide memory budget: growth past it fails in the guest, and an
/// instance that does not fit at all is refused with 503.
#[tokio::test]
async fn the_host_memory_budget_refuses_growth_and_new_instances() {
    let mut config = config();
    config.memory_budget_bytes = Some(48 << 20);
    let t = host_with(config).await;
    serve(&t, "grow", P2_BEHAVIORS, |r| r.memory_limit_mb = Some(512)).await;
    assert_eq!(t.get("grow.test", "/grow?mb=8").await.0, 200);
    let (status, _) = t.get("grow.test", "/grow?mb=64").await;
    assert_eq!(
        status, 500,
        "growth past the host budget fails in the guest"
    );
    assert!(t.host.memory_budget().refusals() >= 1);
    eventually("every instance gave its memory back", || {
        t.host.memory_budget().used() == 0
    })
    .await;
    assert_eq!(t.get("grow.test", "/grow?mb=8").await.0, 200);

    let mut tiny = config_with_budget(256 << 10);
    tiny.cache_dir = Some(shared_cache_dir());
    let t = host_with(tiny).await;
    serve(&t, "small", P2_BEHAVIORS, |_| {}).await;
    let (status, body) = t.get("small.test", "/ok").await;
    assert_eq!(status, 503, "{body}");
}

fn config_with_budget(bytes: u64) -> HostConfig {
    HostConfig {
        memory_budget_bytes: Some(bytes),
        ..config()
    }
}

/// An upstream that answers every request with headers and a body that
/// never ends, so each response keeps its connection open.
async fn endless_upstream() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nx\r\n")
                    .await;
                // Held until the client goes.
                let _ = stream.read(&mut buf).await;
            });
        }
    });
    addr
}

/// Finding 5: outgoing connections are capped per component and across
/// the host; the excess fails at once with `connection-limit-reached`.
#[tokio::test]
async fn outbound_connections_are_capped_per_component_and_per_host() {
    let upstream = endless_upstream().await;
    for (limits, expected) in [
        (
            OutboundLimits {
                per_component: 4,
                host: 100,
            },
            4,
        ),
        (
            OutboundLimits {
                per_component: 100,
                host: 3,
            },
            3,
        ),
    ] {
        let t = host_with(HostConfig {
            outbound: limits,
            ..config()
        })
        .await;
        serve(&t, "hold", P2_HOSTILE, |r| {
            r.allowed_hosts = vec![upstream.to_string()]
        })
        .await;
        let path = format!("/hold?count=20&url=http://{upstream}/");
        let (status, body) = t.get("hold.test", &path).await;
        assert_eq!(
            (status, body.as_str()),
            (
                200,
                format!("held {expected} error ErrorCode::ConnectionLimitReached\n").as_str()
            )
        );
        assert!(
            t.host
                .metrics()
                .encode()
                .contains("nimbus_limit_events_total{limit=\"outbound_connections\"}"),
            "the refusal is counted"
        );
        // The connections close with the instance that held them: the
        // slots come back (a hang guard bounds the wait).
        let freed = async {
            loop {
                let (_, body) = t
                    .get(
                        "hold.test",
                        &format!("/hold?count={expected}&url=http://{upstream}/"),
                    )
                    .await;
                if body == format!("held {expected} error none\n") {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(TIMEOUT, freed)
            .await
            .expect("outbound slots were given back");
    }
}

/// Request heads are bounded alike in HTTP/1.1 and HTTP/2: one a little
/// under the bound is served, one over it gets 431 (hyper alone would
/// buffer about 400 KiB per HTTP/1.1 connection, and refuse 16 KiB over
/// HTTP/2).
#[tokio::test]
async fn request_heads_are_bounded_alike_in_both_protocols() {
    use nimbus_host::http::MAX_REQUEST_HEAD_BYTES;
    let t = host_with(config()).await;
    serve(&t, "hello", P2_HELLO, |_| {}).await;
    let fits = "a".repeat(MAX_REQUEST_HEAD_BYTES / 2);
    let too_big = "a".repeat(MAX_REQUEST_HEAD_BYTES * 2);
    let http1 = |value: String| async move {
        exchange(
            t.addr,
            Some("hello.test"),
            "GET",
            "/",
            &[("x-filler", &value)],
            Bytes::new(),
        )
        .await
        .0
    };
    assert_eq!(http1(fits.clone()).await, 200);
    assert_eq!(http1(too_big).await, 431);

    let mut sender = h2_sender(t.addr).await;
    let request = http::Request::builder()
        .uri("http://hello.test/")
        .header("x-filler", fits)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(TIMEOUT, sender.send_request(request))
        .await
        .expect("an HTTP/2 answer in time")
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// The host process's open descriptors.
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Finding 5, raw sockets: a component that declares `wasi:sockets` holds
/// one slot of the same caps per real TCP socket, and gets
/// `new-socket-limit` past them; the host's descriptors stay bounded.
#[tokio::test]
pub(crate) async fn raw_tcp_sockets_count_against_the_outbound_caps() {
    let upstream = endless_upstream().await;
    let t = host_with(HostConfig {
        outbound: OutboundLimits {
            per_component: 5,
            host: 100,
        },
        ..config()
    })
    .await;
    let mut workload = http_workload("sockets", P2_HOSTILE, "sockets.test");
    grant_tcp_sockets(&mut workload);
    // The upstream is on loopback, which a socket reaches only when an
    // entry names it (`a_raw_socket_reaches_a_restricted_address_only_when_named`).
    resources(&mut workload).allowed_hosts = vec!["127.0.0.1".into()];
    t.host.start_workload(workload).await.unwrap();
    let before = open_descriptors();
    let path = format!("/sockets?count=1000&port={}", upstream.port());
    let (status, body) = t.get("sockets.test", &path).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "opened 5 error new-socket-limit\n")
    );
    assert!(
        open_descriptors() < before + 100,
        "the guest's sockets did not pile up as host descriptors"
    );
    assert!(series_is(
        &t,
        "nimbus_limit_events_total{limit=\"outbound_connections\"}",
        ""
    ));
    // The sockets close with the instance: the slots come back.
    let freed = async {
        loop {
            let (_, body) = t
                .get(
                    "sockets.test",
                    &format!("/sockets?count=5&port={}", upstream.port()),
                )
                .await;
            if body == "opened 5 error none\n" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(TIMEOUT, freed)
        .await
        .expect("socket slots were given back");
}

/// Raw sockets and the address filter: a component that declares
/// `wasi:sockets` cannot connect to a loopback (or private, link-local,
/// metadata) address unless an `allowedHosts` entry names that IP literal
/// or `localhost`; a host name in the list does not lift it.
#[tokio::test]
async fn a_raw_socket_reaches_a_restricted_address_only_when_named() {
    let upstream = endless_upstream().await;
    let t = host_with(config()).await;
    let path = format!("/sockets?count=1&port={}", upstream.port());
    for (name, allowed, answer) in [
        (
            "unnamed",
            vec![],
            "opened 0 error access-denied
",
        ),
        (
            "by-name",
            vec!["*".to_string(), "upstream.test".to_string()],
            "opened 0 error access-denied
",
        ),
        (
            "other-port",
            vec!["127.0.0.1:1".to_string()],
            "opened 0 error access-denied
",
        ),
        (
            "literal",
            vec!["127.0.0.1".to_string()],
            "opened 1 error none
",
        ),
        (
            "localhost",
            vec![format!("localhost:{}", upstream.port())],
            "opened 1 error none
",
        ),
    ] {
        let host = format!("{name}.test");
        let mut workload = http_workload(name, P2_HOSTILE, &host);
        grant_tcp_sockets(&mut workload);
        resources(&mut workload).allowed_hosts = allowed;
        t.host.start_workload(workload).await.unwrap();
        let (status, body) = t.get(&host, &path).await;
        assert_eq!((status, body.as_str()), (200, answer), "{name}");
    }
}

/// Reads a response over raw HTTP/1.1 until the server closes: the bytes.
async fn read_to_close(stream: &mut TcpStream, limit: usize) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => {
                all.extend_from_slice(&buf[..n]);
                if all.len() > limit {
                    // Keep only the tail: it is what says how it ended.
                    all.drain(..all.len() - 64);
                }
            }
        }
    }
}

/// Finding 6: a response cut by the deadline does not look complete: over
/// HTTP/1.1 the connection closes without the terminating chunk, over
/// HTTP/2 the stream is reset, and the access log says `complete=false`.
#[tokio::test]
async fn a_response_cut_by_the_deadline_is_visibly_incomplete() {
    cut_by_the_deadline(P2_HOSTILE).await;
}

/// Finding 6 through the P3 path: a body a spawned guest task writes after
/// `handle` returned is cut the same way.
#[tokio::test]
pub(crate) async fn a_p3_response_cut_by_the_deadline_is_visibly_incomplete() {
    cut_by_the_deadline(P3_HOSTILE).await;
}

async fn cut_by_the_deadline(guest: &str) {
    let (logs, t) = access_logged_host().await;
    serve(&t, "stream", guest, |r| r.timeout_ms = Some(300)).await;

    let mut stream = TcpStream::connect(t.addr).await.unwrap();
    stream
        .write_all(b"GET /stream?kb=4 HTTP/1.1\r\nhost: stream.test\r\n\r\n")
        .await
        .unwrap();
    let tail = tokio::time::timeout(TIMEOUT, read_to_close(&mut stream, 1 << 20))
        .await
        .expect("the deadline ended the stream");
    let text = String::from_utf8_lossy(&tail);
    assert!(text.contains('s'), "the body streamed: {text:?}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "a cut response must not end with the last chunk: {text:?}"
    );

    // HTTP/2: the body ends in an error (a reset), not a clean end.
    let mut sender = h2_sender(t.addr).await;
    let request = http::Request::builder()
        .uri("http://stream.test/stream?kb=4")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let ended = tokio::time::timeout(TIMEOUT, async {
        loop {
            match body.frame().await {
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            }
        }
    })
    .await
    .expect("the deadline ended the stream");
    assert!(ended.is_err(), "a cut HTTP/2 response must end in a reset");

    eventually("both requests were logged", || {
        logs.text().matches("path=/stream").count() >= 2
    })
    .await;
    for line in logs.text().lines().filter(|l| l.contains("path=/stream")) {
        assert!(line.contains("complete=false"), "{line}");
    }
}

/// Finding 11: a client that leaves stops the guest's work (long before
/// the deadline), and the access log records it as 499.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_cancels_the_guest_and_is_logged() {
    client_leaves(P2_HOSTILE).await;
}

/// The same through the P3 path, whose instances serve several requests:
/// the instance's only request was abandoned, so it is discarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p3_client_that_leaves_cancels_the_guest_and_is_logged() {
    client_leaves(P3_HOSTILE).await;
}

async fn client_leaves(guest: &str) {
    let (logs, t) = access_logged_host().await;
    serve(&t, "spin", guest, |r| r.timeout_ms = Some(120_000)).await;

    let mut stream = TcpStream::connect(t.addr).await.unwrap();
    stream
        .write_all(b"GET /spin HTTP/1.1\r\nhost: spin.test\r\n\r\n")
        .await
        .unwrap();
    // Until the guest is surely spinning, then leave.
    eventually("the guest started", || {
        series_is(&t, "nimbus_instances{", " 1")
    })
    .await;
    drop(stream);

    // The instance is discarded long before its two-minute deadline.
    eventually("the guest was stopped when its client left", || {
        series_is(&t, "nimbus_instances_discarded_total{", " 1")
    })
    .await;
    eventually("the request was logged", || {
        logs.text().contains("path=/spin")
    })
    .await;
    let text = logs.text();
    let logged = text.lines().find(|l| l.contains("path=/spin")).unwrap();
    assert!(logged.contains("status=499"), "{logged}");
    assert!(logged.contains("complete=false"), "{logged}");
    // The host goes on serving.
    assert_eq!(t.get("spin.test", "/nothing").await.0, 404);
}

/// Whether the server closed `stream` (a read returns end of file or an
/// error) within the hang guard.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(TIMEOUT, read).await.is_ok()
}

/// A client that asks for a large response and then reads none of it
/// loses its connection once the socket has taken nothing for the idle
/// timeout (at least a second), instead of holding it, and its place under
/// the connection cap, for as long as it likes.
#[tokio::test]
async fn a_client_that_stops_reading_its_response_loses_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let size = 16 << 20;
    std::fs::write(dir.path().join("big"), vec![b'x'; size]).unwrap();
    let t = host_with_timeouts(Duration::from_millis(300), Duration::from_millis(300)).await;
    let mut workload = http_workload("big", P2_BEHAVIORS, "big.test");
    mount_dir(&mut workload, dir.path(), "/data", None);
    t.host.start_workload(workload).await.unwrap();

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(t.addr).await.unwrap();
    stream
        .write_all(b"GET /read?path=/data/big HTTP/1.1\r\nhost: big.test\r\n\r\n")
        .await
        .unwrap();
    // The response fills both sockets' buffers and stalls; the host then
    // closes the connection (the limit is counted as it does).
    eventually("the stalled connection was closed", || {
        t.host
            .metrics()
            .encode()
            .contains("nimbus_limit_events_total{limit=\"ingress_write_stalled\"} 1")
    })
    .await;
    let (mut head, mut received) = (Vec::new(), 0usize);
    let mut buf = vec![0u8; 64 << 10];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if head.is_empty() {
                        head.extend_from_slice(&buf[..n.min(64)]);
                    }
                    received += n;
                }
            }
        }
    };
    tokio::time::timeout(TIMEOUT, read_all)
        .await
        .expect("the connection ends");
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    assert!(
        received < size,
        "all {received} bytes arrived: the connection was not cut"
    );
    assert_eq!(t.get("big.test", "/ok").await.0, 200);
}

/// Requests no component could take (no Host, two, an invalid one, a
/// target that is not a path, CONNECT) are answered by the host with 400
/// or 501 and the reason; they no longer reach the component, which failed
/// on them with a 500 and lost its instance.
#[tokio::test]
async fn requests_without_one_valid_host_or_a_path_are_refused_before_the_component() {
    // Everything to one workload, as `nimbus serve COMPONENT.wasm` routes:
    // no router refuses these first.
    let t = TestHost::start_with(config(), Arc::new(nimbus_host::http::DevRouter::new())).await;
    serve(&t, "ok", P2_BEHAVIORS, |_| {}).await;
    for (head, status, reason) in [
        ("GET /ok HTTP/1.1\r\n", "400", "no Host header"),
        (
            "GET /ok HTTP/1.1\r\nhost: ok.test\r\nhost: ok.test\r\n",
            "400",
            "more than one Host",
        ),
        ("GET /ok HTTP/1.1\r\nhost: \r\n", "400", "not a host[:port]"),
        (
            "GET /ok HTTP/1.1\r\nhost: [::1\r\n",
            "400",
            "not a host[:port]",
        ),
        (
            "GET /ok HTTP/1.1\r\nhost: a\tb/c?d#e\r\n",
            "400",
            "not a host[:port]",
        ),
        ("GET ok HTTP/1.1\r\nhost: ok.test\r\n", "400", "not a path"),
        (
            "CONNECT ok.test:443 HTTP/1.1\r\nhost: ok.test:443\r\n",
            "501",
            "CONNECT",
        ),
    ] {
        let mut stream = TcpStream::connect(t.addr).await.unwrap();
        stream
            .write_all(format!("{head}connection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut answer))
            .await
            .expect("answered")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.split(' ').nth(1) == Some(status) && answer.contains(reason),
            "{head:?}: {answer}"
        );
    }
    assert_eq!(t.get("ok.test", "/ok").await, (200, "ok\n".into()));
}

/// An idle timeout shorter than the first-request timeout closes an idle
/// keep-alive connection by itself: the watch first looks at the shorter
/// of the two, not only once the first-request timeout has passed.
#[tokio::test]
async fn an_idle_timeout_shorter_than_the_first_request_timeout_holds() {
    let t = host_with_timeouts(Duration::from_secs(120), Duration::from_millis(300)).await;
    serve(&t, "ok", P2_BEHAVIORS, |_| {}).await;
    let mut stream = TcpStream::connect(t.addr).await.unwrap();
    stream
        .write_all(b"GET /ok HTTP/1.1\r\nhost: ok.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Within the common bound, which is half the first-request timeout.
    assert!(
        closed_by_server(&mut stream).await,
        "the idle keep-alive connection was held until the first-request timeout"
    );
}

/// Connection timeouts configured as good as forever (`--idle-timeout` or
/// `--first-request-timeout` at their largest) keep connections open: the
/// deadlines computed from them saturate instead of panicking the
/// connection's task.
#[tokio::test]
async fn connection_timeouts_past_what_an_instant_holds_keep_connections_open() {
    let forever_idle = host_with_timeouts(Duration::from_millis(200), Duration::MAX).await;
    serve(&forever_idle, "ok", P2_BEHAVIORS, |_| {}).await;
    let stream = TcpStream::connect(forever_idle.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    for _ in 0..2 {
        let request = http::Request::builder()
            .uri("/ok")
            .header(http::header::HOST, "ok.test")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = tokio::time::timeout(TIMEOUT, sender.send_request(request))
            .await
            .expect("answered in time")
            .expect("the connection is still open");
        assert_eq!(response.status(), 200);
        let _ = response.into_body().collect().await;
        // Past the first-request timeout, the watch works out the idle
        // deadline of this kept-alive connection.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }

    let forever_first = host_with_timeouts(Duration::MAX, Duration::MAX).await;
    serve(&forever_first, "ok", P2_BEHAVIORS, |_| {}).await;
    assert_eq!(
        forever_first.get("ok.test", "/ok").await,
        (200, "ok\n".into())
    );
}

/// Finding 4: a connection that sends nothing, one byte, or part of the
/// HTTP/2 preface is closed after the first-request timeout, an idle
/// keep-alive after the idle timeout; past the connection cap new
/// connections are closed at once, and the host still serves.
#[tokio::test]
async fn slow_and_idle_connections_are_closed_and_the_cap_holds() {
    let t = host_with_timeouts(Duration::from_millis(300), Duration::from_millis(300)).await;
    serve(&t, "ok", P2_BEHAVIORS, |_| {}).await;
    for sent in [
        &b""[..],
        b"G",
        b"GET / HTTP/1.1\r\nhost: ok.te",
        b"PRI * HTTP/2.0\r\n",
    ] {
        let mut stream = TcpStream::connect(t.addr).await.unwrap();
        stream.write_all(sent).await.unwrap();
        assert!(
            closed_by_server(&mut stream).await,
            "{:?} held its connection",
            String::from_utf8_lossy(sent)
        );
    }
    // The whole HTTP/2 preface and a SETTINGS frame, then nothing.
    let mut stream = TcpStream::connect(t.addr).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut stream).await,
        "an HTTP/2 connection with no request held"
    );
    // An HTTP/2 connection that answered once, then idles: the client's
    // connection task ends when the server closes it.
    let stream = TcpStream::connect(t.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    let h2_connection = tokio::spawn(conn);
    let request = http::Request::builder()
        .uri("http://ok.test/ok")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    tokio::time::timeout(TIMEOUT, h2_connection)
        .await
        .expect("an idle HTTP/2 connection held")
        .unwrap()
        .ok();
    // A keep-alive connection that answered once, then idles.
    let mut stream = TcpStream::connect(t.addr).await.unwrap();
    stream
        .write_all(b"GET /ok HTTP/1.1\r\nhost: ok.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_by_server(&mut stream).await, "idle keep-alive held");
    // One that answered once, then sends half of its next head and stalls:
    // no request is in flight, so the idle timeout closes it (hyper arms no
    // header timer of its own).
    let mut stream = TcpStream::connect(t.addr).await.unwrap();
    stream
        .write_all(b"GET /ok HTTP/1.1\r\nhost: ok.test\r\n\r\n")
        .await
        .unwrap();
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    stream
        .write_all(b"GET /ok HTTP/1.1\r\nhost: ok.te")
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut stream).await,
        "a stalled second head held"
    );
    // Counted as the connection task ends, just after the close.
    for limit in ["ingress_first_request", "ingress_idle"] {
        let series = format!("nimbus_limit_events_total{{limit=\"{limit}\"}}");
        eventually(limit, || t.host.metrics().encode().contains(&series)).await;
    }

    // The cap: four idle connections held, the fifth closed at once.
    let t = host_with(HostConfig {
        ingress: IngressLimits {
            max_connections: 4,
            ..IngressLimits::default()
        },
        ..config()
    })
    .await;
    serve(&t, "ok", P2_BEHAVIORS, |_| {}).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(t.addr).await.unwrap());
    }
    // Until the host has accepted all four (its gauge says so).
    eventually("four connections accepted", || {
        t.host
            .metrics()
            .encode()
            .contains("nimbus_ingress_connections 4")
    })
    .await;
    let mut fifth = TcpStream::connect(t.addr).await.unwrap();
    assert!(closed_by_server(&mut fifth).await, "the fifth was served");
    eventually("the refusal counted", || {
        let series = "nimbus_limit_events_total{limit=\"ingress_connections\"} 1";
        t.host.metrics().encode().contains(series)
    })
    .await;
    held.pop();
    let served = async {
        loop {
            let stream = TcpStream::connect(t.addr).await.unwrap();
            let Ok((mut sender, conn)) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
            else {
                continue;
            };
            tokio::spawn(conn);
            let request = http::Request::builder()
                .uri("/ok")
                .header("host", "ok.test")
                .body(Empty::<Bytes>::new())
                .unwrap();
            if let Ok(response) = sender.send_request(request).await {
                return response.status();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let status = tokio::time::timeout(TIMEOUT, served).await.unwrap();
    assert_eq!(status, 200, "a freed slot serves again");
}

/// Finding 4: the admin endpoint answers while the ingress is at its
/// connection cap, and a flood of idle connections to the admin port itself
/// is refused past its own cap and closed after its first-request timeout.
#[tokio::test]
async fn the_admin_endpoint_stays_reachable() {
    use nimbus_host::http::admin::{AdminEndpoint, Readiness, serve_admin};
    let t = host_with(HostConfig {
        ingress: IngressLimits {
            max_connections: 4,
            ..IngressLimits::default()
        },
        ..config()
    })
    .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = listener.local_addr().unwrap();
    let limits = IngressLimits {
        max_connections: 3,
        first_request_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
    };
    tokio::spawn(serve_admin(
        listener,
        AdminEndpoint::new(t.host.metrics().clone(), Readiness::default()),
        limits,
        std::future::pending(),
    ));
    let healthz = || async {
        let stream = TcpStream::connect(admin).await.ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let request = http::Request::builder()
            .uri("/healthz")
            .header("host", "admin")
            .body(Empty::<Bytes>::new())
            .unwrap();
        Some(sender.send_request(request).await.ok()?.status())
    };

    // The ingress saturated by idle clients: the admin endpoint answers.
    let mut ingress_held = Vec::new();
    for _ in 0..6 {
        ingress_held.push(TcpStream::connect(t.addr).await.unwrap());
    }
    eventually("the ingress at its cap", || {
        series_is(
            &t,
            "nimbus_limit_events_total{limit=\"ingress_connections\"}",
            " 2",
        )
    })
    .await;
    assert_eq!(healthz().await, Some(http::StatusCode::OK));

    // The admin port flooded: past its cap a connection is closed at once,
    // and the idle ones are closed after the first-request timeout, after
    // which probes answer again.
    let mut admin_held = Vec::new();
    for _ in 0..3 {
        admin_held.push(TcpStream::connect(admin).await.unwrap());
    }
    let mut fourth = TcpStream::connect(admin).await.unwrap();
    assert!(closed_by_server(&mut fourth).await, "the admin cap held");
    for stream in &mut admin_held {
        assert!(
            closed_by_server(stream).await,
            "an idle admin connection held"
        );
    }
    let answered = async {
        loop {
            if healthz().await == Some(http::StatusCode::OK) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(TIMEOUT, answered)
        .await
        .expect("the admin endpoint answers again");
    // A keep-alive connection that asked once, then idles, is closed too.
    let mut idle = TcpStream::connect(admin).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: admin\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_by_server(&mut idle).await,
        "an idle admin keep-alive held"
    );
    for limit in ["admin_connections", "admin_first_request", "admin_idle"] {
        let series = format!("nimbus_limit_events_total{{limit=\"{limit}\"}}");
        eventually(limit, || t.host.metrics().encode().contains(&series)).await;
    }
}

/// Finding 11: guest stdout goes to the host's log as attributed events,
/// within a byte budget; a guest printing without end neither floods the
/// log nor stops the host.
#[tokio::test]
async fn guest_output_is_attributed_and_bounded() {
    let logs = Captured::install_global();
    let t = host_with(config()).await;
    serve(&t, "chatty", P2_HOSTILE, |r| r.timeout_ms = Some(1_000)).await;
    let (status, body) = t.get("chatty.test", "/stdout?lines=3").await;
    assert_eq!((status, body.as_str()), (200, "wrote 3\n"));
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("guest line 2") && l.contains("nimbus::guest"))
        .expect("the guest's line is in the log as a nimbus::guest event");
    assert!(line.contains("workload=test/chatty"), "{line}");
    assert!(line.contains("component=chatty"), "{line}");
    assert!(
        line.contains("stream=\"stdout\"") || line.contains("stream=stdout"),
        "{line}"
    );

    // Forever, until the deadline: most of it is dropped, and counted.
    let (status, _) = t.get("chatty.test", "/stdout?lines=0").await;
    assert_eq!(status, 504);
    let logged = logs
        .text()
        .lines()
        .filter(|l| l.contains("nimbus::guest"))
        .count();
    assert!(
        logged < 100_000,
        "{logged} guest lines logged in one second: the budget did not hold"
    );
    assert!(logs.text().contains("guest output over its budget"));
    assert!(
        t.host
            .metrics()
            .encode()
            .contains("nimbus_limit_events_total{limit=\"guest_output\"}")
    );
}

/// Finding 3: pool slots a guest dirtied do not stay resident: one large
/// guest after another does not add up, and the memory comes back.
#[tokio::test]
async fn dirtied_pool_slots_are_given_back() {
    let t = host_with(config()).await;
    assert!(t.host.engine().is_pooling(), "this test is about the pool");
    serve(&t, "big", P2_BEHAVIORS, |r| r.memory_limit_mb = Some(1024)).await;
    assert_eq!(t.get("big.test", "/ok").await.0, 200);
    let baseline = rss_bytes();
    for _ in 0..6 {
        let (status, body) = t.get("big.test", "/grow?mb=200").await;
        assert_eq!((status, body.as_str()), (200, "grew 200\n"));
    }
    // Each instance is dropped as its response ends; give the last one a
    // moment (a hang guard, not a timing claim).
    let settled = async {
        loop {
            if rss_bytes() < baseline + (300 << 20) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(TIMEOUT, settled)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "RSS stayed {} MiB above the baseline after six 200 MiB guests",
                (rss_bytes() - baseline) >> 20
            )
        });
}

/// A response sent whole is not an abandoned request, whether hyper read
/// its body to the end or stopped at its `content-length`: P3 instances
/// keep being reused, none is discarded.
#[tokio::test]
async fn complete_responses_keep_p3_instances_reused() {
    let t = host_with(HostConfig {
        accounting: true,
        ..config()
    })
    .await;
    serve(&t, "p3", test_programs::P3_HELLO, |_| {}).await;
    for _ in 0..20 {
        assert_eq!(t.get("p3.test", "/").await.0, 200);
    }
    let head = common::request(t.addr, Some("p3.test"), "HEAD", "/", Bytes::new()).await;
    assert_eq!(head.0, 200);
    let metrics = t.host.metrics().encode();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(value("nimbus_instances_discarded_total{"), 0.0, "{metrics}");
    assert!(value("nimbus_instance_reuses_total{") >= 15.0, "{metrics}");
}
