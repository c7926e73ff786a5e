//! The audit console at `/ui`: its assets and headers over HTTP, its sign-in helper, its
//! configuration checks, and end to end in Debian's headless Chromium driven by
//! Playwright (`tests/ui/console.mjs`) against the real binary with a seeded trail and an
//! OIDC provider on loopback.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::app::{TestApp, problem};
use crate::support::binary::RunningBroker;
use crate::support::config::{Auditor, BrokerToml, Grant, Issuer, Target};
use crate::support::idp::RsaKey;
use crate::support::oidc::OidcProvider;
use crate::support::{eventually, get_json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Issuer `corp` at `idp` (for callers and for the console); `svc-*` may use `orders-db`
/// and `billing-db` (one token a second); `dev-*` may ask for `orders-db` as `dba`
/// (approved by the auditor carol) and `ops-*` may break the glass as `oncall`; the
/// `security` group audits; the console signs in through `corp`.
fn broker_config(dir: &std::path::Path, idp: &str) -> BrokerToml {
    let batch = (0..6).map(|i| format!("batch_{i}"));
    let billing_users: Vec<String> = ["billing".to_owned()].into_iter().chain(batch).collect();
    let granted: Vec<String> = ["app_rw", "app_ro"]
        .iter()
        .map(|u| (*u).to_owned())
        .chain(billing_users.iter().cloned())
        .collect();
    BrokerToml::new()
        .audit_sqlite(dir)
        .issuer(
            Issuer::jwks_uri("corp", idp, &format!("{idp}/jwks"))
                .audiences(["rds-token-broker", "audit-console"])
                .set("algorithms", vec!["RS256"]),
        )
        .target(Target::postgres("orders-db").db_users(["app_rw", "app_ro", "dba", "oncall"]))
        .target(
            Target::postgres("billing-db")
                .db_users(billing_users)
                .budget(1, 1),
        )
        .grant(
            Grant::new("corp", "svc-*")
                .targets(["orders-db", "billing-db"])
                .db_users(granted),
        )
        .grant(
            Grant::new("corp", "dev-*")
                .targets(["orders-db"])
                .db_users(["dba"])
                .set("access", "request")
                .approver("corp", "carol@corp.example"),
        )
        .grant(
            Grant::new("corp", "ops-*")
                .targets(["orders-db"])
                .db_users(["oncall"])
                .set("access", "break_glass")
                .approver("corp", "carol@corp.example"),
        )
        .auditor(Auditor::new("corp", "*").claim("groups", "security"))
        .ui_oidc("issuer", "corp")
        .ui_oidc("client_id", "audit-console")
        .ui_oidc("scopes", vec!["openid", "groups"])
}

/// What the test did to the broker, counted from the answers it got.
#[derive(Default)]
struct Seeded {
    issued: BTreeMap<String, u64>,
    denied: u64,
    forbidden: u64,
    throttled: u64,
    leaked: String,
}

async fn seed(base: &str, idp: &OidcProvider) -> Seeded {
    let client = crate::support::client();
    let mut s = Seeded::default();
    let mut plan: Vec<(String, Value)> = Vec::new();
    for _ in 0..12 {
        plan.push((
            "svc-orders".into(),
            json!({"target": "orders-db", "db_user": "app_rw"}),
        ));
    }
    for _ in 0..5 {
        plan.push((
            "svc-reports".into(),
            json!({"target": "orders-db", "db_user": "app_ro"}),
        ));
    }
    for _ in 0..3 {
        plan.push((
            "svc-billing".into(),
            json!({"target": "billing-db", "db_user": "billing"}),
        ));
    }
    // Each DB user needs a new token: the 1-per-second budget refuses most of them.
    for i in 0..6 {
        plan.push((
            "svc-batch".into(),
            json!({"target": "billing-db", "db_user": format!("batch_{i}")}),
        ));
    }
    for _ in 0..3 {
        plan.push((
            "intern".into(),
            json!({"target": "orders-db", "db_user": "app_rw"}),
        ));
    }
    for (subject, body) in plan {
        let jwt = idp.jwt("rds-token-broker", json!({"sub": subject}));
        let res = client
            .post(format!("{base}/v1/tokens"))
            .bearer_auth(jwt)
            .json(&body)
            .send()
            .await
            .unwrap();
        match res.status().as_u16() {
            200 => {
                let v: Value = res.json().await.unwrap();
                *s.issued
                    .entry(v["target"].as_str().unwrap().to_owned())
                    .or_default() += 1;
                s.leaked = v["token"].as_str().unwrap().to_owned();
            }
            403 => s.forbidden += 1,
            429 => s.throttled += 1,
            other => panic!("unexpected status {other} while seeding"),
        }
    }
    // Forged: signed by the provider, then one character inside the signature changed.
    for _ in 0..4 {
        let jwt = idp.jwt("rds-token-broker", json!({"sub": "svc-orders"}));
        let i = jwt.len() - 20;
        let swapped = if &jwt[i..=i] == "A" { "B" } else { "A" };
        let jwt = format!("{}{swapped}{}", &jwt[..i], &jwt[i + 1..]);
        let res = client
            .post(format!("{base}/v1/tokens"))
            .bearer_auth(jwt)
            .json(&json!({"target": "orders-db"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        s.denied += 1;
    }
    assert!(s.throttled > 0, "the billing budget throttled no one");
    s
}

/// Waits until the trail's totals are what the answers said (coalesced refusals are
/// written when their one-second window closes); returns the events stored.
async fn settled(base: &str, auditor: &str, s: &Seeded) -> Vec<Value> {
    let client = crate::support::client();
    let issued: u64 = s.issued.values().sum();
    let want = json!({"issued": issued, "denied": s.denied, "forbidden": s.forbidden, "throttled": s.throttled, "failed": 0});
    let (client, want) = (&client, &want);
    // (Reads of the trail, these included, are events too: `audit_read`, not compared.)
    eventually(Duration::from_secs(10), || async move {
        let stats = get_json(client, &format!("{base}/v1/audit/stats"), Some(auditor)).await;
        let decisions: serde_json::Map<String, Value> = want
            .as_object()
            .unwrap()
            .keys()
            .map(|k| (k.clone(), stats["totals"][k].clone()))
            .collect();
        Value::Object(decisions) == *want
    })
    .await;
    let url = format!("{base}/v1/audit/events?limit=1000");
    let page = get_json(client, &url, Some(auditor)).await;
    page["events"].as_array().unwrap().clone()
}

/// The console's pages and its sign-in endpoint, over plain HTTP.
async fn check_http(base: &str, idp: &OidcProvider, auditor: &str, caller: &str) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client.get(format!("{base}/ui")).send().await.unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(res.headers()["location"], "/ui/");
    for (path, content_type) in [
        ("/ui/", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/charts.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ] {
        let res = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        assert_eq!(h["content-type"], content_type, "{path}");
        assert_eq!(h["content-security-policy"], CSP, "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
    }
    // Nothing in the page may load from elsewhere.
    for asset in ["ui/index.html", "ui/app.js", "ui/charts.js", "ui/app.css"] {
        let text = std::fs::read_to_string(repo().join(asset)).unwrap();
        for needle in ["https://", "//cdn", "@import", "fonts.g"] {
            assert!(!text.contains(needle), "{asset} mentions {needle}");
        }
    }
    let config = get_json(&client, &format!("{base}/ui/config"), None).await;
    assert_eq!(
        config,
        json!({"oidc": {"issuer": "corp", "authorization_endpoint": format!("{}/authorize", idp.issuer),
                        "client_id": "audit-console", "scope": "openid groups"},
               "unauthenticated": false})
    );
    // Stats are for auditors only.
    let res = client
        .get(format!("{base}/v1/audit/stats"))
        .bearer_auth(caller)
        .send()
        .await
        .unwrap();
    problem(res, 403).await;
    let res = client
        .get(format!("{base}/v1/audit/stats"))
        .bearer_auth(auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The code redemption refuses malformed input, and codes the provider never issued.
    let redeem = |body: Value| {
        client
            .post(format!("{base}/ui/oidc/token"))
            .json(&body)
            .send()
    };
    let verifier = "v".repeat(64);
    let ui = format!("{base}/ui/");
    for (body, needle) in [
        (
            json!({"code": "abc", "code_verifier": "short", "redirect_uri": ui}),
            "code_verifier",
        ),
        (
            json!({"code": "", "code_verifier": verifier, "redirect_uri": ui}),
            "code:",
        ),
        (
            json!({"code": "abc", "code_verifier": verifier, "redirect_uri": "https://evil.example/ui/"}),
            "redirect_uri",
        ),
        (
            json!({"code": "abc", "code_verifier": verifier, "redirect_uri": format!("{base}/elsewhere")}),
            "redirect_uri",
        ),
    ] {
        let res = redeem(body.clone()).await.unwrap();
        if res.status() != 400 {
            panic!("{body}: {}", res.text().await.unwrap());
        }
        let body = problem(res, 400).await;
        assert!(body["detail"].as_str().unwrap().contains(needle), "{body}");
    }
    let body = problem(
        redeem(json!({"code": "never-issued", "code_verifier": verifier, "redirect_uri": ui}))
            .await
            .unwrap(),
        401,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("invalid_grant"),
        "{body}"
    );
    assert_eq!(idp.redeemed(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_headless_chromium() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: scripts/test installs Debian's chromium package"
    );
    let idp = OidcProvider::start(
        RsaKey::generate("console-key"),
        json!({"sub": "alice@corp.example", "groups": ["security", "staff"]}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let broker = RunningBroker::serve(dir.path(), &broker_config(dir.path(), &idp.issuer));
    let base = broker.base.clone();

    let auditor = idp.jwt(
        "rds-token-broker",
        json!({"sub": "carol@corp.example", "groups": ["security"]}),
    );
    let caller = idp.jwt("rds-token-broker", json!({"sub": "svc-orders"}));
    let seeded = seed(&base, &idp).await;
    let events = settled(&base, &auditor, &seeded).await;
    check_http(&base, &idp, &auditor, &caller).await;

    let billing_rows = events
        .iter()
        .filter(|e| e["target"] == "billing-db")
        .count();
    let denied_rows = events.iter().filter(|e| e["outcome"] == "denied").count();
    let leaked_sha = hex::encode(Sha256::digest(seeded.leaked.as_bytes()));
    let leaked_events = events
        .iter()
        .filter(|e| e["token_sha256"] == leaked_sha.as_str())
        .count();
    // The decisions: every event but the reads of the trail (`audit_read`), which grow
    // while the console reads (console.mjs tells them apart).
    let rows = events
        .iter()
        .filter(|e| e["outcome"] != "audit_read" && e["outcome"] != "signed_in")
        .count();
    assert!(rows < events.len(), "settling read the trail: recorded");
    let expect = json!({
        "rows": rows,
        "billing_rows": billing_rows,
        "denied_rows": denied_rows,
        "leaked_events": leaked_events,
        "issued": seeded.issued,
        "denied": seeded.denied,
        "forbidden": seeded.forbidden,
        "throttled": seeded.throttled,
        "top_subject": "svc-orders",
        "top_issued": 12,
        "billing_budget": 1,
        "oidc_subject": "alice@corp.example",
    });
    // Requesters for the Access requests tab (console.mjs makes their requests).
    let requesters: BTreeMap<&str, String> = [
        ("ann", "dev-ann"),
        ("bob", "dev-bob"),
        ("cat", "dev-cat"),
        ("olga", "ops-olga"),
    ]
    .into_iter()
    .map(|(k, sub)| (k, idp.jwt("rds-token-broker", json!({"sub": sub}))))
    .collect();
    let access = json!({"jwts": requesters, "target": "orders-db", "db_user": "dba", "break_glass_user": "oncall"});
    let shots = std::env::var("RTB_SCREENSHOTS").unwrap_or_default();
    let out = tokio::process::Command::new("node")
        .arg(repo().join("tests/ui/console.mjs"))
        .env("BROKER_URL", &base)
        .env("IDP_URL", &idp.issuer)
        .env("AUDITOR_JWT", &auditor)
        .env("NON_AUDITOR_JWT", &caller)
        .env("LEAKED_TOKEN", &seeded.leaked)
        .env("EXPECT", expect.to_string())
        .env("ACCESS", access.to_string())
        .env("CHROMIUM", CHROMIUM)
        .env("SCREENSHOT_DIR", shots)
        .output()
        .await
        .expect("node must be on PATH (scripts/test puts the virtualenv's Node.js there)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "console test failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- broker\n{}",
        broker.stderr()
    );
    assert!(stdout.contains("all console checks passed"), "{stdout}");
    assert_eq!(
        idp.redeemed(),
        1,
        "the browser signed in through the provider once"
    );
    // That sign-in is in the trail, with who signed in (never the ID token).
    let client = crate::support::client();
    let url = format!("{base}/v1/audit/events?outcome=signed_in");
    let signed_in = get_json(&client, &url, Some(&auditor)).await["events"].clone();
    assert_eq!(signed_in.as_array().unwrap().len(), 1, "{signed_in}");
    let e = &signed_in[0];
    assert_eq!(
        (&e["issuer"], &e["subject"], &e["auth_method"], &e["reason"]),
        (
            &json!("corp"),
            &json!("alice@corp.example"),
            &json!("jwt"),
            &json!("console sign-in with OIDC")
        ),
        "{e}"
    );
    // Neither JWTs, codes nor tokens reach the broker's logs.
    let logs = format!("{}{}", broker.stdout(), broker.stderr());
    for secret in [&auditor, &caller, &seeded.leaked]
        .into_iter()
        .chain(requesters.values())
    {
        let sig = secret.rsplit(['.', '=']).next().unwrap();
        assert!(!logs.contains(sig), "a credential reached the logs");
    }
    assert!(
        !logs.contains("code-"),
        "an authorization code reached the logs"
    );
}

#[tokio::test]
async fn a_disabled_console_is_not_served() {
    let app = TestApp::spawn_toml(BrokerToml::unauthenticated().ui("enabled", false)).await;
    for path in ["/ui/", "/ui/app.js", "/ui/config"] {
        problem(app.get(path).await, 404).await;
    }
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/ui/").await.status(), 200);
    let config: Value = app.get("/ui/config").await.json().await.unwrap();
    assert_eq!(config, json!({"oidc": null, "unauthenticated": true}));
}

#[test]
fn ui_settings_are_checked() {
    let base = BrokerToml::default().issuer(Issuer::jwks_uri(
        "corp",
        "https://sso.example",
        "https://sso.example/jwks",
    ));
    let console = |issuer: &str, client_id: &str| {
        base.clone()
            .ui_oidc("issuer", issuer)
            .ui_oidc("client_id", client_id)
    };
    let cases = [
        (
            console("nope", "c"),
            "ui.oidc.issuer: \"nope\" is not the name of an [[issuers]] entry",
        ),
        (
            console("corp", "console"),
            "ui.oidc.client_id: ID tokens are issued for the client id: add \"console\" to the audiences of issuer \"corp\"",
        ),
        (
            console("corp", "rds-token-broker").ui_oidc("scopes", vec!["groups"]),
            "ui.oidc.scopes: must include \"openid\"",
        ),
        (
            console("corp", "rds-token-broker").ui_oidc("token_endpoint", "ftp://x"),
            "ui.oidc.token_endpoint: must be an http(s) URL",
        ),
        (base.clone().ui("colour", "blue"), "ui.colour: unknown key"),
    ];
    for (config, want) in cases {
        let config = config.to_string();
        let err = rds_token_broker::config::load_str(&config)
            .expect_err(&config)
            .to_string();
        assert!(err.contains(want), "{config}: {err}");
    }
    let ok = console("corp", "rds-token-broker").to_string();
    let config = rds_token_broker::config::load_str(&ok).unwrap();
    assert_eq!(config.ui.oidc.unwrap().scopes, vec!["openid".to_owned()]);
}
