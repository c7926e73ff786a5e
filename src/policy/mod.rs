//! Which DB users of which targets a principal may obtain tokens for. Pure functions.
//!
//! Deny by default: a principal gets nothing unless a `[[grants]]` entry matches it on
//! issuer name, subject glob and every listed claim (equal, or contained in an array
//! claim such as `groups`). The anonymous caller of a broker with
//! `server.allow_unauthenticated` may use every configured target and DB user, but reads
//! the audit trail only when an `[[auditors]]` entry names it (issuer `none`, subject
//! `anonymous`).

pub mod conditions;
pub mod glob;
pub mod personal;
pub mod requests;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::SystemTime;

use serde_json::Value;

use crate::auth::{AuthMethod, Principal};
use crate::config::{Config, Target};
use crate::domain::DbUser;

pub use conditions::{ConditionFailure, Conditions};
pub use personal::TemplateFailure;

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

/// The DB users of `target` that `principal` may obtain tokens for, per-person users
/// resolved, by standing grants; empty means none (request and break-glass grants count
/// only during an approved access request: see [`requests`]). Grant conditions are not
/// looked at (see [`decide`]).
pub fn allowed_db_users(config: &Config, principal: &Principal, target: &Target) -> Vec<DbUser> {
    decide(config, principal, target, None).users
}

/// Where and when a request is made, for grant conditions.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext {
    /// The client's address after `server.trusted_proxies`, when known.
    pub client_ip: Option<IpAddr>,
    /// The broker's clock's time.
    pub now: SystemTime,
}

/// What `principal` may use on a target, and why grants that name it gave nothing.
#[derive(Debug, Default)]
pub struct Decision {
    /// The DB users allowed: the target's shared users in its order, then per-person
    /// users.
    pub users: Vec<DbUser>,
    /// Grants that match the caller and the target but did not apply.
    pub refused: Vec<Refusal>,
}

/// Why a grant that matches the caller and the target gave nothing.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// A condition did not hold; the DB users the grant would have given.
    Condition(ConditionFailure, Vec<DbUser>),
    /// A per-person DB user could not be resolved.
    Template(TemplateFailure),
}

impl Decision {
    /// Why `asked` (or, when `None`, any DB user) is not allowed, when a grant that would
    /// have given it did not apply: a failed condition of a grant that gives that user,
    /// else (unless `asked` is one of the target's shared users) a per-person user that
    /// could not be resolved. `None`: no grant says anything, a plain refusal.
    pub fn refusal_for(&self, target: &Target, asked: Option<&DbUser>) -> Option<Refusal> {
        let condition = self.refused.iter().find(|r| match r {
            Refusal::Condition(_, users) => asked.map_or(!users.is_empty(), |a| users.contains(a)),
            Refusal::Template(_) => false,
        });
        let shared = asked.is_some_and(|a| target.db_users.contains(a));
        let template = (!shared)
            .then(|| {
                self.refused
                    .iter()
                    .find(|r| matches!(r, Refusal::Template(_)))
            })
            .flatten();
        condition.or(template).cloned()
    }
}

/// What `principal` may use on `target`: the grants that match the caller and name the
/// target, with their conditions checked at `at` (`None`: conditions not looked at, for
/// listings), their shared DB users that the target lists, and their per-person DB users
/// (templates the target lists too) resolved for the caller.
pub fn decide(
    config: &Config,
    principal: &Principal,
    target: &Target,
    at: Option<RequestContext>,
) -> Decision {
    if principal.auth_method == AuthMethod::Unauthenticated {
        let users = if config.server.allow_unauthenticated {
            target.db_users.clone()
        } else {
            Vec::new()
        };
        return Decision {
            users,
            refused: Vec::new(),
        };
    }
    let mut granted: Vec<&DbUser> = Vec::new();
    let mut personal: Vec<DbUser> = Vec::new();
    let mut refused = Vec::new();
    let matching = config.grants.iter().filter(|g| {
        g.access.kind == crate::config::AccessKind::Standing
            && g.targets.contains(&target.name)
            && rule_matches(&g.issuer, &g.subject, &g.claims, principal)
    });
    for g in matching {
        let mut resolved = Vec::new();
        let mut failures = Vec::new();
        for t in g
            .db_user_templates
            .iter()
            .filter(|t| target.db_user_templates.contains(t))
        {
            match personal::resolve(t, principal, target) {
                Ok(u) => resolved.push(u),
                Err(f) => failures.push(Refusal::Template(f)),
            }
        }
        let condition = at.map_or(Ok(()), |c| g.conditions.check(c.client_ip, c.now));
        if let Err(failure) = condition {
            let mut users: Vec<DbUser> = g
                .db_users
                .iter()
                .filter(|u| target.db_users.contains(u))
                .cloned()
                .collect();
            users.extend(resolved);
            refused.push(Refusal::Condition(failure, users));
            continue;
        }
        granted.extend(g.db_users.iter());
        for u in resolved {
            if !personal.contains(&u) {
                personal.push(u);
            }
        }
        refused.extend(failures);
    }
    let mut users: Vec<DbUser> = target
        .db_users
        .iter()
        .filter(|u| granted.contains(u))
        .cloned()
        .collect();
    users.extend(personal);
    Decision { users, refused }
}

/// Whether `principal` may read the audit trail.
pub fn is_auditor(config: &Config, principal: &Principal) -> bool {
    config
        .auditors
        .iter()
        .any(|a| rule_matches(&a.issuer, &a.subject, &a.claims, principal))
}
