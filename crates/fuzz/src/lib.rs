//! The fuzz targets: each feeds arbitrary bytes to one place where input
//! from outside enters Nimbus, and must return (an error is fine) without
//! a panic, a hang or unbounded memory.
//!
//! `fuzz_targets/*.rs` wrap these for `cargo fuzz` (bench/fuzz.sh builds
//! and runs them for minutes, the only build with `--cfg fuzzing`); the test
//! suite builds their replay `main`s and runs hostile seeds through the same
//! functions, so every target's function builds and runs in CI.

use std::path::Path;
use std::sync::OnceLock;

/// A workload manifest (YAML, several documents).
pub fn manifest(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = nimbus_host::workload::parse_manifest(text);
    }
}

/// A project config (`.nimbus/config.yaml` or `.wash/config.yaml`).
pub fn project_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = nimbus_project::config::parse_config(text, Path::new("config.yaml"));
    }
}

/// A config or secrets file of `KEY=VALUE` lines.
pub fn dotenv(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = nimbus_project::sources::parse_values(text, Path::new("values.env"));
    }
}

/// Component bytes through the checks every image passes before compiling.
pub fn component(data: &[u8]) {
    let _ = nimbus_host::artifact::validate_component_bytes(data);
}

/// A host-API start request as a NATS peer sends it, through the same
/// decoding and validation the agent applies.
pub fn host_api(data: &[u8]) {
    if let Ok(request) = serde_json::from_slice::<nimbus_cluster::api::WorkloadStartRequest>(data) {
        let _ = nimbus_host::workload::validate_workload(&request.workload, "spec");
        let _ = request.workload.id();
    }
}

/// Raw bytes from a client on one ingress connection: HTTP/1.1 parsing,
/// routing, and the host's answer (a host with no workloads).
pub fn ingress(data: &[u8]) {
    let (runtime, host) = ingress_host();
    let data = bytes::Bytes::copy_from_slice(data);
    runtime.block_on(async move {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let service = hyper::service::service_fn(move |request| {
            let host = host.clone();
            async move { Ok::<_, std::convert::Infallible>(host.handle(request).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(server), service);
        let feed = async move {
            use tokio::io::AsyncWriteExt as _;
            let _ = client.write_all(&data).await;
            let _ = client.shutdown().await;
            // Drain the answer so the server never blocks on a full pipe.
            let mut sink = tokio::io::sink();
            let _ = tokio::io::copy(&mut client, &mut sink).await;
        };
        let bounded = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            tokio::join!(connection, feed)
        });
        let _ = bounded.await;
    });
}

fn ingress_host() -> (&'static tokio::runtime::Runtime, nimbus_host::Host) {
    static HOST: OnceLock<(tokio::runtime::Runtime, nimbus_host::Host)> = OnceLock::new();
    let (runtime, host) = HOST.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let config = nimbus_host::HostConfig {
            cache_dir: None,
            engine: nimbus_host::engine::EngineConfig {
                pooling: nimbus_host::engine::PoolingMode::Off,
                ..Default::default()
            },
            ..Default::default()
        };
        let router = std::sync::Arc::new(nimbus_host::http::DynamicRouter::new());
        let host = runtime
            .block_on(async { nimbus_host::Host::new(config, router) })
            .expect("a host");
        (runtime, host)
    });
    (runtime, host.clone())
}

/// Runs `target` over every file named on the command line (a crash
/// found by `cargo fuzz`, say); exit status 0 when all returned.
pub fn replay_args(target: fn(&[u8])) -> std::process::ExitCode {
    let mut failed = false;
    for path in std::env::args_os().skip(1) {
        match nimbus_host::files::read_bounded_blocking(Path::new(&path), 64 << 20) {
            Ok(bytes) => target(&bytes),
            Err(error) => {
                eprintln!("{error}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
