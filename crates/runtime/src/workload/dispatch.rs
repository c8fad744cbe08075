//! The dispatcher of HTTP requests to a component's instances.
//!
//! Each instance is driven by one *worker*: a task that owns the instance's
//! store and runs the guest's calls inside `Store::run_concurrent`, so that
//! a P3 instance can serve several requests at once. A worker that may take
//! more requests puts its *inbox* on the component's ready list with its
//! *room* (how many more it may take now). A new request goes to the inbox
//! listed last (the warmest instance), which leaves the list when its room
//! is used up, or, when none is listed, to a new worker with a new
//! instance. A worker starts every request that reached its inbox in one
//! pass, so a burst that arrives while it waits for the CPU fills one
//! instance instead of making one instance per request. P2 instances serve
//! one request each, so their workers never list themselves.
//!
//! The rules a worker keeps, and why:
//! - It is listed only while it may start a request now: under its
//!   instance's reuse and concurrency caps (`instance::Worker::admission`),
//!   with the guest's export ready for another concurrent call, with no
//!   request of its own having ended unanswered (the instance is suspect),
//!   and with the event loop having yielded since its last request started
//!   (that one may be busy on the CPU; a second would only wait behind it),
//!   except for requests already waiting in its inbox, which start together
//!   in the pass that takes the first of them.
//! - A request that reaches its inbox when it no longer may start one (the
//!   dispatcher took the inbox off the list just before the worker did), or
//!   while its guest holds the CPU (the worker looks at each epoch yield),
//!   is handed straight back to the dispatcher, never left waiting there.
//! - A request whose client left while it waited is dropped, not started.
//! - Deadlines and the idle timeout (`instance::Expiration`) are polled
//!   outside the event loop: a guest spinning in a loop, or a slow host
//!   call, holds that loop but not the task around it. While requests run,
//!   the instance's deadline counts from the latest start; after the last
//!   answer, from that answer, since a guest may still work after
//!   answering. Each request also ends at its own deadline (504) while the
//!   instance serves newer ones; one timer per instance watches all of
//!   these (`instance::Expiration::poll`), none per request.
//! - After a pass of the event loop that answered requests, it runs the
//!   loop again at once, a few times within a short bound
//!   (`FINISHING_PASSES`, `FINISHING_TIME`): the answers' bodies then end
//!   before their connection tasks write them, one write per response.
//! - With accounting on, or a CPU limit, the worker's task runs inside a
//!   CPU meter (`crate::metrics::Metered`): a poll of the task is the
//!   guest's CPU.
//! - A component over its CPU limit (`crate::limits::cpu`) makes no new
//!   instance: a new worker first waits for the component's share, within
//!   the request's deadline (504 past it) and only while its client stays.
//!   A running instance is held at its epoch yields instead; requests that
//!   reach its inbox meanwhile are handed back, as for any busy guest. Its
//!   workers run on the low-priority threads of `crate::limits::lane`, so
//!   the slices it runs between holds do not delay its neighbours.

use super::instance::{
    Admission, ComponentInstances, Instantiated, Phase, RequestContext, Retired, Worker,
};
use crate::metrics::{Metered, WorkerMeter};
use crate::wasi::StoreState;
use futures::channel::oneshot;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Instant;
use wasmtime::component::Accessor;
use wasmtime::{AsContextMut, Store, format_err};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    ExpirationError, InstantiationError, Prepared, Proxy, TrapOrPanicError,
};

/// A request handed to a worker.
pub(crate) type Request = http::Request<wasmtime_wasi_http::WasiBody>;
/// A component's response.
pub(crate) type Response = http::Response<wasmtime_wasi_http::WasiBody>;

/// One request on its way to an instance, with where its answer goes.
struct Job {
    context: RequestContext,
    request: Request,
    reply: oneshot::Sender<Result<Response, wasmtime::Error>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands a component's requests to its instances, creating and retiring
/// them by its [`ReusePolicy`](super::instance::ReusePolicy). Clone to share.
#[derive(Clone)]
pub struct Dispatcher(Arc<Shared>);

struct Shared {
    instances: ComponentInstances,
    /// The inboxes of workers that may start a request now.
    ready: Mutex<Vec<Arc<Inbox>>>,
}

/// Where a worker receives requests.
#[derive(Default)]
struct Inbox {
    jobs: Mutex<InboxJobs>,
    /// How many jobs wait in it, readable without the lock (the worker
    /// looks on every poll).
    waiting: AtomicUsize,
    /// Whether it is on the ready list; changed only under that list's
    /// lock, by the worker or by the dispatcher taking it off.
    listed: AtomicBool,
    /// How many jobs the dispatcher may leave in it before the worker looks
    /// again; set by the worker when it lists itself.
    room: AtomicUsize,
    /// The worker's task, woken when a request arrives.
    worker: AtomicWaker,
}

#[derive(Default)]
struct InboxJobs {
    queue: VecDeque<Job>,
    /// The worker is gone: nothing more may arrive.
    closed: bool,
}

impl Inbox {
    /// Leaves `job` here; gives it back if the worker is gone.
    fn offer(&self, job: Job) -> Option<Job> {
        let mut jobs = lock(&self.jobs);
        if jobs.closed {
            return Some(job);
        }
        jobs.queue.push_back(job);
        self.waiting.store(jobs.queue.len(), Relaxed);
        drop(jobs);
        self.worker.wake();
        None
    }

    fn take(&self) -> Option<Job> {
        // The worker looks on every pass of its event loop, mostly to find
        // nothing: no lock for that. A job left here after this look wakes
        // the worker, which looks again.
        if self.waiting.load(Relaxed) == 0 {
            return None;
        }
        let mut jobs = lock(&self.jobs);
        let job = jobs.queue.pop_front();
        self.waiting.store(jobs.queue.len(), Relaxed);
        job
    }

    fn take_all(&self) -> VecDeque<Job> {
        if self.waiting.load(Relaxed) == 0 {
            return VecDeque::new();
        }
        let mut jobs = lock(&self.jobs);
        self.waiting.store(0, Relaxed);
        std::mem::take(&mut jobs.queue)
    }

    /// Takes no more; returns what had arrived.
    fn close(&self) -> VecDeque<Job> {
        let mut jobs = lock(&self.jobs);
        jobs.closed = true;
        self.waiting.store(0, Relaxed);
        std::mem::take(&mut jobs.queue)
    }
}

impl Dispatcher {
    /// A dispatcher over one component's instances.
    pub fn new(instances: ComponentInstances) -> Self {
        Self(Arc::new(Shared {
            instances,
            ready: Mutex::default(),
        }))
    }

    /// Handles one request. Errors downcast as wasmtime-wasi-http's do:
    /// `InstantiationError`, `ExpirationError`, `TrapOrPanicError`.
    pub(crate) async fn handle(
        &self,
        context: RequestContext,
        request: Request,
    ) -> Result<Response, wasmtime::Error> {
        let (reply, answer) = oneshot::channel();
        self.0.dispatch(Job {
            context,
            request,
            reply,
        });
        answer.await.map_err(|_| TrapOrPanicError)?
    }
}

impl Shared {
    fn dispatch(self: &Arc<Self>, mut job: Job) {
        loop {
            // Its client left while it waited (handed back from a busy
            // worker, say): no instance should be spent on it.
            if job.context.fate.is_abandoned() {
                return;
            }
            let inbox = {
                let mut ready = lock(&self.ready);
                let inbox = ready.last().cloned();
                if let Some(inbox) = &inbox
                    && inbox.waiting.load(Relaxed) + 1 >= inbox.room.load(Relaxed)
                {
                    // This job fills it: off the list until its worker
                    // looks again.
                    ready.pop();
                    inbox.listed.store(false, Relaxed);
                }
                inbox
            };
            let Some(inbox) = inbox else {
                return self.start_worker(job);
            };
            match inbox.offer(job) {
                None => return,
                // Its worker ended meanwhile: the next one.
                Some(back) => job = back,
            }
        }
    }

    /// Puts `inbox` on the ready list with `room` for that many more jobs
    /// (0: takes it off).
    fn set_listed(&self, inbox: &Arc<Inbox>, room: usize) {
        let listed = room > 0;
        if listed {
            inbox.room.store(room, Relaxed);
        }
        if inbox.listed.load(Relaxed) == listed {
            return;
        }
        let mut ready = lock(&self.ready);
        // Again under the lock: the dispatcher may just have taken it off.
        if inbox.listed.load(Relaxed) == listed {
            return;
        }
        if listed {
            ready.push(inbox.clone());
        } else {
            ready.retain(|other| !Arc::ptr_eq(other, inbox));
        }
        inbox.listed.store(listed, Relaxed);
    }

    /// Takes `inbox` off the ready list and hands back what reached it.
    fn hand_back(self: &Arc<Self>, inbox: &Arc<Inbox>) {
        self.set_listed(inbox, 0);
        for job in inbox.take_all() {
            self.dispatch(job);
        }
    }

    fn start_worker(self: &Arc<Self>, job: Job) {
        let shared = self.clone();
        if self.instances.metered() {
            let meter = Arc::new(self.instances.meter());
            if let Some(usage) = &job.context.usage {
                // Its instance is created for it: that is its CPU too.
                meter.request_started(usage);
            }
            let worker = Metered::new(run_worker(shared, job, Some(meter.clone())), meter);
            if self.instances.cpu_budget().is_some() {
                crate::limits::lane::spawn(worker);
            } else {
                tokio::spawn(worker);
            }
        } else {
            tokio::spawn(run_worker(shared, job, None));
        }
    }
}

/// When a worker stops serving (a panic included), before its store is torn
/// down: off the ready list, and whatever reached its inbox back to the
/// dispatcher, so that nothing waits for the teardown.
struct Leaving {
    shared: Arc<Shared>,
    inbox: Arc<Inbox>,
}

impl Drop for Leaving {
    fn drop(&mut self) {
        self.shared.set_listed(&self.inbox, 0);
        for job in self.inbox.close() {
            self.shared.dispatch(job);
        }
    }
}

/// Hands the store to `Worker::retire` on every way out: a panic, or the
/// worker's task dropped (the runtime shutting down).
struct Retirement<'a> {
    worker: &'a Worker,
    store: Option<Store<StoreState>>,
}

impl Drop for Retirement<'_> {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            let why = if std::thread::panicking() {
                Retired::Failed(format_err!("the instance's worker panicked"))
            } else {
                Retired::Dropped
            };
            self.worker.retire(store, why);
        }
    }
}

async fn run_worker(shared: Arc<Shared>, first: Job, meter: Option<Arc<WorkerMeter>>) {
    let Some(first) = wait_for_cpu_share(&shared, first).await else {
        return;
    };
    match shared.instances.instantiate(meter.clone()).await {
        Ok(instance) => serve(&shared, instance, first, meter).await,
        Err(error) => {
            let Job {
                context,
                request,
                reply,
            } = first;
            let _ = reply.send(Err(InstantiationError {
                request_data: context,
                request: Mutex::new(request),
                error: Arc::new(error),
            }
            .into()));
        }
    }
}

/// Waits, before a new instance is made, until the component is within its
/// CPU share (at once when it has no limit or is within it). Gives the job
/// back to run, or `None` when it ended here: its client left (it is
/// dropped, as the dispatcher drops abandoned jobs), or its deadline passed
/// (it is answered with an expiration, which its client sees as 504).
async fn wait_for_cpu_share(shared: &Shared, job: Job) -> Option<Job> {
    let Some(budget) = shared.instances.cpu_budget() else {
        return Some(job);
    };
    if budget.delay().is_none() {
        return Some(job);
    }
    let fate = job.context.fate.clone();
    let since = Instant::now();
    tokio::select! {
        () = budget.clone().hold() => {
            let mut job = job;
            // The wait counts against its deadline.
            job.context.held = since.elapsed();
            Some(job)
        }
        () = fate.abandoned() => None,
        () = tokio::time::sleep(shared.instances.request_timeout()) => {
            let _ = job.reply.send(Err(ExpirationError.into()));
            None
        }
    }
}

/// After a pass of the event loop that answered requests, it runs again at
/// once, up to this many times within [`FINISHING_TIME`]: the answers'
/// bodies then end before their connection tasks write them. A P3 guest
/// writes its body stream, and its trailers future resolves, some passes
/// after it answers; a response whose end came later left in two writes
/// (head and body, then the last chunk), a second wakeup of the client.
/// Under `wrk -c32` on P3 lean: 1.9 writes per response before, 1.0 after,
/// and 27% more requests per second (docs/BENCHMARKS.md, round 3).
const FINISHING_PASSES: u32 = 16;
/// The time bound of those passes: a pass that runs guest code for long
/// (a guest computing after its answer) ends them, so neighbours wait no
/// longer than for one more pass.
const FINISHING_TIME: std::time::Duration = std::time::Duration::from_micros(50);

/// Runs one instance from its first request until it retires.
async fn serve(
    shared: &Arc<Shared>,
    instance: Instantiated,
    first: Job,
    meter: Option<Arc<WorkerMeter>>,
) {
    let Instantiated {
        store,
        proxy,
        mut expiration,
        worker,
    } = instance;
    let mut retirement = Retirement {
        worker: &worker,
        store: Some(store),
    };
    // Declared after `retirement`, so that on a panic it is dropped first.
    let leaving = Leaving {
        shared: shared.clone(),
        inbox: Arc::new(Inbox::default()),
    };
    let inbox = &leaving.inbox;
    // What the expiration judges by, written inside the event loop.
    let progress = Mutex::new((Phase::Serving, Instant::now()));
    // The event loop has yielded since the last request started.
    let yielded = AtomicBool::new(true);
    // A request has been answered since the event loop last yielded.
    let answered_since = AtomicBool::new(false);
    let export = match &proxy {
        Proxy::P3(guest) => *guest.wasi_http_handler().func_handle().func(),
        Proxy::P2(guest) => *guest.wasi_http_incoming_handler().func_handle().func(),
    };

    let event_loop = async |accessor: &Accessor<StoreState>| -> wasmtime::Result<()> {
        let mut running = FuturesUnordered::new();
        let mut starts: Vec<Instant> = Vec::new();
        let mut started = 0usize;
        let mut sound = true;
        let mut next = Some(first);
        std::future::poll_fn(|cx| {
            inbox.worker.register(cx.waker());
            // Jobs taken from the inbox in this pass: the rest that reached
            // it meanwhile start beside them, not one per yield.
            let mut batch = false;
            loop {
                if let Some(job) = next.take()
                    && !job.context.fate.is_abandoned()
                {
                    let Job {
                        context,
                        request,
                        reply,
                    } = job;
                    yielded.store(false, Relaxed);
                    started += 1;
                    if let (Some(meter), Some(usage)) = (&meter, &context.usage) {
                        meter.request_started(usage);
                    }
                    let start = Instant::now();
                    let prepared = accessor.with(|mut store| {
                        let prepared = Prepared::new(
                            store.as_context_mut(),
                            &proxy,
                            request,
                            <StoreState as WasiHttpView>::http,
                            reply,
                        )?;
                        let ends = worker.on_request_start(store.as_context_mut(), context, start);
                        Ok::<_, wasmtime::Error>((prepared, ends))
                    });
                    starts.push(start);
                    *lock(&progress) = (Phase::Serving, start);
                    running.push(async move {
                        let (prepared, ends) = prepared?;
                        let answered = prepared.run(accessor, ends).await?;
                        Ok::<_, wasmtime::Error>((answered, start))
                    });
                }

                // Every request that ended: an expired one must stop the
                // instance from taking more before anything else happens.
                loop {
                    match running.poll_next_unpin(cx) {
                        Poll::Ready(Some(Ok((answered, start)))) => {
                            if let Some(i) = starts.iter().position(|s| *s == start) {
                                starts.swap_remove(i);
                            }
                            *lock(&progress) = match starts.iter().max() {
                                Some(latest) => (Phase::Serving, *latest),
                                None => (Phase::Finishing, Instant::now()),
                            };
                            sound &= answered;
                            answered_since.store(true, Relaxed);
                        }
                        Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(error)),
                        Poll::Ready(None) | Poll::Pending => break,
                    }
                }

                let export_ready = accessor
                    .poll_ready_for_concurrent_call(export, cx)
                    .is_ready();
                let admission = worker.admission(running.len(), started);
                if admission == Admission::Never {
                    sound = false;
                }
                let admits = sound && export_ready && admission == Admission::Take;
                // Listed for new jobs only once the guest has yielded since
                // its last start; jobs already here start with the batch.
                let may_list = admits && (running.is_empty() || yielded.load(Relaxed));
                let may_start = may_list || (admits && batch);
                let room = if may_list {
                    worker.room(running.len(), started)
                } else {
                    0
                };
                shared.set_listed(inbox, room);
                if may_start {
                    if let Some(job) = inbox.take() {
                        next = Some(job);
                        batch = true;
                        continue;
                    }
                } else {
                    shared.hand_back(inbox);
                }

                if !running.is_empty() || accessor.poll_no_interesting_tasks(cx).is_pending() {
                    return Poll::Pending;
                }
                if !(sound && export_ready) {
                    return Poll::Ready(Ok(()));
                }
                let mut progress = lock(&progress);
                if progress.0 != Phase::Idle {
                    *progress = (Phase::Idle, Instant::now());
                }
                return Poll::Pending;
            }
        })
        .await
    };

    let why = {
        let store = retirement
            .store
            .as_mut()
            .expect("the store stays until the worker retires");
        let mut run = std::pin::pin!(store.run_concurrent(event_loop));
        let mut passes = std::pin::pin!(std::future::poll_fn(|cx| {
            let mut looked_again = false;
            // Passes run so far, and since when, after a pass that answered.
            let mut finishing: Option<(u32, Instant)> = None;
            loop {
                if let Poll::Ready(result) = run.as_mut().poll(cx) {
                    return Poll::Ready(Retired::from(result.and_then(|inner| inner)));
                }
                let (phase, since) = *lock(&progress);
                if expiration.poll(cx, phase, since).is_ready() {
                    return Poll::Ready(match phase {
                        Phase::Idle => Retired::Done,
                        _ if expiration.abandoned() => Retired::Abandoned,
                        _ => Retired::Failed(format_err!("guest timed out")),
                    });
                }
                if !looked_again && !yielded.swap(true, Relaxed) {
                    // The loop yielded with a request just started: it may
                    // take another now, so let it look once more (and the
                    // expiration then judge the phase it leaves).
                    looked_again = true;
                    continue;
                }
                if finishing.is_none() && answered_since.swap(false, Relaxed) {
                    finishing = Some((0, Instant::now()));
                }
                if let Some((passes, since)) = &mut finishing
                    && *passes < FINISHING_PASSES
                    && since.elapsed() < FINISHING_TIME
                {
                    *passes += 1;
                    continue;
                }
                // Here after a guest's epoch yield too, when the event loop
                // itself did not run: a request that reached the inbox
                // meanwhile would wait behind a busy guest, so it goes on.
                if inbox.waiting.load(Relaxed) > 0 {
                    shared.hand_back(inbox);
                }
                return Poll::Pending;
            }
        }));
        // Timed, so that the ingress holds no write back behind a guest
        // that computes in long slices on this thread (`long_polls`).
        std::future::poll_fn(|cx| {
            let began = Instant::now();
            let polled = passes.as_mut().poll(cx);
            super::long_polls::record(began, Instant::now());
            polled
        })
        .await
    };
    drop(leaving);
    let store = retirement
        .store
        .take()
        .expect("the store stays until the worker retires");
    worker.retire(store, why);
}
