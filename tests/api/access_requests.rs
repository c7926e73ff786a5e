//! Access requests (`docs/human-access.md`): request and break-glass grants, approvals,
//! expiry on the broker's clock, revocation, notifications with a valid signature, and
//! two brokers sharing one PostgreSQL. Callers sign in with JWTs from a JWKS served over
//! loopback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::app::{TestApp, problem};
use crate::support::config::{BrokerToml, Grant, Issuer, Target};
use crate::support::eventually;
use crate::support::idp::{RsaKey, TestIdp};
use crate::support::pg::TempDb;

const T0: u64 = 1_773_065_489;
const SECRET: &str = "webhook-test-secret";

struct Setup {
    app: TestApp,
    idp: TestIdp,
    key: RsaKey,
    _dir: tempfile::TempDir,
}

/// `dev` engineers may ask for `orders-db` as `app_rw` (approved by `lead-*`), `ops-*` may
/// break the glass for `orders-db` as `admin`, and `auditor` reads the trail.
pub fn config(idp: &TestIdp, min_approvals: i64) -> BrokerToml {
    BrokerToml::new()
        .issuer(Issuer::from(idp).named("corp"))
        .target(Target::postgres("orders-db").db_users(["app_rw", "admin", "app_ro"]))
        .grant(
            Grant::new("corp", "dev-*")
                .targets(["orders-db"])
                .db_users(["app_rw"])
                .set("access", "request")
                .set("min_approvals", min_approvals)
                .set("max_duration_minutes", 120)
                .approver("corp", "lead-*")
                .approver("corp", "dev-*"),
        )
        .grant(
            Grant::new("corp", "ops-*")
                .targets(["orders-db"])
                .db_users(["admin"])
                .set("access", "break_glass")
                .approver("corp", "lead-*"),
        )
        .grant(
            Grant::new("corp", "dev-*")
                .targets(["orders-db"])
                .db_users(["app_ro"]),
        )
        .auditor(crate::support::config::Auditor::new("corp", "auditor"))
}

async fn setup_with(min_approvals: i64, extra: impl FnOnce(BrokerToml) -> BrokerToml) -> Setup {
    let key = RsaKey::generate("k1");
    let idp = TestIdp::start(vec![key.jwk()]).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = extra(config(&idp, min_approvals).audit_sqlite(dir.path()));
    let app = TestApp::spawn_toml(toml).await;
    Setup {
        app,
        idp,
        key,
        _dir: dir,
    }
}

impl Setup {
    fn jwt(&self, sub: &str) -> String {
        jwt(&self.key, &self.idp, sub)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        sub: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        call(&self.app, &self.jwt(sub), method, path, body).await
    }

    async fn create(&self, sub: &str, body: Value) -> Value {
        let res = self
            .call("POST", "/v1/access-requests", sub, Some(body))
            .await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
        res.json().await.unwrap()
    }

    async fn decide(&self, sub: &str, id: &str, what: &str) -> reqwest::Response {
        let path = format!("/v1/access-requests/{id}/{what}");
        self.call("POST", &path, sub, Some(json!({"comment": "ok by me"})))
            .await
    }

    /// A new request of `sub` for `app_rw` on `orders-db`, for `minutes`: its id.
    async fn request(&self, sub: &str, minutes: u64) -> String {
        id(&self.create(sub, ask(minutes)).await)
    }

    /// A decision that must succeed: the request after it.
    async fn decided(&self, sub: &str, id: &str, what: &str) -> Value {
        let res = self.decide(sub, id, what).await;
        assert_eq!(res.status(), 200, "{what} by {sub}");
        res.json().await.unwrap()
    }

    async fn get(&self, path: &str, sub: &str) -> Value {
        let res = self.call("GET", path, sub, None).await;
        assert_eq!(res.status(), 200, "GET {path} as {sub}");
        res.json().await.unwrap()
    }

    async fn token(&self, sub: &str, db_user: &str) -> reqwest::Response {
        let body = json!({"target": "orders-db", "db_user": db_user});
        self.call("POST", "/v1/tokens", sub, Some(body)).await
    }
}

/// Valid for a week of the manual clock from `T0`: tests move it by hours.
fn jwt(key: &RsaKey, idp: &TestIdp, sub: &str) -> String {
    idp.jwt(key, sub, T0, 7 * 86_400, json!({}))
}

async fn call(
    app: &TestApp,
    jwt: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let url = format!("{}{path}", app.base);
    let req = match method {
        "POST" => app.client.post(url).json(&body.unwrap_or(json!({}))),
        _ => app.client.get(url),
    };
    req.bearer_auth(jwt).send().await.unwrap()
}

pub fn id(request: &Value) -> String {
    request["id"].as_str().unwrap().to_owned()
}

pub fn ask(minutes: u64) -> Value {
    json!({"target": "orders-db", "db_user": "app_rw", "duration_minutes": minutes, "reason": "INC-42: fix a stuck order"})
}

#[tokio::test]
async fn a_requester_is_served_only_between_approval_and_expiry() {
    let s = setup_with(1, |t| t).await;
    let refused = problem(s.token("dev-ann", "app_rw").await, 403).await;
    assert_eq!(
        refused["type"],
        "urn:rds-token-broker:problem:access-request-required"
    );
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("access request --target orders-db --db-user app_rw")
    );
    // A standing grant of the same caller still works as before, without a request.
    assert_eq!(s.token("dev-ann", "app_ro").await.status(), 200);

    let r = s.create("dev-ann", ask(30)).await;
    assert_eq!(r["state"], "pending");
    assert_eq!(
        r["requester"],
        json!({"issuer": "corp", "subject": "dev-ann"})
    );
    let id = r["id"].as_str().unwrap().to_owned();
    problem(s.token("dev-ann", "app_rw").await, 403).await;

    // Self-approval and approvals by callers who are not approvers are refused.
    let own = problem(s.decide("dev-ann", &id, "approve").await, 403).await;
    assert!(own["detail"].as_str().unwrap().contains("your own"));
    let stranger = problem(s.decide("ops-olga", &id, "approve").await, 403).await;
    assert!(
        stranger["detail"]
            .as_str()
            .unwrap()
            .contains("not an approver")
    );
    // A second request for the same thing while one is open: 409.
    let dup = s
        .call("POST", "/v1/access-requests", "dev-ann", Some(ask(30)))
        .await;
    problem(dup, 409).await;

    let res = s.decide("lead-lou", &id, "approve").await;
    assert_eq!(res.status(), 200);
    let approved: Value = res.json().await.unwrap();
    assert_eq!(approved["state"], "approved");
    assert_eq!(approved["approvals"][0]["subject"], "lead-lou");

    let res = s.token("dev-ann", "app_rw").await;
    assert_eq!(res.status(), 200);
    let token: Value = res.json().await.unwrap();
    assert_eq!(token["access_request_id"], id.as_str());
    // Another caller gets nothing from dev-ann's request.
    problem(s.token("dev-bob", "app_rw").await, 403).await;

    // 20 minutes later only 10 are left: the token is signed to end with the request.
    s.app.clock.advance(Duration::from_secs(20 * 60));
    let token: Value = s.token("dev-ann", "app_rw").await.json().await.unwrap();
    assert_eq!(token["expires_at"], approved["expires_at"]);
    assert!(
        token["token"]
            .as_str()
            .unwrap()
            .contains("X-Amz-Expires=600")
    );

    s.app.clock.advance(Duration::from_secs(10 * 60));
    problem(s.token("dev-ann", "app_rw").await, 403).await;
    let after: Value = s.get(&format!("/v1/access-requests/{id}"), "dev-ann").await;
    assert_eq!(after["state"], "expired");

    // The trail has every transition and the issuances, tied to the request.
    let events: Value = s
        .get(
            &format!("/v1/audit/events?access_request_id={id}"),
            "auditor",
        )
        .await;
    let outcomes: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    for o in [
        "access_requested",
        "access_approved",
        "issued",
        "access_expired",
    ] {
        assert!(outcomes.contains(&o), "{o} missing from {outcomes:?}");
    }
    let verify: Value = s.get("/v1/audit/verify", "auditor").await;
    assert_eq!(verify["ok"], true, "{verify}");
}

#[tokio::test]
async fn two_approvals_must_come_from_two_approvers_and_a_denial_ends_a_request() {
    let s = setup_with(2, |t| t).await;
    let id = s.request("dev-ann", 15).await;
    let first: Value = s.decided("lead-lou", &id, "approve").await;
    assert_eq!(first["state"], "pending");
    problem(s.decide("lead-lou", &id, "approve").await, 409).await;
    problem(s.token("dev-ann", "app_rw").await, 403).await;
    // An approver whose own subject matches the grant may approve others' requests.
    let second: Value = s.decided("dev-bob", &id, "approve").await;
    assert_eq!(second["state"], "approved");
    assert_eq!(second["approvals"].as_array().unwrap().len(), 2);
    assert_eq!(s.token("dev-ann", "app_rw").await.status(), 200);

    let other = s.request("dev-bob", 15).await;
    let denied: Value = s.decided("lead-lou", &other, "deny").await;
    assert_eq!(denied["state"], "denied");
    problem(s.decide("dev-ann", &other, "approve").await, 409).await;
    problem(s.token("dev-bob", "app_rw").await, 403).await;

    // to_review lists what the caller may still approve; mine lists the caller's own.
    let third = s.request("dev-cat", 15).await;
    let review: Value = s
        .get("/v1/access-requests?to_review=true", "lead-lou")
        .await;
    let ids: Vec<&str> = review["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [third.as_str()]);
    let mine: Value = s.get("/v1/access-requests?mine=true", "dev-ann").await;
    assert_eq!(mine["requests"].as_array().unwrap().len(), 1);
    // Someone who is neither requester, approver nor auditor sees none of them.
    let res = s
        .call(
            "GET",
            &format!("/v1/access-requests/{id}"),
            "ops-olga",
            None,
        )
        .await;
    problem(res, 404).await;
}

#[tokio::test]
async fn revocation_stops_new_tokens_and_lists_those_issued() {
    let s = setup_with(1, |t| t).await;
    let id = s.request("dev-ann", 60).await;
    s.decide("lead-lou", &id, "approve").await;
    let issued: Value = s.token("dev-ann", "app_rw").await.json().await.unwrap();
    let res = s.decide("dev-ann", &id, "revoke").await;
    assert_eq!(res.status(), 200);
    let revoked: Value = res.json().await.unwrap();
    assert_eq!(revoked["request"]["state"], "revoked");
    assert_eq!(
        revoked["tokens_issued"][0]["issuance_id"],
        issued["issuance_id"]
    );
    assert_eq!(
        revoked["tokens_issued"][0]["expires_at"],
        issued["expires_at"]
    );
    assert!(revoked["note"].as_str().unwrap().contains("stay valid"));
    problem(s.token("dev-ann", "app_rw").await, 403).await;
    problem(s.decide("lead-lou", &id, "revoke").await, 409).await;
}

#[tokio::test]
async fn a_request_nobody_answers_expires_after_a_day_in_the_trail_without_being_read() {
    let s = setup_with(1, |t| t).await;
    let id = s.request("dev-ann", 30).await;
    s.app.clock.advance(Duration::from_secs(24 * 3600 + 1));
    // Nobody reads the request: the sweep alone records its expiry.
    let path = format!("/v1/audit/events?access_request_id={id}&outcome=access_expired");
    let expired = eventually(Duration::from_secs(20), || {
        let (app, jwt, path) = (&s.app, s.jwt("auditor"), path.clone());
        async move {
            let body: Value = call(app, &jwt, "GET", &path, None)
                .await
                .json()
                .await
                .unwrap();
            body["events"].as_array().unwrap().first().cloned()
        }
    })
    .await;
    assert_eq!(expired["reason"], "expired: no decision within 24 hours");
    assert_eq!(expired["subject"], "dev-ann");
    let r = s.get(&format!("/v1/access-requests/{id}"), "dev-ann").await;
    assert_eq!(r["state"], "expired");
    assert_eq!(r["decided_by"], "broker");
    // The requester may ask again; the expired request no longer counts as open.
    let again = s.request("dev-ann", 30).await;
    problem(s.decide("lead-lou", &id, "approve").await, 409).await;
    // Nor does an approved one whose window just ended, swept or not.
    s.decided("lead-lou", &again, "approve").await;
    s.app.clock.advance(Duration::from_secs(30 * 60));
    let third = s.request("dev-ann", 30).await;
    let before = s
        .get(&format!("/v1/access-requests/{again}"), "dev-ann")
        .await;
    assert_eq!(before["state"], "expired");
    assert_ne!(third, again);
}

/// A loopback webhook receiver: every body and its signature header.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<(Value, String, bool)>>>);

async fn start_receiver() -> (String, Receiver) {
    let got = Receiver::default();
    let state = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                let sig = headers
                    .get("x-rds-token-broker-signature")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
                mac.update(&body);
                let valid = sig == format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
                let json: Value = serde_json::from_slice(&body).unwrap();
                state.0.lock().unwrap().push((json, sig, valid));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

#[tokio::test]
async fn break_glass_is_served_at_once_and_every_transition_is_notified_signed() {
    let (url, got) = start_receiver().await;
    let s = setup_with(1, |t| {
        t.set("notifications", "webhook_url", url.as_str()).set(
            "notifications",
            "webhook_secret",
            SECRET,
        )
    })
    .await;
    // Break-glass needs a reason.
    let res = s
        .call(
            "POST",
            "/v1/access-requests",
            "ops-olga",
            Some(json!({"target": "orders-db", "db_user": "admin", "duration_minutes": 30})),
        )
        .await;
    problem(res, 400).await;
    let bg = s
        .create("ops-olga", json!({"target": "orders-db", "db_user": "admin", "duration_minutes": 30, "reason": "prod down"}))
        .await;
    assert_eq!(bg["state"], "approved");
    assert_eq!(bg["break_glass"], true);
    let token: Value = s.token("ops-olga", "admin").await.json().await.unwrap();
    assert_eq!(token["access_request_id"], bg["id"]);

    let id = s.request("dev-ann", 30).await;
    s.decide("lead-lou", &id, "approve").await;
    s.decide("lead-lou", &id, "revoke").await;
    let other = s.request("dev-bob", 30).await;
    s.decide("lead-lou", &other, "deny").await;

    let seen = eventually(Duration::from_secs(10), || {
        let got = got.clone();
        async move {
            let seen = got.0.lock().unwrap().clone();
            (seen.len() >= 6).then_some(seen)
        }
    })
    .await;
    let events: Vec<&str> = seen
        .iter()
        .map(|(b, _, _)| b["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "break_glass",
            "access_requested",
            "access_approved",
            "access_revoked",
            "access_requested",
            "access_denied"
        ]
    );
    for (body, sig, valid) in &seen {
        assert!(valid, "bad signature {sig} for {body}");
        assert!(body["text"].as_str().unwrap().contains("orders-db"));
    }
    assert!(seen[0].0["text"].as_str().unwrap().contains("BREAK-GLASS"));
}

/// Two in-process brokers on one PostgreSQL, each with its own manual clock, both
/// notifying the same receiver.
struct Fleet {
    a: TestApp,
    b: TestApp,
    key: RsaKey,
    idp: TestIdp,
    _db: TempDb,
}

impl Fleet {
    async fn start(hook: &str) -> Self {
        let db = TempDb::create().await;
        let key = RsaKey::generate("k1");
        let idp = TestIdp::start(vec![key.jwk()]).await;
        let toml = || {
            config(&idp, 1)
                .audit_postgres(db.url())
                .set("notifications", "webhook_url", hook)
                .set("notifications", "webhook_secret", SECRET)
        };
        let a = TestApp::spawn_toml(toml()).await;
        let b = TestApp::spawn_toml(toml()).await;
        Self {
            a,
            b,
            key,
            idp,
            _db: db,
        }
    }

    async fn call(
        &self,
        app: &TestApp,
        sub: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        call(app, &jwt(&self.key, &self.idp, sub), method, path, body).await
    }
}

#[tokio::test]
async fn two_brokers_sharing_postgresql_see_one_request_state() {
    let (hook, got) = start_receiver().await;
    let f = Fleet::start(&hook).await;
    // The same request made on both at once: one is made, the other is refused.
    let (ra, rb) = tokio::join!(
        f.call(
            &f.a,
            "dev-ann",
            "POST",
            "/v1/access-requests",
            Some(ask(30))
        ),
        f.call(
            &f.b,
            "dev-ann",
            "POST",
            "/v1/access-requests",
            Some(ask(30))
        ),
    );
    let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409]);
    let made = if ra.status() == 201 { ra } else { rb };
    let id = id(&made.json().await.unwrap());

    let path = format!("/v1/access-requests/{id}/approve");
    let res = f
        .call(&f.b, "lead-lou", "POST", &path, Some(json!({})))
        .await;
    assert_eq!(res.status(), 200);
    // The same approval, raced on the other replica, is refused there.
    problem(
        f.call(&f.a, "lead-lou", "POST", &path, Some(json!({})))
            .await,
        409,
    )
    .await;
    let seen: Value = f
        .call(
            &f.a,
            "dev-ann",
            "GET",
            &format!("/v1/access-requests/{id}"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen["state"], "approved");
    let body = json!({"target": "orders-db", "db_user": "app_rw"});
    let res = f
        .call(&f.a, "dev-ann", "POST", "/v1/tokens", Some(body))
        .await;
    assert_eq!(res.status(), 200);

    // Time passes on both replicas; nobody asks. Their sweeps expire the request, and
    // exactly one of them records and notifies it.
    for app in [&f.a, &f.b] {
        app.clock.advance(Duration::from_secs(31 * 60));
    }
    let expired = eventually(Duration::from_secs(20), || {
        let got = got.clone();
        async move {
            let seen = got.0.lock().unwrap().clone();
            seen.into_iter()
                .find(|(b, _, _)| b["event"] == "access_expired")
        }
    })
    .await;
    assert_eq!(expired.0["request"]["id"], id.as_str());
    assert_eq!(expired.0["request"]["state"], "expired");
    assert_eq!(expired.0["actor"], "broker");
    assert!(expired.2, "bad signature");
    // Both sweep again, now: still one expiry in the trail and one notification.
    for app in [&f.a, &f.b] {
        let config = app.state.generation().config.clone();
        let access = app.state.broker.access().unwrap();
        access.expire_due(&config).await.unwrap();
    }
    let events: Value = f
        .call(
            &f.b,
            "auditor",
            "GET",
            &format!("/v1/audit/events?access_request_id={id}&outcome=access_expired"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["subject"], "dev-ann");
    assert_eq!(events[0]["reason"], "expired: the access window ended");
    let notified = got
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(b, _, _)| b["event"] == "access_expired")
        .count();
    assert_eq!(notified, 1);
}

#[tokio::test]
async fn request_grants_are_checked_with_every_other_config_error() {
    let text = r#"
[server]
listen = "127.0.0.1:0"
[audit]
enabled = false
[notifications]
webhook_url = "http://hooks.example.com/x"
[[issuers]]
name = "corp"
issuer = "https://idp.example.com"
audiences = ["rds-token-broker"]
[[targets]]
name = "orders-db"
host = "orders.abc.eu-west-1.rds.amazonaws.com"
engine = "postgres"
db_users = ["app_rw"]
[[grants]]
issuer = "corp"
subject = "*"
targets = ["orders-db"]
db_users = ["app_rw"]
access = "request"
min_approvals = 0
[[grants]]
issuer = "corp"
subject = "*"
targets = ["orders-db"]
db_users = ["app_rw"]
approvers = [{ issuer = "nobody", subject = "x" }]
[[grants]]
issuer = "corp"
subject = "*"
targets = ["orders-db"]
db_users = ["app_rw"]
access = "break_glass"
require_reason = false
"#;
    let e = rds_token_broker::config::load_str(text).unwrap_err();
    let keys: Vec<(&str, &str)> = e
        .errors
        .iter()
        .map(|e| (e.key.as_str(), e.message.as_str()))
        .collect();
    let has = |k: &str, m: &str| keys.iter().any(|(kk, mm)| *kk == k && mm.contains(m));
    assert!(has("grants[0].min_approvals", "between 1 and"), "{keys:?}");
    assert!(
        has("grants[0].approvers", "at least one approver"),
        "{keys:?}"
    );
    assert!(has("grants[0].access", "needs [audit]"), "{keys:?}");
    assert!(has("grants[1].approvers", "only for access"), "{keys:?}");
    assert!(
        has("grants[2].require_reason", "always needs a reason"),
        "{keys:?}"
    );
    assert!(
        has("notifications.webhook_url", "plain http://"),
        "{keys:?}"
    );
}

/// The real binary as a client: `access request`, `access approve`, and the hint `token`
/// prints before approval.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_requests_approves_and_says_when_a_request_is_needed() {
    let s = setup_with(1, |t| t).await;
    let home = tempfile::tempdir().unwrap();
    let jwt_file = |sub: &str| {
        let p = home.path().join(format!("{sub}.jwt"));
        std::fs::write(&p, s.jwt(sub)).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let (ann, lou) = (jwt_file("dev-ann"), jwt_file("lead-lou"));
    let run = |args: Vec<&str>| {
        let mut cmd = crate::support::binary::command(home.path());
        cmd.args(&args).arg("--broker").arg(&s.app.base);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let out = run(vec![
        "token",
        "--target",
        "orders-db",
        "--db-user",
        "app_rw",
        "--jwt-file",
        &ann,
    ])
    .await
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("access request --target orders-db --db-user app_rw"),
        "{err}"
    );

    let out = run(vec![
        "access",
        "request",
        "--target",
        "orders-db",
        "--db-user",
        "app_rw",
        "--for",
        "30m",
        "--reason",
        "INC-7",
        "--jwt-file",
        &ann,
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let out = run(vec![
        "access",
        "approve",
        &id,
        "--comment",
        "go",
        "--jwt-file",
        &lou,
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("approved"));
    let out = run(vec![
        "token",
        "--target",
        "orders-db",
        "--db-user",
        "app_rw",
        "--jwt-file",
        &ann,
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
