//! Shared harness for the runtime's integration tests: a host on a real
//! loopback socket, workload builders, and a small HTTP client that can send
//! requests with or without a Host header, over HTTP/1.1 or HTTP/2.

#![allow(dead_code, unreachable_pub)]

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use nimbus_host::http::{DynamicRouter, Router};
use nimbus_host::workload::{ComponentSpec, LocalResources, Workload};
use nimbus_host::{Host, HostConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// Every network wait in tests is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until `done` holds; `what` names it if it never does within
/// [`TIMEOUT`] (a hang guard, not a timing claim).
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let wait = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(TIMEOUT, wait).await.is_err() {
        panic!("not within {TIMEOUT:?}: {what}");
    }
}

/// The compiled-code cache shared by all test runs, so guests compile once.
pub fn shared_cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("nimbus-compiled")
}

/// A host serving on 127.0.0.1:0 until dropped.
pub struct TestHost {
    pub host: Host,
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestHost {
    pub async fn start(router: Arc<dyn Router>) -> Self {
        Self::start_with(
            HostConfig {
                cache_dir: Some(shared_cache_dir()),
                ..HostConfig::default()
            },
            router,
        )
        .await
    }

    pub async fn dynamic() -> Self {
        Self::start(Arc::new(DynamicRouter::new())).await
    }

    pub async fn start_with(config: HostConfig, router: Arc<dyn Router>) -> Self {
        let host = Host::new(config, router).expect("host builds");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(nimbus_host::http::serve(
            listener,
            host.clone(),
            async {
                let _ = rx.await;
            },
            Duration::from_secs(5),
        ));
        Self {
            host,
            addr,
            shutdown: Some(tx),
        }
    }

    pub async fn get(&self, host: &str, path: &str) -> (u16, String) {
        request(self.addr, Some(host), "GET", path, Bytes::new()).await
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Mounts host directory `dir` into every component of `workload` at
/// `mount_path` (read-only unless `read_only` says `Some(false)`).
pub fn mount_dir(
    workload: &mut Workload,
    dir: &std::path::Path,
    mount_path: &str,
    read_only: Option<bool>,
) {
    workload.spec.volumes.push(nimbus_host::workload::Volume {
        name: "data".into(),
        host_path: Some(nimbus_host::workload::HostPathVolume {
            path: dir.display().to_string(),
        }),
        empty_dir: None,
    });
    for component in &mut workload.spec.components {
        component
            .local_resources
            .volume_mounts
            .push(nimbus_host::workload::VolumeMount {
                name: "data".into(),
                mount_path: mount_path.into(),
                read_only,
            });
    }
}

/// A one-component workload serving HTTP on `host`.
pub fn http_workload(name: &str, guest: &str, host: &str) -> Workload {
    Workload::single_http_component("test", name, &format!("file://{guest}"), host)
}

/// A component named `name` from `guest` with environment `env`.
pub fn component(name: &str, guest: &str, env: &[(&str, &str)]) -> ComponentSpec {
    let mut resources = LocalResources::default();
    for (k, v) in env {
        resources
            .environment
            .config
            .insert(k.to_string(), v.to_string());
    }
    ComponentSpec {
        name: name.into(),
        image: format!("file://{guest}"),
        local_resources: resources,
        ..Default::default()
    }
}

/// A host with accounting on (per-component metrics), a dynamic router
/// and the shared compile cache.
pub async fn accounting_host() -> TestHost {
    TestHost::start_with(
        HostConfig {
            cache_dir: Some(shared_cache_dir()),
            accounting: true,
            ..HostConfig::default()
        },
        Arc::new(DynamicRouter::new()),
    )
    .await
}

/// Grants the workload `wasi:sockets` TCP (a `wasi:sockets` host interface).
pub fn grant_tcp_sockets(workload: &mut Workload) {
    workload
        .spec
        .host_interfaces
        .push(nimbus_host::workload::HostInterface {
            namespace: "wasi".into(),
            package: "sockets".into(),
            interfaces: vec!["tcp".into()],
            ..Default::default()
        });
}

/// Mutable access to the first component's local resources.
pub fn resources(workload: &mut Workload) -> &mut LocalResources {
    &mut workload.spec.components[0].local_resources
}

/// What a raw test server reads of a request: its head, up to the blank
/// line (and whatever came in the same reads), or `None` when the client
/// went away first.
pub async fn read_request_head(stream: &mut TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt as _;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// Subscribes `client` to `subject` and returns once the server holds the
/// subscription. `flush` only writes the SUB out, so a message another
/// connection publishes next could still reach the server before it.
pub async fn subscribe_confirmed(
    client: &async_nats::Client,
    subject: &str,
) -> async_nats::Subscriber {
    let subscriber = client
        .subscribe(subject.to_string())
        .await
        .expect("subscribe");
    // The server takes one connection's commands in order: its "no
    // responders" answer to a request sent after the SUB proves it took it.
    let probe = client.request(client.new_inbox(), Bytes::new());
    match tokio::time::timeout(Duration::from_secs(5), probe).await {
        Ok(Err(error)) if error.kind() == async_nats::RequestErrorKind::NoResponders => {}
        Ok(other) => panic!("the subscription probe got {other:?}, not `no responders`"),
        Err(_) => panic!("NATS did not answer the subscription probe within 5 s"),
    }
    subscriber
}

/// A GET of `path` on `host` in a task of its own: a request a test lets
/// run while it does something else.
pub fn spawn_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> tokio::task::JoinHandle<(u16, String)> {
    let (host, path) = (host.to_string(), path.to_string());
    tokio::spawn(async move { request(addr, Some(&host), "GET", &path, Bytes::new()).await })
}

/// One HTTP/1.1 request over a fresh connection; `host: None` sends no Host header.
pub async fn request(
    addr: SocketAddr,
    host: Option<&str>,
    method: &str,
    path: &str,
    body: Bytes,
) -> (u16, String) {
    let (status, _, body) = exchange(addr, host, method, path, &[], body).await;
    (status, body)
}

/// One HTTP/1.1 request with extra headers → status, headers and body.
pub async fn exchange(
    addr: SocketAddr,
    host: Option<&str>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> (u16, http::HeaderMap, String) {
    tokio::time::timeout(TIMEOUT, async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let mut builder = http::Request::builder().method(method).uri(path);
        if let Some(host) = host {
            builder = builder.header(http::header::HOST, host);
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(body)).unwrap();
        let response = sender.send_request(request).await.expect("response");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    })
    .await
    .expect("request finished in time")
}

/// An HTTP/2 connection with prior knowledge (h2c) to `addr`, driven in
/// the background: send requests with the authority in the URI.
pub async fn h2_sender(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

/// One HTTP/2 request with prior knowledge (h2c), authority in the URI.
pub async fn request_h2(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    tokio::time::timeout(TIMEOUT, async {
        let mut sender = h2_sender(addr).await;
        let request = http::Request::builder()
            .uri(format!("http://{host}{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.expect("response");
        assert_eq!(response.version(), http::Version::HTTP_2);
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&body).into_owned())
    })
    .await
    .expect("request finished in time")
}

/// A tiny upstream HTTP server on loopback answering `upstream ok`.
pub async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(b"upstream ok"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// One HTTP/1.1 GET with extra headers; returns status, headers and body.
pub async fn get_with_headers(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, String) {
    exchange(addr, Some(host), "GET", path, headers, Bytes::new()).await
}

/// A writer collecting formatted log lines.
#[derive(Clone, Default)]
pub struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Captures every thread's logs for the rest of the process (nextest
    /// runs each test in its own process).
    pub fn install_global() -> Self {
        let captured = Self::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
        captured
    }
}
