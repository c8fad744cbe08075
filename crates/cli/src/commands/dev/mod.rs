//! `nimbus dev`: build, serve, watch, rebuild, swap — the whole inner loop in
//! one command.
//!
//! Every local project of the dev workload is built (the project itself and
//! each `dev.components` entry naming a `project`: a middleware's wrapped
//! app, a service) and served with the dev router (every request goes to
//! the project's workload). While the first build runs, requests get `503`
//! with `Retry-After`. The watcher ([`watch`]) sees what each build read
//! change; the project that changed is rebuilt and the workload swapped in
//! with `Host::replace_workload`: the new version is compiled and linked
//! before the swap, requests already running finish on the old one, so no
//! request fails during a reload. A failed build prints the compiler's
//! output and the last good version keeps serving. Edits to a config reload
//! it and its sources too. Ctrl-C drains and exits 0.

mod progress;
mod watch;

use crate::telemetry::Verbosity;
use anyhow::Context as _;
use clap::Args;
use nimbus_host::http::DevRouter;
use nimbus_host::{Host, HostConfig};
use nimbus_project::component_build::{self, BuildError, Built, Output};
use nimbus_project::config::LoadedConfig;
use nimbus_project::local::LocalProject;
use progress::{BuildProgress, status};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use watch::WatchSet;

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
    /// How long edits must settle before a rebuild, in milliseconds (at
    /// most a minute).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    debounce_ms: u64,
    /// How long to let in-flight requests finish after Ctrl-C, in seconds.
    #[arg(long, default_value_t = 10)]
    drain_timeout: u64,
    /// Show only status lines and errors (no build progress, warnings-only logs).
    #[arg(short, long, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    /// Show every line of the toolchain and debug logs.
    #[arg(short, long)]
    pub(crate) verbose: bool,
    /// Write log lines to this file (appended) instead of stderr; it is
    /// never watched.
    #[arg(long, value_name = "FILE")]
    pub(crate) log_file: Option<PathBuf>,
    #[command(flatten)]
    cpu: super::serve::CpuLimitArg,
    /// Serve the web console, `/metrics`, `/healthz` and `/readyz` here (a
    /// free port when this one is taken); `off` for none.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    admin_addr: super::admin::AdminAddr,
    #[command(flatten)]
    admin_token: super::admin::AdminTokenArg,
}

/// Default listen address of `nimbus dev`.
const DEFAULT_ADDRESS: &str = "127.0.0.1:8000";

impl DevCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        super::block_on(self.run())
    }

    /// How much to say, from `--quiet` / `--verbose`.
    pub(crate) fn verbosity(&self) -> Verbosity {
        if self.quiet {
            Verbosity::Quiet
        } else if self.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        }
    }

    async fn run(self) -> anyhow::Result<()> {
        let verbosity = self.verbosity();
        let dir = std::fs::canonicalize(super::project_dir(self.project_dir.as_deref())?)
            .context("cannot resolve the project directory")?;
        super::ensure_project(&dir)?;
        let name = nimbus_project::workload::project_name(&dir);
        let mut project = Project::load(&dir)?;
        let dev = &project.loaded.config.dev;
        // Named by what they are: the project may set them with wash's
        // keys (`wasi_keyvalue_path`, `wasi_blobstore_path`) as well.
        let backends = [
            ("the project's key-value backend", &dev.keyvalue),
            ("the project's blobstore backend", &dev.blobstore),
        ];
        for (what, choice) in backends {
            super::check_backend_directory(what, choice.as_ref(), &dir)?;
        }
        let mut config = HostConfig {
            plugins: project.loaded.config.dev.plugin_defaults(&dir),
            accounting: self.admin_addr.0.is_some() || crate::telemetry::metrics_exported(),
            guest_telemetry: crate::telemetry::guest_telemetry(),
            ..HostConfig::default()
        };
        self.cpu.apply(&mut config);
        let router = Arc::new(DevRouter::new());
        let host = Host::new(config, router.clone())?;
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
        // Bound before any build: a port in use fails at once.
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let addr = listener.local_addr()?;
        // The console after the main address: a port in use is the one error.
        let admin = super::admin::AdminOptions {
            addr: self.admin_addr,
            token: &self.admin_token,
            cluster: None,
            fall_back_to_free_port: true,
        };
        // Always ready: `nimbus dev` answers 503 itself while it builds.
        let readiness = nimbus_host::http::admin::Readiness::default();
        readiness.set(true);
        super::admin::start(admin, &host, &readiness).await?;
        if project.loaded.config.workload.allowed_hosts.is_none() {
            eprintln!(
                "note: no `workload.allowedHosts`: under `nimbus dev` components may call any public host, as under `wash dev`; a deployed workload may call only the hosts it lists"
            );
        }
        router.set_not_ready(Some(format!(
            "`{name}` is building (first build); retry in a moment"
        )));

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
        status(&format!(
            "Listening on http://{addr}/ (503 until the first build serves)"
        ));

        // Watch before the first build so an edit made during it is not missed.
        let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<notify::Event>();
        let mut watch = WatchSet::new(events_tx)?;
        let own_outputs = own_output_files(self.log_file.as_deref());
        project.configure(&mut watch, &own_outputs);

        let mut loop_state = Builds {
            host: host.clone(),
            name: name.clone(),
            verbosity,
            built: vec![None; project.locals.len()],
            serving: false,
        };
        let everything: Vec<usize> = (0..project.locals.len()).collect();
        let first = tokio::select! {
            again = loop_state.build(&project, &mut watch, &everything) => Some(again),
            _ = stop_rx.wait_for(|stop| *stop) => None,
        };
        let mut again = first.clone().unwrap_or_default();
        if first.is_some() {
            if loop_state.serving {
                status(&format!("Serving on http://{addr}/"));
            } else {
                router.set_not_ready(Some(format!(
                    "`{name}` has not built yet: see the errors `nimbus dev` printed, save a fix and it rebuilds"
                )));
                eprintln!("no successful build yet: requests get 503 until the project builds");
            }
            status(&format!(
                "Watching {} for changes; Ctrl-C to stop",
                project
                    .locals
                    .iter()
                    .map(|l| l.dir.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if verbosity == Verbosity::Verbose {
            eprintln!("watching {} directories", watch.watched_dirs());
        }

        let debounce = Duration::from_millis(self.debounce_ms);
        loop {
            if *stop_rx.borrow() {
                break;
            }
            if again.is_empty() {
                let first = tokio::select! {
                    _ = stop_rx.wait_for(|stop| *stop) => break,
                    event = events.recv() => match event {
                        Some(event) => event,
                        None => break,
                    },
                };
                watch.note(&first);
            }
            // Let a burst of writes (an editor's save, a formatter) settle,
            // but not forever: something writing nonstop (a log) must not
            // hold a real edit back.
            let settle_until: tokio::time::Instant = nimbus_model::time::deadline(
                std::time::Instant::now(),
                debounce.saturating_mul(10),
            )
            .into();
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Some(event) => watch.note(&event),
                        None => break,
                    },
                    _ = tokio::time::sleep(debounce) => break,
                    _ = tokio::time::sleep_until(settle_until) => break,
                    // Ctrl-C does not wait for edits to settle.
                    _ = stop_rx.wait_for(|stop| *stop) => break,
                }
            }
            if *stop_rx.borrow() {
                break;
            }
            let changes = watch.take_changes();
            let mut targets: Vec<usize> = std::mem::take(&mut again);
            targets.extend(changes.projects.iter().copied());
            if changes.config {
                match Project::load(&dir) {
                    Ok(reloaded) => {
                        project = reloaded;
                        host.set_sources(project.sources.clone());
                        project.configure(&mut watch, &own_outputs);
                        // Indexes may name other projects now: all rebuild.
                        loop_state.built = vec![None; project.locals.len()];
                        status("config reloaded");
                        targets = (0..project.locals.len()).collect();
                    }
                    Err(e) => {
                        eprintln!("error: {}", crate::error_line::with_hint(&e));
                        eprintln!("keeping the previous config");
                    }
                }
            }
            targets.sort_unstable();
            targets.dedup();
            if targets.is_empty() {
                continue;
            }
            let was_serving = loop_state.serving;
            again = tokio::select! {
                again = loop_state.build(&project, &mut watch, &targets) => again,
                // A build in progress is left to end by itself (Ctrl-C
                // reaches the toolchain too).
                _ = stop_rx.wait_for(|stop| *stop) => break,
            };
            if loop_state.serving && !was_serving {
                status(&format!("Serving on http://{addr}/"));
            }
        }
        drop(watch);
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

/// Regular files this process's stdout and stderr are redirected to, and
/// the log file: never watched (`nimbus dev > dev.log` inside the project
/// would otherwise reload on its own output).
fn own_output_files(log_file: Option<&Path>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = log_file.map(Path::to_path_buf).into_iter().collect();
    for fd in [1, 2] {
        if let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{fd}"))
            && target.is_file()
        {
            files.push(target);
        }
    }
    files
}

/// The loaded config, its resolved sources and the local projects.
struct Project {
    loaded: LoadedConfig,
    sources: nimbus_host::workload::NamedSources,
    locals: Vec<LocalProject>,
}

impl Project {
    fn load(dir: &Path) -> anyhow::Result<Self> {
        let loaded = super::load_project_config(dir)?;
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let (sources, warnings) = nimbus_project::sources::resolve(&loaded.config, dir, &env)?;
        for warning in warnings {
            eprintln!("warning: {warning}");
        }
        let user = nimbus_project::config::user_config_path();
        let locals = nimbus_project::local::local_projects(&loaded, user.as_deref())?;
        for local in &locals {
            for pattern in &local.watch {
                globset::Glob::new(pattern)
                    .map_err(|e| anyhow::anyhow!("`watch` glob of {}: {e}", local.label()))?;
            }
        }
        Ok(Self {
            loaded,
            sources,
            locals,
        })
    }

    /// Points the watcher at this project: its local projects, config
    /// files, and what never counts (data dirs and `own_outputs`).
    fn configure(&self, watch: &mut WatchSet, own_outputs: &[PathBuf]) {
        watch.configure(
            &self.locals,
            self.config_files(),
            self.data_dirs()
                .into_iter()
                .chain(own_outputs.iter().cloned()),
        );
    }

    /// Files whose change reloads the config: every local project's config
    /// files and the files `configs:`/`secrets:` sources read.
    fn config_files(&self) -> Vec<PathBuf> {
        let root = &self.loaded.project_dir;
        let config = &self.loaded.config;
        let sources = config
            .configs
            .values()
            .chain(config.secrets.values())
            .flat_map(|source| source.file.iter().chain(source.dir.iter()))
            .map(|path| root.join(path));
        self.locals
            .iter()
            .flat_map(|l| l.config_files.iter().cloned())
            .chain(sources)
            // A project without a config file yet: creating one counts.
            .chain(
                nimbus_project::config::PROJECT_CONFIG_PATHS
                    .iter()
                    .map(|p| root.join(p)),
            )
            .collect()
    }

    /// Directories components write into: volumes and filesystem backends.
    fn data_dirs(&self) -> Vec<PathBuf> {
        use nimbus_project::config::Backend;
        let root = &self.loaded.project_dir;
        let dev = &self.loaded.config.dev;
        let backends = [&dev.keyvalue, &dev.blobstore, &dev.messaging]
            .into_iter()
            .flatten()
            .filter_map(|backend| match backend {
                Backend::Filesystem { path } => Some(root.join(path)),
                _ => None,
            });
        dev.volumes
            .iter()
            .map(|v| root.join(&v.host_path))
            .chain(backends)
            .collect()
    }
}

/// The last good build of each local project, and whether the workload
/// serves.
struct Builds {
    host: Host,
    name: String,
    verbosity: Verbosity,
    built: Vec<Option<Built>>,
    serving: bool,
}

impl Builds {
    /// Builds the local projects `targets` (indexes into `project.locals`)
    /// and swaps the workload in when every local project has a good build.
    /// Returns the projects to build again at once: an input was written
    /// while its build ran.
    async fn build(
        &mut self,
        project: &Project,
        watch: &mut WatchSet,
        targets: &[usize],
    ) -> Vec<usize> {
        let mut again = Vec::new();
        let mut succeeded = Vec::new();
        let mut failed = false;
        for &index in targets {
            let local = &project.locals[index];
            // Fetched WIT is written before the inputs are recorded: the
            // fetch is part of the build, not an edit to rebuild for.
            if let Err(error) = super::wit::fetch_missing(&local.dir, &local.wit).await {
                eprintln!(
                    "✗ {}: WIT dependencies: {}",
                    local.label(),
                    crate::error_line::with_hint(&error)
                );
                failed = true;
                continue;
            }
            watch.before_build(index);
            let started = SystemTime::now();
            match self.build_one(local).await {
                Some(built) => {
                    if watch.after_build(index, Some(&built.component), started) {
                        again.push(index);
                    }
                    self.built[index] = Some(built);
                    succeeded.push(index);
                }
                None => {
                    watch.build_failed(index);
                    failed = true;
                }
            }
        }
        if failed && self.serving {
            eprintln!("  still serving the last good version");
        }
        if succeeded.is_empty() {
            return again;
        }
        let missing: Vec<String> = project
            .locals
            .iter()
            .zip(&self.built)
            .filter(|(_, built)| built.is_none())
            .map(|(local, _)| local.label())
            .collect();
        if !missing.is_empty() {
            if !failed {
                eprintln!("waiting for a good build of {}", missing.join(", "));
            }
            return again;
        }
        self.swap(project, &succeeded).await;
        again
    }

    /// Runs one project's build, showing its progress; `None` when it
    /// failed (reported).
    async fn build_one(&self, local: &LocalProject) -> Option<Built> {
        let label = local.label();
        let started = Instant::now();
        let command = component_build::build_command(&local.build);
        let mut progress = BuildProgress::start(self.verbosity, &label, &command);
        let colour = progress.colour();
        let (dir, build) = (local.dir.clone(), local.build.clone());
        let joined = tokio::task::spawn_blocking(move || {
            let mut on_line = |line: &str| progress.line(line);
            let result = component_build::build(
                &dir,
                &build,
                Output::Stream {
                    on_line: &mut on_line,
                    colour,
                },
            );
            (result, progress)
        })
        .await;
        let (result, progress) = match joined {
            Ok(done) => done,
            Err(error) => {
                eprintln!("✗ build of {label}: the build task failed: {error}");
                return None;
            }
        };
        let showed = progress.showed_lines();
        progress.finish();
        match result {
            Ok(built) => Some(built),
            Err(error) => {
                report_build_failure(&label, &error, started.elapsed(), showed);
                None
            }
        }
    }

    /// Replaces the workload with one made of every last good build;
    /// `rebuilt` are the projects this round built.
    async fn swap(&mut self, project: &Project, rebuilt: &[usize]) {
        let mut own = None;
        let mut others = BTreeMap::new();
        for (local, built) in project.locals.iter().zip(&self.built) {
            let Some(built) = built else { return };
            match &local.component {
                None => own = Some(built.component.clone()),
                Some(name) => {
                    others.insert(name.clone(), built.component.clone());
                }
            }
        }
        let Some(own) = own else { return };
        let workload = nimbus_project::workload::dev_workload(
            &self.name,
            &own,
            &others,
            &project.loaded.config,
            &project.loaded.project_dir,
        );
        let swap_started = Instant::now();
        match self.host.replace_workload(workload).await {
            Ok(_) => {
                let what: Vec<String> = rebuilt
                    .iter()
                    .filter_map(|&i| {
                        let built = self.built[i].as_ref()?;
                        Some(format!(
                            "{} ({}, build {:.1}s)",
                            project.locals[i].label(),
                            super::human_size(built.size),
                            built.duration.as_secs_f64()
                        ))
                    })
                    .collect();
                status(&format!(
                    "✓ {} {} — swap {} ms",
                    if self.serving { "reloaded" } else { "serving" },
                    what.join(", "),
                    swap_started.elapsed().as_millis()
                ));
                self.serving = true;
            }
            Err(error) => {
                eprintln!("✗ the new version did not start: {error}");
                if self.serving {
                    eprintln!("  still serving the last good version");
                }
            }
        }
    }
}

fn report_build_failure(label: &str, error: &BuildError, elapsed: Duration, shown: bool) {
    if let Some(output) = error.output()
        && !shown
    {
        eprint!("{output}");
        if !output.ends_with('\n') {
            eprintln!();
        }
    }
    eprintln!(
        "✗ build of {label} failed after {:.1}s: {error}",
        elapsed.as_secs_f64()
    );
}
