//! The wasmtime engine Nimbus runs every component on.
//!
//! One [`Engine`] per host: component model and component-model-async (P3)
//! on, the pooling allocator on by default (probed first, because it reserves
//! a lot of address space), copy-on-write memory images, and epoch
//! interruption driven by exactly one ticker thread for the whole engine.
//! Stores arm their own deadlines against that shared epoch; nothing spawns a
//! thread per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How instance memory is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolingMode {
    /// Probe the address space and use pooling when it fits (the default).
    #[default]
    Auto,
    /// Always pool; fail to start if the pool cannot be reserved.
    On,
    /// Allocate each instance on demand.
    Off,
}

/// Engine settings. `Default` gives the embedded defaults `nimbus serve` uses.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Instance allocation strategy.
    pub pooling: PoolingMode,
    /// Most component instances alive at once when pooling.
    pub pool_instances: u32,
    /// Largest linear memory one instance may reserve, in bytes. Per-component
    /// memory limits are enforced below this by the store's limiter.
    pub max_memory_bytes: usize,
    /// Bytes of each recycled memory, table and stack slot kept resident and
    /// reset in place rather than returned to the kernel.
    pub keep_resident_bytes: usize,
    /// Pool slots kept warm (holding up to `keep_resident_bytes`) beyond
    /// those in use: with few, the slots a host ever dirties stay close to
    /// its peak of concurrent instances, which bounds its idle RSS.
    pub max_unused_warm_slots: u32,
    /// How often the shared epoch ticks. Deadlines are checked at this
    /// granularity and long-running guests yield to the scheduler this often.
    pub epoch_tick: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            pooling: PoolingMode::Auto,
            pool_instances: 1000,
            max_memory_bytes: 4 << 30,
            keep_resident_bytes: 2 << 20,
            max_unused_warm_slots: 16,
            epoch_tick: Duration::from_millis(10),
        }
    }
}

/// Errors building the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// wasmtime refused the configuration.
    #[error("cannot configure the wasmtime engine: {0}")]
    Config(String),
}

/// A configured wasmtime engine plus its epoch ticker.
///
/// Cheap to clone; the ticker stops when the last clone is dropped.
#[derive(Clone)]
pub struct Engine {
    inner: wasmtime::Engine,
    pooling: bool,
    epoch_tick: Duration,
    _ticker: Arc<EpochTicker>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("pooling", &self.pooling)
            .field("epoch_tick", &self.epoch_tick)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds the engine and starts its single epoch ticker thread.
    pub fn new(config: &EngineConfig) -> Result<Self, EngineError> {
        let pooling = match config.pooling {
            PoolingMode::On => true,
            PoolingMode::Off => false,
            PoolingMode::Auto => pooling_fits_address_space(),
        };
        let mut wasm = wasmtime::Config::new();
        wasm.wasm_component_model(true)
            .wasm_component_model_async(true)
            .epoch_interruption(true)
            .memory_init_cow(true)
            .parallel_compilation(true);
        if pooling {
            let mut pool = wasmtime::PoolingAllocationConfig::default();
            pool.total_component_instances(config.pool_instances)
                .total_core_instances(config.pool_instances.saturating_mul(4))
                .total_memories(config.pool_instances.saturating_mul(2))
                .total_tables(config.pool_instances.saturating_mul(4))
                .total_stacks(config.pool_instances)
                .max_memory_size(config.max_memory_bytes)
                .max_memories_per_component(8)
                .max_core_instances_per_component(64)
                .max_component_instance_size(1 << 20)
                // Reset recycled slots with memset over the pages that are
                // actually resident (PAGEMAP_SCAN where the kernel has it)
                // instead of madvise: madvise on every instance teardown
                // costs a TLB shootdown across all cores.
                .linear_memory_keep_resident(config.keep_resident_bytes)
                .table_keep_resident(config.keep_resident_bytes.min(1 << 20))
                .async_stack_keep_resident(config.keep_resident_bytes.min(1 << 20))
                .pagemap_scan(wasmtime::Enabled::Auto)
                .max_unused_warm_slots(config.max_unused_warm_slots)
                // Memory past `keep_resident` goes back to the kernel as the
                // instance ends, not in batches: a batch of 32 held 32 dirty
                // slots' worth (gigabytes for large guests) until it filled.
                // Small guests stay within `keep_resident` and never get here.
                .decommit_batch_size(1);
            wasm.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
        let inner =
            wasmtime::Engine::new(&wasm).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let ticker = EpochTicker::spawn(inner.clone(), config.epoch_tick);
        Ok(Self {
            inner,
            pooling,
            epoch_tick: config.epoch_tick,
            _ticker: Arc::new(ticker),
        })
    }

    /// The wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner
    }

    /// Whether the pooling allocator is in use.
    pub fn is_pooling(&self) -> bool {
        self.pooling
    }

    /// The epoch period.
    pub fn epoch_tick(&self) -> Duration {
        self.epoch_tick
    }

    /// A short stable fingerprint of everything that makes compiled code
    /// valid for this engine (wasmtime version, target, compiler settings).
    pub fn fingerprint(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.inner.precompile_compatibility_hash().hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }
}

/// The one thread that advances the engine's epoch.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn spawn(engine: wasmtime::Engine, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("nimbus-epoch".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    // park_timeout, not sleep: Drop unparks the thread so
                    // dropping an engine never waits out a long tick.
                    let mut next = std::time::Instant::now() + tick;
                    while !stop.load(Ordering::Relaxed) {
                        let now = std::time::Instant::now();
                        if now < next {
                            std::thread::park_timeout(next - now);
                            continue;
                        }
                        engine.increment_epoch();
                        next += tick;
                        if next < now {
                            // Fell behind (a suspended process): do not burst.
                            next = now + tick;
                        }
                    }
                }
            })
            .ok();
        Self { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// The pooling allocator reserves large virtual ranges up front; where the
/// address space is short (39-bit VA systems, tight `ulimit -v`) it cannot
/// start. Probe by reserving a 42-bit static memory, as `wasmtime serve` does.
fn pooling_fits_address_space() -> bool {
    const BITS_TO_TEST: u32 = 42;
    let mut config = wasmtime::Config::new();
    config.wasm_memory64(true);
    config.memory_reservation(1 << BITS_TO_TEST);
    let Ok(engine) = wasmtime::Engine::new(&config) else {
        return false;
    };
    let mut store = wasmtime::Store::new(&engine, ());
    let ty = wasmtime::MemoryType::new64(0, Some(1 << (BITS_TO_TEST - 16)));
    wasmtime::Memory::new(&mut store, ty).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dropping an engine stops its ticker at once instead of waiting out the
    /// tick (which, with a long tick, used to block the drop for that long).
    #[test]
    fn dropping_an_engine_does_not_wait_for_the_tick() {
        let engine = Engine::new(&EngineConfig {
            pooling: PoolingMode::Off,
            epoch_tick: Duration::from_secs(3600),
            ..EngineConfig::default()
        })
        .unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(engine);
            let _ = done_tx.send(());
        });
        // A hang guard, not a timing claim: the drop takes microseconds; a
        // regression would take the whole hour.
        done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("engine drop blocked on the epoch ticker");
    }
}
