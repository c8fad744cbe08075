//! One module per subcommand, each a clap struct with an `execute()`.

pub(crate) mod admin;
pub(crate) mod build;
pub(crate) mod cluster;
pub(crate) mod compose;
pub(crate) mod config;
pub(crate) mod dev;
pub(crate) mod graph;
pub(crate) mod inspect;
pub(crate) mod new;
pub(crate) mod oci;
pub(crate) mod serve;
pub(crate) mod top;
pub(crate) mod wit;

use anyhow::Context as _;
use clap::Args;
use std::path::Path;

/// `--max-component-mb`: the one size cap of every component source, a
/// local file or a registry layer, for every command that reads one
/// (`serve`, `host`, `push` and `pull` through their registry flags;
/// `inspect`, `graph` and `compose` directly).
#[derive(Args, Clone, Copy, Debug)]
pub(crate) struct ComponentLimitArgs {
    /// Largest component accepted, in MiB: a registry layer or a local
    /// file alike.
    #[arg(
        long,
        alias = "max-layer-mb",
        value_name = "MIB",
        default_value_t = DEFAULT_MAX_COMPONENT_MB
    )]
    max_component_mb: u64,
}

/// The cap when `--max-component-mb` is not given (the runtime's default,
/// `RegistrySettings::max_layer_bytes`, in MiB).
const DEFAULT_MAX_COMPONENT_MB: u64 = 100;

impl Default for ComponentLimitArgs {
    fn default() -> Self {
        Self {
            max_component_mb: DEFAULT_MAX_COMPONENT_MB,
        }
    }
}

impl ComponentLimitArgs {
    /// The cap, in bytes.
    pub(crate) fn bytes(self) -> u64 {
        self.max_component_mb.saturating_mul(1024 * 1024)
    }
}

/// Reads a component file, turning every way it can be wrong into one
/// clear sentence. Bounded like every component source (`limit` bytes, the
/// command's `--max-component-mb`; regular files only), so a FIFO or
/// `/dev/zero` cannot hang or fill the CLI.
pub(crate) fn read_component(path: &Path, limit: u64) -> anyhow::Result<Vec<u8>> {
    let bytes = nimbus_host::files::read_bounded_blocking(path, limit)?;
    nimbus_host::artifact::validate_component_bytes(&bytes)
        .with_context(|| format!("`{}`", path.display()))?;
    Ok(bytes)
}

/// Reads a workload manifest, telling the user on stderr what it skipped
/// or will not act on (other Kubernetes objects, wasmCloud fields that
/// mean nothing here), one `note:` line each.
pub(crate) fn read_manifest(
    path: &Path,
) -> anyhow::Result<Vec<nimbus_host::workload::ManifestDocument>> {
    let manifest = nimbus_host::workload::load_manifest_file(path)?;
    for notice in &manifest.notices {
        eprintln!("note: {}: {notice}", path.display());
    }
    Ok(manifest.documents)
}

/// Reads the local file a workload's component names (at most `limit`
/// bytes), for a command that can only `act` ("drawn", "composed") on local
/// components.
pub(crate) fn read_workload_component(
    component: &nimbus_host::workload::ComponentSpec,
    act: &str,
    limit: u64,
) -> anyhow::Result<Vec<u8>> {
    let Some(path) = nimbus_host::workload::local_image_path(&component.image) else {
        anyhow::bail!(
            "component `{}`: `{}` is not a local file; only local components can be {act}",
            component.name,
            component.image
        );
    };
    read_component(&path, limit).with_context(|| format!("component `{}`", component.name))
}

/// Resolves when the process gets Ctrl-C or SIGTERM.
///
/// The handlers are installed by this call, not when the future is first
/// polled: callers announce that they are serving before their loop polls
/// it, and a signal arriving in between must not kill the process undrained.
pub(crate) fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            async fn received(signal: Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = received(interrupt) => {}
                _ = received(terminate) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        eprintln!("draining in-flight requests…");
    }
}

/// The project directory: `dir` if given, else the current directory.
pub(crate) fn project_dir(dir: Option<&Path>) -> anyhow::Result<std::path::PathBuf> {
    let dir = match dir {
        Some(dir) => dir.to_path_buf(),
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    anyhow::ensure!(dir.is_dir(), "`{}` is not a directory", dir.display());
    Ok(dir)
}

/// Refuses a directory with nothing to build (no project config, no
/// `Cargo.toml`), before any toolchain runs.
pub(crate) fn ensure_project(dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        nimbus_project::local::is_project(dir),
        "`{}` is not a project: it has no .nimbus/config.yaml, .wash/config.yaml or Cargo.toml (start one with `nimbus new`, or pass -C DIR)",
        dir.display()
    );
    Ok(())
}

/// The merged project config, with a clear error when it is invalid.
pub(crate) fn load_project_config(
    dir: &Path,
) -> anyhow::Result<nimbus_project::config::LoadedConfig> {
    let user = nimbus_project::config::user_config_path();
    let loaded = nimbus_project::config::load(dir, user.as_deref())?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(loaded)
}

/// A filesystem backend chosen by `what` (a flag or a config key) names a
/// directory, resolved against `base`, that the plugin creates on first
/// use: something there already that is not a directory (a file, a
/// device) would fail every request that reaches the backend, so it is
/// refused before anything starts.
pub(crate) fn check_backend_directory(
    what: &str,
    choice: Option<&nimbus_project::config::Backend>,
    base: &Path,
) -> anyhow::Result<()> {
    let Some(nimbus_project::config::Backend::Filesystem { path }) = choice else {
        return Ok(());
    };
    let resolved = base.join(path);
    match std::fs::metadata(&resolved) {
        Ok(found) if !found.is_dir() => anyhow::bail!(
            "{what} `{}` is not a directory: a filesystem backend keeps its data in one",
            resolved.display()
        ),
        _ => Ok(()),
    }
}

/// Bytes as a short human figure.
pub(crate) fn human_size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// Runs a command's async body on tokio: on the calling thread alone when
/// one thread is what [`worker_threads`] finds, otherwise on that many
/// worker threads.
pub(crate) fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(
    body: F,
) -> anyhow::Result<()> {
    let setting = std::env::var("TOKIO_WORKER_THREADS").ok();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = worker_threads(setting.as_deref(), cpus).map_err(anyhow::Error::msg)?;
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tracing::debug!(threads, cpus, "the async runtime's threads");
    let result = runtime.block_on(body);
    // Dropping a runtime waits for its blocking tasks without end (a file
    // read or a DNS lookup stuck on a dead server); the command is done, so
    // wait a little and leave.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

/// How many threads run a command's async tasks: what
/// `TOKIO_WORKER_THREADS` says (tokio's own setting, which it would
/// otherwise read itself and panic on a bad value), or one per CPU the
/// process may run on (its affinity and its cgroup's quota, as std reads
/// them). One means the calling thread alone: on one CPU, a worker thread
/// beside the thread that waits for it only adds hand-offs between two
/// threads sharing the core, and `nimbus serve` answered 9% (P3) to 20%
/// (P2) more requests per second without it (docs/BENCHMARKS.md, round 10).
fn worker_threads(setting: Option<&str>, cpus: usize) -> Result<usize, String> {
    let Some(setting) = setting else {
        return Ok(cpus.max(1));
    };
    if setting.trim().is_empty() {
        return Err(
            "TOKIO_WORKER_THREADS is set but empty: give a whole number of threads, 1 or more, or unset it"
                .to_string(),
        );
    }
    match setting.trim().parse::<usize>() {
        Ok(threads) if threads > 0 => Ok(threads),
        _ => Err(format!(
            "TOKIO_WORKER_THREADS is `{setting}`: it must be a whole number of threads, 1 or more"
        )),
    }
}

/// Where the commands that serve export their telemetry.
#[derive(clap::Args, Clone, Default)]
pub(crate) struct OtlpArgs {
    /// Export traces, metrics and logs over OTLP to this collector (such as
    /// http://127.0.0.1:4317; over HTTP, with
    /// OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf, a base URL such as
    /// http://127.0.0.1:4318). The standard OTEL_EXPORTER_OTLP_* variables
    /// do the same, per signal.
    #[arg(long, value_name = "URL")]
    pub(crate) otlp_endpoint: Option<String>,
}

/// How a command that prints data prints it (`-o`, as kubectl and wash).
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum OutputFormat {
    /// For people: a table, or the command's own text.
    #[default]
    #[value(alias = "text")]
    Table,
    /// JSON, pretty-printed.
    Json,
    /// YAML.
    Yaml,
}

/// Prints `value` as JSON or YAML; `false` for [`OutputFormat::Table`],
/// which each command prints its own way.
pub(crate) fn print_structured(
    format: OutputFormat,
    value: &impl serde::Serialize,
) -> anyhow::Result<bool> {
    match format {
        OutputFormat::Table => return Ok(false),
        OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(value)?)?,
        OutputFormat::Yaml => out!("{}", serde_yaml_ng::to_string(value)?)?,
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    /// Without `--max-component-mb`, the CLI's cap is the runtime's own.
    #[test]
    fn the_component_cap_defaults_to_the_runtimes() {
        assert_eq!(
            super::ComponentLimitArgs::default().bytes(),
            nimbus_host::oci::RegistrySettings::default().max_layer_bytes
        );
    }

    /// A filesystem backend naming something that is not a directory is
    /// refused at start; a directory, a path not made yet and the other
    /// backends pass.
    #[test]
    fn a_filesystem_backend_must_name_a_directory() {
        use nimbus_project::config::Backend;
        let base = tempfile::tempdir().unwrap();
        std::fs::write(base.path().join("file"), "x").unwrap();
        let fs = |path: &str| Backend::Filesystem { path: path.into() };
        let check = |choice: Option<&Backend>| {
            super::check_backend_directory("--keyvalue", choice, base.path())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            check(Some(&fs("file"))),
            Err(format!(
                "--keyvalue `{}` is not a directory: a filesystem backend keeps its data in one",
                base.path().join("file").display()
            ))
        );
        assert!(check(Some(&fs("/dev/zero"))).is_err());
        assert_eq!(check(Some(&fs("."))), Ok(()));
        assert_eq!(check(Some(&fs("not-yet"))), Ok(()));
        assert_eq!(check(Some(&Backend::Memory)), Ok(()));
        assert_eq!(check(None), Ok(()));
    }

    /// One thread per CPU unless `TOKIO_WORKER_THREADS` says otherwise; one
    /// CPU (or a setting of 1) means the calling thread alone; a bad setting
    /// is one line, not tokio's panic.
    #[test]
    fn the_runtime_has_a_thread_per_cpu_unless_tokio_worker_threads_says() {
        use super::worker_threads;
        assert_eq!(worker_threads(None, 1), Ok(1));
        assert_eq!(worker_threads(None, 8), Ok(8));
        assert_eq!(worker_threads(Some("1"), 8), Ok(1));
        assert_eq!(worker_threads(Some(" 3 "), 1), Ok(3));
        assert_eq!(
            worker_threads(Some(" "), 4),
            Err(
                "TOKIO_WORKER_THREADS is set but empty: give a whole number of threads, 1 or more, or unset it"
                    .to_string()
            )
        );
        for bad in ["0", "-1", "two"] {
            assert_eq!(
                worker_threads(Some(bad), 4),
                Err(format!(
                    "TOKIO_WORKER_THREADS is `{bad}`: it must be a whole number of threads, 1 or more"
                ))
            );
        }
    }
}
