//! Raw configuration to checked [`Config`], collecting every problem by key.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::raw::{RawAudit, RawConfig, RawIssuer, RawTarget};
use super::{
    AuditConfig, AuditorConfig, AwsConfig, Config, ConfigError, GrantConfig, IssuerConfig,
    LogConfig, LogFormat, RateLimitConfig, ServerConfig, Target, TokenConfig,
};
use crate::domain::{
    DbUser, Engine, Hostname, ParseError, Region, ResourceId, RoleArn, TargetName,
};

/// The issuer name of AWS IAM callers in grants.
pub const AWS_IAM_ISSUER: &str = "aws-iam";

const ASYMMETRIC_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// An IP network in CIDR notation, e.g. `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or a bare address (a single host).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let err = || ParseError::new("must be an IP network such as 10.0.0.0/8");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(err)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

struct Errors<'a>(&'a mut Vec<ConfigError>);

impl Errors<'_> {
    fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            key: key.into(),
            message: message.into(),
        });
    }

    /// Records a parse failure under `key`; returns the value when it parsed.
    fn check<T>(&mut self, key: impl Into<String>, r: Result<T, ParseError>) -> Option<T> {
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
    let audit = raw.audit.map(|a| audit(a, &mut e));
    let rate_limit = rate_limit(&raw.rate_limit, &mut e);
    let issuers: Vec<IssuerConfig> = raw
        .issuers
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| issuer(i, r, &mut e))
        .collect();
    let mut seen = BTreeSet::new();
    for (i, iss) in issuers.iter().enumerate() {
        if iss.name == AWS_IAM_ISSUER {
            e.push(
                format!("issuers[{i}].name"),
                "\"aws-iam\" is reserved for AWS IAM callers",
            );
        }
        if !seen.insert(iss.name.clone()) {
            e.push(
                format!("issuers[{i}].name"),
                format!("duplicate issuer name {:?}", iss.name),
            );
        }
    }

    let mut names = BTreeSet::new();
    for (i, r) in raw.targets.iter().enumerate() {
        if !names.insert(r.name.clone()) {
            e.push(
                format!("targets[{i}].name"),
                format!("duplicate target name {:?}", r.name),
            );
        }
    }
    let mut targets = BTreeMap::new();
    for (i, r) in raw.targets.into_iter().enumerate() {
        if let Some(t) = target(i, r, aws.region.as_ref(), &mut e) {
            targets.entry(t.name.clone()).or_insert(t);
        }
    }

    let known_issuer =
        |name: &str| name == AWS_IAM_ISSUER || issuers.iter().any(|i| i.name == name);
    let mut grants = Vec::new();
    for (i, g) in raw.grants.into_iter().enumerate() {
        let key = |k: &str| format!("grants[{i}].{k}");
        if !known_issuer(&g.issuer) {
            e.push(
                key("issuer"),
                format!(
                    "unknown issuer {:?}: not in [[issuers]] and not \"aws-iam\"",
                    g.issuer
                ),
            );
        }
        if g.issuer == AWS_IAM_ISSUER && aws.iam_server_id.is_none() {
            e.push(
                key("issuer"),
                "grants for \"aws-iam\" need aws.iam_server_id",
            );
        }
        if g.subject.is_empty() {
            e.push(
                key("subject"),
                "must not be empty (use \"*\" for any subject)",
            );
        }
        if g.targets.is_empty() {
            e.push(key("targets"), "must name at least one target");
        }
        let mut granted_targets = Vec::new();
        for (j, name) in g.targets.iter().enumerate() {
            let Some(name) = e.check(format!("grants[{i}].targets[{j}]"), TargetName::parse(name))
            else {
                continue;
            };
            if !targets.contains_key(&name) {
                e.push(
                    format!("grants[{i}].targets[{j}]"),
                    format!("unknown target {:?}", name.as_str()),
                );
                continue;
            }
            granted_targets.push(name);
        }
        let mut db_users = Vec::new();
        for (j, u) in g.db_users.iter().enumerate() {
            let k = format!("grants[{i}].db_users[{j}]");
            let Some(u) = e.check(k.clone(), DbUser::parse(u)) else {
                continue;
            };
            let offered_by = |t: &TargetName| {
                targets
                    .get(t)
                    .is_some_and(|t: &Target| t.db_users.contains(&u))
            };
            if !granted_targets.is_empty() && !granted_targets.iter().any(offered_by) {
                e.push(
                    k,
                    format!(
                        "DB user {:?} is not in db_users of any granted target",
                        u.as_str()
                    ),
                );
            }
            db_users.push(u);
        }
        if g.db_users.is_empty() {
            e.push(key("db_users"), "must name at least one DB user");
        }
        grants.push(GrantConfig {
            issuer: g.issuer,
            subject: g.subject,
            claims: g.claims,
            targets: granted_targets,
            db_users,
        });
    }

    let mut auditors = Vec::new();
    for (i, a) in raw.auditors.into_iter().enumerate() {
        if !known_issuer(&a.issuer) {
            e.push(
                format!("auditors[{i}].issuer"),
                format!("unknown issuer {:?}", a.issuer),
            );
        }
        if a.subject.is_empty() {
            e.push(
                format!("auditors[{i}].subject"),
                "must not be empty (use \"*\" for any subject)",
            );
        }
        auditors.push(AuditorConfig {
            issuer: a.issuer,
            subject: a.subject,
            claims: a.claims,
        });
    }

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
    if let Some(addr) = listen {
        if allow_unauthenticated && !addr.ip().is_loopback() {
            e.push(
                "server.allow_unauthenticated",
                "only allowed when server.listen is a loopback address",
            );
        }
    }
    Some(ServerConfig {
        listen: listen?,
        tls,
        metrics_listen,
        trusted_proxies,
        request_timeout: Duration::from_secs(request_timeout),
        max_concurrent_requests: max_concurrent_requests.max(1),
        allow_unauthenticated,
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
    if let Some(ep) = &raw.sts_endpoint {
        if !(ep.starts_with("https://") || ep.starts_with("http://")) {
            e.push("aws.sts_endpoint", "must be an http:// or https:// URL");
        }
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
    AwsConfig {
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

fn audit(raw: RawAudit, e: &mut Errors<'_>) -> AuditConfig {
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
    AuditConfig {
        url,
        retention_days,
        mirror: raw.mirror,
    }
}

fn rate_limit(raw: &super::raw::RawRateLimit, e: &mut Errors<'_>) -> RateLimitConfig {
    if let Some(u) = &raw.redis_url {
        if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
            e.push(
                "rate_limit.redis_url",
                "must start with redis:// or rediss://",
            );
        }
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
    RateLimitConfig {
        redis_url: raw.redis_url.clone(),
        per_principal_per_second,
        max_wait: Duration::from_millis(max_wait),
        expected_replicas,
    }
}

fn issuer(i: usize, raw: RawIssuer, e: &mut Errors<'_>) -> Option<IssuerConfig> {
    let key = |k: &str| format!("issuers[{i}].{k}");
    if raw.name.is_empty() {
        e.push(key("name"), "must not be empty");
    }
    if raw.issuer.is_empty() {
        e.push(key("issuer"), "must not be empty");
    }
    if raw.jwks_uri.is_some() && raw.jwks_file.is_some() {
        e.push(key("jwks_file"), "set jwks_uri or jwks_file, not both");
    }
    if let Some(u) = &raw.jwks_uri {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            e.push(key("jwks_uri"), "must be an http:// or https:// URL");
        }
    }
    if raw.audiences.is_empty() {
        e.push(key("audiences"), "must list at least one audience");
    }
    let algorithms = raw
        .algorithms
        .unwrap_or_else(|| vec!["RS256".into(), "ES256".into()]);
    if algorithms.is_empty() {
        e.push(key("algorithms"), "must list at least one algorithm");
    }
    for (j, a) in algorithms.iter().enumerate() {
        if !ASYMMETRIC_ALGORITHMS.contains(&a.as_str()) {
            e.push(
                format!("issuers[{i}].algorithms[{j}]"),
                format!(
                    "unsupported algorithm {a:?}: one of {}",
                    ASYMMETRIC_ALGORITHMS.join(", ")
                ),
            );
        }
    }
    let leeway = raw.leeway_seconds.unwrap_or(60);
    if leeway > 600 {
        e.push(key("leeway_seconds"), "must be at most 600");
    }
    Some(IssuerConfig {
        name: raw.name,
        issuer: raw.issuer,
        jwks_uri: raw.jwks_uri,
        jwks_file: raw.jwks_file.map(PathBuf::from),
        audiences: raw.audiences,
        algorithms,
        leeway: Duration::from_secs(leeway),
    })
}

fn target(
    i: usize,
    raw: RawTarget,
    default_region: Option<&Region>,
    e: &mut Errors<'_>,
) -> Option<Target> {
    let key = |k: &str| format!("targets[{i}].{k}");
    let name = e.check(key("name"), TargetName::parse(&raw.name));
    let host = e.check(key("host"), Hostname::parse(&raw.host));
    let port = u16::try_from(raw.port).ok().filter(|p| *p != 0);
    if port.is_none() {
        e.push(key("port"), "must be between 1 and 65535");
    }
    let engine = e.check(key("engine"), Engine::parse(&raw.engine));
    let inferred = host.as_ref().and_then(Region::from_rds_host);
    let region = match (&raw.region, &inferred) {
        (Some(r), inferred) => {
            let r = e.check(key("region"), Region::parse(r));
            if let (Some(r), Some(inf)) = (&r, inferred) {
                if r != inf {
                    e.push(
                        key("region"),
                        format!("{r} contradicts the host, which names {inf}"),
                    );
                }
            }
            r
        }
        (None, Some(inf)) => Some(inf.clone()),
        (None, None) => {
            let r = default_region.cloned();
            if r.is_none() && host.is_some() {
                e.push(key("region"), "required: the host is not an RDS endpoint that names its region, and aws.region is not set");
            }
            r
        }
    };
    if raw.db_users.is_empty() {
        e.push(key("db_users"), "must list at least one DB user");
    }
    let mut db_users = Vec::new();
    for (j, u) in raw.db_users.iter().enumerate() {
        let k = format!("targets[{i}].db_users[{j}]");
        if let Some(u) = e.check(k.clone(), DbUser::parse(u)) {
            if db_users.contains(&u) {
                e.push(k, format!("duplicate DB user {:?}", u.as_str()));
            } else {
                db_users.push(u);
            }
        }
    }
    let role_arn = raw
        .role_arn
        .as_deref()
        .and_then(|a| e.check(key("role_arn"), RoleArn::parse(a)));
    let resource_id = raw
        .resource_id
        .as_deref()
        .and_then(|r| e.check(key("resource_id"), ResourceId::parse(r)));
    if raw.resource_id.is_some() && raw.role_arn.is_none() {
        e.push(
            key("resource_id"),
            "only takes effect with role_arn (it scopes the assumed session)",
        );
    }
    let max_connections_per_second = raw.max_connections_per_second.unwrap_or(200);
    if max_connections_per_second == 0 {
        e.push(key("max_connections_per_second"), "must be at least 1");
    }
    let burst = raw.burst.unwrap_or(20);
    if burst == 0 {
        e.push(key("burst"), "must be at least 1");
    }
    Some(Target {
        name: name?,
        host: host?,
        port: port?,
        engine: engine?,
        region: region?,
        db_users,
        role_arn,
        resource_id,
        max_connections_per_second,
        burst,
        share_tokens: raw.share_tokens.unwrap_or(false),
    })
}
