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
//!
//! The leader also keeps each resource's recent [events](crate::events):
//! what it placed where, what hosts failed or rejected, when nothing
//! matches a `hostSelector`, when a host holding replicas is lost. They
//! are written with the status; a new leader reads them back before it
//! acts, so they carry on across a change of leader.
//!
//! A spec a host rejected for good (the workload itself cannot run) makes
//! its resource `Failed`; the rejection (spec hash, host, reason) is written
//! with the status too and read back the same way, so neither this leader
//! nor a later one places that spec again. A changed spec is placed as
//! usual.

mod autoscale;
mod lease;
mod placement;

use crate::api::{
    self, HostHeartbeat, HostWorkload, Reply, WorkloadStartRequest, WorkloadStopRequest,
    WorkloadStopResponse,
};
use crate::events::{self, EventType};
use crate::store::{
    self, Phase, Placement, Rejection, Resource, ResourceStatus, RolloutState, Store,
};
use async_nats::jetstream::kv;
use futures::StreamExt as _;
use placement::{Action, HostView, Want};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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
    /// Memory still free to promise, or `None` without a budget.
    free_memory: Option<u64>,
    /// CPU still free to promise (millicores), or `None` without a budget.
    free_cpu: Option<u64>,
    labels: BTreeMap<String, String>,
    interval: Duration,
    last_seen: Instant,
    revision: u64,
    workloads: BTreeMap<String, (String, u32)>,
    /// Workloads parked here: id → spec hash.
    parked: BTreeMap<String, String>,
    /// Workloads a request started here after they were parked.
    woken: BTreeSet<String>,
    /// Whether its heartbeats list what it holds parked (older hosts do
    /// not: nothing is concluded from their silence).
    reports_parked: bool,
}

impl ObservedHost {
    /// Takes `need` off what is free to promise (a start sent here).
    fn take(&mut self, need: api::Reservation) {
        if let Some(memory) = &mut self.free_memory {
            *memory = memory.saturating_sub(need.memory_bytes);
        }
        if let Some(cpu) = &mut self.free_cpu {
            *cpu = cpu.saturating_sub(need.cpu_millis);
        }
    }

    /// Whether its last heartbeat came in time: within one interval and a
    /// half (a late heartbeat is not a missed one).
    fn is_ready(&self) -> bool {
        self.last_seen.elapsed() <= self.interval.mul_f32(1.5)
    }
}

/// What live hosts run of one resource, as its status counts it.
#[derive(Default)]
struct Observed {
    placements: Vec<Placement>,
    /// Replicas on the current spec, on ready hosts.
    ready: u32,
    /// Replicas on the current spec, on any live host.
    updated: u32,
    /// Replicas serving on ready hosts, on any spec.
    available: u32,
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
    /// The statuses stored when this controller took the lease (as its
    /// `term`th leader), for the events they hold.
    Seed {
        term: u64,
        stored: BTreeMap<String, ResourceStatus>,
    },
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
    /// A host refused to park the workload, for as long as its spec lasts
    /// (why): it keeps running there.
    ParkRefused(String),
    /// The workload cannot run anywhere as specified: why, and the spec
    /// (by hash) that was rejected.
    Rejected {
        error: String,
        spec_hash: String,
    },
}

/// What a request in flight asks of a host, for the event its reply makes.
#[derive(Debug, Clone, Copy)]
enum Change {
    /// Start the workload where it did not run.
    Place,
    /// Change how many replicas the host holds.
    Resize { from: u32 },
    /// Run a new spec (this generation).
    Update { generation: u64 },
    /// Stop it.
    Stop,
    /// Park it (scaled to zero).
    Park,
}

/// A request a host failed, tried again after `until`.
struct Failure {
    until: Instant,
    error: String,
    /// It was an update of what the host ran (a rolling update's step).
    update: bool,
}

struct State {
    hosts: BTreeMap<String, ObservedHost>,
    desired: BTreeMap<String, Desired>,
    desired_ready: bool,
    /// Requests in flight, by (host, workload id).
    pending: HashMap<(String, String), Change>,
    failures: HashMap<(String, String), Failure>,
    /// Workloads a host rejected for good, by id: the spec hash rejected,
    /// the host and why. Not placed again until their spec changes. Written
    /// with the status and read back from it when a term begins, so a
    /// restarted or newly elected leader does not place them again either.
    rejected: HashMap<String, Rejection>,
    /// Workloads a host refused to park (it would miss what a plugin
    /// delivers, see `nimbus_host::WorkloadError::NotParkable`), by id: the
    /// spec hash of the copy refused. While that spec is the desired one,
    /// the autoscaler keeps at least one replica and surplus copies are
    /// stopped, not parked. Kept in memory only: a new leader learns it
    /// again from the next refusal.
    unparkable: HashMap<String, String>,
    /// Deployments to wake to one replica because a host refused to park
    /// their current spec (the autoscaler takes each once).
    wake_refused: BTreeSet<String>,
    /// Parks refused, by (host, workload id): not asked of that host again
    /// before this moment, whatever placement wants.
    park_backoff: HashMap<(String, String), Instant>,
    statuses: HashMap<String, ResourceStatus>,
    /// Recent events, by resource id, oldest first.
    events: HashMap<String, Vec<events::Event>>,
    /// How many times this controller has taken the lease.
    term: u64,
    /// Whether the events stored before this term have been read back.
    events_seeded: bool,
    /// Hosts that missed their last heartbeat (not yet given up).
    quiet: BTreeSet<String>,
    /// Resources the last plan could not place in full for want of room
    /// on matching hosts, with what each needs.
    no_room: HashMap<String, api::Reservation>,
    /// The rates hosts' counters give, for autoscaling.
    rates: autoscale::Rates,
    /// Each autoscaled resource's recent recommendations.
    scaling: HashMap<String, autoscale::History>,
    /// Wakes (host, workload id) already acted on: a host reports one
    /// until it is next told to start or stop the workload, and one report
    /// is one wake.
    wakes_seen: HashSet<(String, String)>,
    /// When this controller began to lead (or was made): a deployment is
    /// judged parked nowhere only once every host has had time to say.
    term_began: Instant,
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
        let mut state = State::new();
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
                    dirty |= state.observe(&message.subject, &message.payload);
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
                        // A lease round with NATS away can take its whole
                        // request timeout; a shutdown does not wait for it.
                        let leads = tokio::select! {
                            leads = lease.tick() => leads,
                            () = &mut shutdown => break,
                        };
                        self.stats.leader.store(leads, Ordering::Relaxed);
                        if leads && !was {
                            // Carry on the events the last leader wrote;
                            // act once they are read.
                            let term = state.begin_term();
                            tokio::spawn(seed_events(self.store.clone(), events.clone(), term));
                        }
                        dirty |= leads && !was;
                    }
                    let lost = if starved || !hearing {
                        0
                    } else {
                        state.expire_hosts(self.settings.missed_heartbeats)
                    };
                    self.stats.hosts_lost.fetch_add(lost as u64, Ordering::Relaxed);
                    dirty |= lost > 0;
                    // Judged only while this controller hears heartbeats.
                    if hearing && !starved {
                        dirty |= state.readiness_changed();
                    }
                    let ready = lease.is_leader()
                        && hearing
                        && !starved
                        && state.desired_ready
                        && state.events_seeded
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
        // Autoscaling first, so this pass places what the load asks for;
        // the new count is written back as `nimbus scale` writes it.
        for (id, kind, replicas) in state.autoscale(Instant::now()) {
            let (store, permits) = (self.store.clone(), permits.clone());
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                if let Err(e) = store.scale(&id, kind, replicas).await {
                    tracing::warn!("cannot write the autoscaled replicas of {id}: {e}");
                }
            });
        }
        let (commands, targets) = state.commands();
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
        self.write_statuses(state, &targets, permits);
    }

    fn write_statuses(
        &self,
        state: &mut State,
        targets: &HashMap<String, BTreeMap<String, u32>>,
        permits: &Arc<tokio::sync::Semaphore>,
    ) {
        for (id, status) in state.changed_statuses(targets) {
            self.stats.status_writes.fetch_add(1, Ordering::Relaxed);
            let (store, permits) = (self.store.clone(), permits.clone());
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
    fn new() -> Self {
        Self {
            hosts: BTreeMap::new(),
            desired: BTreeMap::new(),
            desired_ready: false,
            pending: HashMap::new(),
            failures: HashMap::new(),
            rejected: HashMap::new(),
            unparkable: HashMap::new(),
            wake_refused: BTreeSet::new(),
            park_backoff: HashMap::new(),
            statuses: HashMap::new(),
            events: HashMap::new(),
            term: 0,
            events_seeded: false,
            quiet: BTreeSet::new(),
            rates: autoscale::Rates::default(),
            scaling: HashMap::new(),
            no_room: HashMap::new(),
            wakes_seen: HashSet::new(),
            term_began: Instant::now(),
        }
    }

    /// This controller took the lease: the events it kept as a standby are
    /// dropped (the leader recorded its own), and so are the rejections it
    /// knew of (the store says which still hold); those stored are to be
    /// read back ([`Event::Seed`] with the term returned).
    fn begin_term(&mut self) -> u64 {
        self.term += 1;
        self.term_began = Instant::now();
        self.events.clear();
        // A scale-down waits a whole window from now.
        self.scaling.clear();
        self.rejected.clear();
        self.events_seeded = false;
        self.term
    }

    /// Records `event` for resource `id`, if it is desired.
    fn record(&mut self, id: &str, event: events::Event) {
        if self.desired.contains_key(id) {
            events::record(self.events.entry(id.to_string()).or_default(), event);
        }
    }

    /// Each desired resource's status where it differs from the one last
    /// written (which it then becomes). A resource that no live host can
    /// take gets a `FailedScheduling` event when it becomes so.
    ///
    /// Replicas count as ready only on a host whose last heartbeat came in
    /// time ([`ObservedHost::is_ready`]); a host that missed one is shown
    /// not ready at once, long before its replicas are moved.
    fn changed_statuses(
        &mut self,
        targets: &HashMap<String, BTreeMap<String, u32>>,
    ) -> Vec<(String, ResourceStatus)> {
        self.statuses.retain(|id, _| self.desired.contains_key(id));
        self.events.retain(|id, _| self.desired.contains_key(id));
        self.rejected.retain(|id, _| self.desired.contains_key(id));
        self.unparkable
            .retain(|id, _| self.desired.contains_key(id));
        self.wake_refused.retain(|id| self.desired.contains_key(id));
        let mut changed = Vec::new();
        for (id, desired) in &self.desired {
            let seen = self.observed(id, &desired.spec_hash);
            let wanted = desired.resource.replicas;
            let revision = desired.resource.revision;
            // Only a rejection of the current spec counts: a spec changed
            // since is placed as usual.
            let rejected = self
                .rejected
                .get(id)
                .filter(|r| r.spec_hash == desired.spec_hash);
            let failing = self.failures.keys().any(|(_, failed)| failed == id);
            // A rollout stops on a new template failing to start where the
            // old one runs, not on a lost request or a full new host.
            let update_failed = self
                .failures
                .iter()
                .any(|((_, failed), failure)| failed == id && failure.update);
            let no_room = self.no_room.get(id).copied();
            let unplaceable =
                (targets.get(id).is_none_or(|t| t.is_empty()) && wanted > 0 && !failing)
                    || no_room.is_some();
            let failure = seen.placements.iter().find_map(|p| {
                let key = (p.host.clone(), id.clone());
                let failure = self.failures.get(&key)?;
                Some((p.host.as_str(), failure.error.as_str()))
            });
            let not_ready: Vec<&Placement> = seen
                .placements
                .iter()
                .filter(|p| !p.host_ready && p.replicas > 0)
                .collect();
            let previous_serving = seen
                .placements
                .iter()
                .filter(|p| !p.current)
                .fold(0u32, |sum, p| sum.saturating_add(p.replicas));
            let rollout = if rejected.is_some() || (update_failed && previous_serving > 0) {
                RolloutState::Stopped
            } else if previous_serving > 0 || seen.updated < wanted {
                RolloutState::Progressing
            } else {
                RolloutState::Complete
            };
            let phase = if rejected.is_some() {
                Phase::Failed
            } else if seen.ready == wanted {
                Phase::Ready
            } else {
                Phase::Pending
            };
            let message = if let Some(rejection) = rejected {
                Some(if previous_serving > 0 {
                    format!(
                        "{}; the rollout stopped and the previous template keeps serving {}",
                        rejection.reason,
                        replicas_text(previous_serving)
                    )
                } else {
                    rejection.reason.clone()
                })
            } else if wanted == 0
                && desired
                    .resource
                    .autoscaling
                    .is_some_and(|a| a.scales_to_zero())
            {
                Some(
                    "scaled to zero while idle; a request to a host that ran it starts it again"
                        .to_string(),
                )
            } else if seen.ready == wanted && previous_serving == 0 {
                None
            } else if let Some(need) = no_room {
                Some(format!(
                    "no live host has the {} it reserves free; {} of {wanted} replicas ready",
                    need.describe(),
                    seen.ready
                ))
            } else if unplaceable {
                let selector = &desired.resource.workload.spec.host_selector;
                Some(if selector.is_empty() {
                    "no live host".to_string()
                } else {
                    format!(
                        "no live host matches hostSelector {}",
                        selector_text(selector)
                    )
                })
            } else if let Some((host, error)) = failure {
                Some(if previous_serving > 0 {
                    format!(
                        "rollout of revision {revision} stopped: host {host}: {error}; the previous template keeps serving {}",
                        replicas_text(previous_serving)
                    )
                } else {
                    format!("host {host}: {error}")
                })
            } else if !not_ready.is_empty() {
                let hosts: Vec<&str> = not_ready.iter().map(|p| p.host.as_str()).collect();
                let replicas = not_ready
                    .iter()
                    .fold(0u32, |sum, p| sum.saturating_add(p.replicas));
                Some(format!(
                    "{} missed a heartbeat; {} not counted ready",
                    hosts_text(&hosts),
                    replicas_text(replicas)
                ))
            } else if previous_serving > 0 {
                Some(format!(
                    "rolling out revision {revision}: {} of {wanted} updated",
                    seen.updated
                ))
            } else {
                Some(format!("{} of {wanted} replicas ready", seen.ready))
            };
            let before = self.statuses.get(id).and_then(|s| s.message.as_ref());
            if let Some(message) = &message
                && unplaceable
                && rejected.is_none()
                && before != Some(message)
            {
                let event = events::Event::new(EventType::Warning, "FailedScheduling", message);
                events::record(self.events.entry(id.clone()).or_default(), event);
            }
            let status = ResourceStatus {
                observed_generation: desired.resource.generation,
                phase,
                desired: wanted,
                ready: seen.ready,
                updated: seen.updated,
                available: seen.available,
                revision,
                rollout,
                placements: seen.placements,
                message,
                rejected: rejected.cloned(),
                events: self.events.get(id).cloned().unwrap_or_default(),
            };
            if self.statuses.get(id) == Some(&status) {
                continue;
            }
            self.statuses.insert(id.clone(), status.clone());
            changed.push((id.clone(), status));
        }
        changed
    }

    /// What live hosts run of resource `id` (whose current spec is
    /// `spec_hash`): each host's share, and the counts of the status.
    fn observed(&self, id: &str, spec_hash: &str) -> Observed {
        let mut seen = Observed::default();
        for (host_id, host) in &self.hosts {
            let host_ready = host.is_ready();
            let key = (host_id.clone(), id.to_string());
            let failed = self.failures.get(&key).map(|f| f.error.clone());
            let Some((hash, replicas)) = host.workloads.get(id) else {
                if let Some(error) = failed {
                    // A start that failed where nothing of it runs.
                    seen.placements.push(Placement {
                        host: host_id.clone(),
                        replicas: 0,
                        current: false,
                        host_ready,
                        message: Some(error),
                    });
                }
                continue;
            };
            match self.pending.get(&key) {
                // In flight: assumed for placement, not reported; but an
                // update or a resize is served by what ran before.
                Some(Change::Update { .. } | Change::Resize { .. }) => {
                    if host_ready {
                        seen.available = seen.available.saturating_add(*replicas);
                    }
                    continue;
                }
                Some(_) => continue,
                None => {}
            }
            let current = hash == spec_hash;
            if current {
                seen.updated = seen.updated.saturating_add(*replicas);
                if host_ready {
                    seen.ready = seen.ready.saturating_add(*replicas);
                }
            }
            if host_ready {
                seen.available = seen.available.saturating_add(*replicas);
            }
            let message = failed.or_else(|| {
                (!host_ready).then(|| "host missed its last heartbeat (NotReady)".to_string())
            });
            seen.placements.push(Placement {
                host: host_id.clone(),
                replicas: *replicas,
                current,
                host_ready,
                message,
            });
        }
        seen
    }

    /// Hosts whose readiness changed since the last call (for the tick:
    /// a host going quiet is shown at once); a `NotReady` event for each
    /// resource with replicas on a host that went quiet.
    fn readiness_changed(&mut self) -> bool {
        let quiet: BTreeSet<String> = self
            .hosts
            .iter()
            .filter(|(_, host)| !host.is_ready())
            .map(|(id, _)| id.clone())
            .collect();
        if quiet == self.quiet {
            return false;
        }
        let newly: Vec<String> = quiet.difference(&self.quiet).cloned().collect();
        for host_id in newly {
            tracing::warn!(host = %host_id, "host missed a heartbeat; its replicas are not counted ready");
            let held: Vec<(String, u32)> = self.hosts[&host_id]
                .workloads
                .iter()
                .map(|(id, (_, replicas))| (id.clone(), *replicas))
                .collect();
            for (workload, replicas) in held {
                let message = format!(
                    "host {host_id} missed a heartbeat; its {} not counted ready",
                    replicas_text(replicas)
                );
                let event = events::Event::new(EventType::Warning, "HostNotReady", &message);
                self.record(&workload, event.on_host(&host_id));
            }
        }
        self.quiet = quiet;
        true
    }

    /// The requests this pass sends: placement's actions, less those
    /// already in flight, those waiting out a failed start, and starts of a
    /// spec a host rejected for good. Each is assumed done (the reply or a
    /// heartbeat corrects this). Returned with placement's targets, for the
    /// statuses.
    fn commands(&mut self) -> (Vec<Command>, HashMap<String, BTreeMap<String, u32>>) {
        let now = Instant::now();
        self.failures.retain(|_, failure| failure.until > now);
        self.park_backoff.retain(|_, until| *until > now);
        let plan = self.plan();
        self.no_room = plan.no_room;
        let mut commands = Vec::new();
        for action in plan.actions {
            let key = match &action {
                Action::Start { host, id, .. } | Action::Stop { host, id, .. } => {
                    (host.clone(), id.clone())
                }
            };
            if self.pending.contains_key(&key) || self.failures.contains_key(&key) {
                continue;
            }
            if matches!(action, Action::Stop { park: true, .. })
                && self.park_backoff.contains_key(&key)
            {
                continue;
            }
            if matches!(action, Action::Start { .. }) && self.is_rejected(&key.1) {
                continue;
            }
            let command = match action {
                Action::Start { host, id, replicas } => {
                    let Some(desired) = self.desired.get(&id) else {
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
                Action::Stop { host, id, park } => Command::Stop {
                    host,
                    request: WorkloadStopRequest {
                        workload_id: id,
                        park,
                    },
                },
            };
            let change = match &command {
                Command::Start { .. } => {
                    let desired = &self.desired[&key.1];
                    let before = self.hosts.get(&key.0).and_then(|h| h.workloads.get(&key.1));
                    match before {
                        None => Change::Place,
                        Some((hash, from)) if *hash == desired.spec_hash => {
                            Change::Resize { from: *from }
                        }
                        Some(_) => Change::Update {
                            generation: desired.resource.generation,
                        },
                    }
                }
                Command::Stop { request, .. } if request.park => Change::Park,
                Command::Stop { .. } => Change::Stop,
            };
            // Assume it done, so the rest of this pass and the next ones
            // place around it (the reply or a heartbeat corrects this).
            if let Some(host) = self.hosts.get_mut(&key.0) {
                host.woken.remove(&key.1);
                match &command {
                    Command::Start { request, .. } => {
                        let desired = &self.desired[&key.1];
                        if !host.workloads.contains_key(&key.1) {
                            // What it reserves is taken until the host's
                            // heartbeat says so itself.
                            let need = declared_reservation(&desired.resource.workload);
                            host.take(need);
                        }
                        host.parked.remove(&key.1);
                        host.workloads
                            .insert(key.1.clone(), (desired.spec_hash.clone(), request.replicas));
                    }
                    Command::Stop { request, .. } => {
                        let ran = host.workloads.remove(&key.1);
                        match ran {
                            Some((hash, _)) if request.park => {
                                host.parked.insert(key.1.clone(), hash);
                            }
                            _ => {
                                host.parked.remove(&key.1);
                            }
                        }
                    }
                }
            }
            self.pending.insert(key, change);
            commands.push(command);
        }
        (commands, plan.targets)
    }

    /// Placement over what is desired and what live hosts run.
    fn plan(&self) -> placement::Plan {
        let replacing = self.replacing();
        let wants: Vec<Want<'_>> = self
            .desired
            .iter()
            .map(|(id, d)| Want {
                id,
                spec_hash: &d.spec_hash,
                replicas: d.resource.replicas,
                selector: &d.resource.workload.spec.host_selector,
                in_flight: d.resource.policy.in_flight(d.resource.replicas),
                replacing: replacing.get(id.as_str()).copied().unwrap_or(0),
                need: declared_reservation(&d.resource.workload),
                avoid: self
                    .failures
                    .keys()
                    .filter(|(_, failed)| failed == id)
                    .map(|(host, _)| host.as_str())
                    .collect(),
                park_when_idle: d.resource.autoscaling.is_some_and(|a| a.scales_to_zero())
                    && !refused_to_park(&self.unparkable, id, &d.spec_hash),
            })
            .collect();
        let views: BTreeMap<String, HostView<'_>> = self
            .hosts
            .iter()
            .map(|(id, h)| {
                let view = HostView {
                    labels: &h.labels,
                    workloads: &h.workloads,
                    parked: &h.parked,
                    ready: h.is_ready(),
                    free_memory: h.free_memory,
                    free_cpu: h.free_cpu,
                };
                (id.clone(), view)
            })
            .collect();
        placement::plan(&wants, &views)
    }

    /// Replicas in the middle of their replacement, by resource id: on
    /// hosts with an update in flight, and on hosts where a start failed
    /// and waits to be tried again (so a version that fails to start holds
    /// a rolling update back: the hosts not yet moved keep the old one).
    fn replacing(&self) -> HashMap<&str, u32> {
        let held = |host: &str, id: &str| {
            self.hosts
                .get(host)
                .and_then(|h| h.workloads.get(id))
                .map_or(1, |(_, replicas)| (*replicas).max(1))
        };
        let mut replacing: HashMap<&str, u32> = HashMap::new();
        let updating = self
            .pending
            .iter()
            .filter(|(_, change)| matches!(change, Change::Update { .. }))
            .map(|(key, _)| key);
        let failed_updates = self
            .failures
            .iter()
            .filter(|(_, failure)| failure.update)
            .map(|(key, _)| key);
        for (host, id) in updating.chain(failed_updates) {
            *replacing.entry(id.as_str()).or_default() += held(host, id);
        }
        replacing
    }

    /// Autoscaled resources whose load asks for other replicas now: their
    /// desired count changed here, an `Autoscaled` event recorded, and
    /// returned (id, kind, replicas) to be written back.
    fn autoscale(&mut self, now: Instant) -> Vec<(String, store::Kind, u32)> {
        let mut changes = Vec::new();
        let mut scaled = Vec::new();
        for (id, desired) in &mut self.desired {
            let Some(policy) = desired.resource.autoscaling else {
                continue;
            };
            // A host refused to park this spec: it keeps a replica.
            let refused = refused_to_park(&self.unparkable, id, &desired.spec_hash);
            let wake_refused = self.wake_refused.remove(id);
            let running: Vec<(&str, Duration)> = self
                .hosts
                .iter()
                .filter(|(_, host)| host.workloads.contains_key(id))
                .map(|(host_id, host)| (host_id.as_str(), host.interval))
                .collect();
            if policy.scales_to_zero() {
                // Wakes not yet acted on: a request started it on a host
                // where it was parked. Such a copy serves where requests
                // come, so it counts as a replica (at zero or above).
                let woken: Vec<String> = self
                    .hosts
                    .iter()
                    .filter(|(host_id, host)| {
                        let key = ((*host_id).clone(), id.clone());
                        host.woken.contains(id)
                            && host.workloads.contains_key(id)
                            && !self.pending.contains_key(&key)
                            && !self.wakes_seen.contains(&key)
                    })
                    .map(|(host_id, _)| host_id.clone())
                    .collect();
                for host in &woken {
                    self.wakes_seen.insert((host.clone(), id.clone()));
                }
                let from = desired.resource.replicas;
                let serving = self
                    .hosts
                    .values()
                    .filter_map(|host| host.workloads.get(id))
                    .fold(0u32, |sum, (_, replicas)| sum.saturating_add(*replicas));
                // Parked nowhere (its hosts restarted or left, or it was
                // applied at zero): judged only once every host has had
                // time to say what it holds, and only from hosts that say.
                let longest = self.hosts.values().map(|h| h.interval).max();
                let settled = now.duration_since(self.term_began)
                    >= longest.unwrap_or(Duration::from_secs(1)) * 3
                    && self.hosts.values().all(|host| host.reports_parked);
                let held = self.hosts.values().any(|host| {
                    host.workloads.contains_key(id)
                        || host.parked.get(id) == Some(&desired.spec_hash)
                });
                let wake = if let Some(host) = woken.first() {
                    let to = policy.clamp(serving.max(from).max(1));
                    Some((format!("woken by a request on host {host}"), to))
                } else if from == 0 && wake_refused {
                    let reason = "a host refused to park it (see its NotParkable event)";
                    Some((reason.to_string(), policy.min_replicas.max(1)))
                } else if from == 0 && settled && !held {
                    let reason = "parked on no live host, so nothing would wake it";
                    Some((reason.to_string(), policy.min_replicas.max(1)))
                } else {
                    None
                };
                if let Some((reason, to)) = wake
                    && to != from
                {
                    desired.resource.replicas = to;
                    // Its load is counted afresh from here, and nothing
                    // is removed for a whole window.
                    self.scaling
                        .insert(id.clone(), autoscale::History::new(now));
                    let message = format!("{reason}: scaled from {from} to {to} replicas");
                    tracing::info!(workload = %id, "{message}");
                    scaled.push((id.clone(), message));
                    changes.push((id.clone(), desired.resource.kind, to));
                    continue;
                }
            }
            if desired.resource.replicas == 0 {
                // Scaled to zero (by the autoscaler, or by hand): only a
                // wake above changes that.
                continue;
            }
            // A rate older than three heartbeats is not the load now.
            let fresh = running.iter().map(|(_, i)| *i).max().unwrap_or_default() * 3;
            let hosts = running.iter().map(|(host, _)| *host);
            let Some(load) = self.rates.load(id, hosts, fresh, now) else {
                continue;
            };
            let history = self
                .scaling
                .entry(id.clone())
                .or_insert_with(|| autoscale::History::new(now));
            let from = desired.resource.replicas;
            let Some(to) = autoscale::decide(&policy, from, load, history, now) else {
                continue;
            };
            // A host refused to park this spec: one replica stays.
            let to = if to == 0 && refused { 1 } else { to };
            if to == from {
                continue;
            }
            desired.resource.replicas = to;
            let message = if to == 0 {
                format!(
                    "scaled from {from} to zero: no request for {} s",
                    policy.scale_to_zero_after_seconds
                )
            } else {
                let figure = |value: Option<f64>, unit: &str, digits: usize| {
                    value.map_or_else(
                        || format!("{unit} not counted"),
                        |v| format!("{v:.digits$} {unit}"),
                    )
                };
                format!(
                    "scaled from {from} to {to} replicas: {}, {} over all (target {} per replica)",
                    figure(load.0, "req/s", 1),
                    figure(load.1, "CPU cores", 2),
                    policy.targets_text()
                )
            };
            tracing::info!(workload = %id, "{message}");
            scaled.push((id.clone(), message));
            changes.push((id.clone(), desired.resource.kind, to));
        }
        self.scaling.retain(|id, _| {
            self.desired
                .get(id)
                .is_some_and(|d| d.resource.autoscaling.is_some())
        });
        for (id, message) in scaled {
            let event = events::Event::new(EventType::Normal, "Autoscaled", &message);
            self.record(&id, event);
        }
        changes
    }

    /// Whether a host rejected workload `id`'s current spec for good.
    fn is_rejected(&self, id: &str) -> bool {
        match (self.rejected.get(id), self.desired.get(id)) {
            (Some(rejection), Some(desired)) => rejection.spec_hash == desired.spec_hash,
            _ => false,
        }
    }

    /// Takes in a heartbeat; returns whether anything placement looks at
    /// changed.
    fn observe(&mut self, subject: &str, payload: &[u8]) -> bool {
        let heartbeat: HostHeartbeat = match serde_json::from_slice(payload) {
            Ok(heartbeat) => heartbeat,
            Err(e) => {
                tracing::warn!("ignoring a malformed heartbeat: {e}");
                return false;
            }
        };
        // A host speaks only for itself: with NATS permissions scoped per
        // host subject, a peer cannot pose as another host.
        if subject != api::operator_heartbeat_subject(&heartbeat.id) {
            tracing::warn!(
                subject,
                claimed = %heartbeat.id,
                "ignoring a heartbeat sent on another host's subject"
            );
            return false;
        }
        let now = Instant::now();
        let interval = Duration::from_millis(heartbeat.interval_ms.max(1));
        for w in &heartbeat.workloads {
            let reading = autoscale::Reading {
                requests: w.requests,
                cpu_millis: w.cpu_millis,
                host_ms: heartbeat.sampled_at_ms,
            };
            let source = (heartbeat.id.as_str(), heartbeat.instance.as_str());
            self.rates.observe(source, &w.id, reading, now, interval);
        }
        let woken: BTreeSet<String> = heartbeat
            .workloads
            .iter()
            .filter(|w| w.woken)
            .map(|w| w.id.clone())
            .collect();
        let workloads: BTreeMap<String, (String, u32)> = heartbeat
            .workloads
            .into_iter()
            .map(|w| (w.id, (w.spec_hash, w.replicas)))
            .collect();
        let parked = heartbeat.parked;
        self.rates
            .retain_host(&heartbeat.id, |id| workloads.contains_key(id));
        match self.hosts.get_mut(&heartbeat.id) {
            Some(host) if host.instance == heartbeat.instance => {
                host.last_seen = Instant::now();
                host.interval = interval;
                host.free_memory = heartbeat.capacity.memory_free_bytes();
                host.free_cpu = heartbeat.capacity.cpu_free_millis();
                // Starts in flight here may not be counted by the host yet.
                for ((pending_host, id), change) in &self.pending {
                    if *pending_host == heartbeat.id
                        && matches!(change, Change::Place)
                        && let Some(desired) = self.desired.get(id)
                    {
                        host.take(declared_reservation(&desired.resource.workload));
                    }
                }
                let mut changed = host.labels != heartbeat.labels;
                host.labels = heartbeat.labels;
                // A heartbeat taken before a reply we already applied is stale.
                if heartbeat.revision >= host.revision {
                    let (mut workloads, mut parked, mut woken) = (workloads, parked, woken);
                    // Requests in flight were assumed done when sent; a
                    // heartbeat taken before the host got them must not
                    // undo that, or placement would pick another host.
                    for (pending_host, id) in self.pending.keys() {
                        if *pending_host == heartbeat.id {
                            match host.workloads.get(id) {
                                Some(assumed) => workloads.insert(id.clone(), assumed.clone()),
                                None => workloads.remove(id),
                            };
                            match host.parked.get(id) {
                                Some(assumed) => parked.insert(id.clone(), assumed.clone()),
                                None => parked.remove(id),
                            };
                            woken.remove(id);
                        }
                    }
                    if host.workloads != workloads || host.parked != parked || host.woken != woken {
                        host.workloads = workloads;
                        host.parked = parked;
                        host.woken = woken;
                        changed = true;
                    }
                    // A wake the host no longer reports is done with.
                    self.wakes_seen
                        .retain(|(h, id)| *h != heartbeat.id || host.woken.contains(id));
                }
                host.reports_parked = heartbeat.sampled_at_ms.is_some();
                host.revision = host.revision.max(heartbeat.revision);
                changed
            }
            _ => {
                tracing::info!(host = %heartbeat.id, labels = ?heartbeat.labels, "host joined");
                // A new process: its wakes are new.
                self.wakes_seen.retain(|(h, _)| *h != heartbeat.id);
                self.hosts.insert(
                    heartbeat.id,
                    ObservedHost {
                        free_memory: heartbeat.capacity.memory_free_bytes(),
                        free_cpu: heartbeat.capacity.cpu_free_millis(),
                        instance: heartbeat.instance,
                        labels: heartbeat.labels,
                        interval,
                        last_seen: Instant::now(),
                        revision: heartbeat.revision,
                        workloads,
                        parked,
                        woken,
                        reports_parked: heartbeat.sampled_at_ms.is_some(),
                    },
                );
                true
            }
        }
    }

    fn expire_hosts(&mut self, missed: u32) -> usize {
        let lost: Vec<String> = self
            .hosts
            .iter()
            .filter(|(_, host)| host.last_seen.elapsed() > host.interval * missed.max(1))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &lost {
            tracing::warn!(host = %id, "host missed {missed} heartbeats; moving its replicas");
            let Some(host) = self.hosts.remove(id) else {
                continue;
            };
            self.rates.retain_host(id, |_| false);
            self.wakes_seen.retain(|(h, _)| h != id);
            for (workload, (_, replicas)) in host.workloads {
                let message = format!(
                    "host {id} missed {missed} heartbeats; moving its {} elsewhere",
                    replicas_text(replicas)
                );
                let event = events::Event::new(EventType::Warning, "HostLost", &message);
                self.record(&workload, event.on_host(id));
            }
        }
        lost.len()
    }

    fn apply(&mut self, event: Event, retry_after: Duration, stats: &ControllerStats) -> bool {
        match event {
            Event::Put(id, resource) => {
                self.desired.insert(id, Desired::new(*resource));
            }
            Event::Delete(id) => {
                self.desired.remove(&id);
                self.rejected.remove(&id);
                self.events.remove(&id);
            }
            Event::Resync(all) => {
                self.desired = all
                    .into_iter()
                    .map(|(id, resource)| (id, Desired::new(resource)))
                    .collect();
                self.desired_ready = true;
            }
            Event::Seed { term, stored } => {
                // A seed from an earlier term is stale: a newer one follows.
                if term != self.term {
                    return false;
                }
                for (id, status) in stored {
                    // Events recorded since this term began come after.
                    let since = self.events.remove(&id).unwrap_or_default();
                    let mut list = status.events.clone();
                    for event in since {
                        events::record(&mut list, event);
                    }
                    self.events.insert(id.clone(), list);
                    // A spec a host rejected for good stays rejected across
                    // leaders (unless a reply this term said so already).
                    if let Some(rejection) = &status.rejected {
                        self.rejected
                            .entry(id.clone())
                            .or_insert_with(|| rejection.clone());
                    }
                    // What is stored is what was last written: a condition
                    // that still holds is not an event again, and a status
                    // that did not change is not written again.
                    self.statuses.entry(id).or_insert(status);
                }
                self.events_seeded = true;
            }
            Event::Done { host, id, outcome } => {
                let change = self.pending.remove(&(host.clone(), id.clone()));
                if let Some(event) = outcome_event(&host, change, &outcome) {
                    self.record(&id, event);
                }
                if let Outcome::Rejected { error, spec_hash } = &outcome {
                    stats.command_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(host = %host, workload = %id, "rejected, not placed again until its spec changes: {error}");
                    // About the spec, not the host: kept even if the host
                    // is gone since, but not for a resource deleted since.
                    // Under the hash that was sent: a spec changed
                    // meanwhile is not the one rejected.
                    if self.desired.contains_key(&id) {
                        let rejection = Rejection {
                            spec_hash: spec_hash.clone(),
                            host: host.clone(),
                            reason: error.clone(),
                        };
                        self.rejected.insert(id.clone(), rejection);
                    }
                }
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
                        if !(reply.was_running && matches!(change, Some(Change::Park))) {
                            observed.parked.remove(&id);
                        }
                    }
                    Outcome::Rejected { .. } => {
                        observed.workloads.remove(&id);
                    }
                    Outcome::ParkRefused(error) => {
                        tracing::warn!(host = %host, workload = %id, "the host refused to park it, and it runs on: {error}");
                        let until = nimbus_model::time::deadline(Instant::now(), retry_after);
                        self.park_backoff.insert((host, id.clone()), until);
                        // It runs on where it ran (assumed parked while the
                        // request was in flight), as the spec it ran; the
                        // host's next heartbeat says how many replicas.
                        if let Some(hash) = observed.parked.remove(&id) {
                            if self.desired.get(&id).is_some_and(|d| d.spec_hash == hash) {
                                self.wake_refused.insert(id.clone());
                            }
                            self.unparkable.insert(id.clone(), hash.clone());
                            observed.workloads.entry(id).or_insert((hash, 1));
                        }
                    }
                    Outcome::Failed(error) => {
                        // Unknown what the host runs now; its next
                        // heartbeat says. Until then, assume nothing.
                        observed.workloads.remove(&id);
                        stats.command_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(host = %host, workload = %id, "{error}");
                        let failure = Failure {
                            until: nimbus_model::time::deadline(Instant::now(), retry_after),
                            error,
                            update: matches!(change, Some(Change::Update { .. })),
                        };
                        self.failures.insert((host, id), failure);
                    }
                }
            }
        }
        true
    }
}

/// Whether a host refused to park the copy of `id` whose spec hash is
/// `spec_hash` (`unparkable` as `State` keeps it): that spec then keeps a
/// replica, and its surplus copies are stopped rather than parked.
fn refused_to_park(unparkable: &HashMap<String, String>, id: &str, spec_hash: &str) -> bool {
    unparkable
        .get(id)
        .is_some_and(|refused| refused == spec_hash)
}

/// `gpu=yes,zone=a`.
fn selector_text(selector: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

/// What a workload's spec declares it needs: the `memoryLimitMb` and the
/// `cpuLimit` of each component and its service. Placement reserves it on
/// a host with a budget. (A host also counts its defaults for what
/// declares none, and refuses what does not fit.)
fn declared_reservation(workload: &nimbus_model::Workload) -> api::Reservation {
    let components = workload.spec.components.iter().map(|c| &c.local_resources);
    let service = workload.spec.service.iter().map(|s| &s.local_resources);
    components
        .chain(service)
        .map(|resources| api::Reservation {
            memory_bytes: resources
                .memory_limit_mb
                .and_then(|mb| u64::try_from(mb).ok())
                .map_or(0, |mb| mb.saturating_mul(1 << 20)),
            cpu_millis: resources
                .cpu_limit
                .map_or(0, |cpu| u64::from(cpu.millicores())),
        })
        .fold(api::Reservation::default(), api::Reservation::plus)
}

/// `host h1`, `hosts h1, h2`.
fn hosts_text(hosts: &[&str]) -> String {
    match hosts {
        [one] => format!("host {one}"),
        many => format!("hosts {}", many.join(", ")),
    }
}

/// `1 replica`, `3 replicas`.
fn replicas_text(replicas: u32) -> String {
    match replicas {
        1 => "1 replica".to_string(),
        n => format!("{n} replicas"),
    }
}

/// The event a host's reply makes: what the request in flight (`change`)
/// did on `host`, or how it failed. (A failed start is tried again; the
/// event's count says how often it failed.)
fn outcome_event(host: &str, change: Option<Change>, outcome: &Outcome) -> Option<events::Event> {
    let (event_type, reason, message) = match outcome {
        Outcome::Started(reply) => {
            let replicas = replicas_text(reply.replicas);
            match change {
                Some(Change::Resize { from }) => (
                    EventType::Normal,
                    "Scaled",
                    format!("host {host} now holds {replicas} (was {from})"),
                ),
                Some(Change::Update { generation }) => (
                    EventType::Normal,
                    "Updated",
                    format!("host {host} runs generation {generation} ({replicas})"),
                ),
                Some(Change::Stop | Change::Park) => return None,
                Some(Change::Place) | None => (
                    EventType::Normal,
                    "Placed",
                    format!("placed {replicas} on host {host}"),
                ),
            }
        }
        Outcome::Stopped(reply) if matches!(change, Some(Change::Park)) => {
            if !reply.was_running {
                return None;
            }
            (
                EventType::Normal,
                "Parked",
                format!(
                    "scaled to zero: parked on host {host}, whose routes to it stay; its next request there starts it"
                ),
            )
        }
        Outcome::Stopped(_) => (
            EventType::Normal,
            "Stopped",
            format!("removed from host {host}"),
        ),
        Outcome::Failed(error) if matches!(change, Some(Change::Stop | Change::Park)) => (
            EventType::Warning,
            "FailedStop",
            format!("host {host} failed to stop: {error}"),
        ),
        // The error last: a long one is cut, not what comes before it.
        Outcome::Failed(error) => (
            EventType::Warning,
            "FailedStart",
            format!("host {host} failed to start: {error}"),
        ),
        Outcome::ParkRefused(error) => (
            EventType::Warning,
            "NotParkable",
            format!("host {host} keeps it running instead of parking it: {error}"),
        ),
        Outcome::Rejected { error, .. } => (
            EventType::Warning,
            "Rejected",
            format!("host {host} rejected it, not placed again until its spec changes: {error}"),
        ),
    };
    Some(events::Event::new(event_type, reason, &message).on_host(host))
}

/// Reads the stored statuses for the events and rejections they hold, and
/// hands them to the main loop as the seed of leader term `term` (none if
/// the read fails: the events then start anew, and a rejected spec is tried
/// once more and rejected again, rather than hold placement up).
async fn seed_events(store: Store, events: mpsc::UnboundedSender<Event>, term: u64) {
    let stored = match store.statuses().await {
        Ok(stored) => stored,
        Err(e) => {
            tracing::warn!("cannot read the stored statuses; their events start anew: {e}");
            BTreeMap::new()
        }
    };
    let _ = events.send(Event::Seed { term, stored });
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
            Command::Stop { request, .. } => {
                match serde_json::from_slice::<Reply<WorkloadStopResponse>>(&reply.payload) {
                    Ok(Reply::Ok(stopped)) => Outcome::Stopped(stopped),
                    Ok(Reply::Rejected(error)) if request.park => Outcome::ParkRefused(error),
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

#[cfg(test)]
mod tests {
    use super::*;
    use nimbus_model::{Workload, WorkloadState, WorkloadStatus};

    const RETRY: Duration = Duration::from_secs(5);

    fn resource(name: &str, replicas: u32, selector: &[(&str, &str)]) -> Resource {
        let mut workload = Workload::single_http_component("shop", name, "/a.wasm", "a.test");
        workload.spec.host_selector = selector
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Resource {
            kind: store::Kind::WorkloadDeployment,
            generation: 1,
            replicas,
            workload,
            manifest: serde_json::Value::Null,
            policy: nimbus_model::rollout::DeployPolicy::Recreate,
            autoscaling: None,
            revision: 1,
            history: Vec::new(),
        }
    }

    /// A state that desires `resources` and sees hosts `h0` and `h1`.
    fn state(resources: Vec<Resource>) -> State {
        let mut state = State::new();
        let all = resources.into_iter().map(|r| (r.id(), r)).collect();
        state.apply(Event::Resync(all), RETRY, &ControllerStats::default());
        for id in ["h0", "h1"] {
            let heartbeat = HostHeartbeat {
                id: id.into(),
                instance: format!("{id}-1"),
                hostname: id.into(),
                labels: [("hostgroup".to_string(), "default".to_string())].into(),
                version: "test".into(),
                http_address: None,
                capacity: api::Capacity::default(),
                workload_count: 0,
                component_count: 0,
                replica_count: 0,
                interval_ms: 1000,
                started_at: 0,
                revision: 0,
                workloads: Vec::new(),
                parked: BTreeMap::new(),
                sampled_at_ms: Some(0),
            };
            let subject = api::operator_heartbeat_subject(id);
            // On another host's subject it is not taken.
            assert!(!state.observe(
                &api::operator_heartbeat_subject("someone-else"),
                &serde_json::to_vec(&heartbeat).unwrap()
            ));
            assert!(state.observe(&subject, &serde_json::to_vec(&heartbeat).unwrap()));
        }
        state
    }

    fn done(state: &mut State, host: &str, change: Change, outcome: Outcome) {
        let id = "shop/web".to_string();
        state.pending.insert((host.into(), id.clone()), change);
        let event = Event::Done {
            host: host.into(),
            id,
            outcome,
        };
        state.apply(event, RETRY, &ControllerStats::default());
    }

    fn started(replicas: u32) -> Outcome {
        Outcome::Started(HostWorkload {
            workload_status: WorkloadStatus {
                id: "shop/web".into(),
                state: WorkloadState::Running,
                components: Vec::new(),
                hosts: Vec::new(),
                started_at: 0,
                service: None,
            },
            spec_hash: "sha256:x".into(),
            replicas,
            host_revision: 1,
        })
    }

    /// The starts among `commands`: (host, spec hash sent).
    fn starts(commands: &[Command]) -> Vec<(String, String)> {
        commands
            .iter()
            .filter_map(|command| match command {
                Command::Start { host, request } => {
                    Some((host.clone(), api::spec_hash(&request.workload)))
                }
                Command::Stop { .. } => None,
            })
            .collect()
    }

    /// `status` as a new controller reads it back from the bucket.
    fn through_the_store(status: &ResourceStatus) -> ResourceStatus {
        store::decode("status.shop/web", &store::encode(status)).unwrap()
    }

    fn shown(events: &[events::Event]) -> Vec<(EventType, &str, &str, u32)> {
        events
            .iter()
            .map(|e| (e.event_type, e.reason.as_str(), e.message.as_str(), e.count))
            .collect()
    }

    #[test]
    fn a_resource_no_host_matches_gets_one_warning_saying_why() {
        let mut state = state(vec![resource("web", 2, &[("gpu", "yes")])]);
        let plan = state.plan();
        let changed = state.changed_statuses(&plan.targets);
        assert_eq!(changed.len(), 1);
        let status = &changed[0].1;
        let why = "no live host matches hostSelector gpu=yes";
        assert_eq!(status.message.as_deref(), Some(why));
        assert_eq!(
            shown(&status.events),
            [(EventType::Warning, "FailedScheduling", why, 1)]
        );
        assert_eq!(status.events[0].host, None);
        // The next passes see nothing new: no second event, no write.
        assert!(state.changed_statuses(&plan.targets).is_empty());
    }

    #[test]
    fn replies_become_events_and_repeats_are_counted() {
        let mut state = state(vec![resource("web", 2, &[])]);
        done(&mut state, "h0", Change::Place, started(1));
        done(&mut state, "h0", Change::Resize { from: 1 }, started(2));
        done(
            &mut state,
            "h1",
            Change::Place,
            Outcome::Failed("image not found".into()),
        );
        done(
            &mut state,
            "h1",
            Change::Place,
            Outcome::Failed("image not found".into()),
        );
        done(
            &mut state,
            "h0",
            Change::Update { generation: 2 },
            started(2),
        );
        let failed = "host h1 failed to start: image not found";
        assert_eq!(
            shown(&state.events["shop/web"]),
            [
                (
                    EventType::Normal,
                    "Placed",
                    "placed 1 replica on host h0",
                    1
                ),
                (
                    EventType::Normal,
                    "Scaled",
                    "host h0 now holds 2 replicas (was 1)",
                    1
                ),
                (EventType::Warning, "FailedStart", failed, 2),
                (
                    EventType::Normal,
                    "Updated",
                    "host h0 runs generation 2 (2 replicas)",
                    1
                ),
            ]
        );
        assert_eq!(state.events["shop/web"][2].host.as_deref(), Some("h1"));
        // The status carries them.
        let plan = state.plan();
        let changed = state.changed_statuses(&plan.targets);
        assert_eq!(changed[0].1.events, state.events["shop/web"]);
    }

    #[test]
    fn rejections_lost_hosts_and_deleted_resources() {
        let mut state = state(vec![resource("web", 1, &[])]);
        done(
            &mut state,
            "h0",
            Change::Place,
            Outcome::Rejected {
                error: "not a component".into(),
                spec_hash: "sha256:x".into(),
            },
        );
        assert_eq!(
            shown(&state.events["shop/web"]),
            [(
                EventType::Warning,
                "Rejected",
                "host h0 rejected it, not placed again until its spec changes: not a component",
                1
            )]
        );
        // A host holding replicas goes silent.
        state
            .hosts
            .get_mut("h1")
            .unwrap()
            .workloads
            .insert("shop/web".into(), ("sha256:x".into(), 1));
        state.hosts.get_mut("h1").unwrap().last_seen -= Duration::from_secs(10);
        assert_eq!(state.expire_hosts(3), 1);
        let last = state.events["shop/web"].last().unwrap();
        assert_eq!(
            (last.reason.as_str(), last.message.as_str()),
            (
                "HostLost",
                "host h1 missed 3 heartbeats; moving its 1 replica elsewhere"
            )
        );
        // A deleted resource keeps no events, and a reply about it makes none.
        state.apply(
            Event::Delete("shop/web".into()),
            RETRY,
            &ControllerStats::default(),
        );
        done(
            &mut state,
            "h0",
            Change::Stop,
            Outcome::Failed("gone".into()),
        );
        assert!(state.events.is_empty());
    }

    #[test]
    fn a_new_leader_carries_on_the_stored_events() {
        let mut state = state(vec![resource("web", 1, &[])]);
        let term = state.begin_term();
        assert!(!state.events_seeded);
        done(&mut state, "h0", Change::Place, started(1));
        let mut stored = ResourceStatus {
            observed_generation: 1,
            phase: Phase::Pending,
            desired: 1,
            ready: 0,
            placements: Vec::new(),
            events: vec![events::Event::new(EventType::Warning, "FailedStart", "old")],
            ..ResourceStatus::default()
        };
        // A seed from an earlier term is ignored.
        let stale = Event::Seed {
            term: term - 1,
            stored: [("shop/web".to_string(), stored.clone())].into(),
        };
        state.apply(stale, RETRY, &ControllerStats::default());
        assert!(!state.events_seeded);
        stored.events[0].message = "older".into();
        let seed = Event::Seed {
            term,
            stored: [("shop/web".to_string(), stored)].into(),
        };
        state.apply(seed, RETRY, &ControllerStats::default());
        assert!(state.events_seeded);
        let messages: Vec<_> = state.events["shop/web"]
            .iter()
            .map(|e| e.message.as_str())
            .collect();
        assert_eq!(messages, ["older", "placed 1 replica on host h0"]);
    }

    #[test]
    fn a_new_leader_does_not_repeat_a_condition_the_stored_status_shows() {
        let mut first = state(vec![resource("web", 1, &[("gpu", "yes")])]);
        let plan = first.plan();
        let (_, stored) = first.changed_statuses(&plan.targets).remove(0);
        assert_eq!(stored.events.len(), 1);
        let mut next = state(vec![resource("web", 1, &[("gpu", "yes")])]);
        let term = next.begin_term();
        let seed = Event::Seed {
            term,
            stored: [("shop/web".to_string(), stored)].into(),
        };
        next.apply(seed, RETRY, &ControllerStats::default());
        assert!(next.changed_statuses(&plan.targets).is_empty());
        assert_eq!(next.events["shop/web"].len(), 1);
        assert_eq!(next.events["shop/web"][0].count, 1);
    }

    #[test]
    fn a_rejected_spec_is_failed_and_not_placed_again_by_a_new_leader() {
        let mut first = state(vec![resource("web", 1, &[])]);
        let (commands, _) = first.commands();
        let placed = starts(&commands);
        assert_eq!(placed.len(), 1, "{placed:?}");
        let (host, hash) = placed[0].clone();
        first.apply(
            Event::Done {
                host: host.clone(),
                id: "shop/web".into(),
                outcome: Outcome::Rejected {
                    error: "not a component".into(),
                    spec_hash: hash.clone(),
                },
            },
            RETRY,
            &ControllerStats::default(),
        );
        // This leader does not try it again, on that host or the other.
        let (commands, targets) = first.commands();
        assert!(starts(&commands).is_empty());
        let (_, status) = first.changed_statuses(&targets).remove(0);
        assert_eq!(status.phase, Phase::Failed);
        assert_eq!(status.message.as_deref(), Some("not a component"));
        assert_eq!(
            status.rejected,
            Some(Rejection {
                spec_hash: hash.clone(),
                host: host.clone(),
                reason: "not a component".into(),
            })
        );
        assert_eq!(status.ready, 0);

        // A new controller (restarted, or another one elected) reads the
        // same bucket: it does not place the spec either, and has nothing
        // new to write.
        let mut next = state(vec![resource("web", 1, &[])]);
        let term = next.begin_term();
        let seed = Event::Seed {
            term,
            stored: [("shop/web".to_string(), through_the_store(&status))].into(),
        };
        next.apply(seed, RETRY, &ControllerStats::default());
        for _ in 0..3 {
            let (commands, targets) = next.commands();
            assert!(starts(&commands).is_empty(), "placed again");
            assert!(next.changed_statuses(&targets).is_empty());
        }

        // The spec fixed (another hash): placed again, and no longer Failed.
        let mut fixed = resource("web", 1, &[]);
        fixed.workload.spec.components[0].image = "/b.wasm".into();
        fixed.generation = 2;
        let fixed_hash = api::spec_hash(&fixed.workload);
        assert_ne!(fixed_hash, hash);
        next.apply(
            Event::Put("shop/web".into(), Box::new(fixed)),
            RETRY,
            &ControllerStats::default(),
        );
        let (commands, targets) = next.commands();
        let placed = starts(&commands);
        assert_eq!(placed.len(), 1, "{placed:?}");
        assert_eq!(placed[0].1, fixed_hash);
        let (_, status) = next.changed_statuses(&targets).remove(0);
        assert_eq!(status.phase, Phase::Pending);
        assert_eq!(status.rejected, None);
        assert_eq!(status.observed_generation, 2);
    }

    #[test]
    fn a_stored_rejection_of_an_older_spec_does_not_hold_the_current_one() {
        let mut first = state(vec![resource("web", 1, &[])]);
        let (commands, _) = first.commands();
        let (host, hash) = starts(&commands)[0].clone();
        first.apply(
            Event::Done {
                host,
                id: "shop/web".into(),
                outcome: Outcome::Rejected {
                    error: "too large".into(),
                    spec_hash: hash,
                },
            },
            RETRY,
            &ControllerStats::default(),
        );
        let (_, targets) = first.commands();
        let (_, stored) = first.changed_statuses(&targets).remove(0);
        assert_eq!(stored.phase, Phase::Failed);
        // The spec changed while no controller led: the new leader places it.
        let mut fixed = resource("web", 1, &[]);
        fixed.workload.spec.components[0].image = "/b.wasm".into();
        let mut next = state(vec![fixed]);
        let term = next.begin_term();
        let seed = Event::Seed {
            term,
            stored: [("shop/web".to_string(), through_the_store(&stored))].into(),
        };
        next.apply(seed, RETRY, &ControllerStats::default());
        let (commands, targets) = next.commands();
        assert_eq!(starts(&commands).len(), 1);
        let (_, status) = next.changed_statuses(&targets).remove(0);
        assert_eq!(status.phase, Phase::Pending);
        assert_eq!(status.rejected, None);
    }

    #[test]
    fn a_rejection_arriving_after_a_delete_does_not_hold_a_new_apply() {
        let mut state = state(vec![resource("web", 1, &[])]);
        let (commands, _) = state.commands();
        let (host, hash) = starts(&commands)[0].clone();
        state.apply(
            Event::Delete("shop/web".into()),
            RETRY,
            &ControllerStats::default(),
        );
        state.apply(
            Event::Done {
                host,
                id: "shop/web".into(),
                outcome: Outcome::Rejected {
                    error: "not a component".into(),
                    spec_hash: hash,
                },
            },
            RETRY,
            &ControllerStats::default(),
        );
        state.apply(
            Event::Put("shop/web".into(), Box::new(resource("web", 1, &[]))),
            RETRY,
            &ControllerStats::default(),
        );
        let (commands, _) = state.commands();
        assert_eq!(starts(&commands).len(), 1);
    }

    #[test]
    fn phases_follow_readiness() {
        let mut state = state(vec![resource("web", 2, &[])]);
        let (commands, targets) = state.commands();
        assert_eq!(starts(&commands).len(), 2);
        // Requests in flight are not ready yet.
        let (_, status) = state.changed_statuses(&targets).remove(0);
        assert_eq!(status.phase, Phase::Pending);
        for (host, _) in starts(&commands) {
            state.apply(
                Event::Done {
                    host,
                    id: "shop/web".into(),
                    outcome: started(1),
                },
                RETRY,
                &ControllerStats::default(),
            );
        }
        // `started` reports a hash of its own; make the hosts run the
        // current spec.
        let current = state.desired["shop/web"].spec_hash.clone();
        for host in state.hosts.values_mut() {
            host.workloads
                .insert("shop/web".into(), (current.clone(), 1));
        }
        let (commands, targets) = state.commands();
        assert!(commands.is_empty());
        let (_, status) = state.changed_statuses(&targets).remove(0);
        assert_eq!((status.phase, status.ready), (Phase::Ready, 2));
        assert_eq!(status.message, None);
    }

    /// `shop/web` at 2 replicas, rolled one at a time, running its first
    /// template on h0 and h1; then changed. Returns the state and the new
    /// spec's hash.
    fn mid_rollout() -> (State, String) {
        let mut first = resource("web", 2, &[]);
        first.policy = nimbus_model::rollout::DeployPolicy::default();
        let mut state = state(vec![first.clone()]);
        let old = state.desired["shop/web"].spec_hash.clone();
        for host in state.hosts.values_mut() {
            host.workloads.insert("shop/web".into(), (old.clone(), 1));
        }
        let mut changed = first;
        changed.workload.spec.components[0].image = "/b.wasm".into();
        changed.generation = 2;
        changed.revision = 2;
        let new = api::spec_hash(&changed.workload);
        state.apply(
            Event::Put("shop/web".into(), Box::new(changed)),
            RETRY,
            &ControllerStats::default(),
        );
        (state, new)
    }

    #[test]
    fn a_rolling_update_moves_one_host_and_waits_for_it() {
        let (mut state, new) = mid_rollout();
        let (commands, targets) = state.commands();
        assert_eq!(starts(&commands), [("h0".to_string(), new.clone())]);
        // While h0 updates, h1 does not move; h1 still serves.
        let (commands, _) = state.commands();
        assert!(commands.is_empty());
        let (_, status) = state.changed_statuses(&targets).remove(0);
        assert_eq!(status.rollout, RolloutState::Progressing);
        assert_eq!((status.updated, status.available), (0, 2));
        assert_eq!(
            status.message.as_deref(),
            Some("rolling out revision 2: 0 of 2 updated")
        );
        // h0 answers: it serves the new version; now h1 moves.
        let mut reply = started(1);
        if let Outcome::Started(started) = &mut reply {
            started.spec_hash = new.clone();
            started.host_revision = 5;
        }
        done(&mut state, "h0", Change::Update { generation: 2 }, reply);
        let (commands, targets) = state.commands();
        assert_eq!(starts(&commands), [("h1".to_string(), new.clone())]);
        let (_, status) = state.changed_statuses(&targets).remove(0);
        assert_eq!((status.updated, status.ready), (1, 1));
    }

    #[test]
    fn a_version_that_fails_to_start_stops_the_rollout() {
        let (mut state, new) = mid_rollout();
        let (commands, _) = state.commands();
        assert_eq!(starts(&commands), [("h0".to_string(), new)]);
        done(
            &mut state,
            "h0",
            Change::Update { generation: 2 },
            Outcome::Failed("instantiation failed: trap".into()),
        );
        // The host still runs the old version (its heartbeat says so).
        let old = state.hosts["h1"].workloads["shop/web"].0.clone();
        state
            .hosts
            .get_mut("h0")
            .unwrap()
            .workloads
            .insert("shop/web".into(), (old, 1));
        // Nobody else moves while h0 fails.
        let (commands, targets) = state.commands();
        assert!(starts(&commands).is_empty(), "moved on");
        let (_, status) = state.changed_statuses(&targets).remove(0);
        assert_eq!(status.rollout, RolloutState::Stopped);
        assert_eq!(status.available, 2);
        assert_eq!(
            status.message.as_deref(),
            Some(
                "rollout of revision 2 stopped: host h0: instantiation failed: trap; the previous template keeps serving 2 replicas"
            )
        );
        let h0 = status.placements.iter().find(|p| p.host == "h0").unwrap();
        assert_eq!(h0.message.as_deref(), Some("instantiation failed: trap"));
    }

    #[test]
    fn a_host_that_misses_one_heartbeat_is_not_ready_at_once() {
        let mut state = state(vec![resource("web", 2, &[])]);
        let current = state.desired["shop/web"].spec_hash.clone();
        for host in state.hosts.values_mut() {
            host.workloads
                .insert("shop/web".into(), (current.clone(), 1));
        }
        assert!(!state.readiness_changed());
        let (_, targets) = state.commands();
        let (_, status) = state.changed_statuses(&targets).remove(0);
        assert_eq!((status.phase, status.ready), (Phase::Ready, 2));
        // h1's heartbeat (1 s interval) is 2 s late: one missed.
        state.hosts.get_mut("h1").unwrap().last_seen -= Duration::from_secs(2);
        assert!(state.readiness_changed());
        assert!(!state.readiness_changed(), "said once");
        let (commands, targets) = state.commands();
        assert!(commands.is_empty(), "not moved yet");
        let (_, status) = state.changed_statuses(&targets).remove(0);
        assert_eq!((status.phase, status.ready), (Phase::Pending, 1));
        assert_eq!(
            status.message.as_deref(),
            Some("host h1 missed a heartbeat; 1 replica not counted ready")
        );
        let h1 = status.placements.iter().find(|p| p.host == "h1").unwrap();
        assert!(!h1.host_ready);
        let last = status.events.last().unwrap();
        assert_eq!(
            (last.reason.as_str(), last.host.as_deref()),
            ("HostNotReady", Some("h1"))
        );
        // It answers again: ready again.
        state.hosts.get_mut("h1").unwrap().last_seen = Instant::now();
        assert!(state.readiness_changed());
        let (_, status) = state.changed_statuses(&targets).remove(0);
        assert_eq!((status.phase, status.ready), (Phase::Ready, 2));
    }

    fn scales_to_zero(replicas: u32, min_replicas: u32) -> Resource {
        let mut web = resource("web", replicas, &[]);
        web.autoscaling = Some(nimbus_model::autoscaling::Autoscaling {
            min_replicas,
            max_replicas: 3,
            target_requests_per_second: Some(10.0),
            target_cpu: None,
            scale_down_stabilization_seconds: 10,
            scale_to_zero_after_seconds: 5,
        });
        web
    }

    #[test]
    fn a_deployment_at_zero_wakes_on_a_woken_report_or_when_parked_nowhere() {
        // Applied at zero, parked nowhere: one replica holds its routes,
        // once every host has had three heartbeats to say what it holds.
        let mut state = state(vec![scales_to_zero(0, 0)]);
        assert!(state.autoscale(Instant::now()).is_empty());
        let settled = Instant::now() + Duration::from_secs(4);
        let scaled = state.autoscale(settled);
        assert_eq!(scaled.len(), 1);
        assert_eq!(scaled[0].2, 1);
        let event = state.events["shop/web"].last().unwrap();
        assert_eq!(
            event.message,
            "parked on no live host, so nothing would wake it: scaled from 0 to 1 replicas"
        );
        // Parked on h0, and h1 still runs it (its park was skipped or has
        // not been heard of): no wake.
        let mut state = state_at_zero(scales_to_zero(0, 0));
        assert!(state.autoscale(Instant::now()).is_empty());
        // h1 says a request woke it: the deployment wakes.
        woken_on(&mut state, "h1");
        let scaled = state.autoscale(Instant::now());
        assert_eq!(scaled.iter().map(|c| c.2).collect::<Vec<_>>(), vec![1]);
        let event = state.events["shop/web"].last().unwrap();
        assert!(
            event.message.starts_with("woken by a request on host h1"),
            "{}",
            event.message
        );
        // One report is one wake: back at zero (its park lost on the way),
        // the same report wakes nothing.
        state.desired.get_mut("shop/web").unwrap().resource.replicas = 0;
        assert!(state.autoscale(Instant::now()).is_empty());
        // Above zero, a copy a request woke on another host counts too.
        state.desired.get_mut("shop/web").unwrap().resource.replicas = 1;
        let current = state.desired["shop/web"].spec_hash.clone();
        let h0 = state.hosts.get_mut("h0").unwrap();
        h0.parked.clear();
        h0.workloads.insert("shop/web".into(), (current, 1));
        woken_on(&mut state, "h0");
        let scaled = state.autoscale(Instant::now());
        assert_eq!(scaled.iter().map(|c| c.2).collect::<Vec<_>>(), vec![2]);
        // Scaled to zero by hand (it may not scale to zero): it stays so,
        // whatever a host reports.
        let mut state = state_at_zero(scales_to_zero(0, 1));
        woken_on(&mut state, "h1");
        assert!(state.autoscale(Instant::now()).is_empty());
    }

    /// Host `host` reports a request woke `shop/web` there.
    fn woken_on(state: &mut State, host: &str) {
        let observed = state.hosts.get_mut(host).unwrap();
        observed.woken.insert("shop/web".into());
    }

    /// The stops among `commands`: (host, whether it parks).
    fn stops(commands: &[Command]) -> Vec<(&str, bool)> {
        let mut stops: Vec<(&str, bool)> = commands
            .iter()
            .filter_map(|c| match c {
                Command::Stop { host, request } => Some((host.as_str(), request.park)),
                Command::Start { .. } => None,
            })
            .collect();
        stops.sort();
        stops
    }

    /// `resource` at zero replicas, parked on h0 and still running on h1.
    fn state_at_zero(resource: Resource) -> State {
        let mut state = state(vec![resource]);
        let current = state.desired["shop/web"].spec_hash.clone();
        let h0 = state.hosts.get_mut("h0").unwrap();
        h0.parked.insert("shop/web".into(), current.clone());
        let h1 = state.hosts.get_mut("h1").unwrap();
        h1.workloads.insert("shop/web".into(), (current, 1));
        state
    }

    /// A host that refuses to park a workload (a plugin drives it, and only
    /// HTTP wakes a parked one) keeps it running: the controller wakes the
    /// deployment to one replica, says why once, and does not ask again,
    /// however idle it stays, until its spec changes.
    #[test]
    fn a_park_a_host_refuses_leaves_one_replica_and_is_not_asked_again() {
        let mut state = state_at_zero(scales_to_zero(0, 0));
        let (commands, _) = state.commands();
        assert_eq!(stops(&commands), vec![("h1", true)]);
        let why = "workload `shop/web` cannot scale to zero: it would miss what `messaging` delivers, and only an HTTP request wakes a parked workload";
        done(
            &mut state,
            "h1",
            Change::Park,
            Outcome::ParkRefused(why.into()),
        );
        let event = state.events["shop/web"].last().unwrap();
        assert_eq!(event.reason, "NotParkable");
        assert!(event.message.ends_with(why), "{}", event.message);
        assert!(
            state.failures.is_empty(),
            "a refusal is not a failure to retry"
        );
        let current = state.desired["shop/web"].spec_hash.clone();
        assert_eq!(
            state.hosts["h1"].workloads.get("shop/web"),
            Some(&(current.clone(), 1)),
            "it runs on where the park was refused"
        );
        assert!(!state.hosts["h1"].parked.contains_key("shop/web"));
        // The next pass wakes the deployment to one replica, h1's copy.
        let scaled = state.autoscale(Instant::now());
        assert_eq!(scaled.iter().map(|c| c.2).collect::<Vec<_>>(), vec![1]);
        assert_eq!(
            state.events["shop/web"].last().unwrap().message,
            "a host refused to park it (see its NotParkable event): scaled from 0 to 1 replicas"
        );
        // h1's copy is the one replica: nothing placed, and h1 is not asked
        // to park again. h0's parked copy, of a spec that no longer parks,
        // is stopped, routes and all.
        let (commands, _) = state.commands();
        assert_eq!(stops(&commands), vec![("h0", false)]);
        assert_eq!(commands.len(), 1, "nothing placed");
        // However idle it stays, the autoscaler keeps it at one: h1 counts
        // no request, past the 5 s that scale it to zero otherwise.
        let t0 = Instant::now();
        let idle = |state: &mut State, at: Instant, host_ms: u64| {
            let reading = autoscale::Reading {
                requests: Some(7),
                cpu_millis: None,
                host_ms: Some(host_ms),
            };
            let beat = Duration::from_secs(1);
            state
                .rates
                .observe(("h1", "i1"), "shop/web", reading, at, beat);
        };
        idle(&mut state, t0, 0);
        idle(&mut state, t0, 1_000);
        assert!(state.autoscale(t0).is_empty());
        let later = t0 + Duration::from_secs(6);
        idle(&mut state, later, 7_000);
        assert!(state.autoscale(later).is_empty());
        assert_eq!(state.desired["shop/web"].resource.replicas, 1);
        // The refusal is what holds it: forgotten, the same idle scales it
        // to zero.
        state.unparkable.clear();
        let after = later + Duration::from_secs(1);
        idle(&mut state, after, 8_000);
        let scaled = state.autoscale(after);
        assert_eq!(scaled.iter().map(|c| c.2).collect::<Vec<_>>(), vec![0]);
    }

    /// Copies on two hosts that both refuse to park: the deployment wakes
    /// to one replica once, the surplus copy is stopped (not parked), and
    /// neither host is asked to park it again, even were placement to want
    /// it (the refusal forgotten) before the backoff ends.
    #[test]
    fn surplus_copies_of_a_spec_hosts_refused_to_park_are_stopped_not_parked() {
        let mut state = state(vec![scales_to_zero(0, 0)]);
        let current = state.desired["shop/web"].spec_hash.clone();
        for host in ["h0", "h1"] {
            let observed = state.hosts.get_mut(host).unwrap();
            observed
                .workloads
                .insert("shop/web".into(), (current.clone(), 1));
        }
        let (commands, _) = state.commands();
        assert_eq!(stops(&commands), vec![("h0", true), ("h1", true)]);
        let why = "workload `shop/web` cannot scale to zero: its service would stop";
        for host in ["h0", "h1"] {
            done(
                &mut state,
                host,
                Change::Park,
                Outcome::ParkRefused(why.into()),
            );
        }
        let scaled = state.autoscale(Instant::now());
        assert_eq!(scaled.iter().map(|c| c.2).collect::<Vec<_>>(), vec![1]);
        assert!(state.autoscale(Instant::now()).is_empty(), "one wake");
        let (commands, _) = state.commands();
        let stopped = stops(&commands);
        assert_eq!(stopped.len(), 1, "one copy is surplus");
        assert!(!stopped[0].1, "a surplus copy is stopped, not parked");
        let (host, _) = stopped[0];
        let host = host.to_string();
        done(
            &mut state,
            &host,
            Change::Stop,
            Outcome::Stopped(WorkloadStopResponse {
                workload_id: "shop/web".into(),
                was_running: true,
                host_revision: 2,
            }),
        );
        assert!(state.commands().0.is_empty(), "one replica runs: settled");
        // Forgotten (as by a new leader) and at zero again: placement
        // would park the copy left, but that host refused moments ago.
        state.unparkable.clear();
        state.desired.get_mut("shop/web").unwrap().resource.replicas = 0;
        let (commands, _) = state.commands();
        assert!(stops(&commands).is_empty(), "{:?}", stops(&commands));
    }

    #[test]
    fn parked_copies_of_a_deleted_deployment_are_stopped_and_trims_park() {
        let mut state = state_at_zero(scales_to_zero(0, 0));
        // At zero, h1's copy is parked too; h0's parked copy stays.
        let (commands, _) = state.commands();
        assert_eq!(stops(&commands), vec![("h1", true)]);
        assert_eq!(
            state.hosts["h1"].parked.get("shop/web"),
            state.hosts["h0"].parked.get("shop/web"),
            "assumed parked while the request is in flight"
        );
        done(
            &mut state,
            "h1",
            Change::Park,
            Outcome::Stopped(WorkloadStopResponse {
                workload_id: "shop/web".into(),
                was_running: true,
                host_revision: 1,
            }),
        );
        assert_eq!(state.events["shop/web"].last().unwrap().reason, "Parked");
        // Deleted: both parked copies are stopped, routes and all.
        state.apply(
            Event::Delete("shop/web".into()),
            RETRY,
            &ControllerStats::default(),
        );
        let (commands, _) = state.commands();
        assert_eq!(stops(&commands), vec![("h0", false), ("h1", false)]);
        assert!(state.hosts.values().all(|h| h.parked.is_empty()));
    }
}
