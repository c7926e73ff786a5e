//! `POST /v1/tokens`, `/healthz`, `/readyz` and routing errors, against an in-process
//! broker over loopback HTTP with a manual clock.

use std::time::Duration;

use rds_token_broker::token::{TokenParams, sign_token};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::support::app::{TestApp, problem, t0};
use crate::support::config::BrokerToml;
use crate::support::creds::{Switchable, session_keys, static_keys};
use crate::support::eventually;

#[tokio::test]
async fn issues_a_token_byte_identical_to_the_signer_with_every_field() {
    let app = TestApp::spawn().await;
    let res = app
        .post_token(json!({"target": "orders-db", "db_user": "app_rw"}))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["content-type"], "application/json");
    assert!(res.headers().contains_key("x-request-id"));
    let body: Value = res.json().await.unwrap();
    let expected = sign_token(
        TokenParams {
            host: "Orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com",
            port: 5432,
            region: "eu-west-1",
            db_user: "app_rw",
        },
        &static_keys(),
        t0(),
    )
    .unwrap();
    assert_eq!(body["token"], expected.expose_secret());
    assert_eq!(body["expires_at"], "2026-03-09T14:26:29Z");
    assert_eq!(body["target"], "orders-db");
    assert_eq!(
        body["host"],
        "Orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com"
    );
    assert_eq!(body["port"], 5432);
    assert_eq!(body["db_user"], "app_rw");
    assert_eq!(body["region"], "eu-west-1");
    assert_eq!(body["engine"], "postgres");
    let id = uuid::Uuid::parse_str(body["issuance_id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);
}

/// Cached tokens are kept in pieces, their common parts (session token included) shared (see `token::stored`):
/// served tokens, minted or from the cache, are still the signer's output byte for byte.
#[tokio::test]
async fn cached_tokens_with_a_session_token_come_back_byte_identical() {
    let creds = session_keys("ASIAEXAMPLESESSION01", t0() + Duration::from_secs(3600));
    let app = TestApp::spawn_with(
        BrokerToml::unauthenticated(),
        Switchable::with(creds.clone()),
    )
    .await;
    for user in ["app_rw", "app_ro", "mario.rossi@example.com"] {
        let expected = sign_token(
            TokenParams {
                host: "Orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com",
                port: 5432,
                region: "eu-west-1",
                db_user: user,
            },
            &creds,
            t0(),
        )
        .unwrap();
        assert!(expected.expose_secret().contains("X-Amz-Security-Token="));
        for _ in 0..2 {
            let body = app
                .token(json!({"target": "orders-db", "db_user": user}))
                .await;
            assert_eq!(body["token"], expected.expose_secret(), "{user}");
        }
    }
    assert_eq!(app.minted(), 3);
    assert_eq!(
        app.state.broker.cache_stats().shared_pieces,
        3,
        "three tokens, one copy of each common part: endpoint, scope, session token"
    );
}

#[tokio::test]
async fn special_db_user_names_are_encoded_once() {
    let app = TestApp::spawn().await;
    let res = app
        .post_token(json!({"target": "orders-db", "db_user": "mario.rossi@example.com"}))
        .await;
    let body: Value = res.json().await.unwrap();
    assert!(
        body["token"]
            .as_str()
            .unwrap()
            .contains("&DBUser=mario.rossi%40example.com&")
    );
}

#[tokio::test]
async fn db_user_may_be_omitted_only_when_exactly_one_is_allowed() {
    let app = TestApp::spawn().await;
    let res = app.post_token(json!({"target": "ledger"})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["db_user"], "ledger_svc");
    assert_eq!(body["engine"], "mysql");
    assert_eq!(body["region"], "us-east-1");

    let body = problem(app.post_token(json!({"target": "orders-db"})).await, 400).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("db_user is required")
    );
}

#[tokio::test]
async fn unknown_targets_and_db_users_get_the_same_403() {
    let app = TestApp::spawn().await;
    let a = problem(
        app.post_token(json!({"target": "no-such-db", "db_user": "app_rw"}))
            .await,
        403,
    )
    .await;
    let b = problem(
        app.post_token(json!({"target": "orders-db", "db_user": "root"}))
            .await,
        403,
    )
    .await;
    let c = problem(app.post_token(json!({"target": "no-such-db"})).await, 403).await;
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(app.minted(), 0);
}

#[tokio::test]
async fn malformed_bodies_are_400_without_echoing_input() {
    let app = TestApp::spawn().await;
    let secretish = "s3cr3t-value-that-must-not-echo";
    let cases = [
        format!("{{\"target\": \"{secretish}"),
        "not json".to_owned(),
        String::new(),
        format!("{{\"target\": 5, \"db_user\": \"{secretish}\"}}"),
        format!("{{\"target\": [\"{secretish}\"]}}"),
        "{}".to_owned(),
        "[]".to_owned(),
        format!("{{\"target\": \"orders-db\", \"password\": \"{secretish}\"}}"),
        format!("{{\"target\": \"orders/{secretish}\"}}"),
        "{\"target\": \"orders-db\", \"db_user\": \"a\\u0000b\"}".to_owned(),
        "{\"target\": \"orders-db\", \"db_user\": \"\"}".to_owned(),
    ];
    for body in cases {
        let res = app
            .client
            .post(format!("{}/v1/tokens", app.base))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let p = problem(res, 400).await;
        let text = p.to_string();
        assert!(
            !text.contains(secretish),
            "echoed input for {body:?}: {text}"
        );
    }
    let p = problem(app.post_token(json!({})).await, 400).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("missing field `target`")
    );
}

#[tokio::test]
async fn bodies_over_16_kib_are_413_and_non_json_is_415() {
    let app = TestApp::spawn().await;
    let big = json!({"target": "orders-db", "db_user": "x".repeat(17 * 1024)});
    problem(app.post_token(big).await, 413).await;
    let res = app
        .client
        .post(format!("{}/v1/tokens", app.base))
        .header("content-type", "text/plain")
        .body("{\"target\": \"orders-db\"}")
        .send()
        .await
        .unwrap();
    problem(res, 415).await;
    let res = app
        .client
        .post(format!("{}/v1/tokens", app.base))
        .body("{\"target\": \"orders-db\"}")
        .send()
        .await
        .unwrap();
    problem(res, 415).await;
    let res = app
        .client
        .post(format!("{}/v1/tokens", app.base))
        .header("content-type", "application/json; charset=utf-8")
        .body("{\"target\": \"ledger\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::spawn().await;
    problem(app.get("/v1/nope").await, 404).await;
    problem(app.get("/v1/tokens").await, 405).await;
}

#[tokio::test]
async fn request_ids_are_kept_or_set() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    for junk in ["a b", "x".repeat(129).as_str(), "<script>", "\u{1b}[31m"] {
        let Ok(value) = reqwest::header::HeaderValue::from_str(junk) else {
            continue;
        };
        let res = app
            .client
            .get(format!("{}/healthz", app.base))
            .header("x-request-id", value)
            .send()
            .await
            .unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap();
        assert!(
            uuid::Uuid::parse_str(id).is_ok(),
            "{junk:?} was kept as {id:?}"
        );
    }
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"status": "ok"}));
}

#[tokio::test]
async fn without_allow_unauthenticated_every_request_is_401() {
    let config = BrokerToml::unauthenticated()
        .without_server("allow_unauthenticated")
        .without_auditors();
    let app = TestApp::spawn_toml(config).await;
    let res = app
        .post_token(json!({"target": "orders-db", "db_user": "app_rw"}))
        .await;
    let www = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(www.starts_with("Bearer error=\"invalid_token\""), "{www}");
    problem(res, 401).await;
    let res = app
        .client
        .post(format!("{}/v1/tokens", app.base))
        .bearer_auth("eyJhbGciOiJub25lIn0.e30.")
        .json(&json!({"target": "orders-db", "db_user": "app_rw"}))
        .send()
        .await
        .unwrap();
    let body = problem(res, 401).await;
    assert!(!body.to_string().contains("eyJhbGciOiJub25lIn0"));
    assert_eq!(app.minted(), 0);
}

#[tokio::test]
async fn repeated_requests_are_served_from_the_cache() {
    let app = TestApp::spawn().await;
    let req = json!({"target": "orders-db", "db_user": "app_ro"});
    let first: Value = app.token(req.clone()).await;
    app.clock.advance(Duration::from_secs(120));
    let second: Value = app.token(req.clone()).await;
    assert_eq!(first["token"], second["token"]);
    assert_eq!(first["expires_at"], second["expires_at"]);
    assert_ne!(first["issuance_id"], second["issuance_id"]);
    assert_eq!(app.minted(), 1);
    // Another DB user is another key.
    let other: Value = app
        .token(json!({"target": "orders-db", "db_user": "app_rw"}))
        .await;
    assert_ne!(other["token"], first["token"]);
    assert_eq!(app.minted(), 2);
}

#[tokio::test]
async fn tokens_are_refreshed_ahead_and_never_served_below_min_remaining() {
    // Defaults: min_remaining 300 s, refresh_ahead 60 s, lifetime 900 s.
    let app = TestApp::spawn().await;
    let req = json!({"target": "orders-db", "db_user": "app_ro"});
    let first: Value = app.token(req.clone()).await;

    // 539 s later: 361 s left, outside the refresh window: a plain hit.
    app.clock.advance(Duration::from_secs(539));
    let hit: Value = app.token(req.clone()).await;
    assert_eq!(hit["token"], first["token"]);
    assert_eq!(app.minted(), 1);

    // 560 s after signing: 340 s left, inside the window: served the current token while
    // one background refresh mints the next.
    app.clock.advance(Duration::from_secs(21));
    let during: Value = app.token(req.clone()).await;
    assert_eq!(during["token"], first["token"]);
    // One background refresh happens.
    let app_ref = &app;
    eventually(
        Duration::from_secs(2),
        || async move { app_ref.minted() == 2 },
    )
    .await;
    let refreshed = app.token(req.clone()).await;
    assert_eq!(app.minted(), 2, "only one background refresh happened");
    assert_ne!(refreshed["token"], first["token"]);
    assert_eq!(refreshed["expires_at"], "2026-03-09T14:35:49Z");

    // Past the refreshed token's floor with no request in its window: minted on demand.
    app.clock.advance(Duration::from_secs(900));
    let later: Value = app.token(req.clone()).await;
    assert_ne!(later["token"], refreshed["token"]);
    assert_eq!(app.minted(), 3);
}

#[tokio::test]
async fn a_token_below_min_remaining_is_replaced_not_served() {
    let app = TestApp::spawn().await;
    let req = json!({"target": "ledger"});
    let first: Value = app.token(req.clone()).await;
    // 601 s later only 299 s are left: below the 300 s floor.
    app.clock.advance(Duration::from_secs(601));
    let second: Value = app.token(req).await;
    assert_ne!(first["token"], second["token"]);
    assert_eq!(second["expires_at"], "2026-03-09T14:36:30Z");
    assert_eq!(app.minted(), 2);
}

#[tokio::test]
async fn concurrent_misses_for_one_key_mint_once() {
    let app = TestApp::spawn().await;
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let client = app.client.clone();
        let url = format!("{}/v1/tokens", app.base);
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(url)
                .json(&json!({"target": "orders-db", "db_user": "app_rw"}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()["token"]
                .as_str()
                .unwrap()
                .to_owned()
        }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap());
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1);
    assert_eq!(app.minted(), 1);
}
