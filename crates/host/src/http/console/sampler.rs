//! Live figures: every second the sampler reads every component's
//! counters ([`Metrics::readings`]), turns the difference with the last
//! reading into rates and latency quantiles ([`Figures`]), sums them per
//! workload and for the host, and keeps a few minutes of history.
//!
//! A workload's requests are those of its entry component (the outermost
//! middleware, else its handler), so a request through a chain counts
//! once; its CPU, memory and instances are summed over all components.
//!
//! Memory stays bounded whatever runs: history is kept for the host and
//! for at most [`MAX_TRACKED_WORKLOADS`] workloads that served a request in
//! the last [`HISTORY_POINTS`] seconds. A host with very many components
//! is sampled only while someone looks ([`Sampler::viewed`]), so an
//! unwatched console costs nothing there.

use crate::metrics::{ComponentReading, Metrics, quantile};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Points of history kept: one per second, five minutes.
pub const HISTORY_POINTS: usize = 300;

/// Workloads whose own history is kept at once (the busiest recently).
pub const MAX_TRACKED_WORKLOADS: usize = 256;

/// Above this many components the sampler runs only while the console is
/// watched: reading them all every second is no longer free.
const SAMPLE_UNWATCHED_UP_TO: usize = 2_000;

/// How long a look at the console keeps the sampler running.
const WATCHED_FOR: Duration = Duration::from_secs(300);

/// What a component, a workload or the host did over the last second.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    /// Requests answered per second.
    pub requests_per_second: f64,
    /// Per second, by class (`1xx` … `5xx`) and `503`, `504` apart.
    pub status_per_second: BTreeMap<&'static str, f64>,
    /// 5xx answers per second.
    pub errors_per_second: f64,
    /// Median latency of the requests answered, if any.
    pub p50_seconds: Option<f64>,
    /// 99th percentile latency, if any requests were answered.
    pub p99_seconds: Option<f64>,
    /// Guest CPU seconds per second.
    pub cpu_cores: f64,
    /// Seconds held over the CPU limit per second, summed over instances.
    pub throttled_cores: f64,
    /// Linear memory of live instances.
    pub memory_bytes: i64,
    /// Largest linear memory one instance reached.
    pub memory_peak_bytes: i64,
    /// Live instances.
    pub instances: i64,
    /// Requests being handled now.
    pub in_flight: i64,
    /// Requests answered since the component started.
    pub requests_total: u64,
}

const CLASS_NAMES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Per-second counts between two readings, before dividing by the time.
#[derive(Debug, Clone, Default)]
struct Delta {
    requests: [f64; 5],
    unavailable: f64,
    timed_out: f64,
    cpu: f64,
    throttled: f64,
    /// Cumulative bucket counts answered in between, by bound.
    latency: Vec<(f64, f64)>,
    memory: i64,
    memory_peak: i64,
    instances: i64,
    in_flight: i64,
    total: u64,
}

impl Delta {
    fn between(before: Option<&ComponentReading>, now: &ComponentReading) -> Self {
        // Series that went back started anew (the workload was stopped and
        // started again between two samples): count from zero.
        let before = before.filter(|b| {
            now.requests_total() >= b.requests_total() && now.cpu_seconds >= b.cpu_seconds
        });
        let since = |then: f64, now: f64| (now - then).max(0.0);
        let count = |f: fn(&ComponentReading) -> u64| {
            since(before.map(f).unwrap_or(0) as f64, f(now) as f64)
        };
        let mut requests = [0.0; 5];
        for (class, slot) in requests.iter_mut().enumerate() {
            *slot = since(
                before.map(|b| b.requests[class]).unwrap_or(0) as f64,
                now.requests[class] as f64,
            );
        }
        let latency = now
            .latency
            .iter()
            .enumerate()
            .map(|(i, &(bound, count))| {
                let earlier = before
                    .and_then(|b| b.latency.get(i))
                    .filter(|(b, _)| *b == bound)
                    .map(|(_, c)| *c)
                    .unwrap_or(0);
                (bound, since(earlier as f64, count as f64))
            })
            .collect();
        Self {
            requests,
            unavailable: count(|r| r.unavailable),
            timed_out: count(|r| r.timed_out),
            cpu: since(
                before.map(|b| b.cpu_seconds).unwrap_or(0.0),
                now.cpu_seconds,
            ),
            throttled: since(
                before.map(|b| b.throttled_seconds).unwrap_or(0.0),
                now.throttled_seconds,
            ),
            latency,
            memory: now.memory_bytes,
            memory_peak: now.memory_peak_bytes,
            instances: now.instances,
            in_flight: now.in_flight,
            total: now.requests_total(),
        }
    }

    /// Adds `other` (a workload's or the host's sum).
    fn add(&mut self, other: &Delta) {
        for (a, b) in self.requests.iter_mut().zip(other.requests) {
            *a += b;
        }
        self.unavailable += other.unavailable;
        self.timed_out += other.timed_out;
        self.cpu += other.cpu;
        self.throttled += other.throttled;
        if self.latency.is_empty() {
            self.latency = other.latency.clone();
        } else {
            for (mine, theirs) in self.latency.iter_mut().zip(&other.latency) {
                mine.1 += theirs.1;
            }
        }
        self.memory += other.memory;
        self.memory_peak = self.memory_peak.max(other.memory_peak);
        self.instances += other.instances;
        self.in_flight += other.in_flight;
        self.total += other.total;
    }

    /// The request figures of `traffic` (the entry component) with the
    /// resources of `self` (every component).
    fn with_traffic_of(&self, traffic: &Delta) -> Delta {
        Delta {
            requests: traffic.requests,
            unavailable: traffic.unavailable,
            timed_out: traffic.timed_out,
            latency: traffic.latency.clone(),
            in_flight: traffic.in_flight,
            total: traffic.total,
            ..self.clone()
        }
    }

    fn figures(&self, seconds: f64) -> Figures {
        let rate = |n: f64| n / seconds;
        let mut status_per_second: BTreeMap<&'static str, f64> = CLASS_NAMES
            .iter()
            .zip(self.requests)
            .map(|(name, n)| (*name, rate(n)))
            .collect();
        status_per_second.insert("503", rate(self.unavailable));
        status_per_second.insert("504", rate(self.timed_out));
        Figures {
            requests_per_second: rate(self.requests.iter().sum()),
            errors_per_second: rate(self.requests[4]),
            status_per_second,
            p50_seconds: quantile(&self.latency, 0.5),
            p99_seconds: quantile(&self.latency, 0.99),
            cpu_cores: rate(self.cpu),
            throttled_cores: rate(self.throttled),
            memory_bytes: self.memory,
            memory_peak_bytes: self.memory_peak,
            instances: self.instances,
            in_flight: self.in_flight,
            requests_total: self.total,
        }
    }
}

/// One second of history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// Milliseconds since the Unix epoch.
    pub at: u64,
    /// Requests answered per second.
    pub requests_per_second: f64,
    /// 5xx answers per second.
    pub errors_per_second: f64,
    /// Median latency, if any requests were answered.
    pub p50_seconds: Option<f64>,
    /// 99th percentile latency, if any requests were answered.
    pub p99_seconds: Option<f64>,
    /// Guest CPU seconds per second.
    pub cpu_cores: f64,
    /// Linear memory of live instances.
    pub memory_bytes: i64,
}

impl Point {
    fn of(at: u64, figures: &Figures) -> Self {
        Self {
            at,
            requests_per_second: figures.requests_per_second,
            errors_per_second: figures.errors_per_second,
            p50_seconds: figures.p50_seconds,
            p99_seconds: figures.p99_seconds,
            cpu_cores: figures.cpu_cores,
            memory_bytes: figures.memory_bytes,
        }
    }
}

/// The figures of the last sample.
#[derive(Debug, Default)]
pub struct Latest {
    /// When it was taken, in milliseconds since the Unix epoch.
    pub at: u64,
    /// By workload id and component name.
    pub components: HashMap<(String, String), Figures>,
    /// By workload id, summed over its components.
    pub workloads: HashMap<String, Figures>,
    /// Summed over every component.
    pub host: Figures,
}

struct WorkloadHistory {
    points: VecDeque<Point>,
    last_active: Instant,
}

#[derive(Default)]
struct State {
    previous: HashMap<(String, String), ComponentReading>,
    previous_at: Option<Instant>,
    latest: Arc<Latest>,
    host_history: VecDeque<Point>,
    workload_history: HashMap<String, WorkloadHistory>,
}

/// Each workload's entry component by workload id (see the module doc);
/// workloads not listed count every component's requests.
pub type Entries = HashMap<String, String>;

/// Samples a host's metrics every second; see the module doc.
pub struct Sampler {
    metrics: Arc<Metrics>,
    entries: Box<dyn Fn() -> Entries + Send + Sync>,
    /// Told every tick whether the console is being watched.
    on_tick: Box<dyn Fn(bool) + Send + Sync>,
    state: Mutex<State>,
    /// Seconds since the sampler's start of the last look (+1; 0: never).
    viewed_at: AtomicU64,
    started: Instant,
}

impl Sampler {
    /// A sampler of `metrics`, sampling every second on a task of its own
    /// for as long as the returned handle lives. `entries` says each
    /// workload's entry component when asked; `on_tick` is told every
    /// second whether someone watches the console.
    pub fn start(
        metrics: Arc<Metrics>,
        entries: impl Fn() -> Entries + Send + Sync + 'static,
        on_tick: impl Fn(bool) + Send + Sync + 'static,
    ) -> Arc<Self> {
        let mut sampler = Self::new(metrics, entries);
        sampler.on_tick = Box::new(on_tick);
        let sampler = Arc::new(sampler);
        let weak: Weak<Self> = Arc::downgrade(&sampler);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(sampler) = weak.upgrade() else {
                    return;
                };
                let watched = sampler.watched();
                (sampler.on_tick)(watched);
                if watched || sampler.metrics.component_count() <= SAMPLE_UNWATCHED_UP_TO {
                    let entries = (sampler.entries)();
                    sampler.sample(Instant::now(), &entries);
                } else {
                    // Rates after a pause are measured from the next
                    // sample, not averaged over the pause.
                    let mut state = sampler.lock();
                    state.previous.clear();
                    state.previous_at = None;
                }
            }
        });
        sampler
    }

    fn new(metrics: Arc<Metrics>, entries: impl Fn() -> Entries + Send + Sync + 'static) -> Self {
        Self {
            metrics,
            entries: Box::new(entries),
            on_tick: Box::new(|_| {}),
            state: Mutex::default(),
            viewed_at: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// Someone looked at the console: sample on (see the module doc).
    pub fn viewed(&self) {
        let now = self.started.elapsed().as_secs() + 1;
        self.viewed_at.store(now, Ordering::Relaxed);
    }

    /// Whether the console was looked at in the last [`WATCHED_FOR`].
    pub fn watched(&self) -> bool {
        let viewed = self.viewed_at.load(Ordering::Relaxed);
        viewed != 0
            && (self.started.elapsed().as_secs() + 1).saturating_sub(viewed)
                <= WATCHED_FOR.as_secs()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one sample at `now`.
    pub fn sample(&self, now: Instant, entries: &Entries) {
        let readings = self.metrics.readings();
        let at = super::unix_ms_now();
        let mut state = self.lock();
        let seconds = state
            .previous_at
            .map(|then| now.duration_since(then).as_secs_f64())
            .unwrap_or(1.0)
            .max(1e-3);
        let first = state.previous_at.is_none();
        let mut latest = Latest {
            at,
            ..Default::default()
        };
        // Per workload: every component, and the entry component alone.
        let mut workloads: BTreeMap<String, (Delta, Delta)> = BTreeMap::new();
        let mut previous = HashMap::with_capacity(readings.len());
        for reading in readings {
            let key = (reading.workload.clone(), reading.component.clone());
            // The first sample has no earlier reading: rates start at the
            // second, rather than count everything since start as one second.
            let before = if first {
                Some(&reading)
            } else {
                state.previous.get(&key)
            };
            let delta = Delta::between(before, &reading);
            let (all, entry) = workloads.entry(reading.workload.clone()).or_default();
            all.add(&delta);
            if entries
                .get(&reading.workload)
                .is_none_or(|name| *name == reading.component)
            {
                entry.add(&delta);
            }
            latest
                .components
                .insert(key.clone(), delta.figures(seconds));
            previous.insert(key, reading);
        }
        let mut host = Delta::default();
        for (id, (all, entry)) in workloads {
            let delta = all.with_traffic_of(&entry);
            host.add(&delta);
            let figures = delta.figures(seconds);
            let active = figures.requests_per_second > 0.0 || figures.in_flight > 0;
            let tracked = state.workload_history.contains_key(&id);
            if active && !tracked && state.workload_history.len() >= MAX_TRACKED_WORKLOADS {
                evict_idlest(&mut state.workload_history);
            }
            if active || tracked {
                let history =
                    state
                        .workload_history
                        .entry(id.clone())
                        .or_insert_with(|| WorkloadHistory {
                            points: VecDeque::new(),
                            last_active: now,
                        });
                if active {
                    history.last_active = now;
                }
                push_bounded(&mut history.points, Point::of(at, &figures));
            }
            latest.workloads.insert(id, figures);
        }
        // Workloads idle for the whole window, or gone, are forgotten.
        let window = Duration::from_secs(HISTORY_POINTS as u64);
        state.workload_history.retain(|id, history| {
            latest.workloads.contains_key(id) && now.duration_since(history.last_active) < window
        });
        latest.host = host.figures(seconds);
        let point = Point::of(at, &latest.host);
        push_bounded(&mut state.host_history, point);
        state.previous = previous;
        state.previous_at = Some(now);
        state.latest = Arc::new(latest);
    }

    /// The figures of the last sample.
    pub fn latest(&self) -> Arc<Latest> {
        self.lock().latest.clone()
    }

    /// The host's history, oldest first.
    pub fn host_history(&self) -> Vec<Point> {
        self.lock().host_history.iter().cloned().collect()
    }

    /// A workload's history, oldest first (empty when not tracked).
    pub fn workload_history(&self, id: &str) -> Vec<Point> {
        self.lock()
            .workload_history
            .get(id)
            .map(|h| h.points.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn push_bounded(points: &mut VecDeque<Point>, point: Point) {
    if points.len() == HISTORY_POINTS {
        points.pop_front();
    }
    points.push_back(point);
}

fn evict_idlest(histories: &mut HashMap<String, WorkloadHistory>) {
    if let Some(id) = histories
        .iter()
        .min_by_key(|(_, h)| h.last_active)
        .map(|(id, _)| id.clone())
    {
        histories.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_quantiles_and_sums_come_from_two_samples() {
        let metrics = Arc::new(Metrics::new());
        let sampler = Sampler::new(metrics.clone(), Entries::new);
        let entries = Entries::from([("shop/cart".to_string(), "auth".to_string())]);
        let api = metrics.component("shop/cart", "api");
        let auth = metrics.component("shop/cart", "auth");
        auth.request().finish(http::StatusCode::OK);
        let start = Instant::now();
        sampler.sample(start, &entries);
        // What happened before the first sample is not a rate.
        assert_eq!(sampler.latest().host.requests_per_second, 0.0);
        assert_eq!(sampler.latest().host.requests_total, 1);
        for _ in 0..8 {
            api.request().finish(http::StatusCode::OK);
        }
        api.request().finish(http::StatusCode::SERVICE_UNAVAILABLE);
        api.request().finish(http::StatusCode::GATEWAY_TIMEOUT);
        // auth, the middleware, lets 10 requests through to api and stops one.
        for _ in 0..10 {
            auth.request().finish(http::StatusCode::OK);
        }
        auth.request().finish(http::StatusCode::FORBIDDEN);
        api.cpu_spent(500_000_000);
        api.memory_changed(2 << 20, 2 << 20);
        auth.memory_changed(1 << 20, 1 << 20);
        sampler.sample(start + Duration::from_secs(2), &entries);
        let latest = sampler.latest();
        let component = &latest.components[&("shop/cart".into(), "api".into())];
        assert_eq!(component.requests_per_second, 5.0);
        assert_eq!(component.status_per_second["2xx"], 4.0);
        assert_eq!(component.status_per_second["5xx"], 1.0);
        assert_eq!(component.status_per_second["503"], 0.5);
        assert_eq!(component.status_per_second["504"], 0.5);
        assert_eq!(component.errors_per_second, 1.0);
        assert_eq!(component.cpu_cores, 0.25);
        assert!(component.p50_seconds.is_some() && component.p99_seconds.is_some());
        assert_eq!(component.requests_total, 10);
        // The workload's requests are its entry's; its memory all of it.
        let workload = &latest.workloads["shop/cart"];
        assert_eq!(workload.requests_per_second, 5.5);
        assert_eq!(workload.status_per_second["4xx"], 0.5);
        assert_eq!(workload.status_per_second["5xx"], 0.0);
        assert_eq!(workload.requests_total, 12);
        assert_eq!(workload.cpu_cores, 0.25);
        assert_eq!(workload.memory_bytes, 3 << 20);
        assert_eq!(workload.memory_peak_bytes, 2 << 20);
        assert_eq!(latest.host.requests_total, 12);
        assert_eq!(sampler.host_history().len(), 2);
        assert_eq!(sampler.workload_history("shop/cart").len(), 1);

        // A quiet second: no rates, no quantiles; the history goes on.
        sampler.sample(start + Duration::from_secs(3), &entries);
        let quiet = sampler.latest();
        assert_eq!(quiet.host.requests_per_second, 0.0);
        assert_eq!(quiet.host.p99_seconds, None);
        assert_eq!(sampler.workload_history("shop/cart").len(), 2);

        // A workload stopped and started between two samples counts from
        // zero again, rather than going negative.
        metrics.forget("shop/cart");
        let again = metrics.component("shop/cart", "auth");
        for _ in 0..3 {
            again.request().finish(http::StatusCode::OK);
        }
        sampler.sample(start + Duration::from_millis(3500), &entries);
        assert_eq!(
            sampler.latest().workloads["shop/cart"].requests_per_second,
            6.0
        );

        // A stopped workload's history goes with it.
        metrics.forget("shop/cart");
        sampler.sample(start + Duration::from_secs(4), &entries);
        assert!(sampler.workload_history("shop/cart").is_empty());
        assert!(sampler.latest().workloads.is_empty());
    }

    #[test]
    fn history_is_bounded() {
        let metrics = Arc::new(Metrics::new());
        let sampler = Sampler::new(metrics.clone(), Entries::new);
        let start = Instant::now();
        let handles: Vec<_> = (0..MAX_TRACKED_WORKLOADS + 10)
            .map(|n| metrics.component(&format!("ns/w{n}"), "c"))
            .collect();
        for second in 0..(HISTORY_POINTS + 5) {
            for handle in &handles {
                handle.request().finish(http::StatusCode::OK);
            }
            sampler.sample(start + Duration::from_secs(second as u64), &Entries::new());
        }
        assert_eq!(sampler.host_history().len(), HISTORY_POINTS);
        let state = sampler.lock();
        assert_eq!(state.workload_history.len(), MAX_TRACKED_WORKLOADS);
        assert!(
            state
                .workload_history
                .values()
                .all(|h| h.points.len() <= HISTORY_POINTS)
        );
    }
}
