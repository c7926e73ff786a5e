//! Recording every `/v1/tokens` decision in the audit trail before answering.

use crate::audit::coalesce::FoldKey;
use crate::audit::{AuditEvent, AuditLog, Outcome, StoreError};
use crate::auth::Principal;
use crate::clock::{rfc3339, rfc3339_millis};
use crate::config::Config;
use crate::domain::text;
use uuid::Uuid;

use super::{Broker, Claimed, Denial, IssueError, IssueErrorKind, Issued, TokenRequest, uuid_v7};
use crate::report::Report;

/// What the audit trail records about the HTTP request.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// The client's address (the peer, or the address `trusted_proxies` forwarded for),
    /// parsed once at the edge.
    pub client_ip: Option<std::net::IpAddr>,
    /// `User-Agent`, truncated.
    pub user_agent: Option<String>,
}

impl Broker {
    /// [`Broker::issue`], with the decision committed to the audit trail first when one is
    /// configured. If it cannot be recorded, nothing is issued: `IssueError::Audit`.
    pub async fn issue_recorded(
        &self,
        config: &Config,
        meta: &RequestMeta,
        principal: &Principal,
        req: TokenRequest,
    ) -> Result<Issued, IssueError> {
        let client_ip = meta.client_ip;
        let Some(audit) = &self.audit else {
            return self.issue(config, principal, req, client_ip).await;
        };
        let asked = (
            Some(text::cleaned(req.target.as_str(), text::SHORT)),
            req.db_user
                .as_ref()
                .map(|u| text::cleaned(u.as_str(), text::SHORT)),
        );
        let result = self.issue(config, principal, req, client_ip).await;
        let id = match &result {
            Ok(i) => i.issuance_id,
            Err(_) => uuid_v7(self.clock.now()),
        };
        let mut event = self.event(id, meta, principal);
        match &result {
            Ok(i) => {
                event.outcome = Outcome::Issued;
                event.target = Some(i.target.name.as_str().to_owned());
                event.host = Some(i.target.host.as_str().to_owned());
                event.port = Some(i64::from(i.target.port));
                event.region = Some(i.target.region.as_str().to_owned());
                event.db_user = Some(i.db_user.as_str().to_owned());
                event.role_arn = i.role_arn.clone();
                event.session_name = i.session_name.clone();
                event.cache = Some(i.cache.as_str().to_owned());
                event.token_sha256 = Some(i.token_sha256.clone());
                event.expires_at = Some(rfc3339(i.expires_at));
                event.kind = Some(i.target.kind.kind().as_str().to_owned());
                event.access_request_id = i.access_request_id.clone();
            }
            Err(e) => {
                event.outcome = match e.kind() {
                    IssueErrorKind::Forbidden
                    | IssueErrorKind::DbUserRequired
                    | IssueErrorKind::Refused
                    | IssueErrorKind::AccessRequestRequired => Outcome::Forbidden,
                    IssueErrorKind::Throttled(_) => Outcome::Throttled,
                    _ => Outcome::Failed,
                };
                event.reason = Some(Report(e).to_string());
                (event.target, event.db_user) = asked;
                // Only a configured target's kind: the name asked for is the caller's.
                event.kind = event
                    .target
                    .as_deref()
                    .and_then(|t| crate::domain::TargetName::parse(t).ok())
                    .and_then(|n| config.targets.get(&n))
                    .map(|t| t.kind.kind().as_str().to_owned());
            }
        }
        if event.outcome == Outcome::Issued {
            audit.record(event).await?;
        } else {
            let target = match &event.target {
                Some(t)
                    if crate::domain::TargetName::parse(t)
                        .is_ok_and(|n| config.targets.contains_key(&n)) =>
                {
                    t.clone()
                }
                Some(_) => "unknown".to_owned(),
                None => String::new(),
            };
            let who = event
                .subject
                .clone()
                .or_else(|| event.client_ip.clone())
                .unwrap_or_default();
            let reason = event.reason.clone().unwrap_or_default();
            let key = (event.outcome.as_str(), who, target, reason);
            self.record_or_fold(audit, key, event).await?;
        }
        result
    }

    /// Records a failed authentication on `/v1/tokens`: what can be known (the client, the
    /// reason, and the identity the token claims), coalesced by client address and `kind`
    /// of failure. The claimed issuer and subject are not trusted, so they are not put in
    /// the `issuer` and `subject` fields (where they could pass for a configured issuer's
    /// caller): the reason quotes them, cleaned and shortened, and `auth_method` is
    /// `unverified`. Best effort: the caller gets its 401 either way.
    pub async fn record_denied(&self, meta: &RequestMeta, denial: Denial) {
        let Denial {
            kind,
            reason,
            unverified,
        } = denial;
        let Some(audit) = &self.audit else { return };
        let id = uuid_v7(self.clock.now());
        let mut event = self.event(id, meta, &Principal::anonymous());
        event.outcome = Outcome::Denied;
        event.reason = Some(match unverified {
            Some(Claimed::Token { issuer, subject }) => format!(
                "{reason} (the token claims iss {:?}, sub {:?}; unverified)",
                text::clean(&issuer, text::SHORT),
                text::clean(&subject, text::SHORT),
            ),
            Some(Claimed::AwsAccessKeyId(key)) => format!(
                "{reason} (the signature claims AWS access key id {:?}; unverified)",
                text::clean(&key, text::SHORT),
            ),
            None => reason,
        });
        event.auth_method = Some("unverified".to_owned());
        (event.issuer, event.subject) = (None, None);
        let key = (
            Outcome::Denied.as_str(),
            meta.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            String::new(),
            kind.to_owned(),
        );
        if let Err(e) = self.record_or_fold(audit, key, event).await {
            tracing::warn!(error = %Report(&e), "recording a denied request failed");
        }
    }

    /// Records a malformed or oversized `/v1/tokens` request (outcome `rejected`),
    /// coalesced like refusals: by the verified caller when authentication came first,
    /// else (a body refused before authentication, such as one over the size limit) by
    /// client address, with `auth_method = "unverified"`; always by the fixed `kind`,
    /// never by the reason. `reason` is the problem's detail, cleaned and shortened here.
    /// Best effort, like [`Broker::record_denied`]: nothing is issued either way.
    pub async fn record_rejected(
        &self,
        meta: &RequestMeta,
        principal: Option<&Principal>,
        kind: &'static str,
        reason: &str,
    ) {
        let Some(audit) = &self.audit else { return };
        let id = uuid_v7(self.clock.now());
        let mut event = self.event(id, meta, principal.unwrap_or(&Principal::anonymous()));
        event.outcome = Outcome::Rejected;
        event.reason = Some(text::cleaned(reason, text::LONG));
        let who = match principal {
            Some(p) => p.subject.clone(),
            None => {
                event.auth_method = Some("unverified".to_owned());
                (event.issuer, event.subject) = (None, None);
                meta.client_ip.map(|ip| ip.to_string()).unwrap_or_default()
            }
        };
        let key = (
            Outcome::Rejected.as_str(),
            who,
            String::new(),
            kind.to_owned(),
        );
        if let Err(e) = self.record_or_fold(audit, key, event).await {
            tracing::warn!(error = %Report(&e), "recording a rejected request failed");
        }
    }

    /// Records `event`, unless the coalescer folds it into an earlier event with the same
    /// `key` (its count is then written when that event's window closes).
    pub(super) async fn record_or_fold(
        &self,
        audit: &AuditLog,
        key: FoldKey,
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        if self
            .coalescer
            .as_ref()
            .is_some_and(|c| !c.admit(key, &event))
        {
            return Ok(());
        }
        audit.record(event).await
    }

    /// An event `id` for this request, at the clock's now; the outcome is filled in by
    /// the caller.
    pub(super) fn event(&self, id: Uuid, meta: &RequestMeta, principal: &Principal) -> AuditEvent {
        AuditEvent {
            request_id: meta.request_id.clone(),
            issuer: Some(principal.issuer.clone()),
            subject: Some(principal.subject.clone()),
            auth_method: Some(principal.auth_method.as_str().to_owned()),
            client_ip: meta.client_ip.map(|ip| ip.to_string()),
            user_agent: meta.user_agent.clone(),
            ..AuditEvent::new(
                id.to_string(),
                rfc3339_millis(self.clock.now()),
                Outcome::Failed,
            )
        }
    }
}
