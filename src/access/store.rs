//! The SQL of access requests, on the audit store's database (SQLite or PostgreSQL, same
//! statements). Every transition is one conditional UPDATE (`... WHERE state = 'pending'`),
//! so replicas racing on one request agree on who won.

use sqlx::Row;

use super::model::{AccessRequest, Approval, Requester, State, TokenIssued, from_millis, millis};
use crate::audit::{AuditStore, StoreError};

/// A failed statement.
fn err(e: sqlx::Error) -> StoreError {
    StoreError::Database(std::sync::Arc::new(e))
}

/// Runs `$body` with `$p` bound to the store's pool; a store that keeps nothing holds no
/// requests (`$noop`).
macro_rules! pool {
    ($store:expr, $p:ident => $body:expr, noop => $noop:expr) => {
        match $store {
            AuditStore::Sqlite($p) => $body,
            AuditStore::Postgres($p) => $body,
            AuditStore::Noop => $noop,
        }
    };
}

const COLUMNS: &str = "id, state, break_glass, target, db_user, requester_issuer, \
    requester_subject, reason, duration_minutes, min_approvals, created_at, approved_at, \
    expires_at, decided_at, decided_by, decision_comment";

macro_rules! read_request {
    ($r:expr) => {{
        let r = $r;
        let state: String = r.try_get("state").map_err(err)?;
        let opt = |v: Option<i64>| v.map(from_millis);
        AccessRequest {
            id: r.try_get("id").map_err(err)?,
            state: State::parse(&state).unwrap_or(State::Revoked),
            break_glass: r.try_get::<i64, _>("break_glass").map_err(err)? != 0,
            target: r.try_get("target").map_err(err)?,
            db_user: r.try_get("db_user").map_err(err)?,
            requester: Requester {
                issuer: r.try_get("requester_issuer").map_err(err)?,
                subject: r.try_get("requester_subject").map_err(err)?,
            },
            reason: r.try_get("reason").map_err(err)?,
            duration_minutes: u32::try_from(r.try_get::<i64, _>("duration_minutes").map_err(err)?)
                .unwrap_or(0),
            min_approvals: u32::try_from(r.try_get::<i64, _>("min_approvals").map_err(err)?)
                .unwrap_or(1),
            created_at: from_millis(r.try_get("created_at").map_err(err)?),
            approved_at: opt(r.try_get("approved_at").map_err(err)?),
            expires_at: opt(r.try_get("expires_at").map_err(err)?),
            decided_at: opt(r.try_get("decided_at").map_err(err)?),
            decided_by: r.try_get("decided_by").map_err(err)?,
            decision_comment: r.try_get("decision_comment").map_err(err)?,
            approvals: Vec::new(),
        }
    }};
}

/// Stores a new request; `false` when the requester has an open (pending or approved)
/// request for the same target and DB user already. The unique index
/// `access_requests_one_open` decides, so replicas racing to insert agree.
pub async fn insert(store: &AuditStore, r: &AccessRequest) -> Result<bool, StoreError> {
    let sql = format!(
        "INSERT INTO access_requests ({COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
    );
    pool!(store, p => {
        sqlx::query(&sql)
            .bind(&r.id)
            .bind(r.state.as_str())
            .bind(i64::from(r.break_glass))
            .bind(&r.target)
            .bind(&r.db_user)
            .bind(&r.requester.issuer)
            .bind(&r.requester.subject)
            .bind(&r.reason)
            .bind(i64::from(r.duration_minutes))
            .bind(i64::from(r.min_approvals))
            .bind(millis(r.created_at))
            .bind(r.approved_at.map(millis))
            .bind(r.expires_at.map(millis))
            .bind(r.decided_at.map(millis))
            .bind(&r.decided_by)
            .bind(&r.decision_comment)
            .execute(p)
            .await
            .map(|_| ())
    }, noop => return Ok(true))
    .map(|_| true)
    .or_else(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Ok(false),
        _ => Err(err(e)),
    })
}

/// Removes a request whose `requested` event could not be recorded.
pub async fn delete(store: &AuditStore, id: &str) -> Result<(), StoreError> {
    pool!(store, p => {
        sqlx::query("DELETE FROM access_requests WHERE id = $1")
            .bind(id)
            .execute(p)
            .await
            .map(|_| ())
            .map_err(err)
    }, noop => Ok(()))
}

/// One request with its approvals.
pub async fn get(store: &AuditStore, id: &str) -> Result<Option<AccessRequest>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM access_requests WHERE id = $1");
    let found = pool!(store, p => {
        match sqlx::query(&sql).bind(id).fetch_optional(p).await.map_err(err)? {
            Some(row) => Some(read_request!(&row)),
            None => None,
        }
    }, noop => None);
    match found {
        Some(mut r) => {
            r.approvals = approvals(store, id).await?;
            Ok(Some(r))
        }
        None => Ok(None),
    }
}

async fn approvals(store: &AuditStore, id: &str) -> Result<Vec<Approval>, StoreError> {
    let sql = "SELECT approver_issuer, approver_subject, comment, at FROM access_approvals \
               WHERE request_id = $1 ORDER BY at, approver_subject";
    pool!(store, p => {
        let mut out = Vec::new();
        for r in sqlx::query(sql).bind(id).fetch_all(p).await.map_err(err)? {
            out.push(Approval {
                issuer: r.try_get("approver_issuer").map_err(err)?,
                subject: r.try_get("approver_subject").map_err(err)?,
                comment: r.try_get("comment").map_err(err)?,
                at: from_millis(r.try_get("at").map_err(err)?),
            });
        }
        Ok(out)
    }, noop => Ok(Vec::new()))
}

/// Newest first: up to `limit` requests in `state` (any when `None`), of `requester` when
/// given, older than the request `before` (by id: UUIDv7s order by time).
pub async fn list(
    store: &AuditStore,
    state: Option<State>,
    requester: Option<(&str, &str)>,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<AccessRequest>, StoreError> {
    let mut clauses = Vec::new();
    let mut args: Vec<String> = Vec::new();
    if let Some(s) = state {
        args.push(s.as_str().to_owned());
        clauses.push(format!("state = ${}", args.len()));
    }
    if let Some((iss, sub)) = requester {
        args.push(iss.to_owned());
        clauses.push(format!("requester_issuer = ${}", args.len()));
        args.push(sub.to_owned());
        clauses.push(format!("requester_subject = ${}", args.len()));
    }
    if let Some(b) = before {
        args.push(b.to_owned());
        clauses.push(format!("id < ${}", args.len()));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let sql =
        format!("SELECT {COLUMNS} FROM access_requests{filter} ORDER BY id DESC LIMIT {limit}");
    let mut out = pool!(store, p => {
        let mut q = sqlx::query(&sql);
        for a in &args {
            q = q.bind(a);
        }
        let mut out = Vec::new();
        for row in q.fetch_all(p).await.map_err(err)? {
            out.push(read_request!(&row));
        }
        out
    }, noop => Vec::new());
    for r in &mut out {
        r.approvals = approvals(store, &r.id).await?;
    }
    Ok(out)
}

/// The requester's pending or approved requests for `target` (and `db_user`, when given),
/// the latest-expiring approved one first.
pub async fn open_for(
    store: &AuditStore,
    requester: (&str, &str),
    target: &str,
    db_user: Option<&str>,
) -> Result<Vec<AccessRequest>, StoreError> {
    let user = if db_user.is_some() {
        " AND db_user = $4"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM access_requests WHERE requester_issuer = $1 AND \
         requester_subject = $2 AND target = $3{user} AND state IN ('pending', 'approved') \
         ORDER BY state, expires_at DESC LIMIT 20"
    );
    pool!(store, p => {
        let mut q = sqlx::query(&sql).bind(requester.0).bind(requester.1).bind(target);
        if let Some(u) = db_user {
            q = q.bind(u);
        }
        let mut out = Vec::new();
        for row in q.fetch_all(p).await.map_err(err)? {
            out.push(read_request!(&row));
        }
        Ok(out)
    }, noop => Ok(Vec::new()))
}

/// Records an approval; `false` when this approver approved already.
pub async fn add_approval(
    store: &AuditStore,
    id: &str,
    approver: (&str, &str),
    comment: &str,
    at: std::time::SystemTime,
) -> Result<bool, StoreError> {
    let sql = "INSERT INTO access_approvals (request_id, approver_issuer, approver_subject, \
               comment, at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
    pool!(store, p => {
        let done = sqlx::query(sql)
            .bind(id)
            .bind(approver.0)
            .bind(approver.1)
            .bind(comment)
            .bind(millis(at))
            .execute(p)
            .await
            .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }, noop => Ok(false))
}

/// Distinct approvals of a request.
pub async fn count_approvals(store: &AuditStore, id: &str) -> Result<u32, StoreError> {
    let sql = "SELECT COUNT(*) AS n FROM access_approvals WHERE request_id = $1";
    pool!(store, p => {
        let r = sqlx::query(sql).bind(id).fetch_one(p).await.map_err(err)?;
        let n: i64 = r.try_get("n").map_err(err)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }, noop => Ok(0))
}

/// pending to approved, with its window; whether this call made the change.
pub async fn approve(
    store: &AuditStore,
    id: &str,
    at: std::time::SystemTime,
    expires_at: std::time::SystemTime,
) -> Result<bool, StoreError> {
    let sql = "UPDATE access_requests SET state = 'approved', approved_at = $2, expires_at = $3 \
               WHERE id = $1 AND state = 'pending'";
    pool!(store, p => {
        let done = sqlx::query(sql)
            .bind(id)
            .bind(millis(at))
            .bind(millis(expires_at))
            .execute(p)
            .await
            .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }, noop => Ok(false))
}

/// `from` (one of the states) to `to` (denied, expired or revoked), saying who and why;
/// whether this call made the change.
pub async fn close(
    store: &AuditStore,
    id: &str,
    from: &[State],
    to: State,
    at: std::time::SystemTime,
    by: &str,
    comment: &str,
) -> Result<bool, StoreError> {
    let states: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let sql = format!(
        "UPDATE access_requests SET state = $2, decided_at = $3, decided_by = $4, \
         decision_comment = $5 WHERE id = $1 AND state IN ({})",
        states.join(", ")
    );
    pool!(store, p => {
        let done = sqlx::query(&sql)
            .bind(id)
            .bind(to.as_str())
            .bind(millis(at))
            .bind(by)
            .bind(comment)
            .execute(p)
            .await
            .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }, noop => Ok(false))
}

/// Ids of requests due to expire at `now` (at most `limit`).
pub async fn due(
    store: &AuditStore,
    now: std::time::SystemTime,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    let pending_before = now
        .checked_sub(super::model::PENDING_TTL)
        .unwrap_or(std::time::UNIX_EPOCH);
    let sql = format!(
        "SELECT id FROM access_requests WHERE (state = 'approved' AND expires_at <= $1) \
         OR (state = 'pending' AND created_at <= $2) ORDER BY id LIMIT {limit}"
    );
    pool!(store, p => {
        let mut out = Vec::new();
        for r in sqlx::query(&sql)
            .bind(millis(now))
            .bind(millis(pending_before))
            .fetch_all(p)
            .await
            .map_err(err)?
        {
            out.push(r.try_get("id").map_err(err)?);
        }
        Ok(out)
    }, noop => Ok(Vec::new()))
}

/// Tokens issued under request `id`, from the audit trail.
pub async fn tokens_of(store: &AuditStore, id: &str) -> Result<Vec<TokenIssued>, StoreError> {
    let sql = "SELECT id, expires_at FROM audit_events WHERE access_request_id = $1 \
               AND outcome = 'issued' ORDER BY time, id LIMIT 1000";
    pool!(store, p => {
        let mut out = Vec::new();
        for r in sqlx::query(sql).bind(id).fetch_all(p).await.map_err(err)? {
            out.push(TokenIssued {
                issuance_id: r.try_get("id").map_err(err)?,
                expires_at: r.try_get("expires_at").map_err(err)?,
            });
        }
        Ok(out)
    }, noop => Ok(Vec::new()))
}
