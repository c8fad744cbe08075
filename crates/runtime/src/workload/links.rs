//! Linking inside a workload: a component's import of an interface that
//! another component of the same workload exports is wired to that
//! component in memory, with no network in between.
//!
//! Resolution happens once, when the workload starts, by the model's
//! [`nimbus_model::links::plan`] (the same plan `nimbus graph` draws and
//! composition composes): an interface two components export and a third
//! imports is refused naming all three; a cycle is refused with the cycle
//! spelled out; an import no component exports is left to the host's
//! plugins (and fails there with a clear error if no plugin has it). This
//! module is the run-time half: the dynamic host functions that carry a
//! linked call into the exporter's store.
//!
//! At run time the exporter lives in a store of its own (its environment,
//! config, limits and allowed hosts stay its own), one instance per
//! importing instance, created on the first call. Each imported function is
//! a dynamic host function forwarding [`Val`]s to the exporter's export with
//! `call_async`, which drives both sync (P2) and async-lifted (P3) exports.
//! A plain WIT function waits like any sync import; an `async func` is a
//! concurrent host function, so the importer's other tasks keep running.
//! Calls into one exporter instance are taken one at a time.
//!
//! Resources cross the boundary as handles: the importer sees each resource
//! type of a linked interface as a host resource
//! ([`ResourceType::host_dynamic`]) whose representation indexes the
//! exporter's real resource in a per-link table. Handles returned to the
//! importer enter the table, handles passed back (owned or borrowed) are
//! looked up, and the importer dropping a handle drops the exporter's
//! resource, running its destructor. Values of other resource types, and
//! P3 streams and futures, cannot cross between stores and fail the call
//! with an error naming both components.
//!
//! The one import cycle between modules of this crate runs through here:
//! this module builds stores (`crate::wasi`), and each importing store keeps
//! its exporters' instances in its state (`Peers`, a field of
//! `StoreState`), so they live and die with it.

use crate::wasi::{ComponentEnv, StoreState};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{
    Accessor, Component, ComponentExportIndex, Instance, InstancePre, Linker, ResourceAny,
    ResourceDynamic, ResourceType, Val,
};
use wasmtime::{AsContextMut, Store, StoreContextMut};

pub use nimbus_model::links::LinkError;
pub use nimbus_model::links::{ComponentInterfaces, exporters_first, plan, roots};

/// Resource type numbers handed to [`ResourceType::host_dynamic`]; unique
/// per host process so two linked resource types never look alike.
static NEXT_RESOURCE_CODE: AtomicU32 = AtomicU32::new(0x4e49_0000);

/// A component other components of its workload import from.
pub struct LinkTarget {
    name: Arc<str>,
    engine: wasmtime::Engine,
    component: Component,
    pre: InstancePre<StoreState>,
    env: Arc<ComponentEnv>,
    /// Every resource type its exported interfaces define, by
    /// `(interface, resource)`: where to find it and the code importers see.
    resources: HashMap<(String, String), (ComponentExportIndex, u32)>,
    /// For a host component plugin: its one instance, which every importer
    /// of every workload calls (see [`LinkTarget::shared`]).
    shared: Option<PeerSlot>,
}

impl LinkTarget {
    /// The component `name` as a link target: its instances are made in
    /// stores of `engine`, and its exports found by name.
    pub fn new(
        name: &str,
        engine: &wasmtime::Engine,
        component: &Component,
        pre: InstancePre<StoreState>,
        env: Arc<ComponentEnv>,
    ) -> Self {
        let mut resources = HashMap::new();
        for (interface, item) in component.component_type().exports(engine) {
            let ComponentItem::ComponentInstance(instance) = item.ty else {
                continue;
            };
            let Some(parent) = component.get_export_index(None, interface) else {
                continue;
            };
            for (resource, item) in instance.exports(engine) {
                if let ComponentItem::Resource(_) = item.ty
                    && let Some(index) = component.get_export_index(Some(&parent), resource)
                {
                    let code = NEXT_RESOURCE_CODE.fetch_add(1, Ordering::Relaxed);
                    resources.insert((interface.to_string(), resource.to_string()), (index, code));
                }
            }
        }
        Self {
            name: Arc::from(name),
            engine: engine.clone(),
            component: component.clone(),
            pre,
            env,
            resources,
            shared: None,
        }
    }

    /// The component as a host component plugin: one instance that every
    /// importer of every workload calls, in a store of its own (its
    /// environment, limits and allowed hosts), started on the first call
    /// and started afresh on the call after one that trapped or missed its
    /// deadline (`limits.request_timeout`, per call). Calls are taken one
    /// at a time.
    pub fn shared(mut self) -> Self {
        self.shared = Some(PeerSlot::default());
        self
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where an importer's calls go: the shared instance, or the importer's
    /// own instance of the exporter in link slot `slot`.
    fn peer(&self, store: &mut StoreState, slot: usize) -> PeerSlot {
        match &self.shared {
            Some(shared) => shared.clone(),
            None => store.peers.slot(slot),
        }
    }

    fn export_func(
        &self,
        interface: &str,
        name: &str,
    ) -> Option<(ComponentExportIndex, ComponentFunc)> {
        let engine = &self.engine;
        let ComponentItem::ComponentInstance(instance) = self
            .component
            .component_type()
            .get_export(engine, interface)?
            .ty
        else {
            return None;
        };
        let ComponentItem::ComponentFunc(ty) = instance.get_export(engine, name)?.ty else {
            return None;
        };
        let parent = self.component.get_export_index(None, interface)?;
        let index = self.component.get_export_index(Some(&parent), name)?;
        Some((index, ty))
    }
}

/// Defines, in `linker`, every function and resource of the interfaces
/// `importer` links to other components, each forwarding to its exporter.
/// `links` are `(interface, exporter)`; a link's position is its slot in
/// the importer's per-store peers.
pub fn add_to_linker(
    linker: &mut Linker<StoreState>,
    engine: &wasmtime::Engine,
    importer: &str,
    importer_component: &Component,
    links: &[(String, Arc<LinkTarget>)],
) -> Result<(), LinkError> {
    // A linked interface wins over a plugin defining the same name.
    linker.allow_shadowing(true);
    let imports = importer_component.component_type();
    let mut slots: Vec<Arc<str>> = Vec::new();
    for (interface, target) in links {
        let slot = match slots.iter().position(|name| *name == target.name) {
            Some(slot) => slot,
            None => {
                slots.push(target.name.clone());
                slots.len() - 1
            }
        };
        let mismatch = |item: String| LinkError::Mismatch {
            importer: importer.to_string(),
            exporter: target.name.to_string(),
            interface: interface.clone(),
            item,
        };
        let Some(ComponentItem::ComponentInstance(wanted)) =
            imports.get_import(engine, interface).map(|i| i.ty)
        else {
            continue;
        };
        let mut instance = linker
            .instance(interface)
            .map_err(|e| mismatch(format!("a definition the linker accepts ({e})")))?;
        for (name, item) in wanted.exports(engine) {
            match item.ty {
                ComponentItem::Resource(_) => {
                    let Some(&(_, code)) =
                        target.resources.get(&(interface.clone(), name.to_string()))
                    else {
                        return Err(mismatch(format!("resource `{name}`")));
                    };
                    let owner = target.clone();
                    instance
                        .resource_async(
                            name,
                            ResourceType::host_dynamic(code),
                            move |store, rep| {
                                Box::new(drop_handle(store, owner.clone(), slot, rep))
                            },
                        )
                        .map_err(|e| mismatch(format!("resource `{name}` ({e})")))?;
                }
                ComponentItem::ComponentFunc(ty) => {
                    let Some((export, exported)) = target.export_func(interface, name) else {
                        return Err(mismatch(format!("function `{name}`")));
                    };
                    // A shared plugin serves every workload: a call that
                    // cannot be lowered would cost the others their
                    // instance, so its types must match in full.
                    if target.shared.is_some() && !same_signature(&ty, &exported) {
                        return Err(mismatch(format!(
                            "function `{name}` with the types it exports"
                        )));
                    }
                    if exported.params().len() != ty.params().len()
                        || exported.results().len() != ty.results().len()
                    {
                        return Err(mismatch(format!(
                            "function `{name}` with {} parameter(s) and {} result(s) (it has {} and {})",
                            ty.params().len(),
                            ty.results().len(),
                            exported.params().len(),
                            exported.results().len()
                        )));
                    }
                    let call = Arc::new(LinkedCall {
                        importer: Arc::from(importer),
                        slot,
                        target: target.clone(),
                        export,
                    });
                    if ty.async_() {
                        instance.func_new_concurrent(name, move |accessor, _, params, results| {
                            let call = call.clone();
                            Box::pin(async move {
                                call.forward_concurrent(accessor, params, results).await
                            })
                        })
                    } else {
                        instance.func_new_async(name, move |store, _, params, results| {
                            let call = call.clone();
                            Box::new(async move { call.forward(store, params, results).await })
                        })
                    }
                    .map_err(|e| mismatch(format!("function `{name}` ({e})")))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Whether two functions take and return values of the same shape
/// (types of different components never compare equal, so by structure).
fn same_signature(a: &ComponentFunc, b: &ComponentFunc) -> bool {
    a.params().len() == b.params().len()
        && a.results().len() == b.results().len()
        && a.params()
            .zip(b.params())
            .all(|((_, x), (_, y))| same_shape(&x, &y))
        && a.results()
            .zip(b.results())
            .all(|(x, y)| same_shape(&x, &y))
}

/// Whether two value types have the same structure: names of fields,
/// cases and flags included. Resources, streams and futures never match:
/// they cannot cross between stores of different workloads.
fn same_shape(a: &Type, b: &Type) -> bool {
    let both = |a: Option<Type>, b: Option<Type>| match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => same_shape(&a, &b),
        _ => false,
    };
    match (a, b) {
        (Type::List(a), Type::List(b)) => same_shape(&a.ty(), &b.ty()),
        (Type::Option(a), Type::Option(b)) => same_shape(&a.ty(), &b.ty()),
        (Type::Result(a), Type::Result(b)) => both(a.ok(), b.ok()) && both(a.err(), b.err()),
        (Type::Tuple(a), Type::Tuple(b)) => {
            a.types().len() == b.types().len()
                && a.types().zip(b.types()).all(|(x, y)| same_shape(&x, &y))
        }
        (Type::Record(a), Type::Record(b)) => {
            a.fields().len() == b.fields().len()
                && a.fields()
                    .zip(b.fields())
                    .all(|(x, y)| x.name == y.name && same_shape(&x.ty, &y.ty))
        }
        (Type::Variant(a), Type::Variant(b)) => {
            a.cases().len() == b.cases().len()
                && a.cases()
                    .zip(b.cases())
                    .all(|(x, y)| x.name == y.name && both(x.ty, y.ty))
        }
        (Type::Enum(a), Type::Enum(b)) => a.names().eq(b.names()),
        (Type::Flags(a), Type::Flags(b)) => a.names().eq(b.names()),
        (Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_), _) => false,
        (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

/// The exporter instances one importing store talks to, by link slot.
#[derive(Default)]
pub(crate) struct Peers(Vec<PeerSlot>);

/// Where one link's exporter instance lives once started.
type PeerSlot = Arc<tokio::sync::Mutex<Option<Peer>>>;

impl Peers {
    fn slot(&mut self, slot: usize) -> PeerSlot {
        while self.0.len() <= slot {
            self.0.push(Arc::default());
        }
        self.0[slot].clone()
    }
}

/// One live instance of an exporter, serving one importing instance.
pub(crate) struct Peer {
    store: Store<StoreState>,
    instance: Instance,
    /// This instance's resource types and the codes importers see them as.
    resource_types: Vec<(ResourceType, u32)>,
    /// Exporter resources the importer holds handles to, by representation.
    handles: HashMap<u32, ResourceAny>,
    next_rep: u32,
}

impl Peer {
    async fn start(target: &LinkTarget) -> wasmtime::Result<Self> {
        let mut store = target.env.new_store(&target.engine)?;
        let instance = target.pre.instantiate_async(&mut store).await?;
        let resource_types = target
            .resources
            .values()
            .filter_map(|(index, code)| {
                instance
                    .get_resource(&mut store, index)
                    .map(|ty| (ty, *code))
            })
            .collect();
        Ok(Self {
            store,
            instance,
            resource_types,
            handles: HashMap::new(),
            next_rep: 1,
        })
    }

    fn keep(&mut self, resource: ResourceAny) -> u32 {
        while self.handles.contains_key(&self.next_rep) {
            self.next_rep = self.next_rep.wrapping_add(1).max(1);
        }
        let rep = self.next_rep;
        self.next_rep = self.next_rep.wrapping_add(1).max(1);
        self.handles.insert(rep, resource);
        rep
    }
}

/// Replaces every resource inside `value`, depth first, with what `swap`
/// returns for it; fails on streams and futures, which cannot cross stores.
fn swap_resources(
    value: &mut Val,
    swap: &mut dyn FnMut(ResourceAny) -> wasmtime::Result<ResourceAny>,
) -> wasmtime::Result<()> {
    match value {
        Val::Resource(resource) => *resource = swap(*resource)?,
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
            for item in items {
                swap_resources(item, swap)?;
            }
        }
        Val::Record(fields) => {
            for (_, item) in fields {
                swap_resources(item, swap)?;
            }
        }
        Val::Map(entries) => {
            for (key, item) in entries {
                swap_resources(key, swap)?;
                swap_resources(item, swap)?;
            }
        }
        Val::Variant(_, Some(item)) | Val::Option(Some(item)) => swap_resources(item, swap)?,
        Val::Result(Ok(Some(item)) | Err(Some(item))) => swap_resources(item, swap)?,
        Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => {
            wasmtime::bail!("streams, futures and error contexts cannot cross between components")
        }
        _ => {}
    }
    Ok(())
}

/// The importer's side of one call: its resource handles taken out of its
/// store (kept in place in the values, to be swapped in order later).
fn take_handles(
    mut store: impl AsContextMut<Data = StoreState>,
    target: &LinkTarget,
    slot: usize,
    args: &mut [Val],
) -> wasmtime::Result<(PeerSlot, Vec<ResourceDynamic>)> {
    let peer = target.peer(store.as_context_mut().data_mut(), slot);
    let mut handed = Vec::new();
    for arg in args {
        swap_resources(arg, &mut |resource| {
            handed.push(ResourceDynamic::try_from_resource_any(
                resource, &mut store,
            )?);
            Ok(resource)
        })?;
    }
    Ok((peer, handed))
}

/// The exporter's side of one call: handles swapped for its resources, the
/// function called in its store, returned resources kept in its table as
/// `(representation, code)`, in order.
async fn call_peer(
    call: &LinkedCall,
    peer: PeerSlot,
    mut args: Vec<Val>,
    handed: Vec<ResourceDynamic>,
    result_count: usize,
) -> wasmtime::Result<(Vec<Val>, Vec<(u32, u32)>)> {
    let target = &call.target;
    let mut guard = peer.lock().await;
    // Out of its slot while in use: an instance that traps, or whose call
    // is abandoned half-way, is dropped and the next call starts afresh.
    let mut live = match guard.take() {
        Some(live) => live,
        None => Peer::start(target).await.map_err(|e| {
            e.context(format!(
                "cannot instantiate linked component `{}`",
                target.name
            ))
        })?,
    };
    let mut handed = handed.into_iter();
    for arg in &mut args {
        swap_resources(arg, &mut |_| {
            let handle = handed
                .next()
                .ok_or_else(|| wasmtime::format_err!("resource count changed"))?;
            let found = if handle.owned() {
                live.handles.remove(&handle.rep())
            } else {
                live.handles.get(&handle.rep()).copied()
            };
            found.ok_or_else(|| {
                wasmtime::format_err!(
                    "a resource handle passed to `{}` is unknown to it (only resources it returned can go back)",
                    target.name
                )
            })
        })
        .map_err(|e| e.context(call.describe()))?;
    }
    let func = live
        .instance
        .get_func(&mut live.store, call.export)
        .ok_or_else(|| wasmtime::format_err!("linked function vanished"))?;
    let mut outputs = vec![Val::Bool(false); result_count];
    func.call_async(&mut live.store, &args, &mut outputs)
        .await
        .map_err(|error| error.context(call.describe()))?;
    let mut returned = Vec::new();
    for output in &mut outputs {
        swap_resources(output, &mut |resource| {
            let code = live
                .resource_types
                .iter()
                .find(|(ty, _)| *ty == resource.ty())
                .map(|(_, code)| *code)
                .ok_or_else(|| {
                    wasmtime::format_err!(
                        "it returned a resource that is not defined by an interface it exports"
                    )
                })?;
            returned.push((live.keep(resource), code));
            Ok(resource)
        })
        .map_err(|e| e.context(call.describe()))?;
    }
    *guard = Some(live);
    Ok((outputs, returned))
}

/// The importer's side of the return: results written with handles of its
/// own for the resources the exporter returned.
fn give_handles(
    mut store: impl AsContextMut<Data = StoreState>,
    outputs: Vec<Val>,
    returned: Vec<(u32, u32)>,
    results: &mut [Val],
) -> wasmtime::Result<()> {
    let mut returned = returned.into_iter();
    for (slot, mut output) in results.iter_mut().zip(outputs) {
        swap_resources(&mut output, &mut |_| {
            let (rep, code) = returned
                .next()
                .ok_or_else(|| wasmtime::format_err!("resource count changed"))?;
            ResourceDynamic::new_own(rep, code).try_into_resource_any(&mut store)
        })?;
        *slot = output;
    }
    Ok(())
}

/// One linked function: who calls, whom, which export, through which slot.
struct LinkedCall {
    importer: Arc<str>,
    slot: usize,
    target: Arc<LinkTarget>,
    export: ComponentExportIndex,
}

impl LinkedCall {
    fn describe(&self) -> String {
        let kind = if self.target.shared.is_some() {
            "host component plugin"
        } else {
            "linked component"
        };
        format!(
            "call from component `{}` into {kind} `{}`",
            self.importer, self.target.name
        )
    }

    /// A plain WIT function: the importer's instance waits for the answer.
    async fn forward(
        self: &Arc<Self>,
        mut store: StoreContextMut<'_, StoreState>,
        params: &[Val],
        results: &mut [Val],
    ) -> wasmtime::Result<()> {
        if self.target.shared.is_some() {
            let outputs = self.call_shared(params.to_vec(), results.len()).await?;
            results.clone_from_slice(&outputs);
            return Ok(());
        }
        let mut args = params.to_vec();
        let (peer, handed) = take_handles(&mut store, &self.target, self.slot, &mut args)?;
        // A plain function's host call runs on the importer's fiber, outside
        // its event loop, so the exporter can be driven right here.
        let (outputs, returned) = call_peer(self, peer, args, handed, results.len()).await?;
        give_handles(&mut store, outputs, returned, results)
    }

    /// An `async func`: the importer's other tasks run meanwhile.
    async fn forward_concurrent(
        self: &Arc<Self>,
        accessor: &Accessor<StoreState>,
        params: &[Val],
        results: &mut [Val],
    ) -> wasmtime::Result<()> {
        if self.target.shared.is_some() {
            let outputs = self.call_shared(params.to_vec(), results.len()).await?;
            results.clone_from_slice(&outputs);
            return Ok(());
        }
        let mut args = params.to_vec();
        let (peer, handed) = accessor
            .with(|mut access| take_handles(&mut access, &self.target, self.slot, &mut args))?;
        let (outputs, returned) = self
            .call_peer_detached(peer, args, handed, results.len())
            .await?;
        accessor.with(|mut access| give_handles(&mut access, outputs, returned, results))
    }

    /// A call into a host component plugin's one instance, on a task of its
    /// own that the importer going away does not abort (an instance left
    /// halfway would cost every other importer it), bounded by the
    /// plugin's deadline alone, and metered as the plugin's.
    async fn call_shared(
        self: &Arc<Self>,
        args: Vec<Val>,
        result_count: usize,
    ) -> wasmtime::Result<Vec<Val>> {
        let call = self.clone();
        let metrics = call.target.env.metrics.clone();
        let budget = call.target.env.cpu_charge();
        let task = crate::metrics::spawn_metered(metrics.as_ref(), budget, async move {
            call.run_shared(args, result_count).await
        });
        task.await.map_err(|e| {
            wasmtime::format_err!("{}: the call's task failed: {e}", self.describe())
        })?
    }

    /// The plugin's side of [`call_shared`](Self::call_shared): the one
    /// instance (started, within the deadline, when there is none) is out
    /// of its slot while it runs, and goes back only when the call
    /// succeeded; after a trap, an error or a missed deadline the next
    /// call starts a fresh one.
    async fn run_shared(&self, args: Vec<Val>, result_count: usize) -> wasmtime::Result<Vec<Val>> {
        let target = &self.target;
        let slot = target.shared.as_ref().ok_or_else(|| {
            wasmtime::format_err!("`{}` is not a host component plugin", target.name)
        })?;
        let deadline = target.env.limits.request_timeout;
        let late = |what: &str| {
            wasmtime::format_err!(
                "host component plugin `{}` did not {what} within its deadline of {} ms",
                target.name,
                deadline.as_millis()
            )
        };
        let mut guard = slot.lock().await;
        let mut live = match guard.take() {
            Some(live) => live,
            None => tokio::time::timeout(deadline, Peer::start(target))
                .await
                .map_err(|_| late("start"))?
                .map_err(|e| {
                    e.context(format!(
                        "cannot start host component plugin `{}`",
                        target.name
                    ))
                })?,
        };
        let func = live
            .instance
            .get_func(&mut live.store, self.export)
            .ok_or_else(|| wasmtime::format_err!("plugin function vanished"))?;
        let mut outputs = vec![Val::Bool(false); result_count];
        let outcome = tokio::time::timeout(
            deadline,
            func.call_async(&mut live.store, &args, &mut outputs),
        )
        .await
        .unwrap_or_else(|_| Err(late("answer")));
        match outcome {
            Ok(()) => {
                *guard = Some(live);
                Ok(outputs)
            }
            Err(error) => {
                tracing::warn!(
                    plugin = %target.name,
                    error = %format!("{error:#}"),
                    "host component plugin failed; a fresh instance takes the next call"
                );
                Err(error.context(self.describe()))
            }
        }
    }

    /// Runs the exporter's side on a task of its own: wasmtime refuses to
    /// drive one store's event loop from inside another's, which is where
    /// an importer's concurrent (`async func`) host call runs. The task is aborted if the caller is
    /// dropped (e.g. its request missed its deadline).
    async fn call_peer_detached(
        self: &Arc<Self>,
        peer: PeerSlot,
        args: Vec<Val>,
        handed: Vec<ResourceDynamic>,
        result_count: usize,
    ) -> wasmtime::Result<(Vec<Val>, Vec<(u32, u32)>)> {
        let call = self.clone();
        let metrics = call.target.env.metrics.clone();
        let budget = call.target.env.cpu_charge();
        let task = tokio_util::task::AbortOnDropHandle::new(crate::metrics::spawn_metered(
            metrics.as_ref(),
            budget,
            async move { call_peer(&call, peer, args, handed, result_count).await },
        ));
        task.await.map_err(|e| {
            wasmtime::format_err!("{}: the call's task failed: {e}", self.describe())
        })?
    }
}

/// The importer dropped its handle: drop the exporter's resource.
async fn drop_handle(
    mut store: StoreContextMut<'_, StoreState>,
    target: Arc<LinkTarget>,
    slot: usize,
    rep: u32,
) -> wasmtime::Result<()> {
    let peer = target.peer(store.data_mut(), slot);
    let mut guard = peer.lock().await;
    if let Some(live) = guard.as_mut()
        && let Some(resource) = live.handles.remove(&rep)
    {
        resource
            .resource_drop_async(live.store.as_context_mut())
            .await?;
    }
    Ok(())
}
