//! A real OTLP/gRPC receiver for tests: the collector's trace, metrics and
//! logs services, built from the protocol's own generated types and served
//! with tonic on a loopback port. It keeps everything it is sent.

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
pub use opentelemetry_proto::tonic::trace::v1::Span;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Received {
    /// Spans with their resource's `service.name`.
    spans: Mutex<Vec<(String, Span)>>,
    logs: Mutex<Vec<LogRecord>>,
    metrics: Mutex<Vec<Metric>>,
}

#[derive(Clone, Default)]
struct Collector(Arc<Received>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .map(|v| format!("{:?}", v.value))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let mut logs = self.0.logs.lock().unwrap();
        for resource in request.into_inner().resource_logs {
            for scope in resource.scope_logs {
                logs.extend(scope.log_records);
            }
        }
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut metrics = self.0.metrics.lock().unwrap();
        for resource in request.into_inner().resource_metrics {
            for scope in resource.scope_metrics {
                metrics.extend(scope.metrics);
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

type Reply = std::pin::Pin<
    Box<
        dyn Future<Output = Result<http::Response<tonic::body::Body>, std::convert::Infallible>>
            + Send,
    >,
>;

/// Serves the three collector services over HTTP/2, routed by gRPC path.
async fn serve(listener: tokio::net::TcpListener, collector: Collector) {
    use tonic::codegen::Service as _;
    let traces = TraceServiceServer::new(collector.clone());
    let logs = LogsServiceServer::new(collector.clone());
    let metrics = MetricsServiceServer::new(collector);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (traces, logs, metrics) = (traces.clone(), logs.clone(), metrics.clone());
        let service = hyper::service::service_fn(
            move |request: http::Request<hyper::body::Incoming>| -> Reply {
                let path = request.uri().path();
                if path.starts_with("/opentelemetry.proto.collector.trace.v1.TraceService/") {
                    let mut service = traces.clone();
                    Box::pin(async move { service.call(request).await })
                } else if path.starts_with("/opentelemetry.proto.collector.logs.v1.LogsService/") {
                    let mut service = logs.clone();
                    Box::pin(async move { service.call(request).await })
                } else if path
                    .starts_with("/opentelemetry.proto.collector.metrics.v1.MetricsService/")
                {
                    let mut service = metrics.clone();
                    Box::pin(async move { service.call(request).await })
                } else {
                    let status = tonic::Status::unimplemented(path.to_string());
                    Box::pin(async move { Ok(status.into_http()) })
                }
            },
        );
        tokio::spawn(async move {
            let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// An OTLP/gRPC collector on a free loopback port, stopped when dropped.
pub struct OtlpReceiver {
    endpoint: String,
    collector: Collector,
    _runtime: tokio::runtime::Runtime,
}

impl OtlpReceiver {
    /// Starts the receiver on its own runtime.
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the OTLP receiver");
        let collector = Collector::default();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port for the OTLP receiver");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(serve(listener, collector.clone()));
        Self {
            endpoint,
            collector,
            _runtime: runtime,
        }
    }

    /// `http://127.0.0.1:PORT`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Every span received so far, with its resource's `service.name`
    /// (as the value's debug form).
    pub fn spans(&self) -> Vec<(String, Span)> {
        self.collector.0.spans.lock().unwrap().clone()
    }

    /// Every log record received so far.
    pub fn logs(&self) -> Vec<LogRecord> {
        self.collector.0.logs.lock().unwrap().clone()
    }

    /// Every metric received so far (one entry per metric per export).
    pub fn metrics(&self) -> Vec<Metric> {
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
