//! `wasi:otel@0.2.0-rc.2` (`types`, `tracing`, `logs`, `metrics`): a
//! guest's own spans, logs and metrics join the host's OTLP pipeline and the
//! trace of the request the guest is handling.
//!
//! A guest built with an OpenTelemetry SDK for WASI (such as
//! `opentelemetry-wasi`) asks the host for the span it runs under
//! (`outer-span-context`), starts its spans as children of it, and hands
//! each finished span (`on-end`), each log record (`on-emit`) and its
//! collected metrics (`export`) to the host, which sends them on with its
//! own telemetry:
//!
//! ```text
//! GET                                   the host's request span
//! └─ component app                      the host's component span = outer-span-context
//!    └─ handle order                    the guest's span (on-end), same trace
//!       └─ guest log record             trace and span id of the guest's span
//! ```
//!
//! - **Where it goes.** The plugin owns a [`GuestTelemetry`]: the sink the
//!   host's exporters were handed (the CLI builds one OTLP exporter per
//!   signal beside its own when `OTEL_EXPORTER_OTLP_*` or
//!   `--otlp-endpoint` turn export on). Everything a guest sends is tagged
//!   with resource attributes naming who sent it, `nimbus.workload`
//!   (`namespace/name`) and `nimbus.component`, over the host's own
//!   resource (`service.name`, …). A guest cannot name another workload:
//!   the resources guests send are not used. With no exporter for a signal
//!   the calls succeed and the data is dropped before it is converted.
//! - **Which parent.** `outer-span-context` is the store's trace parent
//!   ([`nimbus_plugin::PluginCalls::parent`]): the request's component
//!   span, or the message span of a delivery. With tracing off it is the
//!   invalid context (all-zero ids, not sampled), and guest SDKs then start
//!   traces of their own. A log record without trace ids gets the outer
//!   span's, so guest logs land in the request's trace either way.
//! - **Bounds.** A guest cannot grow host memory without limit: each span,
//!   log record and metrics export is cut to a byte and attribute budget
//!   (names, keys and values truncated, attributes, events, links and data
//!   points beyond the caps dropped and counted in the span's dropped
//!   counts); the queue to the exporting thread holds a bounded number of
//!   items and bytes, and what does not fit is dropped and counted
//!   ([`GuestTelemetry::dropped`], with one warning in the log when
//!   dropping starts). A span whose trace or span id is not hex, or is
//!   zero, is dropped with a debug log (the WIT has no error for
//!   `on-end`); a metrics export that does not fit the queue returns the
//!   interface's error.
//! - **Values.** Attribute values are JSON, as the interface says: strings,
//!   numbers, booleans and arrays of one of those become typed attributes
//!   (log bodies and log attributes also maps and mixed lists); anything
//!   else stays the text the guest sent.
//! - **Metrics.** The guest's aggregated data goes out as what the SDK can
//!   carry: sums and gauges as observable instruments reporting the
//!   guest's values (sums keep their temporality and monotonicity), and
//!   histograms as `NAME_sum` and `NAME_count` counters (the SDK has no
//!   instrument that reports buckets someone else counted); exemplars are
//!   not sent.
//!
//! Every component importing a `wasi:otel` interface gets it, with or
//! without a `wasi:otel` host-interface entry in its workload (wasmCloud's
//! manifests list one; it needs no settings here).
//!
//! # Layout
//!
//! - `lib.rs`: the bindings and the [`OtelPlugin`], whose host functions
//!   check, convert and queue;
//! - `convert`: ids, times, JSON values, spans and log records into the
//!   SDK's types, within a budget;
//! - `metrics`: bounding a guest's metrics and turning them into the SDK's
//!   `ResourceMetrics`;
//! - `sink`: [`GuestTelemetry`], the bounded queue and the thread that
//!   batches and exports.

mod convert;
mod metrics;
mod sink;

pub use sink::{GuestTelemetry, GuestTelemetryBuilder, SinkError};

use nimbus_plugin::PluginState;
use opentelemetry::trace::{SpanContext, TraceFlags};
use std::sync::Arc;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasi:otel/imports",
        imports: { default: trappable },
        // The world's own `add_to_linker` adds wasmtime-wasi's clocks and
        // poll, which need a `Send` store (this plugin adds only its four).
        require_store_data_send: true,
        with: {
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:io": wasmtime_wasi_io::bindings::wasi::io,
        },
    });
}

use bindings::wasi::otel::tracing as wit_tracing;
use bindings::wasi::otel::{logs, metrics as wit_metrics, types};

const ID: &str = "otel";

/// Serves `wasi:otel` into a [`GuestTelemetry`] sink.
pub struct OtelPlugin {
    telemetry: GuestTelemetry,
}

impl OtelPlugin {
    /// A plugin sending what guests give it to `telemetry` (a disabled
    /// sink drops it).
    pub fn new(telemetry: GuestTelemetry) -> Self {
        Self { telemetry }
    }
}

/// What one component's calls need: the sink and who the data is from.
struct Bound {
    telemetry: GuestTelemetry,
    origin: Arc<sink::Origin>,
}

impl<T: PluginState> nimbus_plugin::Plugin<T> for OtelPlugin {
    fn id(&self) -> &'static str {
        ID
    }

    fn interfaces(&self) -> &'static [&'static str] {
        &[
            "wasi:otel/types@0.2.0-rc.2",
            "wasi:otel/tracing@0.2.0-rc.2",
            "wasi:otel/logs@0.2.0-rc.2",
            "wasi:otel/metrics@0.2.0-rc.2",
        ]
    }

    fn add_to_linker(&self, linker: &mut wasmtime::component::Linker<T>) -> wasmtime::Result<()> {
        fn view<T: PluginState>(state: &mut T) -> OtelView<'_> {
            let (_, bindings, calls) = state.plugin_parts();
            OtelView {
                bound: bindings.get::<Bound>(ID),
                parent: calls.parent().map(|p| p.span_context()),
            }
        }
        types::add_to_linker::<T, HasOtel>(linker, view::<T>)?;
        wit_tracing::add_to_linker::<T, HasOtel>(linker, view::<T>)?;
        logs::add_to_linker::<T, HasOtel>(linker, view::<T>)?;
        wit_metrics::add_to_linker::<T, HasOtel>(linker, view::<T>)
    }

    fn bind(
        &self,
        ctx: &nimbus_plugin::BindContext<'_>,
    ) -> Result<nimbus_plugin::Binding, nimbus_plugin::PluginError> {
        Ok(Arc::new(Bound {
            telemetry: self.telemetry.clone(),
            origin: self.telemetry.origin(ctx.workload, ctx.component),
        }))
    }
}

/// One call's view: the component's binding and the span it runs under.
struct OtelView<'a> {
    bound: Option<&'a Bound>,
    /// The store's trace parent, when the work is traced.
    parent: Option<SpanContext>,
}

impl OtelView<'_> {
    /// The sink and origin, when `signal` is exported at all.
    fn exporting(&self, signal: sink::Signal) -> Option<&Bound> {
        self.bound.filter(|b| b.telemetry.exports(signal))
    }

    /// The outer span, if it is a valid one.
    fn outer(&self) -> Option<&SpanContext> {
        self.parent.as_ref().filter(|c| c.is_valid())
    }
}

impl types::Host for OtelView<'_> {}

impl wit_tracing::Host for OtelView<'_> {
    fn on_start(&mut self, _context: wit_tracing::SpanContext) -> wasmtime::Result<()> {
        // Nothing is kept for a span until it ends.
        Ok(())
    }

    fn on_end(&mut self, span: wit_tracing::SpanData) -> wasmtime::Result<()> {
        let Some(bound) = self.exporting(sink::Signal::Traces) else {
            return Ok(());
        };
        match convert::span(span, self.outer()) {
            Ok(Some(converted)) => bound.telemetry.send_span(&bound.origin, converted),
            Ok(None) => {}
            Err(error) => tracing::debug!(
                target: "nimbus::otel",
                workload = %bound.origin.workload(),
                component = %bound.origin.component(),
                "dropped a guest span: {error}"
            ),
        }
        Ok(())
    }

    fn outer_span_context(&mut self) -> wasmtime::Result<wit_tracing::SpanContext> {
        Ok(match self.outer() {
            Some(context) => convert::wit_span_context(context),
            None => convert::wit_span_context(&SpanContext::new(
                opentelemetry::trace::TraceId::INVALID,
                opentelemetry::trace::SpanId::INVALID,
                TraceFlags::default(),
                false,
                Default::default(),
            )),
        })
    }
}

impl logs::Host for OtelView<'_> {
    fn on_emit(&mut self, record: logs::LogRecord) -> wasmtime::Result<()> {
        let Some(bound) = self.exporting(sink::Signal::Logs) else {
            return Ok(());
        };
        if let Some(converted) = bound.telemetry.log_record(record, self.outer()) {
            bound.telemetry.send_log(&bound.origin, converted);
        }
        Ok(())
    }
}

impl wit_metrics::Host for OtelView<'_> {
    fn export(
        &mut self,
        mut resource_metrics: wit_metrics::ResourceMetrics,
    ) -> wasmtime::Result<Result<(), wit_metrics::Error>> {
        let Some(bound) = self.exporting(sink::Signal::Metrics) else {
            return Ok(Ok(()));
        };
        let bytes = metrics::bound(&mut resource_metrics);
        Ok(bound
            .telemetry
            .send_metrics(&bound.origin, resource_metrics, bytes)
            .map_err(|error| error.to_string()))
    }
}

struct HasOtel;

impl wasmtime::component::HasData for HasOtel {
    type Data<'a> = OtelView<'a>;
}
