//! Issue 19's evidence checked from outside: the real binary's offline `audit verify
//! --export` on an export and a checkpoint file, honest and tampered, and the independent
//! Python verifier (tests/verifier/rtbverify.py, written from the RFCs) on a receipt.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use rds_token_broker::audit::merkle::{Hash, TreeBuilder, inclusion_proof, leaf_hash};
use rds_token_broker::audit::note::{CheckpointBody, SigningKey};
use rds_token_broker::audit::{AuditEvent, GENESIS, Outcome};

use crate::support::binary;

const CHAIN: &str = "0195c2a0-0000-7000-8000-00000000c4a1";

fn events(n: usize) -> Vec<AuditEvent> {
    let mut prev = GENESIS.to_owned();
    (1..=n)
        .map(|seq| {
            let mut e = AuditEvent {
                subject: Some(format!("svc-{seq}")),
                db_user: Some("app".into()),
                chain_id: CHAIN.into(),
                seq: seq as i64,
                prev_hash: prev.clone(),
                ..AuditEvent::new(
                    format!("0195c2a1-0000-7000-8000-{seq:012}"),
                    "2026-03-09T14:11:29.000Z".into(),
                    Outcome::Issued,
                )
            };
            e.hash = e.compute_hash().unwrap();
            prev.clone_from(&e.hash);
            e
        })
        .collect()
}

fn leaves(events: &[AuditEvent]) -> Vec<Hash> {
    events
        .iter()
        .map(|e| leaf_hash(&hex::decode(&e.hash).unwrap().try_into().unwrap()))
        .collect()
}

fn checkpoint(events: &[AuditEvent], size: usize, key: &SigningKey) -> String {
    let mut t = TreeBuilder::new();
    for l in leaves(&events[..size]) {
        t.push(l);
    }
    let body = CheckpointBody {
        origin: format!("rds-token-broker/{CHAIN}"),
        tree_size: size as u64,
        root_hash: t.root(),
    };
    key.sign(&body.to_text()).unwrap()
}

fn write_export(dir: &Path, events: &[AuditEvent]) -> PathBuf {
    let path = dir.join("events.ndjson");
    let text: String = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// The checkpoint file sink's format: each note followed by an empty line.
fn write_notes(dir: &Path, notes: &[String]) -> PathBuf {
    let path = dir.join("checkpoints.log");
    let text: String = notes.iter().map(|n| format!("{n}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

fn verify(dir: &Path, export: &Path, notes: &Path, keys: &[String]) -> (i32, String) {
    let mut args = vec![
        "audit".to_owned(),
        "verify".into(),
        "--export".into(),
        export.display().to_string(),
        "--checkpoints".into(),
        notes.display().to_string(),
    ];
    for k in keys {
        args.extend(["--key".to_owned(), k.clone()]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = binary::run(dir, &refs);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn offline_verify_of_the_real_binary_accepts_an_honest_export_and_names_each_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_seed("audit.example.com", &[7; 32]).unwrap();
    let keys = vec![key.verifier_key().to_string()];
    let honest = events(12);
    let notes = write_notes(
        dir.path(),
        &[checkpoint(&honest, 5, &key), checkpoint(&honest, 10, &key)],
    );

    let export = write_export(dir.path(), &honest);
    let (code, text) = verify(dir.path(), &export, &notes, &keys);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("ok: 12 events in 1 chains, 2 signed checkpoints verified, 2 roots"),
        "{text}"
    );

    let mut cases: Vec<(&str, Vec<AuditEvent>, &str)> = Vec::new();
    let mut edited = honest.clone();
    edited[6].db_user = Some("root".into());
    cases.push(("edited", edited, "at position 7: the event was altered"));
    let mut deleted = honest.clone();
    deleted.remove(3);
    cases.push(("deleted", deleted, "at position 4: events are missing"));
    cases.push((
        "newest deleted",
        honest[..8].to_vec(),
        "at position 9: events 9..=10 are missing",
    ));
    let mut reordered = honest.clone();
    reordered.swap(1, 2);
    cases.push(("reordered", reordered, "at position 2: events are missing"));
    let mut rewritten = events(12);
    for e in &mut rewritten {
        e.db_user = Some("root".into());
    }
    let mut prev = GENESIS.to_owned();
    for e in &mut rewritten {
        e.prev_hash = prev.clone();
        e.hash = e.compute_hash().unwrap();
        prev.clone_from(&e.hash);
    }
    cases.push((
        "rewritten",
        rewritten,
        "at position 5: the checkpoint of size 5 does not match",
    ));
    for (name, tampered, want) in cases {
        let export = write_export(dir.path(), &tampered);
        let (code, text) = verify(dir.path(), &export, &notes, &keys);
        assert_eq!(code, 1, "{name}: {text}");
        assert!(
            text.contains(&format!("chain {CHAIN} {want}")),
            "{name}: {text}"
        );
    }

    // A checkpoint signed by a key not given.
    let export = write_export(dir.path(), &honest);
    let stranger = SigningKey::from_seed("audit.example.com", &[8; 32]).unwrap();
    let bad = write_notes(dir.path(), &[checkpoint(&honest, 12, &stranger)]);
    let (code, text) = verify(dir.path(), &export, &bad, &keys);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!(
            "chain {CHAIN} at position 12: a checkpoint is not signed by any of the given keys"
        )),
        "{text}"
    );

    // A fork: a second checkpoint of size 10 over a different history.
    let mut forked = honest[..5].to_vec();
    let mut prev = forked[4].hash.clone();
    for mut e in events(12).into_iter().skip(5) {
        e.reason = Some("forked".into());
        e.prev_hash = prev.clone();
        e.hash = e.compute_hash().unwrap();
        prev.clone_from(&e.hash);
        forked.push(e);
    }
    let fork = write_notes(
        dir.path(),
        &[
            checkpoint(&honest, 5, &key),
            checkpoint(&honest, 10, &key),
            checkpoint(&forked, 10, &key),
        ],
    );
    let (code, text) = verify(dir.path(), &export, &fork, &keys);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("chain {CHAIN} at position 10: fork")),
        "{text}"
    );

    // Usage: a key that is not a verifier key is a "could not check" (2).
    let (code, text) = verify(dir.path(), &export, &notes, &["nonsense".into()]);
    assert_eq!(code, 2, "{text}");
}

fn python() -> PathBuf {
    let venv = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python"));
    assert!(
        venv.exists(),
        "{} is missing: run scripts/test once",
        venv.display()
    );
    venv
}

/// Runs the independent verifier; (exit code, output).
pub(crate) fn rtbverify(what: &str, file: &Path, keys: &[String]) -> (i32, String) {
    let mut cmd = Command::new(python());
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/verifier/rtbverify.py"
    ))
    .arg(what)
    .arg(file);
    for k in keys {
        cmd.arg("--key").arg(k);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A receipt built from the broker's own Merkle and note code, checked by the Python
/// verifier: honest ones pass; a flipped proof hash, a wrong index, an altered note, an
/// altered event and a wrong key do not.
#[test]
fn the_independent_verifier_accepts_honest_receipts_and_refuses_altered_ones() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_seed("audit.example.com", &[7; 32]).unwrap();
    let keys = vec![key.verifier_key().to_string()];
    let chain = events(7);
    let note = checkpoint(&chain, 7, &key);
    let b64 = |h: &Hash| base64::engine::general_purpose::STANDARD.encode(h);
    let receipt = |index: usize| {
        let proof = inclusion_proof(&leaves(&chain), index as u64).unwrap();
        serde_json::json!({
            "event": chain[index],
            "proof": {
                "chain_id": CHAIN,
                "leaf_index": index,
                "tree_size": 7,
                "hashes": proof.iter().map(b64).collect::<Vec<_>>(),
            },
            "checkpoint": note,
        })
    };
    let path = dir.path().join("receipt.json");
    for index in 0..7 {
        std::fs::write(&path, receipt(index).to_string()).unwrap();
        let (code, text) = rtbverify("receipt", &path, &keys);
        assert_eq!(code, 0, "leaf {index}: {text}");
        assert!(text.contains(&format!("is leaf {index} of 7")), "{text}");
    }
    let notes = dir.path().join("note.txt");
    std::fs::write(&notes, &note).unwrap();
    let (code, text) = rtbverify("checkpoint", &notes, &keys);
    assert_eq!(code, 0, "{text}");

    let mut flipped = receipt(3);
    let h = flipped["proof"]["hashes"][0].as_str().unwrap().to_owned();
    let mut raw = base64::engine::general_purpose::STANDARD.decode(h).unwrap();
    raw[0] ^= 1;
    flipped["proof"]["hashes"][0] = b64(&raw.try_into().unwrap()).into();
    let mut wrong_index = receipt(3);
    wrong_index["proof"]["leaf_index"] = 4.into();
    let mut altered_note = receipt(3);
    altered_note["checkpoint"] = note.replacen("\n7\n", "\n8\n", 1).into();
    let mut altered_event = receipt(3);
    altered_event["event"]["db_user"] = "root".into();
    let stranger = SigningKey::from_seed("audit.example.com", &[8; 32]).unwrap();
    for (name, bad, keys) in [
        ("flipped hash", flipped, keys.clone()),
        ("wrong index", wrong_index, keys.clone()),
        ("altered note", altered_note, keys.clone()),
        ("altered event", altered_event, keys.clone()),
        (
            "wrong key",
            receipt(3),
            vec![stranger.verifier_key().to_string()],
        ),
    ] {
        std::fs::write(&path, bad.to_string()).unwrap();
        let (code, text) = rtbverify("receipt", &path, &keys);
        assert_eq!(code, 1, "{name} was accepted: {text}");
        assert!(text.contains("invalid"), "{name}: {text}");
    }
}
