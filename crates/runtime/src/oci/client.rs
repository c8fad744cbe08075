//! The OCI client behind [`Registry`]: push with oci-client, pull through
//! [`super::fetch`] (every body read bounded), the checks every pull
//! makes, and the content-addressed cache.

use super::fetch;
use super::{
    OciError, PullPolicy, Pulled, Pushed, RegistrySettings, WASM_CONFIG_MEDIA_TYPE,
    WASM_LAYER_MEDIA_TYPE,
};
use crate::artifact::Digest;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Layer media types of older Wasm artifacts, still accepted on pull.
const LEGACY_LAYER_MEDIA_TYPES: &[&str] = &[
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.module.wasm.content.layer.v1+wasm",
];
const MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// The Wasm OCI config document.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig {
    created: String,
    architecture: String,
    os: String,
    layer_digests: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    component: Option<ComponentInfo>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ComponentInfo {
    exports: Vec<String>,
    imports: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
}

/// A client for Wasm artifacts in OCI registries.
pub struct Registry {
    client: Client,
    /// The pull's HTTP client, or why it could not be made.
    http: Result<reqwest::Client, String>,
    settings: RegistrySettings,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A client with these settings.
    pub fn new(settings: RegistrySettings) -> Self {
        // The HTTP client takes the process's rustls provider: ours is ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = client(&settings, settings.insecure.clone());
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(settings.timeout)
            .user_agent(concat!("nimbus/", env!("CARGO_PKG_VERSION")))
            // Pulls are few and far between: a pooled connection would
            // mostly be one the registry has closed meanwhile, which fails
            // the next request instead of reconnecting.
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                // A 307/308 re-sends a request's body (a token exchange's
                // refresh token) wherever it points: never from TLS to
                // plain HTTP.
                let downgrade = attempt.url().scheme() == "http"
                    && attempt
                        .previous()
                        .last()
                        .is_some_and(|from| from.scheme() == "https");
                if downgrade {
                    attempt.error("a redirect from https to plain http")
                } else if attempt.previous().len() >= MAX_REDIRECTS {
                    attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .map_err(|e| e.to_string());
        Self {
            client,
            http,
            settings,
        }
    }

    /// Runs `attempt` with the client, credentials and URL scheme for
    /// `image`'s registry; a loopback registry not named insecure that
    /// answers TLS in plain HTTP is tried again over plain HTTP (Docker
    /// treats 127.0.0.0/8 registries as insecure), anonymously: credentials
    /// go in the clear only to registries named insecure.
    async fn with_client<T, F>(
        &self,
        image: &Reference,
        attempt: impl Fn(Client, RegistryAuth, &'static str) -> F,
    ) -> Result<T, OciError>
    where
        F: Future<Output = Result<T, OciError>>,
    {
        let registry = image.resolve_registry();
        let named_insecure = self.settings.insecure.iter().any(|r| r == registry);
        let scheme = if named_insecure { "http" } else { "https" };
        let auth = self.auth(image).await?;
        let result = attempt(self.client.clone(), auth, scheme).await;
        match result {
            Err(OciError::Unreachable {
                plain_http: true, ..
            }) if is_loopback_registry(registry) && !named_insecure => {
                let mut insecure = self.settings.insecure.clone();
                insecure.push(registry.to_string());
                attempt(
                    client(&self.settings, insecure),
                    RegistryAuth::Anonymous,
                    "http",
                )
                .await
            }
            other => other,
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &RegistrySettings {
        &self.settings
    }

    /// Pushes a component under `reference`.
    pub async fn push(&self, reference: &str, component: Vec<u8>) -> Result<Pushed, OciError> {
        let image = parse(reference)?;
        crate::artifact::validate_component_bytes(&component)
            .map_err(|e| OciError::NotAComponent(e.to_string()))?;
        let world = nimbus_model::component_world(&component)
            .map_err(|e| OciError::NotAComponent(e.to_string()))?;
        let digest = Digest::of(&component).to_string();
        let config = WasmConfig {
            created: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            architecture: "wasm".into(),
            os: "wasip2".into(),
            layer_digests: vec![digest.clone()],
            component: Some(ComponentInfo {
                exports: world.exports,
                imports: world.imports,
                target: None,
            }),
        };
        let config = Config::new(
            serde_json::to_vec(&config).expect("the config serializes"),
            WASM_CONFIG_MEDIA_TYPE.into(),
            None,
        );
        let layers = [ImageLayer::new(
            component,
            WASM_LAYER_MEDIA_TYPE.into(),
            None,
        )];
        let manifest = OciImageManifest::build(&layers, &config, None);
        let registry_error = registry_error(reference, &image);
        let push = |client: Client, auth: RegistryAuth, _scheme| {
            let (config, manifest) = (config.clone(), manifest.clone());
            let (image, layers, digest) = (&image, &layers, digest.clone());
            async move {
                client
                    .push(image, layers, config, &auth, Some(manifest))
                    .await
                    .map_err(registry_error)?;
                let manifest_digest = client
                    .fetch_manifest_digest(image, &auth)
                    .await
                    .map_err(registry_error)?;
                Ok(Pushed {
                    digest,
                    manifest_digest,
                })
            }
        };
        self.bounded(reference, self.with_client(&image, push))
            .await
    }

    /// Pulls the component `reference` names, as `policy` says.
    pub async fn pull(&self, reference: &str, policy: PullPolicy) -> Result<Pulled, OciError> {
        let image = parse(reference)?;
        if policy != PullPolicy::Always
            && let Some(pulled) = self.cached(reference)?
        {
            return Ok(pulled);
        }
        if policy == PullPolicy::Never {
            return Err(OciError::NotCached(reference.to_string()));
        }
        let fetch =
            |_client, auth: RegistryAuth, scheme| self.fetch(auth, scheme, &image, reference);
        let pulled = self
            .bounded(reference, self.with_client(&image, fetch))
            .await?;
        self.store(reference, &pulled)?;
        Ok(pulled)
    }

    async fn bounded<T>(
        &self,
        reference: &str,
        work: impl Future<Output = Result<T, OciError>>,
    ) -> Result<T, OciError> {
        tokio::time::timeout(self.settings.timeout, work)
            .await
            .map_err(|_| OciError::Timeout {
                reference: reference.to_string(),
                timeout: self.settings.timeout,
            })?
    }

    async fn fetch(
        &self,
        auth: RegistryAuth,
        scheme: &'static str,
        image: &Reference,
        reference: &str,
    ) -> Result<Pulled, OciError> {
        let http = self.http.as_ref().map_err(|e| OciError::Registry {
            reference: reference.to_string(),
            message: format!("cannot set up an HTTP client: {e}"),
        })?;
        let mut session = fetch::Session::new(http, scheme, image, reference, auth);
        let media_error = |message: String| OciError::MediaType {
            reference: reference.to_string(),
            message,
        };
        let (raw, said_digest) = session.manifest(MANIFEST_MEDIA_TYPES).await?;
        let manifest_digest = Digest::of(&raw).to_string();
        // A registry's `Docker-Content-Digest` must name what it sent (one
        // in another algorithm cannot be checked here and is left).
        if let Some(said) = said_digest
            && said.starts_with("sha256:")
            && said != manifest_digest
        {
            return Err(OciError::Digest {
                reference: reference.to_string(),
                expected: said,
                actual: manifest_digest,
            });
        }
        if let Some(pinned) = image.digest()
            && pinned != manifest_digest
        {
            return Err(OciError::Digest {
                reference: reference.to_string(),
                expected: pinned.to_string(),
                actual: manifest_digest,
            });
        }
        let manifest: OciImageManifest = serde_json::from_slice(&raw)
            .map_err(|e| media_error(format!("its manifest is not an image manifest ({e})")))?;
        if manifest.config.media_type != WASM_CONFIG_MEDIA_TYPE {
            return Err(media_error(format!(
                "its config has media type `{}`, not `{WASM_CONFIG_MEDIA_TYPE}`",
                manifest.config.media_type
            )));
        }
        let [layer] = manifest.layers.as_slice() else {
            return Err(media_error(format!(
                "it has {} layers; a Wasm artifact has exactly one",
                manifest.layers.len()
            )));
        };
        if layer.media_type != WASM_LAYER_MEDIA_TYPE
            && !LEGACY_LAYER_MEDIA_TYPES.contains(&layer.media_type.as_str())
        {
            return Err(media_error(format!(
                "its layer has media type `{}`, not `{WASM_LAYER_MEDIA_TYPE}`",
                layer.media_type
            )));
        }
        let limit = self.settings.max_layer_bytes;
        let too_large = |size: u64| OciError::TooLarge {
            reference: reference.to_string(),
            size,
            limit,
        };
        let declared = u64::try_from(layer.size).unwrap_or(0);
        if declared > limit {
            return Err(too_large(declared));
        }
        // The declared size is the registry's word: the session counts what
        // arrives too.
        let bytes = session.blob(&layer.digest, limit).await?;
        let digest = Digest::of(&bytes).to_string();
        if digest != layer.digest {
            return Err(OciError::Digest {
                reference: reference.to_string(),
                expected: layer.digest.clone(),
                actual: digest,
            });
        }
        Ok(Pulled {
            bytes,
            digest,
            cached: false,
        })
    }

    /// The credentials for `image`'s registry: the settings', else the
    /// docker config's (a credential helper is a process: it is waited for
    /// on a thread of its own, and at most [`CREDENTIAL_HELPER_TIMEOUT`]).
    async fn auth(&self, image: &Reference) -> Result<RegistryAuth, OciError> {
        if let Some(c) = &self.settings.credentials {
            return Ok(RegistryAuth::Basic(
                c.username.clone(),
                c.password.expose().to_string(),
            ));
        }
        let server = image.resolve_registry().trim_end_matches('/').to_string();
        // A thread of its own, not tokio's blocking pool: the runtime waits
        // for its blocking tasks when it shuts down, so a helper that never
        // answers would keep `nimbus` from exiting.
        let (answer, lookup) = tokio::sync::oneshot::channel();
        let asked = server.clone();
        let spawned = std::thread::Builder::new()
            .name("docker-credentials".into())
            .spawn(move || {
                let _ = answer.send(docker_credential::get_credential(&asked));
            });
        if spawned.is_err() {
            return Ok(RegistryAuth::Anonymous);
        }
        let found = match tokio::time::timeout(CREDENTIAL_HELPER_TIMEOUT, lookup).await {
            Ok(Ok(found)) => found,
            // The lookup panicked: as if nothing were configured.
            Ok(Err(_)) => return Ok(RegistryAuth::Anonymous),
            Err(_) => {
                return Err(OciError::Registry {
                    reference: image.whole(),
                    message: format!(
                        "the docker credential helper for {server} did not answer within {} s",
                        CREDENTIAL_HELPER_TIMEOUT.as_secs()
                    ),
                });
            }
        };
        Ok(match found {
            Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
                RegistryAuth::Basic(user, password)
            }
            Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
                RegistryAuth::Bearer(token)
            }
            Err(_) => RegistryAuth::Anonymous,
        })
    }

    fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        let valid = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        valid.then(|| {
            self.settings
                .cache_dir
                .as_ref()
                .map(|d| d.join("blobs").join("sha256").join(hex))
        })?
    }

    fn ref_path(&self, reference: &str) -> Option<PathBuf> {
        let name = Digest::of(reference.as_bytes()).hex();
        self.settings
            .cache_dir
            .as_ref()
            .map(|d| d.join("refs").join(name))
    }

    /// The cached component for `reference`, checked against its digest.
    fn cached(&self, reference: &str) -> Result<Option<Pulled>, OciError> {
        let Some(ref_path) = self.ref_path(reference) else {
            return Ok(None);
        };
        let Ok(digest) = std::fs::read_to_string(&ref_path) else {
            return Ok(None);
        };
        let digest = digest.trim().to_string();
        let Some(blob) = self.blob_path(&digest) else {
            return Ok(None);
        };
        let Ok(bytes) = std::fs::read(&blob) else {
            return Ok(None);
        };
        // A damaged cache entry is dropped and fetched again.
        if Digest::of(&bytes).to_string() != digest {
            tracing::warn!(path = %blob.display(), "cached component does not match its digest; fetching it again");
            let _ = std::fs::remove_file(&blob);
            return Ok(None);
        }
        Ok(Some(Pulled {
            bytes,
            digest,
            cached: true,
        }))
    }

    fn store(&self, reference: &str, pulled: &Pulled) -> Result<(), OciError> {
        let (Some(blob), Some(ref_path)) =
            (self.blob_path(&pulled.digest), self.ref_path(reference))
        else {
            return Ok(());
        };
        write_atomically(&blob, &pulled.bytes)?;
        write_atomically(&ref_path, pulled.digest.as_bytes())
    }
}

/// An oci-client for `settings`, speaking plain HTTP to the `insecure`
/// registries.
fn client(settings: &RegistrySettings, insecure: Vec<String>) -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(insecure),
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(settings.timeout),
        ..Default::default()
    })
}

/// Whether `registry` (`host[:port]`) is this machine.
fn is_loopback_registry(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => registry.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// How long reaching a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects a pull follows (blob stores behind CDNs redirect once or
/// twice), as reqwest's own default.
const MAX_REDIRECTS: usize = 10;
/// How long a docker credential helper may take to answer (one may ask a
/// desktop keychain, so it gets more than a connection).
const CREDENTIAL_HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// The error for a failed oci-client call: a transport failure as
/// [`fetch::transport_error`] says it, anything else as the registry said it.
fn registry_error<'a>(
    reference: &'a str,
    image: &'a Reference,
) -> impl Fn(oci_client::errors::OciDistributionError) -> OciError + Copy + 'a {
    move |e| match &e {
        oci_client::errors::OciDistributionError::RequestError(request) => {
            fetch::transport_error(reference, image, request)
        }
        _ => OciError::Registry {
            reference: reference.to_string(),
            message: e.to_string(),
        },
    }
}

fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<(), OciError> {
    let cache_error = |e: std::io::Error| OciError::Cache {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).map_err(cache_error)?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(cache_error)?;
    std::io::Write::write_all(&mut file, bytes).map_err(cache_error)?;
    file.persist(path).map_err(|e| cache_error(e.error))?;
    Ok(())
}

fn parse(reference: &str) -> Result<Reference, OciError> {
    reference
        .parse::<Reference>()
        .map_err(|e| OciError::Reference {
            reference: reference.to_string(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod loopback_tests {
    use super::is_loopback_registry;

    #[test]
    fn loopback_registries_are_recognised_in_every_spelling() {
        for registry in [
            "localhost:5000",
            "LOCALHOST",
            "127.0.0.1:5000",
            "127.3.2.1",
            "[::1]:5000",
        ] {
            assert!(is_loopback_registry(registry), "{registry}");
        }
        for registry in [
            "registry.example.com",
            "10.0.0.1:5000",
            "[fe80::1]:5000",
            "localhost.example.com",
        ] {
            assert!(!is_loopback_registry(registry), "{registry}");
        }
    }
}
