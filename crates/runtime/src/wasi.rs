//! WASI wiring: the per-store state, the host's linker, and how a
//! component's WASI context is built from its workload.
//!
//! The linker is built once per host with WASI P2 and P3 (cli, clocks,
//! random, io, filesystem, sockets), `wasi:http` 0.2 and 0.3, the P3
//! middleware's `wasi:http/handler` import and every plugin; a component
//! that links to others, or uses the virtual loopback network, gets a clone
//! of it with those functions added. Per request only a store and a context
//! are created, never a linker. What a guest sees is exactly what its
//! workload declares: environment variables from
//! `localResources.environment`, the volume mounts it lists (read-only unless
//! declared writable), and sockets only when the workload lists `wasi:sockets`.
//!
//! This module sits below the workload layer: outgoing requests leave
//! through `crate::outbound`'s hooks, and the next middleware layer and the
//! host's other workloads are reached as `outbound::InMemoryTarget`s. One
//! edge points back up, on purpose: a store holds the stores of the
//! components it links to (`StoreState::peers`, a `workload::links`
//! type), and linking creates those stores from [`ComponentEnv`]. A store
//! owning its peers' stores is what keeps a linked call's resources alive
//! exactly as long as the importer, so the two modules know each other
//! (`scripts/check-module-cycles.py` allows this one pair).

use crate::outbound::{InMemoryTarget, LocalWorkloads, OutboundHooks, OutboundPolicy};
use nimbus_plugin::{Plugin, PluginBindings, PluginCalls, StoreSlots};
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::component::{Accessor, Linker, Resource, ResourceTable};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p3::bindings::http::client::HostWithStore;
use wasmtime_wasi_http::p3::bindings::http::types::{Request, Response};
use wasmtime_wasi_http::{WasiHttp, WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Everything one store (one component instance) owns.
pub struct StoreState {
    pub(crate) table: ResourceTable,
    pub(crate) wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    pub(crate) env: Arc<ComponentEnv>,
    pub(crate) limits: crate::metrics::MeteredLimiter,
    /// Instances of the components this one links to, created on first call.
    pub(crate) peers: crate::workload::links::Peers,
    /// What plugins keep per instance (`PluginState::plugin_slots`).
    plugin_slots: StoreSlots,
}

impl StoreState {
    /// Remembers an authority this (middleware) instance was called on.
    pub(crate) fn record_called_as(&mut self, authority: Arc<str>) {
        self.hooks.layer.record_called_as(authority);
    }

    /// The trace context of the request this instance is handling (see
    /// `crate::trace`): outbound requests and plugin calls go under it.
    pub(crate) fn set_trace_parent(&mut self, parent: Option<crate::trace::Parent>) {
        self.hooks.trace_parent = parent;
    }

    /// The next outgoing request goes to the next middleware layer.
    fn mark_handler_call(&mut self) {
        self.hooks.layer.mark_handler_call();
    }

    /// Drops a handler-call mark no send consumed.
    fn clear_handler_call(&mut self) {
        self.hooks.layer.clear_handler_call();
    }
}

// What plugins may ask of the store: they are generic over this trait and
// never name `StoreState`.
impl nimbus_plugin::PluginState for StoreState {
    fn bindings(&self) -> &PluginBindings {
        &self.env.bindings
    }

    fn plugin_parts(&mut self) -> (&mut ResourceTable, &PluginBindings, PluginCalls<'_>) {
        let calls = plugin_calls(&self.hooks, &self.env);
        (&mut self.table, &self.env.bindings, calls)
    }

    fn plugin_slots(
        &mut self,
    ) -> (
        &mut ResourceTable,
        &PluginBindings,
        &mut StoreSlots,
        PluginCalls<'_>,
    ) {
        let calls = plugin_calls(&self.hooks, &self.env);
        (
            &mut self.table,
            &self.env.bindings,
            &mut self.plugin_slots,
            calls,
        )
    }

    fn ids(&self) -> (&str, &str) {
        (&self.env.workload, &self.env.component)
    }

    fn set_trace_parent(&mut self, parent: Option<crate::trace::Parent>) {
        StoreState::set_trace_parent(self, parent);
    }
}

/// What a store's plugin calls are traced and counted by (a free function,
/// so `plugin_parts` can borrow the table mutably beside it).
fn plugin_calls<'a>(hooks: &'a OutboundHooks, env: &'a ComponentEnv) -> PluginCalls<'a> {
    PluginCalls::new(hooks.trace_parent.as_ref(), env.metrics.as_ref())
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The linker every component of a host is instantiated with: WASI, HTTP,
/// and every plugin's interfaces.
pub fn build_linker<'a>(
    engine: &wasmtime::Engine,
    plugins: impl IntoIterator<Item = &'a dyn Plugin<StoreState>>,
) -> wasmtime::Result<Linker<StoreState>> {
    let mut linker = wasi_linker(engine)?;
    for plugin in plugins {
        plugin.add_to_linker(&mut linker)?;
    }
    Ok(linker)
}

/// A linker with WASI P2 and P3, `wasi:http` 0.2 and 0.3 and the P3
/// middleware's `wasi:http/handler` import, no plugins: enough for plain
/// HTTP components (benches instantiate with it).
pub fn wasi_linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<StoreState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    add_handler_import(&mut linker)?;
    Ok(linker)
}

/// The P3 handler interface a middleware imports to call inward.
pub const P3_HANDLER: &str = "wasi:http/handler@0.3.0";

/// Defines the `wasi:http/handler@0.3.0` import (`crate::workload::middleware`):
/// a call hands the request to the caller's next layer. It reuses
/// `wasi:http/client`'s implementation (the two functions have the same
/// type), flagging the send so the outbound hooks route it inward.
fn add_handler_import(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.instance(P3_HANDLER)?.func_wrap_concurrent(
        "handle",
        |accessor: &Accessor<StoreState>, (request,): (Resource<Request>,)| {
            Box::pin(async move {
                accessor.with(|mut access| access.get().mark_handler_call());
                let http = accessor.with_getter::<WasiHttp>(<StoreState as WasiHttpView>::http);
                let result: Result<Resource<Response>, _> =
                    <WasiHttp as HostWithStore<StoreState>>::send(&http, request).await;
                // A request refused before it reached the hooks left the flag
                // set; never let it route a later, unrelated send inward.
                accessor.with(|mut access| access.get().clear_handler_call());
                match result {
                    Ok(response) => Ok((Ok(response),)),
                    Err(error) => Ok((Err(error.downcast()?),)),
                }
            })
        },
    )
}

/// The stores of one component, for plugins that drive its exports
/// ([`nimbus_plugin::ComponentHandle`]).
pub struct ComponentStores {
    /// The engine the stores belong to.
    pub engine: wasmtime::Engine,
    /// The component's environment.
    pub env: Arc<ComponentEnv>,
}

impl nimbus_plugin::NewStore<StoreState> for ComponentStores {
    fn new_store(&self) -> wasmtime::Result<wasmtime::Store<StoreState>> {
        self.env.new_store(&self.engine)
    }
}

/// A directory mounted into a guest.
#[derive(Debug, Clone)]
pub struct Mount {
    /// Directory on the host.
    pub host_path: PathBuf,
    /// Where the guest sees it.
    pub guest_path: String,
    /// Whether the guest may write.
    pub writable: bool,
}

/// The WASI-visible environment of one component, shared by all its stores.
pub struct ComponentEnv {
    /// `namespace/name` of the workload.
    pub workload: Arc<str>,
    /// Component name within the workload.
    pub component: Arc<str>,
    /// Environment variables.
    pub environment: Vec<(String, String)>,
    /// What the component's plugins resolved for it.
    pub bindings: PluginBindings,
    /// Volume mounts.
    pub mounts: Vec<Mount>,
    /// Whether `wasi:sockets` may be used.
    pub sockets: bool,
    /// Outbound HTTP policy.
    pub outbound: Arc<OutboundPolicy>,
    /// The host's router, which may veto outgoing requests.
    pub router: Arc<dyn crate::http::router::Router>,
    /// Memory, time and CPU limits.
    pub limits: crate::limits::Limits,
    /// The CPU budget all its instances share, when it has a CPU limit
    /// (`limits.cpu`; [`crate::limits::Limits::cpu_budget`] makes it).
    pub cpu_budget: Option<Arc<crate::limits::CpuBudget>>,
    /// For a middleware: the next layer inward.
    pub inward: Option<Arc<dyn InMemoryTarget>>,
    /// The host's workloads, when outgoing requests to them stay in memory.
    pub local: Option<Arc<dyn LocalWorkloads>>,
    /// The workload's virtual loopback network, when it has a service.
    pub loopback: Option<Arc<crate::loopback::VirtualNetwork>>,
    /// Where its instances' CPU and memory are counted, with accounting on.
    pub metrics: Option<Arc<crate::metrics::ComponentMetrics>>,
    /// The outgoing-connection caps (the component's and the host's).
    pub outbound_slots: crate::outbound::OutboundSlots,
    /// The host-wide linear memory budget.
    pub memory_budget: Arc<crate::limits::MemoryBudget>,
    /// Where its stdout and stderr go, and how much of them.
    pub output: Arc<crate::guest_output::OutputBudget>,
}

impl std::fmt::Debug for dyn crate::http::router::Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Router")
    }
}

// By hand: environment values may hold secrets (`environment.secretFrom`),
// so only the variable names are printed.
impl std::fmt::Debug for ComponentEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.environment.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ComponentEnv")
            .field("workload", &self.workload)
            .field("component", &self.component)
            .field("environment", &names)
            .field("bindings", &self.bindings)
            .field("mounts", &self.mounts)
            .field("sockets", &self.sockets)
            .field("outbound", &self.outbound)
            .field("limits", &self.limits)
            .field("cpu_budget", &self.cpu_budget)
            .field("loopback", &self.loopback)
            .finish_non_exhaustive()
    }
}

impl ComponentEnv {
    /// An environment with nothing granted (no variables, mounts, sockets
    /// or outgoing hosts) under `limits`, its own budgets and no host
    /// around it: what benches and tools that instantiate a component by
    /// hand need.
    pub fn standalone(workload: &str, component: &str, limits: crate::limits::Limits) -> Self {
        let (workload, component): (Arc<str>, Arc<str>) = (workload.into(), component.into());
        Self {
            output: crate::guest_output::OutputBudget::new(
                workload.clone(),
                component.clone(),
                None,
            ),
            workload,
            component,
            environment: Vec::new(),
            bindings: PluginBindings::default(),
            mounts: Vec::new(),
            sockets: false,
            outbound: Arc::default(),
            router: Arc::new(crate::http::DynamicRouter::new()),
            cpu_budget: limits.cpu_budget(None),
            limits,
            inward: None,
            local: None,
            loopback: None,
            metrics: None,
            outbound_slots: crate::outbound::OutboundSlots::standalone(),
            memory_budget: Arc::new(crate::limits::MemoryBudget::new(u64::MAX)),
        }
    }

    /// A fresh store for one instance: its own WASI context, the memory
    /// limiter, and a yield at every epoch tick, which keeps other requests
    /// on the thread moving and lets deadlines fire inside busy guests.
    /// With a CPU limit, the tick also holds the instance while the
    /// component is over its share ([`crate::limits::cpu`]).
    pub fn new_store(
        self: &Arc<Self>,
        engine: &wasmtime::Engine,
    ) -> wasmtime::Result<wasmtime::Store<StoreState>> {
        let mut store = wasmtime::Store::new(engine, self.new_state()?);
        store.limiter(|state| &mut state.limits);
        // Also marks the store as async-only, which the callback below
        // needs for its yields.
        store.epoch_deadline_async_yield_and_update(1);
        if let Some(budget) = &self.cpu_budget {
            let budget = budget.clone();
            store.epoch_deadline_callback(move |_store| Ok(budget.at_epoch()));
        }
        store.set_epoch_deadline(1);
        Ok(store)
    }

    /// Where its guest CPU is charged besides its series: its CPU budget,
    /// when it has a limit.
    pub fn cpu_charge(&self) -> Option<Arc<dyn crate::metrics::ChargeCpu>> {
        self.cpu_budget
            .clone()
            .map(|budget| budget as Arc<dyn crate::metrics::ChargeCpu>)
    }

    /// Whether its instances' polls run inside a CPU meter: with accounting
    /// on, or a CPU limit to charge.
    pub(crate) fn metered(&self) -> bool {
        self.metrics.is_some() || self.cpu_budget.is_some()
    }

    /// A fresh store state for one instance.
    fn new_state(self: &Arc<Self>) -> wasmtime::Result<StoreState> {
        let mut builder = WasiCtxBuilder::new();
        // Into the host's log with the component's ids, never raw to the
        // host's stdout (`crate::guest_output`).
        builder
            .stdout(crate::guest_output::GuestOutput::stdout(
                self.output.clone(),
            ))
            .stderr(crate::guest_output::GuestOutput::stderr(
                self.output.clone(),
            ));
        builder.envs(&self.environment);
        for mount in &self.mounts {
            let perms = if mount.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            builder
                .preopened_dir(&mount.host_path, &mount.guest_path, perms)
                .map_err(|e| {
                    wasmtime::format_err!(
                        "cannot mount `{}` at `{}`: {e}",
                        mount.host_path.display(),
                        mount.guest_path
                    )
                })?;
        }
        builder
            .allow_tcp(self.sockets)
            .allow_udp(self.sockets)
            .allow_ip_name_lookup(self.sockets);
        if self.sockets {
            builder.inherit_network();
            // The sockets `crate::loopback::tcp` does not hold to a cap (UDP,
            // P3's) stop at the host's descriptor reserve.
            let workload = self.workload.clone();
            let component = self.component.clone();
            let metrics = self.outbound_slots.metrics().clone();
            let policy = self.outbound.clone();
            builder.socket_addr_check(move |addr, use_| {
                let outward = matches!(use_, SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend);
                let allowed = if !crate::limits::guest_descriptors_to_spare() {
                    metrics.limit_hit("guest_sockets");
                    tracing::warn!(workload = %workload, component = %component, %addr, "wasi:sockets refused: the host is short of descriptors");
                    false
                } else if outward && !policy.permits_socket_address(addr) {
                    tracing::warn!(workload = %workload, component = %component, %addr, "wasi:sockets refused: a restricted address no allowedHosts entry names");
                    false
                } else {
                    true
                };
                Box::pin(std::future::ready(allowed))
            });
        }
        Ok(StoreState {
            table: {
                let mut table = ResourceTable::new();
                table.set_max_capacity(crate::limits::resource_table_capacity(
                    self.limits.memory_bytes,
                ));
                table
            },
            wasi: builder.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundHooks {
                policy: self.outbound.clone(),
                workload: self.workload.clone(),
                component: self.component.clone(),
                router: self.router.clone(),
                inward: self.inward.clone(),
                local: self.local.clone(),
                layer: Default::default(),
                metrics: self.metrics.clone(),
                trace_parent: None,
                slots: self.outbound_slots.clone(),
            },
            env: self.clone(),
            limits: crate::metrics::MeteredLimiter::new(
                self.limits.store_limits(),
                self.metrics.clone(),
                self.memory_budget.clone(),
            ),
            peers: Default::default(),
            plugin_slots: StoreSlots::default(),
        })
    }
}
