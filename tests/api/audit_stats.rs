//! `GET /v1/audit/stats`, the console's aggregates: the same body on SQLite and on the
//! machine's PostgreSQL, with the broker's clock moved by the test.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{TestApp, problem};
use crate::support::config::BrokerToml;
use crate::support::pg::TempDb;

async fn app_with_audit(url: &str) -> TestApp {
    TestApp::spawn_toml(BrokerToml::unauthenticated().audit_url(url)).await
}

async fn stats(app: &TestApp, query: &str) -> Value {
    let res = app.get(&format!("/v1/audit/stats?{query}")).await;
    assert_eq!(res.status(), 200, "{query}");
    res.json().await.unwrap()
}

/// At 14:11:29 (t0): 7 tokens for orders-db (2 minted: one per DB user) and 3 forbidden
/// requests (one event, and one folding the other two once its window closes); ten
/// minutes later 4 tokens for ledger (1 minted).
async fn counts_land_in_their_buckets(url: &str) {
    let app = app_with_audit(url).await;
    for _ in 0..5 {
        app.token(json!({"target": "orders-db", "db_user": "app_ro"}))
            .await;
    }
    for _ in 0..2 {
        app.token(json!({"target": "orders-db", "db_user": "app_rw"}))
            .await;
    }
    for i in 0..3 {
        let res = app
            .post_token(json!({"target": format!("nope-{i}"), "db_user": "x"}))
            .await;
        assert_eq!(res.status(), 403);
    }
    app.clock.advance(Duration::from_secs(600));
    for _ in 0..4 {
        app.token(json!({"target": "ledger"})).await;
    }
    let range = "since=2026-03-09T14:00:00Z&until=2026-03-09T15:00:00Z";
    let (app_ref, range_ref) = (&app, range);
    let calls = std::sync::atomic::AtomicI64::new(0);
    let calls_ref = &calls;
    let s = crate::support::eventually(Duration::from_secs(10), || async move {
        calls_ref.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let s = stats(app_ref, &format!("{range_ref}&bucket=300")).await;
        (s["totals"]["forbidden"] == 3).then_some(s)
    })
    .await;
    // Each read is recorded after it is answered: the first of these identical reads at
    // once, the later ones folded into a window that stays open while the clock stands.
    let reads = calls.load(std::sync::atomic::Ordering::SeqCst).min(2) - 1;
    assert_eq!(s["bucket_seconds"], 300);
    assert_eq!(s["buckets"].as_array().unwrap().len(), 12);
    assert_eq!(s["buckets"][2], "2026-03-09T14:10:00Z");
    let mut orders = vec![0; 12];
    orders[2] = 7;
    let mut ledger = vec![0; 12];
    ledger[4] = 4;
    assert_eq!(
        s["issued_by_target"],
        json!([
            {"target": "orders-db", "counts": orders, "total": 7},
            {"target": "ledger", "counts": ledger, "total": 4},
        ])
    );
    let mut forbidden = vec![0; 12];
    forbidden[2] = 3;
    assert_eq!(s["refused"]["forbidden"], json!(forbidden));
    assert_eq!(s["refused"]["denied"], json!(vec![0; 12]));
    assert_eq!(s["refused"]["rejected"], json!(vec![0; 12]));
    assert!(
        s["refused"].get("audit_read").is_none(),
        "reads are no refusals"
    );
    assert_eq!(
        s["totals"],
        json!({"issued": 11, "denied": 0, "forbidden": 3, "throttled": 0, "failed": 0,
               "rejected": 0, "audit_read": reads, "signed_in": 0, "access_requested": 0,
               "access_approved": 0, "access_denied": 0, "access_expired": 0,
               "access_revoked": 0, "break_glass": 0})
    );
    assert_eq!(
        s["top_principals"],
        json!([{"issuer": "none", "subject": "anonymous", "issued": 11, "refused": 3}])
    );
    assert_eq!(
        s["budgets"],
        json!([
            {"target": "ledger", "kind": "rds", "max_connections_per_second": 200, "burst": 20, "minted": 1, "peak_per_second": 1, "throttled": 0},
            {"target": "orders-db", "kind": "rds", "max_connections_per_second": 200, "burst": 20, "minted": 2, "peak_per_second": 2, "throttled": 0},
        ])
    );

    // Hourly buckets: everything in the 14:00 one. Filters narrow every aggregate.
    let s = stats(&app, &format!("{range}&bucket=3600&target=ledger")).await;
    assert_eq!(
        s["issued_by_target"],
        json!([{"target": "ledger", "counts": [4], "total": 4}])
    );
    assert_eq!(s["totals"]["forbidden"], 0);
    assert_eq!(s["budgets"][1]["minted"], 0, "orders-db is filtered out");

    // A range that ends before the ledger tokens; the default bucket keeps it within 100.
    let s = stats(
        &app,
        "since=2026-03-09T14:11:00Z&until=2026-03-09T14:12:00Z",
    )
    .await;
    assert_eq!(s["bucket_seconds"], 60);
    assert_eq!(s["totals"]["issued"], 7);

    // Defaults: the day before the broker's clock.
    let s = stats(&app, "").await;
    assert_eq!(s["until"], "2026-03-09T14:21:29.000Z");
    assert_eq!(s["since"], "2026-03-08T14:21:29.000Z");
    assert_eq!(s["bucket_seconds"], 900);
    assert_eq!(s["totals"]["issued"], 11);
}

#[tokio::test]
async fn sqlite_stats_count_every_event_in_its_bucket() {
    let dir = tempfile::tempdir().unwrap();
    counts_land_in_their_buckets(&format!("sqlite://{}/audit.db", dir.path().display())).await;
}

#[tokio::test]
async fn postgres_stats_count_every_event_in_its_bucket() {
    let db = TempDb::create().await;
    counts_land_in_their_buckets(&db.url()).await;
}

#[tokio::test]
async fn bad_stats_queries_are_400() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_audit(&format!("sqlite://{}/audit.db", dir.path().display())).await;
    for (query, needle) in [
        ("bucket=7", "bucket: must be"),
        (
            "bucket=60&since=2026-01-01T00:00:00Z",
            "more than 1000 buckets",
        ),
        (
            "since=2026-03-09T15:00:00Z&until=2026-03-09T14:00:00Z",
            "since: must be before until",
        ),
        ("cursor=abc", "cursor: not accepted"),
        ("limit=10", "limit: not accepted"),
        ("since=yesterday", "since: must be an RFC 3339 time"),
        ("color=red", "unknown parameter"),
    ] {
        let body = problem(app.get(&format!("/v1/audit/stats?{query}")).await, 400).await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{query}: {detail}");
    }
}
