//! `nimbus describe deployment|workload|host NAME`: one resource or host in
//! full, for people, as `kubectl describe` shows a pod.
//!
//! A deployment or workload: its spec in short (components, interfaces,
//! `hostSelector`), its status (replicas ready, its phase, why not), where each
//! replica runs (with each host's HTTP address, asked of the host), and its
//! recent events: the placements the controller made and the failures it
//! met, with the reason ("no live host matches hostSelector …", "host h1
//! failed to start: …"). A host: what its heartbeat says, which workloads
//! it runs and whether they are current, and the events that name it.
//!
//! The rendering is pure (`render_resource`, `render_host`), so it is
//! tested without NATS.

use super::{BucketRef, NatsArgs, age_of, find_resource, human_age, table};
use clap::{Args, ValueEnum};
use futures::future::join_all;
use nimbus_cluster::api::{self, HOSTGROUP_LABEL, HostHeartbeat, Reply};
use nimbus_cluster::connect::Persistence;
use nimbus_cluster::events::{Event, MAX_EVENTS};
use nimbus_cluster::store::{Kind, Resource, ResourceStatus, Store};
use nimbus_model::rollout::DeployPolicy;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

/// What `describe` shows.
#[derive(Clone, Copy, ValueEnum)]
enum Target {
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
    #[value(alias = "workloads", alias = "wl")]
    Workload,
    #[value(alias = "hosts")]
    Host,
}

/// Arguments of `nimbus describe`.
#[derive(Args)]
pub(crate) struct DescribeCommand {
    /// `deployment`, `replicaset`, `workload` or `host`.
    #[arg(value_enum)]
    what: Target,
    /// Its name (a host: its id, as `nimbus get hosts` lists it).
    name: String,
    /// Its namespace (deployments and workloads; default `default`).
    #[arg(short, long)]
    namespace: Option<String>,
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    bucket: BucketRef,
}

/// How long each host a placement names may take to answer before it is shown
/// as not answering (each is asked directly, all at once).
const HOST_ANSWER: Duration = Duration::from_secs(2);

impl DescribeCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        crate::commands::block_on(self.run())
    }

    async fn run(self) -> anyhow::Result<()> {
        let client = self
            .nats
            .connect("nimbus-describe", Persistence::Once)
            .await?;
        let text = match self.what {
            Target::Host => {
                anyhow::ensure!(
                    self.namespace.is_none(),
                    "hosts have no namespace; `describe host ID` takes none"
                );
                self.host(client).await?
            }
            Target::Deployment => self.resource(client, Kind::WorkloadDeployment).await?,
            Target::ReplicaSet => self.resource(client, Kind::WorkloadReplicaSet).await?,
            Target::Workload => self.resource(client, Kind::Workload).await?,
        };
        out!("{text}")?;
        Ok(())
    }

    async fn resource(&self, client: async_nats::Client, kind: Kind) -> anyhow::Result<String> {
        let store = self
            .bucket
            .open(client.clone(), self.nats.timeout())
            .await?;
        let (id, resource) =
            find_resource(&store, kind, &self.name, self.namespace.as_deref()).await?;
        let status = store.status(&id).await?;
        let placed: Vec<&str> = status
            .iter()
            .flat_map(|s| &s.placements)
            .map(|p| p.host.as_str())
            .collect();
        let asked = placed
            .iter()
            .map(|host| ask_host(&client, host, HOST_ANSWER));
        let hosts: BTreeMap<String, HostHeartbeat> = join_all(asked)
            .await
            .into_iter()
            .filter_map(Result::ok)
            .map(|heartbeat| (heartbeat.id.clone(), heartbeat))
            .collect();
        Ok(render_resource(
            &resource,
            status.as_ref(),
            &hosts,
            SystemTime::now(),
        ))
    }

    async fn host(&self, client: async_nats::Client) -> anyhow::Result<String> {
        anyhow::ensure!(
            api::valid_host_id(&self.name),
            "`{}` is not a host id (letters, digits, `-` or `_`)",
            self.name
        );
        let heartbeat = ask_host(&client, &self.name, self.nats.timeout()).await?;
        // What the cluster wants of the host's workloads, and the events
        // that name it. Without them the host's own report still stands.
        let desired = match self.bucket.open(client, self.nats.timeout()).await {
            Ok(store) => desired_state(&store).await,
            Err(e) => Err(e),
        };
        let (resources, statuses) = match desired {
            Ok(desired) => desired,
            Err(e) => {
                eprintln!(
                    "warning: cannot read desired state ({}); showing the host's own report only",
                    crate::error_line::one_line(&e)
                );
                Default::default()
            }
        };
        Ok(render_host(
            &heartbeat,
            &resources,
            &statuses,
            SystemTime::now(),
        ))
    }
}

type DesiredState = (BTreeMap<String, Resource>, BTreeMap<String, ResourceStatus>);

async fn desired_state(store: &Store) -> anyhow::Result<DesiredState> {
    Ok((store.resources().await?, store.statuses().await?))
}

/// Asks host `id` for its heartbeat, directly, within `wait`.
async fn ask_host(
    client: &async_nats::Client,
    id: &str,
    wait: Duration,
) -> anyhow::Result<HostHeartbeat> {
    let request = client.request(api::heartbeat_subject(id), "".into());
    let reply = match tokio::time::timeout(wait, request).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
            anyhow::bail!("host `{id}` is not connected (`nimbus get hosts` lists those that are)")
        }
        Ok(Err(e)) => anyhow::bail!("host `{id}` did not answer: {e}"),
        Err(_) => anyhow::bail!("host `{id}` did not answer within {}", human_age(wait)),
    };
    match serde_json::from_slice::<Reply<HostHeartbeat>>(&reply.payload) {
        Ok(reply) => reply
            .into_result()
            .map_err(|e| anyhow::anyhow!("host `{id}`: {e}")),
        Err(e) => anyhow::bail!("host `{id}` sent an unreadable heartbeat: {e}"),
    }
}

/// `key=value,…`, or `<none>`.
fn pairs(map: &BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return "<none>".into();
    }
    let pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

/// `Label:` padded so values line up.
fn field(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let label = format!("{label}:");
    let _ = writeln!(out, "{label:<17}{value}");
}

/// The events section: `<none>`, or a table of type, reason, age (with
/// how often and since when, for repeated ones) and message. `resource`
/// adds the resource each event belongs to (a host's view).
fn events_section(out: &mut String, events: &[(Option<&str>, &Event)], now: SystemTime) {
    out.push_str("Events:\n");
    if events.is_empty() {
        out.push_str("  <none>\n");
        return;
    }
    let with_resource = events.iter().any(|(resource, _)| resource.is_some());
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|(resource, event)| {
            let mut age = age_of(&event.last_timestamp, now);
            if event.count > 1 {
                let first = age_of(&event.first_timestamp, now);
                let _ = write!(age, " (x{} over {first})", event.count);
            }
            let mut row = vec![
                event.event_type.as_str().to_string(),
                event.reason.clone(),
                age,
            ];
            if with_resource {
                row.push(resource.unwrap_or("-").to_string());
            }
            row.push(event.message.clone());
            row
        })
        .collect();
    let header: &[&str] = if with_resource {
        &["TYPE", "REASON", "AGE", "RESOURCE", "MESSAGE"]
    } else {
        &["TYPE", "REASON", "AGE", "MESSAGE"]
    };
    out.push_str(&table("  ", header, &rows));
}

/// A deployment or workload: spec in short, status, placements (with the
/// HTTP address of each host that answered) and events.
fn render_resource(
    resource: &Resource,
    status: Option<&ResourceStatus>,
    hosts: &BTreeMap<String, HostHeartbeat>,
    now: SystemTime,
) -> String {
    let workload = &resource.workload;
    let spec = &workload.spec;
    let mut out = String::new();
    field(&mut out, "Name", &workload.name);
    field(&mut out, "Namespace", &workload.namespace);
    field(&mut out, "Kind", resource.kind.as_str());
    let generation = match status {
        Some(s) if s.observed_generation != resource.generation => format!(
            "{} (the status describes generation {})",
            resource.generation, s.observed_generation
        ),
        _ => resource.generation.to_string(),
    };
    field(&mut out, "Generation", generation);
    if resource.kind != Kind::Workload {
        field(&mut out, "Revision", resource.revision);
        let policy = match &resource.policy {
            DeployPolicy::RollingUpdate(rolling) => format!(
                "RollingUpdate (maxUnavailable {}, maxSurge {}: {} replaced at once)",
                rolling.max_unavailable,
                rolling.max_surge,
                rolling.in_flight(resource.replicas)
            ),
            DeployPolicy::Recreate => "all at once".into(),
        };
        field(&mut out, "Deploy policy", policy);
    }
    if let Some(autoscaling) = &resource.autoscaling {
        field(
            &mut out,
            "Autoscaling",
            format!(
                "{} to {} replicas at {} per replica; down after {} s of lower load",
                autoscaling.min_replicas,
                autoscaling.max_replicas,
                autoscaling.targets_text(),
                autoscaling.scale_down_stabilization_seconds
            ),
        );
    }
    field(&mut out, "Host selector", pairs(&spec.host_selector));
    out.push_str("Components:\n");
    let components: Vec<Vec<String>> = spec
        .components
        .iter()
        .map(|c| vec![c.name.clone(), c.image.clone()])
        .collect();
    out.push_str(&table("  ", &["NAME", "IMAGE"], &components));
    if let Some(service) = &spec.service {
        field(&mut out, "Service", &service.image);
    }
    if !spec.middleware.is_empty() {
        field(&mut out, "Middleware", spec.middleware.join(", "));
    }
    if !spec.host_interfaces.is_empty() {
        out.push_str("Host interfaces:\n");
        for interface in &spec.host_interfaces {
            let version = interface
                .version
                .as_deref()
                .map(|v| format!("@{v}"))
                .unwrap_or_default();
            let _ = write!(
                out,
                "  {}:{}/{}{version}",
                interface.namespace,
                interface.package,
                interface.interfaces.join(",")
            );
            if !interface.config.is_empty() {
                let _ = write!(out, "  {}", pairs(&interface.config));
            }
            out.push('\n');
        }
    }
    let Some(status) = status else {
        field(
            &mut out,
            "Replicas",
            format!("{} desired", resource.replicas),
        );
        field(
            &mut out,
            "Status",
            "none yet (no controller has written one: is `nimbus controller` running?)",
        );
        out.push_str("Placements:\n  <none>\n");
        events_section(&mut out, &[], now);
        return out;
    };
    field(
        &mut out,
        "Replicas",
        format!(
            "{} desired, {} updated, {} available, {} ready",
            status.desired, status.updated, status.available, status.ready
        ),
    );
    if resource.kind != Kind::Workload {
        field(
            &mut out,
            "Rollout",
            format!("{} (revision {})", status.rollout.as_str(), status.revision),
        );
    }
    match &status.rejected {
        Some(rejection) => field(
            &mut out,
            "Status",
            format!(
                "{} (host {} rejected this spec; it is not placed again until the spec changes)",
                status.phase, rejection.host
            ),
        ),
        None => field(&mut out, "Status", status.phase),
    }
    if let Some(message) = &status.message {
        field(&mut out, "Message", message);
    }
    out.push_str("Placements:\n");
    if status.placements.is_empty() {
        out.push_str("  <none>\n");
    } else {
        let rows: Vec<Vec<String>> = status
            .placements
            .iter()
            .map(|p| {
                let http = match hosts.get(&p.host) {
                    Some(host) => host.http_address.clone().unwrap_or_else(|| "-".into()),
                    None => "(not answering)".into(),
                };
                let spec = if p.current { "current" } else { "outdated" };
                let host_status = if p.host_ready { "Ready" } else { "NotReady" };
                vec![
                    p.host.clone(),
                    p.replicas.to_string(),
                    spec.into(),
                    host_status.into(),
                    http,
                    p.message.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out.push_str(&table(
            "  ",
            &["HOST", "REPLICAS", "SPEC", "HOST STATUS", "HTTP", "MESSAGE"],
            &rows,
        ));
    }
    let events: Vec<(Option<&str>, &Event)> = status.events.iter().map(|e| (None, e)).collect();
    events_section(&mut out, &events, now);
    out
}

/// A host: its heartbeat, its workloads against what is desired, and the
/// events of any resource that name it.
fn render_host(
    host: &HostHeartbeat,
    resources: &BTreeMap<String, Resource>,
    statuses: &BTreeMap<String, ResourceStatus>,
    now: SystemTime,
) -> String {
    let mut out = String::new();
    field(&mut out, "ID", &host.id);
    field(
        &mut out,
        "Group",
        host.labels.get(HOSTGROUP_LABEL).map_or("-", String::as_str),
    );
    let labels: BTreeMap<String, String> = host
        .labels
        .iter()
        .filter(|(k, _)| *k != HOSTGROUP_LABEL)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    field(&mut out, "Labels", pairs(&labels));
    field(&mut out, "Hostname", &host.hostname);
    field(&mut out, "Version", &host.version);
    field(
        &mut out,
        "HTTP",
        host.http_address.as_deref().unwrap_or("-"),
    );
    field(
        &mut out,
        "Capacity",
        format!(
            "{} CPUs, {} memory, {} instances",
            host.capacity.cpus,
            crate::commands::human_size(host.capacity.memory_bytes),
            host.capacity.max_instances
        ),
    );
    let started = SystemTime::UNIX_EPOCH + Duration::from_secs(host.started_at);
    let up = now.duration_since(started).unwrap_or_default();
    field(
        &mut out,
        "Started",
        format!(
            "{} ({} ago)",
            nimbus_cluster::events::timestamp(started),
            human_age(up)
        ),
    );
    field(
        &mut out,
        "Heartbeat",
        format!(
            "every {}",
            human_age(Duration::from_millis(host.interval_ms))
        ),
    );
    out.push_str("Workloads:\n");
    if host.workloads.is_empty() {
        out.push_str("  <none>\n");
    } else {
        let rows: Vec<Vec<String>> = host
            .workloads
            .iter()
            .map(|w| {
                let (kind, spec) = match resources.get(&w.id) {
                    Some(r) if api::spec_hash(&r.workload) == w.spec_hash => {
                        (r.kind.as_str(), "current")
                    }
                    Some(r) => (r.kind.as_str(), "outdated"),
                    None => ("-", "not desired"),
                };
                vec![
                    w.id.clone(),
                    kind.to_string(),
                    w.replicas.to_string(),
                    spec.to_string(),
                ]
            })
            .collect();
        out.push_str(&table(
            "  ",
            &["WORKLOAD", "KIND", "REPLICAS", "SPEC"],
            &rows,
        ));
    }
    let mut events: Vec<(Option<&str>, &Event)> = statuses
        .iter()
        .flat_map(|(id, status)| status.events.iter().map(move |e| (Some(id.as_str()), e)))
        .filter(|(_, e)| e.host.as_deref() == Some(host.id.as_str()))
        .collect();
    // Oldest first, the last few (timestamps of one form sort as text).
    events.sort_by_key(|(_, event)| event.last_timestamp.clone());
    let skip = events.len().saturating_sub(MAX_EVENTS);
    events_section(&mut out, &events[skip..], now);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nimbus_cluster::api::{Capacity, HeartbeatWorkload};
    use nimbus_cluster::events::EventType;
    use nimbus_cluster::store::{Phase, Placement, Rejection};
    use nimbus_model::Workload;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn event(kind: EventType, reason: &str, message: &str, host: Option<&str>, t: u64) -> Event {
        let mut event = Event::new(kind, reason, message);
        event.host = host.map(str::to_string);
        event.first_timestamp = nimbus_cluster::events::timestamp(at(t));
        event.last_timestamp = event.first_timestamp.clone();
        event
    }

    fn resource() -> Resource {
        let mut workload =
            Workload::single_http_component("shop", "web", "/srv/web.wasm", "web.test");
        workload
            .spec
            .host_selector
            .insert("gpu".into(), "yes".into());
        Resource {
            kind: Kind::WorkloadDeployment,
            generation: 2,
            replicas: 2,
            workload,
            manifest: serde_json::Value::Null,
            policy: DeployPolicy::default(),
            autoscaling: None,
            revision: 3,
            history: Vec::new(),
        }
    }

    fn heartbeat(id: &str, workloads: Vec<HeartbeatWorkload>) -> HostHeartbeat {
        HostHeartbeat {
            id: id.into(),
            instance: "i".into(),
            hostname: "box".into(),
            labels: [
                ("hostgroup".to_string(), "edge".to_string()),
                ("gpu".to_string(), "yes".to_string()),
            ]
            .into(),
            version: "0.1.0".into(),
            http_address: Some("127.0.0.1:8001".into()),
            capacity: Capacity {
                cpus: 2,
                memory_bytes: 1 << 30,
                max_instances: 100,
                ..Capacity::default()
            },
            workload_count: workloads.len() as u32,
            component_count: 1,
            replica_count: 1,
            interval_ms: 5000,
            started_at: 1_000,
            revision: 1,
            workloads,
            parked: BTreeMap::new(),
            sampled_at_ms: None,
        }
    }

    #[test]
    fn a_resource_with_no_status_says_so() {
        let text = render_resource(&resource(), None, &BTreeMap::new(), at(100));
        assert!(
            text.starts_with("Name:            web\nNamespace:       shop\n"),
            "{text}"
        );
        assert!(
            text.contains("Kind:            WorkloadDeployment\n"),
            "{text}"
        );
        assert!(text.contains("Host selector:   gpu=yes\n"), "{text}");
        assert!(
            text.contains("  NAME  IMAGE\n  web   /srv/web.wasm\n"),
            "{text}"
        );
        assert!(text.contains("Replicas:        2 desired\n"), "{text}");
        assert!(text.contains("is `nimbus controller` running?"), "{text}");
        assert!(
            text.ends_with("Placements:\n  <none>\nEvents:\n  <none>\n"),
            "{text}"
        );
    }

    #[test]
    fn a_resource_shows_where_it_runs_and_what_happened() {
        let mut repeated = event(
            EventType::Warning,
            "FailedStart",
            "host h1 failed to start: no such image",
            Some("h1"),
            10,
        );
        repeated.count = 3;
        repeated.last_timestamp = nimbus_cluster::events::timestamp(at(580));
        let status = ResourceStatus {
            observed_generation: 2,
            phase: Phase::Pending,
            desired: 2,
            ready: 1,
            updated: 1,
            available: 1,
            revision: 3,
            rollout: nimbus_cluster::store::RolloutState::Stopped,
            placements: vec![
                Placement {
                    host: "h0".into(),
                    replicas: 1,
                    current: true,
                    host_ready: true,
                    message: None,
                },
                Placement {
                    host: "h1".into(),
                    replicas: 1,
                    current: false,
                    host_ready: false,
                    message: Some("no such image".into()),
                },
            ],
            message: Some("host h1: no such image".into()),
            rejected: None,
            events: vec![
                event(
                    EventType::Warning,
                    "FailedScheduling",
                    "no live host matches hostSelector gpu=yes",
                    None,
                    0,
                ),
                event(
                    EventType::Normal,
                    "Placed",
                    "placed 1 replica on host h0",
                    Some("h0"),
                    300,
                ),
                repeated,
            ],
        };
        let hosts: BTreeMap<String, HostHeartbeat> =
            [("h0".to_string(), heartbeat("h0", Vec::new()))].into();
        let text = render_resource(&resource(), Some(&status), &hosts, at(600));
        assert!(
            text.contains(
                "Replicas:        2 desired, 1 updated, 1 available, 1 ready\nRollout:         Stopped (revision 3)\nStatus:          Pending\nMessage:         host h1: no such image\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "Placements:\n  HOST  REPLICAS  SPEC      HOST STATUS  HTTP             MESSAGE\n  h0    1         current   Ready        127.0.0.1:8001\n  h1    1         outdated  NotReady     (not answering)  no such image\n"
            ),
            "{text}"
        );
        let events = text.split_once("Events:\n").unwrap().1;
        let lines: Vec<&str> = events.lines().collect();
        assert_eq!(
            lines[0],
            "  TYPE     REASON            AGE               MESSAGE"
        );
        assert_eq!(
            lines[1],
            "  Warning  FailedScheduling  10m               no live host matches hostSelector gpu=yes"
        );
        assert_eq!(
            lines[2],
            "  Normal   Placed            5m                placed 1 replica on host h0"
        );
        assert_eq!(
            lines[3],
            "  Warning  FailedStart       20s (x3 over 9m)  host h1 failed to start: no such image"
        );
    }

    #[test]
    fn a_rejected_resource_shows_failed_with_the_reason() {
        let status = ResourceStatus {
            observed_generation: 2,
            phase: Phase::Failed,
            desired: 2,
            ready: 0,
            placements: Vec::new(),
            message: Some("image: not a regular file".into()),
            rejected: Some(Rejection {
                spec_hash: "sha256:1".into(),
                host: "h1".into(),
                reason: "image: not a regular file".into(),
            }),
            ..ResourceStatus::default()
        };
        let text = render_resource(&resource(), Some(&status), &BTreeMap::new(), at(600));
        assert!(
            text.contains(
                "Replicas:        2 desired, 0 updated, 0 available, 0 ready\nRollout:         Complete (revision 0)\nStatus:          Failed (host h1 rejected this spec; it is not placed again until the spec changes)\nMessage:         image: not a regular file\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_host_shows_its_workloads_against_desired_state_and_its_events() {
        let desired = resource();
        let current = api::spec_hash(&desired.workload);
        let host = heartbeat(
            "h0",
            vec![
                HeartbeatWorkload {
                    id: "shop/web".into(),
                    spec_hash: current,
                    replicas: 2,
                    requests: Some(10),
                    cpu_millis: Some(3),
                    woken: false,
                },
                HeartbeatWorkload {
                    id: "shop/old".into(),
                    spec_hash: "sha256:0".into(),
                    replicas: 1,
                    requests: None,
                    cpu_millis: None,
                    woken: false,
                },
            ],
        );
        let resources: BTreeMap<String, Resource> = [("shop/web".to_string(), desired)].into();
        let status = ResourceStatus {
            observed_generation: 2,
            phase: Phase::Ready,
            desired: 2,
            ready: 2,
            placements: Vec::new(),
            message: None,
            rejected: None,
            updated: 2,
            available: 2,
            revision: 3,
            rollout: nimbus_cluster::store::RolloutState::Complete,
            events: vec![
                event(
                    EventType::Normal,
                    "Placed",
                    "placed 2 replicas on host h0",
                    Some("h0"),
                    40,
                ),
                event(
                    EventType::Normal,
                    "Placed",
                    "placed 1 replica on host h9",
                    Some("h9"),
                    50,
                ),
            ],
        };
        let statuses: BTreeMap<String, ResourceStatus> = [("shop/web".to_string(), status)].into();
        let text = render_host(&host, &resources, &statuses, at(1_060));
        assert!(
            text.starts_with(
                "ID:              h0\nGroup:           edge\nLabels:          gpu=yes\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("Capacity:        2 CPUs, 1024.0 MiB memory, 100 instances\n"),
            "{text}"
        );
        assert!(
            text.contains("Started:         1970-01-01T00:16:40Z (60s ago)\n"),
            "{text}"
        );
        assert!(text.contains("Heartbeat:       every 5s\n"), "{text}");
        assert!(
            text.contains(
                "  WORKLOAD  KIND                REPLICAS  SPEC\n  shop/web  WorkloadDeployment  2         current\n  shop/old  -                   1         not desired\n"
            ),
            "{text}"
        );
        // Only the events that name this host, with their resource.
        assert!(
            text.ends_with(
                "Events:\n  TYPE    REASON  AGE  RESOURCE  MESSAGE\n  Normal  Placed  17m  shop/web  placed 2 replicas on host h0\n"
            ),
            "{text}"
        );
    }
}
