//! WIT dependencies of a project: what its `wit/` folder uses but does not
//! define, fetched from registries the way `wkg` and `wash` fetch them
//! (WIT packages as OCI artifacts; `wkg.toml` overrides and `wkg.lock`
//! respected and written), or, when no registry answers, taken from the WIT
//! of the interfaces Nimbus itself implements, which this crate embeds.
//!
//! - [`missing_packages`]: the packages a `wit/` folder needs and lacks.
//! - [`fetch`]: fills `wit/deps/`, from a registry or from the embedded WIT.
//! - [`embedded_packages`]: what Nimbus embeds.

mod embedded;
mod missing;
mod registry;

pub use embedded::{EmbeddedPackage, embedded_packages};
pub use missing::{Package, missing_packages};
pub use registry::{FetchOptions, FetchReport, fetch};

use std::path::PathBuf;

/// Why a project's WIT dependencies could not be read or filled.
#[derive(Debug, thiserror::Error)]
pub enum WitError {
    /// A WIT file or folder could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file was too large, not a regular file, or otherwise refused.
    #[error("{0}")]
    File(#[from] nimbus_model::files::FileError),
    /// A WIT file does not parse.
    #[error("{0}")]
    Parse(String),
    /// `deps/` holds more entries than a project could mean.
    #[error("{} holds more than {limit} entries", dir.display())]
    TooManyEntries {
        /// The folder.
        dir: PathBuf,
        /// The bound.
        limit: usize,
    },
    /// The registry client's configuration (`WKG_CONFIG_FILE` or the global
    /// wkg config) is invalid.
    #[error("{}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `wit/deps` is a symbolic link: a fetch replaces and writes into it.
    #[error("{} is a symbolic link; make it a folder of the project", .0.display())]
    DepsIsALink(PathBuf),
    /// A file under `wit/deps/` could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The registry's content differs from the digest `wkg.lock` pins.
    #[error("{0} (delete its entry from wkg.lock to accept the new content)")]
    LockMismatch(String),
    /// Packages are still missing: the registry failed (`cause`) and Nimbus
    /// embeds no WIT for them.
    #[error("cannot fetch {}: {cause}", list(packages))]
    Unresolved {
        /// The packages no source had.
        packages: Vec<Package>,
        /// What the registry said.
        cause: String,
    },
}

fn list(packages: &[Package]) -> String {
    packages
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
