#!/bin/sh
# psql against Aurora DSQL: exec sets PGHOST (the cluster endpoint), PGPORT, PGUSER (the
# Postgres role), PGPASSWORD (the token), PGDATABASE=postgres and PGSSLMODE=verify-full
# for psql only. The role admin gets a DbConnectAdmin token, any other role DbConnect.
exec rds-token-broker exec --target inventory --db-user admin -- psql -c 'select current_user'
