//! The host API: NATS subjects and the JSON bodies sent on them.
//!
//! Modelled on wasmCloud v2's runtime API so the shapes are familiar:
//! a host answers requests on `runtime.host.<host_id>.{heartbeat,
//! workload.start,workload.stop,workload.status}` and publishes a
//! [`HostHeartbeat`] on `runtime.operator.heartbeat.<host_id>` every
//! interval. Every reply is a [`Reply`]: `{"ok": …}` or `{"error": "…"}`.

use nimbus_model::{Workload, WorkloadStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The label every host carries with its `--group` (default `default`).
pub const HOSTGROUP_LABEL: &str = "hostgroup";

/// Subject of a host's heartbeat request (the reply is a [`HostHeartbeat`]).
pub fn heartbeat_subject(host_id: &str) -> String {
    format!("runtime.host.{host_id}.heartbeat")
}

/// Subject of a host's `workload.start` request ([`WorkloadStartRequest`]).
pub fn start_subject(host_id: &str) -> String {
    format!("runtime.host.{host_id}.workload.start")
}

/// Subject of a host's `workload.stop` request ([`WorkloadStopRequest`]).
pub fn stop_subject(host_id: &str) -> String {
    format!("runtime.host.{host_id}.workload.stop")
}

/// Subject of a host's `workload.status` request ([`WorkloadStatusRequest`]).
pub fn status_subject(host_id: &str) -> String {
    format!("runtime.host.{host_id}.workload.status")
}

/// Subject of a host's `metrics` request: the reply is its Prometheus text
/// (`Reply<String>`), what `nimbus top --nats` reads.
pub fn metrics_subject(host_id: &str) -> String {
    format!("runtime.host.{host_id}.metrics")
}

/// Everything a host answers: `runtime.host.<id>.>`.
pub fn host_wildcard(host_id: &str) -> String {
    format!("runtime.host.{host_id}.>")
}

/// Where a host publishes its periodic heartbeat.
pub fn operator_heartbeat_subject(host_id: &str) -> String {
    format!("runtime.operator.heartbeat.{host_id}")
}

/// Every host's periodic heartbeat.
pub const OPERATOR_HEARTBEATS: &str = "runtime.operator.heartbeat.*";

/// A request every host answers with its [`HostHeartbeat`] (`nimbus get
/// hosts` collects the replies).
pub const HOSTS_PING: &str = "runtime.hosts.ping";

/// Whether `id` can be a host id: one NATS subject token.
pub fn valid_host_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A reply to any host API request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply<T> {
    /// The request succeeded.
    Ok(T),
    /// It did not, and why (one line).
    Error(String),
    /// The workload itself cannot run, on this host or any other (its
    /// image is too large, not a component, or needs what no host
    /// provides): placing it elsewhere would fail the same way. To a
    /// park (`workload.stop` with `park`): the host will not park it while
    /// its spec lasts, and it keeps running.
    Rejected(String),
}

impl<T> Reply<T> {
    /// The result as a `Result`.
    pub fn into_result(self) -> Result<T, String> {
        match self {
            Self::Ok(value) => Ok(value),
            Self::Error(message) | Self::Rejected(message) => Err(message),
        }
    }
}

impl<T> From<Result<T, String>> for Reply<T> {
    fn from(result: Result<T, String>) -> Self {
        match result {
            Ok(value) => Self::Ok(value),
            Err(message) => Self::Error(message),
        }
    }
}

/// Start (or keep, or update) a workload on a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStartRequest {
    /// `namespace/name`; must equal the workload's id.
    pub workload_id: String,
    /// What to run.
    pub workload: Workload,
    /// How many of the deployment's replicas this host holds. Replicas on
    /// one host share one running workload (its instance pool already
    /// scales with load); the count is what the controller places and what
    /// the host reports.
    #[serde(default = "one")]
    pub replicas: u32,
}

fn one() -> u32 {
    1
}

/// Stop a workload on a host. Stopping one that does not run succeeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStopRequest {
    /// `namespace/name`.
    pub workload_id: String,
    /// Scale to zero: stop it but keep its routes, so the next request to
    /// this host starts it again (the host then reports it running).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub park: bool,
}

/// Ask a host about one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatusRequest {
    /// `namespace/name`.
    pub workload_id: String,
}

/// What a host runs of one workload: the answer to start and status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostWorkload {
    /// The runtime's status (components, digests, service, …).
    pub workload_status: WorkloadStatus,
    /// [`spec_hash`] of the workload it runs.
    pub spec_hash: String,
    /// Replicas this host holds.
    pub replicas: u32,
    /// The host's change counter after this request (see
    /// [`HostHeartbeat::revision`]).
    pub host_revision: u64,
}

/// The answer to a stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStopResponse {
    /// `namespace/name`.
    pub workload_id: String,
    /// Whether it was running.
    pub was_running: bool,
    /// The host's change counter after this request.
    pub host_revision: u64,
}

/// One workload in a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatWorkload {
    /// `namespace/name`.
    pub id: String,
    /// [`spec_hash`] of what runs.
    pub spec_hash: String,
    /// Replicas held here.
    pub replicas: u32,
    /// Requests it has answered here since it started (a counter: the
    /// controller's autoscaler turns two heartbeats into a rate); absent
    /// where the host does not count them (it serves no HTTP, or an older
    /// host), which is not the same as none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Guest CPU it has used here since it started, in milliseconds;
    /// absent where the host does not count it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<u64>,
    /// A request started it here after it was parked (scaled to zero), and
    /// the controller has not placed or stopped it here since.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub woken: bool,
}

/// What a host can take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    /// CPUs available to the process.
    pub cpus: u32,
    /// Physical memory of the machine, in bytes.
    pub memory_bytes: u64,
    /// Most component instances alive at once.
    pub max_instances: u32,
    /// Memory the host may promise its workloads, in bytes (`0`: no
    /// budget).
    #[serde(default)]
    pub memory_budget_bytes: u64,
    /// Memory promised to the workloads it runs, in bytes: each reserves
    /// the memory limit of every component.
    #[serde(default)]
    pub memory_reserved_bytes: u64,
    /// CPU the host may promise its workloads, in millicores (`0`: no
    /// budget).
    #[serde(default)]
    pub cpu_budget_millis: u64,
    /// CPU promised to the workloads it runs, in millicores: each reserves
    /// the `cpuLimit` of every component that sets one.
    #[serde(default)]
    pub cpu_reserved_millis: u64,
}

impl Capacity {
    /// Memory still free to promise, or `None` without a budget.
    pub fn memory_free_bytes(&self) -> Option<u64> {
        (self.memory_budget_bytes > 0).then(|| {
            self.memory_budget_bytes
                .saturating_sub(self.memory_reserved_bytes)
        })
    }

    /// CPU still free to promise, in millicores, or `None` without a
    /// budget.
    pub fn cpu_free_millis(&self) -> Option<u64> {
        (self.cpu_budget_millis > 0).then(|| {
            self.cpu_budget_millis
                .saturating_sub(self.cpu_reserved_millis)
        })
    }
}

/// What a workload reserves on a host: memory and CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reservation {
    /// Bytes of memory.
    pub memory_bytes: u64,
    /// Millicores of CPU.
    pub cpu_millis: u64,
}

impl Reservation {
    /// Both parts added.
    pub fn plus(self, other: Self) -> Self {
        Self {
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
        }
    }

    /// What of `self` does not fit in `free_memory` and `free_cpu` (each
    /// `None`: no budget), said for a person; `None` if it all fits.
    pub fn shortfall(&self, free_memory: Option<u64>, free_cpu: Option<u64>) -> Option<String> {
        let memory = free_memory.is_some_and(|free| free < self.memory_bytes);
        let cpu = free_cpu.is_some_and(|free| free < self.cpu_millis);
        (memory || cpu).then(|| self.parts(memory, cpu))
    }

    /// What it reserves, as a user reads it: `512 MiB of memory and 250m
    /// of CPU`, each only where it is more than nothing.
    pub fn describe(&self) -> String {
        self.parts(self.memory_bytes > 0, self.cpu_millis > 0)
    }

    fn parts(&self, memory: bool, cpu: bool) -> String {
        let mut parts = Vec::new();
        if memory {
            parts.push(format!("{} MiB of memory", self.memory_bytes >> 20));
        }
        if cpu {
            parts.push(format!("{}m of CPU", self.cpu_millis));
        }
        parts.join(" and ")
    }
}

/// A host's heartbeat: who it is, what it can take and what it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostHeartbeat {
    /// The host id (one subject token).
    pub id: String,
    /// Unique per host process: a host restarted under the same id starts
    /// a new instance (and its revision counter anew).
    pub instance: String,
    /// The machine's host name.
    pub hostname: String,
    /// Labels, including `hostgroup`.
    pub labels: BTreeMap<String, String>,
    /// Nimbus version.
    pub version: String,
    /// Where the host serves HTTP, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_address: Option<String>,
    /// What it can take.
    pub capacity: Capacity,
    /// Workloads running.
    pub workload_count: u32,
    /// Components across them.
    pub component_count: u32,
    /// Replicas held (sum over workloads).
    pub replica_count: u32,
    /// Milliseconds between heartbeats.
    pub interval_ms: u64,
    /// Seconds since the Unix epoch when the host started.
    pub started_at: u64,
    /// The host's change counter when this heartbeat was taken: it grows
    /// with every start or stop, so a heartbeat older than a reply the
    /// controller already has is recognised as stale.
    pub revision: u64,
    /// What runs, sorted by id.
    pub workloads: Vec<HeartbeatWorkload>,
    /// Workloads parked here (scaled to zero: routes kept, a request starts
    /// them): id → [`spec_hash`] of the spec a request would start.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parked: BTreeMap<String, String>,
    /// When the counters were read: milliseconds on the host's own
    /// monotonic clock (since its agent started), so rates do not depend
    /// on when heartbeats reach the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled_at_ms: Option<u64>,
}

/// A workload's identity for change detection: the sha256 of its JSON
/// form. Equal workloads hash equally (maps are ordered), so a start with
/// an unchanged spec is recognised as a no-op.
pub fn spec_hash(workload: &Workload) -> String {
    use sha2::Digest as _;
    let json = serde_json::to_vec(workload).unwrap_or_default();
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(&json)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_externally_tagged() {
        let ok: Reply<u32> = Reply::Ok(3);
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#"{"ok":3}"#);
        let error: Reply<u32> = serde_json::from_str(r#"{"error":"no"}"#).unwrap();
        assert_eq!(error.into_result(), Err("no".to_string()));
    }

    #[test]
    fn start_request_defaults_to_one_replica() {
        let workload = Workload::single_http_component("ns", "w", "/a.wasm", "a.test");
        let json = serde_json::json!({ "workloadId": "ns/w", "workload": workload });
        let request: WorkloadStartRequest = serde_json::from_value(json).unwrap();
        assert_eq!(request.replicas, 1);
    }

    #[test]
    fn spec_hash_follows_the_spec() {
        let a = Workload::single_http_component("ns", "w", "/a.wasm", "a.test");
        let mut b = a.clone();
        assert_eq!(spec_hash(&a), spec_hash(&b));
        b.spec.components[0].image = "/b.wasm".into();
        assert_ne!(spec_hash(&a), spec_hash(&b));
    }

    #[test]
    fn host_ids_are_one_subject_token() {
        assert!(valid_host_id("web-1_a"));
        for bad in ["", "a.b", "a b", "a*", "a>"] {
            assert!(!valid_host_id(bad), "{bad}");
        }
    }
}
