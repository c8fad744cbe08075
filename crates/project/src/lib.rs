//! Nimbus projects: what `nimbus build`, `nimbus dev` and `nimbus config`
//! read and do.
//!
//! # Layout
//! - [`config`]: `.nimbus/config.yaml` (or wash's `.wash/config.yaml`, read
//!   as wash reads it) merged over the user's config; errors with file and
//!   line, warnings for keys that have no effect here.
//! - [`sources`]: named `configs:` / `secrets:` sources (inline, file,
//!   directory, environment) and the guardrails around secret files.
//! - [`component_build`]: running the build and finding the component.
//! - [`toolchain`]: what a TypeScript or Python build needs installed first.
//! - [`local`]: the projects a dev workload is built from (the project and
//!   the components that name a `project`).
//! - [`workload`]: the workload a project runs as under `nimbus dev`.

pub mod component_build;
pub mod config;
pub mod local;
pub mod sources;
pub mod toolchain;
pub mod workload;
