//! `nimbus config show|validate`: the merged project config, with every
//! secret value shown as `<redacted>`, and a check that needs no build.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Arguments of `nimbus config`.
#[derive(Args)]
pub(crate) struct ConfigCommand {
    #[command(subcommand)]
    action: ConfigAction,
    /// The project directory (default: the current directory).
    #[arg(short = 'C', long = "project-dir", global = true)]
    project_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the merged config and the resolved sources (secrets redacted).
    Show {
        /// Output format (`table` is YAML here too).
        #[arg(short, long, value_enum, default_value = "yaml")]
        output: super::OutputFormat,
    },
    /// Check the config files and every source without running anything.
    Validate,
}

impl ConfigCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        let dir = super::project_dir(self.project_dir.as_deref())?;
        let loaded = super::load_project_config(&dir)?;
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let (sources, warnings) = nimbus_project::sources::resolve(&loaded.config, &dir, &env)?;
        for warning in &warnings {
            eprintln!("warning: {warning}");
        }
        match self.action {
            ConfigAction::Validate => {
                // Every source the workload names must exist: a typo here
                // is otherwise found only when the workload starts.
                let workload = &loaded.config.workload;
                sources
                    .check_layer(&workload.environment)
                    .context("workload.environment")?;
                for (index, component) in loaded.config.dev.components.iter().enumerate() {
                    if let Some(environment) = &component.spec().environment {
                        sources
                            .check_layer(environment)
                            .with_context(|| format!("dev.components[{index}].environment"))?;
                    }
                }
                for (index, interface) in loaded.config.dev.host_interfaces.iter().enumerate() {
                    sources
                        .check_interface(interface)
                        .with_context(|| format!("dev.host_interfaces[{index}]"))?;
                }
                let files: Vec<String> = [&loaded.user_file, &loaded.project_file]
                    .into_iter()
                    .flatten()
                    .map(|p| p.display().to_string())
                    .collect();
                outln!(
                    "ok: {} ({} config source(s), {} secret source(s))",
                    if files.is_empty() {
                        "no config file; defaults".to_string()
                    } else {
                        files.join(" + ")
                    },
                    sources.configs.len(),
                    sources.secrets.len()
                )?;
            }
            ConfigAction::Show { output } => {
                // Sources print with their resolved values; secrets through
                // `Secret`'s Serialize, which writes `<redacted>`.
                let shown = serde_json::json!({
                    "files": {
                        "user": loaded.user_file,
                        "project": loaded.project_file,
                    },
                    "config": loaded.config.redacted(),
                    "resolved": {
                        "configs": sources.configs,
                        "secrets": sources.secrets,
                    },
                });
                let format = match output {
                    super::OutputFormat::Table => super::OutputFormat::Yaml,
                    other => other,
                };
                super::print_structured(format, &shown).context("cannot render the config")?;
            }
        }
        Ok(())
    }
}
