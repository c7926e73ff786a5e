#!/bin/sh
# psql with a fresh token: exec sets PGHOST, PGPORT, PGUSER, PGPASSWORD and
# PGSSLMODE=verify-full for psql only; the token is never on a command line.
# The broker URL comes from RDS_TOKEN_BROKER_URL, the JWT from RDS_TOKEN_BROKER_JWT
# (or --jwt-file, or the pod's service-account token).
exec rds-token-broker exec --target orders-db -- psql -d orders -c 'select current_user'
