//! Host component plugins: components named in the host's config
//! ([`HostConfig::component_plugins`](super::HostConfig)) whose exported
//! interfaces every workload may import, the sandboxed way to ship a client
//! for Vault, an API and the like.
//!
//! Each plugin is prepared as a component of a workload of its own
//! (`host-plugins/NAME`: its image, environment, config, limits and
//! `allowedHosts`), and runs as one long-lived instance in a store of its
//! own that every importer calls through the workload linking machinery
//! ([`LinkTarget::shared`]): one call at a time, each within the plugin's
//! deadline; an instance that traps or misses its deadline is dropped and
//! a fresh one takes the next call. An import a component of the workload
//! itself exports is linked there; one a plugin exports goes to the
//! plugin before the built-in capabilities.
//!
//! Plugins load when the first workload starts (so a host starts even if
//! one cannot be fetched yet); a load that fails fails that start with the
//! plugin named, and the next start tries again.

use super::{Host, WorkloadError};
use crate::plugins::ServeGuard;
use crate::workload::links::LinkTarget;
use crate::workload::{ComponentSpec, Workload, WorkloadSpec, local_image_path, validate_workload};
use std::sync::Arc;
use wasmtime::component::types::ComponentItem;

/// The namespace plugin components run under (in logs and metrics).
pub(super) const NAMESPACE: &str = "host-plugins";

/// The host's component plugins, loaded on first use.
#[derive(Default)]
pub(super) struct ComponentPlugins {
    specs: Vec<ComponentSpec>,
    loaded: tokio::sync::OnceCell<Vec<LoadedPlugin>>,
}

impl ComponentPlugins {
    pub(super) fn new(specs: Vec<ComponentSpec>) -> Self {
        Self {
            specs,
            loaded: tokio::sync::OnceCell::new(),
        }
    }
}

/// One loaded plugin: the interfaces it exports and where calls go.
pub(super) struct LoadedPlugin {
    pub(super) exports: Vec<String>,
    pub(super) target: Arc<LinkTarget>,
    /// Whatever built-in plugins drive on it (kept while the host lives).
    _served: Vec<ServeGuard>,
}

impl Host {
    /// The loaded component plugins (none configured: none, at no cost).
    pub(super) async fn component_plugins(&self) -> Result<&[LoadedPlugin], WorkloadError> {
        let plugins = &self.0.component_plugins;
        if plugins.specs.is_empty() {
            return Ok(&[]);
        }
        let loaded = plugins
            .loaded
            .get_or_try_init(|| async {
                let mut loaded: Vec<LoadedPlugin> = Vec::new();
                for spec in &plugins.specs {
                    let plugin = self.load_component_plugin(spec).await.map_err(|e| {
                        WorkloadError::ComponentPlugin {
                            plugin: spec.name.clone(),
                            message: e.to_string(),
                        }
                    })?;
                    for interface in &plugin.exports {
                        if let Some(other) = loaded.iter().find(|p| p.exports.contains(interface)) {
                            return Err(WorkloadError::ComponentPlugin {
                                plugin: spec.name.clone(),
                                message: format!(
                                    "exports `{interface}`, which plugin `{}` exports too; an import must have one provider",
                                    other.target.name()
                                ),
                            });
                        }
                    }
                    tracing::info!(plugin = %spec.name, exports = ?plugin.exports, "host component plugin loaded");
                    loaded.push(plugin);
                }
                Ok(loaded)
            })
            .await?;
        Ok(loaded)
    }

    async fn load_component_plugin(
        &self,
        spec: &ComponentSpec,
    ) -> Result<LoadedPlugin, WorkloadError> {
        let artifact = match local_image_path(&spec.image) {
            Some(path) => self.load_local(spec, path).await?,
            None => {
                let bytes = self.read_component(spec).await?;
                self.compile(&spec.name, bytes).await?
            }
        };
        let workload = Workload {
            namespace: NAMESPACE.into(),
            name: spec.name.clone(),
            spec: WorkloadSpec {
                components: vec![spec.clone()],
                ..Default::default()
            },
        };
        validate_workload(&workload, "plugin")?;
        let engine = self.0.engine.wasmtime();
        let refuse = |message: String| WorkloadError::ComponentPlugin {
            plugin: spec.name.clone(),
            message,
        };
        let mut exports = Vec::new();
        for (name, item) in artifact.component.component_type().exports(engine) {
            let ComponentItem::ComponentInstance(instance) = item.ty else {
                continue;
            };
            // What the host itself serves (WASI, HTTP handlers) is never
            // taken from a plugin.
            if nimbus_model::links::host_provided(name) {
                continue;
            }
            if let Some((resource, _)) = instance
                .exports(engine)
                .find(|(_, item)| matches!(item.ty, ComponentItem::Resource(_)))
            {
                return Err(refuse(format!(
                    "exports resource `{resource}` in `{name}`; a host component plugin serves plain values only (its handles would not survive a restart, and would be shared by every workload)"
                )));
            }
            exports.push(name.to_string());
        }
        if exports.is_empty() {
            return Err(refuse(
                "exports no interface a workload could import".into(),
            ));
        }
        let (target, served) = self
            .prepare_plugin_component(&workload, spec, &artifact)
            .await?;
        let target = target
            .and_then(Arc::into_inner)
            .ok_or_else(|| WorkloadError::Internal("a plugin's link target is shared".into()))?;
        Ok(LoadedPlugin {
            exports,
            target: Arc::new(target.shared()),
            _served: served,
        })
    }
}
