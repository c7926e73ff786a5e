#!/usr/bin/env python3
"""Where a cached issuance's CPU goes, in wall-clock terms the instruction counts of
callgrind.py cannot give: the broker and the bare-axum ceiling under the same wrk load,
one after the other in one run, with

- CPU microseconds per request, user and kernel, read from /proc/PID/stat before and
  after the window and divided by the requests wrk completed, and wrk's own (its
  rusage): on two cores, server + wrk per request bounds the rate;
- with --perf: a `perf record` sample of the broker during its window, grouped by where
  the time goes (kernel, SQLite, TLS/hash crypto, allocator, tokio, hyper/axum/tower,
  logging, the broker's own code ...), and the top symbols.

    python3 bench/cpu.py [BIN] [--connections 64] [--seconds 10] [--perf]

BIN defaults to this checkout's release build (run.py builds it). Needs wrk (installed
as run.py installs it) and, for --perf, `perf` (Debian's linux-perf).
"""

import argparse
import collections
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402
import wrk as W  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")

# (group, pattern on "dso symbol"), first match wins.
GROUPS = [
    ("kernel", re.compile(r"^\[kernel|\[k\]")),
    ("sqlite", re.compile(r"sqlite3|\bwal[A-Z]|\bbtree|\bpager|\bvdbe|libsqlite")),
    ("sha256/crypto", re.compile(r"sha256|sha2|aws_lc|ring_core|hmac|SHA256|ring::")),
    ("allocator", re.compile(r"\bmi_|_mi_|mimalloc|malloc|free\b|realloc|memcpy|memmove|memset")),
    ("logging (tracing)", re.compile(r"tracing|telemetry")),
    ("metrics", re.compile(r"metrics")),
    ("audit encoding (JCS, event)", re.compile(r"audit::jcs|audit::event|serde_json")),
    ("sqlx", re.compile(r"sqlx")),
    ("moka caches", re.compile(r"moka|crossbeam|quanta")),
    ("hyper/axum/tower/http", re.compile(r"hyper|axum|tower|http::|httparse|matchit")),
    ("tokio", re.compile(r"tokio|parking_lot|futex")),
    ("broker code", re.compile(r"rds_token_broker")),
    ("libc/other", re.compile(r".")),
]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])  # utime, stime (fields 14, 15)


def window(server, url, connections, seconds, script, jwts, perf_out=None):
    rec = None
    if perf_out:
        rec = subprocess.Popen(["perf", "record", "-F", "1999", "-g", "-o", perf_out, "-p", str(server.proc.pid)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    u0, s0 = cpu_ticks(server.proc.pid)
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = W.run_wrk(url, connections, seconds, script, jwts)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    u1, s1 = cpu_ticks(server.proc.pid)
    if rec:
        rec.send_signal(2)
        rec.wait(60)
    n = max(r["requests"], 1)
    r["user_us_per_request"] = (u1 - u0) / TICKS / n * 1e6
    r["kernel_us_per_request"] = (s1 - s0) / TICKS / n * 1e6
    # wrk is the only child that ends in the window: its own CPU, user and kernel.
    r["wrk_us_per_request"] = ((c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)) / n * 1e6
    return r


def perf_groups(path, top):
    out = subprocess.run(["perf", "report", "-i", path, "--stdio", "--no-children", "--sort", "dso,sym",
                          "-g", "none", "--percent-limit", "0"],
                         check=True, capture_output=True, text=True).stdout
    groups = collections.Counter()
    symbols = []
    for line in out.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
        if not m:
            continue
        pct, dso, space, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
        key = f"[k] {sym}" if space == "k" else f"{dso} {sym}"
        group = next(g for g, p in GROUPS if p.search(key))
        groups[group] += pct
        symbols.append((pct, group, key[:140]))
    return groups, sorted(symbols, reverse=True)[:top]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("broker", nargs="?", help="broker binary (default: this checkout's release build)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--perf", action="store_true", help="also sample the broker with perf record")
    ap.add_argument("--top", type=int, default=40)
    a = ap.parse_args()
    W.ensure_wrk(R.log)
    broker_bin, rtb_load, rtb_ceiling, _ = R.build()
    broker_bin = a.broker or broker_bin
    if a.perf and not shutil.which("perf"):
        sys.exit("perf is not installed (apt-get install linux-perf)")
    work = tempfile.mkdtemp(prefix="rtb-cpu-")
    servers = []
    try:
        jwts, script = W.callers(rtb_load, work, R.ISSUER)
        config = os.path.join(work, "broker.toml")
        with open(config, "w") as f:
            f.write(R.broker_config(work, f"sqlite://{work}/audit.db"))
        broker = R.Server([broker_bin, "serve", "--config", config], env=dict(os.environ, **R.AWS_ENV))
        servers.append(broker)
        R.load(rtb_load, broker.base + "/v1/tokens", 64, 0.5, 0.2, jwts)
        ceiling = R.Server([rtb_ceiling])
        servers.append(ceiling)
        perf_out = os.path.join(work, "perf.data") if a.perf else None
        b = window(broker, broker.base + "/v1/tokens", a.connections, a.seconds, script, jwts, perf_out)
        c = window(ceiling, ceiling.base + "/v1/tokens", a.connections, a.seconds, script, None)
        if b["errors"] or b["status_errors"]:
            raise RuntimeError(f"broker requests failed: {b}")
        print(f"| {a.connections} connections, {a.seconds} s | req/s | p50 us | p99 us | server user CPU us/request "
              f"| server kernel CPU us/request | wrk CPU us/request |")
        print("|---|---|---|---|---|---|---|")
        for name, r in (("broker", b), ("ceiling", c)):
            print(f"| {name} | {r['rps']:.0f} | {r['p50_us']} | {r['p99_us']} | {r['user_us_per_request']:.1f} "
                  f"| {r['kernel_us_per_request']:.1f} | {r['wrk_us_per_request']:.1f} |")
        print(f"\nbroker / ceiling: {b['rps'] / c['rps']:.2f}x")
        if perf_out:
            groups, symbols = perf_groups(perf_out, a.top)
            print("\n| where the broker's samples fall | % |\n|---|---|")
            for g, pct in groups.most_common():
                print(f"| {g} | {pct:.1f} |")
            print("\n| % | group | symbol |\n|---|---|---|")
            for pct, g, sym in symbols:
                print(f"| {pct:.2f} | {g} | `{sym}` |")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
