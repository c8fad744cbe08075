//! `nimbus controller`: run the reconciler. Several may run; one leads.

use super::{BucketArgs, NatsArgs, parse_duration};
use clap::Args;
use nimbus_cluster::connect::Persistence;
use nimbus_cluster::controller::{Controller, ControllerSettings};
use std::time::Duration;

/// Arguments of `nimbus controller`.
#[derive(Args)]
pub(crate) struct ControllerCommand {
    #[command(flatten)]
    pub(crate) otlp: crate::commands::OtlpArgs,
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    bucket: BucketArgs,
    /// Controller id, shown in the lease (default: a unique id).
    #[arg(long)]
    id: Option<String>,
    /// Heartbeat intervals a host may miss before its replicas move.
    #[arg(long, default_value_t = 3)]
    missed_heartbeats: u32,
    /// The hosts' heartbeat interval (a new leader watches 1.5 intervals
    /// before acting).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    heartbeat_interval: Duration,
    /// How long the leader lease lasts without renewal.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    lease_ttl: Duration,
}

impl ControllerCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        crate::commands::block_on(self.run())
    }

    async fn run(self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.missed_heartbeats >= 1,
            "--missed-heartbeats must be at least 1"
        );
        let mut settings = ControllerSettings {
            missed_heartbeats: self.missed_heartbeats,
            heartbeat_interval: self.heartbeat_interval,
            lease_ttl: self.lease_ttl,
            ..ControllerSettings::default()
        };
        if let Some(id) = self.id {
            settings.id = id;
        }
        let timeout = self.nats.timeout();
        let client = self
            .nats
            .connect(&format!("nimbus-{}", settings.id), Persistence::Retry)
            .await?;
        // The bucket must exist (or be made) before the controller can act;
        // wait for NATS rather than fail when it is still starting.
        let store = loop {
            match self.bucket.open(client.clone(), timeout).await {
                Ok(store) => break store,
                Err(e) => {
                    tracing::warn!("{}; retrying", crate::error_line::one_line(&e));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        outln!(
            "Controller {} watching bucket `{}`",
            settings.id,
            self.bucket.name()
        )?;
        Controller::new(client, store, settings)
            .run(crate::commands::shutdown_signal())
            .await?;
        Ok(())
    }
}
