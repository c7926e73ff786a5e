"""A psycopg 3 connection pool whose connections log in with tokens from the broker.

Every new connection asks the broker for a token (the broker caches it, so this is
cheap and does not count against RDS's IAM throttle); open connections are unaffected
when a token expires. Needs `psycopg[binary]` and `psycopg-pool`.

Environment: RDS_TOKEN_BROKER_URL, and the caller's JWT in RDS_TOKEN_BROKER_JWT or the
Kubernetes service-account token file.
"""

import json
import os
import urllib.request

import psycopg
from psycopg_pool import ConnectionPool

K8S_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def caller_jwt():
    jwt = os.environ.get("RDS_TOKEN_BROKER_JWT")
    if jwt:
        return jwt.strip()
    with open(K8S_TOKEN) as f:
        return f.read().strip()


def fetch_token(target, db_user=None):
    """POST /v1/tokens: {"token", "host", "port", "db_user", "expires_at", ...}."""
    body = {"target": target} if db_user is None else {"target": target, "db_user": db_user}
    request = urllib.request.Request(
        os.environ["RDS_TOKEN_BROKER_URL"].rstrip("/") + "/v1/tokens",
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + caller_jwt(), "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


class BrokerConnection(psycopg.Connection):
    """A connection whose host, port, user and password come from the broker."""

    target = "orders-db"

    @classmethod
    def connect(cls, conninfo="", **kwargs):
        t = fetch_token(cls.target)
        kwargs.update(
            host=t["host"],
            port=t["port"],
            user=t["db_user"],
            password=t["token"],
            sslmode="verify-full",  # IAM authentication requires TLS
        )
        return super().connect(conninfo, **kwargs)


def orders_pool(**pool_options):
    return ConnectionPool(
        kwargs={"dbname": "orders"}, connection_class=BrokerConnection, **pool_options
    )


if __name__ == "__main__":
    with orders_pool() as pool, pool.connection() as conn:
        print(conn.execute("select current_user").fetchone()[0])
