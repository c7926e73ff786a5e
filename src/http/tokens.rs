//! `POST /v1/tokens`: issue a token for a target and DB user.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{Caller, JsonBody, Meta, Refused};
use crate::broker::{Issued, TokenRequest};
use crate::clock::rfc3339;
use crate::domain::{DbUser, TargetName};
use crate::state::AppState;

/// Request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequestBody {
    target: String,
    #[serde(default)]
    db_user: Option<String>,
}

impl TokenRequestBody {
    fn parse(self) -> Result<TokenRequest, ApiError> {
        let target = TargetName::parse(&self.target)
            .map_err(|e| ApiError::BadRequest(format!("target {e}")))?;
        let db_user = self
            .db_user
            .map(|u| DbUser::parse(&u))
            .transpose()
            .map_err(|e| ApiError::BadRequest(format!("db_user {e}")))?;
        Ok(TokenRequest { target, db_user })
    }
}

/// How long ElastiCache and MemoryDB keep an IAM-authenticated connection: a client must
/// send `AUTH` with a fresh token before then, or the connection is closed.
pub const CACHE_REAUTHENTICATE_WITHIN_SECONDS: u64 = 12 * 3600;

/// What the answer for a cache says about re-authentication.
const CACHE_NOTE: &str = "Connect with TLS and send AUTH <user> <token>. The connection is closed 12 hours after it authenticated: send AUTH again with a fresh token before then.";

/// Response body.
#[derive(Debug, Serialize)]
struct TokenResponse<'a> {
    token: &'a str,
    expires_at: String,
    target: &'a str,
    kind: &'static str,
    host: &'a str,
    port: u16,
    db_user: &'a str,
    region: &'a str,
    engine: &'a str,
    issuance_id: String,
    /// The access request the token was issued under (request and break-glass grants).
    #[serde(skip_serializing_if = "Option::is_none")]
    access_request_id: Option<&'a str>,
    /// Caches: the user id to `AUTH` as (the token is its password).
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    /// Caches: IAM authentication needs TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<bool>,
    /// Caches: [`CACHE_REAUTHENTICATE_WITHIN_SECONDS`].
    #[serde(skip_serializing_if = "Option::is_none")]
    reauthenticate_within_seconds: Option<u64>,
    /// Caches: [`CACHE_NOTE`].
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'static str>,
}

/// Issues a token. Every decision is audited: a refused sign-in here (not on other
/// routes) too, before the body is looked at, so an unauthenticated caller learns nothing
/// from a malformed body; then a malformed body (outcome `rejected`, as is a body over the
/// size limit: see `read_body`).
pub async fn create(
    State(state): State<AppState>,
    Meta(meta): Meta,
    caller: Result<Caller, Refused>,
    body: Result<JsonBody<TokenRequestBody>, ApiError>,
) -> Result<Response, ApiError> {
    let caller = match caller {
        Ok(c) => c,
        Err(refused) => return Err(refused.record(&state, &meta).await),
    };
    let request = match body.and_then(|JsonBody(b)| b.parse()) {
        Ok(r) => r,
        Err(e) => {
            let kind = match e {
                ApiError::UnsupportedMediaType => "not_json",
                _ => "malformed",
            };
            let principal = Some(&caller.principal);
            let broker = &state.broker;
            broker
                .record_rejected(&meta, principal, kind, &e.detail())
                .await;
            return Err(e);
        }
    };
    let config = &caller.generation.config;
    // Boxed: the issuance future is large, and every layer above would otherwise move it
    // (several kilobytes copied a dozen times per request).
    let issued = Box::pin(
        state
            .broker
            .issue_recorded(config, &meta, &caller.principal, request),
    )
    .await?;
    Ok(respond(&issued))
}

fn respond(i: &Issued) -> Response {
    let kind = i.target.kind.kind();
    let cache = kind.is_cache();
    let body = TokenResponse {
        token: i.token.expose_secret(),
        expires_at: rfc3339(i.expires_at),
        target: i.target.name.as_str(),
        kind: kind.as_str(),
        host: i.target.host.as_str(),
        port: i.target.port,
        db_user: i.db_user.as_str(),
        region: i.target.region.as_str(),
        engine: i.target.engine.as_str(),
        issuance_id: i.issuance_id.to_string(),
        access_request_id: i.access_request_id.as_deref(),
        user: cache.then(|| i.db_user.as_str()),
        tls: cache.then_some(true),
        reauthenticate_within_seconds: cache.then_some(CACHE_REAUTHENTICATE_WITHIN_SECONDS),
        note: cache.then_some(CACHE_NOTE),
    };
    let mut res = Json(body).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}
