//! `GET /v1/audit/proofs/inclusion`, `GET /v1/audit/proofs/consistency` and
//! `GET /v1/audit/receipts/{id}`: Merkle proofs against the stored signed checkpoints
//! ([`crate::audit::proofs`]). Auditors only; each read is recorded (`audit_read`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::audit::{filters, query_params, recorded, require_auditor, trail, unavailable};
use super::checkpoints::{only, parse_chain_id};
use super::error::ApiError;
use super::extract::{Caller, Meta};
use crate::audit::AuditStore;
use crate::audit::proofs::{self, ProofError, Receipt};
use crate::broker::{ReadCount, TrailRead};
use crate::state::AppState;

/// The one HTTP mapping of [`ProofError`].
fn proof_error(e: ProofError) -> ApiError {
    match e {
        ProofError::NoEvent | ProofError::NotCheckpointed | ProofError::NoCheckpoint(_) => {
            ApiError::NotFoundWith(e.to_string())
        }
        ProofError::NotCovered { .. } | ProofError::Order => ApiError::BadRequest(e.to_string()),
        ProofError::Mismatch(_) => ApiError::Conflict(format!(
            "{e}: run `rds-token-broker audit verify` to find what was altered"
        )),
        ProofError::Store(e) => unavailable(e),
    }
}

/// An event id: a UUID, as stored (hyphenated, lower-case).
fn parse_event_id(param: &str, id: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| ApiError::BadRequest(format!("{param}: must be an event id (a UUID)")))
}

/// A tree size: a decimal number from 1.
fn parse_size(params: &HashMap<String, String>, param: &str) -> Result<Option<u64>, ApiError> {
    params
        .get(param)
        .map(|v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n >= 1 && v.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("{param}: must be a tree size (a number from 1)"))
                })
        })
        .transpose()
}

fn store(state: &AppState) -> Result<&AuditStore, ApiError> {
    Ok(trail(state)?.store())
}

/// The inclusion proof of event `id` against the newest stored checkpoint covering it,
/// or the one of `tree_size` leaves.
pub async fn inclusion(
    State(state): State<AppState>,
    Meta(meta): Meta,
    caller: Caller,
    uri: Uri,
) -> Result<Json<Inclusion>, ApiError> {
    require_auditor(&caller)?;
    let params = query_params(&uri)?;
    only(&params, &["id", "tree_size"])?;
    let id = params
        .get("id")
        .ok_or_else(|| ApiError::BadRequest("id: required".into()))?;
    let id = parse_event_id("id", id)?;
    let tree_size = parse_size(&params, "tree_size")?;
    let store = store(&state)?;
    let found = find(store, &id, tree_size).await;
    let read = TrailRead {
        what: "GET /v1/audit/proofs/inclusion",
        filters: filters(&params),
        events: ReadCount::Returned(u64::from(found.is_ok())),
    };
    recorded(&state, &meta, &caller, read).await?;
    let (_, proof, checkpoint) = found?;
    Ok(Json(Inclusion { proof, checkpoint }))
}

/// The answer to `GET /v1/audit/proofs/inclusion`: the proof and its checkpoint note.
#[derive(Serialize)]
pub struct Inclusion {
    #[serde(flatten)]
    proof: proofs::InclusionProof,
    checkpoint: String,
}

/// The event, its proof and its checkpoint note.
async fn find(
    store: &AuditStore,
    id: &str,
    tree_size: Option<u64>,
) -> Result<(crate::audit::AuditEvent, proofs::InclusionProof, String), ApiError> {
    let event = proofs::event_by_id(store, id).await.map_err(proof_error)?;
    let (proof, head) = proofs::inclusion(store, &event, tree_size)
        .await
        .map_err(proof_error)?;
    Ok((event, proof, head.note))
}

/// The consistency proof between two stored checkpoints of a chain.
pub async fn consistency(
    State(state): State<AppState>,
    Meta(meta): Meta,
    caller: Caller,
    uri: Uri,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_auditor(&caller)?;
    let params = query_params(&uri)?;
    only(&params, &["chain_id", "from", "to"])?;
    let chain_id = parse_chain_id(params.get("chain_id").map(String::as_str))?
        .ok_or_else(|| ApiError::BadRequest("chain_id: required".into()))?;
    let (Some(from), Some(to)) = (parse_size(&params, "from")?, parse_size(&params, "to")?) else {
        return Err(ApiError::BadRequest("from and to: both required".into()));
    };
    let hashes = proofs::consistency(store(&state)?, chain_id, from, to).await;
    let read = TrailRead {
        what: "GET /v1/audit/proofs/consistency",
        filters: filters(&params),
        events: ReadCount::Returned(0),
    };
    recorded(&state, &meta, &caller, read).await?;
    let hashes = hashes.map_err(proof_error)?;
    Ok(Json(
        json!({"chain_id": chain_id, "from": from, "to": to, "hashes": hashes}),
    ))
}

/// The receipt of event `id`, as a download (`receipt-<id>.json`).
pub async fn receipt(
    State(state): State<AppState>,
    Meta(meta): Meta,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_auditor(&caller)?;
    let id = parse_event_id("id", &id)?;
    let found = find(store(&state)?, &id, None).await;
    let read = TrailRead {
        what: "GET /v1/audit/receipts",
        filters: vec![("id".to_owned(), id.clone())],
        events: ReadCount::Returned(u64::from(found.is_ok())),
    };
    recorded(&state, &meta, &caller, read).await?;
    let (event, proof, checkpoint) = found?;
    let receipt = Receipt {
        event,
        proof,
        checkpoint,
    };
    let mut res = Json(receipt).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"receipt-{id}.json\"")) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}
