//! The operations that change access requests: create, approve, deny, revoke (each
//! transition a conditional UPDATE, then its audit event and notification), and the lookup
//! `POST /v1/tokens` makes for request grants. Reads are in `view`, expiry in `expiry`.

use std::time::{Duration, SystemTime};

use super::model::{AccessRequest, NewRequest, REVOKE_NOTE, Requester, Revoked, State};
use super::notify::{Notification, Notifier};
use super::store;
use crate::audit::{AuditEvent, AuditLog, AuditStore, Outcome, StoreError};
use crate::auth::Principal;
use crate::broker::{RequestMeta, uuid_v7};
use crate::clock::{SharedClock, rfc3339, rfc3339_millis};
use crate::config::{AccessKind, Config};
use crate::domain::DbUser;
use crate::policy::requests::{ConditionFailed, check_conditions, request_grants};

/// Why an operation on access requests failed.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// No such request, or one the caller may not see.
    #[error("no such access request")]
    NotFound,
    /// No request or break-glass grant covers the target and DB user for the caller.
    #[error("not permitted")]
    Forbidden,
    /// Permitted to see, not to do this (a fixed text).
    #[error("{0}")]
    NotPermitted(&'static str),
    /// A grant condition refused.
    #[error(transparent)]
    Condition(#[from] ConditionFailed),
    /// The request is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    /// A field out of bounds (our words).
    #[error("{0}")]
    BadRequest(String),
    /// The store failed, or the trail could not record: nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who acts, and the HTTP request it came with.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The caller.
    pub principal: &'a Principal,
    /// What the trail records of the request.
    pub meta: &'a RequestMeta,
}

impl Actor<'_> {
    pub(super) fn name(&self) -> String {
        format!("{}/{}", self.principal.issuer, self.principal.subject)
    }

    pub(super) fn is(&self, r: &Requester) -> bool {
        self.principal.issuer == r.issuer && self.principal.subject == r.subject
    }
}

/// An approved, unexpired request that lets its requester have tokens.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Its id.
    pub request_id: String,
    /// The DB user it is for.
    pub db_user: DbUser,
    /// When it ends: no token may outlive it.
    pub expires_at: SystemTime,
}

/// Access requests on the audit store's database.
#[derive(Debug, Clone)]
pub struct AccessRequests {
    pub(super) audit: AuditLog,
    pub(super) clock: SharedClock,
    notifier: Option<Notifier>,
}

impl AccessRequests {
    /// On `audit`'s store; transitions are posted through `notifier` when given.
    pub fn new(audit: AuditLog, clock: SharedClock, notifier: Option<Notifier>) -> Self {
        Self {
            audit,
            clock,
            notifier,
        }
    }

    pub(super) fn store(&self) -> &AuditStore {
        self.audit.store()
    }

    /// Makes a request; a break-glass one is approved at once.
    pub async fn create(
        &self,
        config: &Config,
        actor: Actor<'_>,
        new: NewRequest,
    ) -> Result<AccessRequest, AccessError> {
        let now = self.clock.now();
        let target = config
            .targets
            .get(&new.target)
            .ok_or(AccessError::Forbidden)?;
        let grants = request_grants(config, actor.principal, target, &new.db_user);
        let pick = |kind| grants.iter().copied().find(|g| g.access.kind == kind);
        let grant = if new.break_glass {
            pick(AccessKind::BreakGlass)
        } else {
            pick(AccessKind::Request).or_else(|| pick(AccessKind::BreakGlass))
        }
        .ok_or(AccessError::Forbidden)?;
        check_conditions(grant, actor.meta.client_ip, now)?;
        let max = grant.access.max_duration_minutes;
        if new.duration_minutes == 0 || new.duration_minutes > max {
            return Err(AccessError::BadRequest(format!(
                "duration_minutes must be between 1 and {max} for this grant"
            )));
        }
        let break_glass = grant.access.kind == AccessKind::BreakGlass;
        if (grant.access.require_reason || break_glass) && new.reason.trim().is_empty() {
            return Err(AccessError::BadRequest(
                "reason is required: say why you need this access".into(),
            ));
        }
        let requester = (
            actor.principal.issuer.as_str(),
            actor.principal.subject.as_str(),
        );
        let expires_at = now + minutes(new.duration_minutes);
        let request = AccessRequest {
            id: uuid_v7(now).to_string(),
            state: if break_glass {
                State::Approved
            } else {
                State::Pending
            },
            break_glass,
            target: target.name.as_str().to_owned(),
            db_user: new.db_user.as_str().to_owned(),
            requester: Requester {
                issuer: requester.0.to_owned(),
                subject: requester.1.to_owned(),
            },
            reason: new.reason,
            duration_minutes: new.duration_minutes,
            min_approvals: if break_glass {
                0
            } else {
                grant.access.min_approvals
            },
            created_at: now,
            approved_at: break_glass.then_some(now),
            expires_at: break_glass.then_some(expires_at),
            decided_at: None,
            decided_by: None,
            decision_comment: None,
            approvals: Vec::new(),
        };
        // At most one open request per requester, target and DB user: a unique index
        // decides between replicas racing to insert one.
        if !store::insert(self.store(), &request).await? {
            let open = store::open_for(
                self.store(),
                requester,
                &request.target,
                Some(&request.db_user),
            )
            .await?;
            let (due, live): (Vec<_>, Vec<_>) =
                open.into_iter().partition(|o| o.due_to_expire(now));
            if let Some(o) = live.first() {
                return Err(AccessError::Conflict(format!(
                    "you have an open access request for this target and DB user: {} ({})",
                    o.id,
                    o.state.as_str()
                )));
            }
            // One whose time is up, not swept yet, gives way.
            for o in &due {
                self.expire(config, o).await;
            }
            if !store::insert(self.store(), &request).await? {
                return Err(AccessError::Conflict(
                    "you have an open access request for this target and DB user".into(),
                ));
            }
        }
        let (outcome, what) = if break_glass {
            (Outcome::BreakGlass, "break_glass")
        } else {
            (Outcome::AccessRequested, "access_requested")
        };
        let why = format!("{} min: {}", request.duration_minutes, request.reason);
        if let Err(e) = self
            .record(config, Some(actor), outcome, &request, why)
            .await
        {
            store::delete(self.store(), &request.id).await?;
            return Err(e.into());
        }
        self.notify(what, &request, Some(actor), None);
        Ok(request)
    }

    /// Approves as `actor`; the request is approved once it has `min_approvals` distinct
    /// approvals.
    pub async fn approve(
        &self,
        config: &Config,
        actor: Actor<'_>,
        id: &str,
        comment: String,
    ) -> Result<AccessRequest, AccessError> {
        let r = self.reviewable(config, actor, id).await?;
        let now = self.clock.now();
        let who = (
            actor.principal.issuer.as_str(),
            actor.principal.subject.as_str(),
        );
        if !store::add_approval(self.store(), id, who, &comment, now).await? {
            return Err(AccessError::Conflict(
                "you approved this access request already".into(),
            ));
        }
        let n = store::count_approvals(self.store(), id).await?;
        let needed = r.min_approvals.max(1);
        let enough = n >= needed;
        let expires_at = now + minutes(r.duration_minutes);
        if enough && !store::approve(self.store(), id, now, expires_at).await? {
            // Another approver (perhaps on another replica) approved it first.
            return Ok(self.current(id).await?);
        }
        let done = self.current(id).await?;
        let why = if enough {
            format!("approved ({n} of {needed} approvals): {comment}")
        } else {
            format!("approval {n} of {needed}: {comment}")
        };
        let recorded = self
            .record(config, Some(actor), Outcome::AccessApproved, &done, why)
            .await;
        if let (Err(e), true) = (&recorded, enough) {
            // Fail closed: access nobody can see in the trail is withdrawn.
            let withdraw = "the audit trail could not record the approval";
            let states = [State::Approved];
            let _ = store::close(
                self.store(),
                id,
                &states,
                State::Revoked,
                now,
                "broker",
                withdraw,
            )
            .await;
            return Err(e.clone().into());
        }
        recorded?;
        self.notify("access_approved", &done, Some(actor), Some(comment));
        Ok(done)
    }

    /// Denies as `actor`.
    pub async fn deny(
        &self,
        config: &Config,
        actor: Actor<'_>,
        id: &str,
        comment: String,
    ) -> Result<AccessRequest, AccessError> {
        let r = self.reviewable(config, actor, id).await?;
        self.close(config, Some(actor), &r, State::Denied, comment)
            .await
    }

    /// Revokes as `actor` (the requester, an approver or an auditor).
    pub async fn revoke(
        &self,
        config: &Config,
        actor: Actor<'_>,
        id: &str,
        comment: String,
    ) -> Result<Revoked, AccessError> {
        let r = self.get(config, actor, id).await?;
        let request = self
            .close(config, Some(actor), &r, State::Revoked, comment)
            .await?;
        let tokens_issued = store::tokens_of(self.store(), id).await?;
        Ok(Revoked {
            request,
            tokens_issued,
            note: REVOKE_NOTE,
        })
    }

    /// For `POST /v1/tokens`: the caller's approved, unexpired request for `target` (and
    /// `db_user`, when given) that a request or break-glass grant still covers.
    pub async fn active_grant(
        &self,
        config: &Config,
        principal: &Principal,
        target: &crate::config::Target,
        db_user: Option<&DbUser>,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Option<Grant>, StoreError> {
        let now = self.clock.now();
        let requester = (principal.issuer.as_str(), principal.subject.as_str());
        let open = store::open_for(
            self.store(),
            requester,
            target.name.as_str(),
            db_user.map(DbUser::as_str),
        )
        .await?;
        for r in open.into_iter().filter(|r| r.state == State::Approved) {
            if r.due_to_expire(now) {
                self.expire(config, &r).await;
                continue;
            }
            let Ok(user) = DbUser::parse(&r.db_user) else {
                continue;
            };
            let covered = request_grants(config, principal, target, &user);
            let allowed = covered
                .iter()
                .any(|g| check_conditions(g, client_ip, now).is_ok());
            if let (true, Some(expires_at)) = (allowed, r.expires_at) {
                return Ok(Some(Grant {
                    request_id: r.id,
                    db_user: user,
                    expires_at,
                }));
            }
        }
        Ok(None)
    }

    /// Closes `r` (denied, revoked or expired) by `actor` (`None`: the broker, on expiry):
    /// the conditional UPDATE from the states that allow it, then the audit event and the
    /// notification. A request another call changed first is a conflict.
    pub(super) async fn close(
        &self,
        config: &Config,
        actor: Option<Actor<'_>>,
        r: &AccessRequest,
        to: State,
        comment: String,
    ) -> Result<AccessRequest, AccessError> {
        let (from, outcome, event): (&[State], _, _) = match to {
            State::Denied => (&[State::Pending], Outcome::AccessDenied, "access_denied"),
            State::Revoked => (
                &[State::Pending, State::Approved],
                Outcome::AccessRevoked,
                "access_revoked",
            ),
            _ => (
                &[State::Pending, State::Approved],
                Outcome::AccessExpired,
                "access_expired",
            ),
        };
        let by = actor.map_or_else(|| "broker".to_owned(), |a| a.name());
        let now = self.clock.now();
        if !store::close(self.store(), &r.id, from, to, now, &by, &comment).await? {
            return Err(conflict(&self.current(&r.id).await?));
        }
        let done = self.current(&r.id).await?;
        let why = format!("{}: {comment}", to.as_str());
        self.record(config, actor, outcome, &done, why).await?;
        self.notify(event, &done, actor, Some(comment));
        Ok(done)
    }

    /// A request by id, once the requests whose time is up are marked so.
    pub(super) async fn load(
        &self,
        config: &Config,
        id: &str,
    ) -> Result<AccessRequest, AccessError> {
        let r = store::get(self.store(), id)
            .await?
            .ok_or(AccessError::NotFound)?;
        if r.due_to_expire(self.clock.now()) {
            self.expire(config, &r).await;
            return Ok(self.current(id).await?);
        }
        Ok(r)
    }

    pub(super) async fn current(&self, id: &str) -> Result<AccessRequest, StoreError> {
        store::get(self.store(), id)
            .await?
            .ok_or_else(|| StoreError::Database(std::sync::Arc::new(sqlx::Error::RowNotFound)))
    }

    /// Records a transition of `r` by `actor` (`None`: the broker, on expiry; the event
    /// then names the requester).
    pub(super) async fn record(
        &self,
        config: &Config,
        actor: Option<Actor<'_>>,
        outcome: Outcome,
        r: &AccessRequest,
        why: String,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut event = AuditEvent {
            reason: Some(crate::domain::text::cleaned(
                &why,
                crate::domain::text::LONG,
            )),
            target: Some(r.target.clone()),
            db_user: Some(r.db_user.clone()),
            expires_at: r.expires_at.map(rfc3339),
            access_request_id: Some(r.id.clone()),
            issuer: Some(r.requester.issuer.clone()),
            subject: Some(r.requester.subject.clone()),
            kind: crate::domain::TargetName::parse(&r.target)
                .ok()
                .and_then(|n| config.targets.get(&n))
                .map(|t| t.kind.kind().as_str().to_owned()),
            ..AuditEvent::new(uuid_v7(now).to_string(), rfc3339_millis(now), outcome)
        };
        if let Some(a) = actor {
            event.request_id = a.meta.request_id.clone();
            event.client_ip = a.meta.client_ip.map(|ip| ip.to_string());
            event.user_agent = a.meta.user_agent.clone();
            event.issuer = Some(a.principal.issuer.clone());
            event.subject = Some(a.principal.subject.clone());
            event.auth_method = Some(a.principal.auth_method.as_str().to_owned());
        }
        self.audit.record(event).await
    }

    pub(super) fn notify(
        &self,
        event: &'static str,
        r: &AccessRequest,
        actor: Option<Actor<'_>>,
        comment: Option<String>,
    ) {
        if let Some(n) = &self.notifier {
            let by = actor.map_or_else(|| "broker".to_owned(), |a| a.name());
            n.send(Notification::new(event, r, by, comment));
        }
    }
}

pub(super) fn minutes(m: u32) -> Duration {
    Duration::from_secs(u64::from(m) * 60)
}

pub(super) fn conflict(r: &AccessRequest) -> AccessError {
    AccessError::Conflict(format!("the access request is {}", r.state.as_str()))
}
