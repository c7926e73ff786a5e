//! `/v1/audit/*`: for principals matched by `[[auditors]]` only.

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
use super::extract::{Caller, JsonBody};
use crate::audit::query::{Filter, QueryError};
use crate::audit::stats::StatsQuery;
use crate::audit::{AuditLog, StoreError, Verification, newest_checkpoint};
use crate::policy;
use crate::state::AppState;

/// Rows fetched per page while streaming an export.
const EXPORT_PAGE: u32 = 500;

/// The caller must match an `[[auditors]]` entry; on an `allow_unauthenticated` broker the
/// anonymous caller too (an entry with issuer `none`, subject `anonymous`): loopback is no
/// boundary inside a pod, and a shared store holds the whole fleet's trail.
fn require_auditor(caller: &Caller) -> Result<(), ApiError> {
    if policy::is_auditor(&caller.generation.config, &caller.principal) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

fn trail(state: &AppState) -> Result<&AuditLog, ApiError> {
    state
        .broker
        .audit
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable {
            detail: "no audit trail is configured ([audit])".into(),
            retry_after: 60,
        })
}

fn unavailable(e: StoreError) -> ApiError {
    ApiError::Unavailable {
        detail: e.to_string(),
        retry_after: 5,
    }
}

/// The query string's parameters; 400 when it does not parse.
fn query_params(uri: &Uri) -> Result<HashMap<String, String>, ApiError> {
    Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|Query(p)| p)
        .map_err(|_| ApiError::BadRequest("the query string is malformed".into()))
}

/// Walks every hash chain and names the first broken link; a retention checkpoint newer
/// than `audit.retention_days` allows is one.
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Verification>, ApiError> {
    require_auditor(&caller)?;
    let newest = caller
        .generation
        .config
        .audit
        .as_ref()
        .and_then(|a| newest_checkpoint(state.broker.clock.now(), a.retention_days));
    let v = trail(&state)?.verify(newest).await.map_err(unavailable)?;
    Ok(Json(v))
}

/// Searches events: a JSON page with `next_cursor`, or the whole result as NDJSON or CSV.
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Response, ApiError> {
    require_auditor(&caller)?;
    let params = query_params(&uri)?;
    let mut filter = Filter::parse(&params).map_err(|QueryError(e)| ApiError::BadRequest(e))?;
    let audit = trail(&state)?.clone();
    match params.get("format").map(String::as_str) {
        None | Some("json") => {
            let (events, next) = audit.search(&filter).await.map_err(unavailable)?;
            Ok(Json(json!({"events": events, "next_cursor": next})).into_response())
        }
        Some(f @ ("ndjson" | "csv")) => {
            filter.limit = EXPORT_PAGE;
            let csv = f == "csv";
            Ok(stream(audit, filter, csv))
        }
        Some(_) => Err(ApiError::BadRequest(
            "format: must be json, ndjson or csv".into(),
        )),
    }
}

/// Aggregates for the console's charts.
pub async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Response, ApiError> {
    require_auditor(&caller)?;
    let params = query_params(&uri)?;
    let query = StatsQuery::parse(&params, state.broker.clock.now())
        .map_err(|QueryError(e)| ApiError::BadRequest(e))?;
    let budgets: Vec<_> = caller
        .generation
        .config
        .targets
        .values()
        .map(|t| (t.name.to_string(), t.max_connections_per_second, t.burst))
        .collect();
    let stats = trail(&state)?
        .stats(&query, &budgets)
        .await
        .map_err(unavailable)?;
    Ok(Json(stats).into_response())
}

/// Streams every matching event, a page at a time, so memory stays constant.
fn stream(audit: AuditLog, filter: Filter, csv: bool) -> Response {
    let start = (Some(filter), csv);
    let body = futures_util::stream::unfold(start, move |(filter, first)| {
        let audit = audit.clone();
        async move {
            let mut filter = filter?;
            let mut out = String::new();
            if first && csv {
                out.push_str(&crate::audit::csv::header());
            }
            match audit.search(&filter).await {
                Ok((events, next)) => {
                    for e in &events {
                        out.push_str(&if csv {
                            crate::audit::csv::row(e)
                        } else {
                            let line = serde_json::to_string(e).unwrap_or_default();
                            format!("{}\n", crate::audit::display::escape_json(&line))
                        });
                    }
                    let next_filter = next.and_then(|c| {
                        let params = HashMap::from([("cursor".to_owned(), c)]);
                        Filter::parse(&params).ok().map(|p| {
                            filter.after = p.after;
                            filter
                        })
                    });
                    Some((
                        Ok::<Bytes, std::io::Error>(Bytes::from(out)),
                        (next_filter, false),
                    ))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), (None, false))),
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
    caller: Caller,
    JsonBody(body): JsonBody<LookupBody>,
) -> Result<Response, ApiError> {
    require_auditor(&caller)?;
    let sha = hex::encode(Sha256::digest(body.token.expose_secret().as_bytes()));
    let params = HashMap::from([
        ("token_sha256".to_owned(), sha.clone()),
        ("limit".to_owned(), "1000".to_owned()),
    ]);
    let filter = Filter::parse(&params).map_err(|QueryError(e)| ApiError::Internal(e))?;
    let (events, _) = trail(&state)?.search(&filter).await.map_err(unavailable)?;
    Ok(Json(json!({"token_sha256": sha, "events": events})).into_response())
}
