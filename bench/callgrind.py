#!/usr/bin/env python3
"""Instructions per cached issuance, against the bare-axum ceiling, under valgrind's
callgrind: a count that machine noise cannot blur, for A/B comparisons of the hot path.

    python3 bench/callgrind.py                 # the broker built from this checkout
    python3 bench/callgrind.py BIN [BIN ...]   # other broker binaries, side by side

Each server runs under callgrind with instrumentation off; after three warm-up rounds of
64 concurrent requests (64 distinct JWTs, every request a cache hit after the first
round), instrumentation is switched on for --rounds rounds of 64 and off again. The
broker runs the same configuration as `run.py`'s HTTP part (JWT, grant, durable SQLite
audit, JSON logs at info). Only user-space instructions are counted: system calls
(network, the audit store's writes and fsync) are not. Under valgrind SHA-256 runs
sha2's portable code (valgrind hides SHA-NI), so its share is shown apart: natively it
costs several times less.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402  (the suite's build, configuration and server helpers)


def measure(cmd, base_url_of, rtb_load, work, jwts, rounds, env=None, keep=None):
    out = os.path.join(work, "callgrind.out")
    for f in glob.glob(out + "*"):
        os.unlink(f)
    server = R.Server(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                       f"--callgrind-out-file={out}", *cmd], env=env)

    def one_round():
        args = [rtb_load, "run", "--url", base_url_of(server), "--concurrency", "64",
                "--once", "--seconds", "120"]
        if jwts:
            args += ["--jwts", jwts]
        r = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
        if r["failed"] or r["requests"] != 64:
            raise RuntimeError(f"a round was not fully answered: {r}")

    try:
        for _ in range(3):
            one_round()
        subprocess.run(["callgrind_control", "-i", "on", str(server.proc.pid)], check=True, capture_output=True)
        for _ in range(rounds):
            one_round()
        time.sleep(0.5)
        subprocess.run(["callgrind_control", "-i", "off", str(server.proc.pid)], check=True, capture_output=True)
    finally:
        server.stop()
    total = 0
    with open(out) as f:
        for line in f:
            if line.startswith("totals:"):
                total = int(line.split()[1])
    sha = 0
    annotated = subprocess.run(["callgrind_annotate", "--threshold=100", out], capture_output=True, text=True).stdout
    for line in annotated.splitlines():
        if "sha2::sha256::soft::compress" in line:
            sha = int(line.split()[0].replace(",", ""))
            break
    if keep:
        shutil.copy(out, keep)
    n = rounds * 64
    return total / n, sha / n


def main():
    if not shutil.which("valgrind"):
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    ap = argparse.ArgumentParser()
    ap.add_argument("brokers", nargs="*", help="broker binaries (default: this checkout's, built in release mode)")
    ap.add_argument("--rounds", type=int, default=20, help="measured rounds of 64 requests")
    ap.add_argument("--keep", metavar="DIR", help="keep each server's callgrind output in DIR "
                    "(ceiling.out, broker-0.out, ...) for callgrind_annotate")
    a = ap.parse_args()
    broker_bin, rtb_load, rtb_ceiling, _ = R.build()
    brokers = a.brokers or [broker_bin]
    work = tempfile.mkdtemp(prefix="rtb-callgrind-")
    try:
        subprocess.run([rtb_load, "keys", "--dir", work, "--issuer", R.ISSUER, "--principals", "64"],
                       check=True, capture_output=True)
        jwts = os.path.join(work, "jwts.txt")
        keep = (lambda name: os.path.join(a.keep, name)) if a.keep else (lambda name: None)
        if a.keep:
            os.makedirs(a.keep, exist_ok=True)
        ceiling, _ = measure([rtb_ceiling], lambda s: s.base + "/v1/tokens", rtb_load, work, None, a.rounds,
                             keep=keep("ceiling.out"))
        print(f"ceiling (bare axum): {ceiling / 1e3:.1f}k instructions per request")
        for i, b in enumerate(brokers):
            config = os.path.join(work, f"broker-{i}.toml")
            with open(config, "w") as f:
                f.write(R.broker_config(work, f"sqlite://{work}/audit-{i}.db"))
            ir, sha = measure([b, "serve", "--config", config], lambda s: s.base + "/v1/tokens", rtb_load,
                              work, jwts, a.rounds, env=dict(os.environ, **R.AWS_ENV),
                              keep=keep(f"broker-{i}.out"))
            print(f"{b}: {ir / 1e3:.1f}k instructions per request ({ir / ceiling:.2f}x the ceiling), "
                  f"of which SHA-256 in portable code {sha / 1e3:.1f}k")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
