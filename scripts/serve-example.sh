#!/usr/bin/env bash
# Builds the bundled examples/http-hello-world component and serves it with
# `nimbus serve` on the embedded defaults at http://127.0.0.1:8000/.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi
cargo build --quiet --release --target wasm32-wasip2 --manifest-path examples/http-hello-world/Cargo.toml
# The lean build in the build-time profile: serving the example needs no
# registry, backend client or exporter, nor fully optimised dependencies;
# both cut a cold first run (docs/BENCHMARKS.md).
cargo build --quiet -p nimbus-cli --no-default-features --profile first-run
exec target/first-run/nimbus serve examples/http-hello-world/workload.yaml --addr "${NIMBUS_ADDR:-127.0.0.1:8000}"
