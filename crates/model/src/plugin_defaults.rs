//! Host-level settings for host plugins, by plugin id: what a project
//! config's `dev` section and `nimbus serve`'s flags produce, and what a
//! workload's host interface entry falls back to.

use crate::secret::Secret;
use std::collections::BTreeMap;

/// Host-level defaults per plugin id (`keyvalue` → `backend: redis`, `url: …`),
/// used where a workload's host interface entry says nothing.
#[derive(Debug, Clone, Default)]
pub struct PluginDefaults {
    /// Plain settings by plugin id.
    pub settings: BTreeMap<String, BTreeMap<String, String>>,
    /// Settings that are credentials (a database URL with its password),
    /// by plugin id: redacted wherever the defaults are printed.
    pub secrets: BTreeMap<String, BTreeMap<String, Secret>>,
}

impl PluginDefaults {
    /// Sets `key` of plugin `plugin`.
    pub fn set(&mut self, plugin: &str, key: &str, value: impl Into<String>) -> &mut Self {
        self.settings
            .entry(plugin.to_string())
            .or_default()
            .insert(key.to_string(), value.into());
        self
    }

    /// The defaults of `plugin` (empty when none).
    pub fn get(&self, plugin: &str) -> BTreeMap<String, String> {
        self.settings.get(plugin).cloned().unwrap_or_default()
    }

    /// Sets the credential `key` of plugin `plugin`.
    pub fn set_secret(&mut self, plugin: &str, key: &str, value: Secret) -> &mut Self {
        self.secrets
            .entry(plugin.to_string())
            .or_default()
            .insert(key.to_string(), value);
        self
    }

    /// The credential `key` of plugin `plugin`, if the host has one.
    pub fn secret(&self, plugin: &str, key: &str) -> Option<Secret> {
        self.secrets.get(plugin)?.get(key).cloned()
    }
}
