//! `GET /healthz` (the process is alive) and `GET /readyz` (it can issue tokens).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::state::AppState;

/// Liveness: 200 while the process serves requests.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

#[derive(Serialize)]
struct Check {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// Readiness: 200 only when credentials and policy are usable; the body says what is not.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let credentials = match state.broker.credentials.get().await {
        Ok(_) => Check {
            ok: true,
            detail: None,
        },
        Err(e) => Check {
            ok: false,
            detail: Some(e.to_string()),
        },
    };
    let targets = state.generation().config.targets.len();
    let policy = Check {
        ok: targets > 0,
        detail: (targets == 0).then(|| "no targets are configured".to_owned()),
    };
    let audit = match &state.broker.audit {
        None => Check {
            ok: true,
            detail: Some("not configured".to_owned()),
        },
        Some(a) => match a.check().await {
            Ok(()) => Check {
                ok: true,
                detail: None,
            },
            Err(e) => Check {
                ok: false,
                detail: Some(e.to_string()),
            },
        },
    };
    let ready = credentials.ok && policy.ok && audit.ok;
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "credentials": credentials, "policy": policy, "audit": audit },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut res = (status, Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if !ready {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    res
}
