//! The workload model: what a user asks the host to run.
//!
//! The shapes and field names follow wasmCloud v2's `Workload` resource
//! (`runtime.wasmcloud.dev/v1alpha1`), so the same manifests work on both:
//! a workload has a namespace and a name, components (each with an image and
//! local resources), host interfaces it may use, volumes, and optionally a
//! long-lived service. Every field of wasmCloud's resource is known here;
//! an unknown field is an error naming it (a typo such as `memoryLimitMB`
//! must not silently leave a default in place).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The name a workload's service goes by in its status and logs.
pub const SERVICE_NAME: &str = "service";

/// When a pull goes to the registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum PullPolicy {
    /// Every time: the reference is resolved again (a moved tag is seen).
    Always,
    /// Only when the cache has nothing for the reference.
    #[default]
    IfNotPresent,
    /// Never: the cache must have it.
    Never,
}

/// A pull policy that is none of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown pull policy `{0}` (expected Always, IfNotPresent or Never)")]
pub struct UnknownPullPolicy(pub String);

impl<'de> Deserialize<'de> for PullPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for PullPolicy {
    type Err = UnknownPullPolicy;

    /// Any case, with or without `-` or `_`: Kubernetes writes
    /// `IfNotPresent`, wash `ifNotPresent`, flags `if-not-present`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let folded: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | '_'))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match folded.as_str() {
            "always" => Ok(Self::Always),
            "ifnotpresent" => Ok(Self::IfNotPresent),
            "never" => Ok(Self::Never),
            _ => Err(UnknownPullPolicy(s.to_string())),
        }
    }
}

/// A workload: one unit of tenancy made of one or more components.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Namespace (defaults to `default`).
    pub namespace: String,
    /// Name, unique within the namespace.
    pub name: String,
    /// What to run.
    pub spec: WorkloadSpec,
}

impl Workload {
    /// A workload of one component, `image`, serving `wasi:http` on `host`;
    /// the component is named like the workload.
    pub fn single_http_component(namespace: &str, name: &str, image: &str, host: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            spec: WorkloadSpec {
                components: vec![ComponentSpec {
                    name: name.into(),
                    image: image.into(),
                    ..Default::default()
                }],
                host_interfaces: vec![HostInterface {
                    namespace: "wasi".into(),
                    package: "http".into(),
                    interfaces: vec!["incoming-handler".into()],
                    config: [("host".to_string(), host.to_string())].into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        }
    }

    /// The id a host knows this workload by: `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The body of a workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSpec {
    /// The components; the one exporting a `wasi:http` handler receives HTTP requests.
    #[serde(default)]
    pub components: Vec<ComponentSpec>,
    /// Host interfaces the workload may use, with their configuration
    /// (e.g. `wasi:http` with `host`, `wasi:sockets` to allow sockets).
    #[serde(default)]
    pub host_interfaces: Vec<HostInterface>,
    /// HTTP middleware around the HTTP handler, outermost first: each names
    /// a component of this workload that exports and calls the HTTP handler
    /// interface. A request passes them in order, then the handler; the
    /// response passes them in reverse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub middleware: Vec<String>,
    /// An optional long-lived component exporting `wasi:cli/run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSpec>,
    /// Volumes components may mount.
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// Labels a host must carry to run this workload (cluster placement).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_selector: BTreeMap<String, String>,
    /// Nimbus extension: link components ahead of time, at start, into one
    /// component per root (a component importing from others that none
    /// imports from), so calls between them are direct. The parts then run
    /// with the root's environment, config and limits.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compose: bool,
    /// wasmCloud: pins the workload to one host id. Accepted; Nimbus's
    /// placement uses `hostSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// wasmCloud: the host environment the workload is scheduled in.
    /// Accepted; Nimbus's placement uses `hostSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// wasmCloud: the Kubernetes `Service` that fronts the workload.
    /// Accepted; it means nothing outside Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesSpec>,
}

/// wasmCloud's `kubernetes` block of a workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSpec {
    /// The Service in front of the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<NamedRef>,
}

/// A reference by name (`imagePullSecret`, a Kubernetes service).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedRef {
    /// The referenced object's name.
    pub name: String,
}

/// One component of a workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentSpec {
    /// Name, unique within the workload.
    pub name: String,
    /// Where the bytes come from: a path or `file://` URL (relative to the
    /// manifest), or an OCI reference.
    pub image: String,
    /// When an OCI image is pulled; the host's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// wasmCloud: a Kubernetes secret with registry credentials. Accepted;
    /// a Nimbus host uses its docker config or `--username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<NamedRef>,
    /// Limits, configuration, environment and mounts.
    #[serde(default)]
    pub local_resources: LocalResources,
    /// Most requests one instance serves before it is recycled (P3 reuse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_invocations: Option<u32>,
    /// Most requests one instance serves at the same time (P3 reuse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// How long an idle instance is kept for reuse, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    /// Accepted for compatibility with wasmCloud manifests; instances are
    /// pooled by the engine instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<i64>,
}

/// Limits and settings local to one component.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalResources {
    /// Linear memory limit in MiB (unset or <= 0: the host default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_mb: Option<i64>,
    /// The CPU all instances of the component may use together, in cores
    /// (`1`, `0.25`) or as a quantity (`"250m"`); over it, the component
    /// is held back at its next yield, never killed (unset: the host
    /// default, which is no limit unless the host sets one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_limit: Option<crate::CpuLimit>,
    /// Request deadline in milliseconds (unset: the host default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Most requests the workload handles at once; excess gets 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_requests: Option<u32>,
    /// Free-form configuration for the component and its plugins.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// The only environment variables the component sees: literal values
    /// (`config`), every key of named config sources (`configFrom`), and of
    /// named secret sources (`secretFrom`, the one explicit way a secret
    /// becomes an environment variable).
    #[serde(default, skip_serializing_if = "ConfigLayer::is_empty")]
    pub environment: ConfigLayer,
    /// Volumes mounted into the component's filesystem.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// Hosts outgoing HTTP may reach: `example.com`, `*.example.com`,
    /// optionally with `:port`. Empty denies all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// wasmCloud: names the guest may resolve through `wasi:sockets`.
    /// Accepted; Nimbus's guests resolve through the outbound policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_ip_name_lookups: Vec<String>,
    /// wasmCloud: host loopback ports the guest may connect to. Accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_host_loopback_ports: Vec<String>,
}

/// A volume mounted into a component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeMount {
    /// Name of a volume in the workload's `volumes`.
    pub name: String,
    /// Where the guest sees it.
    pub mount_path: String,
    /// Mounts are read-only unless this is explicitly `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

impl VolumeMount {
    /// Whether the guest may write: only when declared writable.
    pub fn writable(&self) -> bool {
        self.read_only == Some(false)
    }
}

/// A volume a workload declares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    /// Name mounts refer to.
    pub name: String,
    /// A directory on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathVolume>,
    /// A fresh empty directory living as long as the workload
    /// (wasmCloud's CRD calls it `ephemeral`).
    #[serde(default, alias = "ephemeral", skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirVolume>,
}

/// A host directory volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostPathVolume {
    /// The directory on the host (relative paths are relative to the manifest).
    pub path: String,
}

/// An empty-directory volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyDirVolume {}

/// A host interface the workload uses, e.g. `wasi:http` with its routing config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostInterface {
    /// WIT namespace, e.g. `wasi`.
    pub namespace: String,
    /// WIT package, e.g. `http`.
    pub package: String,
    /// Interfaces of the package, e.g. `incoming-handler`.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Package version, if pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Distinguishes several entries of one `namespace:package`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Interface configuration (for `wasi:http`: `host`, `host-aliases`;
    /// for `wasi:config`: values the store serves).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Named config sources merged into `config` (later entries win).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_from: Vec<SourceRef>,
    /// Named secret sources this interface may hand to the guest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_from: Vec<SourceRef>,
}

/// Values from literals and named sources, as wasmCloud's `ConfigLayer`.
/// Unknown keys are refused here (not ignored) so that variables written
/// straight under `environment:` fail loudly instead of vanishing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigLayer {
    /// Literal values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Named config sources whose keys are merged in (later entries win).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_from: Vec<SourceRef>,
    /// Named secret sources whose keys are merged in (later entries win).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_from: Vec<SourceRef>,
}

impl ConfigLayer {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.config.is_empty() && self.config_from.is_empty() && self.secret_from.is_empty()
    }
}

/// A reference to a named config or secret source: `{name: db}` as
/// Kubernetes writes it, or just `db` as wash's project config does.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SourceRef {
    /// The source's name.
    pub name: String,
}

impl<'de> Deserialize<'de> for SourceRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ByName {
            name: String,
        }
        impl From<ByName> for SourceRef {
            fn from(ByName { name }: ByName) -> SourceRef {
                SourceRef { name }
            }
        }
        crate::forms::string_or_map::<_, _, ByName>(
            deserializer,
            "a source name, or a map with `name`",
            |name| SourceRef { name: name.into() },
        )
    }
}

impl HostInterface {
    /// Whether this names `namespace:package`.
    pub fn is(&self, namespace: &str, package: &str) -> bool {
        self.namespace == namespace && self.package == package
    }
}

/// A long-lived component of a workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    /// Where the bytes come from.
    pub image: String,
    /// When an OCI image is pulled; the host's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// wasmCloud: registry credentials by Kubernetes secret. Accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<NamedRef>,
    /// Limits and settings.
    #[serde(default)]
    pub local_resources: LocalResources,
    /// How often it is restarted after failing.
    #[serde(default)]
    pub max_restarts: u64,
}

impl WorkloadSpec {
    /// The names of a workload spec's fields, as written in manifests.
    pub const FIELDS: &[&str] = &[
        "components",
        "hostInterfaces",
        "middleware",
        "service",
        "volumes",
        "hostSelector",
        "compose",
        "hostId",
        "environment",
        "kubernetes",
    ];

    /// The fields this spec sets that wasmCloud has and Nimbus does not act
    /// on, each as `path has no effect here (why)`, for a notice: accepted
    /// so wasmCloud's manifests run unchanged, never passed over in silence.
    pub fn fields_without_effect(&self) -> Vec<String> {
        const PLACEMENT: &str = "Nimbus places workloads by `hostSelector`";
        let mut fields = Vec::new();
        let mut note = |path: String, why: &str| {
            fields.push(format!("{path} has no effect here ({why})"));
        };
        if self.host_id.is_some() {
            note("hostId".into(), PLACEMENT);
        }
        if self.environment.is_some() {
            note("environment".into(), PLACEMENT);
        }
        if self.kubernetes.is_some() {
            note(
                "kubernetes".into(),
                "it describes a Kubernetes Service, which Nimbus does not create",
            );
        }
        let parts = self
            .components
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    format!("components[{i}]"),
                    c.image_pull_secret.is_some(),
                    &c.local_resources,
                )
            })
            .chain(self.service.iter().map(|s| {
                (
                    "service".to_string(),
                    s.image_pull_secret.is_some(),
                    &s.local_resources,
                )
            }));
        for (path, pull_secret, resources) in parts {
            if pull_secret {
                note(
                    format!("{path}.imagePullSecret"),
                    "registry credentials come from the host's docker config or its `--username`",
                );
            }
            if !resources.allowed_ip_name_lookups.is_empty() {
                note(
                    format!("{path}.localResources.allowedIpNameLookups"),
                    "with `wasi:sockets` a guest may resolve any name; outgoing HTTP is bounded by `allowedHosts`",
                );
            }
            if !resources.allowed_host_loopback_ports.is_empty() {
                note(
                    format!("{path}.localResources.allowedHostLoopbackPorts"),
                    "the host's loopback is reached only through an `allowedHosts` entry naming `localhost` or the address",
                );
            }
        }
        for (i, component) in self.components.iter().enumerate() {
            if component.pool_size.is_some() {
                note(
                    format!("components[{i}].poolSize"),
                    "instances are made on demand; `maxInvocations` and `maxConcurrency` set their reuse",
                );
            }
        }
        fields
    }

    /// What reaches the workload other than HTTP requests, if anything: a
    /// long-lived service, or subscriptions configured for its message
    /// handler (`wasmcloud:messaging`'s `subscriptions`, `wasmcloud:nats`'s
    /// `core-subscriptions`, `jetstream-subscriptions` or `kv-watches`, on
    /// the entry or in a component's `localResources.config`). Such a
    /// workload must not be parked while idle: only an HTTP request wakes
    /// it. Subscriptions that come only from a `configFrom` source are not
    /// seen here; the host refuses to park such a workload itself.
    pub fn reached_other_than_by_http(&self) -> Option<String> {
        if self.service.is_some() {
            return Some("its service would stop".to_string());
        }
        for entry in &self.host_interfaces {
            let keys: &[&str] = if entry.is("wasmcloud", "messaging") {
                &["subscriptions"]
            } else if entry.is("wasmcloud", "nats") {
                &[
                    "core-subscriptions",
                    "jetstream-subscriptions",
                    "kv-watches",
                ]
            } else {
                continue;
            };
            let subscribes = |config: &BTreeMap<String, String>| {
                config.iter().any(|(key, value)| {
                    keys.contains(&key.trim().replace('_', "-").as_str())
                        && value.split(',').any(|item| !item.trim().is_empty())
                })
            };
            if subscribes(&entry.config)
                || self
                    .components
                    .iter()
                    .any(|c| subscribes(&c.local_resources.config))
            {
                return Some(format!(
                    "it would miss what its {}:{} subscriptions deliver",
                    entry.namespace, entry.package
                ));
            }
        }
        None
    }

    /// The `wasi:http` host interface, if declared.
    pub fn http_interface(&self) -> Option<&HostInterface> {
        self.host_interfaces.iter().find(|i| i.is("wasi", "http"))
    }

    /// Host names the workload answers on (`host` plus `host-aliases`), lower-cased.
    pub fn http_hosts(&self) -> Vec<String> {
        let Some(http) = self.http_interface() else {
            return Vec::new();
        };
        let mut hosts = Vec::new();
        if let Some(host) = http.config.get("host") {
            hosts.push(host.trim().to_ascii_lowercase());
        }
        if let Some(aliases) = http.config.get("host-aliases") {
            hosts.extend(
                aliases
                    .split(',')
                    .map(|a| a.trim().to_ascii_lowercase())
                    .filter(|a| !a.is_empty()),
            );
        }
        hosts.retain(|h| !h.is_empty());
        hosts
    }

    /// The `wasi:config` host interface, if declared.
    pub fn config_interface(&self) -> Option<&HostInterface> {
        self.host_interfaces.iter().find(|i| i.is("wasi", "config"))
    }

    /// Whether `wasi:sockets` is declared, which is what allows sockets.
    pub fn allows_sockets(&self) -> bool {
        self.host_interfaces.iter().any(|i| i.is("wasi", "sockets"))
    }
}
