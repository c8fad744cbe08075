#!/usr/bin/env bash
# Checks the crate layering docs/ARCHITECTURE.md describes, from the
# dependency graph itself: the model, the project tooling and the cluster's
# controller side must not compile the engine, and neither may the
# observability crate; the plugin API and the capability crates never
# depend on the runtime or the host, capabilities never on each other, and
# the runtime never on a capability or the host.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
forbid() { # forbid CRATE "DEPENDENCY..." [cargo tree flags...]
    local crate=$1 dependencies=$2
    shift 2
    local tree dependency
    if ! tree=$(cargo tree --quiet -p "$crate" -e normal "$@" --prefix none); then
        echo "layering: cannot read the dependency tree of $crate" >&2
        status=1
        return
    fi
    for dependency in $dependencies; do
        if grep -q "^$dependency v" <<<"$tree"; then
            echo "layering: $crate${*:+ ($*)} depends on $dependency" >&2
            status=1
        fi
    done
}
capabilities=(nimbus-config nimbus-keyvalue nimbus-blobstore nimbus-logging nimbus-secrets nimbus-messaging nimbus-otel nimbus-tls nimbus-postgres nimbus-websocket nimbus-nats nimbus-webgpu)

forbid nimbus-model "wasmtime hyper tokio"
forbid nimbus-observe "wasmtime nimbus-runtime"
forbid nimbus-project "wasmtime"
forbid nimbus-wit "wasmtime nimbus-runtime nimbus-host ${capabilities[*]}"
forbid nimbus-cluster "wasmtime" --no-default-features
forbid nimbus-plugin "nimbus-runtime nimbus-host hyper ${capabilities[*]}"
forbid nimbus-runtime "nimbus-host ${capabilities[*]}"
for capability in "${capabilities[@]}"; do
    others=()
    for other in "${capabilities[@]}"; do
        [[ $other == "$capability" ]] || others+=("$other")
    done
    forbid "$capability" "nimbus-runtime nimbus-host hyper ${others[*]}"
done
exit $status
