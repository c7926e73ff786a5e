//! Nothing a log collector or a SIEM shipper does can stall issuance: the real binary with
//! its stdout (the audit mirror) and stderr (the log) pipes never read.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use crate::support::binary;
use crate::support::config::{BrokerToml, Target};

#[tokio::test(flavor = "multi_thread")]
async fn unread_stdout_and_stderr_pipes_do_not_stall_issuance() {
    let home = tempfile::tempdir().unwrap();
    let config = BrokerToml::new()
        .server("allow_unauthenticated", true)
        .server("metrics_on_listen", true)
        .audit_sqlite(home.path())
        .audit("mirror", "stdout")
        .rate_limit("per_principal_per_second", 1_000_000)
        .rate_limit("per_client_ip_per_second", 0)
        .target(Target::postgres("orders-db").db_users(["app_rw"]))
        .write_to(home.path());
    let mut cmd = binary::command_with_example_keys(home.path());
    // Every library's trace lines: four lines a request, so the 16,384-line log queue
    // fills after about 4,200 requests once the pipe is full.
    cmd.env("RUST_LOG", "trace")
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // Read stderr only until the address is logged; then neither pipe is read again.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let _unread_stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    let base = loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "broker exited");
        if let Some(base) = binary::listening_address(&line) {
            break base;
        }
    };
    let client = crate::support::client();
    // More log lines than the queue plus the pipe's buffer, and far more mirror bytes than
    // a pipe holds: before, the log writer and then every tokio worker blocked, and the
    // audit writer blocked on stdout, so requests hung.
    let issue = async {
        for round in 0..110 {
            let mut batch = Vec::new();
            for _ in 0..50 {
                batch.push(
                    client
                        .post(format!("{base}/v1/tokens"))
                        .json(&serde_json::json!({"target": "orders-db"}))
                        .send(),
                );
            }
            for res in futures_util::future::join_all(batch).await {
                let res = res.unwrap();
                assert_eq!(res.status(), 200, "round {round}");
            }
        }
    };
    // A bound for a hang, not a timing: 5,500 requests take about ten seconds here.
    tokio::time::timeout(Duration::from_secs(120), issue)
        .await
        .expect("issuance stalled behind unread pipes");
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped: f64 = metrics
        .lines()
        .find(|l| l.starts_with("rds_token_broker_log_lines_dropped_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(
        dropped > 0.0,
        "the log queue never filled, so this test proved nothing"
    );
    let _ = child.kill();
    let _ = child.wait();
}
