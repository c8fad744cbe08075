//! The dispatcher of HTTP requests to a component's instances: a copy of
//! wasmtime-wasi-http 48.0.8's `handler::ProxyHandler`, specialised to our
//! instances, whose one change is that each worker (the task that runs an
//! instance) can be spawned inside a CPU meter.
//!
//! Upstream spawns its workers itself and offers no hook around their
//! polls, and a poll of the worker is the only place where the CPU a guest
//! uses can be read without counting the time it waits. Everything else (the
//! request queue, worker availability, expiration, instance reuse) follows
//! upstream line for line so that its reasoning, documented there, holds
//! here; keep the two in step when the pinned wasmtime version moves.

use super::instance::{ComponentInstances, RequestContext};
use crate::metrics::{Metered, WorkerMeter};
use crate::wasi::StoreState;
use futures::channel::oneshot;
use futures::future::FutureExt;
use futures::stream::{FuturesUnordered, Stream};
use std::collections::VecDeque;
use std::collections::btree_map::{BTreeMap, Entry};
use std::future;
use std::mem;
use std::ops::DerefMut;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;
use tokio::sync::Notify;
use wasmtime::component::Accessor;
use wasmtime::{AsContextMut, Store, format_err};
use wasmtime_wasi_http::WasiHttpCtxView;
use wasmtime_wasi_http::handler::{
    InstantiationError, Prepared, Proxy, ShouldAccept, TrapOrPanicError, WorkerExpiration,
    WorkerState, WorkerStatus,
};

/// A request handed to a worker.
pub(crate) type Request = http::Request<wasmtime_wasi_http::WasiBody>;
/// A component's response.
pub(crate) type Response = http::Response<wasmtime_wasi_http::WasiBody>;

type WorkerRequest = (
    RequestContext,
    Request,
    oneshot::Sender<Result<Response, wasmtime::Error>>,
);

/// Async MPMC channel where each item is delivered to at most one consumer.
struct Queue<T> {
    queue: Mutex<VecDeque<T>>,
    notify_push: Notify,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self {
            queue: Default::default(),
            notify_push: Default::default(),
        }
    }
}

impl<T> Queue<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<T>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn try_pop(&self) -> Option<T> {
        self.lock().pop_front()
    }

    async fn pop(&self) -> T {
        let mut notified = pin!(self.notify_push.notified());
        loop {
            notified.as_mut().enable();
            if let Some(item) = self.try_pop() {
                return item;
            }
            notified.as_mut().await;
            notified.set(self.notify_push.notified());
        }
    }
}

/// Start times of a worker's outstanding requests.
#[derive(Default)]
struct StartTimes(BTreeMap<Instant, usize>);

impl StartTimes {
    fn add(&mut self, time: Instant) {
        *self.0.entry(time).or_insert(0) += 1;
    }

    fn remove(&mut self, time: Instant) {
        if let Entry::Occupied(mut entry) = self.0.entry(time) {
            if *entry.get() <= 1 {
                entry.remove();
            } else {
                *entry.get_mut() -= 1;
            }
        }
    }

    fn most_recent(&self) -> Option<Instant> {
        self.0.last_key_value().map(|(&k, _)| k)
    }
}

struct Inner {
    state: ComponentInstances,
    request_queue: Queue<WorkerRequest>,
    worker_count: AtomicUsize,
}

/// Hands requests to a component's instances, creating and retiring them
/// by its [`ReusePolicy`](super::instance::ReusePolicy). Clone to share.
#[derive(Clone)]
pub(crate) struct ProxyHandler(Arc<Inner>);

impl ProxyHandler {
    pub(crate) fn new(state: ComponentInstances) -> Self {
        Self(Arc::new(Inner {
            state,
            request_queue: Default::default(),
            worker_count: AtomicUsize::new(0),
        }))
    }

    /// Handles one request. Errors downcast as upstream's do:
    /// `InstantiationError`, `ExpirationError`, `TrapOrPanicError`.
    pub(crate) async fn handle(
        &self,
        data: RequestContext,
        request: Request,
    ) -> Result<Response, wasmtime::Error> {
        let (tx, rx) = oneshot::channel();
        let req = (data, request, tx);
        if self.0.worker_count.load(Relaxed) == 0 {
            self.start_worker(Some(req));
        } else {
            let mut queue = self.0.request_queue.lock();
            queue.push_back(req);
            // See `Worker::set_available` for the other half of this race.
            if self.0.worker_count.load(Relaxed) == 0 {
                let req = queue.pop_back().expect("just pushed");
                drop(queue);
                self.start_worker(Some(req));
            } else {
                drop(queue);
                self.0.request_queue.notify_push.notify_one();
            }
        }
        rx.await.map_err(|_| TrapOrPanicError)?
    }

    fn start_worker(&self, request: Option<WorkerRequest>) {
        let worker = Worker {
            handler: self.clone(),
            available: false,
        };
        if self.0.state.metered() {
            let meter = Arc::new(WorkerMeter::new(self.0.state.metrics().cloned()));
            if let Some((context, ..)) = &request
                && let Some(usage) = &context.usage
            {
                // Its instance is created for it: that counts as its CPU.
                meter.request_started(usage);
            }
            tokio::spawn(Metered::new(
                worker.run(request, Some(meter.clone())),
                meter,
            ));
        } else {
            tokio::spawn(worker.run(request, None));
        }
    }
}

struct Worker {
    handler: ProxyHandler,
    available: bool,
}

impl Worker {
    fn set_available(&mut self, available: bool) {
        if available != self.available {
            self.available = available;
            if available {
                self.handler.0.worker_count.fetch_add(1, Relaxed);
            } else {
                // Decrement before checking the queue, so that `handle` sees
                // the new count before deciding whether to start a worker.
                let count = self.handler.0.worker_count.fetch_sub(1, Relaxed);
                if count == 1 && !self.handler.0.request_queue.is_empty() {
                    self.handler.start_worker(None);
                }
            }
        }
    }

    async fn run(self, request: Option<WorkerRequest>, meter: Option<Arc<WorkerMeter>>) {
        match self.handler.0.state.instantiate(meter.clone()).await {
            Ok(instance) => {
                self.run_(
                    instance.store,
                    instance.proxy,
                    instance.view,
                    instance.expiration,
                    instance.state,
                    request,
                    meter,
                )
                .await
            }
            Err(error) => {
                let error = Arc::new(error);
                let failed = |(request_data, request, tx): WorkerRequest| {
                    _ = tx.send(Err(InstantiationError {
                        request_data,
                        request: Mutex::new(request),
                        error: error.clone(),
                    }
                    .into()));
                };
                match request {
                    Some(request) => failed(request),
                    // Started for queued requests, which cannot be served.
                    None => mem::take(self.handler.0.request_queue.lock().deref_mut())
                        .into_iter()
                        .for_each(failed),
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_(
        mut self,
        store: Store<StoreState>,
        proxy: Proxy,
        view: fn(&mut StoreState) -> WasiHttpCtxView<'_>,
        expiration: super::instance::Expiration,
        state: super::instance::Worker,
        request: Option<WorkerRequest>,
        meter: Option<Arc<WorkerMeter>>,
    ) {
        // Passes the store to `WorkerState::drop` on every way out.
        struct Dropper {
            state: super::instance::Worker,
            store: Option<Store<StoreState>>,
        }

        impl Drop for Dropper {
            fn drop(&mut self) {
                if let Some(store) = self.store.take() {
                    self.state.drop(store, Err(format_err!("worker panicked")));
                }
            }
        }

        let mut dropper = Dropper {
            state,
            store: Some(store),
        };
        let proxy = &proxy;
        let accept_concurrent = AtomicBool::new(true);
        let status = Mutex::new((WorkerStatus::Idle, Instant::now()));
        let mut expiration = pin!(expiration);

        let function = async |accessor: &Accessor<_>| {
            let mut reuse_count = 0;
            let mut may_accept = true;
            let mut futures = FuturesUnordered::new();
            let mut start_times = StartTimes::default();

            let accept_request = |(request_data, request, tx): WorkerRequest,
                                  futures: &mut FuturesUnordered<_>,
                                  start_times: &mut StartTimes,
                                  reuse_count: &mut usize| {
                // Its client left while it waited in the queue: starting it
                // would only spend the guest's time (and retire a P3
                // instance) for nobody.
                if request_data.fate.is_abandoned() {
                    drop(tx);
                    return;
                }
                // Assume the new task is CPU-bound until the event loop
                // returns `Pending` (upstream's reasoning).
                accept_concurrent.store(false, Relaxed);
                *reuse_count += 1;
                if let (Some(meter), Some(usage)) = (&meter, &request_data.usage) {
                    meter.request_started(usage);
                }

                let prepared = accessor.with(|mut store| {
                    let prepared = Prepared::new(store.as_context_mut(), proxy, request, view, tx);
                    match prepared {
                        Ok(prepared) => {
                            let expiration = dropper.state.on_request_start(
                                store.as_context_mut(),
                                request_data,
                                prepared_task(&prepared),
                            );
                            Ok((prepared, expiration))
                        }
                        Err(e) => Err(e),
                    }
                });

                let start_time = Instant::now();
                start_times.add(start_time);
                *status.lock().unwrap_or_else(|p| p.into_inner()) =
                    (WorkerStatus::Requests, start_time);

                futures.push(async move {
                    let (prepared, expiration) = prepared?;
                    let sent = prepared.run(accessor, expiration).await?;
                    wasmtime::error::Ok((sent, start_time))
                });
            };

            if let Some(req) = request {
                accept_request(req, &mut futures, &mut start_times, &mut reuse_count);
            }

            let mut futures = pin!(futures);
            let handler = self.handler.clone();
            let mut incoming_requests = pin!(futures::stream::unfold(
                &handler.0.request_queue,
                |queue| async move {
                    let pair = queue.pop().await;
                    Some((pair, queue))
                }
            ));
            let func = match proxy {
                Proxy::P3(guest) => *guest.wasi_http_handler().func_handle().func(),
                Proxy::P2(guest) => *guest.wasi_http_incoming_handler().func_handle().func(),
            };
            future::poll_fn(|cx| {
                loop {
                    // Requests first: an expired one must stop the worker
                    // from taking new work before anything else happens.
                    match futures.as_mut().poll_next(cx) {
                        Poll::Ready(Some(Ok((responded, start_time)))) => {
                            start_times.remove(start_time);
                            *status.lock().unwrap_or_else(|p| p.into_inner()) =
                                if let Some(start_time) = start_times.most_recent() {
                                    (WorkerStatus::Requests, start_time)
                                } else {
                                    (WorkerStatus::PostReturn, Instant::now())
                                };
                            if !responded {
                                may_accept = false;
                            }
                        }
                        Poll::Ready(Some(Err(error))) => {
                            break Poll::Ready(Err(error));
                        }
                        Poll::Ready(None) | Poll::Pending => {}
                    }

                    let is_ready = accessor.poll_ready_for_concurrent_call(func, cx).is_ready();

                    self.set_available(
                        may_accept
                            && is_ready
                            && match dropper
                                .state
                                .should_accept_request(futures.len(), reuse_count)
                            {
                                ShouldAccept::Yes => {
                                    futures.is_empty() || accept_concurrent.load(Relaxed)
                                }
                                ShouldAccept::No => false,
                                ShouldAccept::Never => {
                                    may_accept = false;
                                    false
                                }
                            },
                    );

                    if self.available
                        && let Poll::Ready(Some(req)) = incoming_requests.as_mut().poll_next(cx)
                    {
                        accept_request(req, &mut futures, &mut start_times, &mut reuse_count);
                        continue;
                    }

                    if !futures.is_empty() {
                        break Poll::Pending;
                    }

                    if accessor.poll_no_interesting_tasks(cx).is_pending() {
                        break Poll::Pending;
                    }

                    if !(may_accept && is_ready) {
                        break Poll::Ready(Ok(()));
                    }

                    {
                        let mut status = status.lock().unwrap_or_else(|p| p.into_inner());
                        if status.0 != WorkerStatus::Idle {
                            *status = (WorkerStatus::Idle, Instant::now());
                        }
                    }
                    break Poll::Pending;
                }
            })
            .await
        };

        let result = {
            let mut future = pin!(
                dropper
                    .store
                    .as_mut()
                    .expect("the store is taken only below")
                    .run_concurrent(function)
                    .map(|v| v.flatten())
            );

            future::poll_fn(|cx| {
                let poll = future.as_mut().poll(cx);
                if poll.is_pending() {
                    // Expiration is polled outside the event loop, which a
                    // busy guest or a sync host call can hold up.
                    let (status, start) = *status.lock().unwrap_or_else(|p| p.into_inner());
                    if let Poll::Ready(()) = expiration.as_mut().poll(cx, status, start) {
                        return Poll::Ready(match status {
                            WorkerStatus::Requests | WorkerStatus::PostReturn
                                if expiration.abandoned() =>
                            {
                                Err(format_err!("{}", super::instance::ABANDONED))
                            }
                            WorkerStatus::Requests | WorkerStatus::PostReturn => {
                                Err(format_err!("guest timed out"))
                            }
                            WorkerStatus::Idle => Ok(()),
                        });
                    }
                    if !accept_concurrent.swap(true, Relaxed) {
                        return future.as_mut().poll(cx);
                    }
                }
                poll
            })
            .await
        };

        let store = dropper.store.take().expect("the store is still here");
        dropper.state.drop(store, result);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.set_available(false);
    }
}

/// The guest task a prepared call will run as (upstream's `Prepared::task`
/// is private).
fn prepared_task(prepared: &Prepared<'_, StoreState>) -> wasmtime::component::GuestTaskId {
    match prepared {
        Prepared::P3 { call, .. } => call.task(),
        Prepared::P2 { call, .. } => call.task(),
    }
}
