//! The filesystem blob backend: a container is a directory under the root,
//! an object a file in it (`/` in object names makes subdirectories).
//!
//! Names are checked before any path is built (no `..`, absolute paths,
//! empty components or NUL), so nothing outside the root is ever touched.
//! A write is spooled under `ROOT/.nimbus-spool`, synced, and renamed into
//! place (then the directory is synced), so readers see the old object or the
//! new one, never half of one, and an acknowledged write survives a crash.

use super::backend::{
    BlobBackend, BlobError, BlobReader, ObjectInfo, check_container_name, check_object_name,
};
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Reserved for spooled writes; not a container.
const SPOOL: &str = ".nimbus-spool";

/// Blobs as files under a root directory.
pub struct FilesystemBlobs {
    root: PathBuf,
}

fn io(error: std::io::Error) -> BlobError {
    BlobError::Backend(format!("filesystem blobstore: {error}"))
}

fn seconds(time: std::io::Result<SystemTime>) -> u64 {
    time.ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl FilesystemBlobs {
    /// A store rooted at `root` (created if missing).
    pub fn open(root: &Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(root.join(SPOOL)).map_err(|e| {
            BlobError::Backend(format!(
                "cannot create blobstore root `{}`: {e}",
                root.display()
            ))
        })?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    fn container_dir(&self, container: &str) -> Result<PathBuf, BlobError> {
        check_container_name(container)?;
        if container == SPOOL {
            return Err(BlobError::InvalidContainerName {
                name: container.to_string(),
                rule: " (reserved)",
            });
        }
        Ok(self.root.join(container))
    }

    fn object_path(&self, container: &str, name: &str) -> Result<PathBuf, BlobError> {
        check_object_name(name)?;
        let dir = self.container_dir(container)?;
        if !dir.is_dir() {
            return Err(BlobError::NoSuchContainer(container.to_string()));
        }
        Ok(dir.join(name))
    }
}

fn walk(dir: &Path, prefix: &str, names: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let full = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), &full, names)?;
        } else if kind.is_file() {
            names.push(full);
        }
    }
    Ok(())
}

#[async_trait]
impl BlobBackend for FilesystemBlobs {
    fn spool_dir(&self) -> PathBuf {
        self.root.join(SPOOL)
    }

    async fn create_container(&self, name: &str) -> Result<(), BlobError> {
        let dir = self.container_dir(name)?;
        match tokio::fs::create_dir(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(BlobError::ContainerExists(name.to_string()))
            }
            Err(e) => Err(io(e)),
        }
    }

    async fn container_created_at(&self, name: &str) -> Result<Option<u64>, BlobError> {
        let dir = self.container_dir(name)?;
        match tokio::fs::metadata(&dir).await {
            Ok(meta) if meta.is_dir() => Ok(Some(seconds(meta.created().or(meta.modified())))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn delete_container(&self, name: &str) -> Result<(), BlobError> {
        let dir = self.container_dir(name)?;
        match tokio::fs::remove_dir_all(&dir).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        }
    }

    async fn list_objects(&self, container: &str) -> Result<Vec<String>, BlobError> {
        let dir = self.container_dir(container)?;
        if !dir.is_dir() {
            return Err(BlobError::NoSuchContainer(container.to_string()));
        }
        let mut names = tokio::task::spawn_blocking(move || {
            let mut names = Vec::new();
            walk(&dir, "", &mut names).map(|()| names)
        })
        .await
        .map_err(|e| BlobError::Backend(e.to_string()))?
        .map_err(io)?;
        names.sort();
        Ok(names)
    }

    async fn object_info(
        &self,
        container: &str,
        name: &str,
    ) -> Result<Option<ObjectInfo>, BlobError> {
        let path = self.object_path(container, name)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(ObjectInfo {
                size: meta.len(),
                created_at: seconds(meta.modified()),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn read(
        &self,
        container: &str,
        name: &str,
        start: u64,
        len: u64,
    ) -> Result<BlobReader, BlobError> {
        let path = self.object_path(container, name)?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => BlobError::NoSuchObject(name.to_string()),
                _ => io(e),
            })?;
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(io)?;
        Ok(Box::pin(file.take(len)))
    }

    async fn write(&self, container: &str, name: &str, source: &Path) -> Result<(), BlobError> {
        let path = self.object_path(container, name)?;
        let parent = path.parent().unwrap_or(&self.root).to_path_buf();
        tokio::fs::create_dir_all(&parent).await.map_err(io)?;
        // Durable before it is acknowledged: the data, then the rename.
        tokio::fs::File::open(source)
            .await
            .map_err(io)?
            .sync_all()
            .await
            .map_err(io)?;
        tokio::fs::rename(source, &path).await.map_err(io)?;
        tokio::fs::File::open(&parent)
            .await
            .map_err(io)?
            .sync_all()
            .await
            .map_err(io)
    }

    async fn delete_object(&self, container: &str, name: &str) -> Result<(), BlobError> {
        let path = self.object_path(container, name)?;
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        }
    }
}
