//! Validation of `[[issuers]]`, `[[grants]]` and `[[auditors]]`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::raw::{RawAuditor, RawGrant, RawIssuer};
use super::validate::Errors;
use super::{AuditorConfig, GrantConfig, IssuerConfig, Target};
use crate::domain::{DbUser, DbUserTemplate, TargetName};

/// The issuer name of AWS IAM callers in grants.
pub const AWS_IAM_ISSUER: &str = "aws-iam";

/// The issuer name of the anonymous caller of a `server.allow_unauthenticated` broker,
/// whose subject is `anonymous`; `[[auditors]]` may name it.
pub const ANONYMOUS_ISSUER: &str = "none";

const ASYMMETRIC_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

pub(super) fn issuers(raw: Vec<RawIssuer>, e: &mut Errors<'_>) -> Vec<IssuerConfig> {
    let issuers: Vec<IssuerConfig> = raw
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| issuer(i, r, e))
        .collect();
    let mut seen = BTreeSet::new();
    for (i, iss) in issuers.iter().enumerate() {
        if iss.name == AWS_IAM_ISSUER {
            e.push(
                format!("issuers[{i}].name"),
                "\"aws-iam\" is reserved for AWS IAM callers",
            );
        }
        if iss.name == ANONYMOUS_ISSUER {
            e.push(
                format!("issuers[{i}].name"),
                "\"none\" is reserved for the anonymous caller",
            );
        }
        if !seen.insert(iss.name.clone()) {
            e.push(
                format!("issuers[{i}].name"),
                format!("duplicate issuer name {:?}", iss.name),
            );
        }
    }

    issuers
}

/// What the file declares, whether or not each entry is valid: a grant that names a target
/// or issuer with an error of its own is not told that it is unknown too (one mistake, one
/// message).
#[derive(Debug, Default)]
pub(super) struct Declared {
    /// `[[issuers]]` names.
    pub(super) issuers: BTreeSet<String>,
    /// `[[targets]]` names, each with its `db_users` as written.
    pub(super) targets: BTreeMap<String, BTreeSet<String>>,
}

impl Declared {
    pub(super) fn new(issuers: &[RawIssuer], targets: &[super::raw::RawTarget]) -> Self {
        Self {
            issuers: issuers.iter().map(|i| i.name.clone()).collect(),
            targets: targets
                .iter()
                .map(|t| (t.name.clone(), t.db_users.iter().cloned().collect()))
                .collect(),
        }
    }
}

/// Grants and auditors, checked against the issuers and targets already validated (and,
/// for names, against what the file declares: see [`Declared`]). An auditor may name the
/// anonymous caller only when `allow_unauthenticated` is set.
pub(super) fn grants_and_auditors(
    raw_grants: Vec<RawGrant>,
    raw_auditors: Vec<RawAuditor>,
    declared: &Declared,
    targets: &BTreeMap<TargetName, Arc<Target>>,
    has_iam_server_id: bool,
    allow_unauthenticated: bool,
    e: &mut Errors<'_>,
) -> (Vec<GrantConfig>, Vec<AuditorConfig>) {
    let known_issuer = |name: &str| name == AWS_IAM_ISSUER || declared.issuers.contains(name);
    let mut grants = Vec::new();
    for (i, mut g) in raw_grants.into_iter().enumerate() {
        let key = |k: &str| format!("grants[{i}].{k}");
        if g.issuer == ANONYMOUS_ISSUER {
            e.push(
                key("issuer"),
                "the anonymous caller needs no grant: with server.allow_unauthenticated it \
                 may use every target and DB user",
            );
        } else if !known_issuer(&g.issuer) {
            e.push(
                key("issuer"),
                format!(
                    "unknown issuer {:?}: not in [[issuers]] and not \"aws-iam\"",
                    g.issuer
                ),
            );
        }
        if g.issuer == AWS_IAM_ISSUER && !has_iam_server_id {
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
        // Declared targets granted, valid or not: their DB users as written.
        let mut declared_users = Vec::new();
        for (j, name) in g.targets.iter().enumerate() {
            let Some(name) = e.check(format!("grants[{i}].targets[{j}]"), TargetName::parse(name))
            else {
                continue;
            };
            let Some(users) = declared.targets.get(name.as_str()) else {
                e.push(
                    format!("grants[{i}].targets[{j}]"),
                    format!("unknown target {:?}", name.as_str()),
                );
                continue;
            };
            declared_users.push(users);
            if targets.contains_key(&name) {
                granted_targets.push(name);
            }
        }
        let mut db_users = Vec::new();
        let mut db_user_templates = Vec::new();
        for (j, u) in g.db_users.iter().enumerate() {
            let k = format!("grants[{i}].db_users[{j}]");
            if DbUserTemplate::looks_like_template(u) {
                let offered = declared_users
                    .iter()
                    .any(|users| users.contains(u.as_str()));
                if let Some(t) = super::personal::grant_template(k.clone(), u, &g.issuer, e) {
                    if !declared_users.is_empty() && !offered {
                        e.push(
                            k,
                            format!(
                                "per-person DB user {:?} is not in db_users of any granted \
                                 target: the target must list the same template",
                                t.as_str()
                            ),
                        );
                    }
                    db_user_templates.push(t);
                }
                continue;
            }
            let Some(u) = e.check(k.clone(), DbUser::parse(u)) else {
                continue;
            };
            let offered = declared_users
                .iter()
                .any(|users| users.contains(u.as_str()));
            if !declared_users.is_empty() && !offered {
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
        check_claims(&format!("grants[{i}].claims"), &g.claims, e);
        let access = super::requests::grant_access(i, &mut g, &known_issuer, e);
        if access.kind != super::AccessKind::Standing && !db_user_templates.is_empty() {
            e.push(
                key("db_users"),
                "per-person DB user templates are for standing grants; a request or \
                 break-glass grant names its DB users",
            );
        }
        let conditions = super::personal::conditions(i, g.conditions, e);
        grants.push(GrantConfig {
            issuer: g.issuer,
            subject: g.subject,
            claims: g.claims,
            targets: granted_targets,
            db_users,
            db_user_templates,
            conditions,
            access,
        });
    }

    let mut auditors = Vec::new();
    for (i, a) in raw_auditors.into_iter().enumerate() {
        if a.issuer == ANONYMOUS_ISSUER {
            anonymous_auditor(i, &a, allow_unauthenticated, e);
        } else if !known_issuer(&a.issuer) {
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
        check_claims(&format!("auditors[{i}].claims"), &a.claims, e);
        auditors.push(AuditorConfig {
            issuer: a.issuer,
            subject: a.subject,
            claims: a.claims,
        });
    }

    (grants, auditors)
}

/// An `[[auditors]]` entry for the anonymous caller: only on a broker that has one, and
/// only if it can match it (subject `anonymous`, no claims).
fn anonymous_auditor(i: usize, a: &RawAuditor, allow_unauthenticated: bool, e: &mut Errors<'_>) {
    if !allow_unauthenticated {
        e.push(
            format!("auditors[{i}].issuer"),
            "\"none\" names the anonymous caller, which exists only with \
             server.allow_unauthenticated = true",
        );
    }
    if !a.subject.is_empty()
        && !crate::policy::glob::matches(&a.subject, &crate::auth::Principal::anonymous().subject)
    {
        e.push(
            format!("auditors[{i}].subject"),
            "matches no caller: the anonymous caller's subject is \"anonymous\"",
        );
    }
    if !a.claims.is_empty() {
        e.push(
            format!("auditors[{i}].claims"),
            "the anonymous caller has no claims: leave claims out",
        );
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
    let insecure_http = raw.insecure_http.unwrap_or(false);
    if let Some(u) = &raw.jwks_uri {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            e.push(key("jwks_uri"), "must be an http:// or https:// URL");
        } else if let Err(why) = fetch_allowed(u, insecure_http) {
            e.push(key("jwks_uri"), why);
        }
    }
    // Neither jwks_uri nor jwks_file: the keys come from discovery at `issuer`.
    if raw.jwks_uri.is_none()
        && raw.jwks_file.is_none()
        && raw.issuer.starts_with("http://")
        && let Err(why) = fetch_allowed(&raw.issuer, insecure_http)
    {
        e.push(
            key("issuer"),
            format!("{why} (its keys come from OIDC discovery)"),
        );
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
    let jwks_refresh = raw.jwks_refresh_seconds.unwrap_or(300);
    if !(10..=86_400).contains(&jwks_refresh) {
        e.push(key("jwks_refresh_seconds"), "must be between 10 and 86400");
    }
    let jwks_min_refetch = raw.jwks_min_refetch_seconds.unwrap_or(30);
    if !(1..=3600).contains(&jwks_min_refetch) {
        e.push(
            key("jwks_min_refetch_seconds"),
            "must be between 1 and 3600",
        );
    }
    Some(IssuerConfig {
        name: raw.name,
        issuer: raw.issuer,
        jwks_uri: raw.jwks_uri,
        jwks_file: raw.jwks_file.map(PathBuf::from),
        audiences: raw.audiences,
        algorithms,
        leeway: Duration::from_secs(leeway),
        jwks_refresh: Duration::from_secs(jwks_refresh),
        jwks_min_refetch: Duration::from_secs(jwks_min_refetch),
        insecure_http,
    })
}

/// Whether the broker may fetch keys, discovery documents or tokens from `url`: `https://`,
/// or `http://` to a loopback host (`localhost`, 127.0.0.0/8, `[::1]`), or `http://`
/// anywhere when the issuer sets `insecure_http = true`. Over plain HTTP anyone on the
/// network path could swap an issuer's keys. The error is the fixed reason.
pub fn fetch_allowed(url: &str, insecure_http: bool) -> Result<(), &'static str> {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Err("must be an http:// or https:// URL");
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if insecure_http || is_loopback(&parsed) => Ok(()),
        "http" => Err(
            "plain http:// to a host that is not loopback lets anyone on the network path \
             swap the keys: use https://, or set insecure_http = true on the issuer",
        ),
        _ => Err("must be an http:// or https:// URL"),
    }
}

/// Whether `url`'s host is `localhost` or a loopback address.
fn is_loopback(url: &reqwest::Url) -> bool {
    url.host_str().is_some_and(is_loopback_host)
}

/// Whether a host (as in a URL, IPv6 in brackets; no port) is `localhost` or a loopback
/// address.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Claim values are matched exactly (or by membership for array claims): only strings,
/// integers and booleans have an unambiguous meaning.
fn check_claims(prefix: &str, claims: &BTreeMap<String, toml::Value>, e: &mut Errors<'_>) {
    for (k, v) in claims {
        if !matches!(
            v,
            toml::Value::String(_) | toml::Value::Integer(_) | toml::Value::Boolean(_)
        ) {
            e.push(
                format!("{prefix}.{k}"),
                "must be a string, an integer or a boolean",
            );
        }
    }
}
