//! The Nimbus runtime: run WebAssembly components (WASI P2 and P3) as HTTP
//! services, fast and fenced.
//!
//! # Layout
//!
//! - [`engine`]: the wasmtime engine (pooling allocator, copy-on-write
//!   images, one epoch ticker thread).
//! - [`artifact`]: component bytes → compiled component, de-duplicated by
//!   sha256 and cached on disk.
//! - [`workload`]: a running workload and its instance management (the
//!   model it runs, spec and manifests, is `nimbus-model`'s, re-exported
//!   here).
//! - [`files`]: bounded reads of user-named files (regular files only),
//!   async.
//! - [`guest_output`]: guests' stdout and stderr, into the log, bounded.
//! - [`oci`]: components pushed to and pulled from OCI registries (Wasm
//!   artifact layout), with a content-addressed cache.
//! - [`compose`]: a workload's links made ahead of time, as one component.
//! - [`limits`]: memory, deadline and concurrency limits per component.
//! - [`loopback`]: a workload's virtual loopback network (`wasi:sockets`
//!   TCP that never leaves the workload).
//! - [`wasi`]: the shared linker and each component's WASI context.
//! - [`outbound`]: the outbound HTTP policy and vetted sender.
//! - [`metrics`]: what each component costs (guest CPU, linear memory,
//!   instances, requests), as Prometheus text (`nimbus-observe`'s, plus the
//!   store limiter that reports memory); [`trace`]: request spans.
//! - [`http`]: the ingress server and the routers.
//! - [`graph`]: a workload's wiring as a picture.
//! - [`plugins`]: the host capabilities components import.
//! - [`host`]: [`Host`], which ties these together.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use nimbus_runtime::{Host, HostConfig, http::DevRouter};
//! use std::sync::Arc;
//!
//! let host = Host::new(HostConfig::default(), Arc::new(DevRouter::new()))?;
//! for doc in nimbus_runtime::workload::load_manifest_file("workload.yaml".as_ref())? {
//!     host.start_workload(doc.workload).await?;
//! }
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! nimbus_runtime::http::serve(listener, host, async { let _ = tokio::signal::ctrl_c().await; },
//!     std::time::Duration::from_secs(30)).await?;
//! # Ok(()) }
//! ```

pub mod artifact;
#[cfg(test)]
mod compiled_out_tests;
pub mod compose;
pub mod engine;
pub mod files;
pub mod graph;
pub mod guest_output;
pub mod host;
pub mod http;
pub mod limits;
pub mod loopback;
pub mod metrics;
pub mod oci;
pub mod outbound;
pub mod plugins;
pub mod wasi;
pub mod workload;

pub use host::{Host, HostConfig, HostError, WorkloadError};
// The model's modules, where the runtime's users have always found them.
pub use nimbus_model::secret;
pub use nimbus_observe::trace;
