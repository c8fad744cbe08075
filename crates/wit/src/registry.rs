//! Filling `wit/deps/`: from registries through `wasm-pkg-client` and
//! `wasm-pkg-core` (the libraries `wkg` and `wash` use), else from the WIT
//! Nimbus embeds.
//!
//! Registry configuration is wkg's: the file named by `WKG_CONFIG_FILE`, or
//! the user's global wkg config, over wkg's defaults (`wasi` → `wasi.dev`);
//! `wasmcloud` and `wrpc` map to their registries unless configured, as in
//! wash. A project's `wkg.toml` (overrides) and `wkg.lock` are respected:
//! `wkg.lock` is written after a successful fetch, and content that differs
//! from a locked digest is refused. The whole fetch is bounded by
//! [`FetchOptions::timeout`]. Without the `registry` cargo feature there
//! is no client: the embedded WIT fills what it can.

use crate::embedded;
use crate::{Package, WitError, missing_packages};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[cfg(feature = "registry")]
mod client;
#[cfg(feature = "registry")]
use client::{from_registry, write_lock};

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Where fetched packages are cached between projects.
    pub cache_dir: PathBuf,
    /// The bound on the whole registry fetch.
    pub timeout: Duration,
    /// A wkg config file to use instead of `WKG_CONFIG_FILE` or the global
    /// one.
    pub config_file: Option<PathBuf>,
}

/// What a fetch did.
#[derive(Debug, Default)]
pub struct FetchReport {
    /// Packages the registry gave, as `wkg.lock` now records them.
    pub from_registry: Vec<String>,
    /// Packages written from the embedded WIT: each as asked for, and the
    /// embedded package that stood in.
    pub from_embedded: Vec<(Package, Package)>,
    /// Why the registry was not used, when it was not.
    pub registry_error: Option<String>,
}

/// Fills `wit_dir/deps/` for the project at `project_dir`: from the
/// registries, or, if they fail, from the embedded WIT for whatever is still
/// missing. Fails when packages stay missing.
pub async fn fetch(
    project_dir: &Path,
    wit_dir: &Path,
    options: &FetchOptions,
) -> Result<FetchReport, WitError> {
    // A WIT error in the project is the project's to fix, whatever the
    // registry says.
    missing_packages(wit_dir)?;
    // `deps/` is replaced and written into: it must be the project's own
    // folder, not a link to somewhere else.
    let deps = wit_dir.join("deps");
    if std::fs::symlink_metadata(&deps).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(WitError::DepsIsALink(deps));
    }
    let registry = tokio::time::timeout(
        options.timeout,
        from_registry(project_dir, wit_dir, options),
    )
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {} s", options.timeout.as_secs())));
    let mut report = FetchReport::default();
    match registry {
        Ok(fetched) => {
            write_lock(project_dir, &fetched.lock)?;
            report.from_registry = fetched.packages;
        }
        // A registry that answers with other bytes than `wkg.lock` pinned
        // is not an outage to paper over with the embedded WIT.
        Err(cause) if cause.contains("but the lock file specifies digest") => {
            return Err(WitError::LockMismatch(cause));
        }
        Err(cause) => report.registry_error = Some(cause),
    }
    let still_missing = missing_packages(wit_dir)?;
    if still_missing.is_empty() {
        return Ok(report);
    }
    report.from_embedded = from_embedded(wit_dir, still_missing, &report.registry_error)?;
    Ok(report)
}

/// Writes embedded packages for everything missing, and for what those
/// need in turn.
fn from_embedded(
    wit_dir: &Path,
    mut missing: BTreeSet<Package>,
    cause: &Option<String>,
) -> Result<Vec<(Package, Package)>, WitError> {
    let deps = wit_dir.join("deps");
    let mut written = Vec::new();
    // Each round writes packages whose own dependencies may be missing; the
    // embedded set is finite, so a few rounds suffice.
    for _ in 0..16 {
        if missing.is_empty() {
            return Ok(written);
        }
        let unknown: Vec<Package> = missing
            .iter()
            .filter(|p| embedded::find(p).is_none())
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(WitError::Unresolved {
                packages: unknown,
                cause: cause
                    .clone()
                    .unwrap_or_else(|| "the registry does not have them".into()),
            });
        }
        for wanted in missing {
            let embedded = embedded::find(&wanted).expect("checked above");
            embedded.write_as(&wanted, &deps)?;
            written.push((wanted, embedded.package.clone()));
        }
        missing = missing_packages(wit_dir)?;
    }
    Err(WitError::Unresolved {
        packages: missing.into_iter().collect(),
        cause: "the embedded WIT does not resolve them".into(),
    })
}

/// What the registries gave: the packages, and the new `wkg.lock` text.
#[cfg_attr(not(feature = "registry"), allow(dead_code))]
struct Fetched {
    packages: Vec<String>,
    lock: String,
}

/// Without the registry client every fetch takes the embedded WIT.
#[cfg(not(feature = "registry"))]
async fn from_registry(
    _project_dir: &Path,
    _wit_dir: &Path,
    _options: &FetchOptions,
) -> Result<Fetched, String> {
    Err(
        "this nimbus was built without the WIT registry client (cargo feature `wit-registry`)"
            .into(),
    )
}

#[cfg(not(feature = "registry"))]
fn write_lock(_project_dir: &Path, _text: &str) -> Result<(), WitError> {
    Ok(())
}
