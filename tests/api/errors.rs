//! Start-up errors name the step that failed (the real binary's `error: ...` line), never
//! a secret from the configuration.

use crate::support::binary;
use crate::support::config::{BrokerToml, Target};

/// A broker configuration on a free port whose audit store is `url`.
fn with_audit_url(url: &str) -> BrokerToml {
    BrokerToml::new()
        .target(Target::postgres("orders-db").db_users(["app"]))
        .audit_url(url)
}

/// Writes [`with_audit_url`] into `dir`.
fn config_with_audit_url(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    with_audit_url(url).write_to(dir)
}

/// Runs `serve` with an audit store at `url`; returns stderr after checking the exit.
fn serve_fails(url: &str) -> String {
    let home = tempfile::tempdir().unwrap();
    let config = config_with_audit_url(home.path(), url);
    let out = binary::run(
        home.path(),
        &["serve", "--config", config.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

#[test]
fn an_unreachable_audit_database_is_reported_as_the_audit_store_not_the_listener() {
    // A port nothing listens on: taken, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stderr = serve_fails(&format!(
        "postgres://broker:s3cret-audit-pw@127.0.0.1:{port}/audit"
    ));
    assert!(
        stderr.contains(
            "error: cannot open the audit store (audit.url): cannot connect to the audit database: "
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot listen"), "{stderr}");
    assert!(!stderr.contains("s3cret-audit-pw"), "{stderr}");
}

#[tokio::test]
async fn an_audit_database_refusing_the_credentials_is_reported_as_the_audit_store() {
    // The tests' PostgreSQL trusts local connections, so a role that does not exist is
    // what it refuses at sign-in (where a password would be checked).
    let db = crate::support::pg::TempDb::create().await;
    let url = db
        .url()
        .replacen("postgres@", "no_such_role_rtb:s3cret-audit-pw@", 1);
    assert!(url.contains("no_such_role_rtb"), "{url}");
    let stderr = serve_fails(&url);
    assert!(
        stderr.contains(
            "error: cannot open the audit store (audit.url): cannot connect to the audit database: "
        ),
        "{stderr}"
    );
    assert!(stderr.contains("no_such_role_rtb"), "{stderr}");
    assert!(!stderr.contains("cannot listen"), "{stderr}");
    assert!(!stderr.contains("s3cret-audit-pw"), "{stderr}");
}

#[test]
fn a_port_in_use_is_still_reported_as_the_listener() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("audit.db");
    let config = config_with_audit_url(home.path(), &format!("sqlite://{}", db.display()));
    let out = binary::run(
        home.path(),
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            &addr.to_string(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("error: cannot listen on {addr}: ")),
        "{stderr}"
    );
    drop(taken);
}

#[test]
fn an_unusable_redis_url_or_audit_mirror_is_reported_by_its_key() {
    let home = tempfile::tempdir().unwrap();
    let base = BrokerToml::new()
        .target(Target::postgres("orders-db").db_users(["app"]))
        .audit_sqlite(home.path());
    let cases = [
        (
            base.clone()
                .rate_limit("redis_url", "redis://:s3cret-redis-pw@[::1"),
            "error: cannot use the rate limit store (rate_limit.redis_url): not a valid Redis URL",
        ),
        (
            base.audit("mirror", "/nonexistent-rtb/mirror.log"),
            "error: cannot open the audit mirror /nonexistent-rtb/mirror.log (audit.mirror): ",
        ),
    ];
    for (toml, expected) in cases {
        let config = toml.write_to(home.path());
        let out = binary::run(
            home.path(),
            &["serve", "--config", config.to_str().unwrap()],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("s3cret-redis-pw"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_sign_ins_are_audited_by_the_token_route_only_and_before_its_body() {
    use sqlx::Connection as _;
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("audit.db");
    // No issuer: every caller is refused (401).
    let config = config_with_audit_url(home.path(), &format!("sqlite://{}", db.display()));
    let mut cmd = binary::command(home.path());
    cmd.args(["serve", "--config", config.to_str().unwrap()]);
    let mut broker = binary::RunningBroker::start(cmd);
    let client = crate::support::client();
    // Not JSON: still 401, not 415, and audited.
    let res = client
        .post(format!("{}/v1/tokens", broker.base))
        .header("content-type", "text/plain")
        .body("target=orders-db")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers().contains_key("www-authenticate"));
    // Refused on other routes: answered alike, not audited.
    for path in ["/v1/targets", "/v1/audit/events"] {
        let res = client
            .get(format!("{}{path}", broker.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{path}");
    }
    assert!(broker.terminate().await.success());
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let rows: Vec<(String, Option<String>, i64)> =
        sqlx::query_as("SELECT outcome, reason, count FROM audit_events")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (outcome, reason, count) = &rows[0];
    assert_eq!((outcome.as_str(), *count), ("denied", 1));
    assert_eq!(reason.as_deref(), Some("missing bearer token"));
}
