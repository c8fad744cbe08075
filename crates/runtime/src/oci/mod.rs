//! Components in OCI registries, in the Wasm OCI artifact layout (one
//! `application/wasm` layer, config `application/vnd.wasm.config.v0+json`),
//! as `wkg`, `wash` and wasmCloud push and pull them.
//!
//! [`Registry::pull`] checks everything it is given: a reference pinned by
//! digest must match the manifest's digest, the manifest must be a Wasm
//! artifact, its layer must fit the size limit and hash to its descriptor.
//! Pulled components land in a content-addressed cache (`blobs/sha256/…`,
//! plus which digest a reference last named), which the pull policies read.
//! Registries are reached over HTTPS, except those named as insecure; a
//! loopback registry (`localhost`, 127.0.0.0/8, `[::1]`) that answers the
//! TLS handshake in plain HTTP is tried again over plain HTTP, as Docker
//! treats loopback registries, but without credentials (only a registry
//! named insecure is sent them in the clear).
//! Credentials come from the settings, else from the docker config (and
//! its credential helpers), else the pull is anonymous.

use crate::secret::Secret;
use std::path::PathBuf;
use std::time::Duration;

/// Media type of the component layer.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// Media type of the artifact's config.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
pub use nimbus_model::spec::PullPolicy;

/// A user name and password for registries.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user.
    pub username: String,
    /// The password or token; never printed.
    pub password: Secret,
}

/// How registries are reached.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Registries (`host[:port]`) spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// Largest component accepted, in bytes: the one size cap of every
    /// component source (a registry's layer, a local file).
    pub max_layer_bytes: u64,
    /// Used for every registry when set; otherwise the docker config.
    pub credentials: Option<Credentials>,
    /// Where pulled components are kept; `None` keeps nothing.
    pub cache_dir: Option<PathBuf>,
    /// Bound on one whole push or pull.
    pub timeout: Duration,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            max_layer_bytes: 100 * 1024 * 1024,
            credentials: None,
            cache_dir: dirs::cache_dir().map(|d| d.join("nimbus").join("oci")),
            timeout: Duration::from_secs(120),
        }
    }
}

/// Why a push or pull failed.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The reference does not parse.
    #[error("`{reference}` is not a valid image reference: {message}")]
    Reference {
        /// What was given.
        reference: String,
        /// Why it does not parse.
        message: String,
    },
    /// The registry refused or could not be reached.
    #[error("`{reference}`: {message}")]
    Registry {
        /// The image.
        reference: String,
        /// The registry's or the transport's error.
        message: String,
    },
    /// The registry could not be spoken to at all (DNS, a refused
    /// connection, a failed TLS handshake), with every cause.
    #[error("`{reference}`: cannot reach the registry {registry}: {message}")]
    Unreachable {
        /// The image.
        reference: String,
        /// `host[:port]` of the registry.
        registry: String,
        /// What failed, cause by cause.
        message: String,
        /// The registry answered the TLS handshake with something that is
        /// not TLS: it serves plain HTTP.
        plain_http: bool,
    },
    /// Content does not hash to the digest that names it.
    #[error("`{reference}`: digest mismatch: expected {expected}, got {actual}")]
    Digest {
        /// The image.
        reference: String,
        /// The digest the reference or manifest names.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// The artifact is not a Wasm component artifact.
    #[error("`{reference}` is not a Wasm component artifact: {message}")]
    MediaType {
        /// The image.
        reference: String,
        /// What is wrong with it.
        message: String,
    },
    /// The component layer is larger than allowed.
    #[error("`{reference}`: the component layer ({size} bytes) exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The image.
        reference: String,
        /// Its size (or the bytes received when it was cut off).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Pull policy `Never` and nothing cached.
    #[error("`{0}` is not in the local cache and the pull policy is Never")]
    NotCached(String),
    /// What is pushed is not a component.
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    /// The push or pull did not finish in time.
    #[error("`{reference}`: no answer within {} s", timeout.as_secs())]
    Timeout {
        /// The image.
        reference: String,
        /// The bound.
        timeout: Duration,
    },
    /// This build of nimbus has no OCI client.
    #[error(
        "`{0}`: pulling and pushing OCI images is not in this build of nimbus (rebuild it with the cargo feature `oci`)"
    )]
    NotBuilt(String),
    /// The local cache could not be read or written.
    #[error("OCI cache `{}`: {message}", path.display())]
    Cache {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
}

/// A component that was pulled (or found in the cache).
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The component's bytes.
    pub bytes: Vec<u8>,
    /// `sha256:…` of the bytes (the layer digest).
    pub digest: String,
    /// Whether it came from the cache without asking the registry.
    pub cached: bool,
}

/// What a push produced.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// `sha256:…` of the component layer.
    pub digest: String,
    /// `sha256:…` of the manifest, to pin the image (`ref@digest`).
    pub manifest_digest: String,
}

#[cfg(feature = "oci")]
mod client;
/// What a build without the `oci` feature answers.
#[cfg(not(feature = "oci"))]
mod compiled_out;
#[cfg(feature = "oci")]
mod fetch;
#[cfg(feature = "oci")]
pub use client::Registry;
#[cfg(not(feature = "oci"))]
pub use compiled_out::Registry;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policies_parse_in_both_spellings() {
        assert_eq!("Always".parse(), Ok(PullPolicy::Always));
        assert_eq!("if-not-present".parse(), Ok(PullPolicy::IfNotPresent));
        assert_eq!("Never".parse(), Ok(PullPolicy::Never));
        // wash's spelling.
        assert_eq!("ifNotPresent".parse(), Ok(PullPolicy::IfNotPresent));
        assert_eq!("if_not_present".parse(), Ok(PullPolicy::IfNotPresent));
        assert!(
            "Sometimes"
                .parse::<PullPolicy>()
                .unwrap_err()
                .to_string()
                .contains("Sometimes")
        );
    }

    #[cfg(feature = "oci")]
    #[tokio::test]
    async fn never_with_an_empty_cache_fails_without_a_registry() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(RegistrySettings {
            cache_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        });
        let error = registry
            .pull("127.0.0.1:9/app:1", PullPolicy::Never)
            .await
            .unwrap_err();
        assert!(matches!(error, OciError::NotCached(_)), "{error}");
        // Never, so that a reference that did parse could not go anywhere.
        let error = registry
            .pull("not a reference", PullPolicy::Never)
            .await
            .unwrap_err();
        assert!(matches!(error, OciError::Reference { .. }), "{error}");
    }
}
