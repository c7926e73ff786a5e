#!/bin/sh
# redis-cli against ElastiCache (or MemoryDB) with IAM authentication: exec sets
# REDIS_HOST, REDIS_PORT, REDIS_USER and REDISCLI_AUTH (the token, which redis-cli sends as
# the password of --user; never on a command line). IAM authentication needs TLS: the
# system's CAs apply, or the CA given with --ssl-root-cert or
# RDS_TOKEN_BROKER_SSL_ROOT_CERT (REDIS_CACERT). The arguments are the command to run:
#   sh redis-cli.sh PING
# One command, one connection: nothing to re-authenticate. A connection kept open must
# send AUTH again with a fresh token within 12 hours, or the cache closes it.
exec rds-token-broker exec --target sessions -- sh -c '
  exec redis-cli --tls ${REDIS_CACERT:+--cacert "$REDIS_CACERT"} --no-auth-warning \
    -h "$REDIS_HOST" -p "$REDIS_PORT" --user "$REDIS_USER" "$@"' redis-cli "$@"
