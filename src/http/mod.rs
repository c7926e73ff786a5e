//! The router and its layer stack.

mod audit;
pub mod error;
pub mod extract;
mod health;
mod metrics;
mod targets;
mod tokens;
mod ui;

use std::any::Any;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{HeaderName, Request};
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

/// Builds the router with every layer, in order: a client's request id kept only when
/// it is short and plain (it is echoed and logged), else one set, trace span carrying it,
/// request id returned, panic to 500 problem, timeout and load shedding answered with 503
/// problems, one concurrency limit shared by every route, body limit. (`Router::layer`
/// wraps each route separately, hence the global limit.)
pub fn router(state: AppState) -> Router {
    let generation = state.generation();
    let server = &generation.config.server;
    let (timeout, max_in_flight) = (server.request_timeout, server.max_concurrent_requests);
    let middleware = ServiceBuilder::new()
        .map_request(drop_invalid_request_id)
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuidV7))
        .layer(TraceLayer::new_for_http().make_span_with(make_span))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(CatchPanicLayer::custom(panic_to_problem))
        .layer(HandleErrorLayer::new(middleware_error))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(max_in_flight))
        .timeout(timeout);
    Router::new()
        .route("/v1/tokens", post(tokens::create))
        .route("/v1/targets", get(targets::list))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/audit/events", get(audit::events))
        .route("/v1/audit/lookup", post(audit::lookup))
        .route("/v1/audit/stats", get(audit::stats))
        .route("/openapi.json", get(openapi))
        .merge(ui::router())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(if generation.config.server.metrics_listen.is_none() {
            metrics::router()
        } else {
            Router::new()
        })
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(middleware)
        .with_state(state)
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
fn drop_invalid_request_id<B>(mut req: Request<B>) -> Request<B> {
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
        let id = uuid::Uuid::new_v7(uuid::Timestamp::now(uuid::NoContext));
        id.to_string().parse().ok().map(RequestId::new)
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
    tracing::info_span!("request", method = req.method().as_str(), route, request_id)
}

fn panic_to_problem(_: Box<dyn Any + Send + 'static>) -> Response {
    ApiError::Internal("a handler panicked".into()).into_response()
}

async fn middleware_error(err: tower::BoxError) -> ApiError {
    if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::Timeout
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        ApiError::Overloaded
    } else {
        ApiError::Internal(format!("middleware: {err}"))
    }
}

/// How long shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);
