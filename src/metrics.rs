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
                b.set_buckets_for_metric(Matcher::Full(names::AUDIT_BATCH_SIZE.name.into()), BATCH)
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
    for m in names::ALL.iter().chain(names::PROXY) {
        match (m.kind, m.unit) {
            (names::Kind::Counter, _) => describe_counter!(m.name, m.help),
            (names::Kind::Gauge, _) => describe_gauge!(m.name, m.help),
            (names::Kind::Histogram, Some(unit)) => describe_histogram!(m.name, unit, m.help),
            (names::Kind::Histogram, None) => describe_histogram!(m.name, m.help),
        }
    }
}

/// Label keys, defined once: [`names`] lists them per metric and the code records with them.
pub mod label {
    /// A cache result: `hit` or `miss`.
    pub const CACHE: &str = "cache";
    /// A configured issuer's name.
    pub const ISSUER: &str = "issuer";
    /// A target's kind: `rds`, `dsql`, `elasticache` or `memorydb`.
    pub const KIND: &str = "kind";
    /// A limit kind: `target` or `principal`.
    pub const LIMIT: &str = "limit";
    /// One of the standard HTTP methods, or `other`.
    pub const METHOD: &str = "method";
    /// An outcome, from a fixed set per metric.
    pub const OUTCOME: &str = "outcome";
    /// A route template.
    pub const ROUTE: &str = "route";
    /// An HTTP status code.
    pub const STATUS: &str = "status";
    /// A configured target's name, or `unknown`.
    pub const TARGET: &str = "target";
    /// A checkpoint sink: `file`, `mirror` or `s3`.
    pub const SINK: &str = "sink";
    /// What became of a notification: `sent`, `retried`, `failed` or `dropped`.
    pub const RESULT: &str = "result";
    /// Who decided a rate-limit slot: `redis` (the fleet-wide budget), `fallback` (this
    /// replica's share while Redis does not answer) or `local` (no Redis configured).
    pub const SOURCE: &str = "source";
    /// A proxied connection's state: `signing_in` or `open`.
    pub const STATE: &str = "state";
    /// Which way proxied bytes went: `to_database` or `to_client`.
    pub const DIRECTION: &str = "direction";
    /// Why a proxy sign-in failed, from a fixed set.
    pub const REASON: &str = "reason";
}

/// Every metric the broker exports, defined once: the code records through these, and the
/// tests check the operator guide's table and `deploy/monitoring` against [`names::ALL`].
pub mod names {
    use super::label;

    /// A Prometheus metric type.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        /// Only goes up (`_total`).
        Counter,
        /// A value that goes up and down.
        Gauge,
        /// Observations in buckets (`_bucket`, `_sum`, `_count` series).
        Histogram,
    }

    /// One exported metric.
    #[derive(Debug, Clone, Copy)]
    pub struct Metric {
        /// Its name.
        pub name: &'static str,
        /// Its type.
        pub kind: Kind,
        /// Its unit, when it has one.
        pub unit: Option<metrics::Unit>,
        /// Its labels; none ever holds a token, a JWT, a key or a subject.
        pub labels: &'static [&'static str],
        /// What it counts (`# HELP`).
        pub help: &'static str,
    }

    const fn counter(
        name: &'static str,
        labels: &'static [&'static str],
        help: &'static str,
    ) -> Metric {
        Metric {
            name,
            kind: Kind::Counter,
            unit: None,
            labels,
            help,
        }
    }

    const fn gauge(name: &'static str, help: &'static str) -> Metric {
        Metric {
            name,
            kind: Kind::Gauge,
            unit: None,
            labels: &[],
            help,
        }
    }

    const fn seconds(
        name: &'static str,
        labels: &'static [&'static str],
        help: &'static str,
    ) -> Metric {
        Metric {
            name,
            kind: Kind::Histogram,
            unit: Some(metrics::Unit::Seconds),
            labels,
            help,
        }
    }

    /// HTTP requests.
    pub const HTTP_REQUESTS: Metric = counter(
        "rds_token_broker_http_requests_total",
        &[label::ROUTE, label::METHOD, label::STATUS],
        "HTTP requests by route, method and status.",
    );
    /// HTTP latency.
    pub const HTTP_DURATION: Metric = seconds(
        "rds_token_broker_http_request_duration_seconds",
        &[label::ROUTE],
        "HTTP request latency by route.",
    );
    /// Tokens handed out.
    pub const TOKENS: Metric = counter(
        "rds_token_broker_tokens_total",
        &[label::TARGET, label::KIND, label::CACHE],
        "Tokens handed out by target, its kind and cache result (hit: reused, miss: newly minted).",
    );
    /// Tokens signed.
    pub const TOKENS_MINTED: Metric = counter(
        "rds_token_broker_tokens_minted_total",
        &[label::TARGET, label::KIND],
        "Tokens signed by target and its kind (cache misses and refresh-ahead): what the service's IAM throttle counts.",
    );
    /// Requests refused by a rate limit.
    pub const THROTTLED: Metric = counter(
        "rds_token_broker_throttled_total",
        &[label::TARGET, label::LIMIT],
        "Requests refused (429) by a rate limit, by target and limit kind (target, principal).",
    );
    /// Signing time.
    pub const SIGNING_DURATION: Metric = seconds(
        "rds_token_broker_signing_duration_seconds",
        &[],
        "Time to sign one token.",
    );
    /// AssumeRole calls.
    pub const STS_CALLS: Metric = counter(
        "rds_token_broker_sts_calls_total",
        &[label::OUTCOME],
        "AssumeRole calls by outcome (ok, refused, unavailable).",
    );
    /// AssumeRole latency.
    pub const STS_DURATION: Metric = seconds(
        "rds_token_broker_sts_duration_seconds",
        &[],
        "AssumeRole latency.",
    );
    /// JWKS fetches.
    pub const JWKS_REFRESHES: Metric = counter(
        "rds_token_broker_jwks_refreshes_total",
        &[label::ISSUER, label::OUTCOME],
        "JWKS fetches by issuer and outcome (ok, error).",
    );
    /// Tokens in the cache.
    pub const TOKEN_CACHE_ENTRIES: Metric = gauge(
        "rds_token_broker_token_cache_entries",
        "Tokens in the cache.",
    );
    /// Audit commit time.
    pub const AUDIT_COMMIT_DURATION: Metric = seconds(
        "rds_token_broker_audit_commit_duration_seconds",
        &[],
        "Time to commit one batch of audit events.",
    );
    /// Audit events per commit.
    pub const AUDIT_BATCH_SIZE: Metric = Metric {
        name: "rds_token_broker_audit_batch_size",
        kind: Kind::Histogram,
        unit: None,
        labels: &[],
        help: "Audit events per commit (group commit).",
    };
    /// Audit events waiting.
    pub const AUDIT_QUEUE_DEPTH: Metric = gauge(
        "rds_token_broker_audit_queue_depth",
        "Audit events waiting for the writer.",
    );
    /// Failed audit batches.
    pub const AUDIT_COMMIT_FAILURES: Metric = counter(
        "rds_token_broker_audit_commit_failures_total",
        &[],
        "Audit batches the store could not commit; a failed batch is retried event by event.",
    );
    /// Audit events refused on their own.
    pub const AUDIT_EVENTS_REJECTED: Metric = counter(
        "rds_token_broker_audit_events_rejected_total",
        &[],
        "Audit events the store refused on their own while it otherwise answered; only their requests were refused (503).",
    );
    /// Mirror lines not written.
    pub const AUDIT_MIRROR_DROPPED: Metric = counter(
        "rds_token_broker_audit_mirror_dropped_total",
        &[],
        "Committed audit events not copied to [audit] mirror (its reader stalled or writing failed); the store has them.",
    );
    /// Log lines not written.
    pub const LOG_LINES_DROPPED: Metric = counter(
        "rds_token_broker_log_lines_dropped_total",
        &[],
        "Log lines dropped because the log queue was full (stderr's reader too slow); no request waits for the log.",
    );
    /// Connections refused by the connection caps.
    pub const CONNECTIONS_REFUSED: Metric = counter(
        "rds_token_broker_connections_refused_total",
        &[],
        "Connections closed on arrival because server.max_connections or server.max_connections_per_ip was reached.",
    );
    /// Credentials status.
    pub const CREDENTIALS_AVAILABLE: Metric = gauge(
        "rds_token_broker_credentials_available",
        "1 when the broker has usable AWS credentials.",
    );
    /// Redis fallback status.
    pub const RATE_LIMIT_FALLBACK: Metric = gauge(
        "rds_token_broker_rate_limit_fallback",
        "1 while Redis does not answer and budgets are local.",
    );
    /// New-token slots granted, by who decided.
    pub const RATE_LIMIT_GRANTS: Metric = counter(
        "rds_token_broker_rate_limit_grants_total",
        &[label::TARGET, label::SOURCE],
        "New-token slots granted by a target's budget, by target and by who decided (redis: the fleet-wide budget; fallback: this replica's share while Redis does not answer; local: no Redis configured).",
    );
    /// Audit trail switched off.
    pub const AUDIT_DISABLED: Metric = gauge(
        "rds_token_broker_audit_disabled",
        "1 when the file says [audit] enabled = false: tokens are issued with no audit trail.",
    );

    /// Access-request notifications.
    pub const NOTIFICATIONS: Metric = counter(
        "rds_token_broker_notifications_total",
        &[label::RESULT],
        "Access-request notifications to [notifications] webhook_url by result (sent, retried, failed after every attempt, dropped because the queue was full).",
    );

    /// Every metric above.
    pub const ALL: &[Metric] = &[
        HTTP_REQUESTS,
        HTTP_DURATION,
        TOKENS,
        TOKENS_MINTED,
        THROTTLED,
        SIGNING_DURATION,
        STS_CALLS,
        STS_DURATION,
        JWKS_REFRESHES,
        TOKEN_CACHE_ENTRIES,
        AUDIT_COMMIT_DURATION,
        AUDIT_BATCH_SIZE,
        AUDIT_QUEUE_DEPTH,
        AUDIT_COMMIT_FAILURES,
        AUDIT_EVENTS_REJECTED,
        AUDIT_MIRROR_DROPPED,
        AUDIT_DISABLED,
        LOG_LINES_DROPPED,
        CONNECTIONS_REFUSED,
        CREDENTIALS_AVAILABLE,
        RATE_LIMIT_FALLBACK,
        RATE_LIMIT_GRANTS,
        AUDIT_CHECKPOINTS,
        AUDIT_CHECKPOINT_FAILURES,
        AUDIT_CHECKPOINT_PUBLISH_FAILURES,
        AUDIT_CHECKPOINT_SINK_FAILING,
        NOTIFICATIONS,
    ];

    /// `rds-token-broker proxy`'s open connections.
    pub const PROXY_CONNECTIONS: Metric = Metric {
        labels: &[label::TARGET, label::STATE],
        ..gauge(
            "rds_token_broker_proxy_connections",
            "Open proxied connections by target and state (signing_in, open).",
        )
    };
    /// Proxy connections accepted.
    pub const PROXY_ACCEPTED: Metric = counter(
        "rds_token_broker_proxy_connections_accepted_total",
        &[label::TARGET],
        "Connections the proxy accepted, by target.",
    );
    /// Proxy connections refused at accept.
    pub const PROXY_REFUSED: Metric = counter(
        "rds_token_broker_proxy_connections_refused_total",
        &[label::TARGET],
        "Connections the proxy refused at accept (--max-connections reached), by target.",
    );
    /// Proxy sign-ins that succeeded.
    pub const PROXY_SIGNINS: Metric = counter(
        "rds_token_broker_proxy_signins_total",
        &[label::TARGET],
        "Sign-ins to the database through the proxy that succeeded, by target.",
    );
    /// Proxy sign-ins that failed.
    pub const PROXY_FAILURES: Metric = counter(
        "rds_token_broker_proxy_signin_failures_total",
        &[label::TARGET, label::REASON],
        "Proxy connections that failed before or during sign-in, by target and reason (broker_unreachable, broker_401, broker_403, broker_429, database_refused, database_tls, wrong_engine, protocol, ...).",
    );
    /// Bytes the proxy copied.
    pub const PROXY_BYTES: Metric = counter(
        "rds_token_broker_proxy_bytes_total",
        &[label::TARGET, label::DIRECTION],
        "Bytes copied after sign-in by target and direction (to_database, to_client), counted when a connection ends.",
    );
    /// The proxy's token requests to the broker.
    pub const PROXY_TOKEN_FETCHES: Metric = counter(
        "rds_token_broker_proxy_token_fetches_total",
        &[label::TARGET, label::OUTCOME],
        "Token requests from the proxy to the broker by target and outcome (ok, error).",
    );
    /// Their latency.
    pub const PROXY_TOKEN_FETCH_DURATION: Metric = seconds(
        "rds_token_broker_proxy_token_fetch_duration_seconds",
        &[label::TARGET],
        "Latency of the proxy's token requests to the broker, by target.",
    );
    /// Tokens the proxy used.
    pub const PROXY_TOKENS: Metric = counter(
        "rds_token_broker_proxy_tokens_total",
        &[label::TARGET, label::CACHE],
        "Tokens the proxy used for sign-ins by target and cache result (hit, miss, stale: the broker was unreachable and the cached token still valid).",
    );

    /// Every metric `rds-token-broker proxy` exports (its `--http-listen` `/metrics`).
    pub const PROXY: &[Metric] = &[
        PROXY_CONNECTIONS,
        PROXY_ACCEPTED,
        PROXY_REFUSED,
        PROXY_SIGNINS,
        PROXY_FAILURES,
        PROXY_BYTES,
        PROXY_TOKEN_FETCHES,
        PROXY_TOKEN_FETCH_DURATION,
        PROXY_TOKENS,
    ];

    /// Signed checkpoints stored.
    pub const AUDIT_CHECKPOINTS: Metric = counter(
        "rds_token_broker_audit_checkpoints_total",
        &[],
        "Signed audit checkpoints made and stored in the audit database.",
    );
    /// Rounds of the checkpoint maker that failed.
    pub const AUDIT_CHECKPOINT_FAILURES: Metric = counter(
        "rds_token_broker_audit_checkpoint_failures_total",
        &[],
        "Checkpoint rounds that failed (reading the chain, signing or storing); retried next interval.",
    );
    /// Failed publishing attempts by sink.
    pub const AUDIT_CHECKPOINT_PUBLISH_FAILURES: Metric = counter(
        "rds_token_broker_audit_checkpoint_publish_failures_total",
        &[label::SINK],
        "Failed attempts to publish a checkpoint, by sink (file, mirror, s3); retried with backoff.",
    );
    /// Sinks failing now.
    pub const AUDIT_CHECKPOINT_SINK_FAILING: Metric = Metric {
        name: "rds_token_broker_audit_checkpoint_sink_failing",
        kind: Kind::Gauge,
        unit: None,
        labels: &[label::SINK],
        help: "1 while a checkpoint sink's last attempt failed (file, mirror, s3); issuance is not affected.",
    };
}
