//! The proof API with the real binary: `GET /v1/audit/receipts/{id}`,
//! `/v1/audit/proofs/inclusion` and `/v1/audit/proofs/consistency` against the stored
//! signed checkpoints; receipts checked offline by `audit verify-receipt` and by the
//! independent Python verifier (tests/verifier/rtbverify.py), honest and altered; reads
//! recorded; non-auditors refused.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rds_token_broker::audit::note::{CheckpointBody, SigningKey};
use serde_json::{Value, json};

use crate::audit_evidence::rtbverify;
use crate::checkpoints::{config, file_notes, issue};
use crate::support::app::{TestApp, problem};
use crate::support::binary::{self, RunningBroker};
use crate::support::config::BrokerToml;
use crate::support::eventually;
use crate::support::store::Store;

const WAIT: Duration = Duration::from_secs(30);

/// Runs `audit verify-receipt FILE --key ...`; (exit code, output).
fn verify_receipt(home: &Path, file: &Path, keys: &[String]) -> (i32, String) {
    let mut args = vec![
        "audit".to_owned(),
        "verify-receipt".into(),
        file.display().to_string(),
    ];
    for k in keys {
        args.extend(["--key".to_owned(), k.clone()]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = binary::run(home, &refs);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

async fn get(base: &str, path: &str) -> reqwest::Response {
    crate::support::client()
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap()
}

async fn get_ok(base: &str, path: &str) -> Value {
    let res = get(base, path).await;
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

/// The checkpoint sizes of `chain` in the file sink, ascending.
fn sizes_of(notes: &[String], chain: &str) -> Vec<u64> {
    let mut sizes: Vec<u64> = notes
        .iter()
        .filter(|n| n.starts_with(&format!("rds-token-broker/{chain}\n")))
        .map(|n| n.lines().nth(1).unwrap().parse().unwrap())
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// `note` re-signed by another key of the same name.
fn resigned(note: &str) -> String {
    let text = &note[..note.find("\n\n").unwrap() + 1];
    let body = CheckpointBody::parse(text).unwrap();
    let stranger = SigningKey::from_seed("broker.test", &[9; 32]).unwrap();
    stranger.sign(&body.to_text()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn receipts_and_proofs_verify_offline_and_each_alteration_is_named_sqlite() {
    receipts_and_proofs(Store::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn receipts_and_proofs_verify_offline_and_each_alteration_is_named_postgres() {
    receipts_and_proofs(Store::postgres().await).await;
}

async fn receipts_and_proofs(store: Store) {
    let home = tempfile::tempdir().unwrap();
    let (toml, verifier) = config(home.path(), &store, 1);
    let keys = vec![verifier.to_string()];
    let log = home.path().join("checkpoints.log");

    // A first instance (chain A) signs at least two checkpoints, then stops.
    let mut first = RunningBroker::serve(home.path(), &toml);
    for _ in 0..3 {
        issue(&first.base).await;
    }
    let chain = eventually(WAIT, || {
        let notes = file_notes(&log);
        async move {
            let origin = notes.first()?.lines().next()?.to_owned();
            Some(origin.strip_prefix("rds-token-broker/")?.to_owned())
        }
    })
    .await;
    let size = *sizes_of(&file_notes(&log), &chain).last().unwrap();
    issue(&first.base).await;
    issue(&first.base).await;
    eventually(WAIT, || {
        let grown = sizes_of(&file_notes(&log), &chain)
            .last()
            .is_some_and(|s| *s > size);
        async move { grown }
    })
    .await;
    assert!(first.terminate().await.success(), "{}", first.stderr());
    let sizes = sizes_of(&file_notes(&log), &chain);
    assert!(sizes.len() >= 2, "{sizes:?}");

    // A second instance (chain B) serves the proofs; it makes no checkpoint for an hour.
    let toml = toml.checkpoints("interval_seconds", 3600);
    let broker = RunningBroker::serve(home.path(), &toml);
    let base = broker.base.as_str();
    let issued = get_ok(base, "/v1/audit/events?outcome=issued&limit=1000").await;
    let events = issued["events"].as_array().unwrap();
    let first_issued = events
        .iter()
        .filter(|e| e["chain_id"] == chain.as_str())
        .min_by_key(|e| e["seq"].as_i64().unwrap())
        .unwrap();
    let id = first_issued["id"].as_str().unwrap();

    // The receipt: a download, the event as exported, a proof to the newest checkpoint.
    let res = get(base, &format!("/v1/audit/receipts/{id}")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-disposition"],
        format!("attachment; filename=\"receipt-{id}.json\"").as_str()
    );
    let receipt: Value = res.json().await.unwrap();
    assert_eq!(&receipt["event"], first_issued);
    let newest = *sizes.last().unwrap();
    assert_eq!(receipt["proof"]["tree_size"], newest);
    assert_eq!(receipt["proof"]["chain_id"], chain.as_str());
    assert_eq!(
        receipt["proof"]["leaf_index"],
        first_issued["seq"].as_i64().unwrap() - 1
    );

    // Honest: both verifiers accept it.
    let file = home.path().join("receipt.json");
    std::fs::write(&file, receipt.to_string()).unwrap();
    let (code, text) = verify_receipt(home.path(), &file, &keys);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("ok: event {id} is leaf")) && text.contains("signed by broker.test"),
        "{text}"
    );
    let (code, text) = rtbverify("receipt", &file, &keys);
    assert_eq!(code, 0, "{text}");
    // The CLI fetches the same receipt.
    let fetched = home.path().join("fetched.json");
    let out = binary::run(
        home.path(),
        &[
            "audit",
            "receipt",
            id,
            "--broker",
            base,
            "--output",
            fetched.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, text) = verify_receipt(home.path(), &fetched, &keys);
    assert_eq!(code, 0, "{text}");

    // Altered: each is refused by both, the broker's verifier saying what is wrong.
    let mut altered_event = receipt.clone();
    altered_event["event"]["db_user"] = "root".into();
    let mut flipped = receipt.clone();
    let h = flipped["proof"]["hashes"][0].as_str().unwrap();
    let mut raw = B64.decode(h).unwrap();
    raw[0] ^= 1;
    flipped["proof"]["hashes"][0] = B64.encode(raw).into();
    let mut wrong_index = receipt.clone();
    wrong_index["proof"]["leaf_index"] =
        (receipt["proof"]["leaf_index"].as_u64().unwrap() + 1).into();
    let mut other_key = receipt.clone();
    other_key["checkpoint"] = resigned(receipt["checkpoint"].as_str().unwrap()).into();
    for (name, bad, want) in [
        (
            "altered event",
            altered_event,
            "BROKEN: the event was altered: its hash does not match its contents",
        ),
        (
            "flipped proof hash",
            flipped,
            "BROKEN: the inclusion proof does not lead from the event's leaf to the checkpoint's root",
        ),
        (
            "wrong leaf index",
            wrong_index,
            "BROKEN: the proof is for leaf",
        ),
        (
            "another key",
            other_key,
            "BROKEN: the checkpoint is not signed by any of the given keys",
        ),
    ] {
        std::fs::write(&file, bad.to_string()).unwrap();
        let (code, text) = verify_receipt(home.path(), &file, &keys);
        assert_eq!(code, 1, "{name}: {text}");
        assert!(text.contains(want), "{name}: {text}");
        let (code, text) = rtbverify("receipt", &file, &keys);
        assert_eq!(code, 1, "{name} passed the independent verifier: {text}");
    }
    // A key that is no verifier key: could not check (2).
    let (code, text) = verify_receipt(home.path(), &file, &["nonsense".into()]);
    assert_eq!(code, 2, "{text}");

    // The inclusion proof by itself, against the newest or a chosen checkpoint.
    let proof = get_ok(base, &format!("/v1/audit/proofs/inclusion?id={id}")).await;
    assert_eq!(proof["hashes"], receipt["proof"]["hashes"]);
    assert_eq!(proof["checkpoint"], receipt["checkpoint"]);
    let older = get_ok(
        base,
        &format!("/v1/audit/proofs/inclusion?id={id}&tree_size={}", sizes[0]),
    )
    .await;
    assert_eq!(older["tree_size"], sizes[0]);
    let c = crate::support::client();
    for (path, status) in [
        ("/v1/audit/proofs/inclusion?id=nope".into(), 400),
        (
            format!("/v1/audit/proofs/inclusion?id={id}&tree_size=x"),
            400,
        ),
        (
            format!("/v1/audit/proofs/inclusion?id={id}&tree_size=0"),
            400,
        ),
        (format!("/v1/audit/proofs/inclusion?id={id}&color=red"), 400),
        (
            format!(
                "/v1/audit/proofs/inclusion?id={id}&tree_size={}",
                newest + 1000
            ),
            404,
        ),
        (
            "/v1/audit/proofs/inclusion?id=0195c2a1-0000-7000-8000-000000000000".into(),
            404,
        ),
        ("/v1/audit/receipts/not-an-id".into(), 400),
    ] {
        let res = c.get(format!("{base}{path}")).send().await.unwrap();
        problem(res, status).await;
    }
    // Chain B's newest event has no checkpoint yet.
    issue(base).await;
    let mine = get_ok(base, "/v1/audit/events?outcome=issued&limit=1").await;
    let fresh = mine["events"][0]["id"].as_str().unwrap();
    assert_ne!(mine["events"][0]["chain_id"], chain.as_str());
    let body = problem(get(base, &format!("/v1/audit/receipts/{fresh}")).await, 404).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("no checkpoint covers this event yet"),
        "{body}"
    );

    // Consistency between two stored checkpoints verifies independently; a forged proof
    // does not.
    let notes = file_notes(&log);
    let note_of = |size: u64| {
        notes
            .iter()
            .find(|n| n.starts_with(&format!("rds-token-broker/{chain}\n{size}\n")))
            .unwrap()
            .clone()
    };
    let (from, to) = (sizes[0], newest);
    let cons = get_ok(
        base,
        &format!("/v1/audit/proofs/consistency?chain_id={chain}&from={from}&to={to}"),
    )
    .await;
    assert_eq!(cons["from"], from);
    // `audit proof` prints what the API answers.
    let cli = |args: &[&str]| {
        let mut all = vec!["audit", "proof"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--broker", base]);
        let out = binary::run(home.path(), &all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let (from_s, to_s) = (from.to_string(), to.to_string());
    assert_eq!(
        cli(&[
            "consistency",
            "--chain-id",
            &chain,
            "--from",
            &from_s,
            "--to",
            &to_s
        ]),
        cons
    );
    let inclusion = get_ok(base, &format!("/v1/audit/proofs/inclusion?id={id}")).await;
    assert_eq!(cli(&["inclusion", id]), inclusion);
    let doc = json!({"old": note_of(from), "new": note_of(to), "hashes": cons["hashes"]});
    let cfile = home.path().join("consistency.json");
    std::fs::write(&cfile, doc.to_string()).unwrap();
    let (code, text) = rtbverify("consistency", &cfile, &keys);
    assert_eq!(code, 0, "{text}");
    let mut forged = doc.clone();
    let h = forged["hashes"][0].as_str().unwrap();
    let mut raw = B64.decode(h).unwrap();
    raw[31] ^= 0x80;
    forged["hashes"][0] = B64.encode(raw).into();
    std::fs::write(&cfile, forged.to_string()).unwrap();
    let (code, text) = rtbverify("consistency", &cfile, &keys);
    assert_eq!(code, 1, "a forged consistency proof passed: {text}");
    for (query, status) in [
        (format!("chain_id={chain}&from={to}&to={from}"), 400),
        (format!("chain_id={chain}&from={from}"), 400),
        (format!("chain_id=a%0Ab&from={from}&to={to}"), 400),
        (
            format!("chain_id={chain}&from={from}&to={}", to + 1000),
            404,
        ),
    ] {
        let res = get(base, &format!("/v1/audit/proofs/consistency?{query}")).await;
        problem(res, status).await;
    }

    // Every read is in the trail.
    let reads = store
        .rows(
            "SELECT reason FROM audit_events WHERE outcome = 'audit_read'",
            &["reason"],
        )
        .await;
    let reasons: Vec<String> = reads.into_iter().filter_map(|r| r[0].clone()).collect();
    for want in [
        format!("GET /v1/audit/receipts {{id={id}}}: 1 events"),
        format!("GET /v1/audit/proofs/inclusion {{id={id}}}: 1 events"),
        format!("GET /v1/audit/proofs/consistency {{chain_id={chain}&from={from}&to={to}}}"),
    ] {
        assert!(
            reasons.iter().any(|r| r.starts_with(&want)),
            "{want} not recorded: {reasons:?}"
        );
    }

    // A store that no longer reproduces a checkpoint gives no proof, but a 409 that says so.
    store
        .exec(&format!(
            "UPDATE audit_events SET hash = '{}' WHERE chain_id = '{chain}' AND seq = 2",
            "ab".repeat(32)
        ))
        .await;
    let body = problem(get(base, &format!("/v1/audit/receipts/{id}")).await, 409).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("does not match the checkpoint of size {newest}")),
        "{body}"
    );
    drop(broker);
}

#[tokio::test]
async fn the_proof_routes_are_for_auditors_only() {
    let store = Store::sqlite();
    let app = TestApp::spawn_toml(
        BrokerToml::unauthenticated()
            .without_auditors()
            .audit_url(store.url()),
    )
    .await;
    for path in [
        "/v1/audit/receipts/0195c2a1-0000-7000-8000-000000000001",
        "/v1/audit/proofs/inclusion?id=0195c2a1-0000-7000-8000-000000000001",
        "/v1/audit/proofs/consistency?chain_id=a&from=1&to=2",
    ] {
        problem(app.get(path).await, 403).await;
    }
}
