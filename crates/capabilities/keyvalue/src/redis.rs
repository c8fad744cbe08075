//! The Redis key-value backend.
//!
//! One multiplexed, self-reconnecting connection per server URL per host
//! (redis' `ConnectionManager`, connected lazily so a workload starts even
//! while Redis is down). A bucket is a key prefix, `BUCKET:`; `list_keys`
//! is `SCAN` over that prefix with Redis's own cursor; `increment` is
//! `INCRBY`, atomic in the server.

use super::backend::{KeyPage, KeyValueBackend, KvError, OpenError, PAGE_SIZE};
use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// A Redis-backed store.
#[derive(Clone)]
pub struct RedisBackend {
    connection: ConnectionManager,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisBackend")
    }
}

fn other(error: redis::RedisError) -> KvError {
    KvError::Other(format!("redis: {error}"))
}

fn full_key(bucket: &str, key: &str) -> String {
    format!("{bucket}:{key}")
}

/// Escapes Redis glob characters so a bucket name matches only itself.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl RedisBackend {
    /// A lazily connecting backend for `url`; `timeout` bounds connecting
    /// and each response.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, OpenError> {
        let client = redis::Client::open(url).map_err(|error| OpenError::RedisUrl { error })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|error| OpenError::RedisSetup { error })?;
        Ok(Self { connection })
    }
}

#[async_trait]
impl KeyValueBackend for RedisBackend {
    async fn open(&self, _bucket: &str) -> Result<(), KvError> {
        Ok(())
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let mut c = self.connection.clone();
        c.get(full_key(bucket, key)).await.map_err(other)
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        let mut c = self.connection.clone();
        c.set(full_key(bucket, key), value).await.map_err(other)
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        let mut c = self.connection.clone();
        c.del(full_key(bucket, key)).await.map_err(other)
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        let mut c = self.connection.clone();
        c.exists(full_key(bucket, key)).await.map_err(other)
    }

    async fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        let mut c = self.connection.clone();
        let prefix = format!("{bucket}:");
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor.unwrap_or(0))
            .arg("MATCH")
            .arg(format!("{}*", glob_escape(&prefix)))
            .arg("COUNT")
            .arg(PAGE_SIZE)
            .query_async(&mut c)
            .await
            .map_err(other)?;
        Ok(KeyPage {
            keys: keys
                .into_iter()
                .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
                .collect(),
            cursor: (next != 0).then_some(next),
        })
    }

    async fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, KvError> {
        let delta = i64::try_from(delta)
            .map_err(|_| KvError::Other("redis counters take deltas up to 2^63-1".into()))?;
        let mut c = self.connection.clone();
        let value: i64 = c.incr(full_key(bucket, key), delta).await.map_err(other)?;
        u64::try_from(value).map_err(|_| KvError::Other("the counter is negative".into()))
    }

    async fn get_many(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.connection.clone();
        let full: Vec<String> = keys.iter().map(|k| full_key(bucket, k)).collect();
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(full)
            .query_async(&mut c)
            .await
            .map_err(other)?;
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, value)| value.map(|v| (key, v)))
            .collect())
    }

    async fn set_many(&self, bucket: &str, entries: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut c = self.connection.clone();
        let full: Vec<(String, Vec<u8>)> = entries
            .into_iter()
            .map(|(k, v)| (full_key(bucket, &k), v))
            .collect();
        c.mset(&full).await.map_err(other)
    }

    async fn delete_many(&self, bucket: &str, keys: Vec<String>) -> Result<(), KvError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut c = self.connection.clone();
        let full: Vec<String> = keys.iter().map(|k| full_key(bucket, k)).collect();
        c.del(full).await.map_err(other)
    }
}
