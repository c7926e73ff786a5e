//! No unaudited path (issue 19, item 7): a broker without an audit trail only runs when
//! its file says so.

use std::process::{Child, ExitStatus};
use std::time::Duration;

use rds_token_broker::config::load_str;

use crate::support::binary::{self, RunningBroker};
use crate::support::config::{BrokerToml, Target};
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
    let status = eventually(Duration::from_secs(30), || {
        let status = child.try_wait().unwrap();
        async move { status }
    })
    .await;
    status
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
