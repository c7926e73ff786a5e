//! Per-person DB users: `db_users` templates resolved from a verified JWT, against a real
//! JWKS served over loopback (and moto's STS for the scoped session policy).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::app::{TestApp, problem};
use crate::support::config::{Auditor, BrokerToml, Grant, Issuer, Target};
use crate::support::get_json;
use crate::support::idp::{RsaKey, TestIdp};
use crate::support::moto::Moto;

const PERSONAL: &str = "{claims.preferred_username}";

/// Issuer `corp`; `orders-db` offers the shared `app` and per-person users; anyone of
/// `corp` in group `eng` may use their own user, and `{subject}` on `ledger`.
fn config(idp: &TestIdp, orders: Target) -> BrokerToml {
    BrokerToml::new()
        .issuer(Issuer::from(idp).named("corp"))
        .target(orders.db_users(["app", PERSONAL]))
        .target(Target::postgres("ledger").db_users(["u_{subject}"]))
        .grant(
            Grant::new("corp", "*")
                .claim("groups", "eng")
                .targets(["orders-db"])
                .db_users([PERSONAL]),
        )
        .grant(
            Grant::new("corp", "*")
                .targets(["ledger"])
                .db_users(["u_{subject}"]),
        )
        .rate_limit("per_principal_per_second", 1_000_000)
}

/// A JWT of `sub` in group `eng` with `extra` claims, valid around `now`.
fn jwt(key: &RsaKey, idp: &TestIdp, now: SystemTime, sub: &str, extra: Value) -> String {
    let iat = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut claims = json!({"groups": ["eng"]});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    idp.jwt(key, sub, iat, 600, claims)
}

async fn post(app: &TestApp, jwt: &str, body: Value) -> reqwest::Response {
    app.client
        .post(format!("{}/v1/tokens", app.base))
        .bearer_auth(jwt)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_caller_gets_their_own_db_user_in_the_answer_the_policy_and_the_trail() {
    let moto = Moto::start().await;
    let key = RsaKey::generate("k1");
    let idp = TestIdp::start(vec![key.jwk()]).await;
    let dir = tempfile::tempdir().unwrap();
    let orders = Target::postgres("orders-db")
        .host("orders.cluster-abc.eu-west-1.rds.amazonaws.com")
        .role_arn("arn:aws:iam::123456789012:role/orders-db-connect")
        .resource_id("cluster-ABC123");
    let toml = config(&idp, orders)
        .aws("sts_endpoint", moto.url())
        .aws("session_duration_seconds", 900)
        .audit_sqlite(dir.path())
        .auditor(Auditor::new("corp", "auditor"));
    let app = TestApp::spawn_toml(toml).await;
    // moto's expiries are real.
    let now = SystemTime::now();
    app.clock.set(now);
    let alice = jwt(
        &key,
        &idp,
        now,
        "u-1",
        json!({"preferred_username": "Alice.Smith@Example.com"}),
    );
    let bob = jwt(&key, &idp, now, "u-2", json!({"preferred_username": "bob"}));

    let a: Value = post(&app, &alice, json!({"target": "orders-db"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["db_user"], "alice_smith_example_com", "{a}");
    let b: Value = post(&app, &bob, json!({"target": "orders-db", "db_user": "bob"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(b["db_user"], "bob", "{b}");
    assert!(b["token"].as_str().unwrap().contains("DBUser=bob"), "{b}");

    // Each scoped session names the caller's own user.
    let calls = moto.assume_role_calls().await;
    let resources: Vec<String> = calls
        .iter()
        .map(|c| {
            let p: Value = serde_json::from_str(&c["Policy"]).unwrap();
            p["Statement"][0]["Resource"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        resources,
        [
            "arn:aws:rds-db:eu-west-1:123456789012:dbuser:cluster-ABC123/alice_smith_example_com",
            "arn:aws:rds-db:eu-west-1:123456789012:dbuser:cluster-ABC123/bob",
        ]
    );

    // Bob may not become Alice, nor the shared user (no grant gives it).
    for asked in ["alice_smith_example_com", "app"] {
        let p = problem(
            post(&app, &bob, json!({"target": "orders-db", "db_user": asked})).await,
            403,
        )
        .await;
        assert_eq!(
            p["detail"],
            "the target or DB user does not exist, or you are not permitted to use it"
        );
    }

    // The listing shows each caller their own name.
    let url = format!("{}/v1/targets", app.base);
    let listed = get_json(&app.client, &url, Some(&alice)).await;
    let orders = listed["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "orders-db")
        .unwrap();
    assert_eq!(orders["db_users"], json!(["alice_smith_example_com"]));

    // The trail records the resolved names.
    let auditor = jwt(&key, &idp, now, "auditor", json!({}));
    let url = format!("{}/v1/audit/events?outcome=issued", app.base);
    let page = get_json(&app.client, &url, Some(&auditor)).await;
    let mut users: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["db_user"].as_str().unwrap())
        .collect();
    users.sort_unstable();
    assert_eq!(users, ["alice_smith_example_com", "bob"], "{page}");
}

#[tokio::test]
async fn callers_without_a_usable_claim_are_refused_and_told_why() {
    let key = RsaKey::generate("k1");
    let idp = TestIdp::start(vec![key.jwk()]).await;
    let app = TestApp::spawn_toml(config(&idp, Target::postgres("orders-db"))).await;
    let now = app.state.broker.now();
    for (claims, says) in [
        (
            json!({}),
            "needs the claim \"preferred_username\", which your token does not have",
        ),
        (
            json!({"preferred_username": 42}),
            "needs the claim \"preferred_username\" to be a string",
        ),
        (json!({"preferred_username": ["alice"]}), "to be a string"),
        (
            json!({"preferred_username": "日本語"}),
            "has no letter or digit",
        ),
        (
            json!({"preferred_username": "..."}),
            "has no letter or digit",
        ),
        (
            json!({"preferred_username": "x".repeat(64)}),
            "longer than 63 bytes",
        ),
        (json!({"preferred_username": "RDSAdmin"}), "reserved"),
        (json!({"preferred_username": "postgres"}), "reserved"),
        (
            json!({"preferred_username": "pg_read_all_data"}),
            "reserved",
        ),
        (
            json!({"preferred_username": "App"}),
            "one of the target's shared DB users",
        ),
    ] {
        let token = jwt(&key, &idp, now, "u-1", claims.clone());
        let p = problem(
            post(&app, &token, json!({"target": "orders-db"})).await,
            403,
        )
        .await;
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{claims}: {detail}");
        assert!(detail.contains("{claims.preferred_username}"), "{detail}");
        // Never the caller's value.
        assert!(
            !detail.contains("日本語") && !detail.contains("RDSAdmin"),
            "{detail}"
        );
    }
    // Asking for the shared user is a plain refusal: no grant gives it.
    let token = jwt(&key, &idp, now, "u-1", json!({}));
    let p = problem(
        post(
            &app,
            &token,
            json!({"target": "orders-db", "db_user": "app"}),
        )
        .await,
        403,
    )
    .await;
    assert_eq!(
        p["detail"],
        "the target or DB user does not exist, or you are not permitted to use it"
    );

    // {subject} with literal text around it; a leading digit is kept.
    let token = jwt(&key, &idp, now, "42-Ops", json!({}));
    let res = post(&app, &token, json!({"target": "ledger"})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["db_user"], "u_42_ops");
}

#[tokio::test]
async fn the_engine_limits_the_length() {
    let key = RsaKey::generate("k1");
    let idp = TestIdp::start(vec![key.jwk()]).await;
    let app = TestApp::spawn_toml(config(&idp, Target::mysql("orders-db"))).await;
    let now = app.state.broker.now();
    let ok = jwt(
        &key,
        &idp,
        now,
        "u",
        json!({"preferred_username": "a".repeat(32)}),
    );
    let res = post(&app, &ok, json!({"target": "orders-db"})).await;
    assert_eq!(res.status(), 200);
    let long = jwt(
        &key,
        &idp,
        now,
        "u",
        json!({"preferred_username": "a".repeat(33)}),
    );
    let p = problem(post(&app, &long, json!({"target": "orders-db"})).await, 403).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("longer than 32 bytes"),
        "{p}"
    );
}

/// Every problem of a file, as `(key, message)`.
fn errors(toml: &str) -> Vec<(String, String)> {
    rds_token_broker::config::load_str(toml)
        .unwrap_err()
        .errors
        .into_iter()
        .map(|e| (e.key, e.message))
        .collect()
}

fn has(errs: &[(String, String)], key: &str, needle: &str) -> bool {
    errs.iter().any(|(k, m)| k == key && m.contains(needle))
}

#[test]
fn templates_are_checked_at_load() {
    let idp_issuer = Issuer::jwks_uri(
        "corp",
        "https://idp.example.com",
        "https://idp.example.com/jwks",
    );
    let toml = BrokerToml::new()
        .issuer(idp_issuer)
        .aws("iam_server_id", "broker.example.com")
        .target(Target::postgres("orders-db").db_users([
            "app",
            "{claims.preferred_username}",
            "{subject}",
        ]))
        .target(Target::postgres("other-db").db_users([
            "{sub}",
            "{subject}{subject}",
            "App_{subject}",
        ]))
        .target(Target::elasticache("cache").db_users(["{subject}"]))
        .grant(
            Grant::new("corp", "*")
                .targets(["orders-db"])
                .db_users(["{claims.email}", "{claims.}"]),
        )
        .grant(
            Grant::new("aws-iam", "arn:aws:iam::123456789012:user/*")
                .targets(["orders-db"])
                .db_users(["{claims.preferred_username}", "{subject}"]),
        )
        .to_string();
    let errs = errors(&toml);
    for (key, needle) in [
        ("targets[1].db_users[0]", "unknown placeholder"),
        ("targets[1].db_users[1]", "unbalanced braces"),
        ("targets[1].db_users[2]", "a-z, 0-9 and _ only"),
        (
            "targets[2].db_users[0]",
            "not supported on kind = \"elasticache\"",
        ),
        (
            "grants[0].db_users[0]",
            "the target must list the same template",
        ),
        ("grants[0].db_users[1]", "claim name must be"),
        (
            "grants[1].db_users[0]",
            "AWS IAM callers have no JWT claims",
        ),
    ] {
        assert!(has(&errs, key, needle), "{key}: {errs:#?}\n{toml}");
    }
    // The good entries say nothing.
    assert!(
        !errs
            .iter()
            .any(|(k, _)| k == "grants[1].db_users[1]" || k.starts_with("targets[0]")),
        "{errs:#?}"
    );
}

#[tokio::test]
async fn an_iam_users_subject_is_its_name_and_an_assumed_role_has_none() {
    let f = crate::aws_iam::Fixture::start_with(
        |c| {
            c.target(Target::postgres("people-db").db_users(["{subject}"]))
                .grant(
                    Grant::new("aws-iam", "arn:aws:*::123456789012:*")
                        .targets(["people-db"])
                        .db_users(["{subject}"]),
                )
        },
        |_| crate::support::creds::static_keys(),
    )
    .await;
    let ask = |authorization: String| {
        let app = &f.app;
        async move {
            app.client
                .post(format!("{}/v1/tokens", app.base))
                .header("authorization", authorization)
                .json(&json!({"target": "people-db"}))
                .send()
                .await
                .unwrap()
        }
    };
    // The IAM user arn:aws:iam::123456789012:user/alice.
    let user = f.signed("user").await;
    let res = ask(user["valid"].as_str().unwrap().to_owned()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["db_user"], "alice");
    // A role session: its name is the caller's choice, so no per-person user.
    let role = f.signed("role").await;
    let p = problem(ask(role["valid"].as_str().unwrap().to_owned()).await, 403).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("an assumed role's session name is chosen by the caller"),
        "{p}"
    );
}
