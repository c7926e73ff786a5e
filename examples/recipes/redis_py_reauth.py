"""redis-py against ElastiCache or MemoryDB with IAM authentication, re-authenticating
before the cache closes the connection (12 hours after its AUTH).

The broker's answer for a cache names the user id (`user`), says TLS is required (`tls`)
and how long a connection may stay authenticated (`reauthenticate_within_seconds`).
redis-py asks the credential provider on every new connection; a connection kept open
sends AUTH again with a fresh token well before the limit. Needs `redis` (redis-py).

Environment: RDS_TOKEN_BROKER_URL, the caller's JWT in RDS_TOKEN_BROKER_JWT or the
Kubernetes service-account token file, and optionally REDIS_CA_FILE (a CA bundle; else
the system's CAs).
"""

import json
import os
import threading
import urllib.request

import redis

K8S_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def caller_jwt():
    jwt = os.environ.get("RDS_TOKEN_BROKER_JWT")
    if jwt:
        return jwt.strip()
    with open(K8S_TOKEN) as f:
        return f.read().strip()


def fetch_token(target):
    """POST /v1/tokens: {"token", "user", "host", "port", "tls", ...}."""
    request = urllib.request.Request(
        os.environ["RDS_TOKEN_BROKER_URL"].rstrip("/") + "/v1/tokens",
        data=json.dumps({"target": target}).encode(),
        headers={"Authorization": "Bearer " + caller_jwt(), "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


class BrokerCredentials(redis.CredentialProvider):
    """AUTH <user> <token> with a token from the broker (cached there: cheap to ask)."""

    def __init__(self, target):
        self.target = target

    def get_credentials(self):
        t = fetch_token(self.target)
        return t["user"], t["token"]


def connect(target="sessions"):
    """One connection (so re-authenticating it covers the client), over TLS. Returns the
    client, its credentials and how often to re-authenticate."""
    t = fetch_token(target)
    credentials = BrokerCredentials(target)
    client = redis.Redis(
        host=t["host"],
        port=t["port"],
        ssl=t["tls"],
        ssl_ca_certs=os.environ.get("REDIS_CA_FILE"),
        credential_provider=credentials,
        single_connection_client=True,
    )
    # Re-authenticate at two thirds of the limit: 8 hours for the cache's 12.
    return client, credentials, t["reauthenticate_within_seconds"] * 2 // 3


def reauthenticate(client, credentials):
    user, token = credentials.get_credentials()
    client.execute_command("AUTH", user, token)


def keep_authenticated(client, credentials, every):
    """Sends AUTH with a fresh token every `every` seconds until the event is set."""
    stop = threading.Event()

    def run():
        while not stop.wait(every):
            reauthenticate(client, credentials)

    threading.Thread(target=run, daemon=True).start()
    return stop


if __name__ == "__main__":
    client, credentials, every = connect()
    stop = keep_authenticated(client, credentials, every)
    print(client.ping())
    reauthenticate(client, credentials)  # what the thread does every `every` seconds
    print(client.ping())
    stop.set()
