# Helpers shared by the load benches (compare.sh, cpu-limit.sh); sourced,
# not run.

log() { printf '%s\n' "$*" >&2; }

# Fails unless every named tool is on PATH.
require_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || { echo "error: \`$tool\` is required but not on PATH" >&2; exit 1; }
    done
}

# Stops PID (SIGTERM, then SIGKILL after 5 s) and reaps it; no PID, no-op.
stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "  process $pid ignored SIGTERM for 5 s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

# A loopback port free at the time of asking.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits (up to 120 s) for server PID, logging to LOG_FILE, to print
# `http://ADDR/`. Returns 0 once it has, 1 when it exited because its port
# was taken between probing and binding (the caller retries with another);
# any other failure ends the script with the server's output. NAME says
# which server in messages.
await_serving() {
    local pid=$1 log_file=$2 addr=$3 name=$4
    local deadline=$((SECONDS + 120))
    while [ "$SECONDS" -lt "$deadline" ]; do
        grep -qF "http://$addr/" "$log_file" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        stop_pid "$pid"
        echo "error: $name did not print its URL within 120 s; its output:" >&2
        cat "$log_file" >&2
        exit 1
    fi
    wait "$pid" 2>/dev/null || true
    if ! grep -qiE 'address (already )?in use|AddrInUse' "$log_file"; then
        echo "error: $name exited before serving; its output:" >&2
        cat "$log_file" >&2
        exit 1
    fi
    log "  port of $addr was taken; retrying"
    return 1
}
