#!/usr/bin/env bash
# First build and rebuild of each language's templates, and the size of
# what they build: `nimbus new --lang L T`, `nimbus build` (the first one
# installs the npm or pip dependencies, from warm caches, and for Rust
# compiles the crates into a fresh target dir), an edit to the handler's
# source, `nimbus build` again. Prints one line per template, then each
# language's figures as ratios against Rust's in the same run.
#
#   bench/templates.sh [NIMBUS_BINARY]   (default: target/release/nimbus, else target/debug/nimbus)
set -euo pipefail
cd "$(dirname "$0")/.."
nimbus=${1:-}
if [ -z "$nimbus" ]; then
    nimbus=target/release/nimbus
    [ -x "$nimbus" ] || nimbus=target/debug/nimbus
fi
nimbus=$(realpath "$nimbus")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

seconds() { date +%s.%N; }
elapsed() { python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$1" "$(seconds)"; }
printf '%-11s %-17s %8s %8s %10s\n' language template first rebuild size
results=()
for lang in rust typescript python; do
    case $lang in
        rust) source=src/main.rs ;;
        typescript) source=src/index.ts ;;
        python) source=app.py ;;
    esac
    for template in http-hello-world http-kv-counter; do
        name="$lang-$template"
        (cd "$work" && "$nimbus" new --lang "$lang" "$template" "$name" >/dev/null)
        dir="$work/$name"
        export CARGO_TARGET_DIR="$work/target-$name"
        start=$(seconds)
        (cd "$dir" && "$nimbus" build >/dev/null 2>"$work/$name.first.log") || {
            cat "$work/$name.first.log" >&2
            exit 1
        }
        first=$(elapsed "$start")
        sed -i 's/Hello from/Hello again from/; s/key-value error/key-value failure/' "$dir/$source"
        start=$(seconds)
        built=$(cd "$dir" && "$nimbus" build -o json 2>"$work/$name.rebuild.log") || {
            cat "$work/$name.rebuild.log" >&2
            exit 1
        }
        rebuild=$(elapsed "$start")
        size=$(printf '%s' "$built" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sizeBytes"])')
        printf '%-11s %-17s %7.1fs %7.1fs %9dK\n' "$lang" "$template" "$first" "$rebuild" "$((size / 1024))"
        results+=("$lang $template $first $rebuild $size")
    done
done

echo
echo "vs Rust (same template, this run):"
printf '%s\n' "${results[@]}" | python3 -c '
import sys
rows = [line.split() for line in sys.stdin if line.strip()]
rust = {r[1]: r for r in rows if r[0] == "rust"}
for lang, template, first, rebuild, size in rows:
    if lang == "rust":
        continue
    base = rust[template]
    print(f"{lang:<11} {template:<17} first {float(first)/float(base[2]):5.1f}x  rebuild {float(rebuild)/float(base[3]):5.1f}x  size {int(size)/int(base[4]):5.1f}x")
'
