//! `nimbus serve`: run one component or a workload manifest standalone on
//! the embedded defaults, print the URL, serve until Ctrl-C, then drain.
//!
//! A lone component becomes a one-component workload here, set up by the
//! flags in `component_flags` (`--env`, `--dir`, …) as a manifest would
//! set it up.

pub(crate) mod component_flags;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use nimbus_host::http::admin::Readiness;
use nimbus_host::http::{DevRouter, DynamicRouter, Router};
use nimbus_host::oci::PullPolicy;
use nimbus_host::workload::Workload;
use nimbus_host::{Host, HostConfig};
use nimbus_model::CpuLimit;
use nimbus_project::config::{Backend, DevConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `nimbus serve`.
#[derive(Args)]
pub(crate) struct ServeCommand {
    #[command(flatten)]
    pub(crate) otlp: super::OtlpArgs,
    /// A component (`.wasm`) or a workload manifest (`.yaml`).
    path: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    /// How requests pick a workload: `dev` sends everything to the newest
    /// workload, `host` routes by Host header. Default: `dev` for a single
    /// workload, `host` for several.
    #[arg(long, value_enum)]
    router: Option<RouterKind>,
    /// How long to let in-flight requests finish after Ctrl-C, in seconds.
    #[arg(long, default_value_t = 30)]
    drain_timeout: u64,
    /// Serve the web console, `/metrics`, `/healthz` and `/readyz` here
    /// (turns per-component accounting on); `off` by default.
    #[arg(long, value_name = "ADDR", default_value = "off")]
    admin_addr: super::admin::AdminAddr,
    #[command(flatten)]
    admin_token: super::admin::AdminTokenArg,
    #[command(flatten)]
    host: HostArgs,
    #[command(flatten)]
    component: component_flags::ComponentFlags,
}

/// Host settings shared by `nimbus serve` and `nimbus host`.
#[derive(Args)]
pub(crate) struct HostArgs {
    /// Directory for compiled-code cache (default: the user cache dir).
    #[arg(long, conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Do not cache compiled code on disk.
    #[arg(long)]
    no_cache: bool,
    /// Key-value backend for workloads that do not choose one: `memory`
    /// (default), a directory (keeps `keyvalue.redb` there), `redis://…` or
    /// `nats://…`.
    #[arg(long, value_name = "BACKEND", value_parser = |s: &str| nimbus_model::backends::parse_shorthand("keyvalue", s))]
    keyvalue: Option<Backend>,
    /// Blobstore backend for workloads that do not choose one: `memory`
    /// (default), a directory (objects under `blobstore/` there) or
    /// `nats://…` (JetStream object store).
    #[arg(long, value_name = "BACKEND", value_parser = |s: &str| nimbus_model::backends::parse_shorthand("blobstore", s))]
    blobstore: Option<Backend>,
    /// Messaging backend for workloads that do not choose one: `memory`
    /// (default) or `nats://…`.
    #[arg(long, value_name = "BACKEND", value_parser = |s: &str| nimbus_model::backends::parse_shorthand("messaging", s))]
    messaging: Option<Backend>,
    /// PostgreSQL server for `wasmcloud:postgres` workloads that name none:
    /// `postgres://user:password@host:port` (a workload's `database` picks
    /// the database). Kept as a secret; prefer the environment variable to
    /// keep the password off the command line.
    #[arg(
        long,
        value_name = "URL",
        env = "NIMBUS_POSTGRES_URL",
        hide_env_values = true
    )]
    postgres_url: Option<String>,
    /// Deliver a workload's outgoing HTTP request to another workload served
    /// here in memory, without TCP (its `allowedHosts` still apply).
    #[arg(long)]
    local_calls: bool,
    /// When component images are pulled for components that do not set
    /// `imagePullPolicy`: `Always`, `IfNotPresent` or `Never`.
    #[arg(long, default_value = "IfNotPresent", value_parser = |s: &str| s.parse::<PullPolicy>())]
    pull_policy: PullPolicy,
    /// Log one line per request: method, host, path, status, duration,
    /// guest CPU, peak memory and workload (turns accounting on).
    #[arg(long)]
    access_log: bool,
    /// Host component plugins: a YAML file of `plugins:`, each a component
    /// (`name`, `image`: a file or an OCI reference, `localResources`)
    /// whose exported interfaces every workload may import. Each runs as
    /// one instance in a store of its own, started afresh after a trap.
    #[arg(long, value_name = "FILE")]
    component_plugins: Option<PathBuf>,
    #[command(flatten)]
    registry: super::oci::RegistryArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Host-wide limits (docs/security.md says what each one stops).
#[derive(Args)]
pub(crate) struct LimitArgs {
    /// Most client connections open at once; more are closed on accept.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_connections: usize,
    /// Seconds a new connection has to send its first request head.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    first_request_timeout: u64,
    /// Seconds an idle keep-alive connection is kept.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    idle_timeout: u64,
    /// Most outgoing HTTP connections one component holds at once.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_outbound_connections: usize,
    /// Most outgoing HTTP connections all components hold at once.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    max_host_outbound_connections: usize,
    /// Linear memory all instances may hold together, in MiB (default:
    /// three quarters of the machine's memory).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    memory_budget_mb: Option<u64>,
    #[command(flatten)]
    cpu: CpuLimitArg,
}

/// The default CPU limit per component, shared by `nimbus serve`,
/// `nimbus host` and `nimbus dev`.
#[derive(Args)]
pub(crate) struct CpuLimitArg {
    /// CPU each component may use across its instances, for components
    /// that set no `cpuLimit`: cores (`0.5`, `2`) or millicores (`250m`).
    /// Over it a component is held at its next yield, not killed. Default:
    /// no limit.
    #[arg(long = "cpu-limit", value_name = "CORES", value_parser = |s: &str| s.parse::<CpuLimit>())]
    cpu_limit: Option<CpuLimit>,
}

impl CpuLimitArg {
    /// Sets the host's default CPU limit, when given.
    pub(crate) fn apply(&self, config: &mut HostConfig) {
        if self.cpu_limit.is_some() {
            config.limits.cpu_limit = self.cpu_limit;
        }
    }
}

impl LimitArgs {
    fn apply(&self, config: &mut HostConfig) {
        config.ingress = nimbus_host::http::IngressLimits {
            max_connections: self.max_connections.max(1),
            first_request_timeout: Duration::from_secs(self.first_request_timeout.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout.max(1)),
        };
        config.outbound = nimbus_host::outbound::OutboundLimits {
            per_component: self.max_outbound_connections,
            host: self.max_host_outbound_connections,
        };
        config.memory_budget_bytes = self.memory_budget_mb.map(|mb| mb.saturating_mul(1 << 20));
        self.cpu.apply(config);
    }
}

impl HostArgs {
    /// The host configuration these flags describe.
    pub(crate) fn config(&self) -> anyhow::Result<HostConfig> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        for (flag, choice) in [
            ("--keyvalue", &self.keyvalue),
            ("--blobstore", &self.blobstore),
        ] {
            super::check_backend_directory(flag, choice.as_ref(), &cwd)?;
        }
        // The flags are the same selections as a project's `dev:` section.
        let backends = DevConfig {
            keyvalue: self.keyvalue.clone(),
            blobstore: self.blobstore.clone(),
            messaging: self.messaging.clone(),
            postgres_url: self
                .postgres_url
                .clone()
                .map(nimbus_model::secret::Secret::new),
            ..DevConfig::default()
        };
        let mut config = HostConfig {
            plugins: backends.plugin_defaults(&cwd),
            local_workload_calls: self.local_calls,
            registry: self.registry.settings()?,
            pull_policy: self.pull_policy,
            access_log: self.access_log,
            guest_telemetry: crate::telemetry::guest_telemetry(),
            ..HostConfig::default()
        };
        if let Some(path) = &self.component_plugins {
            config.component_plugins = nimbus_model::load_component_plugins_file(path)?;
        }
        self.limits.apply(&mut config);
        if self.no_cache {
            config.cache_dir = None;
        } else if let Some(dir) = &self.cache_dir {
            config.cache_dir = Some(dir.clone());
        }
        Ok(config)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum RouterKind {
    Dev,
    Host,
}

impl ServeCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        super::block_on(self.run())
    }

    async fn run(self) -> anyhow::Result<()> {
        let limit = self.host.registry.limit.bytes();
        let workloads = load_workloads(&self.path, &self.component, limit)?;
        if self.addr.port() != 0 && self.admin_addr.0 == Some(self.addr) {
            anyhow::bail!(
                "--admin-addr {} is the address requests are served on (--addr): give the admin endpoint another port, or `off`",
                self.addr
            );
        }
        // Bound first: a port in use is reported at once, not after every
        // component has compiled.
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .with_context(|| format!("cannot listen on {}", self.addr))?;
        let kind = self.router.unwrap_or(if workloads.len() == 1 {
            RouterKind::Dev
        } else {
            RouterKind::Host
        });
        // What a first request must say to reach a workload.
        let try_hosts: Vec<String> = match kind {
            RouterKind::Dev => Vec::new(),
            RouterKind::Host => workloads.iter().filter_map(routed_host).collect(),
        };
        let router: Arc<dyn Router> = match kind {
            RouterKind::Dev => Arc::new(DevRouter::new()),
            RouterKind::Host => Arc::new(DynamicRouter::new()),
        };
        let mut config = self.host.config()?;
        config.accounting = self.admin_addr.0.is_some() || crate::telemetry::metrics_exported();
        let host = Host::new(config, router)?;
        crate::telemetry::export_metrics(host.metrics());
        let readiness = Readiness::default();
        let admin = super::admin::AdminOptions {
            addr: self.admin_addr,
            token: &self.admin_token,
            cluster: None,
            fall_back_to_free_port: false,
        };
        super::admin::start(admin, &host, &readiness).await?;
        for workload in workloads {
            let id = workload.id();
            let status = host
                .start_workload(workload)
                .await
                .with_context(|| format!("cannot start workload `{id}`"))?;
            for component in &status.components {
                let http = component.http.map(|k| {
                    format!(
                        " (wasi:http {})",
                        serde_json::to_value(k)
                            .unwrap_or_default()
                            .as_str()
                            .unwrap_or("")
                    )
                });
                eprintln!(
                    "started {id}: component `{}` {}{}",
                    component.name,
                    component.digest,
                    http.unwrap_or_default()
                );
            }
        }
        let addr = listener.local_addr()?;
        let signal = super::shutdown_signal();
        readiness.set(true);
        outln!("Serving on http://{addr}/")?;
        match try_hosts.first() {
            None => outln!("Try: curl http://{addr}/")?,
            // Routed by Host: a bare curl would find no workload.
            Some(host) => outln!("Try: curl -H 'Host: {host}' http://{addr}/")?,
        }
        let drain = Duration::from_secs(self.drain_timeout);
        let shutdown = super::admin::not_ready_after(signal, readiness);
        let drained = nimbus_host::http::serve(listener, host, shutdown, drain).await?;
        if drained {
            eprintln!("stopped");
        } else {
            eprintln!(
                "stopped; some requests did not finish within {}s",
                self.drain_timeout
            );
        }
        Ok(())
    }
}

/// The `Host` a workload is routed by (its `wasi:http` entry's `host`).
fn routed_host(workload: &Workload) -> Option<String> {
    workload
        .spec
        .host_interfaces
        .iter()
        .find(|i| i.is("wasi", "http"))
        .and_then(|i| i.config.get("host"))
        .filter(|host| !host.is_empty() && !host.contains('*'))
        .cloned()
}

/// A component file becomes a one-component workload, set up by `flags`
/// and read at most `limit` bytes (`--max-component-mb`, the cap the host
/// applies to it again when it starts); anything else must be a manifest,
/// and then `flags` must be unset.
fn load_workloads(
    path: &Path,
    flags: &component_flags::ComponentFlags,
    limit: u64,
) -> anyhow::Result<Vec<Workload>> {
    let metadata =
        std::fs::metadata(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    anyhow::ensure!(
        metadata.is_file(),
        "`{}` is not a regular file",
        path.display()
    );
    // Sniffed without blocking, should the file become a FIFO meanwhile.
    let is_wasm = nimbus_model::files::is_wasm_file(path);
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if is_wasm || extension == "wasm" {
        super::read_component(path, limit)?;
        let absolute = std::fs::canonicalize(path)
            .with_context(|| format!("cannot resolve `{}`", path.display()))?;
        let name = sanitize_name(
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("component"),
        );
        let image = format!("file://{}", absolute.display());
        let mut workload = Workload::single_http_component("default", &name, &image, "localhost");
        flags.apply(&mut workload.spec)?;
        return Ok(vec![workload]);
    }
    if !matches!(extension, "yaml" | "yml" | "json") {
        bail!(
            "`{}` is neither a WebAssembly component (.wasm) nor a workload manifest (.yaml)",
            path.display()
        );
    }
    if let Some((flag, field)) = flags.first_given() {
        bail!(
            "{flag} applies only when serving a component file; with a manifest, set it in the manifest ({field})"
        );
    }
    let documents = super::read_manifest(path)?;
    Ok(documents.into_iter().map(|d| d.workload).collect())
}

fn sanitize_name(stem: &str) -> String {
    let name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() {
        "component".into()
    } else {
        name
    }
}
