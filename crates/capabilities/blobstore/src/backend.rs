//! The blob backend contract, name checks, and the in-memory backend.
//!
//! Writes arrive as a spooled file (the guest streamed its body there), so a
//! backend can move or stream it without holding the object in memory;
//! reads hand out an `AsyncRead` over the requested range.

use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Mutex;
use std::time::SystemTime;
use tokio::io::AsyncRead;

/// A readable range of an object.
pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;

/// What a backend knows about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
}

/// Why a blobstore operation failed. The guest receives its message (the
/// interface's error is a string); the host can match on the kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// The settings name a backend this build left out, or one the
    /// blobstore does not take (opening a backend, never a guest call).
    #[error(transparent)]
    Unavailable(#[from] nimbus_model::backends::BackendError),
    /// A container name the backend cannot use; `rule` says why, when the
    /// generic rule (one non-empty path component) is not the reason.
    #[error("invalid container name `{name}`{rule}")]
    InvalidContainerName {
        /// The name given.
        name: String,
        /// `""`, or the backend's own rule, e.g. `" (reserved)"`.
        rule: &'static str,
    },
    /// An object name that could leave its container (empty, absolute,
    /// `.`/`..` components, NUL), escaped for printing.
    #[error("invalid object name `{0}`")]
    InvalidObjectName(String),
    /// No such container.
    #[error("container `{0}` does not exist")]
    NoSuchContainer(String),
    /// The container to create exists.
    #[error("container `{0}` already exists")]
    ContainerExists(String),
    /// No such object.
    #[error("object `{0}` does not exist")]
    NoSuchObject(String),
    /// A read range that ends before it starts.
    #[error("end {end} is before start {start}")]
    InvalidRange {
        /// First byte.
        start: u64,
        /// Last byte.
        end: u64,
    },
    /// `finish` of an outgoing value whose data was never written.
    #[error("write-data was not called for this value; nothing was stored")]
    NothingWritten,
    /// The in-memory store holds all it may.
    #[error(
        "the in-memory blobstore is full ({limit_mib} MiB of objects); delete objects, or choose a persistent backend"
    )]
    Full {
        /// Its bound, in MiB.
        limit_mib: u64,
    },
    /// The backend did not answer within the call's timeout.
    #[error("the blobstore backend did not answer within {ms} ms")]
    Timeout {
        /// The timeout.
        ms: u128,
    },
    /// A transfer did not finish within its size-scaled timeout.
    #[error("the blobstore backend did not take {bytes} bytes within {ms} ms")]
    TransferTimeout {
        /// Bytes being moved.
        bytes: u64,
        /// The timeout.
        ms: u128,
    },
    /// The backend failed (I/O, the NATS server, a spool file), with what
    /// failed in the message.
    #[error("{0}")]
    Backend(String),
}

/// A blob store a plugin binds workloads to.
#[async_trait]
pub trait BlobBackend: Send + Sync + 'static {
    /// Where writes are spooled before [`write`](Self::write) (the same
    /// filesystem as the store, for backends that can then rename).
    fn spool_dir(&self) -> PathBuf {
        std::env::temp_dir()
    }
    /// Creates an empty container; an error if it exists.
    async fn create_container(&self, name: &str) -> Result<(), BlobError>;
    /// When the container was created, or `None` if it does not exist.
    async fn container_created_at(&self, name: &str) -> Result<Option<u64>, BlobError>;
    /// Deletes a container and everything in it.
    async fn delete_container(&self, name: &str) -> Result<(), BlobError>;
    /// Object names of a container, sorted.
    async fn list_objects(&self, container: &str) -> Result<Vec<String>, BlobError>;
    /// Size and age of an object, or `None` if missing.
    async fn object_info(
        &self,
        container: &str,
        name: &str,
    ) -> Result<Option<ObjectInfo>, BlobError>;
    /// `len` bytes of an object from `start` (the caller clamps to its size).
    async fn read(
        &self,
        container: &str,
        name: &str,
        start: u64,
        len: u64,
    ) -> Result<BlobReader, BlobError>;
    /// Stores the spooled file at `source` as the object. The backend may
    /// move the file; the caller removes it afterwards if it is still there.
    async fn write(&self, container: &str, name: &str, source: &Path) -> Result<(), BlobError>;
    /// Removes an object; a missing one is not an error.
    async fn delete_object(&self, container: &str, name: &str) -> Result<(), BlobError>;
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Checks a container name: one non-empty path component.
pub fn check_container_name(name: &str) -> Result<(), BlobError> {
    if name.is_empty() || name.contains('/') || name.contains('\\') {
        return Err(BlobError::InvalidContainerName {
            name: name.to_string(),
            rule: "",
        });
    }
    check_component(name).map_err(|_| BlobError::InvalidContainerName {
        name: name.to_string(),
        rule: "",
    })
}

/// Checks an object name: relative `/`-separated components, none empty,
/// `.` or `..`, no NUL, so it can never leave its container.
pub fn check_object_name(name: &str) -> Result<(), BlobError> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.contains('\\')
        || name.split('/').any(|part| check_component(part).is_err());
    if bad {
        return Err(BlobError::InvalidObjectName(
            name.escape_default().to_string(),
        ));
    }
    Ok(())
}

fn check_component(part: &str) -> Result<(), ()> {
    if part.is_empty() || part == "." || part == ".." || part.contains('\0') {
        Err(())
    } else {
        Ok(())
    }
}

#[derive(Default)]
struct MemoryContainer {
    created_at: u64,
    objects: BTreeMap<String, (bytes::Bytes, u64)>,
}

/// Most bytes of objects one workload's in-memory blobstore holds: they
/// live in the host's memory, outside any guest's memory limit.
pub(crate) const MEMORY_BLOBS_LIMIT_BYTES: u64 = 256 << 20;

/// Blobs in process memory (the dev default), one store per workload,
/// holding at most `limit` bytes of objects.
pub struct MemoryBlobs {
    state: Mutex<MemoryBlobsState>,
    limit: u64,
}

#[derive(Default)]
struct MemoryBlobsState {
    containers: HashMap<String, MemoryContainer>,
    /// Bytes of all objects, kept as they come and go.
    bytes: u64,
}

impl MemoryBlobsState {
    /// The size of `container`/`name`, 0 if there is none.
    fn size_of(&self, container: &str, name: &str) -> u64 {
        self.containers
            .get(container)
            .and_then(|c| c.objects.get(name))
            .map_or(0, |(data, _)| data.len() as u64)
    }
}

impl Default for MemoryBlobs {
    fn default() -> Self {
        Self::with_limit(MEMORY_BLOBS_LIMIT_BYTES)
    }
}

impl MemoryBlobs {
    /// An empty store that holds at most `limit` bytes of objects.
    pub fn with_limit(limit: u64) -> Self {
        Self {
            state: Mutex::default(),
            limit,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut MemoryBlobsState) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether `container`/`name` may become `size` bytes.
    fn fits(&self, state: &MemoryBlobsState, container: &str, name: &str, size: u64) -> bool {
        (state.bytes - state.size_of(container, name)).saturating_add(size) <= self.limit
    }

    fn full(&self) -> BlobError {
        BlobError::Full {
            limit_mib: self.limit >> 20,
        }
    }
}

fn missing(container: &str) -> BlobError {
    BlobError::NoSuchContainer(container.to_string())
}

#[async_trait]
impl BlobBackend for MemoryBlobs {
    async fn create_container(&self, name: &str) -> Result<(), BlobError> {
        self.with(|state| {
            if state.containers.contains_key(name) {
                return Err(BlobError::ContainerExists(name.to_string()));
            }
            state.containers.insert(
                name.to_string(),
                MemoryContainer {
                    created_at: now(),
                    objects: BTreeMap::new(),
                },
            );
            Ok(())
        })
    }

    async fn container_created_at(&self, name: &str) -> Result<Option<u64>, BlobError> {
        Ok(self.with(|state| state.containers.get(name).map(|c| c.created_at)))
    }

    async fn delete_container(&self, name: &str) -> Result<(), BlobError> {
        self.with(|state| {
            if let Some(removed) = state.containers.remove(name) {
                let freed: u64 = removed.objects.values().map(|(d, _)| d.len() as u64).sum();
                state.bytes -= freed;
            }
        });
        Ok(())
    }

    async fn list_objects(&self, container: &str) -> Result<Vec<String>, BlobError> {
        self.with(|state| {
            state
                .containers
                .get(container)
                .map(|c| c.objects.keys().cloned().collect())
                .ok_or_else(|| missing(container))
        })
    }

    async fn object_info(
        &self,
        container: &str,
        name: &str,
    ) -> Result<Option<ObjectInfo>, BlobError> {
        self.with(|state| {
            let c = state
                .containers
                .get(container)
                .ok_or_else(|| missing(container))?;
            Ok(c.objects.get(name).map(|(data, created_at)| ObjectInfo {
                size: data.len() as u64,
                created_at: *created_at,
            }))
        })
    }

    async fn read(
        &self,
        container: &str,
        name: &str,
        start: u64,
        len: u64,
    ) -> Result<BlobReader, BlobError> {
        let data = self.with(|state| {
            let c = state
                .containers
                .get(container)
                .ok_or_else(|| missing(container))?;
            c.objects
                .get(name)
                .map(|(data, _)| data.clone())
                .ok_or_else(|| BlobError::NoSuchObject(name.to_string()))
        })?;
        let start = (start as usize).min(data.len());
        let end = start.saturating_add(len as usize).min(data.len());
        Ok(Box::pin(std::io::Cursor::new(data.slice(start..end))))
    }

    async fn write(&self, container: &str, name: &str, source: &Path) -> Result<(), BlobError> {
        // Sized before it is read: a spooled value may be far larger than
        // the host should ever hold in memory.
        let size = tokio::fs::metadata(source)
            .await
            .map_err(|e| BlobError::Backend(format!("cannot read the spooled value: {e}")))?
            .len();
        if !self.with(|state| self.fits(state, container, name, size)) {
            return Err(self.full());
        }
        let data = tokio::fs::read(source)
            .await
            .map_err(|e| BlobError::Backend(format!("cannot read the spooled value: {e}")))?;
        let size = data.len() as u64;
        self.with(|state| {
            // Checked again: another write may have landed meanwhile.
            if !self.fits(state, container, name, size) {
                return Err(self.full());
            }
            let old = state.size_of(container, name);
            let c = state
                .containers
                .get_mut(container)
                .ok_or_else(|| missing(container))?;
            c.objects.insert(name.to_string(), (data.into(), now()));
            state.bytes = state.bytes - old + size;
            Ok(())
        })
    }

    async fn delete_object(&self, container: &str, name: &str) -> Result<(), BlobError> {
        self.with(|state| {
            let c = state
                .containers
                .get_mut(container)
                .ok_or_else(|| missing(container))?;
            if let Some((data, _)) = c.objects.remove(name) {
                state.bytes -= data.len() as u64;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_blobstore_is_bounded_and_sizes_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let spool = |len: usize| {
            let path = dir.path().join(format!("spool-{len}"));
            std::fs::write(&path, vec![7u8; len]).unwrap();
            path
        };
        let store = MemoryBlobs::with_limit(100);
        store.create_container("c").await.unwrap();
        store.write("c", "a", &spool(60)).await.unwrap();
        let error = store.write("c", "b", &spool(60)).await.unwrap_err();
        assert_eq!(error, BlobError::Full { limit_mib: 0 });
        assert!(error.to_string().contains("blobstore is full"), "{error}");
        assert_eq!(store.object_info("c", "b").await.unwrap(), None);
        // Replacing an object counts only the new size.
        store.write("c", "a", &spool(100)).await.unwrap();
        store.delete_object("c", "a").await.unwrap();
        store.write("c", "b", &spool(100)).await.unwrap();
        // Deleting a container frees what its objects held.
        store.delete_container("c").await.unwrap();
        store.create_container("d").await.unwrap();
        store.write("d", "a", &spool(100)).await.unwrap();
    }

    #[test]
    fn names_never_escape() {
        for bad in [
            "",
            "..",
            "../x",
            "a/../../b",
            "/etc/passwd",
            "a//b",
            "a\0b",
            "a\\b",
            "./a",
        ] {
            assert!(check_object_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "a/b/c.txt", "file..name", ".hidden"] {
            assert!(check_object_name(good).is_ok(), "{good:?} refused");
        }
        assert!(check_container_name("a/b").is_err());
        assert!(check_container_name("..").is_err());
        assert!(check_container_name("photos").is_ok());
    }

    // What a build without NATS says (the test command runs this crate with
    // `--no-default-features` too).
    #[cfg(not(feature = "nats"))]
    #[test]
    fn a_left_out_nats_backend_names_its_feature_in_one_line() {
        let config: std::collections::BTreeMap<String, String> = [("url", "nats://127.0.0.1:4222")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let expected = "the nats blobstore backend is not in this build of nimbus (rebuild it with the cargo feature `nats`)";
        assert_eq!(
            crate::blob_settings(&config).unwrap_err().to_string(),
            expected
        );
        let by_hand = crate::BlobSettings::Nats {
            url: "nats://127.0.0.1:4222".into(),
        };
        let opened = crate::open_blob_backend(&by_hand, std::time::Duration::from_secs(1)).err();
        assert!(
            matches!(opened, Some(BlobError::Unavailable(_))),
            "{opened:?}"
        );
        assert_eq!(opened.map(|e| e.to_string()).as_deref(), Some(expected));
    }
}
