//! `audit query`, `audit export` and `audit verify`: the security team's view of the trail,
//! through a running broker's audit API (or, for `verify`, straight from the store).

use std::io::Write;
use std::time::Duration;

use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::{BrokerClient, ClientError, fail, failed};
use crate::audit::display::{escape_json, neutralise};
use crate::clock::{Clock, SystemClock, rfc3339};

/// The filters of `GET /v1/audit/events` (`docs/api.md`).
#[derive(Debug, Clone, Default, Args)]
pub struct Filters {
    /// Events at or after this time: RFC 3339, or an age such as 90s, 30m, 24h, 7d.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Events before this time: RFC 3339, or an age such as 1h.
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Caller subject (JWT `sub`, or the caller's ARN).
    #[arg(long)]
    pub subject: Option<String>,
    /// Issuer name as configured, or aws-iam.
    #[arg(long)]
    pub issuer: Option<String>,
    /// Target name.
    #[arg(long)]
    pub target: Option<String>,
    /// Database user (DSQL: Postgres role; caches: user id).
    #[arg(long)]
    pub db_user: Option<String>,
    /// Target kind: rds, dsql, elasticache or memorydb.
    #[arg(long)]
    pub kind: Option<String>,
    /// issued, denied, forbidden, throttled, failed, rejected (a malformed or oversized
    /// request), audit_read (a read of the trail) or signed_in (a console sign-in).
    #[arg(long)]
    pub outcome: Option<String>,
    /// Hex SHA-256 of a token (`sha256sum` of the token without a newline).
    #[arg(long, value_name = "HEX")]
    pub token_sha256: Option<String>,
}

/// Turns `24h`-style ages into absolute times; RFC 3339 passes through.
pub fn absolute_time(value: &str, now: std::time::SystemTime) -> Result<String, ClientError> {
    if crate::clock::parse_rfc3339(value).is_some() {
        return Ok(value.to_owned());
    }
    let bad = || {
        fail(format!(
            "{value}: expected an RFC 3339 time (2026-03-09T14:11:29Z) or an age such as 90s, 30m, 24h, 7d"
        ))
    };
    let split = value.len().checked_sub(1).ok_or_else(bad)?;
    let (n, unit) = value.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        "w" => n.checked_mul(7 * 86_400),
        _ => None,
    }
    .ok_or_else(bad)?;
    let t = now.checked_sub(Duration::from_secs(secs)).ok_or_else(bad)?;
    Ok(rfc3339(t))
}

impl Filters {
    fn params(&self) -> Result<Vec<(&'static str, String)>, ClientError> {
        let now = SystemClock.now();
        let mut p = Vec::new();
        if let Some(v) = &self.since {
            p.push(("since", absolute_time(v, now)?));
        }
        if let Some(v) = &self.until {
            p.push(("until", absolute_time(v, now)?));
        }
        let exact = [
            ("subject", &self.subject),
            ("issuer", &self.issuer),
            ("target", &self.target),
            ("db_user", &self.db_user),
            ("kind", &self.kind),
            ("outcome", &self.outcome),
            ("token_sha256", &self.token_sha256),
        ];
        for (k, v) in exact {
            if let Some(v) = v {
                p.push((k, v.clone()));
            }
        }
        Ok(p)
    }
}

/// `audit query --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    /// Aligned columns for reading.
    Table,
    /// A JSON array of events.
    Json,
    /// CSV with a header row.
    Csv,
}

/// `audit export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON event per line.
    Ndjson,
    /// CSV with a header row.
    Csv,
}

#[derive(serde::Deserialize)]
struct Page {
    events: Vec<Value>,
    next_cursor: Option<String>,
}

#[derive(serde::Deserialize)]
struct Checked {
    ok: bool,
    events_checked: u64,
    first_broken: Option<Value>,
    #[serde(default)]
    legacy_checkpoints: u64,
    #[serde(default)]
    checkpoints_verified: u64,
    #[serde(default)]
    roots_checked: u64,
    #[serde(default)]
    checkpoint_problems: Vec<crate::audit::offline::Problem>,
}

/// Newest first, at most `limit` events, following the cursor across pages.
pub async fn query(
    client: &BrokerClient,
    filters: &Filters,
    limit: u32,
    format: QueryFormat,
    out: &mut impl Write,
) -> Result<(), ClientError> {
    let params = filters.params()?;
    let mut events: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    while events.len() < limit as usize {
        let want = (limit as usize - events.len()).min(1000);
        let mut req = client
            .request(Method::GET, "v1/audit/events")
            .await?
            .query(&params)
            .query(&[("limit", want.to_string())]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let page: Page = client
            .send_audit(req)
            .await?
            .json()
            .await
            .map_err(|e| failed("the broker's answer is not an event page", e))?;
        events.extend(page.events);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    events.truncate(limit as usize);
    let text = match format {
        QueryFormat::Json => format!(
            "{}\n",
            escape_json(&serde_json::to_string_pretty(&events).unwrap_or_default())
        ),
        QueryFormat::Csv => csv(&events),
        QueryFormat::Table => table(&events),
    };
    out.write_all(text.as_bytes())
        .map_err(|e| failed("cannot write the result", e))
}

fn cell(v: &Value) -> String {
    crate::audit::csv::cell(v)
}

fn csv(events: &[Value]) -> String {
    let mut out = crate::audit::csv::header();
    for e in events {
        out.push_str(&crate::audit::csv::row_from_json(e));
    }
    out
}

fn table(events: &[Value]) -> String {
    const COLS: [&str; 8] = [
        "time", "outcome", "issuer", "subject", "target", "db_user", "cache", "reason",
    ];
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            COLS.iter()
                .map(|c| {
                    // Control and bidi characters from callers must not move the
                    // terminal's cursor or reorder what is shown.
                    neutralise(&cell(&e[*c])).chars().take(60).collect()
                })
                .collect()
        })
        .collect();
    let mut out = super::output::aligned(&COLS, &rows);
    out.push_str(&format!(
        "({} event{})\n",
        events.len(),
        if events.len() == 1 { "" } else { "s" }
    ));
    out
}

/// Streams the whole result in `format` into `out` (constant memory). The broker sends
/// NDJSON, written out a line at a time with unsafe characters escaped, or as CSV rows
/// (see [`crate::audit::display`]), whatever the broker's version wrote into old events.
/// Returns the bytes written.
pub async fn export(
    client: &BrokerClient,
    filters: &Filters,
    format: ExportFormat,
    out: &mut impl Write,
) -> Result<u64, ClientError> {
    let mut params = filters.params()?;
    params.push(("format", "ndjson".to_owned()));
    let mut res = client
        .send_audit(
            client
                .request(Method::GET, "v1/audit/events")
                .await?
                .query(&params),
        )
        .await?;
    let mut lines = ExportLines {
        format,
        pending: Vec::new(),
        written: 0,
    };
    if format == ExportFormat::Csv {
        lines.emit(out, &crate::audit::csv::header())?;
    }
    loop {
        let chunk = res.chunk().await.map_err(|e| {
            fail(format!(
                "the export broke off after {} bytes: {e}; the output is incomplete",
                lines.written
            ))
        })?;
        let Some(chunk) = chunk else { break };
        lines.take(&chunk, out)?;
    }
    lines.finish(out)?;
    out.flush()
        .map_err(|e| failed("cannot write the export", e))?;
    Ok(lines.written)
}

/// Cuts the broker's NDJSON into lines and writes each in the export's format.
struct ExportLines {
    format: ExportFormat,
    /// The start of a line whose end has not arrived yet.
    pending: Vec<u8>,
    written: u64,
}

impl ExportLines {
    fn take(&mut self, chunk: &[u8], out: &mut impl Write) -> Result<(), ClientError> {
        self.pending.extend_from_slice(chunk);
        let Some(last) = self.pending.iter().rposition(|b| *b == b'\n') else {
            return Ok(());
        };
        let rest = self.pending.split_off(last + 1);
        let complete = std::mem::replace(&mut self.pending, rest);
        for line in complete.split(|b| *b == b'\n') {
            self.line(line, out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut impl Write) -> Result<(), ClientError> {
        let rest = std::mem::take(&mut self.pending);
        self.line(&rest, out)
    }

    fn line(&mut self, line: &[u8], out: &mut impl Write) -> Result<(), ClientError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let rendered = match self.format {
            ExportFormat::Ndjson => format!("{}\n", escape_json(text)),
            ExportFormat::Csv => {
                let event: Value = serde_json::from_str(text).map_err(|e| {
                    fail(format!(
                        "the broker's export holds a line that is not an event ({e}); the \
                         output is incomplete"
                    ))
                })?;
                crate::audit::csv::row_from_json(&event)
            }
        };
        self.emit(out, &rendered)
    }

    fn emit(&mut self, out: &mut impl Write, text: &str) -> Result<(), ClientError> {
        out.write_all(text.as_bytes())
            .map_err(|e| failed("cannot write the export", e))?;
        self.written += text.len() as u64;
        Ok(())
    }
}

/// `GET /v1/audit/verify`, printed for people; `Ok(true)` when every chain is intact.
pub async fn verify_remote(
    client: &BrokerClient,
    out: &mut impl Write,
) -> Result<bool, ClientError> {
    let v: Checked = client
        .send_audit(client.request(Method::GET, "v1/audit/verify").await?)
        .await?
        .json()
        .await
        .map_err(|e| failed("the broker's answer is not a verification", e))?;
    let ok = v.ok;
    let text = describe(&v);
    out.write_all(text.as_bytes())
        .map_err(|e| failed("cannot write the result", e))?;
    Ok(ok)
}

/// The receipt of event `id` (`GET /v1/audit/receipts/{id}`), as the broker sent it.
pub async fn receipt(client: &BrokerClient, id: &str) -> Result<Vec<u8>, ClientError> {
    let id = uuid::Uuid::parse_str(id)
        .map_err(|e| failed("the event id is not a UUID", e))?
        .hyphenated()
        .to_string();
    let path = format!("v1/audit/receipts/{id}");
    let res = client
        .send_audit(client.request(Method::GET, &path).await?)
        .await?;
    let body = res
        .bytes()
        .await
        .map_err(|e| failed("the receipt did not arrive whole", e))?;
    Ok(body.to_vec())
}

/// Which proof `audit proof` fetches.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ProofRequest {
    /// That an event is in its chain's tree (`GET /v1/audit/proofs/inclusion`), against
    /// the newest checkpoint covering it or the one of `--tree-size`.
    Inclusion {
        /// The broker and the caller.
        #[command(flatten)]
        broker: super::BrokerArgs,
        /// The event's id.
        #[arg(value_name = "EVENT_ID")]
        id: String,
        /// The checkpoint's tree size (default: the newest covering the event).
        #[arg(long, value_name = "N")]
        tree_size: Option<u64>,
    },
    /// That a chain's tree of size `--to` extends the one of size `--from`
    /// (`GET /v1/audit/proofs/consistency`); both must be stored checkpoints' sizes.
    Consistency {
        /// The broker and the caller.
        #[command(flatten)]
        broker: super::BrokerArgs,
        /// The chain.
        #[arg(long, value_name = "CHAIN_ID")]
        chain_id: String,
        /// The older checkpoint's tree size.
        #[arg(long, value_name = "N")]
        from: u64,
        /// The newer checkpoint's tree size.
        #[arg(long, value_name = "N")]
        to: u64,
    },
}

/// The proof `what` asks for, from the broker it names, as the broker's JSON.
pub async fn proof(what: &ProofRequest) -> Result<Vec<u8>, ClientError> {
    let (ProofRequest::Inclusion { broker, .. } | ProofRequest::Consistency { broker, .. }) = what;
    let client = BrokerClient::new(broker).await?;
    let req = match what {
        ProofRequest::Inclusion { id, tree_size, .. } => {
            let id = uuid::Uuid::parse_str(id)
                .map_err(|e| failed("the event id is not a UUID", e))?
                .hyphenated()
                .to_string();
            let mut req = client
                .request(Method::GET, "v1/audit/proofs/inclusion")
                .await?
                .query(&[("id", id)]);
            if let Some(n) = tree_size {
                req = req.query(&[("tree_size", n.to_string())]);
            }
            req
        }
        ProofRequest::Consistency {
            chain_id, from, to, ..
        } => client
            .request(Method::GET, "v1/audit/proofs/consistency")
            .await?
            .query(&[
                ("chain_id", chain_id.clone()),
                ("from", from.to_string()),
                ("to", to.to_string()),
            ]),
    };
    let res = client.send_audit(req).await?;
    let body = res
        .bytes()
        .await
        .map_err(|e| failed("the proof did not arrive whole", e))?;
    Ok(body.to_vec())
}

/// Verifies the store at `url` directly, without a broker, walking it a page at a time.
/// With `retention_days` (the broker's `audit.retention_days`), a retention checkpoint
/// newer than that period allows is a broken link; without it, checkpoint times are not
/// checked and the output says so. With `keys` (verifier keys), the chains are checked
/// against their signed checkpoints too: those stored, and those at `checkpoints` (the
/// file sink's file or `s3://bucket/prefix`); without keys, the output says they were not.
pub async fn verify_store(
    url: &str,
    retention_days: Option<u32>,
    keys: &[String],
    checkpoints: Option<&str>,
    out: &mut impl Write,
) -> Result<bool, ClientError> {
    let keys = super::offline::parse_keys(keys)?;
    if keys.is_empty() && checkpoints.is_some() {
        return Err(fail(
            "--checkpoints needs at least one --key VERIFIER_KEY (printed by `audit keygen`)",
        ));
    }
    let published = match checkpoints {
        Some(c) => super::offline::load_notes(c).await?,
        None => Vec::new(),
    };
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        if !std::path::Path::new(path).exists() {
            return Err(fail(format!("{path}: no such audit database")));
        }
    }
    let store = crate::audit::AuditStore::open(url)
        .await
        .map_err(|e| failed("cannot open the audit store", e))?;
    let newest = retention_days.and_then(|d| crate::audit::newest_checkpoint(SystemClock.now(), d));
    let (v, _pages) = store
        .walk_chains(crate::audit::VERIFY_PAGE, newest)
        .await
        .map_err(|e| failed("cannot read the audit store", e))?;
    let read = |e| failed("cannot read the audit store", e);
    let v = if keys.is_empty() {
        v
    } else {
        let check = store
            .check_tree_heads(Ok(published), &keys)
            .await
            .map_err(read)?;
        v.with_tree_check(check)
    };
    let checked: Checked = serde_json::to_value(&v)
        .and_then(serde_json::from_value)
        .map_err(|e| failed("cannot describe the result", e))?;
    let mut text = describe(&checked);
    if keys.is_empty() {
        let heads = store.tree_heads(None).await.map_err(read)?;
        if !heads.is_empty() {
            text.push_str(&format!(
                "note: {} signed checkpoint{} in the store were not checked: give --key \
                 VERIFIER_KEY (and --checkpoints for the published copies)\n",
                heads.len(),
                if heads.len() == 1 { "" } else { "s" }
            ));
        }
    }
    if retention_days.is_none() {
        let checkpoints = store
            .checkpoints()
            .await
            .map_err(|e| failed("cannot read the audit store", e))?;
        if !checkpoints.is_empty() {
            text.push_str(&format!(
                "note: the age of {} retention checkpoint{} was not checked: give \
                 --retention-days (the broker's audit.retention_days)\n",
                checkpoints.len(),
                if checkpoints.len() == 1 { "" } else { "s" }
            ));
        }
    }
    out.write_all(text.as_bytes())
        .map_err(|e| failed("cannot write the result", e))?;
    Ok(v.ok)
}

fn describe(v: &Checked) -> String {
    let (ok, checked, legacy_checkpoints) = (v.ok, v.events_checked, v.legacy_checkpoints);
    let broken = v.first_broken.as_ref().unwrap_or(&Value::Null);
    let field = |k: &str| neutralise(&cell(broken.get(k).unwrap_or(&Value::Null))).into_owned();
    // `first_broken` repeats the first checkpoint problem when every link held.
    let link_broken = !broken.is_null()
        && v.checkpoint_problems
            .first()
            .is_none_or(|p| field("reason") != neutralise(&p.reason) || !field("id").is_empty());
    let mut text = String::new();
    for p in &v.checkpoint_problems {
        let chain = p.chain_id.as_deref().map(neutralise);
        let place = match (chain, p.seq) {
            (Some(c), Some(s)) => format!("chain {c} at position {s}: "),
            (Some(c), None) => format!("chain {c}: "),
            _ => String::new(),
        };
        text.push_str(&format!(
            "BROKEN: {place}{} (signed checkpoints)\n",
            neutralise(&p.reason)
        ));
    }
    text.push_str(&if ok || !link_broken {
        format!(
            "{}: {} ({checked} events checked)\n",
            if ok { "ok" } else { "BROKEN" },
            if ok {
                "every chain intact"
            } else {
                "every link holds, but the chains do not match their signed checkpoints"
            }
        )
    } else if field("id").is_empty() {
        format!(
            "BROKEN: chain {}, retention checkpoint at position {}: {} ({checked} events checked)\n",
            field("chain_id"),
            field("seq"),
            field("reason"),
        )
    } else {
        format!(
            "BROKEN: chain {} at position {} (event {}): {} ({checked} events checked)\n",
            field("chain_id"),
            field("seq"),
            field("id"),
            field("reason"),
        )
    });
    if v.checkpoints_verified > 0 || v.roots_checked > 0 {
        text.push_str(&format!(
            "signed checkpoints: {} verified, {} roots recomputed and compared\n",
            v.checkpoints_verified, v.roots_checked
        ));
    }
    if legacy_checkpoints > 0 {
        text.push_str(&format!(
            "note: retention checkpoints written by an older version, without the pruned \
             event's time, were accepted unchecked: {legacy_checkpoints}\n"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_become_absolute_times() {
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_773_065_489);
        assert_eq!(
            absolute_time("24h", now).ok().as_deref(),
            Some("2026-03-08T14:11:29Z")
        );
        assert_eq!(
            absolute_time("90s", now).ok().as_deref(),
            Some("2026-03-09T14:09:59Z")
        );
        assert_eq!(
            absolute_time("2026-01-01T00:00:00Z", now).ok().as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        for bad in ["", "h", "24", "24y", "-1h", "1.5h"] {
            assert!(absolute_time(bad, now).is_err(), "{bad}");
        }
    }
}
