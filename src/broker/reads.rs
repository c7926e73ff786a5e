//! Recording reads of the audit trail (`audit_read`) and console sign-ins (`signed_in`):
//! who looked at the trail is part of the trail (Vault audits reads too).

use crate::audit::{Outcome, StoreError};
use crate::auth::Principal;
use crate::domain::text;

use super::{Broker, RequestMeta, uuid_v7};

/// Longest filter text an `audit_read` event keeps.
const MAX_FILTERS: usize = 2 * text::LONG;

/// One read of the trail, as its `audit_read` event describes it.
#[derive(Debug, Clone)]
pub struct TrailRead {
    /// What was read: `GET /v1/audit/events`, `POST /v1/audit/lookup`, ...
    pub what: &'static str,
    /// The filters (query parameters) as `(name, value)`, or the looked-up token's
    /// SHA-256 as `("token_sha256", hex)`; values are caller text, cleaned here.
    pub filters: Vec<(String, String)>,
    /// How many events it returned.
    pub events: ReadCount,
}

/// How many events a read returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadCount {
    /// Events returned (checked, for verify; counted, for stats).
    Returned(u64),
    /// An export, recorded before it streams: the count is not known yet.
    ExportStarted,
    /// An export that streamed to its end, with the events it sent (recorded after them,
    /// best effort: an export broken off has no such event).
    ExportFinished(u64),
}

impl TrailRead {
    /// `name=value&...`, sorted by name, each value cleaned and the whole bounded.
    fn filter_text(&self) -> String {
        let mut filters = self.filters.clone();
        filters.sort();
        let joined = filters
            .iter()
            .map(|(k, v)| format!("{k}={}", text::clean(v, text::SHORT)))
            .collect::<Vec<_>>()
            .join("&");
        text::cleaned(&joined, MAX_FILTERS)
    }
}

impl Broker {
    /// Records an auditor's read of the trail (outcome `audit_read`) before its answer
    /// leaves: the auditor, what was read with which filters, and how many events. An
    /// error means the read could not be recorded, and the read must be refused (fail
    /// closed, as issuance does). Identical reads (same auditor, route and filters)
    /// within a second are folded into one event with `count`, like refusals.
    pub async fn record_read(
        &self,
        meta: &RequestMeta,
        auditor: &Principal,
        read: &TrailRead,
    ) -> Result<(), StoreError> {
        let Some(audit) = &self.audit else {
            return Ok(());
        };
        let filters = read.filter_text();
        let mut event = self.event(uuid_v7(self.clock.now()), meta, auditor);
        event.outcome = Outcome::AuditRead;
        let (count, kind) = match read.events {
            ReadCount::Returned(n) => (format!("{n} events"), "read"),
            ReadCount::ExportStarted => ("export started".to_owned(), "export"),
            ReadCount::ExportFinished(n) => (format!("export finished, {n} events"), "end"),
        };
        event.reason = Some(format!("{} {{{filters}}}: {count}", read.what));
        let key = (
            Outcome::AuditRead.as_str(),
            format!("{}\n{}", auditor.issuer, auditor.subject),
            format!("{} {kind}", read.what),
            filters,
        );
        self.record_or_fold(audit, key, event).await
    }

    /// Records a console sign-in (outcome `signed_in`) before the console gets its ID
    /// token: who signed in, and whether they are an auditor. An error means it could not
    /// be recorded, and the sign-in must be refused. Not folded: each sign-in redeemed a
    /// code from the identity provider.
    pub async fn record_sign_in(
        &self,
        meta: &RequestMeta,
        principal: &Principal,
        how: &str,
        auditor: bool,
    ) -> Result<(), StoreError> {
        let Some(audit) = &self.audit else {
            return Ok(());
        };
        let mut event = self.event(uuid_v7(self.clock.now()), meta, principal);
        event.outcome = Outcome::SignedIn;
        event.reason = Some(format!(
            "{how}{}",
            if auditor {
                ""
            } else {
                " (not an auditor: the console shows nothing)"
            }
        ));
        audit.record(event).await
    }
}
