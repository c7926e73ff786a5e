//! `/v1/audit/*`: for principals matched by `[[auditors]]` only.

use axum::Json;
use axum::extract::State;

use super::error::ApiError;
use super::extract::Caller;
use crate::audit::Verification;
use crate::auth::AuthMethod;
use crate::policy;
use crate::state::AppState;

fn require_auditor(caller: &Caller) -> Result<(), ApiError> {
    let anonymous_demo = caller.principal.auth_method == AuthMethod::Unauthenticated
        && caller.generation.config.server.allow_unauthenticated;
    if anonymous_demo || policy::is_auditor(&caller.generation.config, &caller.principal) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// Walks every hash chain and names the first broken link.
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Verification>, ApiError> {
    require_auditor(&caller)?;
    let audit = state
        .broker
        .audit
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable {
            detail: "no audit trail is configured ([audit])".into(),
            retry_after: 60,
        })?;
    let v = audit.verify().await.map_err(|e| ApiError::Unavailable {
        detail: e.to_string(),
        retry_after: 5,
    })?;
    Ok(Json(v))
}
