//! `GET /v1/targets`: the targets and DB users this caller may request.

use axum::Json;
use serde::Serialize;

use super::error::{ApiError, Cause};
use super::extract::Caller;
use crate::policy;

#[derive(Debug, Serialize)]
struct TargetView<'a> {
    name: &'a str,
    kind: &'static str,
    host: &'a str,
    port: u16,
    engine: &'a str,
    region: &'a str,
    db_users: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct TargetList<'a> {
    targets: Vec<TargetView<'a>>,
}

/// Lists what the caller may request; an empty list for a caller with no grants.
pub async fn list(caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    let (config, principal) = (&caller.generation.config, &caller.principal);
    let targets = config
        .targets
        .values()
        .filter_map(|t| {
            let users = policy::allowed_db_users(config, principal, t);
            (!users.is_empty()).then(|| TargetView {
                name: t.name.as_str(),
                kind: t.kind.kind().as_str(),
                host: t.host.as_str(),
                port: t.port,
                engine: t.engine.as_str(),
                region: t.region.as_str(),
                db_users: users.iter().map(|u| u.as_str().to_owned()).collect(),
            })
        })
        .collect();
    // Never an empty body in place of the list: a failure is a 500 with its cause logged.
    serde_json::to_value(TargetList { targets })
        .map(Json)
        .map_err(|e| ApiError::Internal(Cause::new(e)))
}
