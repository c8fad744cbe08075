//! Deliveries to the handlers a component exports: its core
//! subscriptions (`core-handler`), its JetStream subscriptions
//! (`jetstream-handler`, on a durable pull consumer the host makes) and its
//! key-value watches (`kv-handler`).
//!
//! Each message runs on a fresh instance within the component's deadline,
//! metered, under a span. Core messages run up to `max-in-flight` at once;
//! JetStream messages and key-value changes one at a time, in order. Every
//! loop survives the server going away: it logs, waits (doubling up to
//! 5 s) and starts again where the server left it (a durable consumer, a
//! watch from the next revision).

use crate::NatsBinding;
use crate::bindings::wasmcloud::nats::kv as kv_types;
use crate::calls::{MessageHandle, Replies, guest_entry, guest_message};
use crate::handlers;
use crate::settings::{AckMode, CoreSubscription, ID, JetStreamSubscription, KvWatch, StartAt};
use async_nats::jetstream as js;
use futures::StreamExt;
use nimbus_plugin::{ComponentHandle, PluginError, PluginState, ServeGuard};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing::Instrument;

/// The longest wait between attempts to (re)subscribe.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Starts the component's deliveries; they stop when the guard drops.
pub(crate) fn serve<T: PluginState>(
    binding: Arc<NatsBinding>,
    component: ComponentHandle<T>,
) -> Result<Option<ServeGuard>, PluginError> {
    let settings = &binding.settings;
    let pre = component.instance_pre().clone();
    let missing = |key: &str, export: &str, e: wasmtime::Error| {
        PluginError::new(
            ID,
            format!(
                "`{key}` is set but the component does not export wasmcloud:nats/{export}@0.1.0: {e}"
            ),
        )
    };
    let mut tasks = Vec::new();
    if !settings.core_subscriptions.is_empty() {
        let handler = handlers::core::CoreSubscriberPre::new(pre.clone())
            .map_err(|e| missing("core-subscriptions", "core-handler", e))?;
        let slots = Arc::new(tokio::sync::Semaphore::new(settings.max_in_flight));
        for subscription in &settings.core_subscriptions {
            tasks.push(tokio::spawn(core_loop(
                binding.clone(),
                subscription.clone(),
                component.clone(),
                handler.clone(),
                slots.clone(),
            )));
        }
    }
    if !settings.jetstream_subscriptions.is_empty() {
        let handler = handlers::jetstream::JetstreamSubscriberPre::new(pre.clone())
            .map_err(|e| missing("jetstream-subscriptions", "jetstream-handler", e))?;
        for subscription in &settings.jetstream_subscriptions {
            tasks.push(tokio::spawn(jetstream_loop(
                binding.clone(),
                subscription.clone(),
                component.clone(),
                handler.clone(),
            )));
        }
    }
    if !settings.kv_watches.is_empty() {
        let handler = handlers::kv::KvWatcherPre::new(pre)
            .map_err(|e| missing("kv-watches", "kv-handler", e))?;
        for watch in &settings.kv_watches {
            tasks.push(tokio::spawn(kv_loop(
                binding.clone(),
                watch.clone(),
                component.clone(),
                handler.clone(),
            )));
        }
    }
    if tasks.is_empty() {
        tracing::warn!(
            workload = component.workload(),
            component = component.component(),
            "the component exports a wasmcloud:nats handler but its binding subscribes to nothing (set `core-subscriptions`, `jetstream-subscriptions` or `kv-watches`)"
        );
        return Ok(None);
    }
    Ok(Some(Box::new(Deliveries(
        tasks.into_iter().map(|t| t.abort_handle()).collect(),
    ))))
}

/// The delivery tasks of one component; stopped on drop.
struct Deliveries(Vec<tokio::task::AbortHandle>);

impl Drop for Deliveries {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// How one handler call ended.
enum Outcome {
    Done,
    Refused(String),
    Failed(String),
    TimedOut,
}

impl Outcome {
    fn ok(&self) -> bool {
        matches!(self, Self::Done)
    }
}

/// Runs `call` on a fresh store of `component` within its deadline, under
/// `span`, metered; logs how it ended.
async fn run<T, F>(
    component: &ComponentHandle<T>,
    span: tracing::Span,
    what: &str,
    call: impl FnOnce(wasmtime::Store<T>) -> F + Send + 'static,
) -> Outcome
where
    T: PluginState,
    F: Future<Output = wasmtime::Result<Result<(), String>>> + Send + 'static,
{
    let (workload, name) = (
        component.workload().to_string(),
        component.component().to_string(),
    );
    let deadline = component.timeout();
    let store = match component.new_store() {
        Ok(mut store) => {
            store
                .data_mut()
                .set_trace_parent(nimbus_observe::trace::Parent::of(&span));
            store
        }
        Err(error) => return Outcome::Failed(format!("{error:#}")),
    };
    let metrics = component.metrics().cloned();
    let budget = component.cpu_budget().cloned();
    let traced = span.clone();
    let task = nimbus_observe::metrics::spawn_metered(metrics.as_ref(), budget, async move {
        tokio::time::timeout(deadline, call(store))
            .instrument(traced)
            .await
    });
    let outcome = match task.await {
        Ok(Ok(Ok(Ok(())))) => Outcome::Done,
        Ok(Ok(Ok(Err(refusal)))) => Outcome::Refused(refusal),
        Ok(Ok(Err(trap))) => Outcome::Failed(format!("{trap:#}")),
        Ok(Err(_)) => Outcome::TimedOut,
        Err(join) => Outcome::Failed(join.to_string()),
    };
    if !outcome.ok() {
        nimbus_observe::trace::record_error(&span);
    }
    match &outcome {
        Outcome::Done => {}
        Outcome::Refused(error) => tracing::warn!(
            workload,
            component = name,
            what,
            error,
            "wasmcloud:nats handler returned an error"
        ),
        Outcome::Failed(error) => tracing::error!(
            workload,
            component = name,
            what,
            error,
            "wasmcloud:nats handler failed"
        ),
        Outcome::TimedOut => tracing::error!(
            workload,
            component = name,
            what,
            timeout_ms = deadline.as_millis() as u64,
            "wasmcloud:nats handler exceeded its deadline"
        ),
    }
    outcome
}

/// Waits before the next attempt, doubling the wait.
async fn back_off(wait: &mut Duration) {
    tokio::time::sleep(*wait).await;
    *wait = (*wait * 2).min(MAX_BACKOFF);
}

async fn core_loop<T: PluginState>(
    binding: Arc<NatsBinding>,
    subscription: CoreSubscription,
    component: ComponentHandle<T>,
    handler: handlers::core::CoreSubscriberPre<T>,
    slots: Arc<tokio::sync::Semaphore>,
) {
    let (workload, name) = (
        component.workload().to_string(),
        component.component().to_string(),
    );
    let subject = subscription.subject.clone();
    let mut wait = Duration::from_millis(100);
    loop {
        let subscribed = async {
            let client = binding.connection.client().await?;
            let subscriber = match &subscription.queue {
                Some(queue) => client.queue_subscribe(subject.clone(), queue.clone()).await,
                None => client.subscribe(subject.clone()).await,
            };
            subscriber.map_err(|e| e.to_string())
        }
        .await;
        let mut subscriber = match subscribed {
            Ok(subscriber) => subscriber,
            Err(error) => {
                tracing::warn!(
                    workload,
                    component = name,
                    subject,
                    error,
                    "cannot subscribe; retrying"
                );
                back_off(&mut wait).await;
                continue;
            }
        };
        tracing::info!(
            workload,
            component = name,
            subject,
            queue = subscription.queue.as_deref(),
            "wasmcloud:nats core subscription started"
        );
        wait = Duration::from_millis(100);
        // The client resubscribes by itself after a reconnect; the stream
        // ends only when the client is gone.
        while let Some(message) = subscriber.next().await {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (component, handler) = (component.clone(), handler.clone());
            tokio::spawn(async move {
                let span = nimbus_observe::trace::message_span(
                    component.workload(),
                    component.component(),
                    &message.subject,
                );
                // Only a request's inbox may be answered outside the grant.
                let reply = message
                    .reply
                    .as_ref()
                    .map(|r| r.to_string())
                    .filter(|r| crate::calls::answerable(r));
                let guest = guest_message(&message);
                run(
                    &component,
                    span,
                    "core-handler",
                    move |mut store| async move {
                        if let Some(reply) = reply {
                            let (_, _, slots, _) = store.data_mut().plugin_slots();
                            slots.get_or_insert_with(ID, Replies::default).0.push(reply);
                        }
                        let instance = handler.instantiate_async(&mut store).await?;
                        store
                            .run_concurrent(async |accessor| {
                                instance
                                    .wasmcloud_nats_core_handler()
                                    .call_handle_message(accessor, guest)
                                    .await
                            })
                            .await?
                    },
                )
                .await;
                drop(permit);
            });
        }
        back_off(&mut wait).await;
    }
}

/// The durable consumer the host keeps for a subscription: the queue
/// group's name when it has one (replicas share it), else one derived from
/// the workload, component, stream and filter (so a restarted host resumes
/// where the last one stopped).
fn durable_name(workload: &str, component: &str, subscription: &JetStreamSubscription) -> String {
    if let Some(queue) = &subscription.queue {
        return queue.clone();
    }
    // FNV-1a: the name must stay the same across hosts and releases.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [
        workload,
        component,
        &subscription.stream,
        &subscription.filter,
    ] {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("nimbus-{hash:016x}")
}

async fn consumer(
    binding: &NatsBinding,
    durable: &str,
    subscription: &JetStreamSubscription,
) -> Result<js::consumer::Consumer<js::consumer::pull::Config>, String> {
    let client = binding.connection.client().await?;
    let mut context = match &binding.settings.domain {
        Some(domain) => js::with_domain(client, domain),
        None => js::new(client),
    };
    context.set_timeout(binding.settings.request_timeout);
    let stream = context
        .get_stream(&subscription.stream)
        .await
        .map_err(|e| format!("stream `{}`: {e}", subscription.stream))?;
    let settings = &binding.settings;
    let config = js::consumer::pull::Config {
        durable_name: Some(durable.to_string()),
        filter_subject: subscription.filter.clone(),
        deliver_policy: match subscription.start {
            StartAt::All => js::consumer::DeliverPolicy::All,
            StartAt::Last => js::consumer::DeliverPolicy::Last,
            StartAt::LastPerSubject => js::consumer::DeliverPolicy::LastPerSubject,
            StartAt::New => js::consumer::DeliverPolicy::New,
        },
        ack_policy: js::consumer::AckPolicy::Explicit,
        ack_wait: settings.ack_wait,
        max_deliver: settings.max_deliver,
        max_ack_pending: settings.max_ack_pending.unwrap_or_default(),
        ..Default::default()
    };
    let consumer: js::consumer::Consumer<js::consumer::pull::Config> = stream
        .get_or_create_consumer(durable, config)
        .await
        .map_err(|e| {
            format!(
                "consumer `{durable}` on stream `{}`: {e}",
                subscription.stream
            )
        })?;
    // An existing consumer is taken as it is: one made for other subjects
    // (an operator's, another workload's) must not feed this handler.
    let existing = &consumer.cached_info().config;
    if existing.filter_subject != subscription.filter
        || existing.ack_policy != js::consumer::AckPolicy::Explicit
    {
        return Err(format!(
            "consumer `{durable}` on stream `{}` exists with filter `{}` and ack policy {:?}, not `{}` with explicit acks; name another queue group",
            subscription.stream, existing.filter_subject, existing.ack_policy, subscription.filter
        ));
    }
    Ok(consumer)
}

async fn jetstream_loop<T: PluginState>(
    binding: Arc<NatsBinding>,
    subscription: JetStreamSubscription,
    component: ComponentHandle<T>,
    handler: handlers::jetstream::JetstreamSubscriberPre<T>,
) {
    let (workload, name) = (
        component.workload().to_string(),
        component.component().to_string(),
    );
    let durable = durable_name(&workload, &name, &subscription);
    let stream_name = subscription.stream.clone();
    let mut wait = Duration::from_millis(100);
    loop {
        let messages = match consumer(&binding, &durable, &subscription).await {
            Ok(consumer) => consumer
                .stream()
                // One at a time: a message's ack wait starts when it is
                // handed over, so none waits behind a slow handler.
                .max_messages_per_batch(1)
                .heartbeat(Duration::from_secs(2))
                .expires(Duration::from_secs(10))
                .messages()
                .await
                .map_err(|e| e.to_string()),
            Err(error) => Err(error),
        };
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(
                    workload,
                    component = name,
                    stream = stream_name,
                    error,
                    "cannot consume; retrying"
                );
                back_off(&mut wait).await;
                continue;
            }
        };
        tracing::info!(
            workload,
            component = name,
            stream = stream_name,
            consumer = durable,
            "wasmcloud:nats JetStream subscription started"
        );
        wait = Duration::from_millis(100);
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    // A missed heartbeat or a lost connection: start over
                    // on the same durable consumer.
                    tracing::warn!(workload, component = name, stream = stream_name, %error, "the consumer's stream broke; starting it again");
                    break;
                }
            };
            deliver_jetstream(&binding, &component, &handler, message).await;
        }
        back_off(&mut wait).await;
    }
}

async fn deliver_jetstream<T: PluginState>(
    binding: &NatsBinding,
    component: &ComponentHandle<T>,
    handler: &handlers::jetstream::JetstreamSubscriberPre<T>,
    message: js::Message,
) {
    let settled = Arc::new(AtomicBool::new(false));
    let delivered = message.info().map(|i| i.delivered).unwrap_or(1).max(1);
    let span = nimbus_observe::trace::message_span(
        component.workload(),
        component.component(),
        &message.subject,
    );
    let (handle, flag, handler) = (message.clone(), settled.clone(), handler.clone());
    let outcome = run(
        component,
        span,
        "jetstream-handler",
        move |mut store| async move {
            let (table, _, _) = store.data_mut().plugin_parts();
            let handle = table.push(MessageHandle {
                message: handle,
                settled: flag,
            })?;
            let instance = handler.instantiate_async(&mut store).await?;
            store
                .run_concurrent(async |accessor| {
                    instance
                        .wasmcloud_nats_jetstream_handler()
                        .call_handle_message(accessor, handle)
                        .await
                })
                .await?
        },
    )
    .await;
    if settled.swap(true, Ordering::AcqRel) {
        return;
    }
    let settlement = match (binding.settings.ack_mode, outcome.ok()) {
        (AckMode::Auto, true) => Some(js::AckKind::Ack),
        // Left to the component: it comes again after the ack wait.
        (AckMode::Manual, true) => None,
        // Failed: again soon, a little later each time.
        (_, false) => {
            let delay =
                Duration::from_millis((delivered as u64).saturating_mul(100)).min(MAX_BACKOFF);
            Some(js::AckKind::Nak(Some(delay)))
        }
    };
    if let Some(kind) = settlement
        && let Err(error) = message.ack_with(kind).await
    {
        tracing::warn!(
            workload = component.workload(),
            component = component.component(),
            %error,
            "cannot settle a JetStream message; it comes again after the ack wait"
        );
    }
}

async fn kv_loop<T: PluginState>(
    binding: Arc<NatsBinding>,
    watch: KvWatch,
    component: ComponentHandle<T>,
    handler: handlers::kv::KvWatcherPre<T>,
) {
    let (workload, name) = (
        component.workload().to_string(),
        component.component().to_string(),
    );
    let bucket = watch.bucket.clone();
    let mut wait = Duration::from_millis(100);
    // The last revision delivered: a watch started again resumes after it.
    let mut last: Option<u64> = None;
    loop {
        let watching = async {
            let client = binding.connection.client().await?;
            let mut context = match &binding.settings.domain {
                Some(domain) => js::with_domain(client, domain),
                None => js::new(client),
            };
            context.set_timeout(binding.settings.request_timeout);
            let store = context
                .get_key_value(&bucket)
                .await
                .map_err(|e| format!("bucket `{bucket}`: {e}"))?;
            // From now on: the bucket's last revision is where it starts,
            // so a watch broken before its first change loses nothing.
            let from = match last {
                Some(revision) => revision,
                None => {
                    let status = store
                        .status()
                        .await
                        .map_err(|e| format!("bucket `{bucket}`: {e}"))?;
                    status.info.state.last_sequence
                }
            };
            store
                .watch_from_revision(&watch.filter, from + 1)
                .await
                .map(|entries| (entries, from))
                .map_err(|e| format!("watching `{bucket}`: {e}"))
        }
        .await;
        let mut entries = match watching {
            Ok((entries, from)) => {
                last = Some(from);
                entries
            }
            Err(error) => {
                tracing::warn!(
                    workload,
                    component = name,
                    bucket,
                    error,
                    "cannot watch; retrying"
                );
                back_off(&mut wait).await;
                continue;
            }
        };
        tracing::info!(
            workload,
            component = name,
            bucket,
            filter = watch.filter,
            "wasmcloud:nats key-value watch started"
        );
        wait = Duration::from_millis(100);
        while let Some(entry) = entries.next().await {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    tracing::warn!(workload, component = name, bucket, %error, "the watch broke; starting it again");
                    break;
                }
            };
            if last.is_some_and(|l| entry.revision <= l) {
                continue;
            }
            last = Some(entry.revision);
            let span = nimbus_observe::trace::message_span(
                &workload,
                &name,
                &format!("$KV.{bucket}.{}", entry.key),
            );
            let guest: kv_types::Entry = guest_entry(entry);
            let (handler, bucket) = (handler.clone(), bucket.clone());
            run(
                &component,
                span,
                "kv-handler",
                move |mut store| async move {
                    let instance = handler.instantiate_async(&mut store).await?;
                    store
                        .run_concurrent(async |accessor| {
                            instance
                                .wasmcloud_nats_kv_handler()
                                .call_handle_event(accessor, bucket, guest)
                                .await
                        })
                        .await?
                },
            )
            .await;
        }
        back_off(&mut wait).await;
    }
}
