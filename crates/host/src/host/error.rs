//! Why a host could not be built, and why a workload could not start or
//! was refused, with which of those a retry cannot fix.

use crate::artifact::ArtifactError;
use crate::compose::ComposeError;
use crate::engine::EngineError;
use crate::http::router::RouteError;
use crate::oci::OciError;
use crate::plugins::PluginError;
use crate::workload::{LinkError, ManifestError};

/// Why a host could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The engine could not be built.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The WASI linker could not be built.
    #[error("cannot link the WASI interfaces: {0}")]
    Linker(String),
}

/// Why a workload could not be started, replaced or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The workload is inconsistent.
    #[error("invalid workload: {0}")]
    Invalid(#[from] ManifestError),
    /// A component image could not be pulled from its registry.
    #[error("component `{component}`: {source}")]
    Image {
        /// Component name.
        component: String,
        /// Why the pull failed.
        source: OciError,
    },
    /// A component file could not be read (missing, not a regular file,
    /// larger than the component size limit, or too slow).
    #[error("component `{component}`: {source}")]
    Read {
        /// Component name.
        component: String,
        /// Why the file was not read.
        source: crate::files::FileError,
    },
    /// The bytes are not a usable component.
    #[error("component `{component}`: {source}")]
    Artifact {
        /// Component name.
        component: String,
        /// What is wrong with it.
        source: ArtifactError,
    },
    /// The component needs an interface no component of its workload
    /// exports and no plugin of the host provides.
    #[error(
        "component `{component}` imports `{interface}`, which no other component of the workload exports and this host does not provide"
    )]
    UnsupportedImport {
        /// Component name.
        component: String,
        /// The interface, e.g. `wasi:keyvalue/store@0.2.0-draft`.
        interface: String,
    },
    /// A plugin could not bind to the component (bad settings, missing source).
    #[error("component `{component}`: {source}")]
    Plugin {
        /// Component name.
        component: String,
        /// What the plugin refused.
        source: PluginError,
    },
    /// The component could not be linked for another reason.
    #[error("component `{component}` cannot be linked: {message}")]
    Link {
        /// Component name.
        component: String,
        /// wasmtime's explanation.
        message: String,
    },
    /// A volume mount could not be set up.
    #[error("component `{component}`: {message}")]
    Volume {
        /// Component name.
        component: String,
        /// What is wrong.
        message: String,
    },
    /// The workload's components cannot be linked to each other.
    #[error(transparent)]
    Links(#[from] LinkError),
    /// `compose: true`, and the components cannot be composed.
    #[error(transparent)]
    Compose(#[from] ComposeError),
    /// A middleware cannot take its place in the chain.
    #[error("middleware `{component}`: {message}")]
    Middleware {
        /// Component name.
        component: String,
        /// What is wrong.
        message: String,
    },
    /// The workload declares `wasi:http` but no component serves it.
    #[error(
        "workload `{0}` declares wasi:http but no component exports wasi:http/incoming-handler@0.2 or wasi:http/handler@0.3"
    )]
    NoHttpHandler(String),
    /// The router refused the workload's routes.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// A different workload already runs under this id.
    #[error("workload `{0}` is already running with a different spec; replace it instead")]
    Conflict(String),
    /// No workload with this id runs.
    #[error("workload `{0}` is not running")]
    NotFound(String),
    /// Parking would make the workload miss what reaches it other than
    /// HTTP requests, which alone wake a parked workload.
    #[error(
        "workload `{workload}` cannot scale to zero: {reason}, and only an HTTP request wakes a parked workload"
    )]
    NotParkable {
        /// The workload id.
        workload: String,
        /// What it would miss.
        reason: String,
    },
    /// The workload's service cannot run.
    #[error("service of workload `{workload}`: {message}")]
    Service {
        /// The workload id.
        workload: String,
        /// What is wrong.
        message: String,
    },
    /// A host component plugin could not be loaded.
    #[error("host component plugin `{plugin}`: {message}")]
    ComponentPlugin {
        /// The plugin's name.
        plugin: String,
        /// What is wrong.
        message: String,
    },
    /// A host-side failure (e.g. a panicked compile thread).
    #[error("internal error: {0}")]
    Internal(String),
}

impl WorkloadError {
    /// Whether the workload itself is at fault, so that starting it on
    /// another host would fail the same way: an image too large, not a
    /// regular file or not a component, an import nothing provides, an
    /// invalid spec. A cluster does not move such a workload around.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Invalid(_)
            | Self::Artifact { .. }
            | Self::UnsupportedImport { .. }
            | Self::Links(_)
            | Self::Middleware { .. }
            | Self::NoHttpHandler(_) => true,
            // A host built without the composer: another host may have it.
            Self::Compose(error) => !matches!(error, ComposeError::NotBuilt),
            Self::Read { source, .. } => source.is_content_error(),
            Self::Image { source, .. } => matches!(
                source,
                OciError::Reference { .. }
                    | OciError::MediaType { .. }
                    | OciError::TooLarge { .. }
                    | OciError::NotAComponent(_)
            ),
            _ => false,
        }
    }
}
