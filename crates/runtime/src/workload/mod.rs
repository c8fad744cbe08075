//! Workloads: the model users write ([`spec`], from `nimbus-model`), how a running workload serves requests ([`running`]), how
//! its component instances are managed ([`instance`]), how HTTP middleware
//! layers call inward ([`middleware`]), how components of one workload
//! call each other's interfaces ([`links`]), how its long-lived service
//! is supervised ([`service`]), and which threads lately ran guest code for
//! long in one poll ([`long_polls`]).

pub mod dispatch;
pub mod instance;
pub mod links;
pub mod long_polls;
pub mod middleware;
pub mod running;
pub mod service;

pub use instance::ReusePolicy;
pub use links::LinkError;
pub use nimbus_model::{
    API_VERSION, ComponentStatus, HttpKind, LoadError, Manifest, ManifestDocument, ManifestError,
    MissingSource, NamedSources, ServiceState, ServiceStatus, WorkloadState, WorkloadStatus,
    load_manifest_file, local_image_path, manifest, parse_manifest, sources, spec,
    validate_workload,
};
pub use spec::*;
