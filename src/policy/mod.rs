//! Which DB users of which targets a principal may obtain tokens for. Pure functions.
//!
//! Deny by default: a principal gets nothing unless a `[[grants]]` entry matches it on
//! issuer name, subject glob and every listed claim (equal, or contained in an array
//! claim such as `groups`). The anonymous caller of a broker with
//! `server.allow_unauthenticated` may use every configured target and DB user, but reads
//! the audit trail only when an `[[auditors]]` entry names it (issuer `none`, subject
//! `anonymous`).

pub mod glob;
pub mod requests;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::auth::{AuthMethod, Principal};
use crate::config::{Config, Target};
use crate::domain::DbUser;

/// Whether a configured claim value matches a token's claim.
pub fn claim_matches(expected: &toml::Value, actual: Option<&Value>) -> bool {
    let scalar = |v: &Value| match (expected, v) {
        (toml::Value::String(e), Value::String(a)) => e == a,
        (toml::Value::Integer(e), Value::Number(a)) => a.as_i64() == Some(*e),
        (toml::Value::Boolean(e), Value::Bool(a)) => e == a,
        _ => false,
    };
    match actual {
        Some(Value::Array(items)) => items.iter().any(scalar),
        Some(v) => scalar(v),
        None => false,
    }
}

/// Whether a rule (issuer name, subject glob, claims) matches `principal`.
pub fn rule_matches(
    issuer: &str,
    subject: &str,
    claims: &BTreeMap<String, toml::Value>,
    principal: &Principal,
) -> bool {
    let subject_matches = match principal.auth_method {
        AuthMethod::Jwt => {
            issuer != crate::config::AWS_IAM_ISSUER
                && issuer != crate::config::ANONYMOUS_ISSUER
                && glob::matches(subject, &principal.subject)
        }
        // The caller's ARN, or for an assumed role the role's ARN, so grants can name
        // the role whatever the session.
        AuthMethod::AwsIam => {
            issuer == crate::config::AWS_IAM_ISSUER
                && (glob::matches(subject, &principal.subject)
                    || principal
                        .claims
                        .get("role_arn")
                        .and_then(|r| r.as_str())
                        .is_some_and(|r| glob::matches(subject, r)))
        }
        // Only the anonymous caller (not a shared token's signing identity), and only by
        // an entry that names it.
        AuthMethod::Unauthenticated => {
            issuer == crate::config::ANONYMOUS_ISSUER && glob::matches(subject, &principal.subject)
        }
    };
    subject_matches
        && issuer == principal.issuer
        && claims
            .iter()
            .all(|(k, v)| claim_matches(v, principal.claims.get(k)))
}

/// The DB users of `target` that `principal` may obtain tokens for by a standing grant;
/// empty means none (request and break-glass grants count only during an approved access
/// request: see [`requests`]).
pub fn allowed_db_users<'a>(
    config: &'a Config,
    principal: &Principal,
    target: &'a Target,
) -> Vec<&'a DbUser> {
    if principal.auth_method == AuthMethod::Unauthenticated {
        return if config.server.allow_unauthenticated {
            target.db_users.iter().collect()
        } else {
            Vec::new()
        };
    }
    let granted: Vec<&DbUser> = config
        .grants
        .iter()
        .filter(|g| {
            g.access.kind == crate::config::AccessKind::Standing
                && g.targets.contains(&target.name)
                && rule_matches(&g.issuer, &g.subject, &g.claims, principal)
        })
        .flat_map(|g| g.db_users.iter())
        .collect();
    target
        .db_users
        .iter()
        .filter(|u| granted.contains(u))
        .collect()
}

/// Whether `principal` may read the audit trail.
pub fn is_auditor(config: &Config, principal: &Principal) -> bool {
    config
        .auditors
        .iter()
        .any(|a| rule_matches(&a.issuer, &a.subject, &a.claims, principal))
}
