"""The wrk part of the suite: cached issuance against the bare-axum ceiling, driven by wrk
(a C load generator, far cheaper per request than rtb-load, so the ceiling can run at full
speed), alternated in one run, with the goals of issue 22 checked against an fsync
measured on the same disk.

wrk keeps one keep-alive connection per `-c` connection; the Lua script below gives each
request one of the suite's JWTs in turn (each caller's token is cached after its first
request) and prints wrk's figures as one JSON line.
"""

import json
import os
import shutil
import subprocess
import sys
import time

# Per-request work kept small: every request text is built once, in init().
LUA = r"""
local reqs = {}
local n = 0
local i = 0

function init(args)
  local path = args[1]
  local body = '{"target":"orders-db"}'
  local f = io.open(path, "r")
  if f == nil then
    reqs[1] = wrk.format("POST", wrk.path, {["Content-Type"] = "application/json"}, body)
  else
    for line in f:lines() do
      if #line > 0 then
        n = n + 1
        reqs[n] = wrk.format("POST", wrk.path, {
          ["Content-Type"] = "application/json",
          ["Authorization"] = "Bearer " .. line,
        }, body)
      end
    end
    f:close()
  end
  n = #reqs
  -- Threads start at different callers (`id` is set by setup()).
  i = ((id or 0) * 7919) % n
end

function setup(thread)
  setup_id = (setup_id or 0) + 1
  thread:set("id", setup_id)
end

function request()
  i = i % n + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"errors":%d,"status_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d,"p999_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.mean))
end
"""


def ensure_wrk(log):
    """wrk from Debian when it is missing (as the test scripts install their tools)."""
    if shutil.which("wrk"):
        return "wrk"
    log("installing wrk (apt-get)")
    apt = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    if os.geteuid() != 0:
        apt = ["sudo", *apt]
    if subprocess.run(apt, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run([apt[0], "update"] if apt[0] == "apt-get" else ["sudo", "apt-get", "update"],
                       stdout=subprocess.DEVNULL, check=True)
        subprocess.run(apt, stdout=subprocess.DEVNULL, check=True)
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed and could not be installed")
    return "wrk"


def callers(rtb_load, work, issuer, principals=64):
    """In `work`: `principals` callers' JWTs (one per line, from `rtb-load keys`, which also
    writes the issuer's JWKS there) and the Lua script that sends them in turn. Returns
    (the JWT file, the script)."""
    subprocess.run([rtb_load, "keys", "--dir", work, "--issuer", issuer, "--principals", str(principals)],
                   check=True, capture_output=True)
    script = os.path.join(work, "tokens.lua")
    with open(script, "w") as f:
        f.write(LUA)
    return os.path.join(work, "jwts.txt"), script


def run_wrk(url, connections, seconds, script, jwts):
    threads = 1 if connections == 1 else min(2, connections)
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
         "-s", script, url, "--", jwts or "/nonexistent"],
        check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("{"))
    r = json.loads(line)
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
    return r


def fsync_p50_us(directory, n):
    """p50 of one 4 KiB write + fsync of a file in `directory` (the audit database's disk)."""
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    times = []
    try:
        block = b"x" * 4096
        for i in range(n):
            os.pwrite(fd, block, (i % 64) * 4096)
            t0 = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    times.sort()
    return times[len(times) // 2] * 1e6


def wrk_levels(broker_base, ceiling_base, work, jwts, levels, seconds, log):
    """wrk rows: broker then ceiling at each level, alternated, and the goals."""
    script = os.path.join(work, "tokens.lua")
    with open(script, "w") as f:
        f.write(LUA)
    rows = []
    for c in levels:
        b = run_wrk(broker_base + "/v1/tokens", c, seconds, script, jwts)
        a = run_wrk(ceiling_base + "/v1/tokens", c, seconds, script, None)
        ratio = b["rps"] / a["rps"] if a["rps"] else None
        rows.append({"connections": c, "broker": b, "ceiling": a, "ratio": ratio})
        log(f"wrk {c:>3} connections: broker {b['rps']:.0f}/s p50 {b['p50_us']} us p99 {b['p99_us']} us, "
            f"ceiling {a['rps']:.0f}/s p50 {a['p50_us']} us p99 {a['p99_us']} us, ratio {ratio:.2f}")
    bad = sum(r["broker"]["errors"] + r["broker"]["status_errors"] for r in rows)
    if bad:
        raise RuntimeError(f"wrk: {bad} broker requests failed or were not 2xx")
    fsync = fsync_p50_us(work, 200)
    return {"rows": rows, "fsync_p50_us": fsync, "goals": goals(rows, fsync)}


def goals(rows, fsync_us):
    by = {r["connections"]: r for r in rows}
    out = []
    if 64 in by:
        r = by[64]
        out.append({"goal": "64 connections: broker >= 0.6x the ceiling's req/s",
                    "value": f"{r['ratio']:.2f}x", "met": r["ratio"] >= 0.6})
        limit = 2 * r["ceiling"]["p99_us"]
        out.append({"goal": "64 connections: broker p99 <= 2x the ceiling's p99",
                    "value": f"{r['broker']['p99_us'] / 1000:.2f} ms against {limit / 1000:.2f} ms",
                    "met": r["broker"]["p99_us"] <= limit})
    if 1 in by:
        r = by[1]
        limit = r["ceiling"]["p50_us"] + fsync_us + 50
        out.append({"goal": "1 connection: broker p50 <= ceiling p50 + fsync p50 + 50 us",
                    "value": f"{r['broker']['p50_us']} us against {r['ceiling']['p50_us']} + {fsync_us:.0f} + 50 = {limit:.0f} us",
                    "met": r["broker"]["p50_us"] <= limit})
    return out


def markdown(w):
    lines = ["## Cached issuance driven by wrk (one keep-alive connection each) vs bare axum", "",
             "| connections | broker req/s | p50 us | p99 us | p99.9 us | ceiling req/s | ceiling p50 us | ceiling p99 us | broker / ceiling |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in w["rows"]:
        b, c = r["broker"], r["ceiling"]
        lines.append(f"| {r['connections']} | {b['rps']:.0f} | {b['p50_us']} | {b['p99_us']} | {b['p999_us']} | "
                     f"{c['rps']:.0f} | {c['p50_us']} | {c['p99_us']} | {r['ratio']:.2f} |")
    lines += ["", f"fsync p50 on the audit database's disk (4 KiB write + fsync, 200 times): {w['fsync_p50_us']:.0f} us", "",
              "| goal | this run | |", "|---|---|---|"]
    for g in w["goals"]:
        lines.append(f"| {g['goal']} | {g['value']} | {'pass' if g['met'] else 'FAIL'} |")
    return "\n".join(lines)
