//! Reloading the configuration under load: SIGHUP, file changes, invalid files.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::support::binary::{self, RunningBroker};

fn config(targets: &[&str]) -> String {
    let mut c = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\nallow_unauthenticated = true\n[log]\nformat = \"json\"\n[rate_limit]\nper_principal_per_second = 1000000\n",
    );
    for t in targets {
        c.push_str(&format!(
            "[[targets]]\nname = \"{t}\"\nhost = \"{t}.cluster-x.eu-west-1.rds.amazonaws.com\"\nport = 5432\nengine = \"postgres\"\ndb_users = [\"app\"]\n"
        ));
    }
    c
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

async fn eventually(client: &reqwest::Client, base: &str, target: &str, want: u16) -> bool {
    for _ in 0..100 {
        if status(client, base, target).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
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
    let file = home.path().join("broker.toml");
    std::fs::write(&file, config(&["alpha"])).unwrap();
    let mut cmd = binary::command_with_example_keys(home.path());
    cmd.args(["serve", "--config", file.to_str().unwrap()]);
    let broker = RunningBroker::start(cmd);
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
    std::fs::write(&file, config(&["alpha", "beta"])).unwrap();
    hup(&broker);
    assert!(
        eventually(&client, &broker.base, "beta", 200).await,
        "beta never appeared"
    );

    // An invalid file is rejected; the running configuration stays.
    std::fs::write(&file, "[[targets]]\nname = \"broken\"\n").unwrap();
    hup(&broker);
    let mut rejected = false;
    for _ in 0..50 {
        if broker.stderr().contains("configuration reload rejected") {
            rejected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rejected, "no rejection logged:\n{}", broker.stderr());
    assert_eq!(status(&client, &broker.base, "beta").await, 200);

    // A change to the file alone, without a signal, is picked up too.
    std::fs::write(&file, config(&["alpha", "beta", "gamma"])).unwrap();
    assert!(
        eventually(&client, &broker.base, "gamma", 200).await,
        "file change not picked up"
    );

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
