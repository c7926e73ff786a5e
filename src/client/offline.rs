//! `audit verify --export FILE --checkpoints FILE|s3://BUCKET/PREFIX --key KEY`: an
//! exported trail checked against published checkpoints with no broker and no database
//! ([`crate::audit::offline`]). The checkpoint and key loading serve `audit verify
//! --audit-url` too. `audit verify-receipt FILE --key KEY`: one receipt checked the same
//! way ([`crate::audit::receipt`]).

use std::io::{BufReader, Write};
use std::path::Path;

use super::{ClientError, failed};
use crate::audit::checkpoint::s3::read_s3_notes;
use crate::audit::note::{VerifierKey, split_notes};
use crate::audit::offline::{OfflineReport, verify_export};
use crate::audit::receipt::verify_receipt;
use crate::domain::text::{LONG, clean};

/// Verifies `export` (NDJSON, as `audit export` writes it) against the signed notes in
/// `checkpoints` (see [`load_notes`]), trusting `keys` (verifier keys in their text
/// form); prints the result. `Ok(true)` when nothing is wrong.
pub async fn verify_files(
    export: &Path,
    checkpoints: &str,
    keys: &[String],
    out: &mut impl Write,
) -> Result<bool, ClientError> {
    let keys = required_keys(keys)?;
    let notes = load_notes(checkpoints).await?;
    let file = std::fs::File::open(export)
        .map_err(|e| failed(format!("cannot open {}", export.display()), e))?;
    let report = verify_export(BufReader::new(file), &notes, &keys)
        .map_err(|e| failed(format!("cannot read {}", export.display()), e))?;
    out.write_all(describe(&report).as_bytes())
        .map_err(|e| failed("cannot write the result", e))?;
    Ok(report.ok)
}

/// Checks the receipt in `file` (`GET /v1/audit/receipts/{id}`) against `keys` and
/// prints the result: `Ok(true)` when it holds, `Ok(false)` (and what is wrong) when not.
pub fn verify_receipt_file(
    file: &Path,
    keys: &[String],
    out: &mut impl Write,
) -> Result<bool, ClientError> {
    let keys = required_keys(keys)?;
    let text =
        std::fs::read(file).map_err(|e| failed(format!("cannot read {}", file.display()), e))?;
    let text = String::from_utf8(text)
        .map_err(|e| failed(format!("{} is not UTF-8 text", file.display()), e))?;
    let (ok, line) = match verify_receipt(&text, &keys) {
        Ok(v) => (
            true,
            format!(
                "ok: event {} is leaf {} of {} in chain {}, in a checkpoint signed by {}\n",
                clean(&v.event_id, LONG),
                v.leaf_index,
                v.tree_size,
                clean(&v.chain_id, LONG),
                clean(&v.signed_by.join(", "), LONG),
            ),
        ),
        Err(e) => (
            false,
            format!("BROKEN: {}\n", clean(&e.to_string(), 4 * LONG)),
        ),
    };
    out.write_all(line.as_bytes())
        .map_err(|e| failed("cannot write the result", e))?;
    Ok(ok)
}

/// `--key` values as verifier keys, at least one.
fn required_keys(keys: &[String]) -> Result<Vec<VerifierKey>, ClientError> {
    let keys = parse_keys(keys)?;
    if keys.is_empty() {
        return Err(ClientError::Message(
            "give at least one --key VERIFIER_KEY (printed by `audit keygen`)".into(),
        ));
    }
    Ok(keys)
}

/// `--key` values as verifier keys.
pub fn parse_keys(keys: &[String]) -> Result<Vec<VerifierKey>, ClientError> {
    keys.iter()
        .map(|k| {
            k.parse::<VerifierKey>()
                .map_err(|e| failed(format!("--key {}", clean(k, LONG)), e))
        })
        .collect()
}

/// The signed notes at `checkpoints`: a file in the file sink's format, or
/// `s3://bucket/prefix`, the objects the S3 sink wrote under the prefix, read with the
/// usual AWS credentials, region (`AWS_REGION`) and endpoint (`AWS_ENDPOINT_URL_S3` or
/// `AWS_ENDPOINT_URL`, for an S3-compatible service).
/// Finding none is an error: a mistyped location must not pass for an empty one.
pub async fn load_notes(checkpoints: &str) -> Result<Vec<String>, ClientError> {
    let notes = read_notes(checkpoints).await?;
    if notes.is_empty() {
        return Err(ClientError::Message(format!(
            "no signed checkpoints at {}",
            clean(checkpoints, LONG)
        )));
    }
    Ok(notes)
}

async fn read_notes(checkpoints: &str) -> Result<Vec<String>, ClientError> {
    if checkpoints.starts_with("s3://") {
        let env = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
        };
        let region = env(&["AWS_REGION", "AWS_DEFAULT_REGION"]);
        let endpoint = env(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]);
        return read_s3_notes(checkpoints, region.as_deref(), endpoint.as_deref())
            .await
            .map_err(|e| failed(format!("cannot read {}", clean(checkpoints, LONG)), e));
    }
    let text = std::fs::read_to_string(checkpoints)
        .map_err(|e| failed(format!("cannot read {}", clean(checkpoints, LONG)), e))?;
    split_notes(&text).map_err(|e| {
        failed(
            format!("{} is not a checkpoint file", clean(checkpoints, LONG)),
            e,
        )
    })
}

/// The report for people: one line per problem, then a summary.
pub fn describe(r: &OfflineReport) -> String {
    let mut text = String::new();
    for p in &r.problems {
        let chain = p.chain_id.as_deref().map(|c| clean(c, LONG));
        let place = match (chain, p.seq) {
            (Some(c), Some(s)) => format!("chain {c} at position {s}: "),
            (Some(c), None) => format!("chain {c}: "),
            _ => String::new(),
        };
        text.push_str(&format!("BROKEN: {place}{}\n", clean(&p.reason, 4 * LONG)));
    }
    if r.problem_count > r.problems.len() as u64 {
        text.push_str(&format!(
            "... and {} more problems\n",
            r.problem_count - r.problems.len() as u64
        ));
    }
    text.push_str(&format!(
        "{}: {} events in {} chains, {} signed checkpoints verified, {} roots recomputed and compared\n",
        if r.ok { "ok" } else { "BROKEN" },
        r.events_checked,
        r.chains,
        r.checkpoints_verified,
        r.roots_checked,
    ));
    text
}
