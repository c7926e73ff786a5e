//! Reloading the configuration under load: SIGHUP, file changes, invalid files.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::support::binary::RunningBroker;
use crate::support::config::{BrokerToml, Target};
use crate::support::eventually;

/// An unauthenticated broker with JSON logs and `targets` (user `app` each).
fn config(targets: &[&str]) -> BrokerToml {
    targets.iter().fold(
        BrokerToml::new()
            .server("allow_unauthenticated", true)
            .json_logs()
            .rate_limit("per_principal_per_second", 1_000_000),
        |c, t| {
            c.target(
                Target::postgres(t).host(&format!("{t}.cluster-x.eu-west-1.rds.amazonaws.com")),
            )
        },
    )
}

async fn status(client: &reqwest::Client, base: &str, target: &str) -> u16 {
    client
        .post(format!("{base}/v1/tokens"))
        .json(&json!({"target": target}))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Waits (at most 10 s) until `target` is served.
async fn served(client: &reqwest::Client, base: &str, target: &str) {
    eventually(Duration::from_secs(10), || async {
        status(client, base, target).await == 200
    })
    .await;
}

fn hup(broker: &RunningBroker) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &broker.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn reloads_apply_atomically_under_load_and_invalid_files_are_rejected() {
    let home = tempfile::tempdir().unwrap();
    let broker = RunningBroker::serve(home.path(), &config(&["alpha"]));
    let client = crate::support::client();
    assert_eq!(status(&client, &broker.base, "alpha").await, 200);
    assert_eq!(status(&client, &broker.base, "beta").await, 403);

    // Load: four clients asking for alpha without pause for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (client, base, stop, ok, failed) = (
            client.clone(),
            broker.base.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if status(&client, &base, "alpha").await == 200 {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }

    // SIGHUP applies a new file.
    config(&["alpha", "beta"]).write_to(home.path());
    hup(&broker);
    served(&client, &broker.base, "beta").await;

    // An invalid file is rejected; the running configuration stays.
    BrokerToml::raw_only("[[targets]]\nname = \"broken\"\n").write_to(home.path());
    hup(&broker);
    eventually(Duration::from_secs(5), || async {
        broker.stderr().contains("configuration reload rejected")
    })
    .await;
    assert_eq!(status(&client, &broker.base, "beta").await, 200);

    // A change to the file alone, without a signal, is picked up too.
    config(&["alpha", "beta", "gamma"]).write_to(home.path());
    served(&client, &broker.base, "gamma").await;

    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.await.unwrap();
    }
    assert!(
        ok.load(Ordering::SeqCst) > 50,
        "too little load: {}",
        ok.load(Ordering::SeqCst)
    );
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests failed during reloads"
    );
}
