//! The configuration file as written (`docs/configuration.md`), before validation.
//!
//! Unknown keys are errors. Rather than `deny_unknown_fields`, which stops at the first one,
//! [`super::load_str`] deserializes through `serde_ignored` and reports every key these
//! structs do not name, together with every other problem, in one run of `check-config`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub aws: RawAws,
    #[serde(default)]
    pub tokens: RawTokens,
    pub audit: Option<RawAudit>,
    #[serde(default)]
    pub rate_limit: RawRateLimit,
    #[serde(default)]
    pub issuers: Vec<RawIssuer>,
    #[serde(default)]
    pub targets: Vec<RawTarget>,
    #[serde(default)]
    pub grants: Vec<RawGrant>,
    #[serde(default)]
    pub auditors: Vec<RawAuditor>,
    #[serde(default)]
    pub ui: RawUi,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawServer {
    pub listen: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub metrics_listen: Option<String>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    pub request_timeout_seconds: Option<u64>,
    pub max_concurrent_requests: Option<usize>,
    pub allow_unauthenticated: Option<bool>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub header_read_timeout_seconds: Option<u64>,
    pub body_read_timeout_seconds: Option<u64>,
    pub idle_timeout_seconds: Option<u64>,
    pub metrics_on_listen: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawLog {
    pub format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawAws {
    pub region: Option<String>,
    pub sts_endpoint: Option<String>,
    pub session_duration_seconds: Option<u64>,
    pub source_identity: Option<bool>,
    pub iam_server_id: Option<String>,
    pub sts_connect_timeout_seconds: Option<u64>,
    pub sts_timeout_seconds: Option<u64>,
    pub sts_max_attempts: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawTokens {
    pub min_remaining_seconds: Option<u64>,
    pub refresh_ahead_seconds: Option<u64>,
    pub cache_max_entries: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawAudit {
    pub url: Option<String>,
    pub retention_days: Option<u32>,
    pub mirror: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawRateLimit {
    pub redis_url: Option<String>,
    pub redis_key_prefix: Option<String>,
    pub per_principal_per_second: Option<u32>,
    pub max_wait_ms: Option<u64>,
    pub expected_replicas: Option<u32>,
    pub per_client_ip_per_second: Option<u32>,
    pub per_client_ip_burst: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct RawIssuer {
    pub name: String,
    pub issuer: String,
    pub jwks_uri: Option<String>,
    pub jwks_file: Option<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    pub algorithms: Option<Vec<String>>,
    pub leeway_seconds: Option<u64>,
    pub jwks_refresh_seconds: Option<u64>,
    pub jwks_min_refetch_seconds: Option<u64>,
    pub insecure_http: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct RawTarget {
    pub name: String,
    pub host: String,
    pub port: i64,
    pub engine: String,
    pub region: Option<String>,
    #[serde(default)]
    pub db_users: Vec<String>,
    pub role_arn: Option<String>,
    pub resource_id: Option<String>,
    pub external_id: Option<String>,
    pub max_connections_per_second: Option<u32>,
    pub burst: Option<u32>,
    pub share_tokens: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct RawGrant {
    pub issuer: String,
    pub subject: String,
    #[serde(default)]
    pub claims: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub db_users: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawAuditor {
    pub issuer: String,
    pub subject: String,
    #[serde(default)]
    pub claims: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawUi {
    pub enabled: Option<bool>,
    pub public_url: Option<String>,
    pub oidc: Option<RawUiOidc>,
}

#[derive(Debug, Deserialize)]
pub struct RawUiOidc {
    pub issuer: String,
    pub client_id: String,
    pub scopes: Option<Vec<String>>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
}
