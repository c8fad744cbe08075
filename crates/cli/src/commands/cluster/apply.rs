//! `nimbus apply -f FILE` and `nimbus delete`: write desired state.
//!
//! Every document is parsed and validated before anything is stored, so an
//! invalid file changes nothing; the error names the field path.

use super::{BucketArgs, BucketRef, NatsArgs, ResourceKind};
use anyhow::Context as _;
use clap::Args;
use nimbus_cluster::connect::Persistence;
use nimbus_cluster::store::{Applied, Kind, Resource};
use std::path::{Path, PathBuf};

/// Arguments of `nimbus apply`.
#[derive(Args)]
pub(crate) struct ApplyCommand {
    /// The manifest: `Workload`, `WorkloadDeployment` and
    /// `WorkloadReplicaSet` documents
    /// (`apiVersion: runtime.wasmcloud.dev/v1alpha1`).
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    bucket: BucketArgs,
}

/// Reads, validates and converts every document of `file`.
fn read_resources(file: &Path) -> anyhow::Result<Vec<Resource>> {
    let documents = crate::commands::read_manifest(file)?;
    documents
        .into_iter()
        .map(|document| {
            // Each document's own text, as read once with the rest.
            let manifest = serde_json::to_value(&document.raw)
                .with_context(|| format!("invalid manifest `{}`", file.display()))?;
            Ok(Resource::from_document(document, manifest)?)
        })
        .collect()
}

pub(crate) fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Workload => "workload",
        Kind::WorkloadDeployment => "workloaddeployment",
        Kind::WorkloadReplicaSet => "workloadreplicaset",
    }
}

impl ApplyCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        crate::commands::block_on(self.run())
    }

    async fn run(self) -> anyhow::Result<()> {
        let resources = read_resources(&self.file)?;
        let timeout = self.nats.timeout();
        let client = self.nats.connect("nimbus-apply", Persistence::Once).await?;
        let store = self.bucket.open(client, timeout).await?;
        for resource in resources {
            let (kind, id) = (kind_label(resource.kind), resource.id());
            let applied = store
                .apply(resource)
                .await
                .with_context(|| format!("cannot apply {kind} {id}"))?;
            let verb = match applied {
                Applied::Created => "created",
                Applied::Configured => "configured",
                Applied::Unchanged => "unchanged",
            };
            outln!("{kind}/{id} {verb}")?;
        }
        Ok(())
    }
}

/// Arguments of `nimbus delete`.
#[derive(Args)]
pub(crate) struct DeleteCommand {
    /// `workload`, `deployment` or `replicaset` (or use `-f`).
    #[arg(value_enum, required_unless_present = "file", requires = "name")]
    kind: Option<ResourceKind>,
    /// Its name.
    name: Option<String>,
    /// Its namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Delete everything a manifest describes.
    #[arg(short = 'f', long = "filename", conflicts_with_all = ["kind", "name"])]
    file: Option<PathBuf>,
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    bucket: BucketRef,
}

impl DeleteCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        crate::commands::block_on(self.run())
    }

    async fn run(self) -> anyhow::Result<()> {
        let targets: Vec<(Kind, String)> = match (&self.file, self.kind, &self.name) {
            (Some(file), _, _) => read_resources(file)?
                .into_iter()
                .map(|r| (r.kind, r.id()))
                .collect(),
            (None, Some(kind), Some(name)) => {
                vec![(kind.kind(), format!("{}/{name}", self.namespace))]
            }
            _ => anyhow::bail!("name what to delete: `delete workload NAME` or `delete -f FILE`"),
        };
        let timeout = self.nats.timeout();
        let client = self
            .nats
            .connect("nimbus-delete", Persistence::Once)
            .await?;
        let store = self.bucket.open(client, timeout).await?;
        for (kind, id) in targets {
            let label = kind_label(kind);
            match store.resource(&id).await? {
                None => {
                    let name = id.split_once('/').map_or(id.as_str(), |(_, n)| n);
                    let elsewhere = super::namespaces_holding(&store, kind, name).await?;
                    match elsewhere.first() {
                        Some(namespace) => anyhow::bail!(
                            "{label}/{id} not found; there is one in namespace `{namespace}` (add `-n {namespace}`)"
                        ),
                        None => anyhow::bail!("{label}/{id} not found"),
                    }
                }
                Some(stored) if stored.kind != kind => anyhow::bail!(
                    "{id} is a {}, not a {}",
                    stored.kind.as_str(),
                    kind.as_str()
                ),
                Some(_) => {
                    store.delete(&id).await?;
                    outln!("{label}/{id} deleted")?;
                }
            }
        }
        Ok(())
    }
}
