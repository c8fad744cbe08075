//! The admin endpoint, on its own listener (never the ingress's):
//!
//! - `/metrics`: every metric in the Prometheus text format;
//! - `/healthz`: 200 while the process answers at all;
//! - `/readyz`: 200 once the host serves traffic, 503 before that and while
//!   it drains;
//! - `/` and `/api/...`: the web console and its JSON ([`super::console`]),
//!   when the endpoint has one.
//!
//! With a token ([`AdminEndpoint::with_token`]: the CLI requires one on a
//! non-loopback address), `/metrics` and `/api/...` need
//! `Authorization: Bearer TOKEN`; the pages, `/healthz` and `/readyz` carry
//! no data and stay open (probes send no tokens). Without a token, only
//! requests naming the host by an IP address or `localhost` are answered
//! (`/healthz` and `/readyz` excepted): a web page whose domain was made
//! to resolve to 127.0.0.1 (DNS rebinding) cannot read the console.
//!
//! Its connections are bounded like the ingress's ([`IngressLimits::admin`]):
//! with the ingress saturated, or the admin port itself flooded, probes get
//! through again within seconds; no admin connection lives longer than
//! 30 s, so clients that stop reading cannot hold its slots either.

use super::console::{self, Console};
use super::server::{
    ConnectionLimit, ConnectionWatch, IngressLimits, WatchedBody, next_connection, run_watched,
};
use crate::limits::Cap;
use crate::metrics::{CONTENT_TYPE, Metrics};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use nimbus_model::Secret;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// What the admin endpoint serves: metrics and probes, and optionally the
/// console and a token guarding the data.
#[derive(Debug)]
pub struct AdminEndpoint {
    metrics: Arc<Metrics>,
    readiness: Readiness,
    console: Option<Console>,
    token: Option<Secret>,
}

impl AdminEndpoint {
    /// Metrics and probes only.
    pub fn new(metrics: Arc<Metrics>, readiness: Readiness) -> Self {
        Self {
            metrics,
            readiness,
            console: None,
            token: None,
        }
    }

    /// Serves `console` at `/` and `/api/...`.
    pub fn with_console(mut self, console: Console) -> Self {
        self.console = Some(console);
        self
    }

    /// Requires `token` as a bearer token for `/metrics` and `/api/...`.
    pub fn with_token(mut self, token: Secret) -> Self {
        self.token = Some(token);
        self
    }

    /// Whether `request` may be answered without a token: its `Host` (if
    /// any) is an IP address or `localhost`, never another domain name.
    fn host_is_direct<B>(request: &http::Request<B>) -> bool {
        let Some(host) = request.uri().host().map(str::to_string).or_else(|| {
            let value = request.headers().get(http::header::HOST)?;
            let authority: http::uri::Authority = value.to_str().ok()?.parse().ok()?;
            Some(authority.host().to_string())
        }) else {
            // No Host at all (HTTP/1.0): not a browser's request.
            return request.headers().get(http::header::HOST).is_none();
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.parse::<std::net::IpAddr>().is_ok()
            || host.eq_ignore_ascii_case("localhost")
            || host.to_ascii_lowercase().ends_with(".localhost")
    }

    /// Whether `request` carries the token (always, when none is set).
    fn authorized<B>(&self, request: &http::Request<B>) -> bool {
        use subtle::ConstantTimeEq as _;
        let Some(token) = &self.token else {
            return true;
        };
        request
            .headers()
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|value| {
                let (scheme, credentials) = value.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| credentials.trim())
            })
            .any(|given| bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())))
    }
}

/// The longest an admin connection stays open, busy or not: a scrape or a
/// probe takes milliseconds, and a client that stops reading must not hold
/// one of the few admin slots.
const ADMIN_CONNECTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves the admin endpoint on `listener` until `shutdown` resolves, its
/// connections bounded by `limits` (normally [`IngressLimits::admin`]).
pub async fn serve_admin(
    listener: TcpListener,
    endpoint: AdminEndpoint,
    limits: IngressLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let endpoint = Arc::new(endpoint);
    let metrics = endpoint.metrics.clone();
    let permits = Arc::new(Cap::new(limits.max_connections));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(
            limits
                .first_request_timeout
                .max(limits.idle_timeout)
                .saturating_mul(2),
        )
        .max_buf_size(super::MAX_REQUEST_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(super::MAX_REQUEST_HEAD_BYTES as u32);
    while let Some((stream, peer)) = next_connection(&listener, &mut shutdown, "admin").await {
        let Some(permit) = permits.try_claim() else {
            metrics.limit_hit("admin_connections");
            drop(stream);
            continue;
        };
        let watch = Arc::new(ConnectionWatch::new());
        let service = hyper::service::service_fn({
            let (endpoint, watch) = (endpoint.clone(), watch.clone());
            move |request| {
                let busy = watch.request_started();
                let endpoint = endpoint.clone();
                async move {
                    let body = endpoint.answer(&request).await;
                    Ok::<_, Infallible>(body.map(|body| WatchedBody { body, _busy: busy }))
                }
            }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let (limits, metrics) = (limits.clone(), metrics.clone());
        tokio::spawn(async move {
            let _permit = permit;
            // A client that never reads its answer keeps the connection
            // busy, which the idle timer does not cover: an admin
            // connection lives a bounded time whatever it does.
            let watched = run_watched(connection, &watch, &limits, peer);
            match tokio::time::timeout(ADMIN_CONNECTION_LIFETIME, watched).await {
                Ok(Some(ConnectionLimit::FirstRequest)) => metrics.limit_hit("admin_first_request"),
                Ok(Some(ConnectionLimit::Idle)) => metrics.limit_hit("admin_idle"),
                // Its plain socket reports no stalls: the lifetime bounds them.
                Ok(Some(ConnectionLimit::WriteStalled)) => metrics.limit_hit("admin_idle"),
                Ok(None) => {}
                Err(_) => metrics.limit_hit("admin_lifetime"),
            }
        });
    }
}

impl AdminEndpoint {
    async fn answer<B>(&self, request: &http::Request<B>) -> http::Response<Full<Bytes>> {
        const PLAIN: &str = "text/plain; charset=utf-8";
        let text = |status: http::StatusCode, content_type: &'static str, body: String| {
            let mut response = http::Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = status;
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(content_type),
            );
            response
        };
        let path = request.uri().path();
        let is_probe = path == "/healthz" || path == "/readyz";
        if self.token.is_none() && !is_probe && !Self::host_is_direct(request) {
            return text(
                http::StatusCode::MISDIRECTED_REQUEST,
                PLAIN,
                "this admin endpoint answers requests for localhost or an IP address only\n".into(),
            );
        }
        let is_data = path == "/metrics" || Console::is_data(path);
        if is_data && !self.authorized(request) {
            let mut response = if Console::is_data(path) {
                console::error(
                    http::StatusCode::UNAUTHORIZED,
                    "this admin endpoint needs its token: Authorization: Bearer TOKEN",
                )
            } else {
                text(
                    http::StatusCode::UNAUTHORIZED,
                    PLAIN,
                    "this admin endpoint needs its token: Authorization: Bearer TOKEN\n".into(),
                )
            };
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            return response;
        }
        if request.method() != http::Method::GET && request.method() != http::Method::HEAD {
            let mut response = text(
                http::StatusCode::METHOD_NOT_ALLOWED,
                PLAIN,
                "only GET and HEAD\n".into(),
            );
            response.headers_mut().insert(
                http::header::ALLOW,
                http::HeaderValue::from_static("GET, HEAD"),
            );
            return response;
        }
        match path {
            "/metrics" => return text(http::StatusCode::OK, CONTENT_TYPE, self.metrics.encode()),
            "/healthz" => return text(http::StatusCode::OK, PLAIN, "ok\n".into()),
            "/readyz" if self.readiness.get() => {
                return text(http::StatusCode::OK, PLAIN, "ready\n".into());
            }
            "/readyz" => {
                return text(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    PLAIN,
                    "not ready\n".into(),
                );
            }
            _ => {}
        }
        if let Some(console) = &self.console
            && let Some(response) = console.answer(path).await
        {
            return response;
        }
        text(
            http::StatusCode::NOT_FOUND,
            PLAIN,
            "not found: try /, /metrics, /healthz or /readyz\n".into(),
        )
    }
}
