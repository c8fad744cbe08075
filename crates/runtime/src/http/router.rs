//! Routers decide which workload an incoming request belongs to.
//!
//! The host tells its router when a workload's routes are (re)bound and
//! unbound; on every request the router maps the request to a workload id,
//! and it may veto outgoing requests. Two routers ship:
//! [`DynamicRouter`] routes by `Host` (or the HTTP/2 `:authority`), port
//! stripped, to the workload whose `wasi:http` config names that host
//! (`host` plus comma-separated `host-aliases`); [`DevRouter`] sends
//! everything to the most recently started workload. Reads are lock-free.

use crate::workload::Workload;
use arc_swap::{ArcSwap, ArcSwapOption};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Why a request could not be routed, or routes could not be bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The request names no host.
    #[error("the request has no Host header")]
    MissingHost,
    /// No workload answers on this host.
    #[error("no workload serves host `{0}`")]
    UnknownHost(String),
    /// Routing is known but nothing can serve right now.
    #[error("{0}")]
    Unavailable(String),
    /// A workload asked for a host another workload already serves.
    #[error("host `{host}` is already served by workload `{workload}`")]
    Conflict {
        /// The contested host.
        host: String,
        /// The workload that has it.
        workload: String,
    },
}

impl RouteError {
    /// The HTTP status a client sees for this error.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::MissingHost => http::StatusCode::BAD_REQUEST,
            Self::UnknownHost(_) => http::StatusCode::NOT_FOUND,
            Self::Unavailable(_) => http::StatusCode::SERVICE_UNAVAILABLE,
            Self::Conflict { .. } => http::StatusCode::CONFLICT,
        }
    }
}

/// Maps requests to workloads.
pub trait Router: Send + Sync + 'static {
    /// The workload `id` is starting or being replaced: from now on route to
    /// it per `workload`. Replaces any earlier routes of the same id.
    fn workload_resolved(&self, id: &str, workload: &Workload) -> Result<(), RouteError>;
    /// The workload `id` stopped: drop its routes.
    fn workload_unbound(&self, id: &str);
    /// The workload id an incoming request goes to.
    fn route(&self, request: &http::request::Parts) -> Result<Arc<str>, RouteError>;
    /// Whether workload `id` may send `uri` at all; the workload's own
    /// `allowedHosts` policy is applied afterwards either way.
    fn allow_outgoing(&self, id: &str, uri: &http::Uri) -> bool {
        let _ = (id, uri);
        true
    }
}

/// The host a request is addressed to: the URI authority (HTTP/2 and
/// absolute-form) or the `Host` header, lower-cased, port stripped.
pub fn request_host(request: &http::request::Parts) -> Option<String> {
    let raw = match request.uri.authority() {
        Some(authority) => authority.host().to_string(),
        None => {
            let header = request.headers.get(http::header::HOST)?.to_str().ok()?;
            let authority: http::uri::Authority = header.parse().ok()?;
            authority.host().to_string()
        }
    };
    let host = raw
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// Routes by host name; the production router.
#[derive(Default)]
pub struct DynamicRouter {
    routes: ArcSwap<HashMap<String, Arc<str>>>,
    writes: Mutex<()>,
}

impl DynamicRouter {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// The hosts currently bound, with their workload ids.
    pub fn routes(&self) -> Vec<(String, String)> {
        let mut routes: Vec<_> = self
            .routes
            .load()
            .iter()
            .map(|(h, w)| (h.clone(), w.to_string()))
            .collect();
        routes.sort();
        routes
    }
}

impl Router for DynamicRouter {
    fn workload_resolved(&self, id: &str, workload: &Workload) -> Result<(), RouteError> {
        let _guard = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.routes.load();
        let hosts = workload.spec.http_hosts();
        for host in &hosts {
            if let Some(owner) = current.get(host)
                && &**owner != id
            {
                return Err(RouteError::Conflict {
                    host: host.clone(),
                    workload: owner.to_string(),
                });
            }
        }
        let id: Arc<str> = Arc::from(id);
        let mut next: HashMap<String, Arc<str>> = current
            .iter()
            .filter(|(_, w)| **w != id)
            .map(|(h, w)| (h.clone(), w.clone()))
            .collect();
        for host in hosts {
            next.insert(host, id.clone());
        }
        self.routes.store(Arc::new(next));
        Ok(())
    }

    fn workload_unbound(&self, id: &str) {
        let _guard = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.routes.load();
        let next: HashMap<String, Arc<str>> = current
            .iter()
            .filter(|(_, w)| &***w != id)
            .map(|(h, w)| (h.clone(), w.clone()))
            .collect();
        self.routes.store(Arc::new(next));
    }

    fn route(&self, request: &http::request::Parts) -> Result<Arc<str>, RouteError> {
        let host = request_host(request).ok_or(RouteError::MissingHost)?;
        self.routes
            .load()
            .get(&host)
            .cloned()
            .ok_or(RouteError::UnknownHost(host))
    }
}

/// Sends every request to the most recently started workload; for `nimbus
/// dev` and single-workload `nimbus serve`.
#[derive(Default)]
pub struct DevRouter {
    // `ArcSwapOption` needs a sized payload, hence the wrapper.
    current: ArcSwapOption<CurrentWorkload>,
    // Start order, so stopping the newest falls back to the one before it.
    history: Mutex<Vec<Arc<str>>>,
}

struct CurrentWorkload(Arc<str>);

impl DevRouter {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Router for DevRouter {
    fn workload_resolved(&self, id: &str, _workload: &Workload) -> Result<(), RouteError> {
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        history.retain(|w| &**w != id);
        let id: Arc<str> = Arc::from(id);
        history.push(id.clone());
        self.current.store(Some(Arc::new(CurrentWorkload(id))));
        Ok(())
    }

    fn workload_unbound(&self, id: &str) {
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        history.retain(|w| &**w != id);
        self.current.store(
            history
                .last()
                .cloned()
                .map(|id| Arc::new(CurrentWorkload(id))),
        );
    }

    fn route(&self, _request: &http::request::Parts) -> Result<Arc<str>, RouteError> {
        self.current
            .load()
            .as_ref()
            .map(|current| current.0.clone())
            .ok_or_else(|| RouteError::Unavailable("no workload is running".into()))
    }
}
