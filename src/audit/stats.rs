//! Aggregates over the trail for the audit console's charts: counts per target and outcome
//! over time, the principals obtaining most tokens, and each target's busiest second of
//! minting. Counts are sums of `count`, so coalesced events weigh what they stand for.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use sqlx::Row;

use super::event::Outcome;
use super::query::{Filter, QueryError};
use super::store::{AuditStore, StoreError, err};

/// Bucket widths the API accepts, in seconds.
pub const BUCKETS: [u64; 6] = [60, 300, 900, 3600, 21_600, 86_400];
/// Most buckets in one answer.
pub const MAX_BUCKETS: u64 = 1000;
/// Principals listed in `top_principals`.
pub const TOP_PRINCIPALS: i64 = 10;

/// The refusals ([`Outcome::is_refusal`]) as an SQL list.
const REFUSALS_SQL: &str = "('denied', 'forbidden', 'throttled', 'failed', 'rejected')";

/// A checked `GET /v1/audit/stats` query.
#[derive(Debug, Clone)]
pub struct StatsQuery {
    /// Filters (`since` always set; `until` when given).
    pub filter: Filter,
    /// Start of the range.
    pub since: SystemTime,
    /// End of the range (exclusive).
    pub until: SystemTime,
    /// Bucket width in seconds.
    pub bucket: u64,
}

impl StatsQuery {
    /// Parses the query string. `until` defaults to `now`, `since` to a day before
    /// `until`, `bucket` to the smallest width that keeps the range within 100 buckets.
    pub fn parse(params: &HashMap<String, String>, now: SystemTime) -> Result<Self, QueryError> {
        let mut rest = params.clone();
        let bucket = rest.remove("bucket");
        for k in ["cursor", "limit", "format", "token_sha256"] {
            if rest.contains_key(k) {
                return Err(QueryError::NotAccepted(k));
            }
        }
        let mut filter = Filter::parse(&rest)?;
        let parse = |t: &Option<String>| t.as_deref().and_then(crate::clock::parse_rfc3339);
        let until = parse(&filter.until).unwrap_or(now);
        let since = parse(&filter.since).unwrap_or(until - Duration::from_secs(86_400));
        let span = until
            .duration_since(since)
            .map_err(|_| QueryError::Invalid {
                param: "since",
                problem: "must be before until",
            })?
            .as_secs()
            .max(1);
        let bucket = match bucket {
            Some(b) => {
                b.parse()
                    .ok()
                    .filter(|b| BUCKETS.contains(b))
                    .ok_or(QueryError::Invalid {
                        param: "bucket",
                        problem: "must be 60, 300, 900, 3600, 21600 or 86400",
                    })?
            }
            None => BUCKETS
                .iter()
                .copied()
                .find(|b| span.div_ceil(*b) <= 100)
                .unwrap_or(86_400),
        };
        if span.div_ceil(bucket) > MAX_BUCKETS {
            return Err(QueryError::TooManyBuckets {
                bucket,
                max: MAX_BUCKETS,
            });
        }
        filter.since = Some(crate::clock::rfc3339_millis(since));
        // A defaulted `until` stays open: events stamped at this very instant count.
        if filter.until.is_some() {
            filter.until = Some(crate::clock::rfc3339_millis(until));
        }
        Ok(Self {
            filter,
            since,
            until,
            bucket,
        })
    }

    /// Characters of the stored time that name its minute, hour or day: the coarsest
    /// grouping the database can do that still splits evenly into buckets.
    fn prefix_len(&self) -> usize {
        match self.bucket {
            b if b % 86_400 == 0 => 10,
            b if b % 3600 == 0 => 13,
            _ => 16,
        }
    }
}

/// Events per target over time.
#[derive(Debug, Serialize, PartialEq)]
pub struct TargetSeries {
    /// Target name.
    pub target: String,
    /// One count per bucket.
    pub counts: Vec<i64>,
    /// Sum of `counts`.
    pub total: i64,
}

/// One principal's totals.
#[derive(Debug, Serialize, PartialEq)]
pub struct PrincipalTotal {
    /// Issuer name.
    pub issuer: Option<String>,
    /// Subject.
    pub subject: String,
    /// Tokens issued.
    pub issued: i64,
    /// Requests refused (denied, forbidden, throttled, failed, rejected).
    pub refused: i64,
}

/// A target's minting against its budget.
#[derive(Debug, Serialize, PartialEq)]
pub struct BudgetUse {
    /// Target name.
    pub target: String,
    /// The target's kind (`rds`, `dsql`, `elasticache`, `memorydb`).
    pub kind: &'static str,
    /// `max_connections_per_second`.
    pub max_connections_per_second: u32,
    /// `burst`.
    pub burst: u32,
    /// Tokens minted (cache misses) in the range.
    pub minted: i64,
    /// Most tokens minted within one second of the range.
    pub peak_per_second: i64,
    /// Requests throttled by the target budget or a principal limit.
    pub throttled: i64,
}

/// The answer of `GET /v1/audit/stats`.
#[derive(Debug, Serialize, PartialEq)]
pub struct Stats {
    /// Start of the range.
    pub since: String,
    /// End of the range (exclusive).
    pub until: String,
    /// Bucket width.
    pub bucket_seconds: u64,
    /// Start of each bucket.
    pub buckets: Vec<String>,
    /// Tokens issued per target, per bucket.
    pub issued_by_target: Vec<TargetSeries>,
    /// Refused requests per outcome, per bucket (`denied`, `forbidden`, `throttled`,
    /// `failed`, `rejected`).
    pub refused: BTreeMap<String, Vec<i64>>,
    /// Totals per outcome.
    pub totals: BTreeMap<String, i64>,
    /// The principals that obtained most tokens.
    pub top_principals: Vec<PrincipalTotal>,
    /// Configured targets' minting against their budgets.
    pub budgets: Vec<BudgetUse>,
}

/// A configured target's budget: (name, rate, burst, kind).
pub type Budget = (String, u32, u32, &'static str);

/// Rows of `sql` with `args` bound, mapped by `read`.
macro_rules! rows {
    ($store:expr, $sql:expr, $args:expr, |$r:ident| $read:expr) => {
        on_pool!($store, p => {
            let mut q = sqlx::query($sql);
            for a in $args {
                q = q.bind(a);
            }
            let mut out = Vec::new();
            for $r in q.fetch_all(p).await.map_err(err)? {
                out.push($read);
            }
            out
        }, noop => Vec::new())
    };
}

/// Computes the console's aggregates for `q`; `budgets` are the configured targets.
pub async fn compute(
    store: &AuditStore,
    q: &StatsQuery,
    budgets: &[Budget],
) -> Result<Stats, StoreError> {
    let since_s = secs(q.since);
    let first = since_s - since_s % q.bucket;
    let end = secs(q.until) + u64::from(q.filter.until.is_none());
    let n = (end.saturating_sub(first)).div_ceil(q.bucket).max(1) as usize;
    let bucket_of = |prefix: &str| -> Option<usize> {
        let full = match prefix.len() {
            10 => format!("{prefix}T00:00:00Z"),
            13 => format!("{prefix}:00:00Z"),
            _ => format!("{prefix}:00Z"),
        };
        let t = secs(crate::clock::parse_rfc3339(&full)?);
        usize::try_from(t.checked_sub(first)? / q.bucket)
            .ok()
            .filter(|i| *i < n)
    };

    let (filter, args) = q.filter.where_clause(&[]);
    let sql = format!(
        "SELECT target, outcome, substr(time, 1, {}) AS t, CAST(SUM(count) AS BIGINT) AS n \
         FROM audit_events{filter} GROUP BY target, outcome, substr(time, 1, {})",
        q.prefix_len(),
        q.prefix_len()
    );
    type Cell = (Option<String>, String, String, i64);
    let cells: Vec<Cell> = rows!(store, &sql, &args, |r| (
        r.try_get("target").map_err(err)?,
        r.try_get("outcome").map_err(err)?,
        r.try_get("t").map_err(err)?,
        r.try_get("n").map_err(err)?
    ));
    let mut issued: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut refused: BTreeMap<String, Vec<i64>> = Outcome::ALL
        .into_iter()
        .filter(|o| o.is_refusal())
        .map(|o| (o.as_str().to_owned(), vec![0; n]))
        .collect();
    let mut totals: BTreeMap<String, i64> = Outcome::ALL
        .into_iter()
        .map(|o| (o.as_str().to_owned(), 0))
        .collect();
    for (target, outcome, t, count) in cells {
        *totals.entry(outcome.clone()).or_default() += count;
        // Outcomes that are neither issuances nor refusals are counted in `totals` only.
        if Outcome::parse(&outcome).is_some_and(|o| o != Outcome::Issued && !o.is_refusal()) {
            continue;
        }
        let Some(i) = bucket_of(&t) else { continue };
        let series = if outcome == "issued" {
            issued
                .entry(target.unwrap_or_default())
                .or_insert_with(|| vec![0; n])
        } else {
            refused.entry(outcome).or_insert_with(|| vec![0; n])
        };
        if let Some(c) = series.get_mut(i) {
            *c += count;
        }
    }
    let mut issued_by_target: Vec<TargetSeries> = issued
        .into_iter()
        .map(|(target, counts)| TargetSeries {
            total: counts.iter().sum(),
            target,
            counts,
        })
        .collect();
    issued_by_target.sort_by(|a, b| b.total.cmp(&a.total).then(a.target.cmp(&b.target)));

    // Token callers only: an auditor who only read the trail is no principal of this list.
    let (filter, args) = q.filter.where_clause(&[
        "subject IS NOT NULL",
        "outcome NOT IN ('audit_read', 'signed_in', 'access_requested', 'access_approved', \
         'access_denied', 'access_expired', 'access_revoked', 'break_glass')",
    ]);
    let sql = format!(
        "SELECT issuer, subject, \
         CAST(SUM(CASE WHEN outcome = 'issued' THEN count ELSE 0 END) AS BIGINT) AS issued, \
         CAST(SUM(CASE WHEN outcome IN {REFUSALS_SQL} THEN count ELSE 0 END) AS BIGINT) \
         AS refused \
         FROM audit_events{filter} GROUP BY issuer, subject \
         ORDER BY issued DESC, refused DESC, subject LIMIT {TOP_PRINCIPALS}"
    );
    let top_principals = rows!(store, &sql, &args, |r| PrincipalTotal {
        issuer: r.try_get("issuer").map_err(err)?,
        subject: r.try_get("subject").map_err(err)?,
        issued: r.try_get("issued").map_err(err)?,
        refused: r.try_get("refused").map_err(err)?,
    });

    let (filter, args) = q
        .filter
        .where_clause(&["outcome = 'issued'", "cache = 'miss'"]);
    let sql = format!(
        "SELECT target, CAST(MAX(n) AS BIGINT) AS peak, CAST(SUM(n) AS BIGINT) AS minted FROM \
         (SELECT target, CAST(SUM(count) AS BIGINT) AS n FROM audit_events{filter} \
          GROUP BY target, substr(time, 1, 19)) per_second GROUP BY target"
    );
    let minted: HashMap<Option<String>, (i64, i64)> = rows!(store, &sql, &args, |r| (
        r.try_get("target").map_err(err)?,
        (
            r.try_get("peak").map_err(err)?,
            r.try_get("minted").map_err(err)?
        )
    ))
    .into_iter()
    .collect();
    let (filter, args) = q.filter.where_clause(&["outcome = 'throttled'"]);
    let sql = format!(
        "SELECT target, CAST(SUM(count) AS BIGINT) AS n FROM audit_events{filter} GROUP BY target"
    );
    let throttled: HashMap<Option<String>, i64> = rows!(store, &sql, &args, |r| (
        r.try_get("target").map_err(err)?,
        r.try_get("n").map_err(err)?
    ))
    .into_iter()
    .collect();
    let budgets = budgets
        .iter()
        .map(|(target, rate, burst, kind)| {
            let key = Some(target.clone());
            let (peak, minted) = minted.get(&key).copied().unwrap_or((0, 0));
            BudgetUse {
                target: target.clone(),
                kind,
                max_connections_per_second: *rate,
                burst: *burst,
                minted,
                peak_per_second: peak,
                throttled: throttled.get(&key).copied().unwrap_or(0),
            }
        })
        .collect();

    Ok(Stats {
        since: crate::clock::rfc3339_millis(q.since),
        until: crate::clock::rfc3339_millis(q.until),
        bucket_seconds: q.bucket,
        buckets: (0..n as u64)
            .map(|i| {
                crate::clock::rfc3339(
                    SystemTime::UNIX_EPOCH + Duration::from_secs(first + i * q.bucket),
                )
            })
            .collect(),
        issued_by_target,
        refused,
        totals,
        top_principals,
        budgets,
    })
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{Outcome, REFUSALS_SQL};

    #[test]
    fn the_sql_list_of_refusals_is_the_outcomes_that_are_refusals() {
        let names: Vec<String> = Outcome::ALL
            .into_iter()
            .filter(|o| o.is_refusal())
            .map(|o| format!("'{}'", o.as_str()))
            .collect();
        assert_eq!(REFUSALS_SQL, format!("({})", names.join(", ")));
    }
}
