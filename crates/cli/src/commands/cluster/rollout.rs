//! `nimbus rollout status|undo|history DEPLOYMENT`: follow a deployment's
//! move to its current template, go back to an earlier one, list them.
//!
//! `status` reads the status the controller writes (`rollout`: Complete,
//! Progressing or Stopped, with the replicas updated and available) and
//! prints a line each time it changes until the rollout completes (exit 0)
//! or stops because the new template fails to start (exit 1, with the
//! host's reason), bounded by `--timeout`. `undo` stores an earlier
//! template (the one before, or `--to-revision N`) as a new revision,
//! rolled out like any change.

use super::{BucketRef, NatsArgs, find_resource, parse_duration};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use nimbus_cluster::connect::Persistence;
use nimbus_cluster::store::{Kind, Resource, ResourceStatus, RolloutState, Store};
use std::time::{Duration, Instant};

/// Arguments of `nimbus rollout`.
#[derive(Args)]
pub(crate) struct RolloutCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Follow the rollout until it completes (exit 0) or stops (exit 1).
    Status {
        #[command(flatten)]
        target: Target,
        /// How long to wait for it to complete.
        #[arg(long = "timeout", id = "rollout_timeout", value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
        timeout: Duration,
        /// Print where it stands once and return (exit 1 only if stopped).
        #[arg(long)]
        no_wait: bool,
    },
    /// Go back to an earlier template (rolled out like any change).
    Undo {
        #[command(flatten)]
        target: Target,
        /// The revision to go back to (default: the one before).
        #[arg(long)]
        to_revision: Option<u64>,
    },
    /// List the templates kept, by revision.
    History {
        #[command(flatten)]
        target: Target,
    },
}

/// Which deployment.
#[derive(Args)]
struct Target {
    /// The deployment: `NAME` or `deployment/NAME`.
    deployment: String,
    /// Its namespace (default `default`).
    #[arg(short, long)]
    namespace: Option<String>,
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    bucket: BucketRef,
}

/// A deployment's name, `deployment/` (or a kind alias) stripped.
fn deployment_name(text: &str) -> anyhow::Result<&str> {
    match text.split_once('/') {
        None => Ok(text),
        Some((
            "deployment" | "deployments" | "deploy" | "workloaddeployment" | "workloaddeployments",
            name,
        )) => Ok(name),
        Some((kind, _)) => {
            anyhow::bail!("`{kind}` has no rollout; name a deployment: `deployment/NAME`")
        }
    }
}

impl Target {
    async fn open(&self, client_name: &str) -> anyhow::Result<(Store, String, Resource)> {
        let name = deployment_name(&self.deployment)?;
        let client = self.nats.connect(client_name, Persistence::Once).await?;
        let store = self.bucket.open(client, self.nats.timeout()).await?;
        let (id, resource) = find_resource(
            &store,
            Kind::WorkloadDeployment,
            name,
            self.namespace.as_deref(),
        )
        .await?;
        Ok((store, id, resource))
    }
}

impl RolloutCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        crate::commands::block_on(self.run())
    }

    async fn run(self) -> anyhow::Result<()> {
        match self.action {
            Action::Status {
                target,
                timeout,
                no_wait,
            } => status(&target, timeout, no_wait).await,
            Action::Undo {
                target,
                to_revision,
            } => {
                let (store, id, _) = target.open("nimbus-rollout").await?;
                let undone = store
                    .undo(&id, to_revision)
                    .await
                    .with_context(|| format!("cannot undo the rollout of deployment {id}"))?
                    .with_context(|| format!("deployment {id} was deleted meanwhile"))?;
                outln!(
                    "workloaddeployment/{id} rolled back to revision {} (now revision {})",
                    undone.restored,
                    undone.revision
                )?;
                Ok(())
            }
            Action::History { target } => {
                let (_, id, resource) = target.open("nimbus-rollout").await?;
                outln!("workloaddeployment/{id}")?;
                let mut rows: Vec<Vec<String>> = resource
                    .history
                    .iter()
                    .map(|r| vec![r.revision.to_string(), images(&r.workload), String::new()])
                    .collect();
                rows.push(vec![
                    resource.revision.to_string(),
                    images(&resource.workload),
                    "current".into(),
                ]);
                out!("{}", super::table("", &["REVISION", "IMAGES", ""], &rows))?;
                Ok(())
            }
        }
    }
}

/// A template's component images, comma-separated.
fn images(workload: &nimbus_model::Workload) -> String {
    let mut images: Vec<&str> = workload
        .spec
        .components
        .iter()
        .map(|c| c.image.as_str())
        .collect();
    if let Some(service) = &workload.spec.service {
        images.push(&service.image);
    }
    images.join(",")
}

/// Where a rollout stands, as `status` reports it.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    /// Still moving (or not yet seen by a controller): what to print.
    Waiting(String),
    /// Every replica runs the current template on a ready host.
    Done(String),
    /// The current template does not start: why.
    Stopped(String),
}

fn progress(id: &str, resource: &Resource, status: Option<&ResourceStatus>) -> Progress {
    let revision = resource.revision;
    let Some(status) = status.filter(|s| s.observed_generation >= resource.generation) else {
        return Progress::Waiting(format!(
            "Waiting for a controller to take generation {} of deployment {id}...",
            resource.generation
        ));
    };
    match status.rollout {
        RolloutState::Stopped => Progress::Stopped(format!(
            "rollout of deployment {id} (revision {revision}) stopped: {}",
            status
                .message
                .as_deref()
                .unwrap_or("a host failed to start it")
        )),
        RolloutState::Complete if status.ready >= status.desired => Progress::Done(format!(
            "deployment {id} successfully rolled out (revision {revision}, {} of {} replicas ready)",
            status.ready, status.desired
        )),
        RolloutState::Complete => Progress::Waiting(format!(
            "Waiting for deployment {id}: {} of {} updated replicas ready{}...",
            status.ready,
            status.desired,
            status
                .message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        )),
        RolloutState::Progressing => Progress::Waiting(format!(
            "Waiting for deployment {id} rollout to finish: {} of {} replicas updated, {} available...",
            status.updated, status.desired, status.available
        )),
    }
}

async fn status(target: &Target, timeout: Duration, no_wait: bool) -> anyhow::Result<()> {
    let (store, id, _) = target.open("nimbus-rollout").await?;
    let deadline = nimbus_model::time::deadline(Instant::now(), timeout);
    let mut last = String::new();
    loop {
        let resource = store
            .resource(&id)
            .await?
            .with_context(|| format!("deployment {id} was deleted"))?;
        let status = store.status(&id).await?;
        match progress(&id, &resource, status.as_ref()) {
            Progress::Done(line) => {
                outln!("{line}")?;
                return Ok(());
            }
            Progress::Stopped(why) => anyhow::bail!(why),
            Progress::Waiting(line) => {
                if line != last {
                    outln!("{line}")?;
                    last = line;
                }
                if no_wait {
                    return Ok(());
                }
            }
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "deployment {id} did not finish rolling out within {}",
                super::human_age(timeout)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nimbus_model::Workload;

    fn resource(generation: u64) -> Resource {
        Resource {
            kind: Kind::WorkloadDeployment,
            generation,
            replicas: 3,
            workload: Workload::single_http_component("shop", "web", "/a.wasm", "web.test"),
            manifest: serde_json::Value::Null,
            policy: Default::default(),
            autoscaling: None,
            revision: 2,
            history: Vec::new(),
        }
    }

    fn status(generation: u64, rollout: RolloutState, ready: u32) -> ResourceStatus {
        ResourceStatus {
            observed_generation: generation,
            desired: 3,
            ready,
            updated: ready,
            available: 3,
            revision: 2,
            rollout,
            message: Some("host h0: trap".into()),
            ..ResourceStatus::default()
        }
    }

    #[test]
    fn progress_follows_the_status() {
        let r = resource(4);
        let waiting = |p: Progress| matches!(p, Progress::Waiting(_));
        // No status, or one about an older generation: not taken yet.
        assert!(waiting(progress("shop/web", &r, None)));
        let old = status(3, RolloutState::Complete, 3);
        assert!(waiting(progress("shop/web", &r, Some(&old))));
        let moving = status(4, RolloutState::Progressing, 1);
        assert_eq!(
            progress("shop/web", &r, Some(&moving)),
            Progress::Waiting(
                "Waiting for deployment shop/web rollout to finish: 1 of 3 replicas updated, 3 available...".into()
            )
        );
        let stopped = status(4, RolloutState::Stopped, 1);
        assert_eq!(
            progress("shop/web", &r, Some(&stopped)),
            Progress::Stopped(
                "rollout of deployment shop/web (revision 2) stopped: host h0: trap".into()
            )
        );
        let done = status(4, RolloutState::Complete, 3);
        assert!(matches!(
            progress("shop/web", &r, Some(&done)),
            Progress::Done(_)
        ));
        // Complete, but a host is not ready: still waiting.
        let short = status(4, RolloutState::Complete, 2);
        assert!(waiting(progress("shop/web", &r, Some(&short))));
    }

    #[test]
    fn only_deployments_roll() {
        assert_eq!(deployment_name("web").unwrap(), "web");
        assert_eq!(deployment_name("deployment/web").unwrap(), "web");
        assert!(deployment_name("replicaset/web").is_err());
    }
}
