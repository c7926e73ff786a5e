//! `GET /v1/audit/checkpoints[?chain_id=]`: the stored signed checkpoints and the keys
//! that verify them. Auditors only; the read is recorded (`audit_read`) like every read
//! of the trail.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use serde_json::json;

use super::audit::{filters, query_params, recorded, require_auditor, trail, unavailable};
use super::error::ApiError;
use super::extract::{Caller, Meta};
use crate::audit::note::VerifierKey;
use crate::audit::tree_check::{Trust, read_published};
use crate::broker::{ReadCount, TrailRead};
use crate::state::AppState;

/// Longest `chain_id` accepted (chain ids are UUIDs).
const MAX_CHAIN_ID: usize = 64;

/// 400 naming a query parameter the route does not take.
pub(super) fn only(params: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => {
            let k = crate::domain::text::clean(k, 64);
            Err(ApiError::BadRequest(format!("{k}: unknown parameter")))
        }
        None => Ok(()),
    }
}

/// The `chain_id` parameter, when given: letters, digits and '-', at most
/// [`MAX_CHAIN_ID`]; 400 otherwise.
pub(super) fn parse_chain_id(chain_id: Option<&str>) -> Result<Option<&str>, ApiError> {
    match chain_id {
        Some(c)
            if c.is_empty()
                || c.len() > MAX_CHAIN_ID
                || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            Err(ApiError::BadRequest(
                "chain_id: must be a chain id (letters, digits and '-', at most 64)".into(),
            ))
        }
        c => Ok(c),
    }
}

/// Checkpoints, newest first within each chain, and the verifier keys: the signing key's
/// own first, then `[audit.checkpoints] verifier_keys`.
pub async fn list(
    State(state): State<AppState>,
    Meta(meta): Meta,
    caller: Caller,
    uri: Uri,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_auditor(&caller)?;
    let params = query_params(&uri)?;
    only(&params, &["chain_id"])?;
    let chain_id = parse_chain_id(params.get("chain_id").map(String::as_str))?;
    let heads = trail(&state)?
        .tree_heads(chain_id)
        .await
        .map_err(unavailable)?;
    let keys: Vec<String> = trusted_keys(&state, &caller)
        .iter()
        .map(ToString::to_string)
        .collect();
    let read = TrailRead {
        what: "GET /v1/audit/checkpoints",
        filters: filters(&params),
        events: ReadCount::Returned(heads.len() as u64),
    };
    recorded(&state, &meta, &caller, read).await?;
    let checkpoints: Vec<_> = heads
        .iter()
        .map(|h| {
            json!({
                "chain_id": h.chain_id,
                "tree_size": h.tree_size,
                "root_hash": h.root_hash,
                "note": h.note,
            })
        })
        .collect();
    Ok(Json(
        json!({ "checkpoints": checkpoints, "verifier_keys": keys }),
    ))
}

/// The keys checkpoints are verified with: the signing key's own first, then
/// `[audit.checkpoints] verifier_keys` (each once).
fn trusted_keys(state: &AppState, caller: &Caller) -> Vec<VerifierKey> {
    let mut keys: Vec<VerifierKey> = Vec::new();
    if let Some(c) = &state.checkpoints {
        keys.push(c.verifier_key().clone());
    }
    if let Some(cp) = checkpoint_config(caller) {
        for k in &cp.verifier_keys {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    keys
}

fn checkpoint_config(caller: &Caller) -> Option<&crate::config::CheckpointConfig> {
    caller
        .generation
        .config
        .audit
        .as_ref()
        .and_then(|a| a.checkpoints.as_ref())
}

/// What `GET /v1/audit/verify` checks the signed checkpoints with: the trusted keys and
/// the file sink's copies; `None` when the broker trusts no key.
pub(super) async fn trust(state: &AppState, caller: &Caller) -> Option<Trust> {
    let keys = trusted_keys(state, caller);
    if keys.is_empty() {
        return None;
    }
    let published = match checkpoint_config(caller).and_then(|c| c.file.clone()) {
        Some(path) => tokio::task::spawn_blocking(move || read_published(&path))
            .await
            .unwrap_or_else(|e| Err(e.to_string())),
        None => Ok(Vec::new()),
    };
    Some(Trust { keys, published })
}
