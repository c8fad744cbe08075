//! The runtime's integration tests, in one test binary: one link against
//! wasmtime instead of one per file, which a cold CI build feels. nextest
//! still runs every test in a process of its own.

mod common;

mod accounting;
mod bad_components;
mod compose;
mod config;
mod hardening;
mod http;
mod keyvalue;
mod links;
mod local_calls;
mod middleware;
mod oci;
mod plugins;
mod service;
