//! What a host reports about the workloads it runs: the JSON shapes of
//! `nimbus get workloads`, the admin endpoint and the cluster's host API.

use serde::{Deserialize, Serialize};

/// Which `wasi:http` world a component serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpKind {
    /// `wasi:http/incoming-handler@0.2.x`.
    P2,
    /// `wasi:http/handler@0.3.0` (service world).
    P3,
}

/// Lifecycle state of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadState {
    /// Serving.
    Running,
    /// Stopped; in-flight requests may still be finishing.
    Stopped,
}

/// What a host reports about one component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentStatus {
    /// Component name.
    pub name: String,
    /// `sha256:…` of its bytes.
    pub digest: String,
    /// Which HTTP world it serves, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpKind>,
}

/// What a host reports about one workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadStatus {
    /// `namespace/name`.
    pub id: String,
    /// Lifecycle state.
    pub state: WorkloadState,
    /// Its components.
    pub components: Vec<ComponentStatus>,
    /// Host names it answers on.
    pub hosts: Vec<String>,
    /// Seconds since the Unix epoch when it started.
    pub started_at: u64,
    /// Its long-lived service, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceStatus>,
}

/// What a service is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    /// Created, not started yet.
    Pending,
    /// `run` is running.
    Running,
    /// Failed; waiting out the backoff before the next start.
    Restarting,
    /// `run` returned successfully; it is not started again.
    Exited,
    /// Failed with no restarts left.
    Failed,
    /// Stopped with its workload.
    Stopped,
}

/// What a host reports about a workload's service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// What it is doing.
    pub state: ServiceState,
    /// How often it was started again after failing.
    pub restarts: u64,
    /// Why the last run failed, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}
