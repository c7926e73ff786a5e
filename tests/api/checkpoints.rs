//! Signed checkpoints (`[audit.checkpoints]`), with the real binary: `audit keygen`, a
//! checkpoint every interval and at SIGTERM (only when the chain grew), the file, mirror
//! and S3 (moto) sinks, `GET /v1/audit/checkpoints`, and a failing sink that shows in
//! `/readyz` and `/metrics` while tokens still issue.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use rds_token_broker::audit::merkle;
use rds_token_broker::audit::note::{self, VerifierKey};
use serde_json::{Value, json};

use crate::support::binary::{self, RunningBroker};
use crate::support::config::{BrokerToml, Target};
use crate::support::eventually;
use crate::support::moto::Moto;
use crate::support::store::Store;

const WAIT: Duration = Duration::from_secs(30);

/// Runs `audit keygen` and returns the verifier key it printed last.
pub(crate) fn keygen(home: &Path, name: &str, out: &Path) -> VerifierKey {
    let o = binary::run(
        home,
        &[
            "audit",
            "keygen",
            "--name",
            name,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout).unwrap();
    stdout.lines().last().unwrap().parse().unwrap()
}

/// A broker with its trail on `store`, signing checkpoints every `interval` seconds with
/// a new key into `home/checkpoints.log`.
pub(crate) fn config(home: &Path, store: &Store, interval: u64) -> (BrokerToml, VerifierKey) {
    let key_file = home.join("checkpoint.pem");
    let verifier = keygen(home, "broker.test", &key_file);
    let toml = BrokerToml::unauthenticated()
        .audit_url(store.url())
        .checkpoints("key_name", "broker.test")
        .checkpoints("signing_key_file", key_file.to_str().unwrap())
        .checkpoints("interval_seconds", interval as i64)
        .checkpoints("file", home.join("checkpoints.log").to_str().unwrap());
    (toml, verifier)
}

pub(crate) async fn issue(base: &str) {
    let res = crate::support::client()
        .post(format!("{base}/v1/tokens"))
        .json(&json!({"target": "ledger"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

pub(crate) fn file_notes(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => note::split_notes(&text).unwrap(),
        Err(_) => Vec::new(),
    }
}

/// The Merkle root of the first `size` events of `chain`, recomputed from the stored
/// event hashes.
async fn root_from_store(store: &Store, chain: &str, size: u64) -> merkle::Hash {
    let rows = store
        .rows(
            &format!(
                "SELECT hash FROM audit_events WHERE chain_id = '{chain}' AND seq <= {size} ORDER BY seq"
            ),
            &["hash"],
        )
        .await;
    assert_eq!(rows.len() as u64, size);
    let leaves: Vec<merkle::Hash> = rows
        .iter()
        .map(|r| {
            let h: [u8; 32] = hex::decode(r[0].as_ref().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            merkle::leaf_hash(&h)
        })
        .collect();
    merkle::root(&leaves)
}

#[test]
fn keygen_writes_a_private_key_0600_never_overwrites_and_prints_the_verifier_key() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("key.pem");
    let verifier = keygen(home.path(), "broker.example.com", &out);
    assert_eq!(verifier.name(), "broker.example.com");
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let pem = std::fs::read_to_string(&out).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
    // The file signs for exactly that verifier key.
    let key = note::SigningKey::from_pkcs8_pem("broker.example.com", pem.as_bytes()).unwrap();
    assert_eq!(key.verifier_key(), &verifier);
    // A second run refuses to overwrite it.
    let again = binary::run(
        home.path(),
        &[
            "audit",
            "keygen",
            "--name",
            "other",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), pem);
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_are_signed_stored_and_published_every_interval() {
    let home = tempfile::tempdir().unwrap();
    let store = Store::sqlite();
    let (toml, verifier) = config(home.path(), &store, 1);
    let mirror = home.path().join("mirror.jsonl");
    let toml = toml.audit("mirror", mirror.to_str().unwrap());
    let broker = RunningBroker::serve(home.path(), &toml);
    for _ in 0..3 {
        issue(&broker.base).await;
    }
    let log = home.path().join("checkpoints.log");
    let last = eventually(WAIT, || {
        let found = file_notes(&log).into_iter().rev().find(|n| {
            note::verify_checkpoint(n, std::slice::from_ref(&verifier))
                .is_ok_and(|v| v.body.tree_size >= 3)
        });
        async move { found }
    })
    .await;
    let v = note::verify_checkpoint(&last, std::slice::from_ref(&verifier)).unwrap();
    assert_eq!(v.signed_by, ["broker.test"]);
    let chain = v
        .body
        .origin
        .strip_prefix("rds-token-broker/")
        .unwrap()
        .to_owned();
    // The signed root is the root of the chain's events as stored.
    assert_eq!(
        root_from_store(&store, &chain, v.body.tree_size).await,
        v.body.root_hash,
        "the checkpoint's root is not the root of the stored events"
    );
    // The mirror carries it as a record line.
    let mirrored = eventually(WAIT, || {
        let text = std::fs::read_to_string(&mirror).unwrap_or_default();
        let note = last.clone();
        async move {
            text.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|r| r["record"] == "checkpoint" && r["note"] == note.as_str())
        }
    })
    .await;
    assert_eq!(mirrored["chain_id"], chain);
    // GET /v1/audit/checkpoints lists it with the verifier key.
    let body: Value = crate::support::client()
        .get(format!(
            "{}/v1/audit/checkpoints?chain_id={chain}",
            broker.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["verifier_keys"], json!([verifier.to_string()]));
    let listed = body["checkpoints"].as_array().unwrap();
    assert!(
        listed.iter().any(|c| c["note"] == last.as_str()
            && c["tree_size"] == v.body.tree_size
            && c["root_hash"]
                == base64::engine::general_purpose::STANDARD.encode(v.body.root_hash)),
        "{body}"
    );
    // Newest first.
    let sizes: Vec<u64> = listed
        .iter()
        .map(|c| c["tree_size"].as_u64().unwrap())
        .collect();
    assert!(sizes.windows(2).all(|w| w[0] > w[1]), "{sizes:?}");
    // A bad chain_id is a 400 problem, not an error page.
    let res = crate::support::client()
        .get(format!(
            "{}/v1/audit/checkpoints?chain_id=a%0Ab",
            broker.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_makes_a_last_checkpoint_only_when_the_chain_grew() {
    let home = tempfile::tempdir().unwrap();
    let store = Store::sqlite();
    let (toml, verifier) = config(home.path(), &store, 3600);
    let log = home.path().join("checkpoints.log");
    // No events: no checkpoint.
    let mut idle = RunningBroker::serve(home.path(), &toml);
    // Serving (its SIGTERM handler installed) before the signal.
    let res = crate::support::client()
        .get(format!("{}/healthz", idle.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let status = idle.terminate().await;
    assert!(status.success(), "{status:?} {}", idle.stderr());
    assert!(
        file_notes(&log).is_empty(),
        "a checkpoint of an empty chain: {:?}",
        file_notes(&log)
    );
    // Two tokens, well within the hour: the checkpoint comes at SIGTERM.
    let mut broker = RunningBroker::serve(home.path(), &toml);
    issue(&broker.base).await;
    issue(&broker.base).await;
    assert!(file_notes(&log).is_empty());
    assert!(broker.terminate().await.success(), "{}", broker.stderr());
    let notes = file_notes(&log);
    assert_eq!(notes.len(), 1, "{notes:?}");
    let v = note::verify_checkpoint(&notes[0], &[verifier]).unwrap();
    assert_eq!(v.body.tree_size, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_reach_s3_one_object_per_checkpoint() {
    let moto = Moto::start().await;
    let s3 = s3_client(&moto.url());
    s3.create_bucket()
        .bucket("audit-checkpoints")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let store = Store::postgres().await;
    let (toml, verifier) = config(home.path(), &store, 1);
    let toml = toml
        .checkpoints("s3_bucket", "audit-checkpoints")
        .checkpoints("s3_prefix", "prod/")
        .checkpoints("s3_region", "us-east-1")
        .checkpoints("s3_endpoint", moto.url());
    let broker = RunningBroker::serve(home.path(), &toml);
    issue(&broker.base).await;
    let notes = eventually(WAIT, || {
        let s3 = s3.clone();
        async move {
            let notes = rds_token_broker::audit::checkpoint::s3::read_notes(
                &s3,
                "audit-checkpoints",
                "prod",
            )
            .await
            .unwrap();
            (!notes.is_empty()).then_some(notes)
        }
    })
    .await;
    let v = note::verify_checkpoint(&notes[0], std::slice::from_ref(&verifier)).unwrap();
    let chain = v.body.origin.strip_prefix("rds-token-broker/").unwrap();
    let listed = s3
        .list_objects_v2()
        .bucket("audit-checkpoints")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    let want = format!("prod/{chain}/{:020}", v.body.tree_size);
    assert!(keys.contains(&want.as_str()), "{keys:?} lacks {want}");
    // The file sink has the same checkpoint.
    let log = home.path().join("checkpoints.log");
    eventually(WAIT, || {
        let found = file_notes(&log).contains(&notes[0]);
        async move { found }
    })
    .await;
    drop(broker);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_published_checkpoint_is_never_replaced_in_s3() {
    use rds_token_broker::audit::TreeHead;
    use rds_token_broker::audit::checkpoint::s3::{self, S3Sink};
    let moto = Moto::start().await;
    let client = s3_client(&moto.url());
    client
        .create_bucket()
        .bucket("plain-bucket")
        .send()
        .await
        .unwrap();
    let cfg = rds_token_broker::config::S3SinkConfig {
        bucket: "plain-bucket".into(),
        prefix: "p".into(),
        region: None,
        endpoint: Some(moto.url()),
    };
    let creds = aws_sdk_s3::config::SharedCredentialsProvider::new(
        aws_sdk_s3::config::Credentials::new("test", "test", None, None, "test"),
    );
    let sink = S3Sink::new(&cfg, Some("us-east-1"), creds);
    let head = |note: &str| TreeHead {
        chain_id: "chain-1".into(),
        tree_size: 7,
        root_hash: "unused".into(),
        note: note.into(),
        created_at: "2026-11-25T00:00:00Z".into(),
    };
    sink.put(&head("first note\n")).await.unwrap();
    // Published again (a retry, a restart): the same bytes are fine.
    sink.put(&head("first note\n")).await.unwrap();
    // A different note for the same chain and size is refused and the first one stays,
    // even though this bucket has no Object Lock.
    let err = sink.put(&head("second note\n")).await.unwrap_err();
    assert!(
        err.contains("already holds a different checkpoint"),
        "{err}"
    );
    assert!(
        err.contains("s3://plain-bucket/p/chain-1/00000000000000000007"),
        "{err}"
    );
    let notes = s3::read_notes(&client, "plain-bucket", "p").await.unwrap();
    assert_eq!(notes, vec!["first note\n".to_owned()]);
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

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_sink_shows_in_readyz_and_metrics_while_tokens_still_issue() {
    let home = tempfile::tempdir().unwrap();
    let store = Store::sqlite();
    let (toml, _verifier) = config(home.path(), &store, 1);
    // A file in a directory that does not exist, and an S3 endpoint nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let toml = toml
        .checkpoints(
            "file",
            home.path()
                .join("missing/checkpoints.log")
                .to_str()
                .unwrap(),
        )
        .checkpoints("s3_bucket", "audit-checkpoints")
        .checkpoints("s3_endpoint", dead.as_str());
    let broker = RunningBroker::serve(home.path(), &toml);
    issue(&broker.base).await;
    let client = crate::support::client();
    let ready = eventually(WAIT, || {
        let (client, base) = (client.clone(), broker.base.clone());
        async move {
            let res = client.get(format!("{base}/readyz")).send().await.unwrap();
            let status = res.status();
            let body: Value = res.json().await.unwrap();
            let sinks = body["checks"]["checkpoints"]["sinks"].as_array().cloned()?;
            let failing = sinks.iter().filter(|s| s["ok"] == false).count();
            (failing == 2).then_some((status, body))
        }
    })
    .await;
    // Shown, but the broker stays ready: issuance does not depend on the sinks.
    assert_eq!(ready.0, 200, "{}", ready.1);
    assert_eq!(ready.1["status"], "ready");
    assert_eq!(ready.1["checks"]["checkpoints"]["ok"], false);
    let detail = ready.1["checks"]["checkpoints"]["detail"].as_str().unwrap();
    assert!(detail.contains("file") && detail.contains("s3"), "{detail}");
    let metrics = client
        .get(format!("{}/metrics", broker.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for sink in ["file", "s3"] {
        assert!(
            metrics.contains(&format!(
                "rds_token_broker_audit_checkpoint_sink_failing{{sink=\"{sink}\"}} 1"
            )),
            "{metrics}"
        );
    }
    assert!(
        metrics.contains("rds_token_broker_audit_checkpoint_publish_failures_total{sink=\"file\"}")
    );
    // Tokens still issue, and checkpoints are still made and stored.
    issue(&broker.base).await;
    let body: Value = client
        .get(format!("{}/v1/audit/checkpoints", broker.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !body["checkpoints"].as_array().unwrap().is_empty(),
        "{body}"
    );
}

/// The tree-head storage (`audit_tree_heads`) and the leaf hashes, on one store.
async fn tree_heads_are_stored_and_found(store: Store) {
    let app = crate::support::app::TestApp::spawn_toml(
        BrokerToml::unauthenticated().audit_url(store.url()),
    )
    .await;
    for _ in 0..5 {
        app.token(json!({"target": "ledger"})).await;
    }
    let chain = store
        .row(
            "SELECT MAX(chain_id) AS chain_id FROM audit_events",
            &["chain_id"],
        )
        .await
        .remove(0);
    let s = rds_token_broker::audit::AuditStore::open(&store.url())
        .await
        .unwrap();
    let leaves = s.leaf_hashes(&chain, 5).await.unwrap();
    assert_eq!(leaves.len(), 5);
    assert_eq!(
        merkle::root(&leaves),
        root_from_store(&store, &chain, 5).await
    );
    assert_eq!(s.leaf_hashes(&chain, 3).await.unwrap(), leaves[..3]);
    let head = |size: u64| rds_token_broker::audit::TreeHead {
        chain_id: chain.clone(),
        tree_size: size,
        root_hash: base64::engine::general_purpose::STANDARD
            .encode(merkle::root(&leaves[..size as usize])),
        note: format!("note {size}"),
        created_at: format!("2026-01-01T00:00:0{size}.000Z"),
    };
    for size in [2, 4] {
        s.insert_tree_head(&head(size)).await.unwrap();
    }
    // Storing the same head again is harmless.
    s.insert_tree_head(&head(4)).await.unwrap();
    let all = s.tree_heads(Some(&chain)).await.unwrap();
    assert_eq!(all, vec![head(4), head(2)]);
    assert_eq!(s.tree_heads(None).await.unwrap(), vec![head(4), head(2)]);
    assert_eq!(s.tree_heads(Some("other")).await.unwrap(), vec![]);
    // The latest checkpoint covering a position.
    assert_eq!(
        s.tree_head_covering(&chain, 1).await.unwrap(),
        Some(head(4))
    );
    assert_eq!(
        s.tree_head_covering(&chain, 4).await.unwrap(),
        Some(head(4))
    );
    assert_eq!(s.tree_head_covering(&chain, 5).await.unwrap(), None);
    assert_eq!(s.latest_tree_head(&chain).await.unwrap(), Some(head(4)));
}

#[tokio::test]
async fn sqlite_tree_heads_are_stored_and_found() {
    tree_heads_are_stored_and_found(Store::sqlite()).await;
}

#[tokio::test]
async fn postgres_tree_heads_are_stored_and_found() {
    tree_heads_are_stored_and_found(Store::postgres().await).await;
}

fn config_errors(toml: &BrokerToml) -> Vec<(String, String)> {
    let e = rds_token_broker::config::load_str(&toml.to_string()).expect_err("should be invalid");
    e.errors.into_iter().map(|e| (e.key, e.message)).collect()
}

#[test]
fn checkpoint_settings_are_checked_with_every_problem_listed() {
    let toml = BrokerToml::default()
        .target(Target::postgres("orders-db"))
        .audit_url("sqlite://./audit.db")
        .checkpoints("key_name", "bad name")
        .checkpoints("signing_key_file", "/k.pem")
        .checkpoints("signing_key_env", "VAR")
        .checkpoints("verifier_keys", toml::Value::Array(vec!["nope".into()]))
        .checkpoints("interval_seconds", 0)
        .checkpoints("s3_prefix", "x")
        .checkpoints("interval_second", 3);
    let errs = config_errors(&toml);
    for (key, needle) in [
        ("audit.checkpoints.key_name", "space"),
        ("audit.checkpoints.signing_key_file", "exactly one"),
        (
            "audit.checkpoints.verifier_keys[0]",
            "<name>+<key id>+<key>",
        ),
        ("audit.checkpoints.interval_seconds", "1 to 86400"),
        (
            "audit.checkpoints.s3_prefix",
            "without audit.checkpoints.s3_bucket",
        ),
        (
            "audit.checkpoints.interval_second",
            "did you mean \"interval_seconds\"",
        ),
    ] {
        assert!(
            errs.iter().any(|(k, m)| k == key && m.contains(needle)),
            "no {key}: {needle} in {errs:?}"
        );
    }
    assert_eq!(errs.len(), 6, "{errs:?}");
    // KMS is refused, naming the way out; a missing key_name is named.
    let errs = config_errors(
        &BrokerToml::default()
            .target(Target::postgres("orders-db"))
            .audit_url("sqlite://./audit.db")
            .checkpoints("kms_key_id", "alias/x"),
    );
    assert!(
        errs.iter()
            .any(|(k, m)| k == "audit.checkpoints.kms_key_id" && m.contains("signing_key_file")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|(k, _)| k == "audit.checkpoints.key_name"),
        "{errs:?}"
    );
    // [audit] enabled = false leaves no room for checkpoints.
    let errs = config_errors(
        &BrokerToml::default()
            .target(Target::postgres("orders-db"))
            .audit("enabled", false)
            .checkpoints("key_name", "a"),
    );
    assert!(
        errs.iter().any(|(k, _)| k == "audit.checkpoints"),
        "{errs:?}"
    );
}

#[test]
fn verifier_keys_reload_and_the_rest_needs_a_restart() {
    let base = |keys: Vec<toml::Value>, interval: i64| {
        let t = BrokerToml::default()
            .target(Target::postgres("orders-db"))
            .audit_url("sqlite://./audit.db")
            .checkpoints("key_name", "broker.test")
            .checkpoints("signing_key_file", "/k.pem")
            .checkpoints("verifier_keys", toml::Value::Array(keys))
            .checkpoints("interval_seconds", interval);
        rds_token_broker::config::load_str(&t.to_string()).unwrap()
    };
    let go = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    let old = base(vec![], 60);
    let (merged, restart) = old.reloaded_with(base(vec![go.into()], 60));
    assert!(restart.is_empty(), "{restart:?}");
    let keys = &merged
        .audit
        .as_ref()
        .unwrap()
        .checkpoints
        .as_ref()
        .unwrap()
        .verifier_keys;
    assert_eq!(
        keys.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [go]
    );
    let (merged, restart) = old.reloaded_with(base(vec![], 5));
    assert_eq!(restart, ["audit"]);
    assert_eq!(merged.audit, old.audit);
}
