//! `wasi:otel` end to end in one process: the `p2_otel` guest's span, log
//! record and metric reach the host's guest-telemetry sink (in-memory
//! exporters here; the CLI's tests point real OTLP exporters at a
//! receiver) under the request's component span, tagged with the workload
//! and component; with no exporters the calls succeed and nothing is kept,
//! and a guest sending garbage gets its answer without a trap.

use crate::common;

use common::*;
use nimbus_host::HostConfig;
use nimbus_host::http::DynamicRouter;
use nimbus_host::plugins::otel::GuestTelemetry;
use opentelemetry::logs::AnyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use test_programs::P2_OTEL;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::{Layer as _, Registry};

/// The `nimbus.workload` and `nimbus.component` of a resource.
fn origin(resource: &Resource) -> (String, String) {
    let get = |key: &'static str| {
        resource
            .get(&opentelemetry::Key::new(key))
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    (get("nimbus.workload"), get("nimbus.component"))
}

/// `(nimbus.workload, nimbus.component)` of the resource an item came under.
type Origin = (String, String);
/// What is kept of items, shared by an exporter and its clones.
type Kept<T> = Arc<Mutex<Vec<T>>>;

/// Keeps every span it is sent, with the resource it was sent under.
#[derive(Debug, Clone, Default)]
struct Spans {
    kept: Kept<(SpanData, Origin)>,
    resource: Arc<Mutex<Origin>>,
}

impl SpanExporter for Spans {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let origin = self.resource.lock().unwrap().clone();
        let mut kept = self.kept.lock().unwrap();
        kept.extend(batch.into_iter().map(|s| (s, origin.clone())));
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        *self.resource.lock().unwrap() = origin(resource);
    }
}

impl Spans {
    fn named(&self, name: &str) -> Vec<(SpanData, Origin)> {
        let kept = self.kept.lock().unwrap();
        kept.iter()
            .filter(|(s, _)| s.name == name)
            .cloned()
            .collect()
    }
}

/// Keeps every log record's body, trace id and origin.
#[derive(Debug, Clone, Default)]
struct Logs {
    kept: Kept<(Option<AnyValue>, Option<String>, Origin)>,
    resource: Arc<Mutex<Origin>>,
}

impl LogExporter for Logs {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let origin = self.resource.lock().unwrap().clone();
        let mut kept = self.kept.lock().unwrap();
        for (record, _) in batch.iter() {
            kept.push((
                record.body().cloned(),
                record.trace_context().map(|c| c.trace_id.to_string()),
                origin.clone(),
            ));
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        *self.resource.lock().unwrap() = origin(resource);
    }
}

/// Keeps every u64 sum point: (name, value, origin).
#[derive(Debug, Clone, Default)]
struct Metrics {
    kept: Kept<(String, u64, Origin)>,
}

impl PushMetricExporter for Metrics {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let origin = origin(metrics.resource());
        let mut kept = self.kept.lock().unwrap();
        for scope in metrics.scope_metrics() {
            for metric in scope.metrics() {
                if let AggregatedMetrics::U64(MetricData::Sum(sum)) = metric.data() {
                    for point in sum.data_points() {
                        kept.push((metric.name().to_string(), point.value(), origin.clone()));
                    }
                }
            }
        }
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// `outer TRACE-SPAN` and `span SPAN` from the guest's answer.
fn ids(body: &str) -> ((String, String), String) {
    let mut outer = (String::new(), String::new());
    let mut span = String::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("outer ") {
            let (t, s) = rest.split_once('-').unwrap_or_default();
            outer = (t.to_string(), s.to_string());
        } else if let Some(rest) = line.strip_prefix("span ") {
            span = rest.to_string();
        }
    }
    (outer, span)
}

#[tokio::test(flavor = "current_thread")]
pub(crate) async fn guest_spans_logs_and_metrics_join_the_request_trace() {
    // The host's request spans, as the CLI's OpenTelemetry layer makes them.
    let host_spans = Spans::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(host_spans.clone())
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("test"))
        .with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target(nimbus_host::trace::TARGET, tracing::Level::INFO),
        );
    let _guard = tracing::subscriber::set_default(Registry::default().with(layer));

    let (guest_spans, guest_logs, guest_metrics) =
        (Spans::default(), Logs::default(), Metrics::default());
    let telemetry = GuestTelemetry::builder()
        .interval(Duration::from_millis(50))
        .resource(Resource::builder_empty().with_service_name("edge").build())
        .spans(guest_spans.clone())
        .logs(guest_logs.clone())
        .metrics(guest_metrics.clone())
        .build()
        .unwrap();
    let t = TestHost::start_with(
        HostConfig {
            cache_dir: Some(shared_cache_dir()),
            guest_telemetry: telemetry.clone(),
            ..HostConfig::default()
        },
        Arc::new(DynamicRouter::new()),
    )
    .await;
    t.host
        .start_workload(http_workload("otel", P2_OTEL, "otel.test"))
        .await
        .unwrap();

    let (status, body) = t.get("otel.test", "/").await;
    assert_eq!(status, 200, "{body}");
    let ((outer_trace, outer_span), span_id) = ids(&body);

    // The component span the guest ran under, as the host exported it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let component = loop {
        if let Some((span, _)) = host_spans.named("component otel").pop() {
            break span;
        }
        assert!(Instant::now() < deadline, "no component span was exported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(outer_trace, component.span_context.trace_id().to_string());
    assert_eq!(outer_span, component.span_context.span_id().to_string());

    telemetry.flush(Duration::from_secs(10));
    let workload = ("test/otel".to_string(), "otel".to_string());

    let spans = guest_spans.named("guest work");
    assert_eq!(spans.len(), 1, "{spans:?}");
    let (span, from) = &spans[0];
    assert_eq!(
        span.span_context.trace_id(),
        component.span_context.trace_id()
    );
    assert_eq!(span.parent_span_id, component.span_context.span_id());
    assert!(span.parent_span_is_remote);
    assert_eq!(span.span_context.span_id().to_string(), span_id);
    assert_eq!(
        span.attributes,
        [opentelemetry::KeyValue::new("guest.answer", 42i64)]
    );
    assert_eq!(from, &workload);

    let logs = guest_logs.kept.lock().unwrap().clone();
    assert_eq!(
        logs,
        [(
            Some(AnyValue::String("hello from the guest".into())),
            Some(component.span_context.trace_id().to_string()),
            workload.clone()
        )]
    );

    let metrics = guest_metrics.kept.lock().unwrap().clone();
    assert_eq!(metrics, [("guest_requests".to_string(), 1, workload)]);

    // Garbage in: answered, nothing trapped, only what is valid kept (the
    // one well-formed span of `/bad`, cut to the caps).
    let (status, body) = t.get("otel.test", "/bad").await;
    assert_eq!((status, body.as_str()), (200, "survived (export: ok)\n"));
    telemetry.flush(Duration::from_secs(10));
    let heavy = guest_spans.named(&"n".repeat(256));
    assert_eq!(heavy.len(), 1);
    assert!(heavy[0].0.attributes.len() < 256);
    assert!(heavy[0].0.events.events.len() <= 128);
    assert_eq!(guest_spans.kept.lock().unwrap().len(), 2);
    assert_eq!(telemetry.dropped(), 0);
    telemetry.shutdown(Duration::from_secs(10));
}

#[tokio::test(flavor = "current_thread")]
pub(crate) async fn wasi_otel_without_exporters_succeeds_and_keeps_nothing() {
    let t = TestHost::dynamic().await;
    t.host
        .start_workload(http_workload("otel", P2_OTEL, "otel.test"))
        .await
        .unwrap();
    let (status, body) = t.get("otel.test", "/").await;
    assert_eq!(status, 200, "{body}");
    // No trace: the invalid context, all zeros.
    let ((trace, span), _) = ids(&body);
    assert_eq!(
        (trace.as_str(), span.as_str()),
        ("0".repeat(32).as_str(), "0".repeat(16).as_str())
    );
    assert_eq!(
        t.get("otel.test", "/bad").await,
        (200, "survived (export: ok)\n".to_string())
    );
}
