#!/bin/sh
# A token with curl. The JWT goes to curl through its config on stdin (printf is a shell
# builtin), so it never shows up in `ps`.
printf 'header = "Authorization: Bearer %s"\n' "$RDS_TOKEN_BROKER_JWT" |
  curl --silent --show-error --fail-with-body --config - \
    --json '{"target": "orders-db"}' "$RDS_TOKEN_BROKER_URL/v1/tokens"
