//! No unaudited path (issue 19, item 7): a broker without an audit trail only runs when
//! its file says so.

use std::process::{Child, ExitStatus};
use std::time::Duration;

use rds_token_broker::audit::Outcome;
use rds_token_broker::config::load_str;
use serde_json::json;

use crate::aws_iam;
use crate::support::app::{TestApp, problem};
use crate::support::binary::{self, RunningBroker};
use crate::support::config::{BrokerToml, Target};
use crate::support::creds::static_keys;
use crate::support::eventually;

/// What the broker says about a file without `[audit]`, as `serve` and `check-config`
/// print it.
const MISSING: &str = "audit: missing: tokens are only issued with an audit trail; add [audit] \
    with url = \"sqlite:///var/lib/rds-token-broker/audit.db\" (or a postgres:// URL), or, to \
    issue tokens with no audit trail at all, say so with [audit] enabled = false";

fn orders_db() -> BrokerToml {
    BrokerToml::new().target(Target::postgres("orders-db").db_users(["app_rw"]))
}

/// Waits (at most 30 s) for `child` to exit by itself; kills it and fails if it does not.
async fn exits(child: &mut Child) -> ExitStatus {
    eventually(Duration::from_secs(30), || {
        let status = child.try_wait().unwrap();
        async move { status }
    })
    .await
}

#[tokio::test]
async fn serve_refuses_a_file_without_audit_naming_both_fixes_and_check_config_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let path = orders_db().without_audit_section().write_to(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("[audit]"), "{text}");
    let path = path.to_str().unwrap();

    let mut child = binary::command_with_example_keys(dir.path())
        .args(["serve", "--config", path])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = exits(&mut child).await;
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(MISSING), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");

    let out = binary::run(dir.path(), &["check-config", "--config", path]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("{path}: {MISSING}")), "{stderr}");
    assert!(stderr.contains("1 error"), "{stderr}");
}

#[tokio::test]
async fn audit_enabled_false_starts_with_a_warning_and_the_gauge_set() {
    let dir = tempfile::tempdir().unwrap();
    let config = orders_db().server("metrics_on_listen", true);
    assert!(config.to_string().contains("[audit]\nenabled = false\n"));
    let broker = RunningBroker::serve(dir.path(), &config);
    let warning = "[audit] enabled = false: tokens are issued with no audit trail, only logged; \
                   configure [audit] url to record them";
    eventually(Duration::from_secs(10), || {
        let seen = broker.stderr().contains(warning);
        async move { seen.then_some(()) }
    })
    .await;
    let metrics = crate::support::client()
        .get(format!("{}/metrics", broker.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("\nrds_token_broker_audit_disabled 1\n"),
        "{metrics}"
    );
}

#[test]
fn check_config_accepts_audit_enabled_false_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = orders_db().write_to(dir.path());
    let path = path.to_str().unwrap();
    let out = binary::run(dir.path(), &["check-config", "--config", path]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "warning: {path}: audit.enabled = false: the broker will issue tokens with no \
             audit trail\n"
        )
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{path}: valid (1 target, 0 issuers, 0 grants)\n")
    );
}

#[tokio::test]
async fn a_broker_with_an_audit_store_does_not_set_the_gauge() {
    let dir = tempfile::tempdir().unwrap();
    let config = orders_db()
        .server("metrics_on_listen", true)
        .audit_sqlite(dir.path());
    let text = config.to_string();
    assert!(!text.contains("enabled = false"), "{text}");
    let broker = RunningBroker::serve(dir.path(), &config);
    let metrics = crate::support::client()
        .get(format!("{}/metrics", broker.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("\nrds_token_broker_audit_disabled 1"),
        "{metrics}"
    );
    assert!(
        !broker.stderr().contains("enabled = false"),
        "{}",
        broker.stderr()
    );
}

#[test]
fn enabled_false_with_store_settings_is_an_error_per_key() {
    let text = orders_db()
        .audit("enabled", false)
        .audit("url", "sqlite://./audit.db")
        .audit("mirror", "stdout")
        .to_string();
    let err = load_str(&text).expect_err(&text);
    let keys: Vec<_> = err.errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["audit.url", "audit.mirror"], "{err}");
    assert!(
        err.to_string()
            .contains("audit.url: is set, but audit.enabled = false: remove one of them"),
        "{err}"
    );
    // `enabled = true` is the default, spelled out.
    let on = orders_db()
        .audit("enabled", true)
        .audit("url", "sqlite://./audit.db")
        .to_string();
    let c = load_str(&on).unwrap_or_else(|e| panic!("{e}\n{on}"));
    assert_eq!(c.audit.unwrap().url, "sqlite://./audit.db");
    let off = load_str(&orders_db().to_string()).unwrap();
    assert_eq!(off.audit, None);
}

/// Every event in the SQLite trail under `dir`, read from the store (reading through the
/// API would add events of its own).
async fn stored(dir: &std::path::Path) -> Vec<rds_token_broker::audit::AuditEvent> {
    let url = format!("sqlite://{}/audit.db", dir.display());
    let store = rds_token_broker::audit::AuditStore::open(&url)
        .await
        .unwrap();
    store.all_by_chain().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_oversized_token_requests_are_recorded_as_rejected_and_folded() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_toml(BrokerToml::unauthenticated().audit_sqlite(dir.path())).await;
    let secretish = "s3cr3t-value-that-must-not-be-recorded";
    let post = |content_type: &'static str, body: String| {
        app.client
            .post(format!("{}/v1/tokens", app.base))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    // Three malformed bodies in one second, from one caller: one event at once, the
    // other two folded into one with count 2.
    let malformed = [
        format!("{{\"target\": \"{secretish}"),
        format!("{{\"target\": \"orders-db\", \"password\": \"{secretish}\"}}"),
        format!("{{\"target\": \"orders/{secretish}\"}}"),
    ];
    for body in malformed {
        assert_eq!(post("application/json", body).await.unwrap().status(), 400);
    }
    assert_eq!(
        post("text/plain", "{\"target\": \"orders-db\"}".into())
            .await
            .unwrap()
            .status(),
        415
    );
    let big = json!({"target": "orders-db", "db_user": secretish.repeat(500)}).to_string();
    assert_eq!(post("application/json", big).await.unwrap().status(), 413);
    app.clock.advance(Duration::from_secs(2));
    let rejected = eventually(Duration::from_secs(10), || async {
        let events: Vec<_> = stored(dir.path())
            .await
            .into_iter()
            .filter(|e| e.outcome == Outcome::Rejected)
            .collect();
        (events.iter().map(|e| e.count).sum::<i64>() == 5).then_some(events)
    })
    .await;
    assert_eq!(rejected.len(), 4, "{rejected:#?}");
    for e in &rejected {
        let json = serde_json::to_string(e).unwrap();
        assert!(!json.contains(secretish), "{json}");
        assert!(e.client_ip.is_some(), "{e:?}");
    }
    let by_reason = |needle: &str| {
        rejected
            .iter()
            .filter(|e| e.reason.as_deref().unwrap().contains(needle))
            .collect::<Vec<_>>()
    };
    let too_large = by_reason("larger than 16 KiB");
    assert_eq!(too_large.len(), 1, "{rejected:#?}");
    // Refused before authentication: nobody is named, the method says so.
    assert_eq!(too_large[0].auth_method.as_deref(), Some("unverified"));
    assert_eq!(too_large[0].subject, None);
    let not_json = by_reason("Content-Type");
    assert_eq!(not_json.len(), 1, "{rejected:#?}");
    assert_eq!(not_json[0].subject.as_deref(), Some("anonymous"));
    let counts: Vec<i64> = rejected
        .iter()
        .filter(|e| e.auth_method.as_deref() == Some("unauthenticated"))
        .filter(|e| !e.reason.as_deref().unwrap().contains("Content-Type"))
        .map(|e| e.count)
        .collect();
    assert_eq!(counts, [1, 2], "{rejected:#?}");
    // Nothing was issued or asked of AWS.
    assert_eq!(app.minted(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_aws_iam_caller_is_recorded_with_the_access_key_id_it_claims() {
    let dir = tempfile::tempdir().unwrap();
    let f = aws_iam::Fixture::start_with(|c| c.audit_sqlite(dir.path()), |_| static_keys()).await;
    let signed = f.signed("role").await;
    let valid = aws_iam::decode(signed["valid"].as_str().unwrap());
    // Signed, then changed: STS (moto) refuses the signature.
    let mut t = valid.clone();
    *aws_iam::header_mut(&mut t, "content-type") = json!("application/x-www-form-urlencoded");
    f.refused(&aws_iam::encode(&t), "SignatureDoesNotMatch")
        .await;
    // A Credential= that is not shaped like an access key id is not quoted.
    let mut t = valid.clone();
    let auth = aws_iam::header_mut(&mut t, "authorization");
    let forged = auth
        .as_str()
        .unwrap()
        .replacen("Credential=", "Credential=<script>AKIA", 1);
    *auth = json!(forged);
    f.refused(&aws_iam::encode(&t), "").await;

    let key = f.creds["role"]["AWS_ACCESS_KEY_ID"].as_str().unwrap();
    let secret = f.creds["role"]["AWS_SECRET_ACCESS_KEY"].as_str().unwrap();
    let session = f.creds["role"]["AWS_SESSION_TOKEN"].as_str().unwrap();
    // Both were refused by STS, from one address: the second is folded into a window.
    f.app.clock.advance(Duration::from_secs(2));
    let denied = eventually(Duration::from_secs(10), || async {
        let events: Vec<_> = stored(dir.path())
            .await
            .into_iter()
            .filter(|e| e.outcome == Outcome::Denied)
            .collect();
        (events.iter().map(|e| e.count).sum::<i64>() == 2).then_some(events)
    })
    .await;
    assert_eq!(denied.len(), 2, "{denied:#?}");
    let sts = denied[0].reason.as_deref().unwrap();
    assert!(
        sts.contains(&format!(
            "(the signature claims AWS access key id \"{key}\"; unverified)"
        )),
        "{sts}"
    );
    assert_eq!(denied[0].auth_method.as_deref(), Some("unverified"));
    assert_eq!((&denied[0].issuer, &denied[0].subject), (&None, &None));
    let forged = denied[1].reason.as_deref().unwrap();
    assert!(!forged.contains("access key id"), "{forged}");
    for e in &denied {
        let json = serde_json::to_string(e).unwrap();
        assert!(!json.contains(secret) && !json.contains(session), "{json}");
    }
}

/// The `audit_read` events in the SQLite trail under `dir`, oldest first.
async fn reads(dir: &std::path::Path) -> Vec<rds_token_broker::audit::AuditEvent> {
    stored(dir)
        .await
        .into_iter()
        .filter(|e| e.outcome == Outcome::AuditRead)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_read_of_the_trail_is_recorded_with_its_filters_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_toml(BrokerToml::unauthenticated().audit_sqlite(dir.path())).await;
    let token = app.token(json!({"target": "ledger"})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.token(json!({"target": "orders-db", "db_user": "app_rw"}))
        .await;

    let page: serde_json::Value = app
        .get("/v1/audit/events?target=ledger&limit=10")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    let res = app
        .client
        .post(format!("{}/v1/audit/lookup", app.base))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let sha: serde_json::Value = res.json().await.unwrap();
    let sha = sha["token_sha256"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/v1/audit/verify").await.status(), 200);
    let stats = "since=2026-03-09T00:00:00Z&until=2026-03-10T00:00:00Z";
    assert_eq!(
        app.get(&format!("/v1/audit/stats?{stats}")).await.status(),
        200
    );
    let export = app
        .get("/v1/audit/events?format=ndjson&outcome=issued")
        .await;
    assert_eq!(export.text().await.unwrap().lines().count(), 2);

    let reasons: Vec<String> = reads(dir.path())
        .await
        .iter()
        .map(|e| {
            assert_eq!(
                (e.subject.as_deref(), e.auth_method.as_deref(), e.count),
                (Some("anonymous"), Some("unauthenticated"), 1),
                "{e:?}"
            );
            assert!(e.client_ip.is_some() && e.token_sha256.is_none(), "{e:?}");
            e.reason.clone().unwrap()
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "GET /v1/audit/events {limit=10&target=ledger}: 1 events".to_owned(),
            format!("POST /v1/audit/lookup {{token_sha256={sha}}}: 1 events"),
            // The two issuances and the two reads before it.
            "GET /v1/audit/verify {}: 4 events".to_owned(),
            // Every event of the day so far, the verification's read included.
            "GET /v1/audit/stats {since=2026-03-09T00:00:00Z&until=2026-03-10T00:00:00Z}: \
             5 events"
                .to_owned(),
            "GET /v1/audit/events {format=ndjson&outcome=issued}: export started".to_owned(),
            // Recorded once the export has sent its last event.
            "GET /v1/audit/events {format=ndjson&outcome=issued}: export finished, 2 events"
                .to_owned(),
        ]
    );
    // The looked-up token is recorded by its hash only.
    let all = serde_json::to_string(&stored(dir.path()).await).unwrap();
    assert!(!all.contains(&token));
}

#[tokio::test(flavor = "multi_thread")]
async fn identical_reads_are_folded_and_every_one_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_toml(BrokerToml::unauthenticated().audit_sqlite(dir.path())).await;
    for _ in 0..20 {
        assert_eq!(
            app.get("/v1/audit/events?outcome=denied").await.status(),
            200
        );
    }
    // Another filter is another read.
    assert_eq!(
        app.get("/v1/audit/events?outcome=issued").await.status(),
        200
    );
    app.clock.advance(Duration::from_secs(2));
    let folded = eventually(Duration::from_secs(10), || async {
        let r = reads(dir.path()).await;
        (r.iter().map(|e| e.count).sum::<i64>() == 21).then_some(r)
    })
    .await;
    let summary: Vec<(i64, String)> = folded
        .iter()
        .map(|e| (e.count, e.reason.clone().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                1,
                "GET /v1/audit/events {outcome=denied}: 0 events".to_owned()
            ),
            (
                1,
                "GET /v1/audit/events {outcome=issued}: 0 events".to_owned()
            ),
            (
                19,
                "GET /v1/audit/events {outcome=denied}: 0 events".to_owned()
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_the_trail_cannot_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_toml(BrokerToml::unauthenticated().audit_sqlite(dir.path())).await;
    app.token(json!({"target": "ledger"})).await;
    // The store still answers searches, but refuses to store a read.
    let url = format!("sqlite://{}/audit.db", dir.path().display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_reads BEFORE INSERT ON audit_events \
         WHEN NEW.outcome = 'audit_read' BEGIN SELECT RAISE(ABORT, 'no reads'); END",
    )
    .execute(&pool)
    .await
    .unwrap();
    for path in [
        "/v1/audit/events",
        "/v1/audit/events?format=csv",
        "/v1/audit/verify",
        "/v1/audit/stats",
    ] {
        let res = app.get(path).await;
        let body = problem(res, 503).await;
        assert_eq!(
            body["detail"], "this read could not be recorded in the audit trail",
            "{path}: {body}"
        );
    }
    // Issuance is unaffected.
    app.token(json!({"target": "ledger"})).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_request_whose_body_never_arrives_is_recorded_as_rejected() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerToml::unauthenticated()
        .server("body_read_timeout_seconds", 1)
        .audit_sqlite(dir.path());
    let app = TestApp::spawn_toml(config).await;
    let addr = app.base.strip_prefix("http://").unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /v1/tokens HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    // The broker answers, then closes the connection: read it all.
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer))
        .await
        .expect("answered and closed within the body deadline")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let rejected: Vec<_> = stored(dir.path())
        .await
        .into_iter()
        .filter(|e| e.outcome == Outcome::Rejected)
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    assert_eq!(rejected[0].auth_method.as_deref(), Some("unverified"));
    let detail =
        serde_json::from_str::<serde_json::Value>(answer.split("\r\n\r\n").nth(1).unwrap())
            .unwrap()["detail"]
            .clone();
    assert_eq!(rejected[0].reason.as_deref(), detail.as_str(), "{answer}");
}
