#!/usr/bin/env bash
# Instruction counts of the hot path pieces (bench/instructions, gungraun over
# callgrind): router lookup, P2 instantiation from pre, and one whole request
# through Host::handle for P2 (fresh instance) and P3 (reused instance).
#
#   bash bench/instructions.sh [gungraun args...]
#
# Needs valgrind. Installs gungraun-runner at the version Cargo.lock pins for
# the gungraun library into bench/.tools (cached between runs). Counts are
# deterministic for one binary and input: compare them before and after a
# change on the same machine. Reports land in target/gungraun.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

command -v valgrind >/dev/null 2>&1 ||
    { echo "error: valgrind is required (apt-get install valgrind)" >&2; exit 1; }

version=$(awk '/^name = "gungraun"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
[ -n "$version" ] || { echo "error: gungraun is not in Cargo.lock" >&2; exit 1; }
tools="$ROOT/bench/.tools"
runner="$tools/bin/gungraun-runner"
if ! { [ -x "$runner" ] && "$runner" --version 2>/dev/null | grep -qF "$version"; }; then
    echo "installing gungraun-runner $version into bench/.tools ..." >&2
    cargo install --locked "gungraun-runner@$version" --root "$tools"
fi

GUNGRAUN_RUNNER="$runner" exec cargo bench -p instruction-bench --bench instructions -- "$@"
