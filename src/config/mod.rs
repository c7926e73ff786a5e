//! Configuration: loaded once, fully checked, then immutable.
//!
//! [`load_file`] reads TOML (`docs/configuration.md`), reports every problem by key at once
//! ([`ConfigErrors`]), and yields a [`Config`] whose fields are already parsed newtypes.

mod access;
mod checkpoints;
mod personal;
mod raw;
mod requests;
mod targets;
mod ui;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::domain::{
    CacheName, DbUser, DbUserTemplate, Engine, Hostname, Kind, Region, ResourceId, RoleArn,
    TargetName,
};
use crate::policy::Conditions;
use crate::token::{CacheService, TokenKind};

pub use crate::domain::Cidr;
pub use access::{ANONYMOUS_ISSUER, AWS_IAM_ISSUER, fetch_allowed, is_loopback_host};
pub use checkpoints::{DEFAULT_INTERVAL_SECONDS, DEFAULT_ORIGIN};
pub use requests::{
    AccessKind, GrantAccess, MAX_DURATION_MINUTES, MAX_MIN_APPROVALS, NotificationsConfig,
};

/// A checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// HTTP server settings.
    pub server: ServerConfig,
    /// Log output.
    pub log: LogConfig,
    /// AWS settings.
    pub aws: AwsConfig,
    /// Token lifetime and caching.
    pub tokens: TokenConfig,
    /// Audit trail settings; `None` only when the file says `[audit] enabled = false`
    /// (a file without `[audit]` does not load).
    pub audit: Option<AuditConfig>,
    /// Request pacing.
    pub rate_limit: RateLimitConfig,
    /// JWT issuers by name.
    pub issuers: Vec<IssuerConfig>,
    /// Databases by name.
    pub targets: BTreeMap<TargetName, Arc<Target>>,
    /// Who may obtain tokens for what.
    pub grants: Vec<GrantConfig>,
    /// Who may read the audit trail.
    pub auditors: Vec<AuditorConfig>,
    /// The audit console.
    pub ui: UiConfig,
    /// Where access-request transitions are posted (`[notifications]`).
    pub notifications: Option<NotificationsConfig>,
}

/// `[ui]`: the audit console at `/ui`.
#[derive(Debug, Clone, PartialEq)]
pub struct UiConfig {
    /// Serve the console (default true). It shows data only to `[[auditors]]`.
    pub enabled: bool,
    /// Where browsers reach the console, as an origin (`https://broker.example.com`, no
    /// trailing slash): OIDC sign-in accepts only `<public_url>/ui/` as redirect URI.
    /// Without it, sign-in works only on a loopback `Host` (required with `[ui.oidc]`
    /// unless `server.listen` is loopback).
    pub public_url: Option<String>,
    /// Sign-in through an identity provider, besides pasting a bearer token.
    pub oidc: Option<UiOidc>,
}

/// `[ui.oidc]`: OIDC authorization code with PKCE, as a public client.
#[derive(Debug, Clone, PartialEq)]
pub struct UiOidc {
    /// The `[[issuers]]` entry whose ID tokens sign auditors in.
    pub issuer: String,
    /// That issuer's `iss` URL (for discovery).
    pub issuer_url: String,
    /// The console's client id at the identity provider (an audience of the issuer).
    pub client_id: String,
    /// Scopes asked for (default `openid`).
    pub scopes: Vec<String>,
    /// Authorization endpoint; default from the issuer's discovery document.
    pub authorization_endpoint: Option<String>,
    /// Token endpoint; default from the issuer's discovery document.
    pub token_endpoint: Option<String>,
    /// The issuer's `insecure_http`: discovered endpoints may then be plain `http://`.
    pub insecure_http: bool,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Address to listen on (default `127.0.0.1:8443`).
    pub listen: SocketAddr,
    /// TLS certificate and key files, both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Separate listener for `/metrics`.
    pub metrics_listen: Option<SocketAddr>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// A request running longer is answered with 503 (default 30 s).
    pub request_timeout: Duration,
    /// Requests handled at once; more are shed with 503 (default 1024).
    pub max_concurrent_requests: usize,
    /// Serve `/v1/tokens` without caller authentication. Loopback listeners only; for
    /// tests and demos until callers are authenticated.
    pub allow_unauthenticated: bool,
    /// Open connections at most; more are closed at once (default 4096).
    pub max_connections: usize,
    /// Open connections per client address at most (peers in `trusted_proxies` are
    /// exempt; default 256).
    pub max_connections_per_ip: usize,
    /// Time a client has to send a request's headers, also while a kept-alive
    /// connection waits for its next request (default 10 s).
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body (default 10 s).
    pub body_read_timeout: Duration,
    /// A kept-alive connection with no request for this long is closed (default 60 s).
    pub idle_timeout: Duration,
    /// Serve `GET /metrics` on `listen` too (default false: only on `metrics_listen`).
    pub metrics_on_listen: bool,
}

/// `[log] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Output format (default json).
    pub format: LogFormat,
}

/// `[aws]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsConfig {
    /// Default region for targets whose host does not name one.
    pub region: Option<Region>,
    /// STS endpoint override.
    pub sts_endpoint: Option<String>,
    /// AssumeRole session duration (default 3600 s, at least 900 s).
    pub session_duration: Duration,
    /// Set SourceIdentity on AssumeRole to the caller.
    pub source_identity: bool,
    /// Value the `X-RDS-Token-Broker-Server-ID` header must carry for `aws-iam` callers.
    pub iam_server_id: Option<String>,
    /// STS connect timeout (default 3 s).
    pub sts_connect_timeout: Duration,
    /// STS timeout per call, retries included (default 10 s).
    pub sts_timeout: Duration,
    /// STS attempts per call, with backoff and jitter on throttling and 5xx (default 3).
    pub sts_max_attempts: u32,
}

/// `[tokens]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenConfig {
    /// Never hand out a token with less validity left (default 300 s).
    pub min_remaining: Duration,
    /// Start a background refresh this long before a cached token would fall below
    /// `min_remaining` (default 60 s).
    pub refresh_ahead: Duration,
    /// Most tokens held in the cache (default 100,000).
    pub cache_max_entries: u64,
}

/// `[audit]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditConfig {
    /// `sqlite://PATH` or `postgres://…`.
    pub url: String,
    /// Days events are kept (default 400).
    pub retention_days: u32,
    /// JSON-lines copy: `stdout` or a file path.
    pub mirror: Option<String>,
    /// `[audit.checkpoints]`: signed checkpoints of each chain's Merkle tree.
    pub checkpoints: Option<CheckpointConfig>,
}

/// `[audit.checkpoints]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointConfig {
    /// The signed-note key name of the signing key.
    pub key_name: String,
    /// Where the private key comes from (read at start; never logged).
    pub signing_key: SigningKeySource,
    /// Further keys accepted when verifying (rotation); reloadable.
    pub verifier_keys: Vec<crate::audit::note::VerifierKey>,
    /// Checkpoint origin prefix; `/<chain_id>` is appended (default `rds-token-broker`).
    pub origin: String,
    /// How often a checkpoint is made when the tree grew (default 60 s).
    pub interval: Duration,
    /// Append-only file sink.
    pub file: Option<PathBuf>,
    /// Amazon S3 sink.
    pub s3: Option<S3SinkConfig>,
}

/// Where the checkpoint signing key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigningKeySource {
    /// A PKCS#8 PEM file (`signing_key_file`).
    File(PathBuf),
    /// An environment variable holding the PKCS#8 PEM text (`signing_key_env`).
    Env(String),
    /// An AWS KMS key id (`kms_key_id`; refused by validation in this version).
    Kms(String),
}

/// The S3 checkpoint sink: one object per checkpoint, `<prefix>/<chain_id>/<tree size>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3SinkConfig {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// The bucket's region (default: `aws.region`, then the SDK's own).
    pub region: Option<Region>,
    /// An S3-compatible endpoint instead of AWS's (path-style addressing).
    pub endpoint: Option<String>,
}

/// `[rate_limit]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    /// Shared budget store.
    pub redis_url: Option<String>,
    /// Prefix of the broker's Redis keys (default `rds-token-broker:`), so that several
    /// fleets, or tests, can share one Redis.
    pub redis_key_prefix: String,
    /// Requests per second per caller (default 50).
    pub per_principal_per_second: u32,
    /// How long a request may wait for a slot (default 0).
    pub max_wait: Duration,
    /// Replicas sharing the budget, for the local fallback (default 1).
    pub expected_replicas: u32,
    /// Unauthenticated work (failed authentications, console sign-in requests) per
    /// second per client address (default 10; 0 turns the budget off).
    pub per_client_ip_per_second: u32,
    /// How much of it may come at once (default 50).
    pub per_client_ip_burst: u32,
}

/// One `[[issuers]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuerConfig {
    /// Name grants refer to.
    pub name: String,
    /// Expected `iss`.
    pub issuer: String,
    /// JWKS URL.
    pub jwks_uri: Option<String>,
    /// JWKS file.
    pub jwks_file: Option<PathBuf>,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// Accepted asymmetric algorithms.
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Keys are refetched this often (default 300 s).
    pub jwks_refresh: Duration,
    /// An unknown `kid` triggers a refetch at most this often (default 30 s).
    pub jwks_min_refetch: Duration,
    /// Allow plain `http://` to a host that is not loopback for this issuer's keys and
    /// discovery, and the console's endpoints (default false).
    pub insecure_http: bool,
}

/// One `[[targets]]` entry: a database clients ask for by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// What clients ask for.
    pub name: TargetName,
    /// Which service's tokens, with what that kind adds.
    pub kind: TargetKind,
    /// Endpoint host.
    pub host: Hostname,
    /// Endpoint port.
    pub port: u16,
    /// Engine.
    pub engine: Engine,
    /// Region, given or inferred from the host.
    pub region: Region,
    /// DB users tokens may be minted for.
    pub db_users: Vec<DbUser>,
    /// Role assumed to sign tokens.
    pub role_arn: Option<RoleArn>,
    /// Resource id scoping the assumed session.
    pub resource_id: Option<ResourceId>,
    /// `ExternalId` for AssumeRole.
    pub external_id: Option<String>,
    /// New distinct tokens per second (default 200).
    pub max_connections_per_second: u32,
    /// Burst above the rate (default 20).
    pub burst: u32,
    /// One shared cached token per (target, DB user).
    pub share_tokens: bool,
    /// Per-person DB users the target allows (`db_users` entries such as `"{subject}"`);
    /// a grant's template applies only when the target lists the same one.
    pub db_user_templates: Vec<DbUserTemplate>,
}

/// A target's kind (`kind`), with the keys only that kind has.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetKind {
    /// RDS, Aurora or RDS Proxy.
    Rds,
    /// Aurora DSQL.
    Dsql {
        /// The cluster id, from the endpoint.
        cluster_id: String,
        /// `token_lifetime_seconds` (default 900, at most 604800).
        token_lifetime_secs: u32,
    },
    /// ElastiCache (Valkey or Redis OSS).
    Elasticache {
        /// `cache_name`: the cache or replication-group name.
        cache_name: CacheName,
        /// `serverless`: a serverless cache.
        serverless: bool,
    },
    /// MemoryDB.
    Memorydb {
        /// `cache_name`: the cluster name.
        cache_name: CacheName,
    },
}

impl TargetKind {
    /// The kind's name.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Rds => Kind::Rds,
            Self::Dsql { .. } => Kind::Dsql,
            Self::Elasticache { .. } => Kind::Elasticache,
            Self::Memorydb { .. } => Kind::Memorydb,
        }
    }

    /// The cache's name, for ElastiCache and MemoryDB.
    pub fn cache_name(&self) -> Option<&CacheName> {
        match self {
            Self::Elasticache { cache_name, .. } | Self::Memorydb { cache_name } => {
                Some(cache_name)
            }
            Self::Rds | Self::Dsql { .. } => None,
        }
    }
}

impl Target {
    /// The kind of token this target's tokens are, for signing and the cache key.
    pub fn token_kind(&self) -> TokenKind {
        match &self.kind {
            TargetKind::Rds => TokenKind::Rds,
            TargetKind::Dsql {
                token_lifetime_secs,
                ..
            } => TokenKind::Dsql {
                lifetime_secs: *token_lifetime_secs,
            },
            TargetKind::Elasticache { serverless, .. } => TokenKind::Cache {
                service: CacheService::ElastiCache,
                serverless: *serverless,
            },
            TargetKind::Memorydb { .. } => TokenKind::Cache {
                service: CacheService::MemoryDb,
                serverless: false,
            },
        }
    }

    /// The host a token signs: the endpoint, or for a cache its name.
    pub fn signed_host(&self) -> &Hostname {
        self.kind
            .cache_name()
            .map_or(&self.host, CacheName::as_host)
    }
}

/// One `[[grants]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantConfig {
    /// An issuer name or `aws-iam`.
    pub issuer: String,
    /// Glob on the subject.
    pub subject: String,
    /// Claims that must match.
    pub claims: BTreeMap<String, toml::Value>,
    /// Allowed targets.
    pub targets: Vec<TargetName>,
    /// Allowed DB users.
    pub db_users: Vec<DbUser>,
    /// Allowed per-person DB users (`db_users` entries such as `"{subject}"`).
    pub db_user_templates: Vec<DbUserTemplate>,
    /// `[grants.conditions]`: where from and when the grant applies.
    pub conditions: Conditions,
    /// Standing, request or break-glass, with approvers and limits.
    pub access: GrantAccess,
}

/// One `[[auditors]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditorConfig {
    /// An issuer name or `aws-iam`.
    pub issuer: String,
    /// Glob on the subject.
    pub subject: String,
    /// Claims that must match.
    pub claims: BTreeMap<String, toml::Value>,
}

/// One problem found in a configuration, by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, e.g. `targets[0].region`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in one file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors {
    /// The file, when loaded from one.
    pub file: Option<PathBuf>,
    /// The problems, in file order.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self
            .file
            .as_deref()
            .map_or_else(|| "<config>".to_owned(), |p| p.display().to_string());
        let n = self.errors.len();
        write!(f, "{file}: {n} error{}", if n == 1 { "" } else { "s" })?;
        for e in &self.errors {
            write!(f, "\n  {file}: {}: {}", e.key, e.message)?;
        }
        Ok(())
    }
}

/// Reads and checks a configuration file.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        file: Some(path.to_owned()),
        errors: vec![ConfigError {
            key: "(file)".into(),
            message: format!("cannot read: {e}"),
        }],
    })?;
    load_str(&text).map_err(|mut e| {
        e.file = Some(path.to_owned());
        e
    })
}

/// Checks a configuration given as TOML text.
pub fn load_str(text: &str) -> Result<Config, ConfigErrors> {
    let fail = |errors| ConfigErrors { file: None, errors };
    let mut unknown = Vec::new();
    let de = toml::Deserializer::parse(text).map_err(|e| fail(vec![toml_error(text, &e)]))?;
    let raw: raw::RawConfig = serde_ignored::deserialize(de, |path| {
        unknown.push(ConfigError {
            key: key_of(&path),
            message: unknown_key(&path),
        });
    })
    .map_err(|e| fail(vec![toml_error(text, &e)]))?;
    let mut errors = unknown;
    let config = validate::validate(raw, &mut errors);
    match config {
        Some(c) if errors.is_empty() => Ok(c),
        _ => Err(fail(errors)),
    }
}

/// "unknown key", with the section's closest key when it looks like a typo of one.
fn unknown_key(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    let suggestion = match path {
        P::Map { parent, key } => raw::closest(key, raw::known_keys(&section_of(parent))),
        _ => None,
    };
    match suggestion {
        Some(k) => format!("unknown key; did you mean {k:?}?"),
        None => "unknown key".into(),
    }
}

/// The table a serde_ignored path is in, without indices: `targets[0]` is `targets`.
fn section_of(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Map { parent, key } => match section_of(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        P::Seq { parent, .. }
        | P::Some { parent }
        | P::NewtypeStruct { parent }
        | P::NewtypeVariant { parent } => section_of(parent),
    }
}

/// Renders a serde_ignored path in the notation of every other error: `targets[0].port`.
fn key_of(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", key_of(parent)),
        P::Map { parent, key } => match key_of(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            key_of(parent)
        }
    }
}

fn toml_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().to_owned();
    let key = match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("(line {line}, column {column})")
        }
        None => "(file)".into(),
    };
    ConfigError {
        key,
        message: format!("invalid TOML: {message}"),
    }
}

impl Config {
    /// This configuration with the reloadable sections (`[[issuers]]`, `[[targets]]`,
    /// `[[grants]]`, `[[auditors]]`, `[ui]`, `audit.checkpoints.verifier_keys`) taken from
    /// `new`. Also returns the sections that
    /// differ in `new` but need a restart, and are kept as they are.
    pub fn reloaded_with(&self, new: Config) -> (Config, Vec<&'static str>) {
        let mut needs_restart = Vec::new();
        let mut note = |differs: bool, name| {
            if differs {
                needs_restart.push(name);
            }
        };
        note(self.server != new.server, "server");
        note(self.log != new.log, "log");
        note(self.aws != new.aws, "aws");
        note(self.tokens != new.tokens, "tokens");
        // `audit.checkpoints.verifier_keys` is reloadable; the rest of [audit] is not.
        let audit = with_new_verifier_keys(&self.audit, &new.audit);
        note(audit != new.audit, "audit");
        note(self.rate_limit != new.rate_limit, "rate_limit");
        note(self.notifications != new.notifications, "notifications");
        let merged = Config {
            issuers: new.issuers,
            targets: new.targets,
            grants: new.grants,
            auditors: new.auditors,
            ui: new.ui,
            audit,
            ..self.clone()
        };
        (merged, needs_restart)
    }
}

/// `old` with the checkpoint verifier keys of `new`, when both sign checkpoints.
fn with_new_verifier_keys(
    old: &Option<AuditConfig>,
    new: &Option<AuditConfig>,
) -> Option<AuditConfig> {
    let mut audit = old.clone();
    let old_cp = audit.as_mut().and_then(|a| a.checkpoints.as_mut());
    let new_cp = new.as_ref().and_then(|a| a.checkpoints.as_ref());
    if let (Some(o), Some(n)) = (old_cp, new_cp) {
        o.verifier_keys.clone_from(&n.verifier_keys);
    }
    audit
}
