#!/usr/bin/env python3
"""Where `rds-token-broker proxy` spends per query, independent of machine load: a fixed
`pgbench -S -c 1 -t N` through the proxy while the proxy runs under `strace -c -f`
(syscalls per query) or `valgrind --tool=callgrind` (instructions per query).

    python3 bench/proxy_pg_profile.py --tool strace|callgrind [--bin PATH] [-t N] [--out DIR]

The PostgreSQL, broker and proxy set-up is bench/proxy_pg.py's. Without a tool it runs the
proxy bare (a baseline for the counts: subtract the sign-in by running -t 1).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_pg as base  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", choices=["none", "strace", "callgrind"], default="none")
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(base.ROOT, "target"),
                                                 "release", "rds-token-broker"))
    ap.add_argument("-t", type=int, default=2000, help="transactions")
    ap.add_argument("--threads", type=int, default=1, help="the proxy's --threads")
    ap.add_argument("--out", default=tempfile.gettempdir())
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="rtb-bench-proxy-prof-")
    os.chmod(work, 0o755)
    procs = []
    try:
        _, url, _, env = base.database_and_broker(work, a.bin, procs)
        prefix = {
            "none": [],
            "strace": ["strace", "-f", "-c", "-o", os.path.join(a.out, "proxy.strace")],
            "callgrind": ["valgrind", "--tool=callgrind", f"--callgrind-out-file={a.out}/callgrind.out.%p"],
        }[a.tool]
        proxy = subprocess.Popen(prefix + [a.bin, "proxy", "--broker", url, "--listen", "bench=127.0.0.1:0",
                                           "--db-ca-file", f"{work}/ca.pem", "--k8s-token-file", "/nonexistent",
                                           "--threads", str(a.threads)],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(proxy)
        port = int(base.wait_line(proxy, r"proxy listening on 127\.0\.0\.1:(\d+)", timeout=180))
        conn = f"host=127.0.0.1 port={port} user=bench dbname=postgres sslmode=disable"
        # Warm the token cache, then the measured run.
        subprocess.run(["pgbench", "-n", "-S", "-c", "1", "-t", "1", conn], check=True, capture_output=True)
        started = time.time()
        out = subprocess.run(["pgbench", "-n", "-S", "-c", "1", "-t", str(a.t), conn], check=True,
                             capture_output=True, text=True).stdout
        print(json.dumps({"tool": a.tool, "transactions": a.t, "seconds": round(time.time() - started, 2),
                          "pgbench": [l for l in out.splitlines() if "tps" in l or "latency" in l]}))
        # Stop the proxy itself (under a tool, the tool's child) so the tool writes its report.
        target = proxy.pid
        if a.tool == "strace":
            with open(f"/proc/{proxy.pid}/task/{proxy.pid}/children") as f:
                target = int(f.read().split()[0])
        os.kill(target, 15)
        proxy.wait(300)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
