#!/usr/bin/env bash
# Runs Nimbus's whole test suite on a fresh machine: installs what is
# missing (the wasm32-wasip2 target; as root, the system services the
# tests and benchmarks use and Node.js; the TypeScript and Python
# templates' packages into npm's and pip's caches; Chromium and the
# console's browser check), then checks
# formatting and lints and runs
# every test with cargo-nextest (cargo test where nextest is absent).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

missing=()
for pair in nats-server:nats-server redis-server:redis-server docker-registry:docker-registry wrk:wrk python3:python3 node:nodejs npm:npm; do
    bin=${pair%%:*}; pkg=${pair##*:}
    command -v "$bin" >/dev/null 2>&1 || missing+=("$pkg")
done
# PostgreSQL's server lives in a versioned directory, not on PATH.
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
# wasi:webgpu's test runs on Mesa's software Vulkan driver (lavapipe),
# through the Vulkan loader.
ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers)
ls /usr/lib/*/libvulkan.so.1 >/dev/null 2>&1 || missing+=(libvulkan1)
# The Python templates build in a virtual environment, filled by pip.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
# The web console's test drives Debian's Chromium (through Playwright).
command -v chromium >/dev/null 2>&1 || missing+=(chromium chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "note: not root; install these system packages for the service-backed tests: ${missing[*]}" >&2
    fi
fi

# The TypeScript and Python templates' packages (componentize-js, jco,
# rolldown, TypeScript with everything they depend on; componentize-py), at
# the versions the templates pin, into npm's and pip's caches: each
# template test then installs them into its own project from the cache.
templates=crates/cli/templates
if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
    node_major=$(node -p 'process.versions.node.split(".")[0]')
    if [ "$node_major" -lt 20 ]; then
        echo "note: Node.js $node_major is older than the TypeScript templates need (20)" >&2
    fi
    npm_packages=$(node -e '
        const deps = require(process.argv[1]).devDependencies;
        console.log(Object.entries(deps).map(([name, version]) => `${name}@${version}`).join(" "));
    ' "$PWD/$templates/typescript/_common/package.json")
    warm=$(mktemp -d)
    # shellcheck disable=SC2086 # one word per package
    npm install --prefix "$warm" --no-save --no-audit --no-fund --loglevel=error $npm_packages >/dev/null
    rm -rf "$warm"
    # The console's browser check: playwright-core, as its lock file says.
    npm ci --prefix crates/cli/tests/console --no-audit --no-fund --loglevel=error >/dev/null
else
    echo "note: no Node.js; the TypeScript template and console tests will fail" >&2
fi
if python3 -m pip --version >/dev/null 2>&1; then
    warm=$(mktemp -d)
    python3 -m pip download --quiet --disable-pip-version-check --dest "$warm" \
        --requirement "$templates/python/_common/requirements.txt"
    rm -rf "$warm"
else
    echo "note: no pip; the Python template tests will fail" >&2
fi

# A CI run starts cold and ends: incremental state would only take disk.
if [ "${CI:-}" = true ]; then
    export CARGO_INCREMENTAL=0
fi

cargo fmt --all --check
# The test guests are a workspace of their own, outside `--all`.
cargo fmt --check --manifest-path crates/test-programs/guests/Cargo.toml
bash scripts/check-layers.sh
python3 scripts/check-module-cycles.py

if [ "${CI:-}" = true ]; then
    # Lint while compiling the tests, in one pass: clippy-driver compiles
    # the workspace's crates (it is rustc plus the lints; warnings are
    # errors), rustc the dependencies. A separate `cargo clippy` would
    # type-check every dependency a second time, about a quarter of a cold
    # run. Benches are linted by the `cargo clippy --all-targets` that every
    # change runs before it lands.
    export RUSTC_WORKSPACE_WRAPPER="$(rustc --print sysroot)/bin/clippy-driver"
    export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
else
    cargo clippy --workspace --all-targets --quiet -- -D warnings
fi

# The bench-only crates hold no tests; building their dev-dependencies
# (gungraun, its runner) for a test run would only add minutes to a cold
# CI run.
# `cargo clippy --all-targets` (outside CI) and `bench/` still build them.
skip=(--exclude instruction-bench --exclude native-hello)
# Then the runtime, the host and the capabilities without their optional
# parts (backends, OCI, composition): they must compile, and asking for a
# part left out must name the feature.
lean=(-p nimbus-runtime -p nimbus-host -p nimbus-keyvalue -p nimbus-blobstore
    -p nimbus-messaging --no-default-features --lib)
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace "${skip[@]}" --no-fail-fast --failure-output final
    cargo nextest run "${lean[@]}" --no-fail-fast --failure-output final
else
    cargo test --workspace "${skip[@]}" --no-fail-fast
    cargo test "${lean[@]}" --no-fail-fast
fi
