//! Guest components for Nimbus's tests.
//!
//! `build.rs` compiles the Rust programs in `guests/src/bin/` (their own cargo
//! workspace) for `wasm32-wasip2`, which produces components directly, and
//! this crate exposes the path of each: one `&str` constant per guest (named
//! after the binary, upper-cased, e.g. [`P2_HELLO`]), [`ALL`] as
//! `(name, path)` pairs and the [`foreach_guest!`] macro.
//!
//! Building this crate needs the guest target:
//! `rustup target add wasm32-wasip2`.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

pub mod otlp;
pub mod servers;
pub mod tls_echo;
pub mod wit;

/// A bench's `--name VALUE` option from the command line, or `default`
/// (`cargo bench` passes its own flags, which are ignored).
pub fn bench_arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
