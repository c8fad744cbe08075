#!/usr/bin/env bash
# Soak: nimbus for a long while at 80% of its measured maximum req/s, with
# hostile guests and clients beside the good load (bench/soak.py says which).
#
#   bash bench/soak.sh [--duration SECS] [--no-docs]
#
# Builds nimbus (release) and the test guests, runs bench/soak.py, and writes
# its report into docs/BENCHMARKS.md between `<!-- soak:begin -->` and
# `<!-- soak:end -->` (not with --no-docs). Default duration: 600 s.
# BENCH_NIMBUS_BIN=PATH uses that nimbus binary instead of building one.
# Exit status 1 when a check fails (a good request failed, RSS or
# descriptors grew, the host did not come back). Needs cargo, wrk, python3.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

duration=600
docs=(--docs docs/BENCHMARKS.md)
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration=${2:?--duration needs a value}; shift ;;
        --duration=*) duration=${1#*=} ;;
        --no-docs) docs=() ;;
        -h|--help) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; exit 0 ;;
        *) echo "error: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[[ "$duration" =~ ^[1-9][0-9]*$ ]] || { echo "error: --duration must be whole seconds (got \`$duration\`)" >&2; exit 2; }
for tool in cargo wrk python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "error: \`$tool\` is required but not on PATH" >&2; exit 1; }
done

target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
echo "==> building the guests (cargo build -p test-programs)" >&2
cargo build -p test-programs
if [ -n "${BENCH_NIMBUS_BIN:-}" ]; then
    nimbus_bin=$BENCH_NIMBUS_BIN
else
    echo "==> building nimbus, release profile" >&2
    cargo build --release -p nimbus-cli
    nimbus_bin="$target_dir/release/nimbus"
fi
exec python3 bench/soak.py --nimbus "$nimbus_bin" \
    --guests "$target_dir/guests/wasm32-wasip2/release" --duration "$duration" "${docs[@]}"
