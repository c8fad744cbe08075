//! A real OTLP receiver for tests: the collector's trace, metrics and logs
//! services, built from the protocol's own generated types, served on a
//! loopback port over gRPC (tonic) and over HTTP with protobuf bodies
//! (`POST /v1/traces`, …), in plain text or over TLS with a certificate of
//! its own. It keeps everything it is sent, with the attributes of the
//! resource each item came under.

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
pub use opentelemetry_proto::tonic::logs::v1::LogRecord;
pub use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::resource::v1::Resource;
pub use opentelemetry_proto::tonic::trace::v1::Span;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A resource's attributes: string values as they are, others in their
/// debug form.
pub type ResourceAttributes = BTreeMap<String, String>;

fn resource_attributes(resource: Option<&Resource>) -> ResourceAttributes {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    resource
        .iter()
        .flat_map(|r| &r.attributes)
        .map(|a| {
            let value = match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                other => format!("{other:?}"),
            };
            (a.key.clone(), value)
        })
        .collect()
}

#[derive(Default)]
struct Received {
    /// Spans with their resource's `service.name` and attributes.
    spans: Mutex<Vec<(String, ResourceAttributes, Span)>>,
    logs: Mutex<Vec<(ResourceAttributes, LogRecord)>>,
    metrics: Mutex<Vec<(ResourceAttributes, Metric)>>,
    /// Paths of the OTLP/HTTP requests, in order.
    http_posts: Mutex<Vec<String>>,
}

#[derive(Clone, Default)]
struct Collector(Arc<Received>);

impl Collector {
    fn keep_traces(&self, request: ExportTraceServiceRequest) {
        let mut spans = self.0.spans.lock().unwrap();
        for resource in request.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .map(|v| format!("{:?}", v.value))
                .unwrap_or_default();
            let attributes = resource_attributes(resource.resource.as_ref());
            for scope in resource.scope_spans {
                spans.extend(
                    scope
                        .spans
                        .into_iter()
                        .map(|s| (service.clone(), attributes.clone(), s)),
                );
            }
        }
    }

    fn keep_logs(&self, request: ExportLogsServiceRequest) {
        let mut logs = self.0.logs.lock().unwrap();
        for resource in request.resource_logs {
            let attributes = resource_attributes(resource.resource.as_ref());
            for scope in resource.scope_logs {
                logs.extend(
                    scope
                        .log_records
                        .into_iter()
                        .map(|l| (attributes.clone(), l)),
                );
            }
        }
    }

    fn keep_metrics(&self, request: ExportMetricsServiceRequest) {
        let mut metrics = self.0.metrics.lock().unwrap();
        for resource in request.resource_metrics {
            let attributes = resource_attributes(resource.resource.as_ref());
            for scope in resource.scope_metrics {
                metrics.extend(scope.metrics.into_iter().map(|m| (attributes.clone(), m)));
            }
        }
    }

    /// One OTLP/HTTP request: a protobuf body posted to the signal's path,
    /// answered with the (empty) protobuf export response.
    async fn http_export(
        &self,
        request: http::Request<hyper::body::Incoming>,
    ) -> http::Response<tonic::body::Body> {
        use http_body_util::BodyExt as _;
        use prost::Message as _;
        let path = request.uri().path().to_string();
        self.0.http_posts.lock().unwrap().push(path.clone());
        let answer = |status: http::StatusCode, body: Vec<u8>| {
            http::Response::builder()
                .status(status)
                .header("content-type", "application/x-protobuf")
                .body(tonic::body::Body::new(http_body_util::Full::new(
                    bytes::Bytes::from(body),
                )))
                .unwrap()
        };
        let Ok(body) = request.into_body().collect().await else {
            return answer(http::StatusCode::BAD_REQUEST, Vec::new());
        };
        let body = body.to_bytes();
        let decoded = match path.as_str() {
            "/v1/traces" => ExportTraceServiceRequest::decode(body)
                .map(|r| self.keep_traces(r))
                .map(|()| ExportTraceServiceResponse::default().encode_to_vec()),
            "/v1/logs" => ExportLogsServiceRequest::decode(body)
                .map(|r| self.keep_logs(r))
                .map(|()| ExportLogsServiceResponse::default().encode_to_vec()),
            "/v1/metrics" => ExportMetricsServiceRequest::decode(body)
                .map(|r| self.keep_metrics(r))
                .map(|()| ExportMetricsServiceResponse::default().encode_to_vec()),
            _ => return answer(http::StatusCode::NOT_FOUND, Vec::new()),
        };
        match decoded {
            Ok(response) => answer(http::StatusCode::OK, response),
            Err(_) => answer(http::StatusCode::BAD_REQUEST, Vec::new()),
        }
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.keep_traces(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.keep_logs(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.keep_metrics(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

type Reply = std::pin::Pin<
    Box<
        dyn Future<Output = Result<http::Response<tonic::body::Body>, std::convert::Infallible>>
            + Send,
    >,
>;

/// Serves the three collector services (inside TLS when `tls` is given):
/// gRPC routed by service path, OTLP/HTTP by `/v1/SIGNAL`.
async fn serve(
    listener: tokio::net::TcpListener,
    collector: Collector,
    tls: Option<tokio_rustls::TlsAcceptor>,
    http2_only: bool,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let collector = collector.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                // A client that rejects the certificate ends the handshake.
                Some(tls) => {
                    if let Ok(stream) = tls.accept(stream).await {
                        serve_connection(stream, collector, http2_only).await;
                    }
                }
                None => serve_connection(stream, collector, http2_only).await,
            }
        });
    }
}

async fn serve_connection<IO>(io: IO, collector: Collector, http2_only: bool)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tonic::codegen::Service as _;
    let traces = TraceServiceServer::new(collector.clone());
    let logs = LogsServiceServer::new(collector.clone());
    let metrics = MetricsServiceServer::new(collector.clone());
    let service = hyper::service::service_fn(
        move |request: http::Request<hyper::body::Incoming>| -> Reply {
            let path = request.uri().path();
            if path.starts_with("/opentelemetry.proto.collector.trace.v1.TraceService/") {
                let mut service = traces.clone();
                Box::pin(async move { service.call(request).await })
            } else if path.starts_with("/opentelemetry.proto.collector.logs.v1.LogsService/") {
                let mut service = logs.clone();
                Box::pin(async move { service.call(request).await })
            } else if path.starts_with("/opentelemetry.proto.collector.metrics.v1.MetricsService/")
            {
                let mut service = metrics.clone();
                Box::pin(async move { service.call(request).await })
            } else {
                // OTLP/HTTP; a path that is no signal's gets a 404.
                let collector = collector.clone();
                Box::pin(async move { Ok(collector.http_export(request).await) })
            }
        },
    );
    // gRPC arrives as HTTP/2, OTLP/HTTP as either version.
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    if http2_only {
        builder = builder.http2_only();
    }
    let _ = builder
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, and the
/// acceptor that presents it (offering HTTP/2, as gRPC clients require,
/// and HTTP/1.1).
fn self_signed() -> (String, tokio_rustls::TlsAcceptor) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("a self-signed certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .expect("a server TLS config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (
        certified.cert.pem(),
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    )
}

/// An OTLP collector (gRPC and HTTP) on a loopback port, stopped when
/// dropped.
pub struct OtlpReceiver {
    endpoint: String,
    certificate_pem: Option<String>,
    collector: Collector,
    _runtime: tokio::runtime::Runtime,
}

impl OtlpReceiver {
    /// Starts a plain-text receiver on a free port.
    pub fn start() -> Self {
        Self::start_on("127.0.0.1:0", false)
    }

    /// Starts a receiver on a free port that speaks TLS only, with a fresh
    /// self-signed certificate ([`Self::certificate_pem`]).
    pub fn start_tls() -> Self {
        Self::start_on("127.0.0.1:0", true)
    }

    /// Starts a receiver on `addr` (a port chosen earlier, to come up where
    /// an exporter was already pointed).
    pub fn start_on(addr: &str, tls: bool) -> Self {
        Self::start_with(addr, tls, false)
    }

    /// Starts a plain-text receiver that speaks HTTP/2 only, as gRPC
    /// servers do (tonic's own server refuses HTTP/1.1): a gRPC request
    /// sent as HTTP/1.1 fails here.
    pub fn start_grpc_only() -> Self {
        Self::start_with("127.0.0.1:0", false, true)
    }

    fn start_with(addr: &str, tls: bool, http2_only: bool) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the OTLP receiver");
        let collector = Collector::default();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .expect("a loopback port for the OTLP receiver");
        let port = listener.local_addr().unwrap().port();
        let (endpoint, certificate_pem, acceptor) = if tls {
            let (pem, acceptor) = self_signed();
            (
                format!("https://localhost:{port}"),
                Some(pem),
                Some(acceptor),
            )
        } else {
            (format!("http://127.0.0.1:{port}"), None, None)
        };
        runtime.spawn(serve(listener, collector.clone(), acceptor, http2_only));
        Self {
            endpoint,
            certificate_pem,
            collector,
            _runtime: runtime,
        }
    }

    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` with TLS, for
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The TLS receiver's certificate (PEM), for
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`.
    pub fn certificate_pem(&self) -> Option<&str> {
        self.certificate_pem.as_deref()
    }

    /// Every span received so far, with its resource's `service.name`
    /// (as the value's debug form).
    pub fn spans(&self) -> Vec<(String, Span)> {
        let spans = self.collector.0.spans.lock().unwrap();
        spans
            .iter()
            .map(|(s, _, span)| (s.clone(), span.clone()))
            .collect()
    }

    /// Every span received so far, with its resource's attributes.
    pub fn spans_with_resource(&self) -> Vec<(ResourceAttributes, Span)> {
        let spans = self.collector.0.spans.lock().unwrap();
        spans
            .iter()
            .map(|(_, r, span)| (r.clone(), span.clone()))
            .collect()
    }

    /// Every log record received so far.
    pub fn logs(&self) -> Vec<LogRecord> {
        let logs = self.collector.0.logs.lock().unwrap();
        logs.iter().map(|(_, l)| l.clone()).collect()
    }

    /// Every log record received so far, with its resource's attributes.
    pub fn logs_with_resource(&self) -> Vec<(ResourceAttributes, LogRecord)> {
        self.collector.0.logs.lock().unwrap().clone()
    }

    /// The paths of the OTLP/HTTP requests received so far (`/v1/traces`,
    /// …); gRPC exports are not listed.
    pub fn http_posts(&self) -> Vec<String> {
        self.collector.0.http_posts.lock().unwrap().clone()
    }

    /// Every metric received so far (one entry per metric per export).
    pub fn metrics(&self) -> Vec<Metric> {
        let metrics = self.collector.0.metrics.lock().unwrap();
        metrics.iter().map(|(_, m)| m.clone()).collect()
    }

    /// Every metric received so far, with its resource's attributes.
    pub fn metrics_with_resource(&self) -> Vec<(ResourceAttributes, Metric)> {
        self.collector.0.metrics.lock().unwrap().clone()
    }

    /// Waits up to `timeout` until `done` holds for what was received.
    pub fn wait_until(&self, timeout: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
