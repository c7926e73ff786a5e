#!/usr/bin/env python3
"""`rds-token-broker proxy` against direct connections to the same PostgreSQL, same run:

- pgbench -S at 1 and 16 clients, direct (TLS, password = token) and through the proxy
  (goal: proxy >= 0.9x direct), with one proxy per `--threads` setting (default 1 and 2),
  direct and each proxy alternated over --rounds rounds (medians kept);
- connect latency with a cached token: pgbench -S -C (a new connection per transaction),
  p50 of the per-transaction latency, proxy minus direct (goal: < 1 ms);
- RSS of the proxy with 1,000 idle proxied connections (goal: < 100 MiB).

Starts its own TLS PostgreSQL (initdb; as root it runs as `postgres`), a broker
(`serve`, unauthenticated, AWS example keys: tokens are signed locally) and the proxy.

    python3 bench/proxy_pg.py [--quick] [--bin PATH] [--json] [--threads 1 2] [--rounds N]
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(f"== {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin():
    base = "/usr/lib/postgresql"
    if os.path.isdir(base):
        versions = sorted((int(v), v) for v in os.listdir(base) if v.isdigit())
        for _, v in reversed(versions):
            d = os.path.join(base, v, "bin")
            if os.path.exists(os.path.join(d, "postgres")):
                return d
    return os.path.dirname(shutil.which("initdb"))


def as_pg(cmd):
    return (["runuser", "-u", "postgres", "--"] + cmd) if os.geteuid() == 0 else cmd


def wait_line(proc, pattern, timeout=60):
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m.group(1)
    raise SystemExit("did not start:\n" + "".join(seen))


def start_pg(work, bindir):
    data = os.path.join(work, "data")
    os.makedirs(data)
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "postgres:", work], check=True)
    subprocess.run(as_pg([f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync"]),
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=bench CA", "-keyout", f"{work}/ca.key", "-out", f"{work}/ca.pem",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign"],
                   check=True, stderr=subprocess.DEVNULL)
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", "/CN=localhost", "-keyout", f"{data}/server.key", "-out", f"{work}/server.csr"],
                   check=True, stderr=subprocess.DEVNULL)
    with open(f"{work}/ext", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    subprocess.run(["openssl", "x509", "-req", "-in", f"{work}/server.csr", "-CA", f"{work}/ca.pem", "-CAkey",
                    f"{work}/ca.key", "-CAcreateserial", "-days", "2", "-extfile", f"{work}/ext",
                    "-out", f"{data}/server.crt"], check=True, stderr=subprocess.DEVNULL)
    os.chmod(f"{data}/server.key", 0o600)
    with open(f"{data}/pg_hba.conf", "w") as f:
        f.write("local all all trust\nhostssl all postgres 127.0.0.1/32 trust\n"
                "hostssl all bench 127.0.0.1/32 password\n")
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "postgres:", work], check=True)
    port = free_port()
    proc = subprocess.Popen(as_pg([f"{bindir}/postgres", "-D", data, "-k", work, "-c", f"port={port}",
                                   "-c", "listen_addresses=127.0.0.1", "-c", "ssl=on", "-c", "max_connections=1200",
                                   "-c", "fsync=off", "-c", "synchronous_commit=off"]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_line(proc, r"(ready to accept connections)")
    return proc, port


def psql_admin(work, port, sql):
    subprocess.run(["psql", "-X", "-q", "-h", work, "-p", str(port), "-U", "postgres", "-c", sql], check=True)


def pgbench(conn, env, clients, seconds, extra=(), logdir=None):
    cmd = ["pgbench", "-n", "-S", "-c", str(clients), "-j", str(min(clients, 4)), "-T", str(seconds), *extra]
    if logdir:
        cmd += ["-l", "--log-prefix", os.path.join(logdir, "tx")]
    out = subprocess.run(cmd + [conn], env=env, check=True, capture_output=True, text=True, cwd=logdir).stdout
    tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))
    return tps


def latencies_us(logdir):
    values = []
    for name in os.listdir(logdir):
        if name.startswith("tx"):
            with open(os.path.join(logdir, name)) as f:
                for line in f:
                    values.append(int(line.split()[2]))
    return values


def idle_connection(port, user):
    s = socket.create_connection(("127.0.0.1", port))
    body = struct.pack("!I", 196608) + b"user\0" + user.encode() + b"\0database\0postgres\0\0"
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("proxy closed an idle connection during sign-in: " + repr(buf[:200]))
        buf += chunk
        if b"Z\0\0\0\x05" in buf:
            return s


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def database_and_broker(work, broker_bin, procs):
    """A private PostgreSQL (TLS, pgbench's tables) and a broker serving tokens for its
    role `bench`, whose password is the broker's token; both appended to `procs`. Returns
    (PostgreSQL's port, the broker's base URL, the token, the environment to run the proxy
    with). Shared with proxy_pg_profile.py."""
    pg, pg_port = start_pg(work, pg_bin())
    procs.append(pg)
    psql_admin(work, pg_port, "select 1")
    subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", work, "-p", str(pg_port), "-U", "postgres", "postgres"],
                   check=True, capture_output=True)
    conf = os.path.join(work, "broker.toml")
    with open(conf, "w") as f:
        f.write(f'[server]\nlisten = "127.0.0.1:0"\nallow_unauthenticated = true\n[audit]\nenabled = false\n'
                f'[rate_limit]\nper_principal_per_second = 1000000\n'
                f'[[targets]]\nname = "bench"\nhost = "localhost"\nport = {pg_port}\nengine = "postgres"\n'
                f'region = "eu-west-1"\ndb_users = ["bench"]\n')
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE",
               AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", AWS_EC2_METADATA_DISABLED="true",
               RUST_LOG="warn,rds_token_broker::startup=info,rds_token_broker::proxy=info")
    broker = subprocess.Popen([broker_bin, "serve", "--config", conf], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    procs.append(broker)
    base = wait_line(broker, r"listening on (http://[0-9.:]+)")
    req = urllib.request.Request(base + "/v1/tokens", data=b'{"target":"bench","db_user":"bench"}',
                                 headers={"content-type": "application/json"})
    token = json.load(urllib.request.urlopen(req))["token"]
    psql_admin(work, pg_port, f"CREATE ROLE bench LOGIN PASSWORD '{token}'; GRANT pg_read_all_data TO bench")
    return pg_port, base, token, env


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"),
                                                 "release", "rds-token-broker"))
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="proxy --threads settings to measure, each against direct in the same run; "
                         "the first is the one the connect, RSS and headline rows use")
    ap.add_argument("--rounds", type=int, help="direct/proxy alternations per client count (median kept)")
    a = ap.parse_args()
    secs = 3 if a.quick else 10
    rounds = a.rounds or (1 if a.quick else 3)
    idle = 100 if a.quick else a.idle
    work = tempfile.mkdtemp(prefix="rtb-bench-proxy-")
    os.chmod(work, 0o755)
    procs = []
    try:
        pg_port, base, token, env = database_and_broker(work, a.bin, procs)
        # One proxy per --threads setting, measured in turn against direct in the same run.
        ports = {}
        for threads in a.threads:
            proxy = subprocess.Popen([a.bin, "proxy", "--broker", base, "--listen", "bench=127.0.0.1:0", "--db-ca-file",
                                      f"{work}/ca.pem", "--max-connections", "5000", "--k8s-token-file", "/nonexistent",
                                      "--threads", str(threads)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            procs.append(proxy)
            ports[threads] = (proxy, int(wait_line(proxy, r"proxy listening on 127\.0\.0\.1:(\d+)")))
        proxy, proxy_port = ports[a.threads[0]]
        direct = f"host=127.0.0.1 port={pg_port} user=bench dbname=postgres sslmode=verify-full sslrootcert={work}/ca.pem"
        # (host=localhost for verify-full's name check)
        direct = direct.replace("host=127.0.0.1", "host=localhost")
        proxied = {t: f"host=127.0.0.1 port={port} user=bench dbname=postgres sslmode=disable"
                   for t, (_, port) in ports.items()}
        denv = dict(os.environ, PGPASSWORD=token)
        penv = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
        result = {"seconds_per_run": secs, "rounds": rounds, "load_average_at_start": os.getloadavg()}
        for clients in (1, 16):
            runs = {"direct": []} | {t: [] for t in a.threads}
            for r in range(rounds):
                log(f"pgbench -S -c {clients}, round {r + 1}/{rounds}: direct, then the proxy with --threads "
                    + ", ".join(str(t) for t in a.threads))
                runs["direct"].append(pgbench(direct, denv, clients, secs))
                for t in a.threads:
                    runs[t].append(pgbench(proxied[t], penv, clients, secs))
            d = statistics.median(runs["direct"])
            p = statistics.median(runs[a.threads[0]])
            result[f"tps_c{clients}"] = {
                "direct": d, "proxy": p, "ratio": round(p / d, 3), "proxy_threads": a.threads[0],
                "by_threads": {str(t): {"tps": statistics.median(runs[t]),
                                        "ratio": round(statistics.median(runs[t]) / d, 3),
                                        "rounds": runs[t]} for t in a.threads},
                "direct_rounds": runs["direct"]}
        log("connect latency (pgbench -S -C -c 1)")
        lat = {}
        for name, conn, e in (("direct", direct, denv), ("proxy", proxied[a.threads[0]], penv)):
            d = tempfile.mkdtemp(dir=work)
            pgbench(conn, e, 1, secs, extra=("-C",), logdir=d)
            lat[name] = statistics.median(latencies_us(d)) / 1000
        result["connect_p50_ms"] = {**lat, "extra": round(lat["proxy"] - lat["direct"], 3)}
        log(f"RSS with {idle} idle proxied connections")
        before = rss_kib(proxy.pid)
        socks = [idle_connection(proxy_port, "bench") for _ in range(idle)]
        time.sleep(1)
        after = rss_kib(proxy.pid)
        result["rss_idle"] = {"connections": len(socks), "before_mib": round(before / 1024, 1),
                              "after_mib": round(after / 1024, 1),
                              "per_connection_kib": round((after - before) / len(socks), 1)}
        for s in socks:
            s.close()
        result["load_average_at_end"] = os.getloadavg()
        print(json.dumps(result, indent=None if a.json else 2))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
