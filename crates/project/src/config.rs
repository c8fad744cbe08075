//! The project config file, `.nimbus/config.yaml`, merged over the user's
//! `~/.config/nimbus/config.yaml`.
//!
//! A project that only has `.wash/config.yaml` (a wasmCloud v2 project) is
//! read from there, and the keys wash writes that Nimbus has no use for
//! (`version`, `wit`, TLS paths, other languages' build sections) are
//! accepted and ignored, so such projects run unchanged. Any other unknown key
//! is an error naming the key, the file and the line.
//!
//! Merging is per key: a value the project sets replaces the user's; maps
//! (`build.env`, `configs`, `secrets`, `workload.config`) merge key by key.

use nimbus_model::{ConfigLayer, HostInterface};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a project keeps its config, in the order they are looked for.
pub const PROJECT_CONFIG_PATHS: [&str; 4] = [
    ".nimbus/config.yaml",
    ".nimbus/config.yml",
    ".wash/config.yaml",
    ".wash/config.yml",
];

/// The whole config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// Accepted for wash compatibility; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// How to build the component.
    #[serde(default, skip_serializing_if = "BuildConfig::is_empty")]
    pub build: BuildConfig,
    /// How `nimbus dev` serves it.
    #[serde(default, skip_serializing_if = "DevConfig::is_empty")]
    pub dev: DevConfig,
    /// The workload's settings, in wasmCloud's `localResources` shape.
    #[serde(default, skip_serializing_if = "WorkloadSection::is_empty")]
    pub workload: WorkloadSection,
    /// Named config sources.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "serde_yaml_ng::with::singleton_map_recursive"
    )]
    pub configs: BTreeMap<String, Source>,
    /// Named secret sources.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "serde_yaml_ng::with::singleton_map_recursive"
    )]
    pub secrets: BTreeMap<String, Source>,
    /// Accepted for wash compatibility (WIT dependency settings); not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wit: Option<serde_yaml_ng::Value>,
}

/// `build:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    /// A shell command that builds the component (run with `sh -c` in the
    /// project directory). Default: cargo for `wasm32-wasip2`, release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Extra environment for the build command.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Where the built component is, relative to the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_path: Option<PathBuf>,
    /// wash's Rust build settings, used when `command` is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rust: Option<RustBuild>,
    /// wash's extra toolchain arguments (appended to the cargo command).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_args: Vec<String>,
    /// Accepted for wash compatibility; Nimbus builds these with `command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tinygo: Option<serde_yaml_ng::Value>,
    /// Accepted for wash compatibility; Nimbus builds these with `command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typescript: Option<serde_yaml_ng::Value>,
}

impl BuildConfig {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// wash's `build.rust` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RustBuild {
    /// A whole command line replacing the cargo invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_command: Option<Vec<String>>,
    /// Target triple (default `wasm32-wasip2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Extra cargo flags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cargo_flags: Vec<String>,
    /// Release profile (wash's default is false; so is this one here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<bool>,
    /// Cargo features.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// `--no-default-features`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_default_features: bool,
}

/// `dev:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevConfig {
    /// Listen address (default `127.0.0.1:8000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Extra components of the workload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<DevComponent>,
    /// HTTP middleware around the handler, outermost first: names of
    /// `components`, or `self` for the project's own component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub middleware: Vec<String>,
    /// Host directories mounted into the components.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<DevVolume>,
    /// Host interfaces of the workload, in wasmCloud's shape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_interfaces: Vec<HostInterface>,
    /// Key-value backend: `memory`, a filesystem path, `redis://…`, `nats://…`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "backend::keyvalue"
    )]
    pub keyvalue: Option<Backend>,
    /// Blobstore backend: `memory`, a filesystem path, `nats://…`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "backend::blobstore"
    )]
    pub blobstore: Option<Backend>,
    /// Messaging backend: `memory`, `nats://…`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "backend::messaging"
    )]
    pub messaging: Option<Backend>,
    /// wash's `wasi_config`: merged into `workload.config`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub wasi_config: BTreeMap<String, String>,
    /// Accepted for wash compatibility; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<bool>,
    /// Accepted for wash compatibility; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_path: Option<PathBuf>,
    /// Accepted for wash compatibility; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert_path: Option<PathBuf>,
    /// Accepted for wash compatibility; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key_path: Option<PathBuf>,
    /// Accepted for wash compatibility; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_path: Option<PathBuf>,
    /// Accepted for wash compatibility; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasi_webgpu: Option<bool>,
}

impl DevConfig {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Where a plugin keeps its data, written as one string: `memory`, a
/// directory path, `redis://…` or `nats://…` (which ones a plugin accepts is
/// the model's backend table, [`nimbus_model::backends`]).
pub use nimbus_model::backends::BackendChoice as Backend;

impl DevConfig {
    /// The host-level plugin defaults these backend selections make, with
    /// directories resolved against the project directory `base`.
    pub fn plugin_defaults(&self, base: &Path) -> nimbus_model::PluginDefaults {
        use nimbus_model::backends::{BLOBSTORE, KEYVALUE, MESSAGING};
        let mut defaults = nimbus_model::PluginDefaults::default();
        for (backends, choice) in [
            (&KEYVALUE, &self.keyvalue),
            (&BLOBSTORE, &self.blobstore),
            (&MESSAGING, &self.messaging),
        ] {
            if let Some(choice) = choice {
                defaults.0.insert(
                    backends.capability.to_string(),
                    backends.settings_for(choice, base),
                );
            }
        }
        defaults
    }
}

mod backend {
    use super::Backend;
    use nimbus_model::backends::{BLOBSTORE, CapabilityBackends, KEYVALUE, MESSAGING};
    use serde::{Deserialize, Deserializer};

    fn parse<'de, D: Deserializer<'de>>(
        deserializer: D,
        backends: &CapabilityBackends,
    ) -> Result<Option<Backend>, D::Error> {
        let text = String::deserialize(deserializer)?;
        backends
            .parse_shorthand(&text)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }

    pub(super) fn keyvalue<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Backend>, D::Error> {
        parse(d, &KEYVALUE)
    }

    pub(super) fn blobstore<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Backend>, D::Error> {
        parse(d, &BLOBSTORE)
    }

    pub(super) fn messaging<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Backend>, D::Error> {
        parse(d, &MESSAGING)
    }
}

/// An extra component of the dev workload: a path (wash's form) or the full form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DevComponent {
    /// Just the file; the name is its stem.
    Path(PathBuf),
    /// Name, file, config, allowed hosts.
    Full(DevComponentSpec),
}

/// The full form of an extra component.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevComponentSpec {
    /// Name within the workload.
    pub name: String,
    /// The component file, relative to the project.
    pub file: PathBuf,
    /// Its `wasi:config` values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Hosts its outgoing HTTP may reach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
}

impl DevComponent {
    /// Name, file, config and allowed hosts, whichever form was written.
    pub fn spec(&self) -> DevComponentSpec {
        match self {
            Self::Full(spec) => spec.clone(),
            Self::Path(path) => DevComponentSpec {
                name: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().replace('_', "-"))
                    .unwrap_or_else(|| "component".into()),
                file: path.clone(),
                ..Default::default()
            },
        }
    }
}

/// A host directory mounted into the dev workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevVolume {
    /// The directory on the host, relative to the project.
    pub host_path: PathBuf,
    /// Where components see it.
    pub guest_path: String,
    /// Mounts are read-only unless this is `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// `workload:`, camelCase as wasmCloud's `localResources`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSection {
    /// Values `wasi:config/store` serves.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Environment variables: literal, from config sources, from secret sources.
    #[serde(default, skip_serializing_if = "ConfigLayer::is_empty")]
    pub environment: ConfigLayer,
    /// Hosts outgoing HTTP may reach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
}

impl WorkloadSection {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A named config or secret source: exactly one of the three kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Source {
    /// Values written in the config file itself.
    Inline(BTreeMap<String, String>),
    /// A file inside the project: `KEY=VALUE` lines, or YAML/JSON (by
    /// extension `.yaml`, `.yml`, `.json`).
    File(PathBuf),
    /// Environment variables of the `nimbus` process: one name, or a prefix
    /// ending in `*` for every variable starting with it.
    FromEnv(String),
}

/// A config file that could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, not a regular file, too large).
    #[error(transparent)]
    Read(nimbus_model::files::FileError),
    /// The file is not valid: unknown key, wrong type, bad YAML.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// The merged config and where it came from.
#[derive(Debug, Clone, Default)]
pub struct LoadedConfig {
    /// The merged config.
    pub config: ProjectConfig,
    /// The project directory.
    pub project_dir: PathBuf,
    /// The project config file, if there is one.
    pub project_file: Option<PathBuf>,
    /// The user config file, if there is one.
    pub user_file: Option<PathBuf>,
}

/// The user-level config file: `$NIMBUS_CONFIG_HOME/config.yaml`, else
/// `~/.config/nimbus/config.yaml`.
pub fn user_config_path() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("NIMBUS_CONFIG_HOME") {
        return Some(PathBuf::from(home).join("config.yaml"));
    }
    dirs::config_dir().map(|d| d.join("nimbus").join("config.yaml"))
}

/// The project config file of `project_dir`, if any.
pub fn project_config_path(project_dir: &Path) -> Option<PathBuf> {
    PROJECT_CONFIG_PATHS
        .iter()
        .map(|p| project_dir.join(p))
        .find(|p| p.is_file())
}

/// Reads and validates one config file.
pub fn read_config_file(path: &Path) -> Result<ProjectConfig, ConfigError> {
    // Bounded and regular files only, like every user-named file.
    let text = nimbus_model::files::read_text_bounded(
        path,
        nimbus_model::manifest::MAX_MANIFEST_BYTES as u64,
    )
    .map_err(ConfigError::Read)?;
    parse_config(&text, path)
}

/// Parses config text; `path` is only for messages.
pub fn parse_config(text: &str, path: &Path) -> Result<ProjectConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(ProjectConfig::default());
    }
    // The same bounds as manifests: the parser's cost must stay linear.
    nimbus_model::manifest::check_yaml_bounds(
        text,
        nimbus_model::manifest::MAX_MANIFEST_BYTES,
        nimbus_model::manifest::MAX_NESTING_DEPTH,
    )
    .map_err(|error| ConfigError::Invalid {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        message: error.to_string(),
    })?;
    serde_yaml_ng::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            message: strip_location(&e.to_string()),
        }
    })
}

/// serde_yaml_ng appends " at line L column C"; the location is already in
/// the message prefix.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

/// Loads the project config of `project_dir` merged over the user config at
/// `user_file` (pass [`user_config_path`] for the usual one).
pub fn load(project_dir: &Path, user_file: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
    let user_file = user_file.filter(|p| p.is_file()).map(Path::to_path_buf);
    let project_file = project_config_path(project_dir);
    let mut config = match &user_file {
        Some(path) => read_config_file(path)?,
        None => ProjectConfig::default(),
    };
    if let Some(path) = &project_file {
        config.merge(read_config_file(path)?);
    }
    Ok(LoadedConfig {
        config,
        project_dir: project_dir.to_path_buf(),
        project_file,
        user_file,
    })
}

impl ProjectConfig {
    /// A copy safe to print: values written inline under `secrets:` are
    /// replaced by `<redacted>`.
    pub fn redacted(&self) -> ProjectConfig {
        let mut copy = self.clone();
        for source in copy.secrets.values_mut() {
            if let Source::Inline(values) = source {
                for value in values.values_mut() {
                    *value = nimbus_model::secret::REDACTED.to_string();
                }
            }
        }
        copy
    }

    /// Lays `over` on top of `self`: what `over` sets wins, maps merge by key.
    pub fn merge(&mut self, over: ProjectConfig) {
        fn opt<T>(base: &mut Option<T>, over: Option<T>) {
            if over.is_some() {
                *base = over;
            }
        }
        fn list<T>(base: &mut Vec<T>, over: Vec<T>) {
            if !over.is_empty() {
                *base = over;
            }
        }
        opt(&mut self.version, over.version);
        opt(&mut self.wit, over.wit);

        let (b, o) = (&mut self.build, over.build);
        opt(&mut b.command, o.command);
        b.env.extend(o.env);
        opt(&mut b.component_path, o.component_path);
        opt(&mut b.rust, o.rust);
        list(&mut b.additional_args, o.additional_args);
        opt(&mut b.tinygo, o.tinygo);
        opt(&mut b.typescript, o.typescript);

        let (d, o) = (&mut self.dev, over.dev);
        opt(&mut d.address, o.address);
        list(&mut d.components, o.components);
        list(&mut d.middleware, o.middleware);
        list(&mut d.volumes, o.volumes);
        list(&mut d.host_interfaces, o.host_interfaces);
        opt(&mut d.keyvalue, o.keyvalue);
        opt(&mut d.blobstore, o.blobstore);
        opt(&mut d.messaging, o.messaging);
        d.wasi_config.extend(o.wasi_config);
        opt(&mut d.service, o.service);
        opt(&mut d.service_path, o.service_path);
        opt(&mut d.tls_cert_path, o.tls_cert_path);
        opt(&mut d.tls_key_path, o.tls_key_path);
        opt(&mut d.tls_ca_path, o.tls_ca_path);
        opt(&mut d.wasi_webgpu, o.wasi_webgpu);

        let (w, o) = (&mut self.workload, over.workload);
        w.config.extend(o.config);
        w.environment.config.extend(o.environment.config);
        list(&mut w.environment.config_from, o.environment.config_from);
        list(&mut w.environment.secret_from, o.environment.secret_from);
        list(&mut w.allowed_hosts, o.allowed_hosts);

        self.configs.extend(over.configs);
        self.secrets.extend(over.secrets);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ProjectConfig, ConfigError> {
        parse_config(text, Path::new(".nimbus/config.yaml"))
    }

    #[test]
    fn unknown_key_names_key_file_and_line() {
        let err = parse("build:\n  command: make\n  comand: typo\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(".nimbus/config.yaml:3:"),
            "no file:line in {err}"
        );
        assert!(err.contains("unknown field `comand`"), "{err}");
    }

    #[test]
    fn unknown_top_level_and_nested_workload_keys_are_errors() {
        for text in [
            "bogus: 1\n",
            "workload:\n  enviroment: {}\n",
            "workload:\n  environment:\n    GREETING: hi\n",
            "secrets:\n  db:\n    fromFile: x\n",
        ] {
            assert!(parse(text).is_err(), "accepted: {text}");
        }
    }

    #[test]
    fn reads_every_section() {
        let config = parse(
            r#"
build:
  command: cargo build --release --target wasm32-wasip2
  env: { RUSTFLAGS: "-C opt-level=s" }
  component_path: target/wasm32-wasip2/release/demo.wasm
dev:
  address: 127.0.0.1:9000
  components:
    - name: helper
      file: helper.wasm
      config: { mode: fast }
      allowed_hosts: [example.com]
    - extra/other_thing.wasm
  volumes:
    - host_path: data
      guest_path: /data
  host_interfaces:
    - namespace: wasi
      package: config
      interfaces: [store]
      secretFrom: [{ name: db }]
  keyvalue: redis://127.0.0.1:6379
workload:
  config: { greeting: hello }
  environment:
    config: { LOG: debug }
    configFrom: [{ name: app }]
    secretFrom: [{ name: db }]
  allowedHosts: [api.example.com]
configs:
  app: { inline: { MODE: fast } }
  more: { file: config/app.env }
secrets:
  db: { file: secrets/db.env }
  token: { fromEnv: API_TOKEN }
"#,
        )
        .unwrap();
        assert_eq!(config.dev.components[1].spec().name, "other-thing");
        assert_eq!(config.dev.host_interfaces[0].secret_from[0].name, "db");
        assert_eq!(config.secrets["token"], Source::FromEnv("API_TOKEN".into()));
        assert_eq!(config.workload.environment.config_from[0].name, "app");
        assert_eq!(
            config.dev.keyvalue,
            Some(Backend::Redis {
                url: "redis://127.0.0.1:6379".into()
            })
        );
    }

    #[test]
    fn backends_are_checked_per_plugin() {
        let ok = parse(
            "dev:\n  keyvalue: data/kv\n  blobstore: memory\n  messaging: nats://127.0.0.1:4222\n",
        )
        .unwrap();
        assert_eq!(
            ok.dev.keyvalue,
            Some(Backend::Filesystem {
                path: "data/kv".into()
            })
        );
        assert_eq!(ok.dev.blobstore, Some(Backend::Memory));
        for (text, needle) in [
            (
                "dev:\n  keyvalue: mongodb://x\n",
                "not a backend keyvalue supports",
            ),
            (
                "dev:\n  messaging: redis://x\n",
                "messaging cannot use redis",
            ),
            (
                "dev:\n  blobstore: redis://x\n",
                "blobstore cannot use redis",
            ),
            (
                "dev:\n  messaging: ./dir\n",
                "messaging cannot use a directory path",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(err.starts_with(".nimbus/config.yaml:2:"), "{err}");
        }
    }

    #[test]
    fn wash_config_keys_are_accepted() {
        let config = parse(
            r#"
version: 2.0.0
build:
  rust:
    target: wasm32-wasip2
    release: true
  component_path: target/wasm32-wasip2/release/hello.wasm
dev:
  address: 0.0.0.0:8000
  service: false
  wasi_config: { key: value }
wit:
  registries: []
"#,
        )
        .unwrap();
        assert_eq!(config.build.rust.unwrap().release, Some(true));
    }

    #[test]
    fn redacted_hides_inline_secret_values_only() {
        let config = parse(
            "configs:\n  c: { inline: { MODE: fast } }\nsecrets:\n  s: { inline: { TOKEN: abc123secret } }\n",
        )
        .unwrap();
        let shown = serde_yaml_ng::to_string(&config.redacted()).unwrap();
        assert!(!shown.contains("abc123secret"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("fast"),
            "{shown}"
        );
    }

    #[test]
    fn project_overrides_user_per_key() {
        let mut user = parse(
            "build:\n  env: { A: user, B: user }\ndev:\n  address: 127.0.0.1:1\n  keyvalue: memory\nsecrets:\n  s: { fromEnv: X }\n",
        )
        .unwrap();
        let project =
            parse("build:\n  env: { B: project }\ndev:\n  address: 127.0.0.1:2\n").unwrap();
        user.merge(project);
        assert_eq!(user.build.env["A"], "user");
        assert_eq!(user.build.env["B"], "project");
        assert_eq!(user.dev.address.as_deref(), Some("127.0.0.1:2"));
        assert_eq!(user.dev.keyvalue, Some(Backend::Memory));
        assert!(user.secrets.contains_key("s"));
    }
}
