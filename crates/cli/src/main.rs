//! The `nimbus` command: argument parsing and dispatch only; each
//! subcommand lives in its own module under `commands/`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// `println!` whose failure is an error to return, not a panic: a reader
/// that stops early (`nimbus inspect app.wasm | head`) ends the command
/// quietly (see [`main`]).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err($crate::StdoutError)
    }};
}

/// `print!` as [`outln!`] is `println!`.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*).map_err($crate::StdoutError)
    }};
}

/// Writing to standard output failed (typed, so that only our own output
/// going nowhere is taken for a reader that left).
#[derive(Debug)]
struct StdoutError(std::io::Error);

impl std::fmt::Display for StdoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write to standard output: {}", self.0)
    }
}

impl std::error::Error for StdoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

mod commands;
mod error_line;
mod hint;
mod telemetry;

// Per-request instantiation and hyper's buffers allocate small objects on
// every request; mimalloc's thread-local free lists cut that cost (measured in
// docs/BENCHMARKS.md) compared with glibc malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Run WebAssembly components as HTTP services.
#[derive(Parser)]
#[command(
    name = "nimbus",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("NIMBUS_GIT_REVISION"), ")"),
    about,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Export traces, metrics and logs over OTLP (also accepted after
    /// `serve`, `dev`, `host` and `controller`, the commands that export).
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Start a project from a template.
    New(commands::new::NewCommand),
    /// Build the project's component.
    Build(commands::build::BuildCommand),
    /// Build, serve, and rebuild and reload on every change.
    Dev(commands::dev::DevCommand),
    /// Show or check the project config.
    Config(commands::config::ConfigCommand),
    /// Serve a component or a workload manifest over HTTP.
    Serve(Box<commands::serve::ServeCommand>),
    /// Show a component's imports and exports.
    Inspect(commands::inspect::InspectCommand),
    /// Draw how a workload's components, middleware and plugins are wired.
    Graph(commands::graph::GraphCommand),
    /// Link a workload's components ahead of time into one component.
    Compose(commands::compose::ComposeCommand),
    /// Push a component to an OCI registry.
    Push(commands::oci::PushCommand),
    /// Pull a component from an OCI registry.
    Pull(commands::oci::PullCommand),
    /// Join a cluster: serve HTTP and run what the controller places here.
    Host(Box<commands::cluster::host::HostCommand>),
    /// Run the cluster's reconciler (several may run; one leads).
    Controller(commands::cluster::controller::ControllerCommand),
    /// Store Workloads, WorkloadDeployments and WorkloadReplicaSets as the cluster's desired state.
    Apply(commands::cluster::apply::ApplyCommand),
    /// List hosts, workloads, deployments or replica sets.
    Get(commands::cluster::get::GetCommand),
    /// Show one deployment, workload or host in full, with its events.
    ///
    /// A deployment or workload: its spec in short, its status, where each
    /// replica runs (and each host's HTTP address), and its recent events:
    /// where the controller placed, resized, updated or removed replicas,
    /// and what failed and why (no live host matching the hostSelector, a
    /// host that failed or rejected a start, with the host's error, a host
    /// lost). A host (by id): its heartbeat (labels, address, capacity),
    /// the workloads it runs against desired state, and the events that
    /// name it.
    Describe(commands::cluster::describe::DescribeCommand),
    /// Print a deployment's or workload's events as log lines.
    ///
    /// One line per event the controller recorded for it, oldest first
    /// (it keeps the last 20): `TIME TYPE REASON: MESSAGE`, followed by
    /// `(xN since FIRST)` for one that happened N times. They say where
    /// replicas were placed, resized, updated or removed, and what failed:
    /// no live host matching the hostSelector, a host that failed or
    /// rejected a start (with the host's error), a host lost. With
    /// --follow, new events as they are recorded.
    ///
    /// Guest output (components' stdout and stderr) is not collected by
    /// the cluster: each host writes it to its own log (its stderr, and
    /// OTLP with --otlp-endpoint), tagged with the workload and component;
    /// a host also logs there why a start failed.
    Logs(commands::cluster::logs::LogsCommand),
    /// Remove a workload, deployment or replica set from desired state.
    Delete(commands::cluster::apply::DeleteCommand),
    /// Set how many replicas a deployment or replica set wants.
    Scale(commands::cluster::scale::ScaleCommand),
    /// Follow, undo or list a deployment's rollouts.
    ///
    /// A changed template rolls host by host (`deployPolicy:
    /// RollingUpdate`, the default; `spec.rollingUpdate.maxUnavailable`
    /// and `maxSurge` say how many replicas move at once), each host's new
    /// version serving before the next host moves. A template that fails
    /// to start stops the rollout; the hosts not yet moved keep serving the
    /// previous one.
    Rollout(commands::cluster::rollout::RolloutCommand),
    /// Watch what each workload's components cost, live, from a host's
    /// admin endpoint.
    Top(commands::top::TopCommand),
    /// Fetch the WIT packages a project uses (`nimbus wit fetch`).
    Wit(commands::wit::WitCommand),
    /// Print a shell completion script (`nimbus completions bash >
    /// ~/.local/share/bash-completion/completions/nimbus`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Errors capture no backtrace unless `RUST_LIB_BACKTRACE` asks for one.
///
/// wasmtime makes errors on every instance teardown (its fibers and
/// futures are dropped with one), and under `RUST_BACKTRACE=1` each
/// captured a backtrace: 6% of a fresh-instance request's CPU. Panics keep
/// theirs (`RUST_BACKTRACE` still governs them), and our errors are shown
/// as one line, never with a backtrace.
#[allow(unsafe_code)]
fn quiet_error_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: the first statement of `main`, before any thread exists
        // to read the environment.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}

impl Command {
    /// The `--otlp-endpoint` given after the command, for those that export.
    fn otlp_endpoint(&self) -> Option<&str> {
        let otlp = match self {
            Command::Serve(cmd) => &cmd.otlp,
            Command::Dev(cmd) => &cmd.otlp,
            Command::Host(cmd) => &cmd.otlp,
            Command::Controller(cmd) => &cmd.otlp,
            _ => return None,
        };
        otlp.otlp_endpoint.as_deref()
    }
}

fn main() -> ExitCode {
    quiet_error_backtraces();
    let cli = Cli::parse();
    let endpoint = cli
        .command
        .otlp_endpoint()
        .or(cli.otlp_endpoint.as_deref())
        .map(str::to_string);
    let log = match &cli.command {
        Command::Dev(dev) => telemetry::LogOptions {
            file: dev.log_file.clone(),
            verbosity: Some(dev.verbosity()),
        },
        _ => telemetry::LogOptions::default(),
    };
    let telemetry = match telemetry::init(endpoint.as_deref(), log) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("error: {}", error_line::with_hint(&error));
            return ExitCode::FAILURE;
        }
    };
    // Two TLS providers are linked (ring, ours; aws-lc-rs, the WIT package
    // client's); with no process default, a client built without naming one
    // would fail. Ring, as everywhere else in Nimbus.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Connection caps are sized for more descriptors than the usual soft
    // limit of 1024; servers raise it to the hard limit at start.
    nimbus_host::limits::raise_descriptor_limit();
    let result = match cli.command {
        Command::New(cmd) => cmd.execute(),
        Command::Build(cmd) => cmd.execute(),
        Command::Dev(cmd) => cmd.execute(),
        Command::Config(cmd) => cmd.execute(),
        Command::Serve(cmd) => cmd.execute(),
        Command::Inspect(cmd) => cmd.execute(),
        Command::Graph(cmd) => cmd.execute(),
        Command::Compose(cmd) => cmd.execute(),
        Command::Push(cmd) => cmd.execute(),
        Command::Pull(cmd) => cmd.execute(),
        Command::Host(cmd) => cmd.execute(),
        Command::Controller(cmd) => cmd.execute(),
        Command::Apply(cmd) => cmd.execute(),
        Command::Get(cmd) => cmd.execute(),
        Command::Describe(cmd) => cmd.execute(),
        Command::Logs(cmd) => cmd.execute(),
        Command::Delete(cmd) => cmd.execute(),
        Command::Scale(cmd) => cmd.execute(),
        Command::Rollout(cmd) => cmd.execute(),
        Command::Top(cmd) => cmd.execute(),
        Command::Wit(cmd) => cmd.execute(),
        Command::Completions { shell } => completions(shell),
    };
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`| head`): what it wanted it has; no error.
        Err(error) if closed_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, the whole context chain, and never a backtrace.
            eprintln!("error: {}", error_line::with_hint(&error));
            ExitCode::FAILURE
        }
    }
}

/// Writes the completion script for `shell` to stdout.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    use clap::CommandFactory as _;
    // Generated into memory first: the generator panics on a failed write.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "nimbus", &mut script);
    out!("{}", String::from_utf8_lossy(&script))?;
    Ok(())
}

/// Whether `error` is our output going to a pipe whose reader has gone (a
/// broken pipe elsewhere, to a broker or a child process, is a failure).
fn closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<StdoutError>()
            .is_some_and(|e| e.0.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    /// Clap's own checks of the whole command line: no two arguments of a
    /// command share an id or a flag (a flattened group could add one).
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
