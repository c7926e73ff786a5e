//! `deploy/postgres/audit-role.sql`, the PostgreSQL role docs/deploying.md has operators
//! create for the audit store: applied (twice: it is idempotent) to a throwaway database
//! as an administrator would, then the broker's audit store runs as that role (start-up
//! migrations, events, verification, retention pruning, a second start), and the role
//! is shown to be unable to do more.

use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::support::app::TestApp;
use crate::support::config::BrokerToml;
use crate::support::pg::TempDb;

/// The role's connection URL: the database's, as `role` with `password`.
fn as_role(db: &TempDb, role: &str, password: &str) -> String {
    let mut url = reqwest::Url::parse(&db.url()).unwrap();
    url.set_username(role).unwrap();
    url.set_password(Some(password)).unwrap();
    url.to_string()
}

async fn verify(app: &TestApp) -> Value {
    let res = app.get("/v1/audit/verify").await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn the_audit_store_runs_as_the_least_privileged_role() {
    let db = TempDb::create().await;
    // The file as written, under a name of its own: databases come and go per test, roles
    // are the whole server's.
    let role = format!("rtb_audit_{}", uuid::Uuid::new_v4().simple());
    let sql = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/postgres/audit-role.sql"
    ))
    .unwrap()
    .replace("rds_token_broker", &role);
    let mut admin = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    for _ in 0..2 {
        sqlx::raw_sql(&sql).execute(&mut admin).await.unwrap();
    }
    sqlx::raw_sql(&format!(
        "ALTER ROLE {role} PASSWORD 'audit-secret'; \
         CREATE TABLE public.not_the_brokers (secret text); \
         INSERT INTO public.not_the_brokers VALUES ('x');"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let url = as_role(&db, &role, "audit-secret");

    // The broker as that role: migrations at start, then events, verification, pruning.
    let config = BrokerToml::unauthenticated().audit_url(url.clone());
    let app = TestApp::spawn_toml(config.clone()).await;
    for _ in 0..3 {
        app.token(json!({"target": "ledger"})).await;
    }
    app.clock
        .advance(std::time::Duration::from_secs(400 * 86_400 + 3600));
    for _ in 0..3 {
        app.token(json!({"target": "ledger"})).await;
    }
    let res = app.get("/v1/audit/events?limit=10").await;
    assert_eq!(res.status(), 200);
    let events: Value = res.json().await.unwrap();
    assert_eq!(events["events"].as_array().unwrap().len(), 6, "{events}");
    let audit = app.state.broker.audit().unwrap();
    assert_eq!(audit.prune("2026-03-09T14:41:29Z").await.unwrap(), 3);
    // The last three issuances, and the read of the events above.
    assert_eq!(
        verify(&app).await,
        json!({"ok": true, "events_checked": 4, "first_broken": null})
    );
    drop(app);
    // A restart finds its migrations applied, with the same rights.
    // (Its clock starts where the first one's did: move it to the same day.)
    let again = TestApp::spawn_toml(config).await;
    again
        .clock
        .advance(std::time::Duration::from_secs(400 * 86_400 + 3600));
    again.token(json!({"target": "ledger"})).await;
    // The four kept above, the first broker's verification and this issuance.
    assert_eq!(
        verify(&again).await,
        json!({"ok": true, "events_checked": 6, "first_broken": null})
    );
    drop(again);

    // Its tables are in its own schema; it can do nothing beyond it.
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let (schema,): (String,) = sqlx::query_as(
        "SELECT table_schema::text FROM information_schema.tables WHERE table_name = 'audit_events'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(schema, role);
    let (superuser, createdb, createrole): (bool, bool, bool) = sqlx::query_as(
        "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(!superuser && !createdb && !createrole);
    for refused in [
        "SELECT secret FROM public.not_the_brokers",
        "CREATE TABLE public.planted (x int)",
        "CREATE SCHEMA planted",
        "CREATE DATABASE planted",
        "CREATE ROLE planted",
    ] {
        let e = sqlx::raw_sql(refused)
            .execute(&mut conn)
            .await
            .expect_err(refused);
        assert!(
            e.to_string().contains("permission denied"),
            "{refused}: {e}"
        );
    }
    conn.close().await.unwrap();

    // The role is the server's, not the database's: remove it before the database goes.
    sqlx::raw_sql(&format!("DROP OWNED BY {role}"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    db.admin(&format!("DROP ROLE {role}"), false).await;
}
