//! The filesystem key-value backend: one redb database file, one table per
//! bucket.
//!
//! Every write is its own redb transaction committed with immediate
//! durability (fsync before the guest sees `ok`), so an acknowledged write
//! survives `kill -9` of the host; increments read and write inside one
//! transaction, and redb runs write transactions one at a time, which makes
//! them atomic. redb is blocking, so calls run on tokio's blocking pool.

use super::backend::{
    KeyPage, KeyValueBackend, KvError, OpenError, PAGE_SIZE, add_counter, page_of, parse_counter,
};
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use std::path::Path;
use std::sync::Arc;

/// A redb-backed store.
pub struct FilesystemBackend {
    db: Arc<Database>,
}

impl std::fmt::Debug for FilesystemBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FilesystemBackend")
    }
}

fn table(bucket: &str) -> TableDefinition<'_, &'static str, &'static [u8]> {
    TableDefinition::new(bucket)
}

fn other(error: impl std::fmt::Display) -> KvError {
    KvError::Other(format!("filesystem store: {error}"))
}

impl FilesystemBackend {
    /// Opens (or creates) the database at `path`, creating parent directories.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| OpenError::CreateDir {
                path: parent.to_path_buf(),
                error,
            })?;
        }
        let db = Database::create(path).map_err(|error| OpenError::Database {
            path: path.to_path_buf(),
            error,
        })?;
        Ok(Self { db: Arc::new(db) })
    }

    async fn blocking<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<R, KvError> + Send + 'static,
    ) -> Result<R, KvError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(other)?
    }

    async fn write<R: Send + 'static>(
        &self,
        bucket: &str,
        work: impl FnOnce(&mut redb::Table<'_, &'static str, &'static [u8]>) -> Result<R, KvError>
        + Send
        + 'static,
    ) -> Result<R, KvError> {
        let bucket = bucket.to_string();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(other)?;
            let result = {
                let mut table = txn.open_table(table(&bucket)).map_err(other)?;
                work(&mut table)?
            };
            txn.commit().map_err(other)?;
            Ok(result)
        })
        .await
    }

    async fn read<R: Send + 'static>(
        &self,
        bucket: &str,
        empty: R,
        work: impl FnOnce(&redb::ReadOnlyTable<&'static str, &'static [u8]>) -> Result<R, KvError>
        + Send
        + 'static,
    ) -> Result<R, KvError> {
        let bucket = bucket.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(other)?;
            match txn.open_table(table(&bucket)) {
                Ok(table) => work(&table),
                Err(TableError::TableDoesNotExist(_)) => Ok(empty),
                Err(e) => Err(other(e)),
            }
        })
        .await
    }
}

#[async_trait]
impl KeyValueBackend for FilesystemBackend {
    async fn open(&self, bucket: &str) -> Result<(), KvError> {
        self.write(bucket, |_| Ok(())).await
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let key = key.to_string();
        self.read(bucket, None, move |table| {
            Ok(table
                .get(key.as_str())
                .map_err(other)?
                .map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        let key = key.to_string();
        self.write(bucket, move |table| {
            table
                .insert(key.as_str(), value.as_slice())
                .map_err(other)?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        let key = key.to_string();
        self.write(bucket, move |table| {
            table.remove(key.as_str()).map_err(other)?;
            Ok(())
        })
        .await
    }

    async fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        let empty = KeyPage {
            keys: Vec::new(),
            cursor: None,
        };
        self.read(bucket, empty, move |table| {
            let offset = cursor.unwrap_or(0) as usize;
            let mut keys = Vec::with_capacity(PAGE_SIZE + 1);
            for entry in table
                .iter()
                .map_err(other)?
                .skip(offset)
                .take(PAGE_SIZE + 1)
            {
                let (key, _) = entry.map_err(other)?;
                keys.push(key.value().to_string());
            }
            // `keys` starts at `offset` already.
            let mut page = page_of(keys.into_iter(), None);
            page.cursor = page.cursor.map(|_| (offset + PAGE_SIZE) as u64);
            Ok(page)
        })
        .await
    }

    async fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, KvError> {
        let key = key.to_string();
        self.write(bucket, move |table| {
            let current = match table.get(key.as_str()).map_err(other)? {
                Some(value) => parse_counter(value.value())?,
                None => 0,
            };
            let next = add_counter(current, delta)?;
            table
                .insert(key.as_str(), next.to_string().as_bytes())
                .map_err(other)?;
            Ok(next)
        })
        .await
    }

    async fn get_many(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        let empty = vec![None; keys.len()];
        self.read(bucket, empty, move |table| {
            keys.into_iter()
                .map(|key| {
                    let value = table.get(key.as_str()).map_err(other)?;
                    Ok(value.map(|v| (key.clone(), v.value().to_vec())))
                })
                .collect()
        })
        .await
    }

    async fn set_many(&self, bucket: &str, entries: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        self.write(bucket, move |table| {
            for (key, value) in &entries {
                table
                    .insert(key.as_str(), value.as_slice())
                    .map_err(other)?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_many(&self, bucket: &str, keys: Vec<String>) -> Result<(), KvError> {
        self.write(bucket, move |table| {
            for key in &keys {
                table.remove(key.as_str()).map_err(other)?;
            }
            Ok(())
        })
        .await
    }
}
