//! `nimbus scale deployment|replicaset NAME --replicas N`: changes how many
//! replicas a stored resource wants (wasmCloud's `/scale` subresource, as
//! `kubectl scale` sets it). The template is untouched, so nothing rolls;
//! the controller places or removes replicas. A later `nimbus apply` of
//! the file sets the file's count again.

use super::apply::kind_label;
use super::{BucketRef, NatsArgs, ResourceKind, find_resource};
use anyhow::Context as _;
use clap::Args;
use nimbus_cluster::connect::Persistence;

/// The most replicas one resource may ask for: more is a typo, not a plan.
const MAX_REPLICAS: u32 = 10_000;

/// Arguments of `nimbus scale`.
#[derive(Args)]
pub(crate) struct ScaleCommand {
    /// `deployment` or `replicaset`.
    #[arg(value_enum)]
    kind: ResourceKind,
    /// Its name.
    name: String,
    /// Replicas wanted (0 stops every replica but keeps the resource).
    #[arg(long)]
    replicas: u32,
    /// Its namespace (default `default`).
    #[arg(short, long)]
    namespace: Option<String>,
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    bucket: BucketRef,
}

impl ScaleCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        crate::commands::block_on(self.run())
    }

    async fn run(self) -> anyhow::Result<()> {
        let kind = self.kind.kind();
        anyhow::ensure!(
            !matches!(self.kind, ResourceKind::Workload),
            "a Workload runs one replica; scale a deployment or a replicaset"
        );
        anyhow::ensure!(
            self.replicas <= MAX_REPLICAS,
            "--replicas {} is more than {MAX_REPLICAS}",
            self.replicas
        );
        let client = self.nats.connect("nimbus-scale", Persistence::Once).await?;
        let store = self.bucket.open(client, self.nats.timeout()).await?;
        let (id, stored) =
            find_resource(&store, kind, &self.name, self.namespace.as_deref()).await?;
        let label = kind_label(kind);
        if stored.replicas == self.replicas {
            outln!("{label}/{id} has {} replicas already", self.replicas)?;
            return Ok(());
        }
        let before = store
            .scale(&id, kind, self.replicas)
            .await
            .with_context(|| format!("cannot scale {label}/{id}"))?
            .with_context(|| format!("{label}/{id} was deleted meanwhile"))?;
        outln!(
            "{label}/{id} scaled from {before} to {} replicas",
            self.replicas
        )?;
        Ok(())
    }
}
