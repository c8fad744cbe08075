//! Autoscaling: each autoscaled resource's load, from the counters hosts
//! report in their heartbeats (requests answered, guest CPU), and the
//! replicas that load asks for.
//!
//! A rate is the difference of two heartbeats of one host process over the
//! time between them; a resource's load is the sum of its hosts' latest
//! rates. Scaling up follows the recommendation at once. Scaling down
//! follows the highest recommendation of the stabilization window, and
//! only once a whole window has been observed, so a dip, or a controller
//! that just took over, removes nothing.

use nimbus_model::autoscaling::Autoscaling;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// One heartbeat's counters for one workload: each absent where the host
/// does not count it (a missing counter is not a zero).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Reading {
    pub(crate) requests: Option<u64>,
    pub(crate) cpu_millis: Option<u64>,
    /// When the host read them, on its own clock (milliseconds).
    pub(crate) host_ms: Option<u64>,
}

/// A resource's load: requests per second and guest CPU cores over all
/// its hosts, each `None` where a host running it does not count it.
pub(crate) type Load = (Option<f64>, Option<f64>);

/// One host's counters for one workload, and the rates between the last
/// two heartbeats.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    instance: String,
    reading: Reading,
    /// Requests per second and CPU cores, once two readings are known.
    rates: Option<Load>,
}

/// The latest rates, by (host, workload).
#[derive(Debug, Default)]
pub(crate) struct Rates {
    samples: HashMap<(String, String), Sample>,
}

impl Rates {
    /// Takes in one heartbeat's `reading` for workload `id` from `source`
    /// (host, process instance), received at `now`; the host beats every
    /// `interval`. A new process, or a counter that went back (the
    /// workload restarted), starts over. The time between two readings is
    /// the host's own where it says (heartbeats delayed on the way and
    /// then delivered together would otherwise make a burst), else the
    /// time between their arrivals, taken as at least half an interval.
    pub(crate) fn observe(
        &mut self,
        source: (&str, &str),
        id: &str,
        reading: Reading,
        now: Instant,
        interval: Duration,
    ) {
        let (host, instance) = source;
        let key = (host.to_string(), id.to_string());
        let went_back = |now: Option<u64>, before: Option<u64>| match (now, before) {
            (Some(now), Some(before)) => now < before,
            _ => false,
        };
        let rates = match self.samples.get(&key) {
            Some(last)
                if last.instance == instance
                    && !went_back(reading.requests, last.reading.requests)
                    && !went_back(reading.cpu_millis, last.reading.cpu_millis)
                    && !went_back(reading.host_ms, last.reading.host_ms) =>
            {
                let seconds = match (reading.host_ms, last.reading.host_ms) {
                    (Some(now_ms), Some(then_ms)) => (now_ms - then_ms) as f64 / 1000.0,
                    _ => now.duration_since(last.at).max(interval / 2).as_secs_f64(),
                };
                if seconds < 0.05 {
                    // The same reading again (a resend): keep the rates.
                    return;
                }
                let rate = |now: Option<u64>, before: Option<u64>, scale: f64| {
                    Some((now? - before?) as f64 / scale / seconds)
                };
                Some((
                    rate(reading.requests, last.reading.requests, 1.0),
                    rate(reading.cpu_millis, last.reading.cpu_millis, 1000.0),
                ))
            }
            _ => None,
        };
        let sample = Sample {
            at: now,
            instance: instance.to_string(),
            reading,
            rates,
        };
        self.samples.insert(key, sample);
    }

    /// Forgets what `host` reported (it is gone), or what it reported of
    /// workloads it no longer runs (`keep` says which it runs).
    pub(crate) fn retain_host(&mut self, host: &str, keep: impl Fn(&str) -> bool) {
        self.samples
            .retain(|(h, id), _| h != host || keep(id.as_str()));
    }

    /// Workload `id`'s load over `hosts` (those that run it): the sums of
    /// their rates no older than `fresh`, a figure unknown where one of
    /// them does not count it; `None` until one of them has a rate.
    pub(crate) fn load<'a>(
        &self,
        id: &str,
        hosts: impl Iterator<Item = &'a str>,
        fresh: Duration,
        now: Instant,
    ) -> Option<Load> {
        let mut total: Option<Load> = None;
        for host in hosts {
            let Some(sample) = self.samples.get(&(host.to_string(), id.to_string())) else {
                continue;
            };
            if now.duration_since(sample.at) > fresh {
                continue;
            }
            if let Some((rps, cores)) = sample.rates {
                let (r, c) = total.unwrap_or((Some(0.0), Some(0.0)));
                total = Some((
                    r.zip(rps).map(|(a, b)| a + b),
                    c.zip(cores).map(|(a, b)| a + b),
                ));
            }
        }
        total
    }
}

/// A resource's recent recommendations, for the scale-down window.
#[derive(Debug)]
pub(crate) struct History {
    /// When the first recommendation of this run was made.
    since: Instant,
    recent: VecDeque<(Instant, u32)>,
    /// Since when the load has been nothing at all (for scaling to zero).
    idle_since: Option<Instant>,
}

impl History {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            since: now,
            recent: VecDeque::new(),
            idle_since: None,
        }
    }
}

/// The replicas resource should have now, if not `current`: given its
/// `policy`, its `load` (requests per second, CPU cores) and its
/// `history`, which this recommendation joins.
///
/// A figure a target needs that is unknown (a host does not count it)
/// allows scaling up on the others, never down.
pub(crate) fn decide(
    policy: &Autoscaling,
    current: u32,
    load: Load,
    history: &mut History,
    now: Instant,
) -> Option<u32> {
    let mut recommended = policy.recommend(current, load.0, load.1)?;
    let known = (policy.target_requests_per_second.is_none() || load.0.is_some())
        && (policy.target_cpu.is_none() || load.1.is_some());
    if !known {
        return (recommended > current).then_some(recommended);
    }
    // Idle is no request at all where requests are counted, whatever the
    // target (a cheap request may not move the CPU counter).
    if recommended == 0 && load.0.is_some_and(|rps| rps > 0.0) {
        recommended = 1;
    }
    if recommended == 0 {
        // Not one request (a deployment that may scale to zero): to zero
        // once idle long enough; meanwhile as low as one replica.
        let idle_since = *history.idle_since.get_or_insert(now);
        let idle_for = Duration::from_secs(u64::from(policy.scale_to_zero_after_seconds));
        if current > 0 && now.duration_since(idle_since) >= idle_for {
            return Some(0);
        }
        recommended = 1;
    } else {
        history.idle_since = None;
    }
    // The window's highest recommendation, kept as a falling sequence:
    // one no higher than a later one can never be the highest again, so
    // at most one entry per replica count is held.
    let window = Duration::from_secs(u64::from(policy.scale_down_stabilization_seconds));
    while history
        .recent
        .back()
        .is_some_and(|(_, r)| *r <= recommended)
    {
        history.recent.pop_back();
    }
    history.recent.push_back((now, recommended));
    while history
        .recent
        .front()
        .is_some_and(|(at, _)| now.duration_since(*at) > window)
    {
        history.recent.pop_front();
    }
    // Outside the bounds (they changed): back within them at once.
    let bounded = policy.clamp(current);
    if bounded != current {
        return Some(bounded);
    }
    if recommended > current {
        return Some(recommended);
    }
    if recommended == current || now.duration_since(history.since) < window {
        return None;
    }
    let highest = history.recent.front().map_or(current, |(_, r)| *r);
    (highest < current).then_some(highest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Autoscaling {
        Autoscaling {
            min_replicas: 1,
            max_replicas: 4,
            target_requests_per_second: Some(10.0),
            target_cpu: None,
            scale_down_stabilization_seconds: 10,
            scale_to_zero_after_seconds: 20,
        }
    }

    fn known(rps: f64, cores: f64) -> Load {
        (Some(rps), Some(cores))
    }

    /// Counters read at `ms` on the host's clock.
    fn read(requests: u64, cpu_millis: u64, ms: Option<u64>) -> Reading {
        Reading {
            requests: Some(requests),
            cpu_millis: Some(cpu_millis),
            host_ms: ms,
        }
    }

    const BEAT: Duration = Duration::from_secs(1);

    fn close(load: Option<Load>, rps: f64, cores: f64) -> bool {
        let Some((Some(r), Some(c))) = load else {
            return false;
        };
        (r - rps).abs() < 1e-9 && (c - cores).abs() < 1e-9
    }

    #[test]
    fn rates_come_from_two_heartbeats_of_one_process() {
        let mut rates = Rates::default();
        let t0 = Instant::now();
        let hosts = || ["h0", "h1"].into_iter();
        let fresh = Duration::from_secs(5);
        rates.observe(("h0", "a"), "shop/web", read(100, 0, None), t0, BEAT);
        assert_eq!(rates.load("shop/web", hosts(), fresh, t0), None);
        let t1 = t0 + Duration::from_secs(2);
        rates.observe(("h0", "a"), "shop/web", read(140, 1000, None), t1, BEAT);
        rates.observe(("h1", "b"), "shop/web", read(7, 0, None), t1, BEAT);
        let t2 = t1 + Duration::from_secs(1);
        rates.observe(("h1", "b"), "shop/web", read(17, 0, None), t2, BEAT);
        let load = rates.load("shop/web", hosts(), fresh, t2);
        assert!(close(load, 30.0, 0.5), "{load:?}");
        // A restarted process starts over; a stale rate does not count.
        let t3 = t2 + Duration::from_secs(1);
        rates.observe(("h1", "c"), "shop/web", read(3, 0, None), t3, BEAT);
        let later = t2 + Duration::from_secs(9);
        assert_eq!(rates.load("shop/web", hosts(), fresh, later), None);
        rates.retain_host("h0", |_| false);
        let long = Duration::from_secs(60);
        assert_eq!(rates.load("shop/web", hosts(), long, later), None);
    }

    #[test]
    fn heartbeats_arriving_together_do_not_make_a_burst() {
        let t0 = Instant::now();
        let soon = t0 + Duration::from_millis(20);
        let fresh = Duration::from_secs(5);
        let one = || ["h0"].into_iter();
        // Read a second apart on the host, delivered 20 ms apart: the
        // host's clock gives the rate.
        let mut rates = Rates::default();
        rates.observe(("h0", "a"), "w", read(0, 0, Some(5_000)), t0, BEAT);
        rates.observe(("h0", "a"), "w", read(40, 500, Some(6_000)), soon, BEAT);
        let load = rates.load("w", one(), fresh, soon);
        assert!(close(load, 40.0, 0.5), "{load:?}");
        // An older host, without its clock: at least half an interval.
        let mut rates = Rates::default();
        rates.observe(("h0", "a"), "w", read(0, 0, None), t0, BEAT);
        rates.observe(("h0", "a"), "w", read(40, 500, None), soon, BEAT);
        let load = rates.load("w", one(), fresh, soon);
        assert!(close(load, 80.0, 1.0), "{load:?}");
    }

    #[test]
    fn a_counter_a_host_does_not_keep_is_unknown_and_never_scales_down() {
        let t0 = Instant::now();
        let t1 = t0 + BEAT;
        let fresh = Duration::from_secs(5);
        let mut rates = Rates::default();
        rates.observe(("h0", "a"), "w", read(0, 0, Some(0)), t0, BEAT);
        rates.observe(("h0", "a"), "w", read(50, 0, Some(1000)), t1, BEAT);
        let blind = Reading::default();
        rates.observe(("h1", "b"), "w", blind, t0, BEAT);
        rates.observe(("h1", "b"), "w", blind, t1, BEAT);
        let load = rates
            .load("w", ["h0", "h1"].into_iter(), fresh, t1)
            .unwrap();
        assert_eq!(load, (None, None));
        let load = rates.load("w", ["h0"].into_iter(), fresh, t1).unwrap();
        assert_eq!(load, (Some(50.0), Some(0.0)));
        // Unknown requests: up on the CPU figure, never down.
        let mut p = policy();
        p.target_cpu = Some("500m".parse().unwrap());
        let mut history = History::new(t0);
        let far = t0 + Duration::from_secs(1000);
        assert_eq!(decide(&p, 3, (None, Some(0.0)), &mut history, far), None);
        assert_eq!(decide(&p, 1, (None, Some(1.4)), &mut history, far), Some(3));
        let mut zero = policy();
        zero.min_replicas = 0;
        // A CPU target alone: requests still say it is not idle.
        let mut by_cpu = zero;
        by_cpu.target_requests_per_second = None;
        by_cpu.target_cpu = Some("500m".parse().unwrap());
        let mut history = History::new(t0);
        for s in [0, 100, 1000] {
            let at = t0 + Duration::from_secs(s);
            let busy = decide(&by_cpu, 1, (Some(3.0), Some(0.0)), &mut history, at);
            assert_eq!(busy, None, "at {s}");
        }
        let idle = t0 + Duration::from_secs(2000);
        assert_eq!(
            decide(&by_cpu, 1, known(0.0, 0.0), &mut history, idle),
            None
        );
        let later = idle + Duration::from_secs(25);
        assert_eq!(
            decide(&by_cpu, 1, known(0.0, 0.0), &mut history, later),
            Some(0)
        );
        let mut history = History::new(t0);
        for s in [0, 100, 1000] {
            let at = t0 + Duration::from_secs(s);
            assert_eq!(decide(&zero, 1, (None, None), &mut history, at), None);
        }
    }

    #[test]
    fn the_window_keeps_one_entry_per_replica_count_at_most() {
        let mut p = policy();
        p.max_replicas = 4;
        p.scale_down_stabilization_seconds = 3600;
        let t0 = Instant::now();
        let mut history = History::new(t0);
        for s in 0..10_000u64 {
            let at = t0 + Duration::from_millis(s * 100);
            let rps = [5.0, 15.0, 25.0, 35.0][(s % 4) as usize];
            decide(&p, 4, known(rps, 0.0), &mut history, at);
        }
        assert!(history.recent.len() <= 4, "{}", history.recent.len());
        assert_eq!(history.recent.front().map(|(_, r)| *r), Some(4));
    }

    #[test]
    fn up_at_once_down_after_a_whole_window_of_lower_load() {
        let p = policy();
        let t0 = Instant::now();
        let mut history = History::new(t0);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(
            decide(&p, 1, known(35.0, 0.0), &mut history, at(0)),
            Some(4)
        );
        // Steady load near the target: nothing.
        for s in 1..20 {
            assert_eq!(decide(&p, 4, known(41.0, 0.0), &mut history, at(s)), None);
        }
        // The load drops: nothing until the window holds only lower ones.
        let mut scaled = None;
        for s in 20..40 {
            if let Some(to) = decide(&p, 4, known(5.0, 0.0), &mut history, at(s)) {
                scaled = Some((s, to));
                break;
            }
        }
        assert_eq!(scaled, Some((30, 1)));
        // A new controller waits a whole window before removing anything.
        let mut fresh = History::new(at(100));
        assert_eq!(decide(&p, 4, known(0.0, 0.0), &mut fresh, at(101)), None);
        assert_eq!(decide(&p, 4, known(0.0, 0.0), &mut fresh, at(111)), Some(1));
        // Bounds that changed apply at once.
        assert_eq!(
            decide(&p, 9, known(90.0, 0.0), &mut fresh, at(112)),
            Some(4)
        );
    }

    #[test]
    fn an_idle_deployment_scales_to_zero_only_when_allowed_and_idle_long_enough() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut zero = policy();
        zero.min_replicas = 0;
        let mut history = History::new(t0);
        // (replicas, req/s, second, decision), in order. Idle: down to one
        // after the window, to zero after 20 s idle; a request meanwhile
        // (second 16) starts the idle time over.
        let steps = [
            (2, 0.0, 0, None),
            (2, 0.0, 11, Some(1)),
            (1, 0.0, 15, None),
            (1, 0.5, 16, None),
            (1, 0.0, 17, None),
            (1, 0.0, 36, None),
            (1, 0.0, 37, Some(0)),
        ];
        for (current, rps, second, expected) in steps {
            let decided = decide(&zero, current, known(rps, 0.0), &mut history, at(second));
            assert_eq!(decided, expected, "at {second} s");
        }
        // Without minReplicas 0 it never goes below one.
        let mut history = History::new(t0);
        for s in 0..100 {
            let to = decide(&policy(), 1, known(0.0, 0.0), &mut history, at(s));
            assert_eq!(to, None, "at {s}");
        }
    }
}
