//! Named config and secret sources, and resolving a workload's references
//! to them (`configFrom`, `secretFrom`) into values.
//!
//! The host holds one [`NamedSources`] set (the dev loop fills it from the
//! project config; it can be replaced while the host runs). References are
//! resolved when a workload starts, so a missing source is a start error that
//! names it, never a silent empty value.

use crate::secret::Secret;
use crate::spec::{ConfigLayer, HostInterface, SourceRef};
use std::collections::BTreeMap;

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
    pub fn reveal(&self) -> String {
        match self {
            Self::Plain(value) => value.clone(),
            Self::Secret(secret) => secret.expose().to_owned(),
        }
    }
}

/// Named config sources and named secret sources.
#[derive(Debug, Clone, Default)]
pub struct NamedSources {
    /// Config sources by name: key → value.
    pub configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Secret sources by name: key → secret value.
    pub secrets: BTreeMap<String, BTreeMap<String, Secret>>,
}

/// A reference to a source that does not exist.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind} `{name}` is not defined (known: {known})")]
pub struct MissingSource {
    /// `config source` or `secret source`.
    pub kind: &'static str,
    /// The name referred to.
    pub name: String,
    /// The names that do exist.
    pub known: String,
}

impl NamedSources {
    fn config(&self, reference: &SourceRef) -> Result<&BTreeMap<String, String>, MissingSource> {
        self.configs
            .get(&reference.name)
            .ok_or_else(|| MissingSource {
                kind: "config source",
                name: reference.name.clone(),
                known: known(self.configs.keys()),
            })
    }

    fn secret(&self, reference: &SourceRef) -> Result<&BTreeMap<String, Secret>, MissingSource> {
        self.secrets
            .get(&reference.name)
            .ok_or_else(|| MissingSource {
                kind: "secret source",
                name: reference.name.clone(),
                known: known(self.secrets.keys()),
            })
    }

    /// `config`, then every `configFrom` source, then every `secretFrom`
    /// source, later keys winning: the one resolution rule for a layer,
    /// whether it feeds an environment or `wasi:config`.
    fn layer_values(
        &self,
        config: &BTreeMap<String, String>,
        config_from: &[SourceRef],
        secret_from: &[SourceRef],
    ) -> Result<BTreeMap<String, ConfigValue>, MissingSource> {
        let mut values: BTreeMap<String, ConfigValue> = self
            .plain_layer(config, config_from)?
            .into_iter()
            .map(|(k, v)| (k, ConfigValue::Plain(v)))
            .collect();
        for (key, secret) in self.secret_layer(secret_from)? {
            values.insert(key, ConfigValue::Secret(secret));
        }
        Ok(values)
    }

    /// `config` then every `configFrom` source, later keys winning: plain
    /// settings (a plugin's backend settings, say).
    pub fn plain_layer(
        &self,
        config: &BTreeMap<String, String>,
        config_from: &[SourceRef],
    ) -> Result<BTreeMap<String, String>, MissingSource> {
        let mut values = config.clone();
        for reference in config_from {
            values.extend(self.config(reference)?.clone());
        }
        Ok(values)
    }

    /// Every key of the `secretFrom` sources, later sources winning.
    pub fn secret_layer(
        &self,
        secret_from: &[SourceRef],
    ) -> Result<BTreeMap<String, Secret>, MissingSource> {
        let mut values = BTreeMap::new();
        for reference in secret_from {
            values.extend(self.secret(reference)?.clone());
        }
        Ok(values)
    }

    /// Checks that every source a layer names exists, without resolving
    /// anything (what `nimbus config validate` asks).
    pub fn check_layer(&self, layer: &ConfigLayer) -> Result<(), MissingSource> {
        self.check_refs(&layer.config_from, &layer.secret_from)
    }

    /// Checks that every source a host interface names exists.
    pub fn check_interface(&self, interface: &HostInterface) -> Result<(), MissingSource> {
        self.check_refs(&interface.config_from, &interface.secret_from)
    }

    fn check_refs(
        &self,
        configs: &[SourceRef],
        secrets: &[SourceRef],
    ) -> Result<(), MissingSource> {
        for reference in configs {
            self.config(reference)?;
        }
        for reference in secrets {
            self.secret(reference)?;
        }
        Ok(())
    }

    /// A component's environment variables, resolved from its layer.
    /// Secrets become plain strings here because WASI's environment is
    /// strings; they get here only when the workload lists them explicitly.
    pub fn environment(&self, layer: &ConfigLayer) -> Result<Vec<(String, String)>, MissingSource> {
        Ok(self
            .layer_values(&layer.config, &layer.config_from, &layer.secret_from)?
            .into_iter()
            .map(|(key, value)| (key, value.reveal()))
            .collect())
    }

    /// What `wasi:config/store` serves a component: the workload's
    /// `wasi:config` host interface layer (`config`, `configFrom`,
    /// `secretFrom`), overridden by the component's own `config`.
    pub fn wasi_config(
        &self,
        interface: Option<&HostInterface>,
        component_config: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, ConfigValue>, MissingSource> {
        let mut values = match interface {
            Some(i) => self.layer_values(&i.config, &i.config_from, &i.secret_from)?,
            None => BTreeMap::new(),
        };
        for (key, value) in component_config {
            values.insert(key.clone(), ConfigValue::Plain(value.clone()));
        }
        Ok(values)
    }
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> NamedSources {
        NamedSources {
            configs: [(
                "app".to_string(),
                [("MODE".to_string(), "fast".to_string())].into(),
            )]
            .into(),
            secrets: [(
                "db".to_string(),
                [("DB_PASSWORD".to_string(), Secret::new("s3cr3t-value"))].into(),
            )]
            .into(),
        }
    }

    fn reference(name: &str) -> SourceRef {
        SourceRef { name: name.into() }
    }

    #[test]
    fn environment_layers_in_order_and_secrets_only_when_listed() {
        let layer = ConfigLayer {
            config: [("MODE".to_string(), "slow".to_string())].into(),
            config_from: vec![reference("app")],
            secret_from: vec![],
        };
        let env = sources().environment(&layer).unwrap();
        assert_eq!(env, vec![("MODE".into(), "fast".into())]);
        let with_secret = ConfigLayer {
            secret_from: vec![reference("db")],
            ..layer
        };
        let env = sources().environment(&with_secret).unwrap();
        assert!(env.contains(&("DB_PASSWORD".into(), "s3cr3t-value".into())));
    }

    #[test]
    fn a_missing_source_is_named() {
        let layer = ConfigLayer {
            config_from: vec![reference("nope")],
            ..Default::default()
        };
        let err = sources().environment(&layer).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config source `nope` is not defined (known: app)"
        );
    }

    #[test]
    fn wasi_config_keeps_secrets_typed_and_component_config_wins() {
        let interface = HostInterface {
            namespace: "wasi".into(),
            package: "config".into(),
            config: [("MODE".to_string(), "iface".to_string())].into(),
            secret_from: vec![reference("db")],
            ..Default::default()
        };
        let component = [("MODE".to_string(), "component".to_string())].into();
        let values = sources().wasi_config(Some(&interface), &component).unwrap();
        assert_eq!(values["MODE"], ConfigValue::Plain("component".into()));
        assert!(matches!(values["DB_PASSWORD"], ConfigValue::Secret(_)));
        assert!(!format!("{values:?}").contains("s3cr3t-value"));
    }
}
