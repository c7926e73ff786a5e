//! Running it in production: Prometheus metrics after a scenario, the separate metrics
//! listener, and a scan of everything the real binary writes and answers for secrets.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::TestApp;
use crate::support::binary::{self, RunningBroker};
use crate::support::config::{Auditor, BrokerToml, Grant, Target};
use crate::support::creds::static_keys;
use crate::support::eventually;
use crate::support::idp::{RsaKey, rs256};
use crate::support::moto::Moto;

/// Every metric line (not comments) of a scrape.
fn samples(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
}

/// Whether the scrape has a sample of `name` whose labels include each of `labels`.
fn has(text: &str, name: &str, labels: &[&str]) -> bool {
    samples(text).iter().any(|l| {
        (l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            && labels.iter().all(|want| l.contains(want))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_after_a_scenario_name_every_area_by_convention() {
    let moto = Moto::start().await;
    let key = RsaKey::generate("k1");
    let dir = tempfile::tempdir().unwrap();
    let iss = "https://idp.metrics.invalid";
    let issuer = crate::support::idp::file_issuer(dir.path(), &key, iss);
    let config = BrokerToml::new()
        .server("metrics_on_listen", true)
        .aws("sts_endpoint", moto.url())
        .audit_sqlite(dir.path())
        .rate_limit("per_principal_per_second", 3)
        .issuer(issuer)
        .target(
            Target::postgres("orders-db")
                .role_arn("arn:aws:iam::123456789012:role/orders-db-connect"),
        )
        .grant(
            Grant::new("corp", "*")
                .targets(["orders-db"])
                .db_users(["app"]),
        );
    let app = TestApp::spawn_toml(config).await;
    app.clock.set(std::time::SystemTime::now());
    let jwt = rs256(
        &key,
        &json!({"iss": iss, "sub": "svc", "aud": "rds-token-broker", "exp": 4_000_000_000u64}),
    );
    let post = |bearer: String, target: &'static str| {
        let (c, url) = (app.client.clone(), format!("{}/v1/tokens", app.base));
        async move {
            c.post(url)
                .bearer_auth(bearer)
                .json(&json!({"target": target}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Keys load in the background.
    let (post, jwt_ref) = (&post, &jwt);
    eventually(Duration::from_secs(5), || async move {
        post(jwt_ref.clone(), "orders-db").await == 200
    })
    .await;
    assert_eq!(post(jwt.clone(), "orders-db").await, 200); // a hit
    assert_eq!(post(jwt.clone(), "unknown-db").await, 403);
    assert_eq!(post(jwt.clone(), "orders-db").await, 429); // the caller's limit
    assert_eq!(post("not-a-jwt".into(), "orders-db").await, 401);

    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = res.text().await.unwrap();
    for (name, labels) in [
        (
            "rds_token_broker_http_requests_total",
            &[
                r#"route="/v1/tokens""#,
                r#"method="POST""#,
                r#"status="200""#,
            ][..],
        ),
        ("rds_token_broker_http_requests_total", &[r#"status="401""#]),
        ("rds_token_broker_http_requests_total", &[r#"status="429""#]),
        (
            "rds_token_broker_http_request_duration_seconds_bucket",
            &[r#"route="/v1/tokens""#],
        ),
        (
            "rds_token_broker_tokens_total",
            &[r#"target="orders-db""#, r#"cache="miss""#],
        ),
        ("rds_token_broker_tokens_total", &[r#"cache="hit""#]),
        (
            "rds_token_broker_tokens_minted_total",
            &[r#"target="orders-db""#],
        ),
        (
            "rds_token_broker_throttled_total",
            &[r#"limit="principal""#],
        ),
        ("rds_token_broker_signing_duration_seconds_bucket", &[]),
        ("rds_token_broker_sts_calls_total", &[r#"outcome="ok""#]),
        ("rds_token_broker_sts_duration_seconds_bucket", &[]),
        (
            "rds_token_broker_jwks_refreshes_total",
            &[r#"issuer="corp""#, r#"outcome="ok""#],
        ),
        ("rds_token_broker_token_cache_entries", &[]),
        ("rds_token_broker_credentials_available", &[]),
        ("rds_token_broker_audit_commit_duration_seconds_bucket", &[]),
        ("rds_token_broker_audit_batch_size_bucket", &[]),
        ("rds_token_broker_audit_queue_depth", &[]),
        ("rds_token_broker_rate_limit_fallback", &[]),
    ] {
        assert!(has(&text, name, labels), "no {name} {labels:?} in\n{text}");
    }
    // Conventions: our names are prefixed, counters end in _total, durations in _seconds;
    // every sample is `name{labels} value`.
    for line in samples(&text) {
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(name.starts_with("rds_token_broker_"), "{line}");
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts[3] {
            "counter" => assert!(parts[2].ends_with("_total"), "{line}"),
            "histogram" => assert!(
                parts[2].ends_with("_seconds") || parts[2].ends_with("_size"),
                "{line}"
            ),
            _ => {}
        }
    }
    // Nothing secret in labels or values.
    assert!(!text.contains(&jwt) && !text.contains("svc") && !text.contains("X-Amz"));
}

#[tokio::test]
async fn metrics_listen_serves_metrics_apart_from_the_api() {
    let config = BrokerToml::unauthenticated()
        .server("metrics_listen", "127.0.0.1:0")
        .to_string();
    let parsed = rds_token_broker::config::load_str(&config).unwrap();
    let deps = rds_token_broker::startup::Dependencies {
        clock: std::sync::Arc::new(rds_token_broker::clock::SystemClock),
        credentials: aws_credential_types::provider::SharedCredentialsProvider::new(static_keys()),
        audit_store: None,
    };
    let app = rds_token_broker::startup::Application::build(parsed, deps)
        .await
        .unwrap();
    let (api, metrics) = (app.local_addr(), app.metrics_addr().unwrap());
    tokio::spawn(app.run_until(std::future::pending()));
    let client = crate::support::client();
    let res = client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("rds_token_broker_"));
    let res = client
        .get(format!("http://{api}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = client
        .get(format!("http://{metrics}/v1/targets"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_token_jwt_secret_key_or_session_token_is_ever_written_or_answered() {
    let home = tempfile::tempdir().unwrap();
    let key = RsaKey::generate("k1");
    let iss = "https://idp.leak.invalid";
    let issuer = crate::support::idp::file_issuer(home.path(), &key, iss);
    let config = BrokerToml::new()
        .json_logs()
        .audit_sqlite(home.path())
        .audit("mirror", "stdout")
        .issuer(issuer)
        .target(Target::postgres("orders-db").db_users(["app", "ro"]))
        .grant(
            Grant::new("corp", "svc")
                .targets(["orders-db"])
                .db_users(["app", "ro"]),
        )
        .auditor(Auditor::new("corp", "auditor"))
        .write_to(home.path());
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYLEAKTEST";
    let session = "FwoGZXIvYXdzELEAKTESTSESSIONTOKENabcdefghijklmnop";
    let mut cmd = binary::command(home.path());
    cmd.env("AWS_ACCESS_KEY_ID", "ASIAQLEAKTEST0000001")
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_SESSION_TOKEN", session)
        .env("RUST_LOG", "debug")
        .args(["serve", "--config", config.to_str().unwrap()]);
    let mut broker = RunningBroker::start(cmd);
    let client = crate::support::client();
    let claims = |sub: &str, exp: u64| json!({"iss": iss, "sub": sub, "aud": "rds-token-broker", "exp": exp});
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let svc = rs256(&key, &claims("svc", now + 600));
    let expired = rs256(&key, &claims("svc", now - 600));
    let auditor = rs256(&key, &claims("auditor", now + 600));
    let forged = format!("{}x", &svc[..svc.len() - 1]);

    let mut answers = String::new();
    let mut tokens = Vec::new();
    let mut issued = Vec::new();
    for (bearer, body) in [
        (&svc, json!({"target": "orders-db", "db_user": "app"})),
        (&svc, json!({"target": "orders-db", "db_user": "app"})),
        (&svc, json!({"target": "orders-db", "db_user": "ro"})),
        (&svc, json!({"target": "nope"})),
        (
            &svc,
            json!({"target": "orders-db", "db_user": "app", "token": "x"}),
        ),
        (&expired, json!({"target": "orders-db"})),
        (&forged, json!({"target": "orders-db"})),
        (&auditor, json!({"target": "orders-db"})),
    ] {
        let res = client
            .post(format!("{}/v1/tokens", broker.base))
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .await
            .unwrap();
        let ok = res.status() == 200;
        let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        let text = res.text().await.unwrap();
        if ok {
            let v: Value = serde_json::from_str(&text).unwrap();
            tokens.push(v["token"].as_str().unwrap().to_owned());
            issued.push((request_id, v["issuance_id"].as_str().unwrap().to_owned()));
        } else {
            answers.push_str(&text);
        }
    }
    assert_eq!(tokens.len(), 3);
    // Lookups of a leaked token, the audit API and the metrics: answered, not echoed.
    for path in [
        "/v1/audit/events?format=ndjson",
        "/v1/audit/events?format=csv",
        "/metrics",
        "/readyz",
    ] {
        let res = client
            .get(format!("{}{path}", broker.base))
            .bearer_auth(&auditor)
            .send()
            .await
            .unwrap();
        answers.push_str(&res.text().await.unwrap());
    }
    let res = client
        .post(format!("{}/v1/audit/lookup", broker.base))
        .bearer_auth(&auditor)
        .json(&json!({"token": tokens[0]}))
        .send()
        .await
        .unwrap();
    answers.push_str(&res.text().await.unwrap());
    assert!(broker.terminate().await.success());
    // Every log line is one JSON object; each issuance is logged once with its target,
    // DB user, issuance id and the request id the client got back (no duplicate keys).
    let mut logged = Vec::new();
    for line in broker.stderr().lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string() && v["module"].is_string(),
            "{line}"
        );
        if v["message"] == "token issued" {
            assert_eq!(line.matches("\"target\":").count(), 1, "{line}");
            assert_eq!(v["target"], "orders-db");
            assert!(v["db_user"] == "app" || v["db_user"] == "ro");
            assert_eq!(v["span"]["name"], "request");
            assert_eq!(v["span"]["route"], "/v1/tokens");
            logged.push((
                v["span"]["request_id"].as_str().unwrap().to_owned(),
                v["issuance_id"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert_eq!(logged, issued);
    let everything = format!("{}\n{}\n{answers}", broker.stdout(), broker.stderr());
    assert!(
        everything.contains("token_sha256"),
        "the scan must see real output"
    );

    let signatures: Vec<String> = tokens
        .iter()
        .map(|t| t.rsplit("X-Amz-Signature=").next().unwrap().to_owned())
        .collect();
    let jwt_signatures: Vec<&str> = [&svc, &expired, &auditor, &forged]
        .iter()
        .map(|j| j.rsplit('.').next().unwrap())
        .collect();
    let mut secrets: Vec<(&str, &str)> = vec![("secret key", secret), ("session token", session)];
    for t in &tokens {
        secrets.push(("token", t));
    }
    for s in &signatures {
        secrets.push(("token signature", s));
    }
    for s in &jwt_signatures {
        secrets.push(("JWT signature", s));
    }
    for (what, s) in secrets {
        assert!(!everything.contains(s), "a {what} appears in the output");
    }
    // The session token also travels URL-encoded inside tokens.
    assert!(!everything.contains("X-Amz-Security-Token"));
}

/// Whether a fresh client trusting only `ca` completes a request to `url`.
async fn trusted_by(ca: &str, url: &str) -> bool {
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    client
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_serves_the_certificate_and_reloads_it_when_the_files_change() {
    crate::support::client(); // installs the rustls provider
    let home = tempfile::tempdir().unwrap();
    let (ca1, cert1, key1) = crate::support::pki::pki("first");
    let (ca2, cert2, key2) = crate::support::pki::pki("second");
    let (cert, key) = (home.path().join("tls.crt"), home.path().join("tls.key"));
    std::fs::write(&cert, &cert1).unwrap();
    std::fs::write(&key, &key1).unwrap();
    let config = BrokerToml::unauthenticated()
        .without_server("metrics_on_listen")
        .without_auditors()
        .server("tls_cert", cert.display().to_string())
        .server("tls_key", key.display().to_string());
    let mut broker = RunningBroker::serve(home.path(), &config);
    assert!(
        broker.base.starts_with("https://127.0.0.1:"),
        "{}",
        broker.base
    );
    let health = format!("{}/healthz", broker.base);
    assert!(trusted_by(&ca1, &health).await);
    assert!(!trusted_by(&ca2, &health).await);

    // The CLI: without the CA it says what to do; with --ca-file it works.
    let ca_file = home.path().join("ca1.pem");
    std::fs::write(&ca_file, &ca1).unwrap();
    let cli = |extra: Vec<String>| {
        let mut c = tokio::process::Command::new(binary::BIN);
        c.env_clear()
            .env("RDS_TOKEN_BROKER_K8S_TOKEN_FILE", "/nonexistent")
            .args([
                "token",
                "--broker",
                &broker.base,
                "--target",
                "orders-db",
                "--db-user",
                "app_rw",
            ])
            .args(extra);
        c
    };
    let out = cli(vec![]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TLS with the broker") && err.contains("--ca-file"),
        "{err}"
    );
    let out = cli(vec!["--ca-file".into(), ca_file.display().to_string()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Rotation: new files are picked up without a restart.
    std::fs::write(&key, &key2).unwrap();
    std::fs::write(&cert, &cert2).unwrap();
    eventually(Duration::from_secs(10), || trusted_by(&ca2, &health)).await;
    assert!(!trusted_by(&ca1, &health).await);
    // A broken file (mid-rotation) keeps the current certificate in service.
    std::fs::write(&cert, "not a certificate").unwrap();
    eventually(Duration::from_secs(5), || async {
        broker.stderr().contains("keeping the current one")
    })
    .await;
    assert!(trusted_by(&ca2, &health).await);
    assert!(broker.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_requests_in_flight_then_exits_0_with_their_events_committed() {
    use sqlx::Connection as _;
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("audit.db");
    let config = BrokerToml::new()
        .server("allow_unauthenticated", true)
        .rate_limit("max_wait_ms", 5000)
        .audit_url(format!("sqlite://{}", db.display()))
        .target(
            Target::postgres("orders-db")
                .db_users(["a", "b"])
                .budget(1, 1),
        );
    let mut broker = RunningBroker::serve(home.path(), &config);
    let client = crate::support::client();
    let url = format!("{}/v1/tokens", broker.base);
    let post = |user: &'static str| {
        let (c, url) = (client.clone(), url.clone());
        async move {
            c.post(url)
                .json(&json!({"target": "orders-db", "db_user": user}))
                .send()
                .await
        }
    };
    assert_eq!(post("a").await.unwrap().status(), 200);
    // The budget's only slot is spent: this request waits about a second for the next.
    let in_flight = tokio::spawn(post("b"));
    // The scenario, not a wait for a condition: SIGTERM comes while the request sits in
    // the broker waiting for the budget (about a second).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!in_flight.is_finished());
    let started = std::time::Instant::now();
    let status = broker.terminate().await;
    let res = in_flight.await.unwrap().unwrap();
    assert_eq!(
        res.status(),
        200,
        "the request in flight is answered, not cut"
    );
    assert!(res.json::<Value>().await.unwrap()["token"].is_string());
    assert!(status.success(), "exit status {status:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    // New connections are refused once it is gone.
    assert!(post("a").await.is_err());
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let users: Vec<(String,)> =
        sqlx::query_as("SELECT db_user FROM audit_events WHERE outcome = 'issued' ORDER BY seq")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(users, [("a".to_owned(),), ("b".to_owned(),)]);
    let log = broker.stderr();
    assert!(log.contains("SIGTERM received; shutting down"), "{log}");
    assert!(
        log.contains("stopped: requests in flight answered"),
        "{log}"
    );
}
