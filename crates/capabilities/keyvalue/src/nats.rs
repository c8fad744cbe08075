//! The NATS JetStream key-value backend.
//!
//! A bucket is a JetStream KV bucket of the same name (created on first
//! open, history 1). `increment` is compare-and-set on the key's revision,
//! retried on conflict, so concurrent increments from any number of hosts
//! never lose an update. NATS restricts names: buckets to letters, digits,
//! `-` and `_`; keys to those plus `/ = .` (not at either end); other names
//! get an error that says so.

use super::backend::{KeyPage, KeyValueBackend, KvError, add_counter, page_of, parse_counter};
use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::stream;
use async_trait::async_trait;
use futures::TryStreamExt;
use nimbus_plugin::NatsConnection;
use std::collections::HashMap;
use std::sync::Mutex;

/// A NATS JetStream KV-backed store.
pub(crate) struct NatsBackend {
    connection: NatsConnection,
    stores: Mutex<HashMap<String, kv::Store>>,
}

impl std::fmt::Debug for NatsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NatsBackend")
    }
}

fn other(error: impl std::fmt::Display) -> KvError {
    KvError::Other(format!("nats: {error}"))
}

fn valid_bucket(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_key(key: &str) -> Result<(), KvError> {
    let valid = !key.is_empty()
        && !key.starts_with('.')
        && !key.ends_with('.')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-/_=.".contains(c));
    if valid {
        Ok(())
    } else {
        Err(KvError::Other(format!(
            "key `{key}` is not valid for NATS key-value (letters, digits and - / _ = . only, not starting or ending with .)"
        )))
    }
}

impl NatsBackend {
    pub(crate) fn new(connection: NatsConnection) -> Self {
        Self {
            connection,
            stores: Mutex::new(HashMap::new()),
        }
    }

    async fn store(&self, bucket: &str) -> Result<kv::Store, KvError> {
        if let Some(store) = self
            .stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(bucket)
        {
            return Ok(store.clone());
        }
        if !valid_bucket(bucket) {
            return Err(KvError::Other(format!(
                "bucket `{bucket}` is not a valid NATS key-value bucket name (letters, digits, - and _ only)"
            )));
        }
        let client = self
            .connection
            .client()
            .await
            .map_err(|e| KvError::Other(e.to_string()))?;
        let mut js = async_nats::jetstream::new(client.clone());
        js.set_timeout(self.connection.timeout());
        let store = match js.get_key_value(bucket).await {
            Ok(store) => store,
            Err(_) => {
                // The stream a KV bucket is, made directly: async-nats's
                // `create_key_value` first reads account info in a shape
                // nats-server 2.9 does not send.
                js.get_or_create_stream(stream::Config {
                    name: format!("KV_{bucket}"),
                    subjects: vec![format!("$KV.{bucket}.>")],
                    max_messages_per_subject: 1,
                    discard: stream::DiscardPolicy::New,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    num_replicas: 1,
                    storage: stream::StorageType::File,
                    duplicate_window: std::time::Duration::from_secs(120),
                    ..Default::default()
                })
                .await
                .map_err(other)?;
                js.get_key_value(bucket).await.map_err(other)?
            }
        };
        self.stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(bucket.to_string(), store.clone());
        Ok(store)
    }
}

#[async_trait]
impl KeyValueBackend for NatsBackend {
    async fn open(&self, bucket: &str) -> Result<(), KvError> {
        self.store(bucket).await.map(drop)
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_key(key)?;
        let store = self.store(bucket).await?;
        Ok(store.get(key).await.map_err(other)?.map(|b| b.to_vec()))
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        check_key(key)?;
        let store = self.store(bucket).await?;
        store.put(key, value.into()).await.map_err(other)?;
        Ok(())
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        check_key(key)?;
        let store = self.store(bucket).await?;
        store.delete(key).await.map_err(other)
    }

    async fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        let store = self.store(bucket).await?;
        let keys = match store.keys().await {
            Ok(keys) => keys,
            Err(e) => return Err(other(e)),
        };
        let mut keys: Vec<String> = keys.try_collect().await.map_err(other)?;
        keys.sort();
        Ok(page_of(keys.into_iter(), cursor))
    }

    async fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, KvError> {
        check_key(key)?;
        let store = self.store(bucket).await?;
        loop {
            let entry = store.entry(key).await.map_err(other)?;
            let (next, revision) = match entry {
                Some(entry) if entry.operation == Operation::Put => (
                    add_counter(parse_counter(&entry.value)?, delta)?,
                    Some(entry.revision),
                ),
                // Deleted or purged: start again from zero on that revision.
                Some(entry) => (delta, Some(entry.revision)),
                None => (delta, None),
            };
            let value = next.to_string().into();
            let written = match revision {
                Some(revision) => match store.update(key, value, revision).await {
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => false,
                    Err(e) => return Err(other(e)),
                    Ok(_) => true,
                },
                None => match store.create(key, value).await {
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => false,
                    Err(e) => return Err(other(e)),
                    Ok(_) => true,
                },
            };
            if written {
                return Ok(next);
            }
        }
    }
}
