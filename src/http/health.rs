//! `GET /healthz` (the process is alive) and `GET /readyz` (it can issue tokens).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::error::{Cause, Failure};
use crate::report::Report;
use crate::state::AppState;

/// Liveness: 200 while the process serves requests.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Why each failing check fails, for the log (`http::log_failures`).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(|c| Report(c).to_string()).collect::<Vec<_>>().join("; "))]
struct NotReady(Vec<Cause>);

#[derive(Serialize)]
struct Check {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// Readiness: 200 only when credentials and policy are usable and the audit trail (if
/// configured) can record. The body says what is not, in product terms (this route is
/// unauthenticated: no dependency's error text); the causes go to the log.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let readiness = state.broker.readiness().await;
    let mut causes: Vec<Cause> = Vec::new();
    let credentials = match readiness.credentials {
        Ok(()) => Check {
            ok: true,
            detail: None,
        },
        Err(e) => {
            causes.push(Cause::new(e));
            Check {
                ok: false,
                detail: Some("AWS credentials unavailable".to_owned()),
            }
        }
    };
    let targets = state.generation().config.targets.len();
    let policy = Check {
        ok: targets > 0,
        detail: (targets == 0).then(|| "no targets are configured".to_owned()),
    };
    let audit = match readiness.audit {
        None => Check {
            ok: true,
            detail: Some("disabled ([audit] enabled = false)".to_owned()),
        },
        Some(Ok(())) => Check {
            ok: true,
            detail: None,
        },
        Some(Err(e)) => {
            causes.push(Cause::new(e));
            Check {
                ok: false,
                detail: Some("audit trail unavailable".to_owned()),
            }
        }
    };
    let ready = credentials.ok && policy.ok && audit.ok;
    let mut checks = json!({ "credentials": credentials, "policy": policy, "audit": audit });
    if let (Some(c), Some(map)) = (&state.checkpoints, checks.as_object_mut()) {
        // Shown, but not part of readiness: a failing sink never holds up issuance.
        let sinks = c.sinks();
        let failing: Vec<&str> = sinks.iter().filter(|s| !s.ok).map(|s| s.sink).collect();
        let check = Check {
            ok: failing.is_empty(),
            detail: (!failing.is_empty()).then(|| {
                format!(
                    "checkpoint sink failing: {} (retried; issuance is not affected)",
                    failing.join(", ")
                )
            }),
        };
        let mut check = json!(check);
        if let Some(c) = check.as_object_mut() {
            c.insert("sinks".into(), json!(sinks));
        }
        map.insert("checkpoints".into(), check);
    }
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": checks,
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
        res.extensions_mut().insert(Failure {
            problem: "not-ready",
            cause: (!causes.is_empty()).then(|| Cause::new(NotReady(causes))),
        });
    }
    res
}
