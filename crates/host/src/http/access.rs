//! The access log: one line per request once its response body has been
//! sent (or abandoned), with what the request cost its guests.
//!
//! Lines go to the `nimbus::access` tracing target at INFO level, so they
//! reach whatever the embedder subscribed (the CLI's log, or OpenTelemetry).
//! The query string is never logged: it may carry tokens.
//!
//! The last requests of each workload are also kept in memory
//! ([`RecentRequests`]) while a console shows them, with or without the
//! log.

use super::body::ResponseBody;
use crate::metrics::RequestUsage;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

/// The tracing target of access-log lines.
pub const TARGET: &str = "nimbus::access";

/// What one access-log line says about a request.
pub(crate) struct AccessRecord {
    method: http::Method,
    host: String,
    path: String,
    status: u16,
    started: Instant,
    /// What the request costs its guests, charged while it runs.
    pub(crate) usage: Arc<RequestUsage>,
    /// The workload that answered, `-` when none did (no route).
    workload: Option<Arc<str>>,
    /// Whether to write the line (the access log is on).
    log: bool,
    /// Where the workload's last lines are kept, if they are.
    recent: Option<Arc<RecentRequests>>,
}

impl AccessRecord {
    /// Starts the record of `request`: its method, host (the URI's
    /// authority, else the `Host` header) and path, and the clock.
    pub(crate) fn start<B>(
        request: &http::Request<B>,
        log: bool,
        recent: Option<Arc<RecentRequests>>,
    ) -> Self {
        let host = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                request
                    .headers()
                    .get(http::header::HOST)
                    .map(|h| one_field(h.as_bytes()))
            })
            .unwrap_or_else(|| "-".to_string());
        Self {
            method: request.method().clone(),
            host,
            path: request.uri().path().to_string(),
            status: 0,
            started: Instant::now(),
            usage: Arc::default(),
            workload: None,
            log,
            recent,
        }
    }

    /// The response's status and the workload that gave it.
    pub(crate) fn answered(&mut self, status: http::StatusCode, workload: Option<Arc<str>>) {
        self.status = status.as_u16();
        self.workload = workload;
    }

    /// Writes the line once the request's cost is charged: the last poll
    /// of its guest may still be running when its response is complete
    /// (a poll is charged when it returns).
    fn emit(self, complete: bool) {
        if self.usage.charging()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                self.usage.settled().await;
                self.write(complete);
            });
            return;
        }
        self.write(complete);
    }

    fn write(self, complete: bool) {
        let duration = self.started.elapsed();
        if let (Some(workload), Some(recent)) = (&self.workload, &self.recent) {
            recent.push(
                workload,
                RecentRequest {
                    at_ms: unix_ms(std::time::SystemTime::now()),
                    method: self.method.to_string(),
                    host: cut(&self.host),
                    path: cut(&self.path),
                    status: self.status,
                    duration_us: duration.as_micros() as u64,
                    cpu_us: self.usage.cpu().as_micros() as u64,
                    memory_peak_bytes: self.usage.memory_peak_bytes(),
                    complete,
                },
            );
        }
        if !self.log {
            return;
        }
        tracing::info!(
            target: TARGET,
            method = %self.method,
            host = %self.host,
            path = %self.path,
            status = self.status,
            duration_us = duration.as_micros() as u64,
            cpu_us = self.usage.cpu().as_micros() as u64,
            memory_peak_bytes = self.usage.memory_peak_bytes(),
            workload = %self.workload.as_deref().unwrap_or("-"),
            complete,
            "request"
        );
    }
}

/// `raw`, a value the client chose, as one access-log field: bytes that
/// could end the field or forge another (spaces, controls, quotes, `=`)
/// and non-ASCII bytes are percent-encoded.
fn one_field(raw: &[u8]) -> String {
    let mut field = String::with_capacity(raw.len());
    for &byte in raw {
        if byte.is_ascii_graphic() && !matches!(byte, b'"' | b'\\' | b'=' | b'%') {
            field.push(char::from(byte));
        } else {
            field.push_str(&format!("%{byte:02X}"));
        }
    }
    if field.is_empty() {
        field.push('-');
    }
    field
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How many lines are kept per workload.
pub const RECENT_PER_WORKLOAD: usize = 50;

/// Longest host or path kept in a recent line, in bytes: a request head
/// may carry 64 KiB of path, fifty of which the console need not hold.
const RECENT_TEXT_BYTES: usize = 1024;

fn cut(text: &str) -> String {
    if text.len() <= RECENT_TEXT_BYTES {
        return text.to_string();
    }
    let mut end = RECENT_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// One access-log line as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecentRequest {
    /// When it was answered, in milliseconds since the Unix epoch.
    #[serde(rename = "at")]
    pub at_ms: u64,
    /// The method.
    pub method: String,
    /// The authority or `Host` header.
    pub host: String,
    /// The path, without the query.
    pub path: String,
    /// The status sent (499: the client left first).
    pub status: u16,
    /// From routing to the end of the response body.
    pub duration_us: u64,
    /// Guest CPU the request cost.
    pub cpu_us: u64,
    /// Largest linear memory an instance serving it reached.
    pub memory_peak_bytes: u64,
    /// Whether the whole body was sent.
    pub complete: bool,
}

/// The last [`RECENT_PER_WORKLOAD`] access-log lines of each workload,
/// newest last; a stopped workload's lines go with it.
#[derive(Debug, Default)]
pub struct RecentRequests(Mutex<HashMap<Arc<str>, VecDeque<RecentRequest>>>);

impl RecentRequests {
    fn push(&self, workload: &Arc<str>, line: RecentRequest) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let lines = all.entry(workload.clone()).or_default();
        if lines.len() == RECENT_PER_WORKLOAD {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The lines of `workload`, newest first.
    pub fn of(&self, workload: &str) -> Vec<RecentRequest> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.get(workload)
            .map(|lines| lines.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    /// Keeps the lines of the workloads `keep` says yes to.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| keep(id));
    }

    /// Forgets a stopped workload's lines.
    pub(crate) fn forget(&self, workload: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(workload);
    }
}

/// The status logged for a request whose client left before the answer
/// (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

/// A record waiting for its answer; logged with status 499 if the request
/// is dropped first (the client closed the connection).
pub(crate) struct PendingRecord(Option<AccessRecord>);

impl PendingRecord {
    pub(crate) fn new(record: AccessRecord) -> Self {
        Self(Some(record))
    }

    /// Where the request's costs are charged.
    pub(crate) fn usage(&self) -> Arc<RequestUsage> {
        self.0.as_ref().map(|r| r.usage.clone()).unwrap_or_default()
    }

    /// The answer came: the record goes on with the response body.
    pub(crate) fn answered(
        &mut self,
        status: http::StatusCode,
        workload: Option<Arc<str>>,
    ) -> AccessRecord {
        let mut record = self.0.take().expect("answered once");
        record.answered(status, workload);
        record
    }
}

impl Drop for PendingRecord {
    fn drop(&mut self) {
        if let Some(mut record) = self.0.take() {
            record.status = CLIENT_CLOSED;
            record.emit(false);
        }
    }
}

/// A response body that writes the access-log line when it ends or is
/// dropped (`complete=false` when the client left before the end).
pub(crate) struct LoggedBody {
    inner: ResponseBody,
    record: Option<AccessRecord>,
}

impl LoggedBody {
    pub(crate) fn new(inner: ResponseBody, record: AccessRecord) -> Self {
        Self {
            inner,
            record: Some(record),
        }
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None | Some(Err(_))) = &poll
            && let Some(record) = self.record.take()
        {
            record.emit(matches!(poll, Poll::Ready(None)));
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            record.emit(http_body::Body::is_end_stream(&self.inner));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_chosen_value_stays_one_field() {
        assert_eq!(one_field(b"example.com:8080"), "example.com:8080");
        assert_eq!(
            one_field(b"x path=/admin status=200"),
            "x%20path%3D/admin%20status%3D200"
        );
        assert_eq!(one_field(b"a\tb\"c\\d%e"), "a%09b%22c%5Cd%25e");
        assert_eq!(one_field("hé".as_bytes()), "h%C3%A9");
        assert_eq!(one_field(b""), "-");
    }
}
