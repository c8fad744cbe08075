//! `wasmcloud:secrets/{store,reveal}`: secrets a component may ask for by
//! key, at `0.1.0-draft` (synchronous) and at `2.1.0` (the same calls as
//! component-model `async` functions, wasmCloud 2's revision).
//!
//! A workload grants secrets through its `wasmcloud:secrets` host interface
//! entry (`secretFrom: [{name: SOURCE}]`, the dev loop's `secrets:` sources).
//! `store.get` hands the guest an opaque handle; only `reveal` turns it into
//! the value, and the host keeps values as [`Secret`]s (never logged, never
//! in Debug output) until that moment. An unknown key is `not-found`, and
//! the error never echoes a value. Both versions serve the same grant.
//!
//! `2.1.0` also has `secret`, one secret per labelled import
//! (`import db-password: wasmcloud:secrets/secret;`); wasmtime 48 has no
//! labelled (`implements`) imports, so a component that imports it is
//! refused at start as importing what the host does not provide.

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

/// `2.1.0`: `store` and `reveal` only (see the module docs on `secret`).
mod bindings_v2 {
    wasmtime::component::bindgen!({
        path: "wit-2.1.0",
        inline: "
            package nimbus:secrets-host;
            world host {
                import wasmcloud:secrets/store@2.1.0;
                import wasmcloud:secrets/reveal@2.1.0;
            }
        ",
        world: "nimbus:secrets-host/host",
        imports: {
            "wasmcloud:secrets/store.get": store | trappable,
            "wasmcloud:secrets/reveal.reveal": store | trappable,
            default: trappable,
        },
        with: { "wasmcloud:secrets/store.secret": super::SecretHandle },
    });
}

use bindings::wasmcloud::secrets::{reveal, store};
use bindings_v2::wasmcloud::secrets::{reveal as reveal_v2, store as store_v2};
use wasmtime::component::Accessor;

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
            "wasmcloud:secrets/store@2.1.0",
            "wasmcloud:secrets/reveal@2.1.0",
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
        reveal::add_to_linker::<T, HasSecrets>(linker, view::<T>)?;
        store_v2::add_to_linker::<T, HasSecrets>(linker, view::<T>)?;
        reveal_v2::add_to_linker::<T, HasSecrets>(linker, view::<T>)
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

impl SecretsView<'_> {
    /// A handle to the granted secret `key`, if there is one.
    fn handle(&mut self, key: &str) -> wasmtime::Result<Option<Resource<SecretHandle>>> {
        let Some(secret) = self.granted.and_then(|g| g.0.get(key)) else {
            return Ok(None);
        };
        Ok(Some(self.table.push(SecretHandle(secret.clone()))?))
    }

    fn value(&mut self, handle: &Resource<SecretHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(handle)?.0.expose().to_owned())
    }
}

impl store::Host for SecretsView<'_> {
    fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Resource<SecretHandle>, store::SecretsError>> {
        Ok(self.handle(&key)?.ok_or(store::SecretsError::NotFound))
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
        Ok(store::SecretValue::String(self.value(&handle)?))
    }
}

// 2.1.0: the same answers, as `async` functions (they complete at once:
// the grant is in the store).
impl store_v2::Host for SecretsView<'_> {}

impl store_v2::HostSecret for SecretsView<'_> {
    fn drop(&mut self, handle: Resource<SecretHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl<T> store_v2::HostWithStore<T> for HasSecrets {
    async fn get(
        accessor: &Accessor<T, Self>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<SecretHandle>, store_v2::SecretsError>> {
        accessor.with(|mut access| {
            Ok(access
                .get()
                .handle(&key)?
                .ok_or(store_v2::SecretsError::NotFound))
        })
    }
}

impl reveal_v2::Host for SecretsView<'_> {}

impl<T> reveal_v2::HostWithStore<T> for HasSecrets {
    async fn reveal(
        accessor: &Accessor<T, Self>,
        handle: Resource<SecretHandle>,
    ) -> wasmtime::Result<store_v2::SecretValue> {
        accessor.with(|mut access| Ok(store_v2::SecretValue::String(access.get().value(&handle)?)))
    }
}

struct HasSecrets;

impl wasmtime::component::HasData for HasSecrets {
    type Data<'a> = SecretsView<'a>;
}
