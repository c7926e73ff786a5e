//! The real binary: `serve --dev`, the AWS default credential chain, SIGTERM.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use crate::support::binary::{self, RunningBroker};
use crate::support::config::{BrokerToml, Target};
use crate::support::eventually;

#[tokio::test(flavor = "multi_thread")]
async fn serve_dev_prints_a_working_curl_and_labels_dummy_credentials() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = binary::command(home.path());
    cmd.env("TMPDIR", home.path())
        .args(["serve", "--dev", "--listen", "127.0.0.1:0"]);
    let mut broker = RunningBroker::start(cmd);
    let client = crate::support::client();
    // The banner is complete once it says how to stop.
    let broker_ref = &broker;
    let stdout = eventually(Duration::from_secs(5), || async move {
        let stdout = broker_ref.stdout();
        stdout.contains("Stop with Ctrl-C").then_some(stdout)
    })
    .await;
    assert!(
        stdout.contains("DUMMY credentials (AKIAIOSFODNN7EXAMPLE)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("curl -s -X POST {}/v1/tokens", broker.base)),
        "{stdout}"
    );
    let jwt = stdout
        .split("export RDS_TOKEN_BROKER_JWT=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the banner prints a dev JWT")
        .to_owned();

    // The CLI lines of the banner work as printed, with the two exports.
    let url_line = format!("\n    export RDS_TOKEN_BROKER_URL={}\n", broker.base);
    assert!(stdout.contains(&url_line), "{stdout}");
    let token_line = "\n    rds-token-broker token --target demo-db --db-user app_ro\n";
    assert!(stdout.contains(token_line), "{stdout}");
    let out = binary::command(home.path())
        .env("RDS_TOKEN_BROKER_URL", &broker.base)
        .env("RDS_TOKEN_BROKER_JWT", &jwt)
        .args(token_line.split_whitespace().skip(1))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("demo.cluster-abc123example"));

    // Without the JWT the dev broker refuses, like any other.
    let res = client
        .post(format!("{}/v1/tokens", broker.base))
        .json(&json!({"target": "demo-db", "db_user": "app_ro"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = client
        .post(format!("{}/v1/tokens", broker.base))
        .bearer_auth(&jwt)
        .json(&json!({"target": "demo-db", "db_user": "app_ro"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with(
        "demo.cluster-abc123example.us-east-1.rds.amazonaws.com:5432/?Action=connect&DBUser=app_ro&"
    ));
    assert_eq!(
        client
            .get(format!("{}/readyz", broker.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let status = broker.terminate().await;
    assert!(status.success(), "exit status {status:?}");
    let logs = broker.stderr();
    assert!(logs.contains("SIGTERM received"), "{logs}");
    // stderr is a pipe here: no colour codes.
    assert!(!logs.contains('\x1b'), "{logs:?}");
    assert!(
        !logs.contains(&token) && !logs.contains("X-Amz-Signature") && !logs.contains(&jwt),
        "a token or the JWT reached the log"
    );
}

/// The entries of `dir` whose names start with `rds-token-broker-dev-`, sorted.
fn dev_entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("rds-token-broker-dev-"))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_dev_removes_its_files_on_exit_and_stale_ones_at_start() {
    let home = tempfile::tempdir().unwrap();
    let tmp = home.path();
    // What killed dev brokers left: a directory, and an older release's loose files.
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let stale_dir = tmp.join(format!("rds-token-broker-dev-{dead}-Ab12Cd"));
    std::fs::create_dir(&stale_dir).unwrap();
    std::fs::write(stale_dir.join("audit.db"), "x").unwrap();
    for suffix in ["jwks.json", "audit.db", "audit.db-wal"] {
        std::fs::write(
            tmp.join(format!("rds-token-broker-dev-{dead}.{suffix}")),
            "x",
        )
        .unwrap();
    }
    // A running process's directory (this test's) and a stranger's file stay.
    let alive = format!("rds-token-broker-dev-{}-Keep01", std::process::id());
    std::fs::create_dir(tmp.join(&alive)).unwrap();
    std::fs::write(tmp.join("rds-token-broker-dev-notes.txt"), "x").unwrap();

    let mut cmd = binary::command(tmp);
    cmd.env("TMPDIR", tmp)
        .args(["serve", "--dev", "--listen", "127.0.0.1:0"]);
    let mut broker = RunningBroker::start(cmd);
    let own = format!("rds-token-broker-dev-{}-", broker.child.id());
    let entries = dev_entries(tmp);
    let own_dirs: Vec<&String> = entries.iter().filter(|n| n.starts_with(&own)).collect();
    assert_eq!(own_dirs.len(), 1, "{entries:?}");
    let own_dir = tmp.join(own_dirs[0]);
    assert!(own_dir.join("jwks.json").is_file());
    assert!(own_dir.join("audit.db").is_file());
    let mut expected = vec![
        own_dirs[0].clone(),
        alive.clone(),
        "rds-token-broker-dev-notes.txt".to_owned(),
    ];
    expected.sort();
    assert_eq!(entries, expected);
    assert!(
        broker
            .stderr()
            .contains("removed files of dev brokers that are no longer running"),
        "{}",
        broker.stderr()
    );

    let status = broker.terminate().await;
    assert!(status.success(), "exit status {status:?}");
    let mut left = vec![alive, "rds-token-broker-dev-notes.txt".to_owned()];
    left.sort();
    assert_eq!(dev_entries(tmp), left);
}

#[test]
fn an_address_in_use_suggests_a_free_port_and_leaves_no_dev_files() {
    let home = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = binary::command(home.path())
        .env("TMPDIR", home.path())
        .args(["serve", "--dev", "--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("error: cannot listen on {addr}: ")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "\nhint: another process (another broker?) is using {addr}: stop it, change \
             server.listen, or let the system pick a free port with --listen 127.0.0.1:0\n"
        )),
        "{stderr}"
    );
    assert_eq!(dev_entries(home.path()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_warns_at_start_when_it_finds_no_aws_credentials() {
    let home = tempfile::tempdir().unwrap();
    let config = BrokerToml::new()
        .server("allow_unauthenticated", true)
        .set("log", "format", "text")
        .target(Target::orders_db())
        .write_to(home.path());
    // `binary::command`: no credentials anywhere, no instance metadata.
    let mut cmd = binary::command(home.path());
    cmd.args(["serve", "--config", config.to_str().unwrap()]);
    let broker = RunningBroker::start(cmd);
    let broker_ref = &broker;
    let line = eventually(Duration::from_secs(10), || async move {
        broker_ref
            .stderr()
            .lines()
            .find(|l| l.contains("no AWS credentials found at start"))
            .map(str::to_owned)
    })
    .await;
    assert!(line.contains(" WARN "), "{line}");
    assert!(
        line.contains("/readyz answers 503 until some appear")
            && line.contains("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{line}"
    );
    // The text format, into a pipe: no colour codes.
    assert!(!broker.stderr().contains('\x1b'), "{:?}", broker.stderr());
}

#[test]
fn a_dev_broker_refuses_a_public_listener() {
    let home = tempfile::tempdir().unwrap();
    let out = binary::run(home.path(), &["serve", "--dev", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("may only listen on loopback"));
}

#[test]
fn serve_refuses_an_invalid_config_before_binding() {
    let home = tempfile::tempdir().unwrap();
    let bad = BrokerToml::default()
        .server("listen", "x")
        .write_to(home.path());
    let out = binary::run(home.path(), &["serve", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.listen"));
}

/// An ECS-style container credentials endpoint on loopback that answers 404 until it is
/// switched on, then temporary credentials expiring ten minutes from the real now.
async fn container_credentials_endpoint(on: Arc<AtomicBool>) -> String {
    let app = axum::Router::new().route(
        "/creds",
        get(move || {
            let on = on.clone();
            async move {
                if !on.load(Ordering::SeqCst) {
                    return StatusCode::NOT_FOUND.into_response();
                }
                let expiry = std::time::SystemTime::now() + Duration::from_secs(600);
                Json(json!({
                    "AccessKeyId": "ASIAECSCONTAINEREXAM",
                    "SecretAccessKey": "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
                    "Token": "IQoJb3JpZ2luX2VjEXAMPLE+/=",
                    "Expiration": rds_token_broker::clock::rfc3339(expiry),
                }))
                .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/creds")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_chain_recovers_when_credentials_appear_and_caps_expiry() {
    let on = Arc::new(AtomicBool::new(false));
    let endpoint = container_credentials_endpoint(on.clone()).await;
    let home = tempfile::tempdir().unwrap();
    let config = BrokerToml::new()
        .server("allow_unauthenticated", true)
        .json_logs()
        .target(
            Target::postgres("orders-db").host("orders.cluster-abc.eu-west-1.rds.amazonaws.com"),
        )
        .write_to(home.path());
    let mut cmd = binary::command(home.path());
    cmd.env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &endpoint)
        .args(["serve", "--config", config.to_str().unwrap()]);
    let broker = RunningBroker::start(cmd);
    let client = crate::support::client();
    let token_req = || {
        client
            .post(format!("{}/v1/tokens", broker.base))
            .json(&json!({"target": "orders-db"}))
            .send()
    };

    let res = client
        .get(format!("{}/readyz", broker.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["checks"]["credentials"]["ok"], false, "{body}");
    let res = token_req().await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    on.store(true, Ordering::SeqCst);
    // The broker recovers.
    eventually(Duration::from_secs(15), || async {
        client
            .get(format!("{}/readyz", broker.base))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    let res = token_req().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    assert!(
        token.contains("X-Amz-Credential=ASIAECSCONTAINEREXAM%2F"),
        "{token}"
    );
    assert!(token.contains("&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2B%2F%3D&"));
    // The credentials expire in 600 s, so the token does too, not in 900 s.
    let expires = body["expires_at"].as_str().unwrap();
    let x_amz_date = token
        .split("X-Amz-Date=")
        .nth(1)
        .unwrap()
        .get(..16)
        .unwrap();
    let signed_secs = secs_of_day(&x_amz_date[9..15]);
    let expiry_secs = secs_of_day(&expires[11..19].replace(':', ""));
    let lifetime = (expiry_secs + 86_400 - signed_secs) % 86_400;
    assert!(
        (590..=601).contains(&lifetime),
        "token lifetime {lifetime} s, expected about 600"
    );
    let logs = broker.stderr();
    assert!(
        !logs.contains(token) && !logs.contains("je7MtGbClwBF") && !logs.contains("IQoJb3JpZ2lu")
    );
}

fn secs_of_day(hhmmss: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| hhmmss[r].parse::<i64>().unwrap();
    n(0..2) * 3600 + n(2..4) * 60 + n(4..6)
}

#[test]
fn serve_refuses_an_unusable_tls_certificate_naming_it() {
    let home = tempfile::tempdir().unwrap();
    // The example names /etc/rds-token-broker/tls.crt, which does not exist here.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/broker.toml");
    let out = binary::run(home.path(), &["serve", "--config", example]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("server.tls_cert: /etc/rds-token-broker/tls.crt"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_writes_the_counts_of_coalesced_floods_before_exiting() {
    use sqlx::Connection as _;
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("audit.db");
    let config = BrokerToml::new()
        .target(Target::postgres("orders-db"))
        .audit_url(format!("sqlite://{}", db.display()))
        .write_to(home.path());
    let mut cmd = binary::command(home.path());
    cmd.args(["serve", "--config", config.to_str().unwrap()]);
    let mut broker = RunningBroker::start(cmd);
    let client = crate::support::client();
    for _ in 0..50 {
        let res = client
            .post(format!("{}/v1/tokens", broker.base))
            .json(&json!({"target": "orders-db"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    // Well inside the one-second window: the folded 49 exist only in memory.
    assert!(broker.terminate().await.success());
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let (events, total): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), SUM(count) FROM audit_events WHERE outcome = 'denied'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(total, 50, "every refused request is accounted for");
    assert_eq!(events, 2, "the first at once, the rest as one event");
}
