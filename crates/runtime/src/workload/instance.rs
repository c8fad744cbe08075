//! Instance management: how a component's instances are created, reused and
//! retired for HTTP requests.
//!
//! Serves through `super::dispatch::Dispatcher`. P2 components get a fresh
//! instance per request from the
//! pre-instantiated `ProxyPre` (cheap with the pooling allocator and
//! copy-on-write images). P3 components reuse instances, up to a number of
//! requests per instance, a number of concurrent requests per instance, and
//! an idle timeout; the defaults equal `wasmtime serve`'s. Every store
//! yields at each epoch tick, so a request deadline fires even in a guest
//! spinning in a loop, and the worker holding that instance is discarded.
//!
//! With accounting on, each instance's worker runs inside a CPU meter and
//! its store grows memory through a metered limiter (see `crate::metrics`).
//! A component with a CPU limit is metered too, accounting on or off: the
//! meter charges its budget (`crate::limits::cpu`), and its stores hold
//! at each epoch tick while it is over its share.
//!
//! Each request carries a [`RequestFate`] shared with the instance serving
//! it. A client that leaves (the request or its response body dropped)
//! cancels its fate; an instance all of whose live requests were abandoned
//! is discarded at its next yield, so a spinning guest stops within an
//! epoch tick of the disconnect. An instance that fails marks its live
//! requests aborted, so that a response body cut short ends in an error
//! (HTTP/1.1: no terminating chunk; HTTP/2: a reset) instead of looking
//! complete. A request not answered by its deadline is ended (504) and
//! marked overdue, while its instance goes on serving those it took on
//! later (it takes no new ones after such a miss). One timer per instance
//! watches those deadlines and the instance's own ([`Expiration::poll`]),
//! so that no request arms a timer of its own.

use crate::metrics::{ComponentMetrics, RequestUsage, WorkerMeter};
use crate::wasi::{ComponentEnv, StoreState};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::handler::{Proxy, ProxyPre};

pub use nimbus_model::status::HttpKind;

/// Instance reuse settings of one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReusePolicy {
    /// Requests one instance serves before it is dropped.
    pub max_requests_per_instance: usize,
    /// Requests one instance serves at the same time.
    pub max_concurrent_per_instance: usize,
    /// How long an idle instance is kept.
    pub idle_timeout: Duration,
}

impl ReusePolicy {
    /// `wasmtime serve`'s defaults: P2 one request per instance, P3 128
    /// requests, 16 at a time, 1 s idle.
    pub fn defaults_for(kind: HttpKind) -> Self {
        match kind {
            HttpKind::P2 => Self {
                max_requests_per_instance: 1,
                max_concurrent_per_instance: 1,
                idle_timeout: Duration::from_secs(1),
            },
            HttpKind::P3 => Self {
                max_requests_per_instance: 128,
                max_concurrent_per_instance: 16,
                idle_timeout: Duration::from_secs(1),
            },
        }
    }
}

/// What the host passes along with one request to a component's instance.
pub(crate) struct RequestContext {
    /// The authority a middleware layer was called on (`None` otherwise).
    pub(crate) called_as: Option<Arc<str>>,
    /// Where the request's CPU and memory are charged, with accounting on.
    pub(crate) usage: Option<Arc<RequestUsage>>,
    /// The context of the request's component span, when tracing is on:
    /// the parent of the plugin calls and outbound requests the instance
    /// makes for it (see `crate::trace`).
    pub(crate) trace_parent: Option<crate::trace::Parent>,
    /// Whether the client still wants the answer, and whether the instance
    /// died before sending all of it.
    pub(crate) fate: Arc<RequestFate>,
    /// How long it waited for its component's CPU share before an instance
    /// was made for it: that much of its deadline is spent.
    pub(crate) held: Duration,
}

/// How an instance's service ended. Every end but `Done` discards it
/// mid-work (and counts so); only a failure is the guest's, logged as a
/// warning.
#[derive(Debug)]
pub(crate) enum Retired {
    /// Its work is done: idle past its reuse window, or its one request
    /// answered.
    Done,
    /// It trapped, missed its deadline, or its worker panicked.
    Failed(wasmtime::Error),
    /// Every client it was serving left before it answered.
    Abandoned,
    /// Its worker's task was dropped (not panicked): the runtime shut down
    /// under it.
    Dropped,
}

impl From<wasmtime::Result<()>> for Retired {
    fn from(result: wasmtime::Result<()>) -> Self {
        match result {
            Ok(()) => Self::Done,
            Err(error) => Self::Failed(error),
        }
    }
}

/// What became of one request, shared by its response body and the
/// instance serving it.
#[derive(Default)]
pub(crate) struct RequestFate {
    /// The response was sent whole (or failed on its own).
    finished: AtomicBool,
    /// The client left before the end. A flag and a waker rather than a
    /// `CancellationToken` or a `Notify`: those take a lock on every look
    /// or wait, and every request is looked at and waited on.
    abandoned: AtomicBool,
    /// Who waits in [`RequestFate::abandoned`] or on [`RequestEnds`]: one
    /// task at a time, the worker that is about to start the request or is
    /// running it.
    left: futures::task::AtomicWaker,
    /// The instance failed while the request was live: its response body,
    /// however it ends, is incomplete.
    aborted: AtomicBool,
    /// Its deadline is watched: started, not yet answered (see
    /// [`RequestEnds`]).
    timed: AtomicBool,
    /// Its deadline passed before it was answered; set by its instance's
    /// [`Expiration`], which wakes it through `left`.
    overdue: AtomicBool,
    /// The instance serving it, once one has started it.
    instance: Mutex<Option<Weak<InstanceLife>>>,
    /// Its body failed on the sender's side (see `running::sender_watched`).
    sender_failed: AtomicBool,
}

impl RequestFate {
    /// The response body ended (or errored) on its own.
    pub(crate) fn finish(&self) {
        self.finished.store(true, Ordering::Release);
    }

    /// Its body failed on the sender's side: the client broke it off.
    pub(crate) fn sender_broke_off(&self) {
        self.sender_failed.store(true, Ordering::Release);
    }

    /// Whether its body failed on the sender's side.
    pub(crate) fn sender_failed(&self) -> bool {
        self.sender_failed.load(Ordering::Acquire)
    }

    /// Whether the instance failed while this request was live.
    pub(crate) fn aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    /// The client is gone: stop the guest's work for it.
    pub(crate) fn abandon(&self) {
        if self.finished.load(Ordering::Acquire) {
            return;
        }
        self.abandoned.store(true, Ordering::Release);
        self.left.wake();
        let instance = self
            .instance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(Weak::upgrade);
        if let Some(instance) = instance {
            instance.check_abandoned();
        }
    }

    fn live(&self) -> bool {
        !self.finished.load(Ordering::Acquire)
    }

    /// Whether the client left before the answer.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    /// Whether its deadline passed before it was answered.
    pub(crate) fn is_overdue(&self) -> bool {
        self.overdue.load(Ordering::Acquire)
    }

    /// Its deadline passed before the answer: end it (504).
    fn mark_overdue(&self) {
        self.overdue.store(true, Ordering::Release);
        self.left.wake();
    }

    /// Resolves when the client leaves. One waiter at a time (see `left`).
    pub(crate) async fn abandoned(&self) {
        std::future::poll_fn(|cx| {
            // Registered before the flag is read, so a leave between the
            // two still wakes this task.
            self.left.register(cx.waker());
            if self.is_abandoned() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

/// The requests one instance is serving, and the wake-up of its
/// expiration when they may all have been abandoned.
pub(crate) struct InstanceLife {
    requests: Mutex<Vec<LiveRequest>>,
    /// Some request was abandoned and the expiration has to look: it
    /// is polled on every turn of a busy worker, which must not take the
    /// lock unless there is something to judge.
    abandoned: AtomicBool,
    expiration: futures::task::AtomicWaker,
    /// The earliest deadline of the requests started since the expiration
    /// last looked, in nanoseconds from `base` (`u64::MAX`: none). An
    /// atomic, not a timer per request: see [`Expiration::poll`].
    soonest: AtomicU64,
    base: Instant,
}

/// A request its instance serves, with when it must be answered by
/// (`None`: its timeout is past what an `Instant` holds).
struct LiveRequest {
    fate: Arc<RequestFate>,
    deadline: Option<Instant>,
}

impl Default for InstanceLife {
    fn default() -> Self {
        Self {
            requests: Mutex::default(),
            abandoned: AtomicBool::new(false),
            expiration: futures::task::AtomicWaker::new(),
            soonest: AtomicU64::new(u64::MAX),
            base: Instant::now(),
        }
    }
}

impl InstanceLife {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<LiveRequest>> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes on a request that must be answered by `deadline` (`None`:
    /// never, its timeout being past what an `Instant` can hold).
    fn adopt(self: &Arc<Self>, fate: Arc<RequestFate>, deadline: Option<Instant>) {
        *fate.instance.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::downgrade(self));
        let abandoned = fate.is_abandoned();
        if let Some(deadline) = deadline {
            fate.timed.store(true, Ordering::Release);
            let nanos = deadline.saturating_duration_since(self.base).as_nanos();
            self.soonest.fetch_min(
                u64::try_from(nanos).unwrap_or(u64::MAX - 1),
                Ordering::Relaxed,
            );
        }
        {
            // Finished requests go here, so a long-lived instance holds only
            // the ones it may still be serving.
            let mut requests = self.lock();
            requests.retain(|request| request.fate.live());
            requests.push(LiveRequest { fate, deadline });
        }
        if abandoned {
            self.check_abandoned();
        }
    }

    /// The earliest deadline of the requests started since the last call.
    fn take_soonest(&self) -> Option<Instant> {
        // Looked at on every poll of a busy worker: no write unless there
        // is something to take.
        if self.soonest.load(Ordering::Relaxed) == u64::MAX {
            return None;
        }
        match self.soonest.swap(u64::MAX, Ordering::Relaxed) {
            u64::MAX => None,
            nanos => self.base.checked_add(Duration::from_nanos(nanos)),
        }
    }

    /// Ends the unanswered requests whose deadline is `now` or earlier;
    /// returns the earliest deadline of the others.
    fn expire_overdue(&self, now: Instant) -> Option<Instant> {
        let mut requests = self.lock();
        requests.retain(|request| request.fate.live());
        let mut next: Option<Instant> = None;
        for request in requests
            .iter()
            .filter(|r| r.fate.timed.load(Ordering::Acquire))
        {
            let Some(deadline) = request.deadline else {
                continue;
            };
            if deadline <= now {
                request.fate.mark_overdue();
            } else {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
            }
        }
        next
    }

    /// Whether every request the instance still serves was abandoned by
    /// its client: nobody waits for its work any more. Judged when the
    /// instance's expiration is polled, so a request the instance took on
    /// since (a new client) keeps it alive.
    fn all_abandoned(&self) -> bool {
        if !self.abandoned.swap(false, Ordering::AcqRel) {
            return false;
        }
        let mut requests = self.lock();
        requests.retain(|request| request.fate.live());
        let any = requests.iter().any(|r| r.fate.is_abandoned());
        if any {
            // Judge again on later polls: the requests still served may
            // finish and leave only abandoned ones.
            self.abandoned.store(true, Ordering::Release);
        }
        any && requests.iter().all(|r| r.fate.is_abandoned())
    }

    /// Has the expiration look again.
    fn check_abandoned(&self) {
        self.abandoned.store(true, Ordering::Release);
        self.expiration.wake();
    }

    /// The instance failed: every live request's response is incomplete.
    fn abort_live(&self) {
        for request in self.lock().iter().filter(|r| r.fate.live()) {
            request.fate.aborted.store(true, Ordering::Release);
        }
    }
}

/// Creates instances of one component for its [`Dispatcher`](super::dispatch::Dispatcher).
pub struct ComponentInstances {
    pub(crate) engine: wasmtime::Engine,
    pub(crate) pre: ProxyPre<StoreState>,
    pub(crate) env: Arc<ComponentEnv>,
    pub(crate) reuse: ReusePolicy,
}

impl ComponentInstances {
    /// The instances of one component: made in stores of `engine` from
    /// `env`, by `pre`, reused as `reuse` says.
    pub fn new(
        engine: wasmtime::Engine,
        pre: ProxyPre<StoreState>,
        env: Arc<ComponentEnv>,
        reuse: ReusePolicy,
    ) -> Self {
        Self {
            engine,
            pre,
            env,
            reuse,
        }
    }

    /// Whether workers run inside a CPU meter: with accounting on, or a
    /// CPU limit whose budget the meter charges.
    pub(crate) fn metered(&self) -> bool {
        self.env.metered()
    }

    /// The component's series, with accounting on.
    pub(crate) fn metrics(&self) -> Option<&Arc<ComponentMetrics>> {
        self.env.metrics.as_ref()
    }

    /// A new worker's CPU meter: the component's series and its CPU
    /// budget, each when it has one.
    pub(crate) fn meter(&self) -> WorkerMeter {
        WorkerMeter::new(self.env.metrics.clone(), self.env.cpu_charge())
    }

    /// The component's CPU budget, when it has a CPU limit.
    pub(crate) fn cpu_budget(&self) -> Option<&Arc<crate::limits::CpuBudget>> {
        self.env.cpu_budget.as_ref()
    }

    /// Its request deadline.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.env.limits.request_timeout
    }

    /// A new store and instance; `meter` follows its memory.
    pub(crate) async fn instantiate(
        &self,
        meter: Option<Arc<WorkerMeter>>,
    ) -> wasmtime::Result<Instantiated> {
        let mut store = self.env.new_store(&self.engine)?;
        if let Some(meter) = &meter {
            meter.watch_memory(store.data().limits.bytes());
        }
        let proxy = self.pre.instantiate_async(&mut store).await?;
        if let Some(metrics) = self.metrics() {
            metrics.instance_created();
        }
        let timeout = self.env.limits.request_timeout;
        let life = Arc::new(InstanceLife::default());
        Ok(Instantiated {
            store,
            proxy,
            expiration: Expiration {
                idle_timeout: self.reuse.idle_timeout,
                request_timeout: timeout,
                sleep: Box::pin(tokio::time::sleep_until(far_future().into())),
                life: life.clone(),
                discarded: false,
            },
            worker: Worker {
                env: self.env.clone(),
                reuse: self.reuse,
                metrics: self.env.metrics.clone(),
                served: AtomicUsize::new(0),
                life,
            },
        })
    }
}

/// A new instance, ready for its worker.
pub(crate) struct Instantiated {
    pub(crate) store: Store<StoreState>,
    pub(crate) proxy: Proxy,
    pub(crate) expiration: Expiration,
    pub(crate) worker: Worker,
}

/// What an instance's worker is doing, which decides its expiration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No request in flight and no guest work left: the idle timeout runs
    /// from when it became idle.
    Idle,
    /// Serving requests: the request deadline runs from the latest start.
    Serving,
    /// Every request answered but the guest still working (a P2 handler
    /// after its response, a P3 task it spawned): the request deadline runs
    /// from the last answer.
    Finishing,
}

/// Whether an instance takes one more request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// It may start one now.
    Take,
    /// Not while it serves as many as it may at once.
    NotNow,
    /// It has served all it may: it retires when its work is done.
    Never,
}

/// Decides when a worker's instance is retired: idle too long, or a request
/// outlived its deadline (enforced from outside the guest's event loop).
pub(crate) struct Expiration {
    idle_timeout: Duration,
    request_timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// The instance's requests: it expires when all were abandoned.
    life: Arc<InstanceLife>,
    discarded: bool,
}

impl Expiration {
    /// Whether the instance expired because its clients left, not by a
    /// deadline.
    pub(crate) fn abandoned(&self) -> bool {
        self.discarded
    }
}

impl Expiration {
    /// Ready when the instance should go: every client it serves left,
    /// or `phase`'s timeout has run out since `since`. Also ends, each at
    /// its own deadline, the requests that outlive it while the instance
    /// serves newer ones.
    ///
    /// One timer for all of that, armed no later than the earliest moment
    /// anything may be due and allowed to fire early: it then looks, ends
    /// what is overdue and re-arms. Deadlines mostly move later (a newer
    /// request, a later answer), so a busy instance touches tokio's timer
    /// wheel about once per request timeout rather than once per request.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>, phase: Phase, since: Instant) -> Poll<()> {
        self.life.expiration.register(cx.waker());
        if phase != Phase::Idle && self.life.all_abandoned() {
            self.discarded = true;
            return Poll::Ready(());
        }
        let timeout = match phase {
            Phase::Idle => self.idle_timeout,
            Phase::Serving | Phase::Finishing => self.request_timeout,
        };
        let phase_deadline = since.checked_add(timeout);
        let soonest = earliest(phase_deadline, self.life.take_soonest());
        if let Some(soonest) = soonest
            && soonest < self.sleep.deadline().into_std()
        {
            self.sleep.as_mut().reset(soonest.into());
        }
        while self.sleep.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            if phase_deadline.is_some_and(|deadline| deadline <= now) {
                // Its requests went down with it by their deadline: each is
                // then answered 504, not as if the guest had failed.
                self.life.expire_overdue(now);
                return Poll::Ready(());
            }
            let next = earliest(phase_deadline, self.life.expire_overdue(now));
            self.sleep
                .as_mut()
                .reset(next.unwrap_or_else(far_future).into());
        }
        Poll::Pending
    }
}

/// The earlier of two optional moments.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A moment no timer here reaches.
fn far_future() -> Instant {
    nimbus_model::time::deadline(Instant::now(), nimbus_model::time::FOREVER)
}

/// Resolves when a started request must end before its answer: its client
/// left, or its deadline passed (its instance's [`Expiration`] looks).
/// Dropped when the request is answered, which ends the watch on its
/// deadline.
pub(crate) struct RequestEnds(Arc<RequestFate>);

impl Future for RequestEnds {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Registered before the flags are read, so that a mark between the
        // two still wakes this task.
        self.0.left.register(cx.waker());
        if self.0.is_abandoned() || self.0.is_overdue() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for RequestEnds {
    fn drop(&mut self) {
        self.0.timed.store(false, Ordering::Release);
    }
}

/// Per-instance admission and request deadlines.
pub(crate) struct Worker {
    env: Arc<ComponentEnv>,
    reuse: ReusePolicy,
    metrics: Option<Arc<ComponentMetrics>>,
    /// Requests this instance has started.
    served: AtomicUsize,
    /// Its live requests.
    life: Arc<InstanceLife>,
}

impl Worker {
    /// Whether the instance takes another request while it serves
    /// `concurrent` and has started `total`.
    pub(crate) fn admission(&self, concurrent: usize, total: usize) -> Admission {
        if total >= self.reuse.max_requests_per_instance {
            Admission::Never
        } else if concurrent >= self.reuse.max_concurrent_per_instance {
            Admission::NotNow
        } else {
            Admission::Take
        }
    }

    /// How many more requests the instance may be given now, serving
    /// `concurrent` and having started `total`.
    pub(crate) fn room(&self, concurrent: usize, total: usize) -> usize {
        let by_concurrency = self
            .reuse
            .max_concurrent_per_instance
            .saturating_sub(concurrent);
        let by_reuse = self.reuse.max_requests_per_instance.saturating_sub(total);
        by_concurrency.min(by_reuse)
    }

    /// Records a request the instance starts at `start`; returns what ends
    /// it early: its deadline, or its client leaving.
    pub(crate) fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, StoreState>,
        context: RequestContext,
        start: Instant,
    ) -> RequestEnds {
        if let Some(authority) = context.called_as {
            store.data_mut().record_called_as(authority);
        }
        let fate = context.fate.clone();
        let deadline =
            start.checked_add(self.env.limits.request_timeout.saturating_sub(context.held));
        self.life.adopt(context.fate, deadline);
        // An instance serving several requests at once (P3) traces the
        // calls it makes under the request it started last.
        store.data_mut().set_trace_parent(context.trace_parent);
        if self.served.fetch_add(1, Ordering::Relaxed) > 0
            && let Some(metrics) = &self.metrics
        {
            metrics.instance_reused();
        }
        RequestEnds(fate)
    }

    /// The instance's end, and why.
    pub(crate) fn retire(&self, store: Store<StoreState>, why: Retired) {
        let discarded = !matches!(why, Retired::Done);
        if let Some(metrics) = &self.metrics {
            metrics.instance_dropped(discarded);
        }
        if discarded {
            // Before the store goes: dropping it ends the response streams,
            // which must then read as cut short, not as complete.
            self.life.abort_live();
        }
        let (workload, component) = (&self.env.workload, &self.env.component);
        match why {
            Retired::Done => {}
            // Not the guest's failure: nobody was waiting for its work, or
            // the host is shutting down.
            Retired::Abandoned => tracing::debug!(
                %workload, %component,
                "instance discarded: every client it was serving left"
            ),
            Retired::Dropped => tracing::debug!(
                %workload, %component,
                "instance discarded: its worker was stopped with the runtime"
            ),
            Retired::Failed(error) => tracing::warn!(
                %workload, %component,
                error = %format!("{error:#}"),
                "instance discarded after a failure"
            ),
        }
        drop(store);
    }
}
