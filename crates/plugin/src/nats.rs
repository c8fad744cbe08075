//! NATS connections shared by the plugins of one host: one client per
//! server URL, made on first use.
//!
//! Clients connect with `retry_on_initial_connect`, so a workload starts
//! while NATS is down and the client keeps reconnecting in the background;
//! every request carries a timeout, so a call during an outage fails
//! instead of hanging.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;

/// Connections by URL.
#[derive(Default)]
pub struct NatsConnections {
    clients: Mutex<HashMap<String, Arc<OnceCell<async_nats::Client>>>>,
}

impl NatsConnections {
    /// The lazily connected client for `url`.
    pub fn get(&self, url: &str, timeout: Duration) -> NatsConnection {
        let cell = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(url.to_string())
            .or_default()
            .clone();
        NatsConnection {
            url: url.to_string(),
            timeout,
            cell,
        }
    }
}

/// A handle to one shared client.
#[derive(Clone)]
pub struct NatsConnection {
    url: String,
    timeout: Duration,
    cell: Arc<OnceCell<async_nats::Client>>,
}

impl NatsConnection {
    /// The client, connecting on first use.
    pub async fn client(&self) -> Result<&async_nats::Client, NatsConnectError> {
        self.cell
            .get_or_try_init(|| async {
                async_nats::ConnectOptions::new()
                    .retry_on_initial_connect()
                    .connection_timeout(self.timeout)
                    .request_timeout(Some(self.timeout))
                    .connect(self.url.as_str())
                    .await
                    .map_err(NatsConnectError)
            })
            .await
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// A NATS client could not be made (a bad URL or options; an unreachable
/// server is retried in the background instead).
#[derive(Debug, thiserror::Error)]
#[error("nats: cannot connect: {0}")]
pub struct NatsConnectError(async_nats::ConnectError);
