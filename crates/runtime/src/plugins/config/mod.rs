//! `wasi:config/store@0.2.0-rc.1`: the configuration a component sees.
//!
//! Values come from the component's `localResources.config` and from the
//! workload's `wasi:config` host interface entry (`config`, `configFrom`,
//! `secretFrom`), resolved once when the workload starts. Secret values stay
//! [`Secret`]s in the host and are exposed only when the guest asks for them.

use crate::secret::Secret;
use std::collections::BTreeMap;
use std::sync::Arc;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/config",
        world: "wasi:config/imports",
        imports: { default: trappable },
    });
}

use bindings::wasi::config::store;

/// One configuration value as the host holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    /// A plain value.
    Plain(String),
    /// A secret value: redacted everywhere but in the guest's hands.
    Secret(Secret),
}

impl ConfigValue {
    /// The value as the guest receives it.
    pub(crate) fn reveal(&self) -> String {
        match self {
            Self::Plain(value) => value.clone(),
            Self::Secret(secret) => secret.expose().to_owned(),
        }
    }
}

/// The resolved configuration of one component, shared by its stores.
pub type ComponentConfig = Arc<BTreeMap<String, ConfigValue>>;

/// The view of a store the generated bindings need.
pub struct ConfigView<'a> {
    values: &'a BTreeMap<String, ConfigValue>,
}

impl<'a> ConfigView<'a> {
    /// A view over `values`.
    pub fn new(values: &'a BTreeMap<String, ConfigValue>) -> Self {
        Self { values }
    }
}

impl store::Host for ConfigView<'_> {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, store::Error>> {
        Ok(Ok(self.values.get(&key).map(ConfigValue::reveal)))
    }

    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, store::Error>> {
        Ok(Ok(self
            .values
            .iter()
            .map(|(key, value)| (key.clone(), value.reveal()))
            .collect()))
    }
}

struct HasConfig;

impl wasmtime::component::HasData for HasConfig {
    type Data<'a> = ConfigView<'a>;
}

/// Adds `wasi:config/store` to `linker`, reading values through `view`.
pub fn add_to_linker<T: 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> ConfigView<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, HasConfig>(linker, view)
}
