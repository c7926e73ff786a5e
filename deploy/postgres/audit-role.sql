-- The PostgreSQL role of the broker's audit store, with no more than it needs
-- (docs/deploying.md, "The audit database"). Run once, as an administrator (on RDS: the
-- master user), connected to the audit database:
--
--   psql "host=audit-db.internal dbname=rds_token_broker user=postgres sslmode=verify-full" \
--        -v ON_ERROR_STOP=1 -f deploy/postgres/audit-role.sql
--
-- then give the role its password (`\password rds_token_broker` in psql), the one the
-- broker reads from PGPASSWORD. Running it again changes nothing.
--
-- What the broker does with it: at start it runs its migrations (creating and altering
-- its tables, and sqlx's _sqlx_migrations, under an advisory lock), then inserts events,
-- reads them for the audit API and `audit verify`, and deletes pruned events and
-- replaces chain checkpoints when retention_days is set. So the role owns one schema of
-- its own and the tables in it; it cannot create anything elsewhere, create databases or
-- roles, or read any other schema of the database, and it is nobody's superuser.
-- The trail's integrity does not rest on these grants: every event is hash-chained, and
-- `audit verify` finds any row changed or removed behind the broker's back.

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_token_broker') THEN
    CREATE ROLE rds_token_broker LOGIN;
  END IF;
END
$$;

ALTER ROLE rds_token_broker
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT
  CONNECTION LIMIT 64;

-- The database: connect (explicitly, in case PUBLIC's default CONNECT was revoked).
DO $$
BEGIN
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO rds_token_broker', current_database());
END
$$;

-- Nobody creates objects in the public schema: PostgreSQL 15's default, which older
-- versions did not have.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Its own schema, which it owns, and which it finds its tables in.
CREATE SCHEMA IF NOT EXISTS rds_token_broker AUTHORIZATION rds_token_broker;
ALTER ROLE rds_token_broker SET search_path = rds_token_broker;
