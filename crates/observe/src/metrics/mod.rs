//! Accounting: what each workload's components cost and do, measured by the
//! host that runs them, exported in the Prometheus text format.
//!
//! Many components share one host process, so cgroup-level tools cannot say
//! what one of them costs; the host can, because it drives every store:
//!
//! - guest CPU: the thread CPU clock read around every poll of an instance's
//!   worker (the future that runs the guest), so time spent waiting is never
//!   counted; a poll's CPU is shared among the requests the instance was
//!   handling during it (`usage`), and charged to the component's CPU
//!   budget when it has a `cpuLimit` ([`ChargeCpu`]); the time its
//!   instances were held back over that limit is counted apart;
//! - linear memory: every growth passes through the store's limiter (the
//!   runtime's `MeteredLimiter`, which reports here), which keeps the component's live total and each instance's
//!   size, the peak a request saw;
//! - instances, requests by status class, latency, in-flight requests,
//!   outbound requests by destination and decision, and plugin calls by
//!   interface and outcome with their latency.
//!
//! Labels are `namespace`, `workload` and `component` (plus a status class,
//! a decision, and a destination host capped per component), never a path,
//! so the number of series is bounded by what runs. Series of a workload are
//! dropped when it stops.

mod component;
mod cpu;
mod reading;
mod usage;

pub use component::{ComponentMetrics, InFlight, WebSocketOpen};
pub use cpu::{ChargeCpu, Metered, spawn_metered};
pub use reading::{ComponentReading, quantile};
pub use usage::RequestUsage;
pub use usage::WorkerMeter;

pub use prometheus::proto::MetricType;
use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};

/// Most distinct destination hosts counted per component; further ones are
/// counted under `other`, so a guest cannot grow the series without bound.
const MAX_DESTINATIONS: usize = 64;

/// Latency buckets, in seconds: 0.5 ms to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

const COMPONENT_LABELS: &[&str] = &["namespace", "workload", "component"];

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

const OUTCOMES: [&str; 2] = ["ok", "error"];

const WEBSOCKET_DIRECTIONS: [&str; 2] = ["in", "out"];

/// How a WebSocket upgrade or connection ended (the `reason` label of
/// `nimbus_websocket_connections_ended_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebSocketEnd {
    /// Refused before it opened: by the handler's `on-open`, or a bad
    /// upgrade request.
    Refused,
    /// Refused before it opened: the workload was at `max_connections`.
    OverLimit,
    /// The client closed it.
    Client,
    /// A component closed it.
    Component,
    /// Nothing went either way for `idle_timeout`.
    Idle,
    /// A message was over `max_message_bytes`.
    TooLarge,
    /// The client broke the protocol (an unmasked or malformed frame, text
    /// that is not UTF-8): closed with 1002 or 1007.
    ProtocolError,
    /// A handler trapped or missed its deadline.
    HandlerFailed,
    /// The connection dropped without a closing handshake.
    Dropped,
    /// The workload stopped or was replaced.
    Stopped,
}

impl WebSocketEnd {
    /// Every end, in label order.
    pub const ALL: [WebSocketEnd; 10] = [
        Self::Refused,
        Self::OverLimit,
        Self::Client,
        Self::Component,
        Self::Idle,
        Self::TooLarge,
        Self::ProtocolError,
        Self::HandlerFailed,
        Self::Dropped,
        Self::Stopped,
    ];

    /// Its `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::OverLimit => "over_limit",
            Self::Client => "client",
            Self::Component => "component",
            Self::Idle => "idle",
            Self::TooLarge => "too_large",
            Self::ProtocolError => "protocol_error",
            Self::HandlerFailed => "handler_failed",
            Self::Dropped => "dropped",
            Self::Stopped => "stopped",
        }
    }
}

/// The host's metrics. Cheap to share (`Arc`).
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    requests_by_status: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGaugeVec,
    cpu: CounterVec,
    cpu_throttled: CounterVec,
    memory: IntGaugeVec,
    memory_peak: IntGaugeVec,
    instances: IntGaugeVec,
    instances_created: IntCounterVec,
    instance_reuses: IntCounterVec,
    instances_discarded: IntCounterVec,
    messages_shed: IntCounterVec,
    websocket_open: IntGaugeVec,
    websocket_messages: IntCounterVec,
    websocket_ends: IntCounterVec,
    outbound: IntCounterVec,
    plugin_calls: IntCounterVec,
    plugin_duration: HistogramVec,
    workloads: IntGauge,
    limit_events: IntCounterVec,
    connections: IntGauge,
    /// Every metric family: name, help and type (a family with no series
    /// yet is missing from `gather`).
    catalog: Vec<(String, String, MetricType)>,
    /// Series created per workload id, so they can be dropped when it stops.
    series: Mutex<HashMap<String, HashMap<String, Arc<ComponentMetrics>>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    /// A registry with every Nimbus metric, all at zero.
    pub fn new() -> Self {
        let registry = Registry::new();
        let catalog = std::cell::RefCell::new(Vec::new());
        let register = |collector: Box<dyn prometheus::core::Collector>, kind: MetricType| {
            for desc in collector.desc() {
                catalog
                    .borrow_mut()
                    .push((desc.fq_name.clone(), desc.help.clone(), kind));
            }
            registry.register(collector).expect("unique metric");
        };
        let with = |extra: &[&'static str]| {
            let mut labels = COMPONENT_LABELS.to_vec();
            labels.extend_from_slice(extra);
            labels
        };
        let counter = |name: &str, help: &str, extra: &[&'static str]| {
            let vec = IntCounterVec::new(opts(name, help), &with(extra)).expect("valid metric");
            register(Box::new(vec.clone()), MetricType::COUNTER);
            vec
        };
        let gauge = |name: &str, help: &str| {
            let vec = IntGaugeVec::new(opts(name, help), COMPONENT_LABELS).expect("valid metric");
            register(Box::new(vec.clone()), MetricType::GAUGE);
            vec
        };
        let requests = counter(
            "nimbus_requests_total",
            "HTTP requests a component answered, by status class (1xx to 5xx).",
            &["class"],
        );
        let requests_by_status = counter(
            "nimbus_requests_by_status_total",
            "HTTP requests a component answered 503 (unavailable: over capacity, or no instance) or 504 (past its deadline), by status; also counted in nimbus_requests_total's 5xx class.",
            &["status"],
        );
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "nimbus_request_duration_seconds",
                "Time from handing a request to a component to its response headers.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            COMPONENT_LABELS,
        )
        .expect("valid metric");
        register(Box::new(duration.clone()), MetricType::HISTOGRAM);
        let cpu = CounterVec::new(
            opts(
                "nimbus_guest_cpu_seconds_total",
                "CPU time the host spent running the component (thread CPU clock over every poll of its instances).",
            ),
            COMPONENT_LABELS,
        )
        .expect("valid metric");
        register(Box::new(cpu.clone()), MetricType::COUNTER);
        let cpu_throttled = CounterVec::new(
            opts(
                "nimbus_guest_cpu_throttled_seconds_total",
                "Wall time the component's instances were held back for being over its CPU limit (cpuLimit), summed over instances; never counted as CPU.",
            ),
            COMPONENT_LABELS,
        )
        .expect("valid metric");
        register(Box::new(cpu_throttled.clone()), MetricType::COUNTER);
        let plugin_duration = HistogramVec::new(
            HistogramOpts::new(
                "nimbus_plugin_call_duration_seconds",
                "Time a plugin call of the component took, by interface.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &with(&["interface"]),
        )
        .expect("valid metric");
        register(Box::new(plugin_duration.clone()), MetricType::HISTOGRAM);
        let workloads = IntGauge::new("nimbus_workloads", "Workloads running on this host.")
            .expect("valid metric");
        register(Box::new(workloads.clone()), MetricType::GAUGE);
        let limit_events = IntCounterVec::new(
            opts(
                "nimbus_limit_events_total",
                "Times a host-wide limit acted, by limit: ingress_connections (a connection refused at the cap), ingress_first_request (closed before its first request head), ingress_idle (an idle keep-alive closed), admin_connections / admin_first_request / admin_idle (the same on the admin endpoint), admin_lifetime (an admin connection closed after 30 s), outbound_connections (an outgoing connection refused at a cap), guest_output (guest stdout/stderr dropped over its budget).",
            ),
            &["limit"],
        )
        .expect("valid metric");
        register(Box::new(limit_events.clone()), MetricType::COUNTER);
        let connections = IntGauge::new(
            "nimbus_ingress_connections",
            "Client connections the ingress holds open now.",
        )
        .expect("valid metric");
        register(Box::new(connections.clone()), MetricType::GAUGE);
        let mut metrics = Self {
            requests,
            requests_by_status,
            duration,
            in_flight: gauge(
                "nimbus_requests_in_flight",
                "HTTP requests a component is handling now.",
            ),
            cpu,
            cpu_throttled,
            memory: gauge(
                "nimbus_memory_bytes",
                "Linear memory of the component's live instances, in bytes.",
            ),
            memory_peak: gauge(
                "nimbus_memory_peak_bytes",
                "Largest linear memory one instance of the component has reached, in bytes.",
            ),
            instances: gauge("nimbus_instances", "Live instances of the component."),
            instances_created: counter(
                "nimbus_instances_created_total",
                "Instances of the component created.",
                &[],
            ),
            instance_reuses: counter(
                "nimbus_instance_reuses_total",
                "Requests served by an instance that had served one before.",
                &[],
            ),
            instances_discarded: counter(
                "nimbus_instances_discarded_total",
                "Instances dropped mid-work: after a trap or a missed deadline, or when every client they served left.",
                &[],
            ),
            messages_shed: counter(
                "nimbus_messages_shed_total",
                "Subscribed messages dropped because the component had no free slot within its admission wait.",
                &[],
            ),
            websocket_open: gauge(
                "nimbus_websocket_connections",
                "WebSocket connections open to the component's handler now.",
            ),
            websocket_messages: counter(
                "nimbus_websocket_messages_total",
                "WebSocket messages of the component's workload, by direction: in (delivered to the handler) or out (written to the client).",
                &["direction"],
            ),
            websocket_ends: counter(
                "nimbus_websocket_connections_ended_total",
                "WebSocket upgrades and connections the component's handler took, by how they ended: refused (by on-open, or a bad upgrade request), over_limit (max_connections), client (the client closed), component (a component closed), idle (idle_timeout), too_large (a message over max_message_bytes), handler_failed (a trap or missed deadline), dropped (no closing handshake), stopped (the workload stopped or was replaced).",
                &["reason"],
            ),
            outbound: counter(
                "nimbus_outbound_requests_total",
                "Outgoing HTTP requests of the component, by destination host and decision (allowed or denied).",
                &["destination", "decision"],
            ),
            plugin_calls: counter(
                "nimbus_plugin_calls_total",
                "Calls the component made to host plugins, by interface (such as wasi:keyvalue/store) and outcome (ok or error).",
                &["interface", "outcome"],
            ),
            plugin_duration,
            workloads,
            limit_events,
            connections,
            series: Mutex::default(),
            catalog: catalog.into_inner(),
            registry,
        };
        metrics.register_process();
        metrics
    }

    /// The process as a whole: `nimbus_build_info` (the version, value 1)
    /// and, on Linux, the standard `process_*` families read from /proc
    /// (resident and virtual memory, open and maximum descriptors, CPU
    /// seconds, threads, start time).
    fn register_process(&mut self) {
        let build = IntGaugeVec::new(
            opts(
                "nimbus_build_info",
                "Always 1; its labels name the Nimbus version serving.",
            ),
            &["version"],
        )
        .expect("valid metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let mut collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![Box::new(build)];
        #[cfg(target_os = "linux")]
        collectors.push(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        for collector in collectors {
            for desc in collector.desc() {
                let kind = if desc.fq_name.ends_with("_total") {
                    MetricType::COUNTER
                } else {
                    MetricType::GAUGE
                };
                self.catalog
                    .push((desc.fq_name.clone(), desc.help.clone(), kind));
            }
            self.registry.register(collector).expect("unique metric");
        }
    }

    /// The handles one component of workload `workload_id` (`namespace/name`)
    /// records through. A replaced workload's components keep their series.
    pub fn component(&self, workload_id: &str, component: &str) -> Arc<ComponentMetrics> {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let components = series.entry(workload_id.to_string()).or_default();
        if let Some(existing) = components.get(component) {
            return existing.clone();
        }
        let (namespace, name) = workload_id
            .split_once('/')
            .unwrap_or(("default", workload_id));
        let labels = [namespace, name, component];
        let metrics = Arc::new(ComponentMetrics {
            labels: labels.map(str::to_string),
            requests: CLASSES.map(|class| {
                self.requests
                    .with_label_values(&[namespace, name, component, class])
            }),
            unavailable: self
                .requests_by_status
                .with_label_values(&[namespace, name, component, "503"]),
            timed_out: self
                .requests_by_status
                .with_label_values(&[namespace, name, component, "504"]),
            duration: self.duration.with_label_values(&labels),
            in_flight: self.in_flight.with_label_values(&labels),
            cpu: self.cpu.with_label_values(&labels),
            cpu_throttled: self.cpu_throttled.with_label_values(&labels),
            memory: self.memory.with_label_values(&labels),
            memory_peak: self.memory_peak.with_label_values(&labels),
            peak: AtomicI64::new(0),
            instances: self.instances.with_label_values(&labels),
            instances_created: self.instances_created.with_label_values(&labels),
            instance_reuses: self.instance_reuses.with_label_values(&labels),
            instances_discarded: self.instances_discarded.with_label_values(&labels),
            messages_shed: self.messages_shed.with_label_values(&labels),
            websocket_open: self.websocket_open.with_label_values(&labels),
            websocket_messages: WEBSOCKET_DIRECTIONS.map(|direction| {
                self.websocket_messages
                    .with_label_values(&[namespace, name, component, direction])
            }),
            websocket_ends: WebSocketEnd::ALL.map(|end| {
                self.websocket_ends
                    .with_label_values(&[namespace, name, component, end.label()])
            }),
            outbound: self.outbound.clone(),
            destinations: Mutex::default(),
            plugin_calls: self.plugin_calls.clone(),
            plugin_duration: self.plugin_duration.clone(),
            interfaces: Mutex::default(),
        });
        components.insert(component.to_string(), metrics.clone());
        metrics
    }

    /// Drops every series of a stopped workload.
    pub fn forget(&self, workload_id: &str) {
        let Some(components) = self
            .series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(workload_id)
        else {
            return;
        };
        for component in components.into_values() {
            let [namespace, name, comp] = component.labels.each_ref().map(String::as_str);
            let labels = [namespace, name, comp];
            for class in CLASSES {
                let _ = self
                    .requests
                    .remove_label_values(&[namespace, name, comp, class]);
            }
            for status in ["503", "504"] {
                let _ = self
                    .requests_by_status
                    .remove_label_values(&[namespace, name, comp, status]);
            }
            for vec in [
                &self.in_flight,
                &self.memory,
                &self.memory_peak,
                &self.instances,
                &self.websocket_open,
            ] {
                let _ = vec.remove_label_values(&labels);
            }
            for vec in [
                &self.instances_created,
                &self.instance_reuses,
                &self.instances_discarded,
                &self.messages_shed,
            ] {
                let _ = vec.remove_label_values(&labels);
            }
            for direction in WEBSOCKET_DIRECTIONS {
                let _ = self
                    .websocket_messages
                    .remove_label_values(&[namespace, name, comp, direction]);
            }
            for end in WebSocketEnd::ALL {
                let _ =
                    self.websocket_ends
                        .remove_label_values(&[namespace, name, comp, end.label()]);
            }
            let _ = self.duration.remove_label_values(&labels);
            let _ = self.cpu.remove_label_values(&labels);
            let _ = self.cpu_throttled.remove_label_values(&labels);
            for (destination, decision) in component
                .destinations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain()
            {
                let _ = self.outbound.remove_label_values(&[
                    namespace,
                    name,
                    comp,
                    &destination,
                    decision,
                ]);
            }
            for interface in component
                .interfaces
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain()
            {
                let _ = self
                    .plugin_duration
                    .remove_label_values(&[namespace, name, comp, interface]);
                for outcome in OUTCOMES {
                    let _ = self
                        .plugin_calls
                        .remove_label_values(&[namespace, name, comp, interface, outcome]);
                }
            }
        }
    }

    /// Sets the number of running workloads.
    pub fn set_workloads(&self, count: usize) {
        self.workloads.set(count as i64);
    }

    /// A host-wide limit acted (see `nimbus_limit_events_total`).
    pub fn limit_hit(&self, limit: &'static str) {
        self.limit_events.with_label_values(&[limit]).inc();
    }

    /// The open ingress connections gauge.
    pub fn connections(&self) -> &IntGauge {
        &self.connections
    }

    /// Every metric family the host exports: name, help text and type.
    pub fn families(&self) -> &[(String, String, MetricType)] {
        &self.catalog
    }

    /// Every metric family as it stands now (what `/metrics` encodes, and
    /// what an OTLP metrics bridge reads).
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }

    /// The `process_*` families alone (on Linux; none elsewhere): what
    /// `gather` reports of the process, without reading every series.
    pub fn gather_process(&self) -> Vec<prometheus::proto::MetricFamily> {
        #[cfg(target_os = "linux")]
        {
            use prometheus::core::Collector as _;
            prometheus::process_collector::ProcessCollector::for_self().collect()
        }
        #[cfg(not(target_os = "linux"))]
        Vec::new()
    }

    /// Every metric in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        // Encoding into memory only fails on invalid metric families, which
        // the constructors above rule out.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn series_are_labelled_bounded_and_dropped_with_their_workload() {
        let metrics = Metrics::new();
        let component = metrics.component("shop/cart", "api");
        component.request().finish(http::StatusCode::OK);
        component.request().finish(http::StatusCode::BAD_GATEWAY);
        let abandoned = component.request();
        assert!(metrics.encode().contains(
            r#"nimbus_requests_in_flight{component="api",namespace="shop",workload="cart"} 1"#
        ));
        drop(abandoned);
        component.cpu_spent(1_500_000);
        component.cpu_throttled(std::time::Duration::from_millis(250));
        component.memory_changed(1 << 20, 1 << 20);
        for n in 0..(MAX_DESTINATIONS + 10) {
            component.outbound(&format!("h{n}.example.com"), n % 2 == 0);
        }
        let text = metrics.encode();
        assert!(
            text.contains(r#"nimbus_requests_total{class="2xx",component="api",namespace="shop",workload="cart"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"nimbus_requests_total{class="5xx",component="api",namespace="shop",workload="cart"} 1"#));
        assert!(text.contains(
            r#"nimbus_requests_in_flight{component="api",namespace="shop",workload="cart"} 0"#
        ));
        assert!(text.contains(r#"nimbus_request_duration_seconds_count{component="api",namespace="shop",workload="cart"} 2"#));
        assert!(text.contains(r#"nimbus_guest_cpu_seconds_total{component="api",namespace="shop",workload="cart"} 0.0015"#));
        assert!(text.contains(r#"nimbus_guest_cpu_throttled_seconds_total{component="api",namespace="shop",workload="cart"} 0.25"#));
        assert!(text.contains(
            r#"nimbus_memory_peak_bytes{component="api",namespace="shop",workload="cart"} 1048576"#
        ));
        let destinations: HashSet<&str> = text
            .lines()
            .filter(|l| l.starts_with("nimbus_outbound_requests_total{"))
            .filter_map(|l| l.split("destination=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(destinations.len(), MAX_DESTINATIONS + 1, "{destinations:?}");
        assert!(destinations.contains("other"));

        metrics.forget("shop/cart");
        let text = metrics.encode();
        assert!(!text.contains("workload=\"cart\""), "{text}");
    }

    /// The metric names the Grafana dashboard and the docs use are the ones
    /// the host exports.
    #[test]
    fn the_build_and_on_linux_the_process_are_exported() {
        let metrics = Metrics::new();
        let text = metrics.encode();
        let build = format!(
            "nimbus_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&build), "{text}");
        #[cfg(target_os = "linux")]
        for family in [
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{family} ")))
                .unwrap_or_else(|| panic!("{family} missing:\n{text}"));
            let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(value > 0.0, "{line}");
            assert!(
                metrics.families().iter().any(|(name, _, _)| name == family),
                "{family} is not in the catalog"
            );
        }
    }

    #[test]
    fn the_dashboard_and_the_docs_name_real_metrics() {
        let metrics = Metrics::new();
        metrics
            .component("a/b", "c")
            .request()
            .finish(http::StatusCode::OK);
        let exported: HashSet<String> = metrics
            .families()
            .iter()
            .map(|(name, _, _)| name.clone())
            .collect();
        // The catalog is what `/metrics` exports once every series exists.
        for line in metrics.encode().lines() {
            if let Some(name) = line
                .strip_prefix("# TYPE ")
                .and_then(|l| l.split(' ').next())
            {
                assert!(exported.contains(name), "{name} is missing from families()");
            }
        }
        for (file, text) in [
            (
                "docs/grafana-dashboard.json",
                include_str!("../../../../docs/grafana-dashboard.json"),
            ),
            (
                "docs/OBSERVABILITY.md",
                include_str!("../../../../docs/OBSERVABILITY.md"),
            ),
        ] {
            let mut named = 0;
            for (at, _) in text.match_indices("nimbus_") {
                let name: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let base = name.strip_suffix("_bucket").unwrap_or(&name);
                assert!(
                    exported.contains(base),
                    "{file} names `{name}`, which is not exported"
                );
                named += 1;
            }
            assert!(named >= 8, "{file} names only {named} metrics");
        }
    }
}
