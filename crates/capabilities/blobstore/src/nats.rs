//! The NATS JetStream object store blob backend: a container is an object
//! store bucket of the same name, an object an object in it. Objects are
//! chunked by the object store on the way in and streamed on the way out,
//! so no object is ever held whole in host memory.

use super::backend::{BlobBackend, BlobError, BlobReader, ObjectInfo, check_object_name};
use async_nats::jetstream::{self, object_store};
use async_trait::async_trait;
use futures::TryStreamExt;
use nimbus_plugin::NatsConnection;
use std::path::Path;
use tokio::io::AsyncReadExt;

/// Blobs in NATS object stores.
pub(crate) struct NatsBlobs {
    pub(crate) connection: NatsConnection,
}

fn other(error: impl std::fmt::Display) -> BlobError {
    BlobError::Backend(format!("nats: {error}"))
}

fn check_bucket(name: &str) -> Result<(), BlobError> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(BlobError::InvalidContainerName {
            name: name.to_string(),
            rule: " for a NATS object store (letters, digits, - and _ only)",
        })
    }
}

impl NatsBlobs {
    async fn context(&self) -> Result<jetstream::Context, BlobError> {
        let client = self
            .connection
            .client()
            .await
            .map_err(|e| BlobError::Backend(e.to_string()))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(self.connection.timeout());
        Ok(js)
    }

    async fn store(&self, container: &str) -> Result<object_store::ObjectStore, BlobError> {
        check_bucket(container)?;
        self.context()
            .await?
            .get_object_store(container)
            .await
            .map_err(|_| BlobError::NoSuchContainer(container.to_string()))
    }
}

#[async_trait]
impl BlobBackend for NatsBlobs {
    async fn create_container(&self, name: &str) -> Result<(), BlobError> {
        check_bucket(name)?;
        let js = self.context().await?;
        if js.get_object_store(name).await.is_ok() {
            return Err(BlobError::ContainerExists(name.to_string()));
        }
        js.create_object_store(object_store::Config {
            bucket: name.to_string(),
            ..Default::default()
        })
        .await
        .map(drop)
        .map_err(other)
    }

    async fn container_created_at(&self, name: &str) -> Result<Option<u64>, BlobError> {
        check_bucket(name)?;
        let js = self.context().await?;
        match js.get_stream(format!("OBJ_{name}")).await {
            Ok(stream) => Ok(Some(
                stream.cached_info().created.unix_timestamp().max(0) as u64
            )),
            Err(e) => match e.kind() {
                jetstream::context::GetStreamErrorKind::JetStream(_) => Ok(None),
                _ => Err(other(e)),
            },
        }
    }

    async fn delete_container(&self, name: &str) -> Result<(), BlobError> {
        check_bucket(name)?;
        let js = self.context().await?;
        match js.delete_object_store(name).await {
            Ok(_) => Ok(()),
            Err(_) if js.get_object_store(name).await.is_err() => Ok(()),
            Err(e) => Err(other(e)),
        }
    }

    async fn list_objects(&self, container: &str) -> Result<Vec<String>, BlobError> {
        let store = self.store(container).await?;
        let infos: Vec<object_store::ObjectInfo> = store
            .list()
            .await
            .map_err(other)?
            .try_collect()
            .await
            .map_err(other)?;
        let mut names: Vec<String> = infos
            .into_iter()
            .filter(|i| !i.deleted)
            .map(|i| i.name)
            .collect();
        names.sort();
        Ok(names)
    }

    async fn object_info(
        &self,
        container: &str,
        name: &str,
    ) -> Result<Option<ObjectInfo>, BlobError> {
        check_object_name(name)?;
        let store = self.store(container).await?;
        match store.info(name).await {
            Ok(info) if !info.deleted => Ok(Some(ObjectInfo {
                size: info.size as u64,
                created_at: info
                    .modified
                    .map(|t| t.unix_timestamp().max(0) as u64)
                    .unwrap_or(0),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => Ok(None),
            Err(e) => Err(other(e)),
        }
    }

    async fn read(
        &self,
        container: &str,
        name: &str,
        start: u64,
        len: u64,
    ) -> Result<BlobReader, BlobError> {
        check_object_name(name)?;
        let store = self.store(container).await?;
        let mut object = store.get(name).await.map_err(other)?;
        // The object store reads from the start: skip to `start`.
        tokio::io::copy(&mut (&mut object).take(start), &mut tokio::io::sink())
            .await
            .map_err(other)?;
        Ok(Box::pin(object.take(len)))
    }

    async fn write(&self, container: &str, name: &str, source: &Path) -> Result<(), BlobError> {
        check_object_name(name)?;
        let store = self.store(container).await?;
        let mut file = tokio::fs::File::open(source).await.map_err(other)?;
        store.put(name, &mut file).await.map(drop).map_err(other)
    }

    async fn delete_object(&self, container: &str, name: &str) -> Result<(), BlobError> {
        check_object_name(name)?;
        let store = self.store(container).await?;
        match store.delete(name).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(e) => Err(other(e)),
        }
    }
}
