//! Manifest files as a user names them: read with a bound, parsed, and
//! their relative paths (local images, host-path volumes) made absolute
//! against the file's own directory.

/// Reads a manifest file and makes relative `file://` images and host-path
/// volumes absolute against the manifest's directory.
pub fn load_manifest_file(path: &std::path::Path) -> Result<crate::manifest::Manifest, LoadError> {
    let text = crate::files::read_text_bounded(path, crate::manifest::MAX_MANIFEST_BYTES as u64)
        .map_err(LoadError::Read)?;
    let mut manifest =
        crate::manifest::parse_manifest(&text).map_err(|source| LoadError::Manifest {
            path: path.to_path_buf(),
            source,
        })?;
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    for doc in &mut manifest.documents {
        let spec = &mut doc.workload.spec;
        for component in &mut spec.components {
            component.image = absolutize_image(&component.image, &base);
        }
        if let Some(service) = &mut spec.service {
            service.image = absolutize_image(&service.image, &base);
        }
        for volume in &mut spec.volumes {
            if let Some(host) = &mut volume.host_path {
                let p = std::path::Path::new(&host.path);
                if p.is_relative() {
                    host.path = base.join(p).to_string_lossy().into_owned();
                }
            }
        }
    }
    Ok(manifest)
}

fn absolutize_image(image: &str, base: &std::path::Path) -> String {
    match local_image_path(image) {
        Some(path) if path.is_relative() => format!("file://{}", base.join(path).display()),
        _ => image.to_string(),
    }
}

/// The local file an image names, if it names one: `file://PATH`, or a
/// path that is absolute, starts with `.`, or ends in `.wasm`.
pub fn local_image_path(image: &str) -> Option<std::path::PathBuf> {
    if let Some(path) = image.strip_prefix("file://") {
        return Some(path.into());
    }
    let looks_local = image.starts_with('/')
        || image.starts_with("./")
        || image.starts_with("../")
        || image.ends_with(".wasm");
    looks_local.then(|| image.into())
}

/// Why a manifest file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read (missing, not a regular file, too large).
    #[error(transparent)]
    Read(crate::files::FileError),
    /// The file is not a valid manifest.
    #[error("invalid manifest `{}`: {source}", path.display())]
    Manifest {
        /// The manifest path.
        path: std::path::PathBuf,
        /// What is wrong, with the field path.
        source: crate::manifest::ManifestError,
    },
}
