//! Reading access requests, and who may see and review them.

use super::model::{AccessRequest, ListQuery, State};
use super::service::{AccessError, AccessRequests, Actor, conflict};
use super::store;
use crate::config::{Config, GrantConfig};
use crate::policy::requests::{check_conditions, grants_of_request, is_approver};

/// Requests scanned at most for one page of a caller who is not an auditor.
const SCAN_MAX: u32 = 1000;

impl AccessRequests {
    /// One request the caller may see.
    pub async fn get(
        &self,
        config: &Config,
        actor: Actor<'_>,
        id: &str,
    ) -> Result<AccessRequest, AccessError> {
        let r = self.load(config, id).await?;
        if !self.may_see(config, actor, &r) {
            return Err(AccessError::NotFound);
        }
        Ok(r)
    }

    /// A page of the requests the caller may see, newest first, and the cursor of the next.
    pub async fn list(
        &self,
        config: &Config,
        actor: Actor<'_>,
        q: &ListQuery,
    ) -> Result<(Vec<AccessRequest>, Option<String>), AccessError> {
        self.expire_due(config).await?;
        let auditor = crate::policy::is_auditor(config, actor.principal);
        let mine = q.mine.then_some((
            actor.principal.issuer.as_str(),
            actor.principal.subject.as_str(),
        ));
        let state = if q.to_review {
            Some(State::Pending)
        } else {
            q.state
        };
        let mut out = Vec::new();
        let mut before = q.before.clone();
        let mut scanned = 0;
        let page = q.limit.max(1);
        let mut exhausted = false;
        while out.len() < page as usize && scanned < SCAN_MAX {
            let rows = store::list(self.store(), state, mine, before.as_deref(), page).await?;
            scanned += page;
            exhausted = rows.len() < page as usize;
            for r in rows {
                before = Some(r.id.clone());
                let keep = if q.to_review {
                    self.may_review(config, actor, &r)
                } else {
                    auditor || self.may_see(config, actor, &r)
                };
                if keep {
                    out.push(r);
                    if out.len() == page as usize {
                        break;
                    }
                }
            }
            if exhausted {
                break;
            }
        }
        let next = if exhausted && out.len() < page as usize {
            None
        } else {
            before
        };
        Ok((out, next))
    }

    /// A pending request `actor` may review: exists, visible, not theirs, they approve it.
    pub(super) async fn reviewable(
        &self,
        config: &Config,
        actor: Actor<'_>,
        id: &str,
    ) -> Result<AccessRequest, AccessError> {
        // Not `get`: a caller who is not an approver hears 403, not 404.
        let r = self.load(config, id).await?;
        if actor.is(&r.requester) {
            return Err(AccessError::NotPermitted(
                "you cannot approve or deny your own access request",
            ));
        }
        let grants = self.grants_of(config, &r);
        if !is_approver(&grants, actor.principal) {
            return Err(AccessError::NotPermitted(
                "you are not an approver of this access request",
            ));
        }
        let now = self.clock.now();
        let mut failed = None;
        for g in grants.iter().filter(|g| is_approver(&[g], actor.principal)) {
            match check_conditions(g, actor.meta.client_ip, now) {
                Ok(()) => {
                    failed = None;
                    break;
                }
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
        if r.state != State::Pending {
            return Err(conflict(&r));
        }
        Ok(r)
    }

    fn grants_of<'a>(&self, config: &'a Config, r: &AccessRequest) -> Vec<&'a GrantConfig> {
        grants_of_request(
            config,
            &r.requester.issuer,
            &r.requester.subject,
            &r.target,
            &r.db_user,
        )
    }

    fn may_see(&self, config: &Config, actor: Actor<'_>, r: &AccessRequest) -> bool {
        actor.is(&r.requester)
            || crate::policy::is_auditor(config, actor.principal)
            || is_approver(&self.grants_of(config, r), actor.principal)
    }

    fn may_review(&self, config: &Config, actor: Actor<'_>, r: &AccessRequest) -> bool {
        r.state == State::Pending
            && !actor.is(&r.requester)
            && !r
                .approvals
                .iter()
                .any(|a| a.issuer == actor.principal.issuer && a.subject == actor.principal.subject)
            && is_approver(&self.grants_of(config, r), actor.principal)
    }
}
