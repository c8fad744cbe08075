//! The cluster as one host's console shows it (`/api/cluster`,
//! docs/CONSOLE.md): the hosts that answer a ping, and every resource with
//! its status, placements and recent events. Also the ping itself, which
//! `nimbus get hosts` and `nimbus top --nats` use.

use crate::api::{self, HostHeartbeat, Reply};
use crate::store::{BucketSettings, Placement, Resource, ResourceStatus, Store};
use futures::StreamExt as _;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long the console waits for hosts to answer a ping.
pub const PING_WAIT: Duration = Duration::from_millis(500);

/// How long reading the desired state may take, so the view answers within
/// the console's own bound (3 s) with what it has.
const STORE_WAIT: Duration = Duration::from_millis(2000);

/// Every host's heartbeat that answers [`api::HOSTS_PING`] within `wait`,
/// sorted by id.
pub async fn ping_hosts(
    client: &async_nats::Client,
    wait: Duration,
) -> Result<Vec<HostHeartbeat>, String> {
    let inbox = client.new_inbox();
    let mut answers = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| format!("cannot subscribe for the hosts' answers: {e}"))?;
    client
        .publish_with_reply(api::HOSTS_PING, inbox, "".into())
        .await
        .map_err(|e| format!("cannot ping the hosts: {e}"))?;
    let mut hosts = Vec::new();
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => break,
            Some(message) = answers.next() => {
                if let Ok(Reply::Ok(heartbeat)) =
                    serde_json::from_slice::<Reply<HostHeartbeat>>(&message.payload)
                {
                    hosts.push(heartbeat);
                }
            }
        }
    }
    hosts.sort_by(|a, b| a.id.cmp(&b.id));
    hosts.dedup_by(|a, b| a.id == b.id);
    Ok(hosts)
}

/// `/api/cluster`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    member: bool,
    host_id: String,
    hosts: Vec<HostView>,
    deployments: Vec<DeploymentView>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HostView {
    id: String,
    ready: bool,
    hostname: Option<String>,
    labels: BTreeMap<String, String>,
    version: Option<String>,
    http_address: Option<String>,
    capacity: Option<api::Capacity>,
    workload_count: Option<u32>,
    replica_count: Option<u32>,
    /// Milliseconds since the Unix epoch.
    started_at: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeploymentView {
    id: String,
    kind: &'static str,
    generation: u64,
    phase: Option<&'static str>,
    desired: u32,
    ready: u32,
    message: Option<String>,
    /// Each host's share; `hostReady` only if the controller saw it in
    /// time and it answered the ping.
    placements: Vec<Placement>,
    events: Vec<crate::events::Event>,
}

/// The cluster now, as host `host_id` sees it: hosts that answer within
/// [`PING_WAIT`], and the resources in `bucket`. What could not be read is
/// said in `error`, with the rest as far as it was read.
pub async fn cluster_view(
    client: &async_nats::Client,
    bucket: &BucketSettings,
    host_id: &str,
) -> ClusterView {
    let mut errors = Vec::new();
    let live = ping_hosts(client, PING_WAIT).await.unwrap_or_else(|e| {
        errors.push(e);
        Vec::new()
    });
    let (resources, statuses) =
        match tokio::time::timeout(STORE_WAIT, read_store(client, bucket)).await {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => {
                errors.push(format!("cannot read the desired state: {e}"));
                Default::default()
            }
            Err(_) => {
                errors.push(format!(
                    "the desired state did not answer within {STORE_WAIT:?}"
                ));
                Default::default()
            }
        };
    let ready: BTreeSet<&str> = live.iter().map(|h| h.id.as_str()).collect();
    let mut hosts: Vec<HostView> = live
        .iter()
        .map(|h| HostView {
            id: h.id.clone(),
            ready: true,
            hostname: Some(h.hostname.clone()),
            labels: h.labels.clone(),
            version: Some(h.version.clone()),
            http_address: h.http_address.clone(),
            capacity: Some(h.capacity.clone()),
            workload_count: Some(h.workload_count),
            replica_count: Some(h.replica_count),
            started_at: Some(h.started_at.saturating_mul(1000)),
        })
        .collect();
    // Hosts a placement names that did not answer: shown, not ready.
    let silent: BTreeSet<&str> = statuses
        .values()
        .flat_map(|s| s.placements.iter().map(|p| p.host.as_str()))
        .filter(|host| !ready.contains(host))
        .collect();
    hosts.extend(silent.into_iter().map(|id| HostView {
        id: id.to_string(),
        ready: false,
        hostname: None,
        labels: BTreeMap::new(),
        version: None,
        http_address: None,
        capacity: None,
        workload_count: None,
        replica_count: None,
        started_at: None,
    }));
    hosts.sort_by(|a, b| a.id.cmp(&b.id));
    let deployments = resources
        .into_iter()
        .map(|(id, resource)| {
            let status = statuses.get(&id);
            DeploymentView {
                kind: resource.kind.as_str(),
                generation: resource.generation,
                phase: status.map(|s| s.phase.as_str()),
                desired: resource.replicas,
                ready: status.map_or(0, |s| s.ready),
                message: status.and_then(|s| s.message.clone()),
                placements: status
                    .map(|s| {
                        s.placements
                            .iter()
                            .map(|p| Placement {
                                host_ready: p.host_ready && ready.contains(p.host.as_str()),
                                ..p.clone()
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                events: status.map(|s| s.events.clone()).unwrap_or_default(),
                id,
            }
        })
        .collect();
    ClusterView {
        member: true,
        host_id: host_id.to_string(),
        hosts,
        deployments,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    }
}

type Read = (BTreeMap<String, Resource>, BTreeMap<String, ResourceStatus>);

async fn read_store(client: &async_nats::Client, bucket: &BucketSettings) -> Result<Read, String> {
    let store = Store::open_existing(client.clone(), bucket)
        .await
        .map_err(|e| e.to_string())?;
    let resources = store.resources().await.map_err(|e| e.to_string())?;
    let statuses = store.statuses().await.map_err(|e| e.to_string())?;
    Ok((resources, statuses))
}

/// The console's cluster view of a host in a cluster.
#[cfg(feature = "agent")]
pub struct ConsoleCluster {
    /// The cluster's NATS connection.
    pub client: async_nats::Client,
    /// Where desired state is kept.
    pub bucket: BucketSettings,
    /// This host's id.
    pub host_id: String,
}

#[cfg(feature = "agent")]
impl nimbus_host::http::console::ClusterSource for ConsoleCluster {
    fn overview(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = serde_json::Value> + Send + '_>> {
        Box::pin(async move {
            let view = cluster_view(&self.client, &self.bucket, &self.host_id).await;
            serde_json::to_value(view)
                .unwrap_or_else(|e| serde_json::json!({"member": true, "error": e.to_string()}))
        })
    }
}
