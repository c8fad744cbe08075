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

/// One host's counters for one workload, and the rates between the last
/// two heartbeats.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    instance: String,
    requests: u64,
    cpu_millis: u64,
    /// Requests per second and CPU cores, once two samples are known.
    rates: Option<(f64, f64)>,
}

/// The latest rates, by (host, workload).
#[derive(Debug, Default)]
pub(crate) struct Rates {
    samples: HashMap<(String, String), Sample>,
}

impl Rates {
    /// Takes in one heartbeat's counters for workload `id` on `host`
    /// (process `instance`). A new process, or a counter that went back (the
    /// workload restarted), starts over.
    pub(crate) fn observe(
        &mut self,
        host: &str,
        instance: &str,
        id: &str,
        requests: u64,
        cpu_millis: u64,
        now: Instant,
    ) {
        let key = (host.to_string(), id.to_string());
        let rates = match self.samples.get(&key) {
            Some(last)
                if last.instance == instance
                    && requests >= last.requests
                    && cpu_millis >= last.cpu_millis =>
            {
                let seconds = now.duration_since(last.at).as_secs_f64();
                if seconds < 0.05 {
                    // Two heartbeats at once (a resend): keep the rates.
                    return;
                }
                Some((
                    (requests - last.requests) as f64 / seconds,
                    (cpu_millis - last.cpu_millis) as f64 / 1000.0 / seconds,
                ))
            }
            _ => None,
        };
        let sample = Sample {
            at: now,
            instance: instance.to_string(),
            requests,
            cpu_millis,
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

    /// Workload `id`'s load over `hosts` (those that run it): requests per
    /// second and CPU cores summed over their rates no older than `fresh`;
    /// `None` until one of them has a rate.
    pub(crate) fn load<'a>(
        &self,
        id: &str,
        hosts: impl Iterator<Item = &'a str>,
        fresh: Duration,
        now: Instant,
    ) -> Option<(f64, f64)> {
        let mut total: Option<(f64, f64)> = None;
        for host in hosts {
            let Some(sample) = self.samples.get(&(host.to_string(), id.to_string())) else {
                continue;
            };
            if now.duration_since(sample.at) > fresh {
                continue;
            }
            if let Some((rps, cores)) = sample.rates {
                let (r, c) = total.unwrap_or_default();
                total = Some((r + rps, c + cores));
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
pub(crate) fn decide(
    policy: &Autoscaling,
    current: u32,
    load: (f64, f64),
    history: &mut History,
    now: Instant,
) -> Option<u32> {
    let mut recommended = policy.recommend(current, Some(load.0), Some(load.1))?;
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
    let window = Duration::from_secs(u64::from(policy.scale_down_stabilization_seconds));
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
    let highest = history
        .recent
        .iter()
        .map(|(_, r)| *r)
        .max()
        .unwrap_or(current);
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

    #[test]
    fn rates_come_from_two_heartbeats_of_one_process() {
        let mut rates = Rates::default();
        let t0 = Instant::now();
        let hosts = || ["h0", "h1"].into_iter();
        rates.observe("h0", "a", "shop/web", 100, 0, t0);
        assert_eq!(
            rates.load("shop/web", hosts(), Duration::from_secs(5), t0),
            None
        );
        let t1 = t0 + Duration::from_secs(2);
        rates.observe("h0", "a", "shop/web", 140, 1000, t1);
        rates.observe("h1", "b", "shop/web", 7, 0, t1);
        let t2 = t1 + Duration::from_secs(1);
        rates.observe("h1", "b", "shop/web", 17, 0, t2);
        let (rps, cores) = rates
            .load("shop/web", hosts(), Duration::from_secs(5), t2)
            .unwrap();
        assert!((rps - 30.0).abs() < 1e-9, "{rps}");
        assert!((cores - 0.5).abs() < 1e-9, "{cores}");
        // A restarted process starts over; a stale rate does not count.
        rates.observe("h1", "c", "shop/web", 3, 0, t2 + Duration::from_secs(1));
        let later = t2 + Duration::from_secs(9);
        assert_eq!(
            rates.load("shop/web", hosts(), Duration::from_secs(5), later),
            None
        );
        rates.retain_host("h0", |_| false);
        assert_eq!(
            rates.load("shop/web", hosts(), Duration::from_secs(60), later),
            None
        );
    }

    #[test]
    fn up_at_once_down_after_a_whole_window_of_lower_load() {
        let p = policy();
        let t0 = Instant::now();
        let mut history = History::new(t0);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(decide(&p, 1, (35.0, 0.0), &mut history, at(0)), Some(4));
        // Steady load near the target: nothing.
        for s in 1..20 {
            assert_eq!(decide(&p, 4, (41.0, 0.0), &mut history, at(s)), None);
        }
        // The load drops: nothing until the window holds only lower ones.
        let mut scaled = None;
        for s in 20..40 {
            if let Some(to) = decide(&p, 4, (5.0, 0.0), &mut history, at(s)) {
                scaled = Some((s, to));
                break;
            }
        }
        assert_eq!(scaled, Some((30, 1)));
        // A new controller waits a whole window before removing anything.
        let mut fresh = History::new(at(100));
        assert_eq!(decide(&p, 4, (0.0, 0.0), &mut fresh, at(101)), None);
        assert_eq!(decide(&p, 4, (0.0, 0.0), &mut fresh, at(111)), Some(1));
        // Bounds that changed apply at once.
        assert_eq!(decide(&p, 9, (90.0, 0.0), &mut fresh, at(112)), Some(4));
    }

    #[test]
    fn an_idle_deployment_scales_to_zero_only_when_allowed_and_idle_long_enough() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut zero = policy();
        zero.min_replicas = 0;
        let mut history = History::new(t0);
        // Idle: down to one after the window, to zero after 20 s idle.
        assert_eq!(decide(&zero, 2, (0.0, 0.0), &mut history, at(0)), None);
        assert_eq!(decide(&zero, 2, (0.0, 0.0), &mut history, at(11)), Some(1));
        assert_eq!(decide(&zero, 1, (0.0, 0.0), &mut history, at(15)), None);
        // A request meanwhile starts the idle time over.
        assert_eq!(decide(&zero, 1, (0.5, 0.0), &mut history, at(16)), None);
        assert_eq!(decide(&zero, 1, (0.0, 0.0), &mut history, at(17)), None);
        assert_eq!(decide(&zero, 1, (0.0, 0.0), &mut history, at(36)), None);
        assert_eq!(decide(&zero, 1, (0.0, 0.0), &mut history, at(37)), Some(0));
        // Without minReplicas 0 it never goes below one.
        let mut history = History::new(t0);
        for s in 0..100 {
            let to = decide(&policy(), 1, (0.0, 0.0), &mut history, at(s));
            assert_eq!(to, None, "at {s}");
        }
    }
}
