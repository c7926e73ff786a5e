//! `audit verify --export FILE --checkpoints FILE --key KEY`: an exported trail checked
//! against published checkpoints with no broker and no database
//! ([`crate::audit::offline`]); `audit verify-receipt FILE --key KEY`: one receipt
//! checked the same way ([`crate::audit::receipt`]).

use std::io::{BufReader, Write};
use std::path::Path;

use super::{ClientError, failed};
use crate::audit::note::{VerifierKey, split_notes};
use crate::audit::offline::{OfflineReport, verify_export};
use crate::audit::receipt::verify_receipt;
use crate::domain::text::{LONG, clean};

/// The `--key` verifier keys (at least one).
fn parse_keys(keys: &[String]) -> Result<Vec<VerifierKey>, ClientError> {
    let keys = keys
        .iter()
        .map(|k| {
            k.parse::<VerifierKey>()
                .map_err(|e| failed(format!("--key {}", clean(k, LONG)), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(ClientError::Message(
            "give at least one --key VERIFIER_KEY (printed by `audit keygen`)".into(),
        ));
    }
    Ok(keys)
}

/// Checks the receipt in `file` (`GET /v1/audit/receipts/{id}`) against `keys` and
/// prints the result: `Ok(true)` when it holds, `Ok(false)` (and what is wrong) when not.
pub fn verify_receipt_file(
    file: &Path,
    keys: &[String],
    out: &mut impl Write,
) -> Result<bool, ClientError> {
    let keys = parse_keys(keys)?;
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

/// Verifies `export` (NDJSON, as `audit export` writes it) against the signed notes in
/// the file `checkpoints` (the file sink's format), trusting `keys` (verifier keys in
/// their text form); prints the result. `Ok(true)` when nothing is wrong.
pub fn verify_files(
    export: &Path,
    checkpoints: &str,
    keys: &[String],
    out: &mut impl Write,
) -> Result<bool, ClientError> {
    let keys = parse_keys(keys)?;
    if checkpoints.starts_with("s3://") {
        return Err(ClientError::Message(
            "--checkpoints s3://... is not supported by this build yet: download the objects \
             (aws s3 cp --recursive) and concatenate them, each followed by an empty line"
                .into(),
        ));
    }
    let text = std::fs::read_to_string(checkpoints)
        .map_err(|e| failed(format!("cannot read {}", clean(checkpoints, LONG)), e))?;
    let notes = split_notes(&text).map_err(|e| {
        failed(
            format!("{} is not a checkpoint file", clean(checkpoints, LONG)),
            e,
        )
    })?;
    let file = std::fs::File::open(export)
        .map_err(|e| failed(format!("cannot open {}", export.display()), e))?;
    let report = verify_export(BufReader::new(file), &notes, &keys)
        .map_err(|e| failed(format!("cannot read {}", export.display()), e))?;
    out.write_all(describe(&report).as_bytes())
        .map_err(|e| failed("cannot write the result", e))?;
    Ok(report.ok)
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
