//! A guest's metrics: bounded where it hands them over, and turned into the
//! SDK's `ResourceMetrics` on the exporting thread.
//!
//! The SDK builds `ResourceMetrics` only from its own instruments, so each
//! export becomes a short-lived meter provider with a manual reader (no
//! thread): every guest metric is registered as an observable instrument
//! reporting the guest's values, collected once, and the provider is
//! dropped. Sums and gauges keep their values, sums their monotonicity and
//! temporality (a delta sum goes through a delta reader); histograms go out
//! as `NAME_sum` and `NAME_count` counters; exemplars are not sent. The
//! start time of a cumulative series is the collection's, not the guest's.

use crate::bindings::wasi::otel::metrics as wit;
use crate::convert::{Budget, MAX_NAME};
use opentelemetry::metrics::{AsyncInstrument, Meter, MeterProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Scopes, metrics and data points one export may hold.
const MAX_SCOPES: usize = 16;
const MAX_METRICS: usize = 256;
const MAX_POINTS: usize = 2048;
/// What one export may hold, in bytes (about).
const EXPORT_BYTES: usize = 256 * 1024;
/// Attributes one export may hold, over all its data points.
const EXPORT_ATTRIBUTES: usize = 4096;
/// Longest metric name kept: the SDK refuses names over 255 bytes, and a
/// histogram's `NAME_count` and `NAME_sum` must fit too.
const MAX_INSTRUMENT_NAME: usize = 250;
/// Longest unit the SDK takes.
const MAX_UNIT: usize = 63;
/// Longest description kept.
const MAX_DESCRIPTION: usize = 1024;
/// What one data point costs besides its attributes.
const POINT_BYTES: usize = std::mem::size_of::<wit::HistogramDataPoint>();

/// Cuts `metrics` to the caps (scopes, metrics, points, strings and
/// attributes within one budget; exemplars, bucket lists and the guest's
/// resource are not used) and returns about how many bytes it still holds.
pub(crate) fn bound(metrics: &mut wit::ResourceMetrics) -> usize {
    let mut budget = Budget::new(EXPORT_BYTES, EXPORT_ATTRIBUTES);
    metrics.resource.attributes = Vec::new();
    metrics.resource.schema_url = None;
    metrics.scope_metrics.truncate(MAX_SCOPES);
    // Cut lists keep their allocation: give back what was cut, so what the
    // queue counts is what is held.
    metrics.scope_metrics.shrink_to_fit();
    let (mut metric_room, mut point_room) = (MAX_METRICS, MAX_POINTS);
    for scope in &mut metrics.scope_metrics {
        let fields = &mut scope.scope;
        fields.name = budget.text(std::mem::take(&mut fields.name), MAX_NAME);
        fields.version = fields.version.take().map(|v| budget.text(v, MAX_NAME));
        fields.schema_url = fields.schema_url.take().map(|v| budget.text(v, MAX_NAME));
        fields.attributes.retain_mut(|pair| budget.keep(pair));
        fields.attributes.shrink_to_fit();
        scope.metrics.truncate(metric_room);
        scope.metrics.shrink_to_fit();
        metric_room -= scope.metrics.len();
        for metric in &mut scope.metrics {
            metric.name = budget.text(std::mem::take(&mut metric.name), MAX_INSTRUMENT_NAME);
            metric.description =
                budget.text(std::mem::take(&mut metric.description), MAX_DESCRIPTION);
            // The SDK drops an instrument whose unit is not at most 63
            // ASCII characters: such a unit is left out instead.
            let unit = std::mem::take(&mut metric.unit);
            metric.unit = if unit.len() <= MAX_UNIT && unit.is_ascii() {
                budget.text(unit, MAX_UNIT)
            } else {
                String::new()
            };
            point_room -= bound_points(&mut metric.data, point_room, &mut budget);
        }
    }
    budget.used() + std::mem::size_of::<wit::ResourceMetrics>()
}

/// Keeps at most `room` data points of `data`, their attributes within
/// `budget` (and no exemplars or bucket lists); returns how many it kept.
fn bound_points(data: &mut wit::MetricData, room: usize, budget: &mut Budget) -> usize {
    use wit::MetricData as D;
    macro_rules! points {
        ($points:expr) => {{
            $points.truncate(room);
            $points.shrink_to_fit();
            for point in $points.iter_mut() {
                budget.charge(POINT_BYTES);
                point.exemplars = Vec::new();
                point.attributes.retain_mut(|pair| budget.keep(pair));
                point.attributes.shrink_to_fit();
            }
            $points.len()
        }};
    }
    match data {
        D::F64Gauge(g) | D::U64Gauge(g) | D::S64Gauge(g) => points!(g.data_points),
        D::F64Sum(s) | D::U64Sum(s) | D::S64Sum(s) => points!(s.data_points),
        D::F64Histogram(h) | D::U64Histogram(h) | D::S64Histogram(h) => {
            let kept = points!(h.data_points);
            for point in &mut h.data_points {
                point.bounds = Vec::new();
                point.bucket_counts = Vec::new();
            }
            kept
        }
        D::F64ExponentialHistogram(h)
        | D::U64ExponentialHistogram(h)
        | D::S64ExponentialHistogram(h) => {
            let kept = points!(h.data_points);
            for point in &mut h.data_points {
                point.positive_bucket.counts = Vec::new();
                point.negative_bucket.counts = Vec::new();
            }
            kept
        }
    }
}

/// The manual reader, shared: the provider owns one handle, the collection
/// the other.
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// Whether a metric's data is a delta (or low-memory) series.
fn is_delta(data: &wit::MetricData) -> bool {
    use wit::MetricData as D;
    let temporality = match data {
        D::F64Gauge(_) | D::U64Gauge(_) | D::S64Gauge(_) => return false,
        D::F64Sum(s) | D::U64Sum(s) | D::S64Sum(s) => s.temporality,
        D::F64Histogram(h) | D::U64Histogram(h) | D::S64Histogram(h) => h.temporality,
        D::F64ExponentialHistogram(h)
        | D::U64ExponentialHistogram(h)
        | D::S64ExponentialHistogram(h) => h.temporality,
    };
    !matches!(temporality, wit::Temporality::Cumulative)
}

/// The guest's metrics as `ResourceMetrics` under `resource`: one for its
/// cumulative series and gauges, one for its delta series (each only if
/// there are any).
pub(crate) fn collect(resource: &Resource, metrics: wit::ResourceMetrics) -> Vec<ResourceMetrics> {
    let mut out = Vec::new();
    for delta in [false, true] {
        let reader = Arc::new(
            ManualReader::builder()
                .with_temporality(if delta {
                    Temporality::Delta
                } else {
                    Temporality::Cumulative
                })
                .build(),
        );
        let provider = SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_reader(SharedReader(reader.clone()))
            .build();
        let mut any = false;
        for scope in &metrics.scope_metrics {
            let mut budget = Budget::new(EXPORT_BYTES, 32);
            let (attributes, _) = budget.attributes(scope.scope.attributes.clone());
            let mut builder =
                InstrumentationScope::builder(scope.scope.name.clone()).with_attributes(attributes);
            if let Some(version) = &scope.scope.version {
                builder = builder.with_version(version.clone());
            }
            if let Some(url) = &scope.scope.schema_url {
                builder = builder.with_schema_url(url.clone());
            }
            let meter = provider.meter_with_scope(builder.build());
            for metric in scope.metrics.iter().filter(|m| is_delta(&m.data) == delta) {
                register(&meter, metric);
                any = true;
            }
        }
        if any {
            let mut collected = ResourceMetrics::default();
            match reader.collect(&mut collected) {
                Ok(()) => out.push(collected),
                Err(error) => tracing::debug!(
                    target: "nimbus::otel",
                    "guest metrics could not be collected: {error}"
                ),
            }
        }
        let _ = provider.shutdown();
    }
    out
}

/// A data point's attributes as typed ones (at most 64 reach here).
fn point_attributes(list: &[wit::KeyValue]) -> Vec<KeyValue> {
    let mut budget = Budget::new(EXPORT_BYTES, 64);
    budget.attributes(list.to_vec()).0
}

fn as_f64(n: wit::MetricNumber) -> f64 {
    match n {
        wit::MetricNumber::F64(v) => v,
        wit::MetricNumber::S64(v) => v as f64,
        wit::MetricNumber::U64(v) => v as f64,
    }
}

fn as_u64(n: wit::MetricNumber) -> u64 {
    match n {
        // `as` saturates (NaN is 0).
        wit::MetricNumber::F64(v) => v as u64,
        wit::MetricNumber::S64(v) => u64::try_from(v).unwrap_or(0),
        wit::MetricNumber::U64(v) => v,
    }
}

fn as_i64(n: wit::MetricNumber) -> i64 {
    match n {
        wit::MetricNumber::F64(v) => v as i64,
        wit::MetricNumber::S64(v) => v,
        wit::MetricNumber::U64(v) => i64::try_from(v).unwrap_or(i64::MAX),
    }
}

/// Points as (value, attributes), owned by the instrument's callback.
type Points<N> = Arc<Vec<(N, Vec<KeyValue>)>>;

fn points<P, N>(
    list: &[P],
    value: impl Fn(&P) -> N,
    attributes: impl Fn(&P) -> &[wit::KeyValue],
) -> Points<N> {
    Arc::new(
        list.iter()
            .map(|p| (value(p), point_attributes(attributes(p))))
            .collect(),
    )
}

fn report<N>(points: Points<N>) -> impl Fn(&dyn AsyncInstrument<N>) + Send + Sync
where
    N: Copy + Send + Sync + 'static,
{
    move |observer| {
        for (value, attributes) in points.iter() {
            observer.observe(*value, attributes);
        }
    }
}

/// Registers one guest metric on `meter` as the instruments that report it.
fn register(meter: &Meter, metric: &wit::Metric) {
    use wit::MetricData as D;
    let name = metric.name.clone();
    let (description, unit) = (metric.description.clone(), metric.unit.clone());
    macro_rules! instrument {
        ($builder:ident, $name:expr, $points:expr) => {
            meter
                .$builder($name)
                .with_description(description.clone())
                .with_unit(unit.clone())
                .with_callback(report($points))
                .build()
        };
    }
    match &metric.data {
        D::F64Gauge(g) => {
            instrument!(
                f64_observable_gauge,
                name,
                points(&g.data_points, |p| as_f64(p.value), |p| &p.attributes)
            );
        }
        D::U64Gauge(g) => {
            instrument!(
                u64_observable_gauge,
                name,
                points(&g.data_points, |p| as_u64(p.value), |p| &p.attributes)
            );
        }
        D::S64Gauge(g) => {
            instrument!(
                i64_observable_gauge,
                name,
                points(&g.data_points, |p| as_i64(p.value), |p| &p.attributes)
            );
        }
        D::F64Sum(s) if s.is_monotonic => {
            instrument!(
                f64_observable_counter,
                name,
                points(&s.data_points, |p| as_f64(p.value), |p| &p.attributes)
            );
        }
        D::U64Sum(s) | D::S64Sum(s) if s.is_monotonic => {
            instrument!(
                u64_observable_counter,
                name,
                points(&s.data_points, |p| as_u64(p.value), |p| &p.attributes)
            );
        }
        D::F64Sum(s) => {
            instrument!(
                f64_observable_up_down_counter,
                name,
                points(&s.data_points, |p| as_f64(p.value), |p| &p.attributes)
            );
        }
        D::U64Sum(s) | D::S64Sum(s) => {
            instrument!(
                i64_observable_up_down_counter,
                name,
                points(&s.data_points, |p| as_i64(p.value), |p| &p.attributes)
            );
        }
        D::F64Histogram(h) | D::U64Histogram(h) | D::S64Histogram(h) => {
            instrument!(
                f64_observable_counter,
                format!("{name}_sum"),
                points(&h.data_points, |p| as_f64(p.sum), |p| &p.attributes)
            );
            instrument!(
                u64_observable_counter,
                format!("{name}_count"),
                points(&h.data_points, |p| p.count, |p| &p.attributes)
            );
        }
        D::F64ExponentialHistogram(h)
        | D::U64ExponentialHistogram(h)
        | D::S64ExponentialHistogram(h) => {
            instrument!(
                f64_observable_counter,
                format!("{name}_sum"),
                points(&h.data_points, |p| as_f64(p.sum), |p| &p.attributes)
            );
            instrument!(
                u64_observable_counter,
                format!("{name}_count"),
                points(&h.data_points, |p| p.count, |p| &p.attributes)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::wasi::clocks::wall_clock::Datetime;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};

    const NOW: Datetime = Datetime {
        seconds: 1_700_000_000,
        nanoseconds: 0,
    };

    fn sum(name: &str, value: u64, temporality: wit::Temporality) -> wit::Metric {
        wit::Metric {
            name: name.into(),
            description: "requests".into(),
            unit: "1".into(),
            data: wit::MetricData::U64Sum(wit::Sum {
                data_points: vec![wit::SumDataPoint {
                    attributes: vec![wit::KeyValue {
                        key: "route".into(),
                        value: "\"/\"".into(),
                    }],
                    value: wit::MetricNumber::U64(value),
                    exemplars: Vec::new(),
                }],
                start_time: NOW,
                time: NOW,
                temporality,
                is_monotonic: true,
            }),
        }
    }

    fn export(metrics: Vec<wit::Metric>) -> wit::ResourceMetrics {
        wit::ResourceMetrics {
            resource: wit::Resource {
                attributes: Vec::new(),
                schema_url: None,
            },
            scope_metrics: vec![wit::ScopeMetrics {
                scope: wit::InstrumentationScope {
                    name: "guest".into(),
                    version: None,
                    schema_url: None,
                    attributes: Vec::new(),
                },
                metrics,
            }],
        }
    }

    fn u64_sums(rm: &ResourceMetrics) -> Vec<(String, u64, Temporality)> {
        let mut out = Vec::new();
        for scope in rm.scope_metrics() {
            for metric in scope.metrics() {
                if let AggregatedMetrics::U64(MetricData::Sum(sum)) = metric.data() {
                    for point in sum.data_points() {
                        out.push((metric.name().to_string(), point.value(), sum.temporality()));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn sums_keep_their_values_and_temporality() {
        let resource = Resource::builder_empty()
            .with_attribute(KeyValue::new("nimbus.component", "app"))
            .build();
        let mut metrics = export(vec![
            sum("total", 7, wit::Temporality::Cumulative),
            sum("recent", 2, wit::Temporality::Delta),
        ]);
        bound(&mut metrics);
        let collected = collect(&resource, metrics);
        assert_eq!(collected.len(), 2);
        assert_eq!(
            u64_sums(&collected[0]),
            [("total".to_string(), 7, Temporality::Cumulative)]
        );
        assert_eq!(
            u64_sums(&collected[1]),
            [("recent".to_string(), 2, Temporality::Delta)]
        );
        assert_eq!(
            collected[0]
                .resource()
                .get(&opentelemetry::Key::new("nimbus.component")),
            Some("app".into())
        );
    }

    #[test]
    fn an_export_is_cut_to_the_caps() {
        let many: Vec<wit::Metric> = (0..1000)
            .map(|i| sum(&format!("m{i}"), i, wit::Temporality::Cumulative))
            .collect();
        let mut metrics = export(many);
        metrics.scope_metrics[0].metrics[0].name = "x".repeat(100_000);
        let bytes = bound(&mut metrics);
        assert_eq!(metrics.scope_metrics[0].metrics.len(), MAX_METRICS);
        assert_eq!(
            metrics.scope_metrics[0].metrics[0].name.len(),
            MAX_INSTRUMENT_NAME
        );
        assert!(bytes <= EXPORT_BYTES + std::mem::size_of::<wit::ResourceMetrics>() + POINT_BYTES);
    }
}
