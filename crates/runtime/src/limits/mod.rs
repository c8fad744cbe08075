//! Per-component limits derived from a component's local resources.
//!
//! Memory is fenced by the store's `ResourceLimiter` (a guest that grows past
//! its limit gets a failed `memory.grow`, which a Rust guest turns into a
//! trap; the host is unaffected). The request deadline is enforced through
//! the engine's epoch: guests yield at every tick so a deadline can fire even
//! inside an infinite loop, and the instance that missed it is discarded.
//! Concurrency is bounded per workload with a [`Cap`] and never queues
//! beyond it. CPU is shared out by `cpuLimit`: a component over its share
//! is held at its next yield, never killed ([`cpu`]), and its instances
//! run on low-priority threads of their own ([`lane`]).

pub mod cap;
pub mod cpu;
pub(crate) mod lane;

use crate::workload::LocalResources;
pub use cap::{Cap, CapClaim};
pub use cpu::CpuBudget;
pub use nimbus_model::CpuLimit;
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
    /// The CPU share of a component that sets no `cpuLimit`; `None` (the
    /// default): no limit.
    pub cpu_limit: Option<CpuLimit>,
}

impl Default for LimitDefaults {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            request_timeout: Duration::from_secs(60),
            max_concurrent_requests: 1000,
            cpu_limit: None,
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
    /// The CPU all its instances may use together; `None`: no limit.
    pub cpu: Option<CpuLimit>,
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
            cpu: resources.cpu_limit.or(defaults.cpu_limit),
        }
    }

    /// The CPU budget its instances share, when it has a CPU limit; held
    /// time is counted in `metrics` when given.
    pub fn cpu_budget(
        &self,
        metrics: Option<std::sync::Arc<nimbus_observe::metrics::ComponentMetrics>>,
    ) -> Option<std::sync::Arc<CpuBudget>> {
        self.cpu
            .map(|limit| std::sync::Arc::new(CpuBudget::new(limit, metrics)))
    }

    /// A store limiter enforcing the memory limit.
    pub(crate) fn store_limits(&self) -> wasmtime::StoreLimits {
        wasmtime::StoreLimitsBuilder::new()
            .memory_size(self.memory_bytes)
            .trap_on_grow_failure(false)
            .build()
    }
}

/// The linear memory all instances of a host may hold together.
///
/// Every instance grows its memories through this budget (after its own
/// `memoryLimitMb`): growth that would take the host past the budget is
/// refused, which a guest sees as a failed `memory.grow`; an instance whose
/// initial memory does not fit is not created, and its request gets 503.
/// So the host refuses work rather than grow past what the machine has.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: std::sync::atomic::AtomicU64,
    refusals: std::sync::atomic::AtomicU64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            used: Default::default(),
            refusals: Default::default(),
        }
    }

    /// The default: three quarters of the machine's memory.
    pub fn for_this_machine() -> Self {
        Self::new(physical_memory_bytes().map_or(u64::MAX, |total| total / 4 * 3))
    }

    /// The budget in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes of linear memory held now.
    pub fn used(&self) -> u64 {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many times growth or a new instance was refused.
    pub fn refusals(&self) -> u64 {
        self.refusals.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Takes `bytes` from the budget if they fit.
    pub(crate) fn reserve(&self, bytes: u64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let fits = self
            .used
            .fetch_update(Relaxed, Relaxed, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok();
        if !fits {
            self.refusals.fetch_add(1, Relaxed);
        }
        fits
    }

    /// Gives `bytes` back.
    pub(crate) fn release(&self, bytes: u64) {
        self.used
            .fetch_sub(bytes, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The machine's memory (`MemTotal`), where it can be read.
pub fn physical_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}

/// How many entries (resources: fields, streams, requests, pollables...)
/// one instance's table may hold. A `wasi:http` `fields` resource may hold
/// up to 128 KiB of host memory, so the cap scales with the component's
/// memory limit: the host memory a guest can pin through resources is about
/// its own memory limit (at least 32 MiB: the floor of 256 entries leaves a
/// small guest room for its streams and pollables), not the 1,000,000
/// entries (up to 128 GB) of wasmtime's default.
pub(crate) fn resource_table_capacity(memory_bytes: usize) -> usize {
    const FIELDS_BYTES: usize = 128 * 1024;
    (memory_bytes / FIELDS_BYTES).clamp(256, 65_536)
}

/// The process's open-file limit (its soft `RLIMIT_NOFILE`).
pub fn descriptor_limit() -> usize {
    // `None` is "unlimited".
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// Raises the soft open-file limit to the hard limit, as servers do at
/// start: the default soft limit (often 1024) is far below what the
/// connection caps are sized for. Returns the limit now in force.
pub fn raise_descriptor_limit() -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(%error, "cannot raise the open-file limit");
        }
    }
    descriptor_limit()
}

/// How long a count of the process's open descriptors is reused: counting
/// reads `/proc/self/fd`, which costs a few milliseconds at 20,000.
const DESCRIPTOR_COUNT_TTL: Duration = Duration::from_millis(250);

/// Whether guests may still open sockets the host does not count itself
/// (UDP, and the sockets of P3 components): only while the process holds
/// fewer than three quarters of its descriptor limit, which keeps the rest
/// for the ingress (capped at half), the admin listener and files. The
/// count is at most [`DESCRIPTOR_COUNT_TTL`] old; where it cannot be read,
/// the answer is yes, except when reading fails for want of a descriptor.
pub fn guest_descriptors_to_spare() -> bool {
    let limit = descriptor_limit();
    if limit == usize::MAX {
        return true;
    }
    descriptors_in_use().is_none_or(|open| open < limit / 4 * 3)
}

/// The process's open descriptors, counted at most once per
/// [`DESCRIPTOR_COUNT_TTL`]; `None` where `/proc/self/fd` cannot be read,
/// and `usize::MAX` (none to spare) where opening it fails for want of a
/// descriptor.
fn descriptors_in_use() -> Option<usize> {
    use std::sync::Mutex;
    use std::time::Instant;
    static LAST: Mutex<Option<(Instant, usize)>> = Mutex::new(None);
    if let Ok(last) = LAST.lock()
        && let Some((at, count)) = *last
        && at.elapsed() < DESCRIPTOR_COUNT_TTL
    {
        return Some(count);
    }
    let count = match std::fs::read_dir("/proc/self/fd") {
        Ok(entries) => entries.count(),
        // Failing to open one more descriptor is the answer itself.
        Err(error) if error.raw_os_error().is_some_and(is_descriptor_exhaustion) => usize::MAX,
        Err(_) => return None,
    };
    if let Ok(mut last) = LAST.lock() {
        *last = Some((Instant::now(), count));
    }
    Some(count)
}

/// EMFILE (this process) or ENFILE (the whole system): no descriptor left.
fn is_descriptor_exhaustion(errno: i32) -> bool {
    errno == rustix::io::Errno::MFILE.raw_os_error()
        || errno == rustix::io::Errno::NFILE.raw_os_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lowers this process's own descriptor limit: nextest runs each test
    /// in a process of its own, so no other test sees it.
    #[test]
    fn guest_sockets_stop_at_the_descriptor_reserve() {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        if std::env::var_os("NEXTEST").is_none() {
            eprintln!("skipped: changes the process's descriptor limit, safe only under nextest");
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI runs tests with nextest"
            );
            return;
        }
        let original = getrlimit(Resource::Nofile);
        let open = descriptors_in_use().expect("/proc/self/fd is readable");
        let set_soft = |soft: usize| {
            setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(soft as u64),
                    maximum: original.maximum,
                },
            )
            .unwrap();
            // Past the cached count's lifetime, so the next answer counts anew.
            std::thread::sleep(DESCRIPTOR_COUNT_TTL + Duration::from_millis(50));
        };
        // One spare descriptor for counting; the reserve is a quarter, so
        // this is past it however few descriptors the test process holds.
        set_soft(open + 1);
        assert!(
            !guest_descriptors_to_spare(),
            "{open} open of {} allowed",
            open + 1
        );
        // At the limit itself, where counting cannot open `/proc/self/fd`.
        set_soft(open);
        assert!(
            !guest_descriptors_to_spare(),
            "{open} open of {open} allowed"
        );
        set_soft(open * 2 + 64);
        assert!(guest_descriptors_to_spare());
        setrlimit(Resource::Nofile, original).unwrap();
    }

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

    #[test]
    fn a_cpu_limit_comes_from_the_component_or_the_host_default() {
        let mut defaults = LimitDefaults::default();
        let mut lr = LocalResources::default();
        let limits = Limits::resolve(&lr, &defaults, 1 << 30);
        assert_eq!(limits.cpu, None);
        assert!(limits.cpu_budget(None).is_none(), "no limit, no budget");
        defaults.cpu_limit = Some("2".parse().unwrap());
        let limits = Limits::resolve(&lr, &defaults, 1 << 30);
        assert_eq!(limits.cpu.map(CpuLimit::millicores), Some(2000));
        lr.cpu_limit = Some("250m".parse().unwrap());
        let limits = Limits::resolve(&lr, &defaults, 1 << 30);
        assert_eq!(limits.cpu.map(CpuLimit::millicores), Some(250));
        let budget = limits.cpu_budget(None).expect("a budget");
        assert_eq!(budget.limit().millicores(), 250);
        assert_eq!(budget.delay(), None, "a new budget starts full");
    }
}
