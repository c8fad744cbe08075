//! The artifact store: component bytes in, compiled `Component` out.
//!
//! A component is identified by the sha256 of its bytes ([`Digest`]). The
//! store compiles each digest once per process, however many workloads use
//! it, and keeps the compiled code on disk keyed by digest and engine
//! fingerprint so a restarted host deserializes instead of recompiling.
//! [`ArtifactStore::compilations`] counts real compilations so tests can
//! prove the de-duplication.
//!
//! Compiled code is native code: deserializing a file is running it. So
//! nothing is deserialized that this host did not write. The cache
//! directory is the user's own, mode 0700 (a directory owned by someone
//! else is not used at all); each entry is written 0600 and ends in an
//! HMAC-SHA256 tag over the entry's digest, engine fingerprint and bytes,
//! under a random key kept in the directory (`key`, 0600). An entry whose
//! tag does not verify (planted, copied from another host, corrupted) is
//! discarded with a warning and compiled again.
//!
//! A host starting many workloads of one component file reads and hashes
//! it once: the store remembers each file's [`FileStamp`] (device, inode,
//! size, modification and change times) with the digest its bytes had, and
//! [`ArtifactStore::compiled_file`] answers from memory while the stamp is
//! unchanged. Any write to the file changes its stamp; a stamp is only
//! remembered once the file has been still for [`STAMP_SETTLE`] and the
//! path still names it after the read.

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
    /// The bytes are not a valid component (checked before compiling).
    #[error(transparent)]
    Invalid(#[from] nimbus_model::ComponentError),
    /// Cranelift could not compile the component.
    #[error("compiling the component failed: {0}")]
    Compile(String),
}

/// Why the on-disk cache, or one write to it, cannot be used. Never fatal:
/// the host logs it and compiles in memory.
#[derive(Debug, thiserror::Error)]
enum CacheError {
    #[error("cannot create it: {0}")]
    Create(std::io::Error),
    #[error("cannot read it: {0}")]
    Inspect(std::io::Error),
    #[error("it is not a directory")]
    NotADirectory,
    #[error("it is owned by uid {0}, not by this user: another user could plant native code in it")]
    ForeignOwner(u32),
    #[error("cannot make it private (mode 0700): {0}")]
    MakePrivate(std::io::Error),
    #[error("the system random source failed")]
    Random,
    #[error("cannot read back the cache key")]
    KeyUnreadable,
    #[error("cannot serialize the compiled code: {0}")]
    Serialize(String),
    #[error("cannot write `{}`: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Checks the header and structure of `bytes` without compiling, so bad
/// input gets a precise message before any expensive work.
pub fn validate_component_bytes(bytes: &[u8]) -> Result<(), ArtifactError> {
    nimbus_model::validate_component_bytes(bytes).map_err(ArtifactError::from)
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
    disk: Option<DiskCache>,
    // One slot per digest; the slot's own lock makes concurrent requests for
    // the same bytes wait for a single compilation instead of racing.
    slots: Mutex<HashMap<Digest, Arc<Mutex<Option<Component>>>>>,
    /// The digest each component file had when last read, by path.
    files: Mutex<HashMap<PathBuf, (FileStamp, Digest)>>,
    compilations: AtomicU64,
    disk_hits: AtomicU64,
    file_hits: AtomicU64,
}

impl fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("disk_dir", &self.disk.as_ref().map(|d| &d.dir))
            .field("compilations", &self.compilations())
            .finish_non_exhaustive()
    }
}

impl ArtifactStore {
    /// A store compiling with `engine`, caching compiled code under
    /// `disk_dir` when given (and usable: see the module doc).
    pub fn new(engine: Engine, disk_dir: Option<PathBuf>) -> Self {
        let fingerprint = engine.fingerprint();
        let disk = disk_dir.and_then(|dir| match DiskCache::open(&dir) {
            Ok(cache) => Some(cache),
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "compiled-code cache disabled");
                None
            }
        });
        Self {
            engine,
            fingerprint,
            disk,
            slots: Mutex::default(),
            files: Mutex::default(),
            compilations: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
            file_hits: AtomicU64::new(0),
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

    /// How many times [`Self::compiled_file`] answered without the file
    /// being read.
    pub fn file_hits(&self) -> u64 {
        self.file_hits.load(Ordering::Relaxed)
    }

    /// The component compiled from the bytes of `digest` (`sha256:…`), if
    /// this store holds it in memory.
    pub fn compiled(&self, digest: &str) -> Option<Component> {
        let slot = lock(&self.slots)
            .iter()
            .find(|(d, _)| d.to_string() == digest)
            .map(|(_, slot)| slot.clone())?;
        lock(&slot).clone()
    }

    /// The compiled component for `bytes`: from memory, else from disk, else
    /// compiled now. Blocking; call from a blocking-capable thread.
    pub fn load(&self, bytes: &[u8]) -> Result<Artifact, ArtifactError> {
        let digest = Digest::of(bytes);
        let slot = lock(&self.slots).entry(digest).or_default().clone();
        let mut slot = lock(&slot);
        if let Some(component) = slot.as_ref() {
            return Ok(Artifact {
                digest,
                component: component.clone(),
            });
        }
        // A verified disk entry was written after these very bytes compiled,
        // so they need no validation again (it costs more than the load).
        let component = match self.load_from_disk(&digest) {
            Some(component) => component,
            None => {
                validate_component_bytes(bytes)?;
                self.compile(&digest, bytes)?
            }
        };
        *slot = Some(component.clone());
        Ok(Artifact { digest, component })
    }

    /// The compiled component of the file at `path` when this store has it
    /// in memory and the file is unchanged since [`Self::remember_file`]
    /// noted it; otherwise the file's current stamp (`None` when it has
    /// none: not a regular file, or unreadable), to note after reading it.
    /// Blocking (a `stat`).
    pub fn compiled_file(&self, path: &Path) -> Result<Artifact, Option<FileStamp>> {
        let stamp = FileStamp::of(path).ok_or(None)?;
        let remembered = lock(&self.files).get(path).copied();
        let Some((seen, digest)) = remembered else {
            return Err(Some(stamp));
        };
        if seen != stamp {
            return Err(Some(stamp));
        }
        let slot = lock(&self.slots).get(&digest).cloned();
        let component = slot.and_then(|slot| lock(&slot).clone());
        match component {
            Some(component) => {
                self.file_hits.fetch_add(1, Ordering::Relaxed);
                Ok(Artifact { digest, component })
            }
            None => Err(Some(stamp)),
        }
    }

    /// Notes that the file at `path`, as it was at `stamp` (taken before it
    /// was read), held the component `digest`, unless the stamp cannot be
    /// trusted for it: the path names another file now (a symbolic link or
    /// a rename swapped while it was read), or the file changed too
    /// recently for its times to tell a second write in the same clock
    /// tick from the first ([`FileStamp::settled`]). Blocking (a `stat`).
    pub fn remember_file(&self, path: &Path, stamp: FileStamp, digest: Digest) {
        if FileStamp::of(path) != Some(stamp) || !stamp.settled(std::time::SystemTime::now()) {
            return;
        }
        let mut files = lock(&self.files);
        // Bounded: a host naming ever-new files does not grow this forever.
        if files.len() >= MAX_REMEMBERED_FILES && !files.contains_key(path) {
            files.clear();
        }
        files.insert(path.to_path_buf(), (stamp, digest));
    }

    fn load_from_disk(&self, digest: &Digest) -> Option<Component> {
        let disk = self.disk.as_ref()?;
        let path = disk.entry_path(digest, &self.fingerprint);
        let code = match disk.read_verified(&path, digest, &self.fingerprint) {
            Ok(Some(code)) => code,
            Ok(None) => return None,
            Err(reason) => {
                tracing::warn!(path = %path.display(), reason, "discarding compiled-code cache entry; compiling again");
                let _ = std::fs::remove_file(&path);
                return None;
            }
        };
        match deserialize(&self.engine, &code) {
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
        if let Some(disk) = &self.disk
            && let Err(error) = disk.write(digest, &self.fingerprint, &component)
        {
            tracing::warn!(dir = %disk.dir.display(), %error, "cannot write compiled-code cache entry");
        }
        Ok(component)
    }
}

/// How many component files [`ArtifactStore::remember_file`] keeps.
const MAX_REMEMBERED_FILES: usize = 4096;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What identifies one version of a file without reading it: any write
/// changes the modification and change times, a replacement the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    device: u64,
    inode: u64,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileStamp {
    /// The stamp of the regular file at `path` (symbolic links followed),
    /// if it is one.
    pub fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let metadata = std::fs::metadata(path).ok()?;
        metadata.is_file().then(|| Self {
            device: metadata.dev(),
            inode: metadata.ino(),
            len: metadata.len(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        })
    }

    /// Whether the file's last change is at least [`STAMP_SETTLE`] before
    /// `now`: file times come from a coarse clock (milliseconds on Linux
    /// file systems, seconds on some), so a same-size rewrite within one
    /// tick of the last would leave the stamp as it was.
    pub fn settled(&self, now: std::time::SystemTime) -> bool {
        let latest = self.modified.max(self.changed);
        let Ok(since_epoch) = now.duration_since(std::time::UNIX_EPOCH) else {
            return false;
        };
        let latest_nanos = i128::from(latest.0) * 1_000_000_000 + i128::from(latest.1);
        let now_nanos = i128::try_from(since_epoch.as_nanos()).unwrap_or(i128::MAX);
        now_nanos - latest_nanos >= i128::try_from(STAMP_SETTLE.as_nanos()).unwrap_or(i128::MAX)
    }
}

/// How long after its last change a file's stamp is trusted to identify
/// its content (see [`FileStamp::settled`]).
pub const STAMP_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// The length of an entry's tag (HMAC-SHA256).
const TAG_LEN: usize = 32;

/// The on-disk cache: a private directory and the key its entries are
/// tagged with.
struct DiskCache {
    dir: PathBuf,
    key: ring::hmac::Key,
}

impl DiskCache {
    /// Opens (creating) `dir` as a private cache directory and loads its
    /// key, making one if there is none or the one there is not private.
    fn open(dir: &Path) -> Result<Self, CacheError> {
        private_dir(dir)?;
        let key_path = dir.join("key");
        let key_bytes = match read_private_file(&key_path, TAG_LEN as u64) {
            Ok(bytes) if bytes.len() == TAG_LEN => bytes,
            Ok(_) | Err(_) => {
                // A new key makes every entry written under another
                // unverifiable: they are recompiled on use.
                let mut fresh = [0u8; TAG_LEN];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut fresh)
                    .map_err(|_| CacheError::Random)?;
                let _ = std::fs::remove_file(&key_path);
                write_private_file(dir, &key_path, &fresh, false)?;
                // Two hosts starting on one directory: whichever key
                // landed first is the one both use.
                match read_private_file(&key_path, TAG_LEN as u64) {
                    Ok(bytes) if bytes.len() == TAG_LEN => bytes,
                    _ => return Err(CacheError::KeyUnreadable),
                }
            }
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key_bytes),
        })
    }

    fn entry_path(&self, digest: &Digest, fingerprint: &str) -> PathBuf {
        self.dir
            .join(format!("{}-{fingerprint}.cwasm", digest.hex()))
    }

    fn tag(&self, digest: &Digest, fingerprint: &str, code: &[u8]) -> ring::hmac::Tag {
        let mut context = ring::hmac::Context::with_key(&self.key);
        context.update(b"nimbus compiled component v1\0");
        context.update(&digest.0);
        context.update(fingerprint.as_bytes());
        context.update(&[0]);
        context.update(code);
        context.sign()
    }

    /// The entry's compiled code, if there is an entry; an error (the
    /// reason) when there is one that must not be loaded.
    fn read_verified(
        &self,
        path: &Path,
        digest: &Digest,
        fingerprint: &str,
    ) -> Result<Option<Vec<u8>>, &'static str> {
        let mut bytes = match read_private_file(path, MAX_ENTRY_BYTES) {
            Ok(bytes) => bytes,
            Err(PrivateFileError::Missing) => return Ok(None),
            Err(PrivateFileError::NotPrivate) => {
                return Err("it is not a private file of this user (mode 0600)");
            }
            Err(PrivateFileError::Unreadable) => return Err("it cannot be read"),
        };
        if bytes.len() < TAG_LEN {
            return Err("it is too short to carry a tag");
        }
        let tag = bytes.split_off(bytes.len() - TAG_LEN);
        let expected = self.tag(digest, fingerprint, &bytes);
        // Compared without an early exit, so timing says nothing of the tag.
        let difference = expected
            .as_ref()
            .iter()
            .zip(&tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if difference != 0 {
            return Err("its tag does not verify: this host did not write it");
        }
        Ok(Some(bytes))
    }

    fn write(
        &self,
        digest: &Digest,
        fingerprint: &str,
        component: &Component,
    ) -> Result<(), CacheError> {
        let mut bytes = component
            .serialize()
            .map_err(|e| CacheError::Serialize(format!("{e:#}")))?;
        let tag = self.tag(digest, fingerprint, &bytes);
        bytes.extend_from_slice(tag.as_ref());
        write_private_file(
            &self.dir,
            &self.entry_path(digest, fingerprint),
            &bytes,
            true,
        )
    }
}

/// The largest cache entry read back (compiled code of a 100 MB component
/// is far smaller).
const MAX_ENTRY_BYTES: u64 = 1 << 30;

/// Why a private file was not read.
enum PrivateFileError {
    Missing,
    /// Not a regular file owned by this user with no group or other access.
    NotPrivate,
    Unreadable,
}

/// Makes `dir` (and its parents) exist, and refuses it unless this user
/// owns it; tightens its mode to 0700.
fn private_dir(dir: &Path) -> Result<(), CacheError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(CacheError::Create)?;
    let metadata = std::fs::symlink_metadata(dir).map_err(CacheError::Inspect)?;
    if !metadata.is_dir() {
        return Err(CacheError::NotADirectory);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        if metadata.uid() != rustix::process::geteuid().as_raw() {
            return Err(CacheError::ForeignOwner(metadata.uid()));
        }
        if metadata.mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(CacheError::MakePrivate)?;
        }
    }
    Ok(())
}

/// Reads a file of the cache, at most `limit` bytes, only if it is a
/// regular file this user owns that nobody else may read or write.
fn read_private_file(path: &Path, limit: u64) -> Result<Vec<u8>, PrivateFileError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PrivateFileError::Missing);
        }
        Err(_) => return Err(PrivateFileError::Unreadable),
    };
    if !metadata.is_file() {
        return Err(PrivateFileError::NotPrivate);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if metadata.uid() != rustix::process::geteuid().as_raw() || metadata.mode() & 0o077 != 0 {
            return Err(PrivateFileError::NotPrivate);
        }
    }
    crate::files::read_bounded_blocking(path, limit).map_err(|_| PrivateFileError::Unreadable)
}

/// Writes `bytes` to `path` with mode 0600, atomically (a temporary file
/// in `dir`, then a rename, or a link when an existing file must be kept),
/// so a reader never sees half a file.
fn write_private_file(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    replace: bool,
) -> Result<(), CacheError> {
    use std::io::Write as _;
    let tmp = temp_path_in(dir);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(&tmp)
        .and_then(|mut file| file.write_all(bytes));
    let placed = written.and_then(|()| {
        if replace {
            std::fs::rename(&tmp, path)
        } else {
            // Fails when another writer placed its file first: theirs stays.
            let linked = std::fs::hard_link(&tmp, path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            }
        }
    });
    if let Err(error) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(CacheError::Write {
            path: path.to_path_buf(),
            error,
        });
    }
    Ok(())
}

fn temp_path_in(dir: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".tmp-{}-{n}", std::process::id()))
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, code: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `code` is compiled code this host serialized itself: its
    // HMAC tag, under a key only this user can read, verified over these
    // exact bytes, the component's digest and the engine's compatibility
    // fingerprint (`DiskCache::read_verified`).
    unsafe { Component::deserialize(engine.wasmtime(), code) }
}

/// The default on-disk cache directory for compiled components.
pub fn default_cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("nimbus").join("compiled"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    const EMPTY_COMPONENT: &str = "(component)";

    fn engine() -> Engine {
        Engine::new(&crate::engine::EngineConfig {
            pooling: crate::engine::PoolingMode::Off,
            ..Default::default()
        })
        .unwrap()
    }

    /// Compiled code on disk is loaded only when this host wrote it: a
    /// planted or altered entry under the right name is discarded and the
    /// component compiled again; the directory and files are private.
    #[test]
    fn only_entries_this_host_tagged_are_loaded() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("compiled");
        let bytes = wat::parse_str(EMPTY_COMPONENT).unwrap();
        let engine = engine();

        let first = ArtifactStore::new(engine.clone(), Some(dir.clone()));
        first.load(&bytes).unwrap();
        assert_eq!(first.compilations(), 1);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let entry = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .expect("an entry was written");
        assert_eq!(mode(&entry), 0o600);
        assert_eq!(mode(&dir.join("key")), 0o600);

        // A restarted host with the same directory loads it.
        let second = ArtifactStore::new(engine.clone(), Some(dir.clone()));
        second.load(&bytes).unwrap();
        assert_eq!((second.disk_hits(), second.compilations()), (1, 0));

        // A file planted under the entry's name (here: valid compiled code
        // without this host's tag, as another host would have written it).
        let foreign = Component::new(engine.wasmtime(), &bytes)
            .unwrap()
            .serialize()
            .unwrap();
        std::fs::write(&entry, &foreign).unwrap();
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o600)).unwrap();
        let third = ArtifactStore::new(engine.clone(), Some(dir.clone()));
        third.load(&bytes).unwrap();
        assert_eq!((third.disk_hits(), third.compilations()), (0, 1));

        // One flipped byte of a tagged entry is caught the same way.
        let mut tagged = std::fs::read(&entry).unwrap();
        tagged[100] ^= 1;
        std::fs::write(&entry, &tagged).unwrap();
        let fourth = ArtifactStore::new(engine.clone(), Some(dir.clone()));
        fourth.load(&bytes).unwrap();
        assert_eq!((fourth.disk_hits(), fourth.compilations()), (0, 1));

        // An entry others may write is not trusted even with a valid tag.
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
        let fifth = ArtifactStore::new(engine.clone(), Some(dir.clone()));
        fifth.load(&bytes).unwrap();
        assert_eq!((fifth.disk_hits(), fifth.compilations()), (0, 1));

        // A world-writable directory is made private again.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let sixth = ArtifactStore::new(engine, Some(dir.clone()));
        sixth.load(&bytes).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(sixth.disk_hits(), 1);
    }
}
