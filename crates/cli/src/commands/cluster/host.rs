//! `nimbus host`: join a cluster. Runs a host that serves HTTP and takes
//! its workloads from the controller over NATS.

use super::{NatsArgs, parse_duration};
use anyhow::Context as _;
use clap::Args;
use nimbus_cluster::agent::{self, AgentSettings};
use nimbus_cluster::api::{HOSTGROUP_LABEL, valid_host_id};
use nimbus_cluster::connect::Persistence;
use nimbus_host::Host;
use nimbus_host::http::DynamicRouter;
use nimbus_host::http::admin::Readiness;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `nimbus host`.
#[derive(Args)]
pub(crate) struct HostCommand {
    #[command(flatten)]
    pub(crate) otlp: crate::commands::OtlpArgs,
    #[command(flatten)]
    nats: NatsArgs,
    /// Host id (default: the host name and a unique suffix).
    #[arg(long)]
    id: Option<String>,
    /// Host group, reported as the `hostgroup` label.
    #[arg(long, default_value = "default", value_parser = parse_group)]
    group: String,
    /// A label, `key=value`; repeat for several. Workloads pick hosts by
    /// label with `hostSelector`.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Where to serve HTTP (requests are routed by Host header).
    #[arg(long, default_value = "127.0.0.1:8000")]
    http_addr: SocketAddr,
    /// Time between heartbeats.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    heartbeat_interval: Duration,
    /// Memory this host offers the cluster for placement (`512M`, `4G`):
    /// each workload placed here reserves the memory limit of every
    /// component, one instance each. Reported in heartbeats; the
    /// controller places elsewhere what does not fit, and a start that does
    /// not fit is refused. Default: no limit on placement. (Unlike
    /// `--memory-budget-mb`, which bounds the memory instances hold live.)
    #[arg(long, value_name = "SIZE", value_parser = crate::commands::serve::component_flags::parse_size)]
    capacity_memory: Option<u64>,
    /// CPU this host offers the cluster for placement, in cores (`2`,
    /// `1500m`): each workload placed here reserves the `cpuLimit` of every
    /// component that sets one. Default: no limit on placement.
    #[arg(long, value_name = "CORES")]
    capacity_cpu: Option<nimbus_model::CpuLimit>,
    /// How long to let in-flight requests finish on shutdown, in seconds.
    #[arg(long, default_value_t = 30)]
    drain_timeout: u64,
    /// Serve the web console, `/metrics`, `/healthz` and `/readyz` here;
    /// `off` for none.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    admin_addr: crate::commands::admin::AdminAddr,
    #[command(flatten)]
    admin_token: crate::commands::admin::AdminTokenArg,
    /// The desired-state bucket the console's cluster view reads.
    #[command(flatten)]
    bucket: super::BucketRef,
    #[command(flatten)]
    host: crate::commands::serve::HostArgs,
}

/// `--label KEY=VALUE`, in Kubernetes label syntax: what a workload's
/// `hostSelector` can name.
fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    nimbus_model::labels::check_label(key, value).map_err(|error| error.to_string())?;
    Ok((key.to_string(), value.to_string()))
}

/// `--group`: the `hostgroup` label's value, so in label syntax too; not
/// empty, which no `hostSelector` would mean.
fn parse_group(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("names no group (leave --group out for `default`)".to_string());
    }
    nimbus_model::labels::check_label(HOSTGROUP_LABEL, text).map_err(|error| error.to_string())?;
    Ok(text.to_string())
}

impl HostCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        crate::commands::block_on(self.run())
    }

    async fn run(self) -> anyhow::Result<()> {
        let id = self.id.clone().unwrap_or_else(agent::generate_host_id);
        anyhow::ensure!(
            valid_host_id(&id),
            "host id `{id}` must be letters, digits, `-` or `_`"
        );
        let mut labels: BTreeMap<String, String> = self.labels.iter().cloned().collect();
        anyhow::ensure!(
            !labels.contains_key(HOSTGROUP_LABEL),
            "set the `{HOSTGROUP_LABEL}` label with --group"
        );
        labels.insert(HOSTGROUP_LABEL.into(), self.group.clone());
        anyhow::ensure!(
            self.capacity_memory != Some(0),
            "--capacity-memory must be more than 0; leave it out for no limit"
        );
        let mut config = self.host.config()?;
        // Always counted: the controller's autoscaler reads the counters
        // from heartbeats, and a host not counting would look idle.
        config.accounting = true;
        let max_instances = config.engine.pool_instances;
        let host = Host::new(config, Arc::new(DynamicRouter::new()))?;
        crate::telemetry::export_metrics(host.metrics());
        let readiness = Readiness::default();
        let listener = tokio::net::TcpListener::bind(self.http_addr)
            .await
            .with_context(|| format!("cannot listen on {}", self.http_addr))?;
        let http_addr = listener.local_addr()?;
        let client = self
            .nats
            .connect(&format!("nimbus-host-{id}"), Persistence::Retry)
            .await?;
        let cluster = nimbus_cluster::overview::ConsoleCluster {
            client: client.clone(),
            bucket: self.bucket.settings(self.nats.timeout()),
            host_id: id.clone(),
        };
        let admin = crate::commands::admin::AdminOptions {
            addr: self.admin_addr,
            token: &self.admin_token,
            cluster: Some(Arc::new(cluster)),
            fall_back_to_free_port: false,
        };
        crate::commands::admin::start(admin, &host, &readiness).await?;
        let settings = AgentSettings {
            host_id: id.clone(),
            labels,
            http_address: Some(http_addr.to_string()),
            heartbeat_interval: self.heartbeat_interval,
            max_instances,
            memory_budget: self.capacity_memory,
            cpu_budget_millis: self.capacity_cpu.map(|cpu| u64::from(cpu.millicores())),
        };
        let signal = crate::commands::shutdown_signal();
        readiness.set(true);
        outln!("Serving on http://{http_addr}/")?;
        outln!("host {id} joining the cluster at {}", self.nats.url())?;
        let shutdown = tokio_util::sync::CancellationToken::new();
        let agent = tokio::spawn({
            let (host, shutdown) = (host.clone(), shutdown.clone());
            async move { agent::run(client, host, settings, shutdown.cancelled_owned()).await }
        });
        let drained = nimbus_host::http::serve(
            listener,
            host,
            {
                let shutdown = shutdown.clone();
                async move {
                    crate::commands::admin::not_ready_after(signal, readiness).await;
                    shutdown.cancel();
                }
            },
            Duration::from_secs(self.drain_timeout),
        )
        .await?;
        shutdown.cancel();
        // Bounded whatever NATS is doing: the process exits within the
        // drain timeout plus these few seconds.
        match tokio::time::timeout(Duration::from_secs(5), agent).await {
            Ok(joined) => joined.context("the host agent panicked")??,
            Err(_) => tracing::warn!("the host agent did not stop within 5s; leaving anyway"),
        }
        eprintln!(
            "host {id} left the cluster{}",
            if drained {
                ""
            } else {
                " (some requests did not finish)"
            }
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_group, parse_label};

    #[test]
    fn labels_and_the_group_are_what_a_host_selector_can_name() {
        assert_eq!(
            parse_label("topology.kubernetes.io/zone=eu-1"),
            Ok(("topology.kubernetes.io/zone".into(), "eu-1".into()))
        );
        assert_eq!(parse_label("gpu="), Ok(("gpu".into(), String::new())));
        for bad in ["a b=c", "=c", "zone=eu west", "zone"] {
            assert!(parse_label(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_group("edge"), Ok("edge".into()));
        assert!(parse_group("").unwrap_err().contains("names no group"));
        assert!(parse_group("edge nodes").is_err());
    }
}
