//! The host functions of `core`, `jetstream` and `kv`, and the resources
//! they hand out (message handles, pull consumers, buckets).
//!
//! Each call checks the names it is given against the binding's grant
//! before anything leaves the host, is observed as one plugin call (span,
//! metrics), and is bounded: core requests by their timeout, JetStream and
//! key-value calls by the binding's `request-timeout-ms`.

use crate::bindings::wasmcloud::nats::{core, jetstream, kv, types};
use crate::grant::{Refusal, check_subject};
use crate::{CORE, JETSTREAM, KV, NatsBinding, NatsView};
use async_nats::jetstream as js;
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use types::{Denial, DenialReason, DeniedResource, HeaderEntry, NatsError, NatsMessage};
use wasmtime::component::{Accessor, Resource};

/// The most entries a listing returns (keys, subjects, a scan).
const LISTING_CAP: usize = 1000;
/// A fetch's wait when the guest passes 0.
const DEFAULT_FETCH_WAIT: Duration = Duration::from_secs(1);
/// The longest a fetch waits for its first message (the server holds the
/// pull that long, so it is bounded for every guest's sake).
const MAX_FETCH_WAIT: Duration = Duration::from_secs(60);
/// The most messages one fetch takes (each is held until settled).
const MAX_FETCH_BATCH: u32 = 256;
/// The most message bytes one scan reads.
const MAX_SCAN_BYTES: usize = 8 * 1024 * 1024;
/// How long settling a message may take.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// A delivered JetStream message and whether it has been settled.
#[allow(unreachable_pub)] // bindgen re-exports it
pub struct MessageHandle {
    pub(crate) message: js::Message,
    pub(crate) settled: Arc<AtomicBool>,
}

/// An opened pull consumer.
#[allow(unreachable_pub)] // bindgen re-exports it
pub struct PullConsumer {
    consumer: js::consumer::Consumer<js::consumer::pull::Config>,
    binding: Arc<NatsBinding>,
}

/// An opened bucket.
#[allow(unreachable_pub)] // bindgen re-exports it
pub struct Bucket {
    store: js::kv::Store,
    binding: Arc<NatsBinding>,
}

/// Reply subjects a component may publish to although they are outside its
/// grant: those of the requests delivered to this instance.
#[derive(Default)]
pub(crate) struct Replies(pub(crate) Vec<String>);

pub(crate) struct HasNats;

impl wasmtime::component::HasData for HasNats {
    type Data<'a> = NatsView<'a>;
}

impl types::Host for NatsView<'_> {}
impl core::Host for NatsView<'_> {}
impl jetstream::Host for NatsView<'_> {}
impl jetstream::HostMessageHandle for NatsView<'_> {}
impl jetstream::HostPullConsumer for NatsView<'_> {}
impl kv::Host for NatsView<'_> {}
impl kv::HostBucket for NatsView<'_> {}

fn denied(reason: Refusal, target: DeniedResource, name: &str) -> NatsError {
    NatsError::Denied(Denial {
        reason: match reason {
            Refusal::Reserved => DenialReason::Reserved,
            Refusal::NotGranted => DenialReason::NotGranted,
            Refusal::Wildcard => DenialReason::WildcardNotAllowed,
        },
        target,
        name: name.to_string(),
    })
}

/// The component's binding; a component without one has no business
/// calling (its workload never bound `wasmcloud:nats`).
fn binding<T>(accessor: &Accessor<T, HasNats>) -> wasmtime::Result<Arc<NatsBinding>> {
    accessor.with(|mut access| {
        access
            .get()
            .binding
            .cloned()
            .ok_or_else(|| wasmtime::format_err!("the component has no wasmcloud:nats binding"))
    })
}

/// Runs `call` as one observed plugin call.
async fn observed<T, R>(
    accessor: &Accessor<T, HasNats>,
    interface: &'static str,
    function: &'static str,
    call: impl Future<Output = Result<R, NatsError>>,
) -> Result<R, NatsError> {
    let observation = accessor.with(|mut access| access.get().calls.start(interface, function));
    let result = observation.run(call).await;
    accessor.with(|mut access| observation.finish(&access.get().calls, result.is_ok()));
    result
}

/// Bounds `call` by `limit`.
async fn bounded<R>(
    limit: Duration,
    what: &str,
    call: impl Future<Output = Result<R, NatsError>>,
) -> Result<R, NatsError> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(NatsError::Timeout(format!(
            "{what} had no answer within {} ms",
            limit.as_millis()
        )))
    })
}

impl NatsBinding {
    async fn client(&self) -> Result<async_nats::Client, NatsError> {
        let client = self
            .connection
            .client()
            .await
            .map_err(NatsError::Connection)?;
        if client.connection_state() != async_nats::connection::State::Connected {
            return Err(NatsError::Disconnected);
        }
        Ok(client)
    }

    async fn jetstream(&self) -> Result<js::Context, NatsError> {
        let client = self.client().await?;
        let mut context = match &self.settings.domain {
            Some(domain) => js::with_domain(client, domain),
            None => js::new(client),
        };
        context.set_timeout(self.settings.request_timeout);
        Ok(context)
    }

    async fn stream(&self, name: &str) -> Result<js::stream::Stream, NatsError> {
        self.settings
            .grant
            .stream(name)
            .map_err(|r| denied(r, DeniedResource::Stream, name))?;
        let context = self.jetstream().await?;
        context.get_stream(name).await.map_err(|e| {
            use js::context::GetStreamErrorKind as Kind;
            match e.kind() {
                Kind::JetStream(inner) if inner.error_code() == js::ErrorCode::STREAM_NOT_FOUND => {
                    NatsError::NotFound(format!("no stream `{name}`"))
                }
                Kind::Request if e.to_string().contains("timed out") => {
                    NatsError::Timeout(e.to_string())
                }
                _ => NatsError::Jetstream(e.to_string()),
            }
        })
    }

    fn limit(&self) -> Duration {
        self.settings.request_timeout
    }
}

/// Guest headers as NATS headers, refusing what the wire cannot carry.
fn headers(entries: Option<Vec<HeaderEntry>>) -> Result<Option<async_nats::HeaderMap>, NatsError> {
    let Some(entries) = entries else {
        return Ok(None);
    };
    let mut map = async_nats::HeaderMap::new();
    for entry in entries {
        let name_ok = !entry.name.is_empty()
            && entry
                .name
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b':');
        if !name_ok {
            return Err(NatsError::InvalidHeader(format!(
                "header name `{}` is not printable ASCII without `:`",
                entry.name.escape_debug()
            )));
        }
        if entry.value.contains(['\r', '\n']) {
            return Err(NatsError::InvalidHeader(format!(
                "the value of header `{}` holds a line break",
                entry.name
            )));
        }
        map.append(entry.name.as_str(), entry.value.as_str());
    }
    Ok(Some(map))
}

/// NATS headers as the guest sees them.
fn guest_headers(map: Option<&async_nats::HeaderMap>) -> Option<Vec<HeaderEntry>> {
    let map = map?;
    let mut entries = Vec::new();
    for (name, values) in map.iter() {
        for value in values {
            entries.push(HeaderEntry {
                name: name.to_string(),
                value: value.as_str().to_string(),
            });
        }
    }
    Some(entries)
}

fn header_bytes(map: Option<&async_nats::HeaderMap>) -> usize {
    map.map(|m| {
        m.iter()
            .map(|(n, vs)| {
                vs.iter()
                    .map(|v| n.to_string().len() + v.as_str().len() + 4)
                    .sum::<usize>()
            })
            .sum::<usize>()
            + 12
    })
    .unwrap_or(0)
}

/// A NATS message as the guest sees it.
pub(crate) fn guest_message(message: &async_nats::Message) -> NatsMessage {
    NatsMessage {
        subject: message.subject.to_string(),
        body: message.payload.to_vec(),
        reply_to: message.reply.as_ref().map(|r| r.to_string()),
        headers: guest_headers(message.headers.as_ref()),
    }
}

/// Checks a subject to publish on: its shape, then the grant (or, for a
/// reply, that this instance was handed it as a request's inbox); and the
/// reply subject a publish names, which must be granted like any subject.
fn publishable(
    view: &mut NatsView<'_>,
    binding: &NatsBinding,
    subject: &str,
    reply_to: Option<&str>,
) -> Result<(), NatsError> {
    check_subject(subject).map_err(NatsError::Unexpected)?;
    if let Some(reply) = reply_to {
        check_subject(reply).map_err(NatsError::Unexpected)?;
        binding
            .settings
            .grant
            .publish(reply)
            .map_err(|refusal| denied(refusal, DeniedResource::Subject, reply))?;
    }
    match binding.settings.grant.publish(subject) {
        Ok(()) => Ok(()),
        Err(refusal) => {
            let replies = view
                .slots
                .get_or_insert_with(crate::settings::ID, Replies::default);
            if replies.0.iter().any(|r| r == subject) {
                Ok(())
            } else {
                Err(denied(refusal, DeniedResource::Subject, subject))
            }
        }
    }
}

/// Whether a delivered message's reply subject may be answered although
/// it is outside the grant: a request inbox only, never a reserved API
/// subject a publisher put there.
pub(crate) fn answerable(reply: &str) -> bool {
    reply.starts_with("_INBOX.") && !reply.contains(['*', '>']) && check_subject(reply).is_ok()
}

fn payload_fits(
    client: &async_nats::Client,
    body: usize,
    headers: Option<&async_nats::HeaderMap>,
) -> Result<(), NatsError> {
    let max = client.server_info().max_payload;
    if max > 0 && body + header_bytes(headers) > max {
        return Err(NatsError::MaxPayloadExceeded(max as u64));
    }
    Ok(())
}

impl<T> core::HostWithStore<T> for HasNats {
    async fn publish(
        accessor: &Accessor<T, Self>,
        msg: NatsMessage,
    ) -> wasmtime::Result<Result<(), NatsError>> {
        let binding = binding(accessor)?;
        let checked = accessor.with(|mut access| {
            publishable(
                &mut access.get(),
                &binding,
                &msg.subject,
                msg.reply_to.as_deref(),
            )
        });
        if let Err(error) = checked {
            return Ok(Err(error));
        }
        let call = async {
            let headers = headers(msg.headers)?;
            let client = binding.client().await?;
            payload_fits(&client, msg.body.len(), headers.as_ref())?;
            let subject = msg.subject.clone();
            let result = match (msg.reply_to, headers) {
                (Some(reply), Some(headers)) => {
                    client
                        .publish_with_reply_and_headers(subject, reply, headers, msg.body.into())
                        .await
                }
                (Some(reply), None) => {
                    client
                        .publish_with_reply(subject, reply, msg.body.into())
                        .await
                }
                (None, Some(headers)) => {
                    client
                        .publish_with_headers(subject, headers, msg.body.into())
                        .await
                }
                (None, None) => client.publish(subject, msg.body.into()).await,
            };
            result.map_err(|e| NatsError::Connection(e.to_string()))
        };
        Ok(observed(
            accessor,
            CORE,
            "publish",
            bounded(binding.limit(), "the publish", call),
        )
        .await)
    }

    async fn request(
        accessor: &Accessor<T, Self>,
        msg: NatsMessage,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<NatsMessage, NatsError>> {
        let binding = binding(accessor)?;
        let checked = accessor.with(|mut access| {
            publishable(
                &mut access.get(),
                &binding,
                &msg.subject,
                msg.reply_to.as_deref(),
            )
        });
        if let Err(error) = checked {
            return Ok(Err(error));
        }
        let timeout = match timeout_ms {
            0 => binding.settings.request_timeout,
            ms => Duration::from_millis(ms.into()),
        };
        let call = async {
            let headers = headers(msg.headers)?;
            let client = binding.client().await?;
            payload_fits(&client, msg.body.len(), headers.as_ref())?;
            let mut request = async_nats::Request::new()
                .payload(msg.body.into())
                .timeout(Some(timeout));
            if let Some(headers) = headers {
                request = request.headers(headers);
            }
            match client.send_request(msg.subject.clone(), request).await {
                Ok(reply) => Ok(guest_message(&reply)),
                Err(e) => Err(match e.kind() {
                    async_nats::RequestErrorKind::TimedOut => NatsError::Timeout(format!(
                        "no reply on `{}` within {} ms",
                        msg.subject,
                        timeout.as_millis()
                    )),
                    async_nats::RequestErrorKind::NoResponders => NatsError::NoResponders,
                    async_nats::RequestErrorKind::MaxPayloadExceeded => {
                        NatsError::MaxPayloadExceeded(client.server_info().max_payload as u64)
                    }
                    async_nats::RequestErrorKind::InvalidSubject => {
                        NatsError::Unexpected(e.to_string())
                    }
                    _ => NatsError::Connection(e.to_string()),
                }),
            }
        };
        // The client bounds the wait; this also bounds reaching it.
        let limit = timeout + Duration::from_millis(500);
        Ok(observed(
            accessor,
            CORE,
            "request",
            bounded(limit, "the request", call),
        )
        .await)
    }
}

fn publish_error(error: js::context::PublishError) -> NatsError {
    use js::context::PublishErrorKind as Kind;
    match error.kind() {
        Kind::StreamNotFound => NatsError::NotFound("no stream captures the subject".into()),
        Kind::TimedOut => NatsError::Timeout(error.to_string()),
        Kind::BrokenPipe => NatsError::Connection(error.to_string()),
        Kind::MaxAckPending => NatsError::LimitExceeded(error.to_string()),
        _ => NatsError::Jetstream(error.to_string()),
    }
}

/// A message handle's message and settled flag.
fn handle_parts<T>(
    accessor: &Accessor<T, HasNats>,
    handle: &Resource<MessageHandle>,
) -> wasmtime::Result<(js::Message, Arc<AtomicBool>)> {
    accessor.with(|mut access| {
        let handle = access.get().table.get(handle)?;
        Ok((handle.message.clone(), handle.settled.clone()))
    })
}

/// Settles a handle once with `kind`; `sync` waits for the server.
async fn settle<T>(
    accessor: &Accessor<T, HasNats>,
    handle: Resource<MessageHandle>,
    function: &'static str,
    kind: Option<js::AckKind>,
) -> wasmtime::Result<Result<(), NatsError>> {
    let (message, settled) = handle_parts(accessor, &handle)?;
    let already = || NatsError::Unexpected("the message is already settled".into());
    let final_settlement = !matches!(kind, Some(js::AckKind::Progress));
    // Claimed before sending (so two settlements cannot both go out) and
    // given back when sending fails, so the guest can try again.
    if final_settlement && settled.swap(true, Ordering::AcqRel) {
        return Ok(Err(already()));
    }
    if !final_settlement && settled.load(Ordering::Acquire) {
        return Ok(Err(already()));
    }
    let call = async {
        match kind {
            // ack-sync: the double ack.
            None => message
                .double_ack()
                .await
                .map_err(|e| NatsError::Jetstream(format!("the ack was not confirmed: {e}"))),
            Some(kind) => message
                .ack_with(kind)
                .await
                .map_err(|e| NatsError::Connection(e.to_string())),
        }
    };
    let outcome = observed(
        accessor,
        JETSTREAM,
        function,
        bounded(SETTLE_TIMEOUT, "settling the message", call),
    )
    .await;
    if outcome.is_err() && final_settlement {
        settled.store(false, Ordering::Release);
    }
    Ok(outcome)
}

impl<T> jetstream::HostMessageHandleWithStore<T> for HasNats {
    fn drop(
        mut access: wasmtime::component::Access<T, Self>,
        rep: Resource<MessageHandle>,
    ) -> wasmtime::Result<()> {
        access.get().table.delete(rep)?;
        Ok(())
    }

    fn message(
        mut access: wasmtime::component::Access<T, Self>,
        handle: Resource<MessageHandle>,
    ) -> wasmtime::Result<NatsMessage> {
        let handle = access.get().table.get(&handle)?;
        Ok(guest_message(&handle.message.message))
    }

    fn sequence(
        mut access: wasmtime::component::Access<T, Self>,
        handle: Resource<MessageHandle>,
    ) -> wasmtime::Result<u64> {
        let handle = access.get().table.get(&handle)?;
        Ok(handle
            .message
            .info()
            .map(|i| i.stream_sequence)
            .unwrap_or(0))
    }

    fn delivery_count(
        mut access: wasmtime::component::Access<T, Self>,
        handle: Resource<MessageHandle>,
    ) -> wasmtime::Result<u32> {
        let handle = access.get().table.get(&handle)?;
        Ok(handle
            .message
            .info()
            .map(|i| u32::try_from(i.delivered).unwrap_or(u32::MAX))
            .unwrap_or(1))
    }

    async fn ack(
        accessor: &Accessor<T, Self>,
        handle: Resource<MessageHandle>,
    ) -> wasmtime::Result<Result<(), NatsError>> {
        settle(
            accessor,
            handle,
            "message-handle.ack",
            Some(js::AckKind::Ack),
        )
        .await
    }

    async fn ack_sync(
        accessor: &Accessor<T, Self>,
        handle: Resource<MessageHandle>,
    ) -> wasmtime::Result<Result<(), NatsError>> {
        settle(accessor, handle, "message-handle.ack-sync", None).await
    }

    async fn nak(
        accessor: &Accessor<T, Self>,
        handle: Resource<MessageHandle>,
        delay_ms: Option<u32>,
    ) -> wasmtime::Result<Result<(), NatsError>> {
        let delay = delay_ms.map(|ms| Duration::from_millis(ms.into()));
        settle(
            accessor,
            handle,
            "message-handle.nak",
            Some(js::AckKind::Nak(delay)),
        )
        .await
    }

    async fn in_progress(
        accessor: &Accessor<T, Self>,
        handle: Resource<MessageHandle>,
    ) -> wasmtime::Result<Result<(), NatsError>> {
        settle(
            accessor,
            handle,
            "message-handle.in-progress",
            Some(js::AckKind::Progress),
        )
        .await
    }

    async fn term(
        accessor: &Accessor<T, Self>,
        handle: Resource<MessageHandle>,
    ) -> wasmtime::Result<Result<(), NatsError>> {
        settle(
            accessor,
            handle,
            "message-handle.term",
            Some(js::AckKind::Term),
        )
        .await
    }
}

fn consumer_info(info: &js::consumer::Info) -> jetstream::ConsumerInfo {
    let config = &info.config;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    jetstream::ConsumerInfo {
        name: info.name.clone(),
        stream_name: info.stream_name.clone(),
        filter_subject: config.filter_subject.clone(),
        // Multi-subject filters need a 2.10 server; this build reads the
        // single filter only.
        filter_subjects: Vec::new(),
        max_ack_pending: count(config.max_ack_pending),
        max_waiting: count(config.max_waiting),
        max_request_batch: config.max_batch.max(0) as u64,
        max_request_max_bytes: config.max_bytes.max(0) as u64,
        max_deliver: count(config.max_deliver),
        ack_wait_ms: config.ack_wait.as_millis() as u64,
        num_ack_pending: info.num_ack_pending as u64,
        num_pending: info.num_pending,
        num_redelivered: info.num_redelivered as u64,
    }
}

/// Takes up to `batch` messages: what is ready at once, or else waits up
/// to `wait` for the first and adds what else is ready then.
async fn fetch(
    consumer: &js::consumer::Consumer<js::consumer::pull::Config>,
    batch: u32,
    max_bytes: u64,
    wait: Duration,
) -> Result<(Vec<js::Message>, jetstream::FetchStop), NatsError> {
    if batch == 0 {
        return Err(NatsError::Unexpected(
            "a fetch takes at least one message".into(),
        ));
    }
    let batch = batch as usize;
    let mut taken = Taken::default();
    let bytes_left = |taken: &Taken| (max_bytes.saturating_sub(taken.bytes)) as usize;
    let ready = consumer
        .fetch()
        .max_messages(batch)
        .max_bytes(max_bytes as usize)
        .messages()
        .await;
    taken.drain(ready).await?;
    if taken.messages.is_empty() && !taken.byte_limited {
        let first = consumer
            .batch()
            .max_messages(1)
            .expires(wait.max(Duration::from_millis(10)))
            .max_bytes(max_bytes as usize)
            .messages()
            .await;
        taken.drain(first).await?;
        if !taken.messages.is_empty() && batch > 1 && !taken.byte_limited {
            let more = consumer
                .fetch()
                .max_messages(batch - 1)
                .max_bytes(if max_bytes > 0 { bytes_left(&taken) } else { 0 })
                .messages()
                .await;
            // What came stays taken whatever this adds.
            let _ = taken.drain(more).await;
        }
    }
    if taken.messages.is_empty() && !taken.byte_limited {
        return Err(NatsError::NoMessages);
    }
    let stop = if taken.messages.len() == batch {
        jetstream::FetchStop::BatchFilled
    } else if taken.byte_limited {
        jetstream::FetchStop::ByteLimit
    } else {
        jetstream::FetchStop::Drained
    };
    Ok((taken.messages, stop))
}

/// What a fetch took so far.
#[derive(Default)]
struct Taken {
    messages: Vec<js::Message>,
    bytes: u64,
    byte_limited: bool,
}

impl Taken {
    /// Adds the messages of one pull request; an error before any message
    /// is the fetch's error.
    async fn drain<S, E, F>(&mut self, pulled: Result<S, F>) -> Result<(), NatsError>
    where
        S: futures::Stream<Item = Result<js::Message, E>> + Unpin,
        E: std::fmt::Display,
        F: std::fmt::Display,
    {
        let mut pulled = pulled.map_err(|e| fetch_error(e.to_string()))?;
        while let Some(message) = pulled.next().await {
            match message {
                Ok(message) => {
                    // What the server counts: the whole message.
                    self.bytes += message.length as u64;
                    self.messages.push(message);
                }
                Err(e) => {
                    let text = e.to_string();
                    if text.contains("MaxBytes") || text.contains("Message Size Exceeds") {
                        self.byte_limited = true;
                    } else if self.messages.is_empty() {
                        return Err(fetch_error(text));
                    }
                    break;
                }
            }
        }
        Ok(())
    }
}

/// A pull the server refused: over one of the consumer's limits, or else
/// in its words.
fn fetch_error(text: String) -> NatsError {
    if text.contains("Exceeded MaxRequestBatch")
        || text.contains("Exceeded MaxRequestMaxBytes")
        || text.contains("Exceeded MaxWaiting")
    {
        NatsError::LimitExceeded(text)
    } else {
        NatsError::Jetstream(text)
    }
}

/// Puts fetched messages into the table as handles.
fn handles<T>(
    accessor: &Accessor<T, HasNats>,
    messages: Vec<js::Message>,
) -> wasmtime::Result<Vec<Resource<MessageHandle>>> {
    accessor.with(|mut access| {
        let view = access.get();
        messages
            .into_iter()
            .map(|message| {
                Ok(view.table.push(MessageHandle {
                    message,
                    settled: Arc::new(AtomicBool::new(false)),
                })?)
            })
            .collect()
    })
}

impl<T> jetstream::HostPullConsumerWithStore<T> for HasNats {
    fn drop(
        mut access: wasmtime::component::Access<T, Self>,
        rep: Resource<PullConsumer>,
    ) -> wasmtime::Result<()> {
        access.get().table.delete(rep)?;
        Ok(())
    }

    async fn fetch(
        accessor: &Accessor<T, Self>,
        consumer: Resource<PullConsumer>,
        batch: u32,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<jetstream::FetchedBatch, NatsError>> {
        Self::fetch_with_limits(accessor, consumer, batch, 0, timeout_ms).await
    }

    async fn fetch_with_limits(
        accessor: &Accessor<T, Self>,
        consumer: Resource<PullConsumer>,
        batch: u32,
        max_bytes: u64,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<jetstream::FetchedBatch, NatsError>> {
        let (consumer, binding) = accessor.with(|mut access| -> wasmtime::Result<_> {
            let entry = access.get().table.get(&consumer)?;
            Ok((entry.consumer.clone(), entry.binding.clone()))
        })?;
        let wait = match timeout_ms {
            0 => DEFAULT_FETCH_WAIT,
            ms => Duration::from_millis(ms.into()).min(MAX_FETCH_WAIT),
        };
        let batch = batch.min(MAX_FETCH_BATCH);
        let max_bytes = max_bytes.min(i64::MAX as u64);
        let limit = wait + binding.limit();
        let call = bounded(limit, "the fetch", fetch(&consumer, batch, max_bytes, wait));
        let (messages, stop) =
            match observed(accessor, JETSTREAM, "pull-consumer.fetch", call).await {
                Ok(done) => done,
                Err(error) => return Ok(Err(error)),
            };
        let messages = handles(accessor, messages)?;
        Ok(Ok(jetstream::FetchedBatch { messages, stop }))
    }

    async fn info(
        accessor: &Accessor<T, Self>,
        consumer: Resource<PullConsumer>,
    ) -> wasmtime::Result<Result<jetstream::ConsumerInfo, NatsError>> {
        let (mut consumer, binding) = accessor.with(|mut access| -> wasmtime::Result<_> {
            let entry = access.get().table.get(&consumer)?;
            Ok((entry.consumer.clone(), entry.binding.clone()))
        })?;
        let call = async {
            consumer
                .info()
                .await
                .map(consumer_info)
                .map_err(|e| NatsError::Jetstream(e.to_string()))
        };
        Ok(observed(
            accessor,
            JETSTREAM,
            "pull-consumer.info",
            bounded(binding.limit(), "consumer info", call),
        )
        .await)
    }
}

fn stored(message: js::message::StreamMessage) -> jetstream::StoredMessage {
    jetstream::StoredMessage {
        subject: message.subject.to_string(),
        sequence: message.sequence,
        data: message.payload.to_vec(),
        headers: guest_headers(Some(&message.headers)).filter(|h| !h.is_empty()),
    }
}

/// Reads one stored message; `None` when there is none at `sequence`.
async fn raw_message(
    stream: &js::stream::Stream,
    sequence: u64,
) -> Result<Option<js::message::StreamMessage>, NatsError> {
    match stream.get_raw_message(sequence).await {
        Ok(message) => Ok(Some(message)),
        Err(e) if e.kind() == js::stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(NatsError::Jetstream(e.to_string())),
    }
}

impl<T> jetstream::HostWithStore<T> for HasNats {
    async fn publish(
        accessor: &Accessor<T, Self>,
        msg: NatsMessage,
    ) -> wasmtime::Result<Result<jetstream::PublishAck, NatsError>> {
        let binding = binding(accessor)?;
        let checked = accessor.with(|mut access| {
            publishable(
                &mut access.get(),
                &binding,
                &msg.subject,
                msg.reply_to.as_deref(),
            )
        });
        if let Err(error) = checked {
            return Ok(Err(error));
        }
        let call = async {
            let headers = headers(msg.headers)?;
            let context = binding.jetstream().await?;
            payload_fits(&context.client(), msg.body.len(), headers.as_ref())?;
            let ack = match headers {
                Some(headers) => {
                    context
                        .publish_with_headers(msg.subject, headers, msg.body.into())
                        .await
                }
                None => context.publish(msg.subject, msg.body.into()).await,
            }
            .map_err(publish_error)?
            .await
            .map_err(publish_error)?;
            Ok(jetstream::PublishAck {
                stream_name: ack.stream,
                sequence: ack.sequence,
                duplicate: ack.duplicate,
            })
        };
        let limit = binding.limit() + Duration::from_millis(500);
        Ok(observed(
            accessor,
            JETSTREAM,
            "publish",
            bounded(limit, "the publish", call),
        )
        .await)
    }

    async fn get_by_sequence(
        accessor: &Accessor<T, Self>,
        stream_name: String,
        sequence: u64,
    ) -> wasmtime::Result<Result<jetstream::StoredMessage, NatsError>> {
        let binding = binding(accessor)?;
        let call = async {
            let stream = binding.stream(&stream_name).await?;
            let message = raw_message(&stream, sequence).await?.ok_or_else(|| {
                NatsError::NotFound(format!("no message {stream_name}#{sequence}"))
            })?;
            // Its subject must be granted too; the refusal names the
            // sequence, not the subject.
            binding
                .settings
                .grant
                .subject(&message.subject)
                .map_err(|r| {
                    denied(
                        r,
                        DeniedResource::Message,
                        &format!("{stream_name}#{sequence}"),
                    )
                })?;
            Ok(stored(message))
        };
        Ok(observed(
            accessor,
            JETSTREAM,
            "get-by-sequence",
            bounded(binding.limit(), "the read", call),
        )
        .await)
    }

    async fn scan(
        accessor: &Accessor<T, Self>,
        stream_name: String,
        start_sequence: u64,
        max_count: u32,
    ) -> wasmtime::Result<Result<Vec<jetstream::StoredMessage>, NatsError>> {
        let binding = binding(accessor)?;
        let call = async {
            let mut stream = binding.stream(&stream_name).await?;
            let last = stream
                .info()
                .await
                .map_err(|e| NatsError::Jetstream(e.to_string()))?
                .state
                .last_sequence;
            let wanted = (max_count as usize).min(LISTING_CAP);
            let mut found = Vec::new();
            let mut bytes = 0usize;
            let mut sequence = start_sequence.max(1);
            // Bounded lookups: deleted and ungranted messages are skipped.
            let mut lookups = 0;
            while found.len() < wanted
                && sequence <= last
                && lookups < LISTING_CAP * 10
                && bytes < MAX_SCAN_BYTES
            {
                lookups += 1;
                if let Some(message) = raw_message(&stream, sequence).await?
                    && binding.settings.grant.subject(&message.subject).is_ok()
                {
                    bytes += message.payload.len();
                    found.push(stored(message));
                }
                sequence += 1;
            }
            Ok(found)
        };
        let limit = binding.limit() * 4;
        Ok(observed(
            accessor,
            JETSTREAM,
            "scan",
            bounded(limit, "the scan", call),
        )
        .await)
    }

    async fn open_pull_consumer(
        accessor: &Accessor<T, Self>,
        stream_name: String,
        consumer: String,
    ) -> wasmtime::Result<Result<Resource<PullConsumer>, NatsError>> {
        let binding = binding(accessor)?;
        let call = async {
            let stream = binding.stream(&stream_name).await?;
            let opened: js::consumer::Consumer<js::consumer::pull::Config> =
                stream.get_consumer(&consumer).await.map_err(|e| {
                    let text = e.to_string();
                    if text.contains("not found") {
                        NatsError::NotFound(format!(
                            "no consumer `{consumer}` on stream `{stream_name}`"
                        ))
                    } else {
                        NatsError::Jetstream(text)
                    }
                })?;
            if opened.cached_info().config.deliver_subject.is_some() {
                return Err(NatsError::Unexpected(format!(
                    "consumer `{consumer}` is a push consumer; open a pull consumer"
                )));
            }
            // Its messages are the grant's only if its filter is: a consumer
            // of the whole stream, or of subjects outside the grant, is not
            // this binding's to read. The host's own consumers are not
            // either.
            let filter = &opened.cached_info().config.filter_subject;
            if consumer.starts_with("nimbus-")
                || filter.is_empty()
                || binding.settings.grant.subject(filter).is_err()
            {
                return Err(denied(
                    Refusal::NotGranted,
                    DeniedResource::Stream,
                    &format!("{stream_name}/{consumer}"),
                ));
            }
            Ok(opened)
        };
        let opened = observed(
            accessor,
            JETSTREAM,
            "open-pull-consumer",
            bounded(binding.limit(), "opening the consumer", call),
        )
        .await;
        match opened {
            Ok(consumer) => {
                let resource = accessor.with(|mut access| {
                    access.get().table.push(PullConsumer {
                        consumer,
                        binding: binding.clone(),
                    })
                })?;
                Ok(Ok(resource))
            }
            Err(error) => Ok(Err(error)),
        }
    }

    async fn get_stream_info(
        accessor: &Accessor<T, Self>,
        stream_name: String,
    ) -> wasmtime::Result<Result<jetstream::StreamInfo, NatsError>> {
        let binding = binding(accessor)?;
        let call = async {
            let mut stream = binding.stream(&stream_name).await?;
            let info = stream
                .info()
                .await
                .map_err(|e| NatsError::Jetstream(e.to_string()))?;
            Ok(jetstream::StreamInfo {
                name: info.config.name.clone(),
                subjects: info.config.subjects.clone(),
                messages: info.state.messages,
                bytes: info.state.bytes,
                first_sequence: info.state.first_sequence,
                last_sequence: info.state.last_sequence,
                consumer_count: info.state.consumer_count as u64,
            })
        };
        Ok(observed(
            accessor,
            JETSTREAM,
            "get-stream-info",
            bounded(binding.limit(), "stream info", call),
        )
        .await)
    }

    async fn list_stream_subjects(
        accessor: &Accessor<T, Self>,
        stream_name: String,
        subject_filter: String,
    ) -> wasmtime::Result<Result<Vec<jetstream::SubjectCount>, NatsError>> {
        let binding = binding(accessor)?;
        let call = async {
            check_subject(&subject_filter).map_err(NatsError::Unexpected)?;
            let stream = binding.stream(&stream_name).await?;
            let mut subjects = stream
                .info_with_subjects(&subject_filter)
                .await
                .map_err(|e| NatsError::Jetstream(e.to_string()))?;
            let mut found = Vec::new();
            while let Some(entry) = subjects.next().await {
                let (subject, count) = entry.map_err(|e| NatsError::Jetstream(e.to_string()))?;
                if binding.settings.grant.subject(&subject).is_ok() {
                    found.push(jetstream::SubjectCount {
                        subject,
                        count: count as u64,
                    });
                    if found.len() == LISTING_CAP {
                        break;
                    }
                }
            }
            Ok(found)
        };
        Ok(observed(
            accessor,
            JETSTREAM,
            "list-stream-subjects",
            bounded(binding.limit(), "listing subjects", call),
        )
        .await)
    }

    async fn get_consumer_info(
        accessor: &Accessor<T, Self>,
        stream_name: String,
        consumer: String,
    ) -> wasmtime::Result<Result<jetstream::ConsumerInfo, NatsError>> {
        let binding = binding(accessor)?;
        let call = async {
            let stream = binding.stream(&stream_name).await?;
            let info = stream
                .consumer_info(&consumer)
                .await
                .map_err(|e| match e.kind() {
                    js::context::ConsumerInfoErrorKind::NotFound => NatsError::NotFound(format!(
                        "no consumer `{consumer}` on stream `{stream_name}`"
                    )),
                    js::context::ConsumerInfoErrorKind::TimedOut => {
                        NatsError::Timeout(e.to_string())
                    }
                    _ => NatsError::Jetstream(e.to_string()),
                })?;
            Ok(consumer_info(&info))
        };
        Ok(observed(
            accessor,
            JETSTREAM,
            "get-consumer-info",
            bounded(binding.limit(), "consumer info", call),
        )
        .await)
    }
}

/// A key-value entry as the guest sees it.
pub(crate) fn guest_entry(entry: js::kv::Entry) -> kv::Entry {
    kv::Entry {
        key: entry.key,
        value: entry.value.to_vec(),
        revision: entry.revision,
        created_at_unix_nanos: u64::try_from(entry.created.unix_timestamp_nanos()).unwrap_or(0),
        operation: match entry.operation {
            js::kv::Operation::Put => kv::KvOperation::Put,
            js::kv::Operation::Delete => kv::KvOperation::Delete,
            js::kv::Operation::Purge => kv::KvOperation::Purge,
        },
    }
}

fn bucket_parts<T>(
    accessor: &Accessor<T, HasNats>,
    bucket: &Resource<Bucket>,
) -> wasmtime::Result<(js::kv::Store, Arc<NatsBinding>)> {
    accessor.with(|mut access| {
        let entry = access.get().table.get(bucket)?;
        Ok((entry.store.clone(), entry.binding.clone()))
    })
}

fn kv_error(error: impl std::fmt::Display) -> NatsError {
    let text = error.to_string();
    if text.contains("timed out") {
        NatsError::Timeout(text)
    } else if text.contains("invalid key") {
        NatsError::Unexpected(text)
    } else {
        NatsError::Jetstream(text)
    }
}

/// The key's current revision (0 when it has none), for a mismatch.
async fn current_revision(store: &js::kv::Store, key: &str) -> Result<u64, NatsError> {
    Ok(store
        .entry(key)
        .await
        .map_err(kv_error)?
        .map(|e| e.revision)
        .unwrap_or(0))
}

/// Runs a bucket call, observed and bounded.
async fn bucket_call<T, R, F>(
    accessor: &Accessor<T, HasNats>,
    bucket: Resource<Bucket>,
    function: &'static str,
    call: impl FnOnce(js::kv::Store) -> F,
) -> wasmtime::Result<Result<R, NatsError>>
where
    F: Future<Output = Result<R, NatsError>>,
{
    let (store, binding) = bucket_parts(accessor, &bucket)?;
    let limit = binding.limit();
    Ok(observed(
        accessor,
        KV,
        function,
        bounded(limit, "the key-value call", call(store)),
    )
    .await)
}

impl<T> kv::HostBucketWithStore<T> for HasNats {
    fn drop(
        mut access: wasmtime::component::Access<T, Self>,
        rep: Resource<Bucket>,
    ) -> wasmtime::Result<()> {
        access.get().table.delete(rep)?;
        Ok(())
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<kv::Entry, NatsError>> {
        bucket_call(accessor, bucket, "bucket.get", |store| async move {
            match store.entry(&key).await.map_err(kv_error)? {
                Some(entry) if entry.operation == js::kv::Operation::Put => Ok(guest_entry(entry)),
                _ => Err(NatsError::KeyNotFound),
            }
        })
        .await
    }

    async fn put(
        accessor: &Accessor<T, Self>,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<u64, NatsError>> {
        bucket_call(accessor, bucket, "bucket.put", |store| async move {
            store.put(&key, value.into()).await.map_err(kv_error)
        })
        .await
    }

    async fn create(
        accessor: &Accessor<T, Self>,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<u64, NatsError>> {
        bucket_call(accessor, bucket, "bucket.create", |store| async move {
            match store.create(&key, value.into()).await {
                Ok(revision) => Ok(revision),
                Err(e) if e.kind() == js::kv::CreateErrorKind::AlreadyExists => Err(
                    NatsError::RevisionMismatch(current_revision(&store, &key).await?),
                ),
                Err(e) => Err(kv_error(e)),
            }
        })
        .await
    }

    async fn update(
        accessor: &Accessor<T, Self>,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
        expected_revision: u64,
    ) -> wasmtime::Result<Result<u64, NatsError>> {
        bucket_call(accessor, bucket, "bucket.update", |store| async move {
            match store.update(&key, value.into(), expected_revision).await {
                Ok(revision) => Ok(revision),
                Err(e) if e.kind() == js::kv::UpdateErrorKind::WrongLastRevision => Err(
                    NatsError::RevisionMismatch(current_revision(&store, &key).await?),
                ),
                Err(e) => Err(kv_error(e)),
            }
        })
        .await
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), NatsError>> {
        bucket_call(accessor, bucket, "bucket.delete", |store| async move {
            store.delete(&key).await.map_err(kv_error)
        })
        .await
    }

    async fn purge(
        accessor: &Accessor<T, Self>,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), NatsError>> {
        bucket_call(accessor, bucket, "bucket.purge", |store| async move {
            store.purge(&key).await.map_err(kv_error)
        })
        .await
    }

    async fn keys(
        accessor: &Accessor<T, Self>,
        bucket: Resource<Bucket>,
    ) -> wasmtime::Result<Result<kv::KeyPage, NatsError>> {
        bucket_call(accessor, bucket, "bucket.keys", |store| async move {
            let mut keys = store.keys().await.map_err(kv_error)?;
            let mut page = Vec::new();
            let mut truncated = false;
            while let Some(key) = keys.next().await {
                let key = key.map_err(kv_error)?;
                if page.len() == LISTING_CAP {
                    truncated = true;
                    break;
                }
                page.push(key);
            }
            page.sort();
            Ok(kv::KeyPage {
                keys: page,
                truncated,
            })
        })
        .await
    }

    async fn history(
        accessor: &Accessor<T, Self>,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Vec<kv::Entry>, NatsError>> {
        bucket_call(accessor, bucket, "bucket.history", |store| async move {
            let mut history = store.history(&key).await.map_err(kv_error)?;
            let mut entries = Vec::new();
            while let Some(entry) = history.next().await {
                entries.push(guest_entry(entry.map_err(kv_error)?));
                if entries.len() == LISTING_CAP {
                    break;
                }
            }
            if entries.is_empty() {
                return Err(NatsError::KeyNotFound);
            }
            Ok(entries)
        })
        .await
    }

    async fn status(
        accessor: &Accessor<T, Self>,
        bucket: Resource<Bucket>,
    ) -> wasmtime::Result<Result<kv::BucketStatus, NatsError>> {
        bucket_call(accessor, bucket, "bucket.status", |store| async move {
            let status = store.status().await.map_err(kv_error)?;
            Ok(kv::BucketStatus {
                bucket: status.bucket().to_string(),
                values: status.values(),
                history: u8::try_from(status.history()).unwrap_or(u8::MAX),
                ttl_seconds: status.max_age().as_secs(),
                bytes: status.info.state.bytes,
            })
        })
        .await
    }
}

impl<T> kv::HostWithStore<T> for HasNats {
    async fn open(
        accessor: &Accessor<T, Self>,
        bucket: String,
    ) -> wasmtime::Result<Result<Resource<Bucket>, NatsError>> {
        let binding = binding(accessor)?;
        if let Err(refusal) = binding.settings.grant.bucket(&bucket) {
            return Ok(Err(denied(refusal, DeniedResource::Bucket, &bucket)));
        }
        let call = async {
            let context = binding.jetstream().await?;
            context.get_key_value(&bucket).await.map_err(|e| {
                let text = e.to_string();
                if text.contains("not found") {
                    NatsError::NotFound(format!("no bucket `{bucket}`"))
                } else if text.contains("timed out") {
                    NatsError::Timeout(text)
                } else {
                    NatsError::Jetstream(text)
                }
            })
        };
        match observed(
            accessor,
            KV,
            "open",
            bounded(binding.limit(), "opening the bucket", call),
        )
        .await
        {
            Ok(store) => {
                let resource = accessor.with(|mut access| {
                    access.get().table.push(Bucket {
                        store,
                        binding: binding.clone(),
                    })
                })?;
                Ok(Ok(resource))
            }
            Err(error) => Ok(Err(error)),
        }
    }
}
