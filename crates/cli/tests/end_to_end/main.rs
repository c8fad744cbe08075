//! The `nimbus` command end to end, in one test binary (one link instead of
//! one per file; nextest still runs every test in a process of its own).
//! `bench_smoke` stays a binary of its own: nextest runs it alone.

mod common;

mod cli;
mod cluster;
mod compose;
mod config;
mod console;
mod dev;
mod golden;
mod graph;
mod languages;
mod observability;
mod oci;
mod serve;
mod telemetry;
mod wit;
