//! The plugins a host carries, and the one place they are registered.
//!
//! Each capability is its own crate under `crates/capabilities/`, written
//! against the plugin API (`nimbus-plugin`) and generic over the store; this
//! module picks the store ([`StoreState`]), lists the capabilities in
//! [`builtin`], and indexes them by the interfaces they provide.
//!
//! | crate              | interfaces                                               |
//! |--------------------|----------------------------------------------------------|
//! | `nimbus-config`    | `wasi:config/store@0.2.0-rc.1`                           |
//! | `nimbus-keyvalue`  | `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft`        |
//! | `nimbus-blobstore` | `wasi:blobstore/{blobstore,container,types}@0.2.0-draft` |
//! | `nimbus-logging`   | `wasi:logging/logging@0.1.0-draft`                       |
//! | `nimbus-secrets`   | `wasmcloud:secrets/{store,reveal}@0.1.0-draft`           |
//! | `nimbus-messaging` | `wasmcloud:messaging/{consumer,handler}@0.2.0`           |
//! | `nimbus-otel`      | `wasi:otel/{types,tracing,logs,metrics}@0.2.0-rc.2`      |
//! | `nimbus-tls`       | `wasi:tls/types@0.2.0-draft` (experimental, opt-in)      |
//! | `nimbus-postgres`  | `wasmcloud:postgres/{types,query,prepared}@{0.1.1-draft,0.2.0}` |
//! | `nimbus-websocket` | `nimbus:websocket/{connections,handler}@0.1.0` (WebSocket upgrades) |
//! | `nimbus-webgpu`    | `wasi:webgpu/webgpu@0.3.0-rc.2` (experimental, granted per workload) |
//! | `nimbus-nats`      | `wasmcloud:nats/{core,jetstream,kv}@0.1.0` and its handlers (P3) |
//!
//! Adding a capability is one new crate plus one line in [`builtin`];
//! docs/ARCHITECTURE.md walks through the key-value plugin.

use crate::wasi::StoreState;
use nimbus_plugin::upgrade::ConnectionUpgrades;
pub use nimbus_plugin::{
    BindContext, Binding, ComponentHandle, NatsConnections, NewStore, Plugin, PluginBindings,
    PluginCalls, PluginDefaults, PluginError, PluginState, ServeGuard, timeout_setting,
};
use std::collections::HashMap;
use std::sync::Arc;

// The capabilities, at the paths they had before they became crates.
pub use nimbus_blobstore as blobstore;
pub use nimbus_config as config;
pub use nimbus_keyvalue as keyvalue;
pub use nimbus_logging as logging;
pub use nimbus_messaging as messaging;
#[cfg(feature = "nats")]
pub use nimbus_nats as nats;
pub use nimbus_otel as otel;
#[cfg(feature = "postgres")]
pub use nimbus_postgres as postgres;
pub use nimbus_secrets as secrets;
pub use nimbus_tls as tls;
#[cfg(feature = "webgpu")]
pub use nimbus_webgpu as webgpu;
pub use nimbus_websocket as websocket;

/// The plugins every host carries. The one registration point. Guest
/// telemetry (`wasi:otel`) goes to `telemetry`.
pub(crate) fn builtin(
    defaults: &PluginDefaults,
    telemetry: &otel::GuestTelemetry,
) -> Vec<Arc<dyn Plugin<StoreState>>> {
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
        Arc::new(otel::OtelPlugin::new(telemetry.clone())),
        Arc::new(tls::TlsPlugin),
        #[cfg(feature = "postgres")]
        Arc::new(postgres::PostgresPlugin::new(
            defaults.get("postgres"),
            defaults.secret("postgres", "url"),
        )),
        Arc::new(websocket::WebSocketPlugin::new(defaults.get("websocket"))),
        #[cfg(feature = "nats")]
        Arc::new(nats::NatsPlugin::new(nats_defaults(defaults))),
        #[cfg(feature = "webgpu")]
        Arc::new(webgpu::WebGpuPlugin),
    ]
}

/// `wasmcloud:nats`'s defaults: its own, or else the host's messaging NATS
/// server as the one workloads use when they name none.
#[cfg(feature = "nats")]
fn nats_defaults(defaults: &PluginDefaults) -> std::collections::BTreeMap<String, String> {
    let mut own = defaults.get("nats");
    if !own.contains_key("servers")
        && let Some(url) = defaults.get("messaging").get("url")
    {
        own.insert("servers".into(), url.clone());
    }
    own
}

/// An import no plugin (and not the host) provides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no plugin provides `{0}`")]
pub(crate) struct UnprovidedImport(pub(crate) String);

/// All plugins of a host, indexed by the interfaces they provide.
pub(crate) struct PluginRegistry {
    plugins: Vec<Arc<dyn Plugin<StoreState>>>,
    by_interface: HashMap<&'static str, usize>,
    by_export: HashMap<&'static str, usize>,
    /// The plugins that take connections out of HTTP.
    upgrades: Vec<Arc<dyn ConnectionUpgrades>>,
}

/// How a component's imports and exports fall to plugins.
pub(crate) struct Resolution {
    /// Each plugin the component needs, with the interfaces it imports from it.
    pub(crate) imports: Vec<(Arc<dyn Plugin<StoreState>>, Vec<String>)>,
    /// Each plugin that drives one of the component's exports.
    pub(crate) exports: Vec<(Arc<dyn Plugin<StoreState>>, Vec<String>)>,
}

impl PluginRegistry {
    pub(crate) fn new(plugins: Vec<Arc<dyn Plugin<StoreState>>>) -> Self {
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
        let upgrades = plugins
            .iter()
            .filter_map(|plugin| plugin.upgrades())
            .collect();
        Self {
            plugins,
            by_interface,
            by_export,
            upgrades,
        }
    }

    /// Every plugin, in registration order (the linker takes them all).
    pub(crate) fn all(&self) -> impl Iterator<Item = &dyn Plugin<StoreState>> {
        self.plugins.iter().map(|plugin| plugin.as_ref())
    }

    /// Sorts a component's imports: host-provided, plugin-provided, or
    /// unknown (the error names the first unknown interface).
    pub(crate) fn resolve<'a>(
        &self,
        imports: impl IntoIterator<Item = &'a str>,
        exports: impl IntoIterator<Item = &'a str>,
    ) -> Result<Resolution, UnprovidedImport> {
        let mut needed: Vec<(usize, Vec<String>)> = Vec::new();
        for import in imports {
            if nimbus_model::links::host_provided(import) {
                continue;
            }
            let Some(&index) = self.by_interface.get(import) else {
                return Err(UnprovidedImport(import.to_string()));
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

    /// The plugin that takes `protocol` upgrades (the `Upgrade` header's
    /// token) for `workload`, if one does.
    pub(crate) fn upgrade_for(
        &self,
        protocol: &str,
        workload: &str,
    ) -> Option<&Arc<dyn ConnectionUpgrades>> {
        self.upgrades.iter().find(|upgrades| {
            upgrades.protocol().eq_ignore_ascii_case(protocol) && upgrades.serves(workload)
        })
    }

    /// Closes the connections plugins took out of HTTP, for a stopping
    /// ingress; resolves once they have ended.
    pub(crate) async fn drain_upgrades(&self) {
        for upgrades in &self.upgrades {
            upgrades.drain().await;
        }
    }

    /// The protocol a plugin takes out of HTTP for `workload`, if one does.
    pub(crate) fn upgrade_protocol_of(&self, workload: &str) -> Option<&'static str> {
        self.upgrades
            .iter()
            .find(|upgrades| upgrades.serves(workload))
            .map(|upgrades| upgrades.protocol())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_fall_to_the_host_a_plugin_or_an_error_naming_them() {
        let registry = PluginRegistry::new(builtin(
            &PluginDefaults::default(),
            &otel::GuestTelemetry::default(),
        ));
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
        assert_eq!(
            unknown.map(|e| e.0).as_deref(),
            Some("acme:thing/api@1.0.0")
        );
    }
}
