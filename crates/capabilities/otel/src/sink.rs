//! [`GuestTelemetry`]: where guest spans, logs and metrics go once they are
//! converted, and the one thread that exports them.
//!
//! Host functions never wait on an exporter: they put the item on a bounded
//! queue (a count and a byte total, both capped) and return; what does not
//! fit is dropped and counted. The thread batches spans and log records
//! until the interval passes or a batch fills, groups them by the component
//! that sent them (each component's resource names it), and hands each
//! group to the exporter of its signal; a metrics export is turned into the
//! SDK's `ResourceMetrics` there and exported as it comes. Exporters are
//! the host's to build (the CLI builds OTLP ones beside its own); a sink
//! built without any is the disabled one, which costs nothing.
//!
//! ```
//! # use nimbus_otel::GuestTelemetry;
//! // No exporters: every call succeeds and nothing is kept.
//! let telemetry = GuestTelemetry::default();
//! assert!(!telemetry.is_enabled());
//! ```

use crate::bindings::wasi::otel::logs::LogRecord as WitLogRecord;
use crate::bindings::wasi::otel::metrics::ResourceMetrics as WitResourceMetrics;
use crate::convert::{self, Converted};
use opentelemetry::logs::LoggerProvider as _;
use opentelemetry::trace::SpanContext;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLogRecord, SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Items the queue holds.
const QUEUE_ITEMS: usize = 4096;
/// Bytes the queued items may hold together (about).
const QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// Spans or log records one export carries at most.
const MAX_BATCH: usize = 512;
/// How long the thread holds items before exporting them, unless told.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// How long an exporter gets to shut down.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Where the sink reports itself.
const TARGET: &str = "nimbus::otel";

/// A telemetry signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Traces,
    Logs,
    Metrics,
}

/// Why the sink did not take something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The queue to the exporting thread is full (or the sink stopped); the
    /// item was dropped and counted.
    #[error("dropped: the host's guest-telemetry queue is full")]
    Full,
    /// The exporting thread could not be started.
    #[error("cannot start the guest-telemetry thread: {0}")]
    Thread(String),
}

/// Where guest spans, logs and metrics go: the host's exporters, or nowhere
/// (the [`Default`]). Cheap to clone; every clone feeds the same thread.
#[derive(Clone, Default)]
pub struct GuestTelemetry {
    shared: Option<Arc<Shared>>,
}

struct Shared {
    sender: SyncSender<Message>,
    traces: bool,
    logs: bool,
    metrics: bool,
    /// The host's resource, which every component's is built on.
    base: Resource,
    /// Makes the SDK's log records (it has no other constructor).
    logger: SdkLogger,
    queued_bytes: AtomicUsize,
    dropped: AtomicU64,
    warned: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Who sent an item: its component, and the resource that names it.
pub(crate) struct Origin {
    workload: String,
    component: String,
    resource: Resource,
}

impl Origin {
    pub(crate) fn workload(&self) -> &str {
        &self.workload
    }

    pub(crate) fn component(&self) -> &str {
        &self.component
    }
}

/// What the queue carries; items are boxed, so its slots stay small.
enum Message {
    Span(Arc<Origin>, Box<SpanData>, usize),
    Log(
        Arc<Origin>,
        Box<(SdkLogRecord, InstrumentationScope)>,
        usize,
    ),
    Metrics(Arc<Origin>, Box<WitResourceMetrics>, usize),
    /// Export what is held, then answer.
    Flush(SyncSender<()>),
    /// Export what is held, shut the exporters down, answer and stop.
    Shutdown(SyncSender<()>),
}

impl GuestTelemetry {
    /// A sink to build with exporters; see [`GuestTelemetryBuilder`].
    pub fn builder() -> GuestTelemetryBuilder {
        GuestTelemetryBuilder::default()
    }

    /// Whether anything is exported at all.
    pub fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// Items dropped so far: the queue was full, or the sink had stopped.
    pub fn dropped(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |s| s.dropped.load(Ordering::Relaxed))
    }

    /// Whether `signal` has an exporter.
    pub(crate) fn exports(&self, signal: Signal) -> bool {
        self.shared.as_ref().is_some_and(|s| match signal {
            Signal::Traces => s.traces,
            Signal::Logs => s.logs,
            Signal::Metrics => s.metrics,
        })
    }

    /// The origin of a component's items: its resource is the host's with
    /// `nimbus.workload` and `nimbus.component` set.
    pub(crate) fn origin(&self, workload: &str, component: &str) -> Arc<Origin> {
        let resource = match &self.shared {
            Some(shared) => Resource::builder_empty()
                .with_attributes(
                    shared
                        .base
                        .iter()
                        .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
                )
                .with_attributes([
                    KeyValue::new("nimbus.workload", workload.to_string()),
                    KeyValue::new("nimbus.component", component.to_string()),
                ])
                .build(),
            None => Resource::builder_empty().build(),
        };
        Arc::new(Origin {
            workload: workload.to_string(),
            component: component.to_string(),
            resource,
        })
    }

    /// A guest log record as the SDK's (see `convert::log`).
    pub(crate) fn log_record(
        &self,
        record: WitLogRecord,
        outer: Option<&SpanContext>,
    ) -> Option<Converted<(SdkLogRecord, InstrumentationScope)>> {
        let shared = self.shared.as_ref()?;
        Some(convert::log(&shared.logger, record, outer))
    }

    /// Queues a converted span.
    pub(crate) fn send_span(&self, origin: &Arc<Origin>, span: Converted<SpanData>) {
        let bytes = span.bytes;
        let _ = self.send(bytes, || {
            Message::Span(origin.clone(), Box::new(span.item), bytes)
        });
    }

    /// Queues a converted log record.
    pub(crate) fn send_log(
        &self,
        origin: &Arc<Origin>,
        record: Converted<(SdkLogRecord, InstrumentationScope)>,
    ) {
        let bytes = record.bytes;
        let _ = self.send(bytes, || {
            Message::Log(origin.clone(), Box::new(record.item), bytes)
        });
    }

    /// Queues a bounded metrics export (see `metrics::bound`).
    pub(crate) fn send_metrics(
        &self,
        origin: &Arc<Origin>,
        metrics: WitResourceMetrics,
        bytes: usize,
    ) -> Result<(), SinkError> {
        self.send(bytes, || {
            Message::Metrics(origin.clone(), Box::new(metrics), bytes)
        })
    }

    /// Puts one item on the queue if it fits, else drops and counts it.
    fn send(&self, bytes: usize, message: impl FnOnce() -> Message) -> Result<(), SinkError> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let before = shared.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        // Full, or disconnected (the sink was shut down): dropped either way.
        let disconnected = if before + bytes <= QUEUE_BYTES {
            match shared.sender.try_send(message()) {
                Ok(()) => return Ok(()),
                Err(error) => matches!(error, std::sync::mpsc::TrySendError::Disconnected(_)),
            }
        } else {
            false
        };
        shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        let dropped = shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if disconnected {
            // Shut down: counted, but it is no backlog to warn about.
            return Err(SinkError::Full);
        }
        if !shared.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: TARGET,
                "guest telemetry is arriving faster than it is exported: dropping what does not \
                 fit the queue ({QUEUE_ITEMS} items, {} MiB); this is logged once",
                QUEUE_BYTES / (1024 * 1024)
            );
        } else {
            tracing::debug!(target: TARGET, dropped, "guest telemetry dropped");
        }
        Err(SinkError::Full)
    }

    /// Exports what the thread holds now, waiting up to `timeout` (tests
    /// and shutdown use it; the thread exports on its own otherwise).
    pub fn flush(&self, timeout: Duration) {
        self.ask(Message::Flush, timeout);
    }

    /// Exports what is held and shuts the exporters down (each within its
    /// timeout); later items are dropped. Call it before the runtime the
    /// exporters use goes away.
    pub fn shutdown(&self, timeout: Duration) {
        let Some(shared) = &self.shared else {
            return;
        };
        if self.ask(Message::Shutdown, timeout)
            && let Ok(mut thread) = shared.thread.lock()
            && let Some(thread) = thread.take()
        {
            let _ = thread.join();
        }
    }

    /// Sends a control message and waits for its answer; whether it came.
    fn ask(&self, message: fn(SyncSender<()>) -> Message, timeout: Duration) -> bool {
        let Some(shared) = &self.shared else {
            return true;
        };
        let (done, answer) = std::sync::mpsc::sync_channel(1);
        // A control message waits for room, like the items before it.
        let deadline = nimbus_model::time::deadline(Instant::now(), timeout);
        let mut message = Some(message(done));
        while let Some(m) = message.take() {
            match shared.sender.try_send(m) {
                Ok(()) => {}
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    message = Some(m);
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return false,
            }
        }
        answer
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }
}

impl std::fmt::Debug for GuestTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.shared {
            None => f.write_str("GuestTelemetry(disabled)"),
            Some(s) => f
                .debug_struct("GuestTelemetry")
                .field("traces", &s.traces)
                .field("logs", &s.logs)
                .field("metrics", &s.metrics)
                .field("dropped", &s.dropped.load(Ordering::Relaxed))
                .finish(),
        }
    }
}

/// Builds a [`GuestTelemetry`] from the host's exporters, one per signal
/// (each optional), and the host's resource.
#[derive(Default)]
pub struct GuestTelemetryBuilder {
    resource: Option<Resource>,
    interval: Option<Duration>,
    spans: Option<Box<dyn SpanSink>>,
    logs: Option<Box<dyn LogSink>>,
    metrics: Option<Box<dyn MetricSink>>,
}

impl GuestTelemetryBuilder {
    /// The host's resource (`service.name`, …), under every component's
    /// own attributes.
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// How long spans and log records are held before they are exported
    /// (default one second; a full batch goes at once).
    pub fn interval(mut self, interval: Duration) -> Self {
        // A zero interval would spin the thread.
        self.interval = Some(interval.max(Duration::from_millis(1)));
        self
    }

    /// Exports guest spans (their resource is set before each batch).
    pub fn spans(mut self, exporter: impl SpanExporter + 'static) -> Self {
        self.spans = Some(Box::new(exporter));
        self
    }

    /// Exports guest log records (their resource is set before each batch).
    pub fn logs(mut self, exporter: impl LogExporter + 'static) -> Self {
        self.logs = Some(Box::new(exporter));
        self
    }

    /// Exports guest metrics.
    pub fn metrics(mut self, exporter: impl PushMetricExporter) -> Self {
        self.metrics = Some(Box::new(exporter));
        self
    }

    /// Starts the exporting thread; with no exporter, the disabled sink.
    pub fn build(self) -> Result<GuestTelemetry, SinkError> {
        if self.spans.is_none() && self.logs.is_none() && self.metrics.is_none() {
            return Ok(GuestTelemetry::default());
        }
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE_ITEMS);
        let logger = SdkLoggerProvider::builder().build().logger("wasi:otel");
        let shared = Arc::new(Shared {
            sender,
            traces: self.spans.is_some(),
            logs: self.logs.is_some(),
            metrics: self.metrics.is_some(),
            base: self.resource.unwrap_or_else(|| Resource::builder().build()),
            logger,
            queued_bytes: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            warned: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let worker = Worker {
            shared: Arc::downgrade(&shared),
            interval: self.interval.unwrap_or(DEFAULT_INTERVAL),
            spans: self.spans,
            logs: self.logs,
            metrics: self.metrics,
            pending_spans: Vec::new(),
            pending_logs: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("nimbus-guest-otel".into())
            .spawn(move || worker.run(receiver))
            .map_err(|e| SinkError::Thread(e.to_string()))?;
        if let Ok(mut slot) = shared.thread.lock() {
            *slot = Some(thread);
        }
        Ok(GuestTelemetry {
            shared: Some(shared),
        })
    }
}

/// A span exporter behind a pointer, with its resource set per batch.
trait SpanSink: Send {
    fn send(&mut self, resource: &Resource, batch: Vec<SpanData>) -> OTelSdkResult;
    fn close(&mut self);
}

impl<E: SpanExporter + 'static> SpanSink for E {
    fn send(&mut self, resource: &Resource, batch: Vec<SpanData>) -> OTelSdkResult {
        self.set_resource(resource);
        futures::executor::block_on(SpanExporter::export(self, batch))
    }

    fn close(&mut self) {
        let _ = SpanExporter::shutdown_with_timeout(self, SHUTDOWN_TIMEOUT);
    }
}

/// A log exporter behind a pointer, with its resource set per batch.
trait LogSink: Send {
    fn send(
        &mut self,
        resource: &Resource,
        batch: &[(&SdkLogRecord, &InstrumentationScope)],
    ) -> OTelSdkResult;
    fn close(&mut self);
}

impl<E: LogExporter + 'static> LogSink for E {
    fn send(
        &mut self,
        resource: &Resource,
        batch: &[(&SdkLogRecord, &InstrumentationScope)],
    ) -> OTelSdkResult {
        self.set_resource(resource);
        futures::executor::block_on(LogExporter::export(self, LogBatch::new(batch)))
    }

    fn close(&mut self) {
        let _ = LogExporter::shutdown_with_timeout(self, SHUTDOWN_TIMEOUT);
    }
}

/// A metric exporter behind a pointer.
trait MetricSink: Send {
    fn send(&mut self, metrics: &ResourceMetrics) -> OTelSdkResult;
    fn close(&mut self);
}

impl<E: PushMetricExporter> MetricSink for E {
    fn send(&mut self, metrics: &ResourceMetrics) -> OTelSdkResult {
        futures::executor::block_on(PushMetricExporter::export(self, metrics))
    }

    fn close(&mut self) {
        let _ = PushMetricExporter::shutdown_with_timeout(self, SHUTDOWN_TIMEOUT);
    }
}

/// The exporting thread's state.
struct Worker {
    /// To give back the bytes of what was exported (gone once every sink
    /// handle is dropped).
    shared: std::sync::Weak<Shared>,
    interval: Duration,
    spans: Option<Box<dyn SpanSink>>,
    logs: Option<Box<dyn LogSink>>,
    metrics: Option<Box<dyn MetricSink>>,
    pending_spans: Vec<(Arc<Origin>, SpanData, usize)>,
    pending_logs: Vec<(Arc<Origin>, (SdkLogRecord, InstrumentationScope), usize)>,
}

impl Worker {
    fn run(mut self, receiver: Receiver<Message>) {
        let mut due = nimbus_model::time::deadline(Instant::now(), self.interval);
        loop {
            // A steady stream never times out: the interval is checked
            // between messages too.
            if Instant::now() >= due {
                self.export_all();
                due = nimbus_model::time::deadline(Instant::now(), self.interval);
            }
            match receiver.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(Message::Span(origin, span, bytes)) => {
                    self.pending_spans.push((origin, *span, bytes));
                    if self.pending_spans.len() >= MAX_BATCH {
                        self.export_spans();
                    }
                }
                Ok(Message::Log(origin, record, bytes)) => {
                    self.pending_logs.push((origin, *record, bytes));
                    if self.pending_logs.len() >= MAX_BATCH {
                        self.export_logs();
                    }
                }
                Ok(Message::Metrics(origin, metrics, bytes)) => {
                    self.export_metrics(&origin, *metrics);
                    self.release(bytes);
                }
                Ok(Message::Flush(done)) => {
                    self.export_all();
                    let _ = done.send(());
                }
                Ok(Message::Shutdown(done)) => {
                    self.export_all();
                    self.close();
                    let _ = done.send(());
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.export_all();
                    self.close();
                    return;
                }
            }
        }
    }

    fn release(&self, bytes: usize) {
        if let Some(shared) = self.shared.upgrade() {
            shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    fn export_all(&mut self) {
        self.export_spans();
        self.export_logs();
    }

    fn close(&mut self) {
        if let Some(sink) = self.spans.as_deref_mut() {
            sink.close();
        }
        if let Some(sink) = self.logs.as_deref_mut() {
            sink.close();
        }
        if let Some(sink) = self.metrics.as_deref_mut() {
            sink.close();
        }
    }

    /// Exports the held spans, one batch per component.
    fn export_spans(&mut self) {
        let pending = std::mem::take(&mut self.pending_spans);
        let bytes: usize = pending.iter().map(|(_, _, b)| b).sum();
        if let Some(sink) = self.spans.as_deref_mut() {
            for (origin, batch) in by_origin(pending, |(o, s, _)| (o, s)) {
                if let Err(error) = sink.send(&origin.resource, batch) {
                    tracing::debug!(target: TARGET, "guest spans not exported: {error}");
                }
            }
        }
        self.release(bytes);
    }

    /// Exports the held log records, one batch per component.
    fn export_logs(&mut self) {
        let pending = std::mem::take(&mut self.pending_logs);
        let bytes: usize = pending.iter().map(|(_, _, b)| b).sum();
        if let Some(sink) = self.logs.as_deref_mut() {
            for (origin, batch) in by_origin(pending, |(o, record, _)| (o, record)) {
                let borrowed: Vec<(&SdkLogRecord, &InstrumentationScope)> =
                    batch.iter().map(|(r, s)| (r, s)).collect();
                if let Err(error) = sink.send(&origin.resource, &borrowed) {
                    tracing::debug!(target: TARGET, "guest logs not exported: {error}");
                }
            }
        }
        self.release(bytes);
    }

    fn export_metrics(&mut self, origin: &Origin, metrics: WitResourceMetrics) {
        let Some(sink) = self.metrics.as_deref_mut() else {
            return;
        };
        for collected in crate::metrics::collect(&origin.resource, metrics) {
            if let Err(error) = sink.send(&collected) {
                tracing::debug!(target: TARGET, "guest metrics not exported: {error}");
            }
        }
    }
}

/// Groups items by the component that sent them, in the order each
/// component first appears.
fn by_origin<I, T>(
    items: Vec<I>,
    split: impl Fn(I) -> (Arc<Origin>, T),
) -> Vec<(Arc<Origin>, Vec<T>)> {
    let mut groups: Vec<(Arc<Origin>, Vec<T>)> = Vec::new();
    for item in items {
        let (origin, value) = split(item);
        match groups.iter_mut().find(|(o, _)| Arc::ptr_eq(o, &origin)) {
            Some((_, list)) => list.push(value),
            None => groups.push((origin, vec![value])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::wasi::clocks::wall_clock::Datetime;
    use crate::bindings::wasi::otel::tracing as wit;
    use crate::bindings::wasi::otel::types::InstrumentationScope as WitScope;

    /// Exported batches, each with its resource's component.
    type Batches = Arc<Mutex<Vec<(String, Vec<SpanData>)>>>;

    /// Keeps each exported batch with its resource's component.
    #[derive(Debug, Clone, Default)]
    struct Spans {
        batches: Batches,
        resource: Arc<Mutex<String>>,
        stalled: Arc<AtomicBool>,
    }

    impl SpanExporter for Spans {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            while self.stalled.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
            let component = self.resource.lock().unwrap().clone();
            self.batches.lock().unwrap().push((component, batch));
            Ok(())
        }

        fn set_resource(&mut self, resource: &Resource) {
            *self.resource.lock().unwrap() = resource
                .get(&opentelemetry::Key::new("nimbus.component"))
                .map(|v| v.to_string())
                .unwrap_or_default();
        }
    }

    fn span(id: u64) -> Converted<SpanData> {
        let now = Datetime {
            seconds: 1_700_000_000,
            nanoseconds: 0,
        };
        convert::span(
            wit::SpanData {
                span_context: wit::SpanContext {
                    trace_id: "ab".into(),
                    span_id: format!("{id:x}"),
                    trace_flags: wit::TraceFlags::SAMPLED,
                    is_remote: false,
                    trace_state: Vec::new(),
                },
                parent_span_id: String::new(),
                span_kind: wit::SpanKind::Internal,
                name: "work".into(),
                start_time: now,
                end_time: now,
                attributes: Vec::new(),
                events: Vec::new(),
                links: Vec::new(),
                status: wit::Status::Unset,
                instrumentation_scope: WitScope {
                    name: "guest".into(),
                    version: None,
                    schema_url: None,
                    attributes: Vec::new(),
                },
                dropped_attributes: 0,
                dropped_events: 0,
                dropped_links: 0,
            },
            None,
        )
        .unwrap()
        .unwrap()
    }

    #[test]
    fn spans_go_out_in_one_batch_per_component_with_its_resource() {
        let exporter = Spans::default();
        let telemetry = GuestTelemetry::builder()
            .interval(Duration::from_secs(3600))
            .spans(exporter.clone())
            .build()
            .unwrap();
        assert!(telemetry.exports(Signal::Traces));
        assert!(!telemetry.exports(Signal::Logs));
        let (a, b) = (telemetry.origin("t/w", "a"), telemetry.origin("t/w", "b"));
        telemetry.send_span(&a, span(1));
        telemetry.send_span(&b, span(2));
        telemetry.send_span(&a, span(3));
        telemetry.flush(Duration::from_secs(10));
        let batches = exporter.batches.lock().unwrap().clone();
        let summary: Vec<(String, Vec<u64>)> = batches
            .iter()
            .map(|(component, spans)| {
                (
                    component.clone(),
                    spans
                        .iter()
                        .map(|s| u64::from_be_bytes(s.span_context.span_id().to_bytes()))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [("a".to_string(), vec![1, 3]), ("b".to_string(), vec![2])]
        );
        telemetry.shutdown(Duration::from_secs(10));
        // After shutdown, items are dropped and counted.
        telemetry.send_span(&a, span(4));
        assert_eq!(telemetry.dropped(), 1);
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let exporter = Spans::default();
        exporter.stalled.store(true, Ordering::Relaxed);
        let telemetry = GuestTelemetry::builder()
            .interval(Duration::from_millis(1))
            .spans(exporter.clone())
            .build()
            .unwrap();
        let origin = telemetry.origin("t/w", "a");
        // The thread is stuck in an export: the queue fills.
        for id in 1..=(QUEUE_ITEMS + MAX_BATCH + 100) as u64 {
            telemetry.send_span(&origin, span(id));
        }
        assert!(telemetry.dropped() >= 100, "{}", telemetry.dropped());
        exporter.stalled.store(false, Ordering::Relaxed);
        telemetry.shutdown(Duration::from_secs(30));
    }

    #[test]
    fn the_disabled_sink_takes_everything_and_keeps_nothing() {
        let telemetry = GuestTelemetry::default();
        assert!(!telemetry.exports(Signal::Traces));
        let origin = telemetry.origin("t/w", "a");
        telemetry.send_span(&origin, span(1));
        assert_eq!(telemetry.dropped(), 0);
        telemetry.flush(Duration::from_secs(1));
        telemetry.shutdown(Duration::from_secs(1));
    }
}
