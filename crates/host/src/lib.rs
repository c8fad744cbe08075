//! The Nimbus host: what ties the runtime, the plugins and the network
//! together into something that serves workloads.
//!
//! # Layout
//!
//! - [`host`]: [`Host`]: starting, replacing and stopping workloads,
//!   routing a request to one, and turning a spec into a running workload
//!   (`host::prepare`: reading, compiling, linking, binding plugins, the
//!   middleware chain, the service).
//! - [`plugins`]: the one registration point of the capabilities
//!   (`plugins::builtin`) and the registry that finds a component's plugins.
//! - [`graph`]: a workload's wiring as a picture.
//! - [`http`]: the ingress server, the access log and the admin endpoint,
//!   with the runtime's routers and bodies.
//!
//! The runtime's modules are re-exported here at the paths they have in
//! `nimbus-runtime`, so a user of the host needs no other crate.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use nimbus_host::{Host, HostConfig, http::DevRouter};
//! use std::sync::Arc;
//!
//! let host = Host::new(HostConfig::default(), Arc::new(DevRouter::new()))?;
//! for doc in nimbus_host::workload::load_manifest_file("workload.yaml".as_ref())?.documents {
//!     host.start_workload(doc.workload).await?;
//! }
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! nimbus_host::http::serve(listener, host, async { let _ = tokio::signal::ctrl_c().await; },
//!     std::time::Duration::from_secs(30)).await?;
//! # Ok(()) }
//! ```

pub mod graph;
pub mod host;
pub mod http;
pub mod plugins;

pub use host::{Host, HostConfig, HostError, WorkloadError, WorkloadLoad};
// The runtime's modules, where the host's users have always found them.
pub use nimbus_runtime::{
    artifact, compose, engine, files, guest_output, limits, loopback, metrics, oci, outbound,
    secret, trace, wasi, workload,
};
