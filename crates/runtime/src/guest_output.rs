//! Where a guest's stdout and stderr go: the host's log, one event per
//! line, never the host's own stdout.
//!
//! Written raw to the host's stdout, guest output was unbounded,
//! unattributed, and could forge host log lines (a guest printing
//! `INFO nimbus: workload running`). Here each line becomes one event at
//! target [`TARGET`] carrying the workload, the component and the stream,
//! with control characters escaped (a newline or an ANSI sequence in the
//! text is shown as `\n` or `\u{1b}`, so one line can never look like two).
//! A component's output shares one byte budget per second across its
//! instances; what is over it is dropped, counted in
//! `nimbus_limit_events_total{limit="guest_output"}`, and said once per
//! interval in a warning.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The tracing target of guest output lines.
pub const TARGET: &str = "nimbus::guest";

/// The longest line logged as one event; longer lines are split.
const MAX_LINE: usize = 4096;

/// Bytes of output one component may log per second (a burst of up to
/// four seconds' worth is allowed).
const BYTES_PER_SECOND: u64 = 64 * 1024;

/// How often dropped output is reported.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// One component's output budget, shared by its instances and streams.
pub struct OutputBudget {
    workload: Arc<str>,
    component: Arc<str>,
    bucket: Mutex<Bucket>,
    dropped: AtomicU64,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

struct Bucket {
    tokens: u64,
    refilled: Instant,
    reported: Instant,
}

impl std::fmt::Debug for OutputBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputBudget")
            .field("component", &self.component)
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl OutputBudget {
    /// The budget of `component` of `workload`; drops are counted in
    /// `metrics` when given.
    pub fn new(
        workload: Arc<str>,
        component: Arc<str>,
        metrics: Option<Arc<crate::metrics::Metrics>>,
    ) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            workload,
            component,
            bucket: Mutex::new(Bucket {
                tokens: BYTES_PER_SECOND * 4,
                refilled: now,
                reported: now,
            }),
            dropped: AtomicU64::new(0),
            metrics,
        })
    }

    /// Bytes dropped so far for being over the budget.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Takes `bytes` from the budget; `false` (and counted) when they do
    /// not fit.
    fn admit(&self, bytes: usize) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let earned = now.duration_since(bucket.refilled).as_secs_f64() * BYTES_PER_SECOND as f64;
        if earned >= 1.0 {
            bucket.tokens = (bucket.tokens + earned as u64).min(BYTES_PER_SECOND * 4);
            bucket.refilled = now;
        }
        if bucket.tokens >= bytes as u64 {
            bucket.tokens -= bytes as u64;
            return true;
        }
        let dropped = self.dropped.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
        if let Some(metrics) = &self.metrics {
            metrics.limit_hit("guest_output");
        }
        if now.duration_since(bucket.reported) >= REPORT_EVERY || dropped == bytes as u64 {
            bucket.reported = now;
            tracing::warn!(
                workload = %self.workload,
                component = %self.component,
                dropped_bytes = dropped,
                "guest output over its budget of {BYTES_PER_SECOND} bytes/s is dropped"
            );
        }
        false
    }
}

/// A guest's stdout or stderr, as `wasmtime_wasi` takes it.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    budget: Arc<OutputBudget>,
    stream: &'static str,
}

impl GuestOutput {
    pub(crate) fn stdout(budget: Arc<OutputBudget>) -> Self {
        Self {
            budget,
            stream: "stdout",
        }
    }

    pub(crate) fn stderr(budget: Arc<OutputBudget>) -> Self {
        Self {
            budget,
            stream: "stderr",
        }
    }
}

impl wasmtime_wasi::cli::IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            output: self.clone(),
            line: Vec::new(),
        })
    }
}

/// Collects bytes into lines and logs each whole line.
struct LineWriter {
    output: GuestOutput,
    line: Vec<u8>,
}

impl LineWriter {
    fn emit(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.line);
        if !self.output.budget.admit(line.len()) {
            return;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        let budget = &self.output.budget;
        tracing::info!(
            target: TARGET,
            workload = %budget.workload,
            component = %budget.component,
            stream = self.output.stream,
            line = %text.escape_debug(),
        );
    }

    fn take(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            match buf.iter().position(|b| *b == b'\n') {
                Some(end) => {
                    self.push(&buf[..end]);
                    self.emit();
                    buf = &buf[end + 1..];
                }
                None => {
                    self.push(buf);
                    buf = &[];
                }
            }
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = MAX_LINE - self.line.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.line.extend_from_slice(now);
            if self.line.len() == MAX_LINE {
                self.emit();
            }
            bytes = later;
        }
    }
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        // Never blocks the guest: what is over the budget is dropped.
        self.take(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.emit();
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        // A last line without its newline.
        self.emit();
    }
}
