//! The audit event (`docs/audit.md#event-fields`) and its hash chain.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What happened to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A token was issued.
    Issued,
    /// Authentication failed.
    Denied,
    /// Authenticated, not permitted.
    Forbidden,
    /// Rate limited.
    Throttled,
    /// A dependency failed.
    Failed,
    /// A malformed or oversized request (400, 413, 415).
    Rejected,
    /// An auditor read the trail.
    AuditRead,
    /// An auditor signed in to the console.
    SignedIn,
    /// An access request was made.
    AccessRequested,
    /// An access request got an approval (`reason` says whether it is now approved).
    AccessApproved,
    /// An access request was denied.
    AccessDenied,
    /// An approved or pending access request ran out of time.
    AccessExpired,
    /// An access request was revoked.
    AccessRevoked,
    /// A break-glass request, approved by its requester at once.
    BreakGlass,
}

impl Outcome {
    /// Every outcome, in the order the docs list them.
    pub const ALL: [Self; 14] = [
        Self::Issued,
        Self::Denied,
        Self::Forbidden,
        Self::Throttled,
        Self::Failed,
        Self::Rejected,
        Self::AuditRead,
        Self::SignedIn,
        Self::AccessRequested,
        Self::AccessApproved,
        Self::AccessDenied,
        Self::AccessExpired,
        Self::AccessRevoked,
        Self::BreakGlass,
    ];

    /// The outcome stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// A refused token request (`denied`, `forbidden`, `throttled`, `failed`, `rejected`).
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            Self::Denied | Self::Forbidden | Self::Throttled | Self::Failed | Self::Rejected
        )
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::Denied => "denied",
            Self::Forbidden => "forbidden",
            Self::Throttled => "throttled",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::AuditRead => "audit_read",
            Self::SignedIn => "signed_in",
            Self::AccessRequested => "access_requested",
            Self::AccessApproved => "access_approved",
            Self::AccessDenied => "access_denied",
            Self::AccessExpired => "access_expired",
            Self::AccessRevoked => "access_revoked",
            Self::BreakGlass => "break_glass",
        }
    }
}

/// The hash before the first event of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit event. Field order is the canonical encoding's order: do not reorder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// UUIDv7.
    pub id: String,
    /// RFC 3339 UTC.
    pub time: String,
    /// The request's `x-request-id`.
    pub request_id: Option<String>,
    /// What happened.
    pub outcome: Outcome,
    /// Why (for anything but `issued`).
    pub reason: Option<String>,
    /// Issuer name.
    pub issuer: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// `jwt`, `aws-iam`, `unauthenticated`, or `unverified` (a refused caller).
    pub auth_method: Option<String>,
    /// Client address.
    pub client_ip: Option<String>,
    /// Client `User-Agent`, truncated.
    pub user_agent: Option<String>,
    /// Target asked for.
    pub target: Option<String>,
    /// Target host.
    pub host: Option<String>,
    /// Target port.
    pub port: Option<i64>,
    /// DB user.
    pub db_user: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Role assumed.
    pub role_arn: Option<String>,
    /// Role session name.
    pub session_name: Option<String>,
    /// `hit` or `miss`.
    pub cache: Option<String>,
    /// Hex SHA-256 of the token; never the token.
    pub token_sha256: Option<String>,
    /// Token expiry, RFC 3339.
    pub expires_at: Option<String>,
    /// The target's kind (`rds`, `dsql`, `elasticache`, `memorydb`), when the target is
    /// known. Left out of the encoding when absent, so events recorded before kinds
    /// existed keep their canonical form and their hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The access request a token was issued under, or whose transition this event
    /// records. Left out of the encoding when absent, like `kind`, so older events keep
    /// their canonical form and hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_request_id: Option<String>,
    /// How this event is encoded for its hash ([`Encoding`]). Absent (legacy) in events
    /// recorded before JCS; `jcs` in every new one, where it is part of the hashed content.
    #[serde(default, skip_serializing_if = "Encoding::is_legacy")]
    pub encoding: Encoding,
    /// Coalesced events this one stands for.
    pub count: i64,
    /// The broker instance's chain.
    pub chain_id: String,
    /// Position in the chain, from 1.
    pub seq: i64,
    /// Hash of the previous event in the chain ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and the canonical encoding of every other field.
    pub hash: String,
}

impl AuditEvent {
    /// An event `id` at `time` with `outcome`, a count of one, every optional field empty
    /// and no chain position yet (the writer links it). Callers set what they know with
    /// struct update syntax, so a new field is added here once.
    pub fn new(id: String, time: String, outcome: Outcome) -> Self {
        Self {
            id,
            time,
            request_id: None,
            outcome,
            reason: None,
            issuer: None,
            subject: None,
            auth_method: None,
            client_ip: None,
            user_agent: None,
            target: None,
            host: None,
            port: None,
            db_user: None,
            region: None,
            role_arn: None,
            session_name: None,
            cache: None,
            token_sha256: None,
            expires_at: None,
            kind: None,
            access_request_id: None,
            encoding: Encoding::Jcs,
            count: 1,
            chain_id: String::new(),
            seq: 0,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// Removes control and bidi characters from every text field and caps its length
    /// ([`crate::domain::text`]): a last line of defence before the store (PostgreSQL
    /// refuses NUL in `TEXT`), a CSV file or a terminal sees the event. Fields are
    /// cleaned at the edge already; this keeps a missed one from failing a batch.
    pub fn clean_text(&mut self) {
        use crate::domain::text::{LONG, clean_field};
        for field in [
            &mut self.request_id,
            &mut self.reason,
            &mut self.issuer,
            &mut self.subject,
            &mut self.auth_method,
            &mut self.client_ip,
            &mut self.user_agent,
            &mut self.target,
            &mut self.host,
            &mut self.db_user,
            &mut self.region,
            &mut self.role_arn,
            &mut self.session_name,
            &mut self.cache,
            &mut self.token_sha256,
            &mut self.expires_at,
            &mut self.kind,
            &mut self.access_request_id,
        ] {
            clean_field(field, 4 * LONG);
        }
    }
    /// The canonical encoding of this event under its [`Encoding`], with no `hash`
    /// (legacy: an empty one). An error, never an empty string, if it cannot be encoded:
    /// a hash over nothing would let any contents pass.
    pub fn canonical(&self) -> Result<String, serde_json::Error> {
        match self.encoding {
            Encoding::Legacy => {
                if self.hash.is_empty() {
                    return serde_json::to_string(self);
                }
                let mut e = self.clone();
                e.hash = String::new();
                serde_json::to_string(&e)
            }
            Encoding::Jcs => {
                let mut out = Vec::with_capacity(512);
                self.jcs_into(&mut Vec::new(), |b| out.extend_from_slice(b))?;
                String::from_utf8(out).map_err(<serde_json::Error as serde::ser::Error>::custom)
            }
        }
    }

    fn jcs_into(
        &self,
        buf: &mut Vec<u8>,
        sink: impl FnMut(&[u8]),
    ) -> Result<(), serde_json::Error> {
        super::jcs::event_fields(self, &["hash"], buf, sink)
            .map_err(<serde_json::Error as serde::ser::Error>::custom)
    }

    /// The hash this event must carry: hex SHA-256 of `prev_hash`, a newline and the
    /// canonical encoding. The JCS form is written into the hasher as it is produced.
    pub fn compute_hash(&self) -> Result<String, serde_json::Error> {
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(b"\n");
        match self.encoding {
            Encoding::Legacy => h.update(self.canonical()?.as_bytes()),
            Encoding::Jcs => {
                let mut buf = Vec::with_capacity(512);
                self.jcs_into(&mut buf, |b| h.update(b))?;
            }
        }
        Ok(hex::encode(h.finalize()))
    }
}

/// How an event is encoded for its hash (`docs/audit-format.md#canonical-encodings`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Events recorded before JCS: `serde_json` of the struct in declaration order, absent
    /// optional fields as `null` (except `kind`, `encoding`, left out), with `"hash":""`.
    /// Never written by this version; an event without a marker is legacy.
    #[default]
    Legacy,
    /// RFC 8785 JCS of every present field but `hash`, `encoding` included.
    Jcs,
}

impl Encoding {
    /// Whether this is [`Encoding::Legacy`] (then the marker is left out).
    pub fn is_legacy(&self) -> bool {
        *self == Self::Legacy
    }

    /// The stored name (`NULL` in the database for legacy).
    pub fn stored(self) -> Option<&'static str> {
        match self {
            Self::Legacy => None,
            Self::Jcs => Some("jcs"),
        }
    }

    /// From the stored name; `None` if unknown.
    pub fn from_stored(s: Option<&str>) -> Option<Self> {
        match s {
            None => Some(Self::Legacy),
            Some("jcs") => Some(Self::Jcs),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
impl AuditEvent {
    /// An issued event for "svc" with the optional fields empty and no chain, for unit tests.
    pub(crate) fn sample_for_tests() -> Self {
        Self {
            subject: Some("svc".into()),
            ..Self::new(
                "00000000-0000-7000-8000-000000000000".into(),
                "2026-03-09T14:11:29.000Z".into(),
                Outcome::Issued,
            )
        }
    }
}
