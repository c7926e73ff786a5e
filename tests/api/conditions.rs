//! `[grants.conditions]`: `source_cidrs` (the client address after `trusted_proxies`) and
//! `hours` (weekly windows in a tz database zone), against a real JWKS over loopback, with
//! the manual clock.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::app::{TestApp, problem};
use crate::support::config::{Auditor, BrokerToml, Grant, Issuer, Target};
use crate::support::idp::{RsaKey, TestIdp, rs256};

/// The instant of an RFC 3339 time.
fn at(s: &str) -> SystemTime {
    rds_token_broker::clock::parse_rfc3339(s).unwrap()
}

/// The TOML value of a JSON value.
fn toml_of(v: Value) -> toml::Value {
    toml::Value::try_from(v).unwrap()
}

struct Setup {
    app: TestApp,
    idp: TestIdp,
    key: RsaKey,
    _dir: tempfile::TempDir,
}

/// `orders-db` with `app_rw` (granted to `corp` callers under `condition`) and `app_ro`
/// (granted without conditions); `auditor` reads the trail.
async fn setup(condition: (&str, Value)) -> Setup {
    let key = RsaKey::generate("k1");
    let idp = TestIdp::start(vec![key.jwk()]).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = BrokerToml::new()
        .issuer(Issuer::from(&idp).named("corp"))
        .server("trusted_proxies", vec!["127.0.0.1/32"])
        .target(Target::postgres("orders-db").db_users(["app_rw", "app_ro"]))
        .grant(
            Grant::new("corp", "alice")
                .targets(["orders-db"])
                .db_users(["app_rw"])
                .condition(condition.0, toml_of(condition.1)),
        )
        .grant(
            Grant::new("corp", "alice")
                .targets(["orders-db"])
                .db_users(["app_ro"]),
        )
        .audit_sqlite(dir.path())
        .auditor(Auditor::new("corp", "auditor"))
        .rate_limit("per_principal_per_second", 1_000_000);
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
        let iat = self
            .app
            .state
            .broker
            .now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        rs256(
            &self.key,
            &json!({"iss": self.idp.issuer, "sub": sub, "aud": "rds-token-broker", "iat": iat, "exp": iat + 600}),
        )
    }

    async fn ask(&self, db_user: &str, forwarded_for: Option<&str>) -> reqwest::Response {
        let mut req = self
            .app
            .client
            .post(format!("{}/v1/tokens", self.app.base))
            .bearer_auth(self.jwt("alice"))
            .json(&json!({"target": "orders-db", "db_user": db_user}));
        if let Some(f) = forwarded_for {
            req = req.header("x-forwarded-for", f);
        }
        req.send().await.unwrap()
    }

    /// Alice asks for `app_rw` at `when`: the status.
    async fn status_at(&self, when: &str) -> u16 {
        self.app.clock.set(at(when));
        self.ask("app_rw", None).await.status().as_u16()
    }

    async fn last_forbidden_reason(&self) -> String {
        let page: Value = self
            .app
            .client
            .get(format!(
                "{}/v1/audit/events?outcome=forbidden",
                self.app.base
            ))
            .bearer_auth(self.jwt("auditor"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["events"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

#[tokio::test]
async fn source_cidrs_use_the_client_address_after_trusted_proxies() {
    let s = setup(("source_cidrs", json!(["198.51.100.0/24", "2001:db8::/32"]))).await;
    let ok = s.ask("app_rw", Some("198.51.100.7")).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(s.ask("app_rw", Some("2001:db8::5")).await.status(), 200);

    // Outside, or the proxy itself: refused, saying which condition failed.
    for forwarded in [Some("203.0.113.9"), Some("198.51.100.7, 203.0.113.9"), None] {
        let p = problem(s.ask("app_rw", forwarded).await, 403).await;
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains("condition source_cidrs"),
            "{forwarded:?}: {detail}"
        );
        assert!(!detail.contains("198.51.100"), "no grant details: {detail}");
    }
    let reason = s.last_forbidden_reason().await;
    assert!(
        reason.contains("condition source_cidrs does not hold"),
        "{reason}"
    );

    // The grant without conditions still applies from anywhere.
    assert_eq!(s.ask("app_ro", Some("203.0.113.9")).await.status(), 200);
}

#[tokio::test]
async fn hours_follow_the_time_zone_and_daylight_saving() {
    let s = setup(("hours", json!("Mon-Fri 08:00-18:00 Europe/Berlin"))).await;
    // Friday 2026-03-27, CET (UTC+1): 08:00 local is 07:00 UTC.
    assert_eq!(s.status_at("2026-03-27T06:59:59Z").await, 403);
    assert_eq!(s.status_at("2026-03-27T07:00:00Z").await, 200);
    assert_eq!(s.status_at("2026-03-27T16:59:59Z").await, 200);
    assert_eq!(s.status_at("2026-03-27T17:00:00Z").await, 403);
    // Saturday and Sunday (the change to CEST is Sunday 2026-03-29).
    assert_eq!(s.status_at("2026-03-28T10:00:00Z").await, 403);
    assert_eq!(s.status_at("2026-03-29T10:00:00Z").await, 403);
    // Monday 2026-03-30, CEST (UTC+2): 08:00 local is 06:00 UTC, 18:00 is 16:00.
    assert_eq!(s.status_at("2026-03-30T05:59:00Z").await, 403);
    assert_eq!(s.status_at("2026-03-30T06:00:00Z").await, 200);
    assert_eq!(s.status_at("2026-03-30T15:59:00Z").await, 200);
    assert_eq!(s.status_at("2026-03-30T16:00:00Z").await, 403);

    let p = problem(s.ask("app_rw", None).await, 403).await;
    assert!(
        p["detail"].as_str().unwrap().contains("condition hours"),
        "{p}"
    );
    assert!(!p["detail"].as_str().unwrap().contains("Berlin"), "{p}");
    let reason = s.last_forbidden_reason().await;
    assert!(reason.contains("condition hours does not hold"), "{reason}");
    // Only the grant with the condition is out of hours.
    assert_eq!(s.ask("app_ro", None).await.status(), 200);
}

#[tokio::test]
async fn overnight_windows_and_lists_of_windows() {
    let s = setup((
        "hours",
        json!(["Fri 22:00-06:00 America/New_York", "Sun 12:00-13:00 UTC"]),
    ))
    .await;
    // Thursday night is not Friday night (the clock only moves forward here: rate
    // limits are paced by it).
    assert_eq!(s.status_at("2026-07-03T04:00:00Z").await, 403);
    // Friday 2026-07-03 22:00 EDT is Saturday 02:00 UTC; the window closes Saturday
    // 06:00 EDT (10:00 UTC).
    assert_eq!(s.status_at("2026-07-04T01:59:00Z").await, 403);
    assert_eq!(s.status_at("2026-07-04T02:00:00Z").await, 200);
    assert_eq!(s.status_at("2026-07-04T09:59:00Z").await, 200);
    assert_eq!(s.status_at("2026-07-04T10:00:00Z").await, 403);
    assert_eq!(s.status_at("2026-07-05T12:30:00Z").await, 200);
}

#[test]
fn conditions_are_checked_at_load() {
    let grant = |key: &str, value: Value| {
        Grant::new("corp", "*")
            .targets(["orders-db"])
            .db_users(["app"])
            .condition(key, toml_of(value))
    };
    let toml = BrokerToml::new()
        .issuer(Issuer::jwks_uri(
            "corp",
            "https://idp.example.com",
            "https://idp.example.com/jwks",
        ))
        .target(Target::postgres("orders-db").db_users(["app"]))
        .grant(grant("source_cidrs", json!(["10.0.0.0/33", "10.0.0.0/8"])))
        .grant(grant("hours", json!("Mon-Fri 8:00-18:00 Europe/Berlin")))
        .grant(grant(
            "hours",
            json!(["Mon-Fri 08:00-18:00 Mars/Olympus", "Mo 08:00-09:00 UTC"]),
        ))
        .grant(grant("hourz", json!("Mon 08:00-09:00 UTC")))
        .grant(grant("hours", json!([])))
        .to_string();
    let errs: Vec<(String, String)> = rds_token_broker::config::load_str(&toml)
        .unwrap_err()
        .errors
        .into_iter()
        .map(|e| (e.key, e.message))
        .collect();
    for (key, needle) in [
        ("grants[0].conditions.source_cidrs[0]", "IP network"),
        ("grants[1].conditions.hours", "times must be HH:MM-HH:MM"),
        ("grants[2].conditions.hours[0]", "unknown time zone"),
        ("grants[2].conditions.hours[1]", "days must be"),
        ("grants[3].conditions.hourz", "did you mean \"hours\""),
        ("grants[3].conditions", "names no condition"),
        ("grants[4].conditions.hours", "at least one window"),
    ] {
        assert!(
            errs.iter().any(|(k, m)| k == key && m.contains(needle)),
            "{key}: {errs:#?}"
        );
    }
    assert!(
        !errs
            .iter()
            .any(|(k, _)| k == "grants[0].conditions.source_cidrs[1]")
    );
}
