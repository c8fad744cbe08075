//! `nimbus build`: run the project's build, find the component, check it,
//! and print its path and size.

use clap::Args;
use nimbus_project::component_build::{self, Output};
use std::path::PathBuf;

/// Arguments of `nimbus build`.
#[derive(Args)]
pub(crate) struct BuildCommand {
    /// The project directory (default: the current directory).
    #[arg(short = 'C', long = "project-dir")]
    project_dir: Option<PathBuf>,
}

impl BuildCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        let dir = super::project_dir(self.project_dir.as_deref())?;
        super::ensure_project(&dir)?;
        let loaded = super::load_project_config(&dir)?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(super::wit::fetch_missing(&dir, &loaded.config.wit))?;
        eprintln!(
            "building: {}",
            component_build::build_command(&loaded.config.build)
        );
        let built = component_build::build(&dir, &loaded.config.build, Output::Inherit)?;
        outln!(
            "{} ({}, built in {:.1}s)",
            built.component.display(),
            super::human_size(built.size),
            built.duration.as_secs_f64()
        )?;
        Ok(())
    }
}
