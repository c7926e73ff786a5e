//! Searching the trail: the filters of `docs/api.md` (`GET /v1/audit/events`), newest first,
//! keyset pagination by (time, id).

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use super::event::{AuditEvent, Outcome};

/// Most events in one page.
pub const MAX_LIMIT: u32 = 1000;
/// Events per page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 100;

/// A checked query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Exact matches on these columns.
    pub equals: Vec<(&'static str, String)>,
    /// `time >= since` (canonical RFC 3339).
    pub since: Option<String>,
    /// `time < until`.
    pub until: Option<String>,
    /// Continue after this (time, id).
    pub after: Option<(String, String)>,
    /// Page size.
    pub limit: u32,
}

/// Why a query was refused; every message is safe to show (it names the parameter, never
/// repeats its value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A known parameter with a value it does not accept.
    #[error("{param}: {problem}")]
    Invalid {
        /// The parameter.
        param: &'static str,
        /// What its value must be.
        problem: &'static str,
    },
    /// A parameter no audit query knows (its name cut to 40 characters).
    #[error("unknown parameter {0:?}")]
    Unknown(String),
    /// A parameter this kind of query does not take.
    #[error("{0}: not accepted by stats")]
    NotAccepted(&'static str),
    /// A stats bucket too narrow for the range.
    #[error("bucket: {bucket} s makes more than {max} buckets for this range; choose a wider one")]
    TooManyBuckets {
        /// The bucket width asked for, in seconds.
        bucket: u64,
        /// The most buckets a range may have.
        max: u64,
    },
}

/// Every parameter an audit query takes.
const PARAMS: [&str; 13] = [
    "subject",
    "issuer",
    "target",
    "db_user",
    "kind",
    "outcome",
    "token_sha256",
    "since",
    "until",
    "limit",
    "cursor",
    "format",
    "access_request_id",
];

impl Filter {
    /// Parses query parameters; unknown ones are refused.
    pub fn parse(params: &HashMap<String, String>) -> Result<Self, QueryError> {
        let mut f = Self {
            limit: DEFAULT_LIMIT,
            ..Self::default()
        };
        for (k, v) in params {
            let Some(param) = PARAMS.iter().copied().find(|p| *p == k.as_str()) else {
                return Err(QueryError::Unknown(k.chars().take(40).collect()));
            };
            let bad = |problem: &'static str| QueryError::Invalid { param, problem };
            match param {
                "subject" | "issuer" | "target" | "db_user" | "access_request_id" => {
                    if v.is_empty() || v.len() > 512 {
                        return Err(bad("must be 1 to 512 characters"));
                    }
                    let col = param;
                    f.equals.push((col, v.clone()));
                }
                "kind" => {
                    let kind = crate::domain::Kind::parse(v)
                        .map_err(|_| bad("must be one of rds, dsql, elasticache, memorydb"))?;
                    f.equals.push(("kind", kind.as_str().to_owned()));
                }
                "outcome" => {
                    if Outcome::parse(v).is_none() {
                        return Err(bad(
                            "must be one of issued, denied, forbidden, throttled, failed, \
                             rejected, audit_read, signed_in, access_requested, \
                             access_approved, access_denied, access_expired, access_revoked, \
                             break_glass",
                        ));
                    }
                    f.equals.push(("outcome", v.clone()));
                }
                "token_sha256" => {
                    if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(bad("must be 64 hex digits"));
                    }
                    f.equals.push(("token_sha256", v.to_ascii_lowercase()));
                }
                "since" | "until" => {
                    let t = crate::clock::parse_rfc3339(v).ok_or_else(|| {
                        bad("must be an RFC 3339 time such as 2026-03-09T14:11:29Z")
                    })?;
                    let t = crate::clock::rfc3339_millis(t);
                    if param == "since" {
                        f.since = Some(t)
                    } else {
                        f.until = Some(t)
                    }
                }
                "limit" => {
                    f.limit = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| bad("must be 1 to 1000"))?;
                }
                "cursor" => {
                    f.after = Some(
                        decode_cursor(v)
                            .ok_or_else(|| bad("is not a cursor this broker issued"))?,
                    )
                }
                _ => {} // "format": read by the handler
            }
        }
        f.equals.sort();
        Ok(f)
    }

    /// SQL (with `$N` placeholders) and its arguments, for a page of `limit + 1` rows.
    pub fn sql(&self, columns: &str) -> (String, Vec<String>) {
        let (filter, args) = self.where_clause(&[]);
        let sql = format!(
            "SELECT {columns} FROM audit_events{filter} ORDER BY time DESC, id DESC LIMIT {}",
            self.limit + 1
        );
        (sql, args)
    }

    /// ` WHERE ...` (or nothing) with `$N` placeholders for every filter, the cursor and
    /// `extra` conditions (SQL written by the caller, no placeholders), and its arguments.
    pub fn where_clause(&self, extra: &[&str]) -> (String, Vec<String>) {
        let mut clauses = Vec::new();
        let mut args = Vec::new();
        let mut arg = |v: &str| {
            args.push(v.to_owned());
            format!("${}", args.len())
        };
        for (col, v) in &self.equals {
            clauses.push(format!("{col} = {}", arg(v)));
        }
        if let Some(s) = &self.since {
            clauses.push(format!("time >= {}", arg(s)));
        }
        if let Some(u) = &self.until {
            clauses.push(format!("time < {}", arg(u)));
        }
        if let Some((t, id)) = &self.after {
            let (pt, pt2, pid) = (arg(t), arg(t), arg(id));
            clauses.push(format!("(time < {pt} OR (time = {pt2} AND id < {pid}))"));
        }
        clauses.extend(extra.iter().map(|c| (*c).to_owned()));
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        (filter, args)
    }
}

/// The cursor that continues after `e`.
pub fn cursor_after(e: &AuditEvent) -> String {
    B64.encode(format!("{}\n{}", e.time, e.id))
}

fn decode_cursor(c: &str) -> Option<(String, String)> {
    let raw = String::from_utf8(B64.decode(c).ok()?).ok()?;
    let (t, id) = raw.split_once('\n')?;
    crate::clock::parse_rfc3339(t)?;
    uuid::Uuid::parse_str(id).ok()?;
    Some((t.to_owned(), id.to_owned()))
}
