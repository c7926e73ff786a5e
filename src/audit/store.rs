//! Where events are kept: SQLite (embedded, WAL, `synchronous=FULL`), PostgreSQL (shared
//! by a fleet), or nowhere (benchmarks). Both databases run the same embedded migrations
//! at start-up and the same SQL.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Row, Sqlite, SqlitePool};

use super::event::{AuditEvent, Encoding};
use super::query::Filter;
use super::verify::{ChainWalker, Checkpoint, Verification};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "audit events",
        "CREATE TABLE audit_events (
        id TEXT PRIMARY KEY,
        time TEXT NOT NULL,
        request_id TEXT,
        outcome TEXT NOT NULL,
        reason TEXT,
        issuer TEXT,
        subject TEXT,
        auth_method TEXT,
        client_ip TEXT,
        user_agent TEXT,
        target TEXT,
        host TEXT,
        port BIGINT,
        db_user TEXT,
        region TEXT,
        role_arn TEXT,
        session_name TEXT,
        cache TEXT,
        token_sha256 TEXT,
        expires_at TEXT,
        count BIGINT NOT NULL,
        chain_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        UNIQUE (chain_id, seq)
    );
    CREATE INDEX audit_events_time ON audit_events (time);
    CREATE INDEX audit_events_token ON audit_events (token_sha256);",
    ),
    (
        2,
        "chain checkpoints left by retention pruning",
        "CREATE TABLE audit_checkpoints (
        chain_id TEXT PRIMARY KEY,
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL
    );",
    ),
    (
        3,
        "the time of the event a retention checkpoint stands for",
        "ALTER TABLE audit_checkpoints ADD COLUMN event_time TEXT;",
    ),
    (
        4,
        "the kind of the target (rds, dsql, elasticache, memorydb)",
        "ALTER TABLE audit_events ADD COLUMN kind TEXT;",
    ),
    (
        5,
        "signed tree heads (checkpoints) of each chain's Merkle tree",
        "CREATE TABLE audit_tree_heads (
        chain_id TEXT NOT NULL,
        tree_size BIGINT NOT NULL,
        root_hash TEXT NOT NULL,
        note TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (chain_id, tree_size)
    );",
    ),
    (
        6,
        "access requests, their approvals, and the request an event belongs to",
        "CREATE TABLE access_requests (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        break_glass BIGINT NOT NULL,
        target TEXT NOT NULL,
        db_user TEXT NOT NULL,
        requester_issuer TEXT NOT NULL,
        requester_subject TEXT NOT NULL,
        reason TEXT NOT NULL,
        duration_minutes BIGINT NOT NULL,
        min_approvals BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        approved_at BIGINT,
        expires_at BIGINT,
        decided_at BIGINT,
        decided_by TEXT,
        decision_comment TEXT
    );
    CREATE INDEX access_requests_state ON access_requests (state, created_at);
    CREATE INDEX access_requests_requester ON access_requests (requester_issuer, requester_subject, target, db_user);
    CREATE TABLE access_approvals (
        request_id TEXT NOT NULL,
        approver_issuer TEXT NOT NULL,
        approver_subject TEXT NOT NULL,
        comment TEXT NOT NULL,
        at BIGINT NOT NULL,
        PRIMARY KEY (request_id, approver_issuer, approver_subject)
    );
    ALTER TABLE audit_events ADD COLUMN access_request_id TEXT;
    CREATE INDEX audit_events_access_request ON audit_events (access_request_id);",
    ),
    (
        7,
        "each event's canonical encoding; the hashes of events retention pruned",
        // `encoding`: NULL for events recorded before JCS (legacy), 'jcs' after.
        // `audit_pruned_hashes`: Merkle proofs over a chain's first events still need
        // their hashes once retention has deleted the events themselves.
        "ALTER TABLE audit_events ADD COLUMN encoding TEXT;
    CREATE TABLE audit_pruned_hashes (
        chain_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL,
        PRIMARY KEY (chain_id, seq)
    );",
    ),
    (
        8,
        "at most one open access request per requester, target and DB user",
        "CREATE UNIQUE INDEX access_requests_one_open ON access_requests \
        (requester_issuer, requester_subject, target, db_user) \
        WHERE state IN ('pending', 'approved');",
    ),
];

fn migrator() -> Migrator {
    let migrations: Vec<Migration> = MIGRATIONS
        .iter()
        .map(|(v, d, sql)| {
            Migration::new(
                *v,
                Cow::Borrowed(*d),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}

/// A store failure. Neither the message nor its causes contain event contents; the
/// cause (a database error, shared by every request of a failed batch, hence `Arc`) is
/// for the log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// `audit.url` is not a database URL this broker can use.
    #[error("audit.url is not a usable database URL")]
    Url(#[source] Arc<sqlx::Error>),
    /// The database could not be reached, or refused the connection (a wrong password).
    #[error("cannot connect to the audit database")]
    Connect(#[source] Arc<sqlx::Error>),
    /// The schema migrations failed.
    #[error("cannot bring the audit database's schema up to date")]
    Migrate(#[source] Arc<sqlx::migrate::MigrateError>),
    /// A statement failed.
    #[error("the audit database failed")]
    Database(#[source] Arc<sqlx::Error>),
    /// An event could not be encoded for its hash; it is not stored.
    #[error("an audit event cannot be encoded")]
    Encode(#[source] Arc<serde_json::Error>),
    /// A stored event has an outcome this broker does not know.
    #[error("a stored audit event cannot be read")]
    Decode(#[source] Arc<serde_json::Error>),
    /// The writer task is gone (the process is stopping).
    #[error("the audit writer has stopped")]
    WriterStopped,
    /// The store answers, but the last commit failed.
    #[error("the last audit commit failed")]
    LastCommitFailed,
    /// A stored event's `hash` is not 64 hex digits, so no Merkle leaf can be made of it.
    #[error("a stored audit event has a malformed hash")]
    BadHash,
}

/// A failed statement.
pub(crate) fn err(e: sqlx::Error) -> StoreError {
    StoreError::Database(Arc::new(e))
}

fn decode(e: serde_json::Error) -> StoreError {
    StoreError::Decode(Arc::new(e))
}

/// The audit store.
#[derive(Debug, Clone)]
pub enum AuditStore {
    /// SQLite file.
    Sqlite(SqlitePool),
    /// PostgreSQL database.
    Postgres(PgPool),
    /// Keeps nothing; for measuring what auditing costs.
    Noop,
}

const COLUMNS: &str = "id, time, request_id, outcome, reason, issuer, subject, auth_method, client_ip, user_agent, \
     target, host, port, db_user, region, role_arn, session_name, cache, token_sha256, expires_at, kind, count, \
     chain_id, seq, prev_hash, hash, access_request_id, encoding";

/// Parameters per event: the columns of [`COLUMNS`].
const PARAMS_PER_ROW: usize = 28;

/// Events per INSERT statement: a whole batch (28 parameters each, 7168 in all: inside
/// both databases' limits).
const ROWS_PER_INSERT: usize = super::MAX_BATCH;

/// `INSERT ... VALUES (...), (...)` for `rows` events. PostgreSQL numbers its parameters
/// (`$1`); SQLite gets anonymous `?` ones, which it binds by position (numbered names cost
/// SQLite a linear search per parameter, quadratic over a batch).
fn insert_sql(rows: usize, numbered: bool) -> String {
    let mut sql = format!("INSERT INTO audit_events ({COLUMNS}) VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 1..=PARAMS_PER_ROW {
            if c > 1 {
                sql.push_str(", ");
            }
            if numbered {
                sql.push_str(&format!("${}", r * PARAMS_PER_ROW + c));
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql
}

macro_rules! bind_event {
    ($q:expr, $e:expr) => {
        $q.bind(&$e.id)
            .bind(&$e.time)
            .bind(&$e.request_id)
            .bind($e.outcome.as_str())
            .bind(&$e.reason)
            .bind(&$e.issuer)
            .bind(&$e.subject)
            .bind(&$e.auth_method)
            .bind(&$e.client_ip)
            .bind(&$e.user_agent)
            .bind(&$e.target)
            .bind(&$e.host)
            .bind($e.port)
            .bind(&$e.db_user)
            .bind(&$e.region)
            .bind(&$e.role_arn)
            .bind(&$e.session_name)
            .bind(&$e.cache)
            .bind(&$e.token_sha256)
            .bind(&$e.expires_at)
            .bind(&$e.kind)
            .bind($e.count)
            .bind(&$e.chain_id)
            .bind($e.seq)
            .bind(&$e.prev_hash)
            .bind(&$e.hash)
            .bind(&$e.access_request_id)
            .bind($e.encoding.stored())
    };
}

macro_rules! read_event {
    ($row:expr) => {{
        let r = $row;
        let outcome: String = r.try_get("outcome").map_err(err)?;
        AuditEvent {
            id: r.try_get("id").map_err(err)?,
            time: r.try_get("time").map_err(err)?,
            request_id: r.try_get("request_id").map_err(err)?,
            outcome: serde_json::from_value(serde_json::Value::String(outcome)).map_err(decode)?,
            reason: r.try_get("reason").map_err(err)?,
            issuer: r.try_get("issuer").map_err(err)?,
            subject: r.try_get("subject").map_err(err)?,
            auth_method: r.try_get("auth_method").map_err(err)?,
            client_ip: r.try_get("client_ip").map_err(err)?,
            user_agent: r.try_get("user_agent").map_err(err)?,
            target: r.try_get("target").map_err(err)?,
            host: r.try_get("host").map_err(err)?,
            port: r.try_get("port").map_err(err)?,
            db_user: r.try_get("db_user").map_err(err)?,
            region: r.try_get("region").map_err(err)?,
            role_arn: r.try_get("role_arn").map_err(err)?,
            session_name: r.try_get("session_name").map_err(err)?,
            cache: r.try_get("cache").map_err(err)?,
            token_sha256: r.try_get("token_sha256").map_err(err)?,
            expires_at: r.try_get("expires_at").map_err(err)?,
            kind: r.try_get("kind").map_err(err)?,
            access_request_id: r.try_get("access_request_id").map_err(err)?,
            count: r.try_get("count").map_err(err)?,
            chain_id: r.try_get("chain_id").map_err(err)?,
            seq: r.try_get("seq").map_err(err)?,
            prev_hash: r.try_get("prev_hash").map_err(err)?,
            hash: r.try_get("hash").map_err(err)?,
            encoding: {
                let stored: Option<String> = r.try_get("encoding").map_err(err)?;
                Encoding::from_stored(stored.as_deref()).ok_or_else(|| {
                    decode(<serde_json::Error as serde::de::Error>::custom(
                        "unknown event encoding",
                    ))
                })?
            },
        }
    }};
}

/// Every checkpoint, read on `$ex` (a pool or a transaction).
macro_rules! read_checkpoints {
    ($ex:expr) => {{
        let mut out = Vec::new();
        for r in sqlx::query("SELECT chain_id, seq, hash, event_time FROM audit_checkpoints")
            .fetch_all($ex)
            .await
            .map_err(err)?
        {
            out.push(Checkpoint {
                chain_id: r.try_get("chain_id").map_err(err)?,
                seq: r.try_get("seq").map_err(err)?,
                hash: r.try_get("hash").map_err(err)?,
                time: r.try_get("event_time").map_err(err)?,
            });
        }
        Ok::<_, StoreError>(out)
    }};
}

/// The audit writer's own connection to the store (see [`AuditStore::append`]).
#[derive(Debug)]
pub enum HeldConnection {
    /// SQLite.
    Sqlite(PoolConnection<Sqlite>),
    /// PostgreSQL.
    Postgres(PoolConnection<Postgres>),
}

/// Inserts `$events` on the connection `$c`: one multi-row INSERT when they fit in one
/// (a single statement is atomic on its own: one round trip per batch, which keeps group
/// commit cheap when the runtime is busy), else chunks in one transaction.
macro_rules! insert_batch {
    ($c:expr, $events:expr, $numbered:expr) => {{
        let (c, events, numbered) = ($c, $events, $numbered);
        if events.len() <= ROWS_PER_INSERT {
            let sql = insert_sql(events.len(), numbered);
            let mut q = sqlx::query(&sql);
            for e in events {
                q = bind_event!(q, e);
            }
            q.execute(c).await.map(|_| ()).map_err(err)
        } else {
            let mut tx = sqlx::Connection::begin(c).await.map_err(err)?;
            for chunk in events.chunks(ROWS_PER_INSERT) {
                let sql = insert_sql(chunk.len(), numbered);
                let mut q = sqlx::query(&sql);
                for e in chunk {
                    q = bind_event!(q, e);
                }
                q.execute(&mut *tx).await.map_err(err)?;
            }
            tx.commit().await.map_err(err)
        }
    }};
}

/// Runs `$body` with `$p` bound to whichever pool the store has (the two pool types
/// differ, so the body is expanded once per database), or yields `$noop`.
macro_rules! on_pool {
    ($store:expr, $p:ident => $body:expr, noop => $noop:expr) => {
        match $store {
            AuditStore::Sqlite($p) => $body,
            AuditStore::Postgres($p) => $body,
            AuditStore::Noop => $noop,
        }
    };
}

impl AuditStore {
    /// Opens the store named by `audit.url` and runs the migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let store = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Url(Arc::new(e)))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(5))
                // One prepared INSERT per batch size (1 to MAX_BATCH rows) stays cached.
                .statement_cache_capacity(2 * super::MAX_BATCH);
            Self::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(4)
                    // No ping round trip before every statement: a broken connection
                    // fails the statement, the batch is refused and retried by callers.
                    .test_before_acquire(false)
                    .connect_with(opts)
                    .await
                    .map_err(|e| StoreError::Connect(Arc::new(e)))?,
            )
        } else {
            let opts = PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::Url(Arc::new(e)))?
                .statement_cache_capacity(2 * super::MAX_BATCH);
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(opts.clone())
                .await;
            match pool {
                Ok(pool) => Self::Postgres(pool),
                // The pool retried until its timeout and kept only "timed out": one more
                // attempt of our own says why (refused, unknown host, ...).
                Err(sqlx::Error::PoolTimedOut) => {
                    let why =
                        match <sqlx::PgConnection as sqlx::Connection>::connect_with(&opts).await {
                            Ok(_) => sqlx::Error::PoolTimedOut,
                            Err(e) => e,
                        };
                    return Err(StoreError::Connect(Arc::new(why)));
                }
                Err(e) => return Err(StoreError::Connect(Arc::new(e))),
            }
        };
        on_pool!(&store, p => migrator().run(p).await.map_err(|e| StoreError::Migrate(Arc::new(e)))?, noop => ());
        Ok(store)
    }

    /// Writes `events` in one transaction: all or none are stored. Runs on `held`, the
    /// writer's own connection, acquired when empty and closed after a failure (it may be
    /// broken): keeping one connection keeps its page cache and prepared statements warm,
    /// where taking the pool's next idle one would make SQLite drop its cache on every
    /// batch (another connection changed the database meanwhile).
    pub async fn append(
        &self,
        held: &mut Option<HeldConnection>,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let result = self.append_held(held, events).await;
        if result.is_err() {
            // Closed rather than handed back to the pool: it may be the broken part.
            match held.take() {
                Some(HeldConnection::Sqlite(mut c)) => c.close_on_drop(),
                Some(HeldConnection::Postgres(mut c)) => c.close_on_drop(),
                None => {}
            }
        }
        result
    }

    async fn append_held(
        &self,
        held: &mut Option<HeldConnection>,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        if held.is_none() {
            *held = match self {
                Self::Sqlite(p) => {
                    let mut c = p.acquire().await.map_err(err)?;
                    // WAL checkpoints off the commit path: this connection never copies
                    // the WAL into the database file on commit (SQLite's default, every
                    // 1,000 pages, stalls the batch that crosses it); the writer's
                    // companion task does it on another connection
                    // ([`AuditStore::checkpoint_wal`]).
                    sqlx::query("PRAGMA wal_autocheckpoint = 0")
                        .execute(&mut *c)
                        .await
                        .map_err(err)?;
                    Some(HeldConnection::Sqlite(c))
                }
                Self::Postgres(p) => {
                    Some(HeldConnection::Postgres(p.acquire().await.map_err(err)?))
                }
                Self::Noop => return Ok(()),
            };
        }
        let numbered = matches!(self, Self::Postgres(_));
        match held {
            Some(HeldConnection::Sqlite(c)) => insert_batch!(&mut **c, events, numbered),
            Some(HeldConnection::Postgres(c)) => insert_batch!(&mut **c, events, numbered),
            None => Ok(()),
        }
    }

    /// Copies committed WAL frames into an SQLite database file without waiting for
    /// readers or the writer (`PRAGMA wal_checkpoint(PASSIVE)`), on a pooled connection
    /// other than the writer's; the writer then restarts the WAL from its beginning once
    /// all of it is copied. Nothing to do for other stores.
    pub async fn checkpoint_wal(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(p) => sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(p)
                .await
                .map(|_| ())
                .map_err(err),
            Self::Postgres(_) | Self::Noop => Ok(()),
        }
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()).map_err(err), noop => Ok(()))
    }

    /// The last stored (position, hash) of `chain_id`, if it has events.
    pub async fn chain_head(&self, chain_id: &str) -> Result<Option<(i64, String)>, StoreError> {
        let sql =
            "SELECT seq, hash FROM audit_events WHERE chain_id = $1 ORDER BY seq DESC LIMIT 1";
        on_pool!(self, p => {
            match sqlx::query(sql).bind(chain_id).fetch_optional(p).await.map_err(err)? {
                Some(r) => Ok(Some((r.try_get("seq").map_err(err)?, r.try_get("hash").map_err(err)?))),
                None => Ok(None),
            }
        }, noop => Ok(None))
    }

    /// One page of `filter` (up to `limit + 1` rows, newest first).
    pub async fn search(&self, filter: &Filter) -> Result<Vec<AuditEvent>, StoreError> {
        let (sql, args) = filter.sql(COLUMNS);
        on_pool!(self, p => {
            let mut q = sqlx::query(&sql);
            for a in &args {
                q = q.bind(a);
            }
            let mut out = Vec::new();
            for row in q.fetch_all(p).await.map_err(err)? {
                out.push(read_event!(&row));
            }
            Ok(out)
        }, noop => Ok(Vec::new()))
    }

    /// Deletes, chain by chain, every event up to the newest one older than `cutoff`
    /// (RFC 3339), and records that event's position, hash and time as the chain's
    /// checkpoint, in one transaction, so what remains still verifies. Returns the events
    /// deleted.
    pub async fn prune(&self, cutoff: &str) -> Result<u64, StoreError> {
        let heads =
            "SELECT chain_id, MAX(seq) AS seq FROM audit_events WHERE time < $1 GROUP BY chain_id";
        on_pool!(self, p => {
            let mut tx = p.begin().await.map_err(err)?;
            let rows = sqlx::query(heads).bind(cutoff).fetch_all(&mut *tx).await.map_err(err)?;
            let mut deleted = 0;
            for r in rows {
                let chain: String = r.try_get("chain_id").map_err(err)?;
                let seq: i64 = r.try_get("seq").map_err(err)?;
                let last = sqlx::query("SELECT hash, time FROM audit_events WHERE chain_id = $1 AND seq = $2")
                    .bind(&chain)
                    .bind(seq)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err)?;
                let hash: String = last.try_get("hash").map_err(err)?;
                let time: String = last.try_get("time").map_err(err)?;
                // Kept for Merkle proofs over the pruned prefix (migration 7).
                sqlx::query(
                    "INSERT INTO audit_pruned_hashes (chain_id, seq, hash) \
                     SELECT chain_id, seq, hash FROM audit_events WHERE chain_id = $1 AND seq <= $2",
                )
                .bind(&chain)
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
                sqlx::query("DELETE FROM audit_checkpoints WHERE chain_id = $1").bind(&chain).execute(&mut *tx).await.map_err(err)?;
                sqlx::query("INSERT INTO audit_checkpoints (chain_id, seq, hash, event_time) VALUES ($1, $2, $3, $4)")
                    .bind(&chain)
                    .bind(seq)
                    .bind(&hash)
                    .bind(&time)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                let done = sqlx::query("DELETE FROM audit_events WHERE chain_id = $1 AND seq <= $2")
                    .bind(&chain)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                deleted += done.rows_affected();
            }
            tx.commit().await.map_err(err)?;
            Ok(deleted)
        }, noop => Ok(0))
    }

    /// Each pruned chain's checkpoint (see [`Checkpoint`]).
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        on_pool!(self, p => read_checkpoints!(p), noop => Ok(Vec::new()))
    }

    /// Walks every chain, by chain and position, `page` events at a time (keyset pages on
    /// the `(chain_id, seq)` index), through one [`ChainWalker`]: memory stays constant
    /// whatever the size of the trail. The walk reads one snapshot (a read transaction),
    /// so pruning meanwhile cannot open a gap in it. Also returns the pages read.
    pub async fn walk_chains(
        &self,
        page: u32,
        newest_checkpoint: Option<std::time::SystemTime>,
    ) -> Result<(Verification, u64), StoreError> {
        let page = page.max(1);
        let first = format!("SELECT {COLUMNS} FROM audit_events ORDER BY chain_id, seq LIMIT $1");
        let next = format!(
            "SELECT {COLUMNS} FROM audit_events WHERE (chain_id, seq) > ($1, $2) \
             ORDER BY chain_id, seq LIMIT $3"
        );
        let postgres = matches!(self, Self::Postgres(_));
        on_pool!(self, p => {
            let mut tx = p.begin().await.map_err(err)?;
            if postgres {
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
            }
            let checkpoints = read_checkpoints!(&mut *tx)?;
            let mut walker = ChainWalker::new(&checkpoints, newest_checkpoint);
            let mut after: Option<(String, i64)> = None;
            let mut pages = 0u64;
            loop {
                let q = match &after {
                    None => sqlx::query(&first).bind(i64::from(page)),
                    Some((chain, seq)) => sqlx::query(&next).bind(chain).bind(*seq).bind(i64::from(page)),
                };
                let rows = q.fetch_all(&mut *tx).await.map_err(err)?;
                pages += 1;
                let full = rows.len() == page as usize;
                let mut going = true;
                for row in &rows {
                    let e = read_event!(row);
                    going = walker.push(&e);
                    if !going {
                        break;
                    }
                    after = Some((e.chain_id, e.seq));
                }
                if !going || !full {
                    break;
                }
            }
            tx.rollback().await.map_err(err)?;
            Ok((walker.finish(), pages))
        }, noop => Ok((ChainWalker::new(&[], None).finish(), 0)))
    }

    /// Every event, by chain and position, in memory at once: for tests and tools on small
    /// trails; verification walks the chains with [`AuditStore::walk_chains`] instead.
    pub async fn all_by_chain(&self) -> Result<Vec<AuditEvent>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM audit_events ORDER BY chain_id, seq");
        on_pool!(self, p => {
            let mut out = Vec::new();
            for row in sqlx::query(&sql).fetch_all(p).await.map_err(err)? {
                out.push(read_event!(&row));
            }
            Ok(out)
        }, noop => Ok(Vec::new()))
    }
}
