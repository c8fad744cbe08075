//! The Nimbus model: what users write and what hosts report, with no
//! engine in it.
//!
//! Everything here is plain data and its rules: the workload spec and the
//! manifests it is read from (wasmCloud v2 kinds), named config and secret
//! sources and their values, [`secret::Secret`], `allowedHosts` patterns,
//! host-level plugin defaults, workload status, and what a component is
//! (valid or not, its imports and exports) as read from its bytes. The
//! project tooling and the cluster controller read and check workloads
//! through this crate alone, without compiling wasmtime.
//!
//! # Layout
//!
//! - [`spec`]: the workload and its parts.
//! - [`cpu_limit`]: `cpuLimit`, a component's CPU share (`0.25`, `250m`).
//! - [`manifest`]: manifest documents, their parsing and validation.
//! - [`load`]: manifest files, read with a bound and made absolute.
//! - [`sources`]: named config and secret sources and resolving them.
//! - [`secret`]: a value that is never printed.
//! - [`files`]: bounded reads of user-named files.
//! - [`time`]: moments reached from configured durations, without panics.
//! - [`text`]: outside text made one bounded line.
//! - [`forms`]: the string-or-map shapes of wasmCloud's YAML.
//! - [`host_pattern`]: `allowedHosts` entries.
//! - [`labels`]: host labels and `hostSelector`, in Kubernetes label syntax.
//! - [`links`]: which import links to which component, and what the host
//!   provides itself.
//! - [`plugin_defaults`]: host-level settings per plugin.
//! - [`autoscaling`]: replicas that follow the load (`spec.autoscaling`).
//! - [`rollout`]: how a replicated workload moves to a changed template
//!   (`deployPolicy`, `rollingUpdate`).
//! - [`backends`]: which capability keeps its data in which backend, and
//!   the one resolver of backend settings and their one-string form.
//! - [`status`]: what a host reports about what it runs.
//! - [`component`]: a component's validity, imports and exports.

pub mod autoscaling;
pub mod backends;
pub mod component;
pub mod cpu_limit;
pub mod files;
pub mod forms;
pub mod host_pattern;
pub mod labels;
pub mod links;
pub mod load;
pub mod manifest;
pub mod plugin_defaults;
pub mod rollout;
pub mod secret;
pub mod sources;
pub mod spec;
pub mod status;
pub mod text;
pub mod time;

pub use component::{ComponentError, ComponentWorld, component_world, validate_component_bytes};
pub use cpu_limit::{CpuLimit, CpuLimitError};
pub use host_pattern::{HostPattern, HostPatternError};
pub use load::{LoadError, load_component_plugins_file, load_manifest_file, local_image_path};
pub use manifest::{
    API_VERSION, Manifest, ManifestDocument, ManifestError, parse_manifest, validate_workload,
};
pub use plugin_defaults::PluginDefaults;
pub use secret::Secret;
pub use sources::{ConfigValue, MissingSource, NamedSources};
pub use spec::*;
pub use status::{
    ComponentStatus, HttpKind, ServiceState, ServiceStatus, WorkloadState, WorkloadStatus,
};
