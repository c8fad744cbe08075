#!/usr/bin/env python3
"""Checks that the modules inside each crate import each other one way only.

    python3 scripts/check-module-cycles.py [CRATE_DIR...]   (default: every crate)

A module is one source file (`foo.rs` or `foo/mod.rs`). Module A depends on
module B when A's code (comments, strings and `#[cfg(test)]` modules left
out) names a path into B: `crate::b::...`, `super::b::...`, `self::b::...`
or a `use` tree reaching B. An edge between a module and one of its
ancestors or descendants is not counted: a folder module re-exporting what
its files define, and those files using their parent's items, is how a
folder module is built, not a cycle between concerns. For the same reason
paths through the crate root (`crate::Name`, its re-exports) are not
followed: every module is the root's descendant.

Every strongly connected group of two or more modules is printed, and the
exit status is 1, unless the group is exactly one listed in ALLOWED below,
whose reason is written in the modules' docs.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (crate directory, modules) pairs allowed to form a cycle, each with its
# reason. Keep this list as short as the architecture issue allows: one.
ALLOWED = {
    # A store holds the stores of the components it links to
    # (`StoreState::peers`), and linking creates those stores: see the
    # module docs of `wasi` and `workload::links`.
    ("crates/runtime", frozenset({"wasi", "workload::links"})),
}


def strip_code(text):
    """The source with comments, string and char literals blanked out."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and not (
            i and (text[i - 1].isalnum() or text[i - 1] == "_")
        ):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            i = n if end < 0 else end + 1 + len(hashes)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            i = text.index("'", i + 2) + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def drop_test_modules(code):
    """The code without `#[cfg(test)] mod name { ... }` blocks."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", code)
        if not m:
            return code
        depth, i = 1, m.end()
        while i < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[i], 0)
            i += 1
        code = code[: m.start()] + code[i:]


def expand_use(tree):
    """Every path a `use` tree names: `a::{b, c::d}` -> a::b, a::c::d."""
    # `x as y` names x; drop the alias before the spaces go.
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)
    m = re.match(r"^(.*?)\{(.*)\}$", tree)
    if not m:
        return [tree]
    prefix, inner = m.groups()
    parts, depth, current = [], 0, ""
    for c in inner:
        if c == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += {"{": 1, "}": -1}.get(c, 0)
        current += c
    parts.append(current)
    return [path for part in parts if part for path in expand_use(prefix + part)]


def crate_modules(crate):
    """Module path (tuple) -> file, for every file module under src/."""
    src = os.path.join(crate, "src")
    modules = {}
    for folder, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(folder, name)
            parts = os.path.relpath(path, src)[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            if len(parts) and parts[0] == "bin":
                continue
            modules[tuple(parts)] = path
    return modules


def resolve(path, here, modules):
    """The module a path names from module `here`, or None if outside."""
    segments = path.split("::")
    if segments[0] == "crate":
        base, rest = (), segments[1:]
    elif segments[0] in ("super", "self"):
        base = here
        rest = segments
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                base = base[:-1]
            rest = rest[1:]
    else:
        # A path relative to this module: a child module's name.
        base, rest = here, segments
    best = None
    for k in range(len(rest) + 1):
        candidate = base + tuple(rest[:k])
        if candidate in modules:
            best = candidate
    if best is None or (segments[0] not in ("crate", "super", "self") and best == here):
        return None
    return best


def edges_of(crate):
    modules = crate_modules(crate)
    edges = {}
    for here, path in modules.items():
        with open(path, encoding="utf-8") as f:
            code = drop_test_modules(strip_code(f.read()))
        paths = []
        for m in re.finditer(r"\buse\s+([^;]+);", code):
            paths.extend(expand_use(m.group(1)))
        paths.extend(
            m.group(0) for m in re.finditer(r"\b(?:crate|super|self)(?:::\w+)+", code)
        )
        for p in paths:
            p = re.sub(r"\s+as\s+\w+$", "", p)
            target = resolve(p, here, modules)
            if target is None or target == here:
                continue
            # Parent and child: a folder module and its own files.
            if target[: len(here)] == here or here[: len(target)] == target:
                continue
            edges.setdefault(here, set()).add(target)
    return modules, edges


def cycles(nodes, edges):
    """Strongly connected groups of two or more nodes (Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return groups


def name(module):
    return "::".join(module) or "(crate root)"


def main():
    crates = sys.argv[1:]
    if not crates:
        crates = sorted(
            os.path.relpath(folder, ROOT)
            for folder, dirs, files in os.walk(os.path.join(ROOT, "crates"))
            if "src" in dirs and "Cargo.toml" in files
        )
    status = 0
    for crate in crates:
        modules, edges = edges_of(os.path.join(ROOT, crate))
        for group in cycles(modules, edges):
            names = frozenset(name(m) for m in group)
            if (crate, names) in ALLOWED:
                continue
            status = 1
            members = set(group)
            links = sorted(
                f"{name(a)} -> {name(b)}"
                for a in group
                for b in edges.get(a, ())
                if b in members
            )
            print(f"module cycle in {crate}: {', '.join(sorted(names))}", file=sys.stderr)
            for link in links:
                print(f"    {link}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
