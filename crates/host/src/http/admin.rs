//! The admin endpoint, on its own listener (never the ingress's):
//!
//! - `/metrics`: every metric in the Prometheus text format;
//! - `/healthz`: 200 while the process answers at all;
//! - `/readyz`: 200 once the host serves traffic, 503 before that and while
//!   it drains.

use super::server::next_connection;
use crate::metrics::{CONTENT_TYPE, Metrics};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

/// Whether the host is ready for traffic, as `/readyz` reports it. Clone to
/// share; starts not ready.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the host ready (or not, e.g. while draining).
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    /// Whether the host is ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Serves the admin endpoint on `listener` until `shutdown` resolves.
pub async fn serve_admin(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    while let Some((stream, _)) = next_connection(&listener, &mut shutdown, "admin").await {
        let (metrics, readiness) = (metrics.clone(), readiness.clone());
        let service = hyper::service::service_fn(move |request| {
            let response = answer(&request, &metrics, &readiness);
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

fn answer<B>(
    request: &http::Request<B>,
    metrics: &Metrics,
    readiness: &Readiness,
) -> http::Response<Full<Bytes>> {
    let text = |status: http::StatusCode, content_type: &'static str, body: String| {
        let mut response = http::Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        response
    };
    const PLAIN: &str = "text/plain; charset=utf-8";
    if request.method() != http::Method::GET && request.method() != http::Method::HEAD {
        return text(
            http::StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "only GET\n".into(),
        );
    }
    match request.uri().path() {
        "/metrics" => text(http::StatusCode::OK, CONTENT_TYPE, metrics.encode()),
        "/healthz" => text(http::StatusCode::OK, PLAIN, "ok\n".into()),
        "/readyz" if readiness.get() => text(http::StatusCode::OK, PLAIN, "ready\n".into()),
        "/readyz" => text(
            http::StatusCode::SERVICE_UNAVAILABLE,
            PLAIN,
            "not ready\n".into(),
        ),
        _ => text(
            http::StatusCode::NOT_FOUND,
            PLAIN,
            "not found: try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}
