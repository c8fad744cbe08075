//! Guest CPU time: the calling thread's CPU clock read around every poll of
//! the future that runs a component instance.
//!
//! A poll runs on one thread from start to end, so the thread clock's
//! difference is exactly the CPU that poll used, and time the future spends
//! waiting (an async sleep, an outbound request) is never counted: it is
//! not being polled then.

use super::{ComponentMetrics, WorkerMeter};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// CPU time the calling thread has used, in nanoseconds.
#[inline]
fn thread_cpu_nanos() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}

/// Where a meter charges guest CPU besides the component's series: the
/// runtime's CPU budget of a component with a `cpuLimit`, which holds the
/// component back once it has used its share. A meter charges it after
/// every poll, with accounting on or off.
pub trait ChargeCpu: Send + Sync {
    /// `nanos` of guest CPU were spent.
    fn charge_cpu(&self, nanos: u64);
}

/// A future whose every poll is charged to a worker's meter.
pub struct Metered<F> {
    inner: Pin<Box<F>>,
    meter: Arc<WorkerMeter>,
}

impl<F: Future> Metered<F> {
    /// Wraps `inner`, charging each of its polls to `meter`.
    pub fn new(inner: F, meter: Arc<WorkerMeter>) -> Self {
        Self {
            inner: Box::pin(inner),
            meter,
        }
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.meter.poll_started();
        let start = thread_cpu_nanos();
        let poll = self.inner.as_mut().poll(cx);
        let spent = thread_cpu_nanos().saturating_sub(start);
        self.meter.charge(spent);
        poll
    }
}

/// Spawns `future`, charging its CPU to `metrics`' component and to its
/// CPU `budget` when given (unmetered when neither is): for guest work
/// that runs on a task of its own (a service, a linked call, a message
/// delivery) rather than in an HTTP worker.
pub fn spawn_metered<F>(
    metrics: Option<&Arc<ComponentMetrics>>,
    budget: Option<Arc<dyn ChargeCpu>>,
    future: F,
) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if metrics.is_none() && budget.is_none() {
        return tokio::spawn(future);
    }
    tokio::spawn(Metered::new(
        future,
        Arc::new(WorkerMeter::new(metrics.cloned(), budget)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_clock_counts_work_and_not_sleep() {
        let start = thread_cpu_nanos();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let slept = thread_cpu_nanos() - start;
        assert!(slept < 5_000_000, "sleeping used {slept} ns of CPU");

        let start = thread_cpu_nanos();
        let mut x = 0u64;
        while thread_cpu_nanos() - start < 20_000_000 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(thread_cpu_nanos() - start >= 20_000_000);
    }
}
