//! OpenTelemetry export over OTLP (the `otlp` cargo feature): the trace,
//! metric and log exporters, the runtime their exports run on, the host's
//! Prometheus series read as OTLP metrics, and the sink guests' own
//! telemetry (`wasi:otel`) goes to: a second exporter per signal, with the
//! same settings, fed by `nimbus_otel::GuestTelemetry` (which tags each
//! batch with the workload and component that sent it).
//!
//! The SDK exports from its own threads, and the gRPC and HTTP clients need
//! a Tokio reactor there: every exporter runs its exports on a small runtime
//! owned here, which outlives the providers' final flush. The SDK drops a
//! failed batch without a word; here the first failure of a signal is a
//! warning on stderr (collector down, TLS refused), and its recovery a
//! notice.

use super::signal::Signal;
use super::transport::Protocol;
use anyhow::Context as _;
use nimbus_host::metrics::{MetricType, Metrics};
use nimbus_host::plugins::otel::GuestTelemetry;
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing_subscriber::{EnvFilter, Layer as _, Registry};

/// Where export failures are reported.
const EXPORT_TARGET: &str = "nimbus::otlp";

/// Crates the exporters use, and their failure reports: none of these logs
/// may be exported (each export would log, and be exported again).
const EXPORT_CRATES: &[&str] = &[
    "opentelemetry",
    "tonic",
    "h2",
    "hyper",
    "tower",
    "reqwest",
    "rustls",
    EXPORT_TARGET,
];

/// The meter provider, once metrics export is on; hosts attach their
/// series to it when they start.
static METER: OnceLock<SdkMeterProvider> = OnceLock::new();

/// Where guests' `wasi:otel` telemetry goes, once export is on; hosts
/// take it in their config when they start.
static GUESTS: OnceLock<GuestTelemetry> = OnceLock::new();

/// The installed exporters; [`Exporters::shutdown`] flushes them.
pub(super) struct Exporters {
    tracer: Option<SdkTracerProvider>,
    logger: Option<SdkLoggerProvider>,
    meter: Option<SdkMeterProvider>,
    guests: GuestTelemetry,
    runtime: tokio::runtime::Runtime,
}

/// Whose telemetry an exporter carries, for its failure reports.
#[derive(Debug, Clone, Copy)]
enum Source {
    Host,
    Guests,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::Host => "",
            Source::Guests => "guest ",
        }
    }
}

/// A layer of the process's subscriber.
pub(super) type BoxedLayer = Box<dyn tracing_subscriber::Layer<Registry> + Send + Sync>;

/// Starts the exporters of the `wanted` signals (traces, metrics, logs);
/// `otlp_endpoint` is `--otlp-endpoint`.
pub(super) fn install(otlp_endpoint: Option<&str>, wanted: [bool; 3]) -> anyhow::Result<Exporters> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("nimbus-otlp")
        .enable_all()
        .build()
        .context("cannot start the OpenTelemetry exporter's runtime")?;
    let (mut tracer, mut meter, mut logger) = (None, None, None);
    let mut guests = GuestTelemetry::builder().interval(guest_interval());
    let handle = runtime.handle().clone();
    let _entered = runtime.enter();
    let resource = resource();
    guests = guests.resource(resource.clone());
    if wanted[0] {
        let provider = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_batch_exporter(span_exporter(otlp_endpoint, &handle, Source::Host)?)
            .build();
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        tracer = Some(provider);
        guests = guests.spans(span_exporter(otlp_endpoint, &handle, Source::Guests)?);
    }
    if wanted[1] {
        let provider = SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_periodic_exporter(metric_exporter(otlp_endpoint, &handle, Source::Host)?)
            .build();
        let _ = METER.set(provider.clone());
        meter = Some(provider);
        guests = guests.metrics(metric_exporter(otlp_endpoint, &handle, Source::Guests)?);
    }
    if wanted[2] {
        logger = Some(
            SdkLoggerProvider::builder()
                .with_resource(resource)
                .with_batch_exporter(log_exporter(otlp_endpoint, &handle, Source::Host)?)
                .build(),
        );
        guests = guests.logs(log_exporter(otlp_endpoint, &handle, Source::Guests)?);
    }
    let guests = guests.build()?;
    let _ = GUESTS.set(guests.clone());
    drop(_entered);
    Ok(Exporters {
        tracer,
        logger,
        meter,
        guests,
        runtime,
    })
}

/// An OTLP span exporter as the settings say, on the telemetry runtime.
fn span_exporter(
    otlp_endpoint: Option<&str>,
    handle: &tokio::runtime::Handle,
    source: Source,
) -> anyhow::Result<OnRuntime<opentelemetry_otlp::SpanExporter>> {
    let signal = Signal::Traces;
    let protocol = signal.protocol()?;
    let endpoint = signal.endpoint(otlp_endpoint, protocol);
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let exporter = match protocol {
        Protocol::Grpc => signal.grpc(builder.with_tonic(), &endpoint)?.build(),
        Protocol::HttpProtobuf => signal.http(builder.with_http(), &endpoint)?.build(),
    }
    .context("cannot set up the OTLP trace exporter")?;
    Ok(OnRuntime::new(exporter, handle, endpoint, signal, source))
}

/// An OTLP metric exporter as the settings say, on the telemetry runtime.
fn metric_exporter(
    otlp_endpoint: Option<&str>,
    handle: &tokio::runtime::Handle,
    source: Source,
) -> anyhow::Result<OnRuntime<opentelemetry_otlp::MetricExporter>> {
    let signal = Signal::Metrics;
    let protocol = signal.protocol()?;
    let endpoint = signal.endpoint(otlp_endpoint, protocol);
    let builder = opentelemetry_otlp::MetricExporter::builder();
    let exporter = match protocol {
        Protocol::Grpc => signal.grpc(builder.with_tonic(), &endpoint)?.build(),
        Protocol::HttpProtobuf => signal.http(builder.with_http(), &endpoint)?.build(),
    }
    .context("cannot set up the OTLP metrics exporter")?;
    Ok(OnRuntime::new(exporter, handle, endpoint, signal, source))
}

/// An OTLP log exporter as the settings say, on the telemetry runtime.
fn log_exporter(
    otlp_endpoint: Option<&str>,
    handle: &tokio::runtime::Handle,
    source: Source,
) -> anyhow::Result<OnRuntime<opentelemetry_otlp::LogExporter>> {
    let signal = Signal::Logs;
    let protocol = signal.protocol()?;
    let endpoint = signal.endpoint(otlp_endpoint, protocol);
    let builder = opentelemetry_otlp::LogExporter::builder();
    let exporter = match protocol {
        Protocol::Grpc => signal.grpc(builder.with_tonic(), &endpoint)?.build(),
        Protocol::HttpProtobuf => signal.http(builder.with_http(), &endpoint)?.build(),
    }
    .context("cannot set up the OTLP log exporter")?;
    Ok(OnRuntime::new(exporter, handle, endpoint, signal, source))
}

/// How long guest spans and logs wait to be exported: the shorter of the
/// span and log batch delays (`OTEL_BSP_SCHEDULE_DELAY`, default 5 s;
/// `OTEL_BLRP_SCHEDULE_DELAY`, default 1 s), in milliseconds.
fn guest_interval() -> Duration {
    let delay = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(default)
    };
    Duration::from_millis(
        delay("OTEL_BSP_SCHEDULE_DELAY", 5000)
            .min(delay("OTEL_BLRP_SCHEDULE_DELAY", 1000))
            .max(1),
    )
}

/// The sink for guests' telemetry: the exporters' when export is on, the
/// disabled one otherwise.
pub(crate) fn guest_telemetry() -> GuestTelemetry {
    GUESTS.get().cloned().unwrap_or_default()
}

impl Exporters {
    /// The subscriber layers that feed the exporters: spans to the trace
    /// exporter, log lines (through `filter`, with the exporters' own
    /// crates silenced) to the log exporter.
    pub(super) fn layers(
        &self,
        filter: impl Fn(&[&str]) -> anyhow::Result<EnvFilter>,
    ) -> anyhow::Result<Vec<BoxedLayer>> {
        let mut layers: Vec<BoxedLayer> = Vec::new();
        if let Some(provider) = &self.tracer {
            layers.push(Box::new(
                tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer("nimbus"))
                    .with_location(false)
                    .with_threads(false)
                    .with_tracked_inactivity(false)
                    .with_filter(
                        tracing_subscriber::filter::Targets::new()
                            .with_target(nimbus_host::trace::TARGET, tracing::Level::INFO),
                    ),
            ));
        }
        if let Some(provider) = &self.logger {
            let quiet: Vec<String> = EXPORT_CRATES.iter().map(|c| format!("{c}=off")).collect();
            let quiet: Vec<&str> = quiet.iter().map(String::as_str).collect();
            layers.push(Box::new(
                opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(provider)
                    .with_filter(filter(&quiet)?),
            ));
        }
        Ok(layers)
    }

    /// Flushes and stops every exporter (each within its timeout), the
    /// guests' first, while the runtime their exports need still runs.
    pub(crate) fn shutdown(self) {
        self.guests.shutdown(Duration::from_secs(5));
        if let Some(tracer) = &self.tracer {
            let _ = tracer.shutdown_with_timeout(Duration::from_secs(5));
        }
        if let Some(meter) = &self.meter {
            let _ = meter.shutdown_with_timeout(Duration::from_secs(5));
        }
        if let Some(logger) = &self.logger {
            let _ = logger.shutdown_with_timeout(Duration::from_secs(5));
        }
        self.runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

/// `service.name` is `nimbus` unless `OTEL_SERVICE_NAME` or
/// `OTEL_RESOURCE_ATTRIBUTES` says otherwise (the builder reads both).
fn resource() -> Resource {
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok()
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="));
    let builder = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if named {
        builder.build()
    } else {
        builder.with_service_name("nimbus").build()
    }
}

/// Whether the host's metrics are exported over OTLP (accounting must be
/// on for its component series to exist).
pub(crate) fn metrics_exported() -> bool {
    METER.get().is_some()
}

/// Exports `metrics` over OTLP, when metrics export is on: every family
/// becomes an asynchronous instrument read at each export.
pub(crate) fn export_metrics(metrics: &Arc<Metrics>) {
    let Some(provider) = METER.get() else {
        return;
    };
    let meter = provider.meter("nimbus");
    for (name, help, kind) in metrics.families() {
        let (name, help) = (name.clone(), help.clone());
        let read = {
            let metrics = metrics.clone();
            let name = name.clone();
            move |value: fn(&prometheus::proto::Metric) -> f64| {
                let family = metrics.gather().into_iter().find(|f| f.name() == name);
                family
                    .map(|f| {
                        f.get_metric()
                            .iter()
                            .map(|m| (value(m), attributes(m)))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            }
        };
        match kind {
            MetricType::COUNTER => {
                meter
                    .f64_observable_counter(name)
                    .with_description(help)
                    .with_callback(move |observer| {
                        for (value, attrs) in read(|m| m.get_counter().get_value()) {
                            observer.observe(value, &attrs);
                        }
                    })
                    .build();
            }
            MetricType::GAUGE => {
                meter
                    .f64_observable_gauge(name)
                    .with_description(help)
                    .with_callback(move |observer| {
                        for (value, attrs) in read(|m| m.get_gauge().get_value()) {
                            observer.observe(value, &attrs);
                        }
                    })
                    .build();
            }
            MetricType::HISTOGRAM => {
                let sums = read.clone();
                meter
                    .f64_observable_counter(format!("{name}_sum"))
                    .with_description(format!("{help} (sum)"))
                    .with_callback(move |observer| {
                        for (value, attrs) in sums(|m| m.get_histogram().get_sample_sum()) {
                            observer.observe(value, &attrs);
                        }
                    })
                    .build();
                meter
                    .u64_observable_counter(format!("{name}_count"))
                    .with_description(format!("{help} (count)"))
                    .with_callback(move |observer| {
                        for (value, attrs) in read(|m| m.get_histogram().get_sample_count() as f64)
                        {
                            observer.observe(value as u64, &attrs);
                        }
                    })
                    .build();
            }
            _ => {}
        }
    }
}

fn attributes(metric: &prometheus::proto::Metric) -> Vec<KeyValue> {
    metric
        .get_label()
        .iter()
        .map(|l| KeyValue::new(l.name().to_string(), l.value().to_string()))
        .collect()
}

/// An exporter whose exports run on the telemetry runtime. The SDK calls
/// `export` from its own threads, which have no reactor; this blocks that
/// thread on the runtime instead (the SDK's threads block on each export
/// anyway). It also says when exports start failing and when they work
/// again, once each: the SDK itself drops a failed batch silently.
#[derive(Debug)]
struct OnRuntime<E> {
    inner: E,
    handle: tokio::runtime::Handle,
    signal: Signal,
    source: Source,
    endpoint: String,
    failing: AtomicBool,
}

impl<E> OnRuntime<E> {
    fn new(
        inner: E,
        handle: &tokio::runtime::Handle,
        endpoint: String,
        signal: Signal,
        source: Source,
    ) -> Self {
        Self {
            inner,
            handle: handle.clone(),
            signal,
            source,
            endpoint,
            failing: AtomicBool::new(false),
        }
    }

    fn run(&self, export: impl Future<Output = OTelSdkResult>) -> OTelSdkResult {
        let result = self.handle.block_on(export);
        match &result {
            Err(error) if !self.failing.swap(true, Ordering::Relaxed) => {
                // The SDK's and tonic's messages span lines.
                let error = error
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                tracing::warn!(
                    target: EXPORT_TARGET,
                    "OTLP {}{} export to {} failed, dropping the batch (later batches retry; \
                     recovery is logged): {error}",
                    self.source.label(),
                    self.signal.label(),
                    self.endpoint,
                );
            }
            Ok(()) if self.failing.swap(false, Ordering::Relaxed) => {
                tracing::info!(
                    target: EXPORT_TARGET,
                    "OTLP {}{} export to {} works again",
                    self.source.label(),
                    self.signal.label(),
                    self.endpoint,
                );
            }
            _ => {}
        }
        result
    }
}

impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter
    for OnRuntime<E>
{
    fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> impl Future<Output = OTelSdkResult> + Send {
        std::future::ready(self.run(self.inner.export(batch)))
    }

    fn shutdown_with_timeout(&mut self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&mut self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: opentelemetry_sdk::logs::LogExporter> opentelemetry_sdk::logs::LogExporter
    for OnRuntime<E>
{
    fn export(
        &self,
        batch: opentelemetry_sdk::logs::LogBatch<'_>,
    ) -> impl Future<Output = OTelSdkResult> + Send {
        std::future::ready(self.run(self.inner.export(batch)))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: opentelemetry_sdk::metrics::exporter::PushMetricExporter>
    opentelemetry_sdk::metrics::exporter::PushMetricExporter for OnRuntime<E>
{
    fn export(
        &self,
        metrics: &opentelemetry_sdk::metrics::data::ResourceMetrics,
    ) -> impl Future<Output = OTelSdkResult> + Send {
        std::future::ready(self.run(self.inner.export(metrics)))
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
        self.inner.temporality()
    }
}
