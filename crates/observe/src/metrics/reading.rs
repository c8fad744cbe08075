//! Reading the figures of every component at once, straight from its
//! series (no text encoding), and turning two readings into rates and
//! latency quantiles: what the admin console samples every second.

use super::{ComponentMetrics, Metrics};
use prometheus::core::Metric as _;
use std::sync::Arc;

/// The cumulative figures of one component at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ComponentReading {
    /// `namespace/name` of its workload.
    pub workload: String,
    /// The component's name.
    pub component: String,
    /// Requests answered, by status class (1xx to 5xx).
    pub requests: [u64; 5],
    /// Requests answered 503 (also in the 5xx class).
    pub unavailable: u64,
    /// Requests answered 504 (also in the 5xx class).
    pub timed_out: u64,
    /// Latency histogram: cumulative (upper bound in seconds, count), the
    /// last bound infinite.
    pub latency: Vec<(f64, u64)>,
    /// Guest CPU seconds.
    pub cpu_seconds: f64,
    /// Seconds instances were held back over the CPU limit, summed.
    pub throttled_seconds: f64,
    /// Linear memory of live instances.
    pub memory_bytes: i64,
    /// Largest linear memory one instance reached.
    pub memory_peak_bytes: i64,
    /// Live instances.
    pub instances: i64,
    /// Requests being handled now.
    pub in_flight: i64,
}

impl ComponentReading {
    /// Requests answered, all classes.
    pub fn requests_total(&self) -> u64 {
        self.requests.iter().sum()
    }
}

impl ComponentMetrics {
    fn reading(&self) -> ComponentReading {
        let [namespace, workload, component] = &self.labels;
        let histogram = self.duration.metric();
        let mut latency: Vec<(f64, u64)> = histogram
            .get_histogram()
            .get_bucket()
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        latency.push((f64::INFINITY, histogram.get_histogram().get_sample_count()));
        ComponentReading {
            workload: format!("{namespace}/{workload}"),
            component: component.clone(),
            requests: self.requests.each_ref().map(|c| c.get()),
            unavailable: self.unavailable.get(),
            timed_out: self.timed_out.get(),
            latency,
            cpu_seconds: self.cpu.get(),
            throttled_seconds: self.cpu_throttled.get(),
            memory_bytes: self.memory.get(),
            memory_peak_bytes: self.memory_peak.get(),
            instances: self.instances.get(),
            in_flight: self.in_flight.get(),
        }
    }
}

impl Metrics {
    /// Every component's figures now, sorted by workload and component.
    pub fn readings(&self) -> Vec<ComponentReading> {
        let components: Vec<Arc<ComponentMetrics>> = self
            .series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .flat_map(|components| components.values().cloned())
            .collect();
        let mut readings: Vec<ComponentReading> = components.iter().map(|c| c.reading()).collect();
        readings.sort_by(|a, b| (&a.workload, &a.component).cmp(&(&b.workload, &b.component)));
        readings
    }

    /// How many components have series.
    pub fn component_count(&self) -> usize {
        self.series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|c| c.len())
            .sum()
    }
}

/// The `q` quantile of cumulative `(upper bound, count)` buckets,
/// interpolated linearly inside the bucket it falls in (as Prometheus'
/// `histogram_quantile` does); `None` with no observations. A quantile in
/// the infinite bucket is the largest finite bound.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.iter().map(|(_, c)| *c).fold(0.0, f64::max);
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let width = count - lower.1;
            let fraction = if width > 0.0 {
                (rank - lower.1) / width
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * fraction);
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_has_every_figure_of_the_component() {
        let metrics = Metrics::new();
        let api = metrics.component("shop/cart", "api");
        api.request().finish(http::StatusCode::OK);
        api.request().finish(http::StatusCode::SERVICE_UNAVAILABLE);
        api.request().finish(http::StatusCode::GATEWAY_TIMEOUT);
        api.request().finish(http::StatusCode::BAD_GATEWAY);
        let _busy = api.request();
        api.cpu_spent(2_000_000);
        api.memory_changed(1 << 20, 1 << 20);
        metrics.component("shop/cart", "auth");
        let readings = metrics.readings();
        assert_eq!(readings.len(), 2);
        assert_eq!(metrics.component_count(), 2);
        let reading = &readings[0];
        assert_eq!(
            (reading.workload.as_str(), reading.component.as_str()),
            ("shop/cart", "api")
        );
        assert_eq!(reading.requests, [0, 1, 0, 0, 3]);
        assert_eq!((reading.unavailable, reading.timed_out), (1, 1));
        assert_eq!(reading.requests_total(), 4);
        assert_eq!(reading.in_flight, 1);
        assert_eq!(reading.memory_bytes, 1 << 20);
        assert!((reading.cpu_seconds - 0.002).abs() < 1e-9);
        let last = reading.latency.last().unwrap();
        assert!(last.0.is_infinite());
        assert_eq!(last.1, 4);
        assert_eq!(readings[1].component, "auth");
        assert_eq!(readings[1].requests_total(), 0);
    }

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let buckets = [(0.001, 50.0), (0.01, 99.0), (f64::INFINITY, 100.0)];
        assert!((quantile(&buckets, 0.5).unwrap() - 0.001).abs() < 1e-12);
        let p99 = quantile(&buckets, 0.99).unwrap();
        assert!(p99 > 0.001 && p99 <= 0.01 + 1e-12, "{p99}");
        assert_eq!(quantile(&buckets, 1.0), Some(0.01));
        assert_eq!(quantile(&[(0.001, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
    }
}
