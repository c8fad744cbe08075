//! Request tracing: the spans one request makes on its way through the host,
//! and the W3C trace context it carries in and out.
//!
//! The tree is `request` (the ingress, kind server) → `component` (each
//! layer that handles it) → `plugin` calls and `outbound` requests (kind
//! client). A request handed in memory to another workload of the host
//! continues the tree under the `outbound` span that sent it.
//!
//! Spans are `tracing` spans under the target [`TARGET`], at INFO. A host
//! that exports them (the CLI's OpenTelemetry layer) enables that target;
//! otherwise every callsite is disabled and a span costs one cached interest
//! check, no allocation. Context crosses process boundaries through the
//! global OpenTelemetry propagator, which an exporting host sets to W3C
//! trace context: an incoming `traceparent` becomes the request span's
//! parent and outbound requests carry the context on. With no propagator
//! set (the default), no header is read or written.

use opentelemetry::propagation::{Extractor, Injector};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The `tracing` target of every request span.
pub const TARGET: &str = "nimbus::trace";

/// The span of one request at the ingress, child of the caller's context
/// when the request carries one.
/// `host` reads the request's host name (the router's rule); it is called
/// only when the span is recorded.
pub fn request_span(
    parts: &http::request::Parts,
    host: fn(&http::request::Parts) -> Option<std::borrow::Cow<'_, str>>,
) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "request",
        otel.name = %parts.method,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %parts.method,
        url.path = parts.uri.path(),
        server.address = Empty,
        http.response.status_code = Empty,
        nimbus.workload = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    if let Some(host) = host(parts) {
        span.record("server.address", host.as_ref());
    }
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(&parts.headers))
    });
    // Fails only when no OpenTelemetry layer is installed, and then there
    // is nothing to link.
    let _ = span.set_parent(parent);
    span
}

/// The trace context a request's calls go under: kept in the instance's
/// store (and passed to a middleware's next layer in the request's
/// extensions) instead of the span itself, so that span still ends when
/// its request does.
#[derive(Clone, Debug)]
pub struct Parent(opentelemetry::Context);

impl Parent {
    /// The context of `span`; `None` when tracing is off.
    pub fn of(span: &Span) -> Option<Self> {
        (!span.is_disabled()).then(|| Self(span.context()))
    }

    /// The OpenTelemetry span context of this work (trace and span id,
    /// flags, trace state), which a guest continues its own trace from
    /// (`wasi:otel`'s `outer-span-context`).
    pub fn span_context(&self) -> opentelemetry::trace::SpanContext {
        use opentelemetry::trace::TraceContextExt as _;
        self.0.span().span_context().clone()
    }

    /// Makes `span` the child of `parent`, if there is one.
    fn adopt(parent: Option<&Self>, span: &Span) {
        if let Some(parent) = parent
            && !span.is_disabled()
        {
            // Fails only when no OpenTelemetry layer is installed.
            let _ = span.set_parent(parent.0.clone());
        }
    }
}

/// The span of one layer (handler or middleware) handling `request`: a
/// child of the current span, or of the layer that called it inward.
pub fn component_span<B>(workload: &str, component: &str, request: &http::Request<B>) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "component",
        otel.name = %format_args!("component {component}"),
        otel.status_code = Empty,
        nimbus.workload = workload,
        nimbus.component = component,
        http.response.status_code = Empty,
    );
    Parent::adopt(request.extensions().get::<Parent>(), &span);
    span
}

/// The span of one outgoing request, under `parent` (the component span of
/// the request the guest is handling); puts its context in the request's
/// headers for the next hop.
pub fn outbound_span(parent: Option<&Parent>, request: &mut http::Request<impl Sized>) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "outbound",
        otel.name = %request.method(),
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = %request.method(),
        server.address = request.uri().host().unwrap_or(""),
        url.full = Empty,
        http.response.status_code = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    Parent::adopt(parent, &span);
    // The query string stays out of traces, as out of the access log.
    span.record(
        "url.full",
        format!(
            "{}://{}{}",
            request.uri().scheme_str().unwrap_or("http"),
            request.uri().authority().map_or("", |a| a.as_str()),
            request.uri().path()
        ),
    );
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(request.headers_mut()));
    });
    span
}

/// The span of one message delivered to a component's `handle-message`: the
/// root of what the delivery does.
pub fn message_span(workload: &str, component: &str, subject: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        parent: None,
        "message",
        otel.name = %format_args!("process {subject}"),
        otel.kind = "consumer",
        otel.status_code = Empty,
        messaging.system = "nats",
        messaging.destination.name = subject,
        nimbus.workload = workload,
        nimbus.component = component,
    )
}

/// The span of one call of a component's WebSocket handler (`event` is
/// `on-open`, `on-message` or `on-close`): the root of what the call does.
pub fn websocket_span(workload: &str, component: &str, event: &str, connection: u64) -> Span {
    tracing::info_span!(
        target: TARGET,
        parent: None,
        "websocket",
        otel.name = %format_args!("websocket {event}"),
        otel.kind = "server",
        otel.status_code = Empty,
        nimbus.websocket.connection = connection,
        nimbus.workload = workload,
        nimbus.component = component,
    )
}

/// The span of one plugin call, under `parent`.
pub fn plugin_span(parent: Option<&Parent>, interface: &str, function: &str) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "plugin",
        otel.name = %format_args!("{interface} {function}"),
        otel.kind = "client",
        otel.status_code = Empty,
        rpc.system = "wasi",
        rpc.service = interface,
        rpc.method = function,
    );
    Parent::adopt(parent, &span);
    span
}

/// Records the status a span's request ended with; a server error marks
/// the span as failed.
pub fn record_status(span: &Span, status: http::StatusCode) {
    if span.is_disabled() {
        return;
    }
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// Marks a span as failed.
pub fn record_error(span: &Span) {
    if !span.is_disabled() {
        span.record("otel.status_code", "ERROR");
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}
