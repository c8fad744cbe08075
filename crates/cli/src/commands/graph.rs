//! `nimbus graph`: how a workload is wired, as a Mermaid flowchart (paste it
//! into Markdown) or as text for the terminal (`--ascii`).

use anyhow::Context as _;
use clap::Args;
use nimbus_host::graph::{ComponentWorld, WorkloadGraph, component_world};
use nimbus_host::host::SERVICE_NAME;
use nimbus_host::workload::Workload;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Arguments of `nimbus graph`.
#[derive(Args)]
pub(crate) struct GraphCommand {
    /// A workload manifest (`.yaml`) or a project directory (its built
    /// component plus the components its config lists). Default: `.`.
    path: Option<PathBuf>,
    /// Draw for the terminal instead of printing Mermaid.
    #[arg(long)]
    ascii: bool,
    // `--max-component-mb`.
    #[command(flatten)]
    limit: super::ComponentLimitArgs,
}

impl GraphCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        let path = self.path.unwrap_or_else(|| PathBuf::from("."));
        let workloads = if path.is_dir() {
            vec![project_workload(&path)?]
        } else {
            super::read_manifest(&path)?
                .into_iter()
                .map(|doc| doc.workload)
                .collect()
        };
        let mut pictures = Vec::new();
        for workload in &workloads {
            let graph = WorkloadGraph::build(workload, &worlds(workload, self.limit.bytes())?)
                .map_err(|e| anyhow::anyhow!("workload `{}`: {e}", workload.id()))?;
            pictures.push(if self.ascii {
                graph.ascii()
            } else {
                graph.mermaid()
            });
        }
        out!("{}", pictures.join("\n"))?;
        Ok(())
    }
}

/// The workload `nimbus dev` would run for the project in `dir`.
fn project_workload(dir: &Path) -> anyhow::Result<Workload> {
    let loaded = super::load_project_config(dir)?;
    let component = nimbus_project::component_build::find_component(dir, &loaded.config.build)
        .context("no built component (run `nimbus build` first)")?;
    let name = nimbus_project::workload::project_name(dir);
    // Components built by their own projects: what those builds produced.
    let user = nimbus_project::config::user_config_path();
    let mut built = BTreeMap::new();
    for local in nimbus_project::local::local_projects(&loaded, user.as_deref())? {
        let Some(component_name) = local.component else {
            continue;
        };
        let file = nimbus_project::component_build::find_component(&local.dir, &local.build)
            .with_context(|| {
                format!(
                    "component `{component_name}`: no build in {} (run `nimbus build -C {}` first)",
                    local.dir.display(),
                    local.dir.display()
                )
            })?;
        built.insert(component_name, file);
    }
    Ok(nimbus_project::workload::dev_workload(
        &name,
        &component,
        &built,
        &loaded.config,
        dir,
    ))
}

/// Each component's imports and exports, read from its file (at most
/// `limit` bytes).
fn worlds(workload: &Workload, limit: u64) -> anyhow::Result<BTreeMap<String, ComponentWorld>> {
    let mut worlds = BTreeMap::new();
    for component in &workload.spec.components {
        let bytes = super::read_workload_component(component, "drawn", limit)?;
        let world = component_world(&bytes)
            .map_err(|e| anyhow::anyhow!("component `{}`: {e}", component.name))?;
        worlds.insert(component.name.clone(), world);
    }
    if let Some(service) = &workload.spec.service {
        let component = nimbus_host::workload::ComponentSpec {
            name: SERVICE_NAME.into(),
            image: service.image.clone(),
            local_resources: service.local_resources.clone(),
            ..Default::default()
        };
        let bytes = super::read_workload_component(&component, "drawn", limit)?;
        let world = component_world(&bytes).map_err(|e| anyhow::anyhow!("the service: {e}"))?;
        worlds.insert(SERVICE_NAME.into(), world);
    }
    Ok(worlds)
}
