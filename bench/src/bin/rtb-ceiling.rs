//! The ceiling for the HTTP benchmarks: a bare axum endpoint on loopback that parses the
//! same request body and answers a JSON body of the broker's size, with nothing else (no
//! authentication, policy, cache or audit). Prints `listening on http://ADDR`.

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

/// The broker binary's allocator, so that this measures what the broker would.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn tokens(Json(body): Json<Value>) -> Json<Value> {
    // A broker answer is about this size: a ~900-character token plus the endpoint fields.
    Json(json!({
        "token": "x".repeat(900),
        "expires_at": "2026-11-23T12:00:00Z",
        "target": body.get("target").cloned().unwrap_or(Value::Null),
        "host": "orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com",
        "port": 5432,
        "db_user": "app_rw",
        "region": "eu-west-1",
        "engine": "postgres",
        "issuance_id": "019ab000-0000-7000-8000-000000000000",
    }))
}

#[tokio::main]
async fn main() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!(
        "listening on http://{}",
        listener.local_addr().expect("addr")
    );
    let app = axum::Router::new().route("/v1/tokens", post(tokens));
    axum::serve(listener, app).await.expect("serve");
}
