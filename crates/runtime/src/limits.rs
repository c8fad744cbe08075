//! Per-component limits derived from a component's local resources.
//!
//! Memory is fenced by the store's `ResourceLimiter` (a guest that grows past
//! its limit gets a failed `memory.grow`, which a Rust guest turns into a
//! trap; the host is unaffected). The request deadline is enforced through
//! the engine's epoch: guests yield at every tick so a deadline can fire even
//! inside an infinite loop, and the instance that missed it is discarded.
//! Concurrency is bounded per workload with a semaphore and never queues
//! beyond it.

use crate::workload::LocalResources;
use std::time::Duration;

/// Host-wide defaults for limits a component does not set.
#[derive(Debug, Clone)]
pub struct LimitDefaults {
    /// Memory limit when `memoryLimitMb` is unset.
    pub memory_bytes: usize,
    /// Request deadline when `timeoutMs` is unset.
    pub request_timeout: Duration,
    /// Concurrent requests per workload when `maxConcurrentRequests` is unset.
    pub max_concurrent_requests: u32,
}

impl Default for LimitDefaults {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            request_timeout: Duration::from_secs(60),
            max_concurrent_requests: 1000,
        }
    }
}

/// The effective limits of one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most linear memory, in bytes, across the instance's memories.
    pub memory_bytes: usize,
    /// How long one request may take before the client gets 504.
    pub request_timeout: Duration,
    /// Concurrent requests the workload admits.
    pub max_concurrent_requests: u32,
}

impl Limits {
    /// Resolves `resources` over `defaults`, capped at `max_memory_bytes`
    /// (what the engine can reserve per memory).
    pub fn resolve(
        resources: &LocalResources,
        defaults: &LimitDefaults,
        max_memory_bytes: usize,
    ) -> Self {
        let memory_bytes = match resources.memory_limit_mb {
            Some(mb) if mb > 0 => usize::try_from(mb)
                .unwrap_or(usize::MAX)
                .saturating_mul(1 << 20),
            _ => defaults.memory_bytes,
        };
        Self {
            memory_bytes: memory_bytes.min(max_memory_bytes),
            request_timeout: resources
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.request_timeout),
            max_concurrent_requests: resources
                .max_concurrent_requests
                .unwrap_or(defaults.max_concurrent_requests),
        }
    }

    /// A store limiter enforcing the memory limit.
    pub(crate) fn store_limits(&self) -> wasmtime::StoreLimits {
        wasmtime::StoreLimitsBuilder::new()
            .memory_size(self.memory_bytes)
            .trap_on_grow_failure(false)
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_over_defaults_and_caps() {
        let defaults = LimitDefaults::default();
        let mut lr = LocalResources::default();
        let limits = Limits::resolve(&lr, &defaults, 1 << 30);
        assert_eq!(limits.memory_bytes, 256 << 20);
        lr.memory_limit_mb = Some(16);
        lr.timeout_ms = Some(250);
        lr.max_concurrent_requests = Some(3);
        let limits = Limits::resolve(&lr, &defaults, 1 << 30);
        assert_eq!(limits.memory_bytes, 16 << 20);
        assert_eq!(limits.request_timeout, Duration::from_millis(250));
        assert_eq!(limits.max_concurrent_requests, 3);
        lr.memory_limit_mb = Some(1 << 20);
        assert_eq!(
            Limits::resolve(&lr, &defaults, 1 << 30).memory_bytes,
            1 << 30
        );
        lr.memory_limit_mb = Some(-1);
        assert_eq!(
            Limits::resolve(&lr, &defaults, 1 << 30).memory_bytes,
            256 << 20
        );
    }
}
