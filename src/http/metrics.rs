//! `GET /metrics` and the per-request HTTP metrics.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::{label, names};
use crate::state::AppState;

/// The `/metrics` route alone (on `server.listen`, or on `server.metrics_listen`).
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

/// Prometheus text format; gauges that describe current state are read now.
pub async fn scrape(State(state): State<AppState>) -> Response {
    let g = state.broker.gauges();
    metrics::gauge!(names::TOKEN_CACHE_ENTRIES.name).set(g.token_cache_entries as f64);
    metrics::gauge!(names::CREDENTIALS_AVAILABLE.name).set(if g.credentials_available {
        1.0
    } else {
        0.0
    });
    if let Some(depth) = g.audit_queue_depth {
        metrics::gauge!(names::AUDIT_QUEUE_DEPTH.name).set(depth as f64);
    }
    metrics::gauge!(names::RATE_LIMIT_FALLBACK.name).set(if g.rate_limit_fallback {
        1.0
    } else {
        0.0
    });
    let mut res = crate::metrics::handle().render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

/// The method as a metric label: one of the standard methods, else `other`. Hyper
/// accepts any token as a method, so the raw method would let any client create series.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Counts every request by route template (never the raw path), method and status.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = method_label(req.method());
    let started = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!(names::HTTP_REQUESTS.name, label::ROUTE => route.clone(), label::METHOD => method, label::STATUS => status).increment(1);
    metrics::histogram!(names::HTTP_DURATION.name, label::ROUTE => route)
        .record(started.elapsed().as_secs_f64());
    res
}
