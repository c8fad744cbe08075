//! The key-value backend contract, its settings, and the in-memory backend.
//!
//! A backend stores byte values under string keys in named buckets (its own
//! namespaces: a Redis key prefix, a NATS KV bucket, a redb table). Every
//! backend makes `increment` atomic and serves `list_keys` in pages of
//! [`PAGE_SIZE`] with an opaque cursor. Counters are stored as decimal ASCII
//! so that `get` of a counter reads the same on every backend (and Redis's
//! `INCRBY` can do the work there).

use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// Keys returned per `list_keys` page.
pub const PAGE_SIZE: usize = 100;

/// A key-value failure, as the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The bucket does not exist and cannot be created.
    #[error("no such bucket")]
    NoSuchStore,
    /// The workload may not use this bucket.
    #[error("access denied")]
    AccessDenied,
    /// Anything else: backend down, bad key, not a number.
    #[error("{0}")]
    Other(String),
}

/// One page of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys of this page.
    pub keys: Vec<String>,
    /// Where the next page starts; `None` when this was the last.
    pub cursor: Option<u64>,
}

/// A key-value store a plugin binds workloads to.
#[async_trait]
pub trait KeyValueBackend: Send + Sync + 'static {
    /// Checks that `bucket` can be used, creating it if the backend needs that.
    async fn open(&self, bucket: &str) -> Result<(), KvError>;
    /// The value of `key`.
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Sets `key` to `value`.
    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError>;
    /// Removes `key`; removing a missing key is not an error.
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError>;
    /// Whether `key` has a value.
    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        Ok(self.get(bucket, key).await?.is_some())
    }
    /// A page of keys starting at `cursor` (`None`: the first page).
    async fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage, KvError>;
    /// Atomically adds `delta` to the counter at `key` (missing: 0) and
    /// returns the new value.
    async fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, KvError>;
    /// Values of several keys, in order (`None` for missing ones).
    async fn get_many(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            let value = self.get(bucket, &key).await?;
            values.push(value.map(|v| (key, v)));
        }
        Ok(values)
    }
    /// Sets several keys.
    async fn set_many(&self, bucket: &str, entries: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        for (key, value) in entries {
            self.set(bucket, &key, value).await?;
        }
        Ok(())
    }
    /// Removes several keys.
    async fn delete_many(&self, bucket: &str, keys: Vec<String>) -> Result<(), KvError> {
        for key in keys {
            self.delete(bucket, &key).await?;
        }
        Ok(())
    }
}

/// Which backend, and where: parsed from host-interface config or host defaults.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BackendSettings {
    /// Process memory (the dev default); one store per workload.
    Memory,
    /// A redb database file: persistent, crash-safe.
    Filesystem {
        /// The database file.
        path: PathBuf,
    },
    /// A Redis server (`redis://` or `rediss://` URL).
    Redis {
        /// Server URL.
        url: String,
    },
    /// NATS JetStream key-value (`nats://` URL).
    Nats {
        /// Server URL.
        url: String,
    },
}

impl BackendSettings {
    /// Reads `backend` (memory | filesystem | redis | nats) with `url` or
    /// `path`; without `backend`, a `url`'s scheme or a `path` decides.
    pub fn from_config(config: &BTreeMap<String, String>) -> Result<Self, String> {
        let url = config.get("url").map(|u| u.trim().to_string());
        let path = config.get("path").map(PathBuf::from);
        let backend = match config.get("backend").map(|b| b.trim().to_ascii_lowercase()) {
            Some(b) => b,
            None => match (&url, &path) {
                (Some(url), _) => url.split("://").next().unwrap_or_default().to_string(),
                (None, Some(_)) => "filesystem".into(),
                (None, None) => "memory".into(),
            },
        };
        match backend.as_str() {
            "memory" | "in-memory" => Ok(Self::Memory),
            "filesystem" | "fs" | "file" | "redb" => match path {
                Some(path) => Ok(Self::Filesystem { path }),
                None => Err("the filesystem backend needs `path` (the database file)".into()),
            },
            "redis" | "rediss" => match url {
                Some(url) => Ok(Self::Redis { url }),
                None => Err("the redis backend needs `url` (redis://HOST:PORT)".into()),
            },
            "nats" | "tls" => match url {
                Some(url) => Ok(Self::Nats { url }),
                None => Err("the nats backend needs `url` (nats://HOST:PORT)".into()),
            },
            other => Err(format!(
                "unknown key-value backend `{other}` (expected memory, filesystem, redis or nats)"
            )),
        }
    }

    /// A short name for logs and errors (no credentials).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Filesystem { .. } => "filesystem",
            Self::Redis { .. } => "redis",
            Self::Nats { .. } => "nats",
        }
    }
}

/// How long a backend call may take before the guest gets an error.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Parses `n` as a counter value.
pub(crate) fn parse_counter(bytes: &[u8]) -> Result<u64, KvError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| KvError::Other("the value is not a non-negative integer".into()))
}

/// Adds `delta` to `current` without wrapping.
pub(crate) fn add_counter(current: u64, delta: u64) -> Result<u64, KvError> {
    current
        .checked_add(delta)
        .ok_or_else(|| KvError::Other("increment overflows a 64-bit counter".into()))
}

/// One page from sorted keys, the cursor being an offset.
pub(crate) fn page_of(keys: impl Iterator<Item = String>, cursor: Option<u64>) -> KeyPage {
    let offset = cursor.unwrap_or(0) as usize;
    let mut page: Vec<String> = keys.skip(offset).take(PAGE_SIZE + 1).collect();
    let more = page.len() > PAGE_SIZE;
    page.truncate(PAGE_SIZE);
    KeyPage {
        cursor: more.then(|| (offset + PAGE_SIZE) as u64),
        keys: page,
    }
}

/// The in-memory backend: buckets of sorted maps behind one lock (never
/// held across an await).
#[derive(Debug, Default)]
pub struct MemoryBackend {
    buckets: Mutex<HashMap<String, BTreeMap<String, Vec<u8>>>>,
}

impl MemoryBackend {
    fn with<R>(&self, bucket: &str, f: impl FnOnce(&mut BTreeMap<String, Vec<u8>>) -> R) -> R {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        f(buckets.entry(bucket.to_string()).or_default())
    }
}

#[async_trait]
impl KeyValueBackend for MemoryBackend {
    async fn open(&self, _bucket: &str) -> Result<(), KvError> {
        Ok(())
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.with(bucket, |map| map.get(key).cloned()))
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        self.with(bucket, |map| map.insert(key.to_string(), value));
        Ok(())
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        self.with(bucket, |map| map.remove(key));
        Ok(())
    }

    async fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        Ok(self.with(bucket, |map| page_of(map.keys().cloned(), cursor)))
    }

    async fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, KvError> {
        self.with(bucket, |map| {
            let current = match map.get(key) {
                Some(bytes) => parse_counter(bytes)?,
                None => 0,
            };
            let next = add_counter(current, delta)?;
            map.insert(key.to_string(), next.to_string().into_bytes());
            Ok(next)
        })
    }

    async fn set_many(&self, bucket: &str, entries: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        self.with(bucket, |map| map.extend(entries));
        Ok(())
    }

    async fn delete_many(&self, bucket: &str, keys: Vec<String>) -> Result<(), KvError> {
        self.with(bucket, |map| {
            for key in keys {
                map.remove(&key);
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn settings_from_backend_or_url_scheme() {
        assert_eq!(
            BackendSettings::from_config(&config(&[])),
            Ok(BackendSettings::Memory)
        );
        assert_eq!(
            BackendSettings::from_config(&config(&[("url", "redis://127.0.0.1:6379")])),
            Ok(BackendSettings::Redis {
                url: "redis://127.0.0.1:6379".into()
            })
        );
        assert_eq!(
            BackendSettings::from_config(&config(&[("backend", "filesystem"), ("path", "kv.db")])),
            Ok(BackendSettings::Filesystem {
                path: "kv.db".into()
            })
        );
        let err = BackendSettings::from_config(&config(&[("backend", "nats")])).unwrap_err();
        assert!(err.contains("needs `url`"), "{err}");
        let err = BackendSettings::from_config(&config(&[("backend", "etcd")])).unwrap_err();
        assert!(err.contains("unknown key-value backend `etcd`"), "{err}");
    }

    #[test]
    fn pages_cover_every_key_once() {
        let keys: Vec<String> = (0..250).map(|i| format!("k{i:03}")).collect();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = page_of(keys.iter().cloned(), cursor);
            seen.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, keys);
    }
}
