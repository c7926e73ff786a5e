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
    pub notifications: Option<RawNotifications>,
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
    pub enabled: Option<bool>,
    pub url: Option<String>,
    pub retention_days: Option<u32>,
    pub mirror: Option<String>,
    pub checkpoints: Option<RawCheckpoints>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawCheckpoints {
    pub key_name: Option<String>,
    pub signing_key_file: Option<String>,
    pub signing_key_env: Option<String>,
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub verifier_keys: Vec<String>,
    pub origin: Option<String>,
    pub interval_seconds: Option<u64>,
    pub file: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_prefix: Option<String>,
    pub s3_region: Option<String>,
    pub s3_endpoint: Option<String>,
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
    pub kind: Option<String>,
    pub host: Option<String>,
    pub port: Option<i64>,
    pub engine: Option<String>,
    pub region: Option<String>,
    pub cache_name: Option<String>,
    pub serverless: Option<bool>,
    pub token_lifetime_seconds: Option<i64>,
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
    pub conditions: Option<RawConditions>,
    pub access: Option<String>,
    #[serde(default)]
    pub approvers: Vec<RawAuditor>,
    pub min_approvals: Option<i64>,
    pub max_duration_minutes: Option<i64>,
    pub require_reason: Option<bool>,
}

/// `[grants.conditions]`.
#[derive(Debug, Default, Deserialize)]
pub struct RawConditions {
    #[serde(default)]
    pub source_cidrs: Vec<String>,
    pub hours: Option<OneOrMany>,
}

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
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
pub struct RawNotifications {
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<secrecy::SecretString>,
}

#[derive(Debug, Deserialize)]
pub struct RawUiOidc {
    pub issuer: String,
    pub client_id: String,
    pub scopes: Option<Vec<String>>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
}

/// The keys a section accepts, as written in the file: `section` is the dotted path of a
/// table without indices (`""` for the top level, `server`, `targets`, `ui.oidc`). Read
/// from the structs above, so the list cannot drift from what is parsed.
pub fn known_keys(section: &str) -> &'static [&'static str] {
    match section {
        "" => fields::<RawConfig>(),
        "server" => fields::<RawServer>(),
        "log" => fields::<RawLog>(),
        "aws" => fields::<RawAws>(),
        "tokens" => fields::<RawTokens>(),
        "audit" => fields::<RawAudit>(),
        "audit.checkpoints" => fields::<RawCheckpoints>(),
        "rate_limit" => fields::<RawRateLimit>(),
        "issuers" => fields::<RawIssuer>(),
        "targets" => fields::<RawTarget>(),
        "grants" => fields::<RawGrant>(),
        "grants.conditions" => fields::<RawConditions>(),
        "auditors" => fields::<RawAuditor>(),
        "ui" => fields::<RawUi>(),
        "ui.oidc" => fields::<RawUiOidc>(),
        "grants.approvers" => fields::<RawAuditor>(),
        "notifications" => fields::<RawNotifications>(),
        _ => &[],
    }
}

/// The field names serde's derive hands to `deserialize_struct`.
fn fields<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    let mut names = FieldNames(&[]);
    let _ = T::deserialize(&mut names);
    names.0
}

/// A deserializer that only records the field names of the struct asked for.
struct FieldNames(&'static [&'static str]);

impl<'de> serde::Deserializer<'de> for &mut FieldNames {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = fields;
        Err(serde::de::Error::custom("field names read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// The known key closest to `unknown` when it is close enough to be a typo: at most a
/// third of its length in single-character edits (an adjacent swap counts as one).
pub fn closest<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    let unknown = unknown.to_ascii_lowercase();
    let limit = (unknown.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (edit_distance(&unknown, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// adjacent characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: two back (for swaps), one back, current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        if let Some(first) = cur.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            let sub = prev.get(j).map_or(usize::MAX, |d| d + cost);
            let del = prev.get(j + 1).map_or(usize::MAX, |d| d + 1);
            let ins = cur.get(j).map_or(usize::MAX, |d| d + 1);
            let mut best = sub.min(del).min(ins);
            let swapped = i > 0 && j > 0 && a.get(i - 1) == Some(cb) && b.get(j - 1) == Some(ca);
            if swapped && let Some(d) = before.get(j - 1) {
                best = best.min(d + 1);
            }
            if let Some(slot) = cur.get_mut(j + 1) {
                *slot = best;
            }
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev.get(b.len()).copied().unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_lists_its_keys() {
        assert!(known_keys("").contains(&"rate_limit"));
        assert!(known_keys("server").contains(&"listen"));
        assert!(known_keys("targets").contains(&"engine"));
        assert!(known_keys("ui.oidc").contains(&"client_id"));
        assert!(known_keys("grants.claims").is_empty());
    }

    #[test]
    fn typos_get_the_closest_key_and_strangers_get_none() {
        let server = known_keys("server");
        assert_eq!(closest("lisen", server), Some("listen"));
        assert_eq!(closest("Listen", server), Some("listen"));
        assert_eq!(closest("tls_crt", server), Some("tls_cert"));
        assert_eq!(closest("metrics_lsiten", server), Some("metrics_listen"));
        assert_eq!(closest("colour", server), None);
        assert_eq!(closest("", server), None);
        assert_eq!(closest("regoin", known_keys("targets")), Some("region"));
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("abc", "acb"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
