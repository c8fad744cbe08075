//! The console's JSON endpoints (`/api/...`, documented in
//! docs/CONSOLE.md): the host, its workloads with their live figures, one
//! workload in full (wiring graph, imports and exports, limits, recent
//! requests, history), the history, and the cluster.

use super::sampler::{Figures, Latest, Point};
use super::{Console, unix_ms};
use crate::graph::{ComponentWorld, GraphView, WorkloadGraph};
use crate::http::access::RecentRequest;
use nimbus_model::{ComponentStatus, HttpKind, WorkloadState, WorkloadStatus};
use serde::Serialize;
use std::collections::BTreeMap;

/// `GET /api/host`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostView {
    version: &'static str,
    hostname: String,
    started_at: u64,
    uptime_seconds: f64,
    process: ProcessView,
    workload_count: usize,
    component_count: usize,
    connections: i64,
    access_log: bool,
    cluster: bool,
    figures: Figures,
}

/// The process, as its `process_*` metrics say.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProcessView {
    resident_bytes: Option<f64>,
    virtual_bytes: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
    cpu_seconds: Option<f64>,
    threads: Option<f64>,
}

/// `GET /api/workloads`.
#[derive(Debug, Serialize)]
pub struct WorkloadsView {
    at: u64,
    workloads: Vec<WorkloadSummary>,
}

#[derive(Debug, Serialize)]
struct WorkloadSummary {
    #[serde(flatten)]
    head: WorkloadHead,
    components: Vec<ComponentSummary>,
}

#[derive(Debug, Serialize)]
struct ComponentSummary {
    name: String,
    digest: String,
    http: Option<HttpKind>,
    limits: LimitsView,
    figures: Figures,
}

/// `GET /api/workloads/NAMESPACE/NAME`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadDetail {
    #[serde(flatten)]
    head: WorkloadHead,
    middleware: Vec<String>,
    components: Vec<ComponentDetail>,
    graph: Option<GraphView>,
    graph_error: Option<String>,
    recent_requests: Vec<RecentRequest>,
    history: Vec<Point>,
}

/// What every view of a workload starts with.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadHead {
    id: String,
    namespace: String,
    name: String,
    state: WorkloadState,
    hosts: Vec<String>,
    started_at: u64,
    figures: Figures,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ComponentDetail {
    name: String,
    digest: String,
    http: Option<HttpKind>,
    imports: Vec<String>,
    exports: Vec<String>,
    limits: LimitsView,
    config_keys: Vec<String>,
    figures: Figures,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct LimitsView {
    memory_bytes: Option<u64>,
    cpu_cores: Option<f64>,
    timeout_ms: Option<u64>,
    max_concurrent_requests: Option<u32>,
    allowed_hosts: Vec<String>,
}

/// `GET /api/history`.
#[derive(Debug, Serialize)]
pub struct HistoryView {
    points: Vec<Point>,
}

/// The local resources of component `name` (or the service) of `workload`.
fn resources_of<'a>(
    workload: &'a nimbus_model::Workload,
    name: &str,
) -> Option<&'a nimbus_model::LocalResources> {
    let spec = &workload.spec;
    spec.components
        .iter()
        .find(|c| c.name == name)
        .map(|c| &c.local_resources)
        .or_else(|| {
            (name == crate::host::SERVICE_NAME)
                .then(|| spec.service.as_ref().map(|s| &s.local_resources))
                .flatten()
        })
}

fn figures_of(latest: &Latest, workload: &str, component: &str) -> Figures {
    latest
        .components
        .get(&(workload.to_string(), component.to_string()))
        .cloned()
        .unwrap_or_default()
}

fn split_id(id: &str) -> (String, String) {
    match id.split_once('/') {
        Some((namespace, name)) => (namespace.into(), name.into()),
        None => ("default".into(), id.into()),
    }
}

impl WorkloadHead {
    fn of(status: &WorkloadStatus, latest: &Latest) -> Self {
        let (namespace, name) = split_id(&status.id);
        Self {
            id: status.id.clone(),
            namespace,
            name,
            state: status.state,
            hosts: status.hosts.clone(),
            started_at: status.started_at.saturating_mul(1000),
            figures: latest
                .workloads
                .get(&status.id)
                .cloned()
                .unwrap_or_default(),
        }
    }
}

impl Console {
    pub(super) fn host_view(&self) -> HostView {
        let latest = self.sampler.latest();
        let statuses = self.host.workloads();
        let started = self.host.started_at();
        let process = self.process();
        HostView {
            version: env!("CARGO_PKG_VERSION"),
            hostname: crate::host::hostname(),
            started_at: unix_ms(started),
            uptime_seconds: started.elapsed().map(|d| d.as_secs_f64()).unwrap_or(0.0),
            process,
            workload_count: statuses.len(),
            component_count: statuses.iter().map(|s| s.components.len()).sum(),
            connections: self.host.metrics().connections().get(),
            access_log: self.host.access_log(),
            cluster: self.cluster.is_some(),
            figures: latest.host.clone(),
        }
    }

    fn process(&self) -> ProcessView {
        let mut view = ProcessView::default();
        for family in self.host.metrics().gather_process() {
            let Some(metric) = family.get_metric().first() else {
                continue;
            };
            let value = if family.get_field_type() == crate::metrics::MetricType::COUNTER {
                metric.get_counter().get_value()
            } else {
                metric.get_gauge().get_value()
            };
            let slot = match family.name() {
                "process_resident_memory_bytes" => &mut view.resident_bytes,
                "process_virtual_memory_bytes" => &mut view.virtual_bytes,
                "process_open_fds" => &mut view.open_fds,
                "process_max_fds" => &mut view.max_fds,
                "process_cpu_seconds_total" => &mut view.cpu_seconds,
                "process_threads" => &mut view.threads,
                _ => continue,
            };
            *slot = Some(value);
        }
        view
    }

    pub(super) fn workloads_view(&self) -> WorkloadsView {
        let latest = self.sampler.latest();
        let workloads = self
            .host
            .workloads()
            .into_iter()
            .map(|status| {
                let running = self.host.running_workload(&status.id);
                let components = status
                    .components
                    .iter()
                    .map(|c| ComponentSummary {
                        name: c.name.clone(),
                        digest: c.digest.clone(),
                        http: c.http,
                        limits: running
                            .as_ref()
                            .map(|r| self.limits_of(&r.workload, &c.name))
                            .unwrap_or_default(),
                        figures: figures_of(&latest, &status.id, &c.name),
                    })
                    .collect();
                WorkloadSummary {
                    head: WorkloadHead::of(&status, &latest),
                    components,
                }
            })
            .collect();
        WorkloadsView {
            at: latest.at,
            workloads,
        }
    }

    pub(super) fn history_view(&self) -> HistoryView {
        HistoryView {
            points: self.sampler.host_history(),
        }
    }

    /// One workload in full, or `None` when it does not run.
    pub(super) fn workload_detail(&self, id: &str) -> Option<WorkloadDetail> {
        let running = self.host.running_workload(id)?;
        let status = running.status(WorkloadState::Running);
        let latest = self.sampler.latest();
        let spec = &running.workload.spec;
        let mut worlds: BTreeMap<String, ComponentWorld> = BTreeMap::new();
        let mut graph_error = None;
        for component in &status.components {
            match self.host.component_world(&component.digest) {
                Some(world) => {
                    worlds.insert(component.name.clone(), world);
                }
                None => {
                    graph_error.get_or_insert_with(|| {
                        format!(
                            "the compiled code of `{}` is no longer in memory",
                            component.name
                        )
                    });
                }
            }
        }
        let components = status
            .components
            .iter()
            .map(|c| self.component_detail(&running.workload, c, &worlds, &latest))
            .collect();
        let graph = match graph_error {
            Some(_) => None,
            None => match WorkloadGraph::build(&running.workload, &worlds) {
                Ok(graph) => Some(graph.view()),
                Err(error) => {
                    graph_error = Some(error.to_string());
                    None
                }
            },
        };
        Some(WorkloadDetail {
            head: WorkloadHead::of(&status, &latest),
            middleware: spec.middleware.clone(),
            components,
            graph,
            graph_error,
            recent_requests: self.host.recent_requests().of(&status.id),
            history: self.sampler.workload_history(&status.id),
        })
    }

    /// The limits component `name` of `workload` runs under.
    fn limits_of(&self, workload: &nimbus_model::Workload, name: &str) -> LimitsView {
        let Some(resources) = resources_of(workload, name) else {
            return LimitsView::default();
        };
        let limits = self.host.effective_limits(resources);
        LimitsView {
            memory_bytes: Some(limits.memory_bytes as u64),
            cpu_cores: limits.cpu.map(|c| c.cores()),
            timeout_ms: Some(limits.request_timeout.as_millis() as u64),
            max_concurrent_requests: Some(limits.max_concurrent_requests),
            allowed_hosts: resources.allowed_hosts.clone(),
        }
    }

    fn component_detail(
        &self,
        workload: &nimbus_model::Workload,
        component: &ComponentStatus,
        worlds: &BTreeMap<String, ComponentWorld>,
        latest: &Latest,
    ) -> ComponentDetail {
        let resources = resources_of(workload, &component.name);
        // Keys only: values may be anything the operator put there.
        let config_keys = resources
            .map(|r| r.config.keys().cloned().collect())
            .unwrap_or_default();
        let world = worlds.get(&component.name).cloned().unwrap_or_default();
        ComponentDetail {
            name: component.name.clone(),
            digest: component.digest.clone(),
            http: component.http,
            imports: world.imports,
            exports: world.exports,
            limits: self.limits_of(workload, &component.name),
            config_keys,
            figures: figures_of(latest, &workload.id(), &component.name),
        }
    }
}
