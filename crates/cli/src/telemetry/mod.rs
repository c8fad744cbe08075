//! Logging and OpenTelemetry export: the process's `tracing` subscriber.
//!
//! Logs go to stderr (`NIMBUS_LOG` or `RUST_LOG` filter them), or to the
//! file `nimbus dev --log-file` names. Each
//! OpenTelemetry signal is exported over OTLP only when asked for, by
//! `--otlp-endpoint` or the standard variables: [`signal`] reads whether
//! each signal is on, and `transport` its protocol (gRPC or
//! `http/protobuf`), endpoint and TLS. The exporters read
//! the rest of the standard variables themselves (headers, compression,
//! batch delays, sampler, service name and resource attributes).
//!
//! - Traces: the runtime's request spans (`nimbus_host::trace`), and the
//!   W3C trace-context propagator, so an incoming `traceparent` is the
//!   parent and outbound requests carry the context on. With traces off the
//!   span callsites stay disabled: no span is built.
//! - Metrics: the host's own Prometheus series (`/metrics`), read at each
//!   export; a histogram goes out as its `_sum` and `_count`.
//! - Logs: every log line that passes the filter, as an OTLP log record.
//! - Guests' own spans, logs and metrics (`wasi:otel`): through a second
//!   exporter for each signal that is on, fed by the sink hosts get from
//!   [`guest_telemetry`].
//!
//! The exporters ([`otlp`]) are the `otlp` cargo feature, on by default. A
//! build without it still reads the settings ([`signal`]): asking it to
//! export fails with one line naming the feature.

use anyhow::Context as _;
use signal::Signal;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

#[cfg(feature = "otlp")]
mod otlp;
mod signal;
#[cfg(feature = "otlp")]
mod transport;

#[cfg(feature = "otlp")]
pub(crate) use otlp::{export_metrics, guest_telemetry, metrics_exported};

/// The default log filter. The WIT package client warns, with a backtrace,
/// about every registry without wkg metadata; `nimbus wit fetch` reports
/// what failed itself, in one line.
const DEFAULT_FILTER: &str = "warn,nimbus=info,nimbus_host=info,nimbus_cluster=info,wasm_pkg_client=error,wasm_pkg_core=error";

/// The default filter under `nimbus dev --quiet`: warnings and errors.
const QUIET_FILTER: &str = "warn,wasm_pkg_client=error,wasm_pkg_core=error";

/// The default filter under `nimbus dev --verbose`: Nimbus's debug lines.
const VERBOSE_FILTER: &str = "info,nimbus=debug,nimbus_host=debug,nimbus_runtime=debug,nimbus_project=debug,nimbus_cluster=debug,wasm_pkg_client=error,wasm_pkg_core=error";

/// How much a command says (`nimbus dev --quiet|--verbose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Verbosity {
    /// Status lines and errors only.
    Quiet,
    /// Plus build progress.
    Normal,
    /// Plus every line of the toolchain and debug logs.
    Verbose,
}

/// Where log lines go and how many, for the commands that choose
/// (`nimbus dev --quiet|--verbose|--log-file`).
#[derive(Default)]
pub(crate) struct LogOptions {
    /// Append log lines to this file instead of stderr.
    pub(crate) file: Option<std::path::PathBuf>,
    /// The default filter when `NIMBUS_LOG`/`RUST_LOG` are unset.
    pub(crate) verbosity: Option<Verbosity>,
}

/// The installed exporters, if any; [`Telemetry::shutdown`] flushes them.
#[must_use = "dropping the guard without shutdown loses the last batch"]
pub(crate) struct Telemetry {
    #[cfg(feature = "otlp")]
    exporters: Option<otlp::Exporters>,
}

/// Installs the process's subscriber: logs to stderr, and OpenTelemetry
/// export as configured. `otlp_endpoint` is `--otlp-endpoint`.
pub(crate) fn init(otlp_endpoint: Option<&str>, log: LogOptions) -> anyhow::Result<Telemetry> {
    let default_filter = match log.verbosity {
        Some(Verbosity::Quiet) => QUIET_FILTER,
        Some(Verbosity::Verbose) => VERBOSE_FILTER,
        Some(Verbosity::Normal) | None => DEFAULT_FILTER,
    };
    let filter_spec = std::env::var("NIMBUS_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .filter(|s| !s.trim().is_empty());
    let filter = |extra: &[&str]| -> anyhow::Result<EnvFilter> {
        let spec = filter_spec.as_deref().unwrap_or(default_filter);
        let mut filter = EnvFilter::try_new(spec)
            .with_context(|| format!("invalid log filter `{spec}` (NIMBUS_LOG)"))?;
        // Request spans are for the trace exporter, not log lines, unless
        // the filter names them.
        if !spec.contains(nimbus_host::trace::TARGET) {
            filter = filter.add_directive(format!("{}=off", nimbus_host::trace::TARGET).parse()?);
        }
        for directive in extra {
            filter = filter.add_directive(directive.parse()?);
        }
        Ok(filter)
    };

    if let Some(endpoint) = otlp_endpoint {
        let uri = endpoint.parse::<http::Uri>().ok();
        let usable = uri.as_ref().is_some_and(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some()
        });
        if !usable {
            anyhow::bail!(
                "--otlp-endpoint `{}` is not an http:// or https:// URL (for example http://127.0.0.1:4317)",
                endpoint.escape_debug()
            );
        }
    }
    let endpoint_flag = otlp_endpoint.is_some();
    let wanted = [Signal::Traces, Signal::Metrics, Signal::Logs].map(|s| s.wanted(endpoint_flag));
    #[cfg(feature = "otlp")]
    let (telemetry, exporting) = {
        let exporters = if wanted.iter().any(|&w| w) {
            Some(otlp::install(otlp_endpoint, wanted)?)
        } else {
            None
        };
        // The closure only borrows the filter text: it is `Copy`.
        let layers = match &exporters {
            Some(exporters) => exporters.layers(filter)?,
            None => Vec::new(),
        };
        (Telemetry { exporters }, layers)
    };
    #[cfg(not(feature = "otlp"))]
    let (telemetry, exporting) = {
        if let Some(signal) = wanted.iter().position(|&w| w) {
            anyhow::bail!(
                "OpenTelemetry export ({} asked for by --otlp-endpoint or OTEL_EXPORTER_OTLP_*) is not in this build of nimbus (rebuild it with the cargo feature `otlp`)",
                [Signal::Traces, Signal::Metrics, Signal::Logs][signal].label()
            );
        }
        (Telemetry {}, Vec::<Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>>::new())
    };

    let log_lines = match &log.file {
        Some(path) => {
            // A FIFO would block the open until a reader came; a directory
            // or a socket cannot take lines. Devices (/dev/null, /dev/stderr)
            // may.
            if let Ok(metadata) = std::fs::metadata(path) {
                use std::os::unix::fs::FileTypeExt as _;
                let kind = metadata.file_type();
                if kind.is_fifo() || kind.is_socket() || kind.is_dir() {
                    anyhow::bail!("the log file {} is not a file or a device", path.display());
                }
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the log file {}", path.display()))?;
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .with_target(false)
                .with_filter(filter(&[])?)
                .boxed()
        }
        None => {
            // Colours only on a terminal: redirected logs (files, pipes, CI)
            // stay plain text that grep and log shippers can read.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            tracing_subscriber::fmt::layer()
                .with_ansi(ansi)
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_filter(filter(&[])?)
                .boxed()
        }
    };
    // One list, the log lines in it: each callsite is then enabled exactly
    // when some layer's filter wants it. (A `None` layer for "no exporter"
    // counts as wanting everything, so every request span would be built
    // and entered for nobody: about a sixth of a lean P3 request's cost.)
    let mut layers = exporting;
    layers.push(log_lines);
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Ok(telemetry)
}

impl Telemetry {
    /// Flushes and stops every exporter (each within its timeout).
    pub(crate) fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(exporters) = self.exporters {
            exporters.shutdown();
        }
    }
}

/// Whether the host's metrics are exported over OTLP: never, in a build
/// without the exporters.
#[cfg(not(feature = "otlp"))]
pub(crate) fn metrics_exported() -> bool {
    false
}

/// Where guests' `wasi:otel` telemetry goes: nowhere, in a build without
/// the exporters.
#[cfg(not(feature = "otlp"))]
pub(crate) fn guest_telemetry() -> nimbus_host::plugins::otel::GuestTelemetry {
    Default::default()
}

/// Exports the host's metrics over OTLP: nothing to do in a build without
/// the exporters.
#[cfg(not(feature = "otlp"))]
pub(crate) fn export_metrics(_metrics: &std::sync::Arc<nimbus_host::metrics::Metrics>) {}
