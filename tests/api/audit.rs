//! The audit trail, with the same test bodies on SQLite and on the machine's PostgreSQL.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::app::{TestApp, problem};
use crate::support::config::BrokerToml;
use crate::support::pg::TempDb;
use crate::support::store::Store;

/// `(outcome, token_sha256, target)` of every row of `sql`.
async fn decisions(store: &Store, sql: &str) -> Vec<(String, Option<String>, Option<String>)> {
    let rows = store
        .rows(sql, &["outcome", "token_sha256", "target"])
        .await;
    rows.into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone(), r[2].clone()))
        .collect()
}

async fn app(store: &Store) -> TestApp {
    TestApp::spawn_toml(BrokerToml::unauthenticated().audit_url(store.url())).await
}

async fn verify(app: &TestApp) -> Value {
    let res = app.get("/v1/audit/verify").await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn every_decision_is_committed_with_the_token_hash(store: Store) {
    let app = app(&store).await;
    let issued = app.token(json!({"target": "ledger"})).await;
    problem(
        app.post_token(json!({"target": "nope", "db_user": "x"}))
            .await,
        403,
    )
    .await;
    problem(app.post_token(json!({"target": "orders-db"})).await, 400).await;

    let rows = decisions(
        &store,
        "SELECT outcome, token_sha256, target FROM audit_events ORDER BY seq",
    )
    .await;
    let sha = hex::encode(Sha256::digest(issued["token"].as_str().unwrap().as_bytes()));
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(
        rows[0],
        ("issued".to_owned(), Some(sha), Some("ledger".to_owned()))
    );
    assert_eq!(
        rows[1],
        ("forbidden".to_owned(), None, Some("nope".to_owned()))
    );
    assert_eq!(
        rows[2].0, "forbidden",
        "db_user omitted where several are allowed"
    );
    let all = decisions(
        &store,
        "SELECT outcome, token_sha256, target FROM audit_events",
    )
    .await;
    assert!(
        all.iter()
            .all(|r| r.1.as_deref() != issued["token"].as_str()),
        "the token itself is never stored"
    );

    let v = verify(&app).await;
    assert_eq!(
        v,
        json!({"ok": true, "events_checked": 3, "first_broken": null})
    );
}

#[tokio::test]
async fn sqlite_every_decision_is_committed_with_the_token_hash() {
    every_decision_is_committed_with_the_token_hash(Store::sqlite()).await;
}

#[tokio::test]
async fn postgres_every_decision_is_committed_with_the_token_hash() {
    every_decision_is_committed_with_the_token_hash(Store::postgres().await).await;
}

async fn tampering_is_detected_at_the_row(
    store_for: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Store>>>,
) {
    let tamperings = [
        (
            "UPDATE audit_events SET target = 'orders-db' WHERE seq = 3",
            3,
            "altered",
        ),
        (
            "DELETE FROM audit_events WHERE seq = 2",
            2,
            "missing or out of order",
        ),
        (
            "UPDATE audit_events SET seq = 100 WHERE seq = 2; UPDATE audit_events SET seq = 2 WHERE seq = 4; UPDATE audit_events SET seq = 4 WHERE seq = 100",
            2,
            "prev_hash",
        ),
    ];
    for (sql, seq, reason) in tamperings {
        let store = store_for().await;
        let app = app(&store).await;
        for _ in 0..5 {
            app.token(json!({"target": "ledger"})).await;
        }
        assert_eq!(verify(&app).await["ok"], true);
        for stmt in sql.split("; ") {
            store.exec(stmt).await;
        }
        let v = verify(&app).await;
        assert_eq!(v["ok"], false, "{sql}: {v}");
        assert_eq!(v["first_broken"]["seq"], seq, "{sql}: {v}");
        assert!(
            v["first_broken"]["reason"]
                .as_str()
                .unwrap()
                .contains(reason),
            "{sql}: {v}"
        );
    }
}

#[tokio::test]
async fn sqlite_tampering_is_detected_at_the_row() {
    tampering_is_detected_at_the_row(|| Box::pin(async { Store::sqlite() })).await;
}

#[tokio::test]
async fn postgres_tampering_is_detected_at_the_row() {
    tampering_is_detected_at_the_row(|| Box::pin(Store::postgres())).await;
}

async fn concurrent_requests_are_group_committed_into_one_valid_chain(store: Store) {
    let app = std::sync::Arc::new(app(&store).await);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let app = app.clone();
        let user = if i % 2 == 0 { "app_rw" } else { "app_ro" };
        tasks.push(tokio::spawn(async move {
            app.post_token(json!({"target": "orders-db", "db_user": user}))
                .await
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let v = verify(&app).await;
    assert_eq!(
        v,
        json!({"ok": true, "events_checked": 64, "first_broken": null})
    );
}

#[tokio::test]
async fn sqlite_concurrent_requests_are_group_committed_into_one_valid_chain() {
    concurrent_requests_are_group_committed_into_one_valid_chain(Store::sqlite()).await;
}

#[tokio::test]
async fn postgres_concurrent_requests_are_group_committed_into_one_valid_chain() {
    concurrent_requests_are_group_committed_into_one_valid_chain(Store::postgres().await).await;
}

#[tokio::test]
async fn an_unavailable_store_fails_closed_and_recovers() {
    let db = TempDb::create().await;
    let store = Store::Postgres(db);
    let app = app(&store).await;
    app.token(json!({"target": "ledger"})).await;
    let Store::Postgres(db) = &store else {
        unreachable!()
    };
    let name = db.name.clone();
    db.admin(
        &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"),
        false,
    )
    .await;
    db.admin(
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"),
        false,
    )
    .await;

    let res = app
        .post_token(json!({"target": "orders-db", "db_user": "app_rw"}))
        .await;
    assert_eq!(res.headers()["retry-after"], "5");
    let p = problem(res, 503).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("audit trail cannot record"),
        "{p}"
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ready.json::<Value>().await.unwrap()["checks"]["audit"]["ok"],
        false
    );

    db.admin(
        &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"),
        false,
    )
    .await;
    assert_eq!(
        app.post_token(json!({"target": "orders-db", "db_user": "app_rw"}))
            .await
            .status(),
        200
    );
    let v = verify(&app).await;
    assert_eq!(
        v,
        json!({"ok": true, "events_checked": 2, "first_broken": null}),
        "the refused request left no event"
    );
}

async fn pruning_keeps_what_remains_verifiable(store: Store) {
    let app = app(&store).await;
    for _ in 0..3 {
        app.token(json!({"target": "ledger"})).await;
    }
    // Past the default retention (400 days) of the first three events.
    app.clock
        .advance(std::time::Duration::from_secs(400 * 86_400 + 3600));
    for _ in 0..3 {
        app.token(json!({"target": "ledger"})).await;
    }
    let audit = app.state.broker.audit().unwrap();
    // The first three events go, a checkpoint stays. (A checkpoint newer than the
    // retention period allows would be reported: see hardening_audit.rs.)
    assert_eq!(audit.prune("2026-03-09T14:41:29Z").await.unwrap(), 3);
    let v = verify(&app).await;
    assert_eq!(
        v,
        json!({"ok": true, "events_checked": 3, "first_broken": null})
    );
    // The three issuances, and the verification's own `audit_read`.
    let remaining = decisions(
        &store,
        "SELECT outcome, token_sha256, target FROM audit_events",
    )
    .await;
    assert_eq!(remaining.len(), 4, "{remaining:?}");
    // Pruning again is a no-op; tampering with what remains is still found.
    assert_eq!(audit.prune("2026-03-09T14:41:29Z").await.unwrap(), 0);
    store.exec("DELETE FROM audit_events WHERE seq = 5").await;
    let v = verify(&app).await;
    assert_eq!(v["first_broken"]["seq"], 5, "{v}");
}

#[tokio::test]
async fn sqlite_pruning_keeps_what_remains_verifiable() {
    pruning_keeps_what_remains_verifiable(Store::sqlite()).await;
}

#[tokio::test]
async fn postgres_pruning_keeps_what_remains_verifiable() {
    pruning_keeps_what_remains_verifiable(Store::postgres().await).await;
}
