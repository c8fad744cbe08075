//! Cluster subcommands: `host` and `controller` (long-running), `apply`,
//! `get`, `delete`, `scale` and `rollout` (one-shot, against the
//! desired-state bucket), and `describe` and `logs` (one resource or host,
//! with its recent events).
//!
//! The flags they share: [`NatsArgs`] (every one), [`BucketArgs`] (the
//! commands that write desired state: `apply`, `controller`) and
//! [`BucketRef`] (those that read it or remove from it).

pub(crate) mod apply;
pub(crate) mod controller;
pub(crate) mod describe;
pub(crate) mod get;
pub(crate) mod host;
pub(crate) mod logs;
pub(crate) mod rollout;
pub(crate) mod scale;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use nimbus_cluster::connect::{NatsSettings, Persistence};
use nimbus_cluster::store::{BucketSettings, DEFAULT_BUCKET, Kind, Resource, Store};
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
    #[command(flatten)]
    connection: NatsConnection,
}

/// How to connect to NATS, once the URL is known: credentials, TLS and the
/// timeout (`nimbus top --nats` has a URL of its own, with no default).
#[derive(Args, Clone)]
pub(crate) struct NatsConnection {
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
        self.connection.timeout
    }

    pub(crate) async fn connect(
        &self,
        name: &str,
        persistence: Persistence,
    ) -> anyhow::Result<async_nats::Client> {
        self.connection.connect(&self.url, name, persistence).await
    }
}

impl NatsConnection {
    /// The timeout of the connection and of each request.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn settings(&self, url: &str, name: &str) -> NatsSettings {
        let mut settings = NatsSettings::new(url.to_string());
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
        url: &str,
        name: &str,
        persistence: Persistence,
    ) -> anyhow::Result<async_nats::Client> {
        Ok(nimbus_cluster::connect::connect(&self.settings(url, name), persistence).await?)
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
        open_bucket(&self.bucket, self.bucket_replicas, client, timeout).await
    }
}

/// Which desired-state bucket, for the commands that read it or remove
/// from it (`get`, `delete`, `describe`, `logs`). They open it as `apply`
/// does, making it if it is missing, so `--bucket-replicas` is still
/// accepted (scripts passed it before), but hidden: it is for the commands
/// that write desired state.
#[derive(Args, Clone)]
pub(crate) struct BucketRef {
    /// The JetStream key-value bucket holding desired state.
    #[arg(long, default_value = DEFAULT_BUCKET)]
    bucket: String,
    #[arg(long, default_value_t = 1, hide = true)]
    bucket_replicas: usize,
}

impl BucketRef {
    /// The bucket's settings, each operation bounded by `timeout`.
    pub(crate) fn settings(&self, timeout: Duration) -> BucketSettings {
        BucketSettings {
            bucket: self.bucket.clone(),
            replicas: self.bucket_replicas,
            timeout,
        }
    }

    pub(crate) async fn open(
        &self,
        client: async_nats::Client,
        timeout: Duration,
    ) -> anyhow::Result<Store> {
        open_bucket(&self.bucket, self.bucket_replicas, client, timeout).await
    }
}

async fn open_bucket(
    bucket: &str,
    replicas: usize,
    client: async_nats::Client,
    timeout: Duration,
) -> anyhow::Result<Store> {
    anyhow::ensure!(
        (1..=5).contains(&replicas),
        "--bucket-replicas must be between 1 and 5"
    );
    Store::open(
        client,
        &BucketSettings {
            bucket: bucket.to_string(),
            replicas,
            timeout,
        },
    )
    .await
    .context("is JetStream enabled on the NATS server?")
}

/// A kind of stored resource, as `delete` and `logs` name it.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ResourceKind {
    #[value(alias = "workloads", alias = "wl")]
    Workload,
    #[value(
        alias = "deployments",
        alias = "deploy",
        alias = "workloaddeployment",
        alias = "workloaddeployments"
    )]
    Deployment,
    #[value(
        name = "replicaset",
        alias = "replicasets",
        alias = "rs",
        alias = "workloadreplicaset",
        alias = "workloadreplicasets"
    )]
    ReplicaSet,
}

impl ResourceKind {
    pub(crate) fn kind(self) -> Kind {
        match self {
            Self::Workload => Kind::Workload,
            Self::Deployment => Kind::WorkloadDeployment,
            Self::ReplicaSet => Kind::WorkloadReplicaSet,
        }
    }
}

/// The namespaces that hold a `kind` named `name` (for the hint after a
/// forgotten `-n`, kubectl's most common surprise).
pub(crate) async fn namespaces_holding(
    store: &Store,
    kind: Kind,
    name: &str,
) -> anyhow::Result<Vec<String>> {
    Ok(store
        .resources()
        .await?
        .into_values()
        .filter(|r| r.kind == kind && r.workload.name == name)
        .map(|r| r.workload.namespace)
        .collect())
}

/// The stored resource of `kind` named `name` in `namespace` (`default`
/// if none is given), with its id. Not found, the error says where one of
/// that name is (a forgotten `-n`), or that the id holds the other kind.
pub(crate) async fn find_resource(
    store: &Store,
    kind: Kind,
    name: &str,
    namespace: Option<&str>,
) -> anyhow::Result<(String, Resource)> {
    let namespace = namespace.unwrap_or("default");
    let id = format!("{namespace}/{name}");
    match store.resource(&id).await? {
        Some(resource) if resource.kind == kind => Ok((id, resource)),
        Some(resource) => anyhow::bail!(
            "{id} is a {}, not a {}",
            resource.kind.as_str(),
            kind.as_str()
        ),
        None => {
            let elsewhere = namespaces_holding(store, kind, name).await?;
            match elsewhere.first() {
                Some(other) => anyhow::bail!(
                    "{} `{name}` not found in namespace `{namespace}`; there is one in namespace `{other}` (add `-n {other}`)",
                    kind.as_str()
                ),
                None => anyhow::bail!(
                    "{} `{name}` not found in namespace `{namespace}`",
                    kind.as_str()
                ),
            }
        }
    }
}

/// Rows under a header, each column as wide as its widest cell, two
/// spaces apart, no trailing spaces; `indent` before every line.
pub(crate) fn table(indent: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = header.iter().map(|h| h.to_string()).collect::<Vec<_>>();
    for row in std::iter::once(&header).chain(rows) {
        let padded: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(indent);
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// An age as kubectl shows it: `45s`, `12m`, `5h`, `3d`.
pub(crate) fn human_age(age: Duration) -> String {
    let seconds = age.as_secs();
    match seconds {
        0..120 => format!("{seconds}s"),
        120..7_200 => format!("{}m", seconds / 60),
        7_200..172_800 => format!("{}h", seconds / 3_600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// How long ago an event's timestamp was, for people (`12s`), or the
/// timestamp itself if it cannot be read.
pub(crate) fn age_of(timestamp: &str, now: std::time::SystemTime) -> String {
    nimbus_cluster::events::age(timestamp, now).map_or_else(|| timestamp.to_string(), human_age)
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
    use super::{human_age, parse_duration, table};
    use std::time::Duration;

    #[test]
    fn tables_align_columns_without_trailing_spaces() {
        let rows = vec![
            vec!["h0".to_string(), "1".to_string(), String::new()],
            vec!["host-long".to_string(), "12".to_string(), "x".to_string()],
        ];
        assert_eq!(
            table("  ", &["HOST", "REPLICAS", "NOTE"], &rows),
            "  HOST       REPLICAS  NOTE\n  h0         1\n  host-long  12        x\n"
        );
    }

    #[test]
    fn ages_read_as_kubectl_shows_them() {
        let age = |s| human_age(Duration::from_secs(s));
        assert_eq!(
            [
                age(0),
                age(119),
                age(120),
                age(7_199),
                age(7_200),
                age(172_800)
            ],
            ["0s", "119s", "2m", "119m", "2h", "2d"]
        );
    }

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
