//! Issue 17, the authentication side: issuers sharing an `iss`, the console's sign-in
//! endpoints, AWS-IAM forwarding, caching, limits and refusal texts, and plain-HTTP key
//! sources. Each test failed before its fix.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::aws_iam::{Fixture, SERVER_ID, decode, encode, header_mut};
use crate::support::app::{TestApp, problem};
use crate::support::binary::RunningBroker;
use crate::support::config::{Auditor, BrokerToml, Grant, Issuer, Target};
use crate::support::creds::static_keys;
use crate::support::eventually;
use crate::support::idp::{RsaKey, rs256};
use crate::support::oidc::OidcProvider;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn post_token(base: &str, authorization: &str, body: Value) -> reqwest::Response {
    crate::support::client()
        .post(format!("{base}/v1/tokens"))
        .header("authorization", authorization)
        .json(&body)
        .send()
        .await
        .unwrap()
}

// Item 11 -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuers_sharing_an_iss_are_all_tried_and_the_one_that_verified_is_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let key = RsaKey::generate("shared-key");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [key.jwk()]}).to_string()).unwrap();
    let iss = "https://sso.corp.example";
    let config = BrokerToml::new()
        .audit_sqlite(dir.path())
        .issuer(Issuer::jwks_file("corp-api", iss, &jwks))
        .issuer(Issuer::jwks_file("corp-console", iss, &jwks).audiences(["audit-console"]))
        .target(Target::postgres("orders-db").db_users(["app_rw"]))
        .target(Target::postgres("reports-db").db_users(["reader"]))
        .grant(
            Grant::new("corp-api", "*")
                .targets(["orders-db"])
                .db_users(["app_rw"]),
        )
        .grant(
            Grant::new("corp-console", "alice")
                .targets(["reports-db"])
                .db_users(["reader"]),
        )
        .auditor(Auditor::new("corp-console", "alice"))
        .ui_oidc("issuer", "corp-console")
        .ui_oidc("client_id", "audit-console");
    let broker = RunningBroker::serve(dir.path(), &config);
    let base = broker.base.clone();
    let jwt = |aud: &str, sub: &str, exp: u64| {
        let t = now();
        format!(
            "Bearer {}",
            rs256(
                &key,
                &json!({"iss": iss, "aud": aud, "sub": sub, "iat": t, "exp": exp})
            )
        )
    };
    let valid = now() + 600;

    // A console ID token is not refused by corp-api's audience: corp-console accepts it.
    let console = jwt("audit-console", "alice", valid);
    let res = post_token(&base, &console, json!({"target": "reports-db"})).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    // ...and it is corp-console's caller, not corp-api's: no API grant applies to it.
    let res = post_token(&base, &console, json!({"target": "orders-db"})).await;
    problem(res, 403).await;
    let api = jwt("rds-token-broker", "alice", valid);
    assert_eq!(
        post_token(&base, &api, json!({"target": "orders-db"}))
            .await
            .status(),
        200
    );
    problem(
        post_token(&base, &api, json!({"target": "reports-db"})).await,
        403,
    )
    .await;

    // When every issuer refuses, the most specific reason is given.
    for (token, why) in [
        (
            jwt("someone-else", "alice", valid),
            "not meant for this audience",
        ),
        (jwt("audit-console", "alice", now() - 3600), "expired"),
    ] {
        let body = problem(
            post_token(&base, &token, json!({"target": "reports-db"})).await,
            401,
        )
        .await;
        assert!(body["detail"].as_str().unwrap().contains(why), "{body}");
    }

    // The trail names the issuer that verified each issuance.
    let page: Value = crate::support::client()
        .get(format!("{base}/v1/audit/events?outcome=issued&limit=10"))
        .header("authorization", &console)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issued: Vec<(String, String)> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["issuer"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(issued.len(), 2, "{page}\n--- broker\n{}", broker.stderr());
    assert!(issued.contains(&("corp-console".into(), "reports-db".into())));
    assert!(issued.contains(&("corp-api".into(), "orders-db".into())));
}

// Item 12 -------------------------------------------------------------------------------

/// Sends `POST /ui/oidc/token` headers announcing a 16000-byte body and only `{`; returns
/// the status line, or `None` if nothing came back within 3 s.
fn status_without_the_body(base: &str) -> Option<String> {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    write!(
        stream,
        "POST /ui/oidc/token HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: 16000\r\n\r\n{{"
    )
    .unwrap();
    let mut buf = [0u8; 256];
    let n = stream.read(&mut buf).ok()?;
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    head.lines().next().map(str::to_owned)
}

#[test]
fn the_console_token_endpoint_answers_404_without_reading_the_body_when_off() {
    for enabled in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerToml::new()
            .server("allow_unauthenticated", true)
            .target(Target::postgres("orders-db").db_users(["app_rw"]))
            .ui("enabled", enabled);
        let broker = RunningBroker::serve(dir.path(), &config);
        let started = Instant::now();
        let status = status_without_the_body(&broker.base);
        assert_eq!(
            status.as_deref(),
            Some("HTTP/1.1 404 Not Found"),
            "ui enabled = {enabled}: the broker waited for the body ({:?})",
            started.elapsed()
        );
    }
}

/// An OIDC discovery document that counts how often it is fetched.
async fn counting_discovery() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let fetches = Arc::new(AtomicUsize::new(0));
    let (counter, issuer) = (fetches.clone(), url.clone());
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let issuer = issuer.clone();
                async move {
                    axum::Json(json!({
                        "issuer": issuer,
                        "authorization_endpoint": format!("{issuer}/authorize"),
                        "token_endpoint": format!("{issuer}/token"),
                    }))
                }
            }),
        )
        .route(
            "/jwks",
            axum::routing::get(|| async { axum::Json(json!({"keys": []})) }),
        );
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fetches, server)
}

/// Issuer `corp` at `idp` for the console's client id, which signs in to the console.
fn console_config(idp: &str) -> BrokerToml {
    BrokerToml::new()
        .issuer(Issuer::jwks_uri("corp", idp, &format!("{idp}/jwks")).audiences(["audit-console"]))
        .target(Target::postgres("orders-db").db_users(["app_rw"]))
        .ui_oidc("issuer", "corp")
        .ui_oidc("client_id", "audit-console")
}

#[tokio::test]
async fn ui_config_fetches_the_discovery_document_once_per_ten_minutes() {
    let (idp, fetches, _server) = counting_discovery().await;
    let app = TestApp::spawn_toml(console_config(&idp)).await;
    for _ in 0..50 {
        let config: Value = app.get("/ui/config").await.json().await.unwrap();
        assert_eq!(
            config["oidc"]["authorization_endpoint"],
            format!("{idp}/authorize")
        );
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // The broker's clock says when the cached document is old.
    app.clock.advance(Duration::from_secs(599));
    app.get("/ui/config").await;
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    app.clock.advance(Duration::from_secs(2));
    app.get("/ui/config").await;
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

async fn redeem(app: &TestApp, host: Option<&str>, redirect_uri: &str) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}/ui/oidc/token", app.base))
        .json(&json!({"code": "never-issued", "code_verifier": "v".repeat(64), "redirect_uri": redirect_uri}));
    if let Some(h) = host {
        req = req.header("host", h);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_redirect_uri_is_the_configured_public_url_never_the_host_header() {
    let idp = OidcProvider::start(RsaKey::generate("k"), json!({"sub": "alice"})).await;

    // Without ui.public_url, a Host that is not loopback is not believed: the code never
    // reaches the provider (it would answer invalid_grant, a 401).
    let app = TestApp::spawn_toml(console_config(&idp.issuer)).await;
    let res = redeem(&app, Some("evil.example"), "https://evil.example/ui/").await;
    let body = problem(res, 400).await;
    assert!(
        body["detail"].as_str().unwrap().contains("redirect_uri"),
        "{body}"
    );
    // The loopback address the request was sent to still works (the dev broker, tests).
    let res = redeem(&app, None, &format!("{}/ui/", app.base)).await;
    assert!(
        problem(res, 401).await["detail"]
            .as_str()
            .unwrap()
            .contains("invalid_grant")
    );

    // With it, only <public_url>/ui/ is accepted, whatever the Host says.
    let app = TestApp::spawn_toml(
        console_config(&idp.issuer).ui("public_url", "https://broker.example.com/"),
    )
    .await;
    for (host, uri) in [
        (None, format!("{}/ui/", app.base)),
        (Some("evil.example"), "https://evil.example/ui/".to_owned()),
        (None, "https://broker.example.com:8443/ui/".to_owned()),
        (None, "http://broker.example.com/ui/".to_owned()),
    ] {
        problem(redeem(&app, host, &uri).await, 400).await;
    }
    let res = redeem(&app, Some("evil.example"), "https://broker.example.com/ui/").await;
    assert!(
        problem(res, 401).await["detail"]
            .as_str()
            .unwrap()
            .contains("invalid_grant")
    );
    assert_eq!(idp.redeemed(), 0);
}

#[test]
fn ui_public_url_is_checked() {
    let console = |listen: &str, public_url: Option<&str>| {
        let c = BrokerToml::default()
            .server("listen", listen)
            .issuer(
                Issuer::jwks_uri("corp", "https://sso.example", "https://sso.example/jwks")
                    .audiences(["audit-console"]),
            )
            .ui_oidc("issuer", "corp")
            .ui_oidc("client_id", "audit-console");
        match public_url {
            Some(u) => c.ui("public_url", u),
            None => c,
        }
        .to_string()
    };
    let cases = [
        (None, "ui.public_url: required with [ui.oidc]"),
        (
            Some("http://broker.example.com"),
            "ui.public_url: must be the console's origin",
        ),
        (
            Some("https://broker.example.com/console"),
            "ui.public_url: must be the console's origin",
        ),
        (
            Some("https://broker.example.com/?x=1"),
            "ui.public_url: must be the console's origin",
        ),
    ];
    for (public_url, want) in cases {
        let text = console("0.0.0.0:8443", public_url);
        let err = rds_token_broker::config::load_str(&text)
            .expect_err(&text)
            .to_string();
        assert!(err.contains(want), "{text}: {err}");
    }
    let ok = console("0.0.0.0:8443", Some("https://broker.example.com/"));
    let config = rds_token_broker::config::load_str(&ok).unwrap();
    assert_eq!(
        config.ui.public_url.as_deref(),
        Some("https://broker.example.com")
    );
    // A loopback listener needs none (the dev broker, tests).
    rds_token_broker::config::load_str(&console("127.0.0.1:8443", None)).unwrap();
}

// Item 19 (keys over plain HTTP, the JWKS size cap) -------------------------------------

#[test]
fn plain_http_key_sources_need_loopback_or_insecure_http() {
    let https = "https://sso.example";
    let http = "http://sso.example";
    let file = |issuer: Issuer| BrokerToml::default().issuer(issuer);
    let console = |issuer: Issuer| {
        file(issuer)
            .ui_oidc("issuer", "corp")
            .ui_oidc("client_id", "rds-token-broker")
    };
    let refused = [
        (
            file(Issuer::jwks_uri("corp", https, "http://sso.example/jwks")),
            "issuers[0].jwks_uri: plain http://",
        ),
        (
            file(Issuer::discovery("corp", http)),
            "issuers[0].issuer: plain http://",
        ),
        (
            console(Issuer::jwks_uri("corp", http, "https://sso.example/jwks")),
            "ui.oidc.issuer: plain http://",
        ),
        (
            console(Issuer::jwks_uri("corp", https, "https://sso.example/jwks"))
                .ui_oidc("token_endpoint", "http://sso.example/token"),
            "ui.oidc.token_endpoint: plain http://",
        ),
    ];
    for (config, want) in refused {
        let config = config.to_string();
        let err = rds_token_broker::config::load_str(&config)
            .expect_err(&config)
            .to_string();
        assert!(err.contains(want), "{config}: {err}");
    }
    for config in [
        file(Issuer::jwks_uri(
            "corp",
            https,
            "http://127.0.0.1:8080/jwks",
        )),
        file(Issuer::jwks_uri("corp", https, "http://localhost/jwks")),
        file(Issuer::jwks_uri("corp", https, "http://[::1]:80/jwks")),
        file(Issuer::discovery("corp", "http://127.0.0.1:9000")),
        file(Issuer::jwks_uri("corp", http, "http://sso.example/jwks").set("insecure_http", true)),
        console(Issuer::discovery("corp", http).set("insecure_http", true)),
        // An http issuer that is only a name (keys from https) is fine.
        file(Issuer::jwks_uri("corp", http, "https://sso.example/jwks")),
    ] {
        let config = config.to_string();
        let loaded = rds_token_broker::config::load_str(&config);
        assert!(loaded.is_ok(), "{config}: {}", loaded.unwrap_err());
    }
}

#[tokio::test]
async fn an_endless_jwks_is_abandoned_once_it_passes_1_mib() {
    // A JWKS endpoint that sends 2 MiB of chunks and then never finishes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut req = [0u8; 4096];
                let _ = conn.read(&mut req);
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                      Transfer-Encoding: chunked\r\n\r\n",
                );
                let chunk = vec![b' '; 64 * 1024];
                for _ in 0..32 {
                    let _ = conn.write_all(format!("{:x}\r\n", chunk.len()).as_bytes());
                    let _ = conn.write_all(&chunk);
                    let _ = conn.write_all(b"\r\n");
                }
                // ...and never finishes (the attack; this is the fake server's thread).
                std::thread::sleep(Duration::from_secs(30));
            });
        }
    });
    let config = BrokerToml::new().issuer(Issuer::jwks_uri(
        "corp",
        "https://sso.example",
        &format!("http://{addr}/jwks"),
    ));
    let app = TestApp::spawn_toml(config).await;
    let issuer = app.state.generation().auth.issuers()[0].clone();
    // The JWKS fetch gives up within 5 s.
    let error = eventually(Duration::from_secs(5), || {
        let (_, error) = issuer.status();
        async move { error.map(|e| rds_token_broker::report::Report(&e).to_string()) }
    })
    .await;
    assert!(error.contains("larger than 1024 KiB"), "{error}");
}

// Items 13, 14 (AWS-IAM) ----------------------------------------------------------------

/// Headers (lower-case names) of every request for `action` moto recorded.
async fn recorded_headers(f: &Fixture, action: &str) -> Vec<Vec<String>> {
    f.moto
        .recording()
        .await
        .into_iter()
        .filter(|r| {
            let body = r["body"].as_str().unwrap_or_default();
            let body = base64::engine::general_purpose::STANDARD
                .decode(body)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|_| body.to_owned());
            body.contains(&format!("Action={action}"))
        })
        .map(|r| {
            r["headers"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.to_ascii_lowercase())
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn only_the_signed_headers_and_authorization_reach_sts() {
    let f = Fixture::start_with(|c| c, |_| static_keys()).await;
    let signed = decode(f.signed("role").await["valid"].as_str().unwrap());

    // Unsigned headers slipped into the signed request are not forwarded.
    let mut with_extras = signed.clone();
    let headers = with_extras["headers"].as_object_mut().unwrap();
    headers.insert("Proxy-Authorization".into(), json!("Basic c2VjcmV0"));
    headers.insert("X-Forwarded-For".into(), json!("10.0.0.1"));
    headers.insert("Expect".into(), json!("100-continue"));
    headers.insert("X-Smuggled".into(), json!("1"));
    let res = f.post(&encode(&with_extras)).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let sent = recorded_headers(&f, "GetCallerIdentity").await;
    assert_eq!(sent.len(), 1);
    for never in [
        "proxy-authorization",
        "x-forwarded-for",
        "expect",
        "x-smuggled",
    ] {
        assert!(
            !sent[0].contains(&never.to_owned()),
            "{never} in {:?}",
            sent[0]
        );
    }
    for signed_header in [
        "x-amz-date",
        "x-rds-token-broker-server-id",
        "authorization",
    ] {
        assert!(sent[0].contains(&signed_header.to_owned()), "{:?}", sent[0]);
    }

    // A proxy header among the signed ones is refused before STS is asked.
    let mut t = signed.clone();
    let auth = header_mut(&mut t, "authorization");
    *auth = json!(
        auth.as_str()
            .unwrap()
            .replace("SignedHeaders=", "SignedHeaders=proxy-authorization;")
    );
    f.refused(&encode(&t), "a connection, proxy or forwarding header")
        .await;
    assert_eq!(recorded_headers(&f, "GetCallerIdentity").await.len(), 1);
}

#[tokio::test]
async fn a_cached_identity_is_reused_only_for_the_identical_signed_request() {
    let f = Fixture::start_with(|c| c, |_| static_keys()).await;
    let signed = decode(f.signed("role").await["valid"].as_str().unwrap());
    assert_eq!(f.post(&encode(&signed)).await.status(), 200);
    assert_eq!(recorded_headers(&f, "GetCallerIdentity").await.len(), 1);

    // The same signature with a signed header changed is not the cached request: STS is
    // asked again and finds the signature wrong.
    let mut altered = signed.clone();
    *header_mut(&mut altered, "content-type") = json!("application/x-www-form-urlencoded");
    f.refused(&encode(&altered), "STS refused the signed request")
        .await;
    assert_eq!(recorded_headers(&f, "GetCallerIdentity").await.len(), 2);

    // The untouched request is still answered from the cache.
    assert_eq!(f.post(&encode(&signed)).await.status(), 200);
    assert_eq!(recorded_headers(&f, "GetCallerIdentity").await.len(), 2);
}

#[tokio::test]
async fn an_assumed_roles_rotating_session_names_share_its_rate_limit() {
    let f = Fixture::start_with(
        |c| c.rate_limit("per_principal_per_second", 1),
        |_| static_keys(),
    )
    .await;
    let first = f.signed("role").await;
    let rotated = f.signed("role_rotated").await;
    assert_eq!(f.post(first["valid"].as_str().unwrap()).await.status(), 200);
    // Another session name of the same role, within the same second (the clock is frozen).
    let res = f.post(rotated["valid"].as_str().unwrap()).await;
    let body = problem(res, 429).await;
    assert_eq!(body["limit"], "principal");
}

#[tokio::test]
async fn an_assumed_roles_rotating_session_names_share_one_role_session_and_token() {
    let role_target = |c: BrokerToml| {
        c.target(
            Target::postgres("signed-by-role")
                .host("signed.cluster-abc123xyz.eu-west-1.rds.amazonaws.com")
                .db_users(["app_rw"])
                .role_arn("arn:aws:iam::123456789012:role/orders-lambda"),
        )
        .grant(
            Grant::new("aws-iam", "arn:aws:iam::123456789012:role/orders-lambda")
                .targets(["signed-by-role"])
                .db_users(["app_rw"]),
        )
    };
    // The broker signs AssumeRole with the user's keys, which moto knows.
    let f = Fixture::start_with(role_target, |creds| {
        aws_credential_types::Credentials::new(
            creds["user"]["AWS_ACCESS_KEY_ID"].as_str().unwrap(),
            creds["user"]["AWS_SECRET_ACCESS_KEY"].as_str().unwrap(),
            None,
            None,
            "moto-user",
        )
    })
    .await;
    let mut tokens = Vec::new();
    for who in ["role", "role_rotated"] {
        let authorization = f.signed(who).await;
        let res = f
            .app
            .client
            .post(format!("{}/v1/tokens", f.app.base))
            .header("authorization", authorization["valid"].as_str().unwrap())
            .json(&json!({"target": "signed-by-role"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{who}: {}", res.text().await.unwrap());
        let body: Value = res.json().await.unwrap();
        tokens.push(body["token"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        tokens[0], tokens[1],
        "the second session got a token of its own"
    );
    let by_broker: Vec<_> = f
        .moto
        .assume_role_calls()
        .await
        .into_iter()
        .filter(|c| {
            c.get("RoleSessionName")
                .is_some_and(|n| n.starts_with("aws-iam@"))
        })
        .collect();
    assert_eq!(by_broker.len(), 1, "{by_broker:?}");
}

// Item 7 --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_9_kb_signed_header_name_is_never_reflected() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerToml::new()
        .aws("sts_endpoint", "http://127.0.0.1:9/")
        .aws("iam_server_id", SERVER_ID)
        .audit_sqlite(dir.path())
        .audit("mirror", "stdout")
        .target(Target::postgres("orders-db").db_users(["app_rw"]))
        .grant(
            Grant::new("aws-iam", "arn:aws:iam::123456789012:role/orders-*")
                .targets(["orders-db"])
                .db_users(["app_rw"]),
        );
    let broker = RunningBroker::serve(dir.path(), &config);
    let marker = "zq".repeat(4500);
    let junk = format!("<script>alert(1)</script>\u{0}{marker}\u{0}");
    let amz_date = "20260309T141129Z";
    let signed = json!({
        "method": "POST",
        "url": "https://sts.amazonaws.com/",
        "body": "Action=GetCallerIdentity&Version=2011-06-15",
        "headers": {
            "Authorization": format!(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260309/us-east-1/sts/aws4_request, \
                 SignedHeaders=host;x-amz-date;x-rds-token-broker-server-id;{junk}, Signature={}",
                "0".repeat(64)
            ),
            "X-Amz-Date": amz_date,
            "X-RDS-Token-Broker-Server-ID": SERVER_ID,
        },
    });
    let authorization = encode(&signed);
    assert!(authorization.len() < 16 * 1024);
    let res = post_token(&broker.base, &authorization, json!({"target": "orders-db"})).await;
    let www = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = problem(res, 401).await.to_string();
    // Wait for the denied event to be committed and mirrored.
    eventually(Duration::from_secs(10), || async {
        broker.stdout().contains("\"denied\"")
    })
    .await;
    let logs = format!("{}{}", broker.stdout(), broker.stderr());
    let www = www.unwrap_or_default();
    for (place, text) in [("body", &body), ("WWW-Authenticate", &www), ("logs", &logs)] {
        for needle in ["zqzqzqzqzq", "<script>", "alert(1)"] {
            assert!(!text.contains(needle), "{needle} reflected in the {place}");
        }
    }
    // The refusal still says why, in the header too (it could not carry a NUL before).
    assert!(
        www.starts_with("Bearer error=\"invalid_token\""),
        "no WWW-Authenticate: {www:?}"
    );
    assert!(
        body.contains(
            "the signed request's Authorization is not a well-formed AWS4-HMAC-SHA256 signature"
        ),
        "{body}"
    );
}
