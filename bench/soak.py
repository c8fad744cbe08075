#!/usr/bin/env python3
"""Helper of bench/soak.sh: one soak run of a nimbus binary.

    soak.py --nimbus BIN --guests DIR [--duration SECS] [--docs FILE]

Serves two workloads from one manifest: `good` (the P2 hello guest) and
`hostile` (crates/test-programs' p2_hostile guest, 64 MiB, 1 s deadline).
It measures the most req/s wrk gets from `good` alone, then for DURATION
seconds sends `good` about 80% of that while a mix of hostile clients runs
beside it: guests that create header fields until trapped, spin until the
deadline, stream forever to a client that leaves, write to stdout forever,
hold outbound connections open; clients that send nothing, half a request
head, part of an HTTP/2 preface, garbage, oversized headers, or leave
mid-request. Every few seconds it reads the server's RSS and open
descriptors from /proc. Good requests must all succeed, and RSS and
descriptors must end where they stood after warming up (within a stated
slack), and come back after the load stops. The report goes to stdout and,
with --docs, into that file between `<!-- soak:begin -->` and
`<!-- soak:end -->`. Exit status 1 when a check fails.
"""

import argparse
import asyncio
import datetime
import math
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BEGIN = "<!-- soak:begin -->"
END = "<!-- soak:end -->"
SAMPLE_EVERY = 5.0
WARMUP = 60.0
IDLE_WAIT = 60.0
# How far RSS and descriptors may drift between the end of warm-up and the
# end of the run and still count as flat.
RSS_SLACK = (0.20, 64 << 20)  # 20% plus 64 MiB
FD_SLACK = 64
# Hostile requests run one after another in this many loops, each pausing
# HOSTILE_PAUSE between two: several of them burn a core for the whole 1 s
# deadline, and the good load is meant to keep its 80%.
HOSTILE_TASKS = 3
HOSTILE_PAUSE = 0.1
HELD_CONNECTIONS = 200
# wrk paces each connection with this pause between its requests.
PACE_MS = 10
# What docs/security.md says a host keeps after load: per instance slot that
# was in use at the peak (and 16 warm ones), 4 MiB; plus allocator slack.
SLOT_KEEP = 4 << 20
WARM_SLOTS = 16
IDLE_SLACK = 64 << 20


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_sample(pid):
    """(rss bytes, open descriptors) of process `pid`."""
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds


def wait_healthy(admin, deadline=60.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"http://{admin}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"error: nimbus was not ready at {admin} within {deadline:.0f} s")


def run_wrk(addr, host, seconds, connections, script=None):
    """Runs wrk against `addr` with Host `host`; returns its parsed summary."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
           "-H", f"Host: {host}"]
    if script:
        cmd += ["-s", script]
    cmd.append(f"http://{addr}/")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         timeout=seconds + 60).stdout
    summary = {"raw": out}
    m = re.search(r"(\d+) requests in", out)
    summary["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    summary["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    summary["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    summary["socket_errors"] = sum(int(g) for g in m.groups()) if m else 0
    m = re.search(r"Latency\s+([\d.]+)(us|ms|s)", out)
    if m:
        scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
        summary["latency_ms"] = float(m.group(1)) * scale
    else:
        summary["latency_ms"] = 0.0
    return summary


# ---------------------------------------------------------------- upstream

def start_upstream():
    """A server that answers the start of a chunked body and then holds the
    connection until the client leaves (what /hold keeps open)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)

    def serve(conn):
        with conn:
            try:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nx\r\n")
                while conn.recv(4096):
                    pass
            except OSError:
                pass

    def accept_loop():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    return listener.getsockname()[1]


# ---------------------------------------------------------------- hostile mix

class Hostile:
    """The hostile clients: each attack runs to its end, one after another,
    in HOSTILE_TASKS concurrent loops, beside up to HELD_CONNECTIONS
    connections that say nothing or half a request head."""

    def __init__(self, addr, upstream_port):
        self.host, port = addr.rsplit(":", 1)
        self.port = int(port)
        self.upstream = upstream_port
        self.counts = {}
        self.held = 0

    def count(self, kind, outcome):
        key = (kind, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1

    async def open(self):
        return await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 10)

    async def request(self, kind, path, read_limit=1 << 20, leave_after=None):
        """GET `path` from the hostile workload; reads at most `read_limit`
        bytes (or leaves after `leave_after` seconds); counts the status."""
        reader, writer = await self.open()
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: hostile.soak\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            if leave_after is not None:
                await asyncio.sleep(leave_after)
                self.count(kind, "left")
                return
            head = await asyncio.wait_for(reader.readline(), 30)
            status = head.split()[1].decode() if len(head.split()) > 1 else "closed"
            got = 0
            while got < read_limit:
                chunk = await asyncio.wait_for(reader.read(65536), 30)
                if not chunk:
                    break
                got += len(chunk)
            self.count(kind, status)
        finally:
            writer.close()

    async def raw(self, kind, payload, hold=0.0):
        """Sends raw bytes to the ingress and reads what comes back."""
        reader, writer = await self.open()
        try:
            writer.write(payload)
            await writer.drain()
            if hold:
                await asyncio.sleep(hold)
            head = await asyncio.wait_for(reader.read(64), 30)
            status = head.split()[1].decode(errors="replace") if head.startswith(b"HTTP/") else ("closed" if not head else "other")
            self.count(kind, status)
        except (ConnectionError, asyncio.TimeoutError):
            self.count(kind, "reset")
        finally:
            writer.close()

    async def held_connection(self, payload):
        """A connection that sends `payload` (maybe nothing) and waits for
        the server to close it."""
        self.held += 1
        try:
            reader, writer = await self.open()
            try:
                if payload:
                    writer.write(payload)
                    await writer.drain()
                await asyncio.wait_for(reader.read(1), 120)
                self.count("held", "closed by server")
            except asyncio.TimeoutError:
                self.count("held", "still open after 120 s")
            finally:
                writer.close()
        except (ConnectionError, asyncio.TimeoutError):
            self.count("held", "refused")
        finally:
            self.held -= 1

    def attacks(self):
        up = f"http://127.0.0.1:{self.upstream}/"
        return [
            lambda: self.request("fields", "/fields?kb=100&count=100000"),
            lambda: self.request("spin", "/spin"),
            lambda: self.request("stream, client leaves", "/stream?kb=64", read_limit=4 << 20),
            lambda: self.request("stdout", "/stdout?lines=0"),
            lambda: self.request("hold outbound", f"/hold?count=1000&url={up}"),
            lambda: self.request("spin, client leaves", "/spin", leave_after=0.05),
            lambda: self.raw("garbage", bytes(random.getrandbits(8) for _ in range(512)) + b"\r\n\r\n"),
            lambda: self.raw("oversized header", b"GET / HTTP/1.1\r\nHost: good.soak\r\nx-big: " + b"a" * 200_000 + b"\r\n\r\n"),
            lambda: self.raw("HTTP/2 preface, cut", b"PRI * HTTP/2.0\r\n\r\nSM\r\n", hold=1.0),
        ]

    async def attack_loop(self, until):
        attacks = self.attacks()
        while time.monotonic() < until:
            attack = random.choice(attacks)
            try:
                await attack()
            except (ConnectionError, asyncio.TimeoutError, OSError) as e:
                self.count("client error", type(e).__name__)
            await asyncio.sleep(HOSTILE_PAUSE)

    async def hold_loop(self, until):
        payloads = [b"", b"G", b"GET / HTTP/1.1\r\nHost: good.soak\r\n", b"PRI * HTTP/2.0\r\n"]
        tasks = set()
        while time.monotonic() < until:
            while self.held < HELD_CONNECTIONS and time.monotonic() < until:
                task = asyncio.ensure_future(self.held_connection(random.choice(payloads)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)
        for task in list(tasks):
            task.cancel()

    def run(self, seconds):
        async def main():
            until = time.monotonic() + seconds
            await asyncio.gather(self.hold_loop(until),
                                 *(self.attack_loop(until) for _ in range(HOSTILE_TASKS)),
                                 return_exceptions=True)
        asyncio.run(main())


# ---------------------------------------------------------------- the run

MANIFEST = """\
apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: Workload
metadata: {{name: good, namespace: soak}}
spec:
  components:
    - name: hello
      image: file://{guests}/p2_hello.wasm
  hostInterfaces:
    - {{namespace: wasi, package: http, interfaces: [incoming-handler], config: {{host: good.soak}}}}
---
apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: Workload
metadata: {{name: hostile, namespace: soak}}
spec:
  components:
    - name: hostile
      image: file://{guests}/p2_hostile.wasm
      localResources:
        memoryLimitMb: 64
        timeoutMs: 1000
        allowedHosts: ["127.0.0.1:{upstream}"]
  hostInterfaces:
    - {{namespace: wasi, package: http, interfaces: [incoming-handler], config: {{host: hostile.soak}}}}
"""


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.system()} {platform.release()}"


def mib(n):
    return f"{n / (1 << 20):.0f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nimbus", required=True)
    parser.add_argument("--guests", required=True)
    parser.add_argument("--duration", type=int, default=600)
    parser.add_argument("--docs")
    args = parser.parse_args()
    if args.duration < 2 * WARMUP:
        raise SystemExit(f"error: --duration must be at least {2 * WARMUP:.0f} s (one warm-up minute, one to compare)")
    for guest in ("p2_hello.wasm", "p2_hostile.wasm"):
        if not os.path.isfile(os.path.join(args.guests, guest)):
            raise SystemExit(f"error: {guest} is missing from {args.guests}")

    work = tempfile.mkdtemp(prefix="nimbus-soak.")
    upstream = start_upstream()
    manifest = os.path.join(work, "soak.yaml")
    with open(manifest, "w", encoding="utf-8") as f:
        f.write(MANIFEST.format(guests=os.path.abspath(args.guests), upstream=upstream))
    addr = f"127.0.0.1:{free_port()}"
    admin = f"127.0.0.1:{free_port()}"
    server_log = open(os.path.join(work, "nimbus.log"), "w", encoding="utf-8")
    server = subprocess.Popen(
        [args.nimbus, "serve", manifest, "--addr", addr, "--admin-addr", admin,
         "--router", "host", "--cache-dir", os.path.join(work, "cache"),
         "--first-request-timeout", "5", "--idle-timeout", "10"],
        stdout=server_log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "error"})
    try:
        wait_healthy(admin)
        baseline = proc_sample(server.pid)
        log(f"==> nimbus {server.pid} ready at {addr}; idle RSS {mib(baseline[0])} MiB, {baseline[1]} descriptors")

        log("==> measuring the most req/s of `good` alone (wrk, 32 connections, 15 s)")
        run_wrk(addr, "good.soak", 5, 32)
        peak = run_wrk(addr, "good.soak", 15, 32)
        target = peak["rps"] * 0.8
        # wrk has no request rate of its own: each connection waits PACE_MS
        # between requests, and the number of connections is tuned in two
        # short trials until the rate is about the target.
        script = os.path.join(work, "pace.lua")
        with open(script, "w", encoding="utf-8") as f:
            f.write(f"function delay() return {PACE_MS} end\n")
        connections = max(1, math.ceil(target * (PACE_MS + peak["latency_ms"]) / 1000))
        trial = None
        for _ in range(2):
            trial = run_wrk(addr, "good.soak", 10, connections, script)
            connections = max(1, round(connections * target / max(trial["rps"], 1.0)))
            log(f"    {trial['rps']:.0f} req/s in a trial; {connections} connections next")
        log(f"==> most {peak['rps']:.0f} req/s; soaking at ~{target:.0f} req/s "
            f"({connections} paced connections) for {args.duration} s with the hostile mix")

        samples = []
        stop = threading.Event()

        def sampler():
            start = time.monotonic()
            while not stop.is_set():
                try:
                    samples.append((time.monotonic() - start, *proc_sample(server.pid)))
                except (OSError, StopIteration):
                    return
                stop.wait(SAMPLE_EVERY)

        threading.Thread(target=sampler, daemon=True).start()
        hostile = Hostile(addr, upstream)
        hostile_thread = threading.Thread(target=hostile.run, args=(args.duration,), daemon=True)
        hostile_thread.start()
        soak = run_wrk(addr, "good.soak", args.duration, connections, script)
        hostile_thread.join(timeout=180)
        stop.set()
        if server.poll() is not None:
            raise SystemExit(f"error: nimbus exited during the soak (status {server.returncode}); log in {work}")

        log(f"==> load stopped; waiting {IDLE_WAIT:.0f} s for the host to settle")
        time.sleep(IDLE_WAIT)
        idle = proc_sample(server.pid)
        healthy = True
        try:
            with urllib.request.urlopen(f"http://{admin}/healthz", timeout=5) as r:
                healthy = r.status == 200
        except OSError:
            healthy = False
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
        server_log.close()

    warm = [s for s in samples if WARMUP <= s[0] < 2 * WARMUP]
    last = [s for s in samples if s[0] >= samples[-1][0] - WARMUP]
    warm_rss = statistics.median(s[1] for s in warm)
    last_rss = statistics.median(s[1] for s in last)
    warm_fds = statistics.median(s[2] for s in warm)
    last_fds = statistics.median(s[2] for s in last)
    failed_good = soak["non2xx"] + soak["socket_errors"]
    # At most one instance per good connection and hostile loop at once.
    peak_instances = connections + HOSTILE_TASKS
    idle_bound = baseline[0] + (peak_instances + WARM_SLOTS) * SLOT_KEEP + IDLE_SLACK
    checks = [
        ("good requests that failed", failed_good == 0, f"{failed_good} of {soak['requests']}"),
        ("RSS flat (last minute vs second minute)",
         last_rss <= warm_rss * (1 + RSS_SLACK[0]) + RSS_SLACK[1],
         f"{mib(warm_rss)} → {mib(last_rss)} MiB"),
        ("descriptors flat (last minute vs second minute)",
         last_fds <= warm_fds + FD_SLACK, f"{warm_fds:.0f} → {last_fds:.0f}"),
        ("RSS back within the stated bound after the load",
         idle[0] <= idle_bound,
         f"{mib(baseline[0])} MiB idle before, {mib(idle[0])} MiB {IDLE_WAIT:.0f} s after"
         f" (bound {mib(idle_bound)} MiB)"),
        ("descriptors back after the load", idle[1] <= baseline[1] + 8,
         f"{baseline[1]} before, {idle[1]} after"),
        ("/healthz answers after the soak", healthy, "yes" if healthy else "no"),
    ]

    date = datetime.date.today().isoformat()
    lines = [
        f"Run {date} on {machine()}; `bench/soak.sh --duration {args.duration}`.",
        "",
        f"- `good` alone: {peak['rps']:.0f} req/s at most (wrk, 32 connections). The soak"
        f" offers it 80% of that: {connections} connections, each pausing {PACE_MS} ms between"
        f" requests, which gave {trial['rps']:.0f} req/s alone in the last pacing trial.",
        f"- Beside the hostile mix `good` got {soak['rps']:.0f} req/s"
        f" ({soak['rps'] / peak['rps'] * 100:.0f}% of the maximum) for {args.duration} s,"
        f" {soak['requests']} requests: the hostile guests that spin, write or allocate until"
        " stopped each hold a core for up to their 1 s deadline.",
        f"- Beside it: {HOSTILE_TASKS} loops of hostile requests ({HOSTILE_PAUSE * 1000:.0f} ms apart)"
        f" and up to {HELD_CONNECTIONS} connections held silent or half-sent.",
        f"- RSS after the load may be the idle RSS before it plus, per instance slot used at"
        f" the peak (at most {peak_instances}) and {WARM_SLOTS} warm ones, {SLOT_KEEP >> 20} MiB,"
        f" plus {IDLE_SLACK >> 20} MiB (docs/security.md, \"Host memory: the bound\").",
        "",
        "| check | result | holds |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {detail} | {'yes' if ok else '**no**'} |" for name, ok, detail in checks]
    lines += [
        "",
        f"RSS ranged {mib(min(s[1] for s in samples))}–{mib(max(s[1] for s in samples))} MiB and"
        f" descriptors {min(s[2] for s in samples)}–{max(s[2] for s in samples)} over"
        f" {len(samples)} samples, {SAMPLE_EVERY:.0f} s apart.",
        "",
        "| hostile client | outcome | times |",
        "|---|---|---:|",
    ]
    lines += [f"| {kind} | {outcome} | {n} |" for (kind, outcome), n in sorted(hostile.counts.items())]
    report = "\n".join(lines)
    print(report)
    if args.docs:
        with open(args.docs, encoding="utf-8") as f:
            doc = f.read()
        if BEGIN not in doc or END not in doc:
            raise SystemExit(f"error: {args.docs} lacks the {BEGIN} … {END} markers")
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        with open(args.docs, "w", encoding="utf-8") as f:
            f.write(f"{head}{BEGIN}\n{report}\n{END}{tail}")
        log(f"==> report written to {args.docs}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
