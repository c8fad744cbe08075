//! One WebSocket connection from its upgrade request to its `on-close`:
//! the handshake's checks, the handler calls (each on a fresh, metered
//! instance within the component's deadline), the reader that delivers
//! messages one at a time, the writer that drains the connection's queue,
//! and the bounds that end a connection (idle, too large, a failed
//! handler, a stopped workload, a client that does not answer a close).

use crate::bindings::HandlerComponentPre;
use crate::{Connection, Endpoint, Hub, Outgoing, QUEUE_DEPTH, cut_reason, types};
use futures::{SinkExt as _, StreamExt as _};
use nimbus_observe::metrics::WebSocketEnd;
use nimbus_plugin::upgrade::{PendingConnection, UpgradeAnswer, UpgradeRequest};
use nimbus_plugin::{ComponentHandle, PluginState};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::Instrument as _;

/// How long the host waits for the client's answer to a close frame, and
/// for the last frames to leave, before it drops the connection.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Why a handler call did not return.
#[derive(Debug)]
pub(crate) enum CallFailure {
    /// It trapped (or the instance could not be made); the error, one line.
    Trap(String),
    /// It ran past the component's deadline.
    Deadline(Duration),
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Trap(error) => write!(f, "{error}"),
            Self::Deadline(limit) => {
                write!(f, "exceeded its deadline of {} ms", limit.as_millis())
            }
        }
    }
}

/// Calls a workload's handler export; type-erased over the store.
pub(crate) trait Driver: Send + Sync {
    fn on_open(
        &self,
        id: u64,
        path_with_query: String,
        headers: Vec<(String, Vec<u8>)>,
    ) -> BoxFuture<Result<Result<Option<String>, u16>, CallFailure>>;

    fn on_message(
        &self,
        id: u64,
        message: types::Message,
    ) -> BoxFuture<Result<Result<(), String>, CallFailure>>;

    fn on_close(&self, id: u64, code: u16, reason: String) -> BoxFuture<Result<(), CallFailure>>;
}

/// The handler export of one component.
pub(crate) struct HandlerDriver<T: 'static> {
    pub(crate) component: ComponentHandle<T>,
    pub(crate) pre: HandlerComponentPre<T>,
}

impl<T: PluginState> HandlerDriver<T> {
    /// Runs `call` on a fresh instance, on a task of its own whose CPU is
    /// counted and charged to the component, within its deadline.
    fn call<R, F>(&self, (event, id): (&str, u64), call: F) -> BoxFuture<Result<R, CallFailure>>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(
                &'a mut wasmtime::Store<T>,
                crate::bindings::HandlerComponent,
            )
                -> Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>
            + Send
            + 'static,
    {
        let (component, pre) = (self.component.clone(), self.pre.clone());
        let span = nimbus_observe::trace::websocket_span(
            component.workload(),
            component.component(),
            event,
            id,
        );
        Box::pin(async move {
            let deadline = component.timeout();
            let metrics = component.metrics().cloned();
            let budget = component.cpu_budget().cloned();
            let task =
                nimbus_observe::metrics::spawn_metered(metrics.as_ref(), budget, async move {
                    let run = async {
                        let mut store = component.new_store()?;
                        store
                            .data_mut()
                            .set_trace_parent(nimbus_observe::trace::Parent::of(&span));
                        let instance = pre.instantiate_async(&mut store).await?;
                        call(&mut store, instance).await
                    };
                    let outcome = tokio::time::timeout(component.timeout(), run)
                        .instrument(span.clone())
                        .await;
                    if !matches!(outcome, Ok(Ok(_))) {
                        nimbus_observe::trace::record_error(&span);
                    }
                    outcome
                });
            match task.await {
                Ok(Ok(Ok(value))) => Ok(value),
                Ok(Ok(Err(trap))) => Err(CallFailure::Trap(format!("{trap:#}").replace('\n', " "))),
                Ok(Err(_)) => Err(CallFailure::Deadline(deadline)),
                Err(join) => Err(CallFailure::Trap(format!("the handler task ended: {join}"))),
            }
        })
    }
}

impl<T: PluginState> Driver for HandlerDriver<T> {
    fn on_open(
        &self,
        id: u64,
        path_with_query: String,
        headers: Vec<(String, Vec<u8>)>,
    ) -> BoxFuture<Result<Result<Option<String>, u16>, CallFailure>> {
        self.call(("on-open", id), move |store, instance| {
            Box::pin(async move {
                instance
                    .nimbus_websocket_handler()
                    .call_on_open(store, id, &path_with_query, &headers)
                    .await
            })
        })
    }

    fn on_message(
        &self,
        id: u64,
        message: types::Message,
    ) -> BoxFuture<Result<Result<(), String>, CallFailure>> {
        self.call(("on-message", id), move |store, instance| {
            Box::pin(async move {
                instance
                    .nimbus_websocket_handler()
                    .call_on_message(store, id, &message)
                    .await
            })
        })
    }

    fn on_close(&self, id: u64, code: u16, reason: String) -> BoxFuture<Result<(), CallFailure>> {
        self.call(("on-close", id), move |store, instance| {
            Box::pin(async move {
                instance
                    .nimbus_websocket_handler()
                    .call_on_close(store, id, code, &reason)
                    .await
            })
        })
    }
}

/// A guest's message as a frame.
pub(crate) fn to_frame(message: types::Message) -> Message {
    match message {
        types::Message::Text(text) => Message::text(text),
        types::Message::Binary(bytes) => Message::binary(bytes),
    }
}

/// Checks an upgrade request, asks the handler's `on-open`, and on `ok`
/// answers with the switch and the session that runs the connection.
pub(crate) async fn upgrade(hub: Arc<Hub>, request: UpgradeRequest) -> UpgradeAnswer {
    let refuse = |status: u16, message: String| UpgradeAnswer::Refuse {
        status,
        message,
        headers: Vec::new(),
    };
    let Some(endpoint) = hub.endpoint(&request.workload) else {
        return refuse(
            503,
            format!(
                "workload `{}` has no WebSocket handler running",
                request.workload
            ),
        );
    };
    if request.header("sec-websocket-version").map(str::trim) != Some("13") {
        endpoint.ended(WebSocketEnd::Refused);
        return UpgradeAnswer::Refuse {
            status: 426,
            message: "only WebSocket version 13 is spoken here".into(),
            headers: vec![("sec-websocket-version", "13".into())],
        };
    }
    let Some(key) = request
        .header("sec-websocket-key")
        .map(str::trim)
        .filter(|key| is_handshake_key(key))
    else {
        endpoint.ended(WebSocketEnd::Refused);
        return refuse(
            400,
            "the upgrade request has no valid Sec-WebSocket-Key (16 bytes in base64)".into(),
        );
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let Ok(permit) = endpoint.slots.clone().try_acquire_owned() else {
        endpoint.ended(WebSocketEnd::OverLimit);
        return refuse(
            503,
            format!(
                "workload `{}` has its most WebSocket connections open ({})",
                request.workload, endpoint.settings.max_connections
            ),
        );
    };
    let id = hub.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let (sender, queue) = mpsc::channel(QUEUE_DEPTH);
    let connection = Arc::new(Connection::new(sender));
    // In the table before `on-open`, so the handler may greet the client
    // (those messages leave right after the 101); out of it whenever this
    // is dropped: refused, the client gone mid-`on-open`, or ended.
    let registered = Registration::new(&hub, &request.workload, id, connection.clone());
    let offered: Vec<String> = offered_protocols(&request.headers)
        .map(str::to_string)
        .collect();
    let opened = endpoint
        .driver
        .on_open(id, request.path_with_query, request.headers)
        .await;
    let protocol = match opened {
        Ok(Ok(None)) => None,
        Ok(Ok(Some(chosen))) => {
            if !offered.contains(&chosen) {
                endpoint.ended(WebSocketEnd::HandlerFailed);
                tracing::warn!(
                    workload = %request.workload,
                    component = %endpoint.component,
                    connection = id,
                    protocol = chosen,
                    "WebSocket on-open chose a subprotocol the client did not offer; refused the connection"
                );
                return refuse(500, "the WebSocket handler failed".into());
            }
            Some(chosen)
        }
        Ok(Err(status)) => {
            endpoint.ended(WebSocketEnd::Refused);
            let status = if (400..=599).contains(&status) {
                status
            } else {
                403
            };
            return refuse(
                status,
                "the WebSocket handler refused the connection".into(),
            );
        }
        Err(failure) => {
            endpoint.ended(WebSocketEnd::HandlerFailed);
            tracing::warn!(
                workload = %request.workload,
                component = %endpoint.component,
                connection = id,
                error = %failure,
                "WebSocket on-open failed; refused the connection"
            );
            return refuse(500, "the WebSocket handler failed".into());
        }
    };
    let session = Session {
        hub,
        endpoint,
        workload: request.workload,
        id,
        connection,
        _registered: registered,
        _permit: permit,
    };
    let mut headers = vec![("sec-websocket-accept", accept)];
    if let Some(protocol) = protocol {
        headers.push(("sec-websocket-protocol", protocol));
    }
    UpgradeAnswer::Switch {
        headers,
        start: Box::new(move |pending| {
            let sessions = session.hub.sessions.clone();
            sessions.spawn(session.run(pending, queue));
        }),
    }
}

/// The subprotocols the client offered (`Sec-WebSocket-Protocol`, every
/// header line, comma-separated).
fn offered_protocols(headers: &[(String, Vec<u8>)]) -> impl Iterator<Item = &str> {
    headers
        .iter()
        .filter(|(name, _)| name == "sec-websocket-protocol")
        .filter_map(|(_, value)| std::str::from_utf8(value).ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

/// Whether `key` is base64 of 16 bytes, as RFC 6455 asks.
fn is_handshake_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() == 24
        && key.ends_with("==")
        && bytes[..22]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// An accepted connection.
struct Session {
    hub: Arc<Hub>,
    endpoint: Arc<Endpoint>,
    workload: Arc<str>,
    id: u64,
    connection: Arc<Connection>,
    _registered: Registration,
    _permit: OwnedSemaphorePermit,
}

/// A connection's entry in the hub, removed when this drops.
struct Registration {
    hub: Arc<Hub>,
    workload: Arc<str>,
    id: u64,
}

impl Registration {
    fn new(hub: &Arc<Hub>, workload: &Arc<str>, id: u64, connection: Arc<Connection>) -> Self {
        hub.add(workload, id, connection);
        Self {
            hub: hub.clone(),
            workload: workload.clone(),
            id,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.remove(&self.workload, self.id);
    }
}

/// How a connection ended: the metric's reason, and the code and reason
/// `on-close` gets.
struct Ending {
    end: WebSocketEnd,
    code: u16,
    reason: String,
}

impl Ending {
    fn new(end: WebSocketEnd, code: u16, reason: &str) -> Self {
        Self {
            end,
            code,
            reason: reason.to_string(),
        }
    }
}

impl Session {
    async fn run(self, pending: PendingConnection, queue: mpsc::Receiver<Outgoing>) {
        let ending = match pending.await {
            Ok(io) => {
                let settings = self.endpoint.settings;
                let config = WebSocketConfig::default()
                    .max_message_size(Some(settings.max_message_bytes))
                    .max_frame_size(Some(settings.max_message_bytes));
                let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                let _open = self.endpoint.metrics.as_ref().map(|m| m.websocket_opened());
                self.connection.open.store(true, Ordering::Release);
                self.converse(socket, queue).await
            }
            Err(error) => {
                tracing::debug!(workload = %self.workload, connection = self.id, %error, "the client left before the upgrade");
                Ending::new(WebSocketEnd::Dropped, 1006, "")
            }
        };
        self.hub.remove(&self.workload, self.id);
        self.endpoint.ended(ending.end);
        tracing::debug!(
            workload = %self.workload,
            connection = self.id,
            code = ending.code,
            reason = ending.end.label(),
            "WebSocket connection ended"
        );
        if let Err(failure) = self
            .endpoint
            .driver
            .on_close(self.id, ending.code, ending.reason)
            .await
        {
            tracing::warn!(
                workload = %self.workload,
                component = %self.endpoint.component,
                connection = self.id,
                error = %failure,
                "WebSocket on-close failed"
            );
        }
    }

    /// Delivers the client's messages and writes the queue until the
    /// connection ends.
    async fn converse<S>(
        &self,
        socket: WebSocketStream<S>,
        queue: mpsc::Receiver<Outgoing>,
    ) -> Ending
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sink, mut frames) = socket.split();
        let activity = Arc::new(Activity::new());
        let (finish, finished) = oneshot::channel();
        let writer = tokio::spawn(write_queue(
            sink,
            (queue, finished),
            (self.connection.clone(), activity.clone()),
            self.endpoint.metrics.clone(),
        ));
        let ending = self.read(&mut frames, &activity).await;
        // The reader is done: nothing more goes out once the queue is empty.
        self.hub.remove(&self.workload, self.id);
        let closing_handshake = async {
            if ending.end != WebSocketEnd::Dropped && self.connection.is_closing() {
                // The host or a component sent a close: wait for the answer.
                let answered = async {
                    while let Some(frame) = frames.next().await {
                        if matches!(frame, Ok(Message::Close(_)) | Err(_)) {
                            break;
                        }
                    }
                };
                let _ = tokio::time::timeout(CLOSE_WAIT, answered).await;
            }
        };
        closing_handshake.await;
        drop(frames);
        let _ = finish.send(());
        let mut writer = writer;
        if tokio::time::timeout(CLOSE_WAIT, &mut writer).await.is_err() {
            // A client that does not read keeps the last write waiting.
            writer.abort();
        }
        ending
    }

    /// Reads frames until the connection ends, calling `on-message` for
    /// each message in order.
    async fn read<S>(
        &self,
        frames: &mut futures::stream::SplitStream<WebSocketStream<S>>,
        activity: &Activity,
    ) -> Ending
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let settings = self.endpoint.settings;
        loop {
            let idle_at = activity.last() + settings.idle_timeout;
            let frame = tokio::select! {
                biased;
                _ = self.endpoint.stopped.cancelled() => {
                    let reason = if self.hub.draining.load(Ordering::Acquire) {
                        "the host is shutting down"
                    } else {
                        "the workload stopped"
                    };
                    self.close(1001, reason);
                    return Ending::new(WebSocketEnd::Stopped, 1001, reason);
                }
                _ = self.connection.close_asked.notified() => {
                    let (code, reason) = self.connection.closed_with().unwrap_or((1000, String::new()));
                    return Ending { end: WebSocketEnd::Component, code, reason };
                }
                // Frames that already arrived come before the idle timer: a
                // host that was stalled past the deadline must not close a
                // connection whose client kept talking.
                frame = frames.next() => frame,
                _ = tokio::time::sleep_until(idle_at) => {
                    if activity.last() + settings.idle_timeout > Instant::now() {
                        continue;
                    }
                    self.close(1001, "idle");
                    return Ending::new(WebSocketEnd::Idle, 1001, "idle");
                }
            };
            activity.touch();
            let message = match frame {
                None => return Ending::new(WebSocketEnd::Dropped, 1006, ""),
                Some(Ok(Message::Text(text))) => types::Message::Text(text.as_str().to_owned()),
                Some(Ok(Message::Binary(bytes))) => types::Message::Binary(bytes.to_vec()),
                Some(Ok(Message::Close(frame))) => {
                    if let Some((code, reason)) = self.connection.closed_with() {
                        // The client's answer to a component's close.
                        return Ending {
                            end: WebSocketEnd::Component,
                            code,
                            reason,
                        };
                    }
                    let (code, reason) = match frame {
                        Some(frame) => (u16::from(frame.code), frame.reason.as_str().to_owned()),
                        None => (1005, String::new()),
                    };
                    return Ending {
                        end: WebSocketEnd::Client,
                        code,
                        reason,
                    };
                }
                // Pings are answered by the framing; pongs only keep the
                // connection alive.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Err(WsError::Capacity(_))) => {
                    self.close(1009, "message too large");
                    return Ending::new(WebSocketEnd::TooLarge, 1009, "message too large");
                }
                // RFC 6455 7.4.1: 1002 for a protocol error, 1007 for text
                // that is not UTF-8.
                Some(Err(error @ (WsError::Protocol(_) | WsError::Utf8(_)))) => {
                    let (code, reason) = match error {
                        WsError::Utf8(_) => (1007, "text is not UTF-8"),
                        _ => (1002, "protocol error"),
                    };
                    tracing::debug!(workload = %self.workload, connection = self.id, %error, "WebSocket client broke the protocol");
                    self.close(code, reason);
                    return Ending::new(WebSocketEnd::ProtocolError, code, reason);
                }
                Some(Err(error)) => {
                    tracing::debug!(workload = %self.workload, connection = self.id, %error, "WebSocket connection failed");
                    return Ending::new(WebSocketEnd::Dropped, 1006, "");
                }
            };
            if self.connection.is_closing() {
                // A close is under way: later messages are not delivered.
                continue;
            }
            if let Some(metrics) = &self.endpoint.metrics {
                metrics.websocket_message(true);
            }
            match self.endpoint.driver.on_message(self.id, message).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(
                    workload = %self.workload,
                    component = %self.endpoint.component,
                    connection = self.id,
                    error,
                    "WebSocket on-message returned an error"
                ),
                Err(failure) => {
                    tracing::error!(
                        workload = %self.workload,
                        component = %self.endpoint.component,
                        connection = self.id,
                        error = %failure,
                        "WebSocket on-message failed; closing the connection"
                    );
                    self.close(1011, "the handler failed");
                    return Ending::new(WebSocketEnd::HandlerFailed, 1011, "the handler failed");
                }
            }
            activity.touch();
        }
    }

    /// Starts the closing handshake from the host's side, unless one is
    /// under way. Never waits: with the queue full the connection is
    /// dropped instead (the writer ends when the session does).
    fn close(&self, code: u16, reason: &str) {
        if self.connection.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self
            .connection
            .outgoing
            .try_send(Outgoing::Close(code, cut_reason(reason.to_string())));
    }
}

/// When the connection last carried a frame either way.
struct Activity {
    start: Instant,
    millis: std::sync::atomic::AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            millis: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let elapsed = self.start.elapsed().as_millis() as u64;
        self.millis.fetch_max(elapsed, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.millis.load(Ordering::Relaxed))
    }
}

/// Writes queued frames in order until the session says it is finished,
/// then what is still queued, then ends the connection's write side.
async fn write_queue<S>(
    mut sink: futures::stream::SplitSink<WebSocketStream<S>, Message>,
    (mut queue, mut finished): (mpsc::Receiver<Outgoing>, oneshot::Receiver<()>),
    (connection, activity): (Arc<Connection>, Arc<Activity>),
    metrics: Option<Arc<nimbus_observe::metrics::ComponentMetrics>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut closed = false;
    let mut finishing = false;
    loop {
        let outgoing = if finishing {
            match queue.try_recv() {
                Ok(outgoing) => outgoing,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                biased;
                outgoing = queue.recv() => match outgoing {
                    Some(outgoing) => outgoing,
                    None => break,
                },
                _ = &mut finished => {
                    finishing = true;
                    continue;
                }
            }
        };
        if closed {
            continue;
        }
        let sent = match outgoing {
            Outgoing::Message(message) => {
                let sent = sink.send(message).await;
                if sent.is_ok()
                    && let Some(metrics) = &metrics
                {
                    metrics.websocket_message(false);
                }
                sent
            }
            Outgoing::Close(code, reason) => {
                closed = true;
                sink.send(Message::Close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                })))
                .await
            }
        };
        if sent.is_err() {
            closed = true;
        }
        activity.touch();
    }
    // A component's close that found the queue full goes out now.
    if !closed && let Some((code, reason)) = connection.closed_with() {
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            })))
            .await;
    }
    // Flushes the answer to a client's close, or a close of ours.
    let _ = sink.close().await;
}
