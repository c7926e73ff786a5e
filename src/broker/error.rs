//! Why no token was issued: one error with its causes, and the flat kind the HTTP edge
//! maps to a status.

use crate::audit::StoreError;
use crate::aws::{CredentialsUnavailable, StsError};
use crate::policy::{ConditionFailure, TemplateFailure};
use crate::ratelimit::Throttled;
use crate::token::MintError;

/// Why no token was issued. [`IssueError::kind`] says, flat, what the HTTP edge needs to
/// choose a status; the error itself (with its `source`s) is the cause, for the log.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// Unknown target, or a target or DB user the caller may not use; indistinguishable
    /// on purpose so targets cannot be enumerated.
    #[error("not permitted")]
    Forbidden,
    /// Only an approved access request gives the caller this target and DB user, and there
    /// is none now (the 403 says how to make one).
    #[error("an approved access request is required for this target and DB user")]
    AccessRequestRequired {
        /// The target.
        target: String,
        /// The DB user, when known.
        db_user: Option<String>,
    },
    /// `db_user` was omitted but the caller may use several.
    #[error("db_user is required: more than one DB user is allowed on this target")]
    DbUserRequired,
    /// The broker has no usable AWS credentials.
    #[error(transparent)]
    NoCredentials(#[from] CredentialsUnavailable),
    /// The signing credentials expire too soon for a token to be useful.
    #[error(
        "the signing credentials expire in {left_seconds} s, less than the {min_seconds} s a token must have left"
    )]
    CredentialsExpiring {
        /// Seconds the credentials have left.
        left_seconds: u64,
        /// `tokens.min_remaining_seconds`.
        min_seconds: u64,
    },
    /// The token could not be signed. Never a throttle or expiring credentials: the
    /// conversion from [`MintError`] sorts those into their own variants.
    #[error(transparent)]
    Mint(MintError),
    /// No role session for the target's `role_arn`.
    #[error(transparent)]
    Sts(#[from] StsError),
    /// A rate limit refused the request (429).
    #[error(transparent)]
    Throttled(#[from] Throttled),
    /// The audit trail could not record the decision: nothing is issued.
    #[error(transparent)]
    Audit(#[from] StoreError),
    /// A grant that gives the DB user matches the caller, but one of its
    /// `[grants.conditions]` does not hold.
    #[error("not permitted: {0}")]
    Condition(ConditionFailure),
    /// A grant's per-person DB user could not be made from the caller's identity.
    #[error("not permitted: {0}")]
    Template(TemplateFailure),
}

/// What kind of failure an [`IssueError`] is, flat: one status per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueErrorKind {
    /// Not permitted, or no such target or DB user (403).
    Forbidden,
    /// `db_user` must be given (400).
    DbUserRequired,
    /// Refused by a grant that matches the caller, for a reason the caller may know (a
    /// condition that does not hold, a per-person DB user that cannot be made): 403 with
    /// that reason.
    Refused,
    /// Permitted only under an approved access request, and there is none (403).
    AccessRequestRequired,
    /// A rate limit refused (429): which, and when to retry.
    Throttled(Throttled),
    /// The broker has no AWS credentials (503).
    CredentialsUnavailable,
    /// The broker's AWS credentials expire too soon to sign with (503).
    CredentialsExpiring,
    /// STS refused to assume the target's role (502).
    RoleRefused,
    /// STS could not be reached to assume the target's role (503).
    RoleUnavailable,
    /// The audit trail cannot record (503).
    AuditUnavailable,
    /// Signing failed: a bug, or a target host that cannot be signed (500).
    Internal,
}

impl IssueError {
    /// The kind of failure.
    pub fn kind(&self) -> IssueErrorKind {
        use IssueErrorKind as K;
        match self {
            Self::Forbidden => K::Forbidden,
            Self::DbUserRequired => K::DbUserRequired,
            Self::AccessRequestRequired { .. } => K::AccessRequestRequired,
            Self::Throttled(t) => K::Throttled(*t),
            Self::NoCredentials(_) => K::CredentialsUnavailable,
            Self::CredentialsExpiring { .. } => K::CredentialsExpiring,
            Self::Sts(StsError::Refused { .. }) => K::RoleRefused,
            Self::Sts(StsError::Unavailable(_)) => K::RoleUnavailable,
            Self::Audit(_) => K::AuditUnavailable,
            Self::Mint(_) => K::Internal,
            Self::Condition(_) | Self::Template(_) => K::Refused,
        }
    }
}

impl From<MintError> for IssueError {
    /// The one place a throttle or expiring credentials met while minting become
    /// issuance errors of their own.
    fn from(e: MintError) -> Self {
        match e {
            MintError::Throttled(t) => Self::Throttled(t),
            MintError::CredentialsExpiring {
                left_seconds,
                min_seconds,
            } => Self::CredentialsExpiring {
                left_seconds,
                min_seconds,
            },
            e => Self::Mint(e),
        }
    }
}
