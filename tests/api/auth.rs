//! Caller authentication against a real JWKS served over loopback, and grants.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{TestApp, problem};
use crate::support::config::{BrokerToml, Grant, Issuer, Target};
use crate::support::idp::{EcKey, RsaKey, TestIdp, es256, hs256, jwt_with, rs256, rsa_jwt};

const T0: u64 = 1_773_065_489;
const SUBJECT: &str = "system:serviceaccount:orders:api";

/// Issuer `k8s` (`issuer`, with the algorithms and timings of these tests) may use
/// `orders-db` as `app_rw` for its service accounts in `orders`; anyone in the `dba` group
/// may use `orders-db` as `app_ro` and `billing-db` as `billing`.
fn config(issuer: Issuer) -> BrokerToml {
    BrokerToml::new()
        .issuer(
            issuer
                .named("k8s")
                .set("algorithms", vec!["RS256", "PS256", "ES256"])
                .set("leeway_seconds", 60)
                .set("jwks_min_refetch_seconds", 30),
        )
        .target(Target::postgres("orders-db").db_users(["app_rw", "app_ro"]))
        .target(Target::postgres("billing-db").db_users(["billing"]))
        .grant(
            Grant::new("k8s", "system:serviceaccount:orders:*")
                .targets(["orders-db"])
                .db_users(["app_rw"]),
        )
        .grant(
            Grant::new("k8s", "*")
                .claim("groups", "dba")
                .targets(["orders-db", "billing-db"])
                .db_users(["app_ro", "billing"]),
        )
}

fn claims(issuer: &str) -> Value {
    json!({"iss": issuer, "sub": SUBJECT, "aud": "rds-token-broker", "iat": T0, "exp": T0 + 600})
}

struct Setup {
    app: TestApp,
    idp: TestIdp,
    rsa: RsaKey,
    ec: EcKey,
}

async fn setup() -> Setup {
    let (rsa, ec) = (RsaKey::generate("rsa-1"), EcKey::generate("ec-1"));
    let idp = TestIdp::start(vec![rsa.jwk(), ec.jwk()]).await;
    let app = TestApp::spawn_toml(config(Issuer::from(&idp))).await;
    Setup { app, idp, rsa, ec }
}

async fn request(app: &TestApp, jwt: &str, body: Value) -> reqwest::Response {
    app.client
        .post(format!("{}/v1/tokens", app.base))
        .bearer_auth(jwt)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn forbidden(app: &TestApp, jwt: &str, body: Value) -> Value {
    problem(request(app, jwt, body).await, 403).await
}

async fn rejected(app: &TestApp, jwt: &str, description: &str) {
    let res = request(
        app,
        jwt,
        json!({"target": "orders-db", "db_user": "app_rw"}),
    )
    .await;
    let www = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = problem(res, 401).await;
    assert!(
        www.starts_with("Bearer error=\"invalid_token\", error_description=\""),
        "{www}"
    );
    assert!(
        www.contains(description),
        "expected {description:?} in {www}"
    );
    assert!(body["detail"].as_str().unwrap().contains(description));
    let text = body.to_string() + &www;
    for part in jwt.split('.').filter(|p| p.len() >= 8) {
        assert!(
            !text.contains(part),
            "the JWT was echoed: {part:?} in {text}"
        );
    }
}

#[tokio::test]
async fn valid_rs256_ps256_and_es256_tokens_are_accepted() {
    let s = setup().await;
    for jwt in [
        rs256(&s.rsa, &claims(&s.idp.issuer)),
        rsa_jwt(&s.rsa, &claims(&s.idp.issuer), "PS256"),
        es256(&s.ec, &claims(&s.idp.issuer)),
    ] {
        let res = request(&s.app, &jwt, json!({"target": "orders-db"})).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["db_user"], "app_rw",
            "the only DB user this subject is granted"
        );
    }
}

#[tokio::test]
async fn alg_none_is_rejected() {
    let s = setup().await;
    let jwt = jwt_with(
        &json!({"alg": "none", "typ": "JWT"}),
        &claims(&s.idp.issuer),
        |_| Vec::new(),
    );
    rejected(&s.app, &jwt, "signing algorithm is not accepted").await;
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_rejected() {
    let s = setup().await;
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"});
    let jwt = hs256(&s.rsa.public_der(), &header, &claims(&s.idp.issuer));
    rejected(&s.app, &jwt, "signing algorithm is not accepted").await;
}

#[tokio::test]
async fn an_algorithm_the_issuer_does_not_list_is_rejected() {
    let s = setup().await;
    let jwt = rsa_jwt(&s.rsa, &claims(&s.idp.issuer), "RS512");
    // RS512 with a PKCS#1 SHA-256 signature: refused before any signature check.
    rejected(&s.app, &jwt, "signing algorithm is not accepted").await;
}

#[tokio::test]
async fn a_token_from_another_issuer_with_the_same_kid_is_rejected() {
    let s = setup().await;
    let other_key = RsaKey::generate("rsa-1");
    let other = TestIdp::start(vec![other_key.jwk()]).await;
    // Its own issuer: not configured here.
    rejected(
        &s.app,
        &rs256(&other_key, &claims(&other.issuer)),
        "issuer is not trusted",
    )
    .await;
    // Claiming our issuer, same kid, signed with its key: the signature fails.
    rejected(
        &s.app,
        &rs256(&other_key, &claims(&s.idp.issuer)),
        "signature is invalid",
    )
    .await;
}

#[tokio::test]
async fn missing_exp_is_rejected() {
    let s = setup().await;
    let mut c = claims(&s.idp.issuer);
    c.as_object_mut().unwrap().remove("exp");
    rejected(&s.app, &rs256(&s.rsa, &c), "no exp claim").await;
}

#[tokio::test]
async fn expiry_is_checked_against_the_clock_with_leeway() {
    let s = setup().await;
    let jwt = rs256(&s.rsa, &claims(&s.idp.issuer));
    s.app.clock.advance(Duration::from_secs(600 + 59));
    assert_eq!(
        request(&s.app, &jwt, json!({"target": "orders-db"}))
            .await
            .status(),
        200,
        "within leeway"
    );
    s.app.clock.advance(Duration::from_secs(2));
    rejected(&s.app, &jwt, "has expired").await;
}

#[tokio::test]
async fn nbf_and_iat_in_the_future_are_rejected_beyond_leeway() {
    let s = setup().await;
    let mut c = claims(&s.idp.issuer);
    c["nbf"] = json!(T0 + 61);
    rejected(&s.app, &rs256(&s.rsa, &c), "not valid yet").await;
    c["nbf"] = json!(T0 + 59);
    assert_eq!(
        request(&s.app, &rs256(&s.rsa, &c), json!({"target": "orders-db"}))
            .await
            .status(),
        200
    );
    let mut c = claims(&s.idp.issuer);
    c["iat"] = json!(T0 + 120);
    rejected(&s.app, &rs256(&s.rsa, &c), "issued in the future").await;
}

#[tokio::test]
async fn wrong_audience_is_rejected_and_an_audience_list_may_contain_ours() {
    let s = setup().await;
    let mut c = claims(&s.idp.issuer);
    c["aud"] = json!("someone-else");
    rejected(&s.app, &rs256(&s.rsa, &c), "audience").await;
    c["aud"] = json!(["someone-else", "rds-token-broker"]);
    assert_eq!(
        request(&s.app, &rs256(&s.rsa, &c), json!({"target": "orders-db"}))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_tampered_payload_is_rejected() {
    use base64::Engine as _;
    let s = setup().await;
    let jwt = rs256(&s.rsa, &claims(&s.idp.issuer));
    let parts: Vec<&str> = jwt.split('.').collect();
    let mut c = claims(&s.idp.issuer);
    c["sub"] = json!("system:serviceaccount:kube-system:admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c.to_string()),
        parts[2]
    );
    rejected(&s.app, &forged, "signature is invalid").await;
}

#[tokio::test]
async fn malformed_missing_and_oversized_credentials_are_rejected() {
    let s = setup().await;
    rejected(&s.app, "not-a-jwt", "not a well-formed JWT").await;
    rejected(&s.app, "a.b.c", "not a well-formed JWT").await;
    let res = s.app.post_token(json!({"target": "orders-db"})).await;
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("missing bearer token")
    );
    problem(res, 401).await;
    let huge = "x".repeat(17 * 1024);
    rejected(&s.app, &huge, "larger than 16 KiB").await;
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_interval_and_rotation_works() {
    let s = setup().await;
    assert_eq!(
        request(
            &s.app,
            &rs256(&s.rsa, &claims(&s.idp.issuer)),
            json!({"target": "orders-db"})
        )
        .await
        .status(),
        200
    );
    let base = s.idp.jwks_fetches();
    // Keys were loaded at start-up, at this clock reading: an unknown kid now causes no
    // fetch at all.
    let junk = RsaKey {
        kid: "junk".into(),
        pair: s.rsa.pair.clone(),
    };
    rejected(&s.app, &rs256(&junk, &claims(&s.idp.issuer)), "unknown key").await;
    assert_eq!(s.idp.jwks_fetches(), base);
    // Past the interval, a flood of junk kids: one refetch, not one per request.
    s.app.clock.advance(Duration::from_secs(31));
    for i in 0..20 {
        let junk = RsaKey {
            kid: format!("junk-{i}"),
            pair: s.rsa.pair.clone(),
        };
        rejected(&s.app, &rs256(&junk, &claims(&s.idp.issuer)), "unknown key").await;
    }
    assert_eq!(s.idp.jwks_fetches(), base + 1);

    // The IdP rotates to a new key. Within the interval the new kid is still unknown...
    let rotated = RsaKey::generate("rsa-2");
    s.idp.set_keys(vec![rotated.jwk()]);
    rejected(
        &s.app,
        &rs256(&rotated, &claims(&s.idp.issuer)),
        "unknown key",
    )
    .await;
    // ...after it, the first token with the new kid triggers a refetch and is accepted.
    s.app.clock.advance(Duration::from_secs(31));
    let jwt = rs256(&rotated, &claims(&s.idp.issuer));
    assert_eq!(
        request(&s.app, &jwt, json!({"target": "orders-db"}))
            .await
            .status(),
        200
    );
    assert_eq!(s.idp.jwks_fetches(), base + 2);
}

#[tokio::test]
async fn an_idp_outage_leaves_cached_keys_in_use() {
    let s = setup().await;
    let jwt = rs256(&s.rsa, &claims(&s.idp.issuer));
    assert_eq!(
        request(&s.app, &jwt, json!({"target": "orders-db"}))
            .await
            .status(),
        200
    );
    s.idp.set_down(true);
    // A refetch (forced by an unknown kid after the interval) fails; the cache survives.
    s.app.clock.advance(Duration::from_secs(31));
    let junk = RsaKey {
        kid: "junk".into(),
        pair: s.rsa.pair.clone(),
    };
    rejected(&s.app, &rs256(&junk, &claims(&s.idp.issuer)), "unknown key").await;
    assert_eq!(
        request(&s.app, &jwt, json!({"target": "orders-db"}))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn keys_that_never_loaded_give_503() {
    let rsa = RsaKey::generate("rsa-1");
    let idp = TestIdp::start(vec![rsa.jwk()]).await;
    idp.set_down(true);
    let app = TestApp::spawn_toml(config(Issuer::from(&idp))).await;
    let res = request(
        &app,
        &rs256(&rsa, &claims(&idp.issuer)),
        json!({"target": "orders-db"}),
    )
    .await;
    assert!(res.headers().contains_key("retry-after"));
    let p = problem(res, 503).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("signing keys are unavailable")
    );
}

#[tokio::test]
async fn keys_come_from_discovery_when_no_jwks_is_configured() {
    let rsa = RsaKey::generate("rsa-1");
    let idp = TestIdp::start(vec![rsa.jwk()]).await;
    let app = TestApp::spawn_toml(config(Issuer::discovery("k8s", &idp.issuer))).await;
    let res = request(
        &app,
        &rs256(&rsa, &claims(&idp.issuer)),
        json!({"target": "orders-db"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(idp.jwks_fetches() >= 1);
}

#[tokio::test]
async fn keys_come_from_a_jwks_file() {
    let ec = EcKey::generate("file-1");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, json!({"keys": [ec.jwk()]}).to_string()).unwrap();
    let iss = "https://idp.air-gapped.invalid";
    let app = TestApp::spawn_toml(config(Issuer::jwks_file("k8s", iss, &path))).await;
    let res = request(
        &app,
        &es256(&ec, &claims(iss)),
        json!({"target": "orders-db"}),
    )
    .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn grants_decide_targets_and_db_users_deny_by_default() {
    let s = setup().await;
    let iss = s.idp.issuer.clone();
    let app_sa = rs256(&s.rsa, &claims(&iss));
    // Granted: orders-db as app_rw only.
    assert_eq!(
        request(
            &s.app,
            &app_sa,
            json!({"target": "orders-db", "db_user": "app_rw"})
        )
        .await
        .status(),
        200
    );
    let denied = forbidden(
        &s.app,
        &app_sa,
        json!({"target": "orders-db", "db_user": "app_ro"}),
    )
    .await;
    let unknown = forbidden(
        &s.app,
        &app_sa,
        json!({"target": "nope", "db_user": "app_rw"}),
    )
    .await;
    let other_target = forbidden(&s.app, &app_sa, json!({"target": "billing-db"})).await;
    assert_eq!(denied, unknown);
    assert_eq!(denied, other_target);

    // Another subject with no grant: nothing, the same 403.
    let mut c = claims(&iss);
    c["sub"] = json!("system:serviceaccount:billing:api");
    let stranger = rs256(&s.rsa, &c);
    assert_eq!(
        forbidden(&s.app, &stranger, json!({"target": "orders-db"})).await,
        denied
    );
    let list: Value = s
        .app
        .client
        .get(format!("{}/v1/targets", s.app.base))
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!({"targets": []}));

    // The same subject in the dba group (array claim membership) gets the second grant.
    c["groups"] = json!(["dev", "dba"]);
    let dba = rs256(&s.rsa, &c);
    assert_eq!(
        request(&s.app, &dba, json!({"target": "billing-db"}))
            .await
            .status(),
        200
    );
    let list: Value = s
        .app
        .client
        .get(format!("{}/v1/targets", s.app.base))
        .bearer_auth(&dba)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["billing-db", "orders-db"]);
    assert_eq!(list["targets"][1]["db_users"], json!(["app_ro"]));
}

#[tokio::test]
async fn a_key_is_never_used_with_another_familys_algorithm() {
    let s = setup().await;
    // ES256 header naming the RSA key's kid, signed with the EC key: the RSA key is not
    // tried for ES256, and the EC key is not the one named.
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": "rsa-1"});
    let jwt = jwt_with(&header, &claims(&s.idp.issuer), |m| {
        s.ec.pair
            .sign(&aws_lc_rs::rand::SystemRandom::new(), m)
            .unwrap()
            .as_ref()
            .to_vec()
    });
    rejected(&s.app, &jwt, "unknown key").await;
    // RS256 header naming the EC key's kid, signed with the RSA key: likewise.
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "ec-1"});
    let forged = rs256(&s.rsa, &claims(&s.idp.issuer));
    let sig = forged.rsplit('.').next().unwrap().to_owned();
    let jwt = jwt_with(&header, &claims(&s.idp.issuer), |_| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .unwrap()
    });
    rejected(&s.app, &jwt, "unknown key").await;
}

#[tokio::test]
async fn a_reused_jwt_is_checked_again_once_its_issuers_keys_change() {
    let s = setup().await;
    let old = rs256(&s.rsa, &claims(&s.idp.issuer));
    for _ in 0..3 {
        // Verified once, then reused from the verification cache.
        assert_eq!(
            request(&s.app, &old, json!({"target": "orders-db"}))
                .await
                .status(),
            200
        );
    }
    // The IdP drops rsa-1; a token with the new kid makes the broker refetch.
    let rotated = RsaKey::generate("rsa-2");
    s.idp.set_keys(vec![rotated.jwk()]);
    s.app.clock.advance(Duration::from_secs(31));
    let new = rs256(&rotated, &claims(&s.idp.issuer));
    assert_eq!(
        request(&s.app, &new, json!({"target": "orders-db"}))
            .await
            .status(),
        200
    );
    // Within the cache's minute, but the key that signed the old token is gone.
    rejected(&s.app, &old, "unknown key").await;
}
