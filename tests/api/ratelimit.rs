//! Pacing: the targets' budgets of new tokens (local GCRA on the broker's clock, and
//! fleet-wide in the real Redis on this machine), the per-caller request limit,
//! `max_wait_ms`, refresh-ahead under a spent budget, and `share_tokens`.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use reqwest::Response;
use serde_json::{Value, json};

use crate::support::app::{TestApp, problem};
use crate::support::binary::RunningBroker;
use crate::support::config::{Auditor, BrokerToml, Grant, Target};
use crate::support::eventually;
use crate::support::idp::{RsaKey, TestIdp, rs256};
use crate::support::moto::Moto;
use crate::support::redis::Redis;

/// u1..u6 for the small tests, n1..n300 for the load-shaped ones.
fn db_users() -> Vec<String> {
    (1..=6)
        .map(|i| format!("u{i}"))
        .chain((1..=300).map(|i| format!("n{i}")))
        .collect()
}

/// A JWT-authenticated broker: subjects `alice` and `bob` may use `orders-db` as u1..u6;
/// auditors read the trail.
struct Paced {
    app: TestApp,
    key: RsaKey,
    idp: TestIdp,
    _dir: tempfile::TempDir,
}

impl Paced {
    /// With `orders-db` changed by `target` (its budget) and the rest by `configure`
    /// (`[rate_limit]`, `[aws]`).
    async fn start(
        target: impl FnOnce(Target) -> Target,
        configure: impl FnOnce(BrokerToml) -> BrokerToml,
    ) -> Self {
        let key = RsaKey::generate("k1");
        let idp = TestIdp::start(vec![key.jwk()]).await;
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerToml::new()
            .audit_sqlite(dir.path())
            .issuer(&idp)
            .target(target(Target::postgres("orders-db").db_users(db_users())))
            .grant(
                Grant::new("corp", "*")
                    .targets(["orders-db"])
                    .db_users(db_users()),
            )
            .auditor(Auditor::new("corp", "auditor"));
        let app = TestApp::spawn_toml(configure(config)).await;
        Self {
            app,
            key,
            idp,
            _dir: dir,
        }
    }

    fn jwt(&self, sub: &str) -> String {
        rs256(
            &self.key,
            // Valid on the manual clock and on the real one (moto tests).
            &json!({"iss": self.idp.issuer, "sub": sub, "aud": "rds-token-broker", "exp": 4_000_000_000u64}),
        )
    }

    async fn ask(&self, sub: &str, db_user: &str) -> Response {
        self.app
            .client
            .post(format!("{}/v1/tokens", self.app.base))
            .bearer_auth(self.jwt(sub))
            .json(&json!({"target": "orders-db", "db_user": db_user}))
            .send()
            .await
            .unwrap()
    }

    async fn status(&self, sub: &str, db_user: &str) -> u16 {
        self.ask(sub, db_user).await.status().as_u16()
    }

    async fn events(&self, query: &str) -> Vec<Value> {
        let v: Value = self
            .app
            .client
            .get(format!("{}/v1/audit/events?{query}", self.app.base))
            .bearer_auth(self.jwt("auditor"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["events"].as_array().unwrap().clone()
    }
}

async fn throttled(res: Response, limit: &str, retry_after: &str) -> Value {
    assert_eq!(
        res.headers().get("retry-after").unwrap().to_str().unwrap(),
        retry_after
    );
    let body = problem(res, 429).await;
    assert_eq!(body["limit"], limit);
    assert_eq!(body["type"], "urn:rds-token-broker:problem:throttled");
    body
}

#[tokio::test]
async fn new_tokens_are_paced_per_target_and_cache_hits_are_free() {
    let p = Paced::start(|t| t.budget(2, 3), |c| c).await;
    for u in ["u1", "u2", "u3"] {
        assert_eq!(p.status("alice", u).await, 200);
    }
    // The burst is spent: a fourth distinct token must wait half a second (rounded up).
    let body = throttled(p.ask("alice", "u4").await, "target", "1").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("max_connections_per_second"),
        "{body}"
    );
    // Tokens already minted are served from the cache, as often as asked.
    for _ in 0..20 {
        assert_eq!(p.status("alice", "u1").await, 200);
    }
    assert_eq!(p.app.minted(), 3);
    // Time refills the budget at the target's rate.
    p.app.clock.advance(Duration::from_millis(500));
    assert_eq!(p.status("alice", "u4").await, 200);
    assert_eq!(p.status("alice", "u5").await, 429);
    p.app.clock.advance(Duration::from_millis(1000));
    assert_eq!(p.status("alice", "u5").await, 200);
    assert_eq!(p.status("alice", "u6").await, 200);
    assert_eq!(p.app.minted(), 6);

    // Each refusal is a `throttled` event naming the limit; the second came within a
    // second of the first, so it is folded into one event with `count` (written when the
    // window closes).
    // The coalescer's flush runs on a real-time tick: wait for it (up to 10 s on a busy
    // machine) rather than a fixed pause.
    p.app.clock.advance(Duration::from_secs(2));
    let p_ref = &p;
    let events = eventually(Duration::from_secs(10), || async move {
        let events = p_ref.events("outcome=throttled").await;
        let total: i64 = events.iter().map(|e| e["count"].as_i64().unwrap()).sum();
        (total >= 2).then_some(events)
    })
    .await;
    let total: i64 = events.iter().map(|e| e["count"].as_i64().unwrap()).sum();
    assert_eq!(total, 2, "{events:?}");
    assert!(events.iter().all(|e| e["subject"] == "alice"
        && e["target"] == "orders-db"
        && e["reason"].as_str().unwrap().contains("target rate limit")));
}

#[tokio::test]
async fn each_caller_has_a_request_limit_counting_cache_hits() {
    let p = Paced::start(|t| t, |c| c.rate_limit("per_principal_per_second", 5)).await;
    for _ in 0..5 {
        assert_eq!(p.status("alice", "u1").await, 200);
    }
    let body = throttled(p.ask("alice", "u1").await, "principal", "1").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("per_principal_per_second")
    );
    // Another caller is not affected; alice is again after a second.
    assert_eq!(p.status("bob", "u1").await, 200);
    p.app.clock.advance(Duration::from_secs(1));
    assert_eq!(p.status("alice", "u1").await, 200);
    let events = p.events("outcome=throttled").await;
    assert_eq!(events.len(), 1);
    assert!(events[0]["reason"].as_str().unwrap().contains("principal"));
}

#[tokio::test]
async fn a_request_may_wait_up_to_max_wait_for_a_slot() {
    let p = Paced::start(|t| t.budget(1, 1), |c| c.rate_limit("max_wait_ms", 3000)).await;
    assert_eq!(p.status("alice", "u1").await, 200);
    // The next new token needs a second of the broker's clock: the request waits for it.
    let waiting = {
        let (c, url, jwt) = (
            p.app.client.clone(),
            format!("{}/v1/tokens", p.app.base),
            p.jwt("alice"),
        );
        tokio::spawn(async move {
            c.post(url)
                .bearer_auth(jwt)
                .json(&json!({"target": "orders-db", "db_user": "u2"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    // Not a wait for a condition: the request must still be waiting after a while.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the request must wait for a slot");
    p.app.clock.advance(Duration::from_secs(1));
    assert_eq!(waiting.await.unwrap(), 200);

    // A wait longer than max_wait_ms is refused at once.
    let q = Paced::start(|t| t.budget(1, 1), |c| c.rate_limit("max_wait_ms", 200)).await;
    assert_eq!(q.status("alice", "u1").await, 200);
    let started = std::time::Instant::now();
    throttled(q.ask("alice", "u2").await, "target", "1").await;
    assert!(started.elapsed() < Duration::from_millis(900));
}

#[tokio::test]
async fn refresh_ahead_under_a_spent_budget_keeps_serving_and_retries() {
    let p = Paced::start(|t| t.budget(1, 1), |c| c).await;
    let first: Value = p.ask("alice", "u1").await.json().await.unwrap();
    // Into the refresh window (default: the last 60 s before min_remaining, 300 s).
    p.app.clock.advance(Duration::from_secs(900 - 300 - 30));
    // The slot went to another new token just before.
    assert_eq!(p.status("alice", "u2").await, 200);
    let hit: Value = p.ask("alice", "u1").await.json().await.unwrap();
    assert_eq!(
        hit["token"], first["token"],
        "the current token is still served"
    );
    // Not a wait for a condition: a forced refresh would have minted within this time.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(p.app.minted(), 2, "the refresh was deferred, not forced");
    // Once a slot is free, the next request's refresh goes through.
    p.app.clock.advance(Duration::from_secs(1));
    let _ = p.ask("alice", "u1").await;
    let app = &p.app;
    eventually(Duration::from_secs(2), || async move { app.minted() == 3 }).await;
    let fresh: Value = p.ask("alice", "u1").await.json().await.unwrap();
    assert_ne!(fresh["token"], first["token"]);
}

#[tokio::test]
async fn share_tokens_gives_every_caller_one_token_and_still_audits_each() {
    let moto = Moto::start().await;
    for share in [false, true] {
        let p = Paced::start(
            |t| {
                t.role_arn("arn:aws:iam::123456789012:role/orders-db-connect")
                    .share_tokens(share)
            },
            |c| {
                c.aws("sts_endpoint", moto.url())
                    .aws("source_identity", true)
            },
        )
        .await;
        // moto's credentials expire in real time.
        p.app.clock.set(SystemTime::now());
        let mut tokens = Vec::new();
        for sub in ["alice", "bob", "carol"] {
            let res = p.ask(sub, "u1").await;
            assert_eq!(res.status(), 200);
            let v: Value = res.json().await.unwrap();
            tokens.push(v["token"].as_str().unwrap().to_owned());
        }
        tokens.sort();
        tokens.dedup();
        let issued = p.events("outcome=issued").await;
        assert_eq!(issued.len(), 3, "each caller's issuance is its own event");
        let mut subjects: Vec<&str> = issued
            .iter()
            .map(|e| e["subject"].as_str().unwrap())
            .collect();
        subjects.sort_unstable();
        assert_eq!(subjects, ["alice", "bob", "carol"]);
        if share {
            assert_eq!(tokens.len(), 1, "one shared token");
            assert_eq!(p.app.minted(), 1);
            for e in &issued {
                let name = e["session_name"].as_str().unwrap();
                assert!(name.starts_with("shared@orders-db-u1-"), "{name}");
            }
        } else {
            assert_eq!(tokens.len(), 3, "one token per caller");
        }
    }
    let calls = moto.assume_role_calls().await;
    assert_eq!(
        calls.len(),
        4,
        "three per-caller sessions, then one shared: {calls:?}"
    );
    let shared = &calls[3];
    assert!(
        !shared.contains_key("SourceIdentity"),
        "a shared session is no one's identity: {shared:?}"
    );
}

/// Keys under a prefix of their own on the tests' Redis (shared by the run), deleted
/// afterwards.
struct RedisPrefix {
    key: String,
    redis: &'static Redis,
}

impl RedisPrefix {
    async fn new() -> Self {
        Self {
            key: format!(
                "rtb-test-{}-{}:",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ),
            redis: crate::support::redis::shared().await,
        }
    }

    async fn keys(&self) -> Vec<String> {
        let client = redis::Client::open(self.redis.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("KEYS")
            .arg(format!("{}*", self.key))
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    async fn clean(&self) {
        let keys = self.keys().await;
        if keys.is_empty() {
            return;
        }
        let client = redis::Client::open(self.redis.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: i64 = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn replicas_share_one_budget_through_redis() {
    let prefix = RedisPrefix::new().await;
    let fleet = |c: BrokerToml| {
        c.rate_limit("redis_url", prefix.redis.url())
            .rate_limit("redis_key_prefix", prefix.key.as_str())
            .rate_limit("expected_replicas", 2)
    };
    let a = Paced::start(|t| t.budget(1, 3), fleet).await;
    let b = Paced::start(|t| t.budget(1, 3), fleet).await;
    // Six distinct new tokens, alternating replicas: alone, each could mint three.
    let mut ok = 0;
    for (p, u) in [
        (&a, "u1"),
        (&b, "u2"),
        (&a, "u3"),
        (&b, "u4"),
        (&a, "u5"),
        (&b, "u6"),
    ] {
        match p.status("alice", u).await {
            200 => ok += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    // Three from the burst (a fourth only if a real second passed: Redis keeps time).
    assert!((3..=4).contains(&ok), "{ok} new tokens across the fleet");
    assert_eq!(
        prefix.keys().await,
        [format!("{}target:orders-db", prefix.key)]
    );
    assert!(!a.app.state.broker.pacer().in_fallback());
    prefix.clean().await;
}

/// A TCP relay to the tests' Redis that can be switched off: then it refuses new
/// connections and cuts the ones it carries, which is what brokers see when Redis stops
/// (without stopping the Redis other tests share).
struct Switch {
    port: u16,
    up: tokio::sync::watch::Sender<bool>,
}

impl Switch {
    async fn start(up: bool) -> Self {
        let redis = format!("127.0.0.1:{}", crate::support::redis::shared().await.port);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::watch::channel(up);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*rx.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut down = rx.clone();
                let redis = redis.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&redis).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { port, up: tx }
    }

    fn set(&self, up: bool) {
        let _ = self.up.send(up);
    }
}

#[tokio::test]
async fn without_redis_each_replica_falls_back_to_its_share_and_returns() {
    let prefix = RedisPrefix::new().await;
    let switch = Switch::start(false).await;
    let p = Paced::start(
        |t| t.budget(4, 4),
        |c| {
            c.rate_limit("redis_url", format!("redis://127.0.0.1:{}", switch.port))
                .rate_limit("redis_key_prefix", prefix.key.as_str())
                .rate_limit("expected_replicas", 2)
        },
    )
    .await;
    let pacer = p.app.state.broker.pacer();
    // Redis is down: no 5xx, a local budget of 4 / 2 = 2.
    assert_eq!(p.status("alice", "u1").await, 200);
    assert!(pacer.in_fallback());
    assert_eq!(p.status("alice", "u2").await, 200);
    throttled(p.ask("alice", "u3").await, "target", "1").await;
    assert_eq!(pacer.stats.redis_granted.load(Ordering::Relaxed), 0);

    // Redis is back: after the retry interval the broker asks it again.
    switch.set(true);
    p.app.clock.advance(Duration::from_secs(2));
    assert_eq!(p.status("alice", "u3").await, 200);
    assert!(!pacer.in_fallback());
    assert_eq!(pacer.stats.redis_granted.load(Ordering::Relaxed), 1);
    assert_eq!(prefix.keys().await.len(), 1);
    prefix.clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_says_which_limit_and_how_long_to_wait() {
    let p = Paced::start(|t| t, |c| c.rate_limit("per_principal_per_second", 1)).await;
    let run = || {
        tokio::process::Command::new(crate::support::binary::BIN)
            .env_clear()
            .env("RDS_TOKEN_BROKER_JWT", p.jwt("alice"))
            .env("RDS_TOKEN_BROKER_K8S_TOKEN_FILE", "/nonexistent")
            .args([
                "token",
                "--broker",
                &p.app.base,
                "--target",
                "orders-db",
                "--db-user",
                "u1",
            ])
            .output()
    };
    assert!(run().await.unwrap().status.success());
    let out = run().await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: throttled by the principal limit: too many requests"),
        "{err}"
    );
    assert!(err.trim_end().ends_with("Retry in 1 s."), "{err}");
}

#[tokio::test]
async fn at_three_times_the_rate_for_three_seconds_new_tokens_follow_the_budget() {
    let p = Paced::start(|t| t.budget(10, 5), |c| c).await;
    // 90 distinct callers, each needing a new token, evenly over 3 s of the broker's clock.
    let mut issued = 0;
    let mut last_refused = None;
    for i in 1..=90 {
        p.app.clock.advance(Duration::from_micros(33_334));
        let (who, user) = (format!("caller-{i}"), format!("n{i}"));
        let res = p.ask(&who, &user).await;
        match res.status().as_u16() {
            200 => issued += 1,
            429 => {
                // The next slot is less than a second away: Retry-After rounds up to 1.
                throttled(res, "target", "1").await;
                last_refused = Some((who, user));
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let expected = 10.0 * 3.0 + 5.0;
    assert!(
        (f64::from(issued) - expected).abs() <= expected * 0.1,
        "{issued} new tokens, expected about {expected}"
    );
    assert_eq!(p.app.minted(), u64::try_from(issued).unwrap());
    // Retrying after Retry-After succeeds.
    let (who, user) = last_refused.unwrap();
    p.app.clock.advance(Duration::from_secs(1));
    assert_eq!(p.status(&who, &user).await, 200);
}

/// A real `serve` process in the fleet test: unauthenticated loopback, one target with a
/// small budget shared through the relay.
fn fleet_member(home: &std::path::Path, redis_port: u16, prefix: &str) -> RunningBroker {
    let users: Vec<String> = (1..=400).map(|i| format!("n{i}")).collect();
    let config = BrokerToml::new()
        .server("allow_unauthenticated", true)
        .server("metrics_on_listen", true)
        .rate_limit("redis_url", format!("redis://127.0.0.1:{redis_port}"))
        .rate_limit("redis_key_prefix", prefix)
        .rate_limit("expected_replicas", 2)
        .rate_limit("per_principal_per_second", 100_000)
        .target(Target::postgres("orders-db").db_users(users).budget(10, 5));
    RunningBroker::serve(home, &config)
}

/// Slots granted for `orders-db` by each source (`redis`, `fallback`), summed over both
/// brokers, from their `/metrics`.
async fn grants(brokers: [&RunningBroker; 2]) -> Grants {
    let client = crate::support::client();
    let mut sum = Grants::default();
    for b in brokers {
        let text = client
            .get(format!("{}/metrics", b.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let read = |source: &str| {
            let series = format!(
                "rds_token_broker_rate_limit_grants_total{{source=\"{source}\",target=\"orders-db\"}} "
            );
            let alt = format!(
                "rds_token_broker_rate_limit_grants_total{{target=\"orders-db\",source=\"{source}\"}} "
            );
            text.lines()
                .find_map(|l| l.strip_prefix(&series).or_else(|| l.strip_prefix(&alt)))
                .map_or(0, |v| v.trim().parse::<u32>().unwrap())
        };
        sum.redis += read("redis");
        sum.fallback += read("fallback");
    }
    sum
}

/// Counts of granted slots by who decided.
#[derive(Debug, Default, Clone, Copy)]
struct Grants {
    redis: u32,
    fallback: u32,
}

/// One measured run: new tokens issued, elapsed seconds, and the grants taken in it.
struct Run {
    issued: u32,
    secs: f64,
    redis: u32,
    fallback: u32,
}

/// [`drive`], with the grant counters read before and after: every token issued is a
/// grant, and the grants say whether it came from the fleet budget or a replica's share.
async fn measured(brokers: [&RunningBroker; 2], next_user: &mut u32, seconds: f64) -> Run {
    let before = grants(brokers).await;
    let (issued, secs) = drive(brokers, next_user, seconds).await;
    let after = grants(brokers).await;
    let run = Run {
        issued,
        secs,
        redis: after.redis - before.redis,
        fallback: after.fallback - before.fallback,
    };
    assert_eq!(
        run.issued,
        run.redis + run.fallback,
        "every new token is one grant ({} redis, {} fallback)",
        run.redis,
        run.fallback
    );
    run
}

/// New-token requests at 30/s for `seconds`, alternating brokers, each for the next unused
/// DB user; returns (issued, elapsed seconds). Any status but 200 and 429 fails the test.
async fn drive(brokers: [&RunningBroker; 2], next_user: &mut u32, seconds: f64) -> (u32, f64) {
    let client = crate::support::client();
    let started = std::time::Instant::now();
    let mut issued = 0;
    let mut i = 0u32;
    while started.elapsed().as_secs_f64() < seconds {
        let b = brokers[(i % 2) as usize];
        *next_user += 1;
        let res = client
            .post(format!("{}/v1/tokens", b.base))
            .json(&json!({"target": "orders-db", "db_user": format!("n{next_user}")}))
            .send()
            .await
            .unwrap();
        match res.status().as_u16() {
            200 => issued += 1,
            429 => {}
            other => panic!("status {other}: {}", res.text().await.unwrap()),
        }
        i += 1;
        // Pacing at 30 requests a second (the load's shape, not a wait for a condition).
        let due = Duration::from_secs_f64(f64::from(i) / 30.0);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    (issued, started.elapsed().as_secs_f64())
}

/// The fleet-wide budget held in `run`: the slots Redis granted are within 10% of one
/// budget (rate x seconds + burst). On a loaded machine a Redis answer can miss the 250 ms
/// limit; the replica then decides alone for a second, as documented, so the tokens it
/// granted that way are allowed on top, but no more than its share (5/s, burst 2) for
/// that second.
fn shared_budget_held(run: &Run, when: &str) {
    let expected = 10.0 * run.secs + 5.0;
    // While a replica decided alone, Redis saw only the other's requests: up to a second
    // of the budget may go unused.
    let slack = if run.fallback > 0 { 10.0 } else { 0.0 };
    let redis = f64::from(run.redis);
    assert!(
        redis <= expected * 1.1 && redis >= expected * 0.9 - slack,
        "{} tokens granted by Redis in {:.2} s {when}, expected about {expected:.1}",
        run.redis,
        run.secs
    );
    assert!(
        run.fallback <= 2 * 7,
        "{} tokens granted by a fallback share in {:.2} s {when}: more than two replicas' shares for one second",
        run.fallback,
        run.secs
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_broker_processes_share_one_budget_and_ride_out_redis_going_away() {
    let prefix = RedisPrefix::new().await;
    let switch = Switch::start(true).await;
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = fleet_member(home_a.path(), switch.port, &prefix.key);
    let b = fleet_member(home_b.path(), switch.port, &prefix.key);
    let mut user = 0;

    // Shared: together within 10% of one budget (rate x seconds + burst).
    let run = measured([&a, &b], &mut user, 3.0).await;
    shared_budget_held(&run, "across two brokers");

    // Redis goes away: each falls back to its share, and nothing fails with 5xx.
    switch.set(false);
    let run = measured([&a, &b], &mut user, 2.0).await;
    let most = 2.0 * (5.0 * run.secs + 2.0);
    assert!(
        f64::from(run.issued) <= most * 1.1 && run.fallback > 0,
        "{} new tokens ({} by fallback) in {:.2} s on the fallback, at most about {most:.1}",
        run.issued,
        run.fallback,
        run.secs
    );
    for broker in [&a, &b] {
        assert!(
            broker.stderr().contains("Redis does not answer"),
            "{}",
            broker.stderr()
        );
    }

    // Redis is back: the shared budget again (its bucket refilled meanwhile: a full burst).
    switch.set(true);
    // Both brokers must have found Redis again before the measured run: one that still
    // waits out its retry pause (or whose connection is still being re-made) would issue
    // from its local share as well, on top of the shared budget.
    let client = crate::support::client();
    eventually(Duration::from_secs(20), || {
        user += 1;
        let n = user;
        let client = client.clone();
        let (a, b) = (&a, &b);
        async move {
            for broker in [a, b] {
                let res = client
                    .post(format!("{}/v1/tokens", broker.base))
                    .json(&json!({"target": "orders-db", "db_user": format!("n{n}")}))
                    .send()
                    .await
                    .unwrap();
                assert!(
                    matches!(res.status().as_u16(), 200 | 429),
                    "{}",
                    res.status()
                );
            }
            [a, b]
                .iter()
                .all(|b| b.stderr().contains("Redis answers again"))
        }
    })
    .await;
    // Real time for Redis's bucket to refill (the point, not a wait for a condition).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let run = measured([&a, &b], &mut user, 3.0).await;
    shared_budget_held(&run, "after Redis returned");
    for broker in [&a, &b] {
        assert!(
            broker.stderr().contains("Redis answers again"),
            "{}",
            broker.stderr()
        );
    }
    prefix.clean().await;
}
