//! Validation of what access requests add to the file: a grant's `access` kind with its
//! `approvers`, `min_approvals`, `max_duration_minutes` and `require_reason`
//! (`docs/human-access.md`), and `[notifications]`.

use secrecy::{ExposeSecret, SecretString};

use super::AuditorConfig;
use super::raw::{RawAuditor, RawGrant, RawNotifications};
use super::validate::Errors;

/// Most approvals a request grant may ask for.
pub const MAX_MIN_APPROVALS: u32 = 10;
/// Longest access a request may ask for, in minutes (one day).
pub const MAX_DURATION_MINUTES: u32 = 1440;

/// How a grant gives access (`access` on `[[grants]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    /// Tokens whenever the grant matches (the default).
    Standing,
    /// Tokens only during an approved access request.
    Request,
    /// The caller approves their own request, with a reason; everyone is told.
    BreakGlass,
}

impl AccessKind {
    /// The name in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standing => "standing",
            Self::Request => "request",
            Self::BreakGlass => "break_glass",
        }
    }
}

/// What a grant says about access requests.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantAccess {
    /// The kind.
    pub kind: AccessKind,
    /// Who may approve, deny or revoke (same syntax as grants); empty for standing grants.
    pub approvers: Vec<AuditorConfig>,
    /// Distinct approvals a request needs (default 1).
    pub min_approvals: u32,
    /// Longest access one request may ask for (default 60 minutes).
    pub max_duration_minutes: u32,
    /// A request must say why (default true; always for break-glass).
    pub require_reason: bool,
}

impl Default for GrantAccess {
    fn default() -> Self {
        Self {
            kind: AccessKind::Standing,
            approvers: Vec::new(),
            min_approvals: 1,
            max_duration_minutes: 60,
            require_reason: true,
        }
    }
}

/// `[notifications]`: where transitions of access requests are posted.
#[derive(Debug, Clone)]
pub struct NotificationsConfig {
    /// The URL each notification is POSTed to (`https://`, or `http://` to loopback).
    pub webhook_url: String,
    /// Key of the `X-Rds-Token-Broker-Signature` HMAC-SHA256 header, when set.
    pub webhook_secret: Option<SecretString>,
}

impl PartialEq for NotificationsConfig {
    fn eq(&self, other: &Self) -> bool {
        self.webhook_url == other.webhook_url
            && self
                .webhook_secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned())
                == other
                    .webhook_secret
                    .as_ref()
                    .map(|s| s.expose_secret().to_owned())
    }
}

/// A grant's access settings, checked. `known_issuer` says whether an approver's issuer
/// is declared.
pub(super) fn grant_access(
    i: usize,
    g: &mut RawGrant,
    known_issuer: &dyn Fn(&str) -> bool,
    e: &mut Errors<'_>,
) -> GrantAccess {
    let key = |k: &str| format!("grants[{i}].{k}");
    let kind = match g.access.as_deref() {
        None | Some("standing") => AccessKind::Standing,
        Some("request") => AccessKind::Request,
        Some("break_glass") => AccessKind::BreakGlass,
        Some(_) => {
            e.push(
                key("access"),
                "must be \"standing\", \"request\" or \"break_glass\"",
            );
            AccessKind::Standing
        }
    };
    let mut access = GrantAccess {
        kind,
        ..GrantAccess::default()
    };
    if kind == AccessKind::Standing {
        for (set, name) in [
            (!g.approvers.is_empty(), "approvers"),
            (g.min_approvals.is_some(), "min_approvals"),
            (g.max_duration_minutes.is_some(), "max_duration_minutes"),
            (g.require_reason.is_some(), "require_reason"),
        ] {
            if set {
                e.push(
                    key(name),
                    "only for access = \"request\" or \"break_glass\" (this grant is standing)",
                );
            }
        }
        return access;
    }
    if let Some(m) = g.min_approvals {
        match u32::try_from(m) {
            Ok(m) if kind == AccessKind::Request && (1..=MAX_MIN_APPROVALS).contains(&m) => {
                access.min_approvals = m;
            }
            _ if kind == AccessKind::BreakGlass => e.push(
                key("min_approvals"),
                "a break-glass request approves itself: leave min_approvals out",
            ),
            _ => e.push(
                key("min_approvals"),
                format!("must be between 1 and {MAX_MIN_APPROVALS}"),
            ),
        }
    }
    if let Some(d) = g.max_duration_minutes {
        match u32::try_from(d) {
            Ok(d) if (1..=MAX_DURATION_MINUTES).contains(&d) => access.max_duration_minutes = d,
            _ => e.push(
                key("max_duration_minutes"),
                format!("must be between 1 and {MAX_DURATION_MINUTES}"),
            ),
        }
    }
    match (kind, g.require_reason) {
        (AccessKind::BreakGlass, Some(false)) => e.push(
            key("require_reason"),
            "a break-glass request always needs a reason",
        ),
        (_, Some(r)) => access.require_reason = r,
        (_, None) => {}
    }
    if kind == AccessKind::Request && g.approvers.is_empty() {
        e.push(
            key("approvers"),
            "a request grant needs at least one approver ({issuer, subject, claims})",
        );
    }
    for (j, a) in std::mem::take(&mut g.approvers).into_iter().enumerate() {
        access.approvers.push(approver(
            &format!("grants[{i}].approvers[{j}]"),
            a,
            known_issuer,
            e,
        ));
    }
    access
}

fn approver(
    prefix: &str,
    a: RawAuditor,
    known_issuer: &dyn Fn(&str) -> bool,
    e: &mut Errors<'_>,
) -> AuditorConfig {
    if !known_issuer(&a.issuer) {
        e.push(
            format!("{prefix}.issuer"),
            format!(
                "unknown issuer {:?}: not in [[issuers]] and not \"aws-iam\"",
                a.issuer
            ),
        );
    }
    if a.subject.is_empty() {
        e.push(
            format!("{prefix}.subject"),
            "must not be empty (use \"*\" for any subject)",
        );
    }
    for (k, v) in &a.claims {
        if !matches!(
            v,
            toml::Value::String(_) | toml::Value::Integer(_) | toml::Value::Boolean(_)
        ) {
            e.push(
                format!("{prefix}.claims.{k}"),
                "must be a string, an integer or a boolean",
            );
        }
    }
    AuditorConfig {
        issuer: a.issuer,
        subject: a.subject,
        claims: a.claims,
    }
}

/// `[notifications]`, checked.
pub(super) fn notifications(
    raw: Option<RawNotifications>,
    e: &mut Errors<'_>,
) -> Option<NotificationsConfig> {
    let raw = raw?;
    let Some(url) = raw.webhook_url else {
        e.push(
            "notifications.webhook_url",
            "required in [notifications] (an https:// URL)",
        );
        return None;
    };
    if let Err(why) = super::fetch_allowed(&url, false) {
        e.push("notifications.webhook_url", why);
    }
    if raw
        .webhook_secret
        .as_ref()
        .is_some_and(|s| s.expose_secret().is_empty())
    {
        e.push(
            "notifications.webhook_secret",
            "must not be empty (leave it out to send unsigned notifications)",
        );
    }
    Some(NotificationsConfig {
        webhook_url: url,
        webhook_secret: raw.webhook_secret,
    })
}

/// Grants that are not standing need the audit store (requests live in its database).
pub(super) fn need_audit_store(kinds: &[AccessKind], has_audit: bool, e: &mut Errors<'_>) {
    if has_audit {
        return;
    }
    for (i, k) in kinds.iter().enumerate() {
        if *k != AccessKind::Standing {
            e.push(
                format!("grants[{i}].access"),
                "access requests are kept in the audit store's database: needs [audit] enabled",
            );
        }
    }
}
