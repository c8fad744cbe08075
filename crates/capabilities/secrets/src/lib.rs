//! `wasmcloud:secrets/{store,reveal}@0.1.0-draft`: secrets a component may
//! ask for by key.
//!
//! A workload grants secrets through its `wasmcloud:secrets` host interface
//! entry (`secretFrom: [{name: SOURCE}]`, the dev loop's `secrets:` sources).
//! `store.get` hands the guest an opaque handle; only `reveal` turns it into
//! the value, and the host keeps values as [`Secret`]s (never logged, never
//! in Debug output) until that moment. An unknown key is `not-found`, and
//! the error never echoes a value.

use nimbus_model::secret::Secret;
use nimbus_plugin::PluginState;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasmcloud:secrets/imports",
        imports: { default: trappable },
        with: { "wasmcloud:secrets/store.secret": super::SecretHandle },
    });
}

use bindings::wasmcloud::secrets::{reveal, store};

const ID: &str = "secrets";

/// A secret the guest holds a handle to.
pub struct SecretHandle(Secret);

/// Serves the secrets a workload lists.
pub struct SecretsPlugin;

impl<T: PluginState> nimbus_plugin::Plugin<T> for SecretsPlugin {
    fn id(&self) -> &'static str {
        ID
    }

    fn interfaces(&self) -> &'static [&'static str] {
        &[
            "wasmcloud:secrets/store@0.1.0-draft",
            "wasmcloud:secrets/reveal@0.1.0-draft",
        ]
    }

    fn add_to_linker(&self, linker: &mut wasmtime::component::Linker<T>) -> wasmtime::Result<()> {
        fn view<T: PluginState>(state: &mut T) -> SecretsView<'_> {
            let (table, bindings, _) = state.plugin_parts();
            SecretsView {
                table,
                granted: bindings.get::<Granted>(ID),
            }
        }
        store::add_to_linker::<T, HasSecrets>(linker, view::<T>)?;
        reveal::add_to_linker::<T, HasSecrets>(linker, view::<T>)
    }

    fn bind(
        &self,
        ctx: &nimbus_plugin::BindContext<'_>,
    ) -> Result<nimbus_plugin::Binding, nimbus_plugin::PluginError> {
        let granted = ctx.interface_secrets("wasmcloud", "secrets")?;
        Ok(Arc::new(Granted(granted)))
    }
}

/// The secrets one component was granted.
struct Granted(BTreeMap<String, Secret>);

struct SecretsView<'a> {
    table: &'a mut ResourceTable,
    granted: Option<&'a Granted>,
}

impl store::Host for SecretsView<'_> {
    fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Resource<SecretHandle>, store::SecretsError>> {
        let Some(secret) = self.granted.and_then(|g| g.0.get(&key)) else {
            return Ok(Err(store::SecretsError::NotFound));
        };
        Ok(Ok(self.table.push(SecretHandle(secret.clone()))?))
    }
}

impl store::HostSecret for SecretsView<'_> {
    fn drop(&mut self, handle: Resource<SecretHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl reveal::Host for SecretsView<'_> {
    fn reveal(&mut self, handle: Resource<SecretHandle>) -> wasmtime::Result<store::SecretValue> {
        let secret = self.table.get(&handle)?;
        Ok(store::SecretValue::String(secret.0.expose().to_owned()))
    }
}

struct HasSecrets;

impl wasmtime::component::HasData for HasSecrets {
    type Data<'a> = SecretsView<'a>;
}
