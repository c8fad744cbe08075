//! The plugin API: what a host capability implements, and what it may ask
//! of the store it is linked into.
//!
//! A capability (one crate under `crates/capabilities/`) implements
//! [`Plugin`] for every store type that implements [`PluginState`]: its id,
//! the WIT interfaces it provides, how it adds them to the host's linker,
//! and how it binds to one component of a workload (resolving the workload's
//! configuration into the state its host functions read). The linker is
//! built once per host; what differs per workload lives in the binding,
//! which every store of the component carries ([`PluginBindings`]).
//!
//! Plugins never name the runtime's store: they see it only through
//! [`PluginState`], the way wasmtime's own `wasi-keyvalue` sees its host
//! through a view trait. That keeps the arrows one way: capabilities depend
//! on this crate, the runtime implements it, and the host registers the
//! capabilities.
//!
//! Beside the trait: the bind context a plugin resolves its settings from,
//! [`PluginCalls`] (the span and metrics every backend call goes through;
//! [`Observation`] for component-model `async` host functions), [`streams`]
//! (`stream<u8>` bodies in and out), the per-host backend pool, the NATS
//! connections plugins share, the trusted [`roots`] of plugins that
//! speak TLS, and the [`upgrade`] hook of plugins that take connections
//! out of HTTP.

pub use calls::{DetachedCalls, Observation, PluginCalls};
use nimbus_model::secret::Secret;
use nimbus_model::sources::NamedSources;
use nimbus_model::spec::{HostInterface, WorkloadSpec};
use nimbus_observe::metrics::{ChargeCpu, ComponentMetrics};
use nimbus_observe::trace::Parent;
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{InstancePre, Linker, ResourceTable};

mod calls;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "nats")]
pub use nats::{NatsConnection, NatsConnections};
/// Nothing to share: this build has no NATS client.
#[cfg(not(feature = "nats"))]
#[derive(Default)]
pub struct NatsConnections {}
mod pool;
pub use pool::BackendPool;
pub mod roots;
pub mod streams;
pub mod upgrade;

/// What a plugin's host functions may ask of the store they run in.
///
/// The runtime's store implements it; plugins are generic over it.
pub trait PluginState: Send + 'static {
    /// The plugin bindings of this store's component.
    fn bindings(&self) -> &PluginBindings;

    /// The resource table, the plugin bindings and what plugin calls are
    /// traced and counted by, for host functions that need all three.
    fn plugin_parts(&mut self) -> (&mut ResourceTable, &PluginBindings, PluginCalls<'_>);

    /// [`plugin_parts`](Self::plugin_parts) with this store's
    /// [`StoreSlots`], for host functions that keep state of their own per
    /// instance (a TLS context, say).
    fn plugin_slots(
        &mut self,
    ) -> (
        &mut ResourceTable,
        &PluginBindings,
        &mut StoreSlots,
        PluginCalls<'_>,
    );

    /// `namespace/name` of the workload and the component's name.
    fn ids(&self) -> (&str, &str);

    /// The trace context of the work this instance is doing: plugin calls
    /// and outgoing requests go under it (a plugin driving an export sets
    /// it before the call).
    fn set_trace_parent(&mut self, parent: Option<Parent>);
}

/// A host capability, linked into stores of type `T`.
pub trait Plugin<T: PluginState>: Send + Sync + 'static {
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
    fn add_to_linker(&self, linker: &mut Linker<T>) -> wasmtime::Result<()>;

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
        _component: ComponentHandle<T>,
    ) -> Result<Option<ServeGuard>, PluginError> {
        Ok(None)
    }

    /// Called when a workload that bound this plugin stops; pooled
    /// connections stay open for other workloads.
    fn unbind(&self, _workload: &str) {}

    /// The HTTP upgrades it takes over (WebSockets), if any; asked once,
    /// when the host is built.
    fn upgrades(&self) -> Option<Arc<dyn upgrade::ConnectionUpgrades>> {
        None
    }
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

    /// The workload's host interface entry for `namespace:package`, if it
    /// has one.
    pub fn host_interface(&self, namespace: &str, package: &str) -> Option<&HostInterface> {
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

/// Makes the stores a [`ComponentHandle`] instantiates into: the runtime's
/// store with the component's environment, limits and meters.
pub trait NewStore<T: 'static>: Send + Sync {
    /// A fresh store for one instance of the component.
    fn new_store(&self) -> wasmtime::Result<wasmtime::Store<T>>;
}

/// A component a plugin can instantiate to call its exports.
pub struct ComponentHandle<T: 'static> {
    pre: InstancePre<T>,
    stores: Arc<dyn NewStore<T>>,
    workload: Arc<str>,
    component: Arc<str>,
    timeout: std::time::Duration,
    metrics: Option<Arc<ComponentMetrics>>,
    cpu_budget: Option<Arc<dyn ChargeCpu>>,
}

impl<T: 'static> Clone for ComponentHandle<T> {
    fn clone(&self) -> Self {
        Self {
            pre: self.pre.clone(),
            stores: self.stores.clone(),
            workload: self.workload.clone(),
            component: self.component.clone(),
            timeout: self.timeout,
            metrics: self.metrics.clone(),
            cpu_budget: self.cpu_budget.clone(),
        }
    }
}

impl<T: 'static> ComponentHandle<T> {
    /// A handle on the component `pre` of `workload`, whose instances get
    /// their stores from `stores` and must finish within `timeout`; their
    /// CPU is counted in `metrics` and charged to `cpu_budget` (its
    /// `cpuLimit`), each when given.
    pub fn new(
        pre: InstancePre<T>,
        stores: Arc<dyn NewStore<T>>,
        (workload, component): (Arc<str>, Arc<str>),
        timeout: std::time::Duration,
        metrics: Option<Arc<ComponentMetrics>>,
        cpu_budget: Option<Arc<dyn ChargeCpu>>,
    ) -> Self {
        Self {
            pre,
            stores,
            workload,
            component,
            timeout,
            metrics,
            cpu_budget,
        }
    }

    /// The component, ready to instantiate (typed bindings wrap it).
    pub fn instance_pre(&self) -> &InstancePre<T> {
        &self.pre
    }

    /// A fresh store for one instance.
    pub fn new_store(&self) -> wasmtime::Result<wasmtime::Store<T>> {
        self.stores.new_store()
    }

    /// `namespace/name` of the workload.
    pub fn workload(&self) -> &str {
        &self.workload
    }

    /// The component's name.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The component's request deadline.
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
    }

    /// Where the component's CPU and memory are counted, with accounting on.
    pub fn metrics(&self) -> Option<&Arc<ComponentMetrics>> {
        self.metrics.as_ref()
    }

    /// The component's CPU budget, when it has a CPU limit: work run on a
    /// task of its own is charged to it (`spawn_metered`).
    pub fn cpu_budget(&self) -> Option<&Arc<dyn ChargeCpu>> {
        self.cpu_budget.as_ref()
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

    /// Adds plugin `id`'s binding (the host does, when it binds a component).
    pub fn insert(&mut self, id: &'static str, binding: Binding) {
        self.entries.push((id, binding));
    }
}

/// What plugins keep in one store (one instance), by plugin id: state
/// their host functions change, made on first use. Empty in a store whose
/// guest never calls such a plugin.
#[derive(Default)]
pub struct StoreSlots {
    // A handful of entries at most: a scan beats hashing.
    entries: Vec<(&'static str, Box<dyn Any + Send>)>,
}

impl StoreSlots {
    /// Plugin `id`'s state in this store, made by `make` the first time.
    pub fn get_or_insert_with<S: Any + Send>(
        &mut self,
        id: &'static str,
        make: impl FnOnce() -> S,
    ) -> &mut S {
        let index = match self.entries.iter().position(|(entry, _)| *entry == id) {
            Some(index) if self.entries[index].1.is::<S>() => index,
            // Another type under the id: a plugin changed what it keeps.
            Some(index) => {
                self.entries[index].1 = Box::new(make());
                index
            }
            None => {
                self.entries.push((id, Box::new(make())));
                self.entries.len() - 1
            }
        };
        self.entries[index]
            .1
            .downcast_mut()
            .expect("the slot holds an S: checked or just made")
    }
}

impl std::fmt::Debug for StoreSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(id, _)| id))
            .finish()
    }
}

impl std::fmt::Debug for PluginBindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(id, _)| id))
            .finish()
    }
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
    fn store_slots_keep_each_plugins_state_from_its_first_use() {
        let mut slots = StoreSlots::default();
        *slots.get_or_insert_with("tls", || 1u32) += 1;
        assert_eq!(*slots.get_or_insert_with("tls", || 100u32), 2);
        assert_eq!(*slots.get_or_insert_with("other", || 7u32), 7);
        // A different type under the same id starts afresh.
        assert_eq!(slots.get_or_insert_with("tls", || "new"), &"new");
        assert_eq!(format!("{slots:?}"), r#"["tls", "other"]"#);
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
}
