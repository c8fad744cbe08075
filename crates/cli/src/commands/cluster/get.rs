//! `nimbus get hosts|workloads|deployments|replicasets`: what the cluster holds, as a
//! table or as JSON/YAML.
//!
//! Hosts answer a ping (`runtime.hosts.ping`) with their heartbeat; the
//! command collects answers for `--wait`. A host the controller placed
//! replicas on that does not answer is listed `NotReady`. Workloads and deployments come
//! from the desired-state bucket, each with the status the controller wrote
//! (its phase in the STATUS column: `Pending`, `Ready`, or `Failed` for a
//! spec a host rejected for good; with its recent events in `-o json|yaml`;
//! `nimbus describe` shows them for people).

use super::{BucketRef, NatsArgs, parse_duration};
use clap::{Args, ValueEnum};
use nimbus_cluster::api;
use nimbus_cluster::connect::Persistence;
use nimbus_cluster::store::{Kind, ResourceStatus, Store};
use nimbus_host::workload::API_VERSION;
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Duration;

#[derive(Clone, Copy, ValueEnum)]
enum What {
    #[value(alias = "host")]
    Hosts,
    #[value(alias = "workload", alias = "wl")]
    Workloads,
    #[value(
        alias = "deployment",
        alias = "deploy",
        alias = "workloaddeployment",
        alias = "workloaddeployments"
    )]
    Deployments,
    #[value(
        name = "replicasets",
        alias = "replicaset",
        alias = "rs",
        alias = "workloadreplicaset",
        alias = "workloadreplicasets"
    )]
    ReplicaSets,
}

use crate::commands::OutputFormat as Format;

/// Arguments of `nimbus get`.
#[derive(Args)]
pub(crate) struct GetCommand {
    /// What to list (singular, plural and short forms: `deploy`, `wl`).
    #[arg(value_enum)]
    what: What,
    /// Only the workload or deployment of this name (or the host of this id).
    name: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
    /// Only this namespace (workloads and deployments).
    #[arg(short, long)]
    namespace: Option<String>,
    /// How long to collect host answers (hosts).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    wait: Duration,
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    bucket: BucketRef,
}

/// A stored resource as shown: the manifest's shape plus status.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Shown {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<ResourceStatus>,
}

#[derive(Serialize)]
struct Metadata {
    name: String,
    namespace: String,
    generation: u64,
}

impl GetCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        crate::commands::block_on(self.run())
    }

    async fn run(self) -> anyhow::Result<()> {
        let client = self.nats.connect("nimbus-get", Persistence::Once).await?;
        match self.what {
            What::Hosts => self.hosts(client).await,
            What::Workloads => self.resources(client, Kind::Workload).await,
            What::Deployments => self.resources(client, Kind::WorkloadDeployment).await,
            What::ReplicaSets => self.resources(client, Kind::WorkloadReplicaSet).await,
        }
    }

    async fn hosts(&self, client: async_nats::Client) -> anyhow::Result<()> {
        let mut hosts = nimbus_cluster::overview::ping_hosts(&client, self.wait)
            .await
            .map_err(anyhow::Error::msg)?;
        if let Some(id) = &self.name {
            hosts.retain(|h| h.id == *id);
            if hosts.is_empty() {
                anyhow::bail!(
                    "host `{id}` did not answer within {} ms",
                    self.wait.as_millis()
                );
            }
        }
        // Hosts the controller placed replicas on that did not answer: shown
        // NotReady in the table (only what answered is in JSON and YAML).
        let silent = if self.output == Format::Table && self.name.is_none() {
            self.silent_hosts(client, &hosts).await
        } else {
            Vec::new()
        };
        if hosts.is_empty() && silent.is_empty() && self.output == Format::Table {
            outln!("No hosts answered within {} ms.", self.wait.as_millis())?;
            return Ok(());
        }
        match self.output {
            Format::Json => outln!("{}", serde_json::to_string_pretty(&hosts)?)?,
            Format::Yaml => out!("{}", serde_yaml_ng::to_string(&hosts)?)?,
            Format::Table => {
                let rows = hosts.iter().map(|h| {
                    let labels: Vec<String> = h
                        .labels
                        .iter()
                        .filter(|(k, _)| *k != api::HOSTGROUP_LABEL)
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    vec![
                        h.id.clone(),
                        "Ready".into(),
                        h.labels
                            .get(api::HOSTGROUP_LABEL)
                            .cloned()
                            .unwrap_or_default(),
                        h.http_address.clone().unwrap_or_else(|| "-".into()),
                        h.workload_count.to_string(),
                        h.replica_count.to_string(),
                        h.version.clone(),
                        labels.join(","),
                    ]
                });
                let silent = silent.iter().map(|id| {
                    let mut row = vec![id.clone(), "NotReady".into()];
                    row.extend(std::iter::repeat_n("-".to_string(), 6));
                    row
                });
                print_table(
                    &[
                        "ID",
                        "STATUS",
                        "GROUP",
                        "HTTP",
                        "WORKLOADS",
                        "REPLICAS",
                        "VERSION",
                        "LABELS",
                    ],
                    rows.chain(silent),
                )?;
            }
        }
        Ok(())
    }

    /// Hosts that statuses place replicas on but that did not answer. The
    /// bucket is read if it exists, within the NATS timeout; if it cannot
    /// be, no host is added.
    async fn silent_hosts(
        &self,
        client: async_nats::Client,
        answered: &[api::HostHeartbeat],
    ) -> Vec<String> {
        let settings = self.bucket.settings(self.nats.timeout());
        let statuses = async {
            let store = Store::open_existing(client, &settings).await?;
            store.statuses().await
        };
        let Ok(statuses) = statuses.await else {
            return Vec::new();
        };
        let named: BTreeSet<String> = statuses
            .values()
            .flat_map(|s| &s.placements)
            .filter(|p| p.replicas > 0)
            .map(|p| p.host.clone())
            .collect();
        named
            .into_iter()
            .filter(|id| answered.iter().all(|h| h.id != *id))
            .collect()
    }

    async fn resources(&self, client: async_nats::Client, kind: Kind) -> anyhow::Result<()> {
        let store = self.bucket.open(client, self.nats.timeout()).await?;
        let statuses = store.statuses().await?;
        let shown: Vec<Shown> = store
            .resources()
            .await?
            .into_iter()
            .filter(|(_, r)| r.kind == kind)
            .filter(|(_, r)| {
                self.namespace
                    .as_ref()
                    .is_none_or(|ns| *ns == r.workload.namespace)
            })
            .filter(|(_, r)| self.name.as_ref().is_none_or(|n| *n == r.workload.name))
            .map(|(id, r)| Shown {
                api_version: API_VERSION,
                kind: r.kind.as_str(),
                metadata: Metadata {
                    name: r.workload.name.clone(),
                    namespace: r.workload.namespace.clone(),
                    generation: r.generation,
                },
                spec: r.manifest.get("spec").cloned().unwrap_or_default(),
                status: statuses.get(&id).cloned(),
            })
            .collect();
        if shown.is_empty() {
            let place = match &self.namespace {
                Some(namespace) => format!(" in namespace {namespace}"),
                None => String::new(),
            };
            if let Some(name) = &self.name {
                anyhow::bail!("{} `{name}` not found{place}", kind.as_str());
            }
            if self.output == Format::Table {
                outln!("No resources found{place}.")?;
                return Ok(());
            }
        }
        match self.output {
            Format::Json => outln!("{}", serde_json::to_string_pretty(&shown)?)?,
            Format::Yaml => {
                // One YAML document per resource, like the files `apply` takes.
                for item in &shown {
                    out!("---\n{}", serde_yaml_ng::to_string(item)?)?;
                }
            }
            Format::Table => {
                let rows = shown.iter().map(|s| {
                    let status = s.status.as_ref();
                    let hosts: Vec<String> = status
                        .map(|st| {
                            st.placements
                                .iter()
                                .filter(|p| p.replicas > 0)
                                .map(|p| {
                                    let marker = if p.host_ready { "" } else { "(NotReady)" };
                                    format!("{}×{}{marker}", p.host, p.replicas)
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    vec![
                        s.metadata.namespace.clone(),
                        s.metadata.name.clone(),
                        status.map_or_else(|| "-".to_string(), |st| st.phase.to_string()),
                        status.map_or_else(
                            || "-".to_string(),
                            |st| format!("{}/{}", st.ready, st.desired),
                        ),
                        status.map_or_else(|| "-".to_string(), |st| st.updated.to_string()),
                        status.map_or_else(|| "-".to_string(), |st| st.available.to_string()),
                        s.metadata.generation.to_string(),
                        if hosts.is_empty() {
                            "-".into()
                        } else {
                            hosts.join(",")
                        },
                        status.and_then(|st| st.message.clone()).unwrap_or_default(),
                    ]
                });
                print_table(
                    &[
                        "NAMESPACE",
                        "NAME",
                        "STATUS",
                        "READY",
                        "UP-TO-DATE",
                        "AVAILABLE",
                        "GENERATION",
                        "HOSTS",
                        "MESSAGE",
                    ],
                    rows,
                )?;
            }
        }
        Ok(())
    }
}

fn print_table(
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> Result<(), crate::StdoutError> {
    let rows: Vec<Vec<String>> = rows.collect();
    out!("{}", super::table("", header, &rows))
}
