//! One component's series: resolved once when the component starts, so
//! the request path only touches atomics.

use super::{MAX_DESTINATIONS, OUTCOMES, WebSocketEnd};
use prometheus::{Counter, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge};
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// What one component records through: the series for its labels, resolved
/// once at start so the request path only touches atomics.
pub struct ComponentMetrics {
    pub(super) labels: [String; 3],
    pub(super) requests: [IntCounter; 5],
    /// Answers 503 and 504, counted apart as well as in their class.
    pub(super) unavailable: IntCounter,
    pub(super) timed_out: IntCounter,
    pub(super) duration: Histogram,
    pub(super) in_flight: IntGauge,
    pub(super) cpu: Counter,
    pub(super) cpu_throttled: Counter,
    pub(super) memory: IntGauge,
    pub(super) memory_peak: IntGauge,
    pub(super) peak: AtomicI64,
    pub(super) instances: IntGauge,
    pub(super) instances_created: IntCounter,
    pub(super) instance_reuses: IntCounter,
    pub(super) instances_discarded: IntCounter,
    pub(super) messages_shed: IntCounter,
    pub(super) websocket_open: IntGauge,
    pub(super) websocket_messages: [IntCounter; 2],
    pub(super) websocket_ends: [IntCounter; WebSocketEnd::ALL.len()],
    pub(super) outbound: IntCounterVec,
    pub(super) destinations: Mutex<HashSet<(String, &'static str)>>,
    pub(super) plugin_calls: IntCounterVec,
    pub(super) plugin_duration: HistogramVec,
    /// Plugin interfaces called, so their series can be dropped.
    pub(super) interfaces: Mutex<HashSet<&'static str>>,
}

impl ComponentMetrics {
    /// A request is handed to the component: in flight until the returned
    /// guard drops, counted by status once it is finished.
    #[inline]
    pub fn request(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight {
            metrics: self,
            started: std::time::Instant::now(),
        }
    }

    /// A subscribed message was dropped: no slot freed up in time.
    #[inline]
    pub fn message_shed(&self) {
        self.messages_shed.inc();
    }

    /// A WebSocket connection opened; open until the returned guard drops.
    pub fn websocket_opened(self: &std::sync::Arc<Self>) -> WebSocketOpen {
        self.websocket_open.inc();
        WebSocketOpen(self.clone())
    }

    /// A WebSocket message went in (to the handler) or out (to the client).
    #[inline]
    pub fn websocket_message(&self, inbound: bool) {
        self.websocket_messages[usize::from(!inbound)].inc();
    }

    /// A WebSocket upgrade or connection ended this way.
    pub fn websocket_ended(&self, end: WebSocketEnd) {
        self.websocket_ends[end as usize].inc();
    }

    /// `nanos` of guest CPU were spent.
    #[inline]
    pub fn cpu_spent(&self, nanos: u64) {
        self.cpu.inc_by(nanos as f64 / 1e9);
    }

    /// An instance was held back for `held` of wall time: the component
    /// was over its CPU limit.
    #[inline]
    pub fn cpu_throttled(&self, held: std::time::Duration) {
        self.cpu_throttled.inc_by(held.as_secs_f64());
    }

    /// Linear memory of a live instance grew (or shrank, when it is dropped)
    /// by `delta` bytes; `instance_bytes` is its size now.
    #[inline]
    pub fn memory_changed(&self, delta: i64, instance_bytes: u64) {
        self.memory.add(delta);
        let size = i64::try_from(instance_bytes).unwrap_or(i64::MAX);
        if self.peak.fetch_max(size, Ordering::Relaxed) < size {
            self.memory_peak.set(self.peak.load(Ordering::Relaxed));
        }
    }

    /// An instance was created.
    #[inline]
    pub fn instance_created(&self) {
        self.instances.inc();
        self.instances_created.inc();
    }

    /// An instance was dropped; `discarded` when mid-work: it trapped,
    /// missed a deadline, or every client it was serving left.
    #[inline]
    pub fn instance_dropped(&self, discarded: bool) {
        self.instances.dec();
        if discarded {
            self.instances_discarded.inc();
        }
    }

    /// An instance took one more request.
    #[inline]
    pub fn instance_reused(&self) {
        self.instance_reuses.inc();
    }

    /// An outgoing request to `destination` was allowed or denied.
    pub fn outbound(&self, destination: &str, allowed: bool) {
        let decision = if allowed { "allowed" } else { "denied" };
        let mut destination = destination.to_ascii_lowercase();
        {
            let mut seen = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
            let key = (destination, decision);
            if seen.contains(&key) {
                destination = key.0;
            } else if seen.len() < MAX_DESTINATIONS {
                destination = key.0.clone();
                seen.insert(key);
            } else {
                destination = "other".to_string();
                seen.insert((destination.clone(), decision));
            }
        }
        let [namespace, name, component] = self.labels.each_ref().map(String::as_str);
        self.outbound
            .with_label_values(&[namespace, name, component, &destination, decision])
            .inc();
    }

    /// A call to plugin `interface` ended, well or not, after `elapsed`.
    pub fn plugin_call(&self, interface: &'static str, ok: bool, elapsed: std::time::Duration) {
        self.interfaces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(interface);
        let [namespace, name, component] = self.labels.each_ref().map(String::as_str);
        let outcome = OUTCOMES[usize::from(!ok)];
        self.plugin_calls
            .with_label_values(&[namespace, name, component, interface, outcome])
            .inc();
        self.plugin_duration
            .with_label_values(&[namespace, name, component, interface])
            .observe(elapsed.as_secs_f64());
    }
}

/// One request a component is handling; see [`ComponentMetrics::request`].
pub struct InFlight<'a> {
    metrics: &'a ComponentMetrics,
    started: std::time::Instant,
}

impl InFlight<'_> {
    /// The component answered with `status`.
    #[inline]
    pub fn finish(self, status: http::StatusCode) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.metrics.requests[class].inc();
        match status {
            http::StatusCode::SERVICE_UNAVAILABLE => self.metrics.unavailable.inc(),
            http::StatusCode::GATEWAY_TIMEOUT => self.metrics.timed_out.inc(),
            _ => {}
        }
        self.metrics
            .duration
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}

/// Keeps one WebSocket connection counted as open.
pub struct WebSocketOpen(std::sync::Arc<ComponentMetrics>);

impl Drop for WebSocketOpen {
    fn drop(&mut self) {
        self.0.websocket_open.dec();
    }
}
