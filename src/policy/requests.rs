//! Who may request, approve, deny and revoke access requests (`docs/human-access.md`).
//! Pure functions over the configuration.

use std::net::IpAddr;
use std::time::SystemTime;

use crate::auth::Principal;
use crate::config::{AccessKind, Config, GrantConfig, Target};
use crate::domain::DbUser;

use super::rule_matches;

/// The request and break-glass grants of `principal` that cover `target` and `db_user`
/// (in file order).
pub fn request_grants<'a>(
    config: &'a Config,
    principal: &Principal,
    target: &Target,
    db_user: &DbUser,
) -> Vec<&'a GrantConfig> {
    if !target.db_users.contains(db_user) {
        return Vec::new();
    }
    config
        .grants
        .iter()
        .filter(|g| {
            g.access.kind != AccessKind::Standing
                && g.targets.contains(&target.name)
                && g.db_users.contains(db_user)
                && rule_matches(&g.issuer, &g.subject, &g.claims, principal)
        })
        .collect()
}

/// The DB users of `target` that `principal` could have through an access request.
pub fn requestable_db_users<'a>(
    config: &'a Config,
    principal: &Principal,
    target: &'a Target,
) -> Vec<&'a DbUser> {
    target
        .db_users
        .iter()
        .filter(|u| !request_grants(config, principal, target, u).is_empty())
        .collect()
}

/// The request and break-glass grants that cover a stored request: its target and DB user,
/// and a requester known by issuer and subject only (the requester's claims are not kept,
/// so a grant's `claims` are not checked again here; they were when the request was made).
pub fn grants_of_request<'a>(
    config: &'a Config,
    requester_issuer: &str,
    requester_subject: &str,
    target: &str,
    db_user: &str,
) -> Vec<&'a GrantConfig> {
    config
        .grants
        .iter()
        .filter(|g| {
            g.access.kind != AccessKind::Standing
                && g.issuer == requester_issuer
                && super::glob::matches(&g.subject, requester_subject)
                && g.targets.iter().any(|t| t.as_str() == target)
                && g.db_users.iter().any(|u| u.as_str() == db_user)
        })
        .collect()
}

/// Whether `principal` is an approver of any of `grants`.
pub fn is_approver(grants: &[&GrantConfig], principal: &Principal) -> bool {
    grants.iter().any(|g| {
        g.access
            .approvers
            .iter()
            .any(|a| rule_matches(&a.issuer, &a.subject, &a.claims, principal))
    })
}

/// Why a grant's conditions refuse a request or an approval now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the grant's condition {condition} is not met")]
pub struct ConditionFailed {
    /// Which condition (`source_cidrs`, `hours`).
    pub condition: &'static str,
}

/// The single place access requests and approvals ask a grant's `[grants.conditions]`
/// (source addresses, hours) whether a caller at `client_ip` (`None`: unknown, which fails
/// `source_cidrs`) may act under `grant` at `now`.
pub fn check_conditions(
    grant: &GrantConfig,
    client_ip: Option<IpAddr>,
    now: SystemTime,
) -> Result<(), ConditionFailed> {
    grant
        .conditions
        .check(client_ip, now)
        .map_err(|f| ConditionFailed {
            condition: f.as_str(),
        })
}
