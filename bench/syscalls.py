#!/usr/bin/env python3
"""System calls per cached issuance, counted by `strace -c` on every thread of a warm
broker while one client (one keep-alive connection, as wrk's 1-connection row) sends
cached requests (wrk, the same Lua script as run.py's wrk rows): a count that machine load
does not move.

    python3 bench/syscalls.py                 # the broker built from this checkout
    python3 bench/syscalls.py BIN [BIN ...]   # other broker binaries, side by side

The broker runs run.py's HTTP configuration (JWT, grant, durable SQLite audit, JSON logs at
info). strace attaches after a warm-up (first requests mint; the rest are cache hits) and
detaches after the measured run; the broker's own request counter gives the divisor.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402
import wrk as W  # noqa: E402


def tokens_served(base):
    import urllib.request
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return int(sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                   if l.startswith("rds_token_broker_tokens_total{")))


def wrk_run(url, connections, seconds, script, jwts):
    subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "-s", script, url, "--", jwts],
                   check=True, capture_output=True)


def measure(broker_bin, work, jwts, script, seconds, i, connections=1):
    config = os.path.join(work, f"broker-{i}.toml")
    with open(config, "w") as f:
        f.write(R.broker_config(work, f"sqlite://{work}/audit-{i}.db"))
    server = R.Server([broker_bin, "serve", "--config", config], env=dict(os.environ, **R.AWS_ENV))
    out = os.path.join(work, f"strace-{i}.txt")
    try:
        url = server.base + "/v1/tokens"
        wrk_run(url, 64, 1, script, jwts)
        tids = os.listdir(f"/proc/{server.proc.pid}/task")
        args = ["strace", "-c", "-f", "-o", out]
        for t in tids:
            args += ["-p", t]
        st = subprocess.Popen(args, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        before = tokens_served(server.base)
        wrk_run(url, connections, seconds, script, jwts)
        after = tokens_served(server.base)
        st.send_signal(signal.SIGINT)
        st.wait(30)
    finally:
        server.stop()
    n = after - before
    calls = {}
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                calls[parts[-1]] = int(parts[3])
    return n, {k: v / n for k, v in sorted(calls.items(), key=lambda kv: -kv[1])}


def main():
    W.ensure_wrk(R.log)
    if not shutil.which("strace"):
        sys.exit("strace is not installed (Debian: apt-get install strace)")
    ap = argparse.ArgumentParser()
    ap.add_argument("brokers", nargs="*")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=1, help="wrk connections during the count")
    a = ap.parse_args()
    broker_bin, rtb_load, _, _ = R.build()
    brokers = a.brokers or [broker_bin]
    work = tempfile.mkdtemp(prefix="rtb-syscalls-")
    try:
        jwts, script = W.callers(rtb_load, work, R.ISSUER)
        for i, b in enumerate(brokers):
            n, per = measure(b, work, jwts, script, a.seconds, i, a.connections)
            total = sum(per.values())
            print(json.dumps({"broker": b, "connections": a.connections, "issuances": n, "syscalls_per_issuance": round(total, 2),
                              "by_call": {k: round(v, 2) for k, v in per.items() if v >= 0.01}}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
