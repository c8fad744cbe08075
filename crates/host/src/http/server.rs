//! The HTTP server in front of the host.
//!
//! hyper 1 with hyper-util's auto builder: HTTP/1.1 and HTTP/2 cleartext
//! (prior knowledge) on one port, `TCP_NODELAY` on every connection. It takes
//! an already-bound listener and a shutdown future (so tests bind port 0);
//! on shutdown it stops accepting, lets in-flight requests finish for up to
//! the drain timeout, then returns.
//!
//! No client holds a connection for free ([`IngressLimits`]): at most
//! `max_connections` are open (more are closed as they are accepted, so the
//! host keeps descriptors for its admin endpoint, outbound calls and
//! files); a connection must deliver its first complete request head
//! (protocol detection and the HTTP/2 preface included) within
//! `first_request_timeout`; one with no request in flight is closed
//! after `idle_timeout`; and one whose client stopped reading its response
//! (the socket took no byte of a pending write) is closed after the same
//! `idle_timeout`, at least [`MIN_WRITE_STALL`].

use crate::host::Host;
use crate::http::body::ResponseBody;
use crate::limits::{Cap, CapClaim};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use nimbus_runtime::workload::long_polls;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// The shortest time a client that stopped reading keeps its connection:
/// a tiny idle timeout must not cut off a client that is merely slow.
pub const MIN_WRITE_STALL: Duration = Duration::from_secs(1);

/// The largest request head (request line or pseudo-headers, and all
/// header fields) the ingress takes, in HTTP/1.1 and HTTP/2 alike; a larger
/// one is answered 431. hyper's own HTTP/1.1 bound (about 400 KiB) would
/// let the connection cap's worth of clients pin gigabytes.
pub const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;

/// How the ingress bounds the connections clients hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressLimits {
    /// Most client connections open at once; more are closed on accept.
    /// Lowered at start to half the process's file-descriptor limit.
    pub max_connections: usize,
    /// From accept to the first complete request head.
    pub first_request_timeout: Duration,
    /// How long a connection with no request in flight stays open, and
    /// how long one stays open whose client takes none of its response
    /// (at least [`MIN_WRITE_STALL`]).
    pub idle_timeout: Duration,
}

impl Default for IngressLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            first_request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl IngressLimits {
    /// The admin endpoint's limits: its requests are short (a scrape, a
    /// probe), so a few connections and short timeouts suffice, and a client
    /// flooding it with idle connections cannot keep it away for long.
    pub fn admin() -> Self {
        Self {
            max_connections: 64,
            first_request_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(15),
        }
    }

    /// The connection cap this process can honour: at most half its
    /// descriptor limit, so that accepting up to the cap never starves the
    /// admin endpoint, outbound connections or file reads.
    pub fn effective_max_connections(&self) -> usize {
        let budget = crate::limits::descriptor_limit() / 2;
        self.max_connections.min(budget.max(16))
    }
}

/// Serves `host` on `listener` until `shutdown` resolves, then drains
/// in-flight requests for at most `drain_timeout`. Returns whether every
/// connection finished in time.
pub async fn serve(
    listener: TcpListener,
    host: Host,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_timeout: Duration,
) -> std::io::Result<bool> {
    // Everything below is compiled (and optimised) in this crate: a generic
    // body would be monomorphized in the caller, pulling hyper's whole
    // connection path into e.g. an unoptimised CLI build.
    serve_boxed(listener, host, Box::pin(shutdown), drain_timeout).await
}

async fn serve_boxed(
    listener: TcpListener,
    host: Host,
    mut shutdown: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    drain_timeout: Duration,
) -> std::io::Result<bool> {
    let limits = host.ingress_limits().clone();
    let max_connections = limits.effective_max_connections();
    if max_connections < limits.max_connections {
        tracing::warn!(
            configured = limits.max_connections,
            max_connections,
            "connection cap lowered to half the file-descriptor limit (raise `ulimit -n` for more)"
        );
    }
    let permits = Arc::new(Cap::new(max_connections));
    let metrics = host.metrics().clone();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that never finishes its headers must not hold a connection
    // (and a task) forever: the connection watch below closes it, the time
    // before hyper knows the protocol included.
    builder
        .http1()
        // No header-read timer of hyper's own: it would arm a timer for
        // every request head, and the watch already closes a connection
        // whose next head does not arrive (no request in flight).
        .header_read_timeout(None)
        .max_buf_size(MAX_REQUEST_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_REQUEST_HEAD_BYTES as u32)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let graceful = GracefulShutdown::new();
    let open_connections = Arc::new(AtomicUsize::new(0));
    while let Some((stream, peer)) = next_connection(&listener, &mut shutdown, "ingress").await {
        let Some(permit) = permits.try_claim() else {
            // Closing at once costs nothing but the accept; queueing would
            // hold the descriptor the cap exists to save.
            metrics.limit_hit("ingress_connections");
            tracing::debug!(%peer, max_connections, "connection refused: at the connection cap");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let watch = Arc::new(ConnectionWatch::new());
        let host = host.clone();
        let service = hyper::service::service_fn({
            let watch = watch.clone();
            move |request| {
                let host = host.clone();
                let busy = watch.request_started();
                async move {
                    let response = host.handle(request).await;
                    Ok::<_, Infallible>(response.map(|body| WatchedBody { body, _busy: busy }))
                }
            }
        });
        // The permit rides with the socket, so a connection upgraded out of
        // HTTP (a WebSocket) still holds its place under the cap.
        let stream = CountedStream::new(stream, permit, open_connections.clone(), watch.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        let limits = limits.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            metrics.connections().inc();
            match run_watched(connection, &watch, &limits, peer).await {
                Some(ConnectionLimit::FirstRequest) => metrics.limit_hit("ingress_first_request"),
                Some(ConnectionLimit::Idle) => metrics.limit_hit("ingress_idle"),
                Some(ConnectionLimit::WriteStalled) => metrics.limit_hit("ingress_write_stalled"),
                None => {}
            }
            metrics.connections().dec();
        });
    }
    drop(listener);
    // Upgraded connections (WebSockets) are out of hyper's hands: their
    // plugin closes them, within the same drain time.
    let drained = async {
        tokio::join!(graceful.shutdown(), host.drain_upgraded());
    };
    Ok(tokio::time::timeout(drain_timeout, drained).await.is_ok())
}

/// A client's socket with its place under the connection cap, given back
/// when the socket closes (after an upgrade too).
struct CountedStream {
    stream: tokio::net::TcpStream,
    _permit: CapClaim,
    /// The listener's open connections, this one included.
    open: Arc<AtomicUsize>,
    /// When the write about to be made was held back, if it was.
    held_at: Option<std::time::Instant>,
    /// The last write left bytes unwritten (the socket was full): the rest
    /// goes out when the socket takes it, not held once more.
    write_incomplete: bool,
    /// Told when the socket stops taking writes and when it takes one
    /// again.
    watch: Arc<ConnectionWatch>,
}

/// How long holds stay off on a thread after a long poll there: a guest's
/// worker polled for long, or a hold itself lasted long, which says that
/// something else on the thread did (`nimbus_runtime::workload::long_polls`).
/// A pass of short tasks under load lasts up to a couple of milliseconds
/// (61 P2 requests' worth), under that module's bound; one with a guest's
/// epoch slice in it, 10 ms, over it.
const HOLDS_OFF: std::time::Duration = std::time::Duration::from_secs(1);

impl CountedStream {
    /// Counts a new connection of the listener whose open connections
    /// `open` counts.
    fn new(
        stream: tokio::net::TcpStream,
        permit: CapClaim,
        open: Arc<AtomicUsize>,
        watch: Arc<ConnectionWatch>,
    ) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self {
            stream,
            _permit: permit,
            open,
            held_at: None,
            write_incomplete: false,
            watch,
        }
    }

    /// Whether to hold back the write about to be made until this thread
    /// has run every task that is ready now: yes, once per write, while
    /// the listener has other connections open.
    ///
    /// A write that finds its client asleep pays for waking it: on a VM an
    /// inter-processor interrupt, several microseconds, a third of a P2
    /// request's CPU when every response woke its client. Held writes go
    /// out back to back at the end of the scheduler's pass, and a client
    /// woken by the first is still awake for the rest. The hold ends when
    /// the runtime's worker runs out of ready tasks, or at its next I/O
    /// poll (every 61 tasks). Those tasks are short unless a guest computes
    /// on the thread in long slices: then nothing is held there (a worker
    /// that polled a guest for long says so; a hold that lasted too long
    /// says so too), for [`HOLDS_OFF`]. A lone connection has nobody to
    /// gather with, and its writes are never held; nor is the rest of a
    /// write the socket could not take whole.
    fn hold_write(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(held_at) = self.held_at.take() {
            // A hold as long as a long poll waited behind one.
            long_polls::record(held_at, std::time::Instant::now());
            return false;
        }
        if self.write_incomplete || self.open.load(Ordering::Relaxed) < 2 {
            return false;
        }
        let now = std::time::Instant::now();
        if long_polls::within(HOLDS_OFF, now) {
            return false;
        }
        // tokio's `yield_now` wakes the task once its worker has no task
        // ready; outside a runtime it wakes it at once.
        let mut yielded = std::pin::pin!(tokio::task::yield_now());
        if yielded.as_mut().poll(cx).is_pending() {
            self.held_at = Some(now);
            return true;
        }
        false
    }

    /// Notes whether `polled`, a write of `len` bytes, left some unwritten.
    fn written(
        &mut self,
        polled: Poll<std::io::Result<usize>>,
        len: usize,
    ) -> Poll<std::io::Result<usize>> {
        self.write_incomplete = match &polled {
            Poll::Ready(Ok(written)) => *written < len,
            Poll::Ready(Err(_)) => false,
            Poll::Pending => true,
        };
        match &polled {
            Poll::Pending => self.watch.write_blocked(),
            Poll::Ready(Ok(written)) if *written > 0 => self.watch.write_progressed(),
            Poll::Ready(_) => {}
        }
        polled
    }
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl tokio::io::AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.hold_write(cx) {
            return Poll::Pending;
        }
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.written(polled, buf.len())
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.hold_write(cx) {
            return Poll::Pending;
        }
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        let len = bufs.iter().map(|buf| buf.len()).sum();
        self.written(polled, len)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Which of [`IngressLimits`]' timeouts closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionLimit {
    /// No complete request head within `first_request_timeout`.
    FirstRequest,
    /// No request in flight for `idle_timeout`.
    Idle,
    /// A response's client took none of it for `idle_timeout`.
    WriteStalled,
}

/// Runs `connection` until it ends or `watch` finds it idle past `limits`;
/// returns the limit that closed it, if one did.
pub(crate) async fn run_watched<C, E>(
    connection: C,
    watch: &ConnectionWatch,
    limits: &IngressLimits,
    peer: std::net::SocketAddr,
) -> Option<ConnectionLimit>
where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%peer, error = %error, "connection ended with an error");
            }
            None
        }
        which = watch.expired(limits) => {
            tracing::debug!(%peer, limit = ?which, "connection closed: no request in time");
            Some(which)
        }
    }
}

/// What one connection is doing: requests in flight, and since when it has
/// been idle. Kept in atomics, so that a request's start and end cost two
/// atomic operations and wake nothing; the watch's one timer is re-armed
/// only when it fires, never per request.
pub(crate) struct ConnectionWatch {
    opened: Instant,
    in_flight: AtomicUsize,
    served: AtomicBool,
    /// When the connection last had no request in flight, as nanoseconds
    /// since `opened`.
    idle_since: AtomicU64,
    /// Since when the socket has taken none of a pending write, as
    /// nanoseconds since `opened` plus one; 0 while writes go through.
    stalled_since: AtomicU64,
}

impl ConnectionWatch {
    pub(crate) fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            stalled_since: AtomicU64::new(0),
        }
    }

    /// The socket took none of a write: the client may have stopped
    /// reading. Only the first such write since the last progress reads
    /// the clock.
    fn write_blocked(&self) {
        if self.stalled_since.load(Ordering::Relaxed) == 0 {
            let since = u64::try_from(self.opened.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
            self.stalled_since.store(since + 1, Ordering::Relaxed);
        }
    }

    /// The socket took bytes again.
    fn write_progressed(&self) {
        if self.stalled_since.load(Ordering::Relaxed) != 0 {
            self.stalled_since.store(0, Ordering::Relaxed);
        }
    }

    /// A request head arrived; the connection is busy until the returned
    /// guard (held by the response body) is dropped.
    pub(crate) fn request_started(self: &Arc<Self>) -> BusyGuard {
        self.served.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        BusyGuard(self.clone())
    }

    /// Resolves, naming the limit, once the connection has been idle too
    /// long: before its first request, `first_request_timeout` after
    /// accept; after one, `idle_timeout` after the last response ended;
    /// while a response is sent, once its client has taken none of it for
    /// `idle_timeout` (at least [`MIN_WRITE_STALL`]), which is noticed
    /// within twice that.
    async fn expired(&self, limits: &IngressLimits) -> ConnectionLimit {
        // The idle timeout may be the shorter: a connection that served
        // its first request early is looked at no later than that.
        let first_look = limits.first_request_timeout.min(limits.idle_timeout);
        let timer = tokio::time::sleep_until(later(self.opened, first_look));
        tokio::pin!(timer);
        loop {
            timer.as_mut().await;
            let now = Instant::now();
            let next = if self.in_flight.load(Ordering::Acquire) > 0 {
                // Busy: it goes idle no sooner than now, so it cannot expire
                // within a whole idle timeout from now (a zero timeout must
                // not make this a spin).
                let again = later(now, limits.idle_timeout.max(Duration::from_millis(10)));
                match self.stalled_since.load(Ordering::Relaxed) {
                    0 => again,
                    stamp => {
                        let stalled_at = later(self.opened, Duration::from_nanos(stamp - 1));
                        let deadline = later(stalled_at, limits.idle_timeout.max(MIN_WRITE_STALL));
                        if now >= deadline {
                            return ConnectionLimit::WriteStalled;
                        }
                        deadline.min(again)
                    }
                }
            } else {
                let (timeout, limit) = if self.served.load(Ordering::Relaxed) {
                    (limits.idle_timeout, ConnectionLimit::Idle)
                } else {
                    (limits.first_request_timeout, ConnectionLimit::FirstRequest)
                };
                let idle_since = later(
                    self.opened,
                    Duration::from_nanos(self.idle_since.load(Ordering::Relaxed)),
                );
                let deadline = later(idle_since, timeout);
                if now >= deadline {
                    return limit;
                }
                if limit == ConnectionLimit::FirstRequest {
                    // A first request may still come and end well before
                    // this deadline: its idle time is then looked at no
                    // later than an idle timeout from now.
                    deadline.min(later(
                        now,
                        limits.idle_timeout.max(Duration::from_millis(100)),
                    ))
                } else {
                    deadline
                }
            };
            timer.as_mut().reset(next);
        }
    }
}

/// `at + wait`, saturating: a timeout configured as good as forever must
/// not panic the connection's task.
fn later(at: Instant, wait: Duration) -> Instant {
    nimbus_model::time::deadline(at.into_std(), wait).into()
}

/// Marks a connection busy while a response is being sent.
pub(crate) struct BusyGuard(Arc<ConnectionWatch>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let watch = &self.0;
        let now = u64::try_from(watch.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // Written before the count drops, so a watch that sees no request
        // in flight also sees when the last one ended.
        watch.idle_since.fetch_max(now, Ordering::Relaxed);
        watch.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection counted busy until it is
/// sent or dropped.
pub(crate) struct WatchedBody<B = ResponseBody> {
    pub(crate) body: B,
    pub(crate) _busy: BusyGuard,
}

impl<B: http_body::Body + Unpin> http_body::Body for WatchedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The next connection on `listener`, or `None` once `shutdown` resolves.
/// Failed accepts (running out of file descriptors and similar) are
/// transient: logged with the `endpoint`'s name and retried after a pause,
/// never spun on or returned.
pub(crate) async fn next_connection<F>(
    listener: &TcpListener,
    shutdown: &mut F,
    endpoint: &str,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)>
where
    F: Future<Output = ()> + Unpin,
{
    loop {
        tokio::select! {
            _ = &mut *shutdown => return None,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => return Some(accepted),
                Err(error) => {
                    tracing::warn!(%error, endpoint, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWrite};

    /// An accepted loopback connection and its client end.
    async fn connection(open: &Arc<AtomicUsize>) -> (CountedStream, tokio::net::TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let permit = Arc::new(Cap::new(1)).try_claim().unwrap();
        (
            CountedStream::new(
                accepted,
                permit,
                open.clone(),
                Arc::new(ConnectionWatch::new()),
            ),
            client,
        )
    }

    /// Two accepted connections of one listener (each with its client end),
    /// and the listener's count of open connections.
    async fn two_connections() -> (
        Arc<AtomicUsize>,
        (CountedStream, tokio::net::TcpStream),
        (CountedStream, tokio::net::TcpStream),
    ) {
        let open = Arc::new(AtomicUsize::new(0));
        let first = connection(&open).await;
        let second = connection(&open).await;
        (open, first, second)
    }

    /// Writes `bytes` with as many polls as it takes; returns the polls.
    async fn write_counting_polls(stream: &mut CountedStream, bytes: &[u8]) -> usize {
        let mut polls = 0;
        let write = std::future::poll_fn(|cx| {
            polls += 1;
            Pin::new(&mut *stream).poll_write(cx, bytes)
        });
        let written = tokio::time::timeout(Duration::from_secs(10), write)
            .await
            .expect("a held write is released once the runtime has no ready task")
            .unwrap();
        assert_eq!(written, bytes.len());
        polls
    }

    async fn read_exactly(client: &mut tokio::net::TcpStream, len: usize) -> Vec<u8> {
        let mut read = vec![0; len];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut read))
            .await
            .expect("the written bytes arrive")
            .unwrap();
        read
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn writes_are_held_once_while_other_connections_are_open() {
        // On a worker of the runtime, where a held write waits for the end
        // of the worker's pass (the test's own body runs outside any).
        tokio::spawn(async {
            let (open, (mut first, mut first_client), (mut second, mut second_client)) =
                two_connections().await;
            assert_eq!(open.load(Ordering::Relaxed), 2);

            assert_eq!(
                write_counting_polls(&mut first, b"one").await,
                2,
                "held once"
            );
            assert_eq!(read_exactly(&mut first_client, 3).await, b"one");
            assert_eq!(
                write_counting_polls(&mut first, b"two").await,
                2,
                "each write is held"
            );
            assert_eq!(read_exactly(&mut first_client, 3).await, b"two");

            drop(first);
            assert_eq!(
                open.load(Ordering::Relaxed),
                1,
                "a closed connection is uncounted"
            );
            assert_eq!(
                write_counting_polls(&mut second, b"alone").await,
                1,
                "a lone one is not held"
            );
            assert_eq!(read_exactly(&mut second_client, 5).await, b"alone");
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn held_writes_are_released_on_a_current_thread_runtime_too() {
        let (_open, (mut first, mut first_client), _second) = two_connections().await;
        assert_eq!(write_counting_polls(&mut first, b"one").await, 2);
        assert_eq!(read_exactly(&mut first_client, 3).await, b"one");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_hold_that_lasts_too_long_turns_holds_off_on_its_thread() {
        let (_open, (mut first, mut first_client), _second) = two_connections().await;
        // While the write is held, another task on the thread polls for
        // long (as a guest computing in epoch slices would).
        let mut polls = 0;
        let write = std::future::poll_fn(|cx| {
            polls += 1;
            if polls == 1 {
                tokio::spawn(async { std::thread::sleep(long_polls::LONG_POLL * 5) });
            }
            Pin::new(&mut first).poll_write(cx, b"one")
        });
        tokio::time::timeout(Duration::from_secs(10), write)
            .await
            .expect("the held write is released")
            .unwrap();
        assert_eq!(polls, 2, "held once, behind the long poll");
        assert_eq!(read_exactly(&mut first_client, 3).await, b"one");
        assert_eq!(
            write_counting_polls(&mut first, b"two").await,
            1,
            "holds are off on this thread after one lasted too long"
        );
        assert_eq!(read_exactly(&mut first_client, 3).await, b"two");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn writes_are_not_held_on_a_thread_where_a_guest_ran_long() {
        let (_open, (mut first, mut first_client), _second) = two_connections().await;
        let began = std::time::Instant::now();
        long_polls::record(began, began + long_polls::LONG_POLL * 2);
        assert_eq!(write_counting_polls(&mut first, b"one").await, 1);
        assert_eq!(read_exactly(&mut first_client, 3).await, b"one");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_rest_of_a_write_the_socket_could_not_take_is_not_held() {
        let (_open, (mut first, mut first_client), _second) = two_connections().await;
        // More than a loopback socket's buffers hold while nobody reads.
        let big = vec![7u8; 64 << 20];
        let written = tokio::time::timeout(
            Duration::from_secs(10),
            std::future::poll_fn(|cx| Pin::new(&mut first).poll_write(cx, &big)),
        )
        .await
        .expect("a write of what the socket takes")
        .unwrap();
        assert!(written < big.len(), "the socket took all {written} bytes");
        let rest = &big[written..];
        let polled =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut first).poll_write(cx, rest))).await;
        assert!(
            first.held_at.is_none(),
            "the rest went to the socket, not held ({polled:?})"
        );
        // Once the client reads, everything arrives.
        let total = big.len();
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            let mut chunk = vec![0u8; 1 << 20];
            while all.len() < total {
                let n = first_client.read(&mut chunk).await.unwrap();
                assert_ne!(n, 0, "the connection closed early");
                all.extend_from_slice(&chunk[..n]);
            }
            all
        });
        let mut sent = written;
        if let Poll::Ready(Ok(n)) = polled {
            sent += n;
        }
        while sent < total {
            sent += tokio::time::timeout(
                Duration::from_secs(10),
                std::future::poll_fn(|cx| Pin::new(&mut first).poll_write(cx, &big[sent..])),
            )
            .await
            .expect("the socket drains")
            .unwrap();
        }
        let received = tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .expect("the client reads everything")
            .unwrap();
        assert_eq!(received.len(), total);
        assert!(received.iter().all(|byte| *byte == 7));
    }
}
