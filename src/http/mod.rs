//! The router and its layer stack.

mod access;
mod audit;
mod checkpoints;
mod docs;
pub mod error;
pub mod extract;
mod health;
mod metrics;
mod proofs;
pub mod serve;
mod targets;
mod tokens;
mod ui;

use std::any::Any;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, FromRequestParts as _, MatchedPath, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, Request, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use crate::state::AppState;
use error::ApiError;
use extract::MAX_BODY_BYTES;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Requests to `/healthz`, `/readyz` and `/openapi.json` handled at once.
const HEALTH_CONCURRENCY: usize = 64;
/// Console requests handled at once.
const CONSOLE_CONCURRENCY: usize = 64;

/// Load shedding, a concurrency limit of `$n` and `$timeout`, answered with 503 problems:
/// one per route class, so that a flood on one class cannot starve another.
macro_rules! limited {
    ($n:expr, $timeout:expr) => {
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(middleware_error))
            .load_shed()
            .layer(GlobalConcurrencyLimitLayer::new($n))
            .timeout($timeout)
    };
}

/// Builds the router with every layer. Around every route, in order: a client's request
/// id kept only when it is short and plain (it is echoed and logged), else one set; trace
/// span carrying it; request id returned; panic to 500 problem; HTTP metrics; body limit.
/// Then each route class has its own concurrency limit and timeout (answered with 503
/// problems), so that no class can starve another: the API (`server.
/// max_concurrent_requests`), health and the API description, the console. Bodies are
/// read before a class's limit is taken, within `server.body_read_timeout_seconds`, so a
/// client that sends its body slowly holds a connection, never a place of the limit.
/// (`Router::layer` wraps each route separately, hence global limits per class.)
pub fn router(state: AppState) -> Router {
    let generation = state.generation();
    let server = &generation.config.server;
    let timeout = server.request_timeout;
    let api = Router::new()
        .route("/v1/tokens", post(tokens::create))
        .route("/v1/targets", get(targets::list))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/audit/events", get(audit::events))
        .route("/v1/audit/lookup", post(audit::lookup))
        .route("/v1/audit/stats", get(audit::stats))
        .route("/v1/audit/checkpoints", get(checkpoints::list))
        .route("/v1/audit/proofs/inclusion", get(proofs::inclusion))
        .route("/v1/audit/proofs/consistency", get(proofs::consistency))
        .route("/v1/audit/receipts/{id}", get(proofs::receipt))
        .route(
            "/v1/access-requests",
            post(access::create).get(access::list),
        )
        .route("/v1/access-requests/{id}", get(access::get))
        .route("/v1/access-requests/{id}/approve", post(access::approve))
        .route("/v1/access-requests/{id}/deny", post(access::deny))
        .route("/v1/access-requests/{id}/revoke", post(access::revoke))
        .layer(limited!(server.max_concurrent_requests, timeout))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            read_body,
        ));
    let health = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi))
        .layer(limited!(HEALTH_CONCURRENCY, timeout));
    let console = ui::router()
        .merge(docs::router())
        .layer(limited!(CONSOLE_CONCURRENCY, timeout))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            read_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            console_gate,
        ));
    let metrics = if server.metrics_on_listen && server.metrics_listen.is_none() {
        metrics::router().layer(limited!(HEALTH_CONCURRENCY, timeout))
    } else {
        Router::new()
    };
    let middleware = ServiceBuilder::new()
        .map_request(drop_invalid_request_id)
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuidV7))
        .layer(TraceLayer::new_for_http().make_span_with(make_span))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(axum::middleware::from_fn(log_failures))
        .layer(CatchPanicLayer::custom(panic_to_problem));
    Router::new()
        .merge(api)
        .merge(health)
        .merge(console)
        .merge(metrics)
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(middleware)
        .with_state(state)
}

/// Reads a request's whole body (at most 16 KiB) within `server.body_read_timeout_seconds`
/// before the handler runs: 408 when it does not arrive in time, 413 when it is larger.
async fn read_body(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    use http_body_util::BodyExt as _;
    let headers = req.headers();
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_none_or(|n| n == 0) && !headers.contains_key(header::TRANSFER_ENCODING) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    if length.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return rejected(&state, &mut parts, "too_large", ApiError::PayloadTooLarge).await;
    }
    let deadline = state.generation().config.server.body_read_timeout;
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match tokio::time::timeout(deadline, limited.collect()).await {
        Err(_) => {
            let e = ApiError::BodyTimeout(deadline.as_secs());
            rejected(&state, &mut parts, "body_timeout", e).await
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            rejected(&state, &mut parts, "too_large", ApiError::PayloadTooLarge).await
        }
        Ok(Err(_)) => {
            let e = ApiError::BadRequest("the request body could not be read".into());
            rejected(&state, &mut parts, "unreadable", e).await
        }
        Ok(Ok(collected)) => {
            let req = Request::from_parts(parts, Body::from(collected.to_bytes()));
            next.run(req).await
        }
    }
}

/// Answers a body refused before the handler ran (too large, too slow, unreadable); on
/// `POST /v1/tokens`, records it first (outcome `rejected`, folded by `kind`; the caller
/// is not authenticated yet, so by client address).
async fn rejected(
    state: &AppState,
    parts: &mut Parts,
    kind: &'static str,
    e: ApiError,
) -> Response {
    if parts.uri.path() == "/v1/tokens" {
        let Ok(extract::Meta(meta)) = extract::Meta::from_request_parts(parts, state).await;
        state
            .broker
            .record_rejected(&meta, None, kind, &e.detail())
            .await;
    }
    e.into_response()
}

/// The console's routes and the API reference (`/docs`) answer 404 while `ui.enabled` is
/// false (and OIDC sign-in while `[ui.oidc]` is not configured), before any body is read;
/// its sign-in helpers, which call the identity provider for callers nobody has
/// authenticated yet, spend the client address's budget (`rate_limit.per_client_ip_*`).
async fn console_gate(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    let generation = state.generation();
    let ui = &generation.config.ui;
    if !ui.enabled || (req.uri().path() == "/ui/oidc/token" && ui.oidc.is_none()) {
        return ApiError::NotFound.into_response();
    }
    if matches!(req.uri().path(), "/ui/config" | "/ui/oidc/token") {
        let (mut parts, body) = req.into_parts();
        let Ok(extract::Meta(meta)) = <extract::Meta as axum::extract::FromRequestParts<
            AppState,
        >>::from_request_parts(&mut parts, &state)
        .await;
        if let Some(Err(t)) = meta
            .client_ip
            .map(|ip| state.broker.spend_client(&generation.config, ip))
        {
            return ApiError::from(t).into_response();
        }
        return next.run(Request::from_parts(parts, body)).await;
    }
    next.run(req).await
}

/// This API's OpenAPI 3.1 description (generated from `openapi/openapi.yaml`).
pub const OPENAPI_JSON: &str = include_str!("../../openapi/openapi.json");

async fn openapi() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        OPENAPI_JSON,
    )
}

/// `GET /metrics` alone, for `server.metrics_listen`.
pub fn metrics_router(state: AppState) -> Router {
    metrics::router()
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

/// Removes an `x-request-id` that is not 1-128 characters of `A-Z a-z 0-9 . _ : -`, so a
/// fresh one is generated instead.
fn drop_invalid_request_id<B>(mut req: axum::http::Request<B>) -> axum::http::Request<B> {
    let valid = req.headers().get(&REQUEST_ID).is_none_or(|v| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= 128
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(c))
    });
    if !valid {
        req.headers_mut().remove(&REQUEST_ID);
    }
    req
}

#[derive(Clone, Copy)]
struct MakeRequestUuidV7;

impl MakeRequestId for MakeRequestUuidV7 {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        use crate::clock::Clock as _;
        // The system clock, as before: a request id is a label no decision depends on.
        let id = crate::ids::random(crate::clock::SystemClock.now());
        let mut buf = uuid::Uuid::encode_buffer();
        let text = id.hyphenated().encode_lower(&mut buf);
        axum::http::HeaderValue::from_str(text)
            .ok()
            .map(RequestId::new)
    }
}

fn make_span<B>(req: &Request<B>) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("-", MatchedPath::as_str);
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let method = metrics::method_label(req.method());
    tracing::info_span!("request", method, route, request_id)
}

fn panic_to_problem(_: Box<dyn Any + Send + 'static>) -> Response {
    ApiError::Internal(error::Cause::new(error::Panicked)).into_response()
}

async fn middleware_error(err: tower::BoxError) -> ApiError {
    if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::Timeout
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        ApiError::Overloaded
    } else {
        ApiError::Internal(error::Cause::from_boxed(err))
    }
}

/// Logs, once, why a request failed: the [`error::Failure`] an error answer carries (every
/// 5xx, and any answer with a cause), with the request id; the cause never reaches the
/// client. Internal errors are logged as errors, unavailable dependencies as warnings.
async fn log_failures(req: axum::extract::Request, next: Next) -> Response {
    // Set (or checked to be short and plain) by the layers outside this one.
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let mut res = next.run(req).await;
    if let Some(failure) = res.extensions_mut().remove::<error::Failure>() {
        let status = res.status().as_u16();
        let problem = failure.problem;
        let request_id = request_id.as_str();
        match &failure.cause {
            Some(cause) if status >= 500 && status != 502 && status != 503 => {
                let error = crate::report::Report(cause);
                tracing::error!(request_id, status, problem, %error, "request failed");
            }
            Some(cause) => {
                let error = crate::report::Report(cause);
                tracing::warn!(request_id, status, problem, %error, "request failed");
            }
            None if status >= 500 => {
                tracing::warn!(request_id, status, problem, "request failed");
            }
            None => {}
        }
    }
    res
}

/// How long shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tower::ServiceExt as _;

    use super::*;

    /// Log output, kept for the test to read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// Sends `request` to a router whose one route answers `error()` through
    /// `log_failures`; returns the response and what was logged meanwhile.
    async fn answer(error: fn() -> ApiError, request: Request<Body>) -> (Response, String) {
        let logs = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app: Router = Router::new()
            .route("/x", get(move || async move { error() }))
            .layer(axum::middleware::from_fn(log_failures));
        let res = app.oneshot(request).await.unwrap();
        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        (res, logs)
    }

    #[tokio::test]
    async fn a_cause_is_logged_once_with_the_request_id_and_never_sent() {
        let req = Request::get("/x")
            .header("x-request-id", "req-1")
            .body(Body::empty())
            .unwrap();
        let (res, logs) = answer(
            || {
                ApiError::unavailable("audit trail unavailable", 5)
                    .caused_by(std::io::Error::other("connection to 10.0.0.7 refused"))
            },
            req,
        )
        .await;
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()[header::RETRY_AFTER], "5");
        assert!(res.extensions().get::<error::Failure>().is_none());
        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains("\"detail\":\"audit trail unavailable\""),
            "{body}"
        );
        assert!(!body.contains("10.0.0.7"), "{body}");
        assert_eq!(logs.matches("10.0.0.7").count(), 1, "{logs}");
        assert!(
            logs.contains("request_id=\"req-1\"") || logs.contains("request_id=req-1"),
            "{logs}"
        );
        assert!(logs.contains("WARN"), "{logs}");
    }

    #[tokio::test]
    async fn an_internal_error_is_logged_as_an_error_and_answered_without_its_cause() {
        let (res, logs) = answer(
            || ApiError::Internal(error::Cause::new(std::io::Error::other("bug 42"))),
            Request::get("/x").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(res.status(), 500);
        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("bug 42"));
        assert_eq!(logs.matches("bug 42").count(), 1, "{logs}");
        assert!(logs.contains("ERROR"), "{logs}");
    }
}
