"""valkey-glide (sync) against ElastiCache or MemoryDB with a token from the broker, and
re-authentication before the cache closes the connection (12 hours after its AUTH).

GLIDE takes the user id and the token as its server credentials; update_connection_password
sends AUTH with a fresh token on the open connections and keeps it for reconnecting. Needs
`valkey-glide-sync`.

Environment: RDS_TOKEN_BROKER_URL, the caller's JWT in RDS_TOKEN_BROKER_JWT or the
Kubernetes service-account token file, and optionally REDIS_CA_FILE (a CA bundle; else
the system's CAs).
"""

import json
import os
import threading
import urllib.request

from glide_sync import (
    AdvancedGlideClientConfiguration,
    GlideClient,
    GlideClientConfiguration,
    NodeAddress,
    ServerCredentials,
    TlsAdvancedConfiguration,
)

K8S_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
TARGET = "sessions"


def caller_jwt():
    jwt = os.environ.get("RDS_TOKEN_BROKER_JWT")
    if jwt:
        return jwt.strip()
    with open(K8S_TOKEN) as f:
        return f.read().strip()


def fetch_token(target=TARGET):
    """POST /v1/tokens: {"token", "user", "host", "port", "tls", ...}."""
    request = urllib.request.Request(
        os.environ["RDS_TOKEN_BROKER_URL"].rstrip("/") + "/v1/tokens",
        data=json.dumps({"target": target}).encode(),
        headers={"Authorization": "Bearer " + caller_jwt(), "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def connect(target=TARGET):
    """A client over TLS, and how often to re-authenticate (two thirds of the limit)."""
    t = fetch_token(target)
    advanced = None
    ca_file = os.environ.get("REDIS_CA_FILE")
    if ca_file:
        with open(ca_file, "rb") as f:
            tls = TlsAdvancedConfiguration(root_pem_cacerts=f.read())
        advanced = AdvancedGlideClientConfiguration(tls_config=tls)
    config = GlideClientConfiguration(
        [NodeAddress(t["host"], t["port"])],
        use_tls=t["tls"],
        credentials=ServerCredentials(password=t["token"], username=t["user"]),
        advanced_config=advanced,
    )
    return GlideClient.create(config), t["reauthenticate_within_seconds"] * 2 // 3


def reauthenticate(client, target=TARGET):
    client.update_connection_password(fetch_token(target)["token"], immediate_auth=True)


def keep_authenticated(client, every, target=TARGET):
    """Re-authenticates with a fresh token every `every` seconds until the event is set."""
    stop = threading.Event()

    def run():
        while not stop.wait(every):
            reauthenticate(client, target)

    threading.Thread(target=run, daemon=True).start()
    return stop


if __name__ == "__main__":
    client, every = connect()
    stop = keep_authenticated(client, every)
    print(client.ping().decode())
    reauthenticate(client)  # what the thread does every `every` seconds
    print(client.ping().decode())
    stop.set()
    client.close()
