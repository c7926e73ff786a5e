//! The broker's own AWS credentials: missing, recovering, expiring, rotating.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{TestApp, problem, t0};
use crate::support::config::BrokerToml;
use crate::support::creds::{Switchable, session_keys, static_keys};
use crate::support::eventually;

#[tokio::test]
async fn without_credentials_tokens_and_readyz_are_503_until_they_appear() {
    let app = TestApp::spawn_with(BrokerToml::unauthenticated(), Switchable::none()).await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "5");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["credentials"]["ok"], false);
    assert!(
        body["checks"]["credentials"]["detail"]
            .as_str()
            .unwrap()
            .contains("AWS credentials unavailable")
    );
    assert_eq!(body["checks"]["policy"]["ok"], true);

    let res = app.post_token(json!({"target": "ledger"})).await;
    assert_eq!(res.headers()["retry-after"], "5");
    let p = problem(res, 503).await;
    assert!(p["detail"].as_str().unwrap().contains("cannot sign tokens"));

    // Liveness is unaffected.
    assert_eq!(app.get("/healthz").await.status(), 200);

    // Credentials appear; after the one-second retry pause the broker uses them.
    app.creds.set(Some(static_keys()));
    app.clock.advance(Duration::from_secs(2));
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "ready");
    assert_eq!(
        app.post_token(json!({"target": "ledger"})).await.status(),
        200
    );
}

#[tokio::test]
async fn failed_lookups_are_retried_at_most_once_a_second() {
    let app = TestApp::spawn_with(BrokerToml::unauthenticated(), Switchable::none()).await;
    for _ in 0..5 {
        assert_eq!(
            app.post_token(json!({"target": "ledger"})).await.status(),
            503
        );
    }
    assert_eq!(app.creds.calls(), 1);
    app.clock.advance(Duration::from_millis(1500));
    assert_eq!(
        app.post_token(json!({"target": "ledger"})).await.status(),
        503
    );
    assert_eq!(app.creds.calls(), 2);
}

#[tokio::test]
async fn token_expiry_is_capped_by_the_signing_credentials() {
    let expiry = t0() + Duration::from_secs(600);
    let app = TestApp::spawn_with(
        BrokerToml::unauthenticated(),
        Switchable::with(session_keys("ASIAQEXAMPLE2TESTKEY", expiry)),
    )
    .await;
    let res = app.post_token(json!({"target": "ledger"})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["expires_at"], "2026-03-09T14:21:29Z");
    let token = body["token"].as_str().unwrap();
    assert!(token.contains(
        "X-Amz-Credential=ASIAQEXAMPLE2TESTKEY%2F20260309%2Fus-east-1%2Frds-db%2Faws4_request"
    ));
    assert!(token.contains("&X-Amz-Security-Token=FwoGZXIvYXdzE%2F%2BAb%3D%3D&X-Amz-Signature="));
}

#[tokio::test]
async fn credentials_about_to_expire_give_503_not_a_short_token() {
    let expiry = t0() + Duration::from_secs(200);
    let app = TestApp::spawn_with(
        BrokerToml::unauthenticated(),
        Switchable::with(session_keys("ASIAQEXAMPLE2TESTKEY", expiry)),
    )
    .await;
    let p = problem(app.post_token(json!({"target": "ledger"})).await, 503).await;
    assert!(
        p["detail"].as_str().unwrap().contains("expire in 200 s"),
        "{p}"
    );
    // Fresh credentials arrive: the next attempt (after the retry pause) succeeds.
    app.creds.set(Some(session_keys(
        "ASIAQEXAMPLE3TESTKEY",
        t0() + Duration::from_secs(3600),
    )));
    app.clock.advance(Duration::from_secs(31));
    let res = app.post_token(json!({"target": "ledger"})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["token"]
            .as_str()
            .unwrap()
            .contains("ASIAQEXAMPLE3TESTKEY")
    );
}

#[tokio::test]
async fn expiring_credentials_are_refreshed_ahead_and_new_keys_sign_new_tokens() {
    let app = TestApp::spawn_with(
        BrokerToml::unauthenticated(),
        Switchable::with(session_keys(
            "ASIAFIRSTKEYEXAMPLE1",
            t0() + Duration::from_secs(3600),
        )),
    )
    .await;
    let first: Value = app.token(json!({"target": "ledger"})).await;
    assert!(
        first["token"]
            .as_str()
            .unwrap()
            .contains("ASIAFIRSTKEYEXAMPLE1")
    );
    app.creds.set(Some(session_keys(
        "ASIASECONDKEYEXAMPL2",
        t0() + Duration::from_secs(7200),
    )));
    // 45 minutes on, the first credentials have 15 minutes left: less than a token
    // lifetime plus a margin, so the broker fetches the next ones.
    app.clock.advance(Duration::from_secs(2700));
    let second: Value = app.token(json!({"target": "ledger"})).await;
    assert!(
        second["token"]
            .as_str()
            .unwrap()
            .contains("ASIASECONDKEYEXAMPL2")
    );
    assert_eq!(second["expires_at"], "2026-03-09T15:11:29Z");
}

#[tokio::test]
async fn a_hung_credential_provider_gives_503_at_the_request_timeout() {
    let app =
        TestApp::spawn_hung(BrokerToml::unauthenticated().server("request_timeout_seconds", 1))
            .await;
    let started = std::time::Instant::now();
    let res = app.post_token(json!({"target": "ledger"})).await;
    assert_eq!(res.headers()["retry-after"], "1");
    let p = problem(res, 503).await;
    assert_eq!(p["type"], "urn:rds-token-broker:problem:timeout");
    assert!(started.elapsed() < Duration::from_secs(10));
    // Liveness does not depend on credentials.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn requests_over_the_concurrency_limit_are_shed_with_503() {
    let app = TestApp::spawn_hung(
        BrokerToml::unauthenticated()
            .server("max_concurrent_requests", 1)
            .server("request_timeout_seconds", 5),
    )
    .await;
    let (client, url) = (app.client.clone(), format!("{}/v1/tokens", app.base));
    let stuck = tokio::spawn(async move {
        client
            .post(url)
            .json(&json!({"target": "ledger"}))
            .send()
            .await
    });
    // Another API request while one hangs is shed (health checks have places of their
    // own).
    let app = &app;
    let res = eventually(Duration::from_secs(3), || async move {
        let res = app.get("/v1/targets").await;
        (res.status() == 503).then_some(res)
    })
    .await;
    let p = problem(res, 503).await;
    assert_eq!(p["type"], "urn:rds-token-broker:problem:overloaded");
    stuck.abort();
}
