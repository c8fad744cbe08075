//! The host agent: puts a [`Host`] on NATS.
//!
//! It answers the host API (`runtime.host.<id>.…`, see [`crate::api`]) and
//! publishes a heartbeat every interval. Each request is handled on its own
//! task; requests for the same workload are serialised, so a start and a
//! stop arriving together apply in order. A malformed or unknown request
//! gets an error reply and the agent carries on. A start or stop that fails
//! is logged here as a warning with the workload and the reason, besides
//! the reply the controller records as an event.

use crate::api::{
    self, Capacity, HeartbeatWorkload, HostHeartbeat, HostWorkload, Reply, Reservation,
    WorkloadStartRequest, WorkloadStatusRequest, WorkloadStopRequest, WorkloadStopResponse,
};
use futures::StreamExt as _;
use nimbus_host::{Host, WorkloadError};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Who the host is and how it reports.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Host id: one NATS subject token.
    pub host_id: String,
    /// Labels, `hostgroup` included.
    pub labels: BTreeMap<String, String>,
    /// Where the host serves HTTP, reported in heartbeats.
    pub http_address: Option<String>,
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
    /// Most component instances alive at once (reported as capacity).
    pub max_instances: u32,
    /// Memory the host may promise its workloads, in bytes; `None`: no
    /// budget. A start that does not fit is refused (the controller places
    /// it elsewhere).
    pub memory_budget: Option<u64>,
    /// CPU the host may promise its workloads, in millicores; `None`: no
    /// budget.
    pub cpu_budget_millis: Option<u64>,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The host id cannot be a subject token.
    #[error("host id `{0}` must be letters, digits, `-` or `_`")]
    InvalidId(String),
    /// The subscription failed.
    #[error("cannot subscribe to `{subject}`: {message}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// Why.
        message: String,
    },
}

/// A new host id: the host name (made subject-safe) and a unique suffix.
pub fn generate_host_id() -> String {
    let name: String = hostname()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    format!("{name}-{}", nuid::next().to_string().to_lowercase())
}

pub use nimbus_host::host::hostname;

fn memory_bytes() -> u64 {
    nimbus_host::limits::physical_memory_bytes().unwrap_or(0)
}

struct Agent {
    host: Host,
    client: async_nats::Client,
    settings: AgentSettings,
    started_at: u64,
    /// The agent's monotonic clock starts here (heartbeats' `sampledAtMs`).
    clock: Instant,
    instance: String,
    // Facts of the machine, read once.
    hostname: String,
    capacity: Capacity,
    // What the controller placed here, by workload id: (spec hash, replicas).
    placed: Mutex<HashMap<String, (String, u32)>>,
    // Workloads parked here (scaled to zero), by id: their spec hash, to
    // report one a request started again.
    parked: Mutex<HashMap<String, String>>,
    // Parked workloads a request started again, until the controller
    // places or stops them here.
    woken: Mutex<HashSet<String>>,
    // Memory and CPU promised to each workload placed here, by id.
    reserved: Mutex<HashMap<String, Reservation>>,
    // Serialises requests per workload id.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    revision: AtomicU64,
}

/// Runs the agent until `shutdown` resolves. The client should reconnect
/// on its own ([`crate::connect::Persistence::Retry`]): subscriptions are
/// restored after a NATS restart.
pub async fn run(
    client: async_nats::Client,
    host: Host,
    settings: AgentSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    if !api::valid_host_id(&settings.host_id) {
        return Err(AgentError::InvalidId(settings.host_id));
    }
    let subscribe = |subject: String| {
        let client = client.clone();
        async move {
            client
                .subscribe(subject.clone())
                .await
                .map_err(|e| AgentError::Subscribe {
                    subject,
                    message: e.to_string(),
                })
        }
    };
    let mut requests = subscribe(api::host_wildcard(&settings.host_id)).await?;
    let mut pings = subscribe(api::HOSTS_PING.to_string()).await?;
    let agent = Arc::new(Agent {
        host,
        client: client.clone(),
        started_at: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        clock: Instant::now(),
        instance: nuid::next().to_string(),
        hostname: hostname(),
        capacity: Capacity {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            memory_bytes: memory_bytes(),
            max_instances: settings.max_instances,
            ..Capacity::default()
        },
        settings,
        placed: Mutex::new(HashMap::new()),
        reserved: Mutex::new(HashMap::new()),
        parked: Mutex::new(HashMap::new()),
        woken: Mutex::new(HashSet::new()),
        locks: Mutex::new(HashMap::new()),
        revision: AtomicU64::new(0),
    });
    // The client retries its first connection in the background, so the
    // subscriptions above may only be queued: a round trip says whether
    // NATS is there.
    let reached = tokio::time::timeout(Duration::from_secs(3), client.flush()).await;
    if matches!(reached, Ok(Ok(()))) {
        tracing::info!(host = %agent.settings.host_id, "host joined the cluster");
    } else {
        tracing::warn!(
            host = %agent.settings.host_id,
            "NATS is not reachable yet: the host keeps trying and joins the cluster once it connects"
        );
    }
    let heartbeats = tokio::spawn(agent.clone().heartbeat_loop());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(message) = requests.next() => {
                tokio::spawn(agent.clone().handle(message));
            }
            Some(message) = pings.next() => {
                if let Some(reply) = message.reply {
                    agent.respond(reply, &Reply::Ok(agent.heartbeat())).await;
                }
            }
            else => break,
        }
    }
    heartbeats.abort();
    // Bounded: with NATS away there is nothing to flush to.
    let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    Ok(())
}

impl Agent {
    async fn heartbeat_loop(self: Arc<Self>) {
        let subject = api::operator_heartbeat_subject(&self.settings.host_id);
        let mut ticker = tokio::time::interval(self.settings.heartbeat_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let body = serde_json::to_vec(&self.heartbeat()).unwrap_or_default();
            if let Err(e) = self.client.publish(subject.clone(), body.into()).await {
                tracing::warn!("cannot publish the heartbeat: {e}");
            }
        }
    }

    fn heartbeat(&self) -> HostHeartbeat {
        // Read before the snapshot: a change racing with it is then at
        // worst reported under an older revision, never a newer one.
        let revision = self.revision.load(Ordering::SeqCst);
        let statuses = self.host.workloads();
        let mut placed = self.placed();
        // A parked workload a request started again runs one replica here,
        // holding what it reserves, and is reported woken. Judged on the
        // host as it is now, not on the snapshot above: a wake or a park
        // finishing meanwhile must not be lost or mistaken.
        let parked = {
            let mut parked = self.parked_map();
            let mut woke = Vec::new();
            parked.retain(|id, hash| {
                if self.host.is_parked(id) {
                    return true;
                }
                if !placed.contains_key(id)
                    && let Some(running) = self.host.running_workload(id)
                {
                    woke.push((id.clone(), hash.clone(), running));
                }
                false
            });
            for (id, hash, running) in woke {
                tracing::info!(workload = %id, "a request woke a parked workload");
                let need = self.reservation(&running.workload);
                self.reserved_map().insert(id.clone(), need);
                self.woken_set().insert(id.clone());
                placed.insert(id, (hash, 1));
            }
            parked
                .iter()
                .map(|(id, hash)| (id.clone(), hash.clone()))
                .collect()
        };
        // Only what has been placed completely: a workload the runtime
        // already runs but whose start has not returned yet is still a
        // request in flight, reported by its reply. Counters only where
        // the host counts them: a missing one is not a zero.
        let load = self.host.workload_load();
        let woken = self.woken_set().clone();
        let workloads: Vec<HeartbeatWorkload> = statuses
            .iter()
            .filter_map(|status| {
                let (spec_hash, replicas) = placed.get(&status.id)?.clone();
                let served = load.get(&status.id);
                Some(HeartbeatWorkload {
                    id: status.id.clone(),
                    spec_hash,
                    replicas,
                    requests: served.and_then(|s| s.requests),
                    cpu_millis: served.map(|s| (s.cpu_seconds * 1000.0) as u64),
                    woken: woken.contains(&status.id),
                })
            })
            .collect();
        drop(placed);
        let reserved = self.reserved_total();
        HostHeartbeat {
            id: self.settings.host_id.clone(),
            instance: self.instance.clone(),
            hostname: self.hostname.clone(),
            labels: self.settings.labels.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            http_address: self.settings.http_address.clone(),
            capacity: Capacity {
                memory_budget_bytes: self.settings.memory_budget.unwrap_or(0),
                memory_reserved_bytes: reserved.memory_bytes,
                cpu_budget_millis: self.settings.cpu_budget_millis.unwrap_or(0),
                cpu_reserved_millis: reserved.cpu_millis,
                ..self.capacity.clone()
            },
            workload_count: workloads.len() as u32,
            component_count: statuses.iter().map(|s| s.components.len() as u32).sum(),
            replica_count: workloads
                .iter()
                .fold(0u32, |sum, w| sum.saturating_add(w.replicas)),
            interval_ms: self.settings.heartbeat_interval.as_millis() as u64,
            started_at: self.started_at,
            revision,
            workloads,
            parked,
            sampled_at_ms: Some(self.clock.elapsed().as_millis() as u64),
        }
    }

    async fn respond<T: Serialize>(&self, reply: async_nats::Subject, body: &Reply<T>) {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        if let Err(e) = self.client.publish(reply, bytes.into()).await {
            tracing::warn!("cannot send a host API reply: {e}");
        }
    }

    async fn handle(self: Arc<Self>, message: async_nats::Message) {
        let Some(reply) = message.reply.clone() else {
            tracing::warn!(subject = %message.subject, "host API request without a reply subject ignored");
            return;
        };
        let prefix = format!("runtime.host.{}.", self.settings.host_id);
        let operation = message.subject.as_str().strip_prefix(&prefix).unwrap_or("");
        match operation {
            "heartbeat" => self.respond(reply, &Reply::Ok(self.heartbeat())).await,
            "metrics" => {
                let text = self.host.metrics().encode();
                self.respond(reply, &Reply::Ok(text)).await
            }
            "workload.start" => {
                let (workload, result) =
                    match parse::<WorkloadStartRequest>(operation, &message.payload) {
                        Ok(request) => (request.workload_id.clone(), self.start(request).await),
                        Err(e) => ("?".to_string(), Err(CommandError::Failed(e))),
                    };
                // The controller records the failure with the resource; the
                // host's own log says it too, where its operator looks.
                let answer = match result {
                    Ok(started) => Reply::Ok(started),
                    Err(CommandError::Failed(error)) => {
                        tracing::warn!(workload = %workload, "cannot start the workload (the controller tries again): {error}");
                        Reply::Error(error)
                    }
                    Err(CommandError::Rejected(error)) => {
                        tracing::warn!(workload = %workload, "workload rejected, it cannot run as given: {error}");
                        Reply::Rejected(error)
                    }
                };
                self.respond(reply, &answer).await;
            }
            "workload.stop" => {
                let (workload, result) =
                    match parse::<WorkloadStopRequest>(operation, &message.payload) {
                        Ok(request) => (request.workload_id.clone(), self.stop(request).await),
                        Err(e) => ("?".to_string(), Err(CommandError::Failed(e))),
                    };
                let answer = match result {
                    Ok(stopped) => Reply::Ok(stopped),
                    Err(CommandError::Failed(error)) => {
                        tracing::warn!(workload = %workload, "cannot stop the workload: {error}");
                        Reply::Error(error)
                    }
                    Err(CommandError::Rejected(error)) => {
                        tracing::info!(workload = %workload, "not parked, it keeps running: {error}");
                        Reply::Rejected(error)
                    }
                };
                self.respond(reply, &answer).await;
            }
            "workload.status" => {
                let result = parse::<WorkloadStatusRequest>(operation, &message.payload)
                    .and_then(|request| self.status(&request.workload_id));
                self.respond(reply, &Reply::from(result)).await;
            }
            other => {
                let error: Reply<()> =
                    Reply::Error(format!("unknown host API operation `{other}`"));
                self.respond(reply, &error).await;
            }
        }
    }

    fn placed(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, u32)>> {
        self.placed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    async fn start(&self, request: WorkloadStartRequest) -> Result<HostWorkload, CommandError> {
        // The same checks `nimbus apply` makes: a peer on the bus is not
        // trusted to have made them (`a/b` + `c` must not become `a` + `b/c`).
        nimbus_host::workload::validate_workload(&request.workload, "spec")
            .map_err(|e| CommandError::Rejected(format!("invalid workload: {e}")))?;
        let id = request.workload.id();
        if request.workload_id != id {
            return Err(CommandError::Rejected(format!(
                "workloadId `{}` does not match the workload's `{id}`",
                request.workload_id
            )));
        }
        if request.replicas == 0 {
            return Err(CommandError::Rejected(
                "replicas must be at least 1; stop the workload instead".into(),
            ));
        }
        let lock = self.lock_for(&id);
        let _serial = lock.lock().await;
        let hash = api::spec_hash(&request.workload);
        let same = self
            .placed()
            .get(&id)
            .is_some_and(|(placed, _)| *placed == hash);
        let need = self.reservation(&request.workload);
        // Reserved before the start, so two starts at once cannot both take
        // the last room; given back if the start fails.
        let before = if same {
            None
        } else {
            Some(self.reserve(&id, need).map_err(CommandError::Failed)?)
        };
        let status = match self.host.workload_status(&id) {
            Some(status) if same => Ok(status),
            Some(_) => self.host.replace_workload(request.workload).await,
            None => self.host.start_workload(request.workload).await,
        }
        .map_err(|e: WorkloadError| {
            if let Some(before) = before {
                let mut reserved = self.reserved_map();
                match before {
                    Some(previous) => reserved.insert(id.clone(), previous),
                    None => reserved.remove(&id),
                };
            }
            if e.is_permanent() {
                CommandError::Rejected(e.to_string())
            } else {
                CommandError::Failed(e.to_string())
            }
        })?;
        self.placed()
            .insert(id.clone(), (hash.clone(), request.replicas));
        self.reserved_map().insert(id.clone(), need);
        self.parked_map().remove(&id);
        self.woken_set().remove(&id);
        let host_revision = self.revision.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::info!(workload = %id, replicas = request.replicas, "workload placed");
        Ok(HostWorkload {
            workload_status: status,
            spec_hash: hash,
            replicas: request.replicas,
            host_revision,
        })
    }

    /// Stops or parks a workload. A park the host refuses for as long as
    /// the spec lasts ([`WorkloadError::NotParkable`]) is rejected, so the
    /// controller keeps the workload running instead of asking again.
    async fn stop(
        &self,
        request: WorkloadStopRequest,
    ) -> Result<WorkloadStopResponse, CommandError> {
        let id = request.workload_id;
        let lock = self.lock_for(&id);
        let _serial = lock.lock().await;
        let hash = self.placed().get(&id).map(|(hash, _)| hash.clone());
        self.woken_set().remove(&id);
        if request.park {
            let parked = match self.host.park_workload(&id).await {
                Ok(_) => true,
                Err(WorkloadError::NotFound(_)) => false,
                Err(e @ WorkloadError::NotParkable { .. }) => {
                    return Err(CommandError::Rejected(e.to_string()));
                }
                Err(e) => return Err(CommandError::Failed(e.to_string())),
            };
            {
                // One step for a heartbeat (which takes them in this order):
                // never both placed and parked, nor neither.
                let mut placed = self.placed();
                placed.remove(&id);
                if let (true, Some(hash)) = (parked, hash) {
                    self.parked_map().insert(id.clone(), hash);
                }
            }
            self.reserved_map().remove(&id);
            let host_revision = self.revision.fetch_add(1, Ordering::SeqCst) + 1;
            return Ok(WorkloadStopResponse {
                workload_id: id,
                was_running: parked,
                host_revision,
            });
        }
        let was_running = match self.host.stop_workload(&id).await {
            Ok(_) => true,
            Err(WorkloadError::NotFound(_)) => false,
            Err(e) => return Err(CommandError::Failed(e.to_string())),
        };
        // Reported parked until its routes are gone.
        self.parked_map().remove(&id);
        self.placed().remove(&id);
        self.reserved_map().remove(&id);
        let host_revision = self.revision.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(WorkloadStopResponse {
            workload_id: id,
            was_running,
            host_revision,
        })
    }

    /// What `workload` reserves: the memory limit of each of its
    /// components (and its service), as this host resolves it, and the
    /// CPU limit of each that has one.
    fn reservation(&self, workload: &nimbus_model::Workload) -> Reservation {
        let components = workload.spec.components.iter().map(|c| &c.local_resources);
        let service = workload.spec.service.iter().map(|s| &s.local_resources);
        components
            .chain(service)
            .map(|resources| {
                let limits = self.host.effective_limits(resources);
                Reservation {
                    memory_bytes: limits.memory_bytes as u64,
                    cpu_millis: limits.cpu.map_or(0, |cpu| u64::from(cpu.millicores())),
                }
            })
            .fold(Reservation::default(), Reservation::plus)
    }

    /// Takes `need` for workload `id` (in place of what it held) if the
    /// budgets have room beside the other workloads; returns what `id`
    /// held before, or why it does not fit.
    fn reserve(&self, id: &str, need: Reservation) -> Result<Option<Reservation>, String> {
        let mut reserved = self.reserved_map();
        let others = reserved
            .iter()
            .filter(|(held_by, _)| held_by.as_str() != id)
            .map(|(_, held)| *held)
            .fold(Reservation::default(), Reservation::plus);
        let free_memory = self
            .settings
            .memory_budget
            .map(|budget| budget.saturating_sub(others.memory_bytes));
        let free_cpu = self
            .settings
            .cpu_budget_millis
            .map(|budget| budget.saturating_sub(others.cpu_millis));
        if let Some(short) = need.shortfall(free_memory, free_cpu) {
            // What is free of each budget that falls short.
            let mut free = Vec::new();
            if let (Some(memory), Some(budget)) = (free_memory, self.settings.memory_budget)
                && memory < need.memory_bytes
            {
                free.push(format!("{} MiB of its {} MiB", memory >> 20, budget >> 20));
            }
            if let (Some(cpu), Some(budget)) = (free_cpu, self.settings.cpu_budget_millis)
                && cpu < need.cpu_millis
            {
                free.push(format!("{cpu}m of its {budget}m CPU"));
            }
            return Err(format!(
                "not enough room on this host: the workload reserves {short}; {} free",
                free.join(" and ")
            ));
        }
        Ok(reserved.insert(id.to_string(), need))
    }

    fn woken_set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.woken.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn parked_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reserved_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Reservation>> {
        self.reserved.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the workloads here reserve.
    fn reserved_total(&self) -> Reservation {
        self.reserved_map()
            .values()
            .copied()
            .fold(Reservation::default(), Reservation::plus)
    }

    fn status(&self, id: &str) -> Result<HostWorkload, String> {
        let status = self
            .host
            .workload_status(id)
            .ok_or_else(|| format!("workload `{id}` is not running"))?;
        let (spec_hash, replicas) = self.placed().get(id).cloned().unwrap_or_default();
        Ok(HostWorkload {
            workload_status: status,
            spec_hash,
            replicas,
            host_revision: self.revision.load(Ordering::SeqCst),
        })
    }
}

/// Why a start or a stop failed: for now on this host, or for good.
enum CommandError {
    /// Try again later, or on another host.
    Failed(String),
    /// The workload cannot run as given, anywhere; or, for a park, this
    /// host will not park it while its spec lasts.
    Rejected(String),
}

fn parse<T: serde::de::DeserializeOwned>(operation: &str, payload: &[u8]) -> Result<T, String> {
    serde_json::from_slice(payload).map_err(|e| format!("malformed {operation} request: {e}"))
}
