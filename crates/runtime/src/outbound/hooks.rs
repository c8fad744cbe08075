//! The `wasi:http` hooks every store carries: where one outgoing request of
//! a component goes, and what it may cost.
//!
//! In order: a middleware's call inward goes to the next layer; a request
//! the router vetoes is denied; one addressed to a workload of this host is
//! handed to it in memory (still under the sender's `allowedHosts`);
//! anything else passes the policy of this module's parent, takes a
//! connection slot and goes out over the network. Both in-memory receivers
//! are reached through [`InMemoryTarget`], which the workload layer
//! implements, so this module never names a workload type (the dependency
//! points one way: workloads use the outbound path, not the reverse).

use super::{Decision, OutboundPolicy, OutboundSlots, is_restricted_ip};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);
const DNS_TIMEOUT: Duration = Duration::from_secs(10);

/// Most distinct authorities one instance remembers being called on (a
/// reused P3 instance may be reached under several host names).
const MAX_CALLED_AS: usize = 8;

/// The response an [`InMemoryTarget`] will give.
pub type InMemoryResponse = Pin<Box<dyn Future<Output = http::Response<WasiBody>> + Send>>;

/// A receiver of outgoing requests inside this process: the next layer of a
/// middleware chain, or a workload of this host.
pub trait InMemoryTarget: Send + Sync {
    /// What to call it in logs.
    fn label(&self) -> &str;

    /// Serves `request`. A failure comes back as its 5xx response (already
    /// logged with its name), so the status survives the callers outside.
    fn serve(self: Arc<Self>, request: http::Request<WasiBody>) -> InMemoryResponse;
}

/// The workloads of one host as destinations of outgoing HTTP requests
/// (the host's `local_workload_calls`): a request whose authority routes
/// to one of them is handed to it in memory. The host implements it; the
/// outbound hooks ask it.
pub trait LocalWorkloads: Send + Sync {
    /// The workload `uri` is addressed to, if it runs on this host.
    fn find(&self, uri: &http::Uri) -> Option<Arc<dyn InMemoryTarget>>;
}

/// Per-store state of a middleware layer, kept in its outbound hooks.
#[derive(Default)]
pub(crate) struct LayerState {
    /// Authorities this instance was called on.
    called_as: Vec<Arc<str>>,
    /// Set by the `wasi:http/handler` import just before it sends, consumed
    /// by the send it triggers (no await point lies between the two).
    handler_call: bool,
}

impl LayerState {
    pub(crate) fn record_called_as(&mut self, authority: Arc<str>) {
        if self.called_as.len() < MAX_CALLED_AS
            && !self
                .called_as
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&authority))
        {
            self.called_as.push(authority);
        }
    }

    pub(crate) fn mark_handler_call(&mut self) {
        self.handler_call = true;
    }

    pub(crate) fn clear_handler_call(&mut self) {
        self.handler_call = false;
    }

    /// Whether this outgoing request goes to the next layer: it came through
    /// the handler import, or it is addressed to where this layer was called.
    pub(crate) fn goes_inward(&mut self, uri: &http::Uri) -> bool {
        if std::mem::take(&mut self.handler_call) {
            return true;
        }
        uri.authority().is_some_and(|authority| {
            self.called_as
                .iter()
                .any(|a| a.eq_ignore_ascii_case(authority.as_str()))
        })
    }
}

/// The authority a request is addressed to (URI authority or `Host`).
pub(crate) fn request_authority<B>(request: &http::Request<B>) -> Option<Arc<str>> {
    match request.uri().authority() {
        Some(authority) => Some(Arc::from(authority.as_str())),
        None => request
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(Arc::from),
    }
}

/// The `wasi:http` hooks of one component instance: policy, then a vetted send.
pub(crate) struct OutboundHooks {
    pub(crate) policy: Arc<OutboundPolicy>,
    pub(crate) workload: Arc<str>,
    pub(crate) component: Arc<str>,
    pub(crate) router: Arc<dyn crate::http::router::Router>,
    /// For a middleware: the next layer, which its inward calls reach.
    pub(crate) inward: Option<Arc<dyn InMemoryTarget>>,
    /// The host's workloads, when requests to them are delivered in memory.
    pub(crate) local: Option<Arc<dyn LocalWorkloads>>,
    pub(crate) layer: LayerState,
    /// Counts outgoing requests by destination and decision.
    pub(crate) metrics: Option<Arc<crate::metrics::ComponentMetrics>>,
    /// The trace context of the request the instance is handling, when
    /// tracing is on (`crate::trace`).
    pub(crate) trace_parent: Option<crate::trace::Parent>,
    /// The connection caps outgoing requests count against.
    pub(crate) slots: OutboundSlots,
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

/// The I/O future of a response whose body needs no driving task.
fn no_io() -> IoFuture {
    Box::new(async { Ok(()) })
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _request_body_done: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>
    {
        let inward = self.layer.goes_inward(request.uri());
        if inward {
            let Some(next) = self.inward.clone() else {
                tracing::warn!(workload = %self.workload, component = %self.component, "called wasi:http/handler but is not a middleware of its workload");
                return Box::new(async { Err(HttpError::HttpRequestDenied) });
            };
            // The next layer's span goes under this layer's.
            if let Some(parent) = &self.trace_parent {
                request.extensions_mut().insert(parent.clone());
            }
            return Box::new(async move { Ok((next.serve(request).await, no_io())) });
        }
        let span = crate::trace::outbound_span(self.trace_parent.as_ref(), &mut request);
        let outbound = span.clone();
        let policy = self.policy.clone();
        let workload = self.workload.clone();
        let component = self.component.clone();
        let router_allows = self.router.allow_outgoing(&workload, request.uri());
        let local = self.local.as_ref().and_then(|l| l.find(request.uri()));
        let metrics = self.metrics.clone();
        let slots = self.slots.clone();
        Box::new(async move {
            let destination = metrics
                .is_some()
                .then(|| request.uri().host().unwrap_or("-").to_string());
            let result = if !router_allows {
                tracing::warn!(workload = %workload, component = %component, host = ?request.uri().host(), "outbound HTTP denied by the router");
                Err(HttpError::HttpRequestDenied)
            } else {
                match local {
                    Some(target) => {
                        send_local(&policy, &workload, &component, target, request).await
                    }
                    None => {
                        send_vetted(&policy, &slots, &workload, &component, request, options).await
                    }
                }
            };
            if let (Some(metrics), Some(destination)) = (&metrics, destination) {
                let denied = matches!(
                    result,
                    Err(HttpError::HttpRequestDenied | HttpError::DestinationIpProhibited)
                );
                metrics.outbound(&destination, !denied);
            }
            match &result {
                Ok((response, _)) => crate::trace::record_status(&span, response.status()),
                Err(_) => crate::trace::record_error(&span),
            }
            result
        }
        .instrument(outbound))
    }
}

/// Hands a request addressed to a workload of this host to it in memory,
/// if the sender's `allowedHosts` let it reach that host at all.
async fn send_local(
    policy: &OutboundPolicy,
    workload: &str,
    component: &str,
    target: Arc<dyn InMemoryTarget>,
    request: http::Request<WasiBody>,
) -> Result<(http::Response<WasiBody>, IoFuture), HttpError> {
    let uri = request.uri();
    let use_tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let host = uri
        .host()
        .ok_or(HttpError::HttpRequestUriInvalid)?
        .to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(if use_tls { 443 } else { 80 });
    if policy.check(&host, port) == Decision::Denied {
        tracing::warn!(workload, component, host = %host, port, "outbound HTTP denied: destination not in allowedHosts");
        return Err(HttpError::HttpRequestDenied);
    }
    tracing::debug!(workload, component, to = target.label(), host = %host, "outgoing request delivered in memory");
    Ok((target.serve(request).await, no_io()))
}

async fn send_vetted(
    policy: &OutboundPolicy,
    slots: &OutboundSlots,
    workload: &str,
    component: &str,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(http::Response<WasiBody>, IoFuture), HttpError> {
    let uri = request.uri().clone();
    let use_tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let host = uri.host().ok_or(HttpError::HttpRequestUriInvalid)?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(if use_tls { 443 } else { 80 });

    let explicit = match policy.check(&host, port) {
        Decision::Allowed { explicit } => explicit,
        Decision::Denied => {
            tracing::warn!(workload, component, host = %host, port, "outbound HTTP denied: destination not in allowedHosts");
            return Err(HttpError::HttpRequestDenied);
        }
    };

    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            match tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((host.as_str(), port)))
                .await
            {
                Err(_) => return Err(HttpError::DnsTimeout),
                Ok(Err(e)) => {
                    return Err(HttpError::DnsError {
                        rcode: Some(e.to_string()),
                        info_code: None,
                    });
                }
                Ok(Ok(addrs)) => addrs.collect(),
            }
        }
    };
    // An explicit IP literal was checked as such; an explicit `localhost`
    // reaches loopback only; a name never lifts the filter (DNS rebinding).
    let literal = host.parse::<IpAddr>().is_ok();
    let vetted: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| !is_restricted_ip(a.ip()) || (explicit && (literal || a.ip().is_loopback())))
        .collect();
    if vetted.is_empty() {
        if addrs.is_empty() {
            return Err(HttpError::DestinationNotFound);
        }
        tracing::warn!(workload, component, host = %host, port, "outbound HTTP denied: destination resolves to a private, loopback or link-local address");
        return Err(HttpError::DestinationIpProhibited);
    }

    // Held by the connection's task until the connection closes.
    let slot = slots.take(workload, component)?;
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(DEFAULT_FIRST_BYTE_TIMEOUT);

    let mut last_error = None;
    let mut stream = None;
    for addr in vetted {
        match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => last_error = Some(HttpError::Connect(e)),
            Err(_) => last_error = Some(HttpError::ConnectionTimeout),
        }
    }
    let stream = stream.ok_or_else(|| last_error.unwrap_or(HttpError::ConnectionRefused))?;
    let _ = stream.set_nodelay(true);

    let response = if use_tls {
        let server_name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(HttpError::InvalidDnsNameError)?;
        super::client::send_tls(
            stream,
            server_name,
            request,
            connect_timeout,
            first_byte_timeout,
            slot,
        )
        .await?
    } else {
        super::client::send_plain(stream, request, connect_timeout, first_byte_timeout, slot)
            .await?
    };
    Ok((response, no_io()))
}
