#!/usr/bin/env bash
# nimbus vs `wasmtime serve` vs a native hyper server, under the same wrk load
# in one run on one machine.
#
#   bash bench/compare.sh [--rounds 3] [--connections 32] [--duration 10s] [--threads 1]
#   bash bench/compare.sh --smoke [--duration 2s]  # CI: dev builds, 1 round, no install, no docs
#   bash bench/compare.sh --only p3lean[,p2,...]   # those workloads only; prints, no docs
#
# Workloads: `p2` (crates/test-programs' P2 hello guest, one instance per
# request), `p3` (its P3 hello guest, instances reused) and `p3lean` (its
# leanest P3 hello, `p3_lean`: no request, environment or header work, so
# the host's per-request path is what is measured). Contestants:
#   nimbus          `nimbus serve GUEST` (accounting off, serve's default)
#   nimbus accounting  the same with an admin listener, so accounting on
#   wasmtime serve  wasmtime-cli at the version Cargo.toml pins for wasmtime,
#                   installed into bench/.tools (flags: wasmtime_flags_* below)
#   native          bench/native-hello, hyper with no WebAssembly at all
# For each workload the contestants alternate A B C A B C ... for N rounds;
# each round starts a fresh server, checks one response, warms it up for 1 s,
# runs `wrk --latency` and stops the server. With two or more CPUs, wrk is
# pinned to the first CPU this process may use and the server to the second.
# The medians go to stdout as markdown tables and (not with --smoke) into
# docs/BENCHMARKS.md between `<!-- compare:begin -->` and `<!-- compare:end -->`.
# Progress goes to stderr. Needs cargo, wrk, python3 (and taskset to pin).
#
# BENCH_NIMBUS_BIN=PATH uses that nimbus binary instead of building
# nimbus-cli (crates/cli/tests/bench_smoke.rs passes the one cargo built for
# the tests: building `-p nimbus-cli` alone resolves dependency features
# differently from the test build, so it would recompile part of the tree and
# replace target/debug/nimbus under the tests that run after it).
# BENCH_WASMTIME_BIN=PATH serves the wasmtime contestant with that binary
# (it must report the pinned version) instead of installing one into
# bench/.tools: for instance a wasmtime-cli built with the same LTO settings
# as nimbus's release profile, to see what the compiler settings alone buy.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

usage() {
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}

smoke=0
rounds=""
connections=32
duration=""
threads=1
only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) smoke=1 ;;
        --only) only=${2:?--only needs a value}; shift ;;
        --only=*) only=${1#*=} ;;
        --rounds) rounds=${2:?--rounds needs a value}; shift ;;
        --rounds=*) rounds=${1#*=} ;;
        --connections) connections=${2:?--connections needs a value}; shift ;;
        --connections=*) connections=${1#*=} ;;
        --duration) duration=${2:?--duration needs a value}; shift ;;
        --duration=*) duration=${1#*=} ;;
        --threads) threads=${2:?--threads needs a value}; shift ;;
        --threads=*) threads=${1#*=} ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$smoke" = 1 ]; then
    rounds=${rounds:-1}
    duration=${duration:-2s}
else
    rounds=${rounds:-3}
    duration=${duration:-10s}
fi
# wrk reads a bare number as seconds; say so.
[[ "$duration" =~ ^[0-9]+$ ]] && duration="${duration}s"
[[ "$duration" =~ ^[1-9][0-9]*[smh]$ ]] || { echo "error: --duration must look like 10 or 10s (got \`$duration\`)" >&2; exit 2; }
for pair in "rounds:$rounds" "connections:$connections" "threads:$threads"; do
    [[ "${pair#*:}" =~ ^[1-9][0-9]*$ ]] || { echo "error: --${pair%%:*} must be a positive integer (got \`${pair#*:}\`)" >&2; exit 2; }
done
[ "$threads" -le "$connections" ] || { echo "error: wrk needs --connections >= --threads" >&2; exit 2; }
workloads=(p2 p3 p3lean)
if [ -n "$only" ]; then
    IFS=, read -r -a workloads <<<"$only"
    for w in "${workloads[@]}"; do
        case "$w" in
            p2|p3|p3lean) ;;
            *) echo "error: --only takes p2, p3 and p3lean, comma-separated (got \`$w\`)" >&2; exit 2 ;;
        esac
    done
fi

source "$ROOT/bench/lib.sh"
require_tools cargo wrk python3

# ---------------------------------------------------------------- cleanup
work=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-compare.XXXXXX")
server_pid=""
wrk_pid=""
finished=0


cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$wrk_pid" ]; then
        kill -TERM "$wrk_pid" 2>/dev/null || true
    fi
    stop_pid "$server_pid"
    if [ "$finished" = 1 ]; then
        rm -rf "$work"
    else
        log "bench/compare.sh failed (exit $status); logs and wrk output kept in $work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- wasmtime
# The wasmtime version every wasmtime-* crate is pinned to in Cargo.toml.
wasmtime_version=$(python3 - Cargo.toml <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r'^wasmtime\s*=\s*\{[^}]*?\bversion\s*=\s*"=?([0-9][^"]*)"', text, re.M | re.S)
if not m:
    sys.exit("error: cannot find the pinned `wasmtime = { version = ... }` in Cargo.toml")
print(m.group(1))
EOF
)
tools="$ROOT/bench/.tools"
wasmtime_bin="${BENCH_WASMTIME_BIN:-$tools/bin/wasmtime}"
installed_wasmtime() {
    # `wasmtime --version` prints e.g. `wasmtime 48.0.8 (abc123 2025-01-01)`.
    [ -x "$wasmtime_bin" ] && "$wasmtime_bin" --version 2>/dev/null | awk '{print $2; exit}'
}
# Checked before the builds, so that a wrong binary fails in seconds, not
# after a release build.
if [ -n "${BENCH_WASMTIME_BIN:-}" ]; then
    if [ "$(installed_wasmtime || true)" != "$wasmtime_version" ]; then
        echo "error: BENCH_WASMTIME_BIN=$wasmtime_bin does not report wasmtime $wasmtime_version" >&2
        exit 1
    fi
    wasmtime_build="\`$wasmtime_bin\` (BENCH_WASMTIME_BIN)"
else
    wasmtime_build="installed by \`cargo install --locked\` with wasmtime's own release profile (lto = false, codegen-units = 16)"
fi

# ---------------------------------------------------------------- builds
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

# The release profile's code generation settings, as cargo resolves them from
# Cargo.toml and the CARGO_PROFILE_RELEASE_* variables, for the report.
release_profile_settings() {
    python3 - <<'PY'
import os, tomllib
release = tomllib.load(open("Cargo.toml", "rb")).get("profile", {}).get("release", {})
lto = os.environ.get("CARGO_PROFILE_RELEASE_LTO", release.get("lto", "false (thin-local)"))
units = os.environ.get("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", release.get("codegen-units", 16))
print(f"lto = {lto}, codegen-units = {units}")
PY
}

log "==> building the guests (cargo build -p test-programs)"
cargo build -p test-programs
guests="$target_dir/guests/wasm32-wasip2/release"
if [ "$smoke" = 1 ]; then
    profile=dev
    profile_args=()
    bin_dir="$target_dir/debug"
else
    profile=release
    profile_args=(--release)
    bin_dir="$target_dir/release"
fi
if [ -n "${BENCH_NIMBUS_BIN:-}" ]; then
    log "==> building native-hello, $profile profile; nimbus is $BENCH_NIMBUS_BIN (BENCH_NIMBUS_BIN)"
    cargo build "${profile_args[@]}" -p native-hello
    nimbus_bin=$BENCH_NIMBUS_BIN
    nimbus_build="\`$nimbus_bin\` (BENCH_NIMBUS_BIN)"
else
    log "==> building nimbus and native-hello, $profile profile"
    cargo build "${profile_args[@]}" -p nimbus-cli -p native-hello
    nimbus_bin="$bin_dir/nimbus"
    nimbus_build="$profile profile"
    if [ "$profile" = release ]; then
        nimbus_build="$nimbus_build: $(release_profile_settings)"
    fi
fi
native_bin="$bin_dir/native-hello"
for f in "$guests/p2_hello.wasm" "$guests/p3_hello.wasm" "$guests/p3_lean.wasm" "$nimbus_bin" "$native_bin"; do
    [ -f "$f" ] || { echo "error: expected build output $f is missing" >&2; exit 1; }
done

have_wasmtime=0
wasmtime_skip=""
if [ "$(installed_wasmtime || true)" = "$wasmtime_version" ]; then
    have_wasmtime=1
elif [ "$smoke" = 1 ]; then
    if [ -e "$wasmtime_bin" ]; then
        wasmtime_skip="bench/.tools has wasmtime $(installed_wasmtime || echo '(unknown version)'), not $wasmtime_version"
        echo "wasmtime serve: skipped in smoke mode ($wasmtime_skip; run bench/compare.sh without --smoke to install it)"
    else
        wasmtime_skip="not installed"
        echo "wasmtime serve: skipped in smoke mode (not installed; run bench/compare.sh without --smoke to install it)"
    fi
else
    log "==> installing wasmtime-cli $wasmtime_version into bench/.tools (a long compile, once)"
    # Built in cargo's own temporary directory, not this workspace's target.
    # With wasmtime's own release profile, as the report says: no
    # CARGO_PROFILE_RELEASE_* meant for nimbus reaches it.
    env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET_DIR \
        -u CARGO_PROFILE_RELEASE_LTO -u CARGO_PROFILE_RELEASE_CODEGEN_UNITS \
        cargo install --locked "wasmtime-cli@$wasmtime_version" --root "$tools"
    [ "$(installed_wasmtime || true)" = "$wasmtime_version" ] ||
        { echo "error: $wasmtime_bin does not report version $wasmtime_version after installing" >&2; exit 1; }
    have_wasmtime=1
fi

# `wasmtime serve` flags (wasmtime-cli 48: src/commands/serve.rs, src/common.rs,
# and wasmtime-cli-flags):
#   -S cli=y   link all of WASI, not only the wasi:http proxy world; the guests
#              are Rust wasm32-wasip2 programs importing wasi:cli/environment,
#              exit and terminal-*, which the proxy world lacks (nimbus links
#              all of WASI too)
#   -O pooling-allocator=y   force the pooling allocator (serve otherwise
#              only picks it when a 42-bit address-space probe succeeds)
#   P3 only: -W component-model-async=y -S p3=y (both already default in 48
#              builds with the `component-model-async` feature, stated to be
#              sure), and instance reuse at serve's P3 defaults, stated too:
#              --max-instance-reuse-count 128
#              --max-instance-concurrent-reuse-count 16
#              (nimbus reuses P3 instances with the same limits; P2 instances
#              serve one request in both)
wasmtime_flags_p2=(-S cli=y -O pooling-allocator=y)
wasmtime_flags_p3=(-S cli=y -O pooling-allocator=y -W component-model-async=y -S p3=y
    --max-instance-reuse-count 128 --max-instance-concurrent-reuse-count 16)
wasmtime_flags_p3lean=("${wasmtime_flags_p3[@]}")

# The guest file each workload serves.
guest_of() {
    case "$1" in
        p2) echo "$guests/p2_hello.wasm" ;;
        p3) echo "$guests/p3_hello.wasm" ;;
        p3lean) echo "$guests/p3_lean.wasm" ;;
    esac
}

# Servers get neither log filters nor RUST_BACKTRACE (which makes every
# wasmtime error capture a backtrace).
unset RUST_LOG NIMBUS_LOG WASMTIME_LOG RUST_BACKTRACE RUST_LIB_BACKTRACE

# ---------------------------------------------------------------- pinning
read -r -a cpus <<<"$(python3 -c 'import os; print(" ".join(map(str, sorted(os.sched_getaffinity(0)))))')"
ncpu=$(nproc)
if [ "$ncpu" -ge 2 ] && [ "${#cpus[@]}" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    wrk_pin=(taskset -c "${cpus[0]}")
    server_pin=(taskset -c "${cpus[1]}")
    pinning="wrk pinned to CPU ${cpus[0]}, the server to CPU ${cpus[1]} (taskset)"
elif [ "$ncpu" -ge 2 ]; then
    wrk_pin=()
    server_pin=()
    pinning="no CPU pinning (taskset not found); wrk and the server share $ncpu CPUs"
else
    wrk_pin=()
    server_pin=()
    pinning="no CPU pinning (nproc = $ncpu); wrk and the server share one CPU"
fi
log "==> $pinning"

# ---------------------------------------------------------------- one round
# Prints the command line serving WORKLOAD with CONTESTANT on ADDR, one
# argument per line.
server_cmd() {
    local contestant=$1 workload=$2 addr=$3
    local guest
    guest=$(guest_of "$workload")
    case "$contestant" in
        nimbus) printf '%s\n' "$nimbus_bin" serve "$guest" --addr "$addr" --cache-dir "$work/nimbus-cache" ;;
        # An admin listener turns accounting on (per-request guest CPU,
        # memory and latency, the /metrics series).
        "nimbus accounting")
            printf '%s\n' "$nimbus_bin" serve "$guest" --addr "$addr" --cache-dir "$work/nimbus-cache" \
                --admin-addr "127.0.0.1:$(free_port)" ;;
        "wasmtime serve")
            local -n flags="wasmtime_flags_$workload"
            printf '%s\n' "$wasmtime_bin" serve "${flags[@]}" --addr "$addr" "$guest" ;;
        native) printf '%s\n' "$native_bin" --addr "$addr" ;;
    esac
}

# Starts a server and waits for it to print its URL; sets server_pid and url.
# A port taken between probing and binding gets a second and third try.
start_server() {
    local contestant=$1 workload=$2 tag=$3
    local attempt
    for attempt in 1 2 3; do
        local addr="127.0.0.1:$(free_port)"
        local log_file="$work/$tag.server.log"
        local cmd
        mapfile -t cmd < <(server_cmd "$contestant" "$workload" "$addr")
        "${server_pin[@]}" "${cmd[@]}" >"$log_file" 2>&1 &
        server_pid=$!
        if await_serving "$server_pid" "$log_file" "$addr" "$contestant"; then
            url="http://$addr/"
            return 0
        fi
        server_pid=""
    done
    echo "error: $contestant: no free port after 3 tries" >&2
    exit 1
}

# The server must answer 200 text/plain with the guest's body before it is
# measured, so a fast error page can never pass for throughput.
check_response() {
    local contestant=$1 url=$2 expected=$3
    python3 - "$url" "$expected" <<'EOF' || { echo "error: $contestant at $url answered wrongly (above)" >&2; exit 1; }
import sys, urllib.request
url, expected = sys.argv[1], sys.argv[2] + "\n"
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
with opener.open(url, timeout=30) as r:
    body = r.read().decode("utf-8", "replace")
    ctype = r.headers.get("content-type", "")
if r.status != 200 or ctype != "text/plain" or body != expected:
    sys.exit(f"{url}: status {r.status}, content-type {ctype!r}, body {body!r}; "
             f"wanted 200, 'text/plain', {expected!r}")
EOF
}

runs="$work/runs.tsv"
: >"$runs"

run_round() {
    local workload=$1 contestant=$2 round=$3
    local tag="$workload-${contestant// /-}-$round"
    local expected="hello from ${workload%lean}"
    [ "$contestant" = native ] && expected="hello from p2"
    log "==> $workload round $round/$rounds: $contestant"
    start_server "$contestant" "$workload" "$tag"
    check_response "$contestant" "$url" "$expected"
    "${wrk_pin[@]}" wrk -t"$threads" -c"$connections" -d1s "$url" >"$work/$tag.warmup.txt" 2>&1
    "${wrk_pin[@]}" wrk -t"$threads" -c"$connections" -d"$duration" --latency "$url" >"$work/$tag.wrk.txt" 2>&1 &
    wrk_pid=$!
    wait "$wrk_pid" || { echo "error: wrk failed against $contestant:" >&2; cat "$work/$tag.wrk.txt" >&2; exit 1; }
    wrk_pid=""
    stop_pid "$server_pid"
    server_pid=""
    grep -E '^Requests/sec' "$work/$tag.wrk.txt" | sed 's/^/    /' >&2 || true
    printf '%s\t%s\t%s\t%s\n' "$workload" "$contestant" "$round" "$work/$tag.wrk.txt" >>"$runs"
}

contestants=(nimbus "nimbus accounting" "wasmtime serve" native)
for workload in "${workloads[@]}"; do
    for ((round = 1; round <= rounds; round++)); do
        for contestant in "${contestants[@]}"; do
            if [ "$contestant" = "wasmtime serve" ] && [ "$have_wasmtime" = 0 ]; then
                continue
            fi
            run_round "$workload" "$contestant" "$round"
        done
    done
    if [ "$have_wasmtime" = 0 ]; then
        printf '%s\t%s\tskip\t%s\n' "$workload" "wasmtime serve" "$wasmtime_skip (smoke mode)" >>"$runs"
    fi
done

# ---------------------------------------------------------------- report
wrk_settings="wrk -t$threads -c$connections -d$duration --latency, after a 1 s warm-up"
reproduce="bash bench/compare.sh${only:+ --only $only} --rounds $rounds --connections $connections --duration $duration --threads $threads"
[ "$smoke" = 1 ] && reproduce="bash bench/compare.sh --smoke${only:+ --only $only} --rounds $rounds --connections $connections --duration $duration --threads $threads"
cpu_model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null || true)" ]; then
    commit="$commit (with uncommitted changes)"
fi
wrk_version=$(wrk --version 2>&1 | awk 'NR == 1 {print $2}' || true)

tables="$work/tables.md"
python3 bench/summarize.py table "$runs" \
    --label "p2=P2 hello (\`p2_hello.wasm\`, a fresh instance per request)" \
    --label "p3=P3 hello (\`p3_hello.wasm\`, instances reused)" \
    --label "p3lean=lean P3 hello (\`p3_lean.wasm\`, instances reused, no work per request)" >"$tables"

report="$work/report.md"
{
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), nimbus $commit ($nimbus_build; native-hello $profile profile)."
    echo
    echo "- Machine: ${cpu_model:-unknown CPU}, $ncpu cores, Linux $(uname -r); $pinning."
    echo "- Load: $wrk_settings (wrk $wrk_version); $rounds round(s), contestants alternating (nimbus, nimbus accounting, wasmtime serve, native), a fresh server per round; medians over rounds. Latencies are wrk's percentiles; errors are non-2xx responses plus socket errors, summed over rounds."
    echo "- nimbus: \`nimbus serve GUEST\`, defaults (P3: 128 requests per instance, 16 at a time; pinned to one CPU, its runtime is the main thread alone), accounting off; nimbus accounting: the same with \`--admin-addr\`, which turns accounting on (per-request guest CPU, memory and latency, the /metrics series)."
    if [ "$have_wasmtime" = 1 ]; then
        echo "- wasmtime serve: wasmtime-cli $wasmtime_version, $wasmtime_build; \`wasmtime serve ${wasmtime_flags_p2[*]} GUEST\` (p2), \`wasmtime serve ${wasmtime_flags_p3[*]} GUEST\` (p3, p3lean)."
    else
        echo "- wasmtime serve: skipped ($wasmtime_skip)."
    fi
    echo "- native: \`bench/native-hello\` (hyper 1, HTTP/1.1 keep-alive, \`TCP_NODELAY\`, tokio: a worker thread per CPU, or the main thread alone when pinned to one CPU, as nimbus), same status, content-type and body as the P2 guest."
    echo "- Reproduce: \`$reproduce\`"
    echo
    cat "$tables"
} >"$report"

echo
cat "$report"

if [ "$smoke" = 0 ] && [ -z "$only" ]; then
    python3 bench/summarize.py update-docs docs/BENCHMARKS.md "$report"
    log "==> wrote the report into docs/BENCHMARKS.md"
fi
finished=1
