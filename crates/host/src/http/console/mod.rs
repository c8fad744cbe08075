//! The web console the admin endpoint serves at `/`: static pages embedded
//! in the binary (`assets/`, plain HTML, CSS and JavaScript, nothing from
//! the network) and the JSON endpoints behind them ([`api`], documented in
//! docs/CONSOLE.md), fed by a sampler of the host's metrics ([`sampler`]).
//!
//! Read-only: nothing here changes the host. Configuration is shown by key
//! and secrets not at all.

pub mod api;
pub mod sampler;

use crate::Host;
use bytes::Bytes;
use http_body_util::Full;
use sampler::Sampler;
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The cluster a host belongs to, as the console shows it: hosts and
/// deployments (docs/CONSOLE.md, `/api/cluster`). The cluster crate
/// implements it; the host knows nothing of NATS.
pub trait ClusterSource: Send + Sync + 'static {
    /// The cluster now, as JSON (`member: true`, hosts, deployments).
    fn overview(&self) -> Pin<Box<dyn Future<Output = serde_json::Value> + Send + '_>>;
}

/// How long `/api/cluster` waits for the cluster's answer.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(3);

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Scripts, styles and requests only from the console itself; never
/// framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console of one host. Cheap to share (`Arc`).
pub struct Console {
    host: Host,
    sampler: Arc<Sampler>,
    cluster: Option<Arc<dyn ClusterSource>>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("cluster", &self.cluster.is_some())
            .finish_non_exhaustive()
    }
}

impl Console {
    /// The console of `host`; its sampler starts now, on the current tokio
    /// runtime, and stops when the console is dropped.
    pub fn new(host: Host) -> Self {
        let sampler = Sampler::start(
            host.metrics().clone(),
            {
                let host = host.clone();
                move || host.entry_components()
            },
            {
                // Recent requests are kept while someone watches, for the
                // workloads that run.
                let host = host.clone();
                move |watched| {
                    host.keep_recent_requests(watched);
                    if watched {
                        host.recent_requests()
                            .retain(|id| host.running_workload(id).is_some());
                    }
                }
            },
        );
        Self {
            host,
            sampler,
            cluster: None,
        }
    }

    /// Shows the cluster `source` describes.
    pub fn with_cluster(mut self, source: Arc<dyn ClusterSource>) -> Self {
        self.cluster = Some(source);
        self
    }

    /// Whether `path` is the console's, and data (needs the token when one
    /// is set) rather than a page.
    pub fn is_data(path: &str) -> bool {
        path == "/api" || path.starts_with("/api/")
    }

    /// The answer to `GET path`, if the path is the console's.
    pub async fn answer(&self, path: &str) -> Option<http::Response<Full<Bytes>>> {
        let asset = |content_type: &'static str, body: &'static str| {
            let mut response = respond(
                http::StatusCode::OK,
                content_type,
                Bytes::from_static(body.as_bytes()),
            );
            response.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-cache"),
            );
            Some(response)
        };
        match path {
            "/" | "/index.html" => return asset("text/html; charset=utf-8", INDEX_HTML),
            "/assets/app.js" => return asset("text/javascript; charset=utf-8", APP_JS),
            "/assets/style.css" => return asset("text/css; charset=utf-8", STYLE_CSS),
            _ if !Self::is_data(path) => return None,
            _ => {}
        }
        self.sampler.viewed();
        self.host.keep_recent_requests(true);
        Some(match path {
            "/api/host" => json(http::StatusCode::OK, &self.host_view()),
            "/api/workloads" => json(http::StatusCode::OK, &self.workloads_view()),
            "/api/history" => json(http::StatusCode::OK, &self.history_view()),
            "/api/cluster" => json(http::StatusCode::OK, &self.cluster_view().await),
            _ => match path.strip_prefix("/api/workloads/") {
                Some(id) if id.split('/').count() == 2 => match self.workload_detail(id) {
                    Some(detail) => json(http::StatusCode::OK, &detail),
                    None => error(
                        http::StatusCode::NOT_FOUND,
                        &format!("no workload `{id}` runs here"),
                    ),
                },
                _ => error(
                    http::StatusCode::NOT_FOUND,
                    "not found: see docs/CONSOLE.md for the /api paths",
                ),
            },
        })
    }

    async fn cluster_view(&self) -> serde_json::Value {
        let Some(cluster) = &self.cluster else {
            return serde_json::json!({ "member": false });
        };
        match tokio::time::timeout(CLUSTER_TIMEOUT, cluster.overview()).await {
            Ok(view) => view,
            Err(_) => serde_json::json!({
                "member": true,
                "hosts": [],
                "deployments": [],
                "error": format!("the cluster did not answer within {CLUSTER_TIMEOUT:?}"),
            }),
        }
    }
}

/// Each workload's entry component: the outermost middleware, else the
/// component serving HTTP.
fn respond(
    status: http::StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        http::header::REFERRER_POLICY,
        http::HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `value` as a JSON answer, never cached.
pub(crate) fn json(
    status: http::StatusCode,
    value: &impl Serialize,
) -> http::Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = respond(status, "application/json", Bytes::from(body));
            response.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-store"),
            );
            response
        }
        Err(e) => error(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot encode the answer: {e}"),
        ),
    }
}

/// `{"error": message}`.
pub(crate) fn error(status: http::StatusCode, message: &str) -> http::Response<Full<Bytes>> {
    let body = serde_json::json!({ "error": message }).to_string();
    respond(status, "application/json", Bytes::from(body))
}

fn unix_ms(at: std::time::SystemTime) -> u64 {
    crate::http::access::unix_ms(at)
}

fn unix_ms_now() -> u64 {
    unix_ms(std::time::SystemTime::now())
}
