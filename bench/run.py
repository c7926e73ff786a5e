#!/usr/bin/env python3
"""The benchmark suite in one command: builds in release mode, starts what it needs, and
prints and saves results for one run, side by side on this machine.

    python3 bench/run.py            # full run (a few minutes after the builds)
    python3 bench/run.py --quick    # a few seconds per part (CI runs this)

Results: bench/results/<date>-<host>.json and .md, and a PNG plot of latency against
concurrency beside them (--quick writes to a temporary directory instead, unless
--out DIR is given).
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
BENCH_TARGET = os.environ.get("BENCH_TARGET_DIR") or os.path.join(BENCH, "target")
VENV = os.path.join(BENCH, ".venv")
ISSUER = "https://idp.bench.invalid"
# Only what this script needs beyond the standard library.
REQUIREMENTS = ["awscli==1.46.3", "boto3==1.44.3", "matplotlib==3.11.2", "moto[server]==5.1.22"]


def log(msg):
    print(f"== {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def venv_python():
    py = os.path.join(VENV, "bin", "python")
    marker = os.path.join(VENV, ".installed")
    if not os.path.exists(py):
        run([sys.executable, "-m", "venv", VENV])
    want = "\n".join(REQUIREMENTS)
    if not os.path.exists(marker) or open(marker).read() != want:
        log("installing awscli, boto3 and matplotlib into bench/.venv")
        run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REQUIREMENTS])
        open(marker, "w").write(want)
    return py


def build():
    log("building the broker and the benchmark tools (release)")
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET)
    run(["cargo", "build", "--release", "--locked", "--bin", "rds-token-broker"], cwd=ROOT, env=env)
    env = dict(os.environ, CARGO_TARGET_DIR=BENCH_TARGET)
    # The criterion benchmarks too, in the same build: `cargo bench` later finds every
    # dependency built with the same features (its dev-dependencies included) instead of
    # compiling the tree a second time (the slowest step of a cold CI run).
    run(["cargo", "build", "--release", "--locked", "--bins", "--benches"], cwd=BENCH, env=env)
    return (
        os.path.join(TARGET, "release", "rds-token-broker"),
        os.path.join(BENCH_TARGET, "release", "rtb-load"),
        os.path.join(BENCH_TARGET, "release", "rtb-ceiling"),
        os.path.join(BENCH_TARGET, "release", "rtb-memory"),
    )


def offline_verify(broker_bin, work, n):
    """Peak RSS of the broker's offline `audit verify --export` on one chain of n events
    (generated straight, no HTTP) with 10 signed checkpoints: streaming keeps it flat."""
    log(f"offline verification of a chain of {n} events")
    gen = os.path.join(BENCH_TARGET, "release", "rtb-audit-export")
    notes = os.path.join(work, "checkpoints.log")
    key = subprocess.run([gen, str(n), "notes", notes], check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    events = subprocess.Popen([gen, str(n), "events"], stdout=subprocess.PIPE)
    started = time.time()
    verify = subprocess.Popen([broker_bin, "audit", "verify", "--export", "/dev/stdin",
                               "--checkpoints", notes, "--key", key],
                              stdin=events.stdout, stdout=subprocess.PIPE, text=True)
    events.stdout.close()
    out = verify.stdout.read()
    _, status, usage = os.wait4(verify.pid, 0)
    events.wait()
    seconds = time.time() - started
    if os.waitstatus_to_exitcode(status) != 0 or not out.startswith("ok:"):
        raise SystemExit(f"offline verify failed: {out}")
    return {"events": n, "checkpoints": 10, "peak_rss_mib": usage.ru_maxrss / 1024,
            "seconds": seconds, "output": out.strip()}


def online_verify(broker_bin, work, n):
    """Peak RSS of `audit verify --audit-url` (the broker's online walk plus the check
    against 10 stored signed checkpoints) on a SQLite store holding one chain of n events,
    appended straight by rtb-audit-export (no HTTP)."""
    log(f"online verification of a SQLite chain of {n} events")
    gen = os.path.join(BENCH_TARGET, "release", "rtb-audit-export")
    db = os.path.join(work, f"verify-{n}.db")
    url = f"sqlite://{db}"
    started = time.time()
    key = subprocess.run([gen, str(n), "store", url], check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    build_seconds = time.time() - started
    started = time.time()
    verify = subprocess.Popen([broker_bin, "audit", "verify", "--audit-url", url, "--key", key],
                              stdout=subprocess.PIPE, text=True)
    out = verify.stdout.read()
    _, status, usage = os.wait4(verify.pid, 0)
    seconds = time.time() - started
    for f in (db, db + "-wal", db + "-shm"):
        if os.path.exists(f):
            os.unlink(f)
    if os.waitstatus_to_exitcode(status) != 0 or not out.startswith("ok:"):
        raise SystemExit(f"online verify failed: {out}")
    return {"events": n, "checkpoints": 10, "peak_rss_mib": usage.ru_maxrss / 1024,
            "seconds": seconds, "build_seconds": build_seconds, "output": out.strip()}


class Server:
    """A child process that logs `listening on http://ADDR`; its output goes to a file (a
    pipe drained by this script would compete with it for the CPU)."""

    def __init__(self, cmd, env=None):
        self.log = tempfile.NamedTemporaryFile(prefix="rtb-bench-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.base = None
        for _ in range(300):
            with open(self.log.name) as f:
                m = re.search(r"listening on (https?://[0-9.:]+)", f.read())
            if m:
                self.base = m.group(1)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("did not start:\n" + open(self.log.name).read())

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.unlink(self.log.name)


def broker_config(work, audit_url):
    return f"""
[server]
listen = "127.0.0.1:0"
max_concurrent_requests = 4096
metrics_on_listen = true
# One load generator on one address opens up to 1,000 connections at once.
max_connections_per_ip = 16384
[log]
format = "json"
[audit]
url = "{audit_url}"
[rate_limit]
per_principal_per_second = 1000000
[[issuers]]
name = "bench"
issuer = "{ISSUER}"
jwks_file = "{work}/jwks.json"
audiences = ["rds-token-broker"]
[[targets]]
name = "orders-db"
host = "orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com"
port = 5432
engine = "postgres"
db_users = ["app_rw"]
[[grants]]
issuer = "bench"
subject = "bench-caller-*"
targets = ["orders-db"]
db_users = ["app_rw"]
"""


AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "RUST_LOG": "info",
}


def load(rtb_load, url, concurrency, seconds, warmup, jwts=None):
    cmd = [rtb_load, "run", "--url", url, "--concurrency", str(concurrency),
           "--seconds", str(seconds), "--warmup", str(warmup)]
    if jwts:
        cmd += ["--jwts", jwts]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def http_levels(tools, work, seconds, warmup, levels):
    broker_bin, rtb_load, rtb_ceiling, _ = tools
    config = os.path.join(work, "broker.toml")
    with open(config, "w") as f:
        f.write(broker_config(work, f"sqlite://{work}/audit.db"))
    env = dict(os.environ, **AWS_ENV)
    broker = Server([broker_bin, "serve", "--config", config], env=env)
    ceiling = Server([rtb_ceiling])
    jwts = os.path.join(work, "jwts.txt")
    rows = []
    try:
        # First request per caller mints; the rest are cache hits.
        load(rtb_load, broker.base + "/v1/tokens", 64, 0.5, 0.2, jwts)
        for c in levels:
            b = load(rtb_load, broker.base + "/v1/tokens", c, seconds, warmup, jwts)
            a = load(rtb_load, ceiling.base + "/v1/tokens", c, seconds, warmup)
            rows.append({"concurrency": c, "broker": b, "ceiling": a, "ratio": b["rps"] / a["rps"] if a["rps"] else None})
            log(f"{c:>3} clients: broker {b['rps']:.0f}/s p99 {b['p99_ms']:.2f} ms, ceiling {a['rps']:.0f}/s, ratio {rows[-1]['ratio']:.2f}")
    finally:
        broker.stop()
        ceiling.stop()
    failed = sum(r["broker"]["failed"] for r in rows)
    if failed:
        raise RuntimeError(f"{failed} broker requests failed")
    return rows


def http_wrk(tools, work, seconds, levels):
    """The same servers' configuration driven by wrk (see wrk.py)."""
    import wrk as W
    W.ensure_wrk(log)
    broker_bin, rtb_load, rtb_ceiling, _ = tools
    config = os.path.join(work, "broker-wrk.toml")
    with open(config, "w") as f:
        f.write(broker_config(work, f"sqlite://{work}/audit-wrk.db"))
    broker = Server([broker_bin, "serve", "--config", config], env=dict(os.environ, **AWS_ENV))
    ceiling = Server([rtb_ceiling])
    jwts = os.path.join(work, "jwts.txt")
    try:
        # First request per caller mints; the rest are cache hits.
        load(rtb_load, broker.base + "/v1/tokens", 64, 0.5, 0.2, jwts)
        return W.wrk_levels(broker.base, ceiling.base, work, jwts, levels, seconds, log)
    finally:
        broker.stop()
        ceiling.stop()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assume_role_calls(moto):
    with urllib.request.urlopen(moto + "/moto-api/recorder/download-recording", timeout=30) as r:
        text = r.read().decode()
    n = 0
    for line in text.splitlines():
        try:
            body = json.loads(line).get("body") or ""
        except ValueError:
            continue
        import base64
        try:
            body = base64.b64decode(body).decode(errors="replace")
        except ValueError:
            pass
        if "Action=AssumeRole" in body:
            n += 1
    return n


def broker_sts_calls(base):
    """AssumeRole calls the broker made, from its own metrics (every outcome)."""
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("rds_token_broker_sts_calls_total{")))


def cold_path(tools, work, principals):
    """New callers of a target with role_arn: each needs its own AssumeRole (moto), and a
    thundering herd on one cold key must cause exactly one."""
    broker_bin, rtb_load, _, _ = tools
    log(f"cold path: {principals} distinct principals, then {principals} concurrent requests for one cold key (moto STS)")
    port = free_port()
    moto_dir = tempfile.mkdtemp(prefix="rtb-moto-")
    moto_proc = subprocess.Popen([os.path.join(VENV, "bin", "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                 cwd=moto_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    moto = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(moto + "/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        urllib.request.urlopen(urllib.request.Request(moto + "/moto-api/recorder/start-recording", method="POST"))
        config = os.path.join(work, "cold.toml")
        with open(config, "w") as f:
            f.write(broker_config(work, f"sqlite://{work}/cold-audit.db").replace(
                'db_users = ["app_rw"]\n[[grants]]',
                'db_users = ["app_rw"]\nrole_arn = "arn:aws:iam::123456789012:role/orders-db-connect"\n'
                'max_connections_per_second = 100000\nburst = 100000\n[[grants]]', 1)
                + f'[aws]\nsts_endpoint = "{moto}"\n')
        jwts = os.path.join(work, "jwts.txt")
        env = dict(os.environ, **AWS_ENV)
        broker = Server([broker_bin, "serve", "--config", config], env=env)
        try:
            # One request per distinct principal, all at once.
            distinct = json.loads(subprocess.run(
                [rtb_load, "run", "--url", broker.base + "/v1/tokens", "--concurrency", str(principals),
                 "--once", "--jwts", jwts], check=True, capture_output=True, text=True).stdout)
            calls_distinct = assume_role_calls(moto)
            broker_distinct = broker_sts_calls(broker.base)
            # A fresh broker (cold cache), the same principal everywhere.
            broker.stop()
            broker = Server([broker_bin, "serve", "--config", config], env=env)
            one = os.path.join(work, "one-jwt.txt")
            with open(jwts) as f, open(one, "w") as g:
                g.write(f.readline())
            herd = json.loads(subprocess.run(
                [rtb_load, "run", "--url", broker.base + "/v1/tokens", "--concurrency", str(principals),
                 "--once", "--jwts", one], check=True, capture_output=True, text=True).stdout)
            calls_herd = assume_role_calls(moto) - calls_distinct
            broker_herd = broker_sts_calls(broker.base)
        finally:
            broker.stop()
    finally:
        moto_proc.terminate()
        moto_proc.wait(10)
        shutil.rmtree(moto_dir, ignore_errors=True)
    if distinct["failed"] or herd["failed"]:
        raise RuntimeError(f"cold path: {distinct['failed']} + {herd['failed']} requests failed")
    if distinct["requests"] != principals or herd["requests"] != principals:
        raise RuntimeError(f"cold path: {distinct['requests']} and {herd['requests']} requests answered, not {principals} each")
    # Two counts of the same calls: the broker's metrics (what it sent) and moto's request
    # recorder (what moto logged; under heavy concurrency its log can lose lines).
    return {"principals": principals,
            "distinct": {"assume_role_calls": broker_distinct, "moto_recorded": calls_distinct, **distinct},
            "one_key_herd": {"assume_role_calls": broker_herd, "moto_recorded": calls_herd, **herd}}


def criterion_median(group, function, value=None):
    path = os.path.join(BENCH_TARGET, "criterion", group, function)
    if value:
        path = os.path.join(path, value)
    with open(os.path.join(path, "new", "estimates.json")) as f:
        return json.load(f)["median"]["point_estimate"]


def signing(quick):
    log("signing: rds-token-broker against aws-sdk-rds (criterion)")
    args = ["--warm-up-time", "0.5", "--measurement-time", "1"] if quick else ["--warm-up-time", "2", "--measurement-time", "5"]
    env = dict(os.environ, CARGO_TARGET_DIR=BENCH_TARGET)
    run(["cargo", "bench", "--locked", "--bench", "signing", "--", *args], cwd=BENCH, env=env, stdout=subprocess.DEVNULL)
    out = {}
    for value in ["session token", "long-term key"]:
        ours = criterion_median("sign_token", "rds-token-broker", value)
        theirs = criterion_median("sign_token", "aws-sdk-rds AuthTokenGenerator", value)
        out[value] = {"ours_us": ours / 1000, "aws_sdk_rds_us": theirs / 1000, "ratio": ours / theirs}
    return out


def audit_stores(quick):
    log("audit stores at 64 clients: no-op, durable SQLite, PostgreSQL (criterion)")
    args = ["--warm-up-time", "0.5", "--measurement-time", "1"] if quick else ["--warm-up-time", "2", "--measurement-time", "8"]
    env = dict(os.environ, CARGO_TARGET_DIR=BENCH_TARGET)
    run(["cargo", "bench", "--locked", "--bench", "audit_store", "--", *args], cwd=BENCH, env=env, stdout=subprocess.DEVNULL)
    out = {}
    for name in ["no-op store", "sqlite (durable)", "postgresql"]:
        try:
            ns = criterion_median("issue_64_clients", name)
            out[name] = {"rps": 1e9 / ns}
        except FileNotFoundError:
            out[name] = None
    noop = out["no-op store"]["rps"]
    for name, v in out.items():
        if v:
            v["ratio_to_noop"] = v["rps"] / noop
    return out


def memory(rtb_memory, n):
    """RSS with n cached tokens: signed by one set of credentials (the broker's own, or
    share_tokens), and each by its own session (a role assumed per caller)."""
    log(f"memory with {n} cached tokens")
    shared = json.loads(subprocess.run([rtb_memory, str(n)], check=True, capture_output=True, text=True).stdout)
    per_caller = json.loads(subprocess.run([rtb_memory, str(n), "--per-caller-sessions"], check=True,
                                           capture_output=True, text=True).stdout)
    return {**shared, "per_caller_sessions": per_caller}


def today(py, quick):
    """How users mint tokens today: the aws CLI (a process per token) and boto3 (warm)."""
    log("the aws CLI and boto3")
    env = dict(os.environ, **AWS_ENV)
    aws = os.path.join(VENV, "bin", "aws")
    args = [aws, "rds", "generate-db-auth-token", "--hostname", "orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com",
            "--port", "5432", "--username", "app_rw", "--region", "eu-west-1"]
    times = []
    for _ in range(3 if quick else 15):
        t0 = time.perf_counter()
        subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    n = 200 if quick else 5000
    code = (
        "import boto3, time\n"
        "c = boto3.client('rds', region_name='eu-west-1')\n"
        "c.generate_db_auth_token('orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com', 5432, 'app_rw')\n"
        f"t0 = time.perf_counter()\n"
        f"for _ in range({n}):\n"
        "    c.generate_db_auth_token('orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com', 5432, 'app_rw')\n"
        f"print((time.perf_counter() - t0) / {n})\n"
    )
    boto = float(subprocess.run([py, "-c", code], check=True, env=env, capture_output=True, text=True).stdout)
    return {"aws_cli_process_ms": statistics.median(times) * 1000, "boto3_warm_us": boto * 1e6}


def plot(py, rows, path):
    data = json.dumps(rows)
    code = f"""
import json, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = json.loads({data!r})
c = [r["concurrency"] for r in rows]
fig, ax = plt.subplots(figsize=(7, 4.2))
for who, style in [("broker", "-"), ("ceiling", "--")]:
    for q, marker in [("p50_ms", "o"), ("p99_ms", "s"), ("p999_ms", "^")]:
        ax.plot(c, [r[who][q] for r in rows], style, marker=marker, label=f"{{who}} {{q[:-3]}}")
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("concurrent clients")
ax.set_ylabel("latency (ms)")
ax.set_title("Cached issuance (JWT, policy, cache hit, durable SQLite audit) vs bare axum")
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=7, ncol=2)
fig.tight_layout()
fig.savefig({path!r}, dpi=110)
"""
    run([py, "-c", code])


def machine():
    cpus = os.cpu_count()
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) // 1024 // 1024} GiB"
    except OSError:
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return {"host": socket.gethostname(), "cpus": cpus, "cpu": model, "memory": mem,
            "os": platform.platform(), "rustc": rustc, "load_average": os.getloadavg()}


def markdown(r):
    m = r["machine"]
    lines = [f"# Benchmark results {r['date']} on {m['host']}", "",
             f"{m['cpus']} vCPUs ({m['cpu']}), {m['memory']}, {m['os']}, {m['rustc']}; "
             f"load average at start {m['load_average'][0]:.2f}. Mode: {r['mode']}.", "",
             "## Cached issuance over HTTP (JWT + policy + cache hit + durable SQLite audit) vs bare axum", "",
             "| clients | broker req/s | p50 ms | p99 ms | p99.9 ms | ceiling req/s | ceiling p99 ms | broker / ceiling |",
             "|---|---|---|---|---|---|---|---|"]
    for row in r["http"]:
        b, c = row["broker"], row["ceiling"]
        lines.append(f"| {row['concurrency']} | {b['rps']:.0f} | {b['p50_ms']:.2f} | {b['p99_ms']:.2f} | {b['p999_ms']:.2f} | "
                     f"{c['rps']:.0f} | {c['p99_ms']:.2f} | {row['ratio']:.2f} |")
    if r.get("wrk"):
        import wrk as W
        lines += ["", W.markdown(r["wrk"])]
    lines += ["", "## Signing (criterion medians)", "", "| input | rds-token-broker µs | aws-sdk-rds µs | ratio |", "|---|---|---|---|"]
    for k, v in r["signing"].items():
        lines.append(f"| {k} | {v['ours_us']:.2f} | {v['aws_sdk_rds_us']:.2f} | {v['ratio']:.2f} |")
    lines += ["", "## Audit stores at 64 clients (criterion medians)", "", "| store | req/s | / no-op |", "|---|---|---|"]
    for k, v in r["audit_stores"].items():
        lines.append(f"| {k} | {v['rps']:.0f} | {v['ratio_to_noop']:.2f} |" if v else f"| {k} | not run | |")
    mem = r["memory"]
    cold = r["cold"]
    lines += ["", "## Cold path (AssumeRole against moto)", "",
              f"- {cold['principals']} distinct principals at once: {cold['distinct']['assume_role_calls']} AssumeRole calls "
              f"(broker's metrics; moto's recorder logged {cold['distinct']['moto_recorded']}), "
              f"p50 {cold['distinct']['p50_ms']:.1f} ms, p99 {cold['distinct']['p99_ms']:.1f} ms, all answered in {cold['distinct']['seconds']:.2f} s",
              f"- {cold['principals']} concurrent requests for one cold key: {cold['one_key_herd']['assume_role_calls']} AssumeRole call(s) "
              f"(moto logged {cold['one_key_herd']['moto_recorded']}), "
              f"p50 {cold['one_key_herd']['p50_ms']:.1f} ms, p99 {cold['one_key_herd']['p99_ms']:.1f} ms"]
    pc = mem["per_caller_sessions"]
    lines += ["", "## Memory", "", f"- {mem['tokens']} cached tokens signed by one set of temporary credentials: RSS "
              f"{mem['rss_after_mib']:.1f} MiB (from {mem['rss_before_mib']:.1f} MiB; {mem['bytes_per_token']:.0f} bytes per token).",
              f"- {pc['tokens']} cached tokens each signed by its own session (a role per caller; nothing shared): RSS "
              f"{pc['rss_after_mib']:.1f} MiB ({pc['bytes_per_token']:.0f} bytes per token).", "",
              *[f"- offline `audit verify --export` of one chain of {v['events']} events with {v['checkpoints']} "
                f"signed checkpoints: peak RSS {v['peak_rss_mib']:.1f} MiB, {v['seconds']:.1f} s (streaming: flat in the chain's length)."
                for v in r.get("offline_verify", [])],
              *[f"- online `audit verify --audit-url` (SQLite) of one chain of {v['events']} events with {v['checkpoints']} "
                f"stored signed checkpoints: peak RSS {v['peak_rss_mib']:.1f} MiB, {v['seconds']:.1f} s (chain walk, then roots streamed)."
                for v in r.get("online_verify", [])], "",
              "## How tokens are minted today", "",
              f"- `aws rds generate-db-auth-token` (a process per token): {r['today']['aws_cli_process_ms']:.0f} ms median",
              f"- boto3 `generate_db_auth_token` in a warm process: {r['today']['boto3_warm_us']:.0f} µs per token"]
    at64 = next((x for x in r["http"] if x["concurrency"] == 64), r["http"][-1])
    per_request_ms = at64["broker"]["p50_ms"]
    lines += [f"- a cached broker request at {at64['concurrency']} clients: {per_request_ms:.2f} ms median "
              f"({r['today']['aws_cli_process_ms'] / per_request_ms:.0f}x faster than the CLI process)", ""]
    return "\n".join(lines)


def proxy_pg(broker_bin, quick):
    """bench/proxy_pg.py: pgbench through `proxy` against direct, connect latency, idle RSS."""
    log("proxy: pgbench -S through the proxy and direct")
    args = [sys.executable, os.path.join(BENCH, "proxy_pg.py"), "--json", "--bin", broker_bin]
    out = subprocess.run(args + (["--quick"] if quick else []), check=True, capture_output=True, text=True)
    # The JSON is the last line: psql's setup output may come before it.
    return json.loads(out.stdout.strip().splitlines()[-1])


def raise_fd_limit():
    """1,000 simultaneous connections need more than the usual 1,024 descriptors."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def main():
    raise_fd_limit()
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a few seconds per part")
    ap.add_argument("--out", help="results directory (default: bench/results, or a temporary one with --quick)")
    a = ap.parse_args()
    started = time.time()
    py = venv_python()
    tools = build()
    work = tempfile.mkdtemp(prefix="rtb-bench-")
    try:
        run([tools[1], "keys", "--dir", work, "--issuer", ISSUER, "--principals", "100" if a.quick else "1000"])
        levels = [1, 16, 64, 256]
        secs, warm = (1, 0.3) if a.quick else (8, 2)
        result = {
            "date": datetime.date.today().isoformat(),
            "mode": "quick" if a.quick else "full",
            "machine": machine(),
            "http": http_levels(tools, work, secs, warm, levels),
            "wrk": http_wrk(tools, work, 2 if a.quick else 10, levels),
            "signing": signing(a.quick),
            "audit_stores": audit_stores(a.quick),
            "memory": memory(tools[3], 10_000 if a.quick else 100_000),
            "offline_verify": [offline_verify(tools[0], work, n)
                               for n in ((1_000, 20_000) if a.quick else (10_000, 1_000_000))],
            "online_verify": [online_verify(tools[0], work, n)
                              for n in ((1_000, 20_000) if a.quick else (10_000, 1_000_000))],
            "cold": cold_path(tools, work, 100 if a.quick else 1000),
            "today": today(py, a.quick),
            "proxy_pg": proxy_pg(tools[0], a.quick),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = a.out or (tempfile.mkdtemp(prefix="rtb-bench-results-") if a.quick else os.path.join(BENCH, "results"))
    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, f"{result['date']}-{result['machine']['host']}")
    result["seconds_total"] = time.time() - started
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=2)
    md = markdown(result)
    with open(stem + ".md", "w") as f:
        f.write(md)
    plot(py, result["http"], stem + ".png")
    print(md)
    log(f"results: {stem}.json, .md, .png ({result['seconds_total']:.0f} s)")


if __name__ == "__main__":
    main()
