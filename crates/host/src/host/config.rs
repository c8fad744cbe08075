//! What a host is built with: engine, limits, accounting, plugin and
//! registry settings.

use crate::engine::EngineConfig;
use crate::limits::LimitDefaults;
use crate::oci::{PullPolicy, RegistrySettings};
use crate::plugins::PluginDefaults;
use std::path::PathBuf;

/// Host settings.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Engine settings.
    pub engine: EngineConfig,
    /// Where compiled components are cached; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Limits for components that do not set their own: memory, request
    /// deadline, concurrency, and the CPU share (`limits.cpu_limit`, which
    /// `--cpu-limit` sets; no limit by default).
    pub limits: LimitDefaults,
    /// Plugin settings for workloads that do not set their own
    /// (e.g. the key-value backend).
    pub plugins: PluginDefaults,
    /// Deliver an outgoing HTTP request addressed to another workload of
    /// this host in memory instead of over TCP (after the same router and
    /// `allowedHosts` checks); requests to anything else still go out over
    /// the network. Off by default.
    pub local_workload_calls: bool,
    /// How component images in OCI registries are fetched and cached.
    pub registry: RegistrySettings,
    /// When images are pulled, for components that do not say
    /// (`imagePullPolicy`).
    pub pull_policy: PullPolicy,
    /// Measure every component's CPU, memory, instances and requests
    /// ([`Host::metrics`]). Off by default: it reads the thread CPU clock
    /// around every poll of a guest.
    pub accounting: bool,
    /// Write one access-log line per request (tracing target
    /// `nimbus::access`); turns accounting on.
    pub access_log: bool,
    /// How the ingress bounds client connections.
    pub ingress: crate::http::IngressLimits,
    /// How many outgoing connections guests may hold open.
    pub outbound: crate::outbound::OutboundLimits,
    /// Linear memory all instances may hold together, in bytes (`None`:
    /// three quarters of the machine's memory).
    pub memory_budget_bytes: Option<u64>,
    /// Where guests' own spans, logs and metrics (`wasi:otel`) go: the
    /// exporters the embedder built, or nowhere (the default).
    pub guest_telemetry: crate::plugins::otel::GuestTelemetry,
    /// Host component plugins: components (a file or an OCI image, with
    /// their own `localResources`) whose exported interfaces every
    /// workload may import; each runs as one instance in a store of its
    /// own, restarted after a trap. None by default.
    pub component_plugins: Vec<crate::workload::ComponentSpec>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            engine: EngineConfig::default(),
            cache_dir: crate::artifact::default_cache_dir(),
            limits: LimitDefaults::default(),
            plugins: PluginDefaults::default(),
            local_workload_calls: false,
            registry: RegistrySettings::default(),
            pull_policy: PullPolicy::default(),
            accounting: false,
            access_log: false,
            ingress: crate::http::IngressLimits::default(),
            outbound: crate::outbound::OutboundLimits::default(),
            memory_budget_bytes: None,
            guest_telemetry: Default::default(),
            component_plugins: Vec::new(),
        }
    }
}
