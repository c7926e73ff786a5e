//! Role sessions through STS, against moto's standalone server.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rds_token_broker::auth::Principal;
use rds_token_broker::aws::session::session_name;
use serde_json::{Value, json};

use crate::support::app::{TestApp, problem};
use crate::support::config::{BrokerToml, Target};
use crate::support::moto::Moto;

/// An unauthenticated broker whose `orders-db` is reached through a role (scoped to its
/// cluster when `resource_id`) from `sts`; `plain` is signed with the broker's own keys.
fn config(sts: &str, resource_id: bool) -> BrokerToml {
    let orders = Target::postgres("orders-db")
        .host("orders.cluster-abc.eu-west-1.rds.amazonaws.com")
        .db_users(["app_rw", "app_ro"])
        .role_arn("arn:aws:iam::123456789012:role/orders-db-connect");
    let orders = if resource_id {
        orders.resource_id("cluster-ABC123")
    } else {
        orders
    };
    BrokerToml::new()
        .server("allow_unauthenticated", true)
        .aws("sts_endpoint", sts)
        .aws("session_duration_seconds", 900)
        .aws("source_identity", true)
        .aws("sts_timeout_seconds", 3)
        .aws("sts_connect_timeout_seconds", 1)
        .aws("sts_max_attempts", 2)
        .rate_limit("per_principal_per_second", 1_000_000)
        .target(orders)
        .target(
            Target::postgres("plain")
                .host("plain.cluster-abc.eu-west-1.rds.amazonaws.com")
                .db_users(["u"]),
        )
}

/// A broker on the real clock's "now" (moto's expiries are real), against `sts`.
async fn app(sts: &str, resource_id: bool) -> TestApp {
    let app = TestApp::spawn_toml(config(sts, resource_id)).await;
    app.clock.set(SystemTime::now());
    app
}

#[tokio::test]
async fn assume_role_is_called_with_the_callers_session_name_source_identity_duration_and_policy() {
    let moto = Moto::start().await;
    let app = app(&moto.url(), true).await;
    let body = app
        .token(json!({"target": "orders-db", "db_user": "app_rw"}))
        .await;
    let token = body["token"].as_str().unwrap();
    assert!(token.contains("X-Amz-Credential=ASIA"), "{token}");
    assert!(token.contains("&X-Amz-Security-Token="));

    let calls = moto.assume_role_calls().await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    let name = session_name(&Principal::anonymous());
    assert_eq!(
        call["RoleArn"],
        "arn:aws:iam::123456789012:role/orders-db-connect"
    );
    assert_eq!(call["RoleSessionName"], name);
    assert_eq!(call["SourceIdentity"], name);
    assert_eq!(call["DurationSeconds"], "900");
    let policy: Value = serde_json::from_str(&call["Policy"]).unwrap();
    assert_eq!(
        policy,
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "rds-db:connect",
            "Resource": "arn:aws:rds-db:eu-west-1:123456789012:dbuser:cluster-ABC123/app_rw"}]})
    );

    // Another DB user needs another scoped session; a target without role_arn uses none.
    app.token(json!({"target": "orders-db", "db_user": "app_ro"}))
        .await;
    let plain = app.token(json!({"target": "plain"})).await;
    assert!(
        plain["token"]
            .as_str()
            .unwrap()
            .contains("X-Amz-Credential=AKIAIOSFODNN7EXAMPLE")
    );
    let calls = moto.assume_role_calls().await;
    assert_eq!(calls.len(), 2);
    assert!(calls[1]["Policy"].contains("dbuser:cluster-ABC123/app_ro"));
}

#[tokio::test]
async fn token_expiry_is_capped_by_the_assumed_credentials() {
    let moto = Moto::start().await;
    let app = app(&moto.url(), false).await;
    // The broker's clock a few seconds ahead of moto's, so the first token too is capped
    // by the session (moto's expiry is its own now + 900 s, in whole seconds; on the real
    // now, a second boundary crossed between the two clocks made the first token end one
    // second before the session).
    app.clock.advance(Duration::from_secs(5));
    let first = app
        .token(json!({"target": "orders-db", "db_user": "app_rw"}))
        .await;
    // 400 s later the 900 s session has about 500 s left: reused, and the new token
    // (another DB user) expires with it, not 900 s after signing.
    app.clock.advance(Duration::from_secs(400));
    let second = app
        .token(json!({"target": "orders-db", "db_user": "app_ro"}))
        .await;
    assert_eq!(moto.assume_role_calls().await.len(), 1);
    assert_eq!(
        first["expires_at"], second["expires_at"],
        "both end when the session ends"
    );
}

#[tokio::test]
async fn concurrent_requests_for_one_cold_key_cause_one_assume_role() {
    let moto = Moto::start().await;
    let app = Arc::new(app(&moto.url(), true).await);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.post_token(json!({"target": "orders-db", "db_user": "app_rw"}))
                .await
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(moto.assume_role_calls().await.len(), 1);
    assert_eq!(app.minted(), 1);
}

#[tokio::test]
async fn sts_down_gives_503_for_new_keys_while_cached_ones_are_served_then_recovers() {
    let mut moto = Moto::start().await;
    let app = app(&moto.url(), true).await;
    let cached = app
        .token(json!({"target": "orders-db", "db_user": "app_rw"}))
        .await;

    moto.stop();
    let res = app
        .post_token(json!({"target": "orders-db", "db_user": "app_ro"}))
        .await;
    assert!(res.headers().contains_key("retry-after"));
    let p = problem(res, 503).await;
    assert!(
        p["detail"].as_str().unwrap().contains("STS is unreachable"),
        "{p}"
    );
    let again = app
        .token(json!({"target": "orders-db", "db_user": "app_rw"}))
        .await;
    assert_eq!(
        again["token"], cached["token"],
        "the cached token keeps being served"
    );

    moto.restart().await;
    assert_eq!(
        app.post_token(json!({"target": "orders-db", "db_user": "app_ro"}))
            .await
            .status(),
        200
    );
}

/// An STS stand-in that refuses every call, for the error moto cannot be made to produce.
async fn refusing_sts() -> String {
    let app = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::FORBIDDEN,
            [("content-type", "text/xml")],
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
             <Code>AccessDenied</Code><Message>not authorized to perform sts:AssumeRole</Message></Error>\
             <RequestId>0</RequestId></ErrorResponse>",
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn sts_access_denied_gives_502_naming_the_role_and_code() {
    let app = app(&refusing_sts().await, false).await;
    let p = problem(
        app.post_token(json!({"target": "orders-db", "db_user": "app_rw"}))
            .await,
        502,
    )
    .await;
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("arn:aws:iam::123456789012:role/orders-db-connect"),
        "{detail}"
    );
    assert!(detail.contains("AccessDenied"), "{detail}");
}

fn principal(issuer: &str, subject: &str) -> Principal {
    Principal {
        issuer: issuer.into(),
        subject: subject.into(),
        ..Principal::anonymous()
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]

    #[test]
    fn session_names_are_always_valid_for_iam(issuer in ".{0,80}", subject in ".{0,200}") {
        let name = session_name(&principal(&issuer, &subject));
        proptest::prop_assert!((2..=64).contains(&name.chars().count()), "{name}");
        proptest::prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)), "{name}");
    }

    #[test]
    fn different_callers_get_different_session_names(a in ".{0,40}", b in ".{0,40}", iss in "[a-z]{1,5}") {
        proptest::prop_assume!(a != b);
        // Subjects that sanitise alike ("a/b" and "a:b") still differ by the hash.
        proptest::prop_assert_ne!(session_name(&principal(&iss, &a)), session_name(&principal(&iss, &b)));
    }
}

#[test]
fn sanitised_twins_and_long_subjects_stay_distinct() {
    let a = session_name(&principal("k8s", "system:serviceaccount:a/b"));
    let b = session_name(&principal("k8s", "system:serviceaccount:a:b"));
    assert_ne!(a, b);
    assert_eq!(
        a.rsplit_once('-').unwrap().0,
        b.rsplit_once('-').unwrap().0,
        "same readable part"
    );
    let long = session_name(&principal("k8s", &"x".repeat(500)));
    assert_eq!(long.len(), 64);
}

/// The inline policy of every AssumeRole call moto recorded, in order.
async fn policies(moto: &Moto) -> Vec<Value> {
    moto.assume_role_calls()
        .await
        .iter()
        .map(|c| serde_json::from_str(&c["Policy"]).unwrap())
        .collect()
}

fn allow(action: &str, resource: Value) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": action, "Resource": resource}]})
}

#[tokio::test]
async fn each_kind_assumes_a_session_scoped_to_its_resource_and_user() {
    let moto = Moto::start().await;
    let role = "arn:aws:iam::123456789012:role/broker";
    let toml = BrokerToml::new()
        .server("allow_unauthenticated", true)
        .aws("sts_endpoint", moto.url())
        .aws("session_duration_seconds", 900)
        .rate_limit("per_principal_per_second", 1_000_000)
        .target(Target::dsql("dsql").role_arn(role))
        .target(Target::elasticache("cache").role_arn(role))
        .target(
            Target::elasticache("serverless")
                .cache_name("orders-cache")
                .region("eu-west-1")
                .host("orders-cache-abc123.serverless.euw1.cache.amazonaws.com")
                .serverless(true)
                .db_users(["orders_rw"])
                .role_arn(role),
        )
        .target(Target::memorydb("ledger").role_arn(role))
        .target(
            Target::postgres("shop")
                .host("shop.proxy-abc123xyz.eu-west-1.rds.amazonaws.com")
                .db_users(["app"])
                .role_arn(role)
                .resource_id("prx-0123456789abcdef0"),
        );
    let app = TestApp::spawn_toml(toml).await;
    app.clock.set(SystemTime::now());

    for (target, user) in [
        ("dsql", "app"),
        ("dsql", "admin"),
        ("cache", "app-user"),
        ("serverless", "orders_rw"),
        ("ledger", "ledger_app"),
        ("shop", "app"),
    ] {
        let body = app.token(json!({"target": target, "db_user": user})).await;
        assert!(
            body["token"]
                .as_str()
                .unwrap()
                .contains("X-Amz-Credential=ASIA"),
            "{target}: signed with the assumed session"
        );
    }
    assert_eq!(
        policies(&moto).await,
        [
            allow(
                "dsql:DbConnect",
                json!("arn:aws:dsql:us-east-1:123456789012:cluster/abcdefghijklmnopqrst123456")
            ),
            allow(
                "dsql:DbConnectAdmin",
                json!("arn:aws:dsql:us-east-1:123456789012:cluster/abcdefghijklmnopqrst123456")
            ),
            allow(
                "elasticache:Connect",
                json!([
                    "arn:aws:elasticache:us-east-1:123456789012:replicationgroup:my-redis-cluster",
                    "arn:aws:elasticache:us-east-1:123456789012:user:app-user"
                ])
            ),
            allow(
                "elasticache:Connect",
                json!([
                    "arn:aws:elasticache:eu-west-1:123456789012:serverlesscache:orders-cache",
                    "arn:aws:elasticache:eu-west-1:123456789012:user:orders_rw"
                ])
            ),
            allow(
                "memorydb:Connect",
                json!([
                    "arn:aws:memorydb:us-east-1:123456789012:cluster/ledger-cluster",
                    "arn:aws:memorydb:us-east-1:123456789012:user/ledger_app"
                ])
            ),
            allow(
                "rds-db:connect",
                json!("arn:aws:rds-db:eu-west-1:123456789012:dbuser:prx-0123456789abcdef0/app")
            ),
        ]
    );
}
