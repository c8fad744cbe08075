//! `nimbus build`: run the project's build, find the component, check it,
//! and print its path and size (`-o json|yaml`: as data, for scripts).

use clap::Args;
use nimbus_project::component_build::{self, Built, Output};
use serde::Serialize;
use std::path::PathBuf;

/// Arguments of `nimbus build`.
#[derive(Args)]
pub(crate) struct BuildCommand {
    /// The project directory (default: the current directory).
    #[arg(short = 'C', long = "project-dir")]
    project_dir: Option<PathBuf>,
    /// Output format: one line for people (`table`), or `json` or `yaml`
    /// with the component's path, size in bytes, build time in seconds and
    /// the build command. With json or yaml the build tool's own output
    /// goes to stderr, so stdout holds only the result.
    #[arg(short, long, value_enum, default_value = "table")]
    output: super::OutputFormat,
}

/// What `-o json|yaml` prints.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    /// The component file.
    component: PathBuf,
    /// Its size in bytes.
    size_bytes: u64,
    /// How long the build command took.
    build_seconds: f64,
    /// The command that built it.
    command: String,
}

impl Report {
    fn new(built: &Built, command: String) -> Self {
        Self {
            component: built.component.clone(),
            size_bytes: built.size,
            build_seconds: built.duration.as_secs_f64(),
            command,
        }
    }
}

impl BuildCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        let dir = super::project_dir(self.project_dir.as_deref())?;
        super::ensure_project(&dir)?;
        let loaded = super::load_project_config(&dir)?;
        component_build::check_toolchain(&dir, &loaded.config.build)?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(super::wit::fetch_missing(&dir, &loaded.config.wit))?;
        let command = component_build::build_command(&loaded.config.build);
        eprintln!("building: {command}");
        // The toolchain's own output goes to stderr (componentize-py, npm
        // scripts print to stdout): stdout carries only the result.
        let built = component_build::build(&dir, &loaded.config.build, Output::Stderr)?;
        if !super::print_structured(self.output, &Report::new(&built, command))? {
            outln!(
                "{} ({}, built in {:.1}s)",
                built.component.display(),
                super::human_size(built.size),
                built.duration.as_secs_f64()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_report_is_path_size_seconds_and_command() {
        let built = Built {
            component: PathBuf::from("/p/target/app.wasm"),
            size: 1536,
            duration: Duration::from_millis(2500),
        };
        let report = Report::new(&built, "cargo build --release".into());
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            serde_json::json!({
                "component": "/p/target/app.wasm",
                "sizeBytes": 1536,
                "buildSeconds": 2.5,
                "command": "cargo build --release",
            })
        );
        let yaml = serde_yaml_ng::to_string(&report).unwrap();
        assert!(yaml.contains("sizeBytes: 1536\n"), "{yaml}");
    }
}
