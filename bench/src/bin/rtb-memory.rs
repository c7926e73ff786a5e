//! Resident memory of the token cache: fills the broker's own `TokenCache` with N tokens
//! (distinct DB users, signed for real) and prints the process's RSS before and after, as
//! JSON. `rtb-memory [N] [--per-caller-sessions]` (default 100000): by default one set of
//! temporary credentials signs every token (the broker's own, or `share_tokens`); with
//! `--per-caller-sessions` each token is signed by its own credentials and session token,
//! as with a `role_arn` assumed per caller, so no session token is shared. In that mode
//! each caller's `Credentials` are kept alive for the whole run, as the broker's STS
//! session cache keeps them (one entry per caller and role) while their tokens are cached:
//! the RSS is that of both caches, as in the broker.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use rds_token_broker::clock::SystemClock;
use rds_token_broker::config::RateLimitConfig;
use rds_token_broker::domain::{DbUser, Hostname, Region};
use rds_token_broker::ratelimit::{Budget, Pacer};
use rds_token_broker::token::{CacheKey, MintGate, TokenCache, TokenKind};

/// The broker binary's allocator, so that this measures what the broker would.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(100_000, |v| v.parse().expect("N"));
    let per_caller = std::env::args().any(|a| a == "--per-caller-sessions");
    let clock = Arc::new(SystemClock);
    let cache = TokenCache::new(
        clock.clone(),
        n + 1000,
        Duration::from_secs(300),
        Duration::from_secs(60),
    );
    let pacer = Pacer::new(
        &RateLimitConfig {
            redis_url: None,
            redis_key_prefix: "bench:".into(),
            per_principal_per_second: 1,
            max_wait: Duration::ZERO,
            expected_replicas: 1,
            per_client_ip_per_second: 0,
            per_client_ip_burst: 0,
        },
        clock,
    )
    .expect("pacer");
    let gate = MintGate {
        pacer: Arc::new(pacer),
        target: "orders-db".into(),
        kind: "rds",
        budget: Budget {
            per_second: u32::MAX,
            burst: u32::MAX,
        },
        max_wait: Duration::ZERO,
    };
    let creds = Credentials::new(
        "ASIAQEXAMPLE2TESTKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        Some("IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN".repeat(20)),
        Some(SystemTime::now() + Duration::from_secs(3600)),
        "bench",
    );
    // As in the broker: host and region come from the target's configuration (shared),
    // the signing identity from the credentials, the DB user from the request.
    let host =
        Hostname::parse("orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com").expect("host");
    let region = Region::parse("eu-west-1").expect("region");
    let before = rss_kib();
    // Stands for the STS session cache: the per-caller credentials it would hold.
    let mut sessions: Vec<Credentials> = Vec::new();
    for i in 0..n {
        let creds = if per_caller {
            Credentials::new(
                format!("ASIAQEXAMPLE{i:08}"),
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                Some(format!("{i:08}IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN").repeat(20)),
                Some(SystemTime::now() + Duration::from_secs(3600)),
                "bench",
            )
        } else {
            creds.clone()
        };
        let key = CacheKey {
            identity: Arc::from(creds.access_key_id()),
            kind: TokenKind::Rds,
            host: host.clone(),
            port: 5432,
            region: region.clone(),
            db_user: DbUser::parse(&format!("app_user_{i}")).expect("db user"),
        };
        cache.get(key, &creds, &gate).await.expect("token");
        if per_caller {
            sessions.push(creds);
        }
    }
    cache.sync().await;
    let after = rss_kib();
    let held_sessions = sessions.len();
    println!(
        "{}",
        serde_json::json!({
            "tokens": n,
            "per_caller_sessions": per_caller,
            "cached": cache.entry_count(),
            "shared_pieces": cache.shared_pieces(),
            "sts_sessions_held": held_sessions,
            "rss_before_mib": before as f64 / 1024.0,
            "rss_after_mib": after as f64 / 1024.0,
            "bytes_per_token": (after.saturating_sub(before) * 1024) as f64 / n as f64,
        })
    );
}
