//! Host capabilities a workload's components import, one folder each.
//!
//! `config` serves `wasi:config/store@0.2.0-rc.1` from the workload's
//! configuration (literal values, named config sources, named secret
//! sources).

pub mod config;
