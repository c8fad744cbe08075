//! Observing what a host runs: what each component costs and does
//! ([`metrics`]: the Prometheus registry, each component's series, the
//! thread-CPU meter around guest polls, per-request usage) and the spans a
//! request leaves ([`trace`]: `request` → `component` → `plugin` /
//! `outbound`, with W3C trace context in and out).
//!
//! No engine here: the runtime drives the stores and reports into these
//! types (its store limiter reports memory, its dispatcher runs workers
//! inside [`metrics::Metered`]).

pub mod metrics;
pub mod trace;
