//! Cluster subcommands: `host` and `controller` (long-running), and
//! `apply`, `get`, `delete` (one-shot, against the desired-state bucket).

pub(crate) mod apply;
pub(crate) mod controller;
pub(crate) mod get;
pub(crate) mod host;

use anyhow::Context as _;
use clap::Args;
use nimbus_cluster::connect::{NatsSettings, Persistence};
use nimbus_cluster::store::{BucketSettings, DEFAULT_BUCKET, Store};
use secrecy::SecretString;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach NATS.
#[derive(Args, Clone)]
pub(crate) struct NatsArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(
        long = "nats",
        env = "NIMBUS_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    url: String,
    /// A JWT credentials file (`.creds`: user JWT and nkey seed).
    #[arg(long = "nats-creds", value_name = "FILE")]
    creds: Option<PathBuf>,
    /// A file holding an nkey seed.
    #[arg(long = "nats-nkey", value_name = "FILE")]
    nkey: Option<PathBuf>,
    /// User name; the password comes from `NIMBUS_NATS_PASSWORD`.
    #[arg(long = "nats-user", requires = "password")]
    user: Option<String>,
    #[arg(
        long = "nats-password",
        env = "NIMBUS_NATS_PASSWORD",
        hide = true,
        hide_env_values = true
    )]
    password: Option<String>,
    /// Token authentication (read from the environment only).
    #[arg(
        long = "nats-token",
        env = "NIMBUS_NATS_TOKEN",
        hide = true,
        hide_env_values = true
    )]
    token: Option<String>,
    /// A CA certificate (PEM) to trust for the NATS server.
    #[arg(long = "nats-tls-ca", value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs `--nats-tls-key`.
    #[arg(long = "nats-tls-cert", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[arg(long = "nats-tls-key", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Refuse to connect without TLS.
    #[arg(long = "nats-require-tls")]
    require_tls: bool,
    /// Timeout of the connection and of each request.
    #[arg(long = "nats-timeout", default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
}

impl NatsArgs {
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The timeout of the connection and of each request.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn settings(&self, name: &str) -> NatsSettings {
        let mut settings = NatsSettings::new(self.url.clone());
        settings.creds_file = self.creds.clone();
        settings.nkey_file = self.nkey.clone();
        settings.user = self
            .user
            .clone()
            .zip(self.password.clone().map(SecretString::from));
        settings.token = self.token.clone().map(SecretString::from);
        settings.tls_ca = self.tls_ca.clone();
        settings.tls_client = self.tls_cert.clone().zip(self.tls_key.clone());
        settings.require_tls = self.require_tls;
        settings.timeout = self.timeout;
        settings.name = name.to_string();
        settings
    }

    pub(crate) async fn connect(
        &self,
        name: &str,
        persistence: Persistence,
    ) -> anyhow::Result<async_nats::Client> {
        Ok(nimbus_cluster::connect::connect(&self.settings(name), persistence).await?)
    }
}

/// Which desired-state bucket.
#[derive(Args, Clone)]
pub(crate) struct BucketArgs {
    /// The JetStream key-value bucket holding desired state.
    #[arg(long, default_value = DEFAULT_BUCKET)]
    bucket: String,
    /// Its replication factor when it has to be created (3 on a
    /// three-server NATS cluster).
    #[arg(long, default_value_t = 1)]
    bucket_replicas: usize,
}

impl BucketArgs {
    pub(crate) fn name(&self) -> &str {
        &self.bucket
    }

    pub(crate) async fn open(
        &self,
        client: async_nats::Client,
        timeout: Duration,
    ) -> anyhow::Result<Store> {
        anyhow::ensure!(
            (1..=5).contains(&self.bucket_replicas),
            "--bucket-replicas must be between 1 and 5"
        );
        Store::open(
            client,
            &BucketSettings {
                bucket: self.bucket.clone(),
                replicas: self.bucket_replicas,
                timeout,
            },
        )
        .await
        .context("is JetStream enabled on the NATS server?")
    }
}

/// `500ms`, `5s`, `2m`, or plain seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 500ms, 5s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (use ms, s or m)")),
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("`{text}` must be greater than zero"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5h").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("fast").is_err());
        assert!(
            parse_duration("99999999999999999999999s")
                .unwrap_err()
                .contains("too long")
        );
    }
}
