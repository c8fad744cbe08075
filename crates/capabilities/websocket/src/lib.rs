//! `nimbus:websocket@0.1.0`: WebSocket connections served by a component.
//!
//! A component that exports `nimbus:websocket/handler` takes the WebSocket
//! upgrade requests routed to its workload (the same routes as its HTTP
//! requests; other requests still go to the workload's HTTP handler). The
//! host does the handshake and the framing: it answers pings, joins
//! fragments, enforces the limits below, and calls the handler once per
//! event, each call on a fresh instance within the component's request
//! deadline. Components of the workload that import
//! `nimbus:websocket/connections` send to, close and list its connections.
//! wasmCloud has no WebSocket interface of its own; the WIT is ours
//! (`wit/websocket.wit`, which documents the guarantees).
//!
//! ```yaml
//! hostInterfaces:
//!   - namespace: nimbus
//!     package: websocket
//!     interfaces: [handler, connections]
//!     config:
//!       max_message_bytes: "1048576"  # largest message either way (default 1 MiB)
//!       idle_timeout_ms: "300000"     # no frame either way for this long closes with 1001 (default 5 min)
//!       max_connections: "1000"       # open at once for the workload; more are refused with 503
//!       send_timeout_ms: "5000"       # how long `send` waits on a client that does not read
//! ```
//!
//! The host's defaults for these come from its `websocket` plugin
//! settings; the workload's entry is laid over them. A connection ends
//! with `on-close` once, whatever ended it; a replaced or stopped workload
//! closes its connections with 1001.

mod session;

use nimbus_observe::metrics::{ComponentMetrics, WebSocketEnd};
use nimbus_plugin::upgrade::{ConnectionUpgrades, UpgradeAnswer, UpgradeRequest};
use nimbus_plugin::{
    BindContext, Binding, ComponentHandle, PluginCalls, PluginError, PluginState, ServeGuard,
};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "nimbus:websocket/handler-component",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

use bindings::nimbus::websocket::{connections, types};

const ID: &str = "websocket";
const CONNECTIONS: &str = "nimbus:websocket/connections";

/// The setting keys, host defaults and workload entry alike.
const SETTINGS: [&str; 4] = [
    "max_message_bytes",
    "idle_timeout_ms",
    "max_connections",
    "send_timeout_ms",
];

/// The largest `max_message_bytes` a workload may set: a message is held
/// whole in host memory before the handler gets it.
const MAX_MESSAGE_BYTES_CEILING: usize = 64 * 1024 * 1024;

/// Messages queued for one client beyond what its socket takes; `send`
/// waits (up to the send timeout) when they are all taken.
const QUEUE_DEPTH: usize = 64;

/// A close reason's limit in bytes (a close frame's payload is at most 125
/// bytes, two of them the code).
const MAX_CLOSE_REASON_BYTES: usize = 123;

/// The limits of one workload's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The largest message, in and out.
    pub max_message_bytes: usize,
    /// No frame either way for this long closes the connection.
    pub idle_timeout: Duration,
    /// Connections open at once for the workload.
    pub max_connections: usize,
    /// How long `send` waits for room in a connection's queue.
    pub send_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_message_bytes: 1024 * 1024,
            idle_timeout: Duration::from_secs(300),
            max_connections: 1000,
            send_timeout: Duration::from_secs(5),
        }
    }
}

impl Settings {
    /// Reads the settings from `config` (host defaults with the workload's
    /// entry over them); an unknown key or a bad value is an error naming it.
    pub fn resolve(config: &BTreeMap<String, String>) -> Result<Self, PluginError> {
        if let Some(key) = config.keys().find(|k| !SETTINGS.contains(&k.as_str())) {
            return Err(PluginError::new(
                ID,
                format!("unknown setting `{key}` (known: {})", SETTINGS.join(", ")),
            ));
        }
        let number = |key: &str, default: u64| -> Result<u64, PluginError> {
            match config.get(key) {
                None => Ok(default),
                Some(value) => match value.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(PluginError::new(
                        ID,
                        format!("{key} `{value}` is not a positive whole number"),
                    )),
                },
            }
        };
        let defaults = Self::default();
        let max_message_bytes = number("max_message_bytes", defaults.max_message_bytes as u64)?;
        if max_message_bytes > MAX_MESSAGE_BYTES_CEILING as u64 {
            return Err(PluginError::new(
                ID,
                format!(
                    "max_message_bytes `{max_message_bytes}` is over the host's ceiling of {MAX_MESSAGE_BYTES_CEILING}"
                ),
            ));
        }
        let millis = |key: &str, default: Duration| {
            number(key, default.as_millis() as u64).map(Duration::from_millis)
        };
        Ok(Self {
            max_message_bytes: max_message_bytes as usize,
            idle_timeout: millis("idle_timeout_ms", defaults.idle_timeout)?,
            max_connections: usize::try_from(number(
                "max_connections",
                defaults.max_connections as u64,
            )?)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS),
            send_timeout: millis("send_timeout_ms", defaults.send_timeout)?,
        })
    }
}

/// Serves `nimbus:websocket`: the handler export, the connection functions
/// and the HTTP upgrade.
pub struct WebSocketPlugin {
    defaults: BTreeMap<String, String>,
    hub: Arc<Hub>,
}

impl WebSocketPlugin {
    /// The plugin with the host's `defaults` for it.
    pub fn new(defaults: BTreeMap<String, String>) -> Self {
        Self {
            defaults,
            hub: Arc::new(Hub::default()),
        }
    }

    fn settings(&self, ctx: &BindContext<'_>) -> Result<Settings, PluginError> {
        let mut config = self.defaults.clone();
        config.extend(ctx.interface_config("nimbus", "websocket")?);
        Settings::resolve(&config)
    }
}

impl<T: PluginState> nimbus_plugin::Plugin<T> for WebSocketPlugin {
    fn id(&self) -> &'static str {
        ID
    }

    fn interfaces(&self) -> &'static [&'static str] {
        &[
            "nimbus:websocket/types@0.1.0",
            "nimbus:websocket/connections@0.1.0",
        ]
    }

    fn exports(&self) -> &'static [&'static str] {
        &["nimbus:websocket/handler@0.1.0"]
    }

    fn add_to_linker(&self, linker: &mut wasmtime::component::Linker<T>) -> wasmtime::Result<()> {
        fn view<T: PluginState>(state: &mut T) -> ConnectionsView<'_> {
            let (_, bindings, calls) = state.plugin_parts();
            ConnectionsView {
                binding: bindings.get::<ConnectionsBinding>(ID),
                calls,
            }
        }
        types::add_to_linker::<T, HasConnections>(linker, view::<T>)?;
        connections::add_to_linker::<T, HasConnections>(linker, view::<T>)
    }

    fn bind(&self, ctx: &BindContext<'_>) -> Result<Binding, PluginError> {
        Ok(Arc::new(ConnectionsBinding {
            workload: Arc::from(ctx.workload),
            settings: self.settings(ctx)?,
            hub: self.hub.clone(),
        }))
    }

    fn serve(
        &self,
        ctx: &BindContext<'_>,
        component: ComponentHandle<T>,
    ) -> Result<Option<ServeGuard>, PluginError> {
        let settings = self.settings(ctx)?;
        let pre = bindings::HandlerComponentPre::new(component.instance_pre().clone())
            .map_err(|e| PluginError::new(ID, format!("cannot use the WebSocket handler: {e}")))?;
        let endpoint = Arc::new(Endpoint {
            component: Arc::from(ctx.component),
            metrics: component.metrics().cloned(),
            driver: Box::new(session::HandlerDriver { component, pre }),
            slots: Arc::new(Semaphore::new(settings.max_connections)),
            settings,
            stopped: CancellationToken::new(),
        });
        let workload: Arc<str> = Arc::from(ctx.workload);
        let replaced = self
            .hub
            .endpoints()
            .insert(workload.clone(), endpoint.clone());
        if let Some(previous) = &replaced
            && previous.component != endpoint.component
            && !previous.stopped.is_cancelled()
        {
            tracing::warn!(
                workload = ctx.workload,
                component = ctx.component,
                other = %previous.component,
                "two components of the workload export a WebSocket handler; the last one started takes the connections"
            );
        }
        Ok(Some(Box::new(EndpointGuard {
            hub: self.hub.clone(),
            workload,
            endpoint,
            displaced: replaced.as_ref().map(Arc::downgrade),
        })))
    }

    fn upgrades(&self) -> Option<Arc<dyn ConnectionUpgrades>> {
        Some(Arc::new(Upgrades(self.hub.clone())))
    }
}

/// What the host knows of every workload's handler and connections.
#[derive(Default)]
struct Hub {
    /// Connection ids, never reused for the host's life.
    next_id: AtomicU64,
    /// The handler of each workload that has one.
    endpoints: Mutex<HashMap<Arc<str>, Arc<Endpoint>>>,
    /// Each workload's connections, by id (so in the order they opened).
    connections: Mutex<HashMap<Arc<str>, OpenConnections>>,
    /// The sessions, so a stopping ingress can wait for them to close.
    sessions: tokio_util::task::TaskTracker,
    /// Set when the host's ingress is shutting down.
    draining: AtomicBool,
}

/// One workload's connections, by id.
type OpenConnections = BTreeMap<u64, Arc<Connection>>;

impl Hub {
    fn endpoints(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Endpoint>>> {
        // A panic elsewhere cannot leave the map half-changed: each use is
        // one insert, lookup or remove.
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn connections(&self) -> MutexGuard<'_, HashMap<Arc<str>, OpenConnections>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn endpoint(&self, workload: &str) -> Option<Arc<Endpoint>> {
        self.endpoints().get(workload).cloned()
    }

    fn connection(&self, workload: &str, id: u64) -> Option<Arc<Connection>> {
        self.connections()
            .get(workload)
            .and_then(|open| open.get(&id))
            .cloned()
    }

    fn add(&self, workload: &Arc<str>, id: u64, connection: Arc<Connection>) {
        self.connections()
            .entry(workload.clone())
            .or_default()
            .insert(id, connection);
    }

    fn remove(&self, workload: &str, id: u64) {
        let mut all = self.connections();
        if let Some(open) = all.get_mut(workload) {
            open.remove(&id);
            if open.is_empty() {
                all.remove(workload);
            }
        }
    }
}

/// One workload's WebSocket handler.
struct Endpoint {
    component: Arc<str>,
    metrics: Option<Arc<ComponentMetrics>>,
    driver: Box<dyn session::Driver>,
    settings: Settings,
    /// One permit per open connection.
    slots: Arc<Semaphore>,
    /// Cancelled when the workload stops or is replaced.
    stopped: CancellationToken,
}

impl Endpoint {
    fn ended(&self, end: WebSocketEnd) {
        if let Some(metrics) = &self.metrics {
            metrics.websocket_ended(end);
        }
    }
}

/// Stops a handler's connections when its workload stops or is replaced.
struct EndpointGuard {
    hub: Arc<Hub>,
    workload: Arc<str>,
    endpoint: Arc<Endpoint>,
    /// The running version's endpoint this one took the place of when it
    /// was prepared: put back if this version never runs (its start
    /// failed), so the running one keeps its connections coming.
    displaced: Option<std::sync::Weak<Endpoint>>,
}

impl Drop for EndpointGuard {
    fn drop(&mut self) {
        self.endpoint.stopped.cancel();
        let mut endpoints = self.hub.endpoints();
        // A replacement has already put its own endpoint in.
        if endpoints
            .get(&self.workload)
            .is_some_and(|current| Arc::ptr_eq(current, &self.endpoint))
        {
            match self
                .displaced
                .as_ref()
                .and_then(std::sync::Weak::upgrade)
                .filter(|previous| !previous.stopped.is_cancelled())
            {
                Some(previous) => endpoints.insert(self.workload.clone(), previous),
                None => endpoints.remove(&self.workload),
            };
        }
    }
}

/// A frame for the connection's writer.
enum Outgoing {
    Message(tokio_tungstenite::tungstenite::Message),
    Close(u16, String),
}

/// One connection as the connection functions see it.
struct Connection {
    outgoing: mpsc::Sender<Outgoing>,
    /// Set once the 101 is out; `list` shows only open connections.
    open: AtomicBool,
    /// Set once a close has been asked for (by a component or the host).
    closing: AtomicBool,
    /// The code and reason a component closed with.
    closed_with: Mutex<Option<(u16, String)>>,
    /// Wakes the session when a component closes the connection.
    close_asked: Notify,
}

impl Connection {
    fn new(outgoing: mpsc::Sender<Outgoing>) -> Self {
        Self {
            outgoing,
            open: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            closed_with: Mutex::new(None),
            close_asked: Notify::new(),
        }
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    fn closed_with(&self) -> Option<(u16, String)> {
        self.closed_with
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The HTTP upgrade side of the plugin, which the host asks.
struct Upgrades(Arc<Hub>);

impl ConnectionUpgrades for Upgrades {
    fn protocol(&self) -> &'static str {
        "websocket"
    }

    fn serves(&self, workload: &str) -> bool {
        self.0.endpoints().contains_key(workload)
    }

    fn upgrade(
        &self,
        request: UpgradeRequest,
    ) -> Pin<Box<dyn Future<Output = UpgradeAnswer> + Send>> {
        // On a task of its own: a client that leaves during `on-open` drops
        // the host's future, and an accepted connection must still end
        // with `on-close`.
        let (answer, answered) = tokio::sync::oneshot::channel();
        tokio::spawn({
            let hub = self.0.clone();
            async move {
                if let Err(UpgradeAnswer::Switch { start, .. }) =
                    answer.send(session::upgrade(hub, request).await)
                {
                    start(Box::pin(async {
                        Err(std::io::Error::other("the client left during on-open"))
                    }));
                }
            }
        });
        Box::pin(async move {
            answered.await.unwrap_or_else(|_| UpgradeAnswer::Refuse {
                status: 500,
                message: "the WebSocket handler failed".into(),
                headers: Vec::new(),
            })
        })
    }

    fn drain(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let hub = self.0.clone();
        Box::pin(async move {
            hub.draining.store(true, Ordering::Release);
            let endpoints: Vec<_> = hub.endpoints().values().cloned().collect();
            for endpoint in endpoints {
                endpoint.stopped.cancel();
            }
            hub.sessions.close();
            hub.sessions.wait().await;
            hub.sessions.reopen();
            hub.draining.store(false, Ordering::Release);
        })
    }
}

/// What a component importing `connections` is bound to.
struct ConnectionsBinding {
    workload: Arc<str>,
    settings: Settings,
    hub: Arc<Hub>,
}

struct ConnectionsView<'a> {
    binding: Option<&'a ConnectionsBinding>,
    calls: PluginCalls<'a>,
}

impl ConnectionsView<'_> {
    fn binding(&self) -> wasmtime::Result<&ConnectionsBinding> {
        self.binding.ok_or_else(|| {
            wasmtime::format_err!("nimbus:websocket is not bound for this component")
        })
    }
}

struct HasConnections;

impl wasmtime::component::HasData for HasConnections {
    type Data<'a> = ConnectionsView<'a>;
}

impl types::Host for ConnectionsView<'_> {}

impl connections::Host for ConnectionsView<'_> {
    async fn send(
        &mut self,
        id: u64,
        message: types::Message,
    ) -> wasmtime::Result<Result<(), types::Error>> {
        let binding = self.binding()?;
        let send = async {
            let size = match &message {
                types::Message::Text(text) => text.len(),
                types::Message::Binary(bytes) => bytes.len(),
            };
            if size > binding.settings.max_message_bytes {
                return Err(types::Error::TooLarge(
                    binding.settings.max_message_bytes as u64,
                ));
            }
            let connection = binding
                .hub
                .connection(&binding.workload, id)
                .ok_or(types::Error::UnknownConnection)?;
            if connection.is_closing() {
                return Err(types::Error::Closed);
            }
            let frame = Outgoing::Message(session::to_frame(message));
            match tokio::time::timeout(
                binding.settings.send_timeout,
                connection.outgoing.send(frame),
            )
            .await
            {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(types::Error::Closed),
                Err(_) => Err(types::Error::Busy),
            }
        };
        Ok(self.calls.observe(CONNECTIONS, "send", send).await)
    }

    async fn close(
        &mut self,
        id: u64,
        code: u16,
        reason: String,
    ) -> wasmtime::Result<Result<(), types::Error>> {
        let binding = self.binding()?;
        let close = async {
            if !(code == 1000 || (3000..=4999).contains(&code)) {
                return Err(types::Error::InvalidCloseCode(code));
            }
            let connection = binding
                .hub
                .connection(&binding.workload, id)
                .ok_or(types::Error::UnknownConnection)?;
            if connection.closing.swap(true, Ordering::AcqRel) {
                return Ok(());
            }
            let reason = cut_reason(reason);
            *connection
                .closed_with
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some((code, reason.clone()));
            // Behind the messages already queued, so they go out first.
            let queued = tokio::time::timeout(
                binding.settings.send_timeout,
                connection.outgoing.send(Outgoing::Close(code, reason)),
            )
            .await;
            if queued.is_err() {
                // The writer sends the close frame once the queue drains,
                // when the session ends.
                tracing::debug!(
                    workload = %binding.workload,
                    connection = id,
                    "the close frame could not be queued; it goes out once the queue drains"
                );
            }
            connection.close_asked.notify_one();
            Ok(())
        };
        Ok(self.calls.observe(CONNECTIONS, "close", close).await)
    }

    async fn list_open(&mut self) -> wasmtime::Result<Vec<u64>> {
        let binding = self.binding()?;
        let all = binding.hub.connections();
        Ok(all
            .get(&binding.workload)
            .map(|open| {
                open.iter()
                    .filter(|(_, c)| c.open.load(Ordering::Acquire) && !c.is_closing())
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// `reason` cut to what a close frame carries, at a character boundary.
fn cut_reason(mut reason: String) -> String {
    if reason.len() > MAX_CLOSE_REASON_BYTES {
        let mut end = MAX_CLOSE_REASON_BYTES;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn settings_take_their_defaults_and_name_what_is_wrong() {
        assert_eq!(Settings::resolve(&config(&[])), Ok(Settings::default()));
        let settings = Settings::resolve(&config(&[
            ("max_message_bytes", "4096"),
            ("idle_timeout_ms", " 1500 "),
            ("max_connections", "2"),
            ("send_timeout_ms", "250"),
        ]))
        .unwrap();
        assert_eq!(
            settings,
            Settings {
                max_message_bytes: 4096,
                idle_timeout: Duration::from_millis(1500),
                max_connections: 2,
                send_timeout: Duration::from_millis(250),
            }
        );
        let error =
            |pairs: &[(&str, &str)]| Settings::resolve(&config(pairs)).unwrap_err().to_string();
        assert_eq!(
            error(&[("max_conections", "2")]),
            "websocket: unknown setting `max_conections` (known: max_message_bytes, idle_timeout_ms, max_connections, send_timeout_ms)"
        );
        assert_eq!(
            error(&[("idle_timeout_ms", "0")]),
            "websocket: idle_timeout_ms `0` is not a positive whole number"
        );
        assert_eq!(
            error(&[("max_message_bytes", "1GiB")]),
            "websocket: max_message_bytes `1GiB` is not a positive whole number"
        );
        assert!(error(&[("max_message_bytes", "1073741824")]).contains("over the host's ceiling"));
    }

    #[test]
    fn close_reasons_are_cut_at_a_character_boundary() {
        assert_eq!(cut_reason("bye".into()), "bye");
        let long = "é".repeat(100); // 200 bytes
        let cut = cut_reason(long);
        assert_eq!(cut.len(), 122);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
