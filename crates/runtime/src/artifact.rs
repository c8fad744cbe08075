//! The artifact store: component bytes in, compiled `Component` out.
//!
//! A component is identified by the sha256 of its bytes ([`Digest`]). The
//! store compiles each digest once per process, however many workloads use
//! it, and keeps the compiled code on disk keyed by digest and engine
//! fingerprint so a restarted host deserializes instead of recompiling.
//! [`ArtifactStore::compilations`] counts real compilations so tests can
//! prove the de-duplication.

use crate::engine::Engine;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wasmtime::component::Component;

/// The sha256 of a component's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Lower-case hex, without prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why bytes could not become a component.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The bytes do not start with the WebAssembly magic number.
    #[error("not a WebAssembly file (it does not start with the `\\0asm` magic bytes)")]
    NotWasm,
    /// A core module was given where a component is needed.
    #[error(
        "this is a core WebAssembly module, not a component; build for the `wasm32-wasip2` target \
         (`cargo build --target wasm32-wasip2`) or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    /// The binary ends early or is malformed.
    #[error("the component is truncated or malformed: {0}")]
    Malformed(String),
    /// Cranelift could not compile the component.
    #[error("compiling the component failed: {0}")]
    Compile(String),
}

/// Checks the header and structure of `bytes` without compiling, so bad
/// input gets a precise message before any expensive work.
pub fn validate_component_bytes(bytes: &[u8]) -> Result<(), ArtifactError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(ArtifactError::NotWasm);
    }
    if !wasmparser::Parser::is_component(bytes) {
        return Err(ArtifactError::CoreModule);
    }
    let mut validator = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
    validator
        .validate_all(bytes)
        .map_err(|e| ArtifactError::Malformed(e.to_string()))?;
    Ok(())
}

/// A compiled component and its identity.
#[derive(Clone)]
pub struct Artifact {
    /// The digest of the source bytes.
    pub digest: Digest,
    /// The compiled component, shared by every workload using these bytes.
    pub component: Component,
}

impl fmt::Debug for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Artifact")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// Compiles components once and remembers them in memory and on disk.
pub struct ArtifactStore {
    engine: Engine,
    fingerprint: String,
    disk_dir: Option<PathBuf>,
    // One slot per digest; the slot's own lock makes concurrent requests for
    // the same bytes wait for a single compilation instead of racing.
    slots: Mutex<HashMap<Digest, Arc<Mutex<Option<Component>>>>>,
    compilations: AtomicU64,
    disk_hits: AtomicU64,
}

impl fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("disk_dir", &self.disk_dir)
            .field("compilations", &self.compilations())
            .finish_non_exhaustive()
    }
}

impl ArtifactStore {
    /// A store compiling with `engine`, caching compiled code under
    /// `disk_dir` when given.
    pub fn new(engine: Engine, disk_dir: Option<PathBuf>) -> Self {
        let fingerprint = engine.fingerprint();
        Self {
            engine,
            fingerprint,
            disk_dir,
            slots: Mutex::default(),
            compilations: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
        }
    }

    /// How many times Cranelift actually compiled a component.
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// How many components were loaded from the on-disk cache.
    pub fn disk_hits(&self) -> u64 {
        self.disk_hits.load(Ordering::Relaxed)
    }

    /// The compiled component for `bytes`: from memory, else from disk, else
    /// compiled now. Blocking; call from a blocking-capable thread.
    pub fn load(&self, bytes: &[u8]) -> Result<Artifact, ArtifactError> {
        let digest = Digest::of(bytes);
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(digest).or_default().clone()
        };
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(component) = slot.as_ref() {
            return Ok(Artifact {
                digest,
                component: component.clone(),
            });
        }
        validate_component_bytes(bytes)?;
        let component = match self.load_from_disk(&digest) {
            Some(component) => component,
            None => self.compile(&digest, bytes)?,
        };
        *slot = Some(component.clone());
        Ok(Artifact { digest, component })
    }

    fn cache_path(&self, digest: &Digest) -> Option<PathBuf> {
        let dir = self.disk_dir.as_ref()?;
        Some(dir.join(format!("{}-{}.cwasm", digest.hex(), self.fingerprint)))
    }

    fn load_from_disk(&self, digest: &Digest) -> Option<Component> {
        let path = self.cache_path(digest)?;
        if !path.exists() {
            return None;
        }
        match deserialize(&self.engine, &path) {
            Ok(component) => {
                self.disk_hits.fetch_add(1, Ordering::Relaxed);
                Some(component)
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "discarding unreadable compiled-code cache entry");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    fn compile(&self, digest: &Digest, bytes: &[u8]) -> Result<Component, ArtifactError> {
        let component = Component::new(self.engine.wasmtime(), bytes)
            .map_err(|e| ArtifactError::Compile(format!("{e:#}")))?;
        self.compilations.fetch_add(1, Ordering::Relaxed);
        if let Some(path) = self.cache_path(digest)
            && let Err(error) = write_atomically(&path, &component)
        {
            tracing::warn!(path = %path.display(), %error, "cannot write compiled-code cache entry");
        }
        Ok(component)
    }
}

fn write_atomically(path: &Path, component: &Component) -> Result<(), String> {
    let dir = path.parent().expect("cache path has a parent");
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let bytes = component.serialize().map_err(|e| format!("{e:#}"))?;
    let tmp = temp_path_in(dir);
    std::fs::write(&tmp, bytes).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        e.to_string()
    })
}

fn temp_path_in(dir: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".tmp-{}-{n}", std::process::id()))
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file lives in Nimbus's own cache directory, was written by
    // `Component::serialize` under a name that includes the engine's
    // compatibility fingerprint, and is renamed into place atomically, so it
    // is never a partially written or foreign artifact.
    unsafe { Component::deserialize_file(engine.wasmtime(), path) }
}

/// The default on-disk cache directory for compiled components.
pub fn default_cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("nimbus").join("compiled"))
}
