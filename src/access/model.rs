//! What an access request is, as stored and as answered.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::clock::rfc3339;

/// A request's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for approvals.
    Pending,
    /// Approved: tokens until `expires_at`.
    Approved,
    /// Denied by an approver.
    Denied,
    /// Ran out of time (approved and past `expires_at`, or pending for a day).
    Expired,
    /// Revoked by the requester, an approver or an auditor.
    Revoked,
}

impl State {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Approved,
            Self::Denied,
            Self::Expired,
            Self::Revoked,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// How long a request may stay pending before it expires unanswered.
pub const PENDING_TTL: Duration = Duration::from_secs(24 * 3600);

/// One approval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Approval {
    /// The approver's issuer name.
    pub issuer: String,
    /// The approver's subject.
    pub subject: String,
    /// What they said.
    pub comment: String,
    /// When, RFC 3339.
    #[serde(serialize_with = "time_str")]
    pub at: SystemTime,
}

/// Who asked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Requester {
    /// Issuer name.
    pub issuer: String,
    /// Subject.
    pub subject: String,
}

/// An access request, as answered by the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessRequest {
    /// UUIDv7.
    pub id: String,
    /// Its state now.
    pub state: State,
    /// A break-glass request (approved by its requester).
    pub break_glass: bool,
    /// Target.
    pub target: String,
    /// DB user.
    pub db_user: String,
    /// Who asked.
    pub requester: Requester,
    /// Why, as given (cleaned).
    pub reason: String,
    /// Access asked for, in minutes.
    pub duration_minutes: u32,
    /// Distinct approvals needed.
    pub min_approvals: u32,
    /// When it was made.
    #[serde(serialize_with = "time_str")]
    pub created_at: SystemTime,
    /// When it was approved.
    #[serde(serialize_with = "opt_time_str")]
    pub approved_at: Option<SystemTime>,
    /// When access ends (approved requests).
    #[serde(serialize_with = "opt_time_str")]
    pub expires_at: Option<SystemTime>,
    /// When it was denied, revoked or expired.
    #[serde(serialize_with = "opt_time_str")]
    pub decided_at: Option<SystemTime>,
    /// Who denied or revoked it (`issuer/subject`), or `broker` for expiry.
    pub decided_by: Option<String>,
    /// What they said.
    pub decision_comment: Option<String>,
    /// Approvals so far.
    pub approvals: Vec<Approval>,
}

impl AccessRequest {
    /// Whether it gives access at `now`.
    pub fn active(&self, now: SystemTime) -> bool {
        self.state == State::Approved && self.expires_at.is_some_and(|e| e > now)
    }

    /// Whether it should be marked expired at `now`.
    pub fn due_to_expire(&self, now: SystemTime) -> bool {
        match self.state {
            State::Approved => self.expires_at.is_none_or(|e| e <= now),
            State::Pending => self.created_at + PENDING_TTL <= now,
            _ => false,
        }
    }
}

/// What a caller asks for, checked.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// Target name.
    pub target: crate::domain::TargetName,
    /// DB user.
    pub db_user: crate::domain::DbUser,
    /// Minutes of access.
    pub duration_minutes: u32,
    /// Why (cleaned and bounded).
    pub reason: String,
    /// Ask under a break-glass grant.
    pub break_glass: bool,
}

/// `GET /v1/access-requests` filters, checked.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only this state.
    pub state: Option<State>,
    /// Only the caller's own.
    pub mine: bool,
    /// Only pending requests the caller may approve.
    pub to_review: bool,
    /// Page size (1 to 200).
    pub limit: u32,
    /// Requests older than this id (the previous page's `next_cursor`).
    pub before: Option<String>,
}

/// A token issued under a request, for the revocation answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenIssued {
    /// The issuance id (`issuance_id` of the answer, `id` of its audit event).
    pub issuance_id: String,
    /// When it stops working.
    pub expires_at: Option<String>,
}

/// The answer to a revocation.
#[derive(Debug, Clone, Serialize)]
pub struct Revoked {
    /// The request, revoked.
    pub request: AccessRequest,
    /// Tokens already issued under it: they stay valid until their `expires_at`.
    pub tokens_issued: Vec<TokenIssued>,
    /// What revocation does and does not do.
    pub note: &'static str,
}

/// What the revocation answer says.
pub const REVOKE_NOTE: &str = "No new tokens are issued under this request. Tokens already \
    issued stay valid until their expires_at (at most 15 minutes after issue), and \
    connections already open are not closed.";

/// Unix milliseconds of `t`.
pub fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time `ms` Unix milliseconds name.
pub fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn time_str<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

fn opt_time_str<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339(*t)),
        None => s.serialize_none(),
    }
}
