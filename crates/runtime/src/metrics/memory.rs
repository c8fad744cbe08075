//! Linear memory accounting: the store limiter every instance grows through,
//! enforcing the component's memory limit and recording what was granted.

use super::ComponentMetrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Enforces a component's memory limit (as `wasmtime::StoreLimits` does)
/// and keeps the instance's linear memory size, for the component's gauges
/// and the peak of the requests the instance serves.
pub(crate) struct MeteredLimiter {
    limits: wasmtime::StoreLimits,
    metrics: Option<Arc<ComponentMetrics>>,
    /// The host-wide budget every instance's memory counts against.
    budget: Arc<crate::limits::MemoryBudget>,
    /// Bytes of linear memory across the instance's memories.
    bytes: Arc<AtomicU64>,
    /// Growth allowed but not yet known to have happened.
    pending: u64,
}

impl MeteredLimiter {
    /// A limiter enforcing `limits` and the host's `budget`, reporting
    /// sizes to `metrics` when accounting is on.
    pub(crate) fn new(
        limits: wasmtime::StoreLimits,
        metrics: Option<Arc<ComponentMetrics>>,
        budget: Arc<crate::limits::MemoryBudget>,
    ) -> Self {
        Self {
            limits,
            metrics,
            budget,
            bytes: Arc::default(),
            pending: 0,
        }
    }

    /// The instance's linear memory size, shared with its worker's meter.
    pub(crate) fn bytes(&self) -> Arc<AtomicU64> {
        self.bytes.clone()
    }

    fn record(&self, delta: i64) {
        let now = if delta >= 0 {
            self.bytes.fetch_add(delta as u64, Ordering::Relaxed) + delta as u64
        } else {
            self.bytes
                .fetch_sub(delta.unsigned_abs(), Ordering::Relaxed)
                - delta.unsigned_abs()
        };
        if let Some(metrics) = &self.metrics {
            metrics.memory_changed(delta, now);
        }
    }
}

impl wasmtime::ResourceLimiter for MeteredLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let mut allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed && !self.budget.reserve(desired.saturating_sub(current) as u64) {
            tracing::debug!(
                current,
                desired,
                "memory growth refused: host memory budget exhausted"
            );
            allowed = false;
        }
        if allowed {
            // Memories are created through here too (`current` is 0 then).
            self.pending = desired.saturating_sub(current) as u64;
            self.record(self.pending as i64);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        self.budget.release(pending);
        self.record(-(pending as i64));
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

impl Drop for MeteredLimiter {
    fn drop(&mut self) {
        // The store and its memories go with it.
        let bytes = self.bytes.load(Ordering::Relaxed);
        self.budget.release(bytes);
        if let Some(metrics) = &self.metrics {
            metrics.memory_changed(-(bytes as i64), 0);
        }
    }
}
