//! Issuance throughput over HTTP at 64 concurrent clients, with the audit trail on a no-op
//! store, on durable SQLite (WAL, synchronous=FULL) and, when the local server answers, on
//! PostgreSQL: same broker, same requests, same run. Each request is a cache hit that
//! waits for its `issued` event to be committed (group commit), so the difference between
//! the stores is what durability costs.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rds_token_broker::audit::AuditStore;
use rds_token_broker::clock::SystemClock;
use rds_token_broker::config;
use rds_token_broker::startup::{Application, Dependencies};
use sqlx::Connection as _;

const CLIENTS: u64 = 64;
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
allow_unauthenticated = true
[rate_limit]
# Every request is the same anonymous caller here.
per_principal_per_second = 1000000
[audit]
url = "sqlite://unused"
[[targets]]
name = "orders-db"
host = "orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com"
port = 5432
engine = "postgres"
db_users = ["orders_svc"]
"#;

async fn start(store: AuditStore) -> String {
    let config = config::load_str(CONFIG).unwrap_or_else(|e| panic!("{e}"));
    let creds = Credentials::new(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        None,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000)),
        "bench",
    );
    let deps = Dependencies {
        clock: Arc::new(SystemClock),
        credentials: SharedCredentialsProvider::new(creds),
        audit_store: Some(store),
    };
    let app = Application::build(config, deps).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));
    base
}

/// `n` requests spread over 64 concurrent clients; the time until all are answered.
async fn load(client: &reqwest::Client, url: &str, n: u64) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (client, url) = (client.clone(), url.to_owned());
            let share = n / CLIENTS + u64::from(i < n % CLIENTS);
            tokio::spawn(async move {
                for _ in 0..share {
                    let res = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(r#"{"target":"orders-db"}"#)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 200);
                    res.bytes().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

async fn postgres_store() -> Option<(AuditStore, String)> {
    let mut admin = sqlx::PgConnection::connect(ADMIN_URL).await.ok()?;
    let name = format!("rtb_bench_{}", std::process::id());
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut admin)
        .await
        .ok()?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .ok()?;
    let store = AuditStore::open(&format!("postgres://postgres@127.0.0.1:5432/{name}"))
        .await
        .ok()?;
    Some((store, name))
}

fn stores(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS as usize)
        .build()
        .unwrap();
    let mut variants: Vec<(&str, AuditStore)> = vec![("no-op store", AuditStore::Noop)];
    let sqlite = rt
        .block_on(AuditStore::open(&format!(
            "sqlite://{}/audit.db",
            dir.path().display()
        )))
        .unwrap();
    variants.push(("sqlite (durable)", sqlite));
    let pg = rt.block_on(postgres_store());
    match &pg {
        Some((store, _)) => variants.push(("postgresql", store.clone())),
        None => eprintln!("PostgreSQL at {ADMIN_URL} not reachable: its variant is left out"),
    }

    let mut group = c.benchmark_group("issue_64_clients");
    group.throughput(Throughput::Elements(1));
    for (name, store) in variants {
        let url = format!("{}/v1/tokens", rt.block_on(start(store)));
        // Warm the token cache and the connection pool.
        rt.block_on(load(&client, &url, CLIENTS * 4));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| rt.block_on(load(&client, &url, iters.max(CLIENTS))))
        });
    }
    group.finish();

    if let Some((_, name)) = pg {
        rt.block_on(async {
            // The broker's pool still holds connections: force them off.
            if let Ok(mut admin) = sqlx::PgConnection::connect(ADMIN_URL).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await;
            }
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = stores
}
criterion_main!(benches);
