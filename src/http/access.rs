//! `/v1/access-requests`: make, list, read, approve, deny and revoke access requests
//! (`docs/api.md#access-requests`). Thin: parse and clean the input, call
//! [`crate::access::AccessRequests`], map its errors.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{StatusCode, Uri, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::extract::{Caller, JsonBody, Meta, Refused};
use crate::access::{AccessError, AccessRequests, Actor, ListQuery, NewRequest, State as ReqState};
use crate::broker::RequestMeta;
use crate::config::Config;
use crate::domain::{DbUser, TargetName, text};
use crate::state::AppState;

/// Most requests in one page.
pub const MAX_PAGE: u32 = 200;
/// Requests per page when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 50;

/// `POST /v1/access-requests` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    target: String,
    db_user: String,
    duration_minutes: i64,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    break_glass: bool,
}

impl CreateBody {
    fn parse(self) -> Result<NewRequest, ApiError> {
        let target = TargetName::parse(&self.target)
            .map_err(|e| ApiError::BadRequest(format!("target {e}")))?;
        let db_user = DbUser::parse(&self.db_user)
            .map_err(|e| ApiError::BadRequest(format!("db_user {e}")))?;
        let max = crate::config::MAX_DURATION_MINUTES;
        let duration_minutes = u32::try_from(self.duration_minutes)
            .ok()
            .filter(|d| (1..=max).contains(d))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("duration_minutes must be between 1 and {max}"))
            })?;
        Ok(NewRequest {
            target,
            db_user,
            duration_minutes,
            reason: text::cleaned(self.reason.as_deref().unwrap_or(""), text::LONG),
            break_glass: self.break_glass,
        })
    }
}

/// Approve, deny and revoke bodies.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    #[serde(default)]
    comment: Option<String>,
}

impl DecisionBody {
    fn comment(&self) -> String {
        text::cleaned(self.comment.as_deref().unwrap_or(""), text::LONG)
    }
}

/// The caller of an access-request route, with what the audit trail records of the HTTP
/// request: everything a service call needs to know about who acts.
pub struct Acting {
    caller: Caller,
    meta: RequestMeta,
}

impl Acting {
    fn actor(&self) -> Actor<'_> {
        Actor {
            principal: &self.caller.principal,
            meta: &self.meta,
        }
    }

    fn config(&self) -> &Config {
        &self.caller.generation.config
    }
}

impl FromRequestParts<AppState> for Acting {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refused> {
        let Ok(Meta(meta)) = Meta::from_request_parts(parts, state).await;
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(Self { caller, meta })
    }
}

fn service(state: &AppState) -> Result<&AccessRequests, ApiError> {
    state
        .broker
        .access()
        .ok_or_else(|| ApiError::unavailable("access requests need the audit trail ([audit])", 60))
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::NotFound => ApiError::NotFoundWith("no such access request".into()),
            AccessError::Forbidden => ApiError::Forbidden,
            AccessError::NotPermitted(why) => ApiError::ForbiddenWith(why.into()),
            AccessError::Condition(c) => ApiError::ForbiddenWith(c.to_string()),
            AccessError::Conflict(why) => ApiError::Conflict(why),
            AccessError::BadRequest(why) => ApiError::BadRequest(why),
            AccessError::Store(s) => {
                ApiError::unavailable("the audit store cannot keep access requests now", 5)
                    .caused_by(s)
            }
        }
    }
}

/// An access request id as given: a UUID, else 400.
fn request_id(id: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::BadRequest("the access request id must be a UUID".into()))
}

/// `POST /v1/access-requests`.
pub async fn create(
    State(state): State<AppState>,
    acting: Acting,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Response, ApiError> {
    let new = body.parse()?;
    let r = service(&state)?
        .create(acting.config(), acting.actor(), new)
        .await?;
    Ok((StatusCode::CREATED, Json(r)).into_response())
}

/// `GET /v1/access-requests`.
pub async fn list(
    State(state): State<AppState>,
    acting: Acting,
    uri: Uri,
) -> Result<Response, ApiError> {
    let q = list_query(&uri)?;
    let (requests, next) = service(&state)?
        .list(acting.config(), acting.actor(), &q)
        .await?;
    Ok(Json(json!({"requests": requests, "next_cursor": next})).into_response())
}

fn list_query(uri: &Uri) -> Result<ListQuery, ApiError> {
    let params = Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|Query(p)| p)
        .map_err(|_| ApiError::BadRequest("the query string is malformed".into()))?;
    let mut q = ListQuery {
        limit: DEFAULT_PAGE,
        ..ListQuery::default()
    };
    let flag = |v: &str, name: &str| match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::BadRequest(format!(
            "{name} must be true or false"
        ))),
    };
    for (k, v) in &params {
        match k.as_str() {
            "state" => {
                q.state = Some(ReqState::parse(v).ok_or_else(|| {
                    ApiError::BadRequest(
                        "state must be one of pending, approved, denied, expired, revoked".into(),
                    )
                })?);
            }
            "mine" => q.mine = flag(v, "mine")?,
            "to_review" => q.to_review = flag(v, "to_review")?,
            "limit" => {
                q.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!("limit must be 1 to {MAX_PAGE}"))
                    })?;
            }
            "cursor" => {
                q.before = Some(
                    uuid::Uuid::parse_str(v)
                        .map(|u| u.to_string())
                        .map_err(|_| ApiError::BadRequest("cursor is not a request id".into()))?,
                );
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown parameter {:?}",
                    text::clean(other, 40)
                )));
            }
        }
    }
    Ok(q)
}

/// `GET /v1/access-requests/{id}`.
pub async fn get(
    State(state): State<AppState>,
    acting: Acting,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = request_id(&id)?;
    let r = service(&state)?
        .get(acting.config(), acting.actor(), &id)
        .await?;
    Ok(Json(r).into_response())
}

/// `POST /v1/access-requests/{id}/approve`.
pub async fn approve(
    State(state): State<AppState>,
    acting: Acting,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DecisionBody>,
) -> Result<Response, ApiError> {
    let id = request_id(&id)?;
    let r = service(&state)?
        .approve(acting.config(), acting.actor(), &id, body.comment())
        .await?;
    Ok(Json(r).into_response())
}

/// `POST /v1/access-requests/{id}/deny`.
pub async fn deny(
    State(state): State<AppState>,
    acting: Acting,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DecisionBody>,
) -> Result<Response, ApiError> {
    let id = request_id(&id)?;
    let r = service(&state)?
        .deny(acting.config(), acting.actor(), &id, body.comment())
        .await?;
    Ok(Json(r).into_response())
}

/// `POST /v1/access-requests/{id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    acting: Acting,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DecisionBody>,
) -> Result<Response, ApiError> {
    let id = request_id(&id)?;
    let r = service(&state)?
        .revoke(acting.config(), acting.actor(), &id, body.comment())
        .await?;
    Ok(Json(r).into_response())
}
