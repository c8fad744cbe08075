#!/usr/bin/env bash
# Checks the crate layering docs/ARCHITECTURE.md describes, from the
# dependency graph itself: the model, the project tooling and the cluster's
# controller side must not compile the engine, and neither may the
# observability crate.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
forbid() { # forbid CRATE DEPENDENCY [cargo tree flags...]
    local crate=$1 dependency=$2
    shift 2
    local tree
    if ! tree=$(cargo tree --quiet -p "$crate" -e normal "$@" --prefix none); then
        echo "layering: cannot read the dependency tree of $crate" >&2
        status=1
        return
    fi
    if grep -q "^$dependency v" <<<"$tree"; then
        echo "layering: $crate${*:+ ($*)} depends on $dependency" >&2
        status=1
    fi
}
forbid nimbus-model wasmtime
forbid nimbus-model hyper
forbid nimbus-observe wasmtime
forbid nimbus-project wasmtime
forbid nimbus-cluster wasmtime --no-default-features
exit $status
