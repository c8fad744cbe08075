#!/usr/bin/env bash
# Runs every cargo-fuzz target in crates/fuzz for a while each and reports
# what it found. Usage: bench/fuzz.sh [SECONDS_PER_TARGET] (default 120);
# FUZZ_TARGETS="component ingress" runs only those.
#
# cargo-fuzz needs nightly flags; on a stable toolchain RUSTC_BOOTSTRAP=1
# lets it pass them. Findings land in crates/fuzz/artifacts/<target>/;
# replay one with `cargo run -p nimbus-fuzz --bin <target> -- FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
targets=(${FUZZ_TARGETS:-manifest project_config dotenv component host_api ingress})
# Real components make the loader's corpus start past the magic bytes: the
# test guests, when a test build has made them.
guests=target/guests/wasm32-wasip2/release
if compgen -G "$guests/*.wasm" >/dev/null; then
    mkdir -p crates/fuzz/corpus/component
    cp "$guests"/*.wasm crates/fuzz/corpus/component/
fi
for target in "${targets[@]}"; do
    echo "==> $target for ${seconds}s"
    mkdir -p "crates/fuzz/corpus/$target"
    if cargo fuzz run --fuzz-dir crates/fuzz --sanitizer none "$target" \
        "crates/fuzz/corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=4096 \
        -timeout=10 2>&1 | tail -n 3; then
        echo "$target: no finding"
    else
        echo "$target: FINDING (see crates/fuzz/artifacts/$target/)"
    fi
done
