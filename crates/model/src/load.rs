//! Manifest files as a user names them: read with a bound, parsed, and
//! their relative paths (local images, host-path volumes) made absolute
//! against the file's own directory.

/// Reads a manifest file and makes relative `file://` images and host-path
/// volumes absolute against the manifest's directory.
pub fn load_manifest_file(path: &std::path::Path) -> Result<crate::manifest::Manifest, LoadError> {
    // Before the read: a component is often larger than a manifest may be.
    if crate::files::is_wasm_file(path) {
        return Err(LoadError::WebAssembly(path.to_path_buf()));
    }
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
    /// A WebAssembly file was given where a manifest was expected.
    #[error(
        "`{}` is a WebAssembly file, not a workload manifest (YAML); `nimbus inspect` reads a component",
        .0.display()
    )]
    WebAssembly(std::path::PathBuf),
    /// The file is not a valid manifest.
    #[error("invalid manifest `{}`: {source}", path.display())]
    Manifest {
        /// The manifest path.
        path: std::path::PathBuf,
        /// What is wrong, with the field path.
        source: crate::manifest::ManifestError,
    },
    /// The file is not a valid component plugins file.
    #[error("invalid component plugins file `{}`: {message}", path.display())]
    ComponentPlugins {
        /// The file's path.
        path: std::path::PathBuf,
        /// What is wrong, with where.
        message: String,
    },
}

/// A host's component plugins file: `plugins:`, each a component as in a
/// workload (`name`, `image`, `localResources`).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentPluginsFile {
    plugins: Vec<crate::spec::ComponentSpec>,
}

/// Reads a component plugins file (the host's `--component-plugins`):
/// bounded, strict (an unknown field is named), names unique and not
/// empty, relative local images made absolute against the file's directory.
pub fn load_component_plugins_file(
    path: &std::path::Path,
) -> Result<Vec<crate::spec::ComponentSpec>, LoadError> {
    let invalid = |field: String, message: String| LoadError::ComponentPlugins {
        path: path.to_path_buf(),
        message: if field.is_empty() {
            message
        } else {
            format!("{field}: {message}")
        },
    };
    let text = crate::files::read_text_bounded(path, crate::manifest::MAX_MANIFEST_BYTES as u64)
        .map_err(LoadError::Read)?;
    crate::manifest::check_yaml_bounds(
        &text,
        crate::manifest::MAX_MANIFEST_BYTES,
        crate::manifest::MAX_NESTING_DEPTH,
    )
    .map_err(|e| invalid(String::new(), e.to_string()))?;
    let deserializer = serde_yaml_ng::Deserializer::from_str(&text);
    let file: ComponentPluginsFile = serde_path_to_error::deserialize(deserializer)
        // serde_yaml_ng's message names the field and line itself.
        .map_err(|e| invalid(String::new(), e.inner().to_string()))?;
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    let mut plugins = file.plugins;
    for (index, plugin) in plugins.iter_mut().enumerate() {
        if plugin.name.trim().is_empty() {
            return Err(invalid(format!("plugins[{index}].name"), "missing".into()));
        }
        if plugin.image.trim().is_empty() {
            return Err(invalid(format!("plugins[{index}].image"), "missing".into()));
        }
        plugin.image = absolutize_image(&plugin.image, &base);
    }
    for (index, plugin) in plugins.iter().enumerate() {
        if plugins[..index].iter().any(|p| p.name == plugin.name) {
            return Err(invalid(
                format!("plugins[{index}].name"),
                format!("`{}` is given twice", plugin.name),
            ));
        }
    }
    Ok(plugins)
}

#[cfg(test)]
mod component_plugin_tests {
    use super::*;

    fn load(text: &str) -> Result<Vec<crate::spec::ComponentSpec>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plugins.yaml");
        std::fs::write(&path, text).unwrap();
        load_component_plugins_file(&path).map_err(|e| e.to_string())
    }

    #[test]
    fn plugins_load_with_their_resources_and_relative_images_made_absolute() {
        let plugins = load(
            "plugins:\n  - name: vault\n    image: ./vault.wasm\n    localResources:\n      allowedHosts: [vault.internal:8200]\n      environment:\n        config: {VAULT_ADDR: 'http://vault.internal:8200'}\n  - name: api\n    image: ghcr.io/example/api-plugin:1.0\n",
        )
        .unwrap();
        assert_eq!(plugins.len(), 2);
        assert!(
            plugins[0].image.starts_with("file:///") && plugins[0].image.ends_with("/vault.wasm")
        );
        assert_eq!(
            plugins[0].local_resources.allowed_hosts,
            ["vault.internal:8200"]
        );
        assert_eq!(plugins[1].image, "ghcr.io/example/api-plugin:1.0");
    }

    #[test]
    fn unknown_fields_missing_images_and_twice_given_names_are_named() {
        let error =
            load("plugins:\n  - name: vault\n    image: v.wasm\n    imgae: typo\n").unwrap_err();
        assert!(error.contains("imgae"), "{error}");
        let error = load("plugins:\n  - name: vault\n").unwrap_err();
        assert!(error.contains("image"), "{error}");
        let error = load("plugins:\n  - {name: a, image: a.wasm}\n  - {name: a, image: b.wasm}\n")
            .unwrap_err();
        assert!(
            error.contains("plugins[1].name") && error.contains("twice"),
            "{error}"
        );
        let error = load("plugin: []\n").unwrap_err();
        assert!(error.contains("plugin"), "{error}");
    }
}

#[cfg(test)]
mod manifest_file_tests {
    use super::*;

    #[test]
    fn a_webassembly_file_given_as_a_manifest_is_named_as_one() {
        let dir = tempfile::tempdir().unwrap();
        // Larger than a manifest may be, and not UTF-8: neither is reported.
        let path = dir.path().join("app.yaml");
        let mut bytes = b"\0asm\x0d\x00\x01\x00".to_vec();
        bytes.resize(crate::manifest::MAX_MANIFEST_BYTES + 10, 0xff);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            load_manifest_file(&path).unwrap_err().to_string(),
            format!(
                "`{}` is a WebAssembly file, not a workload manifest (YAML); `nimbus inspect` reads a component",
                path.display()
            )
        );
        std::fs::write(&path, "kind: [").unwrap();
        assert!(matches!(
            load_manifest_file(&path),
            Err(LoadError::Manifest { .. })
        ));
    }
}
