#!/usr/bin/env python3
"""Two broker binaries, same run: cached issuance under wrk, A and B alternated round by
round (so a change in the machine's load falls on both), with the bare-axum ceiling
measured between them as the yardstick.

    python3 bench/ab.py BEFORE_BIN AFTER_BIN [--connections 64] [--rounds 5] [--seconds 5]

Both brokers run `run.py`'s HTTP configuration (JWT, grant, durable SQLite audit, JSON
logs at info), each with its own audit database. Prints one Markdown table: per binary,
the median requests per second and p99 over the rounds, and each round's ratio to the
ceiling. Wall-clock figures move with the machine: read the medians, and the
instruction counts of `callgrind.py` for small differences.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402  (the suite's build, configuration and server helpers)
import wrk as W  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("brokers", nargs=2, metavar="BIN", help="the two broker binaries (before, after)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    a = ap.parse_args()
    W.ensure_wrk(R.log)
    _, rtb_load, rtb_ceiling, _ = R.build()
    work = tempfile.mkdtemp(prefix="rtb-ab-")
    servers = []
    try:
        jwts, script = W.callers(rtb_load, work, R.ISSUER)
        brokers = []
        for i, b in enumerate(a.brokers):
            config = os.path.join(work, f"broker-{i}.toml")
            with open(config, "w") as f:
                f.write(R.broker_config(work, f"sqlite://{work}/audit-{i}.db"))
            s = R.Server([b, "serve", "--config", config], env=dict(os.environ, **R.AWS_ENV))
            servers.append(s)
            # First request per caller mints; the rest are cache hits.
            R.load(rtb_load, s.base + "/v1/tokens", 64, 0.5, 0.2, jwts)
            brokers.append(s)
        ceiling = R.Server([rtb_ceiling])
        servers.append(ceiling)
        rows = {b: [] for b in a.brokers}
        for r in range(a.rounds):
            # Alternate the order too, so neither binary always runs first.
            order = list(zip(a.brokers, brokers))
            if r % 2:
                order.reverse()
            c = W.run_wrk(ceiling.base + "/v1/tokens", a.connections, a.seconds, script, None)
            for name, s in order:
                x = W.run_wrk(s.base + "/v1/tokens", a.connections, a.seconds, script, jwts)
                if x["errors"] or x["status_errors"]:
                    raise RuntimeError(f"{name}: requests failed: {x}")
                rows[name].append((x["rps"], x["p99_us"], x["rps"] / c["rps"]))
                R.log(f"round {r + 1}: {name}: {x['rps']:.0f}/s p99 {x['p99_us']} us "
                      f"({x['rps'] / c['rps']:.2f}x the ceiling's {c['rps']:.0f}/s)")
        print(f"| binary | median req/s ({a.connections} connections) | median p99 ms | "
              f"median / ceiling | rounds |")
        print("|---|---|---|---|---|")
        for name in a.brokers:
            rps = statistics.median(x[0] for x in rows[name])
            p99 = statistics.median(x[1] for x in rows[name]) / 1000
            ratio = statistics.median(x[2] for x in rows[name])
            print(f"| {name} | {rps:.0f} | {p99:.2f} | {ratio:.2f} | {a.rounds} x {a.seconds} s |")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
