//! Turning a workload spec into a `RunningWorkload`: read and compile each
//! component, link components to each other (or compose them), bind the
//! plugins their imports need, pre-link each one, build the middleware
//! chain and the service. Nothing is published here; `Host` does that.

use super::{Host, SERVICE_NAME, WorkloadError};
use crate::artifact::Artifact;
use crate::compose::{self, Part};
use crate::limits::Limits;
use crate::loopback::VirtualNetwork;
use crate::outbound::OutboundPolicy;
use crate::plugins::{BindContext, ComponentHandle, PluginBindings, PluginError, ServeGuard};
use crate::wasi::{ComponentEnv, Mount, StoreState};
use crate::workload::dispatch::Dispatcher;
use crate::workload::instance::{ComponentInstances, HttpKind, ReusePolicy};
use crate::workload::links::{self, ComponentInterfaces, LinkTarget};
use crate::workload::middleware::{Inward, P3_HANDLER};
use crate::workload::running::{HttpTarget, RunningWorkload, WorkloadParts};
use crate::workload::service::{Command, Service};
use crate::workload::{
    ComponentSpec, ComponentStatus, ManifestError, Workload, local_image_path, validate_workload,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::InstancePre;
use wasmtime_wasi_http::handler::ProxyPre;

impl Host {
    /// Compiles, links and wires a workload without publishing it.
    pub(super) async fn prepare(
        &self,
        workload: Workload,
    ) -> Result<RunningWorkload, WorkloadError> {
        validate_workload(&workload, "spec")?;
        if workload.namespace == super::component_plugins::NAMESPACE {
            return Err(WorkloadError::Invalid(ManifestError {
                path: "metadata.namespace".into(),
                message: format!(
                    "`{}` is the host's own (its component plugins run there)",
                    workload.namespace
                ),
            }));
        }
        let id: Arc<str> = Arc::from(workload.id());
        let mut scratch = Vec::new();
        let mut volume_dirs: HashMap<String, PathBuf> = HashMap::new();
        for volume in &workload.spec.volumes {
            let dir = if let Some(host) = &volume.host_path {
                PathBuf::from(&host.path)
            } else {
                let dir = tempfile::Builder::new()
                    .prefix("nimbus-emptydir-")
                    .tempdir()
                    .map_err(|e| {
                        WorkloadError::Internal(format!(
                            "cannot create emptyDir volume `{}`: {e}",
                            volume.name
                        ))
                    })?;
                let path = dir.path().to_path_buf();
                scratch.push(dir);
                path
            };
            volume_dirs.insert(volume.name.clone(), dir);
        }

        // Every component is compiled first: linking needs all their
        // interfaces. Then the plain components, each after the components
        // it imports from, then the middleware from the innermost out (each
        // layer is built knowing the layer inside it).
        let spec = &workload.spec;
        // A service brings the workload's virtual loopback network, which
        // every component of the workload then sees.
        let loopback = spec.service.as_ref().map(|_| VirtualNetwork::new());
        let mut artifacts = Vec::with_capacity(spec.components.len());
        let mut sources = Vec::new();
        for component in &spec.components {
            if !spec.compose
                && let Some(path) = local_image_path(&component.image)
            {
                artifacts.push(self.load_local(component, path).await?);
                continue;
            }
            let bytes = self.read_component(component).await?;
            if spec.compose {
                sources.push(bytes.clone());
            }
            artifacts.push(self.compile(&component.name, bytes).await?);
        }
        let engine = self.0.engine.wasmtime();
        let interfaces: Vec<ComponentInterfaces<'_>> = spec
            .components
            .iter()
            .zip(&artifacts)
            .map(|(component, artifact)| {
                let ty = artifact.component.component_type();
                ComponentInterfaces {
                    name: &component.name,
                    imports: ty.imports(engine).map(|(n, _)| n.to_string()).collect(),
                    exports: ty.exports(engine).map(|(n, _)| n.to_string()).collect(),
                }
            })
            .collect();
        let mut plan = links::plan(&interfaces)?;
        let host_plugins = self.component_plugins().await?;
        // `compose: true`: each root and what it links to become one
        // component, compiled in place of the root; the parts inside it are
        // not run on their own.
        let mut absorbed = vec![false; spec.components.len()];
        if spec.compose {
            let named: Arc<Vec<(String, Vec<u8>)>> = Arc::new(
                spec.components
                    .iter()
                    .map(|c| c.name.clone())
                    .zip(std::mem::take(&mut sources))
                    .collect(),
            );
            for root in links::roots(&plan) {
                let name = &spec.components[root].name;
                let composition = self.compose(named.clone(), name).await?;
                for part in &composition.absorbed {
                    if let Some(index) = spec.components.iter().position(|c| &c.name == part) {
                        absorbed[index] = true;
                    }
                }
                artifacts[root] = self.compile(name, composition.bytes).await?;
                plan[root].clear();
                tracing::info!(workload = %id, root = %name, parts = ?composition.absorbed, "components composed");
            }
            if let Some(name) = spec.middleware.iter().find(|m| {
                spec.components
                    .iter()
                    .zip(&absorbed)
                    .any(|(c, a)| *a && &c.name == *m)
            }) {
                return Err(WorkloadError::Middleware {
                    component: name.clone(),
                    message: "another component imports from it, so `compose: true` would fold it into that component; a middleware must stay a layer of its own".into(),
                });
            }
        }
        let mut targets: Vec<Option<Arc<LinkTarget>>> = vec![None; spec.components.len()];
        let links_of = |index: usize, targets: &[Option<Arc<LinkTarget>>]| {
            let linked = plan[index].iter().map(|(interface, _)| interface.as_str());
            let plugin_links = plugin_links(host_plugins, engine, &artifacts[index], linked);
            plan[index]
                .iter()
                .map(|(interface, exporter)| {
                    let target = targets[*exporter].clone().ok_or_else(|| WorkloadError::Middleware {
                        component: spec.components[*exporter].name.clone(),
                        message: format!(
                            "`{}` imports `{interface}` from it, but a middleware can only be linked into the middleware outside it",
                            spec.components[index].name
                        ),
                    })?;
                    Ok((interface.clone(), target))
                })
                .chain(plugin_links.into_iter().map(Ok))
                .collect::<Result<Vec<_>, WorkloadError>>()
        };
        let imported_from = |index: usize| plan.iter().flatten().any(|(_, e)| *e == index);
        let plan_for = |index: usize, targets: &[Option<Arc<LinkTarget>>], inward| {
            Ok::<_, WorkloadError>(ComponentPlan {
                workload: &workload,
                id: &id,
                spec: &spec.components[index],
                artifact: &artifacts[index],
                volume_dirs: &volume_dirs,
                links: links_of(index, targets)?,
                imported: imported_from(index),
                inward,
                loopback: loopback.clone(),
                service: false,
            })
        };
        let is_middleware = |name: &str| spec.middleware.iter().any(|m| m == name);
        let plain: Vec<usize> = (0..spec.components.len())
            .filter(|&i| !is_middleware(&spec.components[i].name) && !absorbed[i])
            .collect();
        let mut components = Vec::new();
        let mut served = Served::default();
        let mut takes_upgrades = false;
        let mut handlers = Vec::new();
        for index in links::exporters_first(&plan, &plain) {
            let prepared = self
                .prepare_component(plan_for(index, &targets, None)?)
                .await?;
            let limit = prepared.limits.max_concurrent_requests;
            takes_upgrades |= prepared.takes_upgrades;
            if let Some(target) = prepared.record(index, &mut components, &mut served, &mut targets)
            {
                handlers.push((index, target, limit));
            }
        }
        // Upgrades go straight to the plugin: an auth middleware would be
        // bypassed, so the two do not mix.
        if takes_upgrades && let Some(first) = spec.middleware.first() {
            return Err(WorkloadError::Middleware {
                component: first.clone(),
                message: "WebSocket upgrades do not pass through middleware, so a workload with middleware cannot have a WebSocket handler (put the handler in a workload of its own)".into(),
            });
        }
        handlers.sort_by_key(|(index, _, _)| *index);
        let mut handlers = handlers.into_iter();
        let mut max_concurrent = self.0.limits.max_concurrent_requests;
        let mut http: Option<Arc<HttpTarget>> = None;
        if let Some((_, target, limit)) = handlers.next() {
            max_concurrent = limit;
            http = Some(Arc::new(target));
        }
        if let Some((index, _, _)) = handlers.next() {
            let name = &spec.components[index].name;
            if !spec.middleware.is_empty() {
                return Err(WorkloadError::Middleware {
                    component: name.clone(),
                    message: "a second component exports an HTTP handler; a workload with middleware needs exactly one handler for them to wrap".into(),
                });
            }
            tracing::warn!(workload = %id, component = %name, "several components export an HTTP handler; the first one serves requests");
        }
        for name in spec.middleware.iter().rev() {
            let Some(next) = http.clone() else {
                return Err(WorkloadError::NoHttpHandler(id.to_string()));
            };
            let index = spec
                .components
                .iter()
                .position(|c| &c.name == name)
                .ok_or_else(|| WorkloadError::Internal(format!("middleware `{name}` vanished")))?;
            let inward = Arc::new(Inward {
                workload: id.clone(),
                next,
            });
            let prepared = self
                .prepare_component(plan_for(index, &targets, Some(inward))?)
                .await?;
            let target = prepared
                .record(index, &mut components, &mut served, &mut targets)
                .ok_or_else(|| WorkloadError::Middleware {
                component: name.clone(),
                message: "does not export an HTTP handler (wasi:http/incoming-handler@0.2 or wasi:http/handler@0.3.0)".into(),
            })?;
            http = Some(Arc::new(target));
        }
        // A workload whose only handler takes WebSockets still routes HTTP.
        if http.is_none() && spec.http_interface().is_some() && !takes_upgrades {
            return Err(WorkloadError::NoHttpHandler(id.to_string()));
        }
        components.sort_by_key(|(index, _)| *index);
        let mut components: Vec<ComponentStatus> =
            components.into_iter().map(|(_, status)| status).collect();
        let service = match &spec.service {
            None => None,
            Some(service) => {
                let service_spec = ComponentSpec {
                    name: SERVICE_NAME.to_string(),
                    image: service.image.clone(),
                    image_pull_policy: service.image_pull_policy,
                    local_resources: service.local_resources.clone(),
                    ..Default::default()
                };
                let bytes = self.read_component(&service_spec).await?;
                let artifact = self.compile(SERVICE_NAME, bytes).await?;
                let prepared = self
                    .prepare_component(ComponentPlan {
                        workload: &workload,
                        id: &id,
                        spec: &service_spec,
                        artifact: &artifact,
                        volume_dirs: &volume_dirs,
                        links: plugin_links(host_plugins, engine, &artifact, std::iter::empty()),
                        imported: false,
                        inward: None,
                        loopback: loopback.clone(),
                        service: true,
                    })
                    .await?;
                let (command, env) = prepared.command.ok_or_else(|| WorkloadError::Service {
                    workload: id.to_string(),
                    message: format!(
                        "`{}` does not export wasi:cli/run (0.2 or 0.3), so it cannot run as a service",
                        service.image
                    ),
                })?;
                served.add(prepared.served);
                components.push(prepared.status);
                Some(Service::new(
                    command,
                    self.0.engine.wasmtime().clone(),
                    env,
                    service.max_restarts,
                ))
            }
        };
        Ok(RunningWorkload::new(WorkloadParts {
            id,
            workload,
            components,
            http,
            max_concurrent,
            service,
            served: served.guards,
            driven_by: served.driven_by,
            scratch,
        }))
    }

    /// Reads one component's bytes: a local file, or an image pulled from
    /// its registry (digest-checked, cached by content).
    pub(super) async fn read_component(
        &self,
        spec: &ComponentSpec,
    ) -> Result<Vec<u8>, WorkloadError> {
        let Some(path) = local_image_path(&spec.image) else {
            let policy = spec.image_pull_policy.unwrap_or(self.0.pull_policy);
            let pulled = self
                .0
                .registry
                .pull(&spec.image, policy)
                .await
                .map_err(|source| WorkloadError::Image {
                    component: spec.name.clone(),
                    source,
                })?;
            tracing::info!(component = %spec.name, image = %spec.image, digest = %pulled.digest, cached = pulled.cached, "image pulled");
            return Ok(pulled.bytes);
        };
        // The registry's size cap is the one cap of every component source.
        crate::files::read_bounded(&path, self.0.registry.settings().max_layer_bytes)
            .await
            .map_err(|source| WorkloadError::Read {
                component: spec.name.clone(),
                source,
            })
    }

    /// The compiled component of a local file: from memory without reading
    /// the file again when it is unchanged since this host last read it
    /// (many workloads of one file cost one read and one hash), otherwise
    /// read and compiled (or found compiled) as any image.
    pub(super) async fn load_local(
        &self,
        spec: &ComponentSpec,
        path: PathBuf,
    ) -> Result<Artifact, WorkloadError> {
        let host = self.clone();
        let owned = path.clone();
        let looked = tokio::task::spawn_blocking(move || host.0.artifacts.compiled_file(&owned));
        // A stat of a user-named path is bounded as its read is.
        let stamp = match tokio::time::timeout(crate::files::READ_TIMEOUT, looked).await {
            Ok(Ok(Ok(artifact))) => return Ok(artifact),
            Ok(Ok(Err(stamp))) => stamp,
            Ok(Err(_)) | Err(_) => None,
        };
        let bytes = self.read_component(spec).await?;
        let artifact = self.compile(&spec.name, bytes).await?;
        if let Some(stamp) = stamp {
            let host = self.clone();
            let digest = artifact.digest;
            let noted = tokio::task::spawn_blocking(move || {
                host.0.artifacts.remember_file(&path, stamp, digest);
            });
            // Only a memo: a stat that hangs is given up, not waited for.
            let _ = tokio::time::timeout(Duration::from_secs(1), noted).await;
        }
        Ok(artifact)
    }

    /// `artifact` pre-linked against the host's linker, made once per
    /// digest.
    fn shared_pre(&self, artifact: &Artifact) -> wasmtime::Result<InstancePre<StoreState>> {
        let lock = || self.0.shared_pres.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pre) = lock().get(&artifact.digest) {
            return Ok(pre.clone());
        }
        let pre = self.0.linker.instantiate_pre(&artifact.component)?;
        lock().insert(artifact.digest, pre.clone());
        Ok(pre)
    }

    /// Compiles a component (or finds it compiled), off the async threads.
    pub(super) async fn compile(
        &self,
        component: &str,
        bytes: Vec<u8>,
    ) -> Result<Artifact, WorkloadError> {
        let host = self.clone();
        tokio::task::spawn_blocking(move || host.0.artifacts.load(&bytes))
            .await
            .map_err(|e| WorkloadError::Internal(format!("compile task failed: {e}")))?
            .map_err(|source| WorkloadError::Artifact {
                component: component.to_string(),
                source,
            })
    }

    /// Composes `root` with the parts it links to, on the blocking pool:
    /// encoding a composition is CPU work of its own, and on a host with
    /// one CPU the runtime's thread would stop serving meanwhile.
    async fn compose(
        &self,
        parts: Arc<Vec<(String, Vec<u8>)>>,
        root: &str,
    ) -> Result<compose::Composition, WorkloadError> {
        let root = root.to_string();
        tokio::task::spawn_blocking(move || {
            let parts: Vec<Part<'_>> = parts
                .iter()
                .map(|(name, bytes)| Part { name, bytes })
                .collect();
            compose::compose(&parts, &root)
        })
        .await
        .map_err(|e| WorkloadError::Internal(format!("compose task failed: {e}")))?
        .map_err(WorkloadError::from)
    }

    /// Links and binds one compiled component of a workload.
    /// Prepares a host component plugin as the only component of
    /// `workload` (see `component_plugins`): how importers reach it, and
    /// what built-in plugins drive on it.
    pub(super) async fn prepare_plugin_component(
        &self,
        workload: &Workload,
        spec: &ComponentSpec,
        artifact: &Artifact,
    ) -> Result<(Option<Arc<LinkTarget>>, Vec<ServeGuard>), WorkloadError> {
        let id: Arc<str> = Arc::from(workload.id());
        let prepared = self
            .prepare_component(ComponentPlan {
                workload,
                id: &id,
                spec,
                artifact,
                volume_dirs: &HashMap::new(),
                links: Vec::new(),
                imported: true,
                inward: None,
                loopback: None,
                service: false,
            })
            .await?;
        Ok((prepared.link_target, prepared.served.guards))
    }

    async fn prepare_component(
        &self,
        plan: ComponentPlan<'_>,
    ) -> Result<PreparedComponent, WorkloadError> {
        let ComponentPlan {
            workload,
            id,
            spec,
            artifact,
            volume_dirs,
            links,
            imported,
            inward,
            loopback,
            service,
        } = plan;
        let engine = self.0.engine.wasmtime();
        let component_type = artifact.component.component_type();
        let imports: Vec<String> = component_type
            .imports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let exports: Vec<String> = component_type
            .exports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let linked = |import: &str| links.iter().any(|(interface, _)| interface == import);
        let resolution = self
            .0
            .plugins
            .resolve(
                imports.iter().map(String::as_str).filter(|i| !linked(i)),
                exports.iter().map(String::as_str),
            )
            .map_err(|unprovided| WorkloadError::UnsupportedImport {
                component: spec.name.clone(),
                interface: unprovided.0,
            })?;
        if inward.is_none() && imports.iter().any(|i| i == P3_HANDLER) {
            return Err(WorkloadError::Middleware {
                component: spec.name.clone(),
                message: format!(
                    "imports `{P3_HANDLER}` (it is a middleware), but the workload does not list it under `middleware:`"
                ),
            });
        }
        // Our own `wasi:sockets/tcp` (virtual loopback, capped real sockets)
        // replaces wasmtime-wasi's wherever a component may open sockets.
        let own_tcp = loopback.is_some() || workload.spec.allows_sockets();
        let pre = if links.is_empty() && !own_tcp {
            self.shared_pre(artifact)
        } else {
            let mut linker = self.0.linker.clone();
            if own_tcp {
                linker.allow_shadowing(true);
                crate::loopback::tcp::add_to_linker(&mut linker).map_err(|e| {
                    WorkloadError::Internal(format!("cannot link the loopback sockets: {e:#}"))
                })?;
            }
            links::add_to_linker(&mut linker, engine, &spec.name, &artifact.component, &links)?;
            linker.instantiate_pre(&artifact.component)
        }
        .map_err(|e| link_error(&spec.name, &e, |i| linked(i) || self.0.plugins.provides(i)))?;
        let instance_pre = pre.clone();
        // A service runs through `wasi:cli/run` only, never as an HTTP handler.
        let (pre, kind) = if service {
            (None, None)
        } else {
            match wasmtime_wasi_http::p3::bindings::ServicePre::new(pre.clone()) {
                Ok(p3) => (Some(ProxyPre::P3(p3)), Some(HttpKind::P3)),
                Err(_) => match wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre) {
                    Ok(p2) => (Some(ProxyPre::P2(p2)), Some(HttpKind::P2)),
                    Err(_) => (None, None),
                },
            }
        };

        let lr = &spec.local_resources;
        let limits = Limits::resolve(lr, &self.0.limits, self.0.max_memory_bytes);
        // A memory limit under what the component's memories start at would
        // fail every instantiation: say so once, at start.
        let initial_pages = artifact
            .component
            .resources_required()
            .and_then(|required| required.max_initial_memory_size);
        if let Some(pages) = initial_pages {
            let needed = pages.saturating_mul(64 * 1024);
            if needed > limits.memory_bytes as u64 {
                return Err(WorkloadError::Invalid(ManifestError {
                    path: format!("component `{}` memoryLimitMb", spec.name),
                    message: format!(
                        "its linear memory starts at {} KiB, over the limit of {} KiB",
                        needed / 1024,
                        limits.memory_bytes / 1024
                    ),
                }));
            }
        }
        let mut mounts = Vec::new();
        for mount in &lr.volume_mounts {
            let host_path =
                volume_dirs
                    .get(&mount.name)
                    .cloned()
                    .ok_or_else(|| WorkloadError::Volume {
                        component: spec.name.clone(),
                        message: format!("no volume named `{}`", mount.name),
                    })?;
            if !host_path.is_dir() {
                return Err(WorkloadError::Volume {
                    component: spec.name.clone(),
                    message: format!(
                        "volume `{}`: `{}` is not a directory",
                        mount.name,
                        host_path.display()
                    ),
                });
            }
            mounts.push(Mount {
                host_path,
                guest_path: mount.mount_path.clone(),
                writable: mount.writable(),
            });
        }
        let outbound = OutboundPolicy::new(&lr.allowed_hosts).map_err(|error| {
            WorkloadError::Invalid(ManifestError {
                path: format!("component `{}` allowedHosts", spec.name),
                message: error.to_string(),
            })
        })?;
        let sources = self.0.sources.load();
        let source_error = |e: crate::workload::MissingSource| {
            WorkloadError::Invalid(ManifestError {
                path: format!("component `{}`", spec.name),
                message: e.to_string(),
            })
        };
        let environment = sources.environment(&lr.environment).map_err(source_error)?;
        let plugin_error = |source: PluginError| WorkloadError::Plugin {
            component: spec.name.clone(),
            source,
        };
        let mut bindings = PluginBindings::default();
        for (plugin, imports) in &resolution.imports {
            let ctx = BindContext {
                workload: id,
                component: &spec.name,
                spec: &workload.spec,
                component_config: &lr.config,
                sources: &sources,
                imports,
            };
            bindings.insert(plugin.id(), plugin.bind(&ctx).map_err(plugin_error)?);
        }
        let is_middleware = inward.is_some();
        let metrics = self
            .0
            .accounting
            .then(|| self.0.metrics.component(id, &spec.name));
        let env = Arc::new(ComponentEnv {
            workload: id.clone(),
            component: Arc::from(spec.name.as_str()),
            environment,
            bindings,
            mounts,
            sockets: workload.spec.allows_sockets(),
            outbound: Arc::new(outbound),
            router: self.0.router.clone(),
            cpu_budget: limits.cpu_budget(metrics.clone()),
            limits: limits.clone(),
            inward: inward.map(|inward| inward as Arc<dyn crate::outbound::InMemoryTarget>),
            local: self
                .0
                .local
                .clone()
                .map(|local| local as Arc<dyn crate::outbound::LocalWorkloads>),
            loopback,
            metrics,
            outbound_slots: crate::outbound::OutboundSlots::new(
                &self.0.outbound,
                self.0.outbound_host.clone(),
                self.0.metrics.clone(),
            ),
            memory_budget: self.0.memory_budget.clone(),
            output: crate::guest_output::OutputBudget::new(
                id.clone(),
                Arc::from(spec.name.as_str()),
                Some(self.0.metrics.clone()),
            ),
        });

        let command = if service {
            Command::new(&instance_pre).map(|command| (command, env.clone()))
        } else {
            None
        };
        let link_target = imported.then(|| {
            Arc::new(LinkTarget::new(
                &spec.name,
                engine,
                &artifact.component,
                instance_pre.clone(),
                env.clone(),
            ))
        });
        let mut served = Served::default();
        let mut takes_upgrades = false;
        for (plugin, exports) in &resolution.exports {
            takes_upgrades |= plugin.upgrades().is_some();
            let ctx = BindContext {
                workload: id,
                component: &spec.name,
                spec: &workload.spec,
                component_config: &lr.config,
                sources: &sources,
                imports: exports,
            };
            let handle = ComponentHandle::new(
                instance_pre.clone(),
                Arc::new(crate::wasi::ComponentStores {
                    engine: engine.clone(),
                    env: env.clone(),
                }),
                (env.workload.clone(), env.component.clone()),
                env.limits.request_timeout,
                env.metrics.clone(),
                env.cpu_charge(),
            );
            if let Some(guard) = plugin.serve(&ctx, handle).map_err(plugin_error)? {
                served.guards.push(guard);
                // A WebSocket arrives as an HTTP request, which wakes a
                // parked workload; a subscription's message does not.
                if plugin.upgrades().is_none() {
                    served.driven_by.push(plugin.id());
                }
            }
        }

        let target = match (pre, kind) {
            (Some(pre), Some(kind)) => {
                let defaults = ReusePolicy::defaults_for(kind);
                let reuse = ReusePolicy {
                    max_requests_per_instance: spec
                        .max_invocations
                        .map(|n| n as usize)
                        .unwrap_or(defaults.max_requests_per_instance),
                    max_concurrent_per_instance: match kind {
                        // A P2 instance cannot take a second request while one runs.
                        HttpKind::P2 => 1,
                        HttpKind::P3 => spec
                            .max_concurrency
                            .map(|n| n as usize)
                            .unwrap_or(defaults.max_concurrent_per_instance),
                    },
                    idle_timeout: spec
                        .idle_timeout_ms
                        .map(Duration::from_millis)
                        .unwrap_or(defaults.idle_timeout),
                };
                let metrics = env.metrics.clone();
                let instances =
                    ComponentInstances::new(self.0.engine.wasmtime().clone(), pre, env, reuse);
                Some(HttpTarget::new(
                    Dispatcher::new(instances),
                    Arc::from(spec.name.as_str()),
                    metrics,
                    limits.request_timeout,
                    is_middleware,
                ))
            }
            _ => None,
        };
        let status = ComponentStatus {
            name: spec.name.clone(),
            digest: artifact.digest.to_string(),
            http: kind,
        };
        Ok(PreparedComponent {
            status,
            command,
            http: target,
            limits,
            served,
            takes_upgrades,
            link_target,
        })
    }
}

/// The imports of `artifact`, not among `linked`, that a host component
/// plugin exports: `(interface, plugin)`. Read off the component as it will
/// run (a composed root has its parts' imports).
fn plugin_links<'a>(
    plugins: &[super::component_plugins::LoadedPlugin],
    engine: &wasmtime::Engine,
    artifact: &Artifact,
    linked: impl Iterator<Item = &'a str> + Clone,
) -> Vec<(String, Arc<LinkTarget>)> {
    if plugins.is_empty() {
        return Vec::new();
    }
    artifact
        .component
        .component_type()
        .imports(engine)
        .filter(|(import, _)| !linked.clone().any(|l| l == *import))
        .filter_map(|(import, _)| {
            let plugin = plugins
                .iter()
                .find(|p| p.exports.iter().any(|e| e == import))?;
            Some((import.to_string(), plugin.target.clone()))
        })
        .collect()
}

/// What preparing one component of a workload needs.
struct ComponentPlan<'a> {
    workload: &'a Workload,
    id: &'a Arc<str>,
    spec: &'a ComponentSpec,
    artifact: &'a Artifact,
    volume_dirs: &'a HashMap<String, PathBuf>,
    /// Its imports other components satisfy: `(interface, exporter)`.
    links: Vec<(String, Arc<LinkTarget>)>,
    /// Whether other components import from it.
    imported: bool,
    /// For a middleware: the next layer inward.
    inward: Option<Arc<Inward>>,
    /// The workload's virtual loopback network, when it has a service.
    loopback: Option<Arc<VirtualNetwork>>,
    /// Whether this is the workload's service (run through `wasi:cli/run`).
    service: bool,
}

/// One component, compiled, linked and bound, not yet serving.
struct PreparedComponent {
    status: ComponentStatus,
    /// For the service: its `run` export and the environment it runs in.
    command: Option<(Command, Arc<ComponentEnv>)>,
    http: Option<HttpTarget>,
    limits: Limits,
    served: Served,
    /// Whether a plugin that takes connections out of HTTP (WebSockets)
    /// serves one of its exports.
    takes_upgrades: bool,
    /// How other components of the workload reach it, if any import from it.
    link_target: Option<Arc<LinkTarget>>,
}

impl PreparedComponent {
    /// Files the component (the `index`-th of its workload) with the
    /// others; returns its HTTP layer, if it serves one.
    fn record(
        self,
        index: usize,
        components: &mut Vec<(usize, ComponentStatus)>,
        served: &mut Served,
        targets: &mut [Option<Arc<LinkTarget>>],
    ) -> Option<HttpTarget> {
        served.add(self.served);
        components.push((index, self.status));
        targets[index] = self.link_target;
        self.http
    }
}

/// What plugins drive for a workload's components.
#[derive(Default)]
struct Served {
    guards: Vec<ServeGuard>,
    /// The ids of the plugins among them that deliver without an HTTP
    /// request.
    driven_by: Vec<&'static str>,
}

impl Served {
    fn add(&mut self, other: Served) {
        self.guards.extend(other.guards);
        for plugin in other.driven_by {
            if !self.driven_by.contains(&plugin) {
                self.driven_by.push(plugin);
            }
        }
    }
}

/// Turns wasmtime's link failure into a message naming the missing interface.
fn link_error(
    component: &str,
    error: &wasmtime::Error,
    provided: impl Fn(&str) -> bool,
) -> WorkloadError {
    let top = error.to_string();
    if top.contains("a matching implementation was not found in the linker")
        && let Some(interface) = top.split('`').nth(1)
    {
        if provided(interface) {
            let cause = error
                .chain()
                .skip(1)
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(": ");
            return WorkloadError::Link {
                component: component.to_string(),
                message: format!(
                    "its import `{interface}` does not match the host's definition of that interface: {cause}"
                ),
            };
        }
        return WorkloadError::UnsupportedImport {
            component: component.to_string(),
            interface: interface.to_string(),
        };
    }
    WorkloadError::Link {
        component: component.to_string(),
        message: format!("{error:#}"),
    }
}
