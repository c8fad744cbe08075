//! `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft` on four backends:
//! memory (the dev default), filesystem (redb), Redis, NATS JetStream KV.
//!
//! A workload picks its backend in its `wasi:keyvalue` host interface entry,
//! falling back to the host's defaults (`nimbus serve --keyvalue URL`,
//! `dev.keyvalue` in the project config):
//!
//! ```yaml
//! hostInterfaces:
//!   - namespace: wasi
//!     package: keyvalue
//!     interfaces: [store, atomics, batch]
//!     config:
//!       backend: redis            # memory | filesystem | redis | nats
//!       url: redis://127.0.0.1:6379
//!       bucket: counters          # what the guest's default bucket ("" or "default") maps to
//!       prefix: shop-             # prepended to every other bucket name
//!       timeout_ms: "2000"        # per call; the guest gets an error after it
//! ```
//!
//! Backends are pooled per host (one Redis connection manager or NATS
//! client per URL, one redb file per path); the memory backend is one store
//! per workload id, so a dev-loop reload keeps the data. Every call is
//! bounded by the timeout: a backend that is down gives the guest the
//! interface's `other` error, never a hang, and the pooled clients reconnect
//! on their own when it returns.

mod backend;
#[cfg(feature = "redb")]
mod filesystem;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "redis")]
mod redis;

pub use backend::{
    BackendSettings, DEFAULT_TIMEOUT, KeyPage, KeyValueBackend, KvError, MemoryBackend, OpenError,
    PAGE_SIZE, backend_settings,
};
#[cfg(feature = "redb")]
pub use filesystem::FilesystemBackend;
#[cfg(feature = "redis")]
pub use redis::RedisBackend;

use nimbus_model::backends::KEYVALUE;
use nimbus_plugin::BackendPool;
use nimbus_plugin::NatsConnections;
use nimbus_plugin::PluginState;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: { "wasi:keyvalue/store.bucket": super::Bucket },
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};

const ID: &str = "keyvalue";
const STORE: &str = "wasi:keyvalue/store";
const ATOMICS: &str = "wasi:keyvalue/atomics";
const BATCH: &str = "wasi:keyvalue/batch";

/// An open bucket as the guest holds it: the backend namespace it maps to.
pub struct Bucket {
    namespace: String,
}

/// Serves key-value from pooled backends.
pub struct KeyValuePlugin {
    defaults: BTreeMap<String, String>,
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    nats: Arc<NatsConnections>,
    pool: BackendPool<BackendSettings, dyn KeyValueBackend>,
}

impl KeyValuePlugin {
    /// The plugin with the host's `defaults` for it, sharing the host's NATS clients.
    pub fn new(defaults: BTreeMap<String, String>, nats: Arc<NatsConnections>) -> Self {
        Self {
            defaults,
            nats,
            pool: BackendPool::new(),
        }
    }

    fn backend(
        &self,
        workload: &str,
        settings: &BackendSettings,
        timeout: Duration,
    ) -> Result<Arc<dyn KeyValueBackend>, OpenError> {
        let in_memory = *settings == BackendSettings::Memory;
        // Only the network backends, which a build may leave out, take it.
        #[cfg(not(any(feature = "redis", feature = "nats")))]
        let _ = timeout;
        self.pool.get_or_open(workload, settings, in_memory, || {
            Ok(match settings {
                BackendSettings::Memory => Arc::new(MemoryBackend::default()),
                #[cfg(feature = "redb")]
                BackendSettings::Filesystem { path } => Arc::new(FilesystemBackend::open(path)?),
                #[cfg(feature = "redis")]
                BackendSettings::Redis { url } => Arc::new(RedisBackend::new(url, timeout)?),
                #[cfg(feature = "nats")]
                BackendSettings::Nats { url } => {
                    Arc::new(nats::NatsBackend::new(self.nats.get(url, timeout)))
                }
                // Settings made by hand (tools, tests) may name what
                // `backend_settings` refuses: a kind left out of this build.
                #[allow(unreachable_patterns)]
                other => {
                    return Err(KEYVALUE
                        .refuse(other.kind(), backend::missing_feature)
                        .into());
                }
            })
        })
    }
}

impl<T: PluginState> nimbus_plugin::Plugin<T> for KeyValuePlugin {
    fn id(&self) -> &'static str {
        ID
    }

    fn interfaces(&self) -> &'static [&'static str] {
        &[
            "wasi:keyvalue/store@0.2.0-draft",
            "wasi:keyvalue/atomics@0.2.0-draft",
            "wasi:keyvalue/batch@0.2.0-draft",
        ]
    }

    fn add_to_linker(&self, linker: &mut wasmtime::component::Linker<T>) -> wasmtime::Result<()> {
        fn view<T: PluginState>(state: &mut T) -> KeyValueView<'_> {
            let (table, bindings, calls) = state.plugin_parts();
            KeyValueView {
                table,
                binding: bindings.get::<KeyValueBinding>(ID),
                calls,
            }
        }
        store::add_to_linker::<T, HasKeyValue>(linker, view::<T>)?;
        atomics::add_to_linker::<T, HasKeyValue>(linker, view::<T>)?;
        batch::add_to_linker::<T, HasKeyValue>(linker, view::<T>)
    }

    fn bind(
        &self,
        ctx: &nimbus_plugin::BindContext<'_>,
    ) -> Result<nimbus_plugin::Binding, nimbus_plugin::PluginError> {
        let error = |message: String| nimbus_plugin::PluginError::new(ID, message);
        let config = ctx.backend_config(&self.defaults, "wasi", "keyvalue")?;
        let settings = backend_settings(&config).map_err(|e| error(e.to_string()))?;
        let timeout = nimbus_plugin::timeout_setting(ID, &config, backend::DEFAULT_TIMEOUT)?;
        let backend = self
            .backend(ctx.workload, &settings, timeout)
            .map_err(|e| error(e.to_string()))?;
        tracing::debug!(
            workload = ctx.workload,
            component = ctx.component,
            backend = settings.kind().name(),
            "key-value bound"
        );
        Ok(Arc::new(KeyValueBinding {
            backend,
            kind: settings.kind().name(),
            default_bucket: config.get("bucket").cloned(),
            prefix: config.get("prefix").cloned().unwrap_or_default(),
            timeout,
        }))
    }

    fn unbind(&self, workload: &str) {
        self.pool.forget_workload(workload);
    }
}

/// What one component's key-value calls go to.
struct KeyValueBinding {
    backend: Arc<dyn KeyValueBackend>,
    kind: &'static str,
    default_bucket: Option<String>,
    prefix: String,
    timeout: Duration,
}

impl KeyValueBinding {
    /// The backend namespace for the bucket the guest opens.
    fn namespace(&self, identifier: &str) -> String {
        let default = identifier.is_empty() || identifier == "default";
        match &self.default_bucket {
            Some(bucket) if default => bucket.clone(),
            _ if identifier.is_empty() => format!("{}default", self.prefix),
            _ => format!("{}{identifier}", self.prefix),
        }
    }

    /// Runs one backend call within the timeout.
    async fn call<R>(
        &self,
        call: impl Future<Output = Result<R, KvError>>,
    ) -> Result<R, store::Error> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(error.into()),
            Err(_) => Err(store::Error::Other(format!(
                "the {} key-value backend did not answer within {} ms",
                self.kind,
                self.timeout.as_millis()
            ))),
        }
    }
}

impl From<KvError> for store::Error {
    fn from(error: KvError) -> Self {
        match error {
            KvError::NoSuchStore => Self::NoSuchStore,
            KvError::AccessDenied => Self::AccessDenied,
            KvError::Other(message) => Self::Other(message),
        }
    }
}

struct KeyValueView<'a> {
    table: &'a mut ResourceTable,
    binding: Option<&'a KeyValueBinding>,
    calls: nimbus_plugin::PluginCalls<'a>,
}

impl KeyValueView<'_> {
    fn binding(&self) -> wasmtime::Result<&KeyValueBinding> {
        self.binding
            .ok_or_else(|| wasmtime::format_err!("wasi:keyvalue is not bound for this component"))
    }

    fn bucket(&self, bucket: &Resource<Bucket>) -> wasmtime::Result<(&KeyValueBinding, String)> {
        let namespace = self.table.get(bucket)?.namespace.clone();
        Ok((self.binding()?, namespace))
    }
}

type Outcome<T> = wasmtime::Result<Result<T, store::Error>>;

impl store::Host for KeyValueView<'_> {
    async fn open(&mut self, identifier: String) -> Outcome<Resource<Bucket>> {
        let binding = self.binding()?;
        let namespace = binding.namespace(&identifier);
        if let Err(error) = self
            .calls
            .observe(
                STORE,
                "open",
                binding.call(binding.backend.open(&namespace)),
            )
            .await
        {
            return Ok(Err(error));
        }
        Ok(Ok(self.table.push(Bucket { namespace })?))
    }
}

impl store::HostBucket for KeyValueView<'_> {
    async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Outcome<Option<Vec<u8>>> {
        let (binding, ns) = self.bucket(&bucket)?;
        Ok(self
            .calls
            .observe(STORE, "get", binding.call(binding.backend.get(&ns, &key)))
            .await)
    }

    async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Outcome<()> {
        let (binding, ns) = self.bucket(&bucket)?;
        Ok(self
            .calls
            .observe(
                STORE,
                "set",
                binding.call(binding.backend.set(&ns, &key, value)),
            )
            .await)
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Outcome<()> {
        let (binding, ns) = self.bucket(&bucket)?;
        Ok(self
            .calls
            .observe(
                STORE,
                "delete",
                binding.call(binding.backend.delete(&ns, &key)),
            )
            .await)
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Outcome<bool> {
        let (binding, ns) = self.bucket(&bucket)?;
        Ok(self
            .calls
            .observe(
                STORE,
                "exists",
                binding.call(binding.backend.exists(&ns, &key)),
            )
            .await)
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Outcome<store::KeyResponse> {
        let (binding, ns) = self.bucket(&bucket)?;
        Ok(self
            .calls
            .observe(
                STORE,
                "list-keys",
                binding.call(binding.backend.list_keys(&ns, cursor)),
            )
            .await
            .map(|page| store::KeyResponse {
                keys: page.keys,
                cursor: page.cursor,
            }))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Outcome<u64> {
        let (binding, ns) = self.bucket(&bucket)?;
        Ok(self
            .calls
            .observe(
                ATOMICS,
                "increment",
                binding.call(binding.backend.increment(&ns, &key, delta)),
            )
            .await)
    }
}

impl batch::Host for KeyValueView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Outcome<Vec<Option<(String, Vec<u8>)>>> {
        let (binding, ns) = self.bucket(&bucket)?;
        Ok(self
            .calls
            .observe(
                BATCH,
                "get-many",
                binding.call(binding.backend.get_many(&ns, keys)),
            )
            .await)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Outcome<()> {
        let (binding, ns) = self.bucket(&bucket)?;
        Ok(self
            .calls
            .observe(
                BATCH,
                "set-many",
                binding.call(binding.backend.set_many(&ns, key_values)),
            )
            .await)
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Outcome<()> {
        let (binding, ns) = self.bucket(&bucket)?;
        Ok(self
            .calls
            .observe(
                BATCH,
                "delete-many",
                binding.call(binding.backend.delete_many(&ns, keys)),
            )
            .await)
    }
}

struct HasKeyValue;

impl wasmtime::component::HasData for HasKeyValue {
    type Data<'a> = KeyValueView<'a>;
}

/// A backend built from `settings` outside any host, for tools and the
/// conformance tests; `timeout` bounds connecting and each call.
pub fn open_backend(
    settings: &BackendSettings,
    timeout: Duration,
) -> Result<Arc<dyn KeyValueBackend>, OpenError> {
    let plugin = KeyValuePlugin::new(BTreeMap::new(), Arc::new(NatsConnections::default()));
    plugin.backend("standalone", settings, timeout)
}
