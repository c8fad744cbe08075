//! `wasmcloud:messaging@0.2.0` and `@0.3.0`: components publish and
//! request through `consumer`, and receive subscribed messages through
//! their exported `handler` (0.3.0's calls are `async` with streamed bodies
//! and typed errors: see [`v3`]).
//!
//! ```yaml
//! hostInterfaces:
//!   - namespace: wasmcloud
//!     package: messaging
//!     interfaces: [consumer, handler]
//!     config:
//!       backend: nats                 # memory (default) | nats
//!       url: nats://127.0.0.1:4222
//!       subscriptions: orders.*, audit.>
//!       queue_group: workers          # optional: share the messages with other members
//! ```
//!
//! A component may set `subscriptions`, `queue_group` (or wasmCloud's
//! `consumer_group`), `max_in_flight` and `admission_wait` in its own
//! `localResources.config`; they win over the workload's entry for that
//! component, so each worker of one workload can listen on its own
//! subjects.
//!
//! Each delivered message runs `handle-message` on a fresh instance of the
//! component (like a P2 HTTP request), within the component's request
//! deadline, admitted as [`admission`] describes: at most `max_in_flight`
//! (default 32) at a time for the component, at most the host's
//! `host_max_in_flight` (default 128) for all, a message finding no slot
//! within `admission_wait` (default 30 s) shed. A handler that traps or
//! returns an error is logged and the subscription goes on. A handler
//! answers a request by publishing to its `reply-to`.
//! Brokers are pooled per host: the memory broker is one per host (so
//! workloads on a host can talk), a NATS client one per URL.

mod admission;
mod broker;
mod v3;

#[cfg(feature = "nats")]
pub use broker::NatsBroker;
pub use broker::{Broker, MemoryBroker, Message, MessagingError, Subscription, subject_matches};

use nimbus_model::backends::{BackendChoice, BackendKind, MESSAGING};
use nimbus_plugin::PluginState;
use nimbus_plugin::{BackendPool, NatsConnections};
use nimbus_plugin::{BindContext, Binding, ComponentHandle, PluginError, ServeGuard};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasmcloud:messaging/messaging",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

use bindings::wasmcloud::messaging::{consumer, types};

const ID: &str = "messaging";
const CONSUMER: &str = "wasmcloud:messaging/consumer";
/// The most a guest's message body is buffered to before it is sent.
const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Settings a component may set for itself in `localResources.config`,
/// over the workload's `wasmcloud:messaging` entry. `consumer_group` is
/// wasmCloud's name for `queue_group`.
const PER_COMPONENT_KEYS: [&str; 5] = [
    "subscriptions",
    "queue_group",
    "consumer_group",
    "max_in_flight",
    "admission_wait",
];

/// Default time a guest's `request` waits when it passes 0.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `wasmcloud:messaging` from pooled brokers.
pub struct MessagingPlugin {
    defaults: BTreeMap<String, String>,
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    nats: Arc<NatsConnections>,
    memory: Arc<MemoryBroker>,
    /// NATS brokers, one per server for every workload; the memory broker
    /// is not pooled (one per host, so workloads can talk through it).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pool: BackendPool<BackendChoice, dyn Broker>,
    admission: admission::Admission,
}

/// One component's messaging settings.
struct MessagingBinding {
    broker: Arc<dyn Broker>,
    subscriptions: Vec<String>,
    queue_group: Option<String>,
    max_in_flight: usize,
    admission_wait: Duration,
    /// A request's wait when the guest names none (0.2.0's 0, 0.3.0's
    /// `none`).
    timeout: Duration,
    max_body_bytes: usize,
}

impl MessagingPlugin {
    /// The plugin with the host's `defaults` for it, sharing the host's NATS clients.
    ///
    /// `host_max_in_flight` in `defaults` sets the host's total of messages
    /// in flight (see [`admission`]); a value that is not a positive number
    /// is reported and the default kept.
    pub fn new(defaults: BTreeMap<String, String>, nats: Arc<NatsConnections>) -> Self {
        let host_total = match defaults.get("host_max_in_flight") {
            None => admission::DEFAULT_HOST_TOTAL,
            Some(value) => positive(value).unwrap_or_else(|| {
                tracing::warn!(
                    value = %value.escape_debug(),
                    default = admission::DEFAULT_HOST_TOTAL,
                    "messaging host_max_in_flight is not a positive number; using the default"
                );
                admission::DEFAULT_HOST_TOTAL
            }),
        };
        Self {
            defaults,
            nats,
            memory: Arc::new(MemoryBroker::default()),
            pool: BackendPool::new(),
            admission: admission::Admission::new(host_total),
        }
    }

    fn settings(&self, ctx: &BindContext<'_>) -> Result<MessagingBinding, PluginError> {
        let error = |message: String| PluginError::new(ID, message);
        let mut config = ctx.backend_config(&self.defaults, "wasmcloud", "messaging")?;
        // A component's own `localResources.config` wins for the keys that
        // shape its subscriptions, so workers of one workload can listen on
        // different subjects (wasmCloud reads them there first, too).
        let own = |key: &str| ctx.component_config.contains_key(key);
        if own("queue_group") || own("consumer_group") {
            // One setting under two names: the component's replaces both.
            config.remove("queue_group");
            config.remove("consumer_group");
        }
        for key in PER_COMPONENT_KEYS {
            if let Some(value) = ctx.component_config.get(key) {
                config.insert(key.to_string(), value.clone());
            }
        }
        let choice = MESSAGING
            .resolve(&config, missing_feature)
            .map_err(|e| error(e.to_string()))?;
        let timeout = nimbus_plugin::timeout_setting(ID, &config, DEFAULT_REQUEST_TIMEOUT)?;
        let broker: Arc<dyn Broker> = match choice {
            BackendChoice::Memory => self.memory.clone(),
            #[cfg(feature = "nats")]
            BackendChoice::Nats { ref url } => {
                let Ok(broker) = self.pool.get_or_open(ctx.workload, &choice, false, || {
                    Ok::<Arc<dyn Broker>, std::convert::Infallible>(Arc::new(NatsBroker {
                        connection: self.nats.get(url, timeout),
                    }))
                });
                broker
            }
            // The table takes only memory and NATS; NATS may be left out.
            other => {
                let _ = timeout;
                return Err(error(
                    MESSAGING.refuse(other.kind(), missing_feature).to_string(),
                ));
            }
        };
        let subscriptions = config
            .get("subscriptions")
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for subject in &subscriptions {
            broker::check_subject(subject, true).map_err(|e| error(e.to_string()))?;
        }
        let max_in_flight = match config.get("max_in_flight") {
            Some(n) => positive(n).ok_or_else(|| {
                error(format!(
                    "max_in_flight `{}` is not a positive number",
                    n.escape_debug()
                ))
            })?,
            None => admission::DEFAULT_PER_COMPONENT,
        };
        let admission_wait = match config.get("admission_wait") {
            Some(value) => {
                let (wait, clamped) = admission::parse_wait(value).map_err(error)?;
                if clamped {
                    tracing::warn!(
                        workload = ctx.workload,
                        component = ctx.component,
                        admission_wait = %value.escape_debug(),
                        "admission_wait is above the 10-minute maximum; waiting 10 minutes"
                    );
                }
                wait
            }
            None => admission::DEFAULT_WAIT,
        };
        let max_body_bytes = match config.get("max_body_bytes") {
            Some(n) => positive(n).ok_or_else(|| {
                error(format!(
                    "max_body_bytes `{}` is not a positive number",
                    n.escape_debug()
                ))
            })?,
            None => DEFAULT_MAX_BODY_BYTES,
        };
        Ok(MessagingBinding {
            broker,
            subscriptions,
            queue_group: config
                .get("queue_group")
                .or_else(|| config.get("consumer_group"))
                .cloned()
                .filter(|q| !q.is_empty()),
            max_in_flight,
            admission_wait,
            timeout,
            max_body_bytes,
        })
    }
}

/// A positive whole number, or `None`.
fn positive(value: &str) -> Option<usize> {
    value.trim().parse::<usize>().ok().filter(|n| *n > 0)
}

impl<T: PluginState> nimbus_plugin::Plugin<T> for MessagingPlugin {
    fn id(&self) -> &'static str {
        ID
    }

    fn interfaces(&self) -> &'static [&'static str] {
        &[
            "wasmcloud:messaging/consumer@0.2.0",
            "wasmcloud:messaging/types@0.2.0",
            "wasmcloud:messaging/consumer@0.3.0",
            "wasmcloud:messaging/types@0.3.0",
        ]
    }

    fn exports(&self) -> &'static [&'static str] {
        &[
            "wasmcloud:messaging/handler@0.2.0",
            "wasmcloud:messaging/handler@0.3.0",
        ]
    }

    fn add_to_linker(&self, linker: &mut wasmtime::component::Linker<T>) -> wasmtime::Result<()> {
        fn view<T: PluginState>(state: &mut T) -> ConsumerView<'_> {
            let (_, bindings, calls) = state.plugin_parts();
            ConsumerView {
                binding: bindings.get::<MessagingBinding>(ID),
                calls,
            }
        }
        types::add_to_linker::<T, HasConsumer>(linker, view::<T>)?;
        consumer::add_to_linker::<T, HasConsumer>(linker, view::<T>)?;
        v3::bindings::wasmcloud::messaging::types::add_to_linker::<T, v3::HasConsumerV3>(
            linker, view::<T>,
        )?;
        v3::bindings::wasmcloud::messaging::consumer::add_to_linker::<T, v3::HasConsumerV3>(
            linker, view::<T>,
        )
    }

    fn bind(&self, ctx: &BindContext<'_>) -> Result<Binding, PluginError> {
        Ok(Arc::new(self.settings(ctx)?))
    }

    fn serve(
        &self,
        ctx: &BindContext<'_>,
        component: ComponentHandle<T>,
    ) -> Result<Option<ServeGuard>, PluginError> {
        let binding = self.settings(ctx)?;
        if binding.subscriptions.is_empty() {
            tracing::warn!(
                workload = ctx.workload,
                component = ctx.component,
                "the component exports a message handler but subscribes to nothing (set `subscriptions` in its `localResources.config` or on the workload's wasmcloud:messaging)"
            );
            return Ok(None);
        }
        let instance_pre = component.instance_pre().clone();
        // The handler's version is the one the component exports.
        let handler = match v3::HandlerServicePre::new(instance_pre.clone()) {
            Ok(pre) => Handler::V3(pre),
            Err(_) => Handler::V2(bindings::MessagingPre::new(instance_pre).map_err(|e| {
                PluginError::new(ID, format!("cannot use the message handler: {e}"))
            })?),
        };
        let gate = self.admission.gate(
            &format!("{}/{}", ctx.workload, ctx.component),
            binding.max_in_flight,
            binding.admission_wait,
        );
        let mut tasks = Vec::new();
        for subject in &binding.subscriptions {
            let task = tokio::spawn(subscription_loop(
                binding.broker.clone(),
                subject.clone(),
                binding.queue_group.clone(),
                component.clone(),
                handler.clone(),
                gate.clone(),
            ));
            tasks.push(task.abort_handle());
        }
        Ok(Some(Box::new(Subscriptions(tasks))))
    }
}

/// The cargo feature a backend kind needs, when this build left it out.
fn missing_feature(kind: BackendKind) -> Option<&'static str> {
    match kind {
        BackendKind::Nats if !cfg!(feature = "nats") => Some("nats"),
        _ => None,
    }
}

/// Subscription tasks of one component; aborted (unsubscribing) on drop.
struct Subscriptions(Vec<tokio::task::AbortHandle>);

impl Drop for Subscriptions {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The handler export a component has, at its version.
enum Handler<T: 'static> {
    V2(bindings::MessagingPre<T>),
    V3(v3::HandlerServicePre<T>),
}

impl<T: 'static> Clone for Handler<T> {
    fn clone(&self) -> Self {
        match self {
            Self::V2(pre) => Self::V2(pre.clone()),
            Self::V3(pre) => Self::V3(pre.clone()),
        }
    }
}

/// Subscribes (retrying while the broker is unreachable) and hands each
/// message to the component once the gate admits it.
async fn subscription_loop<T: PluginState>(
    broker: Arc<dyn Broker>,
    subject: String,
    queue: Option<String>,
    component: ComponentHandle<T>,
    handler: Handler<T>,
    gate: admission::Gate,
) {
    let (workload, name) = (component.workload(), component.component());
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut messages = match broker.subscribe(subject.clone(), queue.clone()).await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(
                    workload,
                    component = name,
                    subject,
                    %error,
                    "cannot subscribe; retrying"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        tracing::info!(
            workload,
            component = name,
            subject,
            queue = queue.as_deref(),
            "subscribed"
        );
        while let Some(message) = messages.recv().await {
            let Some(admitted) = gate.admit().await else {
                tracing::warn!(
                    workload,
                    component = name,
                    subject = message.subject,
                    max_in_flight = gate.limit(),
                    admission_wait_ms = gate.wait().as_millis() as u64,
                    "no free slot for a message within its admission wait; dropped it"
                );
                if let Some(metrics) = component.metrics() {
                    metrics.message_shed();
                }
                continue;
            };
            let (component, handler) = (component.clone(), handler.clone());
            let metrics = component.metrics().cloned();
            let budget = component.cpu_budget().cloned();
            nimbus_observe::metrics::spawn_metered(metrics.as_ref(), budget, async move {
                deliver(&component, &handler, message).await;
                drop(admitted);
            });
        }
        // The broker ended the subscription (connection lost for good):
        // subscribe again.
        tokio::time::sleep(backoff).await;
    }
}

/// Runs `handle-message` once on a fresh instance; failures are logged.
async fn deliver<T: PluginState>(
    component: &ComponentHandle<T>,
    handler: &Handler<T>,
    message: Message,
) {
    let (workload, name) = (component.workload(), component.component());
    let subject = message.subject.clone();
    let span = nimbus_observe::trace::message_span(workload, name, &subject);
    let call = async {
        let mut store = component.new_store()?;
        store
            .data_mut()
            .set_trace_parent(nimbus_observe::trace::Parent::of(&span));
        match handler {
            Handler::V2(pre) => {
                let instance = pre.instantiate_async(&mut store).await?;
                let message = types::BrokerMessage {
                    subject: message.subject,
                    body: message.body.to_vec(),
                    reply_to: message.reply_to,
                };
                instance
                    .wasmcloud_messaging_handler()
                    .call_handle_message(&mut store, &message)
                    .await
            }
            Handler::V3(pre) => {
                let instance = pre.instantiate_async(&mut store).await?;
                v3::handle(&mut store, &instance, message).await
            }
        }
    };
    let outcome = tokio::time::timeout(component.timeout(), call)
        .instrument(span.clone())
        .await;
    if !matches!(outcome, Ok(Ok(Ok(())))) {
        nimbus_observe::trace::record_error(&span);
    }
    match outcome {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => {
            tracing::warn!(
                workload,
                component = name,
                subject,
                error,
                "message handler returned an error"
            )
        }
        Ok(Err(trap)) => tracing::error!(
            workload,
            component = name,
            subject,
            error = %format!("{trap:#}"),
            "message handler failed; the subscription goes on"
        ),
        Err(_) => tracing::error!(
            workload,
            component = name,
            subject,
            timeout_ms = component.timeout().as_millis() as u64,
            "message handler exceeded its deadline"
        ),
    }
}

struct ConsumerView<'a> {
    binding: Option<&'a MessagingBinding>,
    calls: nimbus_plugin::PluginCalls<'a>,
}

impl ConsumerView<'_> {
    fn binding(&self) -> wasmtime::Result<&MessagingBinding> {
        self.binding.ok_or_else(|| {
            wasmtime::format_err!("wasmcloud:messaging is not bound for this component")
        })
    }

    fn broker(&self) -> wasmtime::Result<&Arc<dyn Broker>> {
        Ok(&self.binding()?.broker)
    }
}

impl types::Host for ConsumerView<'_> {}

impl consumer::Host for ConsumerView<'_> {
    async fn request(
        &mut self,
        subject: String,
        body: Vec<u8>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<types::BrokerMessage, String>> {
        let timeout = match timeout_ms {
            0 => self.binding()?.timeout,
            ms => Duration::from_millis(ms.into()),
        };
        let broker = self.broker()?;
        // The broker bounds the wait; this also bounds reaching the broker.
        let call = async {
            tokio::time::timeout(
                timeout + Duration::from_millis(100),
                broker.request(subject.clone(), body.into(), timeout),
            )
            .await
            .unwrap_or_else(|_| {
                Err(MessagingError::NoReply {
                    subject: subject.clone(),
                    ms: timeout_ms.into(),
                })
            })
        };
        let reply = self.calls.observe(CONSUMER, "request", call).await;
        Ok(reply
            .map(|m| types::BrokerMessage {
                subject: m.subject,
                body: m.body.to_vec(),
                reply_to: m.reply_to,
            })
            .map_err(|e| e.to_string()))
    }

    async fn publish(&mut self, msg: types::BrokerMessage) -> wasmtime::Result<Result<(), String>> {
        let broker = self.broker()?;
        let call = broker.publish(Message {
            subject: msg.subject,
            body: msg.body.into(),
            reply_to: msg.reply_to,
        });
        Ok(self
            .calls
            .observe(CONSUMER, "publish", call)
            .await
            .map_err(|e| e.to_string()))
    }
}

struct HasConsumer;

impl wasmtime::component::HasData for HasConsumer {
    type Data<'a> = ConsumerView<'a>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use nimbus_model::sources::NamedSources;
    use nimbus_model::spec::{HostInterface, WorkloadSpec};

    /// Binds a component of a workload whose `wasmcloud:messaging` entry
    /// says `config`.
    fn bind(config: &[(&str, &str)]) -> Result<MessagingBinding, PluginError> {
        bind_component(config, &[])
    }

    /// The same, the component's own `localResources.config` saying `own`.
    fn bind_component(
        config: &[(&str, &str)],
        own: &[(&str, &str)],
    ) -> Result<MessagingBinding, PluginError> {
        let mut spec = WorkloadSpec::default();
        spec.host_interfaces.push(HostInterface {
            namespace: "wasmcloud".into(),
            package: "messaging".into(),
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        });
        let sources = NamedSources::default();
        let own: BTreeMap<String, String> = own
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let plugin = MessagingPlugin::new(BTreeMap::new(), Arc::new(NatsConnections::default()));
        plugin.settings(&BindContext {
            workload: "t/w",
            component: "c",
            spec: &spec,
            component_config: &own,
            sources: &sources,
            imports: &[],
        })
    }

    #[tokio::test]
    async fn backends_come_from_the_one_table() {
        let binding = bind(&[("subscriptions", "a.*, b")]).map_err(|e| e.to_string());
        let binding = binding.unwrap();
        assert_eq!(binding.subscriptions, ["a.*", "b"]);
        let error = bind(&[("url", "redis://r:6379")])
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("messaging: unknown messaging backend `redis` (expected memory or nats)")
        );
        let nats = bind(&[("url", "nats://127.0.0.1:4222")])
            .map(|_| ())
            .map_err(|e| e.to_string());
        if cfg!(feature = "nats") {
            // Made lazily: binding never waits for the server.
            assert_eq!(nats, Ok(()));
        } else {
            assert_eq!(
                nats,
                Err("messaging: the nats messaging backend is not in this build of nimbus (rebuild it with the cargo feature `nats`)".to_string())
            );
        }
    }

    /// A component's own settings win over the workload's, whichever of the
    /// two names of the queue group either uses.
    #[tokio::test]
    async fn a_component_s_own_settings_win() {
        let workload = [
            ("subscriptions", "all"),
            ("queue_group", "shared"),
            ("max_in_flight", "8"),
        ];
        let binding = bind_component(
            &workload,
            &[("subscriptions", "tasks.leet"), ("consumer_group", "leet")],
        )
        .map_err(|e| e.to_string())
        .unwrap();
        assert_eq!(binding.subscriptions, ["tasks.leet"]);
        assert_eq!(binding.queue_group.as_deref(), Some("leet"));
        assert_eq!(binding.max_in_flight, 8);
        let binding = bind_component(&workload, &[])
            .map_err(|e| e.to_string())
            .unwrap();
        assert_eq!(binding.subscriptions, ["all"]);
        assert_eq!(binding.queue_group.as_deref(), Some("shared"));
    }
}
