//! A started workload and how it serves one HTTP request.
//!
//! A request first passes the workload's admission gate (excess gets 503 at
//! once, never an unbounded queue), then goes to the HTTP component's
//! `Dispatcher`. Guest failures become clear status codes: a missed
//! deadline 504, a trap 500, an instance that cannot be created 503; the host
//! log carries the details with the workload's id.

use super::dispatch::Dispatcher;
use super::instance::{RequestContext, RequestFate};
use super::service::Service;
use super::spec::Workload;
use crate::http::body::{ResponseBody, error_response};
use crate::limits::{Cap, CapClaim};
use crate::metrics::{ComponentMetrics, RequestUsage};
use crate::outbound::{InMemoryResponse, InMemoryTarget, request_authority};
use bytes::Bytes;
use http_body_util::BodyExt;
use nimbus_model::status::{ComponentStatus, WorkloadState, WorkloadStatus};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tracing::Instrument as _;
use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// One HTTP layer of a workload: its handler component, or a middleware.
pub struct HttpTarget {
    handler: Dispatcher,
    pub(crate) component: Arc<str>,
    /// The component's series, with accounting on.
    pub(crate) metrics: Option<Arc<ComponentMetrics>>,
    pub(crate) timeout: Duration,
    /// Middleware instances remember the authority they were called on.
    pub(crate) middleware: bool,
}

impl HttpTarget {
    /// Requests for `component`, handed to `handler` within `timeout`;
    /// `middleware` when it is a layer of a middleware chain.
    pub fn new(
        handler: Dispatcher,
        component: Arc<str>,
        metrics: Option<Arc<ComponentMetrics>>,
        timeout: Duration,
        middleware: bool,
    ) -> Self {
        Self {
            handler,
            component,
            metrics,
            timeout,
            middleware,
        }
    }
}

/// Why a layer produced no response: the status the client sees and a
/// message naming the workload (details are in the host log).
pub(crate) struct DispatchFailure {
    pub(crate) status: http::StatusCode,
    pub(crate) message: String,
}

impl HttpTarget {
    /// Hands one request to this layer. Failures are logged with the
    /// component's name and mapped: a missed deadline 504, an instance that
    /// cannot be created 503, a failure on a body its sender broke off 400
    /// (`request`'s body is watched by `fate`: see [`sender_watched`]), a
    /// trap 500.
    pub(crate) async fn dispatch(
        &self,
        workload: &str,
        request: http::Request<WasiBody>,
        usage: Option<Arc<RequestUsage>>,
        fate: Arc<RequestFate>,
    ) -> Result<http::Response<WasiBody>, DispatchFailure> {
        let in_flight = self.metrics.as_deref().map(ComponentMetrics::request);
        let span = crate::trace::component_span(workload, &self.component, &request);
        let head_request = request.method() == http::Method::HEAD;
        // Dropped before an answer: the client left while the guest worked.
        let mut watch = AbandonOnDrop(Some(fate.clone()));
        let trace_parent = crate::trace::Parent::of(&span);
        // As in the host's routing: instrumented only when the span is
        // wanted, since wrapping moves the whole future.
        let result = if span.is_disabled() {
            self.dispatch_untracked(workload, request, usage, trace_parent, &fate)
                .await
        } else {
            self.dispatch_untracked(workload, request, usage, trace_parent, &fate)
                .instrument(span.clone())
                .await
        };
        let result = match result {
            Ok(response) => {
                let remaining = body_length(&response, head_request);
                if remaining == Some(0) {
                    // Nothing is owed: hyper never polls such a body.
                    watch.finish();
                }
                Ok(response.map(|body| {
                    FateBody {
                        inner: body,
                        fate,
                        watch,
                        remaining,
                    }
                    .boxed_unsync()
                }))
            }
            Err(failure) => {
                watch.finish();
                Err(failure)
            }
        };
        let status = match &result {
            Ok(response) => response.status(),
            Err(failure) => failure.status,
        };
        crate::trace::record_status(&span, status);
        if let Some(in_flight) = in_flight {
            in_flight.finish(status);
        }
        result
    }

    async fn dispatch_untracked(
        &self,
        workload: &str,
        request: http::Request<WasiBody>,
        usage: Option<Arc<RequestUsage>>,
        trace_parent: Option<crate::trace::Parent>,
        fate: &Arc<RequestFate>,
    ) -> Result<http::Response<WasiBody>, DispatchFailure> {
        let called_as = if self.middleware {
            request_authority(&request)
        } else {
            None
        };
        let context = RequestContext {
            called_as,
            usage,
            trace_parent,
            fate: fate.clone(),
            held: std::time::Duration::ZERO,
        };
        let error = match self.handler.handle(context, request).await {
            Ok(response) => return Ok(response),
            Err(error) => error,
        };
        let failure = |status, message| Err(DispatchFailure { status, message });
        // Overdue: its deadline ended it, or ended the instance it was on
        // (a guest spinning past it).
        if error.downcast_ref::<ExpirationError>().is_some() || fate.is_overdue() {
            tracing::warn!(workload, component = %self.component, timeout_ms = self.timeout.as_millis() as u64, "request deadline exceeded");
            return failure(
                http::StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "request deadline of {} ms exceeded in workload `{workload}`",
                    self.timeout.as_millis(),
                ),
            );
        }
        if let Some(e) = error.downcast_ref::<InstantiationError<RequestContext>>() {
            tracing::error!(workload, component = %self.component, error = %format!("{:#}", e.error), "cannot create an instance");
            return failure(
                http::StatusCode::SERVICE_UNAVAILABLE,
                format!("workload `{workload}` cannot create an instance right now"),
            );
        }
        // The guest failed on a body its sender broke off (a client that
        // hung up, reset the stream or sent malformed chunks mid-upload):
        // the sender's doing, not the component's, so a 400 (which a
        // client still there reads) and no warning.
        if fate.sender_failed() {
            tracing::debug!(workload, component = %self.component, error = %format!("{error:#}"), "request body broken off by its sender");
            return failure(
                http::StatusCode::BAD_REQUEST,
                "the request's body was broken off or malformed".to_string(),
            );
        }
        tracing::warn!(workload, component = %self.component, error = %format!("{error:#}"), "component failed while handling a request");
        failure(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "component `{}` of workload `{workload}` failed while handling the request",
                self.component
            ),
        )
    }
}

/// A workload the host is running.
pub struct RunningWorkload {
    /// `namespace/name`.
    pub id: Arc<str>,
    /// The spec it runs.
    pub workload: Workload,
    pub(crate) components: Vec<ComponentStatus>,
    pub(crate) http: Option<Arc<HttpTarget>>,
    /// Its limit on the requests it serves at once.
    admission: Arc<Cap>,
    pub(crate) started_at: SystemTime,
    /// The long-lived service, started when the workload is published.
    pub service: Option<Service>,
    /// What plugins drive for this workload (subscriptions, WebSocket
    /// handlers); stopped by [`stop_serving`](Self::stop_serving) or when
    /// it is dropped.
    served: std::sync::Mutex<Vec<nimbus_plugin::ServeGuard>>,
    /// The plugins among them that deliver on their own rather than
    /// through an HTTP request (subscriptions), by id.
    pub driven_by: Vec<&'static str>,
    /// `emptyDir` volumes, removed when the workload is dropped.
    _scratch: Vec<tempfile::TempDir>,
}

/// What a workload is made of once prepared: the host builds it, the
/// runtime runs it ([`RunningWorkload::new`]).
pub struct WorkloadParts {
    /// `namespace/name`.
    pub id: Arc<str>,
    /// The spec it runs.
    pub workload: Workload,
    /// Each component's status at start.
    pub components: Vec<ComponentStatus>,
    /// Where its HTTP requests go, if it serves HTTP.
    pub http: Option<Arc<HttpTarget>>,
    /// Requests it serves at once; more wait for admission.
    pub max_concurrent: u32,
    /// Its long-lived service, if it has one.
    pub service: Option<Service>,
    /// What plugins drive for it (subscriptions); dropped with it.
    pub served: Vec<nimbus_plugin::ServeGuard>,
    /// The plugins among them that deliver without an HTTP request.
    pub driven_by: Vec<&'static str>,
    /// Its `emptyDir` volumes, removed with it.
    pub scratch: Vec<tempfile::TempDir>,
}

impl RunningWorkload {
    /// The running workload made of `parts`, started now.
    pub fn new(parts: WorkloadParts) -> Self {
        Self {
            id: parts.id,
            workload: parts.workload,
            components: parts.components,
            http: parts.http,
            admission: Arc::new(Cap::new(parts.max_concurrent as usize)),
            started_at: SystemTime::now(),
            service: parts.service,
            served: std::sync::Mutex::new(parts.served),
            driven_by: parts.driven_by,
            _scratch: parts.scratch,
        }
    }
}

impl RunningWorkload {
    /// Stops what plugins drive for it. The host calls this when the
    /// workload stops or is replaced: the workload table frees a removed
    /// entry only once no reader can still see it, which may be much later.
    pub fn stop_serving(&self) {
        let served = std::mem::take(&mut *self.served.lock().unwrap_or_else(|e| e.into_inner()));
        drop(served);
    }

    /// The workload's status, reported as being in `state`.
    pub fn status(&self, state: WorkloadState) -> WorkloadStatus {
        WorkloadStatus {
            id: self.id.to_string(),
            state,
            components: self.components.clone(),
            hosts: self.workload.spec.http_hosts(),
            started_at: self
                .started_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            service: self.service.as_ref().map(Service::status),
        }
    }

    /// Whether a component of the workload serves plain HTTP requests.
    pub fn has_http_handler(&self) -> bool {
        self.http.is_some()
    }

    /// Serves one request through the workload's HTTP component (or its
    /// middleware chain), within its admission limit and deadline.
    pub async fn handle<B>(
        self: Arc<Self>,
        request: http::Request<B>,
        usage: Option<Arc<RequestUsage>>,
    ) -> http::Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<HttpError>,
    {
        let Some(http) = &self.http else {
            return error_response(
                http::StatusCode::SERVICE_UNAVAILABLE,
                &format!("workload `{}` has no HTTP handler", self.id),
            );
        };
        let Some(permit) = self.admission.try_claim() else {
            if let Some(metrics) = &http.metrics {
                metrics
                    .request()
                    .finish(http::StatusCode::SERVICE_UNAVAILABLE);
            }
            return error_response(
                http::StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "workload `{}` is at its limit of {} concurrent requests",
                    self.id,
                    self.admission.max()
                ),
            );
        };
        let fate = Arc::new(RequestFate::default());
        let mut request = sender_watched(request, &fate);
        if http.middleware {
            absolute_uri(&mut request);
        }
        match http.dispatch(&self.id, request, usage, fate).await {
            Ok(response) => response.map(|body| {
                PermitBody {
                    inner: body,
                    _permit: permit,
                }
                .boxed_unsync()
            }),
            Err(failure) => error_response(failure.status, &failure.message),
        }
    }
}

// How another workload's outgoing request reaches this one in memory (the
// outbound hooks sit below the workload layer and know it only as this).
impl InMemoryTarget for RunningWorkload {
    fn label(&self) -> &str {
        &self.id
    }

    fn serve(self: Arc<Self>, request: http::Request<WasiBody>) -> InMemoryResponse {
        Box::pin(self.handle(request, None))
    }
}

/// Gives an origin-form request (HTTP/1.1 `GET /path` plus `Host`) an
/// absolute URI, so a middleware that forwards it as-is names an authority
/// (P3 requests carry no `Host` header; the guest cannot see it).
fn absolute_uri<B>(request: &mut http::Request<B>) {
    if request.uri().authority().is_some() {
        return;
    }
    let Some(host) = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok())
    else {
        return;
    };
    let mut parts = request.uri().clone().into_parts();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(host);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
}

/// Abandons its request when dropped before [`AbandonOnDrop::finish`]:
/// the client left, so the guest's work for it can stop.
struct AbandonOnDrop(Option<Arc<RequestFate>>);

impl AbandonOnDrop {
    fn finish(&mut self) {
        if let Some(fate) = self.0.take() {
            fate.finish();
        }
    }
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if let Some(fate) = self.0.take() {
            fate.abandon();
        }
    }
}

/// A component's response body as the client gets it: an end of stream
/// after the instance failed becomes an error, so the client sees a cut
/// (no terminating chunk, or a stream reset) instead of a short body that
/// looks whole; dropped before its end, it abandons the request.
struct FateBody {
    inner: WasiBody,
    fate: Arc<RequestFate>,
    watch: AbandonOnDrop,
    /// Bytes still owed under the response's `content-length`: hyper drops
    /// such a body once they are written, without polling it to its end.
    remaining: Option<u64>,
}

/// How many body bytes a response owes the client, when that is known:
/// its `content-length`, or none for HEAD, 204 and 304.
fn body_length(response: &http::Response<WasiBody>, head_request: bool) -> Option<u64> {
    let status = response.status();
    if head_request
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED
    {
        return Some(0);
    }
    response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

impl http_body::Body for FateBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, HttpError>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll
            && let Some(data) = frame.data_ref()
            && let Some(remaining) = self.remaining
        {
            let remaining = remaining.saturating_sub(data.len() as u64);
            self.remaining = Some(remaining);
            if remaining == 0 && !self.fate.aborted() {
                // All that was promised is out: the end, not an abandonment.
                self.watch.finish();
            }
        }
        match poll {
            // hyper stops polling a body that says it has ended: that is
            // its end too.
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() && !self.fate.aborted() => {
                self.watch.finish();
                poll
            }
            Poll::Ready(None) if self.fate.aborted() => {
                self.watch.finish();
                Poll::Ready(Some(Err(HttpError::InternalError(Some(
                    "the component failed before its response was complete".into(),
                )))))
            }
            Poll::Ready(None | Some(Err(_))) => {
                self.watch.finish();
                poll
            }
            poll => poll,
        }
    }

    fn is_end_stream(&self) -> bool {
        // Never claim the end early: an aborted instance's end is an error.
        self.inner.is_end_stream() && !self.fate.aborted()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// `request` with a body that tells `fate` when it fails: an error from a
/// request body is its sender's (the connection broke, the stream was
/// reset, the calling component's body failed).
pub(crate) fn sender_watched<B>(
    request: http::Request<B>,
    fate: &Arc<RequestFate>,
) -> http::Request<WasiBody>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<HttpError>,
{
    request.map(|inner| {
        SenderBody {
            inner,
            fate: fate.clone(),
        }
        .boxed_unsync()
    })
}

/// See [`sender_watched`].
struct SenderBody<B> {
    inner: B,
    fate: Arc<RequestFate>,
}

impl<B> http_body::Body for SenderBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<HttpError>,
{
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(error))) => {
                self.fate.sender_broke_off();
                Poll::Ready(Some(Err(error.into())))
            }
            poll => poll.map(|frame| frame.map(|result| result.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response body holding the workload's admission permit until the body
/// is fully sent, so streaming responses count against concurrency too.
struct PermitBody {
    inner: WasiBody,
    _permit: CapClaim,
}

impl http_body::Body for PermitBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, HttpError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
