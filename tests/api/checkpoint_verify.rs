//! Online verification against signed checkpoints (issue 19): `audit verify --audit-url`
//! (the real binary reading SQLite or PostgreSQL) and `GET /v1/audit/verify` catch each
//! tampering the hash chain alone cannot, and name the chain and position; and offline
//! verification reads the S3 sink's checkpoints from `s3://` (moto).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use rds_token_broker::audit::merkle::{TreeBuilder, leaf_hash};
use rds_token_broker::audit::note::{self, CheckpointBody, SigningKey};
use rds_token_broker::audit::{AuditEvent, AuditStore, GENESIS, Outcome, TreeHead};
use serde_json::{Value, json};

use crate::support::binary::{self, RunningBroker};
use crate::support::config::BrokerToml;
use crate::support::eventually;
use crate::support::moto::Moto;
use crate::support::store::Store;

const CHAIN: &str = "0195c2a0-0000-7000-8000-00000000c4a1";
const WAIT: Duration = Duration::from_secs(30);

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed("broker.test", &[seed; 32]).unwrap()
}

/// `n` linked events of [`CHAIN`]; `tag` makes chains differ.
fn events(n: usize, tag: &str) -> Vec<AuditEvent> {
    let mut prev = GENESIS.to_owned();
    (1..=n)
        .map(|seq| {
            let mut e = AuditEvent {
                subject: Some(format!("{tag}-{seq}")),
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

/// The stored checkpoint of the first `size` of `events`, signed with `k`.
fn head(events: &[AuditEvent], size: usize, k: &SigningKey) -> TreeHead {
    let mut t = TreeBuilder::new();
    for e in &events[..size] {
        t.push(leaf_hash(
            &hex::decode(&e.hash).unwrap().try_into().unwrap(),
        ));
    }
    let body = CheckpointBody {
        origin: format!("rds-token-broker/{CHAIN}"),
        tree_size: size as u64,
        root_hash: t.root(),
    };
    TreeHead {
        chain_id: CHAIN.into(),
        tree_size: size as u64,
        root_hash: base64::engine::general_purpose::STANDARD.encode(body.root_hash),
        note: k.sign(&body.to_text()).unwrap(),
        created_at: "2026-03-09T14:12:00.000Z".into(),
    }
}

/// A store holding ten events with checkpoints at 4 and 8 (signed with `key(1)`), and
/// their published copies in `dir/checkpoints.log`.
struct Trail {
    store: Store,
    db: AuditStore,
    published: PathBuf,
}

async fn trail(store: Store, dir: &Path) -> Trail {
    let db = AuditStore::open(&store.url()).await.unwrap();
    let events = events(10, "svc");
    db.append(&mut None, &events).await.unwrap();
    let published = dir.join("checkpoints.log");
    let mut text = String::new();
    for size in [4, 8] {
        let h = head(&events, size, &key(1));
        db.insert_tree_head(&h).await.unwrap();
        text.push_str(&h.note);
        text.push('\n');
    }
    std::fs::write(&published, text).unwrap();
    Trail {
        store,
        db,
        published,
    }
}

impl Trail {
    /// `audit verify --audit-url` trusting `key(1)`, with the published copies or not.
    fn verify(&self, dir: &Path, with_published: bool) -> (i32, String) {
        let url = self.store.url();
        let k = key(1).verifier_key().to_string();
        let mut args = vec!["audit", "verify", "--audit-url", &url, "--key", &k];
        let published = self.published.display().to_string();
        if with_published {
            args.extend(["--checkpoints", &published]);
        }
        let out = binary::run(dir, &args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// Replaces every event with ten others, hashes and links recomputed.
    async fn rewrite_events(&self) -> Vec<AuditEvent> {
        self.store.exec("DELETE FROM audit_events").await;
        let forged = events(10, "forged");
        self.db.append(&mut None, &forged).await.unwrap();
        forged
    }
}

/// Asserts that verification failed (exit 1) and that `out` has a line naming the
/// chain, the position and `what`.
fn broken_at(code: i32, out: &str, seq: u64, what: &str) {
    assert_eq!(code, 1, "{out}");
    let place = format!("chain {CHAIN} at position {seq}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("BROKEN") && l.contains(&place) && l.contains(what)),
        "no line with {place:?} and {what:?} in:\n{out}"
    );
}

async fn tamper_cases(make: impl AsyncFn() -> Store) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Intact: every signature and root checked, the published copies too.
    let t = trail(make().await, d).await;
    let (code, out) = t.verify(d, true);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok: every chain intact (10 events checked)")
            && out.contains("signed checkpoints: 4 verified, 2 roots recomputed and compared"),
        "{out}"
    );

    // An edited event: its hash no longer matches (the chain walk finds it).
    let t = trail(make().await, d).await;
    t.store
        .exec("UPDATE audit_events SET subject = 'admin' WHERE seq = 3")
        .await;
    let (code, out) = t.verify(d, true);
    broken_at(code, &out, 3, "was altered");

    // A deleted middle event: below a checkpoint, the tree check names it too.
    let t = trail(make().await, d).await;
    t.store.exec("DELETE FROM audit_events WHERE seq = 5").await;
    let (code, out) = t.verify(d, true);
    broken_at(code, &out, 5, "missing or out of order");
    broken_at(code, &out, 5, "event 5 is missing");

    // The newest events deleted, beyond the last checkpoint: every link still holds;
    // only the checkpoints show that events 7 and 8 existed.
    let t = trail(make().await, d).await;
    t.store.exec("DELETE FROM audit_events WHERE seq > 6").await;
    let (code, out) = t.verify(d, false);
    broken_at(code, &out, 7, "events 7..=8 are missing");
    assert!(out.contains("every link holds"), "{out}");

    // Two events swapped.
    let t = trail(make().await, d).await;
    for sql in [
        "UPDATE audit_events SET seq = 100 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = 4",
        "UPDATE audit_events SET seq = 4 WHERE seq = 100",
    ] {
        t.store.exec(sql).await;
    }
    let (code, out) = t.verify(d, true);
    broken_at(code, &out, 3, "prev_hash");
    broken_at(code, &out, 4, "the checkpoint of size 4 does not match");

    // The chain rewritten wholesale with recomputed hashes: every link holds, the
    // checkpoints do not.
    let t = trail(make().await, d).await;
    let forged = t.rewrite_events().await;
    let (code, out) = t.verify(d, false);
    broken_at(code, &out, 4, "chain was rewritten");
    broken_at(code, &out, 8, "does not match events 1..=8");

    // ... and the stored checkpoints rewritten to match, signed with another key: the
    // key gives them away, and so do the published copies.
    t.store.exec("DELETE FROM audit_tree_heads").await;
    for size in [4, 8] {
        t.db.insert_tree_head(&head(&forged, size, &key(2)))
            .await
            .unwrap();
    }
    let (code, out) = t.verify(d, false);
    broken_at(code, &out, 4, "not signed by any of the given keys");
    broken_at(code, &out, 8, "not signed by any of the given keys");
    let (code, out) = t.verify(d, true);
    broken_at(code, &out, 4, "chain was rewritten");

    // ... even when signed with the broker's own (stolen) key, the published copies differ.
    t.store.exec("DELETE FROM audit_tree_heads").await;
    for size in [4, 8] {
        t.db.insert_tree_head(&head(&forged, size, &key(1)))
            .await
            .unwrap();
    }
    let (code, out) = t.verify(d, false);
    assert_eq!(code, 0, "stored checkpoints alone cannot tell: {out}");
    let (code, out) = t.verify(d, true);
    broken_at(code, &out, 4, "fork: two signed checkpoints");
    broken_at(code, &out, 8, "fork: two signed checkpoints");

    // A fork: a checkpoint of size 6 over another history, beside the honest 4 and 8.
    let t = trail(make().await, d).await;
    t.db.insert_tree_head(&head(&events(10, "other"), 6, &key(1)))
        .await
        .unwrap();
    let (code, out) = t.verify(d, false);
    broken_at(code, &out, 6, "the checkpoint of size 6 does not match");
    broken_at(
        code,
        &out,
        6,
        "fork: the checkpoint of size 6 is inconsistent with the one of size 8",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_online_verify_catches_each_tampering_by_chain_and_position() {
    tamper_cases(async || Store::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_online_verify_catches_each_tampering_by_chain_and_position() {
    tamper_cases(Store::postgres).await;
}

async fn get_verify(base: &str) -> Value {
    crate::support::client()
        .get(format!("{base}/v1/audit/verify"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn issue(base: &str) {
    let res = crate::support::client()
        .post(format!("{base}/v1/tokens"))
        .json(&json!({"target": "ledger"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

/// A broker signing checkpoints every second into `home/checkpoints.log`, the key
/// `home/checkpoint.pem` (made with `audit keygen`).
fn broker_config(home: &Path, store: &Store) -> (BrokerToml, note::VerifierKey) {
    let key_file = home.join("checkpoint.pem");
    let o = binary::run(
        home,
        &[
            "audit",
            "keygen",
            "--name",
            "broker.test",
            "--out",
            key_file.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let verifier = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    let toml = BrokerToml::unauthenticated()
        .audit_url(store.url())
        .checkpoints("key_name", "broker.test")
        .checkpoints("signing_key_file", key_file.to_str().unwrap())
        .checkpoints("interval_seconds", 1)
        .checkpoints("file", home.join("checkpoints.log").to_str().unwrap());
    (toml, verifier)
}

#[tokio::test(flavor = "multi_thread")]
async fn get_verify_checks_stored_and_published_checkpoints() {
    let home = tempfile::tempdir().unwrap();
    let store = Store::sqlite();
    let (toml, _) = broker_config(home.path(), &store);
    let broker = RunningBroker::serve(home.path(), &toml);
    for _ in 0..3 {
        issue(&broker.base).await;
    }
    let v = eventually(WAIT, || {
        let base = broker.base.clone();
        async move {
            let v = get_verify(&base).await;
            let roots = v["roots_checked"].as_u64().unwrap_or(0);
            // Each stored checkpoint is one root; more signatures than roots means the
            // file sink's copies were read too (the file may lag the newest).
            (roots >= 2 && v["checkpoints_verified"].as_u64() > Some(roots)).then_some(v)
        }
    })
    .await;
    assert_eq!(v["ok"], true, "{v}");
    assert!(v.get("checkpoint_problems").is_none(), "{v}");

    // The stored checkpoints re-signed with another key.
    let other = key(9);
    let row = store
        .row(
            "SELECT chain_id, CAST(tree_size AS TEXT) AS s FROM audit_tree_heads \
             ORDER BY tree_size LIMIT 1",
            &["chain_id", "s"],
        )
        .await;
    let (chain, first) = (row[0].clone(), row[1].parse::<u64>().unwrap());
    let body = CheckpointBody {
        origin: format!("rds-token-broker/{chain}"),
        tree_size: first,
        root_hash: [7; 32],
    };
    let forged = other.sign(&body.to_text()).unwrap().replace('\'', "''");
    store
        .exec(&format!(
            "UPDATE audit_tree_heads SET note = '{forged}' WHERE tree_size = {first}"
        ))
        .await;
    let v = get_verify(&broker.base).await;
    assert_eq!(v["ok"], false, "{v}");
    let problems = v["checkpoint_problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["chain_id"] == chain.as_str()
            && p["seq"] == first
            && p["reason"]
                .as_str()
                .unwrap()
                .contains("not signed by any of the given keys")),
        "{v}"
    );
    // Every link held: first_broken names the first checkpoint problem.
    assert_eq!(v["first_broken"]["chain_id"], chain.as_str(), "{v}");
    drop(broker);
}

fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let creds = aws_sdk_s3::config::Credentials::new("test", "test", None, None, "test");
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// `audit verify --export FILE --checkpoints s3://...` against moto.
fn verify_s3(home: &Path, moto: &str, export: &Path, location: &str, key: &str) -> (i32, String) {
    let out = binary::command(home)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", moto)
        .args(["audit", "verify", "--export"])
        .arg(export)
        .args(["--checkpoints", location, "--key", key])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn write_export(path: &Path, events: &[AuditEvent]) {
    let text: String = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_verify_reads_the_s3_sinks_checkpoints_and_catches_a_rewritten_export() {
    let moto = Moto::start().await;
    let s3 = s3_client(&moto.url());
    s3.create_bucket()
        .bucket("audit-checkpoints")
        .send()
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let store = Store::sqlite();
    let (toml, verifier) = broker_config(home.path(), &store);
    let toml = toml
        .checkpoints("s3_bucket", "audit-checkpoints")
        .checkpoints("s3_prefix", "prod")
        .checkpoints("s3_region", "us-east-1")
        .checkpoints("s3_endpoint", moto.url());
    let mut broker = RunningBroker::serve(home.path(), &toml);
    for _ in 0..3 {
        issue(&broker.base).await;
    }
    assert!(broker.terminate().await.success(), "{}", broker.stderr());
    let events = AuditStore::open(&store.url())
        .await
        .unwrap()
        .all_by_chain()
        .await
        .unwrap();
    let notes =
        rds_token_broker::audit::checkpoint::s3::read_notes(&s3, "audit-checkpoints", "prod")
            .await
            .unwrap();
    assert!(!notes.is_empty());
    let export = home.path().join("export.ndjson");
    write_export(&export, &events);
    let k = verifier.to_string();
    let (code, out) = verify_s3(
        home.path(),
        &moto.url(),
        &export,
        "s3://audit-checkpoints/prod",
        &k,
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("{} signed checkpoints verified", notes.len())),
        "{out}"
    );

    // The first event altered and the chain re-hashed: every link holds, the roots in S3
    // do not match.
    let mut forged = events.clone();
    forged[0].subject = Some("someone-else".into());
    let mut prev = GENESIS.to_owned();
    for e in &mut forged {
        e.prev_hash = prev.clone();
        e.hash = e.compute_hash().unwrap();
        prev.clone_from(&e.hash);
    }
    write_export(&export, &forged);
    let (code, out) = verify_s3(
        home.path(),
        &moto.url(),
        &export,
        "s3://audit-checkpoints/prod",
        &k,
    );
    assert_eq!(code, 1, "{out}");
    let chain = &events[0].chain_id;
    assert!(
        out.contains(&format!("BROKEN: chain {chain} at position"))
            && out.contains("the chain was rewritten"),
        "{out}"
    );
    // A prefix with no checkpoints under it (a typo?) cannot vouch for anything.
    let (code, out) = verify_s3(
        home.path(),
        &moto.url(),
        &export,
        "s3://audit-checkpoints/nothing-here",
        &k,
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no signed checkpoints"), "{out}");
}
