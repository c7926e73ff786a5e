//! Nobody who can reach the broker can stop it: each reproduction of the adversarial
//! review (issue 17) that concerns the HTTP edge and the audit writer, against the real
//! binary over real sockets, and a bounded load test with hostile clients beside a
//! legitimate one.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::binary::RunningBroker;
use crate::support::config::{Auditor, BrokerToml, Grant, Target};
use crate::support::eventually;
use crate::support::idp::{RsaKey, file_issuer, rs256};
use crate::support::pg::TempDb;

const ISS: &str = "https://idp.hardening.invalid";

/// A real broker with a file issuer (`corp`), one target, a grant for `svc-*`, an auditor
/// `auditor`, an audit store and a high per-caller limit: [`Hardened::config`].
struct Hardened {
    broker: RunningBroker,
    key: RsaKey,
    client: reqwest::Client,
    addr: SocketAddr,
    metrics: Option<SocketAddr>,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Hardened {
    /// The configuration every test here starts from.
    fn config(dir: &std::path::Path, key: &RsaKey) -> BrokerToml {
        BrokerToml::new()
            .audit_sqlite(dir)
            .rate_limit("per_principal_per_second", 100_000)
            .issuer(file_issuer(dir, key, ISS))
            .target(Target::postgres("orders-db"))
            .grant(
                Grant::new("corp", "svc-*")
                    .targets(["orders-db"])
                    .db_users(["app"]),
            )
            .auditor(Auditor::new("corp", "auditor"))
    }

    /// The broker on [`Hardened::config`] changed by `configure`.
    async fn start(configure: impl FnOnce(BrokerToml) -> BrokerToml) -> Self {
        Self::start_inner(configure, false).await
    }

    /// Like [`Hardened::start`], with `/metrics` on a listener of its own.
    async fn with_metrics_listener(configure: impl FnOnce(BrokerToml) -> BrokerToml) -> Self {
        Self::start_inner(configure, true).await
    }

    async fn start_inner(
        configure: impl FnOnce(BrokerToml) -> BrokerToml,
        metrics_listen: bool,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = RsaKey::generate("k1");
        let mut config = configure(Self::config(dir.path(), &key));
        let metrics = metrics_listen.then(|| SocketAddr::from(([127, 0, 0, 1], free_port())));
        if let Some(m) = metrics {
            config = config.server("metrics_listen", m.to_string());
        }
        let broker = RunningBroker::serve(dir.path(), &config);
        let addr: SocketAddr = broker.base.trim_start_matches("http://").parse().unwrap();
        let h = Self {
            broker,
            key,
            client: crate::support::client(),
            addr,
            metrics,
            _dir: dir,
        };
        // The issuer's keys load in the background.
        let (hr, jwt) = (&h, &h.jwt("svc-orders"));
        eventually(Duration::from_secs(20), || async move {
            hr.token(jwt).await.0 == 200
        })
        .await;
        h
    }

    fn jwt(&self, sub: &str) -> String {
        rs256(
            &self.key,
            &json!({"iss": ISS, "sub": sub, "aud": "rds-token-broker", "exp": 4_000_000_000u64}),
        )
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POST /v1/tokens for `orders-db`: (status, body).
    async fn token(&self, bearer: &str) -> (u16, Value) {
        self.token_for(bearer, "orders-db").await
    }

    async fn token_for(&self, bearer: &str, target: &str) -> (u16, Value) {
        let res = self
            .client
            .post(self.url("/v1/tokens"))
            .bearer_auth(bearer)
            .json(&json!({ "target": target }))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn status(&self, path: &str) -> u16 {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Every event matching `query`, through the audit API as the auditor.
    async fn events(&self, query: &str) -> Vec<Value> {
        let res: Value = self
            .client
            .get(self.url(&format!("/v1/audit/events?limit=1000&{query}")))
            .bearer_auth(self.jwt("auditor"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        res["events"].as_array().cloned().unwrap_or_default()
    }

    async fn scrape(&self) -> String {
        let url = match self.metrics {
            Some(m) => format!("http://{m}/metrics"),
            None => self.url("/metrics"),
        };
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.broker.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

/// A TCP connection to `to` from the loopback address `from` (127.0.0.0/8: each address
/// is another client).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(to).await
}

/// A JWT no issuer signed, claiming `iss` and `sub`.
fn junk_jwt(iss: &str, sub: &str) -> String {
    use base64::Engine as _;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(&json!({"alg": "RS256", "kid": "k1"})),
        b64(&json!({"iss": iss, "sub": sub, "aud": "rds-token-broker", "exp": 4_000_000_000u64}))
    )
}

/// Reads until the server closes the connection (or `within` passes): whether it closed.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

// Item 1: methods never become metric labels.
#[tokio::test(flavor = "multi_thread")]
async fn junk_methods_create_no_metric_series() {
    let h = Hardened::with_metrics_listener(|c| c).await;
    for i in 0..200 {
        let method = format!("M{i}{}", "X".repeat(2000));
        let mut s = TcpStream::connect(h.addr).await.unwrap();
        let req = format!("{method} /v1/tokens HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
    }
    let text = h.scrape().await;
    assert!(!text.contains("XXXX"), "a raw method reached a label");
    assert!(
        text.contains(r#"method="other""#),
        "junk methods count as other"
    );
    assert!(text.len() < 200_000, "scrape is {} bytes", text.len());
}

// Item 2: a flood of slow bodies holds connections, never the API's or health's places.
#[tokio::test(flavor = "multi_thread")]
async fn slow_bodies_starve_neither_tokens_nor_health() {
    let h = Hardened::start(|c| {
        c.server("max_concurrent_requests", 32)
            .server("body_read_timeout_seconds", 30)
    })
    .await;
    let jwt = h.jwt("svc-orders");
    let mut slow = Vec::new();
    for i in 0..200 {
        let path = if i % 2 == 0 {
            "/v1/tokens"
        } else {
            "/ui/oidc/token"
        };
        let mut s = connect_from([127, 0, 0, 2], h.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             authorization: Bearer {jwt}\r\ncontent-length: 16000\r\n\r\n{{"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        slow.push(s);
    }
    // The attack itself: the slow bodies sit in the broker for a while (nothing to wait
    // for; they are meant to linger).
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..20 {
        assert_eq!(h.token(&jwt).await.0, 200);
        assert_eq!(h.status("/healthz").await, 200);
        assert_eq!(h.status("/readyz").await, 200);
    }
    drop(slow);
}

// Item 2 (body deadline) and item 4: slow bodies get 408, silent and trickling
// connections are closed, kept-alive connections are closed when idle, and a huge header
// block is refused.
#[tokio::test(flavor = "multi_thread")]
async fn slow_and_idle_connections_are_closed() {
    let h = Hardened::start(|c| {
        c.server("header_read_timeout_seconds", 1)
            .server("body_read_timeout_seconds", 1)
            .server("idle_timeout_seconds", 2)
    })
    .await;
    // A body that never completes: 408, then closed.
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    s.write_all(
        b"POST /v1/tokens HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut answer))
        .await
        .expect("answered within the body deadline")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);

    // Headers trickled one byte a second: closed by the header deadline.
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    let started = Instant::now();
    let mut closed = false;
    for b in b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaa" {
        if s.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a trickling client kept its connection");
    assert!(started.elapsed() < Duration::from_secs(8));

    // A connection that never sends anything, and one kept alive after a request.
    let mut silent = TcpStream::connect(h.addr).await.unwrap();
    let mut kept = TcpStream::connect(h.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut silent, Duration::from_secs(6)).await);
    assert!(closed_within(&mut kept, Duration::from_secs(6)).await);

    // A 500 KB header block is refused, not read.
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    let big = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(500_000)
    );
    let _ = s.write_all(big.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(!out.starts_with("HTTP/1.1 200"), "{out}");
    assert_eq!(h.status("/healthz").await, 200);
}

// Item 4: connections per client address are capped; other addresses still get in.
#[tokio::test(flavor = "multi_thread")]
async fn connections_per_address_are_capped() {
    let h = Hardened::start(|c| c.server("max_connections_per_ip", 20)).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut s = connect_from([127, 0, 0, 5], h.addr).await.unwrap();
        // Served once and kept alive: the broker counts it before the 21st arrives.
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        assert!(
            s.read(&mut buf).await.unwrap() > 0,
            "a held connection was refused"
        );
        held.push(s);
    }
    let mut extra = connect_from([127, 0, 0, 5], h.addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    assert!(
        closed_within(&mut extra, Duration::from_secs(3)).await,
        "the 21st connection from one address was served"
    );
    assert_eq!(h.status("/healthz").await, 200, "another address gets in");
    drop(held);
}

// Items 3 and 15: NUL, escape sequences and bidi overrides in a junk JWT's claims are
// cleaned before the store sees them; on PostgreSQL (whose TEXT refuses NUL) nobody
// else's request fails.
#[tokio::test(flavor = "multi_thread")]
async fn control_characters_in_claims_fail_nobody_on_postgres() {
    let db = TempDb::create().await;
    let h = Hardened::start(|c| {
        c.audit_postgres(db.url())
            .rate_limit("per_client_ip_per_second", 0)
    })
    .await;
    let jwt = h.jwt("svc-orders");
    let evil = junk_jwt("corp\u{0}", "svc-x\u{0}\u{1b}[31m\u{202e}gnp.exe");
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (h_client, url, bearer) = (
            h.client.clone(),
            h.url("/v1/tokens"),
            if i % 2 == 0 {
                evil.clone()
            } else {
                jwt.clone()
            },
        );
        tasks.push(tokio::spawn(async move {
            h_client
                .post(url)
                .bearer_auth(bearer)
                .json(&json!({"target": "orders-db"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    for (i, s) in statuses.iter().enumerate() {
        assert_eq!(*s, if i % 2 == 0 { 401 } else { 200 }, "{statuses:?}");
    }
    assert_eq!(h.status("/readyz").await, 200);
    let denied = h.events("outcome=denied").await;
    assert!(!denied.is_empty());
    for e in &denied {
        let reason = e["reason"].as_str().unwrap();
        assert!(
            !reason.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{reason:?}"
        );
    }
}

// Item 10: the claims of a refused JWT never pass for a configured issuer's caller.
#[tokio::test(flavor = "multi_thread")]
async fn unverified_claims_do_not_pass_for_a_configured_issuer() {
    let h = Hardened::start(|c| c).await;
    assert_eq!(h.token(&junk_jwt("corp", "svc-orders")).await.0, 401);
    let as_corp = h.events("issuer=corp&subject=svc-orders").await;
    assert!(
        as_corp.iter().all(|e| e["outcome"] == "issued"),
        "{as_corp:?}"
    );
    let denied = h.events("outcome=denied").await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(denied[0]["issuer"].is_null() && denied[0]["subject"].is_null());
    assert_eq!(denied[0]["auth_method"], "unverified");
    let reason = denied[0]["reason"].as_str().unwrap();
    assert!(reason.contains(r#"sub "svc-orders""#), "{reason}");
}

// Items 5 and 6: folding counts every refused request, and random claims do not defeat it.
#[tokio::test(flavor = "multi_thread")]
async fn floods_are_folded_and_fully_counted() {
    let h = Hardened::start(|c| c.rate_limit("per_client_ip_per_second", 0)).await;
    // 400 identical refusals over about 4 s.
    let same = junk_jwt("https://evil.invalid", "mallory");
    for _ in 0..40 {
        for _ in 0..10 {
            assert_eq!(h.token(&same).await.0, 401);
        }
        // Pacing, not waiting: the flood spans several of the one-second windows.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 500 junk JWTs, each claiming another subject.
    for i in 0..500 {
        let jwt = junk_jwt("https://evil.invalid", &format!("random-{i}"));
        assert_eq!(h.token(&jwt).await.0, 401);
    }
    // The last windows close within a second.
    let hr = &h;
    let events = eventually(Duration::from_secs(10), || async move {
        let e = hr.events("outcome=denied").await;
        let total: i64 = e.iter().map(|e| e["count"].as_i64().unwrap()).sum();
        (total == 900).then_some(e)
    })
    .await;
    assert!(
        events.len() < 40,
        "{} rows for 900 refusals from one address",
        events.len()
    );
}

// Item 8: requested names never become metric labels, and unknown targets fold.
#[tokio::test(flavor = "multi_thread")]
async fn random_target_names_create_no_series_and_few_rows() {
    let h = Hardened::with_metrics_listener(|c| c.rate_limit("per_principal_per_second", 5)).await;
    let jwt = h.jwt("svc-orders");
    for i in 0..300 {
        let s = h.token_for(&jwt, &format!("random-target-{i}")).await.0;
        assert!(s == 403 || s == 429, "{s}");
    }
    let text = h.scrape().await;
    assert!(
        !text.contains("random-target"),
        "a requested name became a label"
    );
    let hr = &h;
    let refused = eventually(Duration::from_secs(10), || async move {
        let e = hr.events("subject=svc-orders").await;
        let total: i64 = e
            .iter()
            .filter(|e| e["outcome"] != "issued")
            .map(|e| e["count"].as_i64().unwrap())
            .sum();
        (total == 300).then_some(e)
    })
    .await;
    assert!(refused.len() < 40, "{} rows", refused.len());
}

// Item 18: /metrics names targets and issuers, so the main listener serves it only when
// asked to.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_not_on_the_main_listener_by_default() {
    let h = Hardened::start(|c| c).await;
    assert_eq!(h.status("/metrics").await, 404);
    drop(h);
    let h = Hardened::start(|c| c.server("metrics_on_listen", true)).await;
    assert_eq!(h.status("/metrics").await, 200);
}

// The per-address budget: an address that keeps failing is refused before any work, and
// only that address.
#[tokio::test(flavor = "multi_thread")]
async fn failed_authentications_are_budgeted_per_address() {
    let h = Hardened::start(|c| {
        c.rate_limit("per_client_ip_per_second", 1)
            .rate_limit("per_client_ip_burst", 5)
    })
    .await;
    let client_from = |ip: IpAddr| {
        reqwest::Client::builder()
            .local_address(ip)
            .build()
            .unwrap()
    };
    let attacker = client_from("127.0.0.7".parse().unwrap());
    let junk = junk_jwt("https://evil.invalid", "mallory");
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let res = attacker
            .post(h.url("/v1/tokens"))
            .bearer_auth(&junk)
            .json(&json!({"target": "orders-db"}))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            assert!(res.headers().contains_key("retry-after"));
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["limit"], "client");
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        6,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 14);
    // Another address is not affected.
    assert_eq!(h.token(&h.jwt("svc-orders")).await.0, 200);
    // The console's sign-in helpers call the identity provider for anyone: they spend the
    // budget too.
    let res = attacker.get(h.url("/ui/config")).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(h.status("/ui/config").await, 200);
}

// The audit writer isolates an event the store refuses: its batch-mates are stored.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_the_store_refuses_fails_only_its_own_request() {
    let db = TempDb::create().await;
    let h = Hardened::with_metrics_listener(|c| c.audit_postgres(db.url())).await;
    // The store refuses any event whose user agent is "poison".
    db.admin(
        "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN \
         IF NEW.user_agent = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; \
         RETURN NEW; END $$ LANGUAGE plpgsql",
        true,
    )
    .await;
    db.admin(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_events \
         FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        true,
    )
    .await;
    let jwt = h.jwt("svc-orders");
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (c, url, jwt) = (h.client.clone(), h.url("/v1/tokens"), jwt.clone());
        let agent = if i % 10 == 0 { "poison" } else { "fine" };
        tasks.push(tokio::spawn(async move {
            let res = c
                .post(url)
                .bearer_auth(jwt)
                .header("user-agent", agent)
                .json(&json!({"target": "orders-db"}))
                .send()
                .await
                .unwrap();
            (agent, res.status().as_u16())
        }));
    }
    for t in tasks {
        let (agent, status) = t.await.unwrap();
        let expected = if agent == "poison" { 503 } else { 200 };
        assert_eq!(status, expected, "{agent}");
    }
    assert_eq!(h.status("/readyz").await, 200);
    let text = h.scrape().await;
    let rejected = text
        .lines()
        .find(|l| l.starts_with("rds_token_broker_audit_events_rejected_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(rejected, Some(6.0), "{text}");
    let v: Value = h
        .client
        .get(h.url("/v1/audit/verify"))
        .bearer_auth(h.jwt("auditor"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["ok"], true, "{v}");
}

// The issue's load test: 1,000 hostile connections from other addresses (slow bodies,
// junk JWTs with NULs and random subjects, random methods) for a few seconds, while a
// legitimate client keeps getting tokens and /healthz stays 200. RSS growth is reported.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_load_stops_neither_issuance_nor_health() {
    let h = Hardened::start(|c| c).await;
    let rss_before = h.rss_kib();
    let addr = h.addr;
    let until = Instant::now() + Duration::from_secs(5);
    let mut hostile = Vec::new();
    for i in 0..1000u32 {
        // Four attacking addresses, 250 connections each (the per-address cap is 256).
        let from = [127, 0, 1, (i % 4) as u8 + 1];
        hostile.push(tokio::spawn(async move {
            let Ok(mut s) = connect_from(from, addr).await else {
                return;
            };
            let mut buf = vec![0u8; 8192];
            let mut n = 0u64;
            while Instant::now() < until {
                n += 1;
                let req = match i % 3 {
                    // A body that trickles and never completes.
                    0 => "POST /v1/tokens HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 16000\r\n\r\n{\"target\"".to_owned(),
                    // A junk JWT with NULs and a random subject.
                    1 => {
                        let jwt = junk_jwt("corp\u{0}", &format!("x\u{0}{i}-{n}\u{202e}"));
                        let body = r#"{"target":"orders-db"}"#;
                        format!(
                            "POST /v1/tokens HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {jwt}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    }
                    // A random method.
                    _ => format!("M{i}X{n}{} /v1/tokens HTTP/1.1\r\nhost: x\r\n\r\n", "Q".repeat(500)),
                };
                if s.write_all(req.as_bytes()).await.is_err() {
                    return;
                }
                if i % 3 == 0 {
                    // Hold the connection with the body unfinished.
                    tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
                    return;
                }
                match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        let Ok(again) = connect_from(from, addr).await else {
                            return;
                        };
                        s = again;
                    }
                    _ => {}
                }
            }
        }));
    }
    let jwt = h.jwt("svc-legit");
    let (mut ok, mut health_ok, mut other) = (0u32, 0u32, Vec::new());
    while Instant::now() < until {
        match h.token(&jwt).await.0 {
            200 => ok += 1,
            s => other.push(s),
        }
        match h.status("/healthz").await {
            200 => health_ok += 1,
            s => other.push(s),
        }
        // Pacing: a steady legitimate client beside the attack until `until`.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for t in hostile {
        let _ = t.await;
    }
    let rss_after = h.rss_kib();
    eprintln!(
        "hostile load: legitimate tokens {ok}, healthz 200s {health_ok}, other statuses {other:?}; \
         RSS {rss_before} KiB -> {rss_after} KiB"
    );
    assert!(other.is_empty(), "the legitimate client got {other:?}");
    // The hostile clients run in this test's process on the same two cores, so the
    // legitimate loop is slow; what counts is that it never fails.
    assert!(
        ok >= 5 && health_ok >= 5,
        "{ok} tokens, {health_ok} healthz"
    );
    assert!(
        rss_after < rss_before + 200 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}
