"""Runs the psycopg recipe against a fake database server and prints, as JSON, what its
connections were given by the broker (the token as a SHA-256) and how connecting ended."""

import hashlib
import importlib.util
import json
import sys

spec = importlib.util.spec_from_file_location("recipe", sys.argv[1])
recipe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recipe)

fetched = []
original = recipe.fetch_token


def recording(*args, **kwargs):
    t = original(*args, **kwargs)
    fetched.append(t)
    return t


recipe.fetch_token = recording

error = None
try:
    recipe.BrokerConnection.connect(dbname="orders", connect_timeout=5)
except recipe.psycopg.OperationalError as e:
    error = str(e)

# The pool builds its connections the same way.
pool = recipe.orders_pool(min_size=1, open=False)
try:
    pool.open(wait=True, timeout=2)
except Exception as e:  # PoolTimeout: the fake server never lets a connection finish
    pool_error = type(e).__name__
finally:
    pool.close()

print(json.dumps({
    "token_sha256": hashlib.sha256(fetched[0]["token"].encode()).hexdigest(),
    "host": fetched[0]["host"],
    "port": fetched[0]["port"],
    "fetches": len(fetched),
    "error": error,
    "pool_error": pool_error,
}))
