//! Raw configuration to checked [`Config`], collecting every problem by key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::raw::{RawAudit, RawConfig};
use super::{
    AuditConfig, AwsConfig, Config, ConfigError, LogConfig, LogFormat, RateLimitConfig,
    ServerConfig, TokenConfig, access, targets,
};
use crate::domain::{Cidr, ParseError, Region};

pub(super) struct Errors<'a>(&'a mut Vec<ConfigError>);

impl Errors<'_> {
    pub(super) fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            key: key.into(),
            message: message.into(),
        });
    }

    /// Records a parse failure under `key`; returns the value when it parsed.
    pub(super) fn check<T>(
        &mut self,
        key: impl Into<String>,
        r: Result<T, ParseError>,
    ) -> Option<T> {
        r.map_err(|e| self.push(key, e.0)).ok()
    }
}

pub(super) fn validate(raw: RawConfig, errors: &mut Vec<ConfigError>) -> Option<Config> {
    let mut e = Errors(errors);
    let server = server(raw.server, &mut e);
    let log = LogConfig {
        format: match raw.log.format.as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(_) => {
                e.push("log.format", "must be \"json\" or \"text\"");
                LogFormat::Json
            }
        },
    };
    let aws = aws(raw.aws, &mut e);
    let tokens = tokens(&raw.tokens, &mut e);
    let audit = match raw.audit {
        Some(a) => audit(a, &mut e),
        None => {
            e.push("audit", MISSING_AUDIT);
            None
        }
    };
    let rate_limit = rate_limit(&raw.rate_limit, &mut e);
    let declared = access::Declared::new(&raw.issuers, &raw.targets);
    let issuers = access::issuers(raw.issuers, &mut e);
    let targets = targets::targets(raw.targets, aws.region.as_ref(), &mut e);
    let (grants, auditors) = access::grants_and_auditors(
        raw.grants,
        raw.auditors,
        &declared,
        &targets,
        aws.iam_server_id.is_some(),
        server.as_ref().is_some_and(|s| s.allow_unauthenticated),
        &mut e,
    );
    let kinds: Vec<_> = grants.iter().map(|g| g.access.kind).collect();
    super::requests::need_audit_store(&kinds, audit.is_some(), &mut e);
    let notifications = super::requests::notifications(raw.notifications, &mut e);
    let ui = super::ui::ui(
        raw.ui,
        &issuers,
        &declared,
        server.as_ref().map(|s| s.listen),
        &mut e,
    );
    Some(Config {
        server: server?,
        log,
        aws,
        tokens,
        audit,
        rate_limit,
        issuers,
        targets,
        grants,
        auditors,
        ui,
        notifications,
    })
}

fn server(raw: super::raw::RawServer, e: &mut Errors<'_>) -> Option<ServerConfig> {
    let listen = socket(
        "server.listen",
        raw.listen.as_deref().unwrap_or("127.0.0.1:8443"),
        e,
    );
    let metrics_listen = raw
        .metrics_listen
        .as_deref()
        .and_then(|m| socket("server.metrics_listen", m, e));
    let tls = match (raw.tls_cert, raw.tls_key) {
        (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
        (None, None) => None,
        (Some(_), None) => {
            e.push(
                "server.tls_key",
                "required when server.tls_cert is set (both or neither)",
            );
            None
        }
        (None, Some(_)) => {
            e.push(
                "server.tls_cert",
                "required when server.tls_key is set (both or neither)",
            );
            None
        }
    };
    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .enumerate()
        .filter_map(|(i, p)| e.check(format!("server.trusted_proxies[{i}]"), Cidr::parse(p)))
        .collect();
    let request_timeout = raw.request_timeout_seconds.unwrap_or(30);
    if !(1..=600).contains(&request_timeout) {
        e.push(
            "server.request_timeout_seconds",
            "must be between 1 and 600",
        );
    }
    let max_concurrent_requests = raw.max_concurrent_requests.unwrap_or(1024);
    if max_concurrent_requests == 0 {
        e.push("server.max_concurrent_requests", "must be at least 1");
    }
    let allow_unauthenticated = raw.allow_unauthenticated.unwrap_or(false);
    if let Some(addr) = listen
        && allow_unauthenticated
        && !addr.ip().is_loopback()
    {
        e.push(
            "server.allow_unauthenticated",
            "only allowed when server.listen is a loopback address",
        );
    }
    let seconds = |key: &str, value: Option<u64>, default: u64, e: &mut Errors<'_>| {
        let v = value.unwrap_or(default);
        if !(1..=3600).contains(&v) {
            e.push(key, "must be between 1 and 3600");
        }
        Duration::from_secs(v.clamp(1, 3600))
    };
    let header_read_timeout = seconds(
        "server.header_read_timeout_seconds",
        raw.header_read_timeout_seconds,
        10,
        e,
    );
    let body_read_timeout = seconds(
        "server.body_read_timeout_seconds",
        raw.body_read_timeout_seconds,
        10,
        e,
    );
    let idle_timeout = seconds(
        "server.idle_timeout_seconds",
        raw.idle_timeout_seconds,
        60,
        e,
    );
    let max_connections = raw.max_connections.unwrap_or(4096);
    if max_connections == 0 {
        e.push("server.max_connections", "must be at least 1");
    }
    let max_connections_per_ip = raw.max_connections_per_ip.unwrap_or(256);
    if max_connections_per_ip == 0 {
        e.push("server.max_connections_per_ip", "must be at least 1");
    }
    Some(ServerConfig {
        listen: listen?,
        tls,
        metrics_listen,
        trusted_proxies,
        request_timeout: Duration::from_secs(request_timeout),
        max_concurrent_requests: max_concurrent_requests.max(1),
        allow_unauthenticated,
        max_connections: max_connections.max(1),
        max_connections_per_ip: max_connections_per_ip.max(1),
        header_read_timeout,
        body_read_timeout,
        idle_timeout,
        metrics_on_listen: raw.metrics_on_listen.unwrap_or(false),
    })
}

fn socket(key: &str, value: &str, e: &mut Errors<'_>) -> Option<SocketAddr> {
    value
        .parse()
        .map_err(|_| e.push(key, "must be an IP address and port such as 0.0.0.0:8443"))
        .ok()
}

fn aws(raw: super::raw::RawAws, e: &mut Errors<'_>) -> AwsConfig {
    let region = raw
        .region
        .as_deref()
        .and_then(|r| e.check("aws.region", Region::parse(r)));
    if let Some(ep) = &raw.sts_endpoint
        && !(ep.starts_with("https://") || ep.starts_with("http://"))
    {
        e.push("aws.sts_endpoint", "must be an http:// or https:// URL");
    }
    let secs = raw.session_duration_seconds.unwrap_or(3600);
    if !(900..=43_200).contains(&secs) {
        e.push(
            "aws.session_duration_seconds",
            "must be between 900 and 43200",
        );
    }
    if raw.iam_server_id.as_deref().is_some_and(str::is_empty) {
        e.push("aws.iam_server_id", "must not be empty");
    }
    let sts_connect_timeout = raw.sts_connect_timeout_seconds.unwrap_or(3);
    if !(1..=60).contains(&sts_connect_timeout) {
        e.push(
            "aws.sts_connect_timeout_seconds",
            "must be between 1 and 60",
        );
    }
    let sts_timeout = raw.sts_timeout_seconds.unwrap_or(10);
    if !(1..=120).contains(&sts_timeout) {
        e.push("aws.sts_timeout_seconds", "must be between 1 and 120");
    }
    let sts_max_attempts = raw.sts_max_attempts.unwrap_or(3);
    if !(1..=10).contains(&sts_max_attempts) {
        e.push("aws.sts_max_attempts", "must be between 1 and 10");
    }
    AwsConfig {
        sts_connect_timeout: Duration::from_secs(sts_connect_timeout),
        sts_timeout: Duration::from_secs(sts_timeout),
        sts_max_attempts,
        region,
        sts_endpoint: raw.sts_endpoint,
        session_duration: Duration::from_secs(secs),
        source_identity: raw.source_identity.unwrap_or(false),
        iam_server_id: raw.iam_server_id,
    }
}

fn tokens(raw: &super::raw::RawTokens, e: &mut Errors<'_>) -> TokenConfig {
    let min_remaining = raw.min_remaining_seconds.unwrap_or(300);
    let refresh_ahead = raw.refresh_ahead_seconds.unwrap_or(60);
    if min_remaining > 840 {
        e.push(
            "tokens.min_remaining_seconds",
            "must be at most 840 (tokens live 900 s)",
        );
    }
    if min_remaining + refresh_ahead > 890 {
        e.push(
            "tokens.refresh_ahead_seconds",
            "min_remaining_seconds + refresh_ahead_seconds must be at most 890",
        );
    }
    let cache_max_entries = raw.cache_max_entries.unwrap_or(100_000);
    if cache_max_entries == 0 {
        e.push("tokens.cache_max_entries", "must be at least 1");
    }
    TokenConfig {
        min_remaining: Duration::from_secs(min_remaining),
        refresh_ahead: Duration::from_secs(refresh_ahead),
        cache_max_entries,
    }
}

/// The error for a file with no `[audit]` section: it names both ways out.
const MISSING_AUDIT: &str = "missing: tokens are only issued with an audit trail; add \
    [audit] with url = \"sqlite:///var/lib/rds-token-broker/audit.db\" (or a postgres:// \
    URL), or, to issue tokens with no audit trail at all, say so with [audit] enabled = false";

/// `[audit]`: `None` when the file says `enabled = false` (and nothing else).
fn audit(raw: RawAudit, e: &mut Errors<'_>) -> Option<AuditConfig> {
    if raw.enabled == Some(false) {
        let set = [
            ("url", raw.url.is_some()),
            ("retention_days", raw.retention_days.is_some()),
            ("mirror", raw.mirror.is_some()),
            ("checkpoints", raw.checkpoints.is_some()),
        ];
        for (key, _) in set.iter().filter(|(_, is_set)| *is_set) {
            e.push(
                format!("audit.{key}"),
                "is set, but audit.enabled = false: remove one of them",
            );
        }
        return None;
    }
    let url = raw.url.unwrap_or_else(|| "sqlite://./audit.db".into());
    if !["sqlite://", "postgres://", "postgresql://"]
        .iter()
        .any(|p| url.starts_with(p))
    {
        e.push("audit.url", "must start with sqlite:// or postgres://");
    }
    let retention_days = raw.retention_days.unwrap_or(400);
    if retention_days == 0 {
        e.push("audit.retention_days", "must be at least 1");
    }
    if raw.mirror.as_deref().is_some_and(str::is_empty) {
        e.push("audit.mirror", "must be \"stdout\" or a file path");
    }
    let checkpoints = raw
        .checkpoints
        .and_then(|c| super::checkpoints::checkpoints(c, e));
    Some(AuditConfig {
        url,
        retention_days,
        mirror: raw.mirror,
        checkpoints,
    })
}

fn rate_limit(raw: &super::raw::RawRateLimit, e: &mut Errors<'_>) -> RateLimitConfig {
    if let Some(u) = &raw.redis_url
        && !(u.starts_with("redis://") || u.starts_with("rediss://"))
    {
        e.push(
            "rate_limit.redis_url",
            "must start with redis:// or rediss://",
        );
    }
    let per_principal_per_second = raw.per_principal_per_second.unwrap_or(50);
    if per_principal_per_second == 0 {
        e.push("rate_limit.per_principal_per_second", "must be at least 1");
    }
    let expected_replicas = raw.expected_replicas.unwrap_or(1);
    if expected_replicas == 0 {
        e.push("rate_limit.expected_replicas", "must be at least 1");
    }
    let max_wait = raw.max_wait_ms.unwrap_or(0);
    if max_wait > 60_000 {
        e.push("rate_limit.max_wait_ms", "must be at most 60000");
    }
    let redis_key_prefix = raw
        .redis_key_prefix
        .clone()
        .unwrap_or_else(|| "rds-token-broker:".to_owned());
    if redis_key_prefix.is_empty()
        || redis_key_prefix.len() > 128
        || redis_key_prefix
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        e.push(
            "rate_limit.redis_key_prefix",
            "must be 1 to 128 characters without spaces",
        );
    }
    RateLimitConfig {
        redis_key_prefix,
        redis_url: raw.redis_url.clone(),
        per_principal_per_second,
        max_wait: Duration::from_millis(max_wait),
        expected_replicas,
        per_client_ip_per_second: raw.per_client_ip_per_second.unwrap_or(10),
        per_client_ip_burst: raw.per_client_ip_burst.unwrap_or(50),
    }
}
