//! Workloads: the model users write ([`spec`], from `nimbus-model`), how a running workload serves requests ([`running`]), how
//! its component instances are managed ([`instance`]), how HTTP middleware
//! layers call inward ([`middleware`]), how components of one workload
//! call each other's interfaces ([`links`]), and how its long-lived service
//! is supervised ([`service`]).

pub mod dispatch;
pub mod instance;
pub mod links;
pub mod middleware;
pub mod running;
pub mod service;

/// The workloads of one host as destinations of outgoing HTTP requests
/// (the host's `local_workload_calls`): a request whose authority routes
/// to one of them is handed to it in memory. The host implements it; the
/// outbound sender asks it.
pub trait LocalWorkloads: Send + Sync {
    /// The running workload `uri` is addressed to, if it runs on this host.
    fn find(&self, uri: &http::Uri) -> Option<std::sync::Arc<running::RunningWorkload>>;
}

pub use instance::ReusePolicy;
pub use links::LinkError;
pub use nimbus_model::{
    API_VERSION, ComponentStatus, HttpKind, LoadError, ManifestDocument, ManifestError,
    MissingSource, NamedSources, ServiceState, ServiceStatus, WorkloadState, WorkloadStatus,
    load_manifest_file, local_image_path, manifest, parse_manifest, sources, spec,
    validate_workload,
};
pub use spec::*;
