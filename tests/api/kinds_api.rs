//! The API for each target kind: what `POST /v1/tokens` and `GET /v1/targets` answer, the
//! audit event's kind and role, metrics by kind, and a DSQL target paced at its own
//! budget.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::app::{TestApp, problem};
use crate::support::config::{Auditor, BrokerToml, Target};
use crate::support::eventually;

/// An unauthenticated broker (the anonymous caller may use every target and read the
/// trail) with `targets`, auditing to SQLite in `dir`.
async fn app(dir: &std::path::Path, targets: Vec<Target>) -> TestApp {
    let mut toml = BrokerToml::new()
        .server("allow_unauthenticated", true)
        .server("metrics_on_listen", true)
        .audit_sqlite(dir)
        .rate_limit("per_principal_per_second", 1_000_000)
        .auditor(Auditor::anonymous());
    for t in targets {
        toml = toml.target(t);
    }
    TestApp::spawn_toml(toml).await
}

async fn events(app: &TestApp, query: &str) -> Vec<Value> {
    let v: Value = app
        .get(&format!("/v1/audit/events?{query}"))
        .await
        .json()
        .await
        .unwrap();
    v["events"].as_array().unwrap().clone()
}

#[tokio::test]
async fn each_kind_answers_with_its_kind_and_caches_with_user_tls_and_reauth() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(
        dir.path(),
        vec![
            // Names no other test uses: metrics are per process, shared by the tests.
            Target::postgres("api-rds"),
            Target::dsql("api-dsql").token_lifetime_seconds(3600),
            Target::elasticache("api-cache"),
            Target::elasticache("api-serverless")
                .cache_name("orders-cache")
                .serverless(true),
            Target::memorydb("api-memorydb"),
        ],
    )
    .await;

    let rds = app.token(json!({"target": "api-rds"})).await;
    assert_eq!(rds["kind"], "rds");
    for absent in ["user", "tls", "reauthenticate_within_seconds", "note"] {
        assert!(
            rds.get(absent).is_none(),
            "{absent} on an RDS answer: {rds}"
        );
    }

    let dsql = app
        .token(json!({"target": "api-dsql", "db_user": "admin"}))
        .await;
    assert_eq!(dsql["kind"], "dsql");
    assert_eq!(dsql["db_user"], "admin");
    assert_eq!(dsql["port"], 5432);
    assert_eq!(dsql["engine"], "postgres");
    let token = dsql["token"].as_str().unwrap();
    assert!(
        token.starts_with(
            "abcdefghijklmnopqrst123456.dsql.us-east-1.on.aws/?Action=DbConnectAdmin&X-Amz-Algorithm="
        ),
        "{token}"
    );
    assert!(token.contains("%2Fus-east-1%2Fdsql%2Faws4_request&"));
    assert!(token.contains("&X-Amz-Expires=3600&"));
    let app_role = app
        .token(json!({"target": "api-dsql", "db_user": "app"}))
        .await;
    assert!(
        app_role["token"]
            .as_str()
            .unwrap()
            .contains("/?Action=DbConnect&")
    );
    // The token's lifetime is the target's: an hour after signing.
    let signed = &token[token.find("X-Amz-Date=").unwrap() + 11..][..16];
    assert_eq!(&dsql["expires_at"].as_str().unwrap()[..10], "2026-03-09");
    assert_eq!(signed, "20260309T141129Z", "the manual clock's time");
    assert_eq!(dsql["expires_at"], "2026-03-09T15:11:29Z");
    assert!(dsql.get("user").is_none() && dsql.get("tls").is_none());

    let cache = app.token(json!({"target": "api-cache"})).await;
    assert_eq!(cache["kind"], "elasticache");
    assert_eq!(cache["user"], "app-user");
    assert_eq!(cache["db_user"], "app-user");
    assert_eq!(cache["tls"], true);
    assert_eq!(cache["reauthenticate_within_seconds"], 43_200);
    assert!(cache["note"].as_str().unwrap().contains("12 hours"));
    assert_eq!(cache["port"], 6379);
    assert_eq!(cache["engine"], "valkey");
    assert_eq!(
        cache["host"],
        "master.my-redis-cluster.abc123.use1.cache.amazonaws.com"
    );
    let token = cache["token"].as_str().unwrap();
    assert!(
        token.starts_with("my-redis-cluster/?Action=connect&User=app-user&X-Amz-Algorithm="),
        "{token}"
    );
    assert!(token.contains("%2Fus-east-1%2Felasticache%2Faws4_request&"));

    let serverless = app.token(json!({"target": "api-serverless"})).await;
    assert!(
        serverless["token"].as_str().unwrap().starts_with(
            "orders-cache/?Action=connect&User=app-user&ResourceType=ServerlessCache&"
        )
    );
    let memorydb = app.token(json!({"target": "api-memorydb"})).await;
    assert_eq!(memorydb["kind"], "memorydb");
    assert_eq!(memorydb["user"], "ledger_app");
    assert!(
        memorydb["token"]
            .as_str()
            .unwrap()
            .contains("%2Fus-east-1%2Fmemorydb%2Faws4_request&")
    );

    // A role the target does not list is refused like an unknown DB user.
    let res = app
        .post_token(json!({"target": "api-dsql", "db_user": "other"}))
        .await;
    problem(res, 403).await;

    let targets: Value = app.get("/v1/targets").await.json().await.unwrap();
    let kinds: Vec<(&str, &str)> = targets["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("api-cache", "elasticache"),
            ("api-dsql", "dsql"),
            ("api-memorydb", "memorydb"),
            ("api-rds", "rds"),
            ("api-serverless", "elasticache"),
        ]
    );

    // The trail records the kind and the role chosen; the token only as its hash.
    let issued = events(&app, "outcome=issued&target=api-dsql").await;
    let admin = issued
        .iter()
        .find(|e| e["db_user"] == "admin")
        .expect("the admin issuance");
    assert_eq!(admin["kind"], "dsql");
    assert_eq!(
        admin["token_sha256"].as_str().unwrap(),
        hex::encode(Sha256::digest(dsql["token"].as_str().unwrap().as_bytes()))
    );
    let forbidden = events(&app, "outcome=forbidden").await;
    assert_eq!(forbidden.len(), 1, "{forbidden:?}");
    assert_eq!(forbidden[0]["kind"], "dsql");
    let cache_events = events(&app, "target=api-cache").await;
    assert_eq!(cache_events[0]["kind"], "elasticache");
    assert_eq!(cache_events[0]["db_user"], "app-user");

    // The trail can be searched by kind; an unknown kind is a 400 naming the parameter.
    let by_kind = events(&app, "kind=dsql").await;
    assert_eq!(
        by_kind.len(),
        3,
        "two issued and one forbidden: {by_kind:?}"
    );
    assert!(by_kind.iter().all(|e| e["kind"] == "dsql"));
    assert_eq!(events(&app, "kind=memorydb").await.len(), 1);
    let stats: Value = app
        .get("/v1/audit/stats?kind=elasticache&since=2026-03-09T00:00:00Z")
        .await
        .json()
        .await
        .unwrap();
    assert!(stats.is_object(), "{stats}");
    let bad = problem(app.get("/v1/audit/events?kind=redis").await, 400).await;
    assert!(
        bad["detail"]
            .as_str()
            .unwrap()
            .contains("kind: must be one of rds"),
        "{bad}"
    );

    // Metrics name the kind next to the target.
    let text = app.get("/metrics").await.text().await.unwrap();
    for needle in [
        r#"rds_token_broker_tokens_total{target="api-dsql",kind="dsql",cache="miss"} 2"#,
        r#"rds_token_broker_tokens_minted_total{target="api-cache",kind="elasticache"} 1"#,
        r#"rds_token_broker_tokens_minted_total{target="api-rds",kind="rds"} 1"#,
    ] {
        assert!(text.contains(needle), "{needle} not in:\n{text}");
    }
}

#[tokio::test]
async fn a_dsql_target_is_paced_at_dsqls_own_budget() {
    // 1001 Postgres roles: each is a distinct token, so each costs a slot of the budget.
    let roles: Vec<String> = (0..1001).map(|i| format!("r{i}")).collect();
    let dir = tempfile::tempdir().unwrap();
    let app = app(
        dir.path(),
        vec![
            Target::dsql("paced-dsql").db_users(roles.clone()),
            Target::postgres("paced-rds").db_users(roles.iter().take(21)),
        ],
    )
    .await;
    // The clock stands still: only the burst is available. DSQL's is 1000, RDS's 20.
    for (i, role) in roles.iter().take(1000).enumerate() {
        let res = app
            .post_token(json!({"target": "paced-dsql", "db_user": role}))
            .await;
        assert_eq!(res.status(), 200, "role {i}");
    }
    let res = app
        .post_token(json!({"target": "paced-dsql", "db_user": "r1000"}))
        .await;
    let body = problem(res, 429).await;
    assert_eq!(body["limit"], "target");
    for role in roles.iter().take(20) {
        let res = app
            .post_token(json!({"target": "paced-rds", "db_user": role}))
            .await;
        assert_eq!(res.status(), 200);
    }
    problem(
        app.post_token(json!({"target": "paced-rds", "db_user": "r20"}))
            .await,
        429,
    )
    .await;
    // DSQL's rate is 100 per second: 10 ms later there is one more slot, not two.
    app.clock.advance(Duration::from_millis(10));
    let ok = app
        .post_token(json!({"target": "paced-dsql", "db_user": "r1000"}))
        .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(app.minted(), 1021);
    // The refusals are in the trail with the target's kind.
    let app_ref = &app;
    let throttled = eventually(Duration::from_secs(10), || async move {
        let e = events(app_ref, "outcome=throttled").await;
        (e.len() >= 2).then_some(e)
    })
    .await;
    let mut kinds: Vec<&str> = throttled
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["dsql", "rds"]);
}
