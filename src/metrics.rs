//! Prometheus metrics (`GET /metrics`): one process-wide recorder for the `metrics` facade,
//! rendered in the text format. Names follow Prometheus conventions
//! (`rds_token_broker_..._total`, `_seconds`). No label ever holds a token, a JWT, a key or
//! a subject: labels are routes, status codes, target names, outcomes and limit kinds.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets in seconds, from 100 µs to 10 s.
const SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Audit batch sizes.
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The recorder's handle, installing the recorder on first use. When another recorder is
/// already installed (a host program's), metrics go there and this renders nothing.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("rds_token_broker_audit_batch_size".into()),
                    BATCH,
                )
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_ok() {
            describe();
        }
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "rds_token_broker_http_requests_total",
        "HTTP requests by route, method and status."
    );
    describe_histogram!(
        "rds_token_broker_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by route."
    );
    describe_counter!(
        "rds_token_broker_tokens_total",
        "Tokens handed out by target and cache result (hit: reused, miss: newly minted)."
    );
    describe_counter!(
        "rds_token_broker_tokens_minted_total",
        "Tokens signed by target (cache misses and refresh-ahead): what RDS's IAM throttle counts."
    );
    describe_counter!(
        "rds_token_broker_throttled_total",
        "Requests refused by a rate limit, by target and limit kind (target, principal)."
    );
    describe_histogram!(
        "rds_token_broker_signing_duration_seconds",
        metrics::Unit::Seconds,
        "Time to sign one token."
    );
    describe_counter!(
        "rds_token_broker_sts_calls_total",
        "AssumeRole calls by outcome (ok, refused, unavailable)."
    );
    describe_histogram!(
        "rds_token_broker_sts_duration_seconds",
        metrics::Unit::Seconds,
        "AssumeRole latency."
    );
    describe_counter!(
        "rds_token_broker_jwks_refreshes_total",
        "JWKS fetches by issuer and outcome (ok, error)."
    );
    describe_gauge!(
        "rds_token_broker_token_cache_entries",
        "Tokens in the cache."
    );
    describe_histogram!(
        "rds_token_broker_audit_commit_duration_seconds",
        metrics::Unit::Seconds,
        "Time to commit one batch of audit events."
    );
    describe_histogram!(
        "rds_token_broker_audit_batch_size",
        "Audit events per commit (group commit)."
    );
    describe_gauge!(
        "rds_token_broker_audit_queue_depth",
        "Audit events waiting for the writer."
    );
    describe_counter!(
        "rds_token_broker_audit_commit_failures_total",
        "Audit batches the store could not commit (their requests were refused)."
    );
    describe_counter!(
        "rds_token_broker_audit_events_rejected_total",
        "Audit events the store refused on their own (retried alone after their batch failed); only their requests were refused."
    );
    describe_counter!(
        "rds_token_broker_connections_refused_total",
        "Connections closed on arrival because server.max_connections or server.max_connections_per_ip was reached."
    );
    describe_gauge!(
        "rds_token_broker_credentials_available",
        "1 when the broker has usable AWS credentials."
    );
    describe_gauge!(
        "rds_token_broker_rate_limit_fallback",
        "1 while Redis does not answer and budgets are local."
    );
}
