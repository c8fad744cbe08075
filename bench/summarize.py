#!/usr/bin/env python3
"""Helper of bench/compare.sh: parses wrk output, prints the markdown tables,
and writes the report into docs/BENCHMARKS.md between its markers.

    summarize.py table RUNS_TSV [--label WORKLOAD=TEXT ...]
    summarize.py update-docs DOC_FILE REPORT_FILE

RUNS_TSV has one line per wrk run, `workload<TAB>contestant<TAB>round<TAB>path
of wrk's output`, or `workload<TAB>contestant<TAB>skip<TAB>reason` for a
contestant that did not run. Workloads and contestants are listed in the order
they first appear; `nimbus` (accounting off) and `nimbus accounting` are each
compared against every contestant that is not nimbus.
"""

import re
import statistics
import sys
from collections import OrderedDict

NIMBUS = "nimbus"
NIMBUS_ACCOUNTING = "nimbus accounting"
WASMTIME = "wasmtime serve"
NATIVE = "native"
# Table rows in this order; any other contestant after them.
ORDER = {NIMBUS: 0, NIMBUS_ACCOUNTING: 1, WASMTIME: 2, NATIVE: 3}

BEGIN = "<!-- compare:begin -->"
END = "<!-- compare:end -->"
SECTION = "## nimbus vs wasmtime serve vs native (bench/compare.sh)"

TABLE_HEADER = "| contestant | req/s | p50 (µs) | p99 (µs) | req/s per round | errors |"
TABLE_RULE = "|---|---:|---:|---:|---|---:|"

# wrk's format_time units (src/units.c): us, ms, s, m, h.
UNIT_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


class WrkParseError(Exception):
    pass


def to_us(value, unit):
    return float(value) * UNIT_US[unit]


def parse_wrk(text, path):
    """Requests/sec, p50 and p99 in µs, and error counts from `wrk --latency`."""

    def need(pattern):
        m = re.search(pattern, text, re.M)
        if not m:
            raise WrkParseError(f"{path}: no match for {pattern!r} in wrk output:\n{text}")
        return m

    rps = float(need(r"^Requests/sec:\s+([0-9.]+)").group(1))
    latency = {}
    for pct in ("50", "99"):
        m = need(rf"^\s+{pct}(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m|h)\s*$")
        latency[pct] = to_us(m.group(1), m.group(2))
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(g) for g in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors += int(m.group(1))
    requests = int(need(r"^\s+(\d+) requests in ").group(1))
    return {"rps": rps, "p50": latency["50"], "p99": latency["99"], "errors": errors, "requests": requests}


def fmt_int(x):
    return f"{x:,.0f}"


def fmt_us(x):
    return f"{x:,.1f}" if x < 100 else f"{x:,.0f}"


def ratio(a, b):
    return f"{a / b:.2f}x" if b else "n/a"


def table(runs_tsv, labels):
    # workload -> contestant -> {"runs": [...]} or {"skip": reason}
    data = OrderedDict()
    with open(runs_tsv, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            workload, contestant, round_, rest = line.split("\t", 3)
            entry = data.setdefault(workload, OrderedDict()).setdefault(contestant, {"runs": []})
            if round_ == "skip":
                entry["skip"] = rest
            else:
                with open(rest, encoding="utf-8", errors="replace") as out:
                    entry["runs"].append(parse_wrk(out.read(), rest))

    warnings = []
    chunks = []
    for workload, contestants in data.items():
        contestants = sorted(contestants.items(), key=lambda kv: ORDER.get(kv[0], len(ORDER)))
        label = labels.get(workload)
        lines = [f"### {workload}: {label}" if label else f"### {workload}", "", TABLE_HEADER, TABLE_RULE]
        medians = {}
        for contestant, entry in contestants:
            if entry["runs"]:
                runs = entry["runs"]
                med = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99")}
                errors = sum(r["errors"] for r in runs)
                medians[contestant] = med
                per_round = " / ".join(fmt_int(r["rps"]) for r in runs)
                lines.append(
                    f"| {contestant} | {fmt_int(med['rps'])} | {fmt_us(med['p50'])} "
                    f"| {fmt_us(med['p99'])} | {per_round} | {errors} |"
                )
                if errors:
                    warnings.append(
                        f"warning: {workload}/{contestant}: {errors} errors (non-2xx responses "
                        "or socket errors) over all rounds; its req/s is not comparable"
                    )
            else:
                lines.append(f"| {contestant} | skipped: {entry.get('skip', 'no runs')} | | | | |")
        lines.append("")
        parts = []
        for ours in (NIMBUS, NIMBUS_ACCOUNTING):
            nimbus = medians.get(ours)
            if not nimbus:
                continue
            for other in medians:
                if other in (NIMBUS, NIMBUS_ACCOUNTING):
                    continue
                o = medians[other]
                part = f"{ours} / {other}: req/s {ratio(nimbus['rps'], o['rps'])}"
                if other == WASMTIME:
                    part += f", p99 {ratio(nimbus['p99'], o['p99'])}"
                parts.append(part)
        if parts:
            lines.append("Ratios of medians (req/s above 1x: nimbus serves more; p99 below 1x: "
                         "nimbus has the lower tail): " + "; ".join(parts) + ".")
            lines.append("")
        chunks.append("\n".join(lines))
    print("\n".join(chunks).rstrip("\n"))
    for w in warnings:
        print(w, file=sys.stderr)


def update_docs(doc_file, report_file):
    with open(doc_file, encoding="utf-8") as f:
        doc = f.read()
    with open(report_file, encoding="utf-8") as f:
        report = f.read().strip("\n")
    block = f"{BEGIN}\n{report}\n{END}"
    if BEGIN in doc and END in doc and doc.index(BEGIN) < doc.index(END):
        start = doc.index(BEGIN)
        end = doc.index(END) + len(END)
        doc = doc[:start] + block + doc[end:]
    else:
        if BEGIN in doc or END in doc:
            sys.exit(f"{doc_file}: only one of {BEGIN} / {END}, or in the wrong order; fix it by hand")
        doc = doc.rstrip("\n") + f"\n\n{SECTION}\n\n{block}\n"
    with open(doc_file, "w", encoding="utf-8") as f:
        f.write(doc)


def main(argv):
    if len(argv) >= 2 and argv[0] == "table":
        labels = {}
        rest = argv[2:]
        while rest:
            if rest[0] != "--label" or len(rest) < 2 or "=" not in rest[1]:
                sys.exit(f"usage: summarize.py table RUNS_TSV [--label WORKLOAD=TEXT ...]; got {rest}")
            key, value = rest[1].split("=", 1)
            labels[key] = value
            rest = rest[2:]
        try:
            table(argv[1], labels)
        except WrkParseError as e:
            sys.exit(f"error: cannot parse wrk output: {e}")
    elif len(argv) == 3 and argv[0] == "update-docs":
        update_docs(argv[1], argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
