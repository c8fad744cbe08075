//! `wasmcloud:nats@0.1.0` for P3 components: NATS as NATS speaks it.
//!
//! Where `wasmcloud:messaging` and `wasi:keyvalue` are what every broker
//! and store can do, this interface is what NATS does: core publish and
//! request/reply (at most once), JetStream publish with acks and
//! deduplication, pull consumers settled message by message (at least
//! once), and key-value buckets with revisions, compare-and-swap, history
//! and watches. The interface is wasmCloud's (so its components run
//! unchanged); the WIT beside this crate states each call's guarantee.
//!
//! - [`settings`]: a workload's settings (wasmCloud's keys), and its grant;
//! - [`grant`]: what a binding may reach (`subject-allow`, `stream-allow`,
//!   `bucket-allow`) and the reserved spaces it never may;
//! - [`calls`]: the host functions;
//! - [`deliver`]: subscriptions, consumers and watches delivered to the
//!   handlers a component exports.
//!
//! Every name a guest passes is checked against the grant before anything
//! leaves the host. Streams, consumers and buckets are made by operators;
//! components only use them.

mod calls;
mod deliver;
mod grant;
mod settings;

use nimbus_plugin::{
    BindContext, Binding, ComponentHandle, Plugin, PluginError, PluginState, ServeGuard, StoreSlots,
};
use settings::{ID, Settings};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;
use wasmtime::component::ResourceTable;

/// The interface's imports (`core`, `jetstream`, `kv`), bound to the
/// host's resource types.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasmcloud:nats/imports",
        imports: { default: store | trappable },
        with: {
            "wasmcloud:nats/jetstream.message-handle": crate::calls::MessageHandle,
            "wasmcloud:nats/jetstream.pull-consumer": crate::calls::PullConsumer,
            "wasmcloud:nats/kv.bucket": crate::calls::Bucket,
        },
    });
}

/// The handler exports, one world each (a component may export any of
/// them).
pub(crate) mod handlers {
    pub(crate) mod core {
        wasmtime::component::bindgen!({
            path: "wit",
            world: "wasmcloud:nats/core-subscriber",
            exports: { default: async | store },
            with: { "wasmcloud:nats/types": crate::bindings::wasmcloud::nats::types },
        });
    }
    pub(crate) mod jetstream {
        wasmtime::component::bindgen!({
            path: "wit",
            world: "wasmcloud:nats/jetstream-subscriber",
            exports: { default: async | store },
            with: {
                "wasmcloud:nats/types": crate::bindings::wasmcloud::nats::types,
                "wasmcloud:nats/jetstream": crate::bindings::wasmcloud::nats::jetstream,
            },
        });
    }
    pub(crate) mod kv {
        wasmtime::component::bindgen!({
            path: "wit",
            world: "wasmcloud:nats/kv-watcher",
            exports: { default: async | store },
            with: {
                "wasmcloud:nats/types": crate::bindings::wasmcloud::nats::types,
                "wasmcloud:nats/kv": crate::bindings::wasmcloud::nats::kv,
            },
        });
    }
}

const CORE: &str = "wasmcloud:nats/core@0.1.0";
const JETSTREAM: &str = "wasmcloud:nats/jetstream@0.1.0";
const KV: &str = "wasmcloud:nats/kv@0.1.0";

/// How long connecting to a server may take before a call fails (the
/// client keeps trying in the background).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages a subscription may hold waiting for its handler.
const SUBSCRIPTION_CAPACITY: usize = 4096;

/// Serves `wasmcloud:nats`.
pub struct NatsPlugin {
    /// The host's NATS servers (`servers`, or `url`), used by workloads
    /// that name none.
    host_servers: Option<String>,
    connections: Connections,
}

impl NatsPlugin {
    /// The plugin with the host's `defaults` for it; `servers` (or `url`)
    /// is the NATS a workload uses when it names none.
    pub fn new(defaults: BTreeMap<String, String>) -> Self {
        let host_servers = defaults
            .get("servers")
            .or_else(|| defaults.get("url"))
            .filter(|url| url.starts_with("nats://") || url.starts_with("tls://"))
            .cloned();
        Self {
            host_servers,
            connections: Connections::default(),
        }
    }

    fn binding(&self, ctx: &BindContext<'_>) -> Result<Arc<NatsBinding>, PluginError> {
        let settings = Settings::resolve(ctx, self.host_servers.as_deref())?;
        let connection = self.connections.get(&settings);
        Ok(Arc::new(NatsBinding {
            settings,
            connection,
        }))
    }
}

impl<T: PluginState> Plugin<T> for NatsPlugin {
    fn id(&self) -> &'static str {
        ID
    }

    fn interfaces(&self) -> &'static [&'static str] {
        &["wasmcloud:nats/types@0.1.0", CORE, JETSTREAM, KV]
    }

    fn exports(&self) -> &'static [&'static str] {
        &[
            "wasmcloud:nats/core-handler@0.1.0",
            "wasmcloud:nats/jetstream-handler@0.1.0",
            "wasmcloud:nats/kv-handler@0.1.0",
        ]
    }

    fn add_to_linker(&self, linker: &mut wasmtime::component::Linker<T>) -> wasmtime::Result<()> {
        fn view<T: PluginState>(state: &mut T) -> NatsView<'_> {
            let (table, bindings, slots, calls) = state.plugin_slots();
            NatsView {
                table,
                binding: bindings.get::<Arc<NatsBinding>>(ID),
                slots,
                calls,
            }
        }
        bindings::Imports::add_to_linker::<T, calls::HasNats>(linker, view::<T>)
    }

    fn bind(&self, ctx: &BindContext<'_>) -> Result<Binding, PluginError> {
        Ok(Arc::new(self.binding(ctx)?))
    }

    fn serve(
        &self,
        ctx: &BindContext<'_>,
        component: ComponentHandle<T>,
    ) -> Result<Option<ServeGuard>, PluginError> {
        let binding = self.binding(ctx)?;
        deliver::serve(binding, component)
    }
}

/// One component's binding: its settings and its connection.
pub(crate) struct NatsBinding {
    pub(crate) settings: Settings,
    pub(crate) connection: Connection,
}

/// What host functions see of the store.
pub(crate) struct NatsView<'a> {
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) binding: Option<&'a Arc<NatsBinding>>,
    pub(crate) slots: &'a mut StoreSlots,
    pub(crate) calls: nimbus_plugin::PluginCalls<'a>,
}

/// Clients by servers, client name and credentials (a digest): workloads
/// that connect alike share one client.
#[derive(Default)]
struct Connections {
    clients: Mutex<HashMap<String, Arc<OnceCell<async_nats::Client>>>>,
}

impl Connections {
    fn get(&self, settings: &Settings) -> Connection {
        let key = format!(
            "{}\n{}\n{}",
            settings.servers,
            settings.name.as_deref().unwrap_or_default(),
            settings.credentials.fingerprint()
        );
        let cell = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone();
        Connection {
            cell,
            servers: settings.servers.clone(),
            name: settings.name.clone(),
            credentials: settings.credentials.clone(),
        }
    }
}

/// A lazily made client.
#[derive(Clone)]
pub(crate) struct Connection {
    cell: Arc<OnceCell<async_nats::Client>>,
    servers: String,
    name: Option<String>,
    credentials: settings::Credentials,
}

impl Connection {
    /// The client, made on first use; it reconnects by itself.
    pub(crate) async fn client(&self) -> Result<async_nats::Client, String> {
        let client = self
            .cell
            .get_or_try_init(|| async {
                let mut options = async_nats::ConnectOptions::new()
                    .retry_on_initial_connect()
                    .connection_timeout(CONNECT_TIMEOUT)
                    .request_timeout(Some(CONNECT_TIMEOUT))
                    // Messages a subscription holds before its handler takes
                    // them: beyond it the client drops (core is at most once).
                    .subscription_capacity(SUBSCRIPTION_CAPACITY);
                if let Some(name) = &self.name {
                    options = options.name(name);
                }
                options = match &self.credentials {
                    settings::Credentials::None => options,
                    settings::Credentials::Token(token) => {
                        options.token(token.expose().to_string())
                    }
                    settings::Credentials::User { name, password } => {
                        options.user_and_password(name.clone(), password.expose().to_string())
                    }
                };
                options
                    .connect(self.servers.as_str())
                    .await
                    .map_err(|e| format!("cannot connect to NATS: {e}"))
            })
            .await?;
        Ok(client.clone())
    }
}
