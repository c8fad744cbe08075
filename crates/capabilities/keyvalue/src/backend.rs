//! The key-value backend contract, its settings, and the in-memory backend.
//!
//! A backend stores byte values under string keys in named buckets (its own
//! namespaces: a Redis key prefix, a NATS KV bucket, a redb table). Every
//! backend makes `increment` atomic and serves `list_keys` in pages of
//! [`PAGE_SIZE`] with an opaque cursor. Counters are stored as decimal ASCII
//! so that `get` of a counter reads the same on every backend (and Redis's
//! `INCRBY` can do the work there).

use async_trait::async_trait;
use nimbus_model::backends::{BackendError, BackendKind, KEYVALUE};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

/// Keys returned per `list_keys` page.
pub const PAGE_SIZE: usize = 100;

/// Why a key-value backend could not be opened (a workload binding it
/// fails to start with this).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The settings name a backend this build left out, or one key-value
    /// does not take.
    #[error(transparent)]
    Unavailable(#[from] BackendError),
    /// The Redis URL does not parse.
    #[cfg(feature = "redis")]
    #[error("invalid redis url: {error}")]
    RedisUrl {
        /// What the client said.
        error: redis::RedisError,
    },
    /// The Redis client could not be set up.
    #[cfg(feature = "redis")]
    #[error("cannot set up redis connection: {error}")]
    RedisSetup {
        /// What the client said.
        error: redis::RedisError,
    },
    /// The directory of the database file cannot be created.
    #[cfg(feature = "redb")]
    #[error("cannot create `{}`: {error}", path.display())]
    CreateDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The database file cannot be opened or created.
    #[cfg(feature = "redb")]
    #[error("cannot open key-value file `{}`: {error}", path.display())]
    Database {
        /// The file.
        path: std::path::PathBuf,
        /// What redb said.
        error: redb::DatabaseError,
    },
}

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

/// Which backend, and where: the model's one resolver reads it from
/// host-interface config, host defaults and the one-string form alike.
pub use nimbus_model::backends::BackendChoice as BackendSettings;

/// Reads `backend` (memory | filesystem | redis | nats) with `url` or
/// `path`; without `backend`, a `url`'s scheme or a `path` decides. A
/// backend this build left out is an error naming its cargo feature.
pub fn backend_settings(
    config: &BTreeMap<String, String>,
) -> Result<BackendSettings, BackendError> {
    KEYVALUE.resolve(config, missing_feature)
}

/// The cargo feature a backend kind needs, when this build left it out.
pub(crate) fn missing_feature(kind: BackendKind) -> Option<&'static str> {
    match kind {
        BackendKind::Filesystem if !cfg!(feature = "redb") => Some("redb"),
        BackendKind::Redis if !cfg!(feature = "redis") => Some("redis"),
        BackendKind::Nats if !cfg!(feature = "nats") => Some("nats"),
        _ => None,
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

/// Most bytes (keys and values) one workload's in-memory store holds: it
/// lives in the host's memory, outside any guest's memory limit.
pub(crate) const MEMORY_STORE_LIMIT_BYTES: usize = 64 << 20;

/// The in-memory backend: buckets of sorted maps behind one lock (never
/// held across an await), holding at most `limit` bytes of keys and values.
#[derive(Debug)]
pub struct MemoryBackend {
    state: Mutex<MemoryState>,
    limit: usize,
}

#[derive(Debug, Default)]
struct MemoryState {
    buckets: HashMap<String, BTreeMap<String, Vec<u8>>>,
    bytes: usize,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::with_limit(MEMORY_STORE_LIMIT_BYTES)
    }
}

impl MemoryBackend {
    /// An empty store that holds at most `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            state: Mutex::default(),
            limit,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut MemoryState) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn full(&self) -> KvError {
        KvError::Other(format!(
            "the in-memory store is full ({} MiB of keys and values); delete keys, or choose a persistent backend",
            self.limit >> 20
        ))
    }
}

impl MemoryState {
    fn bucket(&mut self, bucket: &str) -> &mut BTreeMap<String, Vec<u8>> {
        self.buckets.entry(bucket.to_string()).or_default()
    }

    /// Stores `entries` in `bucket` if the store stays within `limit`.
    fn put(
        &mut self,
        bucket: &str,
        entries: Vec<(String, Vec<u8>)>,
        limit: usize,
    ) -> Result<(), ()> {
        let map = self.buckets.entry(bucket.to_string()).or_default();
        // The last entry for a key wins, as `extend` stores them.
        let sizes: HashMap<&str, usize> = entries
            .iter()
            .map(|(key, value)| (key.as_str(), key.len() + value.len()))
            .collect();
        let mut after = self.bytes;
        for (key, size) in sizes {
            let old = map.get(key).map_or(0, |v| key.len() + v.len());
            after = after - old + size;
        }
        if after > limit {
            return Err(());
        }
        map.extend(entries);
        self.bytes = after;
        Ok(())
    }

    fn remove(&mut self, bucket: &str, key: &str) {
        if let Some(value) = self.bucket(bucket).remove(key) {
            self.bytes -= key.len() + value.len();
        }
    }
}

#[async_trait]
impl KeyValueBackend for MemoryBackend {
    async fn open(&self, _bucket: &str) -> Result<(), KvError> {
        Ok(())
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.with(|state| state.bucket(bucket).get(key).cloned()))
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        self.set_many(bucket, vec![(key.to_string(), value)]).await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        self.with(|state| state.remove(bucket, key));
        Ok(())
    }

    async fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        Ok(self.with(|state| page_of(state.bucket(bucket).keys().cloned(), cursor)))
    }

    async fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, KvError> {
        self.with(|state| {
            let current = match state.bucket(bucket).get(key) {
                Some(bytes) => parse_counter(bytes)?,
                None => 0,
            };
            let next = add_counter(current, delta)?;
            let entry = vec![(key.to_string(), next.to_string().into_bytes())];
            state
                .put(bucket, entry, self.limit)
                .map_err(|()| self.full())?;
            Ok(next)
        })
    }

    async fn set_many(&self, bucket: &str, entries: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        self.with(|state| state.put(bucket, entries, self.limit))
            .map_err(|()| self.full())
    }

    async fn delete_many(&self, bucket: &str, keys: Vec<String>) -> Result<(), KvError> {
        self.with(|state| {
            for key in keys {
                state.remove(bucket, &key);
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_store_is_bounded_and_counts_what_it_frees() {
        let store = MemoryBackend::with_limit(100);
        store.set("b", "k1", vec![0; 60]).await.unwrap();
        let error = store.set("b", "k2", vec![0; 60]).await.unwrap_err();
        assert!(error.to_string().contains("store is full"), "{error}");
        assert_eq!(
            store.get("b", "k2").await.unwrap(),
            None,
            "nothing half-stored"
        );
        // Replacing a value counts the difference, not both.
        store.set("b", "k1", vec![1; 90]).await.unwrap();
        assert!(
            store
                .set_many("b", vec![("k3".into(), vec![0; 20])])
                .await
                .is_err()
        );
        store.delete("b", "k1").await.unwrap();
        store.set("other", "k2", vec![0; 97]).await.unwrap();
        assert!(
            store.increment("b", "n", 1).await.is_err(),
            "a counter needs room too"
        );
        store.delete_many("other", vec!["k2".into()]).await.unwrap();
        assert_eq!(store.increment("b", "n", 5).await.unwrap(), 5);
        // One key twice in a batch is counted once.
        let twice = vec![("d".into(), vec![0; 40]), ("d".into(), vec![0; 50])];
        store.set_many("c", twice).await.unwrap();
        store.delete("c", "d").await.unwrap();
        store.set("c", "e", vec![0; 90]).await.unwrap();
    }

    // Every backend in the build (compiled_out_tests covers the others).
    #[cfg(all(feature = "redis", feature = "nats", feature = "redb"))]
    #[test]
    fn every_backend_kind_is_built_and_reads_its_settings() {
        let config = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(backend_settings(&config(&[])), Ok(BackendSettings::Memory));
        assert_eq!(
            backend_settings(&config(&[("url", "redis://127.0.0.1:6379")])),
            Ok(BackendSettings::Redis {
                url: "redis://127.0.0.1:6379".into()
            })
        );
        assert_eq!(
            backend_settings(&config(&[("backend", "nats"), ("url", "nats://n:4222")])),
            Ok(BackendSettings::Nats {
                url: "nats://n:4222".into()
            })
        );
        assert_eq!(
            backend_settings(&config(&[("backend", "filesystem"), ("path", "kv.db")])),
            Ok(BackendSettings::Filesystem {
                path: "kv.db".into()
            })
        );
    }

    // What a build without a backend's feature says (the test command runs
    // this crate with `--no-default-features` too).
    #[cfg(not(all(feature = "redis", feature = "nats", feature = "redb")))]
    #[test]
    fn a_left_out_backend_names_its_feature_in_one_line() {
        let config = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let says_not_built = |error: &str, feature: &str| {
            assert!(
                error.ends_with(&format!(
                    "key-value backend is not in this build of nimbus (rebuild it with the cargo feature `{feature}`)"
                )),
                "{error}"
            );
            assert!(!error.contains('\n'), "{error}");
        };
        for (settings, by_hand, feature, built) in [
            (
                &[("url", "redis://127.0.0.1:6379")][..],
                BackendSettings::Redis {
                    url: "redis://127.0.0.1:6379".into(),
                },
                "redis",
                cfg!(feature = "redis"),
            ),
            (
                &[("path", "/tmp/kv.redb")][..],
                BackendSettings::Filesystem {
                    path: "/tmp/kv.redb".into(),
                },
                "redb",
                cfg!(feature = "redb"),
            ),
            (
                &[("backend", "nats"), ("url", "nats://127.0.0.1:4222")][..],
                BackendSettings::Nats {
                    url: "nats://127.0.0.1:4222".into(),
                },
                "nats",
                cfg!(feature = "nats"),
            ),
        ] {
            if built {
                continue;
            }
            let error = backend_settings(&config(settings)).unwrap_err();
            says_not_built(&error.to_string(), feature);
            // Settings made by hand (tools, tests) get the same words when opened.
            let opened = crate::open_backend(&by_hand, DEFAULT_TIMEOUT).err();
            assert!(
                matches!(opened, Some(OpenError::Unavailable(_))),
                "{opened:?}"
            );
            says_not_built(&opened.map(|e| e.to_string()).unwrap_or_default(), feature);
        }
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
