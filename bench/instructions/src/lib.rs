//! Empty on purpose: this crate exists for its instruction-count bench
//! (`benches/instructions.rs`), run by `bash bench/instructions.sh`.
