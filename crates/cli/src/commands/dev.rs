//! `nimbus dev`: build, serve, watch, rebuild, swap — the whole inner loop in
//! one command.
//!
//! The project is built once and served with the dev router (every request
//! goes to the project's workload). A file watcher sees edits (ignoring
//! `target/`, `.git/`, whatever `.gitignore` ignores, and generated files),
//! waits for the edits to settle, rebuilds, and swaps the new version in with
//! `Host::replace_workload`: the new component is compiled and linked before
//! the swap, requests already running finish on the old one, so no request
//! fails during a reload. A failed build prints the compiler's output and the
//! last good version keeps serving. Edits to the project config reload the
//! config and its sources too. Ctrl-C drains and exits 0.

use anyhow::Context as _;
use clap::Args;
use nimbus_host::http::DevRouter;
use nimbus_host::{Host, HostConfig};
use nimbus_project::component_build::{self, BuildError, Built, Output};
use nimbus_project::config::LoadedConfig;
use notify::Watcher as _;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `nimbus dev`.
#[derive(Args)]
pub(crate) struct DevCommand {
    #[command(flatten)]
    pub(crate) otlp: super::OtlpArgs,
    /// The project directory (default: the current directory).
    #[arg(short = 'C', long = "project-dir")]
    project_dir: Option<PathBuf>,
    /// Address to listen on (default: `dev.address` from the config, else
    /// 127.0.0.1:8000).
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// How long edits must settle before a rebuild, in milliseconds.
    #[arg(long, default_value_t = 300)]
    debounce_ms: u64,
    /// How long to let in-flight requests finish after Ctrl-C, in seconds.
    #[arg(long, default_value_t = 10)]
    drain_timeout: u64,
}

/// Default listen address of `nimbus dev`.
const DEFAULT_ADDRESS: &str = "127.0.0.1:8000";

impl DevCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        super::block_on(self.run())
    }

    async fn run(self) -> anyhow::Result<()> {
        let dir = std::fs::canonicalize(super::project_dir(self.project_dir.as_deref())?)
            .context("cannot resolve the project directory")?;
        let name = nimbus_project::workload::project_name(&dir);
        let mut project = Project::load(&dir)?;
        if project.loaded.config.workload.allowed_hosts.is_none() {
            eprintln!(
                "note: no `workload.allowedHosts`: under `nimbus dev` components may call any public host, as under `wash dev`; a deployed workload may call only the hosts it lists"
            );
        }
        let config = HostConfig {
            plugins: project.loaded.config.dev.plugin_defaults(&dir),
            accounting: crate::telemetry::metrics_exported(),
            guest_telemetry: crate::telemetry::guest_telemetry(),
            ..HostConfig::default()
        };
        let host = Host::new(config, Arc::new(DevRouter::new()))?;
        crate::telemetry::export_metrics(host.metrics());
        host.set_sources(project.sources.clone());

        let addr = match self.addr {
            Some(addr) => addr,
            None => {
                let text = project
                    .loaded
                    .config
                    .dev
                    .address
                    .clone()
                    .unwrap_or_else(|| DEFAULT_ADDRESS.into());
                text.parse()
                    .with_context(|| format!("`dev.address` is not an address: `{text}`"))?
            }
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let addr = listener.local_addr()?;

        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn({
            let host = host.clone();
            let mut stop_rx = stop_rx.clone();
            let drain = Duration::from_secs(self.drain_timeout);
            async move {
                let shutdown = async move {
                    let _ = stop_rx.wait_for(|stop| *stop).await;
                };
                nimbus_host::http::serve(listener, host, shutdown, drain).await
            }
        });
        let signal = super::shutdown_signal();
        tokio::spawn(async move {
            signal.await;
            let _ = stop_tx.send(true);
        });

        // Watch before the first build so an edit made during it is not missed.
        let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<notify::Event>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event {
                    let _ = events_tx.send(event);
                }
            })
            .context("cannot watch the project for changes")?;
        watcher
            .watch(&dir, notify::RecursiveMode::Recursive)
            .with_context(|| format!("cannot watch {}", dir.display()))?;
        let mut filter = WatchFilter::new(&dir, &project);

        let mut serving = rebuild(&host, &dir, &name, &project, false).await;
        outln!("Serving on http://{addr}/")?;
        outln!("Watching {} for changes; Ctrl-C to stop", dir.display())?;
        if !serving {
            eprintln!("no successful build yet: requests get 503 until the project builds");
        }

        let debounce = Duration::from_millis(self.debounce_ms);
        loop {
            let first = tokio::select! {
                _ = stop_rx.wait_for(|stop| *stop) => break,
                event = events.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
            };
            let mut change = filter.classify(&first);
            if change == Change::None {
                continue;
            }
            // Let a burst of writes (an editor's save, a formatter) settle.
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Some(event) => change = change.max(filter.classify(&event)),
                        None => break,
                    },
                    _ = tokio::time::sleep(debounce) => break,
                }
            }
            if change == Change::Config {
                match Project::load(&dir) {
                    Ok(reloaded) => {
                        project = reloaded;
                        host.set_sources(project.sources.clone());
                        filter.track_sources(&project);
                        eprintln!("config reloaded");
                    }
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        eprintln!("keeping the previous config");
                        continue;
                    }
                }
            }
            serving |= rebuild(&host, &dir, &name, &project, serving).await;
        }
        drop(watcher);
        let drained = server
            .await
            .context("the server task failed")?
            .context("the server failed")?;
        if drained {
            eprintln!("stopped");
        } else {
            eprintln!("stopped; some requests did not finish in time");
        }
        Ok(())
    }
}

/// The loaded config and its resolved sources.
struct Project {
    loaded: LoadedConfig,
    sources: nimbus_host::workload::NamedSources,
}

impl Project {
    fn load(dir: &Path) -> anyhow::Result<Self> {
        let loaded = super::load_project_config(dir)?;
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let (sources, warnings) = nimbus_project::sources::resolve(&loaded.config, dir, &env)?;
        for warning in warnings {
            eprintln!("warning: {warning}");
        }
        Ok(Self { loaded, sources })
    }
}

/// Builds and swaps the new version in: `true` when the new version serves,
/// `false` when the build or the start failed (the previous version, if any,
/// keeps serving).
async fn rebuild(host: &Host, dir: &Path, name: &str, project: &Project, serving: bool) -> bool {
    let started = Instant::now();
    if let Err(error) = super::wit::fetch_missing(dir, &project.loaded.config).await {
        eprintln!("✗ WIT dependencies: {error:#}");
        if serving {
            eprintln!("  still serving the last good version");
        }
        return false;
    }
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message(format!(
        "building ({})",
        component_build::build_command(&project.loaded.config.dev_build())
    ));
    spinner.enable_steady_tick(Duration::from_millis(100));
    let build_config = project.loaded.config.dev_build();
    let build_dir = dir.to_path_buf();
    let result = tokio::task::spawn_blocking(move || {
        component_build::build(&build_dir, &build_config, Output::Capture)
    })
    .await;
    spinner.finish_and_clear();
    let built: Built = match result {
        Ok(Ok(built)) => built,
        Ok(Err(error)) => {
            report_build_failure(&error, started.elapsed(), serving);
            return false;
        }
        Err(join) => {
            eprintln!("✗ the build task failed: {join}");
            return false;
        }
    };
    let workload =
        nimbus_project::workload::dev_workload(name, &built.component, &project.loaded.config, dir);
    let swap_started = Instant::now();
    match host.replace_workload(workload).await {
        Ok(_) => {
            let swap = swap_started.elapsed();
            eprintln!(
                "✓ {} {} ({}) — build {:.1}s, swap {} ms",
                if serving { "reloaded" } else { "serving" },
                built
                    .component
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                super::human_size(built.size),
                built.duration.as_secs_f64(),
                swap.as_millis()
            );
            true
        }
        Err(error) => {
            eprintln!("✗ the new version did not start: {error}");
            if serving {
                eprintln!("  still serving the last good version");
            }
            false
        }
    }
}

fn report_build_failure(error: &BuildError, elapsed: Duration, serving: bool) {
    if let Some(output) = error.output() {
        eprint!("{output}");
        if !output.ends_with('\n') {
            eprintln!();
        }
    }
    eprintln!(
        "✗ build failed after {:.1}s: {error}",
        elapsed.as_secs_f64()
    );
    if serving {
        eprintln!("  still serving the last good version");
    }
}

/// What a file event means for the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Change {
    /// Nothing to do (ignored path, or only an access).
    None,
    /// A source file changed: rebuild.
    Source,
    /// The project config changed: reload it, then rebuild.
    Config,
}

/// Decides which paths matter: not build output, not VCS data, not what
/// `.gitignore` ignores, not generated bindings.
struct WatchFilter {
    root: PathBuf,
    gitignore: ignore::gitignore::Gitignore,
    // Files read by `file` sources: a change reloads the config even when
    // git ignores them (as secrets files should be).
    source_files: Vec<PathBuf>,
}

/// Directories whose contents never trigger a rebuild.
const IGNORED_DIRS: [&str; 4] = ["target", ".git", "node_modules", "gen"];

impl WatchFilter {
    fn new(root: &Path, project: &Project) -> Self {
        let (gitignore, _) = ignore::gitignore::Gitignore::new(root.join(".gitignore"));
        let mut filter = Self {
            root: root.to_path_buf(),
            gitignore,
            source_files: Vec::new(),
        };
        filter.track_sources(project);
        filter
    }

    fn track_sources(&mut self, project: &Project) {
        let config = &project.loaded.config;
        self.source_files = config
            .configs
            .values()
            .chain(config.secrets.values())
            .flat_map(|source| source.file.iter().chain(source.dir.iter()))
            .filter_map(|path| std::fs::canonicalize(self.root.join(path)).ok())
            .collect();
    }

    fn classify(&self, event: &notify::Event) -> Change {
        use notify::EventKind;
        if matches!(event.kind, EventKind::Access(_) | EventKind::Other) {
            return Change::None;
        }
        event
            .paths
            .iter()
            .map(|path| self.classify_path(path))
            .max()
            .unwrap_or(Change::None)
    }

    fn classify_path(&self, path: &Path) -> Change {
        if self.source_files.iter().any(|f| path.starts_with(f)) {
            return Change::Config;
        }
        let Ok(relative) = path.strip_prefix(&self.root) else {
            return Change::None;
        };
        let first = relative
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        if first == ".nimbus" || first == ".wash" {
            return Change::Config;
        }
        if relative.components().any(|c| {
            IGNORED_DIRS
                .iter()
                .any(|d| c.as_os_str() == std::ffi::OsStr::new(d))
        }) {
            return Change::None;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Editor droppings and generated bindings.
        if name.ends_with('~')
            || name.starts_with(".#")
            || name.ends_with(".swp")
            || name.ends_with(".swx")
            || name == "bindings.rs"
            || name == "4913"
        {
            return Change::None;
        }
        let is_dir = path.is_dir();
        if self
            .gitignore
            .matched_path_or_any_parents(relative, is_dir)
            .is_ignore()
        {
            return Change::None;
        }
        Change::Source
    }
}
