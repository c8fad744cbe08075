#!/usr/bin/env bash
# `cpuLimit` under load: the CPU a spinning component gets under
# `cpuLimit: 0.25`, and what it does to a neighbour's latency, against the
# same run with the limit off.
#
#   bash bench/cpu-limit.sh [--rounds 3] [--duration 10] [--connections 32] [--threads 1]
#                           [--spinners 2] [--limit 0.25] [--spinner p2|p3] [--no-pin]
#
# One `nimbus serve` (release build) runs two workloads from one manifest,
# routed by Host: `spinner`, a guest that busy-loops in every request (P2:
# `p2_behaviors.wasm /loop`; P3: `p3_hello.wasm /loop`; its deadline is
# 10 minutes, so a request spins for the whole run), and `neighbour`
# (`p2_hello.wasm`, no limit). The modes `limit` (the spinner has
# `cpuLimit: LIMIT`) and `off` (no cpuLimit) alternate for N rounds; each
# round starts a fresh server and runs, DURATION seconds each:
#   1. wrk on the neighbour alone, after a 1 s warm-up: its p99 alone;
#   2. SPINNERS connections to the spinner, kept open; 2 s to settle (a
#      limited spinner first spends the second of CPU it saved up);
#   3. the spinner alone: the server process's CPU (utime + stime from
#      /proc/PID/stat) per wall-clock second, in cores, and the host's own
#      `nimbus_guest_cpu_seconds_total` and
#      `nimbus_guest_cpu_throttled_seconds_total` for the spinner;
#   4. wrk on the neighbour while the spinner spins: its p99 beside it.
# Medians over rounds go to stdout as a markdown table, with the issue's
# two figures: the limited spinner's cores (target: at most 0.3 at 0.25)
# and the neighbour's p99 beside it over its p99 alone (target: at most
# 1.2x), each against the run with the limit off. Accounting is on in
# every run (the admin endpoint serves the metrics read in step 3).
#
# With two or more CPUs, wrk is pinned to the first CPU this process may
# use and the server to the others (--no-pin: neither is pinned). Progress
# goes to stderr. Needs cargo, wrk, python3 (and taskset to pin).
# BENCH_NIMBUS_BIN=PATH uses that nimbus binary instead of building the
# release one (the guests are built with cargo either way).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

usage() {
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}

rounds=3
duration=10
connections=32
threads=1
spinners=2
limit=0.25
spinner_kind=p2
pin=1
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=${2:?--rounds needs a value}; shift ;;
        --rounds=*) rounds=${1#*=} ;;
        --duration) duration=${2:?--duration needs a value}; shift ;;
        --duration=*) duration=${1#*=} ;;
        --connections) connections=${2:?--connections needs a value}; shift ;;
        --connections=*) connections=${1#*=} ;;
        --threads) threads=${2:?--threads needs a value}; shift ;;
        --threads=*) threads=${1#*=} ;;
        --spinners) spinners=${2:?--spinners needs a value}; shift ;;
        --spinners=*) spinners=${1#*=} ;;
        --limit) limit=${2:?--limit needs a value}; shift ;;
        --limit=*) limit=${1#*=} ;;
        --spinner) spinner_kind=${2:?--spinner needs a value}; shift ;;
        --spinner=*) spinner_kind=${1#*=} ;;
        --no-pin) pin=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
    esac
    shift
done
duration=${duration%s}
for pair in "rounds:$rounds" "duration:$duration" "connections:$connections" "threads:$threads" "spinners:$spinners"; do
    [[ "${pair#*:}" =~ ^[1-9][0-9]*$ ]] || { echo "error: --${pair%%:*} must be a positive integer (got \`${pair#*:}\`)" >&2; exit 2; }
done
[ "$threads" -le "$connections" ] || { echo "error: wrk needs --connections >= --threads" >&2; exit 2; }
[[ "$limit" =~ ^([0-9]+(\.[0-9]+)?|\.[0-9]+|[0-9]+m)$ ]] || { echo "error: --limit must be cores (0.25) or millicores (250m) (got \`$limit\`)" >&2; exit 2; }
case "$spinner_kind" in
    p2) spinner_guest=p2_behaviors.wasm ;;
    p3) spinner_guest=p3_hello.wasm ;;
    *) echo "error: --spinner must be p2 or p3 (got \`$spinner_kind\`)" >&2; exit 2 ;;
esac

source "$ROOT/bench/lib.sh"
require_tools cargo wrk python3

# ---------------------------------------------------------------- cleanup
work=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-cpu-limit.XXXXXX")
server_pid=""
spin_pid=""
wrk_pid=""
finished=0


cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$wrk_pid" ]; then
        kill -TERM "$wrk_pid" 2>/dev/null || true
    fi
    stop_pid "$spin_pid"
    stop_pid "$server_pid"
    if [ "$finished" = 1 ]; then
        rm -rf "$work"
    else
        log "bench/cpu-limit.sh failed (exit $status); logs and wrk output kept in $work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- builds
if [ -n "${BENCH_NIMBUS_BIN:-}" ]; then
    nimbus_bin=$BENCH_NIMBUS_BIN
    nimbus_build="\`$nimbus_bin\` (BENCH_NIMBUS_BIN)"
fi
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
log "==> building the guests (cargo build -p test-programs)"
cargo build -p test-programs
guests="$target_dir/guests/wasm32-wasip2/release"
if [ -z "${BENCH_NIMBUS_BIN:-}" ]; then
    log "==> building nimbus, release profile"
    cargo build --release -p nimbus-cli
    nimbus_bin="$target_dir/release/nimbus"
    nimbus_build="release profile"
fi
for f in "$guests/$spinner_guest" "$guests/p2_hello.wasm" "$nimbus_bin"; do
    [ -f "$f" ] || { echo "error: expected build output $f is missing" >&2; exit 1; }
done

unset RUST_LOG NIMBUS_LOG RUST_BACKTRACE RUST_LIB_BACKTRACE

# ---------------------------------------------------------------- pinning
read -r -a cpus <<<"$(python3 -c 'import os; print(" ".join(map(str, sorted(os.sched_getaffinity(0)))))')"
ncpu=$(nproc)
if [ "$pin" = 1 ] && [ "${#cpus[@]}" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    server_cpus=$(IFS=,; echo "${cpus[*]:1}")
    wrk_pin=(taskset -c "${cpus[0]}")
    server_pin=(taskset -c "$server_cpus")
    pinning="wrk and the spinner's client pinned to CPU ${cpus[0]}, the server to CPU(s) $server_cpus (taskset)"
else
    wrk_pin=()
    server_pin=()
    pinning="no CPU pinning; wrk and the server share $ncpu CPU(s)"
fi
log "==> $pinning"

# ---------------------------------------------------------------- helpers
# The manifest of one mode: `limit` gives the spinner its cpuLimit.
write_manifest() {
    local mode=$1 file=$2
    local cpu_line=""
    [ "$mode" = limit ] && cpu_line="        cpuLimit: \"$limit\""
    cat >"$file" <<EOF
apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: Workload
metadata: { name: spinner, namespace: default }
spec:
  components:
    - name: spinner
      image: file://$guests/$spinner_guest
      localResources:
        timeoutMs: 600000
$cpu_line
  hostInterfaces:
    - namespace: wasi
      package: http
      interfaces: [incoming-handler]
      config: { host: spinner.local }
---
apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: Workload
metadata: { name: neighbour, namespace: default }
spec:
  components:
    - name: neighbour
      image: file://$guests/p2_hello.wasm
  hostInterfaces:
    - namespace: wasi
      package: http
      interfaces: [incoming-handler]
      config: { host: neighbour.local }
EOF
}

# Starts `nimbus serve MANIFEST` and waits for its URL; sets server_pid,
# addr and admin.
start_server() {
    local manifest=$1 tag=$2
    local attempt
    for attempt in 1 2 3; do
        addr="127.0.0.1:$(free_port)"
        admin="127.0.0.1:$(free_port)"
        local log_file="$work/$tag.server.log"
        "${server_pin[@]}" "$nimbus_bin" serve "$manifest" --addr "$addr" --admin-addr "$admin" \
            --cache-dir "$work/nimbus-cache" >"$log_file" 2>&1 &
        server_pid=$!
        await_serving "$server_pid" "$log_file" "$addr" nimbus && return 0
        server_pid=""
    done
    echo "error: no free port after 3 tries" >&2
    exit 1
}

# The neighbour must answer 200 before it is measured.
check_neighbour() {
    python3 - "$addr" <<'EOF' || { echo "error: the neighbour did not answer 200 (above)" >&2; exit 1; }
import http.client, sys
host, port = sys.argv[1].rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port), timeout=30)
conn.request("GET", "/", headers={"Host": "neighbour.local"})
r = conn.getresponse()
body = r.read()
if r.status != 200:
    sys.exit(f"neighbour: status {r.status}, body {body[:200]!r}")
EOF
}

# The server process's CPU time so far, in seconds (utime + stime).
process_cpu() {
    python3 - "$server_pid" <<'EOF'
import os, sys
# Fields after the command name, which may hold spaces and parentheses:
# the 3rd field (state) is index 0, utime (14th) index 11, stime index 12.
fields = open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")", 1)[1].split()
print((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
EOF
}

# The spinner's guest CPU and throttled seconds so far, from /metrics.
spinner_metrics() {
    python3 - "$admin" <<'EOF'
import re, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
text = opener.open(f"http://{sys.argv[1]}/metrics", timeout=30).read().decode()
def value(name):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and 'workload="spinner"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
print(value("nimbus_guest_cpu_seconds_total"), value("nimbus_guest_cpu_throttled_seconds_total"))
EOF
}

# Keeps SPINNERS requests to the spinner open until killed.
start_spinners() {
    "${wrk_pin[@]}" python3 - "$addr" "$spinners" >"$work/spinners.log" 2>&1 <<'EOF' &
import socket, sys, threading, time
host, port = sys.argv[1].rsplit(":", 1)
def spin():
    while True:
        try:
            s = socket.create_connection((host, int(port)))
            s.sendall(b"GET /loop HTTP/1.1\r\nHost: spinner.local\r\nConnection: close\r\n\r\n")
            while s.recv(65536):
                pass
            s.close()
        except OSError:
            time.sleep(0.1)
for _ in range(int(sys.argv[2])):
    threading.Thread(target=spin, daemon=True).start()
threading.Event().wait()
EOF
    spin_pid=$!
}

now() { date +%s.%N; }

neighbour_wrk() {
    local out=$1
    "${wrk_pin[@]}" wrk -t"$threads" -c"$connections" -d"${duration}s" --latency \
        -H 'Host: neighbour.local' "http://$addr/" >"$out" 2>&1 &
    wrk_pid=$!
    wait "$wrk_pid" || { echo "error: wrk failed:" >&2; cat "$out" >&2; exit 1; }
    wrk_pid=""
}

# ---------------------------------------------------------------- one round
runs="$work/runs.tsv"
: >"$runs"

run_round() {
    local mode=$1 round=$2
    local tag="$mode-$round"
    local manifest="$work/$tag.yaml"
    log "==> round $round/$rounds: limit $([ "$mode" = limit ] && echo "$limit" || echo off)"
    write_manifest "$mode" "$manifest"
    start_server "$manifest" "$tag"
    check_neighbour
    "${wrk_pin[@]}" wrk -t"$threads" -c"$connections" -d1s -H 'Host: neighbour.local' \
        "http://$addr/" >"$work/$tag.warmup.txt" 2>&1
    log "  neighbour alone, ${duration}s"
    neighbour_wrk "$work/$tag.alone.txt"

    start_spinners
    sleep 2
    log "  spinner alone, ${duration}s"
    local cpu0 wall0 cpu1 wall1 metrics0 metrics1
    metrics0=$(spinner_metrics)
    cpu0=$(process_cpu)
    wall0=$(now)
    sleep "$duration"
    cpu1=$(process_cpu)
    wall1=$(now)
    metrics1=$(spinner_metrics)

    log "  neighbour beside the spinner, ${duration}s"
    local cpu2 wall2 cpu3 wall3
    cpu2=$(process_cpu)
    wall2=$(now)
    neighbour_wrk "$work/$tag.beside.txt"
    cpu3=$(process_cpu)
    wall3=$(now)

    stop_pid "$spin_pid"
    spin_pid=""
    stop_pid "$server_pid"
    server_pid=""
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$mode" "$round" "$work/$tag.alone.txt" "$work/$tag.beside.txt" \
        "$cpu0" "$wall0" "$cpu1" "$wall1" "$metrics0" "$metrics1" \
        "$cpu2" "$wall2" "$cpu3" "$wall3" >>"$runs"
}

for ((round = 1; round <= rounds; round++)); do
    for mode in limit off; do
        run_round "$mode" "$round"
    done
done

# ---------------------------------------------------------------- report
cpu_model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null || true)" ]; then
    commit="$commit (with uncommitted changes)"
fi
echo
echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), nimbus $commit ($nimbus_build)."
echo
echo "- Machine: ${cpu_model:-unknown CPU}, $ncpu cores, Linux $(uname -r); $pinning."
echo "- Spinner: \`$spinner_guest\` \`/loop\` ($spinner_kind), $spinners request(s) held open; neighbour: \`p2_hello.wasm\` under \`wrk -t$threads -c$connections -d${duration}s --latency\`; $rounds round(s), modes alternating, a fresh server per round; medians over rounds."
echo "- Reproduce: \`bash bench/cpu-limit.sh --rounds $rounds --duration $duration --connections $connections --threads $threads --spinners $spinners --limit $limit --spinner $spinner_kind$([ "$pin" = 0 ] && echo ' --no-pin')\`"
echo
python3 - "$runs" "$limit" <<'EOF'
import statistics, sys
sys.path.insert(0, "bench")
from summarize import parse_wrk

runs, limit = sys.argv[1], sys.argv[2]
rows = {}
for line in open(runs, encoding="utf-8"):
    (mode, _round, alone, beside, cpu0, wall0, cpu1, wall1, m0, m1,
     cpu2, wall2, cpu3, wall3) = line.rstrip("\n").split("\t")
    a = parse_wrk(open(alone, encoding="utf-8").read(), alone)
    b = parse_wrk(open(beside, encoding="utf-8").read(), beside)
    spin_wall = float(wall1) - float(wall0)
    g0, t0 = map(float, m0.split())
    g1, t1 = map(float, m1.split())
    rows.setdefault(mode, []).append({
        "proc_cores": (float(cpu1) - float(cpu0)) / spin_wall,
        "guest_cores": (g1 - g0) / spin_wall,
        "throttled": (t1 - t0) / spin_wall,
        "beside_cores": (float(cpu3) - float(cpu2)) / (float(wall3) - float(wall2)),
        "p99_alone": a["p99"],
        "p99_beside": b["p99"],
        "ratio": b["p99"] / a["p99"] if a["p99"] else float("nan"),
        "rps_alone": a["rps"],
        "rps_beside": b["rps"],
        "errors": a["errors"] + b["errors"],
    })

def med(mode, key):
    return statistics.median(r[key] for r in rows[mode])

print("| spinner limit | spinner CPU, alone (cores, /proc) | spinner guest CPU (cores, metric) | held (s per s) | server CPU beside wrk (cores) | neighbour p99 alone (µs) | p99 beside the spinner (µs) | p99 ratio | req/s alone | req/s beside | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for mode in ("limit", "off"):
    if mode not in rows:
        continue
    label = limit if mode == "limit" else "off"
    print(f"| {label} | {med(mode, 'proc_cores'):.3f} | {med(mode, 'guest_cores'):.3f} | {med(mode, 'throttled'):.2f} "
          f"| {med(mode, 'beside_cores'):.2f} | {med(mode, 'p99_alone'):,.0f} | {med(mode, 'p99_beside'):,.0f} "
          f"| {med(mode, 'ratio'):.2f}x | {med(mode, 'rps_alone'):,.0f} | {med(mode, 'rps_beside'):,.0f} "
          f"| {sum(r['errors'] for r in rows[mode])} |")
print()
if "limit" in rows:
    cores = med("limit", "proc_cores")
    cores_target = float(limit[:-1]) / 1000 if limit.endswith("m") else float(limit)
    cores_target = round(cores_target * 1.2, 3)
    ratio = med("limit", "ratio")
    off = f" (limit off: {med('off', 'proc_cores'):.3f} cores, p99 {med('off', 'ratio'):.2f}x)" if "off" in rows else ""
    print(f"- Spinner under `cpuLimit: {limit}`: {cores:.3f} cores of the server process "
          f"(target at most {cores_target}: {'met' if cores <= cores_target else 'NOT met'}){off}.")
    print(f"- Neighbour's p99 beside the limited spinner: {ratio:.2f}x its p99 alone "
          f"(target at most 1.2x: {'met' if ratio <= 1.2 else 'NOT met'}).")
EOF
finished=1
