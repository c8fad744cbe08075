//! Host capabilities a workload's components import, one folder each, and
//! the one place they are registered.
//!
//! A capability implements [`Plugin`]: its id, the WIT interfaces it
//! provides, how it adds them to the host's linker, and how it binds to one
//! component of a workload (resolving the workload's configuration into the
//! state its host functions read). The linker is built once per host; what
//! differs per workload lives in the binding, which every store of the
//! component carries ([`PluginBindings`]).
//!
//! | folder      | interfaces                                            |
//! |-------------|-------------------------------------------------------|
//! | `config`    | `wasi:config/store@0.2.0-rc.1`                        |
//! | `keyvalue`  | `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft`     |
//! | `blobstore` | `wasi:blobstore/{blobstore,container,types}@0.2.0-draft` |
//! | `logging`   | `wasi:logging/logging@0.1.0-draft`                    |
//! | `secrets`   | `wasmcloud:secrets/{store,reveal}@0.1.0-draft`        |
//! | `messaging` | `wasmcloud:messaging/{consumer,handler}@0.2.0`        |
//!
//! Adding a capability is one new folder here plus one line in
//! [`builtin`]; docs/ARCHITECTURE.md walks through the key-value plugin.

use crate::secret::Secret;
use crate::wasi::{ComponentEnv, StoreState};
use crate::workload::{HostInterface, NamedSources, WorkloadSpec};
pub use calls::PluginCalls;
use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use wasmtime::component::{InstancePre, Linker};

pub mod blobstore;
mod calls;
pub mod config;
pub mod keyvalue;
pub mod logging;
pub mod messaging;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "nats")]
use nats::NatsConnections;
/// Nothing to share: this build has no NATS client.
#[cfg(not(feature = "nats"))]
#[derive(Default)]
pub(crate) struct NatsConnections {}
mod pool;
pub mod secrets;

/// The plugins every host carries. The one registration point.
pub(crate) fn builtin(defaults: &PluginDefaults) -> Vec<Arc<dyn Plugin>> {
    let nats = Arc::new(NatsConnections::default());
    vec![
        Arc::new(config::ConfigPlugin),
        Arc::new(keyvalue::KeyValuePlugin::new(
            defaults.get("keyvalue"),
            nats.clone(),
        )),
        Arc::new(blobstore::BlobstorePlugin::new(
            defaults.get("blobstore"),
            nats.clone(),
        )),
        Arc::new(logging::LoggingPlugin),
        Arc::new(secrets::SecretsPlugin),
        Arc::new(messaging::MessagingPlugin::new(
            defaults.get("messaging"),
            nats,
        )),
    ]
}

/// A host capability.
pub trait Plugin: Send + Sync + 'static {
    /// Short id, e.g. `keyvalue`; host-level defaults are keyed by it.
    fn id(&self) -> &'static str;

    /// The interfaces it provides to guests, fully qualified
    /// (`wasi:keyvalue/store@0.2.0-draft`).
    fn interfaces(&self) -> &'static [&'static str];

    /// Guest exports it drives (e.g. a message handler); empty by default.
    fn exports(&self) -> &'static [&'static str] {
        &[]
    }

    /// Adds its host functions to the host's one linker. Functions find the
    /// calling component's binding through [`PluginBindings`].
    fn add_to_linker(&self, linker: &mut Linker<StoreState>) -> wasmtime::Result<()>;

    /// Binds to one component that imports at least one of
    /// [`interfaces`](Self::interfaces): resolves the workload's config for
    /// this capability. Runs once per component at workload start; an error
    /// fails the start.
    fn bind(&self, ctx: &BindContext<'_>) -> Result<Binding, PluginError>;

    /// Starts driving a component that exports one of
    /// [`exports`](Self::exports) (e.g. delivering subscribed messages). The
    /// returned guard stops it when dropped, which happens when the workload
    /// stops or is replaced.
    fn serve(
        &self,
        _ctx: &BindContext<'_>,
        _component: ComponentHandle,
    ) -> Result<Option<ServeGuard>, PluginError> {
        Ok(None)
    }

    /// Called when a workload that bound this plugin stops; pooled
    /// connections stay open for other workloads.
    fn unbind(&self, _workload: &str) {}
}

/// What a plugin keeps for one bound component; its host functions downcast it.
pub type Binding = Arc<dyn Any + Send + Sync>;

/// Keeps a plugin's work for one component going (see [`Plugin::serve`]).
pub type ServeGuard = Box<dyn Any + Send + Sync>;

/// Why a plugin could not bind.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{plugin}: {message}")]
pub struct PluginError {
    /// Plugin id.
    pub plugin: &'static str,
    /// What is wrong (no secret values).
    pub message: String,
}

impl PluginError {
    /// An error of `plugin`.
    pub fn new(plugin: &'static str, message: impl Into<String>) -> Self {
        Self {
            plugin,
            message: message.into(),
        }
    }
}

/// What a plugin sees when it binds to a component.
pub struct BindContext<'a> {
    /// `namespace/name` of the workload.
    pub workload: &'a str,
    /// The component's name.
    pub component: &'a str,
    /// The workload's spec (host interfaces carry per-workload settings).
    pub spec: &'a WorkloadSpec,
    /// The component's own `localResources.config`.
    pub component_config: &'a BTreeMap<String, String>,
    /// Named config and secret sources of the host.
    pub sources: &'a NamedSources,
    /// The plugin's interfaces this component imports.
    pub imports: &'a [String],
}

impl BindContext<'_> {
    /// The settings for `namespace:package` in this workload: the host
    /// interface entry's `config`, then its `configFrom` sources (plain
    /// values only; secrets are never backend settings).
    pub fn interface_config(
        &self,
        namespace: &str,
        package: &str,
    ) -> Result<BTreeMap<String, String>, PluginError> {
        let Some(interface) = self.host_interface(namespace, package) else {
            return Ok(BTreeMap::new());
        };
        self.sources
            .plain_layer(&interface.config, &interface.config_from)
            .map_err(|e| PluginError::new("host interface", e.to_string()))
    }

    /// A backend plugin's settings: the host's `defaults` with the
    /// workload's `namespace:package` entry laid over them. A workload that
    /// names its own backend (`backend`, `url` or `path`) replaces the
    /// host's choice whole, so a host default `path` never rides along with
    /// a workload's Redis `url`.
    pub fn backend_config(
        &self,
        defaults: &BTreeMap<String, String>,
        namespace: &str,
        package: &str,
    ) -> Result<BTreeMap<String, String>, PluginError> {
        const CHOICE: [&str; 3] = ["backend", "url", "path"];
        let workload = self.interface_config(namespace, package)?;
        let mut config = defaults.clone();
        if CHOICE.iter().any(|k| workload.contains_key(*k)) {
            config.retain(|k, _| !CHOICE.contains(&k.as_str()));
        }
        config.extend(workload);
        Ok(config)
    }

    /// The secrets the workload's `namespace:package` entry lists in `secretFrom`.
    pub fn interface_secrets(
        &self,
        namespace: &str,
        package: &str,
    ) -> Result<BTreeMap<String, Secret>, PluginError> {
        let Some(interface) = self.host_interface(namespace, package) else {
            return Ok(BTreeMap::new());
        };
        self.sources
            .secret_layer(&interface.secret_from)
            .map_err(|e| PluginError::new("host interface", e.to_string()))
    }

    fn host_interface(&self, namespace: &str, package: &str) -> Option<&HostInterface> {
        self.spec
            .host_interfaces
            .iter()
            .find(|i| i.is(namespace, package))
    }
}

/// Reads `timeout_ms` from a plugin's settings, `default` when absent.
pub fn timeout_setting(
    plugin: &'static str,
    config: &BTreeMap<String, String>,
    default: std::time::Duration,
) -> Result<std::time::Duration, PluginError> {
    match config.get("timeout_ms") {
        Some(ms) => ms
            .trim()
            .parse()
            .map(std::time::Duration::from_millis)
            .map_err(|_| PluginError::new(plugin, format!("timeout_ms `{ms}` is not a number"))),
        None => Ok(default),
    }
}

/// A component a plugin can instantiate to call its exports.
#[derive(Clone)]
pub struct ComponentHandle {
    pub(crate) engine: wasmtime::Engine,
    pub(crate) pre: InstancePre<StoreState>,
    pub(crate) env: Arc<ComponentEnv>,
}

impl ComponentHandle {
    /// A fresh store and instance of the component.
    pub async fn instantiate(
        &self,
    ) -> wasmtime::Result<(wasmtime::Store<StoreState>, wasmtime::component::Instance)> {
        let mut store = self.env.new_store(&self.engine)?;
        let instance = self.pre.instantiate_async(&mut store).await?;
        Ok((store, instance))
    }

    /// `namespace/name` of the workload.
    pub fn workload(&self) -> &str {
        &self.env.workload
    }

    /// The component's name.
    pub fn component(&self) -> &str {
        &self.env.component
    }

    /// The component's request deadline.
    pub fn timeout(&self) -> std::time::Duration {
        self.env.limits.request_timeout
    }
}

pub use nimbus_model::PluginDefaults;

/// The bindings of one component, carried by each of its stores.
#[derive(Default)]
pub struct PluginBindings {
    // A handful of entries: a scan beats hashing.
    entries: Vec<(&'static str, Binding)>,
}

impl PluginBindings {
    /// The binding of plugin `id`, if the component bound it and it is a `T`.
    pub fn get<T: Any + Send + Sync>(&self, id: &str) -> Option<&T> {
        self.entries
            .iter()
            .find(|(entry, _)| *entry == id)
            .and_then(|(_, binding)| binding.downcast_ref::<T>())
    }

    pub(crate) fn insert(&mut self, id: &'static str, binding: Binding) {
        self.entries.push((id, binding));
    }
}

impl std::fmt::Debug for PluginBindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(id, _)| id))
            .finish()
    }
}

/// All plugins of a host, indexed by the interfaces they provide.
pub(crate) struct PluginRegistry {
    plugins: Vec<Arc<dyn Plugin>>,
    by_interface: HashMap<&'static str, usize>,
    by_export: HashMap<&'static str, usize>,
}

/// How a component's imports and exports fall to plugins.
pub(crate) struct Resolution {
    /// Each plugin the component needs, with the interfaces it imports from it.
    pub(crate) imports: Vec<(Arc<dyn Plugin>, Vec<String>)>,
    /// Each plugin that drives one of the component's exports.
    pub(crate) exports: Vec<(Arc<dyn Plugin>, Vec<String>)>,
}

impl PluginRegistry {
    pub(crate) fn new(plugins: Vec<Arc<dyn Plugin>>) -> Self {
        let mut by_interface = HashMap::new();
        let mut by_export = HashMap::new();
        for (index, plugin) in plugins.iter().enumerate() {
            for interface in plugin.interfaces() {
                by_interface.insert(*interface, index);
            }
            for export in plugin.exports() {
                by_export.insert(*export, index);
            }
        }
        Self {
            plugins,
            by_interface,
            by_export,
        }
    }

    pub(crate) fn add_to_linker(&self, linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
        for plugin in &self.plugins {
            plugin.add_to_linker(linker)?;
        }
        Ok(())
    }

    /// Sorts a component's imports: host-provided, plugin-provided, or
    /// unknown (the error names the first unknown interface).
    pub(crate) fn resolve<'a>(
        &self,
        imports: impl IntoIterator<Item = &'a str>,
        exports: impl IntoIterator<Item = &'a str>,
    ) -> Result<Resolution, String> {
        let mut needed: Vec<(usize, Vec<String>)> = Vec::new();
        for import in imports {
            if nimbus_model::links::host_provided(import) {
                continue;
            }
            let Some(&index) = self.by_interface.get(import) else {
                return Err(import.to_string());
            };
            match needed.iter_mut().find(|(i, _)| *i == index) {
                Some((_, list)) => list.push(import.to_string()),
                None => needed.push((index, vec![import.to_string()])),
            }
        }
        let mut driven: Vec<(usize, Vec<String>)> = Vec::new();
        for export in exports {
            if let Some(&index) = self.by_export.get(export) {
                match driven.iter_mut().find(|(i, _)| *i == index) {
                    Some((_, list)) => list.push(export.to_string()),
                    None => driven.push((index, vec![export.to_string()])),
                }
            }
        }
        let lookup = |list: Vec<(usize, Vec<String>)>| {
            list.into_iter()
                .map(|(i, names)| (self.plugins[i].clone(), names))
                .collect()
        };
        Ok(Resolution {
            imports: lookup(needed),
            exports: lookup(driven),
        })
    }

    /// Whether a plugin provides `interface`.
    pub(crate) fn provides(&self, interface: &str) -> bool {
        self.by_interface.contains_key(interface)
    }

    pub(crate) fn unbind(&self, workload: &str) {
        for plugin in &self.plugins {
            plugin.unbind(workload);
        }
    }
}

/// The one-line error for a part of Nimbus this build left out: `what` is
/// not in this build, and the cargo `feature` that puts it back.
pub(crate) fn not_in_this_build(what: &str, feature: &str) -> String {
    format!("{what} is not in this build of nimbus (rebuild it with the cargo feature `{feature}`)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_workload_backend_choice_replaces_the_host_default_whole() {
        let defaults = settings(&[
            ("backend", "filesystem"),
            ("path", "/var/lib/kv"),
            ("timeout_ms", "250"),
        ]);
        let sources = NamedSources::default();
        let mut spec = WorkloadSpec::default();
        let no_config = BTreeMap::new();
        let context = |spec: &WorkloadSpec| {
            let ctx = BindContext {
                workload: "t/w",
                component: "c",
                spec,
                component_config: &no_config,
                sources: &sources,
                imports: &[],
            };
            ctx.backend_config(&defaults, "wasi", "keyvalue").unwrap()
        };
        // Nothing said: the host's defaults.
        assert_eq!(context(&spec), defaults);
        // A bucket alone keeps the host's backend.
        spec.host_interfaces.push(HostInterface {
            namespace: "wasi".into(),
            package: "keyvalue".into(),
            config: settings(&[("bucket", "app")]),
            ..Default::default()
        });
        assert_eq!(
            context(&spec),
            settings(&[
                ("backend", "filesystem"),
                ("bucket", "app"),
                ("path", "/var/lib/kv"),
                ("timeout_ms", "250"),
            ])
        );
        // A url replaces backend and path, and keeps the rest.
        spec.host_interfaces[0].config = settings(&[("url", "redis://127.0.0.1:1")]);
        assert_eq!(
            context(&spec),
            settings(&[("timeout_ms", "250"), ("url", "redis://127.0.0.1:1")])
        );
    }

    #[test]
    fn timeouts_are_milliseconds_and_bad_ones_are_named() {
        let default = std::time::Duration::from_secs(5);
        assert_eq!(timeout_setting("kv", &settings(&[]), default), Ok(default));
        assert_eq!(
            timeout_setting("kv", &settings(&[("timeout_ms", " 1500 ")]), default),
            Ok(std::time::Duration::from_millis(1500))
        );
        let error = timeout_setting("kv", &settings(&[("timeout_ms", "2s")]), default)
            .unwrap_err()
            .to_string();
        assert_eq!(error, "kv: timeout_ms `2s` is not a number");
    }

    #[test]
    fn imports_fall_to_the_host_a_plugin_or_an_error_naming_them() {
        let registry = PluginRegistry::new(builtin(&PluginDefaults::default()));
        let resolution = registry
            .resolve(
                [
                    "wasi:cli/environment@0.2.6",
                    "wasi:keyvalue/store@0.2.0-draft",
                    "wasi:keyvalue/atomics@0.2.0-draft",
                    "wasi:logging/logging@0.1.0-draft",
                ],
                ["wasmcloud:messaging/handler@0.2.0"],
            )
            .unwrap();
        let ids: Vec<_> = resolution.imports.iter().map(|(p, _)| p.id()).collect();
        assert_eq!(ids, ["keyvalue", "logging"]);
        assert_eq!(resolution.imports[0].1.len(), 2);
        assert_eq!(resolution.exports[0].0.id(), "messaging");
        let unknown = registry
            .resolve(
                ["wasi:keyvalue/store@0.2.0-draft", "acme:thing/api@1.0.0"],
                [],
            )
            .err();
        assert_eq!(unknown.as_deref(), Some("acme:thing/api@1.0.0"));
    }
}
