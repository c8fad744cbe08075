//! The host: one engine, one artifact store, one linker, the running
//! workloads and the router, behind a cheap-to-clone handle.
//!
//! Lifecycle operations (start, replace, stop) are serialized by one async
//! lock and swap entries of a lock-free concurrent table; the request path
//! only reads it, so a replace never blocks traffic and in-flight requests
//! finish on the version (`Arc`) they started on.
//!
//! Split by concern: `config` (what a host is built with), `error` (why a
//! host or a workload failed), and `prepare` (turning a workload spec into
//! a `RunningWorkload`: reading, compiling, linking, binding plugins);
//! this module holds the host itself, its lifecycle and its request path.

mod component_plugins;
mod config;
mod error;
mod prepare;

pub use config::HostConfig;
pub use error::{HostError, WorkloadError};
pub use nimbus_model::spec::SERVICE_NAME;

use crate::artifact::{ArtifactStore, Digest};
use crate::engine::Engine;
use crate::http::access::{AccessRecord, LoggedBody};
use crate::http::body::{ResponseBody, error_response};
use crate::http::router::Router;
use crate::limits::{Cap, LimitDefaults};
use crate::metrics::{Metrics, RequestUsage};
use crate::oci::{PullPolicy, Registry};
use crate::plugins::PluginRegistry;
use crate::wasi::{StoreState, build_linker};
use crate::workload::running::RunningWorkload;
use crate::workload::{NamedSources, Workload, WorkloadState, WorkloadStatus};
use http_body_util::BodyExt as _;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tracing::Instrument as _;
use wasmtime::component::{InstancePre, Linker};

/// The machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// A Nimbus host. Clone to share.
#[derive(Clone)]
pub struct Host(Arc<HostInner>);

struct HostInner {
    engine: Engine,
    artifacts: ArtifactStore,
    linker: Linker<StoreState>,
    /// Each component pre-linked against `linker` alone (no links to other
    /// components, no own sockets), by digest: workloads of one component
    /// share it (it is most of what a workload would otherwise hold).
    shared_pres: std::sync::Mutex<HashMap<Digest, InstancePre<StoreState>>>,
    plugins: PluginRegistry,
    router: Arc<dyn Router>,
    limits: LimitDefaults,
    // Per-component memory limits never exceed what the engine can reserve.
    max_memory_bytes: usize,
    workloads: papaya::HashMap<Arc<str>, Arc<RunningWorkload>>,
    /// Workloads stopped while idle whose routes stay bound: the first
    /// request to one starts it again ([`Host::park_workload`]).
    parked: papaya::HashMap<Arc<str>, Arc<Parked>>,
    /// Bounds the wakes under way at once ([`MAX_WAKES_AT_ONCE`]).
    wakes: Semaphore,
    lifecycle: tokio::sync::Mutex<()>,
    // Named config/secret sources; replaced whole (the dev loop reloads them).
    sources: arc_swap::ArcSwap<NamedSources>,
    // Set when `HostConfig::local_workload_calls` is on.
    local: Option<Arc<HostWorkloads>>,
    registry: Registry,
    ingress: crate::http::IngressLimits,
    /// Outgoing connections open across the host (`OutboundLimits::host`).
    outbound_host: Arc<Cap>,
    outbound: crate::outbound::OutboundLimits,
    memory_budget: Arc<crate::limits::MemoryBudget>,
    pull_policy: PullPolicy,
    metrics: Arc<Metrics>,
    accounting: bool,
    access_log: bool,
    /// The last requests of each workload, kept once a console asked
    /// ([`Host::keep_recent_requests`]).
    recent_requests: Arc<crate::http::access::RecentRequests>,
    keep_recent: std::sync::atomic::AtomicBool,
    /// When the host was built.
    started_at: std::time::SystemTime,
    /// Components whose exports every workload may import.
    component_plugins: component_plugins::ComponentPlugins,
}

/// The workloads of one host as destinations of outgoing HTTP requests
/// (`HostConfig::local_workload_calls`): a request whose authority routes
/// to one of them is handed to it in memory.
pub struct HostWorkloads(std::sync::Weak<HostInner>);

impl crate::outbound::LocalWorkloads for HostWorkloads {
    fn find(&self, uri: &http::Uri) -> Option<Arc<dyn crate::outbound::InMemoryTarget>> {
        uri.authority()?;
        let host = self.0.upgrade()?;
        let (parts, ()) = http::Request::builder()
            .uri(uri.clone())
            .body(())
            .ok()?
            .into_parts();
        let id = host.router.route(&parts).ok()?;
        let workload: Arc<RunningWorkload> = host.workloads.pin().get(&id).cloned()?;
        Some(workload)
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("engine", &self.0.engine)
            .field("workloads", &self.0.workloads.len())
            .finish()
    }
}

/// A workload parked while idle: its spec, to start it again.
struct Parked {
    workload: Workload,
    /// The start under way, or the last one: the requests that arrive
    /// meanwhile wait for the same start, which goes on when they give up.
    start: std::sync::Mutex<Option<WakeStart>>,
    /// Requests that may wait for the start at once; more get 503.
    waiting: Arc<Cap>,
}

/// A start of a parked workload, shared by the requests waiting for it.
type WakeStart = futures::future::Shared<futures::future::BoxFuture<'static, WakeResult>>;

/// How a wake ended: the error and when, so requests arriving just after
/// a failure get it at once rather than each trying again.
type WakeResult = Result<(), (String, std::time::Instant)>;

/// Requests that may wait at once for a parked workload to start.
const MAX_WAITING_FOR_WAKE: usize = 1024;

/// How long a request waits for a parked workload to start (the start
/// itself goes on).
const WAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// After a failed wake, how long requests get its error before a new start
/// is tried.
const WAKE_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Parked workloads starting at once on one host; more wait their turn
/// (within their requests' wait).
const MAX_WAKES_AT_ONCE: usize = 16;

/// What one workload has served since it started ([`Host::workload_load`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WorkloadLoad {
    /// Requests answered; `None` for a workload that serves no HTTP.
    pub requests: Option<u64>,
    /// Guest CPU seconds over all its components.
    pub cpu_seconds: f64,
}

impl Host {
    /// Builds a host routing with `router`.
    pub fn new(config: HostConfig, router: Arc<dyn Router>) -> Result<Self, HostError> {
        let engine = Engine::new(&config.engine)?;
        let plugins = PluginRegistry::new(crate::plugins::builtin(
            &config.plugins,
            &config.guest_telemetry,
        ));
        let linker = build_linker(engine.wasmtime(), plugins.all())
            .map_err(|e| HostError::Linker(format!("{e:#}")))?;
        let artifacts = ArtifactStore::new(engine.clone(), config.cache_dir.clone());
        Ok(Self(Arc::new_cyclic(|weak| HostInner {
            engine,
            artifacts,
            linker,
            shared_pres: std::sync::Mutex::default(),
            plugins,
            router,
            limits: config.limits,
            max_memory_bytes: config.engine.max_memory_bytes,
            workloads: papaya::HashMap::new(),
            parked: papaya::HashMap::new(),
            wakes: Semaphore::new(MAX_WAKES_AT_ONCE),
            lifecycle: tokio::sync::Mutex::new(()),
            sources: arc_swap::ArcSwap::from_pointee(NamedSources::default()),
            local: config
                .local_workload_calls
                .then(|| Arc::new(HostWorkloads(weak.clone()))),
            outbound_host: Arc::new(Cap::new(config.outbound.effective_host_limit())),
            outbound: config.outbound,
            ingress: config.ingress,
            memory_budget: Arc::new(match config.memory_budget_bytes {
                Some(bytes) => crate::limits::MemoryBudget::new(bytes),
                None => crate::limits::MemoryBudget::for_this_machine(),
            }),
            registry: Registry::new(config.registry),
            pull_policy: config.pull_policy,
            metrics: Arc::new(Metrics::new()),
            accounting: config.accounting || config.access_log,
            access_log: config.access_log,
            recent_requests: Arc::default(),
            keep_recent: std::sync::atomic::AtomicBool::new(false),
            started_at: std::time::SystemTime::now(),
            component_plugins: component_plugins::ComponentPlugins::new(config.component_plugins),
        })))
    }

    /// Replaces the named config and secret sources that workloads started
    /// from now on resolve `configFrom` / `secretFrom` against.
    pub fn set_sources(&self, sources: NamedSources) {
        self.0.sources.store(Arc::new(sources));
    }

    /// The host-wide linear memory budget.
    pub fn memory_budget(&self) -> &crate::limits::MemoryBudget {
        &self.0.memory_budget
    }

    /// How the ingress bounds client connections.
    pub fn ingress_limits(&self) -> &crate::http::IngressLimits {
        &self.0.ingress
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.0.engine
    }

    /// The artifact store (compiled components and their counters).
    pub fn artifacts(&self) -> &ArtifactStore {
        &self.0.artifacts
    }

    /// The router.
    pub fn router(&self) -> &Arc<dyn Router> {
        &self.0.router
    }

    /// The host's metrics: per-component series with
    /// [`HostConfig::accounting`] on, host-wide ones always.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }

    /// Starts a workload. Starting an id that already runs the same spec is a
    /// no-op returning its status.
    pub async fn start_workload(
        &self,
        workload: Workload,
    ) -> Result<WorkloadStatus, WorkloadError> {
        let id = workload.id();
        if let Some(status) = self.same_as_running(&id, &workload)? {
            return Ok(status);
        }
        let running = self.prepare(workload).await?;
        let _guard = self.0.lifecycle.lock().await;
        if let Some(status) = self.same_as_running(&id, &running.workload)? {
            return Ok(status);
        }
        self.publish(running)
    }

    /// Replaces (or starts) a workload atomically: the new version is
    /// compiled and linked first, then swapped in; requests already running
    /// finish on the old version.
    pub async fn replace_workload(
        &self,
        workload: Workload,
    ) -> Result<WorkloadStatus, WorkloadError> {
        let running = self.prepare(workload).await?;
        let _guard = self.0.lifecycle.lock().await;
        self.publish(running)
    }

    /// Stops a workload but keeps its routes (scale to zero): the next
    /// request to them starts it again from the compiled cache, held until
    /// it serves (at most 10 s, at most 1024 requests waiting; more get
    /// 503). In-flight requests finish.
    ///
    /// A workload that something reaches other than through HTTP (a
    /// subscription's messages, its long-lived service) is not parked: it
    /// would miss that while parked.
    pub async fn park_workload(&self, id: &str) -> Result<WorkloadStatus, WorkloadError> {
        let _guard = self.0.lifecycle.lock().await;
        let running = self
            .0
            .workloads
            .pin()
            .get(id)
            .cloned()
            .ok_or_else(|| WorkloadError::NotFound(id.to_string()))?;
        let reason = if running.service.is_some() {
            Some("its service would stop".to_string())
        } else if !running.driven_by.is_empty() {
            Some(format!(
                "it would miss what {} delivers",
                running
                    .driven_by
                    .iter()
                    .map(|plugin| format!("`{plugin}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(WorkloadError::NotParkable {
                workload: id.to_string(),
                reason,
            });
        }
        let workload = running.workload.clone();
        drop(running);
        // Parked before it stops: a request arriving meanwhile wakes it.
        let parked = Parked {
            workload,
            start: std::sync::Mutex::new(None),
            waiting: Arc::new(Cap::new(MAX_WAITING_FOR_WAKE)),
        };
        self.0.parked.pin().insert(id.into(), Arc::new(parked));
        let running = self.take_down(id)?;
        tracing::info!(
            workload = id,
            "workload parked; its routes stay and the next request starts it"
        );
        Ok(running.status(WorkloadState::Stopped))
    }

    /// Takes running workload `id` out of service, its routes aside: its
    /// plugins' bindings, figures and service go; in-flight requests
    /// finish. Called under the lifecycle lock.
    fn take_down(&self, id: &str) -> Result<Arc<RunningWorkload>, WorkloadError> {
        let running = self
            .0
            .workloads
            .pin()
            .remove(id)
            .cloned()
            .ok_or_else(|| WorkloadError::NotFound(id.to_string()))?;
        self.0.plugins.unbind(id);
        self.0.metrics.forget(id);
        self.0.recent_requests.forget(id);
        self.0.metrics.set_workloads(self.0.workloads.len());
        running.stop_serving();
        if let Some(service) = &running.service {
            service.stop();
        }
        Ok(running)
    }

    /// Whether workload `id` is parked ([`Host::park_workload`]).
    pub fn is_parked(&self, id: &str) -> bool {
        self.0.parked.pin().contains_key(id)
    }

    /// The ids of the parked workloads, sorted.
    pub fn parked_workloads(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .0
            .parked
            .pin()
            .keys()
            .map(|id| id.to_string())
            .collect();
        ids.sort();
        ids
    }

    /// Starts parked workload `id` for a request and returns it running,
    /// waiting at most [`WAKE_TIMEOUT`]. Requests arriving meanwhile wait
    /// for the same start, which goes on if they give up; after a failed
    /// start, requests get its error for [`WAKE_RETRY_AFTER`]. `Ok(None)`:
    /// it is not parked.
    async fn wake(&self, id: &str) -> Result<Option<Arc<RunningWorkload>>, String> {
        let Some(parked) = self.0.parked.pin().get(id).cloned() else {
            // Woken between the caller's look and this one.
            return Ok(self.0.workloads.pin().get(id).cloned());
        };
        let Some(_waiting) = parked.waiting.try_claim() else {
            return Err(format!(
                "workload `{id}` is starting and {MAX_WAITING_FOR_WAKE} requests already wait for it"
            ));
        };
        let start = {
            let mut slot = parked.start.lock().unwrap_or_else(|e| e.into_inner());
            let reusable = match slot.as_ref().map(|start| start.peek()) {
                // Under way, or failed just now.
                Some(None) => true,
                Some(Some(Err((_, at)))) => at.elapsed() < WAKE_RETRY_AFTER,
                Some(Some(Ok(()))) | None => false,
            };
            match slot.as_ref() {
                Some(start) if reusable => start.clone(),
                _ => slot.insert(self.begin_wake(id, &parked)).clone(),
            }
        };
        let outcome = match tokio::time::timeout(WAKE_TIMEOUT, start).await {
            Ok(outcome) => outcome,
            Err(_) => {
                return Err(format!(
                    "workload `{id}` did not start within {} s",
                    WAKE_TIMEOUT.as_secs()
                ));
            }
        };
        // Running now, whoever started it.
        if let Some(running) = self.0.workloads.pin().get(id).cloned() {
            return Ok(Some(running));
        }
        match outcome {
            Err((message, _)) => Err(message),
            Ok(()) => Err(format!("workload `{id}` stopped while it started")),
        }
    }

    /// Spawns the start of parked workload `id`, shared by its waiters.
    fn begin_wake(&self, id: &str, parked: &Arc<Parked>) -> WakeStart {
        use futures::FutureExt as _;
        let (host, id, parked) = (self.clone(), id.to_string(), parked.clone());
        let task = tokio::spawn(async move {
            let began = std::time::Instant::now();
            let result = host.start_parked(&id, &parked).await;
            match &result {
                Ok(()) => tracing::info!(
                    workload = %id,
                    took_ms = began.elapsed().as_millis() as u64,
                    "woke a parked workload for a request"
                ),
                Err(message) => tracing::warn!(workload = %id, "{message}"),
            }
            result.map_err(|message| (message, std::time::Instant::now()))
        });
        async move {
            task.await.unwrap_or_else(|e| {
                Err((
                    format!("the start of a parked workload failed: {e}"),
                    std::time::Instant::now(),
                ))
            })
        }
        .boxed()
        .shared()
    }

    /// Starts `parked` (workload `id`) and puts it in place, unless it was
    /// stopped, started or parked anew meanwhile.
    async fn start_parked(&self, id: &str, parked: &Arc<Parked>) -> Result<(), String> {
        let _turn = self
            .0
            .wakes
            .acquire()
            .await
            .map_err(|_| "the host is shutting down".to_string())?;
        if self.0.workloads.pin().contains_key(id) {
            return Ok(());
        }
        let running = self
            .prepare(parked.workload.clone())
            .await
            .map_err(|e| format!("workload `{id}` could not start: {e}"))?;
        let _guard = self.0.lifecycle.lock().await;
        // Prepared without the lock: a stop, a new start or a new park
        // meanwhile wins over this wake.
        let still_parked = self
            .0
            .parked
            .pin()
            .get(id)
            .is_some_and(|now| Arc::ptr_eq(now, parked));
        if !still_parked {
            return Err(format!(
                "workload `{id}` was stopped or changed while it started"
            ));
        }
        self.publish(running)
            .map(|_| ())
            .map_err(|e| format!("workload `{id}` could not start: {e}"))
    }

    /// Stops a workload (or forgets a parked one, unbinding its routes);
    /// in-flight requests finish.
    pub async fn stop_workload(&self, id: &str) -> Result<WorkloadStatus, WorkloadError> {
        let _guard = self.0.lifecycle.lock().await;
        let was_parked = self.0.parked.pin().remove(id).is_some();
        let taken = self.take_down(id);
        if was_parked || taken.is_ok() {
            self.0.router.workload_unbound(id);
        }
        let running = taken?;
        tracing::info!(workload = id, "workload stopped");
        Ok(running.status(WorkloadState::Stopped))
    }

    /// Whether access-log lines are written (and kept for the console).
    pub fn access_log(&self) -> bool {
        self.0.access_log
    }

    /// Keeps each workload's last requests from now on (a console shows
    /// them), whether or not the access log is written; `false` stops and
    /// forgets them.
    pub fn keep_recent_requests(&self, keep: bool) {
        let was = self
            .0
            .keep_recent
            .swap(keep, std::sync::atomic::Ordering::Relaxed);
        if was && !keep {
            self.0.recent_requests.retain(|_| false);
        }
    }

    /// The last requests of each workload (see [`Self::keep_recent_requests`]).
    pub fn recent_requests(&self) -> &crate::http::access::RecentRequests {
        &self.0.recent_requests
    }

    /// When the host was built.
    pub fn started_at(&self) -> std::time::SystemTime {
        self.0.started_at
    }

    /// The limits a component with `resources` runs under on this host.
    pub fn effective_limits(
        &self,
        resources: &nimbus_model::spec::LocalResources,
    ) -> crate::limits::Limits {
        crate::limits::Limits::resolve(resources, &self.0.limits, self.0.max_memory_bytes)
    }

    /// The running workload `id`: its spec and the components it runs.
    pub fn running_workload(&self, id: &str) -> Option<Arc<RunningWorkload>> {
        self.0.workloads.pin().get(id).cloned()
    }

    /// The top-level imports and exports of the component whose bytes
    /// have `digest` (`sha256:…`), if this host compiled it.
    pub fn component_world(&self, digest: &str) -> Option<nimbus_model::ComponentWorld> {
        let component = self.0.artifacts.compiled(digest)?;
        let engine = self.0.engine.wasmtime();
        let ty = component.component_type();
        Some(nimbus_model::ComponentWorld {
            imports: ty.imports(engine).map(|(n, _)| n.to_string()).collect(),
            exports: ty.exports(engine).map(|(n, _)| n.to_string()).collect(),
        })
    }

    /// Each running workload's entry component (the outermost middleware,
    /// else the component serving HTTP), by workload id: the one whose
    /// requests are the workload's requests, counted once through a chain.
    pub fn entry_components(&self) -> std::collections::HashMap<String, String> {
        self.0
            .workloads
            .pin()
            .iter()
            .filter_map(|(id, running)| {
                let entry = running
                    .workload
                    .spec
                    .middleware
                    .first()
                    .cloned()
                    .or_else(|| {
                        running
                            .status(WorkloadState::Running)
                            .components
                            .into_iter()
                            .find(|c| c.http.is_some())
                            .map(|c| c.name)
                    })?;
                Some((id.to_string(), entry))
            })
            .collect()
    }

    /// What each running workload has served since it started, by id:
    /// requests answered through its entry component (for workloads that
    /// serve HTTP) and guest CPU over all its components (a cluster's
    /// autoscaler turns these into rates). Empty without
    /// [`HostConfig::accounting`]: nothing is counted then.
    pub fn workload_load(&self) -> std::collections::HashMap<String, WorkloadLoad> {
        if !self.0.accounting {
            return std::collections::HashMap::new();
        }
        let entries = self.entry_components();
        let mut load: std::collections::HashMap<String, WorkloadLoad> = self
            .0
            .workloads
            .pin()
            .keys()
            .map(|id| {
                let totals = WorkloadLoad {
                    requests: entries.contains_key(&**id).then_some(0),
                    cpu_seconds: 0.0,
                };
                (id.to_string(), totals)
            })
            .collect();
        for reading in self.0.metrics.readings() {
            let Some(totals) = load.get_mut(&reading.workload) else {
                continue;
            };
            totals.cpu_seconds += reading.cpu_seconds;
            if entries.get(&reading.workload) == Some(&reading.component)
                && let Some(requests) = &mut totals.requests
            {
                *requests += reading.requests.iter().sum::<u64>();
            }
        }
        load
    }

    /// Whether per-component figures are counted ([`HostConfig::accounting`]).
    pub fn accounting(&self) -> bool {
        self.0.accounting
    }

    /// Status of one workload, if it runs.
    pub fn workload_status(&self, id: &str) -> Option<WorkloadStatus> {
        self.0
            .workloads
            .pin()
            .get(id)
            .map(|w| w.status(WorkloadState::Running))
    }

    /// Status of every running workload, sorted by id.
    pub fn workloads(&self) -> Vec<WorkloadStatus> {
        let mut all: Vec<_> = self
            .0
            .workloads
            .pin()
            .values()
            .map(|w| w.status(WorkloadState::Running))
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Closes the connections plugins took out of HTTP (WebSockets), for a
    /// stopping ingress; resolves once they have ended.
    pub(crate) async fn drain_upgraded(&self) {
        self.0.plugins.drain_upgrades().await;
    }

    /// Routes and serves one HTTP request.
    pub async fn handle<B>(&self, request: http::Request<B>) -> http::Response<ResponseBody>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let keep_recent = self
            .0
            .keep_recent
            .load(std::sync::atomic::Ordering::Relaxed);
        if !self.0.access_log && !keep_recent {
            return self.route(request, None).await.0;
        }
        // Logged even when the client leaves before the answer (499).
        let mut pending = crate::http::access::PendingRecord::new(AccessRecord::start(
            &request,
            self.0.access_log,
            keep_recent.then(|| self.0.recent_requests.clone()),
        ));
        let usage = pending.usage();
        let (response, workload) = self.route(request, Some(usage)).await;
        let record = pending.answered(response.status(), workload);
        response.map(|body| LoggedBody::new(body, record).boxed_unsync())
    }

    /// Routes one request and serves it; also says which workload answered.
    async fn route<B>(
        &self,
        request: http::Request<B>,
        usage: Option<Arc<RequestUsage>>,
    ) -> (http::Response<ResponseBody>, Option<Arc<str>>)
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let (parts, body) = request.into_parts();
        let span = crate::trace::request_span(&parts, crate::http::router::request_host);
        // Instrumented only when some layer wants the span: wrapping moves
        // the whole request future (kilobytes, in a per-request memcpy)
        // for a span nobody records.
        let (response, id) = if span.is_disabled() {
            self.route_parts(parts, body, usage, &span).await
        } else {
            self.route_parts(parts, body, usage, &span)
                .instrument(span.clone())
                .await
        };
        crate::trace::record_status(&span, response.status());
        (response, id)
    }

    async fn route_parts<B>(
        &self,
        parts: http::request::Parts,
        body: B,
        usage: Option<Arc<RequestUsage>>,
        span: &tracing::Span,
    ) -> (http::Response<ResponseBody>, Option<Arc<str>>)
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        if let Some((status, reason)) = crate::http::malformed::refusal(&parts) {
            return (error_response(status, reason), None);
        }
        let id = match self.0.router.route(&parts) {
            Ok(id) => id,
            Err(error) => {
                let mut response = error_response(error.status(), &error.to_string());
                if let Some(seconds) = error.retry_after() {
                    response
                        .headers_mut()
                        .insert(http::header::RETRY_AFTER, seconds.into());
                }
                return (response, None);
            }
        };
        span.record("nimbus.workload", &*id);
        let running = self.0.workloads.pin().get(&id).cloned();
        let workload = match running {
            Some(workload) => workload,
            // Parked (scaled to zero): this request starts it.
            None => match self.wake(&id).await {
                Ok(Some(workload)) => workload,
                Ok(None) => {
                    let message = format!("workload `{id}` is not running");
                    return (
                        error_response(http::StatusCode::SERVICE_UNAVAILABLE, &message),
                        None,
                    );
                }
                Err(message) => {
                    tracing::warn!(workload = %id, "{message}");
                    return (
                        error_response(http::StatusCode::SERVICE_UNAVAILABLE, &message),
                        None,
                    );
                }
            },
        };
        if let Some(protocol) = crate::http::upgrade::requested_protocol(&parts)
            && let Some(upgrades) = self.0.plugins.upgrade_for(protocol, &id)
        {
            let response = crate::http::upgrade::take_over(upgrades, parts, id.clone()).await;
            return (response, Some(id));
        }
        if !workload.has_http_handler()
            && let Some(protocol) = self.0.plugins.upgrade_protocol_of(&id)
        {
            return (
                crate::http::upgrade::upgrade_required(&id, protocol),
                Some(id),
            );
        }
        let response = workload
            .handle(http::Request::from_parts(parts, body), usage)
            .await;
        (response, Some(id))
    }

    fn same_as_running(
        &self,
        id: &str,
        workload: &Workload,
    ) -> Result<Option<WorkloadStatus>, WorkloadError> {
        match self.0.workloads.pin().get(id) {
            Some(running) if running.workload == *workload => {
                Ok(Some(running.status(WorkloadState::Running)))
            }
            Some(_) => Err(WorkloadError::Conflict(id.to_string())),
            None => Ok(None),
        }
    }

    fn publish(&self, running: RunningWorkload) -> Result<WorkloadStatus, WorkloadError> {
        self.0
            .router
            .workload_resolved(&running.id, &running.workload)?;
        if let Some(service) = &running.service {
            service.start();
        }
        let running = Arc::new(running);
        let replaced = match self
            .0
            .workloads
            .pin()
            .insert(running.id.clone(), running.clone())
        {
            Some(old) => {
                old.stop_serving();
                true
            }
            None => false,
        };
        // Started again: no longer parked (once it runs, so a request
        // finds it in one place or the other).
        self.0.parked.pin().remove(&running.id);
        self.0.metrics.set_workloads(self.0.workloads.len());
        tracing::info!(workload = %running.id, replaced, "workload running");
        Ok(running.status(WorkloadState::Running))
    }
}
