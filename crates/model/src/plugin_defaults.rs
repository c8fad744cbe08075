//! Host-level settings for host plugins, by plugin id: what a project
//! config's `dev` section and `nimbus serve`'s flags produce, and what a
//! workload's host interface entry falls back to.

use std::collections::BTreeMap;

/// Host-level defaults per plugin id (`keyvalue` → `backend: redis`, `url: …`),
/// used where a workload's host interface entry says nothing.
#[derive(Debug, Clone, Default)]
pub struct PluginDefaults(pub BTreeMap<String, BTreeMap<String, String>>);

impl PluginDefaults {
    /// Sets `key` of plugin `plugin`.
    pub fn set(&mut self, plugin: &str, key: &str, value: impl Into<String>) -> &mut Self {
        self.0
            .entry(plugin.to_string())
            .or_default()
            .insert(key.to_string(), value.into());
        self
    }

    /// The defaults of `plugin` (empty when none).
    pub fn get(&self, plugin: &str) -> BTreeMap<String, String> {
        self.0.get(plugin).cloned().unwrap_or_default()
    }
}
