//! `wasi:config/store@0.2.0-rc.1`: the configuration a component sees.
//!
//! Values come from the component's `localResources.config` and from the
//! workload's `wasi:config` host interface entry (`config`, `configFrom`,
//! `secretFrom`), resolved once when the workload starts. Secret values stay
//! [`Secret`]s in the host and are exposed only when the guest asks for them.

use nimbus_plugin::PluginState;
use std::collections::BTreeMap;
use std::sync::Arc;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasi:config/imports",
        imports: { default: trappable },
    });
}

use bindings::wasi::config::store;

pub use nimbus_model::sources::ConfigValue;

/// Serves `wasi:config/store` from the bound component's resolved values.
pub struct ConfigPlugin;

const ID: &str = "config";

impl<T: PluginState> nimbus_plugin::Plugin<T> for ConfigPlugin {
    fn id(&self) -> &'static str {
        ID
    }

    fn interfaces(&self) -> &'static [&'static str] {
        &["wasi:config/store@0.2.0-rc.1"]
    }

    fn add_to_linker(&self, linker: &mut wasmtime::component::Linker<T>) -> wasmtime::Result<()> {
        store::add_to_linker::<T, HasConfig>(linker, |state| ConfigView {
            values: state.bindings().get::<ComponentValues>(ID),
        })
    }

    fn bind(
        &self,
        ctx: &nimbus_plugin::BindContext<'_>,
    ) -> Result<nimbus_plugin::Binding, nimbus_plugin::PluginError> {
        let values = ctx
            .sources
            .wasi_config(ctx.spec.config_interface(), ctx.component_config)
            .map_err(|e| nimbus_plugin::PluginError::new(ID, e.to_string()))?;
        Ok(Arc::new(ComponentValues(values)))
    }
}

/// One component's resolved configuration.
#[derive(Debug)]
struct ComponentValues(BTreeMap<String, ConfigValue>);

struct ConfigView<'a> {
    values: Option<&'a ComponentValues>,
}

impl store::Host for ConfigView<'_> {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, store::Error>> {
        Ok(Ok(self
            .values
            .and_then(|v| v.0.get(&key))
            .map(ConfigValue::reveal)))
    }

    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, store::Error>> {
        Ok(Ok(self
            .values
            .map(|v| {
                v.0.iter()
                    .map(|(key, value)| (key.clone(), value.reveal()))
                    .collect()
            })
            .unwrap_or_default()))
    }
}

struct HasConfig;

impl wasmtime::component::HasData for HasConfig {
    type Data<'a> = ConfigView<'a>;
}
