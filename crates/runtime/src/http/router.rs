//! Routers decide which workload an incoming request belongs to.
//!
//! The host tells its router when a workload's routes are (re)bound and
//! unbound; on every request the router maps the request to a workload id,
//! and it may veto outgoing requests. Two routers ship:
//! [`DynamicRouter`] routes by `Host` (or the HTTP/2 `:authority`), port
//! stripped, to the workload whose `wasi:http` config names that host
//! (`host` plus comma-separated `host-aliases`); [`DevRouter`] sends
//! everything to the most recently started workload. Reads are lock-free;
//! binding a workload's routes costs O(its hosts), whatever the table size.

use crate::workload::Workload;
use arc_swap::ArcSwapOption;
use std::borrow::Cow;
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
    /// Something will serve soon (a first build is running): worth a retry.
    #[error("{0}")]
    NotReady(String),
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
            Self::Unavailable(_) | Self::NotReady(_) => http::StatusCode::SERVICE_UNAVAILABLE,
            Self::Conflict { .. } => http::StatusCode::CONFLICT,
        }
    }

    /// Seconds a client should wait before trying again (`Retry-After`).
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Self::NotReady(_) => Some(NOT_READY_RETRY_SECONDS),
            _ => None,
        }
    }
}

/// `Retry-After` for [`RouteError::NotReady`]: a dev build's usual rebuild.
const NOT_READY_RETRY_SECONDS: u32 = 2;

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
/// Borrows from the request unless it has to lower-case.
pub fn request_host(request: &http::request::Parts) -> Option<Cow<'_, str>> {
    let authority = match request.uri.authority() {
        Some(authority) => authority.as_str(),
        None => request.headers.get(http::header::HOST)?.to_str().ok()?,
    };
    let host = strip_port(authority.trim())?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.');
    if host.is_empty() || host.contains(['@', '/', ' ']) {
        return None;
    }
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    })
}

/// `host:port` to `host`, `[v6]:port` to `[v6]`; a port must be digits.
fn strip_port(authority: &str) -> Option<&str> {
    let (host, port) = if authority.starts_with('[') {
        match authority.rfind("]:") {
            Some(i) => (&authority[..=i], Some(&authority[i + 2..])),
            None => (authority, None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    match port {
        Some(port) if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) => None,
        _ => Some(host),
    }
}

/// Routes by host name; the production router.
#[derive(Default)]
pub struct DynamicRouter {
    routes: papaya::HashMap<String, Arc<str>>,
    // Hosts bound per workload, so rebinding and unbinding touch only that
    // workload's entries; also serializes writers.
    bound: Mutex<HashMap<Arc<str>, Vec<String>>>,
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
            .pin()
            .iter()
            .map(|(h, w)| (h.clone(), w.to_string()))
            .collect();
        routes.sort();
        routes
    }
}

impl Router for DynamicRouter {
    fn workload_resolved(&self, id: &str, workload: &Workload) -> Result<(), RouteError> {
        let mut bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
        let routes = self.routes.pin();
        let hosts = workload.spec.http_hosts();
        for host in &hosts {
            if let Some(owner) = routes.get(host)
                && &**owner != id
            {
                return Err(RouteError::Conflict {
                    host: host.clone(),
                    workload: owner.to_string(),
                });
            }
        }
        let id: Arc<str> = Arc::from(id);
        // Insert first (same-host entries are overwritten in place, so a
        // replace never leaves a gap), then drop hosts no longer wanted.
        for host in &hosts {
            routes.insert(host.clone(), id.clone());
        }
        if let Some(previous) = bound.insert(id, hosts.clone()) {
            for host in previous.iter().filter(|h| !hosts.contains(h)) {
                routes.remove(host);
            }
        }
        Ok(())
    }

    fn workload_unbound(&self, id: &str) {
        let mut bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hosts) = bound.remove(id) {
            let routes = self.routes.pin();
            for host in hosts {
                routes.remove(&host);
            }
        }
    }

    fn route(&self, request: &http::request::Parts) -> Result<Arc<str>, RouteError> {
        let host = request_host(request).ok_or(RouteError::MissingHost)?;
        self.routes
            .pin()
            .get(host.as_ref())
            .cloned()
            .ok_or_else(|| RouteError::UnknownHost(host.into_owned()))
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
    // Why nothing serves yet and when it will (`nimbus dev`'s first build).
    not_ready: ArcSwapOption<String>,
}

struct CurrentWorkload(Arc<str>);

impl DevRouter {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// While no workload runs, answer `503` with `Retry-After` and this
    /// message (e.g. "building: the first build is running") instead of
    /// "no workload is running"; `None` goes back to that.
    pub fn set_not_ready(&self, message: Option<String>) {
        self.not_ready.store(message.map(Arc::new));
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
            .ok_or_else(|| match &*self.not_ready.load() {
                Some(message) => RouteError::NotReady(message.to_string()),
                None => RouteError::Unavailable("no workload is running".into()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(host: Option<&str>, uri: &str) -> http::request::Parts {
        let mut builder = http::Request::builder().uri(uri);
        if let Some(host) = host {
            builder = builder.header(http::header::HOST, host);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn dev_router_says_not_ready_with_a_retry_until_a_workload_runs() {
        let router = DevRouter::new();
        let request = parts(None, "/");
        let error = router.route(&request).unwrap_err();
        assert_eq!((error.retry_after(), error.status().as_u16()), (None, 503));
        router.set_not_ready(Some("building".into()));
        let error = router.route(&request).unwrap_err();
        assert_eq!(error, RouteError::NotReady("building".into()));
        assert_eq!(
            (error.retry_after(), error.status().as_u16()),
            (Some(2), 503)
        );
        router.set_not_ready(None);
        assert!(router.route(&request).unwrap_err().retry_after().is_none());
    }

    #[test]
    fn request_host_normalises() {
        let cases = [
            (Some("Example.COM:8080"), "/", Some("example.com")),
            (Some("example.com."), "/", Some("example.com")),
            (Some("[::1]:80"), "/", Some("::1")),
            (Some("a.test"), "http://b.test/x", Some("b.test")),
            (None, "http://B.test:1/x", Some("b.test")),
            (None, "/", None),
            (Some(""), "/", None),
            (Some("a.test:port"), "/", None),
        ];
        for (header, uri, expected) in cases {
            assert_eq!(
                request_host(&parts(header, uri)).as_deref(),
                expected,
                "{header:?} {uri}"
            );
        }
    }

    #[test]
    fn rebinding_moves_hosts_and_unbinding_clears_them() {
        let router = DynamicRouter::new();
        let mut w = Workload::single_http_component("ns", "a", "a.wasm", "one.test");
        router.workload_resolved("ns/a", &w).unwrap();
        w.spec.host_interfaces[0]
            .config
            .insert("host".into(), "two.test".into());
        router.workload_resolved("ns/a", &w).unwrap();
        assert_eq!(
            router.routes(),
            [("two.test".to_string(), "ns/a".to_string())]
        );
        let other = Workload::single_http_component("ns", "b", "b.wasm", "two.test");
        assert!(matches!(
            router.workload_resolved("ns/b", &other),
            Err(RouteError::Conflict { .. })
        ));
        router.workload_unbound("ns/a");
        assert!(router.routes().is_empty());
        router.workload_resolved("ns/b", &other).unwrap();
        assert_eq!(
            &*router.route(&parts(Some("TWO.test"), "/")).unwrap(),
            "ns/b"
        );
    }
}
