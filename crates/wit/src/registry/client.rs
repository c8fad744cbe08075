//! The registry client itself (the `registry` cargo feature): fetching
//! through wasm-pkg-core with wkg's configuration, `wkg.toml` overrides
//! checked, and `wkg.lock` written in one step.

use super::{FetchOptions, Fetched};
use crate::WitError;
use std::path::{Path, PathBuf};
#[cfg(test)]
use std::time::Duration;
use wasm_pkg_client::caching::{CachingClient, FileCache};
use wasm_pkg_core::lock::LockFile;

/// The largest `wkg.toml`, `wkg.lock` or wkg config read.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Fetches through wasm-pkg-core; `Err` carries the cause as one line.
/// wkg works on a private copy of `wkg.lock` (a cancelled or failed fetch
/// leaves the project's untouched; the caller writes the new one).
pub(super) async fn from_registry(
    project_dir: &Path,
    wit_dir: &Path,
    options: &FetchOptions,
) -> Result<Fetched, String> {
    let config = client_config(options).await.map_err(|e| e.to_string())?;
    let manifest = project_manifest(project_dir).map_err(|e| e.to_string())?;
    let lock_path = project_dir.join(wasm_pkg_core::lock::LOCK_FILE_NAME);
    let existing = usable_lock(&lock_path).map_err(|e| e.to_string())?;
    let scratch = tempfile::tempdir().map_err(|e| format!("cannot make a scratch folder: {e}"))?;
    let work_lock = scratch.path().join(wasm_pkg_core::lock::LOCK_FILE_NAME);
    let mut lock = match existing {
        Some(text) => {
            std::fs::write(&work_lock, text).map_err(|e| format!("cannot copy wkg.lock: {e}"))?;
            LockFile::load_from_path(&work_lock, false).await
        }
        None => LockFile::new_with_path([], &work_lock).await,
    }
    .map_err(|e| format!("wkg.lock: {}", one_line(&e)))?;
    let cache = FileCache::new(&options.cache_dir)
        .await
        .map_err(|e| one_line(&e))?;
    let client = CachingClient::new(Some(wasm_pkg_client::Client::new(config)), cache);
    wasm_pkg_core::wit::fetch_dependencies(
        &manifest,
        wit_dir,
        &mut lock,
        client,
        wasm_pkg_core::wit::OutputType::Wit,
    )
    .await
    .map_err(|e| one_line(&e))?;
    lock.write().await.map_err(|e| one_line(&e))?;
    let packages = lock
        .packages
        .iter()
        .flat_map(|package| {
            package
                .versions
                .iter()
                .map(move |v| format!("{}@{}", package.name, v.version))
        })
        .collect();
    drop(lock);
    let lock = std::fs::read_to_string(&work_lock).map_err(|e| format!("wkg.lock: {e}"))?;
    Ok(Fetched { packages, lock })
}

/// Replaces the project's `wkg.lock` in one step (a sibling file renamed
/// over it), so it is never seen half written.
pub(super) fn write_lock(project_dir: &Path, text: &str) -> Result<(), WitError> {
    let path = project_dir.join(wasm_pkg_core::lock::LOCK_FILE_NAME);
    let partial = project_dir.join(".wkg.lock.partial");
    let failed = |source| WitError::Write {
        path: path.clone(),
        source,
    };
    std::fs::write(&partial, text).map_err(failed)?;
    std::fs::rename(&partial, &path).map_err(failed)
}

/// wkg's configuration: its defaults, then `config_file`, `WKG_CONFIG_FILE`
/// or the user's global file; then wash's namespaces where unset.
async fn client_config(options: &FetchOptions) -> Result<wasm_pkg_client::Config, WitError> {
    let mut config = wasm_pkg_client::Config::default();
    let named = options
        .config_file
        .clone()
        .or_else(|| std::env::var_os("WKG_CONFIG_FILE").map(PathBuf::from));
    let file = match named {
        Some(path) => Some(path),
        None => wasm_pkg_client::Config::global_config_path().filter(|p| p.exists()),
    };
    if let Some(path) = file {
        let text = nimbus_model::files::read_text_bounded(&path, MAX_CONFIG_BYTES)?;
        let loaded = wasm_pkg_client::Config::from_toml(&text).map_err(|e| WitError::Config {
            path: path.clone(),
            message: without_source_lines(&e.to_string()),
        })?;
        config.merge(loaded);
    }
    for (namespace, registry) in [
        ("wasmcloud", "wasmcloud.com"),
        ("wrpc", "bytecodealliance.org"),
    ] {
        let label = namespace.parse().expect("a valid namespace label");
        if config.namespace_registry(&label).is_none() {
            config.set_namespace_registry(
                label,
                wasm_pkg_client::RegistryMapping::Registry(
                    registry.parse().expect("a valid registry name"),
                ),
            );
        }
    }
    Ok(config)
}

/// The project's `wkg.toml`, with override paths made absolute (wkg reads
/// them relative to the project, and Nimbus may run elsewhere).
fn project_manifest(project_dir: &Path) -> Result<wasm_pkg_core::manifest::Manifest, WitError> {
    let path = project_dir.join(wasm_pkg_core::manifest::MANIFEST_FILE_NAME);
    if !path.exists() {
        return Ok(Default::default());
    }
    // Checked first: a regular file of sane size, before wkg's reader.
    nimbus_model::files::read_text_bounded(&path, MAX_CONFIG_BYTES)?;
    let mut manifest =
        wasm_pkg_core::manifest::Manifest::load_from_path(&path).map_err(|e| WitError::Config {
            path: path.clone(),
            message: one_line(&e),
        })?;
    if let Some(overrides) = manifest.overrides.as_mut() {
        for entry in overrides.values_mut() {
            if let Some(local) = entry.path.as_mut() {
                if local.is_relative() {
                    *local = project_dir.join(&*local);
                }
                check_override(local)?;
            }
        }
    }
    Ok(manifest)
}

/// An override's folder or file, checked before wkg reads it unbounded:
/// regular files of sane size, a bounded number of them.
fn check_override(path: &Path) -> Result<(), WitError> {
    if !path.is_dir() {
        nimbus_model::files::read_bounded_blocking(path, crate::missing::MAX_WASM_PACKAGE_BYTES)?;
        return Ok(());
    }
    let deps = path.join("deps");
    let mut folders = vec![path.to_path_buf()];
    if deps.is_dir() {
        folders.extend(
            crate::missing::entries(&deps)?
                .into_iter()
                .filter(|p| p.is_dir()),
        );
        folders.push(deps);
    }
    for folder in folders {
        for file in crate::missing::entries(&folder)? {
            if file.extension().is_some_and(|e| e == "wit" || e == "wasm") {
                nimbus_model::files::read_bounded_blocking(
                    &file,
                    crate::missing::MAX_WASM_PACKAGE_BYTES,
                )?;
            }
        }
    }
    Ok(())
}

/// The text of `wkg.lock`, if it exists with content: an empty one (wash
/// leaves them) counts as absent. Read with a bound, regular files only.
fn usable_lock(path: &Path) -> Result<Option<String>, WitError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    let text = nimbus_model::files::read_text_bounded(path, MAX_CONFIG_BYTES)?;
    Ok((!text.trim().is_empty()).then_some(text))
}

/// A TOML error without the source lines it quotes (a wkg config holds
/// registry passwords): its location line and its message.
fn without_source_lines(message: &str) -> String {
    let kept: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.contains('|') && !line.starts_with('^'))
        .collect();
    kept.join(": ")
}

/// An anyhow chain (wasm-pkg-core's errors) as one line, each cause once.
fn one_line(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let text = text.lines().next().unwrap_or_default().trim().to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_broken_wkg_config_is_reported_without_its_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[registry.\"example.com\".oci]\nauth = { username = \"u\", password = \"hunter2 }\n",
        )
        .unwrap();
        let options = FetchOptions {
            cache_dir: dir.path().join("cache"),
            timeout: Duration::from_secs(5),
            config_file: Some(path),
        };
        let error = client_config(&options).await.unwrap_err().to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(!error.contains('\n'), "{error}");
        assert!(error.contains("config.toml"), "{error}");
    }
}
