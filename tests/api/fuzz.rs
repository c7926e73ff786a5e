//! A fuzz target for the token and authentication paths: raw HTTP/1.1 requests built by
//! proptest (methods, paths, headers, `Authorization` values from JWT-shaped and AWS-IAM-
//! shaped junk to random bytes, bodies from near-valid JSON to random bytes) sent over a
//! real socket to an in-process broker with an issuer and an audit store. Whatever
//! arrives, the broker answers with a well-formed response that is never a 5xx, never
//! repeats the marker planted in the input, and keeps issuing to a valid caller.
//! `FUZZ_CASES` sets the number of cases (default 256, a few seconds).

use std::time::Duration;

use base64::Engine as _;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::app::TestApp;
use crate::support::config::{BrokerToml, Grant, Target};
use crate::support::idp::{RsaKey, file_issuer, rs256};

const ISS: &str = "https://idp.fuzz.invalid";
/// Planted in every generated input; no answer may contain it.
const MARKER: &str = "ZqX7marker";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("POST".to_owned()),
        2 => Just("GET".to_owned()),
        1 => prop::sample::select(vec!["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]).prop_map(str::to_owned),
        1 => "[A-Z]{1,40}".prop_map(|m| format!("{m}{}", MARKER.to_uppercase())),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just("/v1/tokens".to_owned()),
        1 => Just("/v1/targets".to_owned()),
        1 => Just("/v1/audit/events?subject=x".to_owned()),
        1 => Just("/v1/audit/lookup".to_owned()),
        1 => "/[a-z/%0-9]{0,40}".prop_map(|p| format!("{p}{MARKER}")),
    ]
}

/// JSON values from which a claim is taken, including control and bidi characters.
fn claim() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        "[ -~\u{0}\u{1b}\u{202e}]{0,40}".prop_map(|s| json!(format!("{s}{MARKER}"))),
        any::<i64>().prop_map(|n| json!(n)),
        Just(json!(null)),
        Just(json!(["a", MARKER])),
    ]
}

fn authorization(good: String) -> impl Strategy<Value = Option<String>> {
    let jwt_like =
        (claim(), claim(), claim(), "[A-Za-z0-9_-]{0,60}").prop_map(|(iss, sub, alg, sig)| {
            let header = json!({"alg": alg, "kid": "k1"});
            let claims =
                json!({"iss": iss, "sub": sub, "aud": "rds-token-broker", "exp": 4_000_000_000u64});
            format!(
                "Bearer {}.{}.{sig}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            )
        });
    let aws_iam = (claim(), "[ -~]{0,80}").prop_map(|(h, junk)| {
        let doc = json!({"method": "POST", "url": "https://sts.amazonaws.com/", "headers": {"host": "sts.amazonaws.com", "authorization": junk, "x-amz-date": h}, "body": MARKER});
        format!(
            "AWS-IAM {}",
            base64::engine::general_purpose::STANDARD.encode(doc.to_string())
        )
    });
    prop_oneof![
        1 => Just(None),
        2 => Just(Some(format!("Bearer {good}"))),
        4 => jwt_like.prop_map(Some),
        2 => aws_iam.prop_map(Some),
        1 => "[ -~]{0,200}".prop_map(|s| Some(format!("{s}{MARKER}"))),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => Just(br#"{"target": "orders-db"}"#.to_vec()),
        2 => ("[ -~\u{0}\u{202e}]{0,70}", prop::option::of("[ -~]{0,70}")).prop_map(|(t, u)| {
            json!({"target": format!("{t}{MARKER}"), "db_user": u.map(|u| format!("{u}{MARKER}"))})
                .to_string()
                .into_bytes()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|mut b| {
            b.extend_from_slice(MARKER.as_bytes());
            b
        }),
        1 => Just(Vec::new()),
    ]
}

/// Sends `raw` and returns what came back (until the server closes or 5 s pass).
async fn exchange(addr: &str, raw: &[u8]) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    out
}

#[test]
fn raw_requests_never_get_a_server_error_or_an_echo() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = RsaKey::generate("k1");
    let config = BrokerToml::new()
        .audit_sqlite(dir.path())
        .rate_limit("per_principal_per_second", 1_000_000)
        .rate_limit("per_client_ip_per_second", 0)
        .issuer(file_issuer(dir.path(), &key, ISS))
        .target(Target::postgres("orders-db"))
        .grant(
            Grant::new("corp", "*")
                .targets(["orders-db"])
                .db_users(["app"]),
        );
    let app = rt.block_on(TestApp::spawn_toml(config));
    rt.block_on(async { app.clock.set(std::time::SystemTime::now()) });
    let good = rs256(
        &key,
        &json!({"iss": ISS, "sub": "svc", "aud": "rds-token-broker", "exp": 4_000_000_000u64}),
    );
    let addr = app.base.trim_start_matches("http://").to_owned();
    let valid_request = || {
        let (c, url, good) = (
            app.client.clone(),
            format!("{}/v1/tokens", app.base),
            good.clone(),
        );
        async move {
            c.post(url)
                .bearer_auth(good)
                .json(&json!({"target": "orders-db"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    rt.block_on(crate::support::eventually(
        Duration::from_secs(20),
        || async { valid_request().await == 200 },
    ));

    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        method(),
        path(),
        authorization(good.clone()),
        prop::option::of("[ -~]{0,40}"),
        body(),
        any::<bool>(),
    );
    runner
        .run(
            &strategy,
            |(method, path, auth, content_type, body, lie_about_length)| {
                let mut raw =
                    format!("{method} {path} HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\n");
                if let Some(a) = &auth {
                    raw.push_str(&format!("authorization: {a}\r\n"));
                }
                match &content_type {
                    Some(ct) => raw.push_str(&format!("content-type: {ct}\r\n")),
                    None => raw.push_str("content-type: application/json\r\n"),
                }
                raw.push_str(&format!("user-agent: fuzz {MARKER}\u{7}\r\n"));
                let length = if lie_about_length {
                    body.len() / 2
                } else {
                    body.len()
                };
                raw.push_str(&format!("content-length: {length}\r\n\r\n"));
                let mut bytes = raw.into_bytes();
                bytes.extend_from_slice(&body);
                let answer = rt.block_on(exchange(&addr, &bytes));
                let text = String::from_utf8_lossy(&answer);
                let status: u16 = text
                    .strip_prefix("HTTP/1.1 ")
                    .and_then(|r| r.get(..3))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                // Hyper itself answers unparseable requests with a bare 400 or closes.
                prop_assert!(
                    status == 0 || (100..500).contains(&status),
                    "status {status} for {method} {path}: {text}"
                );
                prop_assert!(!text.contains(MARKER), "input echoed: {text}");
                prop_assert!(
                    !text.to_uppercase().contains(&MARKER.to_uppercase()),
                    "input echoed: {text}"
                );
                Ok(())
            },
        )
        .unwrap();

    // The broker still serves, and its trail still verifies.
    rt.block_on(async {
        assert_eq!(valid_request().await, 200);
        assert_eq!(app.get("/healthz").await.status(), 200);
        assert_eq!(app.get("/readyz").await.status(), 200);
    });
}
