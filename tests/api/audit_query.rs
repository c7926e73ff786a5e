//! Searching the audit trail: filters, pagination, exports, token lookup, authorization.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::app::{TestApp, problem};
use crate::support::config::{Auditor, BrokerToml, Grant, Target};
use crate::support::idp::{RsaKey, TestIdp, rs256};
use crate::support::{eventually, get_json};

async fn audited_app(dir: &tempfile::TempDir) -> TestApp {
    TestApp::spawn_toml(BrokerToml::unauthenticated().audit_sqlite(dir.path())).await
}

/// 2,000 decisions over 40 seconds of clock, all issued (refusals are folded, so they
/// would not stay 2,000 rows): 400 for `app_rw`, 800 for `app_ro`, 800 for `ledger`.
async fn seed(app: &TestApp) -> Vec<String> {
    let mut tokens = Vec::new();
    for round in 0..40 {
        let mut tasks = Vec::new();
        for i in 0..50 {
            let (client, url) = (app.client.clone(), format!("{}/v1/tokens", app.base));
            let body = match i % 5 {
                0 => json!({"target": "orders-db", "db_user": "app_rw"}),
                1 | 2 => json!({"target": "orders-db", "db_user": "app_ro"}),
                _ => json!({"target": "ledger"}),
            };
            tasks.push(tokio::spawn(async move {
                client
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            if let Some(tok) = t.await.unwrap()["token"].as_str() {
                tokens.push(tok.to_owned());
            }
        }
        if round % 2 == 1 {
            app.clock.advance(Duration::from_secs(2));
        }
    }
    tokens
}

async fn page(app: &TestApp, query: &str) -> Value {
    let res = app.get(&format!("/v1/audit/events?{query}")).await;
    assert_eq!(res.status(), 200, "{query}");
    res.json().await.unwrap()
}

#[tokio::test]
async fn filters_and_pagination_over_thousands_of_events() {
    let dir = tempfile::tempdir().unwrap();
    let app = audited_app(&dir).await;
    let tokens = seed(&app).await;

    // Pages of 1000 cover all 2,000 events once, newest first.
    let mut seen = HashSet::new();
    let mut last: Option<(String, String)> = None;
    let mut query = "limit=1000".to_owned();
    loop {
        let p = page(&app, &query).await;
        for e in p["events"].as_array().unwrap() {
            let key = (
                e["time"].as_str().unwrap().to_owned(),
                e["id"].as_str().unwrap().to_owned(),
            );
            if let Some(prev) = &last {
                assert!(key < *prev, "not newest first");
            }
            assert!(seen.insert(key.1.clone()), "duplicate event across pages");
            last = Some(key);
        }
        match p["next_cursor"].as_str() {
            Some(c) => query = format!("limit=1000&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 2000);

    let count = |v: &Value| v["events"].as_array().unwrap().len();
    assert_eq!(count(&page(&app, "db_user=app_rw&limit=1000").await), 400);
    assert_eq!(count(&page(&app, "target=ledger&limit=1000").await), 800);
    assert_eq!(
        count(
            &page(
                &app,
                "target=orders-db&db_user=app_ro&outcome=issued&limit=1000"
            )
            .await
        ),
        800
    );
    assert_eq!(
        count(&page(&app, "issuer=none&subject=anonymous&limit=1000").await),
        1000,
        "a full page"
    );
    // The clock moved 2 s every 100 events from 14:11:29: the first 10 s hold 500.
    let window = page(
        &app,
        "since=2026-03-09T14:11:29Z&until=2026-03-09T16:11:39%2B02:00&limit=1000",
    )
    .await;
    assert_eq!(count(&window), 500);
    let default_page = page(&app, "").await;
    assert_eq!(count(&default_page), 100);
    assert!(default_page["next_cursor"].is_string());

    let sha = hex::encode(Sha256::digest(tokens[0].as_bytes()));
    let by_hash = page(&app, &format!("token_sha256={sha}")).await;
    assert!(count(&by_hash) >= 1);
    assert!(
        by_hash["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["token_sha256"] == sha.as_str())
    );
}

#[tokio::test]
async fn ndjson_and_csv_exports_parse_back_to_the_same_events() {
    let dir = tempfile::tempdir().unwrap();
    let app = audited_app(&dir).await;
    for i in 0..30 {
        // One refusal (more would be folded into one event), the rest issued.
        let body = if i == 0 {
            json!({"target": "nope"})
        } else if i % 3 == 0 {
            json!({"target": "orders-db", "db_user": "app_rw"})
        } else {
            json!({"target": "ledger"})
        };
        app.post_token(body).await;
    }
    app.clock.advance(Duration::from_secs(1));
    let events = page(&app, "limit=1000").await["events"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(events.len(), 30);

    let res = app.get("/v1/audit/events?format=ndjson").await;
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let text = res.text().await.unwrap();
    let ndjson: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Newest first: this export's own `audit_read` (recorded before it streams), the
    // page's read above, then the 30 events that page returned.
    let reasons: Vec<&str> = ndjson[..2]
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "GET /v1/audit/events {format=ndjson}: export started",
            "GET /v1/audit/events {limit=1000}: 30 events",
        ]
    );
    assert_eq!(ndjson[2..], events[..]);

    let res = app.get("/v1/audit/events?format=csv").await;
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    let text = res.text().await.unwrap();
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<String>> = lines.map(parse_csv_line).collect();
    // After the four reads (this export, the NDJSON export's end and start, the page),
    // the same events.
    assert_eq!(rows.len(), events.len() + 4);
    assert!(
        rows[1][4].ends_with("{format=ndjson}: export finished, 32 events"),
        "{:?}",
        rows[1]
    );
    let rows = &rows[4..];
    for (row, e) in rows.iter().zip(&events) {
        for (col, cell) in header.iter().zip(row) {
            let expected = match &e[*col] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(*cell, expected, "column {col}");
        }
    }
}

fn parse_csv_line(line: &str) -> Vec<String> {
    let (mut cells, mut cell, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(std::mem::take(&mut cell)),
            _ => cell.push(c),
        }
    }
    cells.push(cell);
    cells
}

#[tokio::test]
async fn a_leaked_token_is_traced_to_its_issuance() {
    let dir = tempfile::tempdir().unwrap();
    let app = audited_app(&dir).await;
    let issued = app
        .token(json!({"target": "orders-db", "db_user": "app_rw"}))
        .await;
    app.token(json!({"target": "ledger"})).await;
    let res = app
        .client
        .post(format!("{}/v1/audit/lookup", app.base))
        .json(&json!({"token": issued["token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["id"], issued["issuance_id"]);
    assert_eq!(events[0]["db_user"], "app_rw");
    assert!(
        !body.to_string().contains(issued["token"].as_str().unwrap()),
        "the token is not echoed"
    );
}

#[tokio::test]
async fn bad_queries_are_400() {
    let dir = tempfile::tempdir().unwrap();
    let app = audited_app(&dir).await;
    for q in [
        "limit=0",
        "limit=1001",
        "since=yesterday",
        "outcome=maybe",
        "token_sha256=abc",
        "cursor=junk",
        "colour=red",
        "format=xml",
    ] {
        problem(app.get(&format!("/v1/audit/events?{q}")).await, 400).await;
    }
}

/// A broker whose callers authenticate with JWTs from `idp`: every subject may use
/// `ledger` as `svc`; members of the `security` group are auditors.
async fn jwt_audited_app(idp: &TestIdp, dir: &tempfile::TempDir) -> TestApp {
    let config = BrokerToml::new()
        .issuer(idp)
        .target(
            Target::postgres("ledger")
                .host("ledger.cluster-x.eu-west-1.rds.amazonaws.com")
                .db_users(["svc"]),
        )
        .grant(
            Grant::new("corp", "*")
                .targets(["ledger"])
                .db_users(["svc"]),
        )
        .auditor(Auditor::new("corp", "*").claim("groups", "security"))
        .audit_sqlite(dir.path())
        // Floods at one frozen instant: the per-address budget has its own tests.
        .rate_limit("per_client_ip_per_second", 0);
    TestApp::spawn_toml(config).await
}

#[tokio::test]
async fn only_auditors_may_read_the_trail() {
    let rsa = RsaKey::generate("k1");
    let idp = TestIdp::start(vec![rsa.jwk()]).await;
    let dir = tempfile::tempdir().unwrap();
    let app = jwt_audited_app(&idp, &dir).await;
    let claims = |groups: Value| json!({"iss": idp.issuer, "sub": "alice", "aud": "rds-token-broker", "exp": 1_773_065_489 + 600, "groups": groups});
    let service = rs256(&rsa, &claims(json!(["dev"])));
    let auditor = rs256(&rsa, &claims(json!(["security"])));
    let get = |path: &'static str, jwt: String| {
        let c = app.client.clone();
        let url = format!("{}{path}", app.base);
        async move {
            c.get(url)
                .bearer_auth(jwt)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let lookup = |jwt: String| {
        let c = app.client.clone();
        let url = format!("{}/v1/audit/lookup", app.base);
        async move {
            c.post(url)
                .bearer_auth(jwt)
                .json(&json!({"token": "x"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // A caller with token grants only: 403 everywhere; without a JWT: 401.
    assert_eq!(get("/v1/audit/events", service.clone()).await, 403);
    assert_eq!(get("/v1/audit/verify", service.clone()).await, 403);
    assert_eq!(lookup(service.clone()).await, 403);
    assert_eq!(app.get("/v1/audit/events").await.status(), 401);
    // An auditor: 200.
    assert_eq!(get("/v1/audit/events", auditor.clone()).await, 200);
    assert_eq!(get("/v1/audit/verify", auditor.clone()).await, 200);
    assert_eq!(lookup(auditor).await, 200);
}

#[tokio::test]
async fn the_mirror_gets_every_committed_event_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror.jsonl");
    let config = BrokerToml::unauthenticated()
        .audit_sqlite(dir.path())
        .audit("mirror", mirror.display().to_string());
    let app = TestApp::spawn_toml(config).await;
    let issued = app.token(json!({"target": "ledger"})).await;
    app.post_token(json!({"target": "nope"})).await;
    // The mirror is in commit order; the query orders by (time, id), and both events
    // share a second here, so compare in chain order.
    let mut stored = page(&app, "").await["events"].as_array().unwrap().clone();
    stored.sort_by_key(|e| e["seq"].as_i64());
    // The page's read is recorded, and mirrored, after the two events it returned.
    let read = app.state.broker.audit().unwrap();
    let filter = rds_token_broker::audit::query::Filter::parse(
        &[("outcome".to_owned(), "audit_read".to_owned())].into(),
    )
    .unwrap();
    stored.extend(
        read.search(&filter)
            .await
            .unwrap()
            .0
            .iter()
            .map(|e| serde_json::to_value(e).unwrap()),
    );
    assert_eq!(stored.len(), 3, "{stored:#?}");
    assert_eq!(stored[2]["reason"], "GET /v1/audit/events {}: 2 events");
    // The mirror is written after the commit, on its own thread: wait for both lines.
    let lines: Vec<Value> = eventually(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&mirror).unwrap_or_default();
        let complete = text.lines().count() >= stored.len();
        async move { complete.then_some(text) }
    })
    .await
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    assert_eq!(
        lines, stored,
        "the mirror holds the committed events, oldest first"
    );
    assert!(
        !std::fs::read_to_string(&mirror)
            .unwrap()
            .contains(issued["token"].as_str().unwrap())
    );
}

#[tokio::test]
async fn denied_floods_are_coalesced_and_issued_events_never_are() {
    let rsa = RsaKey::generate("k1");
    let idp = TestIdp::start(vec![rsa.jwk()]).await;
    let dir = tempfile::tempdir().unwrap();
    let app = jwt_audited_app(&idp, &dir).await;
    let jwt = |sub: &str, iss: &str, groups: &str| {
        rs256(
            &rsa,
            &json!({"iss": iss, "sub": sub, "aud": "rds-token-broker", "exp": 1_773_065_489 + 600, "groups": [groups]}),
        )
    };
    let post = |token: String| {
        let (c, url) = (app.client.clone(), format!("{}/v1/tokens", app.base));
        async move {
            c.post(url)
                .bearer_auth(token)
                .json(&json!({"target": "ledger"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // A flood of tokens from an untrusted issuer, all in one second of the broker's clock.
    let forged = jwt("mallory", "https://evil.invalid", "x");
    for _ in 0..200 {
        assert_eq!(post(forged.clone()).await, 401);
    }
    for _ in 0..20 {
        assert_eq!(post(jwt("svc-a", &idp.issuer, "dev")).await, 200);
    }
    // Close the window; the flusher writes the folded duplicates.
    app.clock.advance(Duration::from_secs(2));

    let auditor = jwt("alice", &idp.issuer, "security");
    let get = |query: &str| {
        let url = format!("{}/v1/audit/events?{query}", app.base);
        let (client, auditor) = (&app.client, &auditor);
        async move { get_json(client, &url, Some(auditor)).await }
    };
    let get = &get;
    let denied = crate::support::eventually(Duration::from_secs(10), || async move {
        let denied = get("outcome=denied&limit=1000").await["events"]
            .as_array()
            .unwrap()
            .clone();
        let total: i64 = denied.iter().map(|e| e["count"].as_i64().unwrap()).sum();
        (total == 200).then_some(denied)
    })
    .await;
    assert_eq!(denied.len(), 2, "{denied:?}");
    for e in &denied {
        // The claimed identity is quoted in the reason, never taken for a caller.
        assert!(e["issuer"].is_null() && e["subject"].is_null(), "{e}");
        let reason = e["reason"].as_str().unwrap();
        assert!(
            reason.contains(r#"iss "https://evil.invalid", sub "mallory""#),
            "{reason}"
        );
        assert_eq!(e["auth_method"], "unverified");
        assert_eq!(e["client_ip"], "127.0.0.1");
        assert!(e["reason"].as_str().unwrap().contains("not trusted"));
    }
    let issued = get("outcome=issued&limit=1000").await["events"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(issued.len(), 20);
    assert!(issued.iter().all(|e| e["count"] == 1));
    let url = format!("{}/v1/audit/verify", app.base);
    let v = get_json(&app.client, &url, Some(&auditor)).await;
    assert_eq!(v["ok"], true, "{v}");
}

#[tokio::test]
async fn client_ips_come_from_x_forwarded_for_only_through_trusted_proxies() {
    let dir = tempfile::tempdir().unwrap();
    for (trusted, expected) in [
        (&["127.0.0.1/32", "10.0.0.0/8"][..], "198.51.100.7"),
        (&[][..], "127.0.0.1"),
    ] {
        let config = BrokerToml::unauthenticated()
            .server("trusted_proxies", trusted.to_vec())
            .audit_url(format!(
                "sqlite://{}/audit-{}.db",
                dir.path().display(),
                trusted.len()
            ));
        let app = TestApp::spawn_toml(config).await;
        let res = app
            .client
            .post(format!("{}/v1/tokens", app.base))
            .header("x-forwarded-for", "6.6.6.6, 198.51.100.7")
            .header("x-forwarded-for", "10.1.2.3")
            .json(&json!({"target": "ledger"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let page: Value = app
            .client
            .get(format!("{}/v1/audit/events", app.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            page["events"][0]["client_ip"], expected,
            "trusted: {trusted:?}"
        );
    }
}
