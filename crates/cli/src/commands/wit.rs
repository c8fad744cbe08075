//! `nimbus wit fetch`, and the fetch `nimbus build` and `nimbus dev` run
//! first when a project's WIT uses packages it does not have (as `wash
//! build` does): registries through wkg's libraries, else the WIT Nimbus
//! embeds, with a note saying which.

use clap::{Args, Subcommand};
use nimbus_project::config::WitSection;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `nimbus wit`.
#[derive(Args)]
pub(crate) struct WitCommand {
    #[command(subcommand)]
    action: WitAction,
}

#[derive(Subcommand)]
enum WitAction {
    /// Fetch the packages the project's WIT uses into `wit/deps/`, from
    /// the registries wkg is configured with (`wkg.toml` and `wkg.lock`
    /// respected, `wkg.lock` written), or from the WIT Nimbus embeds when
    /// no registry answers.
    Fetch(FetchArgs),
}

#[derive(Args)]
struct FetchArgs {
    /// The project directory (default: the current directory).
    #[arg(short = 'C', long = "project-dir")]
    project_dir: Option<PathBuf>,
    /// Give up on the registries after this many seconds.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    timeout: u64,
}

impl WitCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        let WitAction::Fetch(args) = self.action;
        let dir = super::project_dir(args.project_dir.as_deref())?;
        let loaded = super::load_project_config(&dir)?;
        let wit_dir = loaded.config.wit.dir(&dir);
        anyhow::ensure!(
            wit_dir.is_dir(),
            "`{}` has no WIT folder (`{}`)",
            dir.display(),
            wit_dir.display()
        );
        let wit_dir = inside(&dir, &wit_dir)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(fetch(&dir, &wit_dir, Duration::from_secs(args.timeout)))
    }
}

/// Before a build: fetches what the project's WIT lacks, unless
/// `wit.skip_fetch` is set or nothing is missing (a project whose WIT
/// resolves is left alone; `nimbus wit fetch` refreshes it).
pub(crate) async fn fetch_missing(dir: &Path, wit: &WitSection) -> anyhow::Result<()> {
    let wit_dir = wit.dir(dir);
    if wit.skip_fetch || !wit_dir.is_dir() {
        return Ok(());
    }
    let wit_dir = inside(dir, &wit_dir)?;
    let missing = {
        let wit_dir = wit_dir.clone();
        tokio::task::spawn_blocking(move || nimbus_wit::missing_packages(&wit_dir)).await??
    };
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
    eprintln!("fetching WIT dependencies: {}", names.join(", "));
    fetch(dir, &wit_dir, FETCH_TIMEOUT).await
}

/// The bound on a fetch before a build.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// The WIT folder, refused unless it stays inside the project: a fetch
/// replaces its `deps/`.
fn inside(project: &Path, wit_dir: &Path) -> anyhow::Result<PathBuf> {
    let relative = wit_dir.strip_prefix(project).unwrap_or(wit_dir);
    nimbus_project::sources::inside_project(project, relative)
        .map_err(|e| anyhow::anyhow!("wit.wit_dir: {e}"))
}

async fn fetch(dir: &Path, wit_dir: &Path, timeout: Duration) -> anyhow::Result<()> {
    // With no user cache directory, a private one for this run (a shared
    // one under /tmp could be filled by another user).
    let scratch;
    let cache_dir = match dirs::cache_dir() {
        Some(cache) => cache.join("nimbus").join("wit-packages"),
        None => {
            scratch = tempfile::tempdir()?;
            scratch.path().to_path_buf()
        }
    };
    let options = nimbus_wit::FetchOptions {
        cache_dir,
        timeout,
        config_file: None,
    };
    let report = nimbus_wit::fetch(dir, wit_dir, &options).await?;
    if !report.from_registry.is_empty() {
        eprintln!(
            "fetched {} (wkg.lock written)",
            report.from_registry.join(", ")
        );
    }
    if let Some(cause) = &report.registry_error {
        if report.from_embedded.is_empty() {
            eprintln!("note: the registry failed ({cause}); nothing was missing");
        } else {
            let used: Vec<String> = report
                .from_embedded
                .iter()
                .map(|(asked, embedded)| {
                    if asked == embedded {
                        asked.to_string()
                    } else {
                        format!("{asked} (from {embedded})")
                    }
                })
                .collect();
            eprintln!(
                "note: the registry failed ({cause}); used the WIT Nimbus embeds for {}",
                used.join(", ")
            );
        }
    }
    Ok(())
}
