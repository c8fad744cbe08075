//! The reconciling controller.
//!
//! Every controller watches desired state (the bucket's `desired.` keys)
//! and every host's heartbeat, so a standby always knows what runs where.
//! Only the lease holder ([`lease`]) acts: it compares desired replicas with
//! what live hosts report, sends `workload.start` / `workload.stop`
//! requests to close the gap ([`placement`]), and writes each resource's
//! status back to the bucket. A host that misses `missed_heartbeats`
//! intervals is considered gone and its replicas are placed elsewhere.
//!
//! Every action is idempotent: a host answers a repeated start with the
//! running workload, a stop of a stopped workload succeeds, and placement
//! counts what hosts report rather than what it remembers sending, so a
//! restarted or newly elected controller neither duplicates nor loses
//! replicas. A new leader acts only after it has seen a full heartbeat
//! interval and has read desired state completely.

mod lease;
mod placement;

use crate::api::{
    self, HostHeartbeat, HostWorkload, Reply, WorkloadStartRequest, WorkloadStopRequest,
    WorkloadStopResponse,
};
use crate::store::{self, Placement, Resource, ResourceStatus, Store};
use async_nats::jetstream::kv;
use futures::StreamExt as _;
use placement::{Action, HostView, Want};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Controller settings.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    /// This controller's id (in the lease and logs).
    pub id: String,
    /// Heartbeat intervals a host may miss before its replicas move.
    pub missed_heartbeats: u32,
    /// How long a lease lasts without renewal.
    pub lease_ttl: Duration,
    /// The hosts' heartbeat interval: a new leader watches this long
    /// (times 1.5) before acting, so it knows every host's workloads.
    pub heartbeat_interval: Duration,
    /// Host requests in flight at once.
    pub max_in_flight: usize,
    /// How long a host may take to start a workload (pull and compile).
    pub command_timeout: Duration,
    /// How long to wait before retrying a start that failed on a host.
    pub retry_after: Duration,
    /// How often desired state is re-read whole (changes arrive at once
    /// through a watch; this repairs anything a watch may have missed).
    pub resync_interval: Duration,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        Self {
            id: format!("controller-{}", nuid::next().to_string().to_lowercase()),
            missed_heartbeats: 3,
            lease_ttl: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(5),
            max_in_flight: 256,
            command_timeout: Duration::from_secs(120),
            retry_after: Duration::from_secs(5),
            resync_interval: Duration::from_secs(30),
        }
    }
}

/// Counters a controller keeps (read by benches and tests).
#[derive(Debug, Default)]
pub struct ControllerStats {
    /// Whether it leads now.
    pub leader: AtomicBool,
    /// Heartbeats received.
    pub heartbeats: AtomicU64,
    /// Host requests sent.
    pub commands: AtomicU64,
    /// Host requests that failed.
    pub command_failures: AtomicU64,
    /// Status records written.
    pub status_writes: AtomicU64,
    /// Reconcile passes run.
    pub reconciles: AtomicU64,
    /// Hosts given up after missed heartbeats.
    pub hosts_lost: AtomicU64,
}

/// Why a controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The heartbeat subscription failed.
    #[error("cannot subscribe to host heartbeats: {0}")]
    Subscribe(String),
}

/// A controller; [`run`](Self::run) it.
pub struct Controller {
    client: async_nats::Client,
    store: Store,
    settings: ControllerSettings,
    stats: Arc<ControllerStats>,
}

struct ObservedHost {
    instance: String,
    labels: BTreeMap<String, String>,
    interval: Duration,
    last_seen: Instant,
    revision: u64,
    workloads: BTreeMap<String, (String, u32)>,
}

struct Desired {
    resource: Resource,
    spec_hash: String,
}

impl Desired {
    fn new(resource: Resource) -> Self {
        let spec_hash = api::spec_hash(&resource.workload);
        Self {
            resource,
            spec_hash,
        }
    }
}

enum Event {
    Put(String, Box<Resource>),
    Delete(String),
    Resync(BTreeMap<String, Resource>),
    Done {
        host: String,
        id: String,
        outcome: Outcome,
    },
}

enum Outcome {
    Started(HostWorkload),
    Stopped(WorkloadStopResponse),
    Failed(String),
    /// The workload cannot run anywhere as specified: why, and the spec
    /// (by hash) that was rejected.
    Rejected {
        error: String,
        spec_hash: String,
    },
}

struct State {
    hosts: BTreeMap<String, ObservedHost>,
    desired: BTreeMap<String, Desired>,
    desired_ready: bool,
    pending: HashSet<(String, String)>,
    failures: HashMap<(String, String), (Instant, String)>,
    /// Workloads a host rejected for good, by id: the spec hash rejected and
    /// why. Not placed again until their spec changes.
    rejected: HashMap<String, (String, String)>,
    statuses: HashMap<String, ResourceStatus>,
}

impl Controller {
    /// A controller over `store`, talking to hosts through `client`.
    pub fn new(client: async_nats::Client, store: Store, settings: ControllerSettings) -> Self {
        Self {
            client,
            store,
            settings,
            stats: Arc::default(),
        }
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<ControllerStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown` resolves, then gives up the lease.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ControllerError> {
        let mut heartbeats = self
            .client
            .subscribe(api::OPERATOR_HEARTBEATS)
            .await
            .map_err(|e| ControllerError::Subscribe(e.to_string()))?;
        let (events, mut inbox) = mpsc::unbounded_channel();
        let follower = tokio::spawn(follow_desired(
            self.store.clone(),
            events.clone(),
            self.settings.resync_interval,
        ));
        let mut lease = lease::Lease::new(
            self.store.clone(),
            self.settings.id.clone(),
            self.settings.lease_ttl,
        );
        let permits = Arc::new(tokio::sync::Semaphore::new(self.settings.max_in_flight));
        let mut state = State {
            hosts: BTreeMap::new(),
            desired: BTreeMap::new(),
            desired_ready: false,
            pending: HashSet::new(),
            failures: HashMap::new(),
            rejected: HashMap::new(),
            statuses: HashMap::new(),
        };
        let observing_since = Instant::now();
        let warm_up = self.settings.heartbeat_interval.mul_f32(1.5);
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut lease_checked = Instant::now() - self.settings.lease_ttl;
        let mut last_pass = Instant::now();
        let mut dirty = true;
        let mut last_tick = Instant::now();
        // Since when this controller's own NATS connection has been up: a
        // controller that cannot hear heartbeats must not judge hosts dead,
        // and after reconnecting it waits a heartbeat window for them.
        let window = self.settings.heartbeat_interval * self.settings.missed_heartbeats.max(1);
        // At start the warm-up above is the wait.
        let mut connected_since = observing_since
            .checked_sub(window)
            .or(Some(observing_since));
        tracing::info!(controller = %self.settings.id, "controller started; standing by");
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(message) = heartbeats.next() => {
                    self.stats.heartbeats.fetch_add(1, Ordering::Relaxed);
                    dirty |= state.observe(&message.payload);
                }
                Some(event) = inbox.recv() => {
                    dirty |= state.apply(event, self.settings.retry_after, &self.stats);
                }
                _ = ticker.tick() => {
                    // A tick that comes late means this loop was starved:
                    // heartbeats may be waiting in the queue, so judge no
                    // host dead until they are read.
                    let starved = last_tick.elapsed() > Duration::from_millis(500);
                    last_tick = Instant::now();
                    let connected = self.client.connection_state()
                        == async_nats::connection::State::Connected;
                    match (connected, connected_since) {
                        (false, Some(_)) => {
                            tracing::warn!("lost the NATS connection; no host is judged until it is back");
                            connected_since = None;
                        }
                        (true, None) => {
                            tracing::info!(window_ms = window.as_millis() as u64, "NATS connection back; hearing heartbeats for a window before acting");
                            connected_since = Some(Instant::now());
                        }
                        _ => {}
                    }
                    let hearing = connected_since.is_some_and(|since| since.elapsed() >= window);
                    if lease_checked.elapsed() >= self.settings.lease_ttl / 4 {
                        lease_checked = Instant::now();
                        let was = lease.is_leader();
                        let leads = lease.tick().await;
                        self.stats.leader.store(leads, Ordering::Relaxed);
                        dirty |= leads && !was;
                    }
                    let lost = if starved || !hearing {
                        0
                    } else {
                        state.expire_hosts(self.settings.missed_heartbeats)
                    };
                    self.stats.hosts_lost.fetch_add(lost as u64, Ordering::Relaxed);
                    dirty |= lost > 0;
                    let ready = lease.is_leader()
                        && hearing
                        && state.desired_ready
                        && observing_since.elapsed() >= warm_up;
                    if ready && (dirty || last_pass.elapsed() >= Duration::from_secs(1)) {
                        dirty = false;
                        last_pass = Instant::now();
                        self.stats.reconciles.fetch_add(1, Ordering::Relaxed);
                        self.reconcile(&mut state, &events, &permits);
                    }
                }
            }
        }
        follower.abort();
        // Bounded: with NATS away the lease simply expires on its own.
        if tokio::time::timeout(Duration::from_secs(5), lease.release())
            .await
            .is_err()
        {
            tracing::warn!("could not release the lease (NATS away); it expires on its own");
        }
        self.stats.leader.store(false, Ordering::Relaxed);
        Ok(())
    }

    fn reconcile(
        &self,
        state: &mut State,
        events: &mpsc::UnboundedSender<Event>,
        permits: &Arc<tokio::sync::Semaphore>,
    ) {
        let wants: Vec<Want<'_>> = state
            .desired
            .iter()
            .map(|(id, d)| Want {
                id,
                spec_hash: &d.spec_hash,
                replicas: d.resource.replicas,
                selector: &d.resource.workload.spec.host_selector,
            })
            .collect();
        let views: BTreeMap<String, HostView<'_>> = state
            .hosts
            .iter()
            .map(|(id, h)| {
                let view = HostView {
                    labels: &h.labels,
                    workloads: &h.workloads,
                };
                (id.clone(), view)
            })
            .collect();
        let plan = placement::plan(&wants, &views);
        let now = Instant::now();
        state.failures.retain(|_, (until, _)| *until > now);
        let mut commands = Vec::new();
        for action in plan.actions {
            let key = match &action {
                Action::Start { host, id, .. } | Action::Stop { host, id } => {
                    (host.clone(), id.clone())
                }
            };
            if state.pending.contains(&key) || state.failures.contains_key(&key) {
                continue;
            }
            if matches!(action, Action::Start { .. }) && state.is_rejected(&key.1) {
                continue;
            }
            let command = match action {
                Action::Start { host, id, replicas } => {
                    let Some(desired) = state.desired.get(&id) else {
                        continue;
                    };
                    Command::Start {
                        host,
                        request: Box::new(WorkloadStartRequest {
                            workload_id: id,
                            workload: desired.resource.workload.clone(),
                            replicas,
                        }),
                    }
                }
                Action::Stop { host, id } => Command::Stop {
                    host,
                    request: WorkloadStopRequest { workload_id: id },
                },
            };
            // Assume it done, so the rest of this pass and the next ones
            // place around it (the reply or a heartbeat corrects this).
            if let Some(host) = state.hosts.get_mut(&key.0) {
                match &command {
                    Command::Start { request, .. } => {
                        let hash = state.desired[&key.1].spec_hash.clone();
                        host.workloads
                            .insert(key.1.clone(), (hash, request.replicas));
                    }
                    Command::Stop { .. } => {
                        host.workloads.remove(&key.1);
                    }
                }
            }
            state.pending.insert(key);
            commands.push(command);
        }
        for command in commands {
            self.stats.commands.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(send(
                self.client.clone(),
                command,
                self.settings.command_timeout,
                permits.clone(),
                events.clone(),
            ));
        }
        self.write_statuses(state, &plan.targets, permits);
    }

    fn write_statuses(
        &self,
        state: &mut State,
        targets: &HashMap<String, BTreeMap<String, u32>>,
        permits: &Arc<tokio::sync::Semaphore>,
    ) {
        state
            .statuses
            .retain(|id, _| state.desired.contains_key(id));
        for (id, desired) in &state.desired {
            let mut placements = Vec::new();
            let mut ready = 0;
            for (host_id, host) in &state.hosts {
                // Requests in flight are assumed for placement, not reported.
                if state.pending.contains(&(host_id.clone(), id.clone())) {
                    continue;
                }
                if let Some((hash, replicas)) = host.workloads.get(id) {
                    let current = *hash == desired.spec_hash;
                    if current {
                        ready += replicas;
                    }
                    placements.push(Placement {
                        host: host_id.clone(),
                        replicas: *replicas,
                        current,
                    });
                }
            }
            let wanted = desired.resource.replicas;
            let rejected = state
                .rejected
                .get(id)
                .filter(|(hash, _)| *hash == desired.spec_hash);
            let message = if let Some((_, error)) = rejected {
                Some(format!("Failed: {error}"))
            } else if ready == wanted {
                None
            } else if targets.get(id).is_none_or(|t| t.is_empty()) && wanted > 0 {
                Some(if desired.resource.workload.spec.host_selector.is_empty() {
                    "no live host".to_string()
                } else {
                    format!(
                        "no live host matches hostSelector {:?}",
                        desired.resource.workload.spec.host_selector
                    )
                })
            } else {
                let failure = state
                    .failures
                    .iter()
                    .find(|((_, failed), _)| failed == id)
                    .map(|((host, _), (_, error))| format!("host {host}: {error}"));
                Some(failure.unwrap_or_else(|| format!("{ready} of {wanted} replicas ready")))
            };
            let status = ResourceStatus {
                observed_generation: desired.resource.generation,
                desired: wanted,
                ready,
                placements,
                message,
            };
            if state.statuses.get(id) == Some(&status) {
                continue;
            }
            state.statuses.insert(id.clone(), status.clone());
            self.stats.status_writes.fetch_add(1, Ordering::Relaxed);
            let (store, id, permits) = (self.store.clone(), id.clone(), permits.clone());
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                if let Err(e) = store.put_status(&id, &status).await {
                    tracing::warn!("cannot write the status of {id}: {e}");
                }
            });
        }
    }
}

impl State {
    /// Whether a host rejected workload `id`'s current spec for good.
    fn is_rejected(&self, id: &str) -> bool {
        match (self.rejected.get(id), self.desired.get(id)) {
            (Some((hash, _)), Some(desired)) => *hash == desired.spec_hash,
            _ => false,
        }
    }

    /// Takes in a heartbeat; returns whether anything placement looks at
    /// changed.
    fn observe(&mut self, payload: &[u8]) -> bool {
        let heartbeat: HostHeartbeat = match serde_json::from_slice(payload) {
            Ok(heartbeat) => heartbeat,
            Err(e) => {
                tracing::warn!("ignoring a malformed heartbeat: {e}");
                return false;
            }
        };
        let workloads: BTreeMap<String, (String, u32)> = heartbeat
            .workloads
            .into_iter()
            .map(|w| (w.id, (w.spec_hash, w.replicas)))
            .collect();
        let interval = Duration::from_millis(heartbeat.interval_ms.max(1));
        match self.hosts.get_mut(&heartbeat.id) {
            Some(host) if host.instance == heartbeat.instance => {
                host.last_seen = Instant::now();
                host.interval = interval;
                let mut changed = host.labels != heartbeat.labels;
                host.labels = heartbeat.labels;
                // A heartbeat taken before a reply we already applied is stale.
                if heartbeat.revision >= host.revision {
                    let mut workloads = workloads;
                    // Requests in flight were assumed done when sent; a
                    // heartbeat taken before the host got them must not
                    // undo that, or placement would pick another host.
                    for (pending_host, id) in &self.pending {
                        if *pending_host == heartbeat.id {
                            match host.workloads.get(id) {
                                Some(assumed) => workloads.insert(id.clone(), assumed.clone()),
                                None => workloads.remove(id),
                            };
                        }
                    }
                    if host.workloads != workloads {
                        host.workloads = workloads;
                        changed = true;
                    }
                }
                host.revision = host.revision.max(heartbeat.revision);
                changed
            }
            _ => {
                tracing::info!(host = %heartbeat.id, labels = ?heartbeat.labels, "host joined");
                self.hosts.insert(
                    heartbeat.id,
                    ObservedHost {
                        instance: heartbeat.instance,
                        labels: heartbeat.labels,
                        interval,
                        last_seen: Instant::now(),
                        revision: heartbeat.revision,
                        workloads,
                    },
                );
                true
            }
        }
    }

    fn expire_hosts(&mut self, missed: u32) -> usize {
        let before = self.hosts.len();
        self.hosts.retain(|id, host| {
            let alive = host.last_seen.elapsed() <= host.interval * missed.max(1);
            if !alive {
                tracing::warn!(host = %id, "host missed {missed} heartbeats; moving its replicas");
            }
            alive
        });
        before - self.hosts.len()
    }

    fn apply(&mut self, event: Event, retry_after: Duration, stats: &ControllerStats) -> bool {
        match event {
            Event::Put(id, resource) => {
                self.desired.insert(id, Desired::new(*resource));
            }
            Event::Delete(id) => {
                self.desired.remove(&id);
                self.rejected.remove(&id);
            }
            Event::Resync(all) => {
                self.desired = all
                    .into_iter()
                    .map(|(id, resource)| (id, Desired::new(resource)))
                    .collect();
                self.desired_ready = true;
            }
            Event::Done { host, id, outcome } => {
                self.pending.remove(&(host.clone(), id.clone()));
                let Some(observed) = self.hosts.get_mut(&host) else {
                    return true;
                };
                match outcome {
                    Outcome::Started(reply) => {
                        observed.revision = observed.revision.max(reply.host_revision);
                        observed
                            .workloads
                            .insert(id, (reply.spec_hash, reply.replicas));
                    }
                    Outcome::Stopped(reply) => {
                        observed.revision = observed.revision.max(reply.host_revision);
                        observed.workloads.remove(&id);
                    }
                    Outcome::Rejected { error, spec_hash } => {
                        observed.workloads.remove(&id);
                        stats.command_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(host = %host, workload = %id, "rejected, not placed again until its spec changes: {error}");
                        // Under the hash that was sent: a spec changed
                        // meanwhile is not the one rejected.
                        self.rejected.insert(id, (spec_hash, error));
                    }
                    Outcome::Failed(error) => {
                        // Unknown what the host runs now; its next
                        // heartbeat says. Until then, assume nothing.
                        observed.workloads.remove(&id);
                        stats.command_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(host = %host, workload = %id, "{error}");
                        self.failures
                            .insert((host, id), (Instant::now() + retry_after, error));
                    }
                }
            }
        }
        true
    }
}

enum Command {
    Start {
        host: String,
        request: Box<WorkloadStartRequest>,
    },
    Stop {
        host: String,
        request: WorkloadStopRequest,
    },
}

async fn send(
    client: async_nats::Client,
    command: Command,
    timeout: Duration,
    permits: Arc<tokio::sync::Semaphore>,
    events: mpsc::UnboundedSender<Event>,
) {
    let _permit = permits.acquire_owned().await;
    let sent_hash = match &command {
        Command::Start { request, .. } => api::spec_hash(&request.workload),
        Command::Stop { .. } => String::new(),
    };
    let (host, id, subject, body) = match &command {
        Command::Start { host, request } => (
            host.clone(),
            request.workload_id.clone(),
            api::start_subject(host),
            serde_json::to_vec(request),
        ),
        Command::Stop { host, request } => (
            host.clone(),
            request.workload_id.clone(),
            api::stop_subject(host),
            serde_json::to_vec(request),
        ),
    };
    let request = async_nats::Request::new()
        .payload(body.unwrap_or_default().into())
        .timeout(Some(timeout));
    let outcome = match client.send_request(subject, request).await {
        Err(e) => Outcome::Failed(format!("no answer: {e}")),
        Ok(reply) => match command {
            Command::Start { .. } => {
                match serde_json::from_slice::<Reply<HostWorkload>>(&reply.payload) {
                    Ok(Reply::Ok(started)) => Outcome::Started(started),
                    Ok(Reply::Error(error)) => Outcome::Failed(error),
                    Ok(Reply::Rejected(error)) => Outcome::Rejected {
                        error,
                        spec_hash: sent_hash,
                    },
                    Err(e) => Outcome::Failed(format!("unreadable reply: {e}")),
                }
            }
            Command::Stop { .. } => {
                match serde_json::from_slice::<Reply<WorkloadStopResponse>>(&reply.payload) {
                    Ok(Reply::Ok(stopped)) => Outcome::Stopped(stopped),
                    Ok(Reply::Error(error) | Reply::Rejected(error)) => Outcome::Failed(error),
                    Err(e) => Outcome::Failed(format!("unreadable reply: {e}")),
                }
            }
        },
    };
    let _ = events.send(Event::Done { host, id, outcome });
}

/// Follows desired state: reads it whole, then streams its changes through
/// a watch (which first replays current values, closing any gap since the
/// read). Every `resync` interval, or after a watch error such as a NATS
/// restart, it starts over. One task does both, so events stay in order.
async fn follow_desired(store: Store, events: mpsc::UnboundedSender<Event>, resync: Duration) {
    loop {
        match store.resources().await {
            Ok(all) => {
                if events.send(Event::Resync(all)).is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!("cannot read desired state: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        let watch = tokio::time::timeout(
            store.timeout(),
            store.kv().watch_with_history(store::desired_filter()),
        )
        .await;
        let Ok(Ok(mut watch)) = watch else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let deadline = tokio::time::sleep(resync);
        tokio::pin!(deadline);
        loop {
            let entry = tokio::select! {
                () = &mut deadline => break,
                entry = watch.next() => entry,
            };
            let Some(Ok(entry)) = entry else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                break;
            };
            let Some(id) = store::desired_id(&entry.key) else {
                continue;
            };
            let event = match entry.operation {
                kv::Operation::Put => match store::decode::<Resource>(&entry.key, &entry.value) {
                    Ok(resource) => Event::Put(id.to_string(), Box::new(resource)),
                    Err(e) => {
                        tracing::warn!("{e}");
                        continue;
                    }
                },
                kv::Operation::Delete | kv::Operation::Purge => Event::Delete(id.to_string()),
            };
            if events.send(event).is_err() {
                return;
            }
        }
    }
}
