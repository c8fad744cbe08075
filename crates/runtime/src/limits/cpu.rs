//! A component's CPU budget: its `cpuLimit`, enforced over all its
//! instances together.
//!
//! Every poll of an instance of a limited component runs inside a CPU meter
//! (`crate::metrics::Metered`, on even with accounting off), which charges
//! the poll's thread CPU here when the poll ends. The budget is a token
//! bucket kept in virtual time (the generic cell rate algorithm): the
//! component earns `cpuLimit` CPU-seconds per second of wall time and may
//! save up [`WINDOW`] worth of them (a component limited to 0.25 core,
//! idle for a second, may use 250 ms of CPU at once). Each charge spends
//! from the bucket; spending past empty runs a debt, and while a debt is
//! owed the component is *held*: its instances wait, off the CPU, until the
//! wall clock has earned it back. So over any stretch of time `T` the
//! component uses at most `cpuLimit × (T + WINDOW)` of CPU, plus what its
//! instances run between being charged and being held (at most about one
//! epoch tick each, since a poll is charged when it ends).
//!
//! The component is held, never killed, in two places:
//!
//! - At its next yield point. A limited component's stores run
//!   [`CpuBudget::at_epoch`] at every epoch tick (every store yields
//!   there anyway): within its share it yields as every store does; over
//!   it, it stays suspended in a sleep until the debt is paid
//!   (`UpdateDeadline::YieldCustom`). The fiber keeps its state; the
//!   worker thread goes on with other tasks. This holds every path a guest
//!   runs on (HTTP workers, services, linked calls, message deliveries)
//!   once it meets a tick; a delivery or linked call held past its own
//!   timeout fails as a slow one would.
//!   Components that have no limit keep the plain yield and no meter: the
//!   limit costs nothing where it is not set.
//! - Before a new instance is made for an HTTP request
//!   (`workload::dispatch`), where [`CpuBudget::hold`] is awaited: a P2
//!   component answering many short requests, none of them long enough to
//!   meet an epoch tick, waits there. Message deliveries and linked calls
//!   have no such gate yet: short ones run until a longer one meets a tick.
//!   The waiters all go when the debt is paid, so a burst of new instances
//!   can overdraw the budget once; the average holds, the peaks do not.
//!
//! Held time is wall time, not CPU: the meter reads the thread clock only
//! while the guest is polled. It is counted per instance held, and per
//! request waiting before an instance, in
//! `nimbus_guest_cpu_throttled_seconds_total` ([`CpuBudget::throttled`]
//! without accounting). The request deadline keeps running while a
//! request is held: a component starved by its own limit answers 504, as it
//! would on a machine that slow. A request held before its instance is
//! made waits at most its deadline, then gets 504; what it waited is taken
//! off the deadline its instance gives it.

use nimbus_model::CpuLimit;
use nimbus_observe::metrics::{ChargeCpu, ComponentMetrics};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// How much CPU a component may save up, as wall time at its limit.
pub const WINDOW: Duration = Duration::from_secs(1);

const WINDOW_NANOS: u64 = WINDOW.as_nanos() as u64;

/// The longest a hold sleeps before it is counted and the debt looked at
/// again.
const HOLD_SLICE: Duration = Duration::from_millis(100);

/// One component's CPU budget, shared by all its instances.
pub struct CpuBudget {
    limit: CpuLimit,
    /// Where the budget's clock starts ([`CpuBudget::now`]).
    origin: Instant,
    /// When the wall clock will have earned all the CPU charged so far, on
    /// the budget's clock (the bucket's "theoretical arrival time"): later
    /// than now is a debt, earlier than now minus [`WINDOW`] a full bucket.
    paid_at: AtomicU64,
    /// Wall time instances were held, summed, in nanoseconds.
    throttled: AtomicU64,
    /// Where held time is counted, with accounting on.
    metrics: Option<Arc<ComponentMetrics>>,
}

impl std::fmt::Debug for CpuBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuBudget")
            .field("limit", &self.limit)
            .field("throttled", &self.throttled())
            .finish_non_exhaustive()
    }
}

impl CpuBudget {
    /// A full budget for `limit`, counting held time in `metrics` when
    /// given.
    pub fn new(limit: CpuLimit, metrics: Option<Arc<ComponentMetrics>>) -> Self {
        Self {
            limit,
            origin: Instant::now(),
            // The clock starts at WINDOW (see `now`), so 0 is a full bucket.
            paid_at: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            metrics,
        }
    }

    /// The limit it enforces.
    pub fn limit(&self) -> CpuLimit {
        self.limit
    }

    /// Now on the budget's clock, in nanoseconds: from [`WINDOW`] at its
    /// creation, so that a new budget starts full without going below 0.
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(WINDOW_NANOS)
    }

    /// The wall time, in nanoseconds, that earns `cpu_nanos` at the limit.
    fn wall_nanos(&self, cpu_nanos: u64) -> u64 {
        let wall = u128::from(cpu_nanos) * 1000 / u128::from(self.limit.millicores());
        u64::try_from(wall).unwrap_or(u64::MAX)
    }

    /// Charges `cpu_nanos` of guest CPU: spends what is saved, then runs
    /// a debt.
    pub fn charge(&self, cpu_nanos: u64) {
        self.charge_at(cpu_nanos, self.now());
    }

    fn charge_at(&self, cpu_nanos: u64, now: u64) {
        let cost = self.wall_nanos(cpu_nanos);
        // Savings are capped at one window: an idle component does not
        // bank more than that.
        let full = now.saturating_sub(WINDOW_NANOS);
        // The closure always returns `Some`: the update cannot fail.
        let _ = self.paid_at.fetch_update(Relaxed, Relaxed, |paid| {
            Some(paid.max(full).saturating_add(cost))
        });
    }

    /// How long the component must wait before it may run again; `None`
    /// while it is within its share.
    pub fn delay(&self) -> Option<Duration> {
        self.delay_at(self.now())
    }

    fn delay_at(&self, now: u64) -> Option<Duration> {
        let owed = self.paid_at.load(Relaxed).saturating_sub(now);
        (owed > 0).then_some(Duration::from_nanos(owed))
    }

    /// Waits until the component is within its share again (at once when
    /// it is); the wait, cut short or not, is counted as held time, slice by
    /// slice, so that a long hold shows in the metric as it goes rather than
    /// all at once when it ends.
    pub async fn hold(self: Arc<Self>) {
        // Other instances may run up more debt meanwhile: look again after
        // every slice.
        while let Some(delay) = self.delay() {
            let _held = Held {
                budget: &self,
                since: Instant::now(),
            };
            tokio::time::sleep(delay.min(HOLD_SLICE)).await;
        }
    }

    /// What a store of the component does when an epoch tick reaches it:
    /// yield, as every store does, and over the limit stay suspended until
    /// the debt is paid (its fiber waits; its thread serves others).
    pub(crate) fn at_epoch(self: &Arc<Self>) -> wasmtime::UpdateDeadline {
        if self.delay().is_none() {
            wasmtime::UpdateDeadline::Yield(1)
        } else {
            wasmtime::UpdateDeadline::YieldCustom(1, Box::pin(self.clone().hold()))
        }
    }

    /// Wall time the component's instances were held, summed over them.
    pub fn throttled(&self) -> Duration {
        Duration::from_nanos(self.throttled.load(Relaxed))
    }

    fn record_held(&self, held: Duration) {
        let nanos = u64::try_from(held.as_nanos()).unwrap_or(u64::MAX);
        self.throttled.fetch_add(nanos, Relaxed);
        if let Some(metrics) = &self.metrics {
            metrics.cpu_throttled(held);
        }
    }
}

impl ChargeCpu for CpuBudget {
    #[inline]
    fn charge_cpu(&self, nanos: u64) {
        self.charge(nanos);
    }
}

/// Counts a hold when it ends, however it ends (a deadline drops it).
struct Held<'a> {
    budget: &'a CpuBudget,
    since: Instant,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.budget.record_held(self.since.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn budget(limit: &str) -> CpuBudget {
        CpuBudget::new(limit.parse().unwrap(), None)
    }

    #[test]
    fn a_new_budget_holds_one_window_of_savings() {
        let quarter = budget("250m");
        // Created at clock WINDOW; a full bucket is 250 ms of CPU.
        let now = WINDOW_NANOS;
        quarter.charge_at(250 * MS, now);
        assert_eq!(quarter.delay_at(now), None, "within the saved window");
        // One more millisecond of CPU is a debt of 4 ms of wall time.
        quarter.charge_at(MS, now);
        assert_eq!(quarter.delay_at(now), Some(Duration::from_millis(4)));
        // Paid back as the wall clock runs.
        assert_eq!(
            quarter.delay_at(now + 3 * MS),
            Some(Duration::from_millis(1))
        );
        assert_eq!(quarter.delay_at(now + 4 * MS), None);
    }

    #[test]
    fn over_its_share_the_delay_is_the_debt_at_the_limit() {
        let quarter = budget("0.25");
        let mut now = WINDOW_NANOS;
        // Spend the savings, then 10 ms of CPU more: 40 ms of wall time.
        quarter.charge_at(250 * MS + 10 * MS, now);
        assert_eq!(quarter.delay_at(now), Some(Duration::from_millis(40)));
        // A spinner held for its delay and charged 10 ms per run uses a
        // quarter of the wall clock, run after run.
        let mut cpu = 0;
        let start = now;
        for _ in 0..100 {
            now += quarter.delay_at(now).map_or(0, |d| d.as_nanos() as u64);
            quarter.charge_at(10 * MS, now);
            cpu += 10 * MS;
            now += 10 * MS;
        }
        let share = cpu as f64 / (now - start) as f64;
        assert!((0.24..=0.26).contains(&share), "{share}");
        // Two cores' limit: 10 ms of CPU over the savings is 5 ms of wall time.
        let two = budget("2");
        two.charge_at(2_000 * MS + 10 * MS, WINDOW_NANOS);
        assert_eq!(two.delay_at(WINDOW_NANOS), Some(Duration::from_millis(5)));
    }

    #[test]
    fn idle_time_refills_up_to_one_window_only() {
        let quarter = budget("250m");
        let now = WINDOW_NANOS;
        quarter.charge_at(300 * MS, now);
        // 50 ms of CPU over: held for 200 ms of wall time.
        assert_eq!(quarter.delay_at(now), Some(Duration::from_millis(200)));
        // Ten seconds idle refill one window, 250 ms of CPU, not 2.5 s.
        let later = now + 10_000 * MS;
        assert_eq!(quarter.delay_at(later), None);
        quarter.charge_at(250 * MS, later);
        assert_eq!(quarter.delay_at(later), None);
        quarter.charge_at(MS, later);
        assert_eq!(quarter.delay_at(later), Some(Duration::from_millis(4)));
    }

    #[test]
    fn held_time_is_counted_when_a_hold_ends() {
        let quarter = budget("250m");
        drop(Held {
            budget: &quarter,
            since: Instant::now() - Duration::from_millis(30),
        });
        assert!(quarter.throttled() >= Duration::from_millis(30));
    }
}
