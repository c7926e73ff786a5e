//! Access requests against the real binary, with a real JWKS over loopback: two brokers
//! (separate processes) sharing one PostgreSQL. A requester is refused before approval,
//! served after, and refused again after revocation; the request made on one broker is
//! approved and revoked on the other. And a one-minute request that runs out on the real
//! clock.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::access_requests::{ask, config, id};
use crate::support::app::problem;
use crate::support::binary::RunningBroker;
use crate::support::idp::{RsaKey, TestIdp};
use crate::support::pg::TempDb;

struct Caller<'a> {
    jwt: String,
    client: &'a reqwest::Client,
}

impl Caller<'_> {
    async fn post(&self, broker: &RunningBroker, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", broker.base))
            .bearer_auth(&self.jwt)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, broker: &RunningBroker, path: &str) -> Value {
        let res = self
            .client
            .get(format!("{}{path}", broker.base))
            .bearer_auth(&self.jwt)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.unwrap()
    }

    async fn token(&self, broker: &RunningBroker) -> reqwest::Response {
        let body = json!({"target": "orders-db", "db_user": "app_rw"});
        self.post(broker, "/v1/tokens", body).await
    }
}

/// Callers with JWTs valid now: the binary reads the real clock.
fn callers<'a, const N: usize>(
    idp: &TestIdp,
    key: &RsaKey,
    client: &'a reqwest::Client,
    subjects: [&str; N],
) -> [Caller<'a>; N] {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    subjects.map(|sub| Caller {
        jwt: idp.jwt(key, sub, now, 600, json!({})),
        client,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn two_broker_processes_on_one_postgresql_share_requests_approvals_and_revocations() {
    let db = TempDb::create().await;
    let key = RsaKey::generate("k1");
    let idp = TestIdp::start(vec![key.jwk()]).await;
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let toml = config(&idp, 1).audit_postgres(db.url());
    let a = RunningBroker::serve(home_a.path(), &toml);
    let b = RunningBroker::serve(home_b.path(), &toml);
    let client = crate::support::client();
    let [ann, lou] = callers(&idp, &key, &client, ["dev-ann", "lead-lou"]);

    let refused = problem(ann.token(&a).await, 403).await;
    assert_eq!(
        refused["type"],
        "urn:rds-token-broker:problem:access-request-required"
    );
    let res = ann.post(&a, "/v1/access-requests", ask(30)).await;
    assert_eq!(res.status(), 201);
    let id = id(&res.json().await.unwrap());
    problem(ann.token(&a).await, 403).await;
    // B sees the request A made, as one to review.
    let review = lou.get(&b, "/v1/access-requests?to_review=true").await;
    assert_eq!(review["requests"][0]["id"], id.as_str());

    let res = lou
        .post(
            &b,
            &format!("/v1/access-requests/{id}/approve"),
            json!({"comment": "go"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = ann.token(&a).await;
    assert_eq!(res.status(), 200);
    let token: Value = res.json().await.unwrap();
    assert_eq!(token["access_request_id"], id.as_str());

    let res = lou
        .post(
            &b,
            &format!("/v1/access-requests/{id}/revoke"),
            json!({"comment": "done"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let revoked: Value = res.json().await.unwrap();
    assert_eq!(
        revoked["tokens_issued"][0]["issuance_id"],
        token["issuance_id"]
    );
    problem(ann.token(&a).await, 403).await;
    let seen = ann.get(&a, &format!("/v1/access-requests/{id}")).await;
    assert_eq!(seen["state"], "revoked");
    assert_eq!(seen["decided_by"], "corp/lead-lou");
}

/// The real clock, the shortest request (one minute): served after approval, then, once
/// the minute is over, the request reads as `expired` and a token is refused. About a
/// minute of the suite's time, spent in parallel with the other tests.
#[tokio::test(flavor = "multi_thread")]
async fn a_one_minute_request_ends_on_time_in_the_real_binary() {
    let home = tempfile::tempdir().unwrap();
    let key = RsaKey::generate("k1");
    let idp = TestIdp::start(vec![key.jwk()]).await;
    let broker = RunningBroker::serve(home.path(), &config(&idp, 1).audit_sqlite(home.path()));
    let client = crate::support::client();
    let [ann, lou] = callers(&idp, &key, &client, ["dev-ann", "lead-lou"]);
    let res = ann.post(&broker, "/v1/access-requests", ask(1)).await;
    assert_eq!(res.status(), 201);
    let id = id(&res.json().await.unwrap());
    let approve = format!("/v1/access-requests/{id}/approve");
    let res = lou.post(&broker, &approve, json!({"comment": "go"})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(ann.token(&broker).await.status(), 200);
    let path = format!("/v1/access-requests/{id}");
    crate::support::eventually(std::time::Duration::from_secs(120), || async {
        let seen = lou.get(&broker, &path).await;
        seen["state"] == "expired"
    })
    .await;
    let refused = problem(ann.token(&broker).await, 403).await;
    assert_eq!(
        refused["type"],
        "urn:rds-token-broker:problem:access-request-required"
    );
}
