//! `/v1/audit/*`: for principals matched by `[[auditors]]` only. Every read is recorded
//! (outcome `audit_read`) before its answer leaves; a read that cannot be recorded is
//! refused with 503, as an issuance is.

use std::collections::HashMap;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::extract::{Caller, JsonBody, Meta};
use crate::audit::query::{Filter, MAX_LIMIT, QueryError};
use crate::audit::stats::StatsQuery;
use crate::audit::{AuditLog, StoreError, Verification, newest_checkpoint};
use crate::auth::Principal;
use crate::broker::{ReadCount, RequestMeta, TrailRead};
use crate::policy;
use crate::state::AppState;

/// Rows fetched per page while streaming an export.
const EXPORT_PAGE: u32 = 500;

/// The caller must match an `[[auditors]]` entry; on an `allow_unauthenticated` broker the
/// anonymous caller too (an entry with issuer `none`, subject `anonymous`): loopback is no
/// boundary inside a pod, and a shared store holds the whole fleet's trail.
pub(super) fn require_auditor(caller: &Caller) -> Result<(), ApiError> {
    if policy::is_auditor(&caller.generation.config, &caller.principal) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

pub(super) fn trail(state: &AppState) -> Result<&AuditLog, ApiError> {
    state
        .broker
        .audit()
        .ok_or_else(|| ApiError::unavailable("no audit trail is configured ([audit])", 60))
}

/// 503 in product terms; the store's error is the cause, logged.
pub(super) fn unavailable(e: StoreError) -> ApiError {
    ApiError::unavailable("audit trail unavailable", 5).caused_by(e)
}

/// Records `read` by `caller`; 503 when it cannot be, so nothing is read unrecorded.
pub(super) async fn recorded(
    state: &AppState,
    meta: &RequestMeta,
    caller: &Caller,
    read: TrailRead,
) -> Result<(), ApiError> {
    state
        .broker
        .record_read(meta, &caller.principal, &read)
        .await
        .map_err(|e| {
            ApiError::unavailable("this read could not be recorded in the audit trail", 5)
                .caused_by(e)
        })
}

/// The query parameters as an `audit_read` event's filters.
pub(super) fn filters(params: &HashMap<String, String>) -> Vec<(String, String)> {
    params.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// 400 naming the parameter at fault.
fn bad_query(e: QueryError) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

/// The query string's parameters; 400 when it does not parse.
pub(super) fn query_params(uri: &Uri) -> Result<HashMap<String, String>, ApiError> {
    Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|Query(p)| p)
        .map_err(|_| ApiError::BadRequest("the query string is malformed".into()))
}

/// Walks every hash chain and names the first broken link; a retention checkpoint newer
/// than `audit.retention_days` allows is one. Then checks the chains against their signed
/// checkpoints (stored and in the file sink), with the keys the broker trusts.
pub async fn verify(
    State(state): State<AppState>,
    Meta(meta): Meta,
    caller: Caller,
) -> Result<Json<Verification>, ApiError> {
    require_auditor(&caller)?;
    let newest = caller
        .generation
        .config
        .audit
        .as_ref()
        .and_then(|a| newest_checkpoint(state.broker.now(), a.retention_days));
    let trust = super::checkpoints::trust(&state, &caller).await;
    let v = trail(&state)?
        .verify(newest, trust)
        .await
        .map_err(unavailable)?;
    let read = TrailRead {
        what: "GET /v1/audit/verify",
        filters: Vec::new(),
        events: ReadCount::Returned(v.events_checked),
    };
    recorded(&state, &meta, &caller, read).await?;
    Ok(Json(v))
}

/// Searches events: a JSON page with `next_cursor`, or the whole result as NDJSON or CSV.
pub async fn events(
    State(state): State<AppState>,
    Meta(meta): Meta,
    caller: Caller,
    uri: Uri,
) -> Result<Response, ApiError> {
    require_auditor(&caller)?;
    let params = query_params(&uri)?;
    let mut filter = Filter::parse(&params).map_err(bad_query)?;
    let audit = trail(&state)?.clone();
    let mut read = TrailRead {
        what: "GET /v1/audit/events",
        filters: filters(&params),
        events: ReadCount::ExportStarted,
    };
    match params.get("format").map(String::as_str) {
        None | Some("json") => {
            let (events, next) = audit.search(&filter).await.map_err(unavailable)?;
            read.events = ReadCount::Returned(events.len() as u64);
            recorded(&state, &meta, &caller, read).await?;
            Ok(Json(json!({"events": events, "next_cursor": next})).into_response())
        }
        Some(f @ ("ndjson" | "csv")) => {
            filter.limit = EXPORT_PAGE;
            let csv = f == "csv";
            recorded(&state, &meta, &caller, read.clone()).await?;
            let finish = Finish {
                state: state.clone(),
                meta,
                auditor: caller.principal.clone(),
                read,
            };
            Ok(stream(audit, filter, csv, finish))
        }
        Some(_) => Err(ApiError::BadRequest(
            "format: must be json, ndjson or csv".into(),
        )),
    }
}

/// Aggregates for the console's charts.
pub async fn stats(
    State(state): State<AppState>,
    Meta(meta): Meta,
    caller: Caller,
    uri: Uri,
) -> Result<Response, ApiError> {
    require_auditor(&caller)?;
    let params = query_params(&uri)?;
    let query = StatsQuery::parse(&params, state.broker.now()).map_err(bad_query)?;
    let budgets: Vec<_> = caller
        .generation
        .config
        .targets
        .values()
        .map(|t| {
            (
                t.name.to_string(),
                t.max_connections_per_second,
                t.burst,
                t.kind.kind().as_str(),
            )
        })
        .collect();
    let stats = trail(&state)?
        .stats(&query, &budgets)
        .await
        .map_err(unavailable)?;
    let read = TrailRead {
        what: "GET /v1/audit/stats",
        filters: filters(&params),
        events: ReadCount::Returned(stats.totals.values().map(|n| n.unsigned_abs()).sum()),
    };
    recorded(&state, &meta, &caller, read).await?;
    Ok(Json(stats).into_response())
}

/// What an export records once it has streamed to its end.
struct Finish {
    state: AppState,
    meta: RequestMeta,
    auditor: Principal,
    read: TrailRead,
}

impl Finish {
    /// Records that the export sent `sent` events (best effort: they have left).
    async fn record(&self, sent: u64) {
        let mut read = self.read.clone();
        read.events = ReadCount::ExportFinished(sent);
        let broker = &self.state.broker;
        if let Err(e) = broker.record_read(&self.meta, &self.auditor, &read).await {
            tracing::warn!(error = %crate::report::Report(&e), "recording the end of an audit export failed");
        }
    }
}

/// Streams every matching event, a page at a time, so memory stays constant; at the end,
/// records how many events the export sent.
fn stream(audit: AuditLog, filter: Filter, csv: bool, finish: Finish) -> Response {
    let finish = std::sync::Arc::new(finish);
    let start = (Some(filter), csv, 0_u64);
    let body = futures_util::stream::unfold(start, move |(filter, first, sent)| {
        let audit = audit.clone();
        let finish = finish.clone();
        async move {
            let mut filter = filter?;
            let mut out = String::new();
            if first && csv {
                out.push_str(&crate::audit::csv::header());
            }
            match audit.search(&filter).await {
                Ok((events, next)) => {
                    for e in &events {
                        let encoded = if csv {
                            crate::audit::csv::row(e)
                        } else {
                            serde_json::to_string(e).map(|line| {
                                format!("{}\n", crate::audit::display::escape_json(&line))
                            })
                        };
                        match encoded {
                            Ok(text) => out.push_str(&text),
                            // Never an empty line in place of an event: the export breaks
                            // off, and the client sees it incomplete.
                            Err(err) => {
                                tracing::error!(event_id = %e.id, error = %err, "an audit event cannot be exported; export broken off");
                                return Some((
                                    Err(std::io::Error::other("an audit event cannot be exported")),
                                    (None, false, sent),
                                ));
                            }
                        }
                    }
                    // The next page starts after this page's last event (what its
                    // cursor encodes), without a round trip through the cursor text.
                    let sent = sent + events.len() as u64;
                    let next_filter = match (next, events.last()) {
                        (Some(_), Some(last)) => {
                            filter.after = Some((last.time.clone(), last.id.clone()));
                            Some(filter)
                        }
                        _ => None,
                    };
                    if next_filter.is_none() {
                        finish.record(sent).await;
                    }
                    Some((
                        Ok::<Bytes, std::io::Error>(Bytes::from(out)),
                        (next_filter, false, sent),
                    ))
                }
                Err(e) => {
                    tracing::warn!(error = %crate::report::Report(&e), "audit export broken off");
                    Some((Err(std::io::Error::other(e)), (None, false, sent)))
                }
            }
        }
    });
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    let mut res = Response::new(Body::from_stream(body));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Body of `POST /v1/audit/lookup`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupBody {
    token: SecretString,
}

/// The issuance events of a (leaked) token, hashed here so the token never reaches the store.
pub async fn lookup(
    State(state): State<AppState>,
    Meta(meta): Meta,
    caller: Caller,
    JsonBody(body): JsonBody<LookupBody>,
) -> Result<Response, ApiError> {
    require_auditor(&caller)?;
    let sha = hex::encode(Sha256::digest(body.token.expose_secret().as_bytes()));
    let filter = Filter {
        equals: vec![("token_sha256", sha.clone())],
        limit: MAX_LIMIT,
        ..Filter::default()
    };
    let (events, _) = trail(&state)?.search(&filter).await.map_err(unavailable)?;
    let read = TrailRead {
        what: "POST /v1/audit/lookup",
        filters: vec![("token_sha256".to_owned(), sha.clone())],
        events: ReadCount::Returned(events.len() as u64),
    };
    recorded(&state, &meta, &caller, read).await?;
    Ok(Json(json!({"token_sha256": sha, "events": events})).into_response())
}
