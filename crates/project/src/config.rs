//! The project config file, `.nimbus/config.yaml`, merged over the user's
//! `~/.config/nimbus/config.yaml`.
//!
//! A project that only has `.wash/config.yaml` (a wasmCloud v2 project) is
//! read from there, the way wash reads it, so such projects run unchanged:
//! - wash's keys with a meaning here are honoured with that meaning: the
//!   backend keys (`wasi_keyvalue_path`, `wasi_keyvalue_redis_url`,
//!   `wasi_keyvalue_nats_url`, `wasi_blobstore_path`, `data_nats_url`), the
//!   service keys (`service`, `service_file`, `service_image`),
//!   `dev.command` and `dev.component_path`, camelCase component entries,
//!   sources combining `inline`, `file`, `dir` and a `fromEnv` list, and
//!   `configFrom` / `secretFrom` as lists of names;
//! - wash's keys without one here are accepted with one warning each saying
//!   why (the `*_KEYS_WITHOUT_EFFECT` tables), in any config file;
//! - keys neither knows are warnings in `.wash/config.yaml` (wash ignores
//!   them) and errors naming the key, the file and the line elsewhere.
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
pub struct ProjectConfig {
    /// The schema version wash writes (`version: 2.0.0`); read by neither.
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
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, Source>,
    /// Named secret sources.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, Source>,
    /// WIT dependencies (wash's `wit:` section).
    #[serde(default, skip_serializing_if = "WitSection::is_empty")]
    pub wit: WitSection,
}

/// `wit:`: where the project's WIT is and whether `nimbus build` and
/// `nimbus dev` fetch what it lacks. Registries are wkg's configuration
/// ([`WIT_KEYS_WITHOUT_EFFECT`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WitSection {
    /// The WIT folder, relative to the project (default `wit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wit_dir: Option<PathBuf>,
    /// Never fetch before a build (`nimbus wit fetch` still does).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_fetch: bool,
}

impl WitSection {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The WIT folder of the project at `project_dir`.
    pub fn dir(&self, project_dir: &Path) -> PathBuf {
        project_dir.join(self.wit_dir.as_deref().unwrap_or(Path::new("wit")))
    }
}

/// Keys of wash's `wit:` section that Nimbus accepts and does not act on.
pub const WIT_KEYS_WITHOUT_EFFECT: &[(&str, &str)] = &[
    (
        "registries",
        "registries and their credentials come from wkg's config (`WKG_CONFIG_FILE` or ~/.config/wasm-pkg/config.toml) and docker's credential helpers",
    ),
    (
        "sources",
        "point a package at a local folder with `[overrides]` in wkg.toml",
    ),
];

/// Top-level keys wash has that Nimbus accepts and does not act on, with why.
pub const TOP_KEYS_WITHOUT_EFFECT: &[(&str, &str)] = &[
    (
        "new",
        "`nimbus new` runs no command after creating a project",
    ),
    ("host", "host component plugins are not supported yet"),
];

/// `build:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// wash 1's TinyGo settings; Nimbus builds such projects with `command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tinygo: Option<serde_yaml_ng::Value>,
    /// wash 1's TypeScript settings; Nimbus builds such projects with `command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typescript: Option<serde_yaml_ng::Value>,
    /// Globs, relative to the project, of further files `nimbus dev`
    /// rebuilds on (as Spin's `watch`), beside what the toolchain reports
    /// it read; for a build cargo does not describe, the whole list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<String>,
}

impl BuildConfig {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// wash's `build.rust` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

/// `dev:`. Besides Nimbus's own keys it reads wash's: the backend keys
/// (`wasi_keyvalue_*`, `wasi_blobstore_path`, `data_nats_url`), the
/// service keys, `command` and `component_path`; wash keys with no meaning
/// here are accepted with a warning ([`DEV_KEYS_WITHOUT_EFFECT`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DevConfig {
    /// Listen address (default `127.0.0.1:8000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Builds for `nimbus dev` instead of `build.command` (wash's
    /// `dev.command`, e.g. a debug build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Where `dev.command` leaves the component, instead of
    /// `build.component_path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_path: Option<PathBuf>,
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
    /// wash: a directory for key-value data (the filesystem backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasi_keyvalue_path: Option<PathBuf>,
    /// wash: key-value in Redis (wins over the other key-value keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasi_keyvalue_redis_url: Option<String>,
    /// wash: key-value in NATS (wins over `wasi_keyvalue_path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasi_keyvalue_nats_url: Option<String>,
    /// wash: a directory for blobstore data (the filesystem backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasi_blobstore_path: Option<PathBuf>,
    /// wash: one NATS server for key-value, blobstore and messaging, where
    /// nothing more specific is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_nats_url: Option<String>,
    /// wash: the PostgreSQL server `wasmcloud:postgres` workloads use
    /// unless they name their own (`postgres://user:pass@host:port`; the
    /// workload's `database` picks the database). Held as a secret: it
    /// usually carries a password, and `config show` redacts it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "secret_string"
    )]
    pub postgres_url: Option<nimbus_model::secret::Secret>,
    /// wash's `wasi_config`: merged into `workload.config`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub wasi_config: BTreeMap<String, String>,
    /// The project's own component is the workload's service (its
    /// `wasi:cli/run` runs beside the others) rather than its handler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<bool>,
    /// A component file run as the workload's service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_file: Option<PathBuf>,
    /// An OCI image run as the workload's service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_image: Option<String>,
    /// When `service_image` is pulled: `always`, `ifNotPresent`, `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_pull_policy: Option<nimbus_model::PullPolicy>,
}

/// A string read straight into a [`Secret`](nimbus_model::secret::Secret).
fn secret_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<nimbus_model::secret::Secret>, D::Error> {
    let text: Option<String> = serde::Deserialize::deserialize(deserializer)?;
    Ok(text.map(nimbus_model::secret::Secret::new))
}

/// `dev:` keys wash has that Nimbus accepts and does not act on, with why.
pub const DEV_KEYS_WITHOUT_EFFECT: &[(&str, &str)] = &[
    (
        "environment",
        "it sets variables of the `wash dev` process; set them in the shell that runs nimbus (a component's variables go under `workload.environment`)",
    ),
    (
        "service_ports",
        "a service's ports stay on the workload's virtual loopback",
    ),
    (
        "allow_insecure_registries",
        "`nimbus dev` reaches registries over HTTPS only",
    ),
    (
        "host_plugins",
        "host component plugins are not supported yet",
    ),
    (
        "tls_cert_path",
        "`nimbus dev` serves plain HTTP on a loopback address",
    ),
    (
        "tls_key_path",
        "`nimbus dev` serves plain HTTP on a loopback address",
    ),
    (
        "tls_ca_path",
        "`nimbus dev` serves plain HTTP on a loopback address",
    ),
    (
        "http_client_ca_paths",
        "outgoing HTTPS trusts the bundled web roots",
    ),
    (
        "http_client_trust_roots",
        "outgoing HTTPS trusts the bundled web roots",
    ),
    ("max_connections", "the host's own connection caps apply"),
    (
        "max_outbound_http_connections_per_workload",
        "the host's own connection caps apply",
    ),
    (
        "max_outbound_socket_connections_per_workload",
        "the host's own connection caps apply",
    ),
    (
        "max_inbound_socket_connections_per_workload",
        "the host's own connection caps apply",
    ),
    (
        "http_connection_wait",
        "a request finding the connection caps full fails at once",
    ),
    (
        "wasi_otel",
        "`wasi:otel` is always served; guest telemetry goes where the host's OTLP settings send its own",
    ),
    ("wasi_webgpu", "`wasi:webgpu` is not supported"),
    ("wasm_proposals", "the engine's proposals are fixed"),
    ("service_path", "it is not a wash key; use `service_file`"),
];

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
    /// Turns wash's backend keys into Nimbus's own, in wash's order
    /// (key-value: Redis, NATS, path, `data_nats_url`; blobstore: path,
    /// `data_nats_url`; messaging: `data_nats_url`), where this file does not
    /// set Nimbus's key itself. Done for each file before merging, so a
    /// project's choice replaces the user's whichever spelling either uses.
    fn fold_wash_backends(&mut self) {
        let nats = |url: &Option<String>| url.clone().map(|url| Backend::Nats { url });
        let path = |path: &Option<PathBuf>| {
            path.as_ref()
                .map(|p| Backend::Filesystem { path: p.clone() })
        };
        let keyvalue = self
            .wasi_keyvalue_redis_url
            .clone()
            .map(|url| Backend::Redis { url })
            .or_else(|| nats(&self.wasi_keyvalue_nats_url))
            .or_else(|| path(&self.wasi_keyvalue_path))
            .or_else(|| nats(&self.data_nats_url));
        let blobstore = path(&self.wasi_blobstore_path).or_else(|| nats(&self.data_nats_url));
        let messaging = nats(&self.data_nats_url);
        self.keyvalue = self.keyvalue.take().or(keyvalue);
        self.blobstore = self.blobstore.take().or(blobstore);
        self.messaging = self.messaging.take().or(messaging);
        self.wasi_keyvalue_redis_url = None;
        self.wasi_keyvalue_nats_url = None;
        self.wasi_keyvalue_path = None;
        self.wasi_blobstore_path = None;
        self.data_nats_url = None;
    }

    /// The host-level plugin defaults these backend selections make, with
    /// directories resolved against the project directory `base`.
    pub fn plugin_defaults(&self, base: &Path) -> nimbus_model::PluginDefaults {
        use nimbus_model::backends::{BLOBSTORE, KEYVALUE, MESSAGING};
        // wash's keys are already folded into these three by `parse_config`.
        let mut defaults = nimbus_model::PluginDefaults::default();
        for (backends, choice) in [
            (&KEYVALUE, &self.keyvalue),
            (&BLOBSTORE, &self.blobstore),
            (&MESSAGING, &self.messaging),
        ] {
            if let Some(choice) = choice {
                defaults.settings.insert(
                    backends.capability.to_string(),
                    backends.settings_for(choice, base),
                );
            }
        }
        if let Some(url) = &self.postgres_url {
            defaults.set_secret("postgres", "url", url.clone());
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

/// An extra component of the dev workload: a path, or the full form.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DevComponent {
    /// Just the file; the name is its stem.
    Path(PathBuf),
    /// Name, source, config, environment, allowed hosts.
    Full(Box<DevComponentSpec>),
}

impl<'de> Deserialize<'de> for DevComponent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        nimbus_model::forms::string_or_map::<_, _, DevComponentSpec>(
            deserializer,
            "a component file path, or a map with `name` and `file`, `image` or `project`",
            |path| DevComponent::Path(path.into()),
        )
    }
}

impl From<DevComponentSpec> for DevComponent {
    fn from(spec: DevComponentSpec) -> DevComponent {
        DevComponent::Full(Box::new(spec))
    }
}

/// The full form of an extra component: Nimbus's keys (snake_case) or
/// wash's (camelCase) for the same things.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DevComponentSpec {
    /// Name within the workload.
    pub name: String,
    /// The component file, relative to the project (or `image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// An OCI reference (or `file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A project directory, relative to this one, that `nimbus dev` builds
    /// (with that project's own build settings), watches and reloads; its
    /// component is what the build produces, or `file` when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<PathBuf>,
    /// Globs, relative to `project`, of further files that rebuild it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<String>,
    /// When `image` is pulled.
    #[serde(default, alias = "pullPolicy", skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<nimbus_model::PullPolicy>,
    /// Its `wasi:config` values, merged over `workload.config` (its own win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Its environment, merged over `workload.environment` (its own win).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<ConfigLayer>,
    /// Hosts its outgoing HTTP may reach; unset: `workload.allowedHosts`.
    #[serde(
        default,
        alias = "allowedHosts",
        skip_serializing_if = "Option::is_none"
    )]
    pub allowed_hosts: Option<Vec<String>>,
    /// Most requests one instance serves before it is recycled.
    #[serde(
        default,
        alias = "maxInvocations",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_invocations: Option<u32>,
    /// Most requests one instance serves at once.
    #[serde(
        default,
        alias = "maxConcurrency",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_concurrency: Option<u32>,
}

/// `dev.components[]` keys wash has that Nimbus does not act on, with why.
pub const COMPONENT_KEYS_WITHOUT_EFFECT: &[(&str, &str)] = &[
    (
        "poolSize",
        "instances are made on demand; `maxInvocations` and `maxConcurrency` set their reuse",
    ),
    (
        "allowedIpNameLookups",
        "with `wasi:sockets` a guest may resolve any name; outgoing HTTP is bounded by `allowedHosts`",
    ),
    (
        "allowedHostLoopbackPorts",
        "the host's loopback is reached only through an `allowedHosts` entry naming `localhost` or the address",
    ),
];

impl DevComponent {
    /// Name, source, config and the rest, whichever form was written.
    pub fn spec(&self) -> DevComponentSpec {
        match self {
            Self::Full(spec) => (**spec).clone(),
            Self::Path(path) => DevComponentSpec {
                name: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().replace('_', "-"))
                    .unwrap_or_else(|| "component".into()),
                file: Some(path.clone()),
                ..Default::default()
            },
        }
    }
}

/// A host directory mounted into the dev workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[serde(rename_all = "camelCase")]
pub struct WorkloadSection {
    /// Values `wasi:config/store` serves.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Environment variables: literal, from config sources, from secret sources.
    #[serde(default, skip_serializing_if = "ConfigLayer::is_empty")]
    pub environment: ConfigLayer,
    /// Hosts outgoing HTTP may reach. Unset under `nimbus dev`: any public
    /// host, as under `wash dev` (a deployed workload denies by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_hosts: Option<Vec<String>>,
}

/// `workload:` keys wash has that Nimbus does not act on, with why.
pub const WORKLOAD_KEYS_WITHOUT_EFFECT: &[(&str, &str)] = &[
    (
        "allowedIpNameLookups",
        "with `wasi:sockets` a guest may resolve any name; outgoing HTTP is bounded by `allowedHosts`",
    ),
    (
        "allowedHostLoopbackPorts",
        "the host's loopback is reached only through an `allowedHosts` entry naming `localhost` or the address",
    ),
];

impl WorkloadSection {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A named config or secret source: values written inline, a file, a
/// directory, environment variables, or several of these (resolved in that
/// order, later values winning, as wash does).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Values written in the config file itself.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inline: BTreeMap<String, String>,
    /// A file inside the project: `KEY=VALUE` lines, or YAML/JSON (by
    /// extension `.yaml`, `.yml`, `.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// A directory inside the project: one file per key, the file's name
    /// the key and its contents the value (dotfiles skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Environment variables of the `nimbus` process: names, or prefixes
    /// ending in `*` for every variable starting with them. One name may be
    /// written as a plain string.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub from_env: Vec<String>,
}

impl Source {
    /// Whether it names nothing at all.
    pub fn is_empty(&self) -> bool {
        self.inline.is_empty()
            && self.file.is_none()
            && self.dir.is_none()
            && self.from_env.is_empty()
    }
}

/// A string or a list of strings.
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a name, or a list of names")]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(name) => vec![name],
        OneOrMany::Many(names) => names,
    })
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
    /// Keys of either file that have no effect here, one line each.
    pub warnings: Vec<String>,
}

/// The user-level config file: `$NIMBUS_CONFIG_HOME/config.yaml`, else
/// `~/.config/nimbus/config.yaml`.
pub fn user_config_path() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("NIMBUS_CONFIG_HOME") {
        return Some(PathBuf::from(home).join("config.yaml"));
    }
    dirs::config_dir().map(|d| d.join("nimbus").join("config.yaml"))
}

/// The project config file of `project_dir`, if any: the first of
/// [`PROJECT_CONFIG_PATHS`] that exists, whatever it is, so that reading it
/// says so when it is no regular file rather than passing it over.
pub fn project_config_path(project_dir: &Path) -> Option<PathBuf> {
    PROJECT_CONFIG_PATHS
        .iter()
        .map(|p| project_dir.join(p))
        .find(|p| p.exists())
}

/// Reads and validates one config file; warnings are returned with it.
pub fn read_config_file(path: &Path) -> Result<(ProjectConfig, Vec<String>), ConfigError> {
    // Bounded and regular files only, like every user-named file.
    let text = nimbus_model::files::read_text_bounded(
        path,
        nimbus_model::manifest::MAX_MANIFEST_BYTES as u64,
    )
    .map_err(ConfigError::Read)?;
    parse_config(&text, path)
}

/// Whether `path` is a wash project config (`.wash/config.yaml`), read
/// the way wash reads it: unknown keys are warnings, not errors.
fn is_wash_file(path: &Path) -> bool {
    path.parent()
        .and_then(Path::file_name)
        .is_some_and(|dir| dir == ".wash")
}

/// Parses config text; `path` names the file in messages and says which
/// kind it is. Returns the config and one warning per key that has no
/// effect here (each naming the file, the key and why).
///
/// Keys wash has and Nimbus does not act on are accepted in every file,
/// with a warning. Other unknown keys are errors naming the file, the line
/// and the key in `.nimbus/config.yaml` and the user's config, and
/// warnings in `.wash/config.yaml`, since wash ignores keys it does not know.
pub fn parse_config(text: &str, path: &Path) -> Result<(ProjectConfig, Vec<String>), ConfigError> {
    if text.trim().is_empty() {
        return Ok((ProjectConfig::default(), Vec::new()));
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
    let mut ignored = Vec::new();
    let config: ProjectConfig =
        serde_ignored::deserialize(serde_yaml_ng::Deserializer::from_str(text), |key| {
            ignored.push(key.to_string())
        })
        .map_err(|e| {
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
        })?;
    if let Some((key, message)) = config.conflict() {
        let (line, column) = key_location(text, &key);
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            message: format!("`{key}`: {message}"),
        });
    }
    let mut config = config;
    config.dev.fold_wash_backends();
    let wash = is_wash_file(path);
    let mut warnings = Vec::new();
    for key in ignored {
        // Key names come from the user's file: no control characters out.
        let key = dotted(&key).escape_debug().to_string();
        match without_effect(&key) {
            Some(why) => warnings.push(format!(
                "{}: `{key}` has no effect here ({why})",
                path.display()
            )),
            None if wash => warnings.push(format!(
                "{}: `{key}` is not a key wash or Nimbus knows; ignored",
                path.display()
            )),
            None => {
                let (line, column) = key_location(text, &key);
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line,
                    column,
                    message: format!("unknown field `{key}`"),
                });
            }
        }
    }
    Ok((config, warnings))
}

/// serde_ignored's path (`dev.components.0.poolSize`) with list positions
/// in brackets, as the rest of Nimbus writes them (`dev.components[0].poolSize`).
fn dotted(path: &str) -> String {
    let mut out = String::new();
    // serde_ignored writes `?` for each `Option` it passes through.
    for segment in path.split('.').filter(|s| *s != "?") {
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// Why a wash key at `key` has no effect here, if it is one.
fn without_effect(key: &str) -> Option<&'static str> {
    let find = |table: &[(&str, &'static str)], name: &str| {
        table.iter().find(|(k, _)| *k == name).map(|(_, why)| *why)
    };
    let segments: Vec<&str> = key.split('.').collect();
    match segments.as_slice() {
        [top] => find(TOP_KEYS_WITHOUT_EFFECT, top),
        ["dev", name] => find(DEV_KEYS_WITHOUT_EFFECT, name),
        ["workload", name] => find(WORKLOAD_KEYS_WITHOUT_EFFECT, name),
        ["wit", name] => find(WIT_KEYS_WITHOUT_EFFECT, name),
        ["dev", components, name] if components.starts_with("components[") => {
            find(COMPONENT_KEYS_WITHOUT_EFFECT, name)
        }
        _ => None,
    }
}

/// The 1-based line and column where `key` (`dev.components[0].name`) is
/// written in block style: each segment searched inside its parent's block
/// (lines indented deeper than the parent, up to the block's end). When a
/// segment is not found (flow style, `{ a: b }`), the nearest parent found;
/// `(0, 0)` when not even the first is.
fn key_location(text: &str, key: &str) -> (usize, usize) {
    let names: Vec<&str> = key
        .split('.')
        .map(|s| s.split('[').next().unwrap_or(s))
        .filter(|s| !s.is_empty())
        .collect();
    let lines: Vec<&str> = text.lines().collect();
    // The block being searched: lines after `from`, indented deeper than
    // `parent_indent` (`None` at the top level).
    let mut from = 0;
    let mut parent_indent: Option<usize> = None;
    let mut found = (0, 0);
    for name in names {
        let mut hit = None;
        // The column of this block's own keys: its first key's.
        let mut level = None;
        for (index, line) in lines.iter().enumerate().skip(from) {
            let content = line.trim_start();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let indent = line.len() - content.len();
            if parent_indent.is_some_and(|parent| indent <= parent) {
                break;
            }
            // A list item's key starts after its `- `.
            let item = content.trim_start_matches("- ");
            let column = line.len() - item.len();
            if *level.get_or_insert(column) != column {
                continue;
            }
            let rest = item
                .strip_prefix(name)
                .or_else(|| item.strip_prefix(&format!("\"{name}\"")));
            if rest.is_some_and(|rest| rest.trim_start().starts_with(':')) {
                hit = Some((index, column));
                break;
            }
        }
        let Some((index, column)) = hit else {
            return found;
        };
        found = (index + 1, column + 1);
        from = index + 1;
        parent_indent = Some(column);
    }
    found
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
    let user_file = user_file.filter(|p| p.exists()).map(Path::to_path_buf);
    let project_file = project_config_path(project_dir);
    let (mut config, mut warnings) = match &user_file {
        Some(path) => read_config_file(path)?,
        None => (ProjectConfig::default(), Vec::new()),
    };
    if let Some(path) = &project_file {
        let (project, more) = read_config_file(path)?;
        config.merge(project);
        warnings.extend(more);
    }
    Ok(LoadedConfig {
        config,
        project_dir: project_dir.to_path_buf(),
        project_file,
        user_file,
        warnings,
    })
}

impl ProjectConfig {
    /// A copy safe to print: values written inline under `secrets:` are
    /// replaced by `<redacted>`.
    pub fn redacted(&self) -> ProjectConfig {
        let mut copy = self.clone();
        for source in copy.secrets.values_mut() {
            for value in source.inline.values_mut() {
                *value = nimbus_model::secret::REDACTED.to_string();
            }
        }
        copy
    }

    /// How `nimbus dev` builds: `build`, with wash's `dev.command` and
    /// `dev.component_path` in place of its command and output when set.
    pub fn dev_build(&self) -> BuildConfig {
        let mut build = self.build.clone();
        if let Some(command) = &self.dev.command {
            build.command = Some(command.clone());
        }
        if let Some(path) = &self.dev.component_path {
            build.component_path = Some(path.clone());
        }
        build
    }

    /// The first pair of settings that exclude each other, as the key and
    /// what is wrong (each a sentence wash would also refuse).
    fn conflict(&self) -> Option<(String, &'static str)> {
        let dev = &self.dev;
        if dev.service_file.is_some() && dev.service_image.is_some() {
            return Some((
                "dev.service_image".into(),
                "set `service_file` or `service_image`, not both",
            ));
        }
        if dev.service == Some(true) && (dev.service_file.is_some() || dev.service_image.is_some())
        {
            return Some((
                "dev.service".into(),
                "`service: true` makes the project itself the service; drop `service_file` / `service_image`, or this",
            ));
        }
        if dev.service_pull_policy.is_some() && dev.service_image.is_none() {
            return Some((
                "dev.service_pull_policy".into(),
                "applies only with `service_image`",
            ));
        }
        for (i, component) in dev.components.iter().enumerate() {
            let DevComponent::Full(spec) = component else {
                continue;
            };
            let key = format!("dev.components[{i}]");
            if spec.project.is_some() && spec.image.is_some() {
                return Some((key, "sets both `project` and `image`; use one"));
            }
            if !spec.watch.is_empty() && spec.project.is_none() {
                return Some((key, "`watch` applies only with `project`"));
            }
            match (&spec.file, &spec.image) {
                (Some(_), Some(_)) => {
                    return Some((key, "sets both `file` and `image`; use exactly one"));
                }
                (None, None) if spec.project.is_none() => {
                    return Some((key, "needs a `file`, an `image` or a `project`"));
                }
                (Some(_), None) if spec.pull_policy.is_some() => {
                    return Some((key, "`pullPolicy` applies only with `image`"));
                }
                _ => {}
            }
        }
        None
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

        let (b, o) = (&mut self.build, over.build);
        opt(&mut b.command, o.command);
        b.env.extend(o.env);
        opt(&mut b.component_path, o.component_path);
        opt(&mut b.rust, o.rust);
        list(&mut b.additional_args, o.additional_args);
        opt(&mut b.tinygo, o.tinygo);
        opt(&mut b.typescript, o.typescript);
        list(&mut b.watch, o.watch);

        let (d, o) = (&mut self.dev, over.dev);
        opt(&mut d.address, o.address);
        opt(&mut d.command, o.command);
        opt(&mut d.component_path, o.component_path);
        list(&mut d.components, o.components);
        list(&mut d.middleware, o.middleware);
        list(&mut d.volumes, o.volumes);
        list(&mut d.host_interfaces, o.host_interfaces);
        opt(&mut d.keyvalue, o.keyvalue);
        opt(&mut d.blobstore, o.blobstore);
        opt(&mut d.messaging, o.messaging);
        opt(&mut d.postgres_url, o.postgres_url);
        // wash's backend keys were folded into the three above per file.
        d.wasi_config.extend(o.wasi_config);
        // The service is one choice: a file that names any part of it
        // replaces the whole of the other's.
        if o.service.is_some() || o.service_file.is_some() || o.service_image.is_some() {
            d.service = o.service;
            d.service_file = o.service_file;
            d.service_image = o.service_image;
            d.service_pull_policy = o.service_pull_policy;
        }

        let (w, o) = (&mut self.workload, over.workload);
        w.config.extend(o.config);
        w.environment.config.extend(o.environment.config);
        list(&mut w.environment.config_from, o.environment.config_from);
        list(&mut w.environment.secret_from, o.environment.secret_from);
        opt(&mut w.allowed_hosts, o.allowed_hosts);

        self.configs.extend(over.configs);
        self.secrets.extend(over.secrets);

        opt(&mut self.wit.wit_dir, over.wit.wit_dir);
        self.wit.skip_fetch |= over.wit.skip_fetch;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ProjectConfig, ConfigError> {
        let (config, warnings) = parse_config(text, Path::new(".nimbus/config.yaml"))?;
        assert!(warnings.is_empty(), "{warnings:?}");
        Ok(config)
    }

    fn parse_wash(text: &str) -> (ProjectConfig, Vec<String>) {
        parse_config(text, Path::new("p/.wash/config.yaml")).unwrap()
    }

    #[test]
    fn a_config_path_that_is_no_regular_file_is_an_error_not_ignored() {
        for make in ["dir", "link to /dev/zero"] {
            let project = tempfile::tempdir().unwrap();
            let path = project.path().join(".nimbus/config.yaml");
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            if make == "dir" {
                std::fs::create_dir(&path).unwrap();
            } else {
                std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
            }
            let err = load(project.path(), None).err().map(|e| e.to_string());
            assert!(
                err.as_deref()
                    .is_some_and(|e| e.contains("config.yaml") && e.contains("not a regular file")),
                "{make}: {err:?}"
            );
        }
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
        assert!(err.contains("unknown field `build.comand`"), "{err}");
        assert!(err.starts_with(".nimbus/config.yaml:3:3:"), "{err}");
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
    - name: wash-style
      image: ghcr.io/example/helper:1
      pullPolicy: Always
      allowedHosts: [api.example.com]
      environment: { config: { MODE: slow } }
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
        assert_eq!(config.dev.components[2].spec().name, "other-thing");
        let wash_style = config.dev.components[1].spec();
        assert_eq!(wash_style.allowed_hosts.unwrap(), ["api.example.com"]);
        assert_eq!(
            wash_style.image.as_deref(),
            Some("ghcr.io/example/helper:1")
        );
        assert_eq!(wash_style.environment.unwrap().config["MODE"], "slow");
        assert_eq!(config.dev.host_interfaces[0].secret_from[0].name, "db");
        assert_eq!(config.secrets["token"].from_env, ["API_TOKEN"]);
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
        let (config, warnings) = parse_wash(
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
        );
        assert_eq!(config.build.rust.unwrap().release, Some(true));
        assert_eq!(
            warnings.len(),
            1,
            "only `wit.registries` has no effect: {warnings:?}"
        );
    }

    /// A wash project's config as wash's own examples write it: wash keys
    /// Nimbus honours, wash keys it does not (one warning each), keys
    /// neither knows (a warning, since wash ignores them), list forms.
    #[test]
    fn wash_config_is_read_the_way_wash_reads_it() {
        let (config, warnings) = parse_wash(
            r#"
version: 2.0.0
new:
  command: cargo update
build:
  command: cargo build --target wasm32-wasip2 --release
  component_path: target/wasm32-wasip2/release/hello.wasm
dev:
  command: cargo build --target wasm32-wasip2
  component_path: target/wasm32-wasip2/debug/hello.wasm
  wasi_keyvalue_path: tmp/kv
  wasi_blobstore_path: tmp/blobs
  data_nats_url: nats://127.0.0.1:4222
  service_file: service/service.wasm
  service_ports: [{ name: db, port: 5432 }]
  environment: { RUST_LOG: debug }
  wasi_otel: true
  components:
    - name: helper
      file: helper.wasm
      poolSize: 2
  shiny_new_key: 1
workload:
  environment:
    configFrom: [app-defaults]
    secretFrom: [upstream]
  allowedIpNameLookups: [example.com]
configs:
  app-defaults: { file: config/defaults.env, inline: { A: b } }
secrets:
  upstream: { fromEnv: [UPSTREAM_TOKEN, OTHER_TOKEN] }
wit:
  registries: []
  wit_dir: interfaces
  skip_fetch: true
"#,
        );
        let file = "p/.wash/config.yaml";
        assert_eq!(
            warnings,
            [
                format!(
                    "{file}: `new` has no effect here (`nimbus new` runs no command after creating a project)"
                ),
                format!(
                    "{file}: `dev.service_ports` has no effect here (a service's ports stay on the workload's virtual loopback)"
                ),
                format!(
                    "{file}: `dev.environment` has no effect here (it sets variables of the `wash dev` process; set them in the shell that runs nimbus (a component's variables go under `workload.environment`))"
                ),
                format!(
                    "{file}: `dev.wasi_otel` has no effect here (`wasi:otel` is always served; guest telemetry goes where the host's OTLP settings send its own)"
                ),
                format!(
                    "{file}: `dev.components[0].poolSize` has no effect here (instances are made on demand; `maxInvocations` and `maxConcurrency` set their reuse)"
                ),
                format!("{file}: `dev.shiny_new_key` is not a key wash or Nimbus knows; ignored"),
                format!(
                    "{file}: `workload.allowedIpNameLookups` has no effect here (with `wasi:sockets` a guest may resolve any name; outgoing HTTP is bounded by `allowedHosts`)"
                ),
                format!(
                    "{file}: `wit.registries` has no effect here (registries and their credentials come from wkg's config (`WKG_CONFIG_FILE` or ~/.config/wasm-pkg/config.toml) and docker's credential helpers)"
                ),
            ]
        );
        assert_eq!(
            config.workload.environment.config_from[0].name,
            "app-defaults"
        );
        assert_eq!(config.workload.environment.secret_from[0].name, "upstream");
        assert!(config.wit.skip_fetch);
        assert_eq!(config.wit.dir(Path::new("p")), Path::new("p/interfaces"));
        assert_eq!(
            config.secrets["upstream"].from_env,
            ["UPSTREAM_TOKEN", "OTHER_TOKEN"]
        );
        assert_eq!(config.configs["app-defaults"].inline["A"], "b");
        assert_eq!(
            config.dev.service_file.as_deref(),
            Some(Path::new("service/service.wasm"))
        );
        // wash's backend keys, in wash's order, under the model's names.
        let defaults = config.dev.plugin_defaults(Path::new("/p"));
        assert_eq!(defaults.settings["keyvalue"]["backend"], "filesystem");
        assert_eq!(defaults.settings["blobstore"]["backend"], "filesystem");
        assert_eq!(
            defaults.settings["messaging"]["url"],
            "nats://127.0.0.1:4222"
        );
        // The same unknown key in Nimbus's own file is an error.
        let err = parse(
            "dev:
  shiny_new_key: 1
",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `dev.shiny_new_key`"), "{err}");
        // A wash key with no effect is a warning there too, not an error.
        let (_, warnings) = parse_config(
            "dev:
  wasi_otel: true
",
            Path::new(".nimbus/config.yaml"),
        )
        .unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn wash_postgres_url_is_a_secret_host_default() {
        let (config, warnings) = parse_wash(
            "dev:
  postgres_url: postgres://app:hunter2@127.0.0.1:5432
",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let defaults = config.dev.plugin_defaults(Path::new("/p"));
        assert_eq!(
            defaults
                .secret("postgres", "url")
                .map(|url| url.expose().to_string()),
            Some("postgres://app:hunter2@127.0.0.1:5432".to_string())
        );
        for shown in [
            serde_yaml_ng::to_string(&config).unwrap(),
            format!("{config:?}"),
            format!("{defaults:?}"),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        // The project's file wins over the user's.
        let mut user = config.clone();
        user.merge(parse_wash("dev:\n  postgres_url: postgres://other@db:5432\n").0);
        assert_eq!(
            user.dev.postgres_url.map(|url| url.expose().to_string()),
            Some("postgres://other@db:5432".to_string())
        );
    }

    #[test]
    fn wash_key_value_backends_follow_wash_precedence() {
        let defaults = |text: &str| parse_wash(text).0.dev.plugin_defaults(Path::new("/p"));
        let kv = defaults(
            "dev:
  wasi_keyvalue_path: kv
  wasi_keyvalue_nats_url: nats://127.0.0.1:1
  wasi_keyvalue_redis_url: redis://127.0.0.1:2
  data_nats_url: nats://127.0.0.1:3
",
        );
        assert_eq!(kv.settings["keyvalue"]["url"], "redis://127.0.0.1:2");
        assert_eq!(kv.settings["blobstore"]["url"], "nats://127.0.0.1:3");
        let kv = defaults(
            "dev:
  wasi_keyvalue_path: kv
  wasi_keyvalue_nats_url: nats://127.0.0.1:1
",
        );
        assert_eq!(kv.settings["keyvalue"]["url"], "nats://127.0.0.1:1");
        // Nimbus's own key wins over wash's.
        let kv = defaults(
            "dev:
  keyvalue: memory
  wasi_keyvalue_path: kv
",
        );
        assert_eq!(kv.settings["keyvalue"]["backend"], "memory");
        assert!(!kv.settings.contains_key("messaging"));
    }

    /// A project's backend replaces the user's whichever spelling (wash's
    /// or Nimbus's) either file uses; so does its service.
    #[test]
    fn the_project_wins_over_the_user_across_spellings() {
        let mut user =
            parse("dev:\n  keyvalue: redis://127.0.0.1:6379\n  service_image: ghcr.io/x/svc:1\n")
                .unwrap();
        let (project, _) = parse_wash("dev:\n  wasi_keyvalue_path: kv\n  service_file: s.wasm\n");
        user.merge(project);
        let defaults = user.dev.plugin_defaults(Path::new("/p"));
        assert_eq!(defaults.settings["keyvalue"]["backend"], "filesystem");
        assert_eq!(user.dev.service_file.as_deref(), Some(Path::new("s.wasm")));
        assert_eq!(user.dev.service_image, None);
    }

    /// Unknown keys are found where they are written, inside their block.
    #[test]
    fn unknown_keys_are_located_in_their_own_block() {
        let err = parse("build:\n  env:\n    target: x\ntarget: y\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(".nimbus/config.yaml:4:1: unknown field `target`"),
            "{err}"
        );
        let err = parse("build:\n  rust:\n    release: true\n    relase: true\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(".nimbus/config.yaml:4:5: unknown field `build.rust.relase`"),
            "{err}"
        );
        let err =
            parse("dev:\n  components:\n    - name: a\n      file: a.wasm\n      colour: red\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.starts_with(".nimbus/config.yaml:5:7: unknown field `dev.components[0].colour`"),
            "{err}"
        );
    }

    #[test]
    fn settings_that_exclude_each_other_are_refused() {
        for (text, needle) in [
            (
                "dev:\n  service_file: s.wasm\n  service_image: ghcr.io/x/s:1\n",
                ":3:3: `dev.service_image`: set `service_file` or `service_image`, not both",
            ),
            (
                "dev:\n  components:\n    - name: a\n",
                ":2:3: `dev.components[0]`: needs a `file`, an `image` or a `project`",
            ),
            (
                "dev:\n  components:\n    - { name: a, file: a.wasm, image: x }\n",
                "`dev.components[0]`: sets both `file` and `image`; use exactly one",
            ),
            (
                "dev:\n  components:\n    - { name: a, file: a.wasm, pullPolicy: Always }\n",
                "`pullPolicy` applies only with `image`",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
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
