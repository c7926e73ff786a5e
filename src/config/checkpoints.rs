//! Validation of `[audit.checkpoints]`: signed checkpoints of each chain's Merkle tree
//! and where they are published (`docs/audit.md`, "Checkpoints").

use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawCheckpoints;
use super::validate::Errors;
use super::{CheckpointConfig, S3SinkConfig, SigningKeySource};
use crate::audit::note::VerifierKey;
use crate::domain::Region;

/// Default `origin`.
pub const DEFAULT_ORIGIN: &str = "rds-token-broker";
/// Default `interval_seconds`.
pub const DEFAULT_INTERVAL_SECONDS: u64 = 60;
/// Longest `interval_seconds` accepted (a day).
const MAX_INTERVAL_SECONDS: u64 = 86_400;

pub(super) fn checkpoints(raw: RawCheckpoints, e: &mut Errors<'_>) -> Option<CheckpointConfig> {
    let key = |k: &str| format!("audit.checkpoints.{k}");
    let key_name = raw.key_name.unwrap_or_default();
    if key_name.is_empty() {
        e.push(
            key("key_name"),
            "missing: the signed-note key name (such as \"broker.example.com\")",
        );
    } else if let Err(why) = VerifierKey::new(&key_name, [0; 32]) {
        e.push(key("key_name"), why.to_string());
    }
    let sources = [
        raw.signing_key_file
            .map(|f| SigningKeySource::File(f.into())),
        raw.signing_key_env.map(SigningKeySource::Env),
        raw.kms_key_id.map(SigningKeySource::Kms),
    ];
    let mut given: Vec<SigningKeySource> = sources.into_iter().flatten().collect();
    if given.len() != 1 {
        e.push(
            key("signing_key_file"),
            "set exactly one of signing_key_file, signing_key_env and kms_key_id \
             (`rds-token-broker audit keygen --name NAME --out FILE` makes a key file)",
        );
    }
    let signing_key = given.pop();
    match &signing_key {
        Some(SigningKeySource::File(p)) if p.as_os_str().is_empty() => {
            e.push(key("signing_key_file"), "must be a file path");
        }
        Some(SigningKeySource::Env(v))
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            e.push(
                key("signing_key_env"),
                "must be an environment variable name (letters, digits, _)",
            );
        }
        Some(SigningKeySource::Kms(_)) => e.push(
            key("kms_key_id"),
            "KMS signing is not implemented in this version (docs/audit.md, \
             \"Checkpoints\"); use signing_key_file or signing_key_env",
        ),
        _ => {}
    }
    let mut verifier_keys = Vec::new();
    for (i, k) in raw.verifier_keys.iter().enumerate() {
        match k.parse::<VerifierKey>() {
            Ok(v) => verifier_keys.push(v),
            Err(why) => e.push(
                format!("audit.checkpoints.verifier_keys[{i}]"),
                why.to_string(),
            ),
        }
    }
    let origin = raw.origin.unwrap_or_else(|| DEFAULT_ORIGIN.into());
    if origin.is_empty() || origin.len() > 200 || origin.chars().any(char::is_control) {
        e.push(
            key("origin"),
            "must be 1 to 200 characters, none of them control characters",
        );
    }
    let interval = raw.interval_seconds.unwrap_or(DEFAULT_INTERVAL_SECONDS);
    if !(1..=MAX_INTERVAL_SECONDS).contains(&interval) {
        e.push(key("interval_seconds"), "must be 1 to 86400");
    }
    let file = raw.file.map(PathBuf::from);
    if file.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
        e.push(key("file"), "must be a file path");
    }
    let s3 = s3(
        raw.s3_bucket,
        raw.s3_prefix,
        raw.s3_region,
        raw.s3_endpoint,
        e,
    );
    Some(CheckpointConfig {
        key_name,
        signing_key: signing_key?,
        verifier_keys,
        origin,
        interval: Duration::from_secs(interval),
        file,
        s3,
    })
}

fn s3(
    bucket: Option<String>,
    prefix: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    e: &mut Errors<'_>,
) -> Option<S3SinkConfig> {
    let Some(bucket) = bucket else {
        for (k, set) in [
            ("s3_prefix", prefix.is_some()),
            ("s3_region", region.is_some()),
            ("s3_endpoint", endpoint.is_some()),
        ] {
            if set {
                e.push(
                    format!("audit.checkpoints.{k}"),
                    "is set without audit.checkpoints.s3_bucket",
                );
            }
        }
        return None;
    };
    let ok_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if !ok_bucket {
        e.push(
            "audit.checkpoints.s3_bucket",
            "must be an S3 bucket name (3 to 63 lowercase letters, digits, '.' and '-')",
        );
    }
    let prefix = prefix.unwrap_or_default().trim_matches('/').to_owned();
    if prefix.len() > 512 || prefix.chars().any(char::is_control) {
        e.push(
            "audit.checkpoints.s3_prefix",
            "must be at most 512 characters, none of them control characters",
        );
    }
    let region = region.and_then(|r| e.check("audit.checkpoints.s3_region", Region::parse(&r)));
    if let Some(u) = &endpoint
        && !(u.starts_with("https://") || u.starts_with("http://"))
    {
        e.push(
            "audit.checkpoints.s3_endpoint",
            "must be an http:// or https:// URL",
        );
    }
    Some(S3SinkConfig {
        bucket,
        prefix,
        region,
        endpoint,
    })
}
