//! What one request cost, and the meter that charges an instance's CPU to
//! the requests it is handling.

use super::{ChargeCpu, ComponentMetrics};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

/// CPU and memory one request cost its component instances.
#[derive(Debug, Default)]
pub struct RequestUsage {
    cpu_nanos: AtomicU64,
    memory_peak: AtomicU64,
    /// The meters charging this request: a reader waits for their poll in
    /// progress to be charged before it reports the request.
    meters: Mutex<Vec<Weak<WorkerMeter>>>,
}

impl RequestUsage {
    /// Guest CPU time charged to the request so far.
    pub fn cpu(&self) -> Duration {
        Duration::from_nanos(self.cpu_nanos.load(Ordering::Relaxed))
    }

    /// The largest linear memory, in bytes, of an instance while it handled
    /// the request.
    pub fn memory_peak_bytes(&self) -> u64 {
        self.memory_peak.load(Ordering::Relaxed)
    }

    fn meters(&self) -> Vec<Arc<WorkerMeter>> {
        self.meters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Whether a worker poll for this request is running, so its cost is
    /// not charged yet: a response can be complete before the poll that
    /// produced it returns.
    #[inline]
    pub fn charging(&self) -> bool {
        self.meters()
            .iter()
            .any(|meter| meter.polling.load(Ordering::SeqCst))
    }

    /// Resolves once no poll for this request runs uncharged.
    pub async fn settled(&self) {
        for meter in self.meters() {
            meter.waiting.fetch_add(1, Ordering::SeqCst);
            loop {
                let notified = meter.charged.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if !meter.polling.load(Ordering::SeqCst) {
                    break;
                }
                notified.await;
            }
            meter.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Charges the CPU of one instance's polls: all of it to the component (and
/// to its CPU budget, when it has a `cpuLimit`), and an even share to each
/// request the instance is handling (exact when it handles one at a time,
/// as every P2 instance does).
///
/// A request counts as handled while its owner keeps its [`RequestUsage`]:
/// until the response body ends when an access log wants the figures.
pub struct WorkerMeter {
    metrics: Option<Arc<ComponentMetrics>>,
    /// The component's CPU budget, when it has a limit.
    budget: Option<Arc<dyn ChargeCpu>>,
    /// The instance's linear memory size, known once its store exists.
    memory: OnceLock<Arc<AtomicU64>>,
    active: Mutex<Vec<Weak<RequestUsage>>>,
    /// A poll is running and not charged yet.
    polling: AtomicBool,
    /// Readers waiting for `charged`; it is notified only when there are
    /// some, since charging happens on every poll of every worker.
    waiting: AtomicUsize,
    charged: tokio::sync::Notify,
}

impl WorkerMeter {
    /// The meter of one worker, reporting to `metrics` when accounting is
    /// on and charging `budget` when the component has a CPU limit.
    pub fn new(metrics: Option<Arc<ComponentMetrics>>, budget: Option<Arc<dyn ChargeCpu>>) -> Self {
        Self {
            metrics,
            budget,
            memory: OnceLock::new(),
            active: Mutex::default(),
            polling: AtomicBool::new(false),
            waiting: AtomicUsize::new(0),
            charged: tokio::sync::Notify::new(),
        }
    }

    /// Follows the linear memory of the instance this worker runs.
    pub fn watch_memory(&self, bytes: Arc<AtomicU64>) {
        let _ = self.memory.set(bytes);
    }

    /// `usage` is handled by this instance from now on.
    pub fn request_started(self: &Arc<Self>, usage: &Arc<RequestUsage>) {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if !active
            .iter()
            .any(|known| std::ptr::eq(known.as_ptr(), Arc::as_ptr(usage)))
        {
            active.push(Arc::downgrade(usage));
            usage
                .meters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Arc::downgrade(self));
        }
    }

    /// A poll begins; [`WorkerMeter::charge`] ends it.
    #[inline]
    pub fn poll_started(&self) {
        self.polling.store(true, Ordering::SeqCst);
    }

    /// One poll of the instance used `nanos` of CPU.
    #[inline]
    pub fn charge(&self, nanos: u64) {
        if let Some(metrics) = &self.metrics {
            metrics.cpu_spent(nanos);
        }
        if let Some(budget) = &self.budget {
            budget.charge_cpu(nanos);
        }
        let memory = self
            .memory
            .get()
            .map(|bytes| bytes.load(Ordering::Relaxed))
            .unwrap_or(0);
        {
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            active.retain(|usage| usage.strong_count() > 0);
            if !active.is_empty() {
                let share = nanos / active.len() as u64;
                for usage in active.iter().filter_map(Weak::upgrade) {
                    usage.cpu_nanos.fetch_add(share, Ordering::Relaxed);
                    usage.memory_peak.fetch_max(memory, Ordering::Relaxed);
                }
            }
        }
        self.polling.store(false, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.charged.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_shared_among_live_requests_and_memory_peaks_follow_the_instance() {
        let meter = Arc::new(WorkerMeter::new(None, None));
        let memory = Arc::new(AtomicU64::new(1 << 20));
        meter.watch_memory(memory.clone());
        let first = Arc::new(RequestUsage::default());
        let second = Arc::new(RequestUsage::default());
        meter.request_started(&first);
        meter.request_started(&first);
        meter.charge(1_000);
        meter.request_started(&second);
        memory.store(3 << 20, Ordering::Relaxed);
        meter.charge(2_000);
        drop(second);
        meter.charge(500);
        assert_eq!(first.cpu(), Duration::from_nanos(1_000 + 1_000 + 500));
        assert_eq!(first.memory_peak_bytes(), 3 << 20);
    }

    #[test]
    fn a_cpu_budget_is_charged_every_poll() {
        #[derive(Default)]
        struct Budget(AtomicU64);
        impl ChargeCpu for Budget {
            fn charge_cpu(&self, nanos: u64) {
                self.0.fetch_add(nanos, Ordering::Relaxed);
            }
        }
        let budget = Arc::new(Budget::default());
        let meter = WorkerMeter::new(None, Some(budget.clone() as Arc<dyn ChargeCpu>));
        meter.charge(1_000);
        meter.charge(250);
        assert_eq!(budget.0.load(Ordering::Relaxed), 1_250);
    }
}
