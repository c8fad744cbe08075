//! The Nimbus runtime: the machinery that runs WebAssembly components (WASI
//! P2 and P3) fast and fenced, below the host that ties it together.
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
//! - [`http`]: the routers and the bodies a workload answers with.
//! - `gpu` (the `webgpu` feature): the store's side of `wasi:webgpu`.
//!
//! The host on top (`nimbus-host`: `Host`, workload preparation, the plugin
//! registry, the ingress server) puts these together; the capabilities
//! reach the store only through the plugin API (`nimbus-plugin`), which
//! [`wasi::StoreState`] implements.

pub mod artifact;
#[cfg(test)]
mod compiled_out_tests;
pub mod compose;
pub mod engine;
pub mod files;
#[cfg(feature = "webgpu")]
mod gpu;
pub mod guest_output;
pub mod http;
pub mod limits;
pub mod loopback;
pub mod metrics;
pub mod oci;
pub mod outbound;
pub mod wasi;
pub mod workload;

// The model's modules, where the runtime's users have always found them.
pub use nimbus_model::secret;
pub use nimbus_observe::trace;
